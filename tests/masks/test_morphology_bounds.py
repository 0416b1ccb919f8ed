"""Dilation and erosion widths far larger than the map (issue 16, item 10).

The footprint is clamped to offsets the map can hold (at most (2 ny - 1) x
(2 nx - 1)): memory follows the map, not the radius, and every result equals
``scipy.ndimage`` with the full, unclamped footprint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
import scipy.ndimage as ndi

import gpumask
from gpumask import Map, WcsGeom
from gpumask.masks import morphology as mo

from ..conftest import assert_on_backend

#: Small maps, including single rows/columns and a stack of planes.
SHAPES = ((1, 1), (1, 9), (7, 1), (6, 11), (13, 4), (2, 5, 8))


def _host(x):
    return gpumask.to_host(x.data if isinstance(x, Map) else x)


def _masks(rng):
    for shape in SHAPES:
        for density in (0.0, 0.05, 0.5, 0.95, 1.0):
            yield rng.uniform(size=shape) < density


def _scipy(func, m, structure, **kwargs):
    """scipy per 2-D plane with the full footprint."""
    out = np.empty(m.shape, dtype=bool)
    for idx in np.ndindex(*m.shape[:-2]):
        out[idx] = func(m[idx], structure, **kwargs)
    return out


@pytest.mark.parametrize("kernel, width", [("disk", 9), ("disk", 14.5), ("disk", 40), ("box", 25), ("box", 61)])
def test_widths_beyond_the_map_equal_scipy(backend, rng, kernel, width):
    for m in _masks(rng):
        fp = mo._make_footprint(width, kernel, None, False, "test")
        full = fp.array()  # unclamped: wider than the map
        assert full.shape[0] > 2 * m.shape[-2] - 1 or full.shape[1] > 2 * m.shape[-1] - 1
        dm = gpumask.to_device(m, backend)
        want = _scipy(ndi.binary_dilation, m, full)
        got = mo.binary_dilate(dm, width, kernel=kernel)
        assert_on_backend(got, backend)
        np.testing.assert_array_equal(_host(got), want, err_msg=f"{m.shape} {kernel} {width}")
        for bv in (False, True):
            want_e = _scipy(ndi.binary_erosion, m, full, border_value=int(bv))
            got = mo.binary_erode(dm, width, kernel=kernel, border_value=bv)
            np.testing.assert_array_equal(_host(got), want_e, err_msg=f"{m.shape} {kernel} {width} bv={bv}")
        methods = ("box", "box-sums", "direct") if kernel == "box" else ("fft", "edt", "direct")
        for method in methods:
            np.testing.assert_array_equal(_host(mo._dilate_data(backend, dm, fp, method)), want)
            for bv in (False, True):
                want_e = _scipy(ndi.binary_erosion, m, full, border_value=int(bv))
                np.testing.assert_array_equal(_host(mo._erode_data(backend, dm, fp, bv, method)), want_e,
                                              err_msg=f"{method} {m.shape} {width} bv={bv}")


def test_non_square_pixels_and_gammapy_rounding_beyond_the_map(backend, rng):
    geom = WcsGeom.create(npix=(9, 6), binsz=(0.02, 0.035), frame="galactic")
    m = rng.uniform(size=(6, 9)) < 0.15
    m[3, 4] = True
    dmap = Map.from_geom(geom, data=gpumask.to_device(m, backend))
    for width, rounding in (("0.3 deg", False), ("0.5 deg", False), ("0.3 deg", True)):
        full = mo.footprint(width, geom=geom, gammapy_rounding=rounding)
        assert full.shape[0] > 11 or full.shape[1] > 17
        got = mo.binary_dilate(dmap, width, gammapy_rounding=rounding)
        np.testing.assert_array_equal(_host(got), ndi.binary_dilation(m, full))
        for bv in (False, True):
            got = mo.binary_erode(dmap, width, gammapy_rounding=rounding, border_value=bv)
            np.testing.assert_array_equal(_host(got), ndi.binary_erosion(m, full, border_value=int(bv)))


def test_the_clamped_footprint_fits_the_map():
    geom = WcsGeom.create(npix=100, binsz=0.05, frame="galactic")
    for width in ("150 deg", "100000 deg", "1e300 deg"):
        fp = mo._make_footprint(width, "disk", geom, False, "test")
        clamped = fp.clamped(100, 100)
        assert (clamped.hy, clamped.hx) == (99, 99)
        assert clamped.array().shape == (199, 199)
        assert clamped.array().all()  # wider than the map's diagonal: the whole box
    small = mo._make_footprint(2, "disk", None, False, "test")
    assert small.clamped(100, 100) is small
    partial = mo._make_footprint(12, "disk", None, False, "test").clamped(5, 40)
    assert (partial.hy, partial.hx) == (4, 12)
    np.testing.assert_array_equal(partial.array(), mo.footprint(12)[8:17, :])


def _dilated_map(binsz=0.05):
    geom = WcsGeom.create(skydir=(0, 0), npix=100, binsz=binsz, frame="galactic")
    data = np.zeros((100, 100), bool)
    data[50, 50] = True
    return Map.from_geom(geom, data=data, backend="numpy")


@pytest.mark.parametrize("width", ["150 deg", "100000 deg", "1e300 deg"])
def test_huge_widths_bounded_memory(width):
    """binary_dilate("150 deg") on a 100 x 100 map at 0.05 deg/px took 1.1 GiB of
    numpy allocations (a 6001 x 6001 footprint and its FFT); "100000 deg" asked
    for 29 TiB.  Now a few MiB."""
    m = _dilated_map()
    m.binary_dilate("0.2 deg")  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        dilated = m.binary_dilate(width)
        eroded = (~m).binary_erode(width)
        eroded_gp = (~m).binary_erode(width, border_value=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert dilated.data.all()  # one True pixel reaches the whole map
    assert not eroded.data.any() and not eroded_gp.data.any()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_huge_width_peak_rss_in_a_subprocess():
    """The resident set (not only numpy's allocations) of binary_dilate("150 deg"):
    1.4 GiB before the clamp.  A child inherits its parent's peak RSS through
    fork and exec, so the child resets it (``/proc/self/clear_refs``) first."""
    code = textwrap.dedent("""
        import numpy as np
        from gpumask import Map, WcsGeom

        def kib(field):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field))

        geom = WcsGeom.create(skydir=(0, 0), npix=100, binsz=0.05, frame="galactic")
        data = np.zeros((100, 100), bool)
        data[50, 50] = True
        m = Map.from_geom(geom, data=data, backend="numpy")
        m.binary_dilate("0.2 deg")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        before = kib("VmRSS:")
        out = m.binary_dilate("150 deg")
        print(int(out.data.sum()), (kib("VmHWM:") - before) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GPUMASK_BACKEND": "numpy"})
    assert done.returncode == 0, done.stderr
    total, grown_mib = (int(v) for v in done.stdout.split())
    assert total == 10000
    assert grown_mib < 64, f"resident set grew by {grown_mib} MiB"
