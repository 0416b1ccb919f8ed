"""shapes_hitting: one answer per shape, equal to rasterising each shape alone."""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from regions import (
    CircleAnnulusSkyRegion,
    CircleSkyRegion,
    EllipseSkyRegion,
    PolygonSkyRegion,
    RectangleSkyRegion,
)

import gpumask
from gpumask.masks._region_compile import ShapeTable
from gpumask.masks._region_hits import FlaggedPixels, shapes_hitting
from gpumask.masks.regions import _compile


def _random_regions(rng, n, center):
    out = []
    for _ in range(n):
        c = center.directional_offset_by(rng.uniform(0, 360) * u.deg, rng.uniform(0, 2.5) * u.deg)
        size = rng.uniform(0.02, 0.4)
        kind = rng.integers(5)
        if kind == 0:
            out.append(CircleSkyRegion(c, size * u.deg))
        elif kind == 1:
            out.append(CircleAnnulusSkyRegion(c, size / 3 * u.deg, size * u.deg))
        elif kind == 2:
            out.append(EllipseSkyRegion(c, size * u.deg, size / 2 * u.deg, angle=rng.uniform(0, 180) * u.deg))
        elif kind == 3:
            out.append(RectangleSkyRegion(c, size * u.deg, size / 3 * u.deg, angle=rng.uniform(0, 180) * u.deg))
        else:
            d = rng.uniform(-size, size, (5, 2))
            out.append(PolygonSkyRegion(SkyCoord(c.ra.deg + d[:, 0], c.dec.deg + d[:, 1], unit="deg")))
    return out


def test_each_shape_alone_against_its_own_raster(backend):
    rng = np.random.default_rng(4)
    for frame, proj in (("galactic", "CAR"), ("icrs", "TAN"), ("galactic", "AIT")):
        center = SkyCoord(rng.uniform(0, 360), rng.uniform(-60, 60), unit="deg")
        geom = gpumask.WcsGeom.create(skydir=center, width=5, binsz=0.03, frame=frame, proj=proj)
        flagged = rng.random(geom.data_shape) < 0.002  # sparse: many shapes hit nothing
        regions = _random_regions(rng, 80, center)
        # one table row per region, in order (_compile groups alike shapes together)
        table = ShapeTable.concatenate([_compile([(r, 0)], geom, "sky")[0] for r in regions])
        with gpumask.count_transfers() as counter:
            got = shapes_hitting(FlaggedPixels(geom, flagged, backend=backend.name), table)
        assert counter.calls == (1 if backend.name == "cupy" else 0)  # the flags, once
        want = np.array([np.any(gpumask.to_host(geom.region_mask([r]).data) & flagged) for r in regions])
        np.testing.assert_array_equal(got, want)
        assert 5 < want.sum() < 75  # both answers occur


def test_nothing_flagged_or_no_shapes():
    geom = gpumask.WcsGeom.create(skydir=(0, 0), width=2, binsz=0.05)
    empty = FlaggedPixels(geom, np.zeros(geom.data_shape, bool))
    table, _, _ = _compile([(CircleSkyRegion(SkyCoord(0, 0, unit="deg"), 0.5 * u.deg), 0)], geom, "sky")
    assert shapes_hitting(empty, table).tolist() == [False]
    full = FlaggedPixels(geom, np.ones(geom.data_shape, bool))
    assert shapes_hitting(full, table).tolist() == [True]
    assert len(full) == geom.data_shape[0] * geom.data_shape[1]
