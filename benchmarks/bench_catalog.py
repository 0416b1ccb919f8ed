"""Catalog exclusion-mask benchmarks: gpumask.exclusion_mask (numpy, cupy; "sky", "pixel") vs gammapy 2.1.

Times ``gpumask.exclusion_mask(geom, catalog, radius=...)`` with catalogs read by
``gpumask.catalog.SourceCatalog.read`` (3FGL, 3FHL, HGPS, 1LHAASO) on three maps: the
seed geometry of gammapy's exclusion-mask tutorial (5 x 5 deg around the Crab, 0.02
deg, galactic: 250x250), the 18000x500 Galactic plane at 0.02 deg and a 3600x1800
all-sky map at 0.1 deg (CAR, galactic).  Cases: the tutorial's rule, a 0.3 deg circle
around every 3FGL source, and the default per-source morphology rules (no radius)
for each catalog and for all four together (``catalog=[...]``).

    python benchmarks/bench_catalog.py [--quick] [--gammapy-budget 60] [--maps plane]
        [--cases 3FGL,HGPS] [--no-gammapy] [--out benchmarks/results/catalog.md]

gammapy has no catalog helper, so the reference is what a gammapy user writes:
``geom.region_mask(regions, inside=False)`` on a gammapy ``WcsGeom`` with the same
parameters (an all-True map where no source touches it: ``region_mask`` fails on an
empty list), ``regions`` being the regions objects of the sources that touch the map
(``SourceCatalog.to_regions`` of the sources selected with
``gpumask.masks.catalog_mask.touching``; a 0.3 deg ``CircleSkyRegion`` each for the
tutorial's rule).  The regions are built outside the timed call (their cost, the
selection included, is reported apart as "prep").  gammapy folds the regions into a
nested union and raises RecursionError from ~973 regions: the recursion limit is
raised to 20000 for its calls.  Its cost grows as regions x pixels: a case predicted
above ``--gammapy-budget`` seconds is timed on a seeded random subset of k of its n
regions (k sized to take about ``--subset-seconds``) and reported as t_k * n / k,
marked ``~`` (this counts gammapy's fixed per-call cost n / k times, a slight
overestimate).

Every call builds a fresh geometry; the catalogs are read once, outside the timing.
A gpumask cell is the best (minimum) of N calls after a first call, which is reported
apart ("1st call": gpumask's per-field caches cleared before it); N grows until the
repeats take ``--target`` seconds.  The very first call per backend and method in the
process is reported under the table.  A gammapy cell is the best of its calls, the
first included; slow cases run once.  On the GPU the device is synchronised before
the clock stops.  Absolute times are noise on shared machines: compare the ratios
gammapy/gpumask.

Correctness is checked on the way: ``method="pixel"`` must equal gammapy's mask bit
for bit (column "pixel != gammapy", a count of differing pixels; for an extrapolated
case the check is made on the k-source subset: ``exclusion_mask`` of the subset
catalogs vs gammapy's mask of the same k regions), the cupy masks must equal the
numpy ones, and the table gives the number of excluded pixels (sky, pixel, gammapy)
and of sources touching the map.  The raw numbers go to a JSON file next to the
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
from gpumask.catalog import SourceCatalog
from gpumask.masks.catalog_mask import touching

CATALOG_FILES = {
    "3FGL": DATA / "catalogs" / "fermi" / "gll_psc_v16.fit.gz",
    "3FHL": DATA / "catalogs" / "fermi" / "gll_psch_v13.fit.gz",
    "HGPS": DATA / "catalogs" / "hgps_catalog_v1.fits.gz",
    "1LHAASO": DATA / "catalogs" / "1LHAASO_catalog.fits",
}
CRAB = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")
TUTORIAL_RADIUS = "0.3 deg"

MAPS = {
    "250x250 Crab (tutorial)": dict(skydir=CRAB, width="5 deg", binsz=0.02, frame="galactic"),
    "18000x500 plane": dict(npix=(18000, 500), binsz=0.02, proj="CAR", frame="galactic", skydir=(0, 0)),
    "3600x1800 all-sky": dict(npix=(3600, 1800), binsz=0.1, proj="CAR", frame="galactic", skydir=(0, 0)),
}
# (label, catalogs, radius): radius None = the default morphology rules
CASES = [
    ("3FGL r=0.3 deg", ("3FGL",), TUTORIAL_RADIUS),
    ("3FGL rules", ("3FGL",), None),
    ("3FHL rules", ("3FHL",), None),
    ("HGPS rules", ("HGPS",), None),
    ("1LHAASO rules", ("1LHAASO",), None),
    ("all four rules", ("3FGL", "3FHL", "HGPS", "1LHAASO"), None),
]
QUICK = {"250x250 Crab (tutorial)": None, "3600x1800 all-sky": ("HGPS rules",)}  # None: every case
METHODS = ("sky", "pixel")
RECURSION_LIMIT = 20000
PROBE = 10  # regions of the first gammapy timing on a map, which sizes the later ones


# ----------------------------------------------------------------------------- catalogs


def load_catalogs():
    """``({key: SourceCatalog}, {key: read seconds})``."""
    cats, read_s = {}, {}
    for key, path in CATALOG_FILES.items():
        t0 = time.perf_counter()
        cats[key] = SourceCatalog.read(path)
        read_s[key] = time.perf_counter() - t0
    return cats, read_s


def _mask_arg(cats):
    """``exclusion_mask``'s catalog argument: one catalog, or the list."""
    return cats[0] if len(cats) == 1 else list(cats)


