"""Mask provenance benchmarks: what ``explain=True`` costs against the same mask without it, vs gammapy 2.1.

Issue 20 asks that building the provenance cost at most about 2x the mask alone, and
nothing when not asked.  Every case is timed twice on each backend (numpy, and cupy
when a GPU works): the plain call and the same call with the provenance.

* (a) catalog: ``exclusion_mask(geom, catalog)`` on the 2000x400 Galactic-plane CAR
  map at 0.02 deg: 3FGL with the tutorial's 0.3 deg circles, 3FGL and 3FHL with the
  default morphology rules (the demo catalog when the shared data is absent);
* (b) regions: ``geom.region_mask(300 ds9 circles, inside=False)`` on the same map;
* (c) significance: ``exclusion_from_significance(sqrt_ts, 5, low=3)`` on the Fermi
  GC sqrt_ts (``ExcessMapEstimator("0.2 deg")``; the demo dataset when the data is
  absent) and on a 2000x2000 smoothed random field (thousands of blobs);
* (d) erosion: ``binary_erode(mask, "0.1 deg")`` of an explained mask vs the plain
  one (the plane's 3FGL-rules mask; the random field's hysteresis mask);
* (e) union: ``mask_a & mask_b``, both explained vs both plain (plane: 3FGL rules &
  300 circles; GC: 3FHL rules & significance);
* (f) the tutorial chain: catalog mask & significance mask, eroded by 0.1 deg, from
  the maps (GC: 3FHL rules & the GC sqrt_ts; plane: 3FGL rules & a 2000x400 field).

    python benchmarks/bench_explain.py [--quick] [--no-gammapy] [--no-profile]
        [--out benchmarks/results/explain.md]

The plain and the explained call of a case are timed round-robin (`measure_interleaved`)
so that the drift of a shared machine hits both alike; a cell is the best of N calls
after a first call, N growing until the repeats add up to ``--target`` seconds.  On the
GPU the device is synchronised before the clock stops.  Checked on the way: the
explained mask equals the plain one bit for bit, and its labelled pixels (label > 0)
are exactly the excluded ones.

gammapy 2.1 has no provenance; its column is what a gammapy user writes for the plain
mask: ``WcsGeom.region_mask(regions, inside=False)`` with the regions of the sources
touching the map (``SourceCatalog.to_regions``, as in bench_catalog.py) or the ds9
circles (``Regions.parse``), ``Map.binary_erode("0.1 deg")`` (FFT, its default),
``a & b``, and for the chain ``(region_mask & (sqrt_ts < 5)).binary_erode("0.1 deg")``
(gammapy has no hysteresis: a plain threshold).  Regions are parsed and built outside
the timing.  gammapy has no hysteresis at all: (c) has no gammapy column.

Where explain / plain exceeds 2 on numpy, the explained call is profiled (cProfile) and
the report lists where its time goes (self time and cumulative gpumask functions, as
shares of the call).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
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
    backends,
    first_calls_line,
    gpu_name,
    log,
    machine_line,
    md_head,
    md_row,
    measure,
    measure_interleaved,
    raw_record,
    write_report,
)
from bench_catalog import CATALOG_FILES, gammapy_regions
from scipy import ndimage

import gpumask
from gpumask.catalog import SourceCatalog

PLANE = dict(npix=(2000, 400), binsz=0.02, proj="CAR", frame="galactic", skydir=(0, 0))
PLANE_QUICK = dict(PLANE, npix=(1000, 200))
FIELD = (2000, 2000)
FIELD_QUICK = (1000, 1000)
N_CIRCLES = 300
N_CIRCLES_QUICK = 100
GC_FILE = DATA / "fermi-3fhl-gc" / "fermi-3fhl-gc.fits.gz"
TUTORIAL_RADIUS = "0.3 deg"
WIDTH = "0.1 deg"
RECURSION_LIMIT = 20000  # gammapy folds the regions into an N-deep nested union
PROFILE_ABOVE = 2.0
PROFILE_TOP = 8


# ----------------------------------------------------------------------------- inputs


def load_catalog(key):
    """``(SourceCatalog, label)``: the shared-data catalog, or the demo catalog when absent."""
    path = CATALOG_FILES[key]
    if path.exists():
        return SourceCatalog.read(path), key
    return gpumask.demo_catalog(), f"demo (no {key})"


def ds9_circles(kw, n, seed=1):
    """``n`` seeded ds9 circle lines (0.05-0.4 deg) inside the map ``kw`` (galactic CAR around 0, 0)."""
    rng = np.random.default_rng(seed)
    half_l = kw["npix"][0] * kw["binsz"] / 2 - 0.5
    half_b = kw["npix"][1] * kw["binsz"] / 2 - 0.2
    return [f"galactic;circle({rng.uniform(-half_l, half_l) % 360:.4f},{rng.uniform(-half_b, half_b):.4f},"
            f"{rng.uniform(0.05, 0.4):.3f})" for _ in range(n)]


def random_field(shape, seed=0):
    """A smoothed Gaussian random field scaled to ``sqrt_ts``-like values (blobs above 3 and 5)."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape[::-1]), 4) * 40


