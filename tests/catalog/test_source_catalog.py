"""gpumask.catalog: catalog readers, morphology rules, indexing, load(), errors.

Real catalogs come from ../shared/data/catalogs (skipped when absent); the 4FGL and 2FHL
readers and the generic table reader run on small synthetic files written here.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import FK5, SkyCoord
from astropy.io import fits
from astropy.table import Table
from numpy.testing import assert_allclose, assert_array_equal

import gpumask
from gpumask.catalog.source_catalog import FORMATS, R68_PER_SIGMA, SourceCatalog, load
from gpumask.errors import GpumaskWarning

FILES = {
    "3fgl": "fermi/gll_psc_v16.fit.gz",
    "3fhl": "fermi/gll_psch_v13.fit.gz",
    "hgps": "hgps_catalog_v1.fits.gz",
    "gamma-cat": "gammacat/gammacat.fits.gz",
    "2hwc": "2HWC.ecsv",
    "3hwc": "3HWC.ecsv",
    "1lhaaso": "1LHAASO_catalog.fits",
}
MORPH_COLUMNS = ["type", "size", "semi_major", "semi_minor", "position_angle", "inner_radius"]


@functools.cache
def _read(path, fmt=None):
    return SourceCatalog.read(path, format=fmt)


@functools.cache
def _raw(path, hdu):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        return Table.read(path, hdu=hdu) if hdu is not None else Table.read(path)


def _strip(column):
    return np.array([str(x).strip() for x in np.ma.filled(column, "")])


def _f(column):
    return np.ma.asarray(column, dtype=float).filled(np.nan)


@pytest.fixture
def cat_dir(data_dir):
    path = data_dir / "catalogs"
    if not path.is_dir():
        pytest.skip(f"no catalogs in {data_dir}")
    return path


@pytest.fixture
def real(cat_dir):
    def get(key):
        path = cat_dir / FILES[key]
        if not path.is_file():
            pytest.skip(f"{path} not found")
        return _read(str(path)), str(path)
    return get


def _row(cat, name):
    sub = cat[name]
    assert len(sub) == 1
    return sub.morphology[0]


def _check_schema(cat):
    assert set(MORPH_COLUMNS) <= set(cat.morphology.colnames)
    assert len(cat.morphology) == len(cat.table) == len(cat.names) == len(cat.positions)
    types = np.asarray(cat.morphology["type"], dtype=str)
    assert set(types) <= {"point", "disk", "gauss", "ellipse", "shell", "unknown"}
    m = cat.morphology
    for t in ("point", "unknown"):
        assert np.all(np.isnan(m["size"][types == t]))
    sized = np.isin(types, ["disk", "gauss", "ellipse", "shell"])
    assert np.all(m["size"][sized] > 0)
    assert np.all(m["semi_minor"][sized] <= m["semi_major"][sized])
    assert_allclose(m["size"][sized], m["semi_major"][sized])
    assert np.all(np.isfinite(m["position_angle"][types == "ellipse"]))
    assert np.all(np.isnan(m["position_angle"][types != "ellipse"]))
    pa = m["position_angle"][types == "ellipse"]
    assert np.all((pa >= 0) & (pa < 180))
    assert np.all(np.isfinite(cat.positions.spherical.lon.deg))


# --------------------------------------------------------------------------------------------
# Real catalogs
# --------------------------------------------------------------------------------------------
@pytest.mark.data
def test_3fgl(real):
    cat, path = real("3fgl")
    raw = _raw(path, "LAT_Point_Source_Catalog")
    _check_schema(cat)
    assert cat.name == "3fgl" and len(cat) == 3034
    assert_array_equal(cat.names, _strip(raw["Source_Name"]))
    assert cat.positions.frame.name == "icrs"
    assert_array_equal(cat.positions.ra.deg, _f(raw["RAJ2000"]))
    assert_array_equal(cat.positions.dec.deg, _f(raw["DEJ2000"]))
    types = np.asarray(cat.morphology["type"])
    extended = _strip(raw["Extended_Source_Name"]) != ""
    assert np.count_nonzero(types != "point") == 25 == extended.sum()
    assert_array_equal(types != "point", extended)

    ext = _raw(path, "ExtendedSources")
    by_name = {n: row for n, row in zip(_strip(ext["Source_Name"]), ext)}
    index = {n: i for i, n in enumerate(_strip(raw["Extended_Source_Name"]))}

    def morph(ext_name):
        return cat.morphology[index[ext_name]], by_name[ext_name]

    m, e = morph("Vela X")  # Disk 0.91
    assert m["type"] == "disk" and m["profile"] == "disk"
    assert_allclose(m["size"], e["Model_SemiMajor"])
    m, e = morph("IC443")  # 2D Gaussian quoted by its 68% radius 0.27 deg
    assert m["type"] == "gauss"
    assert_allclose(m["size"], e["Model_SemiMajor"] / R68_PER_SIGMA)
    assert_allclose(R68_PER_SIGMA, 1.5095921854516636)
    m, e = morph("HESS J1841-055")  # elongated 2D Gaussian 0.62 x 0.38 at 39 deg
    assert (m["type"], m["profile"]) == ("ellipse", "gauss")
    assert_allclose([m["semi_major"], m["semi_minor"]], [0.62 / R68_PER_SIGMA, 0.38 / R68_PER_SIGMA],
                    rtol=1e-6)
    assert_allclose(m["position_angle"], 39.0)
    m, e = morph("W44")  # Ring template 0.3 x 0.19 at -33 deg
    assert (m["type"], m["profile"]) == ("ellipse", "template")
    assert_allclose([m["semi_major"], m["semi_minor"], m["position_angle"]], [0.3, 0.19, 147.0],
                    rtol=1e-6)
    m, e = morph("W51C")  # elliptical disk 0.375 x 0.26 at 90 deg
    assert (m["type"], m["profile"]) == ("ellipse", "disk")
    assert_allclose([m["semi_major"], m["semi_minor"], m["position_angle"]], [0.375, 0.26, 90.0],
                    rtol=1e-6)
    m, e = morph("LMC")  # "2D Gaussian x2" template, circular
    assert (m["type"], m["profile"]) == ("disk", "template")
    assert_allclose(m["size"], 1.87, rtol=1e-6)
    assert "3fgl" in repr(cat) and "3034" in repr(cat) and "point: 3009" in repr(cat)


@pytest.mark.data
def test_3fhl(real):
    cat, path = real("3fhl")
    raw = _raw(path, "LAT_Point_Source_Catalog")
    _check_schema(cat)
    assert cat.name == "3fhl" and len(cat) == 1556
    assert_array_equal(cat.names, _strip(raw["Source_Name"]))
    assert_array_equal(cat.positions.ra.deg, _f(raw["RAJ2000"]))
    types = np.asarray(cat.morphology["type"])
    assert np.count_nonzero(types != "point") == np.count_nonzero(
        _strip(raw["Extended_Source_Name"]) != "") == 48
    ext_names = _strip(raw["Extended_Source_Name"])
    m = cat.morphology[list(ext_names).index("FGES J1036.3-5833")]  # RadialDisk
    assert m["type"] == "disk"
    assert_allclose(m["size"], 2.4649856, rtol=1e-6)
    m = cat.morphology[list(ext_names).index("HESS J1825-137")]  # RadialGauss 0.75 (68%)
    assert m["type"] == "gauss"
    assert_allclose(m["size"], 0.75 / R68_PER_SIGMA, rtol=1e-6)
    m = cat.morphology[list(ext_names).index("W 51C")]  # SpatialMap with Model_Form Disk
    assert (m["type"], m["profile"]) == ("ellipse", "disk")
    m = cat.morphology[list(ext_names).index("RX J1713.7-3946")]  # SpatialMap "Map"
    assert (m["type"], m["profile"]) == ("disk", "template")
    assert_allclose(m["size"], 0.56, rtol=1e-6)


@pytest.mark.data
def test_hgps(real):
    cat, path = real("hgps")
    raw = _raw(path, "HGPS_SOURCES")
    _check_schema(cat)
    assert cat.name == "hgps" and len(cat) == 78
    assert_array_equal(cat.names, _strip(raw["Source_Name"]))
    assert_array_equal(cat.positions.dec.deg, _f(raw["DEJ2000"]))
    model = _strip(raw["Spatial_Model"])
    types = np.asarray(cat.morphology["type"])
    assert np.all(types[model == "Point-Like"] == "point")
    assert np.all(types[model == "Shell"] == "shell")
    gaussian = np.isin(model, ["Gaussian", "2-Gaussian", "3-Gaussian"])
    size = _f(raw["Size"])
    assert_array_equal(types[gaussian & np.isfinite(size)], "gauss")
    assert_array_equal(types[gaussian & np.isnan(size)], "point")
    single = (types == "gauss") & (model == "Gaussian")
    assert_allclose(cat.morphology["size"][single], size[single])
    counts = {t: int(np.count_nonzero(types == t)) for t in set(types)}
    assert counts == {"point": 23, "gauss": 48, "shell": 7}

    # multi-Gaussian sources: 3 sigma reaches every component's 3-sigma disk, from
    # the HGPS_GAUSS_COMPONENTS HDU (independent computation)
    comps = _raw(path, "HGPS_GAUSS_COMPONENTS")
    multi = (types == "gauss") & (model != "Gaussian")
    assert multi.sum() >= 5
    for i in np.flatnonzero(multi):
        mine = _strip(comps["Source_Name"]) == cat.names[i]
        cpos = SkyCoord(_f(comps["GLON"])[mine], _f(comps["GLAT"])[mine], unit="deg", frame="galactic")
        reach = (cat.positions[i].separation(cpos).deg + 3 * _f(comps["Size"])[mine]).max()
        assert_allclose(cat.morphology["size"][i], max(size[i], reach / 3), atol=1e-5)  # float32 positions

    m = _row(cat, "HESS J1825-137")  # 3-Gaussian: Size 0.46, components reach 1.98 deg
    assert m["type"] == "gauss"
    assert 3 * m["size"] == pytest.approx(1.98, abs=0.01)
    m = _row(cat, "HESS J0852-463")  # Vela Jr shell, outer radius 1.0, no width given
    assert m["type"] == "shell" and m["size"] == 1.0 and np.isnan(m["inner_radius"])
    m = _row(cat, "HESS J1018-589 A")  # Gaussian with only a size upper limit
    assert m["type"] == "point" and np.isnan(m["size"])
    assert_allclose(m["size_ul"], 0.03, rtol=1e-6)
    assert _row(cat, "HESS J1745-290")["type"] == "point"


@pytest.mark.data
def test_gammacat(real):
    cat, path = real("gamma-cat")
    raw = _raw(path, 1)
    _check_schema(cat)
    assert cat.name == "gamma-cat" and len(cat) == 162
    assert_array_equal(cat.names, _strip(raw["common_name"]))
    assert_array_equal(cat.positions.ra.deg, _f(raw["ra"]))
    types = np.asarray(cat.morphology["type"])
    counts = {t: int(np.count_nonzero(types == t)) for t in set(types)}
    # 88 "none" + Westerlund 1 (gauss without sigma) are unknown
    assert counts == {"point": 19, "gauss": 31, "ellipse": 18, "shell": 5, "unknown": 89}
    assert _row(cat, "Westerlund 1")["type"] == "unknown"

    m = _row(cat, "HESS J1825-137")
    assert m["type"] == "gauss" and m["size"] == pytest.approx(0.24, rel=1e-6)
    m = _row(cat, "Vela X")  # 0.48 x 0.36 at 41 deg (radec)
    assert m["type"] == "ellipse" and m["profile"] == "gauss"
    assert_allclose([m["semi_major"], m["semi_minor"], m["position_angle"]], [0.48, 0.36, 41.0],
                    rtol=1e-6)
    m = _row(cat, "HESS J1427-608")  # sigma 0.04 at 80 deg, sigma2 0.08: major axis at 170
    assert_allclose([m["semi_major"], m["semi_minor"], m["position_angle"]], [0.08, 0.04, 170.0],
                    rtol=1e-6)
    m = _row(cat, "HESS J1708-410")  # negative PA wraps into [0, 180)
    assert_allclose([m["semi_major"], m["position_angle"]], [0.08, 70.0], rtol=1e-6)
    m = _row(cat, "RCW 86")  # shell, inner 0.19, outer 0.30
    assert m["type"] == "shell"
    assert_allclose([m["size"], m["inner_radius"]], [0.3, 0.19], rtol=1e-6)
    m = _row(cat, "RX J1713.7-3946")  # shell with one radius: the outer one
    assert m["type"] == "shell" and m["size"] == pytest.approx(0.5) and np.isnan(m["inner_radius"])
    assert _row(cat, "Crab nebula")["type"] == "point"
    assert _row(cat, "Markarian 421")["type"] == "unknown"  # morph_type "none"


@pytest.mark.data
def test_gammacat_galactic_position_angle(real):
    """A PA given from galactic north is turned into one from celestial north: step along
    the major axis in the galactic frame and measure the direction in ICRS."""
    cat, path = real("gamma-cat")
    raw = _raw(path, 1)
    frames = _strip(raw["morph_pa_frame"])
    galactic = np.flatnonzero(frames == "galactic")
    assert len(galactic) == 3
    for i in galactic:
        m = cat.morphology[i]
        centre = cat.positions[i].galactic
        s1, s2, pa = float(raw["morph_sigma"][i]), float(raw["morph_sigma2"][i]), float(raw["morph_pa"][i])
        pa_major = pa if s1 >= s2 else pa + 90
        step = centre.directional_offset_by(pa_major * u.deg, 1e-3 * u.deg)
        expected = cat.positions[i].position_angle(step.icrs).deg % 180
        assert abs((m["position_angle"] - expected + 90) % 180 - 90) < 1e-3
        assert m["position_angle"] != pytest.approx(pa_major % 180, abs=1.0)


@pytest.mark.data
@pytest.mark.parametrize("key, n, radius", [("2hwc", 40, "spec0_radius"), ("3hwc", 65, "spec0_radius")])
def test_hawc(real, key, n, radius):
    cat, path = real(key)
    raw = _raw(path, None)
    _check_schema(cat)
    assert cat.name == key and len(cat) == n
    assert_array_equal(cat.names, _strip(raw["source_name"]))
    assert_array_equal(cat.positions.ra.deg, _f(raw["ra"]))
    r = _f(raw[radius])
    if "spec1_radius" in raw.colnames:  # 2HWC: the extended (spec1) fit's disk when larger
        r1 = _f(raw["spec1_radius"])
        r = np.where(np.isfinite(r1) & (r1 > np.nan_to_num(r)), r1, r)
        assert np.count_nonzero(r > 0) == 14 + np.count_nonzero(_f(raw[radius]) > 0)
    types = np.asarray(cat.morphology["type"])
    assert_array_equal(types == "point", r == 0)
    assert_array_equal(types == "disk", r > 0)
    assert_array_equal(types == "unknown", np.isnan(r))
    assert_allclose(cat.morphology["size"][r > 0], r[r > 0])
    if key == "3hwc":
        assert np.count_nonzero(types == "unknown") == 1


@pytest.mark.data
def test_1lhaaso(real):
    cat, path = real("1lhaaso")
    raw = _raw(path, 1)
    _check_schema(cat)
    has_b = np.isfinite(_f(raw["RAJ2000_b"]))
    assert len(raw) == 90 and has_b.sum() == 54
    assert cat.name == "1lhaaso" and len(cat) == 90 + 54
    assert isinstance(cat.positions.frame, FK5) and cat.positions.equinox.jyear == 2000.0
    morph = cat.morphology
    comp = np.asarray(morph["component"])
    assert set(comp) == {"KM2A", "WCDA"}
    # first components in file order, then second ones where present
    first = np.r_[True, cat._source_names[1:] != cat._source_names[:-1]]
    assert first.sum() == 90
    assert_array_equal(cat._source_names[first], _strip(raw["Source_Name"]))
    assert_array_equal(cat.positions.ra.deg[first], _f(raw["RAJ2000"]))
    assert_array_equal(cat.positions.dec.deg[first], _f(raw["DECJ2000"]))
    assert_array_equal(cat.positions.ra.deg[~first], _f(raw["RAJ2000_b"])[has_b])
    assert_array_equal(cat.positions.dec.deg[~first], _f(raw["DECJ2000_b"])[has_b])
    model_a = np.char.strip(np.char.replace(_strip(raw["Model_a"]), "*", ""))
    assert_array_equal(comp[first], model_a)
    assert cat.names[0] == f"{_strip(raw['Source_Name'])[0]} ({model_a[0]})"

    r39 = np.r_[_f(raw["r39"]), _f(raw["r39_b"])[has_b]]
    r39_ul = np.r_[_f(raw["r39_ul"]), _f(raw["r39_ul_b"])[has_b]]
    order = np.argsort(np.r_[np.arange(90), np.flatnonzero(has_b)], kind="stable")
    r39, r39_ul = r39[order], r39_ul[order]
    types = np.asarray(morph["type"])
    assert_array_equal(types == "gauss", np.isfinite(r39))
    assert_allclose(morph["size"][types == "gauss"], r39[np.isfinite(r39)])
    assert_array_equal(types[np.isnan(r39)], "point")
    assert_allclose(morph["size_ul"][types == "point"], r39_ul[np.isnan(r39)])
    assert (len(cat) - np.count_nonzero(types == "gauss")) == 41

    crab = cat["1LHAASO J0534+2200u"]  # the bare name gives both components
    assert len(crab) == 2 and list(crab.morphology["component"]) == ["WCDA", "KM2A"]
    assert_allclose(crab.morphology["size_ul"], [0.04, 0.06], rtol=1e-6)
    one = cat["1LHAASO J0534+2200u (KM2A)"]
    assert len(one) == 1 and one.morphology["component"][0] == "KM2A"
    # positions in FK5 J2000 agree with the file, also after a round trip through ICRS
    fk5 = SkyCoord(_f(raw["RAJ2000"]) * u.deg, _f(raw["DECJ2000"]) * u.deg,
                   frame=FK5(equinox="J2000"))
    assert np.max(cat.positions[first].icrs.separation(fk5).deg) < 1e-9


@pytest.mark.data
@pytest.mark.parametrize("key", list(FILES))
def test_detection_matches_explicit_format(real, key):
    cat, path = real(key)
    explicit = _read(path, key)
    assert cat.name == explicit.name == key
    assert_array_equal(cat.names, explicit.names)


@pytest.mark.data
@pytest.mark.gammapy
def test_against_gammapy(real):
    catalog = pytest.importorskip("gammapy.catalog")
    classes = {"3fgl": "SourceCatalog3FGL", "3fhl": "SourceCatalog3FHL", "hgps": "SourceCatalogHGPS",
               "gamma-cat": "SourceCatalogGammaCat", "2hwc": "SourceCatalog2HWC",
               "3hwc": "SourceCatalog3HWC", "1lhaaso": "SourceCatalog1LHAASO"}
    for key, cls in classes.items():
        cat, path = real(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = getattr(catalog, cls)(filename=path)
        ours = cat
        if key == "1lhaaso":
            first = np.r_[True, cat._source_names[1:] != cat._source_names[:-1]]
            ours = cat[first]
        assert len(ours) == len(theirs.table), key
        assert ours.positions.frame.name == theirs.positions.frame.name, key
        # gammapy keeps the files' float32 values in its SkyCoord; gpumask works in float64
        for a, b in ((ours.positions.spherical.lon.deg, theirs.positions.spherical.lon.deg),
                     (ours.positions.spherical.lat.deg, theirs.positions.spherical.lat.deg)):
            assert_allclose(a, np.asarray(b, dtype=float), rtol=1e-6, atol=1e-9, err_msg=key)
        names = [theirs.source_name(i) for i in range(len(theirs.table))]
        assert_array_equal(ours._source_names, names)

    # gammapy's disks agree; its Fermi Gaussians use the 68% radius as sigma
    cat, path = real("3fgl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = catalog.SourceCatalog3FGL(filename=path)
    for i in np.flatnonzero(np.asarray(cat.morphology["profile"]) == "disk"):
        m = cat.morphology[i]
        if m["type"] == "disk":
            assert_allclose(theirs[int(i)].spatial_model().r_0.value, m["size"], rtol=1e-6)
    ic443 = int(np.flatnonzero(_strip(theirs.table["Extended_Source_Name"]) == "IC443")[0])
    assert_allclose(theirs[ic443].spatial_model().sigma.value,
                    cat.morphology["size"][ic443] * R68_PER_SIGMA, rtol=1e-6)
    cat, path = real("hgps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = catalog.SourceCatalogHGPS(filename=path)
    model = _strip(theirs.table["Spatial_Model"])
    for i in np.flatnonzero((model == "Gaussian") & (cat.morphology["type"] == "gauss")):
        assert_allclose(theirs[int(i)].spatial_model().sigma.value, cat.morphology["size"][i])


# --------------------------------------------------------------------------------------------
# Synthetic Fermi layouts
# --------------------------------------------------------------------------------------------
def _fermi_file(path, layout):
    """A small file with the 4FGL or 2FHL layout (padded names, as in the real files)."""
    if layout == "4fgl":
        names = ["4FGL J0000.3-7355", "4FGL J0534.5+2200", "4FGL J0617.2+2234e",
                 "4FGL J0822.1-4253e", "4FGL J1855.9+0121e", "4FGL J1840.9-0532e",
                 "4FGL J1000.0+0000"]
        ext_names = ["", "", "IC 443", "Puppis A", "W 44", "HESS J1841-055", ""]
        ra = [0.098, 83.633, 94.31, 125.544, 283.99, 280.23, np.nan]
        dec = [-73.92, 22.01, 22.58, -42.889, 1.355, -5.55, 0.0]
        main = fits.BinTableHDU.from_columns([
            fits.Column("Source_Name", "18A", array=[n.ljust(18) for n in names]),
            fits.Column("RAJ2000", "E", unit="deg", array=ra),
            fits.Column("DEJ2000", "E", unit="deg", array=dec),
            fits.Column("Extended_Source_Name", "18A", array=[n.ljust(18) for n in ext_names]),
        ], name="LAT_Point_Source_Catalog")
        ext_hdu = "ExtendedSources"
        ext_rows = [("IC 443", "2D Gaussian", 0.27, 0.27, 0.0, "RadialGaussian"),
                    ("Puppis A", "Disk", 0.443, 0.443, 0.0, "RadialDisk"),
                    ("W 44", "Ring", 0.3, 0.19, -33.0, "SpatialMap"),
                    ("HESS J1841-055", "2D Gaussian", 0.62, 0.38, 39.0, "SpatialMap"),
                    ("Not In Main", "Disk", 1.0, 1.0, 0.0, "RadialDisk")]
    else:
        names = ["2FHL J0534.5+2201", "2FHL J0617.2+2234e", "2FHL J0822.6-4250e",
                 "2FHL J1445.1-0329"]
        ra = [83.633, 94.31, 125.66, 221.28]
        dec = [22.01, 22.58, -42.84, -3.49]
        main = fits.BinTableHDU.from_columns([
            fits.Column("Source_Name", "18A", array=[n.ljust(18) for n in names]),
            fits.Column("RAJ2000", "E", unit="deg", array=ra),
            fits.Column("DEJ2000", "E", unit="deg", array=dec),
        ], name="2FHL Source Catalog")
        ext_hdu = "Extended Sources"
        ext_rows = [("2FHL J0617.2+2234e", "2D Gaussian", 0.27, 0.27, 0.0, None),
                    ("2FHL J0822.6-4250e", "Disk", 0.37, 0.37, 90.0, None)]
    columns = [
        fits.Column("Source_Name", "20A", array=[r[0].ljust(20) for r in ext_rows]),
        fits.Column("Model_Form", "14A", array=[r[1] for r in ext_rows]),
        fits.Column("Model_SemiMajor", "E", unit="deg", array=[r[2] for r in ext_rows]),
        fits.Column("Model_SemiMinor", "E", unit="deg", array=[r[3] for r in ext_rows]),
        fits.Column("Model_PosAng", "E", unit="deg", array=[r[4] for r in ext_rows]),
    ]
    if ext_rows[0][5] is not None:
        columns.append(fits.Column("Spatial_Function", "15A", array=[r[5] for r in ext_rows]))
    ext = fits.BinTableHDU.from_columns(columns, name=ext_hdu)
    energy = fits.BinTableHDU.from_columns(
        [fits.Column("LowerEnergy", "E", unit="MeV", array=[50.0, 100.0])], name="EnergyBounds")
    fits.HDUList([fits.PrimaryHDU(), main, ext, energy]).writeto(path)
    return path


def test_synthetic_4fgl(tmp_path):
    path = _fermi_file(tmp_path / "gll_psc_test.fit", "4fgl")
    with pytest.warns(GpumaskWarning, match="skipped 1 of 7 rows with non-finite positions"):
        cat = SourceCatalog.read(path)
    assert cat.name == "4fgl" and len(cat) == 6
    _check_schema(cat)
    assert cat.names[2] == "4FGL J0617.2+2234e" and "4FGL J1000.0+0000" not in cat.names
    assert_allclose(cat.positions.ra.deg, np.float32([0.098, 83.633, 94.31, 125.544, 283.99, 280.23]))
    m = cat.morphology
    assert list(m["type"]) == ["point", "point", "gauss", "disk", "ellipse", "ellipse"]
    assert list(m["profile"]) == ["point", "point", "gauss", "disk", "template", "gauss"]
    assert_allclose(m["size"][2:4], [0.27 / R68_PER_SIGMA, 0.443], rtol=1e-6)
    assert_allclose([m["semi_major"][4], m["semi_minor"][4], m["position_angle"][4]],
                    [0.3, 0.19, 147.0], rtol=1e-6)
    assert_allclose([m["semi_major"][5], m["semi_minor"][5], m["position_angle"][5]],
                    [0.62 / R68_PER_SIGMA, 0.38 / R68_PER_SIGMA, 39.0], rtol=1e-6)
    with pytest.warns(GpumaskWarning):
        assert SourceCatalog.read(path, format="4FGL").name == "4fgl"


def test_synthetic_2fhl(tmp_path):
    path = _fermi_file(tmp_path / "gll_psch_test.fit", "2fhl")
    cat = SourceCatalog.read(path)
    assert cat.name == "2fhl" and len(cat) == 4
    _check_schema(cat)
    assert list(cat.morphology["type"]) == ["point", "gauss", "disk", "point"]
    assert_allclose(cat.morphology["size"][1:3], [0.27 / R68_PER_SIGMA, 0.37], rtol=1e-6)


def test_fermi_extended_missing_from_extended_table(tmp_path):
    path = tmp_path / "bad.fit"
    main = fits.BinTableHDU.from_columns([
        fits.Column("Source_Name", "18A", array=["3FGL J0000.0+0000e"]),
        fits.Column("RAJ2000", "E", array=[1.0]), fits.Column("DEJ2000", "E", array=[2.0]),
        fits.Column("Extended_Source_Name", "18A", array=["Nowhere"]),
    ], name="LAT_Point_Source_Catalog")
    ext = fits.BinTableHDU.from_columns([
        fits.Column("Source_Name", "18A", array=["Elsewhere"]),
        fits.Column("Model_SemiMajor", "E", array=[1.0]),
        fits.Column("Model_SemiMinor", "E", array=[1.0]),
        fits.Column("Model_PosAng", "E", array=[0.0])], name="ExtendedSources")
    fits.HDUList([fits.PrimaryHDU(), main, ext]).writeto(path)
    with pytest.warns(GpumaskWarning, match="Nowhere"):
        cat = SourceCatalog.read(path)
    assert cat.name == "3fgl" and cat.morphology["type"][0] == "unknown"


def test_fermi_missing_column_and_hdu(tmp_path):
    path = tmp_path / "nocol.fit"
    main = fits.BinTableHDU.from_columns([
        fits.Column("Source_Name", "18A", array=["4FGL J0000.0+0000"]),
        fits.Column("RAJ2000", "E", array=[1.0])], name="LAT_Point_Source_Catalog")
    fits.HDUList([fits.PrimaryHDU(), main]).writeto(path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['DEJ2000'\].*RAJ2000"):
        SourceCatalog.read(path)
    with pytest.raises(ValueError, match="(?i)no HDU 'HGPS_SOURCES'.*LAT_Point_Source_Catalog"):
        SourceCatalog.read(path, format="hgps")


# --------------------------------------------------------------------------------------------
# Generic tables
# --------------------------------------------------------------------------------------------
def _generic_table():
    t = Table()
    t["Source_Name"] = ["A", "B", "C", "D"]
    t["RA"] = [10.0, 20.0, 30.0, 40.0] * u.deg
    t["DEC"] = [-10.0, 0.0, 10.0, 20.0] * u.deg
    t["extent"] = [6.0, 0.0, np.nan, 30.0] * u.arcmin
    return t


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".csv"])
def test_generic_table_formats(tmp_path, suffix):
    t = _generic_table()
    path = tmp_path / f"cat{suffix}"
    t.write(path, format={".fits": "fits", ".ecsv": "ascii.ecsv", ".csv": "ascii.csv"}[suffix])
    cat = SourceCatalog.read(path)
    assert cat.name == "table" and len(cat) == 4
    assert cat.positions.frame.name == "icrs"
    assert_allclose(cat.positions.ra.deg, [10, 20, 30, 40])
    assert list(cat.names) == ["A", "B", "C", "D"]
    # the "extent" column is picked up by name: in its unit, or deg where the file has none (CSV)
    assert list(cat.morphology["type"]) == ["disk", "point", "unknown", "disk"]
    assert_allclose(cat.morphology["size"][[0, 3]], [6.0, 30.0] if suffix == ".csv" else [0.1, 0.5])
    assert list(SourceCatalog.read(path, size=False).morphology["type"]) == ["point"] * 4
    kwargs = {"size": "EXTENT", "size_unit": "arcmin"} if suffix == ".csv" else {"size": "extent"}
    cat = SourceCatalog.read(path, format="table", **kwargs)
    assert list(cat.morphology["type"]) == ["disk", "point", "unknown", "disk"]
    assert_allclose(cat.morphology["size"][[0, 3]], [0.1, 0.5])
    gauss = SourceCatalog.read(path, format="table", size_type="gauss", **kwargs)
    assert list(gauss.morphology["type"]) == ["gauss", "point", "unknown", "gauss"]


def test_generic_galactic_and_options(tmp_path):
    t = Table({"GLON": [0.0, 10.0], "GLAT": [0.5, -0.5], "r": [0.2, 0.3]})
    path = tmp_path / "gal.ecsv"
    t.write(path)
    cat = SourceCatalog.read(path)
    assert cat.positions.frame.name == "galactic"
    assert_allclose(cat.positions.l.deg, [0, 10])
    assert list(cat.names) == ["0", "1"]
    cat = SourceCatalog.read(path, format="table", size="r")  # unitless: deg
    assert_allclose(cat.morphology["size"], [0.2, 0.3])
    # explicit columns and frame
    t = Table({"name": ["x", "y"], "lon": [83.6, 84.0], "lat": [22.0, 22.5],
               "ra": [1.0, 2.0], "dec": [3.0, 4.0]})
    t.write(tmp_path / "explicit.fits")
    cat = SourceCatalog.read(tmp_path / "explicit.fits", format="table", lon="lon", lat="lat",
                             frame="fk5")
    assert isinstance(cat.positions.frame, FK5) and cat.positions.equinox.jyear == 2000.0
    assert_allclose(cat.positions.ra.deg, [83.6, 84.0])
    cat = SourceCatalog.read(tmp_path / "explicit.fits", format="table", name="NAME")
    assert list(cat.names) == ["x", "y"]
    assert_allclose(cat.positions.ra.deg, [1.0, 2.0])  # ra/dec preferred when not given


def test_generic_errors(tmp_path):
    t = _generic_table()
    t["flux"] = [1.0, 2.0, 3.0, 4.0] * u.Unit("cm-2 s-1")
    t.write(tmp_path / "t.ecsv")
    path = tmp_path / "t.ecsv"
    with pytest.raises(ValueError, match="'flux' has unit 'cm-2 s-1'|'flux' has unit '1 / \\(s cm2\\)'"):
        SourceCatalog.read(path, format="table", size="flux")
    with pytest.raises(ValueError, match="size column 'missing' not found.*Source_Name"):
        SourceCatalog.read(path, format="table", size="missing")
    with pytest.raises(ValueError, match="size_unit must be an angle unit"):
        SourceCatalog.read(path, format="table", size="Source_Name", size_unit="m")
    with pytest.raises(ValueError, match="size_type"):
        SourceCatalog.read(path, format="table", size="extent", size_type="box")
    with pytest.raises(ValueError, match="frame must be"):
        SourceCatalog.read(path, format="table", frame="altaz")
    with pytest.raises(ValueError, match="both lon= and lat="):
        SourceCatalog.read(path, format="table", lon="RA")
    with pytest.raises(TypeError, match="only apply to format='table'"):
        SourceCatalog.read(path, format="3fgl", lon="RA", lat="DEC")
    Table({"x": [1.0], "y": [2.0]}).write(tmp_path / "nopos.csv")
    with pytest.raises(ValueError, match=r"no position columns.*\['x', 'y'\]"):
        SourceCatalog.read(tmp_path / "nopos.csv")
    Table({"ra": [1.0, 2.0], "dec": [3.0, 4.0], "size": [0.1, -0.1]}).write(tmp_path / "neg.csv")
    with pytest.raises(ValueError, match="negative"):
        SourceCatalog.read(tmp_path / "neg.csv", format="table", size="size")
    with pytest.raises(ValueError, match="unknown catalog format 'xyz'.*'3fgl'.*'table'"):
        SourceCatalog.read(path, format="xyz")
    with pytest.raises(FileNotFoundError, match="nothere.fits"):
        SourceCatalog.read(tmp_path / "nothere.fits")
    with pytest.raises(ValueError, match="'Source_Name' is not numeric"):
        SourceCatalog.read(path, format="table", lon="Source_Name", lat="DEC")
    Table({"ra": [1.0] * u.m, "dec": [2.0] * u.deg}).write(tmp_path / "badunit.ecsv")
    with pytest.raises(ValueError, match="'ra' has unit 'm'"):
        SourceCatalog.read(tmp_path / "badunit.ecsv")


def test_nan_positions_skipped_with_warning(tmp_path):
    Table({"ra": [1.0, np.nan, 3.0, 4.0], "dec": [0.0, 1.0, np.nan, 2.0],
           "name": ["a", "b", "c", "d"]}).write(tmp_path / "nan.fits")
    with pytest.warns(GpumaskWarning, match=r"skipped 2 of 4 rows.*'b', 'c'"):
        cat = SourceCatalog.read(tmp_path / "nan.fits")
    assert list(cat.names) == ["a", "d"] and len(cat.table) == 2
    assert list(cat.table["name"]) == ["a", "d"]


# --------------------------------------------------------------------------------------------
# Indexing, selection, repr
# --------------------------------------------------------------------------------------------
@pytest.fixture
def small(tmp_path):
    t = Table({"Source_Name": ["HESS J1825-137", "HESS J1826-130", "Crab", "Vela X"],
               "ra": [276.55, 276.5, 83.63, 128.29], "dec": [-13.58, -13.09, 22.01, -45.19],
               "sigma": [0.24, 0.17, 0.0, 0.5]})
    t.write(tmp_path / "small.ecsv")
    return SourceCatalog.read(tmp_path / "small.ecsv", format="table", size="sigma",
                              size_type="gauss")


def test_indexing(small):
    assert len(small) == 4
    one = small[2]
    assert isinstance(one, SourceCatalog) and len(one) == 1 and one.names[0] == "Crab"
    assert one.morphology["type"][0] == "point" and one.table["Source_Name"][0] == "Crab"
    assert small[-1].names[0] == "Vela X" and small[np.int64(1)].names[0] == "HESS J1826-130"
    with pytest.raises(IndexError):
        small[4]
    with pytest.raises(IndexError):
        small[-5]
    assert list(small[1:3].names) == ["HESS J1826-130", "Crab"]
    assert list(small[::-1].names) == ["Vela X", "Crab", "HESS J1826-130", "HESS J1825-137"]
    mask = np.array([True, False, False, True])
    assert list(small[mask].names) == ["HESS J1825-137", "Vela X"]
    assert list(small.select(mask).names) == ["HESS J1825-137", "Vela X"]
    assert list(small.select(small.morphology["type"] == "gauss").names) == [
        "HESS J1825-137", "HESS J1826-130", "Vela X"]
    assert list(small[[3, 0]].names) == ["Vela X", "HESS J1825-137"]
    assert list(small[np.array([-1])].names) == ["Vela X"]
    assert len(small[[]]) == 0 and len(small[np.zeros(4, bool)]) == 0
    sub = small[[3, 0]]
    assert_allclose(sub.positions.ra.deg, [128.29, 276.55])
    assert_allclose(sub.morphology["size"], [0.5, 0.24])
    assert list(sub.table["sigma"]) == [0.5, 0.24]
    with pytest.raises(IndexError):
        small[np.array([True, False])]
    with pytest.raises(IndexError):
        small[[0, 7]]
    with pytest.raises(TypeError):
        small[1.5]
    with pytest.raises(TypeError):
        small.select([0, 1])
    with pytest.raises(ValueError):
        small.select(np.array([True]))
    assert [c.names[0] for c in small] == list(small.names)


def test_name_lookup(small):
    assert small["Crab"].names[0] == "Crab"
    assert small["hess j1825-137"].names[0] == "HESS J1825-137"  # case and blanks forgiven
    assert small["HESSJ1825-137"].names[0] == "HESS J1825-137"
    with pytest.raises(KeyError, match="close matches.*HESS J1825-137"):
        small["HESS J1825-13"]
    with pytest.raises(KeyError, match="no close matches"):
        small["Geminga"]


def test_repr(small):
    text = repr(small)
    assert text == "SourceCatalog(name='table', sources=4; point: 1, gauss: 3)"
    assert str(small) == text
    assert "sources=0" in repr(small[[]])


def test_constructor_validates():
    pos = SkyCoord([1.0, 2.0] * u.deg, [3.0, 4.0] * u.deg)
    morph = Table({"type": ["point", "disk"], "size": [np.nan, 1.0], "semi_major": [np.nan, 1.0],
                   "semi_minor": [np.nan, 1.0], "position_angle": [np.nan, np.nan],
                   "inner_radius": [np.nan, np.nan]})
    cat = SourceCatalog(Table({"a": [1, 2]}), ["x", "y"], pos, morph, name="mine")
    assert cat.name == "mine" and list(cat["y"].morphology["type"]) == ["disk"]
    with pytest.raises(ValueError, match="differ in length"):
        SourceCatalog(Table({"a": [1]}), ["x", "y"], pos, morph)
    bad = morph.copy()
    bad["type"][1] = "box"
    with pytest.raises(ValueError, match="'box'"):
        SourceCatalog(Table({"a": [1, 2]}), ["x", "y"], pos, bad)
    with pytest.raises(ValueError, match="lacks the columns"):
        SourceCatalog(Table({"a": [1, 2]}), ["x", "y"], pos, morph[["type", "size"]])


# --------------------------------------------------------------------------------------------
# load()
# --------------------------------------------------------------------------------------------
def test_load_from_gammapy_data(tmp_path, monkeypatch):
    root = tmp_path / "gammapy-data"
    (root / "catalogs").mkdir(parents=True)
    t = Table({"source_name": ["2HWC J0534+220", "2HWC J0631+169"], "ra": [83.628, 97.998],
               "dec": [22.024, 16.997], "spec0_radius": [0.0, 0.5]}, meta={"catalog_name": "2HWC"})
    t.write(root / "catalogs" / "2HWC.ecsv")
    (root / "catalogs" / "fermi").mkdir()
    _fermi_file(root / "catalogs" / "fermi" / "gll_psch_v09.fit.gz", "2fhl")
    monkeypatch.setenv("GAMMAPY_DATA", str(root))
    cat = load("2hwc")
    assert cat.name == "2hwc" and list(cat.morphology["type"]) == ["point", "disk"]
    assert load("2FHL").name == "2fhl"
    assert load("3hwc", path=root / "catalogs" / "2HWC.ecsv").name == "3hwc"
    with pytest.raises(FileNotFoundError, match=r"3HWC\.ecsv.*path="):
        load("3hwc")
    with pytest.raises(FileNotFoundError, match="gll_psc_v32.fit.gz"):
        load("4fgl")
    with pytest.raises(FileNotFoundError, match="nothere"):
        load("hgps", path=tmp_path / "nothere.fits")
    with pytest.raises(ValueError, match="unknown catalog"):
        load("5fgl")
    with pytest.raises(ValueError, match="unknown catalog"):
        load("table")
    monkeypatch.delenv("GAMMAPY_DATA")
    with pytest.raises(FileNotFoundError, match=r"GAMMAPY_DATA is not set.*gammacat\.fits\.gz.*path="):
        load("gammacat")


@pytest.mark.data
def test_load_real_layout(cat_dir, monkeypatch):
    """The shared data folder is laid out like $GAMMAPY_DATA/catalogs."""
    monkeypatch.setenv("GAMMAPY_DATA", str(cat_dir.parent))
    for key in ("3fgl", "gamma-cat", "3hwc"):
        if not (cat_dir / FILES[key]).is_file():
            pytest.skip(f"{FILES[key]} not in {cat_dir}")
        assert len(load(key)) == len(_read(str(cat_dir / FILES[key])))


def test_formats_and_public_name():
    assert FORMATS == ("3fgl", "4fgl", "2fhl", "3fhl", "hgps", "gamma-cat", "2hwc", "3hwc",
                       "1lhaaso", "table")
    assert gpumask.SourceCatalog is SourceCatalog and "SourceCatalog" in gpumask.__all__


def test_catalog_module_does_not_import_cupy():
    code = "import sys, gpumask.catalog; assert 'cupy' not in sys.modules, 'cupy imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
