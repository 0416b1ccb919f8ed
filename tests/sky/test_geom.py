"""WcsGeom against gammapy 2.1 (the oracle) and astropy.

The parity cases (``PARITY_CASES``) are a fixed list of edge cases plus seeded random
argument sets over every supported projection, both frames, SkyCoord/tuple skydirs,
odd/even/tuple npix, widths (incl. round-half-to-even), refpix and energy axes.
Run with ``-s`` to see the parity figures printed at the end of the module.
"""

from __future__ import annotations

import math
import re

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.nddata.utils import NoOverlapError

from gpumask import MapAxis, WcsGeom
from gpumask.sky.axes import axes_to_bands_hdu
from gpumask.backend import backend_of, to_host

PROJS = ("CAR", "TAN", "AIT", "SIN", "ZEA", "ARC", "STG", "MOL")
FRAMES = ("galactic", "icrs")
OTHER_FRAME = {"galactic": "icrs", "icrs": "galactic"}

HEADER_RTOL = 1e-12
COORD_TOL_DEG = 1e-9
PIX_TOL = 1e-6

# Figures quoted in reports; printed at module teardown (visible with ``-s``).
SUMMARY = {
    "cases": 0,
    "cases_vs_gammapy_get_coord": 0,
    "max_header_rel": 0.0,
    "max_coord_deg_vs_astropy": 0.0,
    "max_coord_deg_vs_gammapy": 0.0,
    "max_solid_angle_rel_vs_gammapy": 0.0,
    "max_solid_angle_rel_vs_analytic_car": 0.0,
    "allsky_car_total_rel": 0.0,
}


@pytest.fixture(scope="module", autouse=True)
def _print_parity_summary():
    yield
    if SUMMARY["cases"]:
        print(
            "\n[gpumask WcsGeom parity] "
            + ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in SUMMARY.items())
        )


def _note_max(key, value):
    if np.isfinite(value):
        SUMMARY[key] = max(SUMMARY[key], float(value))


# ---------------------------------------------------------------------- case generation


def _fixed_cases():
    cases = [
        # width -> npix with round half to even: 2.5 -> 2, 3.5 -> 4, 0.5 -> 0 is an error
        dict(skydir=(0.0, 0.0), width=2.5, binsz=1.0, frame="galactic", proj="CAR"),
        dict(skydir=(0.0, 0.0), width=3.5, binsz=1.0, frame="galactic", proj="CAR"),
        dict(skydir=(10.0, -5.0), width=(2.5, 4.5), binsz=1.0, frame="icrs", proj="TAN"),
        dict(skydir=(10.0, -5.0), width=(5.5, 6.5), binsz=(0.5, 0.25), frame="icrs", proj="CAR"),
        dict(skydir=(120.0, 30.0), width=(1.25, 0.75), binsz=0.25, frame="galactic", proj="ZEA"),
        # all-sky maps (neither npix nor width), NaN corners for AIT/MOL
        dict(binsz=5.0, frame="galactic", proj="CAR"),
        dict(binsz=4.0, frame="galactic", proj="AIT"),
        dict(binsz=3.0, frame="icrs", proj="MOL"),
        dict(binsz=(6.0, 4.0), frame="icrs", proj="AIT"),
        dict(binsz=2.0, frame="galactic", proj="CAR", skydir=(180.0, 0.0)),
        # CAR with non-zero reference latitude (oblique, wcslib LONPOLE/LATPOLE defaults)
        dict(skydir=(83.63, 22.01), npix=(50, 40), binsz=0.05, frame="icrs", proj="CAR"),
        dict(skydir=(10.0, 60.0), npix=(41, 31), binsz=0.5, frame="galactic", proj="CAR"),
        dict(skydir=(300.0, -75.0), width=(30.0, 20.0), binsz=0.5, frame="icrs", proj="CAR"),
        dict(skydir=SkyCoord(0.0, 90.0, unit="deg", frame="galactic"), npix=20, binsz=1.0,
             frame="galactic", proj="CAR"),
        # poles and lon wrap
        dict(skydir=(0.0, 90.0), npix=21, binsz=1.0, frame="galactic", proj="TAN"),
        dict(skydir=(45.0, -90.0), npix=(30, 20), binsz=2.0, frame="icrs", proj="ZEA"),
        dict(skydir=(359.9, 0.0), npix=(40, 10), binsz=0.1, frame="icrs", proj="CAR"),
        # SkyCoord in the other frame (transformation), fk5
        dict(skydir=SkyCoord(83.63, 22.01, unit="deg", frame="icrs"), npix=(30, 20), binsz=0.1,
             frame="galactic", proj="TAN"),
        dict(skydir=SkyCoord(184.55, -5.78, unit="deg", frame="galactic"), npix=(31, 21),
             binsz=0.1, frame="icrs", proj="CAR"),
        dict(skydir=SkyCoord(266.4, -28.9, unit="deg", frame="fk5"), npix=25, binsz=0.2,
             frame="galactic", proj="SIN"),
        # refpix given (FITS 1-based), odd / even / one pixel
        dict(skydir=(0.0, 0.0), npix=(10, 11), binsz=0.1, refpix=(1.0, 1.0), frame="galactic",
             proj="CAR"),
        dict(skydir=(20.0, 40.0), npix=(10, 11), binsz=0.1, refpix=(-3.5, 20.25), frame="icrs",
             proj="STG"),
        dict(skydir=(20.0, 40.0), npix=1, binsz=0.3, frame="icrs", proj="ARC"),
        dict(skydir=(20.0, 40.0), npix=(1, 7), binsz=(0.3, 0.1), frame="icrs", proj="ARC"),
        # npix wins over width
        dict(skydir=(20.0, 40.0), npix=(12, 8), width=(100.0, 100.0), binsz=0.1, frame="icrs",
             proj="TAN"),
        # energy axes
        dict(skydir=(0.0, 0.0), npix=(8, 6), binsz=0.5, frame="galactic", proj="CAR",
             axes=[np.geomspace(1.0, 100.0, 5)]),
        dict(skydir=(83.63, 22.01), width=3.0, binsz=0.1, frame="icrs", proj="TAN",
             axes=[np.geomspace(0.1, 10.0, 2)]),
    ]
    return cases


