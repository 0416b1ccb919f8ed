"""gpumask.sky.projections against astropy/wcslib, and the CUDA math against numpy.

astropy is the oracle for the numpy code; the numpy code is the oracle for the
device code in kernels/wcs_proj.cuh, which is checked here without a GPU by
compiling it for the host (tests/cpu_harness) and, for syntax, with ``nvcc --ptx``.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import ICRS, Galactic
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import celestial_frame_to_wcs

from gpumask._kernels import kernel_dir
from gpumask.sky.projections import (
    SUPPORTED_PROJECTIONS,
    WcsParams,
    pix2world,
    pixel_grid_world,
    world2pix,
)

DEG_TOL = 1e-9  # deg, on the sky (lon difference times cos(lat))
PIX_TOL = 1e-7  # pixels, away from the points where the projection is singular
HOST_TOL = 1e-11  # deg, device math compiled for the CPU vs numpy (same formulas)
FRAMES = {"galactic": Galactic, "icrs": ICRS}
GLOBAL = ("CAR", "AIT", "MOL")


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    proj: str
    frame: str
    crval: tuple
    cdelt: float
    npix: tuple
    crpix: tuple
    label: str = ""

    @property
    def id(self):
        return f"{self.proj}-{self.frame}-{self.label}"

    def wcs(self):
        """Built as gammapy's WcsGeom does."""
        wcs = celestial_frame_to_wcs(FRAMES[self.frame](), projection=self.proj)
        wcs.wcs.crpix = self.crpix
        wcs.wcs.crval = self.crval
        wcs.wcs.cdelt = [-self.cdelt, self.cdelt]
        wcs.wcs.datfix()
        return wcs


def _centred(nx, ny):
    return ((nx + 1) / 2.0, (ny + 1) / 2.0)


