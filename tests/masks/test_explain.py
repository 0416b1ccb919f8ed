"""Mask provenance (``explain=True``): labels against brute-force coverage.

The oracle of every label map is the coverage matrix: each component rasterised
alone (its own plain mask, or an independent k-d tree of pixel centres for
circles), stacked; a pixel's ``label`` must be the smallest component covering it
and ``label2`` the next, exactly.  Removing a component's input must remove
exactly the pixels it excludes alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from scipy import ndimage

import gpumask
from gpumask import WcsGeom, to_host
from gpumask.catalog import SourceCatalog
from gpumask.catalog.shapes import source_shapes
from gpumask.masks._explain import grow_provenance  # noqa: F401 - the module under test
from gpumask.masks.catalog_mask import touching
from gpumask.sky.provenance import MaskProvenance, merge_two_smallest

from .test_catalog_mask import _brute_circles

CRAB = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")
FGL3 = "catalogs/fermi/gll_psc_v16.fit.gz"
FHL3 = "catalogs/fermi/gll_psch_v13.fit.gz"
TUTORIAL_REGIONS = ["galactic;box(185,-4,1.0,0.5, 45)", "icrs;circle(83.633083, 22.0145, 0.3)"]


def _expected_pair(cover):
    """(label, label2) from a boolean coverage stack (n_components, ...): the two
    smallest covering indices (1-based), 0 for none."""
    n = cover.shape[0]
    idx = np.arange(1, n + 1).reshape((n,) + (1,) * (cover.ndim - 1))
    big = n + 10
    vals = np.where(cover, idx, big)
    s = np.sort(vals, axis=0)
    first = np.where(s[0] < big, s[0], 0)
    second = np.where(s[1] < big, s[1], 0) if n > 1 else np.zeros_like(first)
    return first, second


def _check_labels(mask, cover):
    prov = mask.provenance
    assert prov is not None and prov.n_components == cover.shape[0]
    label, label2 = to_host(prov.label), to_host(prov.label2)
    excluded = ~to_host(mask.data)
    np.testing.assert_array_equal(label > 0, excluded)  # the union of the labels is the mask
    first, second = _expected_pair(cover & excluded)
    np.testing.assert_array_equal(label, first)
    np.testing.assert_array_equal(label2, second)
    t = prov.components
    assert int(t["npix"].sum()) == int(excluded.sum())  # first labels partition the mask
    np.testing.assert_array_equal(t["npix_alone"], [(cover[k] & (cover.sum(0) == 1) & excluded).sum()
                                                    for k in range(cover.shape[0])])


@pytest.fixture
def fgl3(data_dir):
    return SourceCatalog.read(data_dir / FGL3)


def _tutorial_geom():
    return WcsGeom.create(skydir=CRAB, width="5 deg", binsz=0.02, frame="galactic")


# ----------------------------------------------------------------------------- merging


def test_merge_two_smallest_is_the_sorted_union(rng):
    a = np.sort(rng.integers(1, 9, size=(2, 4000)), axis=0)
    b = np.sort(rng.integers(1, 9, size=(2, 4000)), axis=0)
    for pair in (a, b):  # a pair holds distinct values, 0 for none, the smaller first
        pair[1] = np.where(pair[1] == pair[0], 0, pair[1])
        pair[0] = np.where(rng.random(4000) < 0.2, 0, pair[0])
        pair[1] = np.where(pair[0] == 0, 0, pair[1])
    f, s = merge_two_smallest(np, a[0], a[1], b[0], b[1])
    for i in range(4000):
        u = sorted({int(v) for v in (a[0, i], a[1, i], b[0, i], b[1, i]) if v > 0})
        assert (f[i], s[i]) == ((u + [0, 0])[0], (u + [0, 0])[1])


# ----------------------------------------------------------------------------- the tutorial field


@pytest.mark.data
def test_tutorial_field_labels_against_brute_force(backend, fgl3):
    """The seed tutorial's field: 3FGL sources with 0.3 deg circles, then its two
    regions; every pixel's pair of labels equals the brute-force coverage."""
    geom = _tutorial_geom()
    mask = gpumask.exclusion_mask(geom, fgl3, regions=TUTORIAL_REGIONS, radius="0.3 deg",
                                  backend=backend.name, explain=True)
    plain = gpumask.exclusion_mask(geom, fgl3, regions=TUTORIAL_REGIONS, radius="0.3 deg", backend=backend.name)
    np.testing.assert_array_equal(to_host(mask.data), to_host(plain.data))  # same mask, explained
    assert mask.backend.name == backend.name and mask.provenance.backend.name == backend.name
    chosen = fgl3.select(touching(geom, fgl3, radius="0.3 deg"))
    cover = [_brute_circles(geom, chosen.positions[i : i + 1], 0.3) for i in range(len(chosen))]
    cover += [~to_host(geom.region_mask(r, inside=False, backend="numpy").data) for r in TUTORIAL_REGIONS]
    _check_labels(mask, np.array(cover))
    t = mask.provenance.components
    assert list(t["kind"][: len(chosen)]) == ["catalog source"] * len(chosen)
    assert list(t["name"][: len(chosen)]) == [str(n) for n in chosen.names]
    assert all(r.startswith("fixed radius 0.3 deg") for r in t["rule"][: len(chosen)])
    assert list(t["kind"][len(chosen):]) == ["region", "region"]
    crab = mask.explain(CRAB)  # the Crab: two 3FGL sources come before the tutorial's circle
    assert len(crab) == 2 and any("J0534.5+2201" in n for n in crab["name"])
    assert crab.meta["pixel"] == (125, 125)