def _random_cases(n, seed=20260101):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        proj = PROJS[i % len(PROJS)]
        frame = FRAMES[(i // len(PROJS)) % len(FRAMES)]
        case = dict(proj=proj, frame=frame)
        lon = round(float(rng.uniform(0.0, 360.0)), 6)
        lat = round(float(np.rad2deg(np.arcsin(rng.uniform(-0.99, 0.99)))), 6)
        kind = rng.random()
        if kind < 0.4:
            case["skydir"] = (lon, lat)
        elif kind < 0.8:
            case["skydir"] = SkyCoord(lon, lat, unit="deg", frame=OTHER_FRAME[frame])
        elif kind < 0.9:
            case["skydir"] = SkyCoord(lon, lat, unit="deg", frame=frame)
        # else: default skydir (0, 0)
        binsz_choices = (0.01, 0.02, 0.05, 0.1, 0.125, 0.2, 0.25, 0.3, 0.5, 1.0)
        if rng.random() < 0.3:
            binsz = tuple(float(rng.choice(binsz_choices)) for _ in range(2))
        elif rng.random() < 0.5:
            binsz = float(rng.choice(binsz_choices))
        else:
            binsz = round(float(rng.uniform(0.01, 1.0)), 4)
        case["binsz"] = binsz
        bx, by = binsz if isinstance(binsz, tuple) else (binsz, binsz)
        size = rng.random()
        if size < 0.35:
            case["npix"] = int(rng.integers(1, 61))
        elif size < 0.6:
            case["npix"] = (int(rng.integers(1, 61)), int(rng.integers(1, 61)))
        else:
            # width in units of binsz: k + 0.5 (exact halves when binsz is binary), or any
            kx, ky = (int(k) for k in rng.integers(1, 60, size=2))
            if rng.random() < 0.5:
                width = ((kx + 0.5) * bx, (ky + 0.5) * by)
            else:
                width = (float(rng.uniform(kx, kx + 1)) * bx, float(rng.uniform(ky, ky + 1)) * by)
            case["width"] = width if rng.random() < 0.7 else width[0]
            if not isinstance(case["width"], tuple) and case["width"] / by < 0.5:
                case["width"] = (width[0], max(width[0], by))
        if rng.random() < 0.2:
            case["refpix"] = (round(float(rng.uniform(-5.0, 40.0)), 3),
                              round(float(rng.uniform(-5.0, 40.0)), 3))
        if rng.random() < 0.15:
            nbin = int(rng.integers(1, 5))
            case["axes"] = [np.geomspace(1.0, 10.0 ** rng.uniform(0.5, 2.0), nbin + 1)]
        cases.append(case)
    return cases


PARITY_CASES = _fixed_cases() + _random_cases(240)


def _case_id(idx):
    case = PARITY_CASES[idx]
    sky = case.get("skydir")
    kind = "sc" if isinstance(sky, SkyCoord) else ("tuple" if sky is not None else "default")
    size = "npix" if "npix" in case else ("width" if "width" in case else "allsky")
    return f"{idx:03d}-{case['proj']}-{case['frame']}-{kind}-{size}"


def _gpumask_kwargs(case):
    kwargs = {k: v for k, v in case.items() if k != "axes"}
    if "axes" in case:
        kwargs["axes"] = [MapAxis.from_edges(e, unit="TeV", interp="log", name="energy")
                          for e in case["axes"]]
    return kwargs


def _gammapy_kwargs(case, gm):
    kwargs = {k: v for k, v in case.items() if k != "axes"}
    if "axes" in case:
        kwargs["axes"] = [gm.MapAxis.from_edges(e, unit="TeV", interp="log", name="energy")
                          for e in case["axes"]]
    return kwargs


# ---------------------------------------------------------------------- comparison helpers


def _header_rel_diff(a, b):
    """Largest relative difference of float cards; asserts the rest is identical."""
    assert list(a.keys()) == list(b.keys())
    worst = 0.0
    for key in b.keys():
        va, vb = a[key], b[key]
        if isinstance(vb, float) or isinstance(va, float):
            assert isinstance(va, (int, float)) and isinstance(vb, (int, float)), key
            if va != vb:
                worst = max(worst, abs(va - vb) / max(abs(va), abs(vb)))
            assert math.isclose(va, vb, rel_tol=HEADER_RTOL, abs_tol=0.0) or va == vb, (key, va, vb)
        else:
            assert va == vb, (key, va, vb)
    return worst


def _sky_diff_deg(lon1, lat1, lon2, lat2):
    """Max angular mismatch (deg): lon difference modulo 360 times cos(lat), lat difference."""
    lon1, lat1, lon2, lat2 = (np.asarray(v, dtype=float) for v in (lon1, lat1, lon2, lat2))
    np.testing.assert_array_equal(np.isnan(lon1), np.isnan(lon2))
    np.testing.assert_array_equal(np.isnan(lat1), np.isnan(lat2))
    ok = np.isfinite(lon1) & np.isfinite(lat1)
    if not ok.any():
        return 0.0
    dlon = (lon1[ok] - lon2[ok] + 180.0) % 360.0 - 180.0
    dlon = dlon * np.cos(np.deg2rad(lat2[ok]))
    dlat = lat1[ok] - lat2[ok]
    return float(np.max(np.hypot(dlon, dlat)))


def _astropy_grid(wcs, nx, ny, mode="center"):
    if mode == "center":
        x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float))
    else:
        x, y = np.meshgrid(np.arange(nx + 1, dtype=float) - 0.5, np.arange(ny + 1, dtype=float) - 0.5)
    with np.errstate(invalid="ignore"):
        lon, lat = wcs.wcs_pix2world(x, y, 0)
    return lon, lat


def _gm_npix(geom):
    return int(np.ravel(geom.npix[0])[0]), int(np.ravel(geom.npix[1])[0])


def _assert_same_as_gammapy(ours, theirs):
    """Header, shape, pixel convention of a gpumask and a gammapy geometry."""
    _note_max("max_header_rel", _header_rel_diff(ours.to_header(), theirs.to_header()))
    assert ours.data_shape == tuple(int(n) for n in theirs.data_shape)
    assert ours.npix == _gm_npix(theirs)
    np.testing.assert_allclose(ours.pixel_scales.deg, theirs.pixel_scales.deg, rtol=1e-12)
    assert ours.center_pix == tuple(float(v) for v in theirs.center_pix[:2])
    assert ours.center_skydir.separation(theirs.center_skydir).deg < COORD_TOL_DEG
    assert ours.frame == theirs.frame
    assert ours.projection == theirs.projection


# ---------------------------------------------------------------------- 1. create parity


def test_parity_case_count():
    assert len(PARITY_CASES) >= 200
    assert {c["proj"] for c in PARITY_CASES} == set(PROJS)
    assert {c["frame"] for c in PARITY_CASES} == set(FRAMES)


@pytest.mark.gammapy
@pytest.mark.parametrize("idx", range(len(PARITY_CASES)), ids=_case_id)
def test_create_matches_gammapy(idx, gammapy_maps):
    case = PARITY_CASES[idx]
    ours = WcsGeom.create(**_gpumask_kwargs(case))
    theirs = gammapy_maps.WcsGeom.create(**_gammapy_kwargs(case, gammapy_maps))
    _assert_same_as_gammapy(ours, theirs)
    np.testing.assert_allclose(ours.width.to_value("deg"), np.ravel(theirs.width.to_value("deg")),
                               rtol=1e-12)

    # sky coordinates of the pixel centres: gpumask backend code vs astropy (gammapy's WCS)
    nx, ny = ours.npix
    lon, lat = ours.get_coord(backend="numpy")
    assert isinstance(lon, np.ndarray) and lon.shape == (ny, nx) == lat.shape
    ref_lon, ref_lat = _astropy_grid(theirs.wcs, nx, ny)
    diff = _sky_diff_deg(lon, lat, ref_lon, ref_lat)
    finite = np.isfinite(lon)
    assert np.all((lon[finite] >= 0.0) & (lon[finite] < 360.0))
    _note_max("max_coord_deg_vs_astropy", diff)
    assert diff < COORD_TOL_DEG
    SUMMARY["cases"] += 1

    # and against gammapy's own get_coord (slower: every 8th case and all all-sky ones)
    if idx % 8 == 0 or ("npix" not in case and "width" not in case):
        coord = theirs.to_image().get_coord()
        diff = _sky_diff_deg(lon, lat, coord.lon.to_value("deg"), coord.lat.to_value("deg"))
        _note_max("max_coord_deg_vs_gammapy", diff)
        assert diff < COORD_TOL_DEG
        SUMMARY["cases_vs_gammapy_get_coord"] += 1


@pytest.mark.parametrize("proj", PROJS)
def test_parity_projections_use_device_code(proj):
    """The parity cases must exercise gpumask.sky.projections, not the astropy fallback."""
    for skydir in ((0.0, 0.0), (83.63, 22.01), (10.0, 60.0)):
        assert WcsGeom.create(skydir=skydir, npix=5, binsz=0.1, proj=proj).device_projection


