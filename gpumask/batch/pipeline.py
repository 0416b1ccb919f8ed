"""Run resolved mask jobs (:class:`~gpumask.batch.config.FieldJob`): one field, or many
with their FFT and morphology steps stacked.

For every field: its geometry (from the config or from its input maps), the
region and catalog exclusions (:func:`gpumask.exclusion_mask`), the significance
exclusion (``ExcessMapEstimator`` -> ``sqrt_ts`` -> threshold/hysteresis ->
dilation) and the final dilation; the outputs are written atomically and a JSON
manifest last, which marks the field complete.

Provenance (``explain``, on by default): every part is built with
``explain=True`` and the significance exclusion gets one component per blob of
each field (the FFT stays stacked; thresholds and dilation run per field), so the
mask file carries the EXPLAIN_* HDUs (:meth:`Map.write`) and the manifest
``"top_components"``: up to :data:`TOP_COMPONENTS` rows of
``mask.provenance.summary()`` (index, kind, name, rule, npix, npix_alone,
solid_angle_deg2), largest excluded area first.  That costs a few small counted
host copies per field (``host_copies_before_writing``); ``explain: false`` runs
without them.

Stacking: fields whose significance inputs have the same shape and pixel size go
through one batched FFT (:meth:`ExcessMapEstimator.run_many`) and one morphology
call on a ``(n, ny, nx)`` stack, so small maps fill the GPU.  Results are those of
the fields run one by one.  Data stays on the device until the FITS writing.

Resuming: :func:`field_state` tells whether a field is complete (a manifest with
the same job hash whose outputs are intact), to do, or in conflict with files it
must not overwrite.

Claims: two runs on one folder (two shells, overlapping array jobs, a dask task
rerun while the first is alive) compute each field once.  Before a field is
loaded, :func:`run_jobs` takes an exclusive, non-blocking ``flock`` on a claim
file next to its manifest (``.NAME_mask.claim``, holding host, pid and time), then
looks at the field's state again: a field another run finished meanwhile is
skipped ("complete"; with ``overwrite``: a manifest of this job that changed since
this run's first look), a field whose claim is held is skipped and reported as
"claimed by host:pid".  The claim file is removed when the field's outcome is
known.  The lock dies with its process, so the claim of a killed run (SIGKILL,
OOM, a lost node) is taken over at once, whatever the file's content and age; no
stale claim needs cleaning.  Nothing depends on claims for correctness: outputs
are written atomically and a manifest marks a complete field, so without them a
field is at worst computed twice.

Shared file systems: on Linux, NFS v3 (with lockd) and v4 clients turn ``flock``
into server-side locks, so claims hold between hosts; a client that dies keeps
its locks until the server reclaims them (the NFSv4 lease, ~90 s by default;
NFSv3 after the client reboots), and those fields are skipped meanwhile (rerun
the batch to finish them).  Mounts with ``nolock`` or ``local_lock=all``, and
some parallel file systems (Lustre without ``flock`` mount option: ``ENOSYS``),
give locks that other hosts do not see or no locks: a run then works unclaimed
(or claims only between processes of one host) and two hosts may compute the same
field twice, each writing identical outputs atomically.  Without ``fcntl``
(Windows) there are no claims.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import socket
import time
import traceback
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from ..backend import count_transfers, memory_available, resolve_backend, to_host
from ..catalog import SourceCatalog
from ..masks.catalog_mask import exclusion_mask
from ..masks.morphology import _erode_data, _make_footprint, binary_erode
from ..masks.significance import exclusion_from_significance
from ..sky.datasets import MapDataset, read_dataset
from ..sky.geom import WcsGeom
from ..sky.io import atomic_write_bytes, read_map
from ..sky.maps import Map
from ..sky.provenance import MaskProvenance
from ..stats.excess import ExcessMapEstimator

try:
    import fcntl
except ImportError:  # Windows: no claims
    fcntl = None

__all__ = ["FieldOutcome", "field_state", "run_jobs", "run_job", "TOP_COMPONENTS"]

#: rows of the provenance summary a manifest lists as ``"top_components"``
TOP_COMPONENTS = 10

# default budget of one stack (numpy); on a GPU, a quarter of the free memory
DEFAULT_STACK_BYTES = 256 * 2**20
_OUTPUT_ORDER = ("sqrt_ts", "significance_mask", "mask")


@dataclasses.dataclass
class FieldOutcome:
    """What happened to one field: ``status`` is "done", "skipped" or "failed"."""

    name: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    outputs: dict = dataclasses.field(default_factory=dict)
    stats: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- state


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(job):
    try:
        return json.loads(Path(job.manifest).read_text())
    except (OSError, ValueError):
        return None


def _intact(manifest) -> bool:
    for entry in manifest.get("outputs", {}).values():
        path = Path(entry["path"])
        if not path.is_file() or path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
            return False
    return True


def _written_by(path):
    """The job hash in a gpumask output's header (None for other files)."""
    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                meta = hdu.header.get("META")
                if meta:
                    tag = json.loads(meta).get("gpumask_job")
                    return tag[len(_JOB_TAG):] if isinstance(tag, str) and tag.startswith(_JOB_TAG) else tag
    except (OSError, ValueError):
        return None
    return None


