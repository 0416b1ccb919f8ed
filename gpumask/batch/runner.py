"""Batches: many fields sharing one mask config, spread over GPUs and nodes.

A field list (YAML or CSV) has one entry per field::

    - name: crab                 # required; used in file names ({name})
      lon: 83.633                # map centre, deg (or ra/dec, glon/glat)
      lat: 22.0145
      frame: icrs                # frame of lon/lat (default: the config's)
      width: 5 deg               # geometry.width
      counts: crab/counts.fits   # significance.counts (also background, dataset)
      regions: crab/extra.reg    # more excluded regions for this field
      significance.threshold: 6  # any config key, by its dotted path
      run: 12345                 # anything else: a {run} value for templates

Every key of a field is available as ``{key}`` in the config's strings.

In CSV the columns are the keys (UTF-8, a byte-order mark allowed).  CSV values
stay the text they were when put into templates (``0007`` stays ``0007``, ``1e3``
stays ``1e3``); they are read as numbers only where the config expects a number
(positions, ``width``, ``binsz``, ``npix``, ``significance.threshold`` ...).  A
position sets ``geometry.skydir`` when the config has a geometry section or the
field gives ``width``/``npix``; otherwise the geometry comes from the field's
input maps and the position is only a value.  Relative paths in the list are
relative to its folder.  Every field is validated before any work (:func:`plan`),
with the checks of :mod:`gpumask.batch.config` (outputs inside their folder, never
an input, bounded names and YAML) across fields too: no field writes a file that
another field reads or writes, nor the config or the field list.  A field may not
set ``output.root``.

Executors (:func:`run_batch`):

* ``local``: one process, one device; on a GPU, fields of equal shapes go
  through the FFT/morphology steps as stacks (:func:`gpumask.batch.pipeline.run_jobs`);
* ``dask``: tasks of up to ``chunk`` fields on a dask.distributed cluster, an
  existing scheduler or a local one (``LocalCUDACluster``, one worker per GPU,
  when dask-cuda is installed and GPUs are visible; else a ``LocalCluster`` of
  single-threaded processes).  A worker that dies loses nothing: outputs are
  written atomically, a field is complete only once its manifest is written, and
  the scheduler reruns the lost task elsewhere (complete fields are skipped).

Array jobs: ``shard=(i, n)`` keeps the fields ``k`` with ``k % n == i``
(defaults from ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``).

Two batches on one folder (two shells, overlapping array jobs): each field is
computed once; a field another run is computing is skipped, reported as
"claimed by host:pid" (see the claims of :mod:`gpumask.batch.pipeline`, and their
limits on shared file systems).  A run first removes the temporary files that
killed writers left in its output folders (not a dry run).
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import re
import sys
import time
from pathlib import Path

from ..backend import gpu_devices
from ..sky.io import atomic_write_bytes
from .config import ConfigError, FieldJob, MaskConfig, load_yaml, merge
from .guards import MAX_YAML_NODES, check_name, file_key, job_files
from .pipeline import FieldOutcome, field_state, run_jobs
from .._progress import in_notebook, open_bar, progress_enabled
from .._utils import expand_user

__all__ = ["BatchError", "load_fields", "parse_shard", "shard_from_env", "plan", "run_batch", "Progress"]

_POSITION_KEYS = {("lon", "lat"): None, ("ra", "dec"): "icrs", ("glon", "glat"): "galactic"}
_POSITION_KEYS_FLAT = {k for pair in _POSITION_KEYS for k in pair}
_GEOMETRY_KEYS = ("width", "binsz", "npix")
_INPUT_KEYS = ("counts", "background", "dataset")
# config keys (last part of a dotted key) whose CSV text is read as a number
_NUMERIC_KEYS = {"lon", "lat", "ra", "dec", "glon", "glat", "width", "binsz", "npix", "dilation", "threshold",
                 "low", "connectivity", "correlation_radius", "radius", "psf", "min_radius", "scale"}
DASK_INSTALL = "pip install 'gpumask[dask]'  (dask.distributed; add dask-cuda for one worker per GPU)"


class BatchError(RuntimeError):
    """A batch that cannot start (bad executor options, missing extras)."""


# ----------------------------------------------------------------------------- fields


class _CsvRow(dict):
    """A field read from CSV: its values are text."""


def load_fields(path) -> tuple[list[dict], Path]:
    """The raw field entries of a YAML or CSV list, and the list's folder.

    CSV values are the text of their cells (stripped; empty cells left out).
    """
    path = expand_user(os.path.expandvars(os.fspath(path))).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"field list not found: {path}")
    if path.suffix.lower() in (".csv", ".tsv"):
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                return [
                    _CsvRow((k.strip(), v.strip()) for k, v in row.items()
                            if k and isinstance(v, str) and v.strip() != "")
                    for row in csv.DictReader(fh, dialect=dialect)
                ], path.parent
        except UnicodeDecodeError as exc:
            raise ConfigError([("", f"not UTF-8 text (byte {exc.start}): save it as UTF-8")], str(path)) from None
        except csv.Error as exc:
            raise ConfigError([("", f"not a valid CSV file: {exc}")], str(path)) from None
    raw = load_yaml(path, max_nodes=MAX_YAML_NODES, what="field list")
    if isinstance(raw, dict) and "fields" in raw:
        raw = raw["fields"]
    if not isinstance(raw, list):
        raise ConfigError([("", "a field list is a YAML list of mappings (or a mapping with 'fields:')")], str(path))
    return raw, path.parent


def _number(text):
    """CSV text as an int or float where it reads as one, else unchanged."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _field_overrides(entry, index, base_dir, problems, config_has_geometry=True):
    """``(name, config overrides, template values)`` of one field entry."""
    where = f"fields[{index}]"
    if not isinstance(entry, dict):
        problems.append((where, f"expected a mapping, got {type(entry).__name__}"))
        return None
    number = _number if isinstance(entry, _CsvRow) else (lambda v: v)
    entry = {str(k): v for k, v in entry.items()}
    values = {k: v for k, v in entry.items() if k != "name"}  # every column is a {key}
    name = entry.pop("name", None)
    if name is None:
        problems.append((f"{where}.name", "missing: every field needs a name"))
        return None
    name, problem = check_name(name, f"{where}.name")
    if problem:
        problems.append(problem)
        return None
    for key in entry:
        if key in _POSITION_KEYS_FLAT or key in _GEOMETRY_KEYS or key.rsplit(".", 1)[-1] in _NUMERIC_KEYS:
            entry[key] = number(entry[key])
    overrides = {}
    for (klon, klat), frame in _POSITION_KEYS.items():
        if klon in entry or klat in entry:
            if klon not in entry or klat not in entry:
                problems.append((f"{where}.{klat if klon in entry else klon}", f"missing: give both {klon} and {klat}"))
                continue
            overrides.setdefault("geometry", {})["skydir"] = [entry.pop(klon), entry.pop(klat)]
            field_frame = entry.pop("frame", frame) if frame is None else frame
            if field_frame is not None:
                overrides["geometry"]["skydir_frame"] = field_frame
    for key in _GEOMETRY_KEYS:
        if key in entry:
            overrides.setdefault("geometry", {})[key] = entry.pop(key)
    geometry = overrides.get("geometry", {})
    if not config_has_geometry and not any(k in geometry for k in _GEOMETRY_KEYS):
        # a position alone, with the geometry taken from the inputs: only a {value}
        overrides.pop("geometry", None)
    for key in _INPUT_KEYS:
        if key in entry:
            overrides.setdefault("significance", {})[key] = _absolute(entry.pop(key), base_dir)
    extra_regions = entry.pop("regions", None)
    for key in [k for k in entry if "." in k]:
        value = entry.pop(key)
        if key == "output.root":
            problems.append((f"{where}.{key}", "output.root is set by the config only, not by a field"))
            continue
        node, parts = overrides, key.split(".")
        for k, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append((f"{where}.{key}",
                                 f"{'.'.join(parts[:k + 1])} is not a section; a dotted key names a config key"))
                break
        else:
            node[parts[-1]] = value
    return name, overrides, extra_regions, values


