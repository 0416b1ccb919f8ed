"""The region kernel (kernels/regions.cuh) against the NumPy rasteriser.

``gpumask_region_tile_thread<32>`` is the whole per-thread body of kernel
``rasterise_tiles``; tests/cpu_harness/regions_harness.cpp compiles it with g++
and runs it for every thread of every block of the launch grid.  Its image is
compared with :func:`gpumask.masks._region_raster.rasterise_numpy` on shape tables built
through the public compilation path (``gpumask.masks.regions._compile`` and
``bin_shapes``), so both sides see the very same parameter rows and CSR lists.

Exactness.  ``method="pixel"`` uses integer pixel centres, IEEE + - * / and hypot
(correctly rounded in glibc, which numpy calls too): the images must be bit
identical.  ``method="sky"`` also depends on the pixels' sky coordinates, which the
device WCS code (glibc atan2/asin) and NumPy (its own SIMD atan2/asin) may round
differently in the last bit; a pixel may then flip only where a shape boundary
passes within ~1e-10 deg of its centre, which is checked explicitly.  On the GPU,
CUDA's hypot and transcendental functions are not correctly rounded: the ``gpu``
tests allow flips only at such boundaries (``|hypot - r| <= 1e-12 r`` for pixel
circles, a 1e-8 deg sky neighbourhood for sky shapes).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle, SkyCoord
from regions import (
    CircleAnnulusPixelRegion,
    CircleAnnulusSkyRegion,
    CirclePixelRegion,
    CircleSkyRegion,
    EllipsePixelRegion,
    EllipseSkyRegion,
    PixCoord,
    PolygonPixelRegion,
    PolygonSkyRegion,
    RectanglePixelRegion,
    RectangleSkyRegion,
)

from gpumask import WcsGeom
from gpumask.masks import _region_compile as rc
from gpumask.masks import _region_raster as rr
from gpumask._kernels import kernel_dir
from gpumask.backend import get_backend
from gpumask.sky.projections import SUPPORTED_PROJECTIONS
from gpumask.masks.regions import _compile, _include, parse_regions

HARNESS_MAGIC = 0x4D524752
PROJS = ("CAR", "TAN", "AIT", "SIN", "ZEA")
OTHER_PROJS = ("ARC", "STG", "MOL")  # the remaining device projections, fewer cases
FRAMES = ("icrs", "galactic")
REGION_FRAMES = ("icrs", "galactic", "fk5")
HOST_SKY_DELTA = 1e-9  # deg: sky neighbourhood of a "boundary" pixel, host C++ vs numpy
GPU_SKY_DELTA = 1e-8  # deg: the same for CUDA vs numpy
HYPOT_REL = 1e-12  # pixel circles: |hypot(dx, dy) - r| <= HYPOT_REL * r is a boundary
MAX_BOUNDARY_FRACTION = 1e-4  # boundary flips allowed per map pixel (sky method)


def _proj_codes():
    """GPUMASK_PROJ_* numbers, read from the header the kernel is built with."""
    text = (kernel_dir() / "wcs_proj.cuh").read_text()
    return {name: int(v) for name, v in re.findall(r"#define GPUMASK_PROJ_(\w+) (\d+)", text)}


PROJ_CODES = _proj_codes()


# --------------------------------------------------------------------------- harness


@pytest.fixture(scope="session")
def region_harness(compile_harness):
    return compile_harness("regions_harness")


def _blob(geom, table, csr=None, coords=None, sky=None):
    """The harness's stdin (format documented in regions_harness.cpp)."""
    nx, ny = geom.npix
    tiles, starts, members = rr.bin_shapes(geom, table) if csr is None else csr
    params = geom._device_params
    from_arrays = coords is not None
    if from_arrays:
        code, wcs_args = 0, (0.0,) * 18
    else:
        assert params is not None, "no device projection: pass coords"
        code, wcs_args = PROJ_CODES[params.code], params.kernel_args()
    sky = table.has_sky if sky is None else sky
    head = np.array([HARNESS_MAGIC, nx, ny, len(tiles), len(members), len(table),
                     len(table.vx), code, int(sky), int(from_arrays)], dtype=np.int32)
    parts = [head, np.asarray(wcs_args, dtype=np.float64)]
    parts += [np.asarray(a, dtype=np.int32) for a in (tiles, starts, members, table.kind,
                                                     table.flags)]
    parts += [np.asarray(a, dtype=np.float64) for a in (table.params, table.vx, table.vy)]
    if from_arrays:
        parts += [np.asarray(c, dtype=np.float64) for c in coords]
    return b"".join(np.ascontiguousarray(a).tobytes() for a in parts)