def field_state(job, overwrite=False) -> tuple[str, str]:
    """``("complete", "")``, ``("todo", reason)`` or ``("conflict", reason)``.

    Complete: the manifest has this job's hash and every output it lists is
    intact (size and sha256).  Conflict (without ``overwrite``): outputs exist
    that another config wrote, or files gpumask did not write.  Outputs of this
    same job without a manifest (a run killed between two writes) are to do.
    The job hash covers the config and the field, not the content of the input
    files: inputs replaced in place need ``overwrite``.
    """
    existing = [p for p in [*job.outputs.values(), str(job.manifest)] if Path(p).exists()]
    return decide_state(existing, job.manifest, job.job_hash, lambda: _read_manifest(job), _written_by,
                        overwrite, other="by another config", fix="rebuild or change output.mask",
                        mine="by this job")


def decide_state(existing, manifest_path, job_hash, read_manifest, written_by, overwrite, *, other, fix, mine):
    """The resume rule shared by :func:`field_state` and the reflected runner.

    ``existing``: the outputs and manifest found on disk; ``read_manifest()``: the
    manifest (or None); ``written_by(path)``: the job hash an output carries.
    ``other``, ``fix`` and ``mine`` word the conflict messages.
    """
    if not existing:
        return "todo", "new"
    if overwrite:
        return "todo", "--overwrite"
    manifest = read_manifest()
    if manifest is not None and manifest.get("job_hash") == job_hash and _intact(manifest):
        return "complete", ""
    if manifest is not None and manifest.get("job_hash") != job_hash:
        return "conflict", (
            f"{manifest_path} was written {other} (job {manifest.get('job_hash')}, now "
            f"{job_hash}); pass --overwrite to {fix}")
    foreign = [p for p in existing if str(p) != str(manifest_path) and written_by(p) != job_hash]
    if foreign:
        return "conflict", f"{foreign[0]} exists and was not written {mine}; pass --overwrite to replace it"
    return "todo", "incomplete earlier run"


# ----------------------------------------------------------------------------- claims


def _claim_path(job) -> Path:
    manifest = Path(job.manifest)
    return manifest.with_name(f".{manifest.stem}.claim")


class _Claim:
    """A claim held on a field (an exclusive flock on its claim file); ``release``
    removes the file, then drops the lock."""

    def __init__(self, path=None, fd=None):
        self.path, self.fd = path, fd

    def release(self):
        if self.fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None


