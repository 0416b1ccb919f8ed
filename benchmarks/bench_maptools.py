"""Map-tool benchmarks: reprojection, smoothing and downsampling, gpumask (numpy, cupy) vs gammapy 2.1.

Maps: 4000x4000 and 18000x500 CAR maps at 0.02 deg (galactic, centred on (0, 0);
``--quick``: 800x800 and 3600x100), float32, a seeded smooth positive field.
Rows:

* ``reproject``: ``reproject_to_geom`` onto a TAN icrs geometry for the square map
  and an AIT galactic strip for the 18000x500 one (no icrs strip follows the
  plane), centred on the same point, at the same pixel size (same npix) and 2x
  coarser (half the npix);
  gpumask ``gpumask.sky.reproject.reproject_to_geom`` against gammapy's
  ``Map.reproject_to_geom`` (``preserve_counts=False``, ``precision_factor=10``);
* ``reproject counts``: the same 2x coarser with ``preserve_counts=True``;
* ``smooth``: ``smooth("0.2 deg")`` (Gaussian sigma 10 px, reflect boundary):
  gpumask ``gpumask.stats.smooth.smooth`` (one batched FFT) against gammapy's
  ``Map.smooth`` (``scipy.ndimage.gaussian_filter``);
* ``downsample``: ``downsample(4)`` (``preserve_counts=True``): gpumask's
  ``Map.downsample`` (row skipped when gpumask has none) against gammapy's.

gammapy's reprojection upsamples the whole source by ``ceil(10 / (target / source
pixel size))`` per axis (1.6e9 sub-pixels and ~100 GB for the same-size 4000x4000
case).  Every gammapy reprojection is first timed on the same geometry with every
axis ``--shrink`` times smaller (default: about 4e4 source pixels); a case
predicted above ``--budget`` seconds from it (time in proportion to the number
of sub-pixels: gammapy's work is linear in them, bar one sort) is not run and is
reported as that extrapolation, marked ``~``.  The extrapolations are lower
bounds: where the full case was run too they fell short of it by 1.5x (800x800,
2x coarser) to 6x (18000x500, 2x coarser: 41 s predicted, 244 s measured), the
sort and the page faults of gammapy's multi-GB temporaries growing faster than
linearly.

    python benchmarks/bench_maptools.py [--quick] [--rows reproject,smooth,downsample]
        [--maps 4000,18000] [--budget 60] [--shrink N | --small-pixels 4e4] [--no-gammapy]
        [--out benchmarks/results/maptools.md]

A gpumask cell is the best (minimum) of N calls after a first, untimed call; N
grows until the repeats take ``--target`` seconds.  gammapy cells are timed from
their first call (nothing to compile or warm) and repeated only while fast.  On
the GPU the map is uploaded once beforehand and the device is synchronised before
the clock stops.  Absolute times are noise on shared machines: compare the
ratios gammapy / gpumask.

Correctness is checked on the way: smooth and downsample against gammapy (max
|difference| / max |map|), cupy against numpy, and for reprojection the median
|gpumask - gammapy| / max over the pixels both cover (gammapy's own value is a
box average, so only the run on the small problem is compared when the full one
is extrapolated).  Raw numbers go to a JSON file next to the markdown table.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from functools import partial
from pathlib import Path

import _harness
import numpy as np
import scipy.ndimage as ndi
from _harness import (
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
    raw_record,
    ref_cell,
    write_report,
)

import gpumask
from gpumask.sky.reproject import reproject_to_geom
from gpumask.stats.smooth import smooth

BINSZ = 0.02
MAPS = {"4000x4000": (4000, 4000), "18000x500": (500, 18000)}
QUICK_MAPS = {"800x800": (800, 800), "3600x100": (100, 3600)}
ROWS = ("reproject", "smooth", "downsample")
GC_ICRS = (266.40498829, -28.93617776)

measure = partial(_harness.measure, keep_times=False)


# ----------------------------------------------------------------------------- inputs


def field(shape, seed):
    """Seeded smooth positive float32 field (a few px correlation length)."""
    rng = np.random.default_rng(seed)
    small = rng.normal(size=(max(shape[0] // 8, 2), max(shape[1] // 8, 2)))
    big = ndi.zoom(small, (shape[0] / small.shape[0], shape[1] / small.shape[1]), order=1)[: shape[0], : shape[1]]
    return (10.0 + 3.0 * big + rng.normal(scale=0.5, size=shape)).astype(np.float32)


def source_kwargs(shape):
    ny, nx = shape
    return dict(npix=(nx, ny), binsz=BINSZ, frame="galactic", proj="CAR", skydir=(0.0, 0.0))


def target_kwargs(shape, coarsen):
    """TAN icrs for a square map; for a strip along the plane an AIT galactic strip
    (no icrs strip follows the Galactic plane; a 360 deg TAN does not exist)."""
    ny, nx = shape
    square = nx == ny
    return dict(npix=(max(nx // coarsen, 1), max(ny // coarsen, 1)), binsz=BINSZ * coarsen,
                frame="icrs" if square else "galactic", proj="TAN" if square else "AIT",
                skydir=GC_ICRS if square else (0.0, 0.0))


def shrink(shape, k, pixels):
    """The gammapy stand-in problem: every axis ``k`` times smaller; ``k=None``:
    about ``pixels`` source pixels (4e4: a few seconds of gammapy)."""
    if k is None:
        k = max(1, math.ceil(math.sqrt(shape[0] * shape[1] / pixels)))
    return (max(shape[0] // k, 4), max(shape[1] // k, 4))


def interior(source, target, margin=3.0):
    """Target pixels whose centre lies ``margin`` source pixels inside the source."""
    lon, lat = target.get_coord(frame=source.frame, backend="numpy")
    x, y = source.coord_to_pix((lon, lat))
    nx, ny = source.npix
    with np.errstate(invalid="ignore"):
        return (x > margin) & (x < nx - 1 - margin) & (y > margin) & (y < ny - 1 - margin)


# ----------------------------------------------------------------------------- gammapy


def gammapy_map(gmaps, shape, data):
    m = gmaps.Map.create(**source_kwargs(shape), dtype=np.float32)
    m.data = data
    return m


def geom_of(shape):
    return gpumask.WcsGeom.create(**source_kwargs(shape))


def gammapy_reproject_cost(shape, coarsen):
    """Sub-pixels gammapy's reproject_to_geom makes: source pixels x factor^2."""
    factor = 1 if coarsen >= 10 else math.ceil(10 / coarsen)
    return shape[0] * shape[1] * factor**2


