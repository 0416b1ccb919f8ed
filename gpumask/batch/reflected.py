"""Reflected-region backgrounds over a field list: the runner of ``gpumask reflected``.

A field list (CSV, a header row, one row per (target, pointing))::

    name,target,pointing_ra,pointing_dec,events
    crab_a,"icrs;circle(83.63,22.01,0.11)",83.63,22.51,run_a.fits
    crab_b,"icrs;circle(83.63,22.01,0.11)",83.63,21.51,run_b.fits
    psr,"icrs;circle(84.1,22.3,0.1)",83.63,22.51,run_a.fits

``target`` is a ds9 region string (quote it: it holds commas), the pointing is in
deg (ICRS), ``events`` a FITS event list (``EVENTS`` HDU, ``RA``/``DEC`` in deg,
``ENERGY`` when energy bins are asked for), relative to the list's folder, or
empty (only the off regions are written).  :func:`plan_reflected` validates the
whole list before any work and names the row, the column and the value of every
problem.

:func:`run_reflected` sends every pending row through one
:meth:`~gpumask.ReflectedRegionsFinder.run_many` call and counts the events with
one :meth:`~gpumask.ReflectedRegionsBackgroundEstimator.run_many` call, rows
sharing an events file forming one observation.  Per row it writes, atomically,
``{name}_off.reg`` (ds9), ``{name}_reflected.ecsv`` (when events are given) and
last the manifest ``{name}_reflected.json`` that marks the row complete (the job
hash of the row, the options and the inputs' sizes and times; the sha256 of each
output).  Resuming, claims and conflicts follow :mod:`gpumask.batch.pipeline`:
a row whose manifest matches and whose outputs are intact is skipped; outputs of
this same row without a manifest (a killed run) are redone; other existing files
(not carrying this row's job hash) are refused unless ``overwrite``.

May import: :mod:`gpumask.background` and everything below (it is in the batch
layer).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord

from .._utils import expand_user
from ..errors import GpumaskWarning
from ..sky.io import atomic_write_bytes, remove_stale_temp_files
from .config import ConfigError
from .guards import check_name, file_key, folder_problem, inside, make_folders, path_problem, show
from .pipeline import FieldOutcome, _claim, _read_manifest, _sha256, decide_state

__all__ = ["ReflectedRow", "parse_energy_edges", "plan_reflected", "reflected_state", "run_reflected",
           "default_report_path", "folder_of"]

COLUMNS = ("name", "target", "pointing_ra", "pointing_dec", "events")
REQUIRED = ("name", "target", "pointing_ra", "pointing_dec")
_TAG = re.compile(rb"gpumask_job: ?([0-9a-f]{16,64})")


@dataclasses.dataclass
class ReflectedRow:
    """One validated row of a field list: what it reads and writes, and its job hash.

    ``outputs`` maps ``"off"`` (and ``"counts"`` when ``events`` is given) to the
    absolute paths of the row's files; ``manifest`` is its manifest.  It has the
    attributes :mod:`gpumask.batch.pipeline` needs for claims (``name``,
    ``manifest``, ``job_hash``).
    """

    index: int
    name: str
    target: str
    ra: float
    dec: float
    events: str | None
    outputs: dict
    manifest: str
    job_hash: str = ""
    region: object = None

    def describe(self) -> dict:
        """The row as JSON-able values (for manifests and reports).

        Returns
        -------
        dict
            ``name``, ``target``, ``pointing_ra``, ``pointing_dec``, ``events``.

        Examples
        --------
        >>> row = ReflectedRow(0, "a", "icrs;circle(1,2,0.1)", 1.0, 2.5, None, {}, "a_reflected.json")
        >>> row.describe()["pointing_dec"]
        2.5
        """
        return {"name": self.name, "target": self.target, "pointing_ra": self.ra, "pointing_dec": self.dec,
                "events": self.events}


def parse_energy_edges(text):
    """An energy axis from ``"0.1,1,10 TeV"`` (comma-separated edges, a unit, TeV by default).

    Parameters
    ----------
    text : str
        Increasing positive edges separated by commas, optionally followed by a unit.

    Returns
    -------
    gpumask.sky.axes.MapAxis
        The energy axis (log interpolation).

    Raises
    ------
    ValueError
        Naming the text and what is accepted.

    Examples
    --------
    >>> axis = parse_energy_edges("0.1, 1, 10 TeV")
    >>> axis.nbin, str(axis.edges.unit)
    (2, 'TeV')
    """
    import astropy.units as u  # noqa: PLC0415

    from ..sky.axes import MapAxis  # noqa: PLC0415

    match = re.fullmatch(r"\s*([^A-Za-z]*?)\s*([A-Za-z][\w ]*)?\s*", str(text))
    try:
        unit = u.Unit(match[2].strip()) if match and match[2] else u.TeV
        edges = [float(v) for v in match[1].split(",")] if match else []
        u.Quantity(1, unit).to(u.TeV)
        ok = len(edges) >= 2 and all(math.isfinite(e) and e > 0 for e in edges) and all(
            b > a for a, b in zip(edges, edges[1:]))
    except (ValueError, TypeError, u.UnitsError):
        ok = False
    if not ok:
        raise ValueError(f"--energy-edges {show(text)}: give two or more increasing positive edges separated "
                         "by commas and an energy unit, e.g. '0.1,1,10 TeV'")
    return MapAxis.from_energy_edges(edges, unit=unit)


# ----------------------------------------------------------------------------- planning


def _read_rows(path):
    """``(rows as dicts, header)`` of a CSV field list; extra cells go under ``None``."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = [(reader.line_num, row) for row in reader]
            return rows, [h.strip() for h in (reader.fieldnames or [])]
    except UnicodeDecodeError as exc:
        raise ConfigError([("", f"not UTF-8 text (byte {exc.start}): save it as UTF-8")], str(path)) from None
    except csv.Error as exc:
        raise ConfigError([("", f"not a valid CSV file: {exc}")], str(path)) from None