def gammapy_regions(geom, cats, radius):
    """What a gammapy user prepares: the regions objects of the sources touching ``geom``.

    Returns
    -------
    tuple
        ``(regions list, owners, selections, seconds)``: ``owners`` an ``(n, 2)`` array
        of (catalog number, source index) per region, ``selections`` the boolean
        touching arrays per catalog, ``seconds`` the cost of selection and building.
    """
    t0 = time.perf_counter()
    regions, owners, sels = [], [], []
    for ci, cat in enumerate(cats):
        sel = touching(geom, cat, radius=radius)
        sels.append(sel)
        if sel.any():
            regions.extend(cat.select(sel).to_regions(radius=radius))
            owners.extend((ci, int(j)) for j in np.flatnonzero(sel))
    seconds = time.perf_counter() - t0
    return regions, np.array(owners, dtype=np.int64).reshape(-1, 2), sels, seconds


def subset_catalogs(cats, owners, picked):
    """The catalogs restricted to the regions ``picked`` (indices into ``owners``); empty
    ones left out."""
    out = []
    for ci, cat in enumerate(cats):
        keep = np.zeros(len(cat), bool)
        rows = owners[picked]
        keep[rows[rows[:, 0] == ci, 1]] = True
        if keep.any():
            out.append(cat.select(keep))
    return out


# ----------------------------------------------------------------------------- timing


def clear_field_caches():
    """Forget gpumask's per-field caches (the tile bounding caps, kept per WCS), so
    a case's first call costs what a user's first mask on a new field costs."""
    from gpumask.masks import _region_raster

    cache = getattr(_region_raster, "_CAPS_CACHE", None)
    if cache is not None:
        cache.clear()


def gammapy_mask(GGeom, kw, regions):
    """The gammapy user's exclusion mask (True = usable).  gammapy's ``region_mask``
    fails on an empty list, so no source on the map gives an all-True map."""
    geom = GGeom.create(**kw)
    if not regions:
        from gammapy.maps import Map

        return Map.from_geom(geom, data=np.ones(geom.data_shape, bool))
    return geom.region_mask(regions, inside=False)