def gc_sqrt_ts(be):
    """``(sqrt_ts Map, label)`` of the Fermi GC dataset (the demo dataset when absent)."""
    if GC_FILE.exists():
        ds, label = gpumask.read_dataset(GC_FILE, backend=be), "GC"
    else:
        ds, label = gpumask.demo_dataset(), "demo dataset"  # built on the active backend
    sq = gpumask.ExcessMapEstimator("0.2 deg").run(ds)["sqrt_ts"]
    if sq.data.ndim == 3:
        sq = sq.slice_by_idx({"energy": 0})
    return sq, label


# ----------------------------------------------------------------------------- profile


def profile(func, sync, seconds=0.5, max_calls=20):
    """Where ``func``'s time goes: cProfile over a few calls.

    Returns
    -------
    dict
        ``per_call`` (s), ``calls``, ``self`` (top functions by self time: ``[name, share]``)
        and ``gpumask`` (top gpumask functions by cumulative time), shares of the total.
    """
    pr = cProfile.Profile()
    calls, t0 = 0, time.perf_counter()
    while calls < max_calls and (calls == 0 or time.perf_counter() - t0 < seconds):
        pr.enable()
        func()
        if sync:
            sync()
        pr.disable()
        calls += 1
    stats = pstats.Stats(pr).stats
    total = sum(v[2] for v in stats.values()) or 1.0

    def name(key):
        path, line, fn = key
        if path == "~":
            return fn
        parts = Path(path).parts
        short = "/".join(parts[parts.index("gpumask"):]) if "gpumask" in parts else Path(path).name
        return f"{short}:{fn}"

    selfs = sorted(stats.items(), key=lambda kv: -kv[1][2])[:PROFILE_TOP]
    ours = [(k, v) for k, v in stats.items() if "gpumask" in Path(k[0]).parts and "benchmarks" not in k[0]]
    ours = sorted(ours, key=lambda kv: -kv[1][3])[:PROFILE_TOP + 2]
    return dict(per_call=total / calls, calls=calls,
                self=[[name(k), v[2] / total] for k, v in selfs],
                gpumask=[[name(k), v[3] / total] for k, v in ours])


# ----------------------------------------------------------------------------- run


