"""Significance-map benchmarks: gpumask ExcessMapEstimator (numpy, cupy) vs gammapy 2.1.

Times ``ExcessMapEstimator(correlation_radius).run(dataset)`` on a known-background
(Cash) dataset, counts + background, on 250x250, 1000x1000, 2000x2000 and
4000x4000 CAR maps at 0.02 deg (galactic, centred on (0, 0)) for correlation
radii of 0.1, 0.4 and 1.0 deg (5, 20 and 50 px; disks of 11, 41 and 101 px).
gammapy 2.1 runs ``ExcessMapEstimator(radius, selection_optional=[])`` on a
gammapy ``MapDataset`` holding the same arrays.  Both estimators sum the energy
bins into one group and convolve with FFTs: gpumask in one batched real FFT
(``scipy.fft``, every core) with the kernel transform cached, gammapy with one
``scipy.signal.fftconvolve`` per map (one thread, float32 storage).

The data is seeded: a smooth positive background (0.5-3 counts/px, a Galactic
ridge plus a large-scale ripple), counts Poisson(background + a few hundred
Gaussian blobs of 0.03-0.3 deg with log-uniform peaks).  One energy bin by
default (``--nbin``); the full run also times the 250x250 and 1000x1000 maps with
``--extra-nbin`` (5) bins, as the Fermi datasets have 5-11.

    python benchmarks/bench_significance.py [--quick] [--gammapy-budget 60]
        [--maps 250,1000] [--radii 0.1,0.4] [--nbin 1] [--extra-nbin 5]
        [--target 1] [--min-repeat 3] [--no-gammapy]
        [--out benchmarks/results/significance.md]

The dataset is built once per map; only ``run`` is timed.  Three gpumask
variants per backend:

* "warm": the default, repeated calls reuse the cached kernel transform (a second
  field of the same shape, or an iteration);
* "cold": ``gpumask.stats.convolution.clear_kernel_cache()`` before every call (untimed),
  so each call pays the kernel FFT;
* "float32": ``dtype=np.float32``, warm.

A gpumask cell is the best (minimum) of N calls after a first call, which is
reported apart ("1st call": kernel cache cleared before it).  The variants of a
cell are timed round-robin (warm, cold, float32, warm, ...), so that the drift of
a shared machine hits them alike; N grows until a variant's repeats take
``--target`` seconds and number at least ``--min-repeat``.  The warm/cold gap is
small next to that noise, so the table also gives what the cache saves directly:
"kernel FFT", the best time of ``scipy.fft.rfft2`` of the kernel padded to the
convolution's FFT shape (``next_fast_len(n + k - 1)``, every core).

The very first call in the process (imports, FFT plans, CUDA kernel compilation)
is reported under the table.  A gammapy cell is the best of its calls, the first
included (gammapy compiles nothing), also at least ``--min-repeat``; cases
predicted above ``--gammapy-budget`` seconds (from the measured cell nearest in
cost, time taken proportional to nbin x npix + (n + kernel)^2 log(n + kernel), the
per-pixel work and the FFT) are not run and are reported as that extrapolation,
marked ``~``.  On the GPU the dataset is uploaded once beforehand and the device
is synchronised before the clock stops.  Absolute times are noise on shared
machines: compare the ratios gammapy/gpumask.

Correctness is checked on the way: the table gives max |sqrt_ts(gpumask) -
sqrt_ts(gammapy)| over the pixels finite in both (float64 and float32), the
number of pixels whose NaN-ness differs, and the peak |sqrt_ts| for scale; cupy
results are compared with numpy's.  Raw numbers go to a JSON file next to the
markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _harness import (
    _e,
    _r,
    _sync,
    _t,
    _timed,
    backends,
    first_calls_line,
    gpu_name,
    log,
    machine_line,
    md_head,
    md_row,
    measure,
    measure_interleaved,
    progress_parts,
    raw_record,
    ref_cell,
    write_report,
)

import gpumask
from gpumask.sky.axes import MapAxis
from gpumask.stats.convolution import clear_kernel_cache
from gpumask.sky.datasets import MapDataset
from gpumask.stats.excess import ExcessMapEstimator

BINSZ = 0.02
MAP_SIZES = (250, 1000, 2000, 4000)
RADII = (0.1, 0.4, 1.0)
QUICK_MAPS = (250, 1000)
QUICK_RADII = {250: RADII, 1000: (0.1, 0.4)}
ENERGY = (1.0, 100.0)  # GeV, log-spaced bins
VARIANTS = ("warm", "cold", "float32")


# ----------------------------------------------------------------------------- data


def _axis_edges(nbin):
    return np.geomspace(ENERGY[0], ENERGY[1], nbin + 1)


def make_data(n, nbin, seed):
    """Seeded ``(counts, background)`` arrays of shape ``(nbin, n, n)`` (float64).

    Background: ``0.5 + 2.5 u`` with ``u`` in [0, 1] a Galactic ridge (Gaussian in
    latitude, 1 deg wide) plus a large-scale ripple, so 0.5-3 counts/px summed over
    the bins; the bins share it with an E^-1.5 spectrum.  Sources: ``300 x
    (area / 1000^2)`` Gaussian blobs (20 to 500), sigma 0.03-0.3 deg, peak
    0.05-5 counts/px (log-uniform), added to the background before the Poisson
    draw.
    """
    rng = np.random.default_rng(seed)
    y = (np.arange(n) - (n - 1) / 2) * BINSZ  # deg from the centre
    x = y.copy()
    ridge = np.exp(-0.5 * (y / 1.0) ** 2)[:, None]
    period = max(n * BINSZ / 1.5, 1.0)
    phase = rng.uniform(0, 2 * np.pi, 2)
    ripple = 0.5 * (1 + np.sin(2 * np.pi * x / period + phase[0])[None, :]
                    * np.cos(2 * np.pi * y / period + phase[1])[:, None])
    u = 0.6 * ridge + 0.4 * ripple
    background = 0.5 + 2.5 * u
    signal = np.zeros((n, n))
    n_blobs = int(np.clip(round(300 * n * n / 1000**2), 20, 500))
    for _ in range(n_blobs):
        cx, cy = rng.uniform(-0.5, n - 0.5, 2)
        s = rng.uniform(0.03, 0.3) / BINSZ
        amp = np.exp(rng.uniform(np.log(0.05), np.log(5.0)))
        h = int(np.ceil(4 * s))
        x0, x1 = max(int(cx) - h, 0), min(int(cx) + h + 1, n)
        y0, y1 = max(int(cy) - h, 0), min(int(cy) + h + 1, n)
        if x0 >= x1 or y0 >= y1:
            continue
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / s) ** 2)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / s) ** 2)
        signal[y0:y1, x0:x1] += amp * gy[:, None] * gx[None, :]
    edges = _axis_edges(nbin)
    weights = edges[:-1] ** -0.5 - edges[1:] ** -0.5  # integral of E^-1.5 over each bin
    weights = weights / weights.sum()
    bkg = background[None] * weights[:, None, None]
    counts = rng.poisson((background + signal)[None] * weights[:, None, None]).astype(np.float64)
    # mask_safe as in real datasets: a 2% frame unsafe in every bin (NaN in the
    # outputs), and the lowest bin unsafe over the left half when there are several
    safe = np.ones(counts.shape, dtype=bool)
    m = max(1, n // 50)
    safe[:, :m, :] = safe[:, -m:, :] = False
    safe[:, :, :m] = safe[:, :, -m:] = False
    if nbin > 1:
        safe[0, :, : n // 2] = False
    return counts, bkg, safe, n_blobs


def gpumask_dataset(n, nbin, counts, background, safe):
    axis = MapAxis.from_edges(_axis_edges(nbin), interp="log", name="energy", unit="GeV")
    geom = gpumask.WcsGeom.create(npix=(n, n), binsz=BINSZ, frame="galactic", skydir=(0, 0), axes=[axis])
    return MapDataset(counts=gpumask.Map.from_geom(geom, data=counts),
                      background=gpumask.Map.from_geom(geom, data=background),
                      mask_safe=gpumask.Map.from_geom(geom, data=safe))


def gammapy_dataset(n, nbin, counts, background, safe):
    from gammapy.datasets import MapDataset as GDataset
    from gammapy.maps import Map as GMap
    from gammapy.maps import MapAxis as GAxis
    from gammapy.maps import WcsGeom as GGeom

    axis = GAxis.from_edges(_axis_edges(nbin), interp="log", name="energy", unit="GeV")
    geom = GGeom.create(npix=(n, n), binsz=BINSZ, frame="galactic", skydir=(0, 0), axes=[axis])
    return GDataset(counts=GMap.from_geom(geom, data=counts), background=GMap.from_geom(geom, data=background),
                    mask_safe=GMap.from_geom(geom, data=safe))


# ----------------------------------------------------------------------------- timing


def kernel_fft_time(n, kernel_px, dtype, repeat=5):
    """Best time of the real FFT of one kernel padded to the convolution's FFT
    shape (``next_fast_len(n + k - 1, real=True)``, all cores): the work that the
    kernel-transform cache saves per call."""
    import scipy.fft

    m = scipy.fft.next_fast_len(n + kernel_px - 1, real=True)
    k = np.ones((kernel_px, kernel_px), dtype=dtype)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        scipy.fft.rfft2(k, s=(m, m), workers=-1)
        best = min(best, time.perf_counter() - t0)
    return best


def _to_numpy(result):
    return np.asarray(result["sqrt_ts"].to_numpy(), dtype=np.float64)


def compare(ours, theirs):
    """max |ours - theirs| over pixels finite in both, and the count of pixels
    whose NaN-ness differs."""
    fin = np.isfinite(ours) & np.isfinite(theirs)
    diff = float(np.max(np.abs(ours[fin] - theirs[fin]))) if fin.any() else float("nan")
    return dict(max_abs=diff, nan_mismatch=int(np.count_nonzero(np.isnan(ours) != np.isnan(theirs))),
                n_nan=int(np.count_nonzero(np.isnan(ours))))


def cost_units(n, nbin, kernel_px):
    """Relative cost of one gammapy call: per-pixel work on every bin plus the FFT
    area of the padded image (the convolutions run on the summed group)."""
    m = n + kernel_px - 1
    return nbin * n * n + m * m * np.log2(m)


class GammapyPredictor:
    """gammapy's time from the measured cell nearest in cost units, scaled linearly."""

    def __init__(self):
        self.points = []  # (cost units, seconds)

    def add(self, units, seconds):
        self.points.append((units, seconds))

    def predict(self, units):
        if not self.points:
            return None
        u0, t0 = min(self.points, key=lambda p: abs(np.log(p[0] / units)))
        return t0 * units / u0