def _random_cases(seed=20261121, per_projection=6):
    rng = np.random.default_rng(seed)
    cases = []
    for proj in SUPPORTED_PROJECTIONS:
        for i in range(per_projection):
            nx, ny = (int(v) for v in rng.integers(3, 150, size=2))
            if i % 2:
                nx, ny = nx | 1, ny & ~1 or 2  # one odd, one even axis
            cdelt = float(10 ** rng.uniform(-3, 0))
            lat = [0.0, rng.uniform(-90, 90), rng.choice([-1, 1]) * rng.uniform(80, 89.9),
                   rng.choice([-1, 1]) * 89.9][i % 4]
            crval = (float(rng.uniform(0, 360)), float(lat))
            if i % 3 == 0:
                crpix = _centred(nx, ny)
            else:
                crpix = tuple(float(c) for c in rng.uniform(-0.5, 1.5, 2) * (nx, ny))
            frame = ("galactic", "icrs")[(i // 2) % 2]
            cases.append(Case(proj, frame, crval, cdelt, (nx, ny), crpix, f"r{i}"))
    return cases


def _special_cases():
    cases = []
    for proj in GLOBAL:  # all-sky maps, odd and even sizes
        for nx, ny in ((720, 360), (721, 361)):
            cases.append(Case(proj, "galactic", (0.0, 0.0), 0.5, (nx, ny), _centred(nx, ny),
                              f"allsky{nx}"))
    for proj, cdelt in (("ZEA", 0.5), ("ARC", 0.75), ("STG", 1.0), ("SIN", 0.25)):
        n = 481  # whole domain plus a NaN margin (STG and TAN have none)
        cases.append(Case(proj, "icrs", (120.0, -35.0), cdelt, (n, n - 1), _centred(n, n - 1),
                          "wide"))
    # CAR with a non-zero reference latitude is oblique in wcslib
    cases.append(Case("CAR", "icrs", (83.63, 22.01), 0.05, (400, 300), _centred(400, 300),
                      "oblique"))
    cases.append(Case("CAR", "galactic", (10.0, 60.0), 1.0, (360, 181), _centred(360, 181),
                      "oblique-wide"))
    for proj in ("TAN", "SIN", "ZEA", "ARC", "STG", "AIT"):  # reference point on a pole
        cases.append(Case(proj, "icrs", (45.0, 90.0), 0.1, (201, 201), _centred(201, 201),
                          "northpole"))
        cases.append(Case(proj, "galactic", (300.0, -90.0), 0.1, (200, 200),
                          _centred(200, 200), "southpole"))
    return cases


RANDOM_CASES = _random_cases()
SPECIAL_CASES = _special_cases()
ALL_CASES = RANDOM_CASES + SPECIAL_CASES
HARNESS_CASES = RANDOM_CASES[::3] + SPECIAL_CASES[::2]


def _ids(cases):
    return [c.id for c in cases]


# --------------------------------------------------------------------------- helpers


def _astropy_pix2world(wcs, x, y):
    with np.errstate(invalid="ignore"):
        lon, lat = wcs.wcs_pix2world(x, y, 0)
    return lon, lat


def _assert_sky_close(lon, lat, lon_ref, lat_ref, tol=DEG_TOL, slack=0.0):
    """Same NaN pattern, sky distance below ``tol + slack`` (deg, per point)."""
    nan = np.isnan(lon_ref) | np.isnan(lat_ref)
    np.testing.assert_array_equal(np.isnan(lon), nan, err_msg="NaN pattern differs (lon)")
    np.testing.assert_array_equal(np.isnan(lat), nan, err_msg="NaN pattern differs (lat)")
    ok = ~nan
    if not ok.any():
        return 0.0
    dlon = np.abs((lon[ok] - lon_ref[ok] + 180.0) % 360.0 - 180.0) * np.cos(np.radians(lat_ref[ok]))
    dlat = np.abs(lat[ok] - lat_ref[ok])
    allowed = tol + np.broadcast_to(slack, np.shape(lon_ref))[ok]
    worst = max(dlon.max(), dlat.max())
    assert np.all(dlon < allowed) and np.all(dlat < allowed), f"max sky difference {worst:.3g} deg (lon {dlon.max():.3g}, lat {dlat.max():.3g})"
    assert np.all((lon[ok] >= 0.0) & (lon[ok] < 360.0)), "lon outside [0, 360)"
    return worst


def _wcslib_slack(wcs, x, y, proj):
    """Known error of wcslib itself, as extra tolerance (deg) per point.

    wcslib's MOL deprojection takes theta = asin(z) with z -> 1 at the native poles,
    which loses digits there: measured against 80-bit arithmetic its error stays
    below 5e-15 / cos(theta)^2 deg (1e-9 deg at 0.034 deg from the pole), while
    gpumask's cancellation-free form stays below 1e-13 deg.  Elsewhere: none.
    """
    if proj != "MOL":
        return 0.0
    pix = np.column_stack([np.ravel(x), np.ravel(y)])
    with np.errstate(invalid="ignore"):
        theta = wcs.wcs.p2s(pix, 0)["theta"].reshape(np.shape(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(1e-14 / np.cos(np.radians(theta)) ** 2, nan=0.0, posinf=np.inf)


def _regular(wcs, x, y, proj):
    """Pixels where sky -> pixel is well defined: away from the native poles of the
    cylindrical projections and their +-180 seam (one sky point, several pixels), and
    from the antipode of ARC/ZEA (a whole circle of pixels)."""
    pix = np.column_stack([np.ravel(x), np.ravel(y)])
    with np.errstate(invalid="ignore"):
        native = wcs.wcs.p2s(pix, 0)
    phi, theta = native["phi"].reshape(np.shape(x)), native["theta"].reshape(np.shape(x))
    ok = np.isfinite(phi) & (native["stat"].reshape(np.shape(x)) == 0)
    with np.errstate(invalid="ignore"):
        if proj in GLOBAL:
            ok &= (np.abs(theta) < 90.0 - 1e-6) & (np.abs(phi) < 180.0 - 1e-6)
        if proj in ("ARC", "ZEA"):
            ok &= theta > -89.99
    return ok


def _all_pixels(nx, ny):
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    return x, y


# --------------------------------------------------------------------------- pix2world


def test_supported_projections():
    assert set(("CAR", "TAN", "SIN", "AIT", "ZEA", "ARC", "STG", "MOL")) <= set(
        SUPPORTED_PROJECTIONS
    )


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_grid_matches_astropy(case):
    wcs = case.wcs()
    params = WcsParams.from_wcs(wcs)
    assert params is not None and params.code == case.proj
    nx, ny = case.npix
    lon, lat = pixel_grid_world(params, nx, ny)
    assert lon.shape == lat.shape == (ny, nx) and lon.dtype == np.float64
    x, y = _all_pixels(nx, ny)
    _assert_sky_close(lon, lat, *_astropy_pix2world(wcs, x, y),
                      slack=_wcslib_slack(wcs, x, y, case.proj))

    lon, lat = pixel_grid_world(params, nx, ny, mode="edges")
    assert lon.shape == (ny + 1, nx + 1)
    x, y = _all_pixels(nx + 1, ny + 1)
    _assert_sky_close(lon, lat, *_astropy_pix2world(wcs, x - 0.5, y - 0.5),
                      slack=_wcslib_slack(wcs, x - 0.5, y - 0.5, case.proj))


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_random_points_match_astropy(case):
    wcs = case.wcs()
    params = WcsParams.from_wcs(wcs)
    rng = np.random.default_rng(abs(hash(case.id)) % 2**32)
    nx, ny = case.npix
    # sub-pixel positions, a fifth of them outside the map
    x = rng.uniform(-0.1, 1.1, 4000) * nx - 0.5
    y = rng.uniform(-0.1, 1.1, 4000) * ny - 0.5
    _assert_sky_close(*pix2world(params, x, y), *_astropy_pix2world(wcs, x, y),
                      slack=_wcslib_slack(wcs, x, y, case.proj))


@pytest.mark.parametrize("proj", GLOBAL)
def test_allsky_tenth_degree(proj):
    """3600 x 1800 at 0.1 deg: full grid from us, every 9th row from astropy."""
    nx, ny = 3600, 1800
    case = Case(proj, "galactic", (0.0, 0.0), 0.1, (nx, ny), _centred(nx, ny))
    wcs = case.wcs()
    lon, lat = pixel_grid_world(WcsParams.from_wcs(wcs), nx, ny)
    rows = np.r_[0:ny:9, ny // 2 - 1, ny // 2, ny - 1]
    x, y = np.meshgrid(np.arange(nx, dtype=float), rows.astype(float))
    _assert_sky_close(lon[rows], lat[rows], *_astropy_pix2world(wcs, x, y),
                      slack=_wcslib_slack(wcs, x, y, proj))
    if proj != "CAR":
        assert np.isnan(lon[0, 0]) and np.isnan(lat[-1, -1])  # corners outside the ellipse


@pytest.mark.skipif(np.finfo(np.longdouble).eps > 1e-18, reason="needs 80-bit long double")
def test_mol_near_pole_is_accurate():
    """Near the MOL poles, where astropy loses digits, compare with 80-bit math."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["GLON-MOL", "GLAT-MOL"]
    wcs.wcs.crpix = [1.0, 1.0]
    wcs.wcs.cdelt = [-1.0, 1.0]
    params = WcsParams.from_wcs(wcs)
    y = np.sqrt(2.0) * params.r0 - np.logspace(-7, 0.5, 20000)
    lon, lat = pix2world(params, np.zeros_like(y), y)
    # textbook form in long double: 1 - sin(theta) = (v - sin v) / pi, v = pi - 2 gamma
    pi = np.longdouble("3.14159265358979323846264338327950288")
    gamma = np.arcsin(np.longdouble(y) / (np.sqrt(np.longdouble(2)) * np.longdouble(params.r0)))
    v = pi - 2 * gamma
    theta = 90 - 2 * np.arcsin(np.sqrt((v - np.sin(v)) / (2 * pi))) * 180 / pi
    assert np.max(np.abs(lat - theta.astype(float))) < 1e-11


def test_reference_pixel_is_crval():
    for proj in SUPPORTED_PROJECTIONS:
        case = Case(proj, "icrs", (123.25, -41.5), 0.02, (101, 101), (51.0, 51.0))
        params = WcsParams.from_wcs(case.wcs())
        lon, lat = pix2world(params, 50.0, 50.0)
        assert lon.shape == () and abs(lon - 123.25) < 1e-12 and abs(lat + 41.5) < 1e-12, proj
        x, y = world2pix(params, 123.25, -41.5)
        assert abs(x - 50.0) < 1e-9 and abs(y - 50.0) < 1e-9, proj


def test_shapes_broadcasting_and_nan_inputs():
    params = WcsParams.from_wcs(SPECIAL_CASES[0].wcs())
    lon, lat = pix2world(params, np.arange(5.0)[None, :], np.arange(3.0)[:, None])
    assert lon.shape == lat.shape == (3, 5)
    ref = pix2world(params, *np.meshgrid(np.arange(5.0), np.arange(3.0)))
    np.testing.assert_array_equal(lon, ref[0])
    lon, lat = pix2world(params, [np.nan, 1.0], [2.0, np.inf])
    assert np.isnan(lon).all() and np.isnan(lat).all()
    x, y = world2pix(params, [10.0, np.nan, 0.0], [0.0, 0.0, 91.0])
    assert np.isfinite(x[0]) and np.isnan(x[1:]).all() and np.isnan(y[1:]).all()
    # inputs are never modified in place
    xs = np.array([1.0, 2.0])
    pix2world(params, xs, xs)
    world2pix(params, xs, xs)
    np.testing.assert_array_equal(xs, [1.0, 2.0])


def test_cd_matrix_rotation_and_fiducial_offsets():
    """CD/CROTA (rotated pixel grid) and PV1_1/PV1_2 (offsets x0, y0 != 0)."""
    for proj in SUPPORTED_PROJECTIONS:
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = [f"RA---{proj}", f"DEC--{proj}"]
        wcs.wcs.crval = [40.0, 20.0]
        wcs.wcs.crpix = [50.0, 40.0]
        wcs.wcs.cd = [[-0.4, 0.1], [0.15, 0.5]]
        if proj in GLOBAL:
            wcs.wcs.set_pv([(1, 0, 1.0), (1, 1, 15.0), (1, 2, 25.0)])
        params = WcsParams.from_wcs(wcs)
        assert params is not None, proj
        x, y = _all_pixels(100, 80)
        _assert_sky_close(*pixel_grid_world(params, 100, 80), *_astropy_pix2world(wcs, x, y))


# --------------------------------------------------------------------------- world2pix


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_world2pix_matches_astropy(case):
    wcs = case.wcs()
    params = WcsParams.from_wcs(wcs)
    nx, ny = case.npix
    x, y = _all_pixels(nx, ny)
    ok = _regular(wcs, x, y, case.proj)
    lon, lat = _astropy_pix2world(wcs, x[ok], y[ok])
    px, py = world2pix(params, lon, lat)
    with np.errstate(invalid="ignore"):
        ax, ay = wcs.wcs_world2pix(lon, lat, 0)
    assert np.all(np.isfinite(px)) and np.all(np.isfinite(py))
    if px.size:
        assert np.max(np.hypot(px - ax, py - ay)) < PIX_TOL
        assert np.max(np.hypot(px - x[ok], py - y[ok])) < PIX_TOL  # round trip


@pytest.mark.parametrize("case", RANDOM_CASES[::2] + SPECIAL_CASES, ids=_ids(RANDOM_CASES[::2] + SPECIAL_CASES))
def test_world2pix_whole_sky_nan_pattern(case):
    """Points all over the sphere: NaN exactly where astropy has no pixel (e.g.
    the far hemisphere for TAN/SIN), same pixel near the map."""
    wcs = case.wcs()
    params = WcsParams.from_wcs(wcs)
    rng = np.random.default_rng(7)
    lon = rng.uniform(0.0, 360.0, 5000)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 5000)))
    px, py = world2pix(params, lon, lat)
    with np.errstate(invalid="ignore"):
        ax, ay = wcs.wcs_world2pix(lon, lat, 0)
    np.testing.assert_array_equal(np.isnan(px), np.isnan(ax))
    np.testing.assert_array_equal(np.isnan(py), np.isnan(ay))
    nx, ny = case.npix
    near = (np.abs(ax - nx / 2) < nx) & (np.abs(ay - ny / 2) < ny)
    near &= _regular(wcs, ax, ay, case.proj)
    if near.any():
        assert np.max(np.hypot(px - ax, py - ay)[near]) < PIX_TOL


# --------------------------------------------------------------------------- from_wcs


def _header_wcs(**cards):
    header = fits.Header()
    header["NAXIS"] = 2
    for key, value in cards.items():
        header[key] = value
    with warnings.catch_warnings():
        # astropy reports its NCP -> SIN translation; that translation is the point
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


def test_from_wcs_refuses_what_the_device_cannot_do():
    base = {"CRPIX1": 10.0, "CRPIX2": 10.0, "CDELT1": -0.1, "CDELT2": 0.1,
            "CRVAL1": 10.0, "CRVAL2": 20.0}
    assert WcsParams.from_wcs(_header_wcs(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", **base))
    refused = {
        "COE": _header_wcs(CTYPE1="RA---COE", CTYPE2="DEC--COE", PV2_1=45.0, **base),
        "HPX": _header_wcs(CTYPE1="RA---HPX", CTYPE2="DEC--HPX", **base),
        "swapped": _header_wcs(CTYPE1="DEC--TAN", CTYPE2="RA---TAN", **base),
        "linear": _header_wcs(CTYPE1="X", CTYPE2="Y", **base),
        "NCP": _header_wcs(CTYPE1="RA---NCP", CTYPE2="DEC--NCP", **base),
        "slant SIN": _header_wcs(CTYPE1="RA---SIN", CTYPE2="DEC--SIN", PV2_1=0.1, **base),
        "TPV": _header_wcs(CTYPE1="RA---TPV", CTYPE2="DEC--TPV", PV1_1=1.0, PV2_1=1.0,
                           PV1_4=0.01, **base),
        "SIP": _header_wcs(CTYPE1="RA---TAN-SIP", CTYPE2="DEC--TAN-SIP", A_ORDER=2,
                           B_ORDER=2, A_2_0=1e-5, B_0_2=1e-5, **base),
    }
    spectral = WCS(naxis=1)
    spectral.wcs.ctype = ["FREQ"]
    refused["spectral"] = spectral
    cube = WCS(naxis=3)
    cube.wcs.ctype = ["RA---TAN", "DEC--TAN", "ENERGY"]
    refused["3d"] = cube
    refused["not a WCS"] = object()
    for name, wcs in refused.items():
        assert WcsParams.from_wcs(wcs) is None, name


def test_wcsparams_validation():
    good = WcsParams.from_wcs(RANDOM_CASES[0].wcs())
    assert len(good.kernel_args()) == 18
    assert good.kernel_defines() == {"GPUMASK_PROJ": f"GPUMASK_PROJ_{good.code}"}
    kwargs = dict(code="CAR", crpix=(1, 1), cd=((1, 0), (0, 1)), cd_inv=((1, 0), (0, 1)),
                  euler=(0, 0, 0, 1, 0))
    WcsParams(**kwargs)
    with pytest.raises(ValueError, match="'XYZ'"):
        WcsParams(**{**kwargs, "code": "XYZ"})
    with pytest.raises(ValueError, match="singular"):
        WcsParams(**{**kwargs, "cd": ((1, 2), (2, 4))})
    with pytest.raises(ValueError, match="euler"):
        WcsParams(**{**kwargs, "euler": (0, 0, 0)})
    with pytest.raises(ValueError, match="r0"):
        WcsParams(**{**kwargs, "r0": -1.0})
    with pytest.raises(TypeError, match="WcsParams"):
        pix2world("CAR", 0.0, 0.0)
    with pytest.raises(ValueError, match="mode"):
        pixel_grid_world(good, 3, 3, mode="corner")
    with pytest.raises(ValueError, match="nx"):
        pixel_grid_world(good, 0, 3)


def test_import_does_not_load_cupy():
    import gpumask

    root = str(Path(gpumask.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = "import sys, gpumask.sky.projections; assert 'cupy' not in sys.modules, 'cupy imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# --------------------------------------------------------------------------- CUDA sources

# Extra nvcc flags per kernel file (kernels needing compile-time choices).
PTX_VARIANTS = {"wcs.cu": [f"-DGPUMASK_PROJ=GPUMASK_PROJ_{code}" for code in SUPPORTED_PROJECTIONS]}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_kernels_compile_to_ptx(tmp_path):
    kdir = kernel_dir()
    jobs = []
    for source in sorted(kdir.glob("*.cu")):
        for i, flag in enumerate(PTX_VARIANTS.get(source.name, [None])):
            cmd = ["nvcc", "--ptx", "-arch=sm_90", "-std=c++17", f"-I{kdir}", str(source),
                   "-o", str(tmp_path / f"{source.stem}_{i}.ptx")]
            jobs.append(cmd + ([flag] if flag else []))
    assert jobs, f"no .cu files in {kdir}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), jobs))
    failed = [f"{' '.join(c)}\n{r.stderr}" for c, r in zip(jobs, results) if r.returncode]
    assert not failed, "\n\n".join(failed)


def test_kernel_signature_matches_struct():
    """pix2world_grid's double arguments follow struct gpumask_wcs, as kernel_args() does."""
    header = (kernel_dir() / "wcs_proj.cuh").read_text()
    body = re.search(r"struct gpumask_wcs \{(.*?)\};", header, re.S).group(1)
    fields = re.findall(r"\b(\w+)[,;]", re.sub(r"//.*", "", body))
    source = (kernel_dir() / "wcs.cu").read_text()
    signature = re.search(r"void pix2world_grid\((.*?)\)", source, re.S).group(1)
    params = re.findall(r"(\w+)\s*(?:,|$)", signature.strip())
    assert params[:5] == ["lon", "lat", "nx", "ny", "offset"]
    assert params[5:] == fields and len(fields) == 18


@pytest.fixture(scope="module")
def harness(compile_harness):
    return compile_harness("wcs_harness")


def _run_harness(exe, mode, params, extra=(), data=None):
    args = [str(exe), mode, params.code, *(repr(float(v)) for v in params.kernel_args()),
            *map(str, extra)]
    stdin = None if data is None else np.ascontiguousarray(data, dtype=np.float64).tobytes()
    out = subprocess.run(args, input=stdin, capture_output=True, check=True, timeout=120)
    return np.frombuffer(out.stdout, dtype=np.float64)


@pytest.mark.parametrize("case", HARNESS_CASES, ids=_ids(HARNESS_CASES))
def test_device_math_on_host_matches_numpy(harness, case):
    """The function the kernel calls, compiled for the CPU, against numpy."""
    params = WcsParams.from_wcs(case.wcs())
    nx, ny = case.npix
    for mode, offset, shape in (("center", 0.0, (ny, nx)), ("edges", -0.5, (ny + 1, nx + 1))):
        got = _run_harness(harness, "grid", params, (shape[1], shape[0], offset))
        ref = pixel_grid_world(params, nx, ny, mode=mode)
        lon, lat = got.reshape(2, *shape)
        _assert_sky_close(lon, lat, *ref, tol=HOST_TOL)

    rng = np.random.default_rng(3)
    x = rng.uniform(-0.2, 1.2, 3000) * nx
    y = rng.uniform(-0.2, 1.2, 3000) * ny
    lon, lat = _run_harness(harness, "p2w", params, data=np.column_stack([x, y])).reshape(-1, 2).T
    ref_lon, ref_lat = pix2world(params, x, y)
    _assert_sky_close(lon, lat, ref_lon, ref_lat, tol=HOST_TOL)

    ok = np.isfinite(ref_lon)
    sky = np.column_stack([ref_lon[ok], ref_lat[ok]])
    px, py = _run_harness(harness, "w2p", params, data=sky).reshape(-1, 2).T
    rx, ry = world2pix(params, ref_lon[ok], ref_lat[ok])
    np.testing.assert_array_equal(np.isnan(px), np.isnan(rx))
    fin = np.isfinite(rx)
    assert not fin.any() or np.max(np.hypot(px - rx, py - ry)[fin]) < 1e-9


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("case", HARNESS_CASES, ids=_ids(HARNESS_CASES))
def test_gpu_grid_matches_numpy(case):
    cupy = pytest.importorskip("cupy")
    params = WcsParams.from_wcs(case.wcs())
    nx, ny = case.npix
    for mode in ("center", "edges"):
        lon, lat = pixel_grid_world(params, nx, ny, xp=cupy, mode=mode)
        assert isinstance(lon, cupy.ndarray) and lon.flags.c_contiguous
        _assert_sky_close(cupy.asnumpy(lon), cupy.asnumpy(lat),
                          *pixel_grid_world(params, nx, ny, mode=mode))
    x = cupy.linspace(-5.0, nx + 5.0, 777)
    y = cupy.linspace(ny + 5.0, -5.0, 777)
    lon, lat = pix2world(params, x, y, xp=cupy)
    ref = pix2world(params, cupy.asnumpy(x), cupy.asnumpy(y))
    _assert_sky_close(cupy.asnumpy(lon), cupy.asnumpy(lat), *ref)
    px, py = world2pix(params, lon, lat, xp=cupy)
    rx, ry = world2pix(params, *ref)
    np.testing.assert_allclose(cupy.asnumpy(px), rx, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(cupy.asnumpy(py), ry, atol=1e-9, equal_nan=True)


@pytest.mark.gpu
def test_gpu_grid_tall_image_uses_grid_stride():
    cupy = pytest.importorskip("cupy")
    params = WcsParams.from_wcs(Case("CAR", "icrs", (0.0, 30.0), 1e-4, (3, 600_000),
                                     (2.0, 300_000.5)).wcs())
    lon, lat = pixel_grid_world(params, 3, 600_000, xp=cupy)
    ref = pixel_grid_world(params, 3, 600_000)
    _assert_sky_close(cupy.asnumpy(lon), cupy.asnumpy(lat), *ref)
