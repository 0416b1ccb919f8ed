"""Batch benchmarks: many fields through ``gpumask.batch`` (local stacked vs one at
a time, dask workers) against the per-field chain a gammapy 2.1 user writes today.

Inputs: ``gpumask.batch.examples.write_example_fields(tmp, n=200, npix=250)``
(``--fields``, ``--npix``; ``--quick``: 40 fields of 128x128): 200 simulated
fields along the galactic plane, 250x250 px CAR galactic at 0.02 deg, Poisson
counts on a flat background of 2 counts/px with a bright source at the centre and
3 random Gaussian ones, a catalog of the simulated sources and the config
(region ``galactic;circle({lon},{lat},0.1)``, catalog circles of 0.15 deg,
significance: correlation radius 0.1 deg, hysteresis threshold 5 / low 3,
dilation 0.06 deg; outputs: mask and sqrt_ts FITS, plus a JSON manifest per
field).  The inputs are written once, untimed, in a temporary folder.

* **plan**: ``plan(config, fields)`` (validation of every field: config merge,
  files, FITS shapes, memory check), and the resume check that every run does
  first (``field_state(job)`` for every job: manifests read and outputs
  sha256-hashed, timed after the local runs, with their outputs on disk).  Both
  are best of ``--repeat`` calls after a first one.
* **local**: ``run_batch(jobs, executor="local", stack=True|False,
  overwrite=True, backend=B)`` for B = numpy, and cupy when
  ``gpumask.backend.cupy_status()`` says it is usable.  ``overwrite=True``, so
  every repeat reads, computes and writes every field.  A warm-up call per variant
  (imports, FFT plans, kernel compilation), then ``--repeat`` rounds of one call
  per variant, stacked and one-at-a-time interleaved; a cell is the best round.
  On cupy the device is synchronised before the clock stops (the FITS writing
  already copies to the host).  Check: the masks (exact) and the sqrt_ts (max
  |diff|) of ``--check-fields`` evenly spaced fields and of the gammapy subset
  (10 + 20 evenly spaced, 28 distinct with the defaults), read back with
  ``gpumask.read_map`` after the last call of each variant, stacked vs one at a
  time (and cupy vs numpy).
* **dask**: the same jobs with ``executor="dask"`` and ``client=`` a
  ``distributed.LocalCluster(n_workers=W, threads_per_worker=1, processes=True,
  dashboard_address=":0")`` for W in ``--workers`` (default 1,2), task chunks of
  ``--chunks`` fields (default 1,8; ``stack=True``, so a chunk's fields are
  stacked in the worker), backend ``--dask-backend`` (numpy).  Cluster start-up
  and one warm-up run per cluster are untimed; then ``--repeat`` rounds over the
  chunk sizes, best round per cell.  Speedup: against the local one-at-a-time run
  of the same backend.  Check: the masks and sqrt_ts of the ``--check-fields``
  fields against the local stacked ones.  dask sets ``OMP_NUM_THREADS=1`` in its
  workers and gpumask's NumPy FFTs follow it (``convolution.fft_threads``), so W
  workers run W FFT threads (recorded per worker in the JSON).
  With a GPU the report notes whether dask-cuda (``LocalCUDACluster``, which
  ``make_client`` would pick) is installed; this script always uses LocalCluster.
* **gammapy 2.1** (``--no-gammapy`` to skip; skipped if not importable): per field,
  for ``--gammapy-fields`` evenly spaced fields (default 20, 5 with ``--quick``):
  ``Map.read`` of counts and background; the maps are 2-D images and gammapy's
  ``ExcessMapEstimator`` needs an energy axis, so both are put on a one-bin energy
  cube (``geom.to_cube([MapAxis.from_energy_bounds(1, 10 TeV, nbin=1)])``);
  ``MapDataset(counts=..., background=...)``;
  ``ExcessMapEstimator(correlation_radius="0.1 deg", selection_optional=[]).run(ds)
  ["sqrt_ts"]``; gammapy has no hysteresis, so the **plain threshold**
  ``sqrt_ts.data < 5`` (it does slightly less work than gpumask's hysteresis and
  excludes fewer pixels) then ``Map.from_geom(...).binary_erode("0.06 deg")``;
  ``geom.region_mask([CircleSkyRegion, ...], inside=False)`` with the field's 0.1 deg
  circle and 0.15 deg circles on the catalog sources within half a map diagonal +
  0.15 deg of the centre (the catalog is read once, untimed, as gpumask caches it
  per process); combine; ``Map.write(..., overwrite=True)`` of the mask and the
  sqrt_ts (gpumask writes both too).  One warm-up field, then ``--repeat`` passes
  over the subset, best pass divided by the number of fields.  Ratio: gammapy per
  field / gpumask local stacked numpy per field.  Check against gpumask's stacked
  outputs: sqrt_ts max |diff|; pixels excluded by gammapy only, split into the
  band of the dilation radius (3 px) along the map edge, which gammapy's
  ``binary_erode`` erodes (scipy's ``border_value=0``) and gpumask keeps usable, and
  the interior (expected 0: the plain threshold region lies inside the hysteresis
  one); pixels excluded by gpumask only (the hysteresis growth).

    python benchmarks/bench_batch.py [--quick] [--fields 200] [--npix 250]
        [--repeat 3] [--workers 1,2] [--chunks 1,8] [--dask-backend numpy]
        [--check-fields 10] [--gammapy-fields 20] [--no-gammapy]
        [--out benchmarks/results/batch.md]

Raw numbers go to a JSON file next to the markdown table.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _harness import (_r, _sync, _t, _timed, backends, gpu_name, log, machine_line, md_head, md_row, measure,
                      measure_interleaved, raw_record, write_report)

import gpumask
from gpumask.batch.examples import write_example_fields
from gpumask.batch import Progress, load_fields, plan, run_batch
from gpumask.batch.pipeline import field_state

QUICK = dict(fields=40, npix=128, repeat=1, gammapy_fields=5, check_fields=5)
FULL = dict(fields=200, npix=250, repeat=3, gammapy_fields=20, check_fields=10)
BINSZ = 0.02  # write_example_fields' default
THRESHOLD, CORRELATION, DILATION, REGION_R, CATALOG_R = 5.0, "0.1 deg", "0.06 deg", 0.1, 0.15


# ----------------------------------------------------------------------------- helpers


def _batch(jobs, **kwargs):
    """``run_batch`` without progress output; raises unless every field is done."""
    progress = Progress(len(jobs), stream=io.StringIO(), tty=False)  # silent (a log line per field otherwise)
    report = run_batch(jobs, overwrite=True, progress=progress, **kwargs)
    if report["counts"]["done"] != len(jobs):
        bad = next(f for f in report["fields"] if f["status"] != "done")
        raise RuntimeError(f"{report['counts']}; first not done: {bad['name']}: {bad['error']}")
    return report


def _evenly(jobs, k):
    """``k`` evenly spaced jobs, the first and the last included."""
    idx = np.unique(np.linspace(0, len(jobs) - 1, min(k, len(jobs))).round().astype(int))
    return [jobs[i] for i in idx]


def _snapshot(jobs):
    """``{name: (mask, sqrt_ts)}`` of the jobs' outputs, read back with gpumask."""
    return {j.name: tuple(gpumask.read_map(j.outputs[k], backend="numpy").to_numpy() for k in ("mask", "sqrt_ts"))
            for j in jobs}