# ----------------------------------------------------------------------------- run


def _case_reproject(args, cols, gmaps, shape, label, maps, host, coarsen, preserve_counts):
    name = f"reproject{' counts' if preserve_counts else ''} {'same' if coarsen == 1 else f'{coarsen}x coarser'}"
    tkw = target_kwargs(shape, coarsen)
    target = gpumask.WcsGeom.create(**tkw)
    rec = dict(row=name, map=label, gpumask={}, check={}, target=f"{tkw['proj']} {tkw['frame']} {tkw['npix']}")
    outs = {}
    for be in cols:
        m = maps[be]
        timing, out = measure(lambda m=m: reproject_to_geom(m, target, preserve_counts=preserve_counts),
                              _sync(be), args.target, args.max_repeat)
        rec["gpumask"][be] = timing
        outs[be] = out.to_numpy()
    if "cupy" in cols:
        rec["check"]["cupy vs numpy"] = float(np.nanmax(np.abs(outs["cupy"] - outs["numpy"])) / np.abs(host).max())
    if gmaps is None:
        rec["gammapy"] = None
        return rec
    subpixels = gammapy_reproject_cost(shape, coarsen)
    # first the small problem: a time per sub-pixel to predict the full one
    small = shrink(shape, args.shrink, args.small_pixels)
    small_host = host[: small[0], : small[1]].copy()
    gsmall = gammapy_map(gmaps, small, small_host)
    gtarget_small = gmaps.WcsGeom.create(**target_kwargs(small, coarsen))
    t_small, gout = _timed(lambda: gsmall.reproject_to_geom(gtarget_small, preserve_counts=preserve_counts), None)
    predicted = t_small * subpixels / gammapy_reproject_cost(small, coarsen)
    ours_small = reproject_to_geom(gpumask.Map.create(**source_kwargs(small), data=small_host, backend="numpy"),
                                   gpumask.WcsGeom.create(**target_kwargs(small, coarsen)),
                                   preserve_counts=preserve_counts).data
    inner = interior(gpumask.WcsGeom.create(**source_kwargs(small)), gpumask.WcsGeom.create(**target_kwargs(small, coarsen)))
    if inner.any():
        rec["check"]["max |diff| / max inside (small)"] = float(
            np.abs(gout.data - ours_small)[inner].max() / np.abs(gout.data[inner]).max())
    if preserve_counts:
        rec["check"]["total ratio (small)"] = float(ours_small.sum() / gout.data.sum())
    if predicted > args.budget:
        rec["gammapy"] = dict(skipped=True, predicted=predicted, small=list(small), small_s=t_small)
        return rec
    gmap = gammapy_map(gmaps, shape, host)
    gtarget = gmaps.WcsGeom.create(**tkw)
    timing, gout = measure(lambda: gmap.reproject_to_geom(gtarget, preserve_counts=preserve_counts), None,
                           args.target, args.max_repeat, first_counts=True)
    rec["gammapy"] = dict(skipped=False, predicted=predicted, **timing)
    inner = interior(geom_of(shape), target)
    rec["check"]["max |diff| / max inside"] = float(
        np.abs(gout.data - outs["numpy"])[inner].max() / np.abs(gout.data[inner]).max())
    return rec


