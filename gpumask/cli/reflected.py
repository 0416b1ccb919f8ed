"""``gpumask reflected FIELDS --out DIR``: reflected-region off regions and on/off counts
for a field list of (target, pointing, event file), resumable and sharded (the
runner is :mod:`gpumask.batch.reflected`)."""

from __future__ import annotations

import sys

_FINDER = ("angle_increment", "min_distance", "min_distance_input", "max_region_number", "binsz", "method")


def add_parser(sub):
    """Add the ``reflected`` sub-command to ``sub`` (an argparse sub-parsers object).

    Parameters
    ----------
    sub : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> import argparse
    >>> add_parser(argparse.ArgumentParser().add_subparsers()).prog  # doctest: +ELLIPSIS
    '... reflected'
    """
    p = sub.add_parser(
        "reflected", help="reflected-region off regions and on/off counts for a field list",
        description="For every row of FIELDS (CSV: name,target,pointing_ra,pointing_dec,events) write "
        "DIR/{name}_off.reg, DIR/{name}_reflected.ecsv (when events are given) and a manifest. Complete rows "
        "are skipped (resumable); the exit status is 1 when a row failed, 2 when the inputs have problems "
        "(nothing is run then).")
    p.add_argument("fields", help="CSV field list; target: a quoted ds9 region, pointing: deg ICRS, "
                   "events: FITS event list relative to the list's folder, or empty")
    p.add_argument("--out", required=True, help="output folder (created when missing)")
    p.add_argument("--exclusion-mask", help="boolean FITS map, True = usable, any geometry")
    p.add_argument("--method", choices=("sky", "pixel"), default="sky",
                   help="sky: exact on the sphere (default); pixel: gammapy 2.1's TAN pixel algorithm")
    p.add_argument("--angle-increment", default="0.1 rad", help="default '0.1 rad'")
    p.add_argument("--min-distance", default="0 rad", help="default '0 rad'")
    p.add_argument("--min-distance-input", default="0.1 rad", help="default '0.1 rad'")
    p.add_argument("--max-region-number", type=int, default=10000, help="default 10000")
    p.add_argument("--binsz", default="0.01 deg", help="pixel size of --method pixel (default '0.01 deg')")
    p.add_argument("--energy-edges", help="energy bins of the counts, e.g. '0.1,1,10 TeV' (default: one bin)")
    p.add_argument("--shard", help="I/N: the rows k with k %% N == I-1 (default: from "
                   "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else all)")
    p.add_argument("--overwrite", action="store_true", help="redo complete rows and replace files")
    p.add_argument("--dry-run", action="store_true", help="validate, list what would run, run nothing")
    p.add_argument("--progress", choices=("auto", "bar", "log"), default="auto",
                   help="a progress bar (terminal) or log lines (default: bar on a terminal)")
    return p


def run(args) -> int:
    """Run ``gpumask reflected`` with parsed ``args``; the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0, 1 when a row failed, 2 for problems of the inputs or options.

    Examples
    --------
    >>> import gpumask.cli
    >>> gpumask.cli.main(["reflected", "fields.csv", "--out", "out"])  # doctest: +SKIP
    0
    """
    from ..backend import BackendError  # noqa: PLC0415
    from ..background.reflected import ReflectedRegionsFinder  # noqa: PLC0415
    from ..batch import reflected as rb  # noqa: PLC0415
    from ..batch.config import ConfigError  # noqa: PLC0415
    from ..batch.runner import Progress, parse_shard, select_shard, shard_from_env, write_report  # noqa: PLC0415
    from ..sky.io import read_map  # noqa: PLC0415

    try:
        shard = parse_shard(args.shard) if args.shard else shard_from_env()
        finder_args = {k: getattr(args, k) for k in _FINDER}
        finder = ReflectedRegionsFinder(**finder_args)
        axis = rb.parse_energy_edges(args.energy_edges) if args.energy_edges else None
        mask_path = str(rb.folder_of(args.exclusion_mask)) if args.exclusion_mask else None
        mask = read_map(mask_path) if mask_path else None
        if mask is not None and not mask.is_mask:
            raise ValueError(f"--exclusion-mask {mask_path}: a boolean map is needed (True = usable), "
                             f"got dtype {mask.data.dtype}")
        options = {**{k: str(v) for k, v in finder_args.items()},
                   "energy_edges": None if axis is None else [float(e) for e in axis.edges.value],
                   "energy_unit": None if axis is None else str(axis.edges.unit), "exclusion_mask": mask_path}
        out = rb.folder_of(args.out)
        rows = rb.plan_reflected(args.fields, out, options=options, exclusion_mask=mask_path,
                                 energy=axis is not None)
        mine = select_shard(rows, shard)
        where = "" if shard is None else f" (shard {shard[0] + 1}/{shard[1]})"
        if args.dry_run:
            states = [(r, *rb.reflected_state(r, args.overwrite)) for r in mine]
            for r, state, why in states:
                print(f"{r.name:<24s} {state:<9s} {why or '':<24s} {r.target} @ ({r.ra:g}, {r.dec:g})")
            n = {s: sum(st == s for _, st, _ in states) for s in ("todo", "complete", "conflict")}
            print(f"{len(mine)} rows{where}: {n['todo']} to run, {n['complete']} complete, "
                  f"{n['conflict']} in conflict")
            return 0
        progress = Progress(len(mine), tty={"auto": None, "bar": True, "log": False}[args.progress])
        report = rb.run_reflected(mine, finder, exclusion_mask=mask, energy_axis=axis, overwrite=args.overwrite,
                                  options=options, progress=progress)
        report_path = rb.default_report_path(out, shard)
        report.update({"fields_file": str(rb.folder_of(args.fields)), "out": str(out), "options": options,
                       "shard": None if shard is None else f"{shard[0] + 1}/{shard[1]}", "total_rows": len(rows)})
        write_report(report, report_path)
    except (ConfigError, BackendError, OSError, ValueError, TypeError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    c, t = report["counts"], report["totals"]
    print(f"{len(mine)} rows{where} in {report['seconds']:.1f} s: {c['done']} done, {c['skipped']} skipped, "
          f"{c['failed']} failed; rows done: {t['off_regions']} off regions, {t['counts']} on counts, "
          f"{t['counts_off']} off counts; report {report_path}")
    for field in report["fields"]:
        if field["status"] == "failed":
            print(f"  failed {field['name']}: {field['error']}", file=sys.stderr)
    return 1 if c["failed"] else 0
