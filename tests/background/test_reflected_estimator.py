"""ReflectedRegionsBackgroundEstimator: counts against brute-force angular separations,
numbers against gammapy 2.1's ReflectedRegionsBackgroundMaker and WStatCountsStatistic."""

from __future__ import annotations

import importlib.util
import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from regions import CircleSkyRegion

import gpumask
from gpumask import GpumaskWarning, Map, MapAxis, WcsGeom
from gpumask.background.reflected_estimator import ReflectedRegionsBackgroundEstimator
from gpumask.stats import WStatCountsStatistic

HAVE_FINDER = importlib.util.find_spec("gpumask.background.reflected") is not None


class StubFinder:
    """``n`` circles rotated about the pointing at equal steps; pairs in ``skip`` get none."""

    def __init__(self, n=5, skip=()):
        self.n = n
        self.skip = set(skip)
        self.calls = []

    def run_many(self, regions, centers, exclusion_mask=None):
        self.calls.append((len(regions), exclusion_mask))
        out = []
        for k, (region, center) in enumerate(zip(regions, centers)):
            if k in self.skip:
                out.append([])
                continue
            pa0 = center.position_angle(region.center)
            sep = center.separation(region.center)
            step = 2 * math.pi / (self.n + 2) * u.rad
            centres = [center.directional_offset_by(pa0 + (i + 1) * step, sep) for i in range(self.n)]
            out.append([CircleSkyRegion(c, region.radius) for c in centres])
        return out

    def __repr__(self):
        return f"StubFinder(n={self.n})"


def simulate(rng, pointing, n_bkg=20000, source=None, n_src=400, sigma=0.1, fov=2.5):
    """Seeded events: uniform background in a disk around ``pointing`` + a Gaussian source."""
    bkg = pointing.directional_offset_by(rng.uniform(0, 360, n_bkg) * u.deg,
                                         np.sqrt(rng.uniform(0, 1, n_bkg)) * fov * u.deg)
    coords = [bkg]
    if source is not None:
        r = sigma * np.sqrt(-2 * np.log(rng.uniform(size=n_src)))
        coords.append(source.directional_offset_by(rng.uniform(0, 360, n_src) * u.deg, r * u.deg))
    ra = np.concatenate([c.ra.deg for c in coords])
    dec = np.concatenate([c.dec.deg for c in coords])
    energy = 10 ** rng.uniform(-1, 1, len(ra))
    return Table({"RA": ra * u.deg, "DEC": dec * u.deg, "ENERGY": energy * u.TeV})


def brute(table, region, axis=None):
    """Counts (per energy bin) of events within the circle's angular radius."""
    coords = SkyCoord(table["RA"], table["DEC"], unit="deg")
    inside = coords.separation(region.center).deg <= region.radius.to_value(u.deg)
    if axis is None:
        return np.array([np.count_nonzero(inside)])
    edges = axis.edges.to_value(u.TeV)
    e = u.Quantity(table["ENERGY"]).to_value(u.TeV)[inside]
    return np.histogram(e[(e >= edges[0]) & (e < edges[-1])], bins=edges)[0]


def test_counts_match_brute_force(rng):
    pointings = [SkyCoord(83.63, 22.51, unit="deg"), SkyCoord(359.8, -1.0, unit="deg"),
                 SkyCoord(40.0, 88.9, unit="deg")]
    obs = []
    for k, p in enumerate(pointings):
        t = simulate(rng, p, n_bkg=8000, source=p.directional_offset_by(0 * u.deg, 0.5 * u.deg))
        t.meta["OBS_ID"] = 100 + k
        obs.append((t, p))
    targets = {}
    for k, p in enumerate(pointings):  # targets of every pointing, offsets 0.3-1 deg from each other
        targets[f"src{k}"] = CircleSkyRegion(p.directional_offset_by(0 * u.deg, 0.5 * u.deg), 0.15 * u.deg)
    axis = MapAxis.from_energy_bounds(0.1, 10, 3, unit="TeV")
    finder = StubFinder(n=4)
    est = ReflectedRegionsBackgroundEstimator(region_finder=finder)
    table = est.run_many(obs, targets, energy_axis=axis)
    assert len(finder.calls) == 1 and finder.calls[0][0] == 9  # one finder call for all pairs
    assert len(table) == 3 * 3 * 3
    offs = finder.run_many([r for _ in pointings for r in targets.values()],
                           SkyCoord([p for p in pointings for _ in targets]))
    rows = iter(table)
    for i, (t, _) in enumerate(obs):
        for j, (name, region) in enumerate(targets.items()):
            on = brute(t, region, axis)
            off = sum(brute(t, r, axis) for r in offs[i * 3 + j])
            for b in range(3):
                row = next(rows)
                key = (row["obs_index"], row["obs_id"], row["target_index"], row["target"])
                assert key == (i, 100 + i, j, name)
                assert row["counts"] == on[b] and row["counts_off"] == off[b]
                assert row["n_off_regions"] == 4 and row["acceptance_off"] == 4 and row["alpha"] == 0.25
                np.testing.assert_allclose(row["energy_min"], axis.edges[b].value, rtol=1e-12)
    # sqrt_ts is gpumask's WStat of the table's own numbers
    stat = WStatCountsStatistic(table["counts"], table["counts_off"], table["alpha"])
    np.testing.assert_allclose(table["sqrt_ts"], stat.sqrt_ts, rtol=1e-12)
    np.testing.assert_allclose(table["excess"], table["counts"] - table["alpha"] * table["counts_off"])


