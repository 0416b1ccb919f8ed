"""Reflected-region benchmark: ReflectedRegionsFinder (gpumask "sky" and "pixel") vs gammapy 2.1.

The survey case of issue 19: ``--pointings`` pointings (default 1000) along the
Galactic plane (l in [-55, 55] deg, |b| < 1.5 deg), each with ``--targets`` targets
(default 3) at 0.5-1.5 deg offsets in random directions, every target a 0.11 deg
circle (a point-like on region).  The exclusion mask is the HGPS catalog's default
morphology mask (``gpumask.exclusion_mask``) on a 120 x 6 deg Galactic-plane map
at 0.02 deg (6000 x 300 px, galactic CAR), built once outside the timing.
``min_distance_input="0.2 deg"`` as in the issue's gammapy measurement.

Timed:

* gpumask ``method="sky"``: one ``run_many`` call over all pairs, per backend;
* gpumask ``method="pixel"`` (gammapy's algorithm) and gammapy's own
  ``ReflectedRegionsFinder.run``: one call per pair, on a seeded random subset of
  ``--subset`` pairs, reported per pair and extrapolated to all pairs (``~``).

Checked on the way: no sky-mode off region holds an excluded pixel centre (each
off region of the subset rasterised on the mask's geometry); on the subset, the
pixel method gives gammapy's regions (same count, centres within ``binsz``), and
the sky method's region counts are compared with gammapy's (mean and largest
difference).  Absolute times are noise on shared machines: compare the ratios.

    python benchmarks/bench_reflected.py [--pointings 1000] [--targets 3] [--subset 60]
        [--no-gammapy] [--out benchmarks/results/reflected.md]
"""

from __future__ import annotations

import argparse
import time
import warnings

import astropy.units as u
import numpy as np
from _harness import DATA, _r, _t, backends, gpu_name, log, machine_line, md_head, md_row, raw_record, write_report
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

import gpumask
from gpumask.catalog import SourceCatalog


def survey(n_pointings, n_targets, seed=0):
    """Pointings and on regions: (regions list, pointings SkyCoord), one per pair."""
    rng = np.random.default_rng(seed)
    pointings = SkyCoord(rng.uniform(-55, 55, n_pointings), rng.uniform(-1.5, 1.5, n_pointings), unit="deg",
                         frame="galactic").icrs
    regions, centers = [], []
    for p in pointings:
        for _ in range(n_targets):
            target = p.directional_offset_by(rng.uniform(0, 360) * u.deg, rng.uniform(0.5, 1.5) * u.deg)
            regions.append(CircleSkyRegion(target, 0.11 * u.deg))
            centers.append(p)
    return regions, SkyCoord(centers)


def plane_mask(backend):
    geom = gpumask.WcsGeom.create(skydir=(0, 0), width=(120, 6), binsz=0.02, frame="galactic")
    hgps = SourceCatalog.read(DATA / "catalogs" / "hgps_catalog_v1.fits.gz")
    return gpumask.exclusion_mask(geom, hgps, backend=backend)


def _sync(backend):
    if backend == "cupy":
        import cupy  # noqa: PLC0415

        cupy.cuda.Device().synchronize()