class Runner:
    """Times the cases, keeps the records; gammapy timings are made once per case."""

    def __init__(self, args, ggeom):
        self.args, self.ggeom = args, ggeom
        self.rows, self.gammapy, self.profiles = [], {}, {}

    def pair(self, group, case, size, be, make, gammapy=None):
        """Time ``make(False)`` and ``make(True)`` round-robin on ``be``; ``gammapy`` (a
        callable, or None) is timed once per ``(case, size)``."""
        args, sync = self.args, _sync(be)
        timings, outs = measure_interleaved({"plain": lambda: make(False), "explain": lambda: make(True)}, {},
                                            sync, args.target, args.max_repeat)
        plain, explained = outs["plain"], outs["explain"]
        prov = explained.provenance
        p_host, e_host = plain.to_numpy(), explained.to_numpy()
        label = np.asarray(gpumask.to_host(prov.label)) if prov is not None else None
        rec = dict(group=group, case=case, size=size, backend=be, plain=timings["plain"],
                   explain=timings["explain"], components=0 if prov is None else int(prov.n_components),
                   excluded=int(np.count_nonzero(~p_host)), same_mask=bool(np.array_equal(p_host, e_host)),
                   labels_are_mask=None if label is None else bool(np.array_equal(label > 0, ~e_host)))
        del outs, plain, explained, prov, label
        key = (case, size)
        if gammapy is not None and key not in self.gammapy:
            timing, gout = measure(gammapy, None, args.target, args.gammapy_repeat, first_counts=True)
            self.gammapy[key] = dict(timing, excluded=int(np.count_nonzero(~np.asarray(gout.data))))
            del gout
        rec["gammapy"] = self.gammapy.get(key)
        ratio = rec["explain"]["best"] / rec["plain"]["best"]
        if be == "numpy" and ratio > PROFILE_ABOVE and not args.no_profile:
            self.profiles[f"{group} {case} {size}"] = dict(
                ratio=ratio, plain=rec["plain"]["best"], **profile(lambda: make(True), sync))
        self.rows.append(rec)
        g = rec["gammapy"]
        log(f"{group} {case:<34s} {size:<10s} {be:<5s} plain {rec['plain']['best']:.4f}s explain "
            f"{rec['explain']['best']:.4f}s ({ratio:.1f}x, {rec['components']} components)"
            + ("" if g is None else f" gammapy {g['best']:.4f}s")
            + ("" if rec["same_mask"] and rec["labels_are_mask"] else " CHECK FAILED"))


def gmap(ggeom, data):
    """A gammapy Map of the host boolean ``data`` on ``ggeom``."""
    from gammapy.maps import Map  # noqa: PLC0415

    return Map.from_geom(ggeom, data=np.asarray(data, dtype=bool))