@pytest.mark.gammapy
def test_wstat_matches_gammapy(rng):
    gstats = pytest.importorskip("gammapy.stats")
    n_on = rng.poisson(rng.uniform(0, 200, 500)).astype(float)
    n_off = rng.poisson(rng.uniform(0, 2000, 500)).astype(float)
    alpha = rng.uniform(0.01, 1.0, 500)
    ours = WStatCountsStatistic(n_on, n_off, alpha)
    theirs = gstats.WStatCountsStatistic(n_on, n_off, alpha)
    np.testing.assert_allclose(ours.sqrt_ts, theirs.sqrt_ts, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.n_sig, theirs.n_sig, rtol=1e-10, atol=1e-10)


def _gammapy_observation(table, pointing, obs_id):
    from astropy.time import Time
    from gammapy.data import GTI, EventList, FixedPointingInfo, Observation

    ref = Time(51910.00074287037, format="mjd", scale="tt")
    t = table.copy()
    t["TIME"] = ref + np.zeros(len(t)) * u.s
    gti = GTI.create(0 * u.s, 1000 * u.s, reference_time=ref)
    return Observation(obs_id=obs_id, events=EventList(t), pointing=FixedPointingInfo(fixed_icrs=pointing),
                       gti=gti)


@pytest.mark.gammapy
@pytest.mark.parametrize("with_mask", [False, True])
def test_matches_gammapy_maker(rng, with_mask):
    pytest.importorskip("gammapy")
    from gammapy.datasets import SpectrumDataset
    from gammapy.makers import ReflectedRegionsBackgroundMaker, ReflectedRegionsFinder
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import RegionGeom
    from gammapy.maps import WcsGeom as GWcsGeom
    from gammapy.stats import WStatCountsStatistic as GWStat

    pointing = SkyCoord(83.63, 22.51, unit="deg")
    source = SkyCoord(83.63, 22.01, unit="deg")
    table = simulate(rng, pointing, n_bkg=30000, source=source, n_src=300)
    obs = _gammapy_observation(table, pointing, 7)
    axis = GMapAxis.from_energy_bounds(0.1, 10, 4, unit="TeV")
    on = CircleSkyRegion(source, 0.15 * u.deg)
    mask = None
    if with_mask:  # an excluded source that removes some reflected positions
        geom = GWcsGeom.create(skydir=pointing, width=6 * u.deg, binsz=0.02, frame="icrs")
        mask = ~geom.region_mask([CircleSkyRegion(SkyCoord(83.1, 22.6, unit="deg"), 0.3 * u.deg)])
    dataset = SpectrumDataset.create(geom=RegionGeom.create(on, axes=[axis]))
    dataset.counts.fill_events(obs.events)
    ref = ReflectedRegionsBackgroundMaker(exclusion_mask=mask).run(dataset, obs)
    # gammapy's own finder (no run_many: called once per pair) on a gammapy Observation
    est = ReflectedRegionsBackgroundEstimator(region_finder=ReflectedRegionsFinder(), exclusion_mask=mask)
    out = est.run_many([obs], {"crab": on}, energy_axis=axis)
    np.testing.assert_array_equal(out["counts"], ref.counts.data.ravel())
    np.testing.assert_array_equal(out["counts_off"], ref.counts_off.data.ravel())
    np.testing.assert_array_equal(out["acceptance_off"], ref.acceptance_off.data.ravel())
    np.testing.assert_allclose(out["alpha"], ref.alpha.data.ravel(), rtol=1e-12)
    theirs = GWStat(ref.counts.data.ravel(), ref.counts_off.data.ravel(), ref.alpha.data.ravel())
    np.testing.assert_allclose(out["sqrt_ts"], theirs.sqrt_ts, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["excess"], theirs.n_sig, rtol=1e-10, atol=1e-10)
    assert set(out["obs_id"]) == {7}
    if with_mask:
        assert out["n_off_regions"][0] < 11