@pytest.mark.gammapy
@pytest.mark.parametrize("proj", ["CEA", "MER", "AZP"])
def test_host_fallback_projections(gammapy_maps, proj, rng):
    """Projections without device code: same header as gammapy, astropy coordinates."""
    kwargs = dict(skydir=(40.0, 20.0), npix=(30, 20), binsz=0.2, frame="icrs", proj=proj)
    ours = WcsGeom.create(**kwargs)
    _assert_same_as_gammapy(ours, gammapy_maps.WcsGeom.create(**kwargs))
    assert not ours.device_projection
    lon, lat = ours.get_coord(backend="numpy")
    ref_lon, ref_lat = _astropy_grid(ours.wcs, 30, 20)
    assert _sky_diff_deg(lon, lat, ref_lon, ref_lat) < COORD_TOL_DEG
    x, y = rng.uniform(-0.5, 29.5, 50), rng.uniform(-0.5, 19.5, 50)
    lon, lat = ours.pix_to_coord((x, y))
    x2, y2 = ours.coord_to_pix((lon, lat))
    np.testing.assert_allclose(x2, x, atol=PIX_TOL)
    np.testing.assert_allclose(y2, y, atol=PIX_TOL)


@pytest.mark.parametrize(
    ("width", "binsz", "npix"),
    [
        (2.5, 1.0, (2, 2)),
        (3.5, 1.0, (4, 4)),
        (4.5, 1.0, (4, 4)),
        ((2.5, 5.5), 1.0, (2, 6)),
        ((0.75, 1.25), 0.5, (2, 2)),
        ((1.0, 2.0), (0.25, 0.5), (4, 4)),
        ("3 deg", "30 arcmin", (6, 6)),
    ],
)
def test_create_width_rounds_half_to_even(width, binsz, npix):
    geom = WcsGeom.create(width=width, binsz=binsz)
    assert geom.npix == npix
    assert geom.data_shape == (npix[1], npix[0])


def test_create_pixel_convention():
    geom = WcsGeom.create(skydir=(10.0, 20.0), npix=(7, 4), binsz=(0.2, 0.1), frame="icrs")
    assert tuple(geom.wcs.wcs.crpix) == (4.0, 2.5)
    assert tuple(geom.wcs.wcs.cdelt) == (-0.2, 0.1)
    assert geom.center_pix == (3.0, 1.5)
    # 0-based pixel centres: pixel (3, 1.5) is the reference point
    lon, lat = geom.pix_to_coord((np.array([3.0]), np.array([1.5])))
    assert abs(lon[0] - 10.0) < 1e-9 and abs(lat[0] - 20.0) < 1e-9
    assert geom.data_shape == (4, 7)
    assert geom.is_image and geom.ndim == 2


def test_create_default_is_allsky_car_icrs():
    geom = WcsGeom.create()
    assert geom.npix == (720, 360)
    assert geom.frame == "icrs" and geom.projection == "CAR"
    np.testing.assert_allclose(geom.width.to_value("deg"), [360.0, 180.0])


# ---------------------------------------------------------------------- 2. headers


@pytest.mark.parametrize("idx", range(0, len(PARITY_CASES), 5), ids=lambda i: _case_id(i))
def test_from_header_round_trip(idx):
    geom = WcsGeom.create(**_gpumask_kwargs(PARITY_CASES[idx]))
    bands = axes_to_bands_hdu(geom.axes) if geom.axes else None
    back = WcsGeom.from_header(geom.to_header(), bands)
    assert back == geom
    assert back.data_shape == geom.data_shape
    assert _header_rel_diff(back.to_header(), geom.to_header()) == 0.0
    assert [ax.name for ax in back.axes] == [ax.name for ax in geom.axes]


@pytest.mark.gammapy
@pytest.mark.parametrize("hdu", [None, "COUNTS"])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(skydir=(10.0, 20.0), npix=(7, 5), binsz=0.5, proj="TAN", frame="galactic"),
        dict(skydir=(83.63, 22.01), npix=(12, 9), binsz=0.1, proj="CAR", frame="icrs"),
        dict(binsz=10.0, proj="AIT", frame="galactic"),
    ],
)
@pytest.mark.parametrize("naxes", [0, 1, 2])
def test_from_header_reads_gammapy_files(gammapy_maps, kwargs, hdu, naxes):
    gm = gammapy_maps
    gm_axes = [
        gm.MapAxis.from_energy_bounds(1.0, 10.0, 3, unit="TeV"),
        gm.MapAxis.from_edges([0.0, 0.5, 2.0], unit="deg", name="rad"),
    ][:naxes]
    gmap = gm.Map.create(axes=gm_axes, **kwargs)
    hdulist = gmap.to_hdulist(hdu=hdu)
    image = hdulist[0] if hdu is None else hdulist[hdu]
    header = image.header
    bands = hdulist[header["BANDSHDU"]] if "BANDSHDU" in header else None
    assert (bands is None) == (naxes == 0)

    ours = WcsGeom.from_header(header, bands)
    _assert_same_as_gammapy(ours, gmap.geom)
    assert ours.data_shape == image.data.shape
    assert [ax.name for ax in ours.axes] == [ax.name for ax in gm_axes]
    for a, b in zip(ours.axes, gm_axes):
        np.testing.assert_allclose(a.edges.to_value(b.unit), b.edges.value, rtol=1e-12)
        assert a.interp == b.interp and a.node_type == b.node_type

    # and gammapy reads gpumask's header + bands table back to the same geometry
    gm_bands = axes_to_bands_hdu(ours.axes) if ours.axes else None
    theirs = gm.WcsGeom.from_header(ours.to_header(), gm_bands)
    assert theirs == gmap.geom


@pytest.mark.gammapy
@pytest.mark.data
@pytest.mark.parametrize(
    ("filename", "hdu", "hdu_bands", "fmt"),
    [
        ("fermi-3fhl-gc/fermi-3fhl-gc-counts-cube.fits.gz", 0, "EBOUNDS", "fgst-ccube"),
        # CDELT1 > 0 and a centre-node energy_true axis (gadf PRIMARY_BANDS)
        ("fermi-3fhl-crab/Fermi-LAT-3FHL_iem.fits", 0, "PRIMARY_BANDS", "gadf"),
        ("fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits", "COUNTS", "COUNTS_BANDS", "gadf"),
        ("fermi-3fhl-gc/fermi-3fhl-gc-counts.fits.gz", 0, None, "gadf"),
    ],
)
def test_from_header_fermi_files(gammapy_maps, data_dir, filename, hdu, hdu_bands, fmt):
    with fits.open(data_dir / filename) as hdulist:
        header = hdulist[hdu].header
        bands = hdulist[hdu_bands] if hdu_bands else None
        ours = WcsGeom.from_header(header, bands, format=fmt)
        theirs = gammapy_maps.WcsGeom.from_header(header, bands, format=fmt)
        shape = hdulist[hdu].data.shape
    _assert_same_as_gammapy(ours, theirs)
    assert ours.data_shape == shape
    assert len(ours.axes) == len(theirs.axes)
    for a, b in zip(ours.axes, theirs.axes):
        assert a.name == b.name and a.node_type == b.node_type and a.interp == b.interp
        np.testing.assert_allclose(a.edges.to_value(b.unit), b.edges.value, rtol=1e-12)
    # pixel centres of a real file header: device code vs astropy
    lon, lat = ours.get_coord(backend="numpy")
    ref_lon, ref_lat = _astropy_grid(theirs.wcs, *ours.npix)
    assert _sky_diff_deg(lon, lat, ref_lon, ref_lat) < COORD_TOL_DEG