@pytest.mark.data
def test_removing_a_component_removes_its_alone_pixels(backend, fgl3):
    geom = _tutorial_geom()
    chosen = fgl3.select(touching(geom, fgl3, radius="0.3 deg"))
    mask = gpumask.exclusion_mask(geom, chosen, regions=TUTORIAL_REGIONS, radius="0.3 deg",
                                  backend=backend.name, explain=True)
    label, label2 = to_host(mask.provenance.label), to_host(mask.provenance.label2)
    excluded = ~to_host(mask.data)
    n = len(chosen)
    for k in range(n + len(TUTORIAL_REGIONS)):
        keep = np.ones(n, bool)
        regions = list(TUTORIAL_REGIONS)
        if k < n:
            keep[k] = False
        else:
            del regions[k - n]
        without = gpumask.exclusion_mask(geom, chosen.select(keep), regions=regions, radius="0.3 deg",
                                         backend="numpy")
        gone = excluded & to_host(without.data)
        np.testing.assert_array_equal(gone, (label == k + 1) & (label2 == 0), err_msg=f"component {k + 1}")


def test_ds9_exclusions_carve_regions_not_sources(backend):
    geom = WcsGeom.create(npix=(120, 100), binsz=0.02, frame="galactic", skydir=(10, 0))
    cat = _catalog([(10.0, 0.0), (10.5, 0.3)])
    regions = "galactic;circle(10,0,0.4)\ngalactic;-circle(10,0,0.15)\ngalactic;box(10.8,-0.3,0.4,0.3,0)"
    mask = gpumask.exclusion_mask(geom, cat, regions=regions, radius="0.2 deg", backend=backend.name, explain=True)
    plain = gpumask.exclusion_mask(geom, cat, regions=regions, radius="0.2 deg", backend=backend.name)
    np.testing.assert_array_equal(to_host(mask.data), to_host(plain.data))
    src = [_brute_circles(geom, cat.positions[i : i + 1], 0.2) for i in range(2)]
    hole = ~to_host(geom.region_mask("galactic;circle(10,0,0.15)", inside=False, backend="numpy").data)
    big = ~to_host(geom.region_mask("galactic;circle(10,0,0.4)", inside=False, backend="numpy").data) & ~hole
    box = ~to_host(geom.region_mask("galactic;box(10.8,-0.3,0.4,0.3,0)", inside=False, backend="numpy").data)
    _check_labels(mask, np.array(src + [big, box & ~hole]))
    assert mask.provenance.n_components == 4  # the -circle is no component