def run(args):
    cols, cupy_why = backends()
    GGeom, gp_version = None, None
    if not args.no_gammapy:
        try:
            import gammapy
            from gammapy.maps import WcsGeom as GGeom  # noqa: N814
            from regions import Regions

            gp_version = gammapy.__version__
            sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
        except ImportError as exc:
            log(f"gammapy not importable ({exc}); gpumask only")
    kw = PLANE_QUICK if args.quick else PLANE
    field_shape = FIELD_QUICK if args.quick else FIELD
    circles = ds9_circles(kw, N_CIRCLES_QUICK if args.quick else N_CIRCLES)
    cats = {key: load_catalog(key) for key in ("3FGL", "3FHL")}
    log("catalogs: " + ", ".join(f"{label} {len(c)} sources" for c, label in cats.values()))
    fgl, fhl = cats["3FGL"][0], cats["3FHL"][0]
    plane_size = f"{kw['npix'][0]}x{kw['npix'][1]}"
    field_size = f"{field_shape[0]}x{field_shape[1]}"
    field = random_field(field_shape)
    plane_field = random_field(kw["npix"], seed=2)
    r = Runner(args, GGeom)

    # gammapy inputs (host, built once, outside the timing)
    gin = {}
    if GGeom is not None:
        geom0 = gpumask.WcsGeom.create(**kw)
        gin["tutorial"] = gammapy_regions(geom0, [fgl], TUTORIAL_RADIUS)[0]
        gin["3FGL rules"] = gammapy_regions(geom0, [fgl], None)[0]
        gin["3FHL rules"] = gammapy_regions(geom0, [fhl], None)[0]
        gin["circles"] = list(Regions.parse("\n".join(circles), format="ds9"))
        log("gammapy regions on the plane: " + ", ".join(f"{k} {len(v)}" for k, v in gin.items()))

    def g_region(regions, geom_kw=kw):
        return lambda: GGeom.create(**geom_kw).region_mask(regions, inside=False)

    first_calls = {}
    for be in cols:
        with gpumask.use_backend(be):
            t0 = time.perf_counter()
            gpumask.exclusion_mask(gpumask.WcsGeom.create(**PLANE_QUICK), fgl, explain=True)
            first_calls[be] = time.perf_counter() - t0

            geom = gpumask.WcsGeom.create(**kw)
            gp = GGeom is not None
            # (a) catalogs
            r.pair("a", "3FGL r=0.3 deg (tutorial)", plane_size, be, lambda ex: gpumask.exclusion_mask(
                gpumask.WcsGeom.create(**kw), fgl, radius=TUTORIAL_RADIUS, explain=ex),
                g_region(gin["tutorial"]) if gp else None)
            r.pair("a", "3FGL rules", plane_size, be, lambda ex: gpumask.exclusion_mask(
                gpumask.WcsGeom.create(**kw), fgl, explain=ex), g_region(gin["3FGL rules"]) if gp else None)
            r.pair("a", "3FHL rules", plane_size, be, lambda ex: gpumask.exclusion_mask(
                gpumask.WcsGeom.create(**kw), fhl, explain=ex), g_region(gin["3FHL rules"]) if gp else None)
            # (b) ds9 circles
            r.pair("b", f"{len(circles)} ds9 circles", plane_size, be,
                   lambda ex: gpumask.WcsGeom.create(**kw).region_mask(circles, inside=False, explain=ex),
                   g_region(gin["circles"]) if gp else None)
            # (c) significance
            sq, sq_label = gc_sqrt_ts(be)
            gc_size = "x".join(str(v) for v in sq.geom.npix) + f" {sq_label}"
            r.pair("c", "hysteresis 5 / 3", gc_size, be,
                   lambda ex: gpumask.exclusion_from_significance(sq, 5, low=3, explain=ex))
            fgeom = gpumask.WcsGeom.create(npix=field_shape, binsz=0.02, frame="galactic")
            sig = gpumask.Map.from_geom(fgeom, data=gpumask.to_device(field, be))
            r.pair("c", "hysteresis 5 / 3", f"{field_size} field", be,
                   lambda ex: gpumask.exclusion_from_significance(sig, 5, low=3, explain=ex))
            # (d) erosion of explained vs plain masks
            cat_masks = {ex: gpumask.exclusion_mask(geom, fgl, explain=ex) for ex in (False, True)}
            g_cat = gmap(GGeom.create(**kw), cat_masks[False].to_numpy()) if gp else None
            r.pair("d", f"erode {WIDTH} (3FGL rules mask)", plane_size, be,
                   lambda ex: gpumask.binary_erode(cat_masks[ex], WIDTH),
                   (lambda: g_cat.binary_erode(WIDTH)) if gp else None)
            sig_masks = {ex: gpumask.exclusion_from_significance(sig, 5, low=3, explain=ex)
                         for ex in (False, True)}
            g_sig = gmap(GGeom(wcs=fgeom.wcs, npix=fgeom.npix), sig_masks[False].to_numpy()) if gp else None
            r.pair("d", f"erode {WIDTH} (hysteresis mask)", f"{field_size} field", be,
                   lambda ex: gpumask.binary_erode(sig_masks[ex], WIDTH),
                   (lambda: g_sig.binary_erode(WIDTH)) if gp else None)
            # (e) union
            reg_masks = {ex: geom.region_mask(circles, inside=False, explain=ex) for ex in (False, True)}
            if gp:
                ga, gb = g_cat, gmap(GGeom.create(**kw), reg_masks[False].to_numpy())
            r.pair("e", "3FGL rules & circles", plane_size, be, lambda ex: cat_masks[ex] & reg_masks[ex],
                   (lambda: ga & gb) if gp else None)
            g = sq.geom
            gc_parts = {ex: (gpumask.exclusion_mask(g, fhl, explain=ex),
                             gpumask.exclusion_from_significance(sq, 5, low=3, explain=ex))
                        for ex in (False, True)}
            sq_host = sq.to_numpy()
            if gp:
                gg = GGeom(wcs=g.wcs, npix=g.npix)
                gc_regions = gammapy_regions(g, [fhl], None)[0]
                gc_a, gc_b = gmap(gg, gc_parts[False][0].to_numpy()), gmap(gg, gc_parts[False][1].to_numpy())
            r.pair("e", "3FHL rules & hysteresis", gc_size, be, lambda ex: gc_parts[ex][0] & gc_parts[ex][1],
                   (lambda: gc_a & gc_b) if gp else None)
            # (f) the tutorial chain, from the maps
            r.pair("f", "3FHL rules & hysteresis, erode", gc_size, be, lambda ex: gpumask.binary_erode(
                gpumask.exclusion_mask(g, fhl, explain=ex)
                & gpumask.exclusion_from_significance(sq, 5, low=3, explain=ex), WIDTH),
                (lambda: (GGeom(wcs=g.wcs, npix=g.npix).region_mask(gc_regions, inside=False)
                          & gmap(gg, ~(sq_host >= 5))).binary_erode(WIDTH)) if gp else None)
            psig = gpumask.Map.from_geom(geom, data=gpumask.to_device(plane_field, be))
            pf_host = plane_field
            r.pair("f", "3FGL rules & hysteresis, erode", f"{plane_size} field", be, lambda ex: (
                gpumask.binary_erode(gpumask.exclusion_mask(gpumask.WcsGeom.create(**kw), fgl, explain=ex)
                                     & gpumask.exclusion_from_significance(psig, 5, low=3, explain=ex),
                                     WIDTH)),
                (lambda: (GGeom.create(**kw).region_mask(gin["3FGL rules"], inside=False)
                          & gmap(GGeom.create(**kw), ~(pf_host >= 5))).binary_erode(WIDTH)) if gp else None)
    return dict(rows=r.rows, gammapy={f"{k[0]} | {k[1]}": v for k, v in r.gammapy.items()},
                profiles=r.profiles,
                backends=cols, cupy_status=cupy_why, gammapy_version=gp_version, first_calls=first_calls,
                catalogs={k: v[1] for k, v in cats.items()})