def test_from_header_errors():
    with pytest.raises(ValueError, match="CTYPE1"):
        WcsGeom.from_header(fits.Header({"NAXIS": 2, "NAXIS1": 3, "NAXIS2": 4}))
    header = WcsGeom.create(npix=(3, 4)).to_header()
    del header["WCSSHAPE"]
    with pytest.raises(ValueError, match="NAXIS1"):
        WcsGeom.from_header(header)
    header["WCSSHAPE"] = "(3)"
    with pytest.raises(ValueError, match=re.escape("'(3)'")):
        WcsGeom.from_header(header)


# ---------------------------------------------------------------------- 3. contains

CONTAINS_GEOMS = [
    dict(skydir=(0.0, 0.0), npix=(40, 30), binsz=0.1, frame="galactic", proj="CAR"),
    dict(skydir=(83.63, 22.01), npix=(50, 40), binsz=0.05, frame="icrs", proj="CAR"),
    dict(skydir=(10.0, 60.0), npix=(41, 31), binsz=0.5, frame="galactic", proj="CAR"),
    dict(skydir=(266.4, -28.9), npix=31, binsz=0.2, frame="icrs", proj="TAN"),
    dict(skydir=(0.0, 89.0), npix=(25, 20), binsz=0.3, frame="galactic", proj="ZEA"),
    dict(binsz=6.0, frame="galactic", proj="AIT"),
    dict(skydir=(359.9, -10.0), width=(20.0, 8.0), binsz=0.25, frame="icrs", proj="SIN"),
]


def _contains_points(geom, rng, n_random=400, n_edge=50, n_sky=400):
    """SkyCoords in the geometry's other frame plus the expected answers for the
    ones built from pixel positions (None for uniform sky points)."""
    nx, ny = geom.npix
    xs, ys = [], []
    # random pixel positions in and around the map
    x = rng.uniform(-3.0, nx + 2.0, n_random)
    y = rng.uniform(-3.0, ny + 2.0, n_random)
    xs.append(x)
    ys.append(y)
    # just inside / just outside every edge (1e-7 px)
    eps = 1e-7
    for edge_x in (-0.5, nx - 0.5):
        for sign in (-1.0, 1.0):
            xs.append(np.full(n_edge, edge_x + sign * eps))
            ys.append(rng.uniform(-0.4, ny - 0.6, n_edge))
    for edge_y in (-0.5, ny - 0.5):
        for sign in (-1.0, 1.0):
            ys.append(np.full(n_edge, edge_y + sign * eps))
            xs.append(rng.uniform(-0.4, nx - 0.6, n_edge))
    x, y = np.concatenate(xs), np.concatenate(ys)
    with np.errstate(invalid="ignore"):
        lon, lat = geom.wcs.wcs_pix2world(x, y, 0)
    ok = np.isfinite(lon) & np.isfinite(lat)
    x, y, lon, lat = x[ok], y[ok], lon[ok], lat[ok]
    expect = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    # uniform points on the sky
    sky_lon = rng.uniform(0.0, 360.0, n_sky)
    sky_lat = np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0, n_sky)))
    lon_all = np.concatenate([lon, sky_lon])
    lat_all = np.concatenate([lat, sky_lat])
    coords = SkyCoord(lon_all, lat_all, unit="deg", frame=geom.frame).transform_to(OTHER_FRAME[geom.frame])
    return coords, expect


@pytest.mark.gammapy
@pytest.mark.parametrize("kwargs", CONTAINS_GEOMS, ids=lambda k: f"{k['proj']}-{k['frame']}")
def test_contains_matches_gammapy(gammapy_maps, kwargs, rng):
    ours = WcsGeom.create(**kwargs)
    theirs = gammapy_maps.WcsGeom.create(**kwargs)
    coords, expect = _contains_points(ours, rng)
    got = ours.contains(coords)
    assert got.dtype == bool and got.shape == coords.shape
    np.testing.assert_array_equal(got, theirs.contains(coords))
    np.testing.assert_array_equal(got[: expect.size], expect)
    assert got.any()
    if "npix" in kwargs or "width" in kwargs:
        assert not got.all()
    # the geometry's own frame and a scalar SkyCoord
    np.testing.assert_array_equal(ours.contains(coords.transform_to(ours.frame)), got)
    assert bool(ours.contains(ours.center_skydir))


def test_contains_lonlat_arrays():
    geom = WcsGeom.create(skydir=(0.0, 0.0), npix=(10, 10), binsz=1.0, frame="galactic")
    # pixel x = -0.5 is lon = +5, x = 9.5 is lon = -5 (cdelt1 < 0)
    lon = np.array([4.999999, 5.000001, 355.000001, 354.999999, 0.0, 0.0, 0.0])
    lat = np.array([0.0, 0.0, 0.0, 0.0, -5.0, 4.999999, 5.0])
    np.testing.assert_array_equal(geom.contains((lon, lat)), [True, False, True, False, True, True, False])


# ---------------------------------------------------------------------- 4. pixel <-> sky

PIX_GEOMS = [
    dict(skydir=(83.63, 22.01), npix=(60, 50), binsz=0.05, frame="icrs", proj="CAR"),
    dict(skydir=(0.0, 0.0), npix=(40, 30), binsz=0.1, frame="galactic", proj="CAR"),
    dict(skydir=(10.0, 60.0), npix=(41, 31), binsz=0.5, frame="galactic", proj="CAR"),
    dict(skydir=(266.4, -28.9), npix=51, binsz=0.2, frame="icrs", proj="TAN"),
    dict(skydir=(120.0, -45.0), npix=(30, 40), binsz=0.3, frame="icrs", proj="SIN"),
    dict(skydir=(200.0, 80.0), npix=(30, 40), binsz=0.3, frame="galactic", proj="ZEA"),
    dict(skydir=(300.0, 10.0), npix=(30, 40), binsz=0.3, frame="icrs", proj="ARC"),
    dict(skydir=(45.0, -30.0), npix=(30, 40), binsz=0.3, frame="galactic", proj="STG"),
    dict(binsz=3.0, frame="galactic", proj="AIT"),
    dict(binsz=3.0, frame="icrs", proj="MOL"),
]


def _pix_id(kwargs):
    return f"{kwargs['proj']}-{kwargs['frame']}"


@pytest.mark.parametrize("kwargs", PIX_GEOMS, ids=_pix_id)
def test_pix_to_coord_matches_astropy(backend, kwargs, rng):
    geom = WcsGeom.create(**kwargs)
    nx, ny = geom.npix
    x = rng.uniform(-0.5, nx - 0.5, 500)
    y = rng.uniform(-0.5, ny - 0.5, 500)
    with np.errstate(invalid="ignore"):
        ref_lon, ref_lat = geom.wcs.wcs_pix2world(x, y, 0)

    # host arrays stay numpy
    lon, lat = geom.pix_to_coord((x, y))
    assert backend_of(lon).name == "numpy" and backend_of(lat).name == "numpy"
    assert _sky_diff_deg(lon, lat, ref_lon, ref_lat) < COORD_TOL_DEG

    # backend arrays stay on their backend
    lon_b, lat_b = geom.pix_to_coord((backend.asarray(x), backend.asarray(y)))
    assert backend_of(lon_b).name == backend.name and backend_of(lat_b).name == backend.name
    assert _sky_diff_deg(to_host(lon_b), to_host(lat_b), ref_lon, ref_lat) < COORD_TOL_DEG

    # conversion to the other frame
    other = OTHER_FRAME[geom.frame]
    ref = SkyCoord(ref_lon, ref_lat, unit="deg", frame=geom.frame).transform_to(other).spherical
    lon_o, lat_o = geom.pix_to_coord((backend.asarray(x), backend.asarray(y)), frame=other)
    assert backend_of(lon_o).name == backend.name
    assert _sky_diff_deg(to_host(lon_o), to_host(lat_o), ref.lon.deg, ref.lat.deg) < COORD_TOL_DEG