def _catalog(lonlat):
    from astropy.table import Table

    n = len(lonlat)
    pos = SkyCoord([p[0] for p in lonlat], [p[1] for p in lonlat], unit="deg", frame="galactic").icrs
    nan = [np.nan] * n
    morph = Table({"type": ["point"] * n, "size": nan, "semi_major": nan, "semi_minor": nan,
                   "position_angle": nan, "inner_radius": nan})
    return SourceCatalog(Table({"i": np.arange(n)}), [f"SRC {i}" for i in range(n)], pos, morph, name="pts")


def test_random_regions_and_points(backend, rng):
    """Seeded random circles, ellipses, boxes, a polygon, points and a compound
    region: labels against each region's own plain mask."""
    geom = WcsGeom.create(npix=(150, 110), binsz=0.03, frame="icrs", skydir=(120, -30), proj="TAN")
    regions = []
    for _ in range(6):
        ra, dec = 120 + rng.uniform(-1.8, 1.8), -30 + rng.uniform(-1.3, 1.3)
        kind = rng.integers(3)
        if kind == 0:
            regions.append(f"icrs;circle({ra},{dec},{rng.uniform(0.1, 0.6)})")
        elif kind == 1:
            regions.append(f"icrs;ellipse({ra},{dec},{rng.uniform(0.1, 0.5)},{rng.uniform(0.05, 0.3)},"
                           f"{rng.uniform(0, 180)})")
        else:
            regions.append(f"icrs;box({ra},{dec},{rng.uniform(0.2, 0.8)},{rng.uniform(0.1, 0.5)},{rng.uniform(0, 90)})")
    regions.append("icrs;polygon(119,-31,120,-30.2,121,-31.2)")
    regions.append(SkyCoord([120.1, 120.1, 121.0], [-30.0, -30.0, -29.5], unit="deg"))
    parsed = gpumask.parse_regions(regions)
    compound = parsed[0] | parsed[1]
    items = parsed + [compound]
    mask = geom.region_mask(items, inside=False, backend=backend.name, explain=True)
    plain = geom.region_mask(items, inside=False, backend=backend.name)
    np.testing.assert_array_equal(to_host(mask.data), to_host(plain.data))
    cover = np.array([~to_host(geom.region_mask([r], inside=False, backend="numpy").data) for r in items])
    _check_labels(mask, cover)
    kinds = set(mask.provenance.components["rule"])
    assert {"compound region", "point pixels"} <= kinds


def test_explain_needs_an_exclusion_mask():
    geom = WcsGeom.create(npix=(20, 20), binsz=0.1)
    with pytest.raises(ValueError, match="inside=False"):
        geom.region_mask("icrs;circle(0,0,0.3)", explain=True)
    plain = geom.region_mask("icrs;circle(0,0,0.3)", inside=False)
    assert plain.provenance is None  # nothing unless asked
    with pytest.raises(ValueError, match="explain=True"):
        plain.explain(SkyCoord(0, 0, unit="deg"))
    mask = geom.region_mask("icrs;circle(0,0,0.3)", inside=False, explain=True)
    with pytest.raises(ValueError, match="outside the map"):
        mask.explain(SkyCoord(40, 40, unit="deg"))
    mask.data = mask.data.copy()
    assert mask.provenance is None  # new data voids the explanation


# ----------------------------------------------------------------------------- significance


@pytest.mark.data
def test_fermi_gc_significance_blobs(backend, data_dir):
    """Fermi GC: hysteresis blobs are scipy's connected components of the mask,
    strongest peak first, named by their true peak."""
    ds = gpumask.read_dataset(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc.fits.gz", backend=backend.name) \
        if (data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc.fits.gz").exists() else None
    if ds is None:
        pytest.skip("Fermi GC dataset file not found")
    sqrt_ts = gpumask.ExcessMapEstimator("0.2 deg").run(ds)["sqrt_ts"]
    mask = gpumask.exclusion_from_significance(sqrt_ts, 5, low=3, explain=True)
    plain = gpumask.exclusion_from_significance(sqrt_ts, 5, low=3)
    np.testing.assert_array_equal(to_host(mask.data), to_host(plain.data))
    prov = mask.provenance
    excluded = ~to_host(mask.data)
    label = to_host(prov.label)
    np.testing.assert_array_equal(label > 0, excluded)
    assert not to_host(prov.label2).any()  # blobs never overlap
    ref, n = ndimage.label(excluded)
    assert n == prov.n_components > 3
    values = to_host(sqrt_ts.data)
    peaks = []
    for k in range(1, n + 1):
        blob = label == k
        assert len(np.unique(ref[blob])) == 1 and (ref == ref[blob][0]).sum() == blob.sum()  # same partition
        peaks.append(np.nanmax(values[blob]))
    assert peaks == sorted(peaks, reverse=True)
    t = prov.components
    assert all(f"peak {p:.2f} sigma" in name for p, name in zip(peaks, t["name"]))
    assert all("hysteresis" in r for r in t["rule"])