# ----------------------------------------------------------------------------- report

GROUPS = {"a": "(a) catalog", "b": "(b) regions", "c": "(c) significance", "d": "(d) erosion",
          "e": "(e) union", "f": "(f) chain"}


def _ratio(x):
    """`_r`, with two significant digits below 0.1 (gammapy faster than gpumask)."""
    return f"{x:.2g}" if x < 0.1 else _r(x)


def table(result):
    cols = result["backends"]
    header = ["case", "map", "components"]
    for be in cols:
        header += [f"{be} plain (s)", f"{be} explain (s)", f"{be} explain / plain"]
    header += ["gammapy plain (s)"] + [f"gammapy / gpumask {be} explain" for be in cols]
    header += ["excluded px (gpumask / gammapy)", "same mask, labels = mask"]
    lines = md_head(header)
    by_case = {}
    for rec in result["rows"]:
        by_case.setdefault((rec["group"], rec["case"], rec["size"]), {})[rec["backend"]] = rec
    for (group, case, size), recs in by_case.items():
        first = recs["numpy"]
        row = [f"{GROUPS[group]}: {case}", size, str(first["components"])]
        for be in cols:
            rec = recs.get(be)
            if rec is None:
                row += ["-"] * 3
                continue
            p, e = rec["plain"]["best"], rec["explain"]["best"]
            row += [_t(p), _t(e), _r(e / p)]
        g = first["gammapy"]
        row.append("n/a" if g is None else _t(g["best"]))
        row += ["-" if g is None or be not in recs else _ratio(g["best"] / recs[be]["explain"]["best"])
                for be in cols]
        row.append(f"{first['excluded']} / " + ("-" if g is None else str(g["excluded"])))
        ok = all(rec["same_mask"] and rec["labels_are_mask"] for rec in recs.values())
        row.append("yes" if ok else "NO")
        lines.append(md_row(row))
    return "\n".join(lines)


