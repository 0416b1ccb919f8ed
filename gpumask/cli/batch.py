"""``gpumask batch FIELDS --config CONFIG``: many fields, one config, on one GPU, a
dask cluster or a SLURM array (see :mod:`gpumask.batch`)."""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser(
        "batch",
        help="run a field list (YAML/CSV) with one config: local, dask or array jobs",
        description="Run every field of FIELDS with CONFIG. Complete fields are skipped (resumable); "
        "a failed field is reported and the others go on; the exit status is 1 when any field failed, "
        "2 when the config or field list has problems (nothing is run then). Two runs on one folder share "
        "the fields: each is computed once (a field another run is computing is skipped as claimed).",
    )
    p.add_argument("fields", help="field list: YAML (list of mappings) or CSV (one row per field)")
    p.add_argument("--config", required=True, help="the mask config shared by the fields")
    p.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local: one process, fields of equal shape stacked (default); dask: a cluster")
    p.add_argument("--scheduler", help="dask scheduler address (tcp://host:8786); default: a local cluster")
    p.add_argument("--workers", type=int, help="local dask cluster size (default: one per GPU, else cores/2)")
    p.add_argument("--chunk", type=int, default=4, help="fields per dask task (default 4)")
    p.add_argument("--shard", help="I/N: run the fields k with k %% N == I-1 (default: from "
                   "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else all)")
    p.add_argument("--overwrite", action="store_true", help="rebuild complete fields and replace files")
    p.add_argument("--dry-run", action="store_true", help="validate, list what would run, run nothing")
    p.add_argument("--report", help="report JSON (default: gpumask-batch-<time>[-shard-I-of-N].json in the "
                   "folder of output.mask before its first {placeholder}, e.g. out/ for out/{name}_mask.fits; "
                   "a run that only skipped complete fields writes no report unless --report is given)")
    p.add_argument("--backend", help="numpy | cupy | auto (default: the config's)")
    p.add_argument("--stack", choices=("auto", "on", "off"), default="auto",
                   help="stack the FFT/morphology steps of equal-shape fields: auto = on a GPU only "
                   "(no gain measured on NumPy)")
    p.add_argument("--progress", choices=("auto", "bar", "log"), default="auto",
                   help="a progress bar (terminal) or log lines (default: bar on a terminal)")
    return p


def run(args) -> int:
    from ..backend import BackendError  # noqa: PLC0415
    from ..batch.config import ConfigError  # noqa: PLC0415
    from ..batch.runner import (  # noqa: PLC0415
        BatchError,
        Progress,
        dry_run,
        parse_shard,
        plan,
        run_batch,
        select_shard,
        shard_from_env,
        write_report,
    )

    try:
        shard = parse_shard(args.shard) if args.shard else shard_from_env()
        jobs = plan(args.config, args.fields)
        mine = select_shard(jobs, shard)
        if args.dry_run:
            rows = dry_run(mine, args.overwrite)
            for job, state, why in rows:
                print(f"{job.name:<24s} {state:<9s} {why or '':<28s} {job.outputs['mask']}")
            todo = sum(state == "todo" for _, state, _ in rows)
            print(f"{len(mine)} fields{_shard_text(shard)}: {todo} to run, "
                  f"{sum(s == 'complete' for _, s, _ in rows)} complete, {sum(s == 'conflict' for _, s, _ in rows)} "
                  "in conflict")
            return 0
        report_path = args.report or _default_report(args.config, shard)
        _check_report_path(report_path, jobs, args)
        tty = {"auto": None, "bar": True, "log": False}[args.progress]
        progress = Progress(len(mine), tty=tty)
        report = run_batch(mine, executor=args.executor, overwrite=args.overwrite, backend=args.backend,
                           scheduler=args.scheduler, workers=args.workers, chunk=args.chunk,
                           stack={"auto": None, "on": True, "off": False}[args.stack], progress=progress)
    except (ConfigError, BatchError, BackendError, OSError, ValueError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    report.update({"config": str(Path(args.config).resolve()), "fields_file": str(Path(args.fields).resolve()),
                   "shard": None if shard is None else f"{shard[0] + 1}/{shard[1]}", "total_fields": len(jobs)})
    c = report["counts"]
    if args.report or c["done"] or c["failed"]:
        from ..batch.guards import make_folders  # noqa: PLC0415

        make_folders(os.path.dirname(os.path.abspath(report_path)))
        write_report(report, report_path)
        where = f"report {report_path}"
    else:
        where = "nothing done, no report written (--report PATH writes one)"
    claimed = sum(str(f["stats"].get("reason", "")).startswith("claimed by") for f in report["fields"])
    why = f"{c['skipped'] - claimed} complete, {claimed} claimed by another run" if claimed else "complete"
    print(f"{len(mine)} fields{_shard_text(shard)} in {report['seconds']:.1f} s: {c['done']} done, "
          f"{c['skipped']} skipped ({why}), {c['failed']} failed; {where}")
    for field in report["fields"]:
        if field["status"] == "failed":
            print(f"  failed {field['name']}: {field['error']}", file=sys.stderr)
    return 1 if c["failed"] else 0


def _check_report_path(report_path, jobs, args):
    """Refuse a report that exists (without --overwrite) or that is a file of the batch."""
    from ..batch.guards import file_key, job_files, path_problem  # noqa: PLC0415

    report_path = os.path.abspath(report_path)
    problem = path_problem(report_path, output=True)
    if problem:
        raise ValueError(f"--report {problem}")
    key = file_key(report_path)
    batch_files = [(args.config, "the config file"), (args.fields, "the field list")]
    batch_files += [(path, f"the {what} of field {job.name!r}") for job in jobs for _, what, path, _ in job_files(job)]
    for path, what in batch_files:
        if file_key(path) == key:
            raise ValueError(f"--report {report_path} is {what}; give another --report")
    if Path(report_path).exists() and not args.overwrite:
        raise FileExistsError(f"report {report_path} exists; give another --report or pass --overwrite")


def _shard_text(shard):
    return "" if shard is None else f" (shard {shard[0] + 1}/{shard[1]})"


def _default_report(config_path, shard):
    """``gpumask-batch-<time>[-shard-I-of-N][-K].json`` next to the outputs: in the folder
    output.mask names before its first placeholder (``out/`` for ``out/{name}_mask.fits``);
    ``-K`` (2, 3, ...) when a report of the same second exists."""
    from ..batch.config import MaskConfig  # noqa: PLC0415

    folder = MaskConfig.read(config_path).output_folders()["mask"][0]
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    suffix = "" if shard is None else f"-shard-{shard[0] + 1}-of-{shard[1]}"
    path, k = os.path.join(folder, f"gpumask-batch-{stamp}{suffix}.json"), 1
    while os.path.lexists(path):  # a second run within the same second
        k += 1
        path = os.path.join(folder, f"gpumask-batch-{stamp}{suffix}-{k}.json")
    return path