def time_gammapy(GGeom, kw, regions, per_region, args, rng):
    """Time gammapy on all ``regions`` or, predicted over budget, on a subset.

    Parameters
    ----------
    per_region : dict
        This map's state: ``"s"``, seconds per region measured so far (an upper
        estimate: the fixed per-call cost is included), updated here.

    Returns
    -------
    tuple
        ``(cell dict, gammapy mask data or None, picked indices or None)``: the mask
        and ``picked`` (indices into ``regions``, sorted) belong to the subset when
        the case was extrapolated, the mask to the full case otherwise.
    """
    n = len(regions)
    order = rng.permutation(n)
    probe = None
    if per_region.get("s") is None and n > PROBE:
        picked = np.sort(order[:PROBE])
        t, gm = _timed(lambda: gammapy_mask(GGeom, kw, [regions[i] for i in picked]), None)
        per_region["s"] = t / PROBE
        probe = dict(k=PROBE, seconds=t, picked=picked, mask=np.asarray(gm.data))
        del gm
    pred = None if per_region.get("s") is None else per_region["s"] * n
    if pred is None or pred <= args.gammapy_budget:
        timing, gm = measure(lambda: gammapy_mask(GGeom, kw, regions), None, args.target,
                             args.max_repeat, first_counts=True)
        if n:
            per_region["s"] = timing["best"] / n
        return dict(skipped=False, predicted=pred, **timing), np.asarray(gm.data), None
    k = int(np.clip(args.subset_seconds / per_region["s"], PROBE, n - 1))
    if probe is not None and k == PROBE:
        timing = {"first": probe["seconds"], "best": probe["seconds"], "n": 1, "times": [probe["seconds"]]}
        picked, gdata = probe["picked"], probe["mask"]
    else:
        picked = np.sort(order[:k])
        sub = [regions[i] for i in picked]
        timing, gm = measure(lambda: gammapy_mask(GGeom, kw, sub), None, args.target, args.max_repeat,
                             first_counts=True)
        gdata = np.asarray(gm.data)
        del gm
    per_region["s"] = timing["best"] / k
    cell = dict(skipped=True, predicted=timing["best"] * n / k, predicted_before=pred, k=k, n_regions=n,
                subset=timing)
    return cell, gdata, picked


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
        sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))  # N-deep nested unions

    maps = {k: v for k, v in MAPS.items() if _keep(k, args.maps)}
    cases = [c for c in CASES if _keep(c[0], args.cases)]
    if args.quick:
        maps = {k: v for k, v in maps.items() if k in QUICK}
    cats, read_s = load_catalogs()
    log("catalogs: " + ", ".join(f"{k} {len(c)} sources ({read_s[k]:.2f} s)" for k, c in cats.items()))

    # -- process-cold first calls (imports, kernel compilation), then warm-up
    first_calls = {}
    warm_geom = MAPS["250x250 Crab (tutorial)"]
    every = list(cats.values())
    for be in cols:
        for method in METHODS:
            t, _ = _timed(lambda be=be, m=method: gpumask.exclusion_mask(
                gpumask.WcsGeom.create(**warm_geom), every, method=m, backend=be), _sync(be))
            first_calls[f"{be} {method}"] = t
            log(f"first call in process, {be} {method}: {t:.3f} s")
    if GGeom is not None:
        warm_regions = gammapy_regions(gpumask.WcsGeom.create(**warm_geom), every, None)[0]
        first_calls["gammapy"], _ = _timed(lambda: gammapy_mask(GGeom, warm_geom, warm_regions), None)

    records = []
    for mi, (map_label, kw) in enumerate(maps.items()):
        geom = gpumask.WcsGeom.create(**kw)
        per_region = {}  # gammapy seconds per region on this map
        for case_label, keys, radius in cases:
            if args.quick and QUICK[map_label] is not None and case_label not in QUICK[map_label]:
                continue
            case_cats = [cats[k] for k in keys]
            regions, owners, sels, prep_s = gammapy_regions(geom, case_cats, radius)
            n = len(regions)
            rec = dict(map=map_label, case=case_label, catalogs=list(keys), radius=radius, npix=list(geom.npix),
                       geom=_jsonable(kw), n_sources=int(sum(len(c) for c in case_cats)), n_touching=n,
                       touching_per_catalog={k: int(s.sum()) for k, s in zip(keys, sels)},
                       prep_s=prep_s, gpumask={}, excluded={}, diff={})
            masks = {}
            for be in cols:
                for method in METHODS:
                    def ours(be=be, method=method, kw=kw, arg=_mask_arg(case_cats), radius=radius):
                        return gpumask.exclusion_mask(gpumask.WcsGeom.create(**kw), arg, radius=radius,
                                                      method=method, backend=be)

                    timing, m = measure(ours, _sync(be), args.target, args.max_repeat,
                                        before_first=clear_field_caches)
                    rec["gpumask"][f"{be} {method}"] = timing
                    masks[(be, method)] = np.asarray(m.to_numpy(), dtype=bool)
                    del m
            for method in METHODS:
                rec["excluded"][method] = int(np.count_nonzero(~masks[("numpy", method)]))
                if "cupy" in cols:
                    rec["diff"][f"cupy vs numpy {method}"] = int(
                        np.count_nonzero(masks[("cupy", method)] != masks[("numpy", method)]))
            rec["diff"]["sky vs pixel"] = int(np.count_nonzero(masks[("numpy", "sky")] != masks[("numpy", "pixel")]))

            # -- gammapy
            gp = None
            if GGeom is not None:
                rng = np.random.default_rng([args.seed, list(MAPS).index(map_label), CASES.index(
                    (case_label, keys, radius))])
                gp, gdata, picked = time_gammapy(GGeom, kw, regions, per_region, args, rng)
                if picked is None:
                    ours_pixel = masks[("numpy", "pixel")]
                    rec["excluded"]["gammapy"] = int(np.count_nonzero(~gdata))
                else:  # the check on the subset the extrapolation was timed on
                    sub = subset_catalogs(case_cats, owners, picked)
                    ours_pixel = np.asarray(gpumask.exclusion_mask(
                        gpumask.WcsGeom.create(**kw), sub, radius=radius, method="pixel",
                        backend="numpy").to_numpy(), dtype=bool)
                    rec["excluded"]["gammapy subset"] = int(np.count_nonzero(~gdata))
                    rec["excluded"]["pixel subset"] = int(np.count_nonzero(~ours_pixel))
                rec["diff"]["pixel vs gammapy"] = int(np.count_nonzero(ours_pixel != gdata))
                rec["diff"]["pixel vs gammapy on"] = "all" if picked is None else f"subset of {len(picked)}"
                if rec["diff"]["pixel vs gammapy"]:
                    rec["diff"]["pixel vs gammapy detail"] = _diff_detail(ours_pixel, gdata)
                del gdata
            rec["gammapy"] = gp
            del masks
            records.append(rec)
            log(_progress(rec))
    return dict(records=records, backends=cols, cupy_status=cupy_why, first_calls=first_calls,
                catalog_read_s=read_s, catalog_sizes={k: len(c) for k, c in cats.items()},
                gammapy_version=gp_version, recursion_limit=sys.getrecursionlimit())


