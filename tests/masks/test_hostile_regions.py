"""Hostile region inputs (issue 16): non-finite and empty shapes, shapes ``regions``
would drop with a warning, and compound regions thousands of operands deep.

Every bad shape is an error naming the shape (its ds9 line, or the region's class
and parameters) and the bad parameter: nothing is dropped silently.  Compound
chains are checked against the union / intersection / xor of the operands'
individual masks.
"""

from __future__ import annotations

import functools
import operator
import sys

import astropy.units as u
import numpy as np
import pytest
import regions as R
from astropy.coordinates import SkyCoord

from gpumask import WcsGeom, read_map
from gpumask.backend import to_host

from ..conftest import assert_on_backend

CRAB = SkyCoord(83.63, 22.01, unit="deg", frame="icrs")


@pytest.fixture
def geom():
    return WcsGeom.create(skydir=(83.63, 22.01), width=2.0, binsz=0.05, frame="icrs")


def _mask(geom, regions, **kwargs):
    return to_host(geom.region_mask(regions, **kwargs).data)


def _bypass(region, **values):
    """Set attributes behind regions' validating descriptors (as a bad object would be)."""
    for name, value in values.items():
        region.__dict__[name] = value
    return region


# ---------------------------------------------------------------- ds9 text with NaN / inf


@pytest.mark.parametrize(
    "text, match",
    [
        # regions drops this shape with a warning only ("Cannot parse sky region angle parameter")
        ("icrs;circle(83.6,22,inf)", r"'icrs;circle\(83.6,22,inf\)'.*circle parameter 3 \(radius\) is 'inf'"),
        ("icrs;circle(83.6,22,nan)", r"circle parameter 3 \(radius\) is 'nan'"),
        ("icrs;circle(nan,22,0.3)", r"circle parameter 1 \(x\) is 'nan'"),
        ("icrs;circle(83.6,-inf,0.3)", r"circle parameter 2 \(y\) is '-inf'"),
        ("icrs;circle(83.6,22,1e999)", r"circle parameter 3 \(radius\) is '1e999'"),
        ("icrs;circle(83.6,22,infd)", r"radius\) is 'infd'"),
        ("icrs;ellipse(83.6,22,0.3,inf,0)", r"ellipse parameter 4 \(radius\) is 'inf'"),
        ("icrs;ellipse(83.6,22,0.3,0.2,NaN)", r"ellipse parameter 5 \(angle\) is 'NaN'"),
        ("icrs;box(83.6,22,0.3,0.2,nan)", r"'icrs;box\(83.6,22,0.3,0.2,nan\)'.*parameter 5 \(angle\)"),
        ("icrs;box(83.6,22,Infinity,0.2,0)", r"box parameter 3 \(width\) is 'Infinity'"),
        ("icrs;annulus(83.6,22,0.1,inf)", r"annulus parameter 4 \(radius\) is 'inf'"),
        ("icrs;polygon(83,22,84,22,nan,23)", r"polygon parameter 5 \(x of vertex 3\) is 'nan'"),
        ("icrs;point(83.6,nan)", r"point parameter 2 \(y\) is 'nan'"),
        ("image;circle(10,10,inf)", r"'image;circle\(10,10,inf\)'.*radius\) is 'inf'"),
        ("galactic\ncircle(0,0,1)\n-circle(0,0,nan)", r"line 3: '-circle\(0,0,nan\)'"),
    ],
)
def test_non_finite_ds9_parameters_are_errors(geom, text, match):
    with pytest.raises(ValueError, match=match):
        geom.region_mask(text)


def test_non_finite_parameter_in_a_region_file(tmp_path, geom):
    path = tmp_path / "hostile.reg"
    path.write_text("icrs\ncircle(83.6,22,0.3)\ncircle(83.6,22,inf)\n")
    with pytest.raises(ValueError, match=r"hostile\.reg.*line 3: 'circle\(83.6,22,inf\)'.*radius"):
        geom.region_mask(path)