@pytest.mark.parametrize("kwargs", PIX_GEOMS, ids=_pix_id)
def test_coord_to_pix_matches_astropy(backend, kwargs, rng):
    geom = WcsGeom.create(**kwargs)
    nx, ny = geom.npix
    # sky positions of random pixel positions (valid for every projection)
    x0 = rng.uniform(-0.5, nx - 0.5, 500)
    y0 = rng.uniform(-0.5, ny - 0.5, 500)
    with np.errstate(invalid="ignore"):
        lon, lat = geom.wcs.wcs_pix2world(x0, y0, 0)
    ok = np.isfinite(lon)
    lon, lat = lon[ok], lat[ok]
    ref_x, ref_y = geom.wcs.wcs_world2pix(lon, lat, 0)

    x, y = geom.coord_to_pix((lon, lat))
    assert backend_of(x).name == "numpy"
    np.testing.assert_allclose(x, ref_x, rtol=0, atol=PIX_TOL)
    np.testing.assert_allclose(y, ref_y, rtol=0, atol=PIX_TOL)

    xb, yb = geom.coord_to_pix((backend.asarray(lon), backend.asarray(lat)))
    assert backend_of(xb).name == backend.name and backend_of(yb).name == backend.name
    np.testing.assert_allclose(to_host(xb), ref_x, rtol=0, atol=PIX_TOL)
    np.testing.assert_allclose(to_host(yb), ref_y, rtol=0, atol=PIX_TOL)

    # SkyCoord in another frame
    sc = SkyCoord(lon, lat, unit="deg", frame=geom.frame).transform_to(OTHER_FRAME[geom.frame])
    xs, ys = geom.coord_to_pix(sc)
    np.testing.assert_allclose(xs, ref_x, rtol=0, atol=PIX_TOL)
    np.testing.assert_allclose(ys, ref_y, rtol=0, atol=PIX_TOL)

    # round trip
    lon2, lat2 = geom.pix_to_coord((xb, yb))
    assert _sky_diff_deg(to_host(lon2), to_host(lat2), lon, lat) < COORD_TOL_DEG


@pytest.mark.parametrize("mode", ["center", "edges"])
@pytest.mark.parametrize("kwargs", PIX_GEOMS, ids=_pix_id)
def test_get_coord_on_backend(backend, kwargs, mode):
    geom = WcsGeom.create(**kwargs)
    nx, ny = geom.npix
    lon, lat = geom.get_coord(mode=mode, backend=backend)
    assert backend_of(lon).name == backend.name and backend_of(lat).name == backend.name
    shape = (ny, nx) if mode == "center" else (ny + 1, nx + 1)
    assert lon.shape == shape and lat.shape == shape
    ref_lon, ref_lat = _astropy_grid(geom.wcs, nx, ny, mode=mode)
    assert _sky_diff_deg(to_host(lon), to_host(lat), ref_lon, ref_lat) < COORD_TOL_DEG


def test_get_pix_grids(backend):
    geom = WcsGeom.create(npix=(3, 2), binsz=1.0)
    x, y = geom.get_pix(backend=backend)
    assert backend_of(x).name == backend.name
    np.testing.assert_array_equal(to_host(x), [[0, 1, 2], [0, 1, 2]])
    np.testing.assert_array_equal(to_host(y), [[0, 0, 0], [1, 1, 1]])
    x, y = geom.get_pix(mode="edges", backend=backend)
    np.testing.assert_array_equal(to_host(x)[0], [-0.5, 0.5, 1.5, 2.5])
    np.testing.assert_array_equal(to_host(y)[:, 0], [-0.5, 0.5, 1.5])
    with pytest.raises(ValueError, match="'corners'"):
        geom.get_pix(mode="corners")


# ---------------------------------------------------------------------- 5. properties, derived geoms

@pytest.mark.gammapy
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(skydir=(0.0, 0.0), npix=(40, 30), binsz=(0.1, 0.2), frame="galactic", proj="CAR"),
        dict(skydir=(83.63, 22.01), width=(3.0, 2.0), binsz=0.02, frame="icrs", proj="TAN"),
        dict(binsz=2.0, frame="galactic", proj="AIT"),
    ],
)
def test_properties_to_image_to_cube(gammapy_maps, kwargs):
    gm = gammapy_maps
    ours = WcsGeom.create(**kwargs)
    theirs = gm.WcsGeom.create(**kwargs)
    np.testing.assert_allclose(ours.pixel_scales.deg, theirs.pixel_scales.deg, rtol=1e-12)
    assert isinstance(ours.pixel_scales, Angle)
    np.testing.assert_allclose(ours.width.to_value("deg"), np.ravel(theirs.width.to_value("deg")),
                               rtol=1e-12)

    edges = np.geomspace(1.0, 100.0, 4)
    energy = MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")
    gm_energy = gm.MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")
    cube = ours.to_cube([energy])
    gm_cube = theirs.to_cube([gm_energy])
    _assert_same_as_gammapy(cube, gm_cube)
    assert cube.data_shape == (3,) + ours.data_shape
    assert cube.axes_names == ["lon", "lat", "energy"]
    assert not cube.is_image and cube.ndim == 3
    _assert_same_as_gammapy(cube.to_image(), gm_cube.to_image())
    assert cube.to_image() == ours
    assert ours.axes == () and ours.to_image() == ours
    # to_image / to_cube leave the original untouched
    assert cube.data_shape == (3,) + ours.data_shape
    assert cube.to_image().wcs is not cube.wcs


def test_equality():
    base = dict(skydir=(83.63, 22.01), npix=(20, 10), binsz=0.1, frame="icrs", proj="CAR")
    geom = WcsGeom.create(**base)
    edges = np.geomspace(1.0, 10.0, 3)
    energy = MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")

    # equal geometries built differently
    same = [
        WcsGeom.create(**{**base, "npix": None, "width": (2.0, 1.0)}),
        WcsGeom.create(**{**base, "binsz": "6 arcmin"}),
        WcsGeom.create(**{**base, "binsz": 0.1 * u.deg}),
        WcsGeom.create(**{**base, "skydir": SkyCoord(83.63, 22.01, unit="deg", frame="icrs")}),
        WcsGeom.create(**{**base, "skydir": SkyCoord(83.63, 22.01, unit="deg").galactic}),
        WcsGeom.create(**{**base, "refpix": (10.5, 5.5)}),
        WcsGeom.from_header(geom.to_header()),
        geom.copy(),
        geom.to_cube([energy]).to_image(),
    ]
    for other in same:
        assert other == geom
        assert geom == other
        assert not (geom != other)

    cube = WcsGeom.create(**base, axes=[energy])
    assert cube == geom.to_cube([energy])
    assert cube == WcsGeom.create(**base, axes=[MapAxis.from_edges(edges * 1000, unit="GeV",
                                                                   interp="log", name="energy")])

    different = [
        WcsGeom.create(**{**base, "binsz": 0.2}),
        WcsGeom.create(**{**base, "binsz": (0.1, 0.11)}),
        WcsGeom.create(**{**base, "npix": (20, 11)}),
        WcsGeom.create(**{**base, "npix": (10, 20)}),
        WcsGeom.create(**{**base, "frame": "galactic"}),
        WcsGeom.create(**{**base, "skydir": (83.63, 22.02)}),
        WcsGeom.create(**{**base, "skydir": (83.64, 22.01)}),
        WcsGeom.create(**{**base, "proj": "TAN"}),
        WcsGeom.create(**{**base, "refpix": (10.0, 5.5)}),
        cube,
        WcsGeom.create(**base, axes=[MapAxis.from_edges(edges * 2, unit="TeV", interp="log",
                                                        name="energy")]),
        WcsGeom.create(**base, axes=[MapAxis.from_edges(edges, unit="TeV", interp="lin",
                                                        name="energy")]),
        WcsGeom.create(**base, axes=[MapAxis.from_edges(edges, unit="TeV", interp="log",
                                                        name="energy_true")]),
    ]
    for other in different:
        assert other != geom
        assert not (geom == other)
    assert cube != different[-1] and cube != different[-2] and cube != different[-3]
    assert geom != "geom" and geom != None  # noqa: E711
    with pytest.raises(TypeError):
        hash(geom)