def run(args):
    regions, centers = survey(args.pointings, args.targets)
    n = len(regions)
    rng = np.random.default_rng(1)
    subset = np.sort(rng.choice(n, size=min(args.subset, n), replace=False))
    names, cupy_why = backends()
    result = {"pairs": n, "subset": len(subset), "sky": {}, "checks": {}}
    sky_out = None
    for backend in names:
        mask = plane_mask(backend)
        finder = gpumask.ReflectedRegionsFinder(min_distance_input="0.2 deg")
        finder.run_many(regions[:10], centers[:10], mask)  # first call: imports, kernels
        _sync(backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gpumask.GpumaskWarning)
            t0 = time.perf_counter()
            out = finder.run_many(regions, centers, mask)
            _sync(backend)
            seconds = time.perf_counter() - t0
        result["sky"][backend] = seconds
        log(f"sky {backend}: {seconds:.2f} s for {n} pairs")
        if sky_out is None:
            sky_out, host_mask = out, mask.to_backend("numpy")
    # checks: no excluded pixel centre inside a sky off region (subset)
    usable = gpumask.to_host(host_mask.data)
    bad = 0
    for k in subset:
        for off in sky_out[k]:
            bad += int(np.any(gpumask.to_host(host_mask.geom.region_mask([off]).data) & ~usable))
    result["checks"]["sky_regions_on_excluded_pixels"] = bad
    result["checks"]["sky_regions_total"] = int(sum(len(r) for r in sky_out))
    # pixel method and gammapy, per pair on the subset
    pix = gpumask.ReflectedRegionsFinder(min_distance_input="0.2 deg", method="pixel")
    t0 = time.perf_counter()
    pix_out = [pix.run(regions[k], centers[k], host_mask)[0] for k in subset]
    result["pixel_per_pair"] = (time.perf_counter() - t0) / len(subset)
    log(f"pixel: {result['pixel_per_pair'] * 1e3:.1f} ms per pair")
    if not args.no_gammapy:
        from gammapy.makers import ReflectedRegionsFinder  # noqa: PLC0415

        g_mask = host_mask.to_gammapy()
        finder = ReflectedRegionsFinder(min_distance_input="0.2 deg")
        t0 = time.perf_counter()
        g_out = [finder.run(regions[k], centers[k], g_mask)[0] for k in subset]
        result["gammapy_per_pair"] = (time.perf_counter() - t0) / len(subset)
        log(f"gammapy: {result['gammapy_per_pair'] * 1e3:.1f} ms per pair")
        same = [len(a) == len(b) and all(x.center.separation(y.center).deg <= 0.01 for x, y in zip(a, b))
                for a, b in zip(pix_out, g_out)]
        result["checks"]["pixel_equals_gammapy"] = f"{sum(same)}/{len(same)}"
        diff = np.array([len(sky_out[k]) - len(g) for k, g in zip(subset, g_out)])
        result["checks"]["sky_minus_gammapy_count"] = {"mean": float(diff.mean()), "min": int(diff.min()),
                                                       "max": int(diff.max())}
    result["cupy"] = cupy_why
    return result


def report(result, args, total):
    n = result["pairs"]
    g = result.get("gammapy_per_pair")
    head = ["method", "backend", "pairs timed", "time (s)", "per pair (ms)", "all pairs (s)", "gammapy / this"]
    lines = [f"# Reflected regions: {args.pointings} pointings x {args.targets} targets, HGPS mask",
             "", machine_line(gpu_name(), {"gammapy": _gammapy_version()}, result["cupy"]), "",
             *md_head(head)]
    g_all = None if g is None else g * n
    for backend, seconds in result["sky"].items():
        lines.append(md_row(["sky (run_many)", backend, str(n), _t(seconds), f"{seconds / n * 1e3:.2f}",
                             _t(seconds), "-" if g_all is None else _r(g_all / seconds)]))
    p = result["pixel_per_pair"]
    lines.append(md_row(["pixel (run per pair)", "numpy", str(result["subset"]), _t(p * result["subset"]),
                         f"{p * 1e3:.1f}", "~" + _t(p * n), "-" if g is None else _r(g / p)]))
    if g is not None:
        lines.append(md_row(["gammapy 2.1 run", "-", str(result["subset"]), _t(g * result["subset"]),
                             f"{g * 1e3:.1f}", "~" + _t(g_all), "1.0"]))
    lines += ["", "Checks: " + ", ".join(f"{k} = {v}" for k, v in result["checks"].items()),
              f"Total runtime {total:.0f} s.", ""]
    return "\n".join(lines)


def _gammapy_version():
    try:
        import gammapy  # noqa: PLC0415

        return gammapy.__version__
    except ImportError:
        return "absent"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pointings", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--subset", type=int, default=60, help="pairs timed per pair (pixel, gammapy)")
    parser.add_argument("--no-gammapy", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="100 pointings, 10 pairs timed with the pixel method and gammapy")
    parser.add_argument("--out", default="benchmarks/results/reflected.md")
    args = parser.parse_args()
    if args.quick:
        args.pointings, args.subset = min(args.pointings, 100), min(args.subset, 10)
    gpumask.set_progress(False)
    t0 = time.perf_counter()
    result = run(args)
    total = time.perf_counter() - t0
    write_report(args.out, report(result, args, total),
                 raw_record(result, total, args, gpu_name(), gammapy=_gammapy_version()))


if __name__ == "__main__":
    main()
