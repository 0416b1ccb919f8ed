"""Region-mask benchmarks: gpumask (numpy, cupy; method "sky" and "pixel") vs gammapy 2.1.

Times ``WcsGeom.region_mask(regions)`` on the map sizes the other benchmarks use
(250x250 around the Crab, 2000x2000 at the Galactic centre, 18000x500 Galactic
plane at 0.02 deg, 3600x1800 all-sky at 0.1 deg; all CAR, galactic) for 1, 100,
1000 and 3034 circles of 0.3 deg at 3FGL source positions and for a seeded mix of
300 shapes (circles, ellipses, boxes, annuli, polygons; centres in galactic and
icrs).  gammapy evaluates every region on every pixel, so its cost grows as
regions x pixels; cases predicted above ``--gammapy-budget`` seconds are not run
and their time is reported as a linear extrapolation, marked ``~``.

    python benchmarks/bench_regions.py [--quick] [--gammapy-budget 60] [--maps 250,2000]
        [--sets 1,100,mix] [--no-gammapy] [--out benchmarks/results/regions.md]

Every call builds a fresh geometry.  A gpumask cell is the best (minimum) of N
calls after a first call, which is reported apart ("1st call": gpumask's per-field
caches cleared before it, so it is what a first mask on a new field costs); N
grows until the repeats take ``--target`` seconds.  The very first call per
backend and method in the process (imports, CUDA kernel compilation) is reported
under the table.  A gammapy cell
is the best of its calls, the first included (gammapy compiles nothing); slow
cases run once.  On the GPU the device is synchronised before the clock stops.
Absolute times are noise on shared machines: compare the ratios gammapy/gpumask.

Correctness is checked on the way: ``method="pixel"`` must equal gammapy's mask
bit for bit (column "pixel != gammapy", a count of differing pixels), the cupy
masks must equal the numpy ones, and the table gives the number of pixels inside
the regions (excluded pixels of an exclusion mask) for sky, pixel and gammapy.
The raw numbers go to a JSON file next to the markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from _harness import (
    DATA,
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
    progress_parts,
    raw_record,
    ref_cell,
    write_report,
)
from astropy.coordinates import SkyCoord

import gpumask

CATALOG = DATA / "catalogs" / "fermi" / "gll_psc_v16.fit.gz"
CRAB = SkyCoord(83.633083, 22.0145, unit="deg")
RADIUS = 0.3 * u.deg

MAPS = {
    "250x250 Crab": dict(npix=(250, 250), binsz=0.02, proj="CAR", frame="galactic", skydir=CRAB),
    "2000x2000 GC": dict(npix=(2000, 2000), binsz=0.01, proj="CAR", frame="galactic", skydir=(0, 0)),
    "18000x500 plane": dict(npix=(18000, 500), binsz=0.02, proj="CAR", frame="galactic", skydir=(0, 0)),
    "3600x1800 all-sky": dict(npix=(3600, 1800), binsz=0.1, proj="CAR", frame="galactic", skydir=(0, 0)),
}
# (label, number of regions, kind)
SETS = [
    ("1 circle", 1, "circles"),
    ("100 circles", 100, "circles"),
    ("1000 circles", 1000, "circles"),
    ("3034 circles", 3034, "circles"),
    ("mix 300", 300, "mix"),
]
QUICK = {"250x250 Crab": None, "2000x2000 GC": ("1 circle", "100 circles")}  # None: every set
METHODS = ("sky", "pixel")


# ----------------------------------------------------------------------------- regions


def load_catalog(path=CATALOG):
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "hdu= was not specified": the first table is the source list
        table = Table.read(path, hdu=1)
    return SkyCoord(np.asarray(table["RAJ2000"], float), np.asarray(table["DEJ2000"], float),
                    unit="deg", frame="icrs")


def _inside(coords, wcs, npix):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = coords.to_pixel(wcs, origin=0)
    nx, ny = npix
    ok = np.isfinite(x) & np.isfinite(y)
    ok[ok] &= (x[ok] >= -0.5) & (x[ok] < nx - 0.5) & (y[ok] >= -0.5) & (y[ok] < ny - 0.5)
    return ok


def circle_set(coords, n, wcs, npix, seed):
    """``n`` circles at catalogue positions: all of them, or a seeded random subset
    (for n <= 100 preferring sources inside the map so the mask is not empty)."""
    from regions import CircleSkyRegion

    rng = np.random.default_rng(seed)
    if n >= len(coords):
        idx = np.arange(len(coords))
    elif n <= 100:
        inside = _inside(coords, wcs, npix)
        idx = np.concatenate([rng.permutation(np.flatnonzero(inside)),
                              rng.permutation(np.flatnonzero(~inside))])[:n]
    else:
        idx = rng.choice(len(coords), n, replace=False)
    return [CircleSkyRegion(coords[int(i)], RADIUS) for i in idx]


def mix_set(n, wcs, npix, seed):
    """``n`` shapes spread over the map: circles, ellipses, boxes (random angles),
    circle annuli and polygons (3-8 vertices), sizes 0.05-0.5 deg; a third of the
    centres given in icrs, the rest in galactic."""
    from regions import (
        CircleAnnulusSkyRegion,
        CircleSkyRegion,
        EllipseSkyRegion,
        PolygonSkyRegion,
        RectangleSkyRegion,
    )

    rng = np.random.default_rng(seed)
    nx, ny = npix
    centres = wcs.pixel_to_world(rng.uniform(-0.5, nx - 0.5, n), rng.uniform(-0.5, ny - 0.5, n))
    icrs = centres.icrs
    out = []
    for i in range(n):
        c = icrs[i] if i % 3 == 0 else centres[i]
        s = rng.uniform(0.05, 0.5)
        kind = i % 5
        if kind == 0:
            out.append(CircleSkyRegion(c, s * u.deg))
        elif kind in (1, 2):
            cls = EllipseSkyRegion if kind == 1 else RectangleSkyRegion
            out.append(cls(c, 2 * s * u.deg, 2 * s * rng.uniform(0.2, 1.0) * u.deg,
                           angle=rng.uniform(0, 180) * u.deg))
        elif kind == 3:
            out.append(CircleAnnulusSkyRegion(c, s * rng.uniform(0.3, 0.7) * u.deg, s * u.deg))
        else:
            k = int(rng.integers(3, 9))
            pa = np.sort(rng.uniform(0, 360, k)) * u.deg
            sep = s * rng.uniform(0.3, 1.0, k) * u.deg
            out.append(PolygonSkyRegion(c.directional_offset_by(pa, sep)))
    return out


# ----------------------------------------------------------------------------- timing


def clear_field_caches():
    """Forget gpumask's per-field caches (the tile bounding caps, kept per WCS), so
    a case's first call costs what a user's first mask on a new field costs."""
    from gpumask.masks import _region_raster

    cache = getattr(_region_raster, "_CAPS_CACHE", None)
    if cache is not None:
        cache.clear()


class GammapyPredictor:
    """Linear extrapolation of gammapy's time from the circle cases measured so far.

    gammapy's cost is ``a + b n`` for n regions, with a and b growing with the
    pixel count.  On a map with two or more measured points: the line through the
    two nearest in n.  With one point (n1, t1): ``t1 + b (n - n1)``, the slope b
    taken from the measured map nearest in pixel count, scaled by the pixel ratio.
    With none: that map's prediction at n, scaled by the pixel ratio.  Other
    shapes (the mix) cost more per region than circles: their prediction is the
    circles' one times the mix/circles ratio measured on the nearest map.
    """

    def __init__(self):
        self.points = {}  # map label -> (npixels, {n_regions: fastest seconds})
        self.other = {}  # (kind, map label) -> (npixels, n_regions, seconds, circles' prediction)

    def add_other(self, kind, label, npixels, n, seconds):
        self.other[(kind, label)] = (npixels, n, seconds, self.predict(label, npixels, n))

    def add(self, label, npixels, n, seconds):
        pts = self.points.setdefault(label, (npixels, {}))[1]
        pts[n] = min(seconds, pts.get(n, np.inf))

    @staticmethod
    def _line(pts, n):
        """(prediction at n, slope) from {n: t}; slope None with one point."""
        ordered = sorted(pts.items(), key=lambda p: (abs(p[0] - n), -p[0]))
        n1, t1 = ordered[0]
        if len(ordered) == 1:
            return t1 * n / n1, None
        n2, t2 = ordered[1]
        slope = (t2 - t1) / (n2 - n1)
        if slope <= 0:
            return t1 * n / n1, None
        return max(t1 + slope * (n - n1), 0.0), slope

    def _nearest_map(self, npixels, label, need_slope):
        others = [(abs(np.log(pp / npixels)), lab) for lab, (pp, pts) in self.points.items()
                  if lab != label and (len(pts) >= 2 or not need_slope)]
        return min(others)[1] if others else None

    def predict(self, label, npixels, n, kind="circles"):
        base = self._predict_circles(label, npixels, n)
        if kind == "circles" or base is None:
            return base
        ratios = [(abs(np.log(pp / npixels)), t / c) for (k, _), (pp, _, t, c) in self.other.items()
                  if k == kind and c]
        return base * min(ratios)[1] if ratios else base

    def _predict_circles(self, label, npixels, n):
        if label in self.points and len(self.points[label][1]) >= 2:
            return self._line(self.points[label][1], n)[0]
        if label in self.points:  # one point: borrow a slope
            (n1, t1), = self.points[label][1].items()
            other = self._nearest_map(npixels, label, need_slope=True)
            if other is None:
                return t1 * n / n1
            pp, pts = self.points[other]
            _, slope = self._line(pts, n)
            if slope is None:
                return t1 * n / n1
            return t1 + slope * npixels / pp * (n - n1)
        other = self._nearest_map(npixels, label, need_slope=False)
        if other is None:
            return None
        pp, pts = self.points[other]
        return self._line(pts, n)[0] * npixels / pp


# ----------------------------------------------------------------------------- run


def run(args):
    cols, cupy_why = backends()
    try:
        import gammapy
        from gammapy.maps import WcsGeom as GGeom

        gp_version = gammapy.__version__
    except ImportError as exc:
        GGeom, gp_version = None, None
        print(f"gammapy not importable ({exc}); gpumask only", file=sys.stderr)
    if args.no_gammapy:
        GGeom = None
    if GGeom is not None:
        sys.setrecursionlimit(100000)  # gammapy nests N regions into N-deep compound unions

    maps = {k: v for k, v in MAPS.items() if _keep(k, args.maps)}
    sets = [s for s in SETS if _keep(s[0], args.sets, whole_words=True)]
    if args.quick:
        maps = {k: v for k, v in maps.items() if k in QUICK}
    coords = load_catalog()

    # -- process-cold first calls (imports, kernel compilation), then warm-up
    first_calls = {}
    warm_geom = dict(npix=(250, 250), binsz=0.02, proj="CAR", frame="galactic", skydir=CRAB)
    wg = gpumask.WcsGeom.create(**warm_geom)
    warm_regions = mix_set(50, wg.wcs, wg.npix, seed=0) + circle_set(coords, 100, wg.wcs, wg.npix, seed=0)
    for be in cols:
        for method in METHODS:
            t, _ = _timed(lambda be=be, m=method: gpumask.WcsGeom.create(**warm_geom).region_mask(
                warm_regions, method=m, backend=be), _sync(be))
            first_calls[f"{be} {method}"] = t
            log(f"first call in process, {be} {method}: {t:.3f} s")
    if GGeom is not None:
        first_calls["gammapy"], _ = _timed(lambda: GGeom.create(**warm_geom).region_mask(warm_regions), None)

    predictor = GammapyPredictor()
    budget = args.gammapy_budget
    records = []
    for map_label, kw in maps.items():
        geom = gpumask.WcsGeom.create(**kw)
        npixels = int(np.prod(geom.npix))
        for set_label, n, kind in sets:
            if args.quick and QUICK[map_label] is not None and set_label not in QUICK[map_label]:
                continue
            seed = [20240, list(MAPS).index(map_label), SETS.index((set_label, n, kind))]  # as in a full run
            if kind == "circles":
                regions = circle_set(coords, n, geom.wcs, geom.npix, seed)
            else:
                regions = mix_set(n, geom.wcs, geom.npix, seed)
            n = len(regions)
            rec = dict(map=map_label, regions=set_label, n_regions=n, kind=kind,
                       npix=list(geom.npix), geom=_jsonable(kw), gpumask={}, counts={}, diff={})
            masks = {}
            for be in cols:
                for method in METHODS:
                    def ours(be=be, method=method, kw=kw, regions=regions):
                        return gpumask.WcsGeom.create(**kw).region_mask(regions, method=method, backend=be)

                    timing, m = measure(ours, _sync(be), args.target, args.max_repeat,
                                        before_first=clear_field_caches)
                    rec["gpumask"][f"{be} {method}"] = timing
                    masks[(be, method)] = np.asarray(m.to_numpy())
                    del m
            for method in METHODS:
                rec["counts"][method] = int(np.count_nonzero(masks[("numpy", method)]))
                if "cupy" in cols:
                    rec["diff"][f"cupy vs numpy {method}"] = int(
                        np.count_nonzero(masks[("cupy", method)] != masks[("numpy", method)]))
            rec["diff"]["sky vs pixel"] = int(np.count_nonzero(masks[("numpy", "sky")] != masks[("numpy", "pixel")]))

            # -- gammapy
            gp = None
            if GGeom is not None:
                pred = predictor.predict(map_label, npixels, n, kind)
                limit = budget * (10 if (kind == "circles" and n <= 100) else 1)
                if pred is not None and pred > limit:
                    gp = dict(skipped=True, predicted=pred)
                else:
                    timing, gm = measure(lambda kw=kw, r=regions: GGeom.create(**kw).region_mask(r), None,
                                         args.target, args.max_repeat, first_counts=True)
                    gp = dict(skipped=False, predicted=pred, **timing)
                    gdata = np.asarray(gm.data)
                    rec["counts"]["gammapy"] = int(np.count_nonzero(gdata))
                    rec["diff"]["pixel vs gammapy"] = int(np.count_nonzero(masks[("numpy", "pixel")] != gdata))
                    if rec["diff"]["pixel vs gammapy"]:
                        rec["diff"]["pixel vs gammapy detail"] = _diff_detail(masks[("numpy", "pixel")], gdata)
                    del gm, gdata
                    if kind == "circles":
                        predictor.add(map_label, npixels, n, timing["best"])
                    else:
                        predictor.add_other(kind, map_label, npixels, n, timing["best"])
            rec["gammapy"] = gp
            del masks
            records.append(rec)
            log(_progress(rec, cols))
    return dict(records=records, backends=cols, cupy_status=cupy_why, first_calls=first_calls,
                gammapy_version=gp_version)


def _keep(label, patterns, whole_words=False):
    """Whether ``label`` matches one of the comma-separated ``patterns`` (substrings;
    with ``whole_words`` a pattern must be a word of the label: "100" keeps
    "100 circles", not "1000 circles")."""
    if not patterns:
        return True
    low = label.lower()
    words = low.split()
    for p in (p.strip().lower() for p in patterns.split(",")):
        if p and (p in words or p.rstrip("s") in [w.rstrip("s") for w in words] or p == low
                  or (not whole_words and p in low)):
            return True
    return False


def _jsonable(kw):
    out = {}
    for k, v in kw.items():
        if isinstance(v, SkyCoord):
            v = f"SkyCoord({v.spherical.lon.deg}, {v.spherical.lat.deg}, frame={v.frame.name})"
        out[k] = v
    return out


def _diff_detail(ours, theirs):
    iy, ix = np.nonzero(ours != theirs)
    return dict(
        only_gpumask=int(np.count_nonzero(ours & ~theirs)),
        only_gammapy=int(np.count_nonzero(theirs & ~ours)),
        first_pixels_yx=[[int(a), int(b)] for a, b in zip(iy[:20], ix[:20])],
    )


def _progress(rec, cols):
    parts = [f"{rec['map']:>18} | {rec['regions']:>12} |"]
    parts += progress_parts(rec["gpumask"], rec["gammapy"])
    parts.append(f"counts {rec['counts']} diff {rec['diff']}")
    return " ".join(parts)


# ----------------------------------------------------------------------------- report


def to_markdown(result):
    cols = result["backends"]
    keys = [f"{be} {m}" for be in cols for m in METHODS]
    header = ["map", "regions"] + [f"gpumask {k} (s)" for k in keys] + ["gammapy 2.1 (s)"]
    header += [f"{be} 1st call sky / pixel (s)" for be in cols]
    header += [f"gammapy / {k}" for k in keys]
    header += ["in-region px sky / pixel / gammapy", "pixel != gammapy (px)"]
    if "cupy" in cols:
        header.append("cupy != numpy (px, sky / pixel)")
    lines = md_head(header)
    for rec in result["records"]:
        row = [rec["map"], rec["regions"]]
        row += [_t(rec["gpumask"][k]["best"]) for k in keys]
        cell, t, mark = ref_cell(rec["gammapy"], " (extrapolated)")
        row.append(cell)
        row += [" / ".join(_t(rec["gpumask"][f"{be} {m}"]["first"]) for m in METHODS) for be in cols]
        row += ["-" if t is None else mark + _r(t / rec["gpumask"][k]["best"]) for k in keys]
        c = rec["counts"]
        row.append(f"{c['sky']} / {c['pixel']} / {c.get('gammapy', '-')}")
        row.append(str(rec["diff"].get("pixel vs gammapy", "-")))
        if "cupy" in cols:
            row.append(f"{rec['diff']['cupy vs numpy sky']} / {rec['diff']['cupy vs numpy pixel']}")
        lines.append(md_row(row))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 250x250 (every set) and 2000x2000 (1 and 100 circles)")
    parser.add_argument("--gammapy-budget", type=float, default=None,
                        help="skip gammapy cases predicted slower than this many seconds "
                        "(1 and 100 circles: 10x this); default 60, 10 with --quick")
    parser.add_argument("--no-gammapy", action="store_true", help="time gpumask only")
    parser.add_argument("--maps", default="", help="comma-separated substrings of map labels "
                        f"to keep ({', '.join(MAPS)})")
    parser.add_argument("--sets", default="", help="comma-separated words of region-set "
                        f"labels to keep ({', '.join(s[0] for s in SETS)})")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds of repeated calls per cell (default 1, 0.2 with --quick)")
    parser.add_argument("--max-repeat", type=int, default=30)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "regions.md"))
    args = parser.parse_args()
    if args.gammapy_budget is None:
        args.gammapy_budget = 10.0 if args.quick else 60.0
    if args.target is None:
        args.target = 0.2 if args.quick else 1.0

    t0 = time.perf_counter()
    result = run(args)
    total = time.perf_counter() - t0
    gpu = gpu_name()
    import regions

    fc = first_calls_line(result["first_calls"])
    versions = {"regions": regions.__version__, "gammapy": result["gammapy_version"] or "not installed"}
    head = (
        "# gpumask region-mask benchmarks\n\n"
        f"{machine_line(gpu, versions, result['cupy_status'])}\n\n"
        f"Best of N calls after a first call (\"1st call\": field caches cleared, kernels "
        f"already compiled), fresh geometry each call; circles r = 0.3 deg at 3FGL positions; "
        f"gammapy budget {args.gammapy_budget:g} s (\"~\": extrapolated, not run); "
        f"total runtime {total:.0f} s.\n\n"
    )
    foot = (
        f"\nFirst call in the process (imports, kernel compilation; 150 regions on 250x250): {fc}\n"
    )
    text = head + to_markdown(result) + "\n" + foot
    write_report(args.out, text, raw_record(result, total, args, gpu, regions=regions.__version__))


if __name__ == "__main__":
    main()