# ---------------------------------------------------------------------- 6. solid angle

SOLID_ANGLE_GEOMS = [
    dict(skydir=(0.0, 0.0), npix=(50, 40), binsz=0.02, frame="galactic", proj="CAR"),
    dict(skydir=(83.63, 22.01), npix=(60, 50), binsz=0.1, frame="icrs", proj="CAR"),
    dict(skydir=(10.0, 60.0), npix=(40, 30), binsz=0.5, frame="galactic", proj="CAR"),
    dict(skydir=(266.4, -28.9), npix=(40, 30), binsz=0.2, frame="icrs", proj="TAN"),
    dict(skydir=(0.0, 0.0), width=(40.0, 20.0), binsz=0.5, frame="galactic", proj="AIT"),
    dict(skydir=(200.0, 75.0), npix=(40, 30), binsz=0.25, frame="icrs", proj="ZEA"),
]
# gpumask (exact spherical triangles) vs gammapy 2.1 (planar triangles): the difference
# is gammapy's approximation error and scales with the squared pixel size b (rad).
# Measured max |ratio - 1| / b^2: 0.17 (CAR 0.02 deg), 0.21 (CAR 0.1), 1.46 (oblique CAR
# 0.5 deg at lat 60), 0.56 (TAN 0.2), 0.57 (AIT 0.5), 6.5 (ZEA 0.25 deg at dec 75), i.e.
# 2.0e-8 ... 1.2e-4 relative.  Tolerance: 8 b^2 (1e-4 for 0.2 deg pixels).
SOLID_ANGLE_RTOL_GAMMAPY_PER_B2 = 8.0


@pytest.mark.gammapy
@pytest.mark.parametrize("kwargs", SOLID_ANGLE_GEOMS, ids=_pix_id)
def test_solid_angle_vs_gammapy(gammapy_maps, backend, kwargs):
    ours = WcsGeom.create(**kwargs).solid_angle(backend=backend)
    assert backend_of(ours).name == backend.name
    theirs = gammapy_maps.WcsGeom.create(**kwargs).solid_angle().to_value("sr")
    ours = to_host(ours)
    assert ours.shape == theirs.shape
    rel = np.max(np.abs(ours / theirs - 1.0))
    _note_max("max_solid_angle_rel_vs_gammapy", rel)
    assert rel < SOLID_ANGLE_RTOL_GAMMAPY_PER_B2 * np.deg2rad(kwargs["binsz"]) ** 2


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(skydir=(83.63, 22.01), npix=(40, 30), binsz=0.05, frame="icrs"),
        dict(skydir=(10.0, -70.0), npix=(21, 31), binsz=(1.0, 2.0), frame="galactic"),
        dict(skydir=(200.0, 89.0), npix=(60, 60), binsz=1.0, frame="icrs", refpix=(5.0, 50.0)),
    ],
)
def test_solid_angle_tan_exact(backend, kwargs):
    """TAN pixel edges are great circles, so the spherical quadrilaterals are the exact
    pixels: compare with the analytic solid angle of a tangent-plane rectangle,
    F(x, y) = arctan(x y / sqrt(1 + x^2 + y^2)) (x, y tangent-plane coordinates)."""
    geom = WcsGeom.create(proj="TAN", **kwargs)
    omega = to_host(geom.solid_angle(backend=backend))
    nx, ny = geom.npix
    crpix = geom.wcs.wcs.crpix
    cdelt = geom.wcs.wcs.cdelt
    x = np.deg2rad((np.arange(nx + 1) - 0.5 + 1 - crpix[0]) * cdelt[0])
    y = np.deg2rad((np.arange(ny + 1) - 0.5 + 1 - crpix[1]) * cdelt[1])
    xx, yy = np.meshgrid(x, y)
    f = np.arctan(xx * yy / np.sqrt(1 + xx**2 + yy**2))
    exact = np.abs(f[1:, 1:] - f[1:, :-1] - f[:-1, 1:] + f[:-1, :-1])
    np.testing.assert_allclose(omega, exact, rtol=1e-8)


@pytest.mark.parametrize("binsz", [1.0, 2.5, 10.0])
def test_solid_angle_allsky_car_total_and_analytic(backend, binsz):
    geom = WcsGeom.create(binsz=binsz, frame="galactic", proj="CAR")
    omega = to_host(geom.solid_angle(backend=backend))
    assert np.all(np.isfinite(omega)) and np.all(omega > 0)
    total_rel = abs(omega.sum() / (4 * np.pi) - 1.0)
    _note_max("allsky_car_total_rel", total_rel)
    assert total_rel < 1e-6

    # analytic CAR pixel area dlon * (sin lat2 - sin lat1) (reference latitude 0)
    ny, nx = geom.data_shape
    lat_edges = np.deg2rad(-90.0 + binsz * np.arange(ny + 1))
    analytic = np.deg2rad(binsz) * np.diff(np.sin(lat_edges))
    rel = np.max(np.abs(omega / analytic[:, None] - 1.0))
    _note_max("max_solid_angle_rel_vs_analytic_car", rel)
    # pixel edges along a parallel are small circles, the spherical quadrilateral uses
    # great circles: relative difference ~ dlon^2 / 12 * |cos^2 lat - 2 sin^2 lat|
    assert rel < np.deg2rad(binsz) ** 2 / 4
    # pixels in one row have the same area
    np.testing.assert_allclose(omega, np.broadcast_to(omega[:, :1], omega.shape), rtol=1e-9)


def test_solid_angle_small_car_analytic(backend):
    geom = WcsGeom.create(skydir=(30.0, 0.0), width=(20.0, 40.0), binsz=0.1, frame="icrs")
    omega = to_host(geom.solid_angle(backend=backend))
    lon, lat = _astropy_grid(geom.wcs, *geom.npix, mode="edges")
    lat_edges = np.deg2rad(lat[:, 0])
    analytic = np.deg2rad(0.1) * np.abs(np.diff(np.sin(lat_edges)))
    rel = np.max(np.abs(omega / analytic[:, None] - 1.0))
    _note_max("max_solid_angle_rel_vs_analytic_car", rel)
    assert rel < 1e-6


