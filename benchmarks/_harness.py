"""Shared helpers of the benchmark scripts: timing, backends, number formatting, report.

The scripts import it as ``from _harness import ...``: run as
``python benchmarks/bench_x.py``, the script's folder is on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import gpumask
from gpumask.backend import cupy_status

#: shared data (catalogs, datasets): GPUMASK_TEST_DATA or ../shared/data beside the repository
DATA = Path(os.environ.get("GPUMASK_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# ----------------------------------------------------------------------------- timing


def _timed(func, sync):
    """Call ``func`` once and time it.

    Parameters
    ----------
    func : callable
        Called without arguments.
    sync : callable or None
        Called after ``func``, before the clock stops (device synchronisation).

    Returns
    -------
    tuple
        ``(seconds, result of func)``.
    """
    t0 = time.perf_counter()
    out = func()
    if sync:
        sync()
    return time.perf_counter() - t0, out


def measure(func, sync=None, target=1.0, max_repeat=30, min_repeat=1, first_counts=False,
            before_first=None, keep_times=True):
    """Time ``func``: a first call, then repeats until they add up to ``target`` s.

    Parameters
    ----------
    func : callable
        Called without arguments.
    sync : callable or None
        Device synchronisation, called before the clock stops.
    target : float
        Seconds the repeats should add up to.
    max_repeat : int
        At most this many timed calls.
    min_repeat : int
        At least this many timed calls (one at the least).
    first_counts : bool
        The first call is a sample (nothing to compile or warm), so a slow one is
        not repeated; otherwise it is reported apart only.
    before_first : callable or None
        Run, untimed, before the first call (cache clearing).
    keep_times : bool
        Whether the returned timing lists every call's time under ``"times"``.

    Returns
    -------
    tuple
        ``(timing, last result)``, ``timing`` a dict with ``first`` (s), ``best``
        (the minimum, s), ``n`` (timed calls) and ``times``.
    """
    if before_first:
        before_first()
    first, out = _timed(func, sync)
    times = [first] if first_counts else []
    while len(times) < max_repeat and (sum(times) < target or len(times) < min_repeat):
        del out  # free the previous result before the next call
        t, out = _timed(func, sync)
        times.append(t)
    timing = {"first": first, "best": min(times), "n": len(times)}
    if keep_times:
        timing["times"] = times
    return timing, out


def measure_interleaved(funcs, before_each, sync=None, target=1.0, max_repeat=30, min_repeat=1,
                        before_first=None):
    """Time the variants ``funcs`` round-robin, so that the drift of a shared machine hits them alike.

    One first call each, then rounds of one call per variant until every variant's
    repeats add up to ``target`` s and number at least ``min_repeat`` (at most
    ``max_repeat``).

    Parameters
    ----------
    funcs : dict
        ``{name: func}``, each called without arguments.
    before_each : dict
        ``{name: callable}`` (a missing or None entry: nothing), run untimed before
        every timed call of that variant after its first.
    sync : callable or None
        Device synchronisation, called before the clock stops.
    target, max_repeat, min_repeat
        As in `measure`.
    before_first : callable or None
        Run, untimed, before each variant's first call (cache clearing).

    Returns
    -------
    tuple
        ``({name: timing}, {name: last result})``, timings as in `measure`.
    """
    timings, outs = {}, {}
    for name, func in funcs.items():
        if before_first:
            before_first()
        t, outs[name] = _timed(func, sync)
        timings[name] = {"first": t, "times": []}
    while True:
        pending = [k for k, v in timings.items() if len(v["times"]) < max_repeat
                   and (sum(v["times"]) < target or len(v["times"]) < min_repeat)]
        if not pending:
            break
        for name in pending:
            outs[name] = None  # free the previous result (4000x4000: ~1 GB)
            if before_each.get(name):
                before_each[name]()
            t, outs[name] = _timed(funcs[name], sync)
            timings[name]["times"].append(t)
    for v in timings.values():
        v.update(best=min(v["times"]), n=len(v["times"]))
    return timings, outs


def _sync(backend):
    """Device synchronisation for ``backend``: ``None`` unless it is cupy."""
    if backend != "cupy":
        return None
    import cupy

    return cupy.cuda.Device().synchronize


def backends():
    """Backends to time and why cupy is (not) among them.

    Returns
    -------
    tuple
        ``(["numpy"] or ["numpy", "cupy"], cupy status text)``.
    """
    ok, why = cupy_status()
    return (["numpy", "cupy"] if ok else ["numpy"]), why


def log(*args):
    """Print progress to stderr, flushed."""
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- report


def _t(x):
    """Format seconds: three significant digits, whole numbers from 1000 on."""
    return f"{x:.3g}" if x < 1000 else f"{x:.0f}"


def _r(x):
    """Format a ratio: one decimal below 10, whole numbers from 10 on."""
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _e(x):
    """Format a small difference as ``1.2e-06``; ``-`` for None or non-finite."""
    return "-" if x is None or not np.isfinite(x) else f"{x:.1e}"


def md_head(header):
    """Markdown table head: the header row and the separator row.

    Returns
    -------
    list of str
        Two lines, to which `md_row` lines are appended.
    """
    return [md_row(header), "|" + "---|" * len(header)]


def md_row(cells):
    """One markdown table row from the cell texts."""
    return "| " + " | ".join(cells) + " |"


def progress_parts(timings, gammapy, predicted_format=".1f"):
    """Progress-log fragments for the gpumask timings and the gammapy cell of a case.

    Parameters
    ----------
    timings : dict
        ``{name: timing}`` (`measure`); each gives ``name best (n=N)``.
    gammapy : dict or None
        gammapy's timing, ``dict(skipped=True, predicted=s)`` or None (not run).
    predicted_format : str
        Format of the predicted time of a case that was run.

    Returns
    -------
    list of str
    """
    parts = [f"{k} {v['best']:.4f}s (n={v['n']})" for k, v in timings.items()]
    if gammapy is None:
        parts.append("gammapy n/a")
    elif gammapy["skipped"]:
        parts.append(f"gammapy ~{gammapy['predicted']:.1f}s (extrapolated)")
    else:
        pred = f", predicted {gammapy['predicted']:{predicted_format}}s" if gammapy["predicted"] else ""
        parts.append(f"gammapy {gammapy['best']:.3f}s (n={gammapy['n']}{pred})")
    return parts


def ref_cell(ref, note=""):
    """Table cell of a reference timing that may have been skipped and extrapolated.

    Parameters
    ----------
    ref : dict or None
        ``None`` (not run), ``dict(skipped=True, predicted=s)`` or a timing with
        ``best``.
    note : str
        Appended to the text of a skipped (extrapolated) cell.

    Returns
    -------
    tuple
        ``(text, seconds or None, mark)``, ``mark`` being ``"~"`` for an
        extrapolation (to prefix the ratios computed from it).
    """
    if ref is None:
        return "n/a", None, ""
    if ref["skipped"]:
        return f"~{_t(ref['predicted'])}{note}", ref["predicted"], "~"
    return _t(ref["best"]), ref["best"], ""


def gpu_name():
    """Name of the first GPU gpumask sees, or ``"none"``."""
    info = gpumask.info()
    return info["gpus"][0]["name"] if info["gpus"] else "none"


def machine_line(gpu, versions, cupy=None):
    """The report's environment line: machine, cores, GPU, numpy and ``versions``.

    Parameters
    ----------
    gpu : str
        GPU name (`gpu_name`).
    versions : dict
        ``{package: version}`` listed after numpy, in order.
    cupy : str or None
        cupy status appended as ``; cupy: ...`` unless None.
    """
    libs = "".join(f", {name} {version}" for name, version in versions.items())
    line = (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; GPU: {gpu}; "
            f"numpy {np.__version__}{libs}")
    return line if cupy is None else f"{line}; cupy: {cupy}"


def first_calls_line(first_calls):
    """``"name 1.23 s, ..."`` from ``{name: seconds}``."""
    return ", ".join(f"{k} {v:.2f} s" for k, v in first_calls.items())


def raw_record(result, total, args, gpu, **versions):
    """The JSON record: ``result`` plus runtime, arguments and environment.

    Parameters
    ----------
    result : dict
        What the script's ``run`` returned.
    total : float
        Total runtime (s).
    args : argparse.Namespace
        The parsed command line.
    gpu : str
        GPU name.
    **versions
        Package versions recorded after numpy's.
    """
    return dict(result, total_runtime_s=total, args=vars(args), machine=platform.machine(),
                cores=os.cpu_count(), gpu=gpu, numpy=np.__version__, **versions,
                python=platform.python_version())


def write_report(out, text, raw=None):
    """Write the markdown ``text`` to ``out`` and ``raw`` (if given) as JSON next to it; print both.

    Parameters
    ----------
    out : str or Path
        Markdown file; the JSON goes to the same name with ``.json``.
    text : str
        The markdown report, also printed.
    raw : dict or None
        JSON-serialisable raw numbers; None: no JSON file.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if raw is None:
        print(text)
        print(f"written to {out}")
        return
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print(text)
    print(f"written to {out} and {out.with_suffix('.json')}")