def _run_harness(exe, geom, table, **kwargs):
    out = subprocess.run([str(exe)], input=_blob(geom, table, **kwargs), capture_output=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr.decode()
    nx, ny = geom.npix
    assert len(out.stdout) == nx * ny
    return np.frombuffer(out.stdout, dtype=np.uint8).reshape(ny, nx)


# --------------------------------------------------------------------------- boundaries


def _perturbed_lonlat(lon, lat, delta):
    """(n, 9) lon/lat: the points and 8 neighbours ``delta`` deg away on the sky."""
    steps = np.array([(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1),
                      (-1, -1)], dtype=float)
    coslat = np.maximum(np.cos(np.radians(lat)), 1e-12)
    plon = lon[:, None] + delta * steps[None, :, 0] / coslat[:, None]
    plat = np.clip(lat[:, None] + delta * steps[None, :, 1], -90.0, 90.0)
    return plon, plat


def _boundary_pixels(geom, table, iy, ix, sky_delta):
    """Bool per pixel (iy, ix): a shape boundary passes so close to the pixel centre
    that a last-bit difference may decide it.

    Sky shapes: the inside test is not constant over the pixel's sky coordinates
    moved by ``sky_delta`` deg.  Pixel circles and annuli: ``|hypot - r| <=
    HYPOT_REL r``.  Pixels on the edge of the projection's domain: coordinates
    exist on one side of +-1e-9 pixel but not the other.
    """
    iy = np.asarray(iy, dtype=float)
    ix = np.asarray(ix, dtype=float)
    out = np.zeros(len(ix), bool)
    if len(ix) == 0:
        return out
    # edge of the sky
    fin = []
    for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        lon, _ = geom.pix_to_coord((ix + 1e-9 * dx, iy + 1e-9 * dy))
        fin.append(np.isfinite(lon))
    fin = np.array(fin)
    out |= fin.any(axis=0) & ~fin.all(axis=0)
    lon, lat = geom.pix_to_coord((ix, iy))
    plon, plat = _perturbed_lonlat(lon, lat, sky_delta)
    unit = rr._unit(plon, plat)  # (n, 9, 3)
    for m in range(len(table)):
        kind = int(table.kind[m])
        p = [np.full((len(ix), 1), v) for v in table.params[m]]
        if kind in rc.SKY_KINDS:
            pix = {"px": unit[..., 0], "py": unit[..., 1], "pz": unit[..., 2]}
            with np.errstate(invalid="ignore"):
                inside = rr._eval_kind(kind, p, table, np.full(len(ix), m), pix)
            out |= inside.any(axis=1) & ~inside.all(axis=1)
        elif kind in (rc.KIND_PIX_CIRCLE, rc.KIND_PIX_ANNULUS):
            d = np.hypot(ix - table.params[m, 0], iy - table.params[m, 1])
            radii = table.params[m, 2:3] if kind == rc.KIND_PIX_CIRCLE else table.params[m, 2:4]
            for r in radii:
                out |= np.abs(d - r) <= HYPOT_REL * r
    return out


def _assert_same_image(got, ref, geom, table, allow_boundary, sky_delta=HOST_SKY_DELTA,
                       what="harness", max_fraction=MAX_BOUNDARY_FRACTION):
    """Identical images, or (``allow_boundary``) differing only at boundary pixels,
    on at most ``max_fraction`` of the pixels (None: any number).  Returns the
    differing count."""
    assert got.shape == ref.shape and got.dtype == ref.dtype == np.uint8
    iy, ix = np.nonzero(got != ref)
    if len(iy) == 0:
        return 0
    at_boundary = _boundary_pixels(geom, table, iy, ix, sky_delta)
    listing = "; ".join(
        f"(x={x}, y={y}) {what}={got[y, x]} numpy={ref[y, x]} boundary={bool(b)}"
        for y, x, b in list(zip(iy, ix, at_boundary))[:10])
    message = f"{len(iy)} of {got.size} pixels differ: {listing}"
    assert allow_boundary, message
    assert at_boundary.all(), "not at a shape boundary: " + message
    assert max_fraction is None or len(iy) <= max(2, max_fraction * got.size), message
    return len(iy)


# --------------------------------------------------------------------------- cases


def _geom(proj, frame, npix, binsz, skydir, **kwargs):
    return WcsGeom.create(npix=npix, binsz=binsz, proj=proj, frame=frame, skydir=skydir,
                          **kwargs)


def _random_geom(rng, proj, frame):
    nx, ny = (int(v) for v in rng.integers(40, 170, 2))
    nx += nx % 32 == 0  # never a whole number of tiles
    ny += ny % 32 == 0
    binsz = float(10 ** rng.uniform(-2.0, -0.7))
    lat = float(rng.choice([rng.uniform(-60, 60), rng.choice([-1, 1]) * rng.uniform(80, 89.5)]))
    return _geom(proj, frame, (nx, ny), binsz, (float(rng.uniform(0, 360)), lat))


def _sky_at(geom, x, y, rng):
    """SkyCoord of pixel (x, y), in the map's frame or another one."""
    lon, lat = geom.pix_to_coord((np.asarray(x, float), np.asarray(y, float)))
    coord = SkyCoord(lon, lat, unit="deg", frame=geom.frame)
    return coord.transform_to(str(rng.choice(REGION_FRAMES)))


def _random_regions(rng, geom, n, kinds=("circle", "annulus", "ellipse", "box", "polygon"),
                    pixel_regions=True, max_px=40.0):
    """``n`` (region, flag) leaves centred on (or just off) the map, sizes in pixels
    converted with the map's pixel scale; about a third excluded (ds9 '-')."""
    nx, ny = geom.npix
    scale = float(np.abs(geom.pixel_scales.to_value("deg")).max())
    leaves = []
    tries = 0
    while len(leaves) < n:
        tries += 1
        assert tries < 50 * n
        x, y = rng.uniform(-0.1, 1.1) * nx, rng.uniform(-0.1, 1.1) * ny
        size = float(10 ** rng.uniform(0, np.log10(max_px)))  # pixels
        angle = float(rng.uniform(0, 360))
        flag = rc.FLAG_EXCLUDE if rng.uniform() < 0.3 else 0
        kind = str(rng.choice(kinds))
        if pixel_regions and rng.uniform() < 0.3:
            leaves.append((_pixel_region(rng, kind, x, y, size, angle), flag))
            continue
        centre = _sky_at(geom, x, y, rng)
        if not np.isfinite(centre.spherical.lon.deg):
            continue  # off the sky of an all-sky map
        deg = size * scale * u.deg
        if kind == "circle":
            region = CircleSkyRegion(centre, deg)
        elif kind == "annulus":
            region = CircleAnnulusSkyRegion(centre, deg * rng.uniform(0.2, 0.8), deg)
        elif kind == "ellipse":
            region = EllipseSkyRegion(centre, 2 * deg, 2 * deg * rng.uniform(0.2, 1.0),
                                      Angle(angle, "deg"))
        elif kind == "box":
            region = RectangleSkyRegion(centre, 2 * deg, 2 * deg * rng.uniform(0.2, 1.0),
                                        Angle(angle, "deg"))
        else:
            nv = int(rng.integers(3, 8))
            phi = np.sort(rng.uniform(0, 2 * np.pi, nv)) if rng.uniform() < 0.8 else \
                rng.uniform(0, 2 * np.pi, nv)  # some self-intersecting (even-odd rule)
            rad = size * rng.uniform(0.3, 1.0, nv)
            verts = _sky_at(geom, x + rad * np.cos(phi), y + rad * np.sin(phi), rng)
            if not np.all(np.isfinite(verts.spherical.lon.deg)):
                continue
            region = PolygonSkyRegion(verts)
        leaves.append((region, flag))
    return leaves


def _pixel_region(rng, kind, x, y, size, angle):
    centre = PixCoord(x, y)
    if kind == "circle":
        return CirclePixelRegion(centre, size)
    if kind == "annulus":
        return CircleAnnulusPixelRegion(centre, size * rng.uniform(0.2, 0.8), size)
    if kind == "ellipse":
        return EllipsePixelRegion(centre, 2 * size, 2 * size * rng.uniform(0.2, 1.0),
                                  angle=angle * u.deg)
    if kind == "box":
        return RectanglePixelRegion(centre, 2 * size, 2 * size * rng.uniform(0.2, 1.0),
                                    angle=angle * u.deg)
    nv = int(rng.integers(3, 8))
    phi = rng.uniform(0, 2 * np.pi, nv)
    rad = size * rng.uniform(0.3, 1.0, nv)
    return PolygonPixelRegion(PixCoord(x + rad * np.cos(phi), y + rad * np.sin(phi)))


def _table(leaves, geom, method):
    table, _, _ = _compile(leaves, geom, method)
    return table


def _check(harness, geom, leaves, method, **kwargs):
    """Harness image == rasterise_numpy image (boundary flips allowed for "sky")."""
    table = _table(leaves, geom, method)
    ref = rr.rasterise_numpy(geom, table)
    got = _run_harness(harness, geom, table, **kwargs)
    _assert_same_image(got, ref, geom, table, allow_boundary=(method == "sky"))
    return table, ref


RANDOM = [(proj, frame, seed) for proj in PROJS for frame in FRAMES for seed in range(3)]
RANDOM += [(proj, FRAMES[i % 2], 0) for i, proj in enumerate(OTHER_PROJS)]


def _case_rng(salt, proj, frame, seed):
    return np.random.default_rng([salt, seed, (PROJS + OTHER_PROJS).index(proj),
                                  FRAMES.index(frame)])


# --------------------------------------------------------------------------- tests


def test_constants_match_the_header():
    """Shape kinds, parameter width, flag and tile size agree between Python and CUDA."""
    header = (kernel_dir() / "regions.cuh").read_text()
    defines = {k: int(v) for k, v in re.findall(r"#define GPUMASK_(\w+) (\d+)", header)}
    for name in ("CAP", "SKY_ELLIPSE", "SKY_BOX", "SKY_POLYGON", "PIX_CIRCLE", "PIX_ANNULUS",
                 "PIX_ELLIPSE", "PIX_RECT", "PIX_POLYGON"):
        assert defines[f"KIND_{name}"] == getattr(rc, f"KIND_{name}"), name
    assert defines["REGION_NPARAM"] == rc.NPARAM
    assert defines["FLAG_EXCLUDE"] == rc.FLAG_EXCLUDE
    source = (kernel_dir() / "regions.cu").read_text()
    assert re.search(rf"#define GPUMASK_TILE {rr.TILE}\b", source)
    assert set(SUPPORTED_PROJECTIONS) <= set(PROJ_CODES)


def test_kernel_signature_matches_struct():
    """rasterise_tiles's doubles follow struct gpumask_wcs, as kernel_args() does, and
    its array arguments are those rasterise_cupy passes."""
    header = (kernel_dir() / "wcs_proj.cuh").read_text()
    body = re.search(r"struct gpumask_wcs \{(.*?)\};", header, re.DOTALL).group(1)
    fields = re.findall(r"\b(\w+)[,;]", re.sub(r"//.*", "", body))
    source = (kernel_dir() / "regions.cu").read_text()
    signature = re.search(r"void __launch_bounds__\(\w+ \* 8\) rasterise_tiles\((.*?)\)",
                          source, re.DOTALL).group(1)
    params = re.findall(r"(\w+)\s*(?:,|$)", signature.strip())
    assert params[:13] == ["image", "nx", "ny", "tiles", "starts", "members", "kinds", "flags",
                           "params", "vx", "vy", "lon_in", "lat_in"]
    assert params[13:] == fields and len(fields) == 18


@pytest.mark.parametrize("proj,frame,seed", RANDOM, ids=[f"{p}-{f}-{s}" for p, f, s in RANDOM])
def test_pixel_method_bit_identical(region_harness, proj, frame, seed):
    """Every shape kind as gammapy's pixel regions; images must match exactly."""
    rng = _case_rng(20261121, proj, frame, seed)
    geom = _random_geom(rng, proj, frame)
    leaves = _random_regions(rng, geom, 14)
    table, ref = _check(region_harness, geom, leaves, "pixel")
    assert set(np.unique(table.kind)) <= set(rc.PIXEL_KINDS)
    assert ref.any()


@pytest.mark.parametrize("proj,frame,seed", RANDOM, ids=[f"{p}-{f}-{s}" for p, f, s in RANDOM])
def test_sky_method_matches(region_harness, proj, frame, seed):
    """Sky shapes in several frames (and a few pixel regions); identical but for
    pixels on a boundary."""
    rng = _case_rng(20261122, proj, frame, seed)
    geom = _random_geom(rng, proj, frame)
    leaves = _random_regions(rng, geom, 14)
    _, ref = _check(region_harness, geom, leaves, "sky")
    assert ref.any()


def test_every_kind_and_both_bits_are_exercised():
    """The random cases above cover all kinds, excluded shapes and tiles with many
    overlapping shapes (checked on one of them, so the cases cannot silently thin out)."""
    seen_kinds, seen_bits, max_per_tile = set(), set(), 0
    for method in ("sky", "pixel"):
        for proj, frame, seed in RANDOM[:6]:
            salt = 20261122 if method == "sky" else 20261121
            rng = _case_rng(salt, proj, frame, seed)
            geom = _random_geom(rng, proj, frame)
            table = _table(_random_regions(rng, geom, 14), geom, method)
            _, starts, _ = rr.bin_shapes(geom, table)
            max_per_tile = max(max_per_tile, int(np.diff(starts).max()))
            seen_kinds |= {int(k) for k in table.kind}
            seen_bits |= set(np.unique(rr.rasterise_numpy(geom, table)).tolist())
    assert seen_kinds == set(rc.SKY_KINDS) | set(rc.PIXEL_KINDS)
    assert {1, 2, 3} <= seen_bits
    assert max_per_tile >= 5


def _exact_boundary_scene():
    """Pixel shapes whose boundaries pass exactly through pixel centres, where only
    the comparison operators decide (circle and rectangle strict, ellipse
    inclusive, annulus (d < r_in) != (d < r_out), pnpoly's half-open edges)."""
    geom = _geom("CAR", "icrs", (97, 83), 0.05, (120.0, -30.0))
    shapes = [
        CirclePixelRegion(PixCoord(20.0, 20.0), 5.0),  # (25, 20), (23, 24): d == r
        CircleAnnulusPixelRegion(PixCoord(60.0, 20.0), 3.0, 5.0),
        EllipsePixelRegion(PixCoord(20.0, 60.0), 10.0, 6.0),
        RectanglePixelRegion(PixCoord(60.5, 60.0), 7.0, 4.0),
        PolygonPixelRegion(PixCoord([35.0, 45.0, 45.0, 35.0], [35.0, 35.0, 45.0, 45.0])),
        PolygonPixelRegion(PixCoord([70.0, 90.0, 80.0], [5.0, 5.0, 30.0])),
        CirclePixelRegion(PixCoord(88.0, 70.0), 12.0),  # runs off the image
    ]
    flags = [0, 0, rc.FLAG_EXCLUDE, 0, 0, rc.FLAG_EXCLUDE, 0]
    return geom, list(zip(shapes, flags))


def test_pixel_boundaries_through_pixel_centres(region_harness):
    geom, leaves = _exact_boundary_scene()
    _, ref = _check(region_harness, geom, leaves, "pixel")
    # the numpy side applies regions' own rules on these centres
    ny, nx = ref.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    expect = np.zeros(ref.shape, np.uint8)
    for shape, flag in leaves:
        expect |= shape.contains(PixCoord(xx, yy)).astype(np.uint8) * np.uint8(1 + flag)
    np.testing.assert_array_equal(ref, expect)
    assert ref[20, 25] == 0 and ref[20, 24] == 1 and ref[20, 63] == 1 and ref[20, 65] == 0


def test_cap_boundaries_are_inclusive(region_harness):
    """lo <= |p - c|^2 <= hi on both sides, tested on a pixel whose unit vector is
    exactly (1, 0, 0) (CAR centred on (0, 0)), so that |p - c|^2 is bit-identical
    whatever the libm: hand-made rows with lo or hi equal to it, or one ulp short."""
    geom = _geom("CAR", "icrs", (41, 37), 0.1, (0.0, 0.0))
    lon, lat = geom.pix_to_coord((np.array([20.0]), np.array([18.0])))
    assert lon[0] == 0.0 and lat[0] == 0.0
    c = rr._unit(np.array(0.3), np.array(0.2))
    d2 = (1.0 - c[0]) ** 2 + c[1] ** 2 + c[2] ** 2
    below = np.nextafter(d2, 0.0)
    radius = 2 * np.arcsin(np.sqrt(4 * d2) / 2)
    for lo, hi, expect in ((-1.0, d2, 1), (-1.0, below, 0), (d2, 4 * d2, 1), (below, d2, 1),
                           (np.nextafter(d2, 1.0), 4 * d2, 0)):
        table = rc._table(rc.KIND_CAP, [0], [[*c, lo, hi]], cap=[[*c, radius]])
        ref = rr.rasterise_numpy(geom, table)
        got = _run_harness(region_harness, geom, table)
        np.testing.assert_array_equal(got, ref)
        assert ref[18, 20] == expect, (lo, hi)


@pytest.mark.parametrize("method", ["pixel", "sky"])
def test_allsky_ait_with_pixels_off_the_sky(region_harness, method):
    """All-sky AIT, 180 x 90 (not whole tiles): the corners have no sky coordinates;
    large shapes run over the edge of the ellipse and across the +-180 seam."""
    geom = _geom("AIT", "galactic", (180, 90), 2.0, (0.0, 0.0))
    lon, _ = geom.get_coord()
    assert np.isnan(lon).any()
    rng = np.random.default_rng(55 + (method == "sky"))
    leaves = _random_regions(rng, geom, 30, max_px=30.0)
    edge = [
        CircleSkyRegion(SkyCoord(179.0, 10.0, unit="deg", frame="galactic"), 25 * u.deg),
        (CircleAnnulusSkyRegion(SkyCoord(0.0, 85.0, unit="deg", frame="galactic"),
                                5 * u.deg, 30 * u.deg)),
        EllipseSkyRegion(SkyCoord(-170.0, -60.0, unit="deg", frame="galactic"), 40 * u.deg,
                         20 * u.deg, Angle(30, "deg")),
        RectangleSkyRegion(SkyCoord(150.0, 0.0, unit="deg", frame="icrs"), 50 * u.deg,
                           30 * u.deg, Angle(-20, "deg")),
        CirclePixelRegion(PixCoord(-1.0, -1.0), 6.0),  # reaches pixels off the sky
    ]
    leaves += [(r, i % 2) for i, r in enumerate(edge)]
    _, ref = _check(region_harness, geom, leaves, method)
    off = ~np.isfinite(lon)
    assert not ref[off].any()  # pixels without coordinates are never inside
    assert ref[~off].any()


@pytest.mark.parametrize("method", ["pixel", "sky"])
def test_thousands_of_small_circles(region_harness, method):
    rng = np.random.default_rng(99)
    geom = _geom("CAR", "galactic", (499, 301), 0.02, (10.0, 0.0))
    lon, lat = geom.pix_to_coord((rng.uniform(-3, 502, 3000), rng.uniform(-3, 304, 3000)))
    centres = SkyCoord(lon, lat, unit="deg", frame="galactic")
    radii = rng.uniform(0.005, 0.06, 3000)
    leaves = [(CircleSkyRegion(c, r * u.deg), rc.FLAG_EXCLUDE if i % 7 == 0 else 0)
              for i, (c, r) in enumerate(zip(centres, radii))]
    table, ref = _check(region_harness, geom, leaves, method)
    assert len(table) == 3000
    assert {1, 2, 3} <= set(np.unique(ref).tolist())


def test_ds9_text_with_exclusions(region_harness):
    """A ds9 file as users write it: frames, '-' exclusions, image coordinates."""
    text = """# Region file format: DS9
galactic
circle(0.5,0.2,0.4)
-circle(0.6,0.25,0.1)
box(359.6,-0.3,0.6,0.3,25)
-ellipse(359.5,-0.35,0.15,0.05,70)
fk5
annulus(266.6,-29.1,0.1,0.3)
polygon(266.0,-28.6,266.5,-28.4,266.3,-28.9)
-polygon(266.1,-28.65,266.3,-28.6,266.2,-28.75)
image
circle(20.5,30.2,8.3)
-box(25,30,6,4,10)
ellipse(150,90,20,7,33)
"""
    geom = _geom("TAN", "galactic", (205, 131), 0.01, (0.0, 0.0))
    leaves = [(r, 0 if _include(r) else rc.FLAG_EXCLUDE) for r in parse_regions(text)]
    assert sum(f for _, f in leaves) == 4
    for method in ("pixel", "sky"):
        _, ref = _check(region_harness, geom, leaves, method)
        assert {1, 2, 3} <= set(np.unique(ref).tolist())


@pytest.mark.parametrize("method", ["pixel", "sky"])
def test_coords_from_arrays(region_harness, method):
    """A projection without device math (MER): lon/lat come from arrays, as the
    kernel built with GPUMASK_REGION_COORDS_FROM_ARRAYS reads them."""
    geom = _geom("MER", "icrs", (97, 70), 0.05, (83.6, 22.0))
    assert geom._device_params is None
    rng = np.random.default_rng(5)
    leaves = _random_regions(rng, geom, 12)
    _check(region_harness, geom, leaves, method, coords=geom.get_coord())


def test_sky_flag_without_sky_shapes(region_harness):
    """GPUMASK_REGION_SKY=1 with only pixel shapes changes nothing."""
    geom = _geom("ZEA", "icrs", (77, 45), 0.1, (300.0, -50.0))
    leaves = _random_regions(np.random.default_rng(8), geom, 10)
    table = _table(leaves, geom, "pixel")
    ref = rr.rasterise_numpy(geom, table)
    for sky in (False, True):
        np.testing.assert_array_equal(_run_harness(region_harness, geom, table, sky=sky), ref)


def test_boundary_detector_finds_boundaries():
    """The check that excuses sky-method flips does flag a pixel the boundary crosses,
    and not one well inside."""
    geom = _geom("CAR", "icrs", (40, 40), 0.1, (10.0, 0.0))
    lon, lat = geom.pix_to_coord((np.array([20.0, 24.0]), np.array([20.0, 20.0])))
    centre = SkyCoord(lon[0], lat[0], unit="deg")
    edge = SkyCoord(lon[1], lat[1], unit="deg")
    leaves = [(CircleSkyRegion(centre, centre.separation(edge)), 0),
              (CirclePixelRegion(PixCoord(20.0, 20.0), 4.0), 0)]
    for method in ("sky", "pixel"):
        table = _table(leaves, geom, method)
        found = _boundary_pixels(geom, table, [20, 20, 20], [24, 20, 22], HOST_SKY_DELTA)
        assert found.tolist() == [True, False, False], method
        # and _assert_same_image excuses a flip there only when asked to, and only there
        ref = rr.rasterise_numpy(geom, table)
        for x, excused in ((24, True), (22, False)):
            flipped = ref.copy()
            flipped[20, x] ^= 1
            if excused:
                assert _assert_same_image(flipped, ref, geom, table, allow_boundary=True) == 1
            else:
                with pytest.raises(AssertionError, match="not at a shape boundary"):
                    _assert_same_image(flipped, ref, geom, table, allow_boundary=True)
            with pytest.raises(AssertionError, match="1 of 1600 pixels differ"):
                _assert_same_image(flipped, ref, geom, table, allow_boundary=False)


def test_harness_refuses_bad_input(region_harness):
    geom = _geom("CAR", "icrs", (40, 40), 0.1, (10.0, 0.0))
    table = _table([(CirclePixelRegion(PixCoord(20.0, 20.0), 4.0), 0)], geom, "pixel")
    blob = _blob(geom, table)
    for bad in (blob[:-1], blob + b"\0", b"XXXX" + blob[4:]):
        out = subprocess.run([str(region_harness)], input=bad, capture_output=True, timeout=60,
                             check=False)
        assert out.returncode == 2, out.stderr
    tiles, starts, members = rr.bin_shapes(geom, table)
    twice = (np.r_[tiles, tiles], np.r_[starts, starts[1:] + starts[-1]], np.r_[members, members])
    out = subprocess.run([str(region_harness)], input=_blob(geom, table, csr=twice),
                         capture_output=True, timeout=60, check=False)
    assert out.returncode == 3, out.stderr


# --------------------------------------------------------------------------- nvcc

# Compile-time variants of regions.cu beyond the defaults that
# tests/test_projections.py::test_kernels_compile_to_ptx already builds.
REGION_PTX_VARIANTS = [
    ["--fmad=false", "-DGPUMASK_PROJ=GPUMASK_PROJ_AIT", "-DGPUMASK_REGION_SKY=0"],
    ["--fmad=false", "-DGPUMASK_REGION_COORDS_FROM_ARRAYS=1"],
    ["--fmad=false", "-DGPUMASK_PROJ=GPUMASK_PROJ_MOL", "-DGPUMASK_REGION_SKY=1",
     "-DGPUMASK_TILE=32"],
]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_regions_kernel_variants_compile_to_ptx(tmp_path):
    kdir = kernel_dir()
    jobs = [["nvcc", "--ptx", "-arch=sm_90", "-std=c++17", f"-I{kdir}", str(kdir / "regions.cu"),
             "-o", str(tmp_path / f"regions_{i}.ptx"), *flags]
            for i, flags in enumerate(REGION_PTX_VARIANTS)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(
            lambda c: subprocess.run(c, capture_output=True, text=True, check=False), jobs))
    failed = [f"{' '.join(c)}\n{r.stderr}" for c, r in zip(jobs, results) if r.returncode]
    assert not failed, "\n\n".join(failed)
    for i in range(len(jobs)):
        assert ".entry rasterise_tiles" in (tmp_path / f"regions_{i}.ptx").read_text()


# --------------------------------------------------------------------------- GPU

GPU_CASES = [("CAR", "galactic", 0), ("TAN", "icrs", 1), ("AIT", "galactic", 2),
             ("SIN", "icrs", 3), ("ZEA", "galactic", 4)]


def _masks_differ_only_at_boundaries(mask_gpu, mask_cpu, geom, leaves, method):
    iy, ix = np.nonzero(mask_gpu != mask_cpu)
    if len(iy) == 0:
        return 0
    table = _table(leaves, geom, method)
    at_boundary = _boundary_pixels(geom, table, iy, ix, GPU_SKY_DELTA)
    listing = "; ".join(f"(x={x}, y={y}) boundary={bool(b)}"
                        for y, x, b in list(zip(iy, ix, at_boundary))[:10])
    assert at_boundary.all(), f"{len(iy)} pixels differ, not all at a boundary: {listing}"
    assert len(iy) <= max(2, MAX_BOUNDARY_FRACTION * mask_cpu.size), listing
    return len(iy)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["pixel", "sky"])