# ----------------------------------------------------------------------------- run


def cases(args):
    sizes = [n for n in MAP_SIZES if _keep(n, args.maps)]
    radii = [r for r in RADII if _keep(r, args.radii)] if args.radii else list(RADII)
    out = []
    for n in sizes:
        if args.quick and n not in QUICK_MAPS:
            continue
        rs = [r for r in radii if not args.quick or r in QUICK_RADII[n]]
        out.append((n, args.nbin, rs))
    if args.extra_nbin and args.extra_nbin != args.nbin:
        for n in sizes:
            if n <= args.extra_max and (not args.quick or n == min(QUICK_MAPS)):
                rs = [r for r in radii if not args.quick or r in QUICK_RADII[n]]
                out.append((n, args.extra_nbin, rs))
    return out


def _keep(value, patterns):
    if not patterns:
        return True
    return any(float(p) == float(value) for p in patterns.split(",") if p.strip())


def run(args):
    cols, cupy_why = backends()
    gp_version = None
    GEst = None
    if not args.no_gammapy:
        try:
            import gammapy
            from gammapy.estimators import ExcessMapEstimator as GEst

            gp_version = gammapy.__version__
        except ImportError as exc:
            print(f"gammapy not importable ({exc}); gpumask only", file=sys.stderr)

    # -- process-cold first calls (imports, FFT plans, kernel compilation)
    first_calls = {}
    counts, bkg, safe, _ = make_data(250, 1, seed=0)
    ds = gpumask_dataset(250, 1, counts, bkg, safe)
    for be in cols:
        d = ds if be == "numpy" else ds.to_backend(be)
        for variant in ("warm", "float32"):
            dtype = np.float32 if variant == "float32" else np.float64
            t, _ = _timed(lambda d=d, dtype=dtype: ExcessMapEstimator("0.4 deg", dtype=dtype).run(d), _sync(be))
            first_calls[f"{be} {'float64' if variant == 'warm' else variant}"] = t
            log(f"first call in process, {be} {variant}: {t:.3f} s")
    if GEst is not None:
        gds = gammapy_dataset(250, 1, counts, bkg, safe)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first_calls["gammapy"], _ = _timed(
                lambda g=gds: GEst("0.4 deg", selection_optional=[]).run(g), None)
    ds = gds = None

    predictor = GammapyPredictor()
    records = []
    for n, nbin, radii in cases(args):
        t0 = time.perf_counter()
        counts, bkg, safe, n_blobs = make_data(n, nbin, seed=[20250, n, nbin])
        ds = {"numpy": gpumask_dataset(n, nbin, counts, bkg, safe)}
        for be in cols[1:]:
            ds[be] = ds["numpy"].to_backend(be)
        gds = gammapy_dataset(n, nbin, counts, bkg, safe) if GEst is not None else None
        log(f"data {n}x{n} x {nbin} bins ({n_blobs} blobs): {time.perf_counter() - t0:.1f} s")
        del counts, bkg
        for radius in radii:
            kernel_px = int(ExcessMapEstimator(f"{radius} deg").estimate_kernel(ds["numpy"].counts.geom).shape[0])
            rec = dict(map=f"{n}x{n}", n=n, nbin=nbin, radius_deg=radius, kernel_px=kernel_px,
                       n_blobs=n_blobs, gpumask={}, diff={})
            sqrt_ts = {}
            for be in cols:
                funcs = {}
                for variant in VARIANTS:
                    est = ExcessMapEstimator(f"{radius} deg",
                                             dtype=np.float32 if variant == "float32" else np.float64)
                    funcs[variant] = lambda est=est, d=ds[be]: est.run(d)
                timings, results = measure_interleaved(funcs, {"cold": clear_kernel_cache}, _sync(be),
                                                       args.target, args.max_repeat, args.min_repeat,
                                                       before_first=clear_kernel_cache)
                for variant in VARIANTS:
                    rec["gpumask"][f"{be} {variant}"] = timings[variant]
                    if variant != "cold":
                        sqrt_ts[(be, variant)] = _to_numpy(results[variant])
                results = None
            rec["kernel_fft_s"] = {"float64": kernel_fft_time(n, kernel_px, np.float64),
                                   "float32": kernel_fft_time(n, kernel_px, np.float32)}
            ref = sqrt_ts[("numpy", "warm")]
            rec["peak_sqrt_ts"] = float(np.nanmax(np.abs(ref)))
            rec["diff"]["numpy float32 vs float64"] = compare(sqrt_ts[("numpy", "float32")], ref)
            for be in cols[1:]:
                rec["diff"][f"{be} vs numpy"] = compare(sqrt_ts[(be, "warm")], ref)
                rec["diff"][f"{be} float32 vs numpy float32"] = compare(
                    sqrt_ts[(be, "float32")], sqrt_ts[("numpy", "float32")])

            # -- gammapy
            gp = None
            if GEst is not None:
                units = cost_units(n, nbin, kernel_px)
                pred = predictor.predict(units)
                if pred is not None and pred > args.gammapy_budget:
                    gp = dict(skipped=True, predicted=pred)
                else:
                    g_est = GEst(f"{radius} deg", selection_optional=[])
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        timing, gres = measure(lambda g_est=g_est, g=gds: g_est.run(g), None, args.target,
                                               args.max_repeat, args.min_repeat, first_counts=True)
                    gp = dict(skipped=False, predicted=pred, **timing)
                    predictor.add(units, timing["best"])
                    theirs = np.asarray(gres["sqrt_ts"].data, dtype=np.float64)
                    del gres
                    rec["diff"]["numpy vs gammapy"] = compare(ref, theirs)
                    rec["diff"]["numpy float32 vs gammapy"] = compare(sqrt_ts[("numpy", "float32")], theirs)
                    for be in cols[1:]:
                        rec["diff"][f"{be} vs gammapy"] = compare(sqrt_ts[(be, "warm")], theirs)
                    del theirs
            rec["gammapy"] = gp
            del sqrt_ts, ref
            records.append(rec)
            log(_progress(rec))
        ds = gds = None  # free this map's data before the next one
    return dict(records=records, backends=cols, cupy_status=cupy_why, first_calls=first_calls,
                gammapy_version=gp_version)