# ----------------------------------------------------------------------------- morphology and algebra


def test_erosion_rings_against_brute_force(backend):
    """binary_erode of an explained mask: old pixels keep their labels, new ones
    get the ring of the first component whose own dilation reaches them."""
    geom = WcsGeom.create(npix=(160, 120), binsz=0.02, frame="galactic", skydir=(30, 0))
    regions = ["galactic;circle(29.6,0,0.3)", "galactic;circle(30.15,0.1,0.25)", "galactic;box(30.6,-0.5,0.4,0.3,30)"]
    mask = geom.region_mask(regions, inside=False, backend=backend.name, explain=True)
    grown = gpumask.binary_erode(mask, "0.1 deg")
    plain = gpumask.binary_erode(geom.region_mask(regions, inside=False, backend=backend.name), "0.1 deg")
    np.testing.assert_array_equal(to_host(grown.data), to_host(plain.data))
    own = np.array([~to_host(geom.region_mask([r], inside=False, backend="numpy").data) for r in regions])
    dil = np.array([~to_host(gpumask.binary_erode(gpumask.Map.from_geom(geom, data=~o), "0.1 deg").data)
                    for o in own])
    prov = grown.provenance
    label, label2 = to_host(prov.label), to_host(prov.label2)
    excluded = ~to_host(grown.data)
    np.testing.assert_array_equal(label > 0, excluded)
    old = own.any(0)
    f_old, _ = _expected_pair(own)
    np.testing.assert_array_equal(label[old], f_old[old])
    t = prov.components
    ring_of = {int(i): int(p) for i, p, k in zip(t["index"], t["parent"], t["kind"]) if k == "dilation ring"}
    first, second = _expected_pair(dil)
    new = excluded & ~old
    assert new.any()
    np.testing.assert_array_equal([ring_of[v] for v in label[new]], first[new])
    np.testing.assert_array_equal([ring_of.get(v, 0) for v in label2[new]], second[new])
    # alone: covered by exactly one grown component
    np.testing.assert_array_equal(label2 == 0, ~excluded | (dil.sum(0) == 1))
    # removing a region removes exactly its and its ring's alone pixels
    for k in range(len(regions)):
        rest = [r for j, r in enumerate(regions) if j != k]
        without = gpumask.binary_erode(geom.region_mask(rest, inside=False, backend="numpy"), "0.1 deg")
        gone = excluded & to_host(without.data)
        mine = (label == k + 1) | np.isin(label, [i for i, p in ring_of.items() if p == k + 1])
        np.testing.assert_array_equal(gone, mine & (label2 == 0))


def test_union_of_masks_and_carry(backend):
    geom = WcsGeom.create(npix=(80, 60), binsz=0.05, frame="galactic", skydir=(50, 0))
    a = geom.region_mask(["galactic;circle(50,0,0.5)"], inside=False, backend=backend.name, explain=True)
    b = geom.region_mask(["galactic;circle(50.4,0.2,0.5)", "galactic;circle(49,0,0.3)"], inside=False,
                         backend=backend.name, explain=True)
    plain = geom.region_mask("galactic;circle(51,-0.5,0.4)", inside=False, backend=backend.name)
    c = a & b & plain
    prov = c.provenance
    assert prov.n_components == 4 and list(prov.components["kind"]) == ["region"] * 3 + ["mask"]
    cover = np.array([~to_host(a.data), ~to_host(geom.region_mask("galactic;circle(50.4,0.2,0.5)",
                                                                  inside=False, backend="numpy").data),
                      ~to_host(geom.region_mask("galactic;circle(49,0,0.3)", inside=False, backend="numpy").data),
                      ~to_host(plain.data)])
    _check_labels(c, cover)
    # operations that only un-exclude keep the labels of what is left
    d = gpumask.binary_dilate(c, 2)
    np.testing.assert_array_equal(to_host(d.provenance.label) > 0, ~to_host(d.data))
    e = gpumask.remove_small_regions(c, 5)
    np.testing.assert_array_equal(to_host(e.provenance.label) > 0, ~to_host(e.data))