@pytest.mark.parametrize("proj,frame,seed", GPU_CASES, ids=[f"{p}-{f}" for p, f, _ in GPU_CASES])
def test_gpu_region_mask_matches_numpy(proj, frame, seed, method):
    """region_mask on the GPU against NumPy: the kernel's raw bit image, then the
    public mask.  Flips are allowed only at shape boundaries (CUDA's hypot, sin,
    atan2 ... are not correctly rounded)."""
    pytest.importorskip("cupy")
    backend = get_backend("cupy")
    rng = np.random.default_rng([777, seed, int(method == "sky")])
    geom = _random_geom(rng, proj, frame)
    leaves = _random_regions(rng, geom, 20)
    table = _table(leaves, geom, method)
    ref = rr.rasterise_numpy(geom, table)
    got = backend.xp.asnumpy(rr.rasterise_cupy(geom, table, backend))
    _assert_same_image(got, ref, geom, table, allow_boundary=True, sky_delta=GPU_SKY_DELTA,
                       what="cupy")
    regions = [r for r, _ in leaves]
    for r, flag in leaves:
        r.meta["include"] = not flag
    mask_gpu = geom.region_mask(regions, method=method, backend="cupy")
    mask_cpu = geom.region_mask(regions, method=method, backend="numpy")
    _masks_differ_only_at_boundaries(backend.xp.asnumpy(mask_gpu.data), mask_cpu.data, geom,
                                     leaves, method)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["pixel", "sky"])
