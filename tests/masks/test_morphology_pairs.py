"""(lon, lat) pairs of widths in binary_dilate / binary_erode, as gammapy takes them.

Oracles: scipy.ndimage with a brute-force elliptical / rectangular footprint
(exact equality), and gammapy 2.1's ``binary_dilate(use_fft=False)`` for
``gammapy_rounding=True`` (exact equality where gammapy is right: disks, which use
only the lon width; boxes, whose sides gammapy swaps, are compared transposed).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from astropy import units as u

import gpumask
from gpumask.masks.morphology import footprint


def _ellipse(w_lon_px, w_lat_px):
    hx, hy = int(np.floor(w_lon_px)), int(np.floor(w_lat_px))
    i = np.arange(-hy, hy + 1)[:, None]
    j = np.arange(-hx, hx + 1)[None, :]
    return (i / w_lat_px) ** 2 + (j / w_lon_px) ** 2 <= 1 + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_pair_disk_is_an_ellipse(seed, backend):
    rng = np.random.default_rng(seed)
    sx, sy = 0.02, float(rng.choice([0.02, 0.03]))
    geom = gpumask.WcsGeom.create(npix=(60, 50), binsz=(sx, sy), frame="galactic")
    data = rng.random(geom.data_shape) < 0.01
    mask = gpumask.Map.from_geom(geom, data=data, backend=backend)
    w_lon, w_lat = float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.05, 0.2))
    got = gpumask.binary_dilate(mask, (f"{w_lon} deg", f"{w_lat} deg"))
    want = ndi.binary_dilation(data, _ellipse(w_lon / sx, w_lat / sy))
    assert got.backend.name == backend.name
    np.testing.assert_array_equal(gpumask.to_host(got.data), want)
    # the same as a two-valued Quantity, and erosion is its dual
    q = u.Quantity([w_lon, w_lat], "deg")
    np.testing.assert_array_equal(gpumask.to_host(gpumask.binary_dilate(mask, q).data), want)
    eroded = gpumask.binary_erode(~mask, q)
    np.testing.assert_array_equal(gpumask.to_host(eroded.data), ~want)


def test_pair_box_and_pixels(backend):
    geom = gpumask.WcsGeom.create(npix=(40, 30), binsz=0.1)
    data = np.zeros(geom.data_shape, bool)
    data[15, 20] = True
    mask = gpumask.Map.from_geom(geom, data=data, backend=backend)
    got = gpumask.to_host(gpumask.binary_dilate(mask, ("0.5 deg", "0.3 deg"), kernel="box").data)
    ys, xs = np.nonzero(got)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (18, 22, 14, 16)  # 5 columns (lon) x 3 rows (lat)
    px = gpumask.to_host(gpumask.binary_dilate(mask, (3, 1)).data)
    np.testing.assert_array_equal(px, ndi.binary_dilation(data, _ellipse(3, 1)))
    # a zero semi-axis leaves a segment
    line = gpumask.to_host(gpumask.binary_dilate(mask, (2, 0)).data)
    assert np.count_nonzero(line) == 5 and np.all(np.nonzero(line)[0] == 15)


def test_single_width_unchanged():
    geom = gpumask.WcsGeom.create(npix=(20, 20), binsz=(0.02, 0.03))
    np.testing.assert_array_equal(footprint("0.1 deg", geom=geom), footprint(("0.1 deg", "0.1 deg"), geom=geom))


@pytest.mark.gammapy
@pytest.mark.parametrize("kernel", ["disk", "box"])
def test_gammapy_rounding_with_pairs_matches_gammapy(kernel, gammapy_maps, backend):
    rng = np.random.default_rng(5)
    ggeom = gammapy_maps.WcsGeom.create(npix=(50, 40), binsz=0.02, frame="galactic")
    data = rng.random(ggeom.data_shape) > 0.005
    gmask = gammapy_maps.Map.from_geom(ggeom, data=data)
    width = u.Quantity([0.1, 0.16], "deg")
    want = gmask.binary_erode(width, kernel=kernel, use_fft=False).data
    mask = gpumask.Map.from_gammapy(gmask, backend=backend)
    got = gpumask.binary_erode(mask, width, kernel=kernel, gammapy_rounding=True, border_value=False)
    got = gpumask.to_host(got.data)
    if kernel == "disk":
        np.testing.assert_array_equal(got, want)  # gammapy: the lon width only
    else:
        # gammapy shapes its box (lon side, lat side) as (rows, columns); gpumask puts
        # the lon side along x: the same as gammapy's erosion with the box transposed
        structure = np.ones((9, 5), bool)  # round_up_to_odd(8) rows (lat), round_up_to_odd(5) columns
        np.testing.assert_array_equal(got, ndi.binary_erosion(data, structure, border_value=0))
        assert not np.array_equal(got, want)