def test_solid_angle_nan_outside_projection():
    geom = WcsGeom.create(binsz=10.0, frame="galactic", proj="AIT")
    omega = geom.solid_angle(backend="numpy")
    lon, _ = _astropy_grid(geom.wcs, *geom.npix, mode="edges")
    corner_nan = (np.isnan(lon[:-1, :-1]) | np.isnan(lon[:-1, 1:]) | np.isnan(lon[1:, :-1])
                  | np.isnan(lon[1:, 1:]))
    np.testing.assert_array_equal(np.isnan(omega), corner_nan)
    assert corner_nan.any() and not corner_nan.all()


# ---------------------------------------------------------------------- 7. cutout

CUTOUT_BASE = dict(skydir=(83.63, 22.01), npix=(60, 40), binsz=0.05, frame="icrs", proj="CAR")


def _cutout_positions(geom):
    nx, ny = geom.npix
    pix = [
        (nx / 2, ny / 2),
        ((nx - 1) / 2, (ny - 1) / 2),
        (0.0, 0.0),
        (-0.4, 10.2),
        (nx - 1.0, ny - 1.0),
        (nx - 0.6, 3.7),
        (5.3, ny - 2.2),
        (12.5, 7.5),
    ]
    out = []
    for x, y in pix:
        sc = SkyCoord.from_pixel(x, y, geom.wcs, origin=0)
        out.append(sc)
        out.append(sc.galactic)
    return out


@pytest.mark.gammapy
@pytest.mark.parametrize("mode", ["trim", "partial"])
@pytest.mark.parametrize("width", [0.5, (1.0, 0.4), "0.33 deg", (0.26, 0.74), 10.0])
@pytest.mark.parametrize("odd_npix", [False, True])
def test_cutout_matches_gammapy(gammapy_maps, mode, width, odd_npix):
    edges = np.geomspace(1.0, 10.0, 3)
    ours = WcsGeom.create(**CUTOUT_BASE, axes=[MapAxis.from_edges(edges, unit="TeV", interp="log",
                                                                  name="energy")])
    theirs = gammapy_maps.WcsGeom.create(
        **CUTOUT_BASE,
        axes=[gammapy_maps.MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")],
    )
    for position in _cutout_positions(ours.to_image()):
        cut = ours.cutout(position, width, mode=mode, odd_npix=odd_npix)
        gm_cut = theirs.cutout(position, width, mode=mode, odd_npix=odd_npix)
        _assert_same_as_gammapy(cut, gm_cut)
        assert cut.axes == ours.axes


@pytest.mark.gammapy
def test_cutout_no_overlap_raises_like_gammapy(gammapy_maps):
    ours = WcsGeom.create(**CUTOUT_BASE)
    theirs = gammapy_maps.WcsGeom.create(**CUTOUT_BASE)
    far = SkyCoord(0.0, -60.0, unit="deg")
    with pytest.raises(NoOverlapError):
        theirs.cutout(far, 1.0)
    with pytest.raises(NoOverlapError):
        ours.cutout(far, 1.0)


# ---------------------------------------------------------------------- 8. boundary_mask


def _expected_boundary(shape, hx, hy):
    data = np.zeros(shape, dtype=bool)
    ny, nx = shape[-2:]
    if nx - 2 * hx > 0 and ny - 2 * hy > 0:
        data[..., hy:ny - hy, hx:nx - hx] = True
    return data


def _half(width_px):
    # gammapy's box of side round_up_to_odd(2 w / binsz) removes (side - 1) / 2 per side
    return int((np.ceil(width_px) // 2 * 2 + 1 - 1) // 2)


def _deg(width):
    if isinstance(width, tuple):
        return u.Quantity([u.Quantity(w, "deg") for w in width])
    return u.Quantity(width, "deg")


BOUNDARY_BASE = dict(skydir=(0.0, 0.0), npix=(40, 30), binsz=0.1, frame="galactic", proj="CAR")


@pytest.mark.gammapy
# gammapy 2.1 cannot do widths whose box is one pixel along an axis (2 w / binsz <= 1):
# binary_erode squeezes the (1, n) structure and scipy's fftconvolve raises.  Those
# widths are checked against the analytic answer in test_boundary_mask_small_widths.
@pytest.mark.parametrize("width", [0.1, 0.15, 0.2, 0.25, 0.33, "0.3 deg", 1.0 * u.deg, 18 * u.arcmin])
@pytest.mark.parametrize("with_axes", [False, True])
def test_boundary_mask_scalar_width_equals_gammapy(gammapy_maps, backend, width, with_axes):
    edges = np.geomspace(1.0, 10.0, 3)
    axes = [MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")] if with_axes else None
    gm_axes = ([gammapy_maps.MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")]
               if with_axes else None)
    geom = WcsGeom.create(**BOUNDARY_BASE, axes=axes)
    mask = geom.boundary_mask(width, backend=backend)
    assert mask.backend.name == backend.name and backend_of(mask.data).name == backend.name
    assert mask.data.dtype == bool and mask.geom == geom
    # gammapy needs an angular Quantity (a plain float is taken as pixels and fails)
    theirs = gammapy_maps.WcsGeom.create(**BOUNDARY_BASE, axes=gm_axes).boundary_mask(_deg(width))
    assert theirs.data.dtype == bool
    np.testing.assert_array_equal(mask.to_numpy(), theirs.data)
    w = u.Quantity(width, "deg").value
    h = _half(2 * w / 0.1)
    np.testing.assert_array_equal(mask.to_numpy(), _expected_boundary(geom.data_shape, h, h))


@pytest.mark.gammapy
@pytest.mark.parametrize("width", [(0.3, 0.1), (0.1, 0.5), ("0.2 deg", "0.45 deg"), (0.12, 0.4),
                                   (1.0, 0.25)])
def test_boundary_mask_tuple_width_lon_along_x(gammapy_maps, backend, width):
    """gammapy 2.1 applies the lon width along y (rows); gpumask along x (columns).

    Evidence: gammapy builds ``np.ones(round_up_to_odd(2 * width / pixel_scales))``,
    i.e. a box with shape (n_lon, n_lat) whose first (row, y) axis gets the lon width.
    With square pixels gpumask(lon, lat) therefore equals gammapy(lat, lon).
    """
    geom = WcsGeom.create(**BOUNDARY_BASE)
    theirs_geom = gammapy_maps.WcsGeom.create(**BOUNDARY_BASE)
    mask = geom.boundary_mask(width, backend=backend)
    assert mask.backend.name == backend.name and mask.data.dtype == bool
    got = mask.to_numpy()

    wlon, wlat = (u.Quantity(w, "deg").value for w in width)
    expected = _expected_boundary(geom.data_shape, _half(2 * wlon / 0.1), _half(2 * wlat / 0.1))
    np.testing.assert_array_equal(got, expected)

    swapped = theirs_geom.boundary_mask(_deg(width[::-1])).data
    np.testing.assert_array_equal(got, swapped)
    if _half(2 * wlon / 0.1) != _half(2 * wlat / 0.1):
        # the evidence that gammapy swaps: its result for the same tuple differs
        assert not np.array_equal(got, theirs_geom.boundary_mask(_deg(width)).data)


@pytest.mark.parametrize("width", [0.3, (0.3, 0.3), (0.2, 0.6)])
def test_boundary_mask_rectangular_pixels(backend, width):
    geom = WcsGeom.create(skydir=(0.0, 0.0), npix=(30, 40), binsz=(0.1, 0.2), frame="icrs")
    got = geom.boundary_mask(width, backend=backend).to_numpy()
    wlon, wlat = width if isinstance(width, tuple) else (width, width)
    expected = _expected_boundary(geom.data_shape, _half(2 * wlon / 0.1), _half(2 * wlat / 0.2))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("width", "hx", "hy"),
    [(0.0, 0, 0), (0.05, 0, 0), (0.051, 1, 1), ((0.0, 0.4), 0, 4), ((0.4, 0.0), 4, 0),
     ((0.04, 0.26), 0, 3)],
)
def test_boundary_mask_small_widths(backend, width, hx, hy):
    geom = WcsGeom.create(**BOUNDARY_BASE)
    got = geom.boundary_mask(width, backend=backend).to_numpy()
    np.testing.assert_array_equal(got, _expected_boundary(geom.data_shape, hx, hy))


def test_boundary_mask_wider_than_map(backend):
    geom = WcsGeom.create(npix=(10, 6), binsz=1.0)
    mask = geom.boundary_mask((1.0, 3.0), backend=backend)
    assert not mask.to_numpy().any()
    assert mask.geom.data_shape == (6, 10)


# ---------------------------------------------------------------------- 9. errors


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        (dict(binsz=0), "0"),
        (dict(binsz=0.0), "0.0"),
        (dict(binsz=-0.1), "-0.1"),
        (dict(binsz="abc"), "'abc'"),
        (dict(binsz=(0.1, 0.0)), "0.0"),
        (dict(binsz=(0.1, "x")), "'x'"),
        (dict(binsz=float("nan")), "nan"),
        (dict(npix=0), "0"),
        (dict(npix=-3), "-3"),
        (dict(npix=2.5), "2.5"),
        (dict(npix=(10, 0)), "(10, 0)"),
        (dict(npix=(10, 4.5)), "(10, 4.5)"),
        (dict(npix=(10, 10, 10)), "(10, 10, 10)"),
        (dict(npix="abc"), "abc"),
        (dict(frame="xyz"), "'xyz'"),
        (dict(frame="supergalactic"), "'supergalactic'"),
        (dict(proj="XYZ"), "'XYZ'"),
        (dict(proj="TANGENT"), "'TANGENT'"),
        (dict(proj=3), "3"),
        (dict(skydir=5), "5"),
        (dict(skydir="crab"), "'crab'"),
        (dict(skydir=(1.0, 2.0, 3.0)), "(1.0, 2.0, 3.0)"),
        (dict(skydir=("a", 0.0)), "'a'"),
        (dict(skydir=(0.0, 95.0)), "95"),
        (dict(skydir=(0.0, -90.5)), "-90.5"),
        (dict(width=-1.0), "-1.0"),
        (dict(width=0.01, binsz=1.0), "0.01"),
        (dict(refpix=3.0), "3.0"),
    ],
)
def test_create_errors_name_the_bad_value(kwargs, bad):
    args = {"binsz": 0.1, **kwargs}
    if "width" not in kwargs:
        args.setdefault("npix", 10)
    with pytest.raises(ValueError) as excinfo:
        WcsGeom.create(**args)
    assert bad in str(excinfo.value), str(excinfo.value)


def test_create_array_skycoord_rejected():
    with pytest.raises(ValueError, match="single position"):
        WcsGeom.create(skydir=SkyCoord([1.0, 2.0], [3.0, 4.0], unit="deg"))


# ---------------------------------------------------------------------- 10. separation, frames


@pytest.mark.parametrize("kwargs", PIX_GEOMS[:5] + PIX_GEOMS[8:], ids=_pix_id)
def test_separation_matches_astropy(backend, kwargs):
    geom = WcsGeom.create(**kwargs)
    nx, ny = geom.npix
    lon, lat = _astropy_grid(geom.wcs, nx, ny)
    pixels = SkyCoord(lon, lat, unit="deg", frame=geom.frame)
    centers = [
        geom.center_skydir,
        geom.center_skydir.transform_to(OTHER_FRAME[geom.frame]),
        SkyCoord(12.0, -40.0, unit="deg", frame="icrs"),
        SkyCoord(0.0, 90.0, unit="deg", frame=geom.frame),
    ]
    for center in centers:
        sep = geom.separation(center, backend=backend)
        assert backend_of(sep).name == backend.name
        assert sep.shape == (ny, nx)
        ref = pixels.separation(center).deg
        sep = to_host(sep)
        np.testing.assert_array_equal(np.isnan(sep), np.isnan(ref))
        ok = np.isfinite(ref)
        assert np.max(np.abs(sep[ok] - ref[ok])) < COORD_TOL_DEG


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(skydir=(0.0, 0.0), npix=(40, 30), binsz=0.1, frame="galactic", proj="CAR"),
        dict(skydir=(120.0, 60.0), npix=(41, 31), binsz=0.5, frame="galactic", proj="TAN"),
        dict(skydir=(0.0, 90.0), npix=(41, 31), binsz=0.5, frame="galactic", proj="ZEA"),
        dict(binsz=5.0, frame="galactic", proj="AIT"),
        dict(skydir=(83.63, 22.01), npix=(20, 30), binsz=0.5, frame="icrs", proj="CAR"),
    ],
    ids=_pix_id,
)
@pytest.mark.parametrize("mode", ["center", "edges"])
def test_get_coord_other_frame_matches_astropy(backend, kwargs, mode):
    geom = WcsGeom.create(**kwargs)
    other = OTHER_FRAME[geom.frame]
    lon, lat = geom.get_coord(mode=mode, frame=other, backend=backend)
    assert backend_of(lon).name == backend.name
    ref_lon, ref_lat = _astropy_grid(geom.wcs, *geom.npix, mode=mode)
    ok = np.isfinite(ref_lon)
    ref = SkyCoord(ref_lon[ok], ref_lat[ok], unit="deg", frame=geom.frame).transform_to(other)
    lon, lat = to_host(lon), to_host(lat)
    np.testing.assert_array_equal(np.isnan(lon), ~ok)
    assert np.all((lon[ok] >= 0.0) & (lon[ok] < 360.0))
    assert _sky_diff_deg(lon[ok], lat[ok], ref.spherical.lon.deg, ref.spherical.lat.deg) < COORD_TOL_DEG
    # same frame spelled explicitly gives the plain coordinates
    lon_same, lat_same = geom.get_coord(mode=mode, frame=geom.frame, backend=backend)
    assert _sky_diff_deg(to_host(lon_same), to_host(lat_same), ref_lon, ref_lat) < COORD_TOL_DEG