@pytest.mark.skipif(not HAVE_FINDER, reason="gpumask.background.reflected is not there yet")
def test_default_finder_counts_brute_force(rng):
    from gpumask.background.reflected import ReflectedRegionsFinder

    pointing = SkyCoord(266.4, -28.9, unit="deg")
    table = simulate(rng, pointing, n_bkg=20000)
    on = CircleSkyRegion(SkyCoord(266.4, -29.6, unit="deg"), 0.11 * u.deg)
    est = ReflectedRegionsBackgroundEstimator(min_distance_input="0.2 rad")
    out = est.run(table, on, pointing)
    offs = ReflectedRegionsFinder(min_distance_input="0.2 rad").run_many([on], pointing)[0]
    assert out["n_off_regions"][0] == len(offs) > 0
    assert out["counts"][0] == brute(table, on)[0]
    assert out["counts_off"][0] == sum(brute(table, r)[0] for r in offs)


def test_no_off_region_warns(rng):
    p = SkyCoord(10.0, 10.0, unit="deg")
    table = simulate(rng, p, n_bkg=2000)
    targets = [CircleSkyRegion(p.directional_offset_by(0 * u.deg, 0.5 * u.deg), 0.1 * u.deg),
               CircleSkyRegion(p.directional_offset_by(90 * u.deg, 0.7 * u.deg), 0.1 * u.deg)]
    targets[1].meta["name"] = "lonely"
    est = ReflectedRegionsBackgroundEstimator(region_finder=StubFinder(n=3, skip={1}))
    with pytest.warns(GpumaskWarning, match=r"\(0, 'lonely'\)"):
        out = est.run(table, targets, p)
    assert list(out["target"]) == ["target_0", "lonely"]
    assert out["counts_off"][1] == 0 and out["n_off_regions"][1] == 0 and out["acceptance_off"][1] == 0
    assert np.isnan(out["alpha"][1]) and np.isnan(out["sqrt_ts"][1]) and np.isnan(out["excess"][1])
    assert out["counts"][1] == brute(table, targets[1])[0]
    assert np.isfinite(out["sqrt_ts"][0]) and out["alpha"][0] == pytest.approx(1 / 3)


def test_acceptance_map_weights_alpha(rng, backend):
    p = SkyCoord(120.0, -30.0, unit="deg")
    table = simulate(rng, p, n_bkg=3000)
    target = CircleSkyRegion(p.directional_offset_by(30 * u.deg, 0.8 * u.deg), 0.2 * u.deg)
    geom = WcsGeom.create(skydir=p, width=(5.0, 5.0), binsz=0.05, frame="icrs", proj="TAN")
    ny, nx = geom.data_shape
    data = (1.0 + rng.uniform(0, 1, (ny, nx))).astype(np.float32)
    acc = Map.from_geom(geom, data=data, backend=backend)
    finder = StubFinder(n=4)
    est = ReflectedRegionsBackgroundEstimator(region_finder=finder)
    with gpumask.count_transfers() as counter:
        out = est.run(table, target, p, acceptance=acc)
    if backend.name == "cupy":
        assert counter.calls == 1  # the stacked region sums, once
    # brute force: acceptance at pixel centres within each circle's radius
    y, x = np.mgrid[:ny, :nx]
    lon, lat = geom.pix_to_coord((x.astype(float), y.astype(float)))
    centres = SkyCoord(lon, lat, unit="deg")

    def total(region):
        inside = centres.separation(region.center).deg <= region.radius.to_value(u.deg)
        return data[inside].astype(float).sum()

    offs = finder.run_many([target], SkyCoord([p]))[0]
    expect = sum(total(r) for r in offs) / total(target)
    np.testing.assert_allclose(out["acceptance_off"][0], expect, rtol=1e-6)
    np.testing.assert_allclose(out["alpha"][0], 1 / expect, rtol=1e-6)
    assert out["acceptance"][0] == 1 and out["counts"][0] == brute(table, target)[0]