@pytest.mark.parametrize(
    "text, match",
    [
        # regions warns "Cannot parse pixel region size parameters" and drops the shape
        ("image;circle(10,10,3d)", r"line 1: 'image;circle\(10,10,3d\)'.*Cannot parse pixel region size"),
        ("image;box(10,10,3d,2,0)", r"line 1: 'image;box\(10,10,3d,2,0\)'.*Cannot parse"),
    ],
)
def test_shapes_regions_would_drop_are_errors(geom, text, match):
    with pytest.raises(ValueError, match=match):
        geom.region_mask(text)


@pytest.mark.parametrize("text", ["icrs;circle(83.6,22,0)", "icrs;circle(83.6,22,-1)",
                                  "icrs;box(83.6,22,0,1,0)", "icrs;ellipse(83.6,22,1,0,0)"])
def test_zero_and_negative_sizes_in_ds9_text(geom, text):
    escaped = text.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=rf"line 1: '{escaped}'.*strictly positive"):
        geom.region_mask(text)


def test_non_finite_crtf_file_names_the_file(tmp_path, geom):
    path = tmp_path / "hostile.crtf"
    path.write_text("#CRTFv0\nglobal coord=J2000\ncircle[[83.6deg, 22deg], infdeg]\n")
    with pytest.raises(ValueError, match=r"hostile\.crtf.*CRTF"):
        geom.region_mask(path)


def test_finite_values_that_look_odd_still_parse(geom):
    """Sexagesimal positions and unit suffixes are not mistaken for bad numbers."""
    a = _mask(geom, "icrs;circle(5:34:31.2,+22:00:36,18')")
    b = _mask(geom, "icrs;circle(83.63,22.01,0.3)")
    assert a.sum() == b.sum() > 100
    # a commented-out shape and metadata are no parameters
    c = _mask(geom, "icrs\n# circle(83.6,22,nan)\ncircle(83.63,22.01,0.3) # text={inf(nan)} color=red")
    np.testing.assert_array_equal(c, b)


# ---------------------------------------------------------------- regions objects and SkyCoords


def test_nan_skycoord_point_is_an_error(geom):
    with pytest.raises(ValueError, match=r"region 0 \(SkyCoord of 1 point\(s\)\): position is not finite: "
                                         r"\(nan, 22.0\)"):
        geom.region_mask(SkyCoord(np.nan, 22.0, unit="deg"))
    coords = SkyCoord([83.6, 83.7, np.nan], [22.0, 22.1, 22.2], unit="deg")
    with pytest.raises(ValueError, match=r"region 1 \(SkyCoord of 3 point\(s\)\): position 3 of 3 is not finite"):
        geom.region_mask(["icrs;circle(83.6,22,0.1)", coords])
    with pytest.raises(ValueError, match="not finite"):
        geom.region_mask(SkyCoord([83.6, 83.7], [np.nan, 22.1], unit="deg"), method="pixel")


