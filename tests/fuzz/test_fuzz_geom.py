"""Fuzz geometry arguments: ``WcsGeom.create`` with hostile sizes, pixel sizes,
centres, frames, projections and reference pixels.

Invariant: ValueError/TypeError naming the argument, or a geometry with positive
integer sizes, pixel sizes within the documented range and a data shape that
matches ``npix`` -- created without allocating map data (32 MiB bound).  Small
geometries (at most 10^5 pixels) also get their pixel coordinates computed and
must round-trip pixel -> sky -> pixel where the projection is defined.
"""

from __future__ import annotations

import math

import numpy as np
from astropy import units as u
from hypothesis import given, settings
from hypothesis import strategies as st

import gpumask
from gpumask.sky.geom import MAX_PIXEL_SIZE_DEG, MIN_PIXEL_SIZE_DEG

FUZZ = settings.get_profile("gpumask-fuzz")
MAX_BYTES = 32 << 20

HOSTILE_NUMBERS = [0, -1, 1, 3, 0.5, 1e-300, 1e300, float("nan"), float("inf"), -float("inf"), 2**31, 2**63,
                   10**30, True, None, "abc", "0.1 deg", "5 arcmin", "1 m", "nan deg", "", [], [1], [1, 2, 3],
                   (0.1, "x"), {"a": 1}, 1 + 2j, np.float32(0.02), np.int64(7)]

numbers = (st.sampled_from(HOSTILE_NUMBERS) | st.floats(allow_nan=True, allow_infinity=True)
           | st.integers(-10, 10**7) | st.floats(1e-4, 50).map(lambda x: f"{x:.4g} deg"))
pairs = st.tuples(numbers, numbers).map(list) | numbers


@st.composite
def create_kwargs(draw):
    kwargs = {}
    valid = {
        "npix": st.integers(1, 400), "binsz": st.floats(0.005, 3), "width": st.floats(0.05, 60),
        "skydir": st.tuples(st.floats(-360, 720), st.floats(-90, 90)),
    }
    for name, strategy in (
        ("npix", valid["npix"] | valid["npix"] | pairs), ("binsz", valid["binsz"] | valid["binsz"] | pairs),
        ("width", valid["width"] | valid["width"] | pairs),
        ("skydir", valid["skydir"] | valid["skydir"] | st.tuples(numbers, numbers) | numbers),
        ("frame", st.sampled_from(["icrs", "galactic", "fk5", "GALACTIC", "ecliptic", "", 3, None])),
        ("proj", st.sampled_from(["CAR", "TAN", "AIT", "SIN", "MOL", "XXX", "car", "", 5, None])),
        ("refpix", st.tuples(numbers, numbers) | numbers),
    ):
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    return kwargs


class Kwargs(dict):
    def __repr__(self):
        return "Kwargs(" + ", ".join(f"{k}={v!r}"[:80] for k, v in self.items()) + ")"


def test_create(fuzz):
    @FUZZ
    @given(create_kwargs().map(Kwargs))
    def case(kwargs):
        names = list(kwargs) + ["npix", "binsz", "width", "pixel", "skydir", "refpix", "proj", "frame", "WCS"]
        geom, _ = fuzz.run("geometry", lambda: gpumask.WcsGeom.create(**kwargs), errors=(ValueError, TypeError),
                           names=names, max_bytes=MAX_BYTES, describe=repr(kwargs))
        if geom is None:
            return
        nx, ny = geom.npix
        if not (isinstance(nx, int) and isinstance(ny, int) and nx >= 1 and ny >= 1):
            fuzz.wrong("geometry", repr(kwargs), f"npix {geom.npix}")
        if tuple(geom.data_shape) != (ny, nx):
            fuzz.wrong("geometry", repr(kwargs), f"data shape {geom.data_shape} for npix {geom.npix}")
        scales = geom.pixel_scales.to_value(u.deg)
        if not np.all((scales >= MIN_PIXEL_SIZE_DEG) & (scales <= MAX_PIXEL_SIZE_DEG)):
            fuzz.wrong("geometry", repr(kwargs), f"pixel scales {scales}")
        if nx * ny <= 10**5:
            def coords():
                lon, lat = geom.get_coord(backend="numpy")
                return lon, lat

            result, _ = fuzz.run("geometry", coords, errors=(), names=(), max_bytes=MAX_BYTES,
                                 describe=f"get_coord of {kwargs!r}")
            lon, lat = result
            ok = np.isfinite(lon) & np.isfinite(lat)
            if ok.any():
                x, y = geom.coord_to_pix((lon[ok], lat[ok]))
                px, py = geom.get_pix(backend="numpy")
                err = np.hypot(np.asarray(x) - px[ok], np.asarray(y) - py[ok])
                # pixels that project back to themselves; wrapped-around ones (lon
                # beyond +-180 deg of the centre) are the same sky point, not errors
                same = gpumask.WcsGeom.pix_to_coord(geom, (np.asarray(x), np.asarray(y)))
                sep = _separation(lon[ok], lat[ok], *same)
                bad = (err > 1e-6) & (sep > 1e-7)
                if bad.any():
                    fuzz.wrong("geometry", repr(kwargs), f"{bad.sum()} pixels do not round-trip")

    case()


def _separation(lon1, lat1, lon2, lat2):
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, float)) for a in (lon1, lat1, lon2, lat2))
    with np.errstate(invalid="ignore"):
        c = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * np.cos(lon1 - lon2)
        return np.degrees(np.arccos(np.clip(c, -1, 1)))


def test_documented_pixel_size_range():
    assert MIN_PIXEL_SIZE_DEG > 0 and math.isfinite(MAX_PIXEL_SIZE_DEG)