def _claim(job):
    """Claim ``job`` for this process: a :class:`_Claim`, or the text naming the run
    that holds it (``"host:pid"``)."""
    if fcntl is None:
        return _Claim()
    path = _claim_path(job)
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            return holder
        except OSError:  # a file system without locks (ENOLCK, ENOSYS): run unclaimed
            os.close(fd)
            return _Claim()
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            info = {"host": socket.gethostname(), "pid": os.getpid(), "job_hash": job.job_hash,
                    "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            return _Claim(path, fd)
        os.close(fd)  # its holder removed the file meanwhile: claim the new one
    return "another run"


def _holder(fd):
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        return f"{info['host']}:{info['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"


def _manifest_stamp(job):
    try:
        st = os.stat(job.manifest)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def _after_claim(job, overwrite, stamp):
    """The outcome of a field found finished (or in conflict) once claimed, else None."""
    state, why = field_state(job, overwrite)
    meanwhile = FieldOutcome(job.name, "skipped", stats={"reason": "complete (finished by another run meanwhile)"})
    if not overwrite:
        if state == "complete":
            return meanwhile
        if state == "conflict":
            return FieldOutcome(job.name, "failed", error=f"FileExistsError: {why}")
        return None
    if _manifest_stamp(job) != stamp:
        manifest = _read_manifest(job)
        if manifest is not None and manifest.get("job_hash") == job.job_hash and _intact(manifest):
            return meanwhile
    return None


# ----------------------------------------------------------------------------- inputs


@functools.lru_cache(maxsize=32)
def _catalog(path, fmt, mtime_ns):
    return SourceCatalog.read(path, format=fmt)


def _geometry(spec):
    lon, lat = spec["skydir"]
    skydir = SkyCoord(lon, lat, unit="deg", frame=spec["skydir_frame"] or spec["frame"])
    kwargs = {"npix": spec["npix"]} if spec["npix"] is not None else {"width": spec["width"]}
    return WcsGeom.create(skydir=skydir, binsz=spec["binsz"], frame=spec["frame"], proj=spec["proj"], **kwargs)


def _dataset(sig, be):
    if sig["dataset"] is not None:
        return read_dataset(sig["dataset"], backend=be)
    counts = read_map(sig["counts"], backend=be)
    background = read_map(sig["background"], backend=be)
    if background.geom != counts.geom:
        raise ValueError(f"{sig['background']}: background geometry differs from the counts map {sig['counts']}")
    return MapDataset(counts, background=background)


class _Field:
    """A job with its inputs loaded on the device and its intermediate maps."""

    def __init__(self, job, be):
        self.job = job
        t0 = time.perf_counter()
        self.dataset = None if job.significance is None else _dataset(job.significance, be)
        if job.geometry is not None:
            self.geom = _geometry(job.geometry)
        else:
            self.geom = self.dataset.counts.geom.to_image()
        self.sqrt_ts = None
        self.significance_mask = None
        self.n_nonfinite = {}  # NaN/Inf input pixels left out of the significance sums
        self.transfers = 0
        self.load_seconds = time.perf_counter() - t0

    def stack_key(self):
        if self.dataset is None:
            return None
        geom = self.dataset.counts.geom
        return geom.data_shape, tuple(np.round(geom.pixel_scales.deg, 12))


# ----------------------------------------------------------------------------- steps


def _significance(fields, be, max_stack_bytes):
    """sqrt_ts and the significance exclusion of fields sharing a stack key."""
    sig = fields[0].job.significance
    estimator = ExcessMapEstimator(f"{sig['correlation_radius']} deg", dtype=np.dtype(sig["dtype"]))
    results = estimator.run_many([f.dataset for f in fields], max_batch_bytes=max_stack_bytes)
    xp = be.xp
    maps = []
    for res in results:
        m = res["sqrt_ts"]
        if m.data.ndim == 3 and m.data.shape[0] == 1:  # one energy group
            m = Map.from_geom(m.geom.to_image(), data=m.data[0])
        maps.append(m)
    rule = dict(low=sig["low"], nan=sig["nan"], connectivity=sig["connectivity"])
    plain = [i for i, f in enumerate(fields) if not f.job.explain]
    masks = [None] * len(fields)
    if plain:  # one stacked threshold and dilation
        stack = xp.stack([maps[i].data for i in plain])
        usable = exclusion_from_significance(stack, sig["threshold"], **rule)
        if sig["dilation"]:
            fp = _make_footprint(f"{sig['dilation']} deg", "disk", maps[0].geom, False, "dilation")
            usable = _erode_data(be, usable, fp, True)
        for k, i in enumerate(plain):
            masks[i] = Map.from_geom(maps[i].geom, data=usable[k])
    for i, field in enumerate(fields):  # with provenance: the blobs of each field
        if field.job.explain:
            masks[i] = exclusion_from_significance(maps[i], sig["threshold"], explain=True, **rule)
            if sig["dilation"]:
                masks[i] = binary_erode(masks[i], f"{sig['dilation']} deg")
    for field, m, mask, res in zip(fields, maps, masks, results):  # nothing here can fail half-way
        field.sqrt_ts, field.significance_mask, field.dataset = m, mask, None
        field.n_nonfinite = dict(res.meta.get("n_nonfinite", {}))


def _exclusion(field, be):
    """Regions, catalogs and significance combined (True = usable), then dilated."""
    job, geom = field.job, field.geom
    mask = None
    explain = job.explain
    if job.regions:
        mask = geom.region_mask(job.regions, inside=False, backend=be, explain=explain)
    for cat in job.catalogs:
        catalog = _catalog(cat["file"], cat["format"], os.stat(cat["file"]).st_mtime_ns)
        rule = {k: cat[k] for k in ("radius", "psf", "scale", "min_radius") if cat[k] is not None}
        for key in ("radius", "psf", "min_radius"):
            if key in rule:
                rule[key] = f"{rule[key]} deg"
        part = exclusion_mask(geom, catalog, backend=be, explain=explain, **rule)
        mask = part if mask is None else mask & part
    sig = field.significance_mask
    if sig is not None:
        if sig.geom != geom:  # the significance inputs on another geometry
            sig = _resample(sig, geom)
        mask = sig if mask is None else mask & sig
    if mask is None:
        mask = Map.from_geom(geom, data=be.xp.ones(geom.data_shape, dtype=bool))
    if explain and mask.provenance is None:
        mask._explained(MaskProvenance.from_mask(mask))
    if job.dilation:
        mask = binary_erode(mask, f"{job.dilation} deg")
    return mask


def _resample(mask, geom):
    """A significance mask (and its label maps, nearest pixel alike) on ``geom``."""
    out = mask.interp_to_geom(geom, method="nearest", fill_value=True)
    prov = mask.provenance
    if prov is not None:
        l1, l2 = (prov.label_map(second).interp_to_geom(geom, fill_value=0).data for second in (False, True))
        out._explained(MaskProvenance(out.geom, l1, l2, prov._cols, prov.frame))
    return out


def _top_components(mask):
    """The manifest's ``"top_components"``: the largest excluded areas first."""
    t = mask.provenance.summary(top=TOP_COMPONENTS)
    area = t["solid_angle"].to(u.deg**2).value
    rows = []
    for k, row in enumerate(t):
        rows.append({"index": int(row["index"]), "kind": str(row["kind"]), "name": str(row["name"]),
                     "rule": str(row["rule"]), "npix": int(row["npix"]), "npix_alone": int(row["npix_alone"]),
                     "solid_angle_deg2": float(area[k])})
    return rows


# ----------------------------------------------------------------------------- writing

# gammapy's Map.read turns every META string into a Quantity and fails (ValueError)
# on one that starts with a number but is no quantity ("6c12ab..."): such values
# get a prefix that astropy refuses with TypeError, which gammapy skips
_JOB_TAG = "job "


def _gammapy_safe(text):
    return f"field {text}" if text[:1].isdigit() or text[:1] in "+-." else text



def _write(field, mask, be, transfers, clock_start):
    job = field.job
    meta = {"gpumask_field": _gammapy_safe(job.name), "gpumask_job": _JOB_TAG + job.job_hash}
    maps = {"mask": mask, "significance_mask": field.significance_mask, "sqrt_ts": field.sqrt_ts}
    written = {}
    for key in _OUTPUT_ORDER:  # the mask last: with it present, only the manifest is missing
        path = job.outputs.get(key)
        if path is None:
            continue
        src = maps[key]
        m = Map(src.geom, src.data, unit=src.unit, meta={**src.meta, **meta})._explained(src.provenance)
        m.write(path, overwrite=True)
        written[key] = {"path": path, "bytes": Path(path).stat().st_size, "sha256": _sha256(path)}
    n_excluded = int(to_host(be.xp.count_nonzero(~mask.data)))
    stats = {
        "shape": list(mask.geom.data_shape),
        "excluded_pixels": n_excluded,
        "excluded_fraction": n_excluded / mask.data.size,
        "host_copies_before_writing": transfers,
    }
    if any(field.n_nonfinite.values()):
        stats["nonfinite_input_pixels"] = field.n_nonfinite
    if job.explain and mask.provenance is not None:
        stats["top_components"] = _top_components(mask)
    seconds = time.perf_counter() - clock_start
    manifest = {
        "name": job.name,
        "job_hash": job.job_hash,
        "backend": be.name,
        "outputs": written,
        **stats,
        "seconds": round(seconds, 4),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    from .. import __version__  # noqa: PLC0415

    manifest["gpumask_version"] = __version__
    atomic_write_bytes(job.manifest, json.dumps(manifest, indent=2).encode(), overwrite=True)
    return FieldOutcome(job.name, "done", round(seconds, 4), outputs={k: v["path"] for k, v in written.items()},
                        stats=stats)


# ----------------------------------------------------------------------------- running


def _failed(job, exc, t0):
    return FieldOutcome(job.name, "failed", round(time.perf_counter() - t0, 4),
                        error=f"{type(exc).__name__}: {exc}",
                        stats={"traceback": traceback.format_exc(limit=6)})


def _finish(field, be, transfers_before, clock_start):
    """Combine, count host copies so far, write; the field's time runs from
    ``clock_start`` (a perf_counter value)."""
    with count_transfers() as transfers:
        mask = _exclusion(field, be)
    return _write(field, mask, be, transfers_before + transfers.calls, clock_start)


def _run_group(fields, be, max_stack_bytes):
    """Fields sharing a stack key, one outcome at a time as each field is written;
    falls back to one by one if the stacked step fails.

    A field's time is its loading, its share of the stacked step and its own
    combination and writing; its host copies count the whole stacked step (an
    upper bound; it is 0 when nothing leaves the device)."""
    t0 = time.perf_counter()
    stacked_ok = True
    with count_transfers() as transfers:
        if fields[0].dataset is not None:
            try:
                _significance(fields, be, max_stack_bytes)
            except Exception:  # noqa: BLE001 - redo one by one so the error lands on its field
                stacked_ok = False
    share = (time.perf_counter() - t0) / len(fields) if stacked_ok else 0.0
    for field in fields:
        t1 = time.perf_counter()
        try:
            copies = field.transfers + transfers.calls
            if field.sqrt_ts is None and field.dataset is not None:
                with count_transfers() as single:
                    _significance([field], be, max_stack_bytes)
                copies += single.calls
            outcome = _finish(field, be, copies, t1 - field.load_seconds - share)
        except Exception as exc:  # noqa: BLE001 - one field's failure must not stop the others
            outcome = _failed(field.job, exc, t1 - field.load_seconds - share)
        yield outcome


def run_jobs(jobs, *, overwrite=False, stack=None, max_stack_bytes=None, backend=None, on_outcome=None):
    """Run mask jobs in one process; returns one :class:`FieldOutcome` per job.

    Parameters
    ----------
    jobs : list of FieldJob
    overwrite : bool
        Rebuild complete fields and replace files in the way.
    stack : bool, optional
        Stack the significance steps of fields with equal input shapes.  Default:
        on a GPU, where it saves the per-call overhead of small maps; not on
        NumPy, where it measured no faster (benchmarks/bench_batch.py) and keeps
        a stack's inputs in memory at once.
    max_stack_bytes : int, optional
        Budget of one stacked FFT (default: 256 MiB on NumPy, a quarter of the
        free device memory on CuPy).
    backend : str, optional
        Overrides the jobs' backend.
    on_outcome : callable, optional
        Called with each outcome as soon as it is known (progress reporting).
    """
    outcomes, held, stamps = {}, {}, {}

    def report(outcome):
        outcomes[outcome.name] = outcome
        claim = held.pop(outcome.name, None)
        if claim is not None:
            claim.release()
        if on_outcome is not None:
            on_outcome(outcome)

    todo = []
    for job in jobs:
        state, why = field_state(job, overwrite)
        if state == "complete":
            report(FieldOutcome(job.name, "skipped", stats={"reason": "complete"}))
        elif state == "conflict":
            report(FieldOutcome(job.name, "failed", error=f"FileExistsError: {why}"))
        else:
            stamps[job.name] = _manifest_stamp(job)
            todo.append(job)
    try:
        _run_todo(todo, overwrite, stack, max_stack_bytes, backend, report, held, stamps)
    finally:
        for claim in held.values():
            claim.release()
    return [outcomes[job.name] for job in jobs]


def _run_todo(todo, overwrite, stack, max_stack_bytes, backend, report, held, stamps):
    """Claim, load and run the fields to do, grouping those that stack."""
    groups = {}
    for job in todo:
        t0 = time.perf_counter()
        try:
            claim = _claim(job)
        except OSError as exc:
            report(_failed(job, exc, t0))
            continue
        if isinstance(claim, str):
            report(FieldOutcome(job.name, "skipped", stats={"reason": f"claimed by {claim}"}))
            continue
        held[job.name] = claim
        finished = _after_claim(job, overwrite, stamps[job.name])
        if finished is not None:
            report(finished)
            continue
        try:
            be = resolve_backend(backend or job.backend)
            if max_stack_bytes is None:
                budget = DEFAULT_STACK_BYTES if be.name == "numpy" else (memory_available(be) or 0) // 4
            else:
                budget = max_stack_bytes
            with count_transfers() as loading:
                field = _Field(job, be)
            field.transfers = loading.calls
        except Exception as exc:  # noqa: BLE001
            report(_failed(job, exc, t0))
            continue
        key = field.stack_key()
        if key is None or not (be.is_gpu if stack is None else stack):
            key = ("single", job.name)
        group = groups.setdefault((be.name, key), ([], be, budget))[0]
        group.append(field)
        if key[0] == "single" or _group_full(group, budget):
            for outcome in _run_group(*groups.pop((be.name, key))):
                report(outcome)
    for group in groups.values():
        for outcome in _run_group(*group):
            report(outcome)


def _group_full(group, budget):
    """A stack is run once its inputs reach a quarter of the budget (the FFT and
    the maps need the rest)."""
    first = group[0].dataset.counts
    per_field = 4 * first.data.size * 8
    return len(group) * per_field >= budget // 4


def run_job(job, *, overwrite=False, backend=None) -> FieldOutcome:
    """Run one job (see :func:`run_jobs`)."""
    return run_jobs([job], overwrite=overwrite, stack=False, backend=backend)[0]