@pytest.mark.parametrize("method", ["sky", "pixel"])
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: R.CircleSkyRegion(SkyCoord(np.nan, 22, unit="deg"), 0.3 * u.deg),
         (r"region 1 \(<CircleSkyRegion\(center=<SkyCoord \(ICRS\): \(ra, dec\) in deg \(nan, 22\.\)>, "
          r"radius=0\.3 deg\)>\): center is not finite: \(nan deg, 22\.0 deg\)")),
        (lambda: R.PointSkyRegion(SkyCoord(83.6, np.nan, unit="deg")),
         r"region 1 \(<PointSkyRegion.*center is not finite"),
        (lambda: R.CircleSkyRegion(CRAB, np.inf * u.deg),
         r"region 1 \(<CircleSkyRegion.*radius=inf deg\)>\): radius must be a finite, positive value, got inf deg"),
        (lambda: R.EllipseSkyRegion(CRAB, 1 * u.deg, np.inf * u.deg),
         r"<EllipseSkyRegion.*height must be a finite, positive value, got inf deg"),
        (lambda: R.RectangleSkyRegion(CRAB, 1 * u.deg, 1 * u.deg, angle=np.inf * u.deg),
         r"<RectangleSkyRegion.*angle must be a finite value, got inf deg"),
        (lambda: R.CircleAnnulusSkyRegion(CRAB, 0.1 * u.deg, np.inf * u.deg),
         r"<CircleAnnulusSkyRegion.*outer_radius must be a finite"),
        (lambda: R.PolygonSkyRegion(SkyCoord([83, 84, 84], [22, 22, np.nan], unit="deg")),
         r"<PolygonSkyRegion.*vertex 3 of 3 is not finite: \(84\.0, nan\)"),
        (lambda: R.EllipseAnnulusSkyRegion(SkyCoord(np.nan, 22, unit="deg"), 1 * u.deg, 2 * u.deg,
                                           1 * u.deg, 2 * u.deg),
         r"<EllipseAnnulusSkyRegion.*center is not finite"),
        (lambda: R.CirclePixelRegion(R.PixCoord(10, 10), np.inf),
         r"<CirclePixelRegion.*radius must be a finite, positive value, got inf"),
        (lambda: R.PolygonPixelRegion(R.PixCoord([1, 5, np.nan], [1, 1, 4])),
         r"<PolygonPixelRegion.*vertex 3 of 3 is not finite"),
        (lambda: _bypass(R.CircleSkyRegion(CRAB, 1 * u.deg), radius=0 * u.deg),
         r"radius must be a finite, positive value, got 0\.0 deg"),
        (lambda: _bypass(R.RectangleSkyRegion(CRAB, 1 * u.deg, 1 * u.deg), width=-1 * u.deg),
         r"width must be a finite, positive value, got -1\.0 deg"),
        (lambda: _bypass(R.CircleAnnulusSkyRegion(CRAB, 1 * u.deg, 2 * u.deg), inner_radius=2 * u.deg),
         r"inner_radius must be smaller than outer_radius, got 2\.0 deg and 2\.0 deg"),
    ],
)
def test_bad_region_objects_name_shape_and_parameter(geom, make, match, method):
    regions = [R.CircleSkyRegion(CRAB, 0.2 * u.deg), make()]
    with pytest.raises(ValueError, match=match):
        geom.region_mask(regions, method=method)


def test_bad_operand_deep_in_a_compound_is_named(geom):
    shapes = [R.CircleSkyRegion(CRAB, 0.1 * u.deg) for _ in range(1500)]
    shapes[700] = R.CircleSkyRegion(SkyCoord(np.nan, 22, unit="deg"), 0.1 * u.deg)
    chain = functools.reduce(operator.or_, shapes)
    with pytest.raises(ValueError, match=r"region 0 \(CompoundSkyRegion with operator or_\), second operand "
                                         r"at depth 800 \(<CircleSkyRegion.*\(nan, 22\.\)>.*\): center is not "
                                         r"finite: \(nan, 22\.0\)"):
        geom.region_mask(chain)


# ---------------------------------------------------------------- compound regions thousands deep


def _random_circles(n, seed, spread=1.0, radius=0.05):
    rng = np.random.default_rng(seed)
    lon = 83.63 + rng.uniform(-spread, spread, n)
    lat = 22.01 + rng.uniform(-spread, spread, n)
    return [R.CircleSkyRegion(SkyCoord(a, b, unit="deg"), radius * u.deg) for a, b in zip(lon, lat)]


@pytest.mark.parametrize("method", ["sky", "pixel"])
def test_5000_chained_unions(geom, method):
    circles = _random_circles(5000, seed=16)
    expected = _mask(geom, circles, method=method)  # a list: the union of the shapes
    assert 1000 < expected.sum() < expected.size
    left = functools.reduce(operator.or_, circles)  # ((a | b) | c) | ...
    right = functools.reduce(lambda acc, r: r | acc, circles[::-1])  # a | (b | (c | ...))
    assert sys.getrecursionlimit() < 5000
    np.testing.assert_array_equal(_mask(geom, left, method=method), expected)
    np.testing.assert_array_equal(_mask(geom, right, method=method), expected)
    np.testing.assert_array_equal(_mask(geom, [left], method=method, inside=False), ~expected)