@pytest.mark.parametrize("proj", ["CEA", "MER"])
def test_gpu_coords_from_arrays(proj, method):
    """WCSs without device projection math (CEA, MER): the kernel built with
    GPUMASK_REGION_COORDS_FROM_ARRAYS reads astropy's coordinates uploaded as
    arrays.  Against NumPy, on the raw bit image and on the public mask."""
    pytest.importorskip("cupy")
    backend = get_backend("cupy")
    geom = _geom(proj, "galactic", (83, 61), 0.05, (184.6, -5.8))
    assert geom._device_params is None
    rng = np.random.default_rng([31, len(proj), int(method == "sky")])
    leaves = _random_regions(rng, geom, 15)
    table = _table(leaves, geom, method)
    ref = rr.rasterise_numpy(geom, table)
    assert {1, 2} <= set(np.unique(ref).tolist())
    got = backend.xp.asnumpy(rr.rasterise_cupy(geom, table, backend))
    _assert_same_image(got, ref, geom, table, allow_boundary=True, sky_delta=GPU_SKY_DELTA, what="cupy")
    regions = [r for r, _ in leaves]
    for r, flag in leaves:
        r.meta["include"] = not flag
    mask_gpu = geom.region_mask(regions, method=method, backend="cupy")
    mask_cpu = geom.region_mask(regions, method=method, backend="numpy")
    _masks_differ_only_at_boundaries(backend.xp.asnumpy(mask_gpu.data), mask_cpu.data, geom, leaves, method)


