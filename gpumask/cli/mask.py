"""``gpumask mask [CONFIG.yaml] [flags]``: one field's exclusion mask, the steps of the
tutorial as a declarative config (see :mod:`gpumask.batch.config`); flags cover the common
cases and override the config's keys."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser(
        "mask",
        help="one field's exclusion mask from a config file and/or flags",
        description="Build one exclusion mask: regions, catalogs and significance combined "
        "(True = usable, gammapy's convention). Flags override the config's keys; paths given as "
        "flags are relative to the working directory, those in the config to its folder. Missing "
        "output folders are created (after validation, inside the folder the output names). "
        "--dilation and --significance-dilation grow the excluded regions; since True = usable, "
        "that is an erosion of the mask, the same as Map.binary_erode(ANGLE) in Python.",
    )
    p.add_argument("config", nargs="?", help="YAML config (see gpumask.batch.config); optional with flags")
    p.add_argument("--name", default="field", help="field name, {name} in file names (default: field)")
    g = p.add_argument_group("geometry (default: the geometry of the significance inputs)")
    g.add_argument("--skydir", nargs=2, metavar=("LON", "LAT"), help="map centre in deg")
    g.add_argument("--skydir-frame", help="frame of --skydir (default: --frame)")
    g.add_argument("--frame", help="map frame: icrs, galactic or fk5")
    g.add_argument("--width", help="map width, e.g. '5 deg'")
    g.add_argument("--binsz", help="pixel size, e.g. '0.02 deg'")
    g.add_argument("--proj", help="WCS projection (default CAR)")
    r = p.add_argument_group("regions and catalogs")
    r.add_argument("--region", action="append", default=[], metavar="DS9_OR_FILE",
                   help="excluded ds9 region text or file (repeatable)")
    r.add_argument("--catalog", action="append", default=[], metavar="NAME_OR_FILE",
                   help="exclude a catalog's sources: a name (3fhl, hgps, ...) or a file (repeatable)")
    r.add_argument("--catalog-radius", help="fixed circle radius for every catalog source (e.g. '0.3 deg'); "
                   "default: the morphology rule")
    r.add_argument("--psf", help="psf of the morphology rule (default 0.1 deg)")
    s = p.add_argument_group("significance")
    s.add_argument("--dataset", help="gammapy MapDataset file")
    s.add_argument("--counts", help="counts map file (with --background)")
    s.add_argument("--background", help="background map file")
    s.add_argument("--correlation-radius", help="e.g. '0.4 deg' (default 0.1 deg)")
    s.add_argument("--threshold", type=float, help="sqrt_ts threshold (default 5)")
    s.add_argument("--low", type=float, help="hysteresis: grow to the connected sqrt_ts >= LOW")
    s.add_argument("--significance-dilation", help="grow the significance exclusion, e.g. '0.1 deg' "
                   "(erodes the usable area: Map.binary_erode)")
    o = p.add_argument_group("output")
    o.add_argument("--dilation", help="grow the combined exclusion, e.g. '0.1 deg' (erodes the usable "
                   "area: Map.binary_erode)")
    o.add_argument("--out", help="mask file (output.mask), e.g. mask.fits; required without a config "
                   "(missing folders are created)")
    o.add_argument("--sqrt-ts", help="also write the significance map here")
    o.add_argument("--significance-mask", help="also write the significance exclusion here")
    p.add_argument("--backend", help="numpy | cupy | auto")
    p.add_argument("--overwrite", action="store_true", help="rebuild and replace existing outputs")
    p.add_argument("--dry-run", action="store_true", help="validate and say what would run")
    return p


def _abs(value):
    if value is None:
        return None
    text = str(value)
    return text if "(" in text or "{" in text else str(Path(text).expanduser().resolve())


def overrides_from_flags(args) -> dict:
    """The config keys the flags set (paths made absolute)."""
    out = {}

    def put(section, key, value):
        if value is not None:
            (out.setdefault(section, {}) if section else out)[key] = value

    put(None, "backend", args.backend)
    if args.skydir:
        put("geometry", "skydir", list(args.skydir))
    put("geometry", "skydir_frame", args.skydir_frame)
    put("geometry", "frame", args.frame)
    put("geometry", "width", args.width)
    put("geometry", "binsz", args.binsz)
    put("geometry", "proj", args.proj)
    if args.region:
        out["regions"] = [_abs(r) for r in args.region]
    if args.catalog:
        cats = []
        for c in args.catalog:
            entry = {"file": _abs(c)} if Path(c).expanduser().exists() or "/" in c else {"name": c}
            put_rule = {"radius": args.catalog_radius, "psf": args.psf}
            entry.update({k: v for k, v in put_rule.items() if v is not None})
            cats.append(entry)
        out["catalogs"] = cats
    for key in ("dataset", "counts", "background"):
        put("significance", key, _abs(getattr(args, key)))
    put("significance", "correlation_radius", args.correlation_radius)
    put("significance", "threshold", args.threshold)
    put("significance", "low", args.low)
    put("significance", "dilation", args.significance_dilation)
    put(None, "dilation", args.dilation)
    put("output", "mask", _abs(args.out))
    put("output", "sqrt_ts", _abs(args.sqrt_ts))
    put("output", "significance_mask", _abs(args.significance_mask))
    return out


# config key -> the flag that sets it (for messages when the config comes from flags only)
FLAGS = {
    "backend": "--backend", "geometry.skydir": "--skydir", "geometry.skydir_frame": "--skydir-frame",
    "geometry.frame": "--frame", "geometry.width": "--width", "geometry.binsz": "--binsz",
    "geometry.proj": "--proj", "significance.dataset": "--dataset", "significance.counts": "--counts",
    "significance.background": "--background", "significance.correlation_radius": "--correlation-radius",
    "significance.threshold": "--threshold", "significance.low": "--low",
    "significance.dilation": "--significance-dilation", "dilation": "--dilation", "output.mask": "--out",
    "output.sqrt_ts": "--sqrt-ts", "output.significance_mask": "--significance-mask",
}
_REQUIRED = {
    "output.mask": "--out is required: give the mask file, e.g. --out mask.fits",
    "geometry": "--skydir, --width and --binsz are required without significance inputs (--dataset, or "
                "--counts and --background, to take the geometry from)",
    "geometry.skydir": "--skydir is required: give the map centre, e.g. --skydir 83.63 22.01",
    "geometry.binsz": "--binsz is required: give the pixel size, e.g. --binsz '0.02 deg'",
    "geometry.width": "--width is required: give the map width, e.g. --width '5 deg'",
    "significance.counts": "--counts is required with significance flags: give --dataset, or both --counts "
                           "and --background",
    "significance.background": "--background is required with --counts (or give --dataset instead)",
}


def in_flag_terms(exc) -> str:
    """The message of ``exc`` (a ConfigError of a config built from flags only) with
    the flags' names instead of the config's keys."""
    lines = []
    for path, message in exc.problems:
        if message.startswith("missing") and path in _REQUIRED:
            lines.append(_REQUIRED[path])
            continue
        if message.startswith("missing: ") and path in FLAGS:
            lines.append(f"{FLAGS[path]} is required: {message[len('missing: '):]}")
            continue
        flag = FLAGS.get(path) or next((f"{f} ({path})" for k, f in FLAGS.items() if path.startswith(k + ".")),
                                       path or "<top>")
        lines.append(f"{flag}: {message}")
    n = len(lines)
    return "\n".join([f"{n} problem{'s' * (n != 1)} in the command-line flags:", *(f"  {line}" for line in lines)])


def run(args) -> int:
    from ..backend import BackendError  # noqa: PLC0415
    from ..batch.config import ConfigError, MaskConfig, merge  # noqa: PLC0415
    from ..batch.guards import make_folders  # noqa: PLC0415
    from ..batch.pipeline import field_state, run_job  # noqa: PLC0415

    try:
        overrides = overrides_from_flags(args)
        if args.config:
            config = MaskConfig.read(args.config, overrides=overrides)
        elif overrides:
            config = MaskConfig(merge({}, overrides), source="command-line flags")
        else:
            print("gpumask: error: give a config file or flags (see gpumask mask --help)", file=sys.stderr)
            return 2
        job = config.field_job(args.name)
        state, why = field_state(job, args.overwrite)
        if args.dry_run:
            print(f"{job.name}: {state} ({why or 'complete'}); {job.shape[1]} x {job.shape[0]} px")
            for key, path in job.outputs.items():
                new = "" if Path(path).parent.is_dir() else " (folder to be created)"
                print(f"  {key:<18s}: {path}{new}")
            return 0
        if state == "conflict":
            raise FileExistsError(why)
        if state == "complete":
            print(f"{job.name}: complete, outputs from the same config in {job.manifest}; --overwrite rebuilds")
            return 0
        allowed = sorted({f for folders in config.output_folders().values() for f in folders})
        for folder in sorted({str(Path(p).parent) for p in job.outputs.values()}):
            make_folders(folder, allowed)
        outcome = run_job(job, overwrite=args.overwrite)
    except ConfigError as exc:
        print(f"gpumask: error: {exc if args.config else in_flag_terms(exc)}", file=sys.stderr)
        return 2
    except (BackendError, OSError, ValueError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    if outcome.status == "skipped":  # another run claimed or finished it meanwhile
        reason = outcome.stats.get("reason", "")
        print(f"{job.name}: {reason}", file=sys.stdout if reason.startswith("complete") else sys.stderr)
        return 0 if reason.startswith("complete") else 1
    if outcome.status != "done":
        print(f"gpumask: error: {job.name}: {outcome.error}", file=sys.stderr)
        return 1
    stats = outcome.stats
    print(f"{job.name}: {stats['shape'][1]} x {stats['shape'][0]} px, {stats['excluded_pixels']} excluded "
          f"({100 * stats['excluded_fraction']:.2f} %), {outcome.seconds:.3f} s")
    for key, path in outcome.outputs.items():
        print(f"  {key:<18s}: {path}")
    print(f"  {'manifest':<18s}: {job.manifest}")
    return 0
