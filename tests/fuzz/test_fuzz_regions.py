"""Fuzz region input: generated ds9 text (frames, shapes, hostile parameters,
comments, several lines) and region objects with hostile parameters.

Invariant: ValueError/TypeError quoting the offending line (or naming the region
object), or a boolean mask of the geometry's shape.  Pure ``icrs`` circles are
also checked against a brute-force oracle: a pixel centre is inside when its
great-circle distance to the centre is at most the radius (pixels within 1e-9 deg
of the edge are not compared).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from hypothesis import given, settings
from hypothesis import strategies as st

import gpumask

FUZZ = settings.get_profile("gpumask-fuzz")
MAX_BYTES = 128 << 20

GEOM = gpumask.WcsGeom.create(skydir=(83.6, 22.0), npix=(40, 30), binsz=0.1, frame="icrs")

FRAMES = ["icrs;", "galactic;", "fk5;", "image;", "", "ecliptic;", "foo;", "physical;"]
SHAPES = ["circle", "ellipse", "box", "polygon", "annulus", "point", "line", "text", "vector",
          "panda", "circle", "circle", "box", "polygon", "blob"]
HOSTILE = ["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "1e-300", "-5", "0", "0.0", "1e300",
           "12:34:56", "+22:00:59.9", "abc", "", "3d", "10'", '5"', "2r", "1p", "0x10", "--1",
           "1,", "(", ")", "{", "#", ";", "\\", "\x00", "é"]


def _number():
    return st.floats(-400, 400, allow_nan=False).map(lambda x: f"{x:.6g}") | st.sampled_from(HOSTILE)


@st.composite
def ds9_lines(draw):
    frame = draw(st.sampled_from(FRAMES))
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    shape = draw(st.sampled_from(SHAPES))
    params = draw(st.lists(_number(), min_size=0, max_size=9))
    sep = draw(st.sampled_from([",", ", ", " "]))
    tail = draw(st.sampled_from(["", "", " # text={x}", " # color=red", " #", " {bad"]))
    return f"{frame}{sign}{shape}({sep.join(params)}){tail}"


class Text(str):
    def __repr__(self):
        return f"Text({str(self)[:200]!r})"


ds9_texts = st.lists(ds9_lines(), min_size=1, max_size=3).map(
    lambda lines: Text("\n".join(lines))) | st.text(max_size=80).map(Text)


@st.composite
def icrs_circles(draw):
    n = draw(st.integers(1, 4))
    lines = []
    for _ in range(n):
        lon = draw(st.floats(81.0, 86.0))
        lat = draw(st.floats(19.0, 25.0))
        r = draw(st.floats(0.01, 3.0))
        lines.append(f"icrs;circle({lon:.6f},{lat:.6f},{r:.6f})")
    return Text("\n".join(lines))


def _names(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    # the whole text, any of its lines, or a prefix of it (long lines are quoted cut),
    # as it is or as repr() escapes it
    names = [str(text), *lines, *(line[:30] for line in lines)]
    names += [repr(name)[1:-1] for name in names]
    return [name for name in names if name] or ["ds9 text", "region"]


def test_ds9_text(fuzz):
    @FUZZ
    @given(ds9_texts)
    def case(text):
        result, _ = fuzz.run("regions", lambda: GEOM.region_mask(str(text), backend="numpy"),
                             errors=(ValueError, TypeError),
                             # a shape that parses but is invalid is named by its place and parameters
                             names=_names(text) + ["empty", "no region", "region 0", "region 1", "region 2"],
                             max_bytes=MAX_BYTES, describe=repr(text))
        if result is not None:
            data = result.to_numpy() if hasattr(result, "to_numpy") else np.asarray(result)
            if data.dtype != bool or data.shape != GEOM.data_shape:
                fuzz.wrong("regions", repr(text), f"mask {data.dtype} {data.shape}")

    case()


def test_icrs_circles_equal_brute_force(fuzz):
    lon, lat = GEOM.get_coord(backend="numpy")
    pixels = SkyCoord(lon * u.deg, lat * u.deg, frame="icrs")

    @FUZZ
    @given(icrs_circles())
    def case(text):
        result, _ = fuzz.run("regions", lambda: GEOM.region_mask(str(text), backend="numpy"),
                             errors=(), names=(), max_bytes=MAX_BYTES, describe=repr(text))
        expected = np.zeros(GEOM.data_shape, bool)
        edge = np.zeros(GEOM.data_shape, bool)
        for line in str(text).splitlines():
            x, y, r = map(float, line[len("icrs;circle("):-1].split(","))
            sep = pixels.separation(SkyCoord(x * u.deg, y * u.deg, frame="icrs")).deg
            expected |= sep <= r
            edge |= np.abs(sep - r) < 1e-9
        got = result.to_numpy()
        bad = (got != expected) & ~edge
        if bad.any():
            fuzz.wrong("regions", repr(text), f"{bad.sum()} pixels differ from the brute force")

    case()


@st.composite
def region_objects(draw):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # astropy's own warnings on wrapping inf/nan angles
        return _region_object(draw)


def _region_object(draw):
    from regions import CircleSkyRegion, EllipseSkyRegion, PolygonSkyRegion, RectangleSkyRegion

    value = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.floats(0.01, 2)
    lon = draw(value)
    lat = draw(st.floats(-100, 100) | st.floats(18, 26) | st.just(float("nan")))
    try:
        center = SkyCoord(lon * u.deg, lat * u.deg, frame="icrs")
    except ValueError:  # astropy refuses |lat| > 90 itself
        center = SkyCoord(float("nan") * u.deg, float("nan") * u.deg, frame="icrs")
    kind = draw(st.sampled_from(["circle", "ellipse", "box", "polygon"]))
    a, b, angle = draw(value), draw(value), draw(value)
    try:
        if kind == "circle":
            return CircleSkyRegion(center, a * u.deg)
        if kind == "ellipse":
            return EllipseSkyRegion(center, a * u.deg, b * u.deg, angle * u.deg)
        if kind == "box":
            return RectangleSkyRegion(center, a * u.deg, b * u.deg, angle * u.deg)
        n = draw(st.integers(3, 6))
        lons = [draw(value) + 83 for _ in range(n)]
        lats = [draw(st.floats(18, 26) | st.just(float("nan"))) for _ in range(n)]
        return PolygonSkyRegion(SkyCoord(lons * u.deg, lats * u.deg, frame="icrs"))
    except ValueError:
        return None  # regions itself refuses it (e.g. a negative radius)


def test_region_objects(fuzz):
    @FUZZ
    @given(st.lists(region_objects(), min_size=1, max_size=3))
    def case(objects):
        objects = [o for o in objects if o is not None]
        if not objects:
            return
        # the region's index, class or shape word (the message shows its parameters)
        names = ["region", *{type(o).__name__ for o in objects}, "polygon", "circle", "ellipse", "rectangle"]
        result, _ = fuzz.run("regions", lambda: GEOM.region_mask(objects, backend="numpy"),
                             errors=(ValueError, TypeError), names=names, max_bytes=MAX_BYTES,
                             describe=repr(objects)[:300])
        if result is not None:
            if result.to_numpy().shape != GEOM.data_shape:
                fuzz.wrong("regions", repr(objects)[:300], "wrong shape")
            for o in objects:
                params = [getattr(o, k, None) for k in ("radius", "width", "height", "angle")]
                values = [p.value for p in params if p is not None]
                coords = getattr(o, "center", None) or getattr(o, "vertices", None)
                if not (np.all(np.isfinite(values)) and np.all(np.isfinite(coords.ra.deg))
                        and np.all(np.isfinite(coords.dec.deg))):
                    fuzz.wrong("regions", repr(o)[:300], "a non-finite shape was accepted")

    case()


@pytest.mark.parametrize("n", [1200])
def test_deep_compound_chain(fuzz, n):
    from regions import CircleSkyRegion

    shapes = [CircleSkyRegion(SkyCoord((82 + 0.003 * k) * u.deg, 22 * u.deg), 0.05 * u.deg) for k in range(n)]
    compound = shapes[0]
    for shape in shapes[1:]:
        compound = compound | shape
    result, _ = fuzz.run("regions", lambda: GEOM.region_mask(compound, backend="numpy"),
                         errors=(), names=(), describe=f"{n} chained unions")
    expected = GEOM.region_mask(shapes, backend="numpy").to_numpy()
    assert np.array_equal(result.to_numpy(), expected)


CORPUS = [line for line in (Path(__file__).parent / "corpus" / "regions.txt").read_text().splitlines()
          if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("text", CORPUS)
def test_corpus(fuzz, text):
    """ds9 shapes that were dropped with only a warning, or worse (issue 16.7)."""
    result, error = fuzz.run("regions", lambda: GEOM.region_mask(text, backend="numpy"), errors=(ValueError,),
                             names=[text], describe=f"corpus {text}")
    assert error is not None, f"{text!r} gave a mask"