def _compare(a, b):
    """Check-fields whose masks differ, and the sqrt_ts max |diff|, of two snapshots."""
    differ = sum(not np.array_equal(a[k][0], b[k][0]) for k in a)
    diff = max(float(np.nanmax(np.abs(a[k][1].astype(np.float64) - b[k][1]))) for k in a)
    return dict(fields=len(a), masks_differ=int(differ), sqrt_ts_max_diff=diff)


def _check_text(c):
    if c is None:
        return "-"
    ok = "identical" if c["masks_differ"] == 0 else f"{c['masks_differ']} masks DIFFER"
    return f"{ok} ({c['fields']} fields), sqrt_ts {c['sqrt_ts_max_diff']:.1e}"


def _scipy_fft_threads():
    """The FFT threads gpumask uses in this process, and the thread environment."""
    from gpumask.stats.convolution import fft_threads

    n = fft_threads()
    return dict(pid=os.getpid(), os_cpu_count=os.cpu_count(), affinity=len(os.sched_getaffinity(0)),
                fft_threads=os.cpu_count() if n == -1 else n, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS"))


# ----------------------------------------------------------------------------- cases


def time_plan(config, fields, args):
    """``plan`` of every field: ``(jobs, timing)``."""
    timing, jobs = measure(lambda: plan(config, fields), target=0, max_repeat=args.repeat, min_repeat=args.repeat)
    return jobs, timing


def time_field_state(jobs, args):
    """The resume check of a re-run without --overwrite (manifests read, outputs hashed), once the outputs of a run exist."""
    return measure(lambda: [field_state(j) for j in jobs], target=0, max_repeat=args.repeat,
                   min_repeat=args.repeat)[0]


def time_local(jobs, be, check_jobs, args):
    """Stacked vs one at a time on backend ``be``: timings, and the snapshots after each variant."""
    snaps = {}
    funcs = {s: (lambda s=s: _batch(jobs, executor="local", stack=s == "stacked", backend=be))
             for s in ("stacked", "single")}
    # before each one-at-a-time call, the outputs on disk are the stacked call's
    timings, _ = measure_interleaved(funcs, {"single": lambda: snaps.__setitem__("stacked", _snapshot(check_jobs))},
                                     _sync(be), target=0, max_repeat=args.repeat, min_repeat=args.repeat)
    snaps["single"] = _snapshot(check_jobs)
    if "stacked" not in snaps:  # not reached when repeat >= 1
        snaps["stacked"] = snaps["single"]
    return timings, snaps


def time_dask(jobs, args, check_jobs, reference):
    """One LocalCluster per worker count; every chunk size on it."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        log(f"dask.distributed not importable ({exc}); no dask rows")
        return [], str(exc)
    records = []
    chunks = [int(c) for c in args.chunks.split(",")]
    for w in (int(x) for x in args.workers.split(",")):
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        try:
            client.wait_for_workers(w)
            startup = time.perf_counter() - t0
            threads = list(client.run(_scipy_fft_threads).values())
            warm, _ = _timed(lambda: _batch(jobs, executor="dask", client=client, chunk=min(chunks), stack=True,
                                            backend=args.dask_backend), None)
            times = {c: [] for c in chunks}
            checks = {}
            for _ in range(args.repeat):
                for c in chunks:
                    t, rep = _timed(lambda c=c: _batch(jobs, executor="dask", client=client, chunk=c, stack=True,
                                                       backend=args.dask_backend), None)
                    times[c].append(t)
                    checks[c] = _compare(_snapshot(check_jobs), reference)
                    log(f"dask W={w} chunk={c}: {t:.2f} s ({rep.get('workers')} workers)")
            for c in chunks:
                records.append(dict(workers=w, chunk=c, best=min(times[c]), times=times[c], n=len(times[c]),
                                    startup_s=startup, warmup_s=warm, worker_threads=threads, check=checks[c]))
        finally:
            client.close()
            cluster.close()
    return records, None


def _gammapy_field(path_counts, path_bkg, center, positions, out_mask, out_sqrt):
    """The gammapy 2.1 chain of one field (see the module docstring)."""
    import astropy.units as u
    from gammapy.datasets import MapDataset
    from gammapy.estimators import ExcessMapEstimator
    from gammapy.maps import Map, MapAxis
    from regions import CircleSkyRegion

    counts, background = Map.read(path_counts), Map.read(path_bkg)
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=1)
    cube = counts.geom.to_cube([axis])
    dataset = MapDataset(counts=Map.from_geom(cube, data=counts.data[None]),
                         background=Map.from_geom(cube, data=background.data[None]))
    sqrt_ts = ExcessMapEstimator(correlation_radius=CORRELATION, selection_optional=[]).run(dataset)["sqrt_ts"]
    significance = Map.from_geom(sqrt_ts.geom, data=sqrt_ts.data < THRESHOLD).binary_erode(DILATION)
    geom = counts.geom.to_image()
    reach = 0.5 * np.hypot(*geom.width.to_value("deg").ravel()) + CATALOG_R
    near = positions[positions.separation(geom.center_skydir).deg < reach]
    regions = [CircleSkyRegion(center, REGION_R * u.deg)] + [CircleSkyRegion(p, CATALOG_R * u.deg) for p in near]
    excluded = geom.region_mask(regions, inside=False)
    mask = Map.from_geom(geom, data=significance.data[0] & excluded.data)
    mask.write(out_mask, overwrite=True)
    sqrt_ts.write(out_sqrt, overwrite=True)
    return mask


def time_gammapy(folder, fields_path, jobs, args, reference):
    """Best pass of the gammapy chain over the gammapy subset; checks against ``reference``."""
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    entries = {str(e["name"]): e for e in load_fields(fields_path)[0]}
    catalog = Table.read(folder / "catalog.ecsv")
    positions = SkyCoord(catalog["glon"], catalog["glat"], unit="deg", frame="galactic")
    out = folder / "gammapy_out"
    out.mkdir(exist_ok=True)
    subset = _evenly(jobs, args.gammapy_fields)

    def one(job):
        e = entries[job.name]
        return _gammapy_field(job.significance["counts"], job.significance["background"],
                              SkyCoord(e["lon"], e["lat"], unit="deg", frame="galactic"), positions,
                              out / f"{job.name}_mask.fits", out / f"{job.name}_sqrt_ts.fits")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, _ = _timed(lambda: one(subset[0]), None)  # warm-up: imports
        timing, _ = measure(lambda: [one(j) for j in subset], target=0, max_repeat=args.repeat,
                            min_repeat=args.repeat)
    timing["warmup_s"] = first
    check = dict(fields=len(subset), sqrt_ts_max_diff=0.0, gammapy_only_px=0, gammapy_only_interior_px=0,
                 gpumask_only_px=0, gammapy_excluded_frac=0.0, gpumask_excluded_frac=0.0)
    band = int(round(float(DILATION.split()[0]) / BINSZ))  # gammapy's binary_erode also erodes the map edge
    from gammapy.maps import Map

    for job in subset:
        g_mask = Map.read(out / f"{job.name}_mask.fits").data.astype(bool)
        g_sqrt = Map.read(out / f"{job.name}_sqrt_ts.fits").data[0].astype(np.float64)
        mask, sqrt_ts = reference[job.name]
        check["sqrt_ts_max_diff"] = max(check["sqrt_ts_max_diff"], float(np.nanmax(np.abs(g_sqrt - sqrt_ts))))
        only = ~g_mask & mask
        check["gammapy_only_px"] += int(np.count_nonzero(only))
        check["gammapy_only_interior_px"] += int(np.count_nonzero(only[band:-band, band:-band]))
        check["gpumask_only_px"] += int(np.count_nonzero(g_mask & ~mask))
        check["gammapy_excluded_frac"] += float(np.mean(~g_mask)) / len(subset)
        check["gpumask_excluded_frac"] += float(np.mean(~mask)) / len(subset)
    return dict(n_fields=len(subset), per_field=timing["best"] / len(subset), timing=timing, check=check)


# ----------------------------------------------------------------------------- run


def run(args):
    cols, cupy_why = backends()
    gp_version = None
    if not args.no_gammapy:
        try:
            import gammapy

            gp_version = gammapy.__version__
        except ImportError as exc:
            log(f"gammapy not importable ({exc}); no gammapy row")
    with tempfile.TemporaryDirectory(prefix="gpumask-bench-batch-") as tmp:
        folder = Path(tmp)
        t_write, (config, fields_path) = _timed(lambda: write_example_fields(folder, n=args.fields,
                                                                             npix=args.npix), None)
        log(f"inputs: {args.fields} fields of {args.npix}x{args.npix} px written in {t_write:.1f} s")
        jobs, t_plan = time_plan(config, fields_path, args)
        log(f"plan {t_plan['best']:.3f} s")
        check_jobs = _evenly(jobs, args.check_fields)
        ref_jobs = list({j.name: j for j in check_jobs + _evenly(jobs, args.gammapy_fields)}.values())

        local, snaps = {}, {}
        for be in cols:
            local[be], snaps[be] = time_local(jobs, be, ref_jobs, args)
            log(f"local {be}: " + ", ".join(f"{k} {v['best']:.2f} s (first {v['first']:.2f} s)"
                                             for k, v in local[be].items()))
        plan_t = dict(plan=t_plan, field_state=time_field_state(jobs, args))
        log(f"field_state {plan_t['field_state']['best']:.3f} s")
        reference = snaps["numpy"]["stacked"]  # local stacked numpy
        checks = {be: _compare(snaps[be]["stacked"], snaps[be]["single"]) for be in cols}
        if "cupy" in cols:
            checks["cupy vs numpy"] = _compare(snaps["cupy"]["stacked"], reference)

        gp = None
        if gp_version:
            gp = time_gammapy(folder, fields_path, jobs, args, reference)
            log(f"gammapy {gp['per_field'] * 1e3:.1f} ms/field ({gp['n_fields']} fields), check {gp['check']}")

        dask, dask_skip = [], "--workers empty"
        if args.workers:
            dask_ref = {j.name: reference[j.name] for j in check_jobs}
            dask, dask_skip = time_dask(jobs, args, check_jobs, dask_ref)
    dask_cuda = None
    if "cupy" in cols:
        try:
            import dask_cuda

            dask_cuda = dask_cuda.__version__
        except ImportError:
            dask_cuda = "not installed"
    return dict(fields=args.fields, npix=args.npix, write_inputs_s=t_write, plan=plan_t, local=local,
                checks=checks, gammapy=gp, dask=dask, dask_skipped=dask_skip, backends=cols, cupy_status=cupy_why,
                dask_cuda=dask_cuda, main_process_threads=_scipy_fft_threads(), gammapy_version=gp_version)


# ----------------------------------------------------------------------------- report


def to_markdown(result, args):
    n = result["fields"]
    lines = ["## Local executor", ""]
    lines += md_head(["backend", "stacked (s)", "one at a time (s)", "stacked fields/s", "one at a time fields/s",
                      "stacked / one at a time (fields/s)", "warm-up stacked / one at a time (s)",
                      "check: stacked vs one at a time"])
    for be, t in result["local"].items():
        s, o = t["stacked"], t["single"]
        lines.append(md_row([be, _t(s["best"]), _t(o["best"]), f"{n / s['best']:.1f}", f"{n / o['best']:.1f}",
                             _r(o["best"] / s["best"]), f"{_t(s['first'])} / {_t(o['first'])}",
                             _check_text(result["checks"][be])]))
    if "cupy vs numpy" in result["checks"]:
        lines += ["", f"cupy vs numpy (stacked): {_check_text(result['checks']['cupy vs numpy'])}"]
    p = result["plan"]
    lines += ["", "Breakdown (inside every run above, except plan): "
              f"`plan` of {n} fields {_t(p['plan']['best'])} s ({p['plan']['best'] / n * 1e3:.2f} ms/field); "
              f"resume check `field_state(job)` of {n} fields {_t(p['field_state']['best'])} s "
              f"({p['field_state']['best'] / n * 1e3:.2f} ms/field, run by `run_jobs` before any work)."]
    base = result["local"].get(args.dask_backend, result["local"]["numpy"])["single"]["best"]
    if result["dask"]:
        lines += ["", f"## dask executor (LocalCluster, 1 thread per worker process, backend {args.dask_backend})",
                  ""]
        lines += md_head(["workers", "chunk", "best (s)", "fields/s", "fields/s per worker",
                          f"speedup vs local one at a time ({_t(base)} s)", "check: masks vs local stacked"])
        for d in result["dask"]:
            lines.append(md_row([str(d["workers"]), str(d["chunk"]), _t(d["best"]), f"{n / d['best']:.1f}",
                                 f"{n / d['best'] / d['workers']:.1f}", _r(base / d["best"]),
                                 _check_text(d["check"])]))
        thr = result["dask"][0]["worker_threads"][0]
        lines += ["", f"Each worker process: os.cpu_count() = {thr['os_cpu_count']}, "
                  f"OMP_NUM_THREADS={thr['OMP_NUM_THREADS']} (set by dask), so gpumask's NumPy FFTs use "
                  f"{thr['fft_threads']} thread(s) per worker (`convolution.fft_threads`); the local executor "
                  "uses every core.  "
                  "Cluster start-up and one warm-up run per cluster untimed (in the JSON)."]
    else:
        lines += ["", f"dask: skipped ({result['dask_skipped']})"]
    if result["dask_cuda"]:
        lines += ["", f"dask-cuda: {result['dask_cuda']} (make_client would use LocalCUDACluster, one worker per "
                  "GPU; this benchmark times LocalCluster only)"]
    gp = result["gammapy"]
    lines += ["", "## gammapy 2.1 per-field chain", ""]
    if gp is None:
        lines.append("gammapy: not run (--no-gammapy or not importable)")
    else:
        ours = result["local"]["numpy"]["stacked"]["best"] / n
        c = gp["check"]
        lines += md_head(["fields timed", "gammapy per field (ms)", "gpumask stacked numpy per field (ms)",
                          "gammapy / gpumask", "sqrt_ts max diff", "px excluded by gammapy only (edge band / interior)",
                          "px excluded by gpumask only (hysteresis)", "excluded fraction gammapy / gpumask"])
        lines.append(md_row([str(gp["n_fields"]), f"{gp['per_field'] * 1e3:.3g}", f"{ours * 1e3:.3g}",
                             _r(gp["per_field"] / ours), f"{c['sqrt_ts_max_diff']:.1e}", f"{c['gammapy_only_px'] - c['gammapy_only_interior_px']} / {c['gammapy_only_interior_px']}",
                             str(c["gpumask_only_px"]),
                             f"{c['gammapy_excluded_frac']:.4f} / {c['gpumask_excluded_frac']:.4f}"]))
        lines += ["", "gammapy uses a plain threshold (sqrt_ts < 5) instead of gpumask's hysteresis (5 / 3), so "
                  "it does slightly less work and excludes fewer pixels inside the map.  gammapy's "
                  f"`binary_erode` also erodes the map edge (scipy's border_value=0): a band of {DILATION} "
                  "around every map is excluded by gammapy only, which gpumask keeps usable."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 fields of 128x128, 1 repeat, "
                        "5 gammapy fields")
    parser.add_argument("--fields", type=int, default=None, help="number of fields (default 200, 40 with --quick)")
    parser.add_argument("--npix", type=int, default=None, help="field size in px (default 250, 128 with --quick)")
    parser.add_argument("--repeat", type=int, default=None, help="timed rounds per cell, best taken "
                        "(default 3, 1 with --quick)")
    parser.add_argument("--workers", default="1,2", help="dask worker counts, comma-separated; '' for no dask")
    parser.add_argument("--chunks", default="1,8", help="dask chunk sizes (fields per task), comma-separated")
    parser.add_argument("--dask-backend", default="numpy", help="backend of the dask runs")
    parser.add_argument("--check-fields", type=int, default=None, help="fields read back for the checks "
                        "(default 10, 5 with --quick)")
    parser.add_argument("--gammapy-fields", type=int, default=None, help="fields of the gammapy chain "
                        "(default 20, 5 with --quick)")
    parser.add_argument("--no-gammapy", action="store_true", help="no gammapy row")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "batch.md"))
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    t0 = time.perf_counter()
    result = run(args)
    total = time.perf_counter() - t0
    gpu = gpu_name()
    import scipy

    try:
        import distributed

        dist = distributed.__version__
    except ImportError:
        dist = "not installed"
    versions = {"scipy": scipy.__version__, "distributed": dist,
                "gammapy": result["gammapy_version"] or "not run"}
    head = (
        "# gpumask batch benchmarks\n\n"
        f"{machine_line(gpu, versions, result['cupy_status'])}\n\n"
        f"{args.fields} simulated fields of {args.npix}x{args.npix} px (gpumask.batch.examples): region + catalog "
        "circles + significance (correlation 0.1 deg, hysteresis 5/3, dilation 0.06 deg); mask and sqrt_ts FITS "
        f"and a manifest per field; `overwrite=True`.  Best of {args.repeat} round(s) after a warm-up; inputs "
        f"written once, untimed ({result['write_inputs_s']:.1f} s); total runtime {total:.0f} s.\n\n"
    )
    write_report(args.out, head + to_markdown(result, args) + "\n",
                 raw_record(result, total, args, gpu, scipy=scipy.__version__, distributed=dist))


if __name__ == "__main__":
    main()