def _keep(label, patterns):
    """Whether ``label`` contains one of the comma-separated ``patterns`` (any case)."""
    if not patterns:
        return True
    low = label.lower()
    return any(p and p in low for p in (p.strip().lower() for p in patterns.split(",")))


def _jsonable(kw):
    out = {}
    for k, v in kw.items():
        if isinstance(v, SkyCoord):
            v = f"SkyCoord({v.spherical.lon.deg}, {v.spherical.lat.deg}, frame={v.frame.name})"
        out[k] = v
    return out


def _diff_detail(ours, theirs):
    """Where the (usable = True) masks differ: excluded by one side only."""
    iy, ix = np.nonzero(ours != theirs)
    return dict(
        excluded_only_gpumask=int(np.count_nonzero(~ours & theirs)),
        excluded_only_gammapy=int(np.count_nonzero(~theirs & ours)),
        first_pixels_yx=[[int(a), int(b)] for a, b in zip(iy[:20], ix[:20])],
    )


def _progress(rec):
    parts = [f"{rec['map']:>23} | {rec['case']:>15} | {rec['n_touching']:>4} src |"]
    parts += progress_parts(rec["gpumask"], rec["gammapy"])
    parts.append(f"excluded {rec['excluded']} diff {rec['diff']}")
    return " ".join(parts)


# ----------------------------------------------------------------------------- report


def _diff_cell(rec):
    if "pixel vs gammapy" not in rec["diff"]:
        return "-"
    d = rec["diff"]["pixel vs gammapy"]
    on = rec["diff"]["pixel vs gammapy on"]
    return str(d) if on == "all" else f"{d} (on {on.split()[-1]} src)"