@pytest.mark.gpu
def test_gpu_pixel_boundaries_through_pixel_centres():
    """Exact ties on the GPU: only pixel circles and annuli may flip (CUDA's hypot
    is not correctly rounded, and only where |hypot - r| <= 1e-12 r); ellipses,
    rectangles and polygons use + - * / only and must match bit for bit."""
    pytest.importorskip("cupy")
    backend = get_backend("cupy")
    geom, leaves = _exact_boundary_scene()
    table = _table(leaves, geom, "pixel")
    ref = rr.rasterise_numpy(geom, table)
    got = backend.xp.asnumpy(rr.rasterise_cupy(geom, table, backend))
    _assert_same_image(got, ref, geom, table, allow_boundary=True, sky_delta=GPU_SKY_DELTA,
                       what="cupy", max_fraction=None)


def test_kernel_sources_inline_their_headers(tmp_path):
    """CuPy's disk cache keys on the source text: headers are inlined so that a
    changed .cuh recompiles; the result needs no -I and still compiles."""
    from gpumask._kernels import expanded_source

    for cu in sorted(kernel_dir().glob("*.cu")):
        text = expanded_source(cu.name)
        local = re.findall(r'#\s*include\s+"([^"]+)"', text)
        assert local == [], (cu.name, local)
        for header in re.findall(r'#include "([^"]+)"', cu.read_text()):
            assert (kernel_dir() / header).read_text().splitlines()[0] in text
        if shutil.which("nvcc"):
            src = tmp_path / cu.name
            src.write_text(text)
            result = subprocess.run(["nvcc", "--ptx", "-arch=sm_90", str(src), "-o",
                                     str(tmp_path / "out.ptx")], capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