# ----------------------------------------------------------------------------- files


def test_fits_round_trip_and_gammapy_reads_the_mask(backend, tmp_path, gammapy_maps):
    geom = WcsGeom.create(npix=(90, 70), binsz=0.04, frame="icrs", skydir=(83.6, 22.0))
    mask = gpumask.binary_erode(
        geom.region_mask(TUTORIAL_REGIONS, inside=False, backend=backend.name, explain=True), "0.1 deg")
    path = tmp_path / "mask.fits"
    mask.write(path)
    back = gpumask.read_map(path, backend=backend.name)
    assert back.is_mask and back.provenance is not None and back.provenance.backend.name == backend.name
    np.testing.assert_array_equal(to_host(back.provenance.label), to_host(mask.provenance.label))
    np.testing.assert_array_equal(to_host(back.provenance.label2), to_host(mask.provenance.label2))
    t0, t1 = mask.provenance.components, back.provenance.components
    for col in ("index", "kind", "name", "rule", "region", "parent", "npix", "npix_alone"):
        assert list(t0[col]) == list(t1[col]), col
    g = gammapy_maps.Map.read(path)
    assert g.data.dtype == bool
    np.testing.assert_array_equal(g.data, to_host(mask.data))
    # a plain mask's file has no provenance HDUs
    plain_path = tmp_path / "plain.fits"
    geom.region_mask(TUTORIAL_REGIONS, inside=False).write(plain_path)
    assert gpumask.read_map(plain_path).provenance is None


def test_provenance_repr_and_ds9(backend):
    geom = WcsGeom.create(npix=(60, 50), binsz=0.05, frame="galactic", skydir=(184.56, -5.78))
    mask = gpumask.exclusion_mask(geom, gpumask.demo_catalog(), regions="galactic;circle(184.0,-6.0,0.3)",
                                  backend=backend.name, explain=True)
    prov = mask.provenance
    text = repr(prov)
    assert "MaskProvenance" in text and "catalog source" in text
    assert "<table>" in prov._repr_html_()
    import regions

    parsed = regions.Regions.parse(prov.to_ds9(), format="ds9")
    assert len(parsed) == prov.n_components
    assert [r.meta["text"].split(": ", 1)[1] for r in parsed] == list(prov.components["name"])
    assert isinstance(prov, MaskProvenance)


@pytest.mark.data
def test_source_rules_name_the_sizes(data_dir):
    cat = SourceCatalog.read(data_dir / FHL3)
    shapes = source_shapes(cat, rules=True)
    assert len(shapes.rules) == len(cat)
    gauss = [r for r in shapes.rules if r.startswith("gauss 3 sigma")]
    assert gauss and all(r.endswith(" deg") or "x" in r for r in gauss)
    i = next(i for i, r in enumerate(shapes.rules) if r.startswith("point-like"))
    assert shapes.rules[i] == f"point-like + psf 0.1 deg (quadrature) = {shapes.semi_major[i]:.4g} deg"