def _case_map_op(row, ours, theirs, args, cols, gmaps, label, maps, host, shape):
    """One map -> map operation (``ours(map)``, gammapy's ``theirs(gmap)``) timed on
    every backend and against gammapy, differences relative to the result's maximum."""
    rec = dict(row=row, map=label, gpumask={}, check={})
    outs = {}
    for be in cols:
        m = maps[be]
        timing, out = measure(lambda m=m: ours(m), _sync(be), args.target, args.max_repeat)
        rec["gpumask"][be] = timing
        outs[be] = out.to_numpy()
    scale = np.abs(outs["numpy"]).max()
    if "cupy" in cols:
        rec["check"]["cupy vs numpy"] = float(np.abs(outs["cupy"] - outs["numpy"]).max() / scale)
    if gmaps is None:
        rec["gammapy"] = None
        return rec
    gmap = gammapy_map(gmaps, shape, host)
    timing, gout = measure(lambda: theirs(gmap), None, args.target, args.max_repeat, first_counts=True)
    rec["gammapy"] = dict(skipped=False, predicted=None, **timing)
    rec["check"]["max |diff| / max"] = float(np.abs(gout.data - outs["numpy"]).max() / scale)
    return rec


_case_smooth = partial(_case_map_op, "smooth gauss 0.2 deg", lambda m: smooth(m, "0.2 deg"),
                       lambda g: g.smooth("0.2 deg"))
_case_downsample = partial(_case_map_op, "downsample 4", lambda m: m.downsample(4), lambda g: g.downsample(4))


def run(args):
    cols, cupy_why = backends()
    gmaps, gp_version = None, None
    if not args.no_gammapy:
        try:
            import gammapy
            import gammapy.maps as gmaps

            gp_version = gammapy.__version__
        except ImportError as exc:
            log(f"gammapy not importable ({exc}); no gammapy columns")
    table = QUICK_MAPS if args.quick else MAPS
    maps_sel = {k: v for k, v in table.items() if not args.maps or any(p in k for p in args.maps.split(","))}
    rows = [r for r in ROWS if not args.rows or r in args.rows.split(",")]

    # warm-up: imports, FFT plans, cupy kernels
    first_calls = {}
    warm = gpumask.Map.create(**source_kwargs((60, 80)), data=field((60, 80), 0), backend="numpy")
    warm_target = gpumask.WcsGeom.create(**target_kwargs((60, 80), 2))
    for be in cols:
        m = warm.to_backend(be)
        t, _ = _timed(lambda m=m: (smooth(m, "0.1 deg"), reproject_to_geom(m, warm_target),
                                   reproject_to_geom(m, warm_target, preserve_counts=True)), _sync(be))
        first_calls[be] = t
        log(f"first call in process, {be}: {t:.3f} s")

    records = []
    for label, shape in maps_sel.items():
        host = field(shape, [2026, list(table).index(label)])
        geom = gpumask.WcsGeom.create(**source_kwargs(shape))
        maps = {be: gpumask.Map.from_geom(geom, data=gpumask.to_device(host, be)) for be in cols}
        cases = []
        if "reproject" in rows:
            cases += [partial(_case_reproject, coarsen=1, preserve_counts=False),
                      partial(_case_reproject, coarsen=2, preserve_counts=False),
                      partial(_case_reproject, coarsen=2, preserve_counts=True)]
            cases = [partial(c, args, cols, gmaps, shape, label, maps, host) for c in cases]
        if "smooth" in rows:
            cases.append(partial(_case_smooth, args, cols, gmaps, label, maps, host, shape))
        if "downsample" in rows:
            cases.append(partial(_case_downsample, args, cols, gmaps, label, maps, host, shape))
        for case in cases:
            rec = case()
            if rec is None:
                log(f"{label}: Map.downsample not in this gpumask; row skipped")
                continue
            records.append(rec)
            log(_progress(rec))
        del maps, host
    return dict(records=records, backends=cols, cupy_status=cupy_why, first_calls=first_calls,
                gammapy_version=gp_version)