def to_markdown(result):
    cols = result["backends"]
    keys = [f"{be} {m}" for be in cols for m in METHODS]
    header = ["map", "case", "sources touching / in catalog"]
    header += [f"gpumask {k} (s)" for k in keys] + ["gammapy 2.1 (s)", "gammapy prep (s, untimed)"]
    header += [f"{be} 1st call sky / pixel (s)" for be in cols]
    header += [f"gammapy / {k}" for k in keys]
    header += ["excluded px sky / pixel / gammapy", "pixel != gammapy (px)"]
    if "cupy" in cols:
        header.append("cupy != numpy (px, sky / pixel)")
    lines = md_head(header)
    for rec in result["records"]:
        row = [rec["map"], rec["case"], f"{rec['n_touching']} / {rec['n_sources']}"]
        row += [_t(rec["gpumask"][k]["best"]) for k in keys]
        gp = rec["gammapy"]
        note = f" (k={gp['k']})" if gp and gp["skipped"] else ""
        cell, t, mark = ref_cell(gp, note)
        row += [cell, "-" if gp is None else _t(rec["prep_s"])]
        row += [" / ".join(_t(rec["gpumask"][f"{be} {m}"]["first"]) for m in METHODS) for be in cols]
        row += ["-" if t is None else mark + _r(t / rec["gpumask"][k]["best"]) for k in keys]
        e = rec["excluded"]
        row.append(f"{e['sky']} / {e['pixel']} / {e.get('gammapy', '-')}")
        row.append(_diff_cell(rec))
        if "cupy" in cols:
            row.append(f"{rec['diff']['cupy vs numpy sky']} / {rec['diff']['cupy vs numpy pixel']}")
        lines.append(md_row(row))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the tutorial map (every case) and the all-sky map (HGPS rules)")
    parser.add_argument("--gammapy-budget", type=float, default=None,
                        help="extrapolate gammapy cases predicted slower than this many seconds "
                        "from a subset of their regions; default 60, 10 with --quick")
    parser.add_argument("--subset-seconds", type=float, default=None,
                        help="about how long the subset of an extrapolated gammapy case takes "
                        "(default: half the budget)")
    parser.add_argument("--no-gammapy", action="store_true", help="time gpumask only")
    parser.add_argument("--maps", default="", help="comma-separated substrings of map labels "
                        f"to keep ({', '.join(MAPS)})")
    parser.add_argument("--cases", default="", help="comma-separated substrings of case labels "
                        f"to keep ({', '.join(c[0] for c in CASES)})")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds of repeated calls per cell (default 1, 0.2 with --quick)")
    parser.add_argument("--max-repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=20240, help="seed of the gammapy region subsets")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "catalog.md"))
    args = parser.parse_args()
    if args.gammapy_budget is None:
        args.gammapy_budget = 10.0 if args.quick else 60.0
    if args.subset_seconds is None:
        args.subset_seconds = args.gammapy_budget / 2
    if args.target is None:
        args.target = 0.2 if args.quick else 1.0

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # show each distinct warning once
        result = run(args)
    total = time.perf_counter() - t0
    gpu = gpu_name()
    import regions

    fc = first_calls_line(result["first_calls"])
    reads = ", ".join(f"{k} {result['catalog_sizes'][k]} sources {v:.2f} s"
                      for k, v in result["catalog_read_s"].items())
    versions = {"regions": regions.__version__, "gammapy": result["gammapy_version"] or "not installed"}
    head = (
        "# gpumask catalog exclusion-mask benchmarks\n\n"
        f"{machine_line(gpu, versions, result['cupy_status'])}\n\n"
        "`gpumask.exclusion_mask(geom, catalog, radius=..., method=...)` (\"r=0.3 deg\": the tutorial's "
        "0.3 deg circle per source; \"rules\": the default per-source morphology rules; \"all four\": "
        "`catalog=[3FGL, 3FHL, HGPS, 1LHAASO]`) vs the gammapy user's "
        "`geom.region_mask(regions, inside=False)`, `regions` the regions objects "
        "(`SourceCatalog.to_regions`) of the sources touching the map (`gpumask.masks.catalog_mask.touching`), "
        "prebuilt outside the timed call (their cost: \"prep\"). "
        f"Best of N calls after a first call (\"1st call\": field caches cleared), fresh geometry each "
        f"call, catalogs read once beforehand; gammapy budget {args.gammapy_budget:g} s (\"~\": "
        f"timed on a seeded subset of k regions of about {args.subset_seconds:g} s and scaled by n/k); "
        f"recursion limit raised to {result['recursion_limit']} for gammapy's nested union of regions; "
        f"total runtime {total:.0f} s.\n\n"
    )
    foot = (
        "\n\"pixel != gammapy\": pixels where method=\"pixel\" differs from gammapy's mask (\"on k src\": "
        "`exclusion_mask` of the k-source subset vs gammapy's mask of those k regions). "
        "Excluded px: pixels False in the mask.\n\n"
        f"First call in the process (imports, kernel compilation; all four catalogs with the rules "
        f"on 250x250): {fc}\n\nCatalog reads (`SourceCatalog.read`, untimed above): {reads}\n"
    )
    text = head + to_markdown(result) + "\n" + foot
    write_report(args.out, text, raw_record(result, total, args, gpu, regions=regions.__version__))


if __name__ == "__main__":
    main()