@pytest.mark.parametrize("connectivity", [1, 2])
def test_threshold_blobs_and_nan_pixels(backend, rng, connectivity):
    """A plain threshold: blobs are scipy's components of sqrt_ts >= 5 (with
    ``connectivity``), strongest first; NaN pixels excluded by nan="exclude" form
    one "mask" component."""
    geom = WcsGeom.create(npix=(90, 70), binsz=0.05, frame="galactic")
    values = ndimage.gaussian_filter(rng.normal(size=(70, 90)), 2) * 25
    values[10:13, 20:25] = np.nan
    sqrt_ts = gpumask.Map.from_geom(geom, data=values, backend=backend.name)
    mask = gpumask.exclusion_from_significance(sqrt_ts, 5, nan="exclude", connectivity=connectivity, explain=True)
    prov = mask.provenance
    label = to_host(prov.label)
    excluded = ~to_host(mask.data)
    np.testing.assert_array_equal(label > 0, excluded)
    ref, n = ndimage.label(values >= 5, structure=ndimage.generate_binary_structure(2, connectivity))
    kinds = list(prov.components["kind"])
    assert kinds == ["significance blob"] * n + ["mask"]
    peaks = [values[label == k].max() for k in range(1, n + 1)]
    assert peaks == sorted(peaks, reverse=True)
    for k in range(1, n + 1):
        assert len(np.unique(ref[label == k])) == 1 and (ref == ref[label == k][0]).sum() == (label == k).sum()
    np.testing.assert_array_equal(label == n + 1, np.isnan(values))


@pytest.mark.parametrize("density", [0.01, 0.3])
def test_window_pairs_against_brute_force(backend, rng, density):
    """The two smallest labels within a disk (exclusion growth): the sparse route
    (window minimum and maximum, pairs merged only where two labels meet) and the
    dense route (pairwise window merge) against a loop over the footprint."""
    from gpumask.masks._explain import _window_pairs
    from gpumask.masks.morphology import footprint

    ny, nx = 30, 41
    a1 = np.where(rng.random((2, ny, nx)) < density, rng.integers(1, 9, (2, ny, nx)), 0).astype(np.int32)
    a2 = np.where((a1 > 0) & (rng.random((2, ny, nx)) < 0.3), a1 + rng.integers(1, 4, (2, ny, nx)), 0)
    a2 = a2.astype(np.int32)
    fp = footprint(3.2)
    g1, g2 = (to_host(v) for v in _window_pairs(backend.xp, gpumask.to_device(a1, backend),
                                                  gpumask.to_device(a2, backend), fp))
    cy, cx = np.array(fp.shape) // 2
    for p in range(2):
        for y in range(ny):
            for x in range(nx):
                ids = set()
                for dy, dx in np.argwhere(fp) - (cy, cx):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < ny and 0 <= xx < nx:
                        ids.update(int(v) for v in (a1[p, yy, xx], a2[p, yy, xx]) if v > 0)
                want = sorted(ids) + [0, 0]
                assert (g1[p, y, x], g2[p, y, x]) == (want[0], want[1]), (p, y, x)


@pytest.mark.data
def test_fermi_gc_catalog_labels_and_removal(backend, data_dir):
    """Fermi GC field, 3FHL with the default morphology rules (disks, Gaussians,
    ellipses) plus a region: labels against each source's own plain mask, and
    removing a source removes exactly the pixels it excludes alone."""
    geom = gpumask.read_map(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz").geom.to_image()
    fhl = SourceCatalog.read(data_dir / FHL3)
    chosen = fhl.select(touching(geom, fhl))
    region = "galactic;circle(0,0,0.3)"
    mask = gpumask.exclusion_mask(geom, chosen, regions=region, backend=backend.name, explain=True)
    n = len(chosen)
    assert n > 15
    cover = []
    for i in range(n):
        keep = np.zeros(n, bool)
        keep[i] = True
        cover.append(~to_host(gpumask.exclusion_mask(geom, chosen.select(keep), backend="numpy").data))
    cover.append(~to_host(geom.region_mask(region, inside=False, backend="numpy").data))
    _check_labels(mask, np.array(cover))
    label, label2 = to_host(mask.provenance.label), to_host(mask.provenance.label2)
    excluded = ~to_host(mask.data)
    t = mask.provenance.components
    assert any(r.startswith("gauss 3 sigma") or r.startswith("disk") for r in t["rule"])
    for k in np.argsort(-np.asarray(t["npix"][:n]))[:6]:  # the six largest sources
        keep = np.ones(n, bool)
        keep[k] = False
        without = gpumask.exclusion_mask(geom, chosen.select(keep), regions=region, backend="numpy")
        np.testing.assert_array_equal(excluded & to_host(without.data), (label == k + 1) & (label2 == 0))