def _progress(rec):
    parts = [f"{rec['map']:>10} | {rec['row']:<28} |"]
    parts += [f"gpumask {k} {v['best']:.4f}s (n={v['n']})" for k, v in rec["gpumask"].items()]
    g = rec.get("gammapy")
    if g is None:
        parts.append("gammapy n/a")
    elif g["skipped"]:
        parts.append(f"gammapy ~{g['predicted']:.1f}s (extrapolated from {g['small']}: {g['small_s']:.2f}s)")
    else:
        parts.append(f"gammapy {g['best']:.3f}s (n={g['n']})")
    parts.append(str({k: (f"{v:.2g}" if isinstance(v, float) else v) for k, v in rec["check"].items()}))
    return " ".join(parts)


# ----------------------------------------------------------------------------- report


def table(result):
    cols = result["backends"]
    header = ["map", "operation"] + [f"gpumask {be} (s)" for be in cols] + ["gammapy (s)"]
    header += [f"gammapy / gpumask {be}" for be in cols] + ["check"]
    lines = md_head(header)
    for rec in result["records"]:
        row = [rec["map"], rec["row"] + (f" ({rec['target']})" if "target" in rec else "")]
        row += [_t(rec["gpumask"][be]["best"]) for be in cols]
        text, seconds, mark = ref_cell(rec.get("gammapy"))
        row.append(text)
        row += ["-" if seconds is None else mark + _r(seconds / rec["gpumask"][be]["best"]) for be in cols]
        row.append("; ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in rec["check"].items() if v is not None))
        lines.append(md_row(row))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 800x800 and 3600x100 maps")
    parser.add_argument("--rows", default="", help=f"comma-separated rows ({', '.join(ROWS)}); default all")
    parser.add_argument("--maps", default="", help="comma-separated substrings of map labels")
    parser.add_argument("--budget", type=float, default=None,
                        help="gammapy reprojections predicted slower than this many seconds are extrapolated "
                        "from a --shrink times smaller problem; default 60 (3 with --quick)")
    parser.add_argument("--shrink", type=int, default=None,
                        help="axis factor of gammapy's small problem (default: about 4e4 source pixels)")
    parser.add_argument("--small-pixels", type=float, default=None,
                        help="source pixels of gammapy's small problem when --shrink is not given "
                        "(default 4e4, 1e4 with --quick)")
    parser.add_argument("--no-gammapy", action="store_true", help="no gammapy columns")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds of repeated calls per cell (default 1, 0.2 with --quick)")
    parser.add_argument("--max-repeat", type=int, default=20)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "maptools.md"))
    args = parser.parse_args()
    if args.budget is None:
        args.budget = 3.0 if args.quick else 60.0
    if args.small_pixels is None:
        args.small_pixels = 1e4 if args.quick else 4e4
    if args.target is None:
        args.target = 0.2 if args.quick else 1.0

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = run(args)
    total = time.perf_counter() - t0
    gpu = gpu_name()
    import scipy

    versions = {"scipy": scipy.__version__, "gammapy": result["gammapy_version"] or "not installed"}
    head = (
        "# gpumask map-tool benchmarks\n\n"
        f"{machine_line(gpu, versions, result['cupy_status'])}\n\n"
        f"Best of N calls after a first call; float32 CAR galactic maps at {BINSZ} deg (seeded smooth field); "
        f"gammapy reprojections predicted above {args.budget:g} s are extrapolated (\"~\", a lower bound: 1.5-6x "
        f"short where checked) from the same geometry shrunk "
        f"{f'{args.shrink}x per axis' if args.shrink else f'to about {args.small_pixels:.0e} source pixels'}; "
        f"total runtime {total:.0f} s.\n\n"
    )
    notes = (
        "\n\nReproject targets, centred on the Galactic centre: TAN icrs (square map), AIT galactic (strip).  "
        "gpumask samples each target pixel (bilinear, n x n samples with n = ceil(target / source pixel size)); "
        "gammapy upsamples the source by ceil(10 / (target / source pixel size)) and bins the sub-pixels, "
        "so its cost grows with the source size times 100 (same size) or 25 (2x coarser).  "
        "\"max |diff| / max inside\": gpumask - gammapy over the target pixels 3 source pixels inside the "
        "source (gammapy's box average of nearest-neighbour sub-pixels vs gpumask's bilinear samples; for counts, "
        "gammapy's one global factor vs gpumask's per-pixel solid angles).\n"
    )
    foot = f"\nFirst call in the process (imports, FFT plans, kernels; 80x60): {first_calls_line(result['first_calls'])}\n"
    text = head + table(result) + notes + foot
    write_report(args.out, text, raw_record(result, total, args, gpu, scipy=scipy.__version__))


if __name__ == "__main__":
    main()