def _progress(rec):
    parts = [f"{rec['map']:>9} x{rec['nbin']} r={rec['radius_deg']:g} ({rec['kernel_px']} px) |"]
    parts += progress_parts(rec["gpumask"], rec["gammapy"], ".2f")
    d = rec["diff"].get("numpy vs gammapy")
    if d:
        parts.append(f"max|d sqrt_ts| {d['max_abs']:.2e} nan-mismatch {d['nan_mismatch']}")
    parts.append(f"peak {rec['peak_sqrt_ts']:.1f}")
    return " ".join(parts)


# ----------------------------------------------------------------------------- report


def to_markdown(result):
    cols = result["backends"]
    keys = [f"{be} {v}" for be in cols for v in VARIANTS]
    header = ["map", "bins", "radius (deg) / disk (px)"]
    header += [f"gpumask {k} (s)" for k in keys] + ["gammapy 2.1 (s)"]
    header += [f"{be} 1st call (s)" for be in cols]
    header += ["kernel FFT f64 / f32 (s)"]
    header += [f"gammapy / {k}" for k in keys]
    header += ["max abs d sqrt_ts f64 / f32 vs gammapy", "NaN mismatch (px)", "peak sqrt_ts"]
    if len(cols) > 1:
        header.append("max abs d sqrt_ts cupy vs numpy f64 / f32")
    lines = md_head(header)
    for rec in result["records"]:
        row = [rec["map"], str(rec["nbin"]), f"{rec['radius_deg']:g} / {rec['kernel_px']}"]
        row += [_t(rec["gpumask"][k]["best"]) for k in keys]
        cell, t, mark = ref_cell(rec["gammapy"], " (extrapolated)")
        row.append(cell)
        row += [_t(rec["gpumask"][f"{be} warm"]["first"]) for be in cols]
        row.append(f"{_t(rec['kernel_fft_s']['float64'])} / {_t(rec['kernel_fft_s']['float32'])}")
        row += ["-" if t is None else mark + _r(t / rec["gpumask"][k]["best"]) for k in keys]
        d64 = rec["diff"].get("numpy vs gammapy")
        d32 = rec["diff"].get("numpy float32 vs gammapy")
        row.append("-" if d64 is None else f"{_e(d64['max_abs'])} / {_e(d32['max_abs'])}")
        row.append("-" if d64 is None else f"{d64['nan_mismatch']} / {d32['nan_mismatch']}")
        row.append(f"{rec['peak_sqrt_ts']:.1f}")
        if len(cols) > 1:
            be = cols[1]
            row.append(f"{_e(rec['diff'][f'{be} vs numpy']['max_abs'])} / "
                       f"{_e(rec['diff'][f'{be} float32 vs numpy float32']['max_abs'])}")
        lines.append(md_row(row))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 250x250 (every radius, also with --extra-nbin bins) and "
                        "1000x1000 (0.1 and 0.4 deg)")
    parser.add_argument("--gammapy-budget", type=float, default=None,
                        help="skip gammapy cases predicted slower than this many seconds; "
                        "default 60, 10 with --quick")
    parser.add_argument("--no-gammapy", action="store_true", help="time gpumask only")
    parser.add_argument("--maps", default="", help="comma-separated map sizes to keep "
                        f"({', '.join(str(n) for n in MAP_SIZES)})")
    parser.add_argument("--radii", default="", help="comma-separated correlation radii in deg "
                        f"to keep ({', '.join(f'{r:g}' for r in RADII)})")
    parser.add_argument("--nbin", type=int, default=1, help="energy bins of the main run (default 1)")
    parser.add_argument("--extra-nbin", type=int, default=5,
                        help="also run the maps up to --extra-max px with this many bins (0: no)")
    parser.add_argument("--extra-max", type=int, default=1000)
    parser.add_argument("--target", type=float, default=None,
                        help="seconds of repeated calls per cell (default 1, 0.2 with --quick)")
    parser.add_argument("--max-repeat", type=int, default=30)
    parser.add_argument("--min-repeat", type=int, default=None,
                        help="at least this many timed calls per cell (default 3, 1 with --quick)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "significance.md"))
    args = parser.parse_args()
    if args.gammapy_budget is None:
        args.gammapy_budget = 10.0 if args.quick else 60.0
    if args.target is None:
        args.target = 0.2 if args.quick else 1.0
    if args.min_repeat is None:
        args.min_repeat = 1 if args.quick else 3
    if args.nbin < 1 or args.extra_nbin < 0:
        parser.error("--nbin must be >= 1 and --extra-nbin >= 0")

    t0 = time.perf_counter()
    result = run(args)
    total = time.perf_counter() - t0
    gpu = gpu_name()
    import scipy

    fc = first_calls_line(result["first_calls"])
    versions = {"scipy": scipy.__version__, "gammapy": result["gammapy_version"] or "not installed"}
    head = (
        "# gpumask significance-map benchmarks\n\n"
        f"{machine_line(gpu, versions, result['cupy_status'])}\n\n"
        "`ExcessMapEstimator(radius).run(dataset)` on a counts + background dataset (Cash), "
        f"CAR galactic at {BINSZ} deg/px; gammapy with `selection_optional=[]`.  Best of N calls "
        "after a first call (\"1st call\": kernel cache cleared); \"warm\": cached kernel transform "
        "reused, \"cold\": kernel cache cleared before every call, \"float32\": `dtype=np.float32`, "
        f"warm; variants timed round-robin, at least {args.min_repeat} calls each; \"kernel FFT\": "
        "`scipy.fft.rfft2` of the padded kernel, what the kernel cache saves per call.  gpumask FFTs use every core (`scipy.fft` workers=-1), gammapy's "
        "`scipy.signal.fftconvolve` one.  "
        f"gammapy budget {args.gammapy_budget:g} s (\"~\": extrapolated, not run); "
        f"total runtime {total:.0f} s.\n\n"
    )
    foot = (
        f"\nFirst call in the process (imports, FFT plans, kernel compilation; 250x250, 0.4 deg): {fc}\n"
    )
    text = head + to_markdown(result) + "\n" + foot
    write_report(args.out, text, raw_record(result, total, args, gpu, scipy=scipy.__version__))


if __name__ == "__main__":
    main()
