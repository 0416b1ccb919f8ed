"""The region of each catalog source: the radius rules against the catalog columns, bad input."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest

from gpumask.catalog import SourceCatalog
from gpumask.catalog.shapes import DEFAULT_SCALE, source_shapes, to_regions
from gpumask.errors import GpumaskWarning

FGL3 = "catalogs/fermi/gll_psc_v16.fit.gz"
HGPS = "catalogs/hgps_catalog_v1.fits.gz"


@pytest.fixture
def fgl3(data_dir):
    return SourceCatalog.read(data_dir / FGL3)


def test_default_rules_follow_the_columns(data_dir):
    hgps = SourceCatalog.read(data_dir / HGPS)
    shapes = source_shapes(hgps)
    morph = hgps.morphology
    gauss = np.asarray(morph["type"]) == "gauss"
    sigma = np.asarray(morph["size"], float)
    np.testing.assert_allclose(shapes.semi_major[gauss], np.hypot(DEFAULT_SCALE["gauss"] * sigma[gauss], 0.1))
    point = np.asarray(morph["type"]) == "point"
    ul = np.asarray(morph["size_ul"], float)
    bounded = point & np.isfinite(ul)
    assert bounded.sum() == 17 and (point & ~bounded).sum() == 6
    np.testing.assert_allclose(shapes.semi_major[point & ~bounded], 0.1)
    np.testing.assert_allclose(shapes.semi_major[bounded], np.hypot(ul[bounded], 0.1))  # limit as size
    custom = source_shapes(hgps, psf="0.05 deg", scale={"gauss": 2.0}, min_radius="0.2 deg")
    np.testing.assert_allclose(custom.semi_major[gauss], np.maximum(np.hypot(2 * sigma[gauss], 0.05), 0.2))
    np.testing.assert_allclose(custom.semi_major[point & ~bounded], 0.2)
    constant = source_shapes(hgps, radius="0.3 deg")
    assert np.all(constant.semi_major == 0.3) and np.all(constant.is_circle)
    per_source = source_shapes(hgps, radius=np.linspace(0.1, 0.5, len(hgps)) * u.deg)
    np.testing.assert_allclose(per_source.semi_major, np.linspace(0.1, 0.5, len(hgps)))


def test_bad_input(fgl3):
    with pytest.raises(ValueError, match="radius"):
        source_shapes(fgl3, radius="0.3 deg", psf="0.1 deg")
    with pytest.raises(ValueError, match="psf"):
        source_shapes(fgl3, psf="-1 deg")
    with pytest.raises(ValueError, match="scale keys"):
        source_shapes(fgl3, scale={"gaussian": 2})
    with pytest.raises(ValueError, match="scale"):
        source_shapes(fgl3, scale=-1)
    with pytest.raises(ValueError, match="values for"):
        source_shapes(fgl3, radius=[0.1, 0.2] * u.deg)
    with pytest.raises(ValueError, match="angle"):
        source_shapes(fgl3, radius=[1.0] * len(fgl3) * u.s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(GpumaskWarning, match="zero radius"):
            source_shapes(fgl3, psf=0)


def test_regions_carry_the_shapes_and_names(data_dir):
    hgps = SourceCatalog.read(data_dir / HGPS)
    shapes = source_shapes(hgps)
    regions = to_regions(hgps)
    assert len(regions) == len(hgps)
    for i, region in enumerate(regions):
        assert region.meta["text"] == str(shapes.names[i])
        if shapes.is_circle[i]:
            assert region.radius.to_value(u.deg) == pytest.approx(shapes.semi_major[i])
        else:
            assert region.width.to_value(u.deg) == pytest.approx(2 * shapes.semi_major[i])
            assert region.height.to_value(u.deg) == pytest.approx(2 * shapes.semi_minor[i])
        assert region.center.separation(shapes.positions[i]).arcsec < 1e-6
    assert hgps.to_regions(radius="0.3 deg")[0].radius.to_value(u.deg) == pytest.approx(0.3)