@pytest.mark.parametrize("proj", ["CAR", "TAN", "AIT", "CSC"])  # CSC: astropy on the host
def test_solid_angle_blocks_equal_one_pass(backend, proj, monkeypatch):
    """Blocks of rows (a few rows each here) give the very same solid angles as one
    pass over the whole corner grid (the computation before blocking), NaN included."""
    from gpumask.sky import geom as geom_module
    from gpumask.sky._sphere import _quad_solid_angle

    if proj == "AIT":  # all sky: corners off the projection are NaN
        geom = WcsGeom.create(npix=(125, 62), binsz=3.0, proj=proj, frame="galactic")
    else:
        geom = WcsGeom.create(npix=(37, 29), binsz=3.0, proj=proj, frame="galactic", skydir=(30.0, 40.0))
    if proj == "CSC":
        assert not geom.device_projection
    lon, lat = geom.get_coord(mode="edges", backend="numpy")
    want = _quad_solid_angle(np, lon, lat)
    monkeypatch.setitem(geom_module.SOLID_ANGLE_BLOCK, backend.name, 100)  # 2 rows of 38 corners
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = geom.solid_angle(backend=backend)
    assert backend_of(got).name == backend.name
    np.testing.assert_allclose(to_host(got), want, rtol=1e-13, equal_nan=True)
    assert np.isnan(want).any() == (proj == "AIT")
