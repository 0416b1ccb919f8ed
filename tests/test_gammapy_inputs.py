"""gammapy objects handed to gpumask's public functions: converted at the boundary
(counted), gpumask results back, and the same numbers as with gpumask inputs.

The oracle for each function is the same call with the gpumask objects built from
the same data (bit-identical results expected), and for the seed tutorial's cells
gammapy 2.1 itself (pixel method: identical masks).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord

import gpumask
from gpumask.masks.catalog_mask import touching
from gpumask.masks.morphology import footprint
from gpumask.stats.convolution import convolve, disk_kernel

pytestmark = pytest.mark.gammapy


@pytest.fixture
def gmaps():
    return pytest.importorskip("gammapy.maps")


@pytest.fixture
def gdatasets():
    return pytest.importorskip("gammapy.datasets")


def _ggeom(gmaps, axes=()):
    return gmaps.WcsGeom.create(
        skydir=SkyCoord(83.633083, 22.0145, unit="deg"), width="2 deg", binsz=0.04, frame="galactic", axes=list(axes)
    )


def _host(m):
    return gpumask.to_host(m.data)


def _gmap(gmaps, geom, data, unit=""):
    return gmaps.Map.from_geom(geom, data=data, unit=unit)


def _dataset(gmaps, gdatasets, rng, nbin=2):
    geom = _ggeom(gmaps, [gmaps.MapAxis.from_energy_bounds("10 GeV", "1 TeV", nbin)])
    shape = geom.data_shape
    background = rng.uniform(0.5, 2.0, shape)
    counts = rng.poisson(background).astype(float)
    counts[..., 20:26, 20:26] += 30  # a source
    return gdatasets.MapDataset(
        counts=_gmap(gmaps, geom, counts),
        background=_gmap(gmaps, geom, background),
        mask_safe=_gmap(gmaps, geom, np.ones(shape, bool)),
        name="sim",
    )


def test_mask_builders_take_a_gammapy_geom(gmaps, backend):
    ggeom = _ggeom(gmaps)
    geom = gpumask.WcsGeom.from_gammapy(ggeom)
    regions = "icrs;circle(83.633083, 22.0145, 0.3)\ngalactic;box(185,-4,1.0,0.5,45)"
    with gpumask.count_transfers() as counter:
        got = gpumask.exclusion_mask(ggeom, regions=regions, backend=backend)
        want = gpumask.exclusion_mask(geom, regions=regions, backend=backend)
        pix = gpumask.masks.regions.region_mask(ggeom, regions, inside=False, method="pixel", backend=backend)
    assert counter.calls == 0
    assert isinstance(got, gpumask.Map) and got.backend.name == backend.name
    assert got.geom == geom
    np.testing.assert_array_equal(_host(got), _host(want))
    assert isinstance(pix, gpumask.Map)
    table = __import__("astropy.table", fromlist=["Table"]).Table(
        {"Source_Name": ["a", "b"], "RAJ2000": [83.6, 84.0], "DEJ2000": [22.0, 22.4]}
    )
    catalog = gpumask.SourceCatalog(
        table, table["Source_Name"], SkyCoord(table["RAJ2000"], table["DEJ2000"], unit="deg"),
        {"type": ["point", "point"], **{c: [np.nan, np.nan] for c in _morph_columns()}},
    )
    np.testing.assert_array_equal(touching(ggeom, catalog, radius="0.2 deg"), touching(geom, catalog, radius="0.2 deg"))
    np.testing.assert_array_equal(footprint("0.12 deg", geom=ggeom), footprint("0.12 deg", geom=geom))
    np.testing.assert_array_equal(disk_kernel("0.2 deg", geom=ggeom), disk_kernel("0.2 deg", geom=geom))


def _morph_columns():
    from gpumask.catalog.source_catalog import _MORPH_FLOAT_COLUMNS

    return _MORPH_FLOAT_COLUMNS


def test_morphology_takes_gammapy_maps(gmaps, backend, rng):
    ggeom = _ggeom(gmaps)
    data = rng.random(ggeom.data_shape) > 0.02
    gmask = _gmap(gmaps, ggeom, data)
    with gpumask.use_backend(backend.name):
        with gpumask.count_transfers() as counter:
            got = {
                "erode": gpumask.binary_erode(gmask, "0.1 deg"),
                "dilate": gpumask.binary_dilate(gmask, 2),
                "fill": gpumask.fill_holes(gmask),
                "label": gpumask.label(gmask),
                "small": gpumask.remove_small_regions(gmask, 3),
                "significance": gpumask.exclusion_from_significance(_gmap(gmaps, ggeom, rng.normal(0, 3, data.shape))),
            }
        assert counter.calls == 0
    mask = gpumask.Map.from_gammapy(gmask, backend=backend)
    want = {
        "erode": gpumask.binary_erode(mask, "0.1 deg"),
        "dilate": gpumask.binary_dilate(mask, 2),
        "fill": gpumask.fill_holes(mask),
        "label": gpumask.label(mask),
        "small": gpumask.remove_small_regions(mask, 3),
    }
    for key, value in want.items():
        assert isinstance(got[key], gpumask.Map) and got[key].backend.name == backend.name, key
        np.testing.assert_array_equal(_host(got[key]), _host(value))
    assert got["significance"].is_mask


def test_estimators_take_gammapy_datasets(gmaps, gdatasets, backend, rng):
    gds = _dataset(gmaps, gdatasets, rng)
    ds = gpumask.MapDataset.from_gammapy(gds, backend=backend)
    with gpumask.use_backend(backend.name):
        got = gpumask.ExcessMapEstimator("0.2 deg").run(gds)
        many = gpumask.ExcessMapEstimator("0.2 deg").run_many([gds, ds])
        fn = gpumask.excess_map(gds.counts, gds.background, correlation_radius="0.2 deg")
        ring = gpumask.RingBackgroundEstimator(r_in="0.3 deg", width="0.2 deg").run(gds)
        adaptive = gpumask.AdaptiveRingBackgroundEstimator(r_in="0.3 deg", r_out_max="0.8 deg", width="0.1 deg").run(gds)
    want = gpumask.ExcessMapEstimator("0.2 deg").run(ds)
    for result in (got, many[0], many[1], fn):
        assert isinstance(result, gpumask.ExcessMaps)
        assert result["sqrt_ts"].backend.name == backend.name
        np.testing.assert_array_equal(_host(result["sqrt_ts"]), _host(want["sqrt_ts"]))
    want_ring = gpumask.RingBackgroundEstimator(r_in="0.3 deg", width="0.2 deg").run(ds)
    assert isinstance(ring, gpumask.MapDatasetOnOff) and isinstance(adaptive, gpumask.MapDatasetOnOff)
    np.testing.assert_array_equal(_host(ring.counts_off), _host(want_ring.counts_off))
    # results go back to gammapy
    gring = ring.to_gammapy()
    assert isinstance(gring, gdatasets.MapDatasetOnOff)
    np.testing.assert_array_equal(gring.counts_off.data, _host(want_ring.counts_off))
    gmaps_out = got.to_gammapy()
    assert isinstance(gmaps_out["sqrt_ts"], gmaps.WcsNDMap)


def test_kernel_background_takes_gammapy_maps(gmaps, backend, rng):
    ggeom = _ggeom(gmaps)
    background = np.full(ggeom.data_shape, 2.0)
    counts = rng.poisson(background).astype(float)
    counts[20:24, 20:24] += 40
    images = {"counts": _gmap(gmaps, ggeom, counts), "background": _gmap(gmaps, ggeom, background)}
    est = gpumask.KernelBackgroundEstimator(
        kernel_src="0.1 deg", kernel_bkg=("0.3 deg", "0.2 deg"), significance_threshold=4, mask_dilation_radius="0.1 deg"
    )
    with gpumask.use_backend(backend.name):
        got = est.run(images)
    want = est.run({k: gpumask.Map.from_gammapy(v, backend=backend) for k, v in images.items()})
    for key in ("exclusion", "background"):
        assert isinstance(got[key], gpumask.Map) and got[key].backend.name == backend.name
        np.testing.assert_array_equal(_host(got[key]), _host(want[key]))


def test_io_and_convolution_take_gammapy_maps(gmaps, tmp_path, rng):
    ggeom = _ggeom(gmaps)
    gm = _gmap(gmaps, ggeom, rng.normal(size=ggeom.data_shape), unit="cm-2")
    out = convolve(gm, np.ones((3, 3)))
    assert isinstance(out, gpumask.Map) and out.unit == u.Unit("cm-2")
    mask = _gmap(gmaps, ggeom, rng.random(ggeom.data_shape) > 0.5)
    gpumask.write_map(mask, tmp_path / "mask.fits")
    back = gmaps.Map.read(tmp_path / "mask.fits")
    assert back.data.dtype == np.bool_
    np.testing.assert_array_equal(back.data, mask.data)


def test_dataset_constructor_takes_gammapy_maps(gmaps, backend, rng):
    ggeom = _ggeom(gmaps)
    counts = gpumask.Map.from_geom(gpumask.WcsGeom.from_gammapy(ggeom), data=rng.poisson(2, ggeom.data_shape), backend=backend)
    ds = gpumask.MapDataset(counts, background=_gmap(gmaps, ggeom, np.full(ggeom.data_shape, 2.0)))
    assert ds.background.backend.name == backend.name  # joins the counts' backend
    onoff = gpumask.MapDatasetOnOff(
        counts, counts_off=_gmap(gmaps, ggeom, np.ones(ggeom.data_shape)),
        acceptance=_gmap(gmaps, ggeom, np.ones(ggeom.data_shape)),
        acceptance_off=_gmap(gmaps, ggeom, np.full(ggeom.data_shape, 4.0)),
    )
    assert onoff.counts_off.backend.name == backend.name
    np.testing.assert_allclose(_host(onoff.alpha), 0.25)


def test_map_constructors_and_operators_take_gammapy_objects(gmaps, backend, rng):
    ggeom = _ggeom(gmaps)
    m = gpumask.Map.from_geom(ggeom, backend=backend)
    assert isinstance(m.geom, gpumask.WcsGeom) and m.geom == gpumask.WcsGeom.from_gammapy(ggeom)
    m2 = gpumask.Map(ggeom, backend.xp.zeros(ggeom.data_shape))
    assert m2.geom == m.geom
    mask = gpumask.Map.from_geom(ggeom, data=backend.xp.ones(ggeom.data_shape, dtype=bool))
    gmask = _gmap(gmaps, ggeom, rng.random(ggeom.data_shape) > 0.5)
    combined = mask & gmask
    assert isinstance(combined, gpumask.Map) and combined.backend.name == backend.name
    np.testing.assert_array_equal(_host(combined), gmask.data)
    mask *= gmask
    np.testing.assert_array_equal(_host(mask), gmask.data)
    coarse = gmaps.WcsGeom.create(skydir=ggeom.center_skydir, width="1 deg", binsz=0.1, frame="icrs")
    resampled = mask.interp_to_geom(coarse)
    assert resampled.geom == gpumask.WcsGeom.from_gammapy(coarse)


# ----------------------------------------------------------------------------- the seed tutorial


@pytest.mark.data
@pytest.mark.parametrize("field", ["crab", "gc"])
def test_tutorial_regions_and_catalog_cells_with_gammapy_objects(field, gmaps, data_dir):
    """"Creating exclusion masks", with gammapy's geometry handed to gpumask: the
    masks equal gammapy's (pixel method) pixel for pixel, on the tutorial's Crab
    field and on the Galactic-centre field of the GC dataset."""
    regions_mod = pytest.importorskip("regions")
    from gammapy.catalog import SourceCatalog3FHL

    def make_region(text):  # gammapy 2.1 dropped gammapy.utils.regions.make_region
        return regions_mod.Regions.parse(text, format="ds9")[0]

    if field == "crab":
        position = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")
        geom = gmaps.WcsGeom.create(skydir=position, width="5 deg", binsz=0.02, frame="galactic")
        regions = [make_region("galactic;box(185,-4,1.0,0.5, 45)"), make_region("icrs;circle(83.633083, 22.0145, 0.3)")]
    else:
        counts = gmaps.Map.read(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc.fits.gz", hdu="COUNTS")
        geom = counts.geom.to_image()
        regions = [make_region("galactic;box(0.5,0.2,1.0,0.4, 30)"), make_region("icrs;circle(266.415, -29.006, 0.3)")]
    want = geom.region_mask(regions, inside=False)  # gammapy 2.1 returns the mask Map
    mask_map = gpumask.Map.from_geom(geom, data=gpumask.masks.regions.region_mask(
        geom, regions, inside=False, method="pixel", backend="numpy").data)
    np.testing.assert_array_equal(mask_map.data, want.data)
    via_exclusion = gpumask.exclusion_mask(geom, regions=regions, method="pixel", backend="numpy")
    np.testing.assert_array_equal(via_exclusion.data, want.data)

    catalog = SourceCatalog3FHL(data_dir / "catalogs" / "fermi" / "gll_psch_v13.fit.gz") if (
        data_dir / "catalogs" / "fermi" / "gll_psch_v13.fit.gz").exists() else None
    if catalog is None:
        candidates = sorted((data_dir / "catalogs").rglob("*3fhl*")) + sorted((data_dir / "catalogs").rglob("gll_psch*"))
        if not candidates:
            pytest.skip("no 3FHL catalog in the shared data")
        catalog = SourceCatalog3FHL(candidates[0])
    inside = geom.contains(catalog.positions)
    idx = np.where(inside)[0]
    assert len(idx) > 0
    radius = Angle("0.3 deg")
    cat_regions = [regions_mod.CircleSkyRegion(catalog[int(i)].position, radius) for i in idx]
    want_cat = geom.region_mask(cat_regions, inside=False)
    got_cat = gpumask.exclusion_mask(geom, regions=cat_regions, method="pixel", backend="numpy")
    np.testing.assert_array_equal(got_cat.data, want_cat.data)
    # combining a gpumask mask with a gammapy one, as the tutorial does (`*=`)
    combined = got_cat * want
    want_combined = want_cat * want
    np.testing.assert_array_equal(combined.data, want_combined.data)
    assert combined.to_gammapy().geom == geom


@pytest.mark.data
@pytest.mark.parametrize("which", ["crab", "gc"])
def test_tutorial_significance_cell_with_gammapy_dataset(which, data_dir, gdatasets):
    """gammapy reads the dataset, gpumask's ExcessMapEstimator takes it: the
    ``sqrt_ts < 5`` mask (NaN set usable, as the tutorial) equals gammapy's."""
    from gammapy.estimators import ExcessMapEstimator as GammapyExcess

    if which == "crab":
        gds = gdatasets.MapDataset.read(data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_data_Fermi-LAT.fits")
        radius = "0.4 deg"
    else:
        gds = gdatasets.MapDataset.read(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc.fits.gz")
        radius = "0.2 deg"
    want = GammapyExcess(radius, selection_optional=[]).run(gds)
    want_mask = want["sqrt_ts"] < 5.0
    want_mask.data[np.isnan(want["sqrt_ts"].data)] = True
    result = gpumask.ExcessMapEstimator(radius, selection_optional=[]).run(gds)
    mask = gpumask.exclusion_from_significance(result["sqrt_ts"], 5.0)
    gmask = mask.to_gammapy()
    assert gmask.geom == want_mask.geom
    np.testing.assert_array_equal(gmask.data, want_mask.data)
    np.testing.assert_allclose(
        gpumask.to_host(result["sqrt_ts"].data), want["sqrt_ts"].data, atol=1e-5, equal_nan=True
    )