def _absolute(value, base_dir):
    if not isinstance(value, str):
        return value  # refused by the config's validation, with its type
    text = value
    if "(" in text or "{" in text or "\0" in text:
        return text
    p = expand_user(os.path.expandvars(text))
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def plan(config_path, fields_path, *, overrides=None) -> list[FieldJob]:
    """Validate the config and every field; the resolved jobs, in list order.

    Raises
    ------
    ConfigError
        Every problem of the config and of every field, with key paths
        (``fields[3].significance.counts: file not found: ...``); nothing runs.
    """
    config = MaskConfig.read(config_path, overrides=overrides)  # the shared part, checked once
    entries, base_dir = load_fields(fields_path)
    folders = config.output_folders()
    problems, jobs, names = [], [], {}
    # every file of the batch: file key -> (field name or None, description, is_output)
    fields_file = expand_user(os.path.expandvars(os.fspath(fields_path))).resolve()
    files = {file_key(config.source): (None, "config file", False), file_key(fields_file): (None, "field list", False)}
    for index, entry in enumerate(entries):
        parsed = _field_overrides(entry, index, base_dir, problems, config.spec["geometry"] is not None)
        if parsed is None:
            continue
        name, field_overrides, extra_regions, values = parsed
        where = f"fields[{index}]"
        if name in names:
            problems.append((f"{where}.name", f"{name!r} is also the name of fields[{names[name]}]"))
            continue
        names[name] = index
        raw = merge(config.raw, field_overrides)
        if extra_regions is not None:
            extra = extra_regions if isinstance(extra_regions, list) else [extra_regions]
            raw["regions"] = list(raw.get("regions") or []) + [_absolute(r, base_dir) for r in extra]
        try:
            field_config = MaskConfig(raw, base_dir=config.base_dir, source=config.source)
            job = field_config.field_job(name, values, key_prefix=where, output_folders=folders)
        except ConfigError as exc:
            problems.extend((p if p.startswith(where) else f"{where}.{p}", m) for p, m in exc.problems)
            continue
        problems.extend(_shared_files(job, where, files))
        jobs.append(job)
    if not entries:
        problems.append(("fields", f"{fields_path} lists no field"))
    if problems:
        raise ConfigError(problems, source=f"{config_path} + {fields_path}")
    return jobs


