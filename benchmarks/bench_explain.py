"""What mask provenance costs: every builder with ``explain=True`` against the same call without it.

Cases (each on the numpy backend and, when a GPU is present, on cupy):

* catalog: ``exclusion_mask(geom, 3FGL)`` with the default morphology rules on a
  2000x400 Galactic-plane CAR map at 0.02 deg (the demo catalog if the shared data
  is absent);
* regions: ``geom.region_mask(300 ds9 circles and boxes, inside=False)`` on the same map;
* hysteresis: ``exclusion_from_significance(sqrt_ts, 5, low=3)`` on a smoothed
  random field of 2000x2000 (about 3000 blobs) and on the Fermi GC sqrt_ts;
* erosion: ``binary_erode(mask, 0.1 deg)`` of that field's hysteresis mask, explained
  or not;
* union: ``catalog_mask & significance_mask``;
* tutorial chain on the Fermi GC: 3FHL mask & hysteresis mask, eroded by 0.1 deg.

Each cell is the best of N calls after a first call.  The ratio explain / plain is
the cost of asking; without ``explain`` the builders run the code they ran before
(no provenance is computed or allocated).  gammapy 2.1 has no provenance; its plain
equivalent (the tutorial's ``region_mask`` of the source circles, ``binary_erode``)
is timed for scale where it exists.

    python benchmarks/bench_explain.py [--quick] [--no-gammapy] [--out benchmarks/results/explain.md]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpumask  # noqa: E402
from _harness import (  # noqa: E402
    DATA, _r, _sync, _t, backends, gpu_name, log, machine_line, md_head, md_row, measure, raw_record, write_report)


def _catalog(name):
    from gpumask.catalog import SourceCatalog  # noqa: PLC0415

    path = DATA / "catalogs" / "fermi" / name
    return SourceCatalog.read(path) if path.exists() else gpumask.demo_catalog()


def _regions(rng, n):
    out = []
    for _ in range(n):
        lon, lat = rng.uniform(-19.5, 19.5), rng.uniform(-3.8, 3.8)
        if rng.random() < 0.7:
            out.append(f"galactic;circle({lon % 360:.4f},{lat:.4f},{rng.uniform(0.05, 0.4):.3f})")
        else:
            out.append(f"galactic;box({lon % 360:.4f},{lat:.4f},{rng.uniform(0.1, 0.6):.3f},"
                       f"{rng.uniform(0.1, 0.4):.3f},{rng.uniform(0, 90):.1f})")
    return out


def _field(shape, seed=0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape[::-1]), 4) * 40


def _gc_sqrt_ts(be):
    path = DATA / "fermi-3fhl-gc" / "fermi-3fhl-gc.fits.gz"
    if not path.exists():
        return None
    ds = gpumask.read_dataset(path, backend=be)
    sq = gpumask.ExcessMapEstimator("0.2 deg").run(ds)["sqrt_ts"]
    return sq.slice_by_idx({"energy": 0}) if sq.data.ndim == 3 else sq


def run(args):
    cols, why = backends()
    quick = args.quick
    plane = (1000, 200) if quick else (2000, 400)
    square = (1000, 1000) if quick else (2000, 2000)
    fgl = _catalog("gll_psc_v16.fit.gz")
    fhl = _catalog("gll_psch_v13.fit.gz")
    regions = _regions(np.random.default_rng(1), 300)
    field = _field(square)
    target = 0.3 if quick else 1.0
    rows = []

    def time_pair(case, size, be, make):
        """Time make(False) and make(True) on backend ``be``."""
        sync = _sync(be)
        plain, _ = measure(lambda: make(False), sync, target=target, max_repeat=20)
        explained, out = measure(lambda: make(True), sync, target=target, max_repeat=20)
        n = out.provenance.n_components if out.provenance is not None else 0
        rows.append(dict(case=case, size=size, backend=be, plain=plain["best"], explain=explained["best"],
                         first=explained["first"], components=n))
        log(f"{case:<22s} {be:<5s} plain {plain['best']:.4f} s explain {explained['best']:.4f} s ({n} components)")

    for be in cols:
        with gpumask.use_backend(be):
            geom = gpumask.WcsGeom.create(npix=plane, binsz=0.02, frame="galactic", skydir=(0, 0))
            size = f"{plane[0]}x{plane[1]}"
            time_pair("catalog 3FGL rules", size, be, lambda ex: gpumask.exclusion_mask(geom, fgl, explain=ex))
            time_pair("300 ds9 regions", size, be,
                      lambda ex: geom.region_mask(regions, inside=False, explain=ex))
            sgeom = gpumask.WcsGeom.create(npix=square, binsz=0.02, frame="galactic")
            sig = gpumask.Map.from_geom(sgeom, data=field, backend=be)
            size = f"{square[0]}x{square[1]}"
            time_pair("hysteresis 5/3", size, be,
                      lambda ex: gpumask.exclusion_from_significance(sig, 5, low=3, explain=ex))
            masks = {ex: gpumask.exclusion_from_significance(sig, 5, low=3, explain=ex) for ex in (False, True)}
            time_pair("erode 0.1 deg", size, be, lambda ex: gpumask.binary_erode(masks[ex], "0.1 deg"))
            sq = _gc_sqrt_ts(be)
            if sq is not None:
                g = sq.geom
                size = "x".join(str(v) for v in g.data_shape[::-1]) + " GC"
                time_pair("hysteresis 5/3", size, be,
                          lambda ex: gpumask.exclusion_from_significance(sq, 5, low=3, explain=ex))
                parts = {ex: (gpumask.exclusion_mask(g, fhl, explain=ex),
                              gpumask.exclusion_from_significance(sq, 5, low=3, explain=ex)) for ex in (False, True)}
                time_pair("union (catalog & sig)", size, be, lambda ex: parts[ex][0] & parts[ex][1])
                time_pair("tutorial chain", size, be, lambda ex: gpumask.binary_erode(
                    gpumask.exclusion_mask(g, fhl, explain=ex)
                    & gpumask.exclusion_from_significance(sq, 5, low=3, explain=ex), "0.1 deg"))
    gammapy = {} if args.no_gammapy else _gammapy(plane, fgl, target)
    return dict(rows=rows, cupy=why, gammapy=gammapy)


def _gammapy(plane, fgl, target):
    """gammapy 2.1's plain equivalents on the plane map: region_mask of 0.3 deg circles
    around the 3FGL sources on it, and binary_erode of that mask."""
    try:
        from gammapy.maps import WcsGeom  # noqa: PLC0415
        from regions import CircleSkyRegion  # noqa: PLC0415
    except ImportError:
        return {}
    import astropy.units as u  # noqa: PLC0415

    g = WcsGeom.create(npix=plane, binsz=0.02, frame="galactic", skydir=(0, 0))
    geom = gpumask.WcsGeom.create(npix=plane, binsz=0.02, frame="galactic", skydir=(0, 0))
    sel = gpumask.masks.touching(geom, fgl, radius="0.3 deg")
    circles = [CircleSkyRegion(p, 0.3 * u.deg) for p in fgl.positions[sel]]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            mask = g.region_mask(circles, inside=False)
            region = time.perf_counter() - t0
            erode, _ = measure(lambda: mask.binary_erode("0.1 deg"), None, target=target, max_repeat=5)
        ours, _ = measure(lambda: gpumask.exclusion_mask(geom, fgl, radius="0.3 deg", explain=True), None,
                          target=target, max_repeat=20)
    finally:
        sys.setrecursionlimit(limit)
    return {"n_sources": int(sel.sum()), "region_mask": region, "binary_erode": erode["best"],
            "gpumask_explained_region": ours["best"]}


def report(result, args, total):
    lines = [f"# Mask provenance: explain=True vs the plain mask{' (--quick)' if args.quick else ''}", "",
             machine_line(gpu_name(), {}, result["cupy"]), "",
             "Best of N calls after a first call; 'explain / plain' is what asking for the provenance costs "
             "(the mask is identical).", ""]
    lines += md_head(["case", "map", "backend", "plain (s)", "explain (s)", "explain / plain", "components",
                      "explain 1st call (s)"])
    for r in result["rows"]:
        lines.append(md_row([r["case"], r["size"], r["backend"], _t(r["plain"]), _t(r["explain"]),
                             _r(r["explain"] / r["plain"]), str(r["components"]), _t(r["first"])]))
    g = result["gammapy"]
    if g:
        lines += ["", f"gammapy 2.1 on the plane map ({g['n_sources']} 3FGL sources, 0.3 deg circles): "
                  f"region_mask {_t(g['region_mask'])} s, binary_erode 0.1 deg {_t(g['binary_erode'])} s; "
                  f"gpumask exclusion_mask of the same circles with explain=True (numpy) "
                  f"{_t(g['gpumask_explained_region'])} s: gammapy's plain mask / gpumask's explained mask = "
                  f"{_r(g['region_mask'] / g['gpumask_explained_region'])}."]
    lines += ["", f"Total runtime {total:.0f} s."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="half-size maps, shorter timing")
    parser.add_argument("--no-gammapy", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/explain.md")
    args = parser.parse_args()
    gpumask.set_progress(False)
    t0 = time.perf_counter()
    result = run(args)
    total = time.perf_counter() - t0
    write_report(args.out, report(result, args, total), raw_record(result, total, args, gpu_name()))


if __name__ == "__main__":
    main()