def test_inputs_event_list_columns_and_observation_objects(rng):
    p = SkyCoord(300.0, 40.0, unit="deg")
    table = simulate(rng, p, n_bkg=3000)
    target = CircleSkyRegion(p.directional_offset_by(0 * u.deg, 1.0 * u.deg), 0.2 * u.deg)
    est = ReflectedRegionsBackgroundEstimator(region_finder=StubFinder(n=5))
    ref = est.run(table, target, p)
    # lower-case names, radians, no energy column
    other = Table({"ra": table["RA"].to(u.rad), "dec": table["DEC"].to(u.rad)})

    class Obs:
        events = other
        pointing = p
        obs_id = 42

    out = est.run_many([Obs()], target)
    assert out["counts"][0] == ref["counts"][0] and out["counts_off"][0] == ref["counts_off"][0]
    assert out["obs_id"][0] == 42 and np.isnan(out["energy_min"][0])
    with pytest.raises(ValueError, match="no ENERGY column"):
        est.run(other, target, p, energy_axis=MapAxis.from_energy_bounds(1, 10, 2, unit="TeV"))
    with pytest.raises(ValueError, match="no RA column"):
        est.run(Table({"x": [1.0]}), target, p)
    with pytest.raises(TypeError, match="scalar SkyCoord"):
        est.run(table, target, (300.0, 40.0))
    with pytest.raises(TypeError, match="events must be an astropy Table"):
        est.run(np.zeros(3), target, p)
    with pytest.raises(ValueError, match="one Map \\(or None\\) per observation"):
        est.run_many([(table, p)], target, acceptance=[None, None])


@pytest.mark.gammapy
def test_gammapy_event_list(rng):
    pytest.importorskip("gammapy")
    p = SkyCoord(300.0, 40.0, unit="deg")
    table = simulate(rng, p, n_bkg=2000)
    obs = _gammapy_observation(table, p, 3)
    target = CircleSkyRegion(p.directional_offset_by(0 * u.deg, 1.0 * u.deg), 0.2 * u.deg)
    est = ReflectedRegionsBackgroundEstimator(region_finder=StubFinder(n=5))
    a = est.run(obs.events, target, p)
    b = est.run(table, target, p)
    assert a["counts"][0] == b["counts"][0] and a["counts_off"][0] == b["counts_off"][0]


def test_constructor_errors_and_repr():
    finder = StubFinder()
    with pytest.raises(ValueError, match="no finder arguments"):
        ReflectedRegionsBackgroundEstimator(region_finder=finder, binsz="0.02 deg")
    with pytest.raises(TypeError, match="region_finder must have"):
        ReflectedRegionsBackgroundEstimator(region_finder=object())
    geom = WcsGeom.create(npix=10, binsz=0.1)
    with pytest.raises(ValueError, match="boolean"):
        ReflectedRegionsBackgroundEstimator(region_finder=finder,
                                            exclusion_mask=Map.from_geom(geom, backend="numpy"))
    with pytest.raises(TypeError, match="exclusion_mask must be"):
        ReflectedRegionsBackgroundEstimator(region_finder=finder, exclusion_mask=np.ones((3, 3), bool))
    mask = Map.from_geom(geom, data=np.ones((10, 10), bool), backend="numpy")
    est = ReflectedRegionsBackgroundEstimator(region_finder=finder, exclusion_mask=mask)
    text = repr(est)
    assert text.startswith("ReflectedRegionsBackgroundEstimator\n\n")
    assert "StubFinder(n=5)" in text and "Map (10, 10)" in text
    assert "<table>" in est._repr_html_()
    # the mask reaches the finder
    p = SkyCoord(0.0, 0.0, unit="deg")
    on = CircleSkyRegion(SkyCoord(0.0, 0.5, unit="deg"), 0.1 * u.deg)
    est.run(Table({"RA": [0.0], "DEC": [0.5]}), on, p)
    assert finder.calls[-1][1] is mask
