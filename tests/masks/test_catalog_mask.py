"""Exclusion masks from catalogs: the tutorial's 3FGL step against gammapy 2.1,
spherical masks against an independent k-d tree of pixel centres, and the
orientation of Fermi ellipses (the radius rules: tests/catalog/test_shapes.py)."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from scipy.spatial import cKDTree

import gpumask
from gpumask import WcsGeom, to_host
from gpumask.catalog import SourceCatalog
from gpumask.catalog.shapes import source_shapes, to_regions
from gpumask.masks.catalog_mask import exclusion_mask, touching
from gpumask.errors import GpumaskWarning

FGL3 = "catalogs/fermi/gll_psc_v16.fit.gz"
HGPS = "catalogs/hgps_catalog_v1.fits.gz"
CRAB = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")


def _seed_geom():
    return WcsGeom.create(skydir=CRAB, width="5 deg", binsz=0.02, frame="galactic")


def _unit(lon, lat):
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _brute_circles(geom, positions, radius_deg):
    """Pixels within an angular radius of any position (k-d tree on unit vectors,
    in the map's frame through astropy): independent of gpumask's rasteriser."""
    lon, lat = geom.get_coord(backend="numpy")
    pix = _unit(lon.ravel(), lat.ravel())
    frame = "galactic" if geom.frame == "galactic" else "icrs"
    src = positions.transform_to(frame).spherical
    centres = _unit(src.lon.deg, src.lat.deg)
    tree = cKDTree(pix)
    hit = np.zeros(len(pix), bool)
    radius = np.broadcast_to(radius_deg, (len(centres),))
    for c, r in zip(centres, radius):
        chord = 2 * np.sin(np.radians(r) / 2)
        hit[tree.query_ball_point(c, chord * (1 - 1e-12))] = True
    return hit.reshape(lon.shape)


@pytest.fixture
def fgl3(data_dir):
    return SourceCatalog.read(data_dir / FGL3)


def test_seed_3fgl_step_matches_gammapy(backend, fgl3, gammapy_maps):
    """The tutorial: 0.3 deg circles around the catalog sources in the Crab field.
    method="pixel" equals gammapy's region_mask of the same sources."""
    geom = _seed_geom()
    sel = touching(geom, fgl3, radius="0.3 deg")
    chosen = fgl3.select(sel)
    assert 3 <= len(chosen) <= 10 and any("J0534.5+2201" in n for n in chosen.names)
    ours = exclusion_mask(geom, fgl3, radius="0.3 deg", method="pixel", backend=backend.name)
    assert ours.backend.name == backend.name
    from regions import CircleSkyRegion

    g = gammapy_maps.WcsGeom.create(skydir=CRAB, width="5 deg", binsz=0.02, frame="galactic")
    raw = fgl3.table  # the file's own columns, not gpumask's positions
    circles = [CircleSkyRegion(SkyCoord(r["RAJ2000"], r["DEJ2000"], unit="deg"), 0.3 * u.deg) for r in raw[sel]]
    ref = g.region_mask(circles, inside=False)
    np.testing.assert_array_equal(to_host(ours.data), ref.data)
    # sky method: the same sources as exact caps, against the independent brute force
    sky = to_host(exclusion_mask(geom, fgl3, radius="0.3 deg", backend=backend.name).data)
    np.testing.assert_array_equal(~sky, _brute_circles(geom, chosen.positions, 0.3))
    assert abs(int((~sky).sum()) - int((~ref.data).sum())) < 50  # pixel circles vs caps near the centre


def test_whole_3fgl_on_a_plane_strip(fgl3):
    """All 3034 sources on a 40 x 5 deg Galactic-plane strip, against brute force."""
    geom = WcsGeom.create(npix=(2000, 250), binsz=0.02, frame="galactic", skydir=(0, 0))
    mask = to_host(exclusion_mask(geom, fgl3, radius="0.3 deg").data)
    sel = touching(geom, fgl3, radius="0.3 deg")
    assert 50 < sel.sum() < 400
    np.testing.assert_array_equal(~mask, _brute_circles(geom, fgl3.positions[sel], 0.3))
    # sources not selected do not reach the map
    far = _brute_circles(geom, fgl3.positions[~sel], 0.3)
    assert not far.any()


def test_fermi_ellipses_point_along_their_position_angle(fgl3):
    """Excluded pixels of one elongated extended source lie along its PA (north
    through east), an orientation check independent of the regions package."""
    morph = fgl3.morphology
    a = np.asarray(morph["semi_major"], float)
    b = np.asarray(morph["semi_minor"], float)
    elongated = np.flatnonzero(np.isfinite(a) & np.isfinite(b) & (a > 1.5 * b) & (a > 0.5))
    assert len(elongated) >= 1
    for i in elongated[:3]:
        one = fgl3.select(np.arange(len(fgl3)) == i)
        pa = float(morph["position_angle"][i])
        centre = one.positions[0]
        geom = WcsGeom.create(skydir=centre, width=f"{4 * a[i]} deg", binsz=a[i] / 40, frame="icrs", proj="TAN")
        mask = ~to_host(exclusion_mask(geom, one, psf=0).data)
        lon, lat = geom.get_coord(backend="numpy")
        pts = SkyCoord(lon[mask], lat[mask], unit="deg", frame="icrs")
        sep = centre.separation(pts).deg
        assert sep.max() == pytest.approx(a[i], rel=0.03)
        far = pts[sep > 0.9 * sep.max()]
        angles = centre.position_angle(far).deg
        # the farthest pixels sit at PA or PA + 180
        d = np.abs(((angles - pa) + 90) % 180 - 90)
        assert np.median(d) < 5, (one.names[0], pa, np.median(d))
        assert sep[np.abs(((centre.position_angle(pts).deg - pa - 90) + 90) % 180 - 90) < 2].max() == pytest.approx(
            b[i], rel=0.1
        )


def test_touching_keeps_large_sources_reaching_in(backend, tmp_path):
    geom = WcsGeom.create(npix=(100, 100), binsz=0.02, frame="icrs", skydir=(10, 0))
    t = Table({"ra": [10.0, 10.0, 13.0, 40.0], "dec": [0.0, 2.5, 0.0, 0.0], "r": [0.05, 2.0, 0.1, 5.0]})
    t["r"].unit = u.deg
    path = tmp_path / "cat.ecsv"
    t.write(path)
    cat = SourceCatalog.read(path, format="table", size="r")
    keep = touching(geom, cat, psf=0)
    np.testing.assert_array_equal(keep, [True, True, False, False])
    mask = exclusion_mask(geom, cat, psf=0, backend=backend.name)
    assert (~to_host(mask.data)).sum() > 0
    # nothing in the map: an all-True mask, no error
    empty = exclusion_mask(geom, cat.select(np.zeros(len(cat), bool)), backend=backend.name)
    assert to_host(empty.data).all()


def test_catalogs_and_regions_combine(backend, fgl3, data_dir):
    geom = WcsGeom.create(npix=(400, 200), binsz=0.02, frame="galactic", skydir=(18, 0))
    hgps = SourceCatalog.read(data_dir / HGPS)
    box = "galactic;box(18.5,0.5,0.4,0.4,0)"
    both = to_host(exclusion_mask(geom, [fgl3, hgps], regions=box, backend=backend.name).data)
    parts = [
        to_host(exclusion_mask(geom, fgl3, backend=backend.name).data),
        to_host(exclusion_mask(geom, hgps, backend=backend.name).data),
        to_host(geom.region_mask(box, inside=False, backend=backend.name).data),
    ]
    np.testing.assert_array_equal(both, parts[0] & parts[1] & parts[2])
    via_geom = to_host(geom.exclusion_mask(catalog=[fgl3, hgps], regions=box, backend=backend.name).data)
    np.testing.assert_array_equal(via_geom, both)
    # the regions path (regions objects) gives the same mask as the array path
    regs = list(to_regions(fgl3.select(touching(geom, fgl3)))) + list(to_regions(hgps.select(touching(geom, hgps))))
    np.testing.assert_array_equal(to_host(geom.region_mask(regs + [box], inside=False).data), both)


def test_top_level_name():
    assert gpumask.exclusion_mask is exclusion_mask


@pytest.mark.parametrize(
    "path",
    [FGL3, "catalogs/fermi/gll_psch_v13.fit.gz", HGPS, "catalogs/gammacat/gammacat.fits.gz",
     "catalogs/2HWC.ecsv", "catalogs/3HWC.ecsv", "catalogs/1LHAASO_catalog.fits"],
)
def test_every_shared_catalog_masks_its_sources(data_dir, path, backend):
    """Default rules on an all-sky map: every source's own pixel is excluded, and
    the excluded area is the union of the regions (checked against the regions path)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GpumaskWarning)
        cat = SourceCatalog.read(data_dir / path)
        geom = WcsGeom.create(npix=(720, 360), binsz=0.5, frame="galactic", proj="CAR", skydir=(0, 0))
        mask = to_host(exclusion_mask(geom, cat, backend=backend.name).data)
        regs = to_regions(cat)
    # all-sky: every source reaches the map, except tiny regions that fall between
    # the pixel centres of two tiles (a 0.1 deg circle between 0.5 deg pixels)
    assert touching(geom, cat).mean() > 0.99
    # the pixel nearest to each source is excluded when its centre lies inside the
    # source's smaller semi-axis
    lon, lat = geom.get_coord(backend="numpy")
    pix = SkyCoord(lon.ravel(), lat.ravel(), unit="deg", frame="galactic")
    idx, sep, _ = cat.positions.galactic.match_to_catalog_sky(pix)
    shapes = source_shapes(cat)
    within = sep.deg < shapes.semi_minor * (1 - 1e-9)
    assert within.any()
    assert not mask.ravel()[idx[within]].any()
    assert (~mask).sum() > 0
    np.testing.assert_array_equal(mask, to_host(geom.region_mask(list(regs), inside=False).data))


def test_ds9_exclusions_carve_only_the_regions(backend, tmp_path):
    """A '-circle' removes pixels from the regions' own union, never from catalog
    sources, and sky and pixel methods agree when no source reaches the map."""
    geom = WcsGeom.create(npix=(100, 100), binsz=0.02, frame="icrs", skydir=(10, 0))
    t = Table({"ra": [10.4, 30.0], "dec": [0.4, 0.0], "r": [0.15, 0.1]})
    t["r"].unit = u.deg
    t.write(tmp_path / "c.ecsv")
    cat = SourceCatalog.read(tmp_path / "c.ecsv", format="table", size="r")
    regions = "icrs;circle(10,0,0.6)\nicrs;-circle(10.4,0.4,0.3)"
    kw = dict(psf=0, backend=backend.name)
    mask = to_host(exclusion_mask(geom, cat, regions=regions, **kw).data)
    src = to_host(exclusion_mask(geom, cat, **kw).data)
    reg = to_host(geom.region_mask(regions, backend=backend.name).data)
    np.testing.assert_array_equal(~mask, ~src | reg)
    assert (~src & ~reg).any()  # the source inside the hole stays excluded
    off_map = cat.select(np.array([False, True]))
    only_hole = "icrs;-circle(10.5,0.5,0.2)"
    for method in ("sky", "pixel"):
        m = to_host(exclusion_mask(geom, off_map, regions=only_hole, method=method, backend=backend.name).data)
        ref = to_host(geom.region_mask(only_hole, inside=False, method=method, backend=backend.name).data)
        np.testing.assert_array_equal(m, ref)
        empty = to_host(exclusion_mask(geom, None, regions=only_hole, method=method, backend=backend.name).data)
        np.testing.assert_array_equal(empty, ref)


def test_bad_catalog_type():
    geom = WcsGeom.create(npix=(10, 10), binsz=0.1)
    with pytest.raises(TypeError, match="SourceCatalog"):
        exclusion_mask(geom, "gll_psc_v16.fit.gz")