def _events_problem(path, need_energy):
    """Why the FITS file ``path`` is not a usable event list, or None (headers only)."""
    from astropy.io import fits  # noqa: PLC0415

    try:
        with fits.open(path, memmap=True) as hdul:
            if "EVENTS" not in hdul:
                return f"{path} has no EVENTS HDU (HDUs: {[h.name for h in hdul]})"
            names = [c.upper() for c in getattr(hdul["EVENTS"], "columns", None).names or []]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return f"{path} cannot be read as FITS: {exc}"
    missing = [c for c in ("RA", "DEC") + (("ENERGY",) if need_energy else ()) if c not in names]
    if missing:
        why = " (needed by --energy-edges)" if missing == ["ENERGY"] else ""
        return f"{path}: the EVENTS table has no {', '.join(missing)} column{why}; columns: {names}"
    return None


def _input_stamp(path):
    st = os.stat(path)
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def plan_reflected(fields_path, out_dir, *, options=None, exclusion_mask=None, energy=False) -> list[ReflectedRow]:
    """Validate a field list as a whole; the rows, in list order.

    Parameters
    ----------
    fields_path : str or path
        The CSV field list (see the module docstring).
    out_dir : str or path
        Folder of the outputs (created before the first write when missing).
    options : dict, optional
        What the job hash covers besides the row (finder arguments, energy edges).
    exclusion_mask : str or path, optional
        The exclusion mask file (its size and time enter the job hash).
    energy : bool, optional
        Energy bins are asked for: event files need an ``ENERGY`` column.

    Returns
    -------
    list of ReflectedRow

    Raises
    ------
    ConfigError
        Every problem of every row (``row 3 (line 4), column target: ...``); nothing runs.

    Examples
    --------
    >>> rows = plan_reflected("fields.csv", "out")  # doctest: +SKIP
    """
    fields_path = expand_user(os.path.expandvars(os.fspath(fields_path))).resolve()
    if not fields_path.is_file():
        raise FileNotFoundError(f"field list not found: {fields_path}")
    out_dir = os.path.realpath(expand_user(os.fspath(out_dir)))
    base = fields_path.parent
    problems = []
    problem = folder_problem(out_dir)
    if problem:
        problems.append(("--out", problem))
    entries, header = _read_rows(fields_path)
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        problems.append(("header", f"unknown column{'s' * (len(unknown) > 1)} {', '.join(map(show, unknown))}; "
                         f"the columns are {', '.join(COLUMNS)}"))
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        problems.append(("header", f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}"))
    if unknown or missing or not entries:
        if not entries and not missing:
            problems.append(("rows", f"{fields_path} lists no row"))
        raise ConfigError(problems, str(fields_path))
    inputs = {file_key(fields_path): "the field list"}
    if exclusion_mask is not None:
        inputs[file_key(exclusion_mask)] = "the exclusion mask"
    common = {"options": options or {},
              "exclusion_mask": None if exclusion_mask is None else {"path": os.path.realpath(exclusion_mask),
                                                                     **_input_stamp(exclusion_mask)}}
    rows, names, events_checked, pointings = [], {}, {}, {}
    for k, (line, entry) in enumerate(entries, start=1):
        where = f"row {k} (line {line})"
        n_before = len(problems)
        if entry.get(None):
            problems.append((where, f"{len(entry[None])} more cells than the {len(header)} columns: quote "
                             "the target, it holds commas (\"icrs;circle(83.63,22.01,0.11)\")"))
            continue
        cell = {c: (entry.get(c) or "").strip() for c in COLUMNS}
        name, bad = check_name(cell["name"], f"{where}, column name")
        if bad:
            problems.append(bad)
        elif name in names:
            problems.append((f"{where}, column name", f"{show(name)} is also the name of row {names[name]}"))
        else:
            names[name] = k
        region = _region(cell["target"], f"{where}, column target", problems)
        ra_dec = [_degrees(cell[c], f"{where}, column {c}", c, problems) for c in ("pointing_ra", "pointing_dec")]
        events = None
        if cell["events"]:
            p = expand_user(os.path.expandvars(cell["events"]))
            events = os.path.realpath(p if p.is_absolute() else base / p)
            if events not in events_checked:
                why = None if os.path.isfile(events) else f"file not found: {events}"
                events_checked[events] = why or _events_problem(events, energy)
                inputs[file_key(events)] = f"the events file of row {k}"
            if events_checked[events]:
                problems.append((f"{where}, column events", f"{show(cell['events'])}: {events_checked[events]}"))
            elif None not in ra_dec:
                first = pointings.setdefault(events, (k, ra_dec))
                if first[1] != ra_dec:
                    problems.append((f"{where}, columns pointing_ra/pointing_dec",
                                     f"({ra_dec[0]}, {ra_dec[1]}) differs from row {first[0]}'s pointing "
                                     f"({first[1][0]}, {first[1][1]}) for the same events file {events}"))
        if len(problems) > n_before:
            continue
        outputs = {"off": os.path.join(out_dir, f"{name}_off.reg")}
        if events is not None:
            outputs["counts"] = os.path.join(out_dir, f"{name}_reflected.ecsv")
        manifest = os.path.join(out_dir, f"{name}_reflected.json")
        for path in [*outputs.values(), manifest]:
            bad = path_problem(path, output=True)
            if bad or not inside(os.path.realpath(path), out_dir):
                problems.append((f"{where}, column name", bad or f"{path} lies outside {out_dir}"))
                break
            if file_key(path) in inputs:
                problems.append((f"{where}, column name", f"{path} is {inputs[file_key(path)]}; writing it "
                                 "would replace that input"))
                break
        row = ReflectedRow(k, name, cell["target"], ra_dec[0], ra_dec[1], events, outputs, manifest,
                           region=region)
        stamp = None if events is None else _input_stamp(events)
        text = json.dumps({"row": row.describe(), "events": stamp, **common}, sort_keys=True, default=str)
        row.job_hash = hashlib.sha256(text.encode()).hexdigest()[:32]
        rows.append(row)
    if problems:
        raise ConfigError(problems, str(fields_path))
    return rows


def _region(text, where, problems):
    from ..masks.regions import make_region  # noqa: PLC0415

    if not text:
        problems.append((where, "empty: give a ds9 region, e.g. \"icrs;circle(83.63,22.01,0.11)\""))
        return None
    try:
        region = make_region(text)
    except (ValueError, TypeError) as exc:
        problems.append((where, f"{show(text)}: {exc}"))
        return None
    if isinstance(region, (list, tuple)) or not hasattr(region, "to_pixel"):
        problems.append((where, f"{show(text)}: give one sky region (circle, ellipse, box, polygon, annulus)"))
        return None
    return region


def _degrees(text, where, column, problems):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    limit = 90.0 if column == "pointing_dec" else math.inf
    if not math.isfinite(value) or abs(value) > limit:
        what = "a finite number of degrees" + (" in [-90, 90]" if limit == 90 else "")
        problems.append((where, f"{show(text)}: expected {what}"))
        return None
    return value


# ----------------------------------------------------------------------------- state


def _written_by(path):
    """The job hash a reflected output carries in its header, or None."""
    try:
        with open(path, "rb") as fh:
            found = _TAG.search(fh.read(65536))
    except OSError:
        return None
    return found[1].decode() if found else None


def reflected_state(row, overwrite=False) -> tuple[str, str]:
    """``("complete", "")``, ``("todo", reason)`` or ``("conflict", reason)``, as
    :func:`gpumask.batch.pipeline.field_state` for mask fields.

    Parameters
    ----------
    row : ReflectedRow
    overwrite : bool, optional
        Redo complete rows and replace files in the way.

    Returns
    -------
    tuple of str
        The state and why.

    Examples
    --------
    >>> reflected_state(rows[0])  # doctest: +SKIP
    ('todo', 'new')
    """
    existing = [p for p in [*row.outputs.values(), row.manifest] if os.path.lexists(p)]
    return decide_state(existing, row.manifest, row.job_hash, lambda: _read_manifest(row), _written_by,
                        overwrite, other="for another row, options or inputs", fix="redo it",
                        mine="for this row")


# ----------------------------------------------------------------------------- running


class _Precomputed:
    """A finder answering the estimator with off regions found beforehand."""

    def __init__(self, offs):
        self.offs = offs

    def run_many(self, regions, centers, exclusion_mask=None):
        return self.offs


def _load_events(path):
    from astropy.table import Table  # noqa: PLC0415

    return Table.read(path, hdu="EVENTS")


def _count(rows, offs, axis):
    """``{row name: table}`` from one estimator call (observation = events file);
    rows whose events fail get the exception instead."""
    from ..background.reflected_estimator import ReflectedRegionsBackgroundEstimator  # noqa: PLC0415

    groups = {}
    for row in rows:
        if row.events is not None:
            groups.setdefault(row.events, []).append(row)
    out, obs = {}, []
    for path, members in groups.items():
        try:
            obs.append((path, _load_events(path), members))
        except Exception as exc:  # noqa: BLE001 - lands on the rows of that file
            out.update((r.name, exc) for r in members)
    targets = list(dict.fromkeys(r.target for _, _, members in obs for r in members))

    def estimate(part):
        t_index = {t: j for j, t in enumerate(targets)}
        pair_offs = [[] for _ in range(len(part) * len(targets))]
        for i, (_, _, members) in enumerate(part):
            for r in members:
                pair_offs[i * len(targets) + t_index[r.target]] = offs[r.name]
        estimator = ReflectedRegionsBackgroundEstimator(region_finder=_Precomputed(pair_offs))
        observations = [(table, SkyCoord(m[0].ra, m[0].dec, unit="deg")) for _, table, m in part]
        with warnings.catch_warnings():  # pairs nobody asked for have no off regions on purpose
            warnings.filterwarnings("ignore", message=".*no off region found", category=GpumaskWarning)
            table = estimator.run_many(observations, {t: t for t in targets}, energy_axis=axis)
        for i, (path, _, members) in enumerate(part):
            for r in members:
                sel = (table["obs_index"] == i) & (table["target_index"] == t_index[r.target])
                sub = table[sel]
                sub.remove_columns(["obs_index", "target_index"])
                sub["target"] = [r.name] * len(sub)
                out[r.name] = sub

    if obs:
        try:
            estimate(obs)
        except Exception:  # noqa: BLE001 - redo one observation at a time so the error lands on its rows
            for one in obs:
                try:
                    estimate([one])
                except Exception as exc:  # noqa: BLE001
                    out.update((r.name, exc) for r in one[2])
    return out


def _reg_text(row, regions):
    from regions import Regions  # noqa: PLC0415

    text = Regions(list(regions)).serialize(format="ds9") or "# Region file format: DS9 astropy/regions\n"
    first, _, rest = text.partition("\n")
    return f"{first}\n# gpumask_job: {row.job_hash} row: {row.name}\n{rest}"


def _ecsv_text(row, table, options):
    table.meta.update({"gpumask_job": row.job_hash, "name": row.name, "on_region": row.target,
                       "pointing_ra": row.ra, "pointing_dec": row.dec, "events": row.events,
                       "options": options})
    buf = io.StringIO()
    table.write(buf, format="ascii.ecsv")
    return buf.getvalue()


def _write(row, offs, table, options, t0):
    texts = {"off": _reg_text(row, offs)}
    if "counts" in row.outputs:
        texts["counts"] = _ecsv_text(row, table, options)
    written = {}
    for key, text in texts.items():
        path = row.outputs[key]
        atomic_write_bytes(path, text.encode(), overwrite=True)
        written[key] = {"path": path, "bytes": os.path.getsize(path), "sha256": _sha256(path)}
    stats = {"n_off_regions": len(offs)}
    if table is not None:
        stats.update(counts=int(np.sum(table["counts"])), counts_off=int(np.sum(table["counts_off"])))
    from .. import __version__  # noqa: PLC0415

    seconds = round(time.perf_counter() - t0, 4)
    manifest = {"name": row.name, "job_hash": row.job_hash, "row": row.describe(), "options": options,
                "inputs": {} if row.events is None else {row.events: _input_stamp(row.events)},
                "outputs": written, **stats, "seconds": seconds, "gpumask_version": __version__,
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_bytes(row.manifest, json.dumps(manifest, indent=2).encode(), overwrite=True)
    return FieldOutcome(row.name, "done", seconds, outputs={k: v["path"] for k, v in written.items()},
                        stats=stats)


def _failed(row, exc, t0):
    return FieldOutcome(row.name, "failed", round(time.perf_counter() - t0, 4), error=f"{type(exc).__name__}: {exc}")


def run_reflected(rows, finder, *, exclusion_mask=None, energy_axis=None, overwrite=False, options=None,
                  progress=None) -> dict:
    """Find the off regions and count the events of ``rows``; write their outputs.

    Parameters
    ----------
    rows : list of ReflectedRow
        From :func:`plan_reflected` (already sharded).
    finder : gpumask.ReflectedRegionsFinder
        Called once (``run_many``) for all pending rows.
    exclusion_mask : Map, optional
        Boolean, True = usable.
    energy_axis : MapAxis, optional
        Energy bins of the counts.
    overwrite : bool, optional
        Redo complete rows and replace files in the way.
    options : dict, optional
        Recorded in the manifests and ECSV headers.
    progress : gpumask.batch.Progress, optional
        Told of each row's outcome.

    Returns
    -------
    dict
        The report: ``started``, ``seconds``, ``counts`` (done, skipped,
        failed), ``totals`` (off regions, on and off counts of the rows done)
        and ``fields`` (one outcome dict per row, in row order).

    Examples
    --------
    >>> report = run_reflected(rows, ReflectedRegionsFinder())  # doctest: +SKIP
    >>> report["counts"]  # doctest: +SKIP
    {'done': 4, 'skipped': 0, 'failed': 0}
    """
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    outcomes, held, todo = {}, {}, []

    def report(outcome):
        outcomes[outcome.name] = outcome
        claim = held.pop(outcome.name, None)
        if claim is not None:
            claim.release()
        if progress is not None:
            progress.update(outcome)

    info = {}
    for folder in sorted({os.path.dirname(r.manifest) for r in rows}):
        created = make_folders(folder)
        if created:
            info.setdefault("created_folders", []).extend(created)
        removed = remove_stale_temp_files(folder)
        if removed:
            info.setdefault("removed_temp_files", []).extend(str(p) for p in removed)
    try:
        for row in rows:
            state, why = reflected_state(row, overwrite)
            if state == "complete":
                report(FieldOutcome(row.name, "skipped", stats={"reason": "complete"}))
                continue
            if state == "conflict":
                report(FieldOutcome(row.name, "failed", error=f"FileExistsError: {why}"))
                continue
            claim = _claim(row)
            if isinstance(claim, str):
                report(FieldOutcome(row.name, "skipped", stats={"reason": f"claimed by {claim}"}))
                continue
            held[row.name] = claim
            state, why = reflected_state(row, overwrite)  # another run may have finished it meanwhile
            if state != "todo" and not overwrite:
                report(FieldOutcome(row.name, "skipped", stats={"reason": "complete (finished by another run)"})
                       if state == "complete" else FieldOutcome(row.name, "failed", error=f"FileExistsError: {why}"))
                continue
            todo.append(row)
        _run_todo(todo, finder, exclusion_mask, energy_axis, options or {}, report, t0)
    finally:
        for claim in held.values():
            claim.release()
    ordered = [outcomes[r.name] for r in rows]
    counts = {"done": 0, "skipped": 0, "failed": 0}
    totals = {"off_regions": 0, "counts": 0, "counts_off": 0}
    for o in ordered:
        counts[o.status] += 1
        if o.status == "done":
            totals["off_regions"] += o.stats["n_off_regions"]
            totals["counts"] += o.stats.get("counts", 0)
            totals["counts_off"] += o.stats.get("counts_off", 0)
    if progress is not None:
        progress.close()
    return {**info, "started": started, "seconds": round(time.perf_counter() - t0, 3), "counts": counts,
            "totals": totals, "fields": [o.as_dict() for o in ordered]}


def _run_todo(todo, finder, exclusion_mask, energy_axis, options, report, t0):
    if not todo:
        return
    try:
        found = finder.run_many([r.region for r in todo], SkyCoord([r.ra for r in todo], [r.dec for r in todo],
                                                                    unit="deg", frame="icrs"), exclusion_mask)
    except Exception as exc:  # noqa: BLE001 - one call for all rows: they all fail
        for row in todo:
            report(_failed(row, exc, t0))
        return
    offs = {r.name: list(o) for r, o in zip(todo, found)}
    tables = _count(todo, offs, energy_axis)
    for row in todo:
        t1 = time.perf_counter()
        table = tables.get(row.name)
        try:
            if isinstance(table, Exception):
                raise table
            report(_write(row, offs[row.name], table, options, t1))
        except Exception as exc:  # noqa: BLE001 - one row's failure must not stop the others
            report(_failed(row, exc, t1))


def default_report_path(out_dir, shard=None) -> str:
    """``OUT/gpumask-reflected-<time>[-shard-I-of-N][-K].json``, a name not taken yet.

    Parameters
    ----------
    out_dir : str or path
        The output folder.
    shard : tuple of int, optional
        ``(i, n)``, 0-based.

    Returns
    -------
    str

    Examples
    --------
    >>> default_report_path("out", (0, 2))  # doctest: +SKIP
    'out/gpumask-reflected-20250101T120000-shard-1-of-2.json'
    """
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    suffix = "" if shard is None else f"-shard-{shard[0] + 1}-of-{shard[1]}"
    path, k = os.path.join(out_dir, f"gpumask-reflected-{stamp}{suffix}.json"), 1
    while os.path.lexists(path):
        k += 1
        path = os.path.join(out_dir, f"gpumask-reflected-{stamp}{suffix}-{k}.json")
    return path


def folder_of(path) -> Path:
    """The real absolute folder ``path`` names (``~`` and ``$VAR`` expanded).

    Parameters
    ----------
    path : str or path

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> folder_of("/tmp").is_absolute()
    True
    """
    return Path(os.path.realpath(expand_user(os.path.expandvars(os.fspath(path)))))