def _shared_files(job, where, files):
    """Problems of ``job`` writing a file that another field (or the batch) reads or
    writes; records the job's files in ``files``."""
    problems = []
    for key_path, what, path, is_output in job_files(job):
        key = file_key(path)
        other = files.get(key)
        if other is None or other[0] == job.name:
            files.setdefault(key, (job.name, what, is_output))
            continue
        owner, other_what, other_output = other
        of = f" of field {owner!r}" if owner is not None else ""
        if is_output and other_output:
            problems.append((f"{where}.{key_path}", f"{path} is also written by field {owner!r} ({other_what}); "
                             "put {name} in the output file names"))
        elif is_output:
            problems.append((f"{where}.{key_path}", f"{path} is also the {other_what}{of}; writing it would "
                             "replace that input"))
        elif other_output:
            problems.append((f"{where}.{key_path}", f"{path} is written by field {owner!r} as {other_what}, "
                             "which would replace this input"))
    return problems


# ----------------------------------------------------------------------------- shards


def parse_shard(text) -> tuple[int, int]:
    """``"I/N"`` (1-based, as the user counts) -> ``(i, n)`` with 0 <= i < n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard {text!r}: give I/N, e.g. 2/8 (shard 2 of 8, counted from 1)")
    i, n = int(match[1]), int(match[2])
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard {text!r}: I must be between 1 and N (N >= 1)")
    return i - 1, n


def shard_from_env(environ=None):
    """``(i, n)`` of a SLURM array task, or None outside one.

    ``i = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` (the minimum defaults to 0)
    and ``n = SLURM_ARRAY_TASK_COUNT``; an array ``--array=1-8`` gives shards 0..7.
    """
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    try:
        task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
        first = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    except ValueError as exc:
        raise ValueError(f"SLURM array variables are not integers: {exc}") from None
    i = task - first
    if not 0 <= i < count:
        raise ValueError(
            f"SLURM_ARRAY_TASK_ID={task} with SLURM_ARRAY_TASK_MIN={first} and SLURM_ARRAY_TASK_COUNT={count} "
            "do not give a shard in 0..count-1; use a contiguous --array range or pass --shard I/N")
    return i, count


def select_shard(jobs, shard):
    if shard is None:
        return list(jobs)
    i, n = shard
    return [job for k, job in enumerate(jobs) if k % n == i]


# ----------------------------------------------------------------------------- progress


class Progress:
    """Progress of a batch: a one-line bar on a terminal, a ``tqdm`` widget in a
    Jupyter notebook (only failed fields are reported there when progress bars are
    off, see :func:`gpumask.set_progress`), one log line per field otherwise.

    Parameters
    ----------
    total : int
        Number of fields.
    stream : file, optional
        Where the bar or the log lines go; default ``sys.stderr``.
    tty : bool, optional
        Force the terminal bar (True) or log lines (False); default: the terminal
        bar when ``stream`` is a terminal, the widget in a notebook, else log lines.

    Examples
    --------
    >>> from gpumask.batch import Progress, plan, run_batch
    >>> jobs = plan("config.yaml", "fields.csv")  # doctest: +SKIP
    >>> report = run_batch(jobs, progress=Progress(len(jobs), tty=False))  # doctest: +SKIP
    """

    def __init__(self, total, stream=None, tty=None):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.tty = _isatty(self.stream) if tty is None else tty
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.t0 = time.perf_counter()
        self._widget = None
        # in a notebook: a widget, or (progress bars off) only the failures
        self._quiet = False
        if tty is None and not self.tty and stream is None and in_notebook():
            if progress_enabled():
                self._widget = open_bar(total, "fields", unit="field", delay=0)
            else:
                self._quiet = True

    @property
    def finished(self):
        return sum(self.counts.values())

    def update(self, outcome: FieldOutcome):
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        elapsed = time.perf_counter() - self.t0
        if self._quiet:
            if outcome.status == "failed":
                self.stream.write(f"{outcome.name}: {outcome.error}\n")
            return
        if self._widget is not None:
            self._widget.update(1)
            self._widget.set_postfix_str(f"done {self.counts['done']}  skipped {self.counts['skipped']}  "
                                         f"failed {self.counts['failed']}")
            if outcome.status == "failed":
                self.stream.write(f"{outcome.name}: {outcome.error}\n")
            return
        if self.tty:
            width = 30
            fill = int(width * self.finished / max(self.total, 1))
            rate = self.counts["done"] / elapsed if elapsed > 0 else 0.0
            left = self.total - self.finished
            eta = f"{left / rate:.0f} s" if rate > 0 else "?"
            line = (f"\r[{'#' * fill}{'.' * (width - fill)}] {self.finished}/{self.total}  done "
                    f"{self.counts['done']}  skipped {self.counts['skipped']}  failed {self.counts['failed']}  "
                    f"{rate:.1f} fields/s  ETA {eta} ")
            self.stream.write(line)
            if outcome.status == "failed":
                self.stream.write(f"\n  {outcome.name}: {outcome.error}\n")
        else:
            if outcome.status == "done":
                detail = f"{outcome.seconds:.2f} s"
            else:
                detail = outcome.error or outcome.stats.get("reason") or "complete"
            self.stream.write(f"[{self.finished}/{self.total}] {outcome.name} {outcome.status}: {detail}\n")
        self.stream.flush()

    def close(self):
        if self._widget is not None:
            self._widget.close()
            self._widget = None
        elif self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


# ----------------------------------------------------------------------------- executors


def _run_chunk(job_dicts, overwrite, backend, stack):
    """A dask task: run some fields in the worker's process; outcomes as dicts."""
    jobs = [FieldJob(**d) for d in job_dicts]
    return [o.as_dict() for o in run_jobs(jobs, overwrite=overwrite, backend=backend, stack=stack)]


def _gpu_count():
    return len(gpu_devices())


def make_client(scheduler=None, workers=None):
    """A dask.distributed client: to ``scheduler`` if given, else to a new local
    cluster (one worker per GPU with dask-cuda, else ``workers`` processes).
    Returns ``(client, cluster)``; the cluster is None for an existing scheduler."""
    try:
        from distributed import Client, LocalCluster  # noqa: PLC0415
    except ImportError:
        raise BatchError(f"--executor dask needs dask.distributed, which is not installed: {DASK_INSTALL}") from None
    if scheduler:
        return Client(scheduler), None
    n_gpu = _gpu_count()
    if n_gpu:
        try:
            from dask_cuda import LocalCUDACluster  # noqa: PLC0415
        except ImportError:
            LocalCUDACluster = None  # noqa: N806
        if LocalCUDACluster is not None:
            cluster = LocalCUDACluster(n_workers=workers or n_gpu, threads_per_worker=1)
            return Client(cluster), cluster
    cluster = LocalCluster(n_workers=workers or max(1, (os.cpu_count() or 2) // 2), threads_per_worker=1,
                           processes=True, dashboard_address=":0")
    return Client(cluster), cluster


def _chunks(jobs, chunk):
    """Runs of up to ``chunk`` jobs of equal input shape (so they can stack)."""
    by_shape = {}
    for job in jobs:
        by_shape.setdefault(job.inputs_shape or job.shape, []).append(job)
    out = []
    for group in by_shape.values():
        out.extend(group[k : k + chunk] for k in range(0, len(group), chunk))
    return out


def _run_dask(jobs, client, *, overwrite, backend, chunk, stack, on_outcome):
    from distributed import as_completed  # noqa: PLC0415

    futures = {}
    for part in _chunks(jobs, chunk):
        future = client.submit(_run_chunk, [j.as_dict() for j in part], overwrite, backend, stack, pure=False)
        futures[future] = part
    outcomes = []
    for future in as_completed(list(futures)):
        part = futures[future]
        try:
            results = [FieldOutcome(**d) for d in future.result()]
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated worker deaths
            results = [FieldOutcome(j.name, "failed", error=f"{type(exc).__name__}: {exc}") for j in part]
        for outcome in results:
            outcomes.append(outcome)
            on_outcome(outcome)
    order = {job.name: k for k, job in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: order[o.name])


def run_batch(jobs, *, executor="local", overwrite=False, backend=None, scheduler=None, workers=None,
              chunk=4, stack=None, progress=None, client=None) -> dict:
    """Run ``jobs`` (from :func:`plan`, already sharded) and return the report.

    The report: ``{"executor", "started", "seconds", "counts": {done, skipped,
    failed}, "fields": [outcome dicts]}``.
    """
    if executor not in ("local", "dask"):
        raise BatchError(f"unknown executor {executor!r}; choose local or dask")
    if chunk < 1:
        raise BatchError(f"--chunk must be at least 1, got {chunk}")
    if client is not None and (scheduler or workers):
        raise BatchError("give either client= or scheduler=/workers=, not both")
    if executor == "local" and (scheduler or workers):
        raise BatchError("--scheduler and --workers need --executor dask")
    progress = progress or Progress(len(jobs))
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    info = {}
    created = _make_output_folders(jobs)
    if created:
        info["created_folders"] = created
    removed = _remove_stale_temp_files(jobs)
    if removed:
        info["removed_temp_files"] = [str(p) for p in removed]
    if executor == "local":
        outcomes = run_jobs(jobs, overwrite=overwrite, backend=backend, stack=stack, on_outcome=progress.update)
    else:
        own = client is None
        cluster = None
        if own:
            client, cluster = make_client(scheduler, workers)
        try:
            info["workers"] = len(client.scheduler_info()["workers"])
            outcomes = _run_dask(jobs, client, overwrite=overwrite, backend=backend, chunk=chunk, stack=stack,
                                 on_outcome=progress.update)
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    progress.close()
    counts = {"done": 0, "skipped": 0, "failed": 0}
    for outcome in outcomes:
        counts[outcome.status] += 1
    return {
        "executor": executor,
        **info,
        "started": started,
        "seconds": round(time.perf_counter() - t0, 3),
        "counts": counts,
        "fields": [o.as_dict() for o in outcomes],
    }


def _make_output_folders(jobs):
    """Create the missing output folders of validated ``jobs`` (:func:`plan` checked that
    every output lies inside its allowed folder); the folders created."""
    from .guards import make_folders  # noqa: PLC0415

    created = []
    for folder in sorted({os.path.dirname(p) for job in jobs for p in job.outputs.values()}):
        created += make_folders(folder)
    return created


def _remove_stale_temp_files(jobs):
    """The temporary files of killed writers, removed from the jobs' output folders."""
    from ..sky.io import remove_stale_temp_files  # noqa: PLC0415

    folders = {}
    for job in jobs:
        for path in [*job.outputs.values(), str(job.manifest)]:
            folders.setdefault(os.path.dirname(path), None)
    removed = []
    for folder in folders:
        removed += remove_stale_temp_files(folder)
    return removed


def write_report(report, path):
    """Write the report JSON atomically."""
    atomic_write_bytes(path, json.dumps(report, indent=2).encode(), overwrite=True)


def dry_run(jobs, overwrite=False):
    """``[(job, state, reason)]``: what a run would do, without doing it."""
    return [(job, *field_state(job, overwrite)) for job in jobs]
