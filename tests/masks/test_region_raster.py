"""The tile binning of the region rasteriser: conservative, and proportional to
what the shapes cover.

The binning decides which (tile, shape) pairs are ever tested; a pair it drops
wrongly would silently lose pixels.  These tests compare the binned result with an
unbinned evaluation (every shape on every tile) and check the tile caps contain
every pixel centre, on the geometries where caps are hardest: all-sky maps with
pixels off the sky, the poles and the longitude wrap.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from regions import (
    CircleAnnulusSkyRegion,
    CircleSkyRegion,
    EllipseSkyRegion,
    PolygonSkyRegion,
    RectangleSkyRegion,
)

from gpumask import WcsGeom
from gpumask.masks import _region_raster as rr
from gpumask.masks.regions import _compile

GEOMS = {
    "car-plane": dict(skydir=(0, 0), binsz=0.1, npix=(200, 70), frame="galactic", proj="CAR"),
    "car-allsky": dict(skydir=(0, 0), binsz=2.0, npix=(180, 90), frame="galactic", proj="CAR"),
    "ait-allsky": dict(skydir=(0, 0), binsz=1.5, npix=(240, 120), frame="galactic", proj="AIT"),
    "tan-pole": dict(skydir=(30, 89.5), binsz=0.05, npix=(90, 75), frame="icrs", proj="TAN"),
    "sin-wide": dict(skydir=(200, -40), binsz=0.8, npix=(150, 140), frame="icrs", proj="SIN"),
    "zea-wrap": dict(skydir=(0.5, 10), binsz=0.2, npix=(70, 64), frame="icrs", proj="ZEA"),
}


def _random_regions(rng, geom, n):
    centre = geom.center_skydir
    width = float(np.max(geom.width.to_value("deg")))
    out = []
    for _ in range(n):
        lon = centre.spherical.lon.deg + rng.normal(0, width / 2)
        lat = float(np.clip(centre.spherical.lat.deg + rng.normal(0, width / 3), -89.9, 89.9))
        c = SkyCoord(lon, lat, unit="deg", frame=geom.frame)
        if rng.uniform() < 0.3:
            c = c.icrs if geom.frame == "galactic" else c.galactic
        size = 10 ** rng.uniform(-1.5, np.log10(min(60.0, width)))
        kind = rng.integers(5)
        angle = Angle(rng.uniform(0, 360), "deg")
        if kind == 0:
            out.append(CircleSkyRegion(c, Angle(size, "deg")))
        elif kind == 1:
            out.append(CircleAnnulusSkyRegion(c, size / 2 * u.deg, size * u.deg))
        elif kind == 2:
            out.append(EllipseSkyRegion(c, size * u.deg, size / 3 * u.deg, angle))
        elif kind == 3:
            out.append(RectangleSkyRegion(c, min(size, 170) * u.deg, size / 2 * u.deg, angle))
        else:
            phi = np.sort(rng.uniform(0, 2 * np.pi, 5))
            lat_v = np.clip(lat + size * np.sin(phi) / 3, -89.9, 89.9)
            lon_v = lon + size * np.cos(phi) / 3 / max(np.cos(np.radians(lat)), 0.05)
            out.append(PolygonSkyRegion(SkyCoord(lon_v, lat_v, unit="deg", frame=geom.frame)))
    return out


def _unbinned(geom, table):
    """Every shape on every tile (no binning at all)."""
    ntx, nty = rr.tile_counts(geom)
    tiles = np.arange(ntx * nty)
    members = np.tile(np.arange(len(table)), len(tiles))
    starts = np.arange(len(tiles) + 1) * len(table)
    return tiles, starts, members


@pytest.mark.parametrize("method", ["sky", "pixel"])
@pytest.mark.parametrize("name", sorted(GEOMS))
def test_binning_loses_no_pixel(name, method, monkeypatch):
    rng = np.random.default_rng(zlib.crc32(f"{name}-{method}".encode()))
    geom = WcsGeom.create(**GEOMS[name])
    regions = _random_regions(rng, geom, 25)
    table, _, _ = _compile([(r, i % 3 == 0) for i, r in enumerate(regions)], geom, method)
    binned = rr.rasterise_numpy(geom, table)
    assert binned.any()
    monkeypatch.setattr(rr, "bin_shapes", _unbinned)
    full = rr.rasterise_numpy(geom, table)
    np.testing.assert_array_equal(binned, full)


@pytest.mark.parametrize("name", sorted(GEOMS))
def test_tile_caps_hold_every_pixel_centre(name):
    geom = WcsGeom.create(**GEOMS[name])
    centre, radius, alive = rr.tile_caps(geom)
    nx, ny = geom.npix
    ntx, _ = rr.tile_counts(geom)
    x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float))
    lon, lat = geom.pix_to_coord((x, y))
    v = rr._unit(lon, lat)
    tile = (y // rr.TILE).astype(int) * ntx + (x // rr.TILE).astype(int)
    on_sky = np.isfinite(lon)
    assert alive[np.unique(tile[on_sky])].all()
    d = rr._chord_to_angle(np.sum((v - centre[tile]) ** 2, axis=-1))
    assert np.all(d[on_sky] <= radius[tile][on_sky])
    # and the caps are tight: no more than a pixel diagonal of slack
    pix = np.deg2rad(np.max(np.abs(geom.pixel_scales.to_value("deg"))))
    for t in np.unique(tile[on_sky])[:50]:
        sel = on_sky & (tile == t)
        assert radius[t] <= d[sel].max() + 2 * pix


def test_caps_are_cached_per_wcs():
    geom = WcsGeom.create(**GEOMS["car-plane"])
    same = WcsGeom.create(**GEOMS["car-plane"])
    other = WcsGeom.create(**{**GEOMS["car-plane"], "npix": (201, 70)})
    assert rr.field_caps(geom) is rr.field_caps(same)
    assert rr.field_caps(other) is not rr.field_caps(geom)


def test_fine_caps_are_built_only_where_shapes_reach():
    """A first small mask on a big new field projects the super-tile borders and
    the tiles near the shape, not the whole map."""
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.02, npix=(18000, 500), frame="galactic")
    rr._CAPS_CACHE.clear()
    mask = geom.region_mask(CircleSkyRegion(SkyCoord(10, 1, unit="deg", frame="galactic"),
                                            Angle(0.3, "deg")), backend="numpy")
    assert 650 < mask.to_numpy().sum() < 760  # pi (15 px)^2
    field = rr.field_caps(geom)
    assert field.done.sum() <= 4
    assert np.isfinite(field.radius).sum() <= 4 * rr.SUPER**2


def test_pairs_follow_the_covered_area():
    """3000 small circles on a wide map: the tested (tile, shape) pairs stay a
    few per circle, not circles x tiles."""
    rng = np.random.default_rng(7)
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.02, npix=(6000, 300), frame="galactic")
    lon = rng.uniform(-60, 60, 3000)
    lat = rng.uniform(-3, 3, 3000)
    coords = SkyCoord(lon, lat, unit="deg", frame="galactic")
    regions = [CircleSkyRegion(c, Angle(0.3, "deg")) for c in coords]
    for method in ("sky", "pixel"):
        table, _, _ = _compile([(r, 0) for r in regions], geom, method)
        tiles, starts, members = rr.bin_shapes(geom, table)
        assert len(members) < 8 * len(regions)
        assert np.all(np.diff(starts) > 0)
        assert np.all(np.diff(tiles) > 0)


def test_concurrent_masks_on_one_field_agree():
    """Threads (dask workers) building masks on one fresh field share its lazily
    built tile caps; every thread must get the single-threaded answer."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    kw = dict(skydir=(0, 0), binsz=0.05, npix=(1200, 300), frame="galactic")
    geom = WcsGeom.create(**kw)
    sets = [_random_regions(rng, geom, 12) for _ in range(8)]
    expected = [geom.region_mask(s, backend="numpy").to_numpy() for s in sets]
    rr._CAPS_CACHE.clear()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: WcsGeom.create(**kw).region_mask(s, backend="numpy"), sets))
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g.to_numpy())


@pytest.mark.parametrize("cdelt", [3.0, 4.0, 15.43])
def test_tiles_holding_their_centres_antipode(cdelt):
    """Stereographic maps show the whole sphere; with coarse pixels a tile can
    hold the antipode of its own centre, where the border-only cap is wrong.
    Such tiles must get the whole sphere (found by a random stress test)."""
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["GLON-STG", "GLAT-STG"]
    wcs.wcs.crval = [240, 0]
    wcs.wcs.crpix = [60, 60]
    wcs.wcs.cdelt = [-cdelt, cdelt]
    geom = WcsGeom(wcs, (256, 256))
    centre = SkyCoord(240, 0, unit="deg", frame="galactic")
    got = geom.region_mask(CircleSkyRegion(centre, Angle(20, "deg")), backend="numpy").to_numpy()
    truth = geom.separation(centre, backend="numpy") <= 20
    assert truth.sum() > 0
    np.testing.assert_array_equal(got, truth)