def test_1200_chained_intersections_and_xor(geom):
    rng = np.random.default_rng(5)
    big = [R.CircleSkyRegion(SkyCoord(83.63 + dx, 22.01 + dy, unit="deg"), 0.7 * u.deg)
           for dx, dy in rng.uniform(-0.15, 0.15, (1200, 2))]
    singles = [_mask(geom, b) for b in big]
    expected_and = np.logical_and.reduce(singles)
    assert 0 < expected_and.sum() < singles[0].sum()
    np.testing.assert_array_equal(_mask(geom, functools.reduce(operator.and_, big)), expected_and)
    right = functools.reduce(lambda acc, r: r & acc, big[::-1])
    np.testing.assert_array_equal(_mask(geom, right), expected_and)
    expected_xor = np.logical_xor.reduce(singles)
    assert expected_xor.any()
    np.testing.assert_array_equal(_mask(geom, functools.reduce(operator.xor, big)), expected_xor)


def test_deep_chain_with_excluded_and_mixed_operands(geom):
    """Operands with include=False inside a chain count as their complement; other
    operators and annuli in the chain keep their meaning."""
    circles = _random_circles(1500, seed=7, spread=0.8, radius=0.08)
    hole = R.CircleSkyRegion(CRAB, 0.3 * u.deg, meta={"include": False})
    ring = R.CircleAnnulusSkyRegion(CRAB, 0.4 * u.deg, 0.5 * u.deg)
    pair = R.CircleSkyRegion(CRAB, 0.6 * u.deg) & R.CircleSkyRegion(SkyCoord(84.0, 22.0, unit="deg"),
                                                                    0.6 * u.deg)
    chain = functools.reduce(operator.or_, circles[:700] + [hole, ring, pair] + circles[700:])
    expected = (_mask(geom, circles) | ~_mask(geom, R.CircleSkyRegion(CRAB, 0.3 * u.deg))
                | _mask(geom, ring) | _mask(geom, pair))
    np.testing.assert_array_equal(_mask(geom, chain), expected)
    chain = functools.reduce(operator.or_, circles)
    # a ds9-style exclusion of the whole chain (its own meta: regions shares region1's by default)
    excluded = R.CompoundSkyRegion(chain.region1, chain.region2, operator.or_,
                                   meta=R.RegionMeta({"include": False}))
    got = _mask(geom, [R.CircleSkyRegion(CRAB, 0.9 * u.deg), excluded])
    np.testing.assert_array_equal(got, _mask(geom, R.CircleSkyRegion(CRAB, 0.9 * u.deg)) & ~_mask(geom, circles))


@pytest.mark.gpu
def test_5000_chained_unions_on_the_backend(backend, geom):
    circles = _random_circles(5000, seed=17)
    chain = functools.reduce(operator.or_, circles)
    got = geom.region_mask(chain, backend=backend.name)
    assert_on_backend(got, backend)
    expected = _mask(geom, circles, backend="numpy")
    np.testing.assert_array_equal(to_host(got.data), expected)
    small = functools.reduce(operator.and_, _random_circles(1100, seed=3, spread=0.05, radius=0.6))
    np.testing.assert_array_equal(to_host(geom.region_mask(small, backend=backend.name).data),
                                  _mask(geom, small, backend="numpy"))


@pytest.mark.parametrize("text", ["~0", "~nosuchuser_gpumask/x.reg"])
def test_unknown_user_in_a_path_is_not_a_crash(text):
    """Found by the fuzz suite: ``Path('~0').expanduser()`` raises RuntimeError."""
    geom = WcsGeom.create(npix=10, binsz=0.1)
    with pytest.raises(ValueError, match="neither ds9 region text"):
        geom.region_mask(text)
    with pytest.raises(FileNotFoundError):
        read_map(text)