def profile_section(result):
    if not result["profiles"]:
        return f"\n\nNo case exceeds {PROFILE_ABOVE:g}x on numpy (or --no-profile): nothing profiled.\n"
    out = [f"\n\n## Where the time goes (numpy cases over {PROFILE_ABOVE:g}x, "
           "cProfile of the explained call)\n"]
    for case, p in result["profiles"].items():
        selfs = ", ".join(f"{n} {s:.0%}" for n, s in p["self"])
        ours = ", ".join(f"{n} {s:.0%}" for n, s in p["gpumask"])
        out.append(f"- **{case}** ({p['ratio']:.1f}x; plain {_t(p['plain'])} s, explained "
                   f"{_t(p['per_call'])} s per call under the profiler, {p['calls']} calls)\n"
                   f"  - self time: {selfs}\n  - cumulative, gpumask functions: {ours}")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1000x200 plane, 1000x1000 field, 100 circles, shorter timing")
    parser.add_argument("--no-gammapy", action="store_true", help="no gammapy column")
    parser.add_argument("--no-profile", action="store_true",
                        help=f"do not profile cases over {PROFILE_ABOVE:g}x")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds of repeated calls per cell (default 1, 0.3 with --quick)")
    parser.add_argument("--max-repeat", type=int, default=30)
    parser.add_argument("--gammapy-repeat", type=int, default=5,
                        help="at most this many gammapy calls per case")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "explain.md"))
    args = parser.parse_args()
    if args.target is None:
        args.target = 0.3 if args.quick else 1.0
    gpumask.set_progress(False)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = run(args)
    total = time.perf_counter() - t0
    gpu = gpu_name()
    import scipy

    versions = {"scipy": scipy.__version__, "gammapy": result["gammapy_version"] or "not installed"}
    head = (
        f"# gpumask mask provenance: explain=True vs the plain mask{' (--quick)' if args.quick else ''}\n\n"
        f"{machine_line(gpu, versions, result['cupy_status'])}\n\n"
        "Best of N calls after a first call, plain and explained timed round-robin; maps at 0.02 deg "
        f"(CAR, galactic); catalogs: {', '.join(result['catalogs'].values())}; total runtime {total:.0f} s.  "
        "\"explain / plain\" is what asking for the provenance costs (the mask is the same: last column).  "
        "\"gammapy / gpumask explain\" compares gammapy's plain mask with gpumask's explained one.\n\n"
    )
    notes = (
        "\n\nNot asked, the provenance costs nothing: with `explain=False` (the default) the builders take "
        "the code path they took before issue 20 (`if explain:` branches; morphology and `&` test "
        "`provenance is None` once and return), so the \"plain\" columns are the cost of the masks as "
        "before.  gammapy's references: `region_mask(regions, inside=False)` of the touching sources' "
        "regions (0.3 deg circles for the tutorial rule) or of the parsed ds9 circles; `binary_erode` with "
        "its FFT default (it rounds the radius up to an odd number of pixels and counts the outside of "
        "the map as excluded, so it also excludes a band along the map's edges that gpumask's default "
        "`border_value=True` keeps: more excluded pixels); "
        "`a & b`; the chain with a plain `sqrt_ts < 5` threshold (gammapy has no hysteresis: fewer excluded "
        "pixels than the 5 / 3 hysteresis, plus the erosion's edge band).  gpumask masks "
        "use the exact sky geometry (`method=\"sky\"`), so excluded pixel counts differ from gammapy's at "
        "region edges.\n"
    )
    nx, ny = PLANE_QUICK["npix"]
    foot = (f"\nFirst explained call in the process ({nx}x{ny} 3FGL): "
            f"{first_calls_line(result['first_calls'])}\n")
    text = head + table(result) + notes + profile_section(result) + foot
    write_report(args.out, text, raw_record(result, total, args, gpu, scipy=scipy.__version__,
                                            gammapy=result["gammapy_version"]))


if __name__ == "__main__":
    main()
