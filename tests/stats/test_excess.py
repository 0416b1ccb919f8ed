"""ExcessMapEstimator against gammapy 2.1's (the oracle): the seed notebook's Crab
dataset, the Galactic-centre cube and seeded random Cash and on/off datasets.

Tolerance: |sqrt_ts difference| <= 1e-5 and an identical NaN pattern.  The
measured differences are ~6e-7, from gammapy storing its convolutions as float32.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest

import gpumask
from gpumask import Map, MapAxis, WcsGeom, to_host
from gpumask.sky.datasets import MapDataset, MapDatasetOnOff
from gpumask.stats.excess import ExcessMapEstimator, ExcessMaps, excess_map

CRAB = "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits"
GC = "fermi-3fhl-gc/fermi-3fhl-gc.fits.gz"
SQRT_TS_TOL = 1e-5


@pytest.fixture(scope="module")
def gammapy_est():
    pytest.importorskip("gammapy.maps")
    from gammapy import datasets, estimators, maps

    return datasets, estimators, maps


def _gammapy_run(gammapy_est, dataset, **kwargs):
    _, estimators, _ = gammapy_est
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimators.ExcessMapEstimator(**kwargs).run(dataset)


_GAMMAPY_CACHE = {}


def _gammapy_file_result(gammapy_est, path, radius):
    key = (str(path), radius)
    if key not in _GAMMAPY_CACHE:
        datasets, _, _ = gammapy_est
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = datasets.MapDataset.read(path)
        _GAMMAPY_CACHE[key] = _gammapy_run(gammapy_est, ds, correlation_radius=f"{radius} deg")
    return _GAMMAPY_CACHE[key]


def _assert_sqrt_ts_parity(ours, theirs):
    a = to_host(ours.data)
    b = np.asarray(theirs.data)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    diff = np.nanmax(np.abs(a - b))
    assert diff <= SQRT_TS_TOL, diff
    return diff


@pytest.mark.parametrize(
    "path, radius, n_above, n_nan, peak",
    [(CRAB, 0.4, 241, 344, 151.14), (GC, 0.2, 1294, 22400, 31.05)],
)
def test_fermi_datasets_match_gammapy(backend, data_dir, gammapy_est, path, radius, n_above, n_nan, peak):
    dataset = gpumask.read_dataset(data_dir / path, backend=backend.name)
    result = ExcessMapEstimator(f"{radius} deg").run(dataset)
    sqrt_ts = result["sqrt_ts"]
    assert sqrt_ts.backend.name == backend.name
    ref = _gammapy_file_result(gammapy_est, data_dir / path, radius)
    _assert_sqrt_ts_parity(sqrt_ts, ref["sqrt_ts"])
    for name in ("npred", "npred_excess", "ts"):
        np.testing.assert_allclose(to_host(result[name].data), ref[name].data, rtol=1e-5, atol=1e-5, equal_nan=True)
    s = to_host(sqrt_ts.data)
    assert np.sum(s > 5) == n_above
    assert np.isnan(s).sum() == n_nan
    assert np.nanmax(s) == pytest.approx(peak, abs=0.01)
    assert result.geom.axes[0].nbin == 1
    np.testing.assert_allclose(result.geom.axes[0].edges.to_value("MeV"), ref.geom.axes[0].edges.to_value("MeV"))


def test_crab_errors_match_gammapy_statistic(data_dir, gammapy_est):
    from gammapy.stats import CashCountsStatistic

    dataset = gpumask.read_dataset(data_dir / CRAB)
    result = ExcessMapEstimator("0.4 deg", selection_optional="all", n_sigma=2, n_sigma_ul=3).run(dataset)
    n_on = to_host(result["npred"].data)
    ok = np.isfinite(n_on)
    ref = CashCountsStatistic(n_on[ok], to_host(result["npred_background"].data)[ok])
    np.testing.assert_allclose(to_host(result["npred_excess_err"].data)[ok], 2 * ref.error, rtol=1e-12)
    np.testing.assert_allclose(to_host(result["npred_excess_errn"].data)[ok], ref.compute_errn(2), rtol=1e-9)
    np.testing.assert_allclose(to_host(result["npred_excess_errp"].data)[ok], ref.compute_errp(2), rtol=1e-9)
    np.testing.assert_allclose(to_host(result["npred_excess_ul"].data)[ok], ref.compute_upper_limit(3), rtol=1e-9)
    assert np.isnan(to_host(result["npred_excess_ul"].data)[~ok]).all()


def test_float32_convolution_error_is_bounded(data_dir):
    dataset = gpumask.read_dataset(data_dir / GC)
    f64 = to_host(ExcessMapEstimator("0.2 deg").run(dataset)["sqrt_ts"].data)
    f32 = to_host(ExcessMapEstimator("0.2 deg", dtype=np.float32).run(dataset)["sqrt_ts"].data)
    diff = np.nanmax(np.abs(f64 - f32))
    assert 0 < diff < 1e-4  # measured 4.0e-6


# ----------------------------------------------------------------------------- random data


def _geoms(gammapy_est, nbin=3, npix=(48, 36), binsz=0.05):
    _, _, gmaps = gammapy_est
    kw = dict(npix=npix, binsz=binsz, skydir=(83.6, 22.0), frame="icrs", proj="CAR")
    ours = WcsGeom.create(axes=[MapAxis.from_energy_bounds("1 TeV", "30 TeV", nbin=nbin, name="energy")], **kw)
    theirs = gmaps.WcsGeom.create(axes=[gmaps.MapAxis.from_energy_bounds("1 TeV", "30 TeV", nbin=nbin, name="energy")], **kw)
    return ours, theirs


def _blob(shape, rng, amplitude=8.0):
    ny, nx = shape[-2:]
    y, x = np.mgrid[:ny, :nx]
    amplitude = amplitude * min(1.0, nx / 48)
    cy, cx = rng.uniform(0.3, 0.7) * ny, rng.uniform(0.3, 0.7) * nx
    return amplitude * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 18.0)


def _masks(rng, shape, kind):
    if kind == "none":
        return None, None
    safe = rng.uniform(size=shape) > 0.15
    safe[0] = True  # one bin fully safe: the OR over energy keeps most pixels
    safe[0, :, :5] = False
    safe[:, :3, :] = False  # a stripe masked in every bin: NaN there
    if kind == "safe":
        return safe, None
    fit = np.broadcast_to(rng.uniform(size=shape[1:]) > 0.1, shape).copy()
    return safe, fit


def _cash_pair(gammapy_est, seed, masks):
    gdatasets, _, gmaps = gammapy_est
    rng = np.random.default_rng(seed)
    ours, theirs = _geoms(gammapy_est)
    shape = ours.data_shape
    background = rng.uniform(0.2, 3.0, shape)
    counts = rng.poisson(background + _blob(shape, rng)).astype(np.float32)
    safe, fit = _masks(rng, shape, masks)

    def both(data):
        if data is None:
            return None, None
        return Map.from_geom(ours, data=data), gmaps.Map.from_geom(theirs, data=data)

    c, gc = both(counts)
    b, gb = both(background)
    s, gs = both(safe)
    f, gf = both(fit)
    return (
        MapDataset(c, background=b, mask_safe=s, mask_fit=f),
        gdatasets.MapDataset(counts=gc, background=gb, mask_safe=gs, mask_fit=gf),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("masks", ["none", "safe", "safe+fit"])
@pytest.mark.parametrize("edges", [None, [1, 4, 30], [2, 12]])
def test_random_cash_datasets_match_gammapy(backend, gammapy_est, seed, masks, edges):
    ours, theirs = _cash_pair(gammapy_est, seed, masks)
    energy_edges = None if edges is None else edges * u.TeV
    radius = 0.1 + 0.05 * seed
    result = ExcessMapEstimator(radius, energy_edges=energy_edges).run(ours.to_backend(backend.name))
    ref = _gammapy_run(gammapy_est, theirs, correlation_radius=f"{radius} deg", energy_edges=energy_edges)
    _assert_sqrt_ts_parity(result["sqrt_ts"], ref["sqrt_ts"])
    np.testing.assert_allclose(
        result.geom.axes[0].edges.to_value("TeV"), ref.geom.axes["energy"].edges.to_value("TeV"), rtol=1e-12
    )


def test_per_bin_groups_equal_edges_at_every_bin(gammapy_est):
    ours, _ = _cash_pair(gammapy_est, 5, "safe")
    per_bin = ExcessMapEstimator(0.15, energy_edges="bins").run(ours)
    edges = ExcessMapEstimator(0.15, energy_edges=ours.counts.geom.axes[0].edges).run(ours)
    assert per_bin.geom.axes[0].nbin == 3
    np.testing.assert_array_equal(per_bin["sqrt_ts"].data, edges["sqrt_ts"].data)


def _onoff_pair(gammapy_est, seed, npix=(48, 36)):
    gdatasets, _, gmaps = gammapy_est
    rng = np.random.default_rng(seed)
    ours, theirs = _geoms(gammapy_est, npix=npix)
    shape = ours.data_shape
    acceptance = rng.uniform(0.5, 1.5, shape)
    acceptance_off = acceptance * rng.uniform(4, 20, shape)
    acceptance_off[1, 8:12, 8:12] = 0  # no off acceptance: alpha undefined there
    counts_off = rng.poisson(acceptance_off * 0.4).astype(float)
    counts = rng.poisson(acceptance * 0.4 + _blob(shape, rng)).astype(float)
    safe, fit = _masks(rng, shape, "safe+fit")
    arrays = dict(counts=counts, counts_off=counts_off, acceptance=acceptance, acceptance_off=acceptance_off)
    ours_maps = {k: Map.from_geom(ours, data=v) for k, v in arrays.items()}
    theirs_maps = {k: gmaps.Map.from_geom(theirs, data=v) for k, v in arrays.items()}
    return (
        MapDatasetOnOff(**ours_maps, mask_safe=Map.from_geom(ours, data=safe), mask_fit=Map.from_geom(ours, data=fit)),
        gdatasets.MapDatasetOnOff(
            **theirs_maps,
            mask_safe=gmaps.Map.from_geom(theirs, data=safe),
            mask_fit=gmaps.Map.from_geom(theirs, data=fit),
        ),
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("correlate_off", [True, False])
@pytest.mark.parametrize("edges", [None, [1, 4, 30]])
def test_random_onoff_datasets_match_gammapy(backend, gammapy_est, seed, correlate_off, edges):
    ours, theirs = _onoff_pair(gammapy_est, seed)
    energy_edges = None if edges is None else edges * u.TeV
    kwargs = dict(energy_edges=energy_edges, correlate_off=correlate_off)
    result = ExcessMapEstimator("0.2 deg", selection_optional="all", **kwargs).run(ours.to_backend(backend.name))
    ref = _gammapy_run(gammapy_est, theirs, correlation_radius="0.2 deg", selection_optional=["alpha"], **kwargs)
    _assert_sqrt_ts_parity(result["sqrt_ts"], ref["sqrt_ts"])
    np.testing.assert_allclose(to_host(result["alpha"].data), ref["alpha"].data, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("correlate_off", [True, False])
def test_onoff_errors_match_gammapy(backend, gammapy_est, correlate_off):
    """gammapy finds each pixel's errors with a scalar brentq: slow, so one map each."""
    ours, theirs = _onoff_pair(gammapy_est, 2, npix=(24, 18))
    kwargs = dict(correlate_off=correlate_off, n_sigma=1.5, n_sigma_ul=2.5)
    result = ExcessMapEstimator("0.2 deg", selection_optional="all", **kwargs).run(ours.to_backend(backend.name))
    key = ("onoff-errors", correlate_off)
    if key not in _GAMMAPY_CACHE:
        _GAMMAPY_CACHE[key] = _gammapy_run(
            gammapy_est, theirs, correlation_radius="0.2 deg", selection_optional=["errn-errp", "ul"], **kwargs
        )
    ref = _GAMMAPY_CACHE[key]
    _assert_sqrt_ts_parity(result["sqrt_ts"], ref["sqrt_ts"])
    # no exposure: gammapy's norm maps are the counts-space errors; both sides
    # see float32-rounded inputs on gammapy's side only, hence 1e-5
    for ours_name, ref_name in (
        ("npred_excess_errn", "norm_errn"),
        ("npred_excess_errp", "norm_errp"),
        ("npred_excess_ul", "norm_ul"),
    ):
        a, b = to_host(result[ours_name].data), ref[ref_name].data
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=ours_name)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=ours_name)


def test_function_form_matches_estimator(backend, gammapy_est):
    ours, _ = _onoff_pair(gammapy_est, 3)
    ours = ours.to_backend(backend.name)
    via_dataset = ExcessMapEstimator("0.2 deg").run(ours)
    via_function = excess_map(
        ours.counts,
        counts_off=ours.counts_off,
        acceptance=ours.acceptance,
        acceptance_off=ours.acceptance_off,
        mask_safe=ours.mask_safe,
        mask_fit=ours.mask_fit,
        correlation_radius="0.2 deg",
    )
    np.testing.assert_array_equal(to_host(via_dataset["sqrt_ts"].data), to_host(via_function["sqrt_ts"].data))
    # alpha form: acceptance = alpha, acceptance_off = 1
    acc, acc_off = to_host(ours.acceptance.data), to_host(ours.acceptance_off.data)
    alpha = np.divide(acc, acc_off, out=np.zeros_like(acc), where=acc_off > 0)  # finite alpha
    via_alpha = excess_map(
        ours.counts, counts_off=ours.counts_off, alpha=backend.asarray(alpha), correlation_radius="0.2 deg"
    )
    via_acc = excess_map(
        ours.counts, counts_off=ours.counts_off, acceptance=ours.acceptance,
        acceptance_off=ours.acceptance_off, correlation_radius="0.2 deg",
    )
    np.testing.assert_allclose(
        to_host(via_alpha["sqrt_ts"].data), to_host(via_acc["sqrt_ts"].data), rtol=1e-9, atol=1e-9, equal_nan=True
    )
    cash_pair, _ = _cash_pair(gammapy_est, 4, "safe")
    cash_pair = cash_pair.to_backend(backend.name)
    a = excess_map(cash_pair.counts, cash_pair.background, mask_safe=cash_pair.mask_safe, correlation_radius=0.1)
    b = ExcessMapEstimator(0.1).run(cash_pair)
    np.testing.assert_array_equal(to_host(a["sqrt_ts"].data), to_host(b["sqrt_ts"].data))


def test_image_dataset_equals_one_bin_cube(backend):
    rng = np.random.default_rng(11)
    image = WcsGeom.create(npix=(40, 30), binsz=0.05, frame="galactic")
    cube = image.to_cube([MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=1, name="energy")])
    counts = rng.poisson(3, (30, 40)).astype(float)
    bkg = np.full((30, 40), 2.5)
    img = excess_map(Map.from_geom(image, data=counts, backend=backend.name), bkg, correlation_radius="0.15 deg")
    cub = excess_map(Map.from_geom(cube, data=counts[None], backend=backend.name), bkg[None], correlation_radius="0.15 deg")
    assert img.geom.is_image and img["sqrt_ts"].data.shape == (30, 40)
    np.testing.assert_array_equal(to_host(img["sqrt_ts"].data), to_host(cub["sqrt_ts"].data)[0])


def test_result_container_and_kernel(gammapy_est):
    ours, theirs = _cash_pair(gammapy_est, 0, "safe")
    est = ExcessMapEstimator("0.4 deg", selection_optional=["ul"])
    result = est.run(ours)
    assert isinstance(result, ExcessMaps)
    assert set(result) == {
        "npred", "npred_excess", "npred_background", "npred_excess_err", "ts", "sqrt_ts", "npred_excess_ul", "counts",
    }
    assert result["counts"] is result["npred"]
    assert "sqrt_ts" in repr(result) and "0.4 deg" in repr(result)
    with pytest.raises(KeyError, match="available"):
        result["flux"]
    _, estimators, _ = gammapy_est
    ref_kernel = estimators.ExcessMapEstimator("0.4 deg").estimate_kernel(theirs).data
    kernel = est.estimate_kernel(ours.counts.geom)
    np.testing.assert_array_equal(kernel, ref_kernel / ref_kernel.max())


def test_bad_input(gammapy_est):
    ours, theirs = _cash_pair(gammapy_est, 0, "none")
    # a gammapy dataset is converted at the boundary (issue 17): same maps as ours
    from_gammapy = ExcessMapEstimator().run(theirs)
    np.testing.assert_array_equal(
        gpumask.to_host(from_gammapy["sqrt_ts"].data), gpumask.to_host(ExcessMapEstimator().run(ours)["sqrt_ts"].data)
    )
    with pytest.raises(TypeError, match=r"dataset must be a gpumask or gammapy MapDataset.*got dict"):
        ExcessMapEstimator().run({"counts": ours.counts})
    with pytest.raises(ValueError, match="selection_optional"):
        ExcessMapEstimator(selection_optional=["sensitivity"])
    with pytest.raises(ValueError, match="correlation_radius"):
        ExcessMapEstimator(correlation_radius="-1 deg")
    with pytest.raises(ValueError, match="n_sigma"):
        ExcessMapEstimator(n_sigma=0)
    with pytest.raises(ValueError, match="dtype"):
        ExcessMapEstimator(dtype=np.int32)
    with pytest.raises(ValueError, match="select no bin"):
        ExcessMapEstimator(energy_edges=[100, 200] * u.TeV).run(ours)
    with pytest.raises(ValueError, match="energy_edges"):
        ExcessMapEstimator(energy_edges=[3, 1] * u.TeV).run(ours)
    with pytest.raises(ValueError, match="energy_edges"):
        ExcessMapEstimator(energy_edges=[1, 3] * u.deg).run(ours)
    with pytest.raises(ValueError, match="background"):
        ExcessMapEstimator().run(MapDataset(ours.counts))
    with pytest.raises(ValueError, match="not both"):
        excess_map(ours.counts, ours.background, counts_off=ours.counts)
    with pytest.raises(ValueError, match="alpha"):
        excess_map(ours.counts, counts_off=ours.counts)
    with pytest.raises(ValueError, match="shape"):
        excess_map(ours.counts, np.ones(5))


def test_onoff_dataset_file_from_gammapy(gammapy_est, tmp_path):
    ours, theirs = _onoff_pair(gammapy_est, 6, npix=(30, 20))
    path = tmp_path / "onoff.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.write(path)
    read = gpumask.read_dataset(path)
    assert isinstance(read, MapDatasetOnOff) and read.stat_type == "wstat"
    assert set(read.maps) == {"counts", "counts_off", "acceptance", "acceptance_off", "mask_safe", "mask_fit"}
    np.testing.assert_allclose(read.background.data, theirs.background.data, rtol=1e-12)
    _assert_sqrt_ts_parity(
        ExcessMapEstimator("0.15 deg").run(read)["sqrt_ts"],
        _gammapy_run(gammapy_est, theirs, correlation_radius="0.15 deg")["sqrt_ts"],
    )
    assert "MapDatasetOnOff" in repr(read)
    with pytest.raises(AttributeError, match="alpha"):
        read.background = read.counts


def test_cash_errors_match_gammapy_estimator(gammapy_est):
    """Without exposure gammapy's norm_* maps are the counts-space errors.  Its
    FluxMaps return norm_errn/errp/ul up to ~3e-5 away from its own
    CashCountsStatistic on the same n_on and background (which gpumask matches to
    1e-9, test_crab_errors_match_gammapy_statistic), hence 1e-4 here."""
    ours, theirs = _cash_pair(gammapy_est, 8, "safe")
    kwargs = dict(n_sigma=1.5, n_sigma_ul=2.5)
    result = ExcessMapEstimator("0.15 deg", selection_optional=["errn-errp", "ul"], **kwargs).run(ours)
    ref = _gammapy_run(gammapy_est, theirs, correlation_radius="0.15 deg", selection_optional=["errn-errp", "ul"], **kwargs)
    for ours_name, ref_name in (
        ("npred_excess_err", "norm_err"),
        ("npred_excess_errn", "norm_errn"),
        ("npred_excess_errp", "norm_errp"),
        ("npred_excess_ul", "norm_ul"),
    ):
        a, b = to_host(result[ours_name].data), ref[ref_name].data
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=ours_name)
        rtol = 1e-6 if ours_name == "npred_excess_err" else 1e-4
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-5, equal_nan=True, err_msg=ours_name)


def test_zero_off_counts_give_nan_not_fft_noise(backend, gammapy_est):
    from scipy.signal import convolve2d

    ours, theirs = _onoff_pair(gammapy_est, 1, npix=(60, 45))
    counts_off = to_host(ours.counts_off.data).copy()
    counts_off[:, 10:35, 10:45] = 0  # e.g. an excluded region in the off map
    ds = MapDatasetOnOff(
        ours.counts, counts_off=Map.from_geom(ours.counts.geom, data=counts_off),
        acceptance=ours.acceptance, acceptance_off=ours.acceptance_off,
    ).to_backend(backend.name)
    est = ExcessMapEstimator("0.1 deg")
    sqrt_ts = to_host(est.run(ds)["sqrt_ts"].data)[0]
    kernel = est.estimate_kernel(ds.counts.geom)
    exact_n_off = convolve2d(counts_off.sum(axis=0), kernel, mode="same")
    empty = exact_n_off == 0
    assert empty.sum() > 100
    assert np.isnan(sqrt_ts[empty]).all()
    assert np.isfinite(sqrt_ts[~empty]).all()
    # elsewhere gammapy agrees (its values in the empty region are FFT noise)
    gdatasets, _, gmaps = gammapy_est
    ref_ds = gdatasets.MapDatasetOnOff(
        counts=theirs.counts, counts_off=gmaps.Map.from_geom(theirs.counts.geom, data=counts_off),
        acceptance=theirs.acceptance, acceptance_off=theirs.acceptance_off,
    )
    ref = _gammapy_run(gammapy_est, ref_ds, correlation_radius="0.1 deg")["sqrt_ts"].data[0]
    assert np.nanmax(np.abs(sqrt_ts[~empty] - ref[~empty])) <= SQRT_TS_TOL


def test_energy_groups_are_whole_bins():
    """gammapy's resample_axis re-digitizes float edges and, for this axis, moves
    bin 10 into the second group; gpumask groups the bins the edges select."""
    axis = MapAxis.from_energy_bounds("0.3 TeV", "9 TeV", nbin=20, name="energy")
    geom = WcsGeom.create(npix=(4, 3), binsz=0.1, axes=[axis])
    from gpumask.stats.excess import _energy_groups

    groups, out = _energy_groups(geom, axis.edges[[0, 11, 20]])
    assert groups == [(0, 11), (11, 20)]
    np.testing.assert_allclose(out.axes[0].edges.value, axis.edges[[0, 11, 20]].value)
    counts = Map.from_geom(geom, data=np.broadcast_to(2.0 ** np.arange(20)[:, None, None], geom.data_shape).copy())
    res = excess_map(counts, 1.0, correlation_radius=0.05, energy_edges=axis.edges[[0, 11, 20]])
    np.testing.assert_array_equal(to_host(res["npred"].data)[:, 1, 1], [2.0**11 - 1, 2.0**20 - 2.0**11])


def test_scalar_inputs_and_nan_in_unsafe_bins(backend):
    geom = WcsGeom.create(npix=(20, 16), binsz=0.05, axes=[MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2, name="energy")])
    rng = np.random.default_rng(2)
    counts = rng.poisson(4, geom.data_shape).astype(float)
    counts[1, 3, 3] = np.nan  # in a bin outside mask_safe: must not spread
    safe = np.ones(geom.data_shape, bool)
    safe[1] = False
    c = Map.from_geom(geom, data=counts, backend=backend.name)
    s = Map.from_geom(geom, data=safe, backend=backend.name)
    for background in (3.0, np.float64(3.0), np.array(3.0), np.float32(3.0)):
        res = excess_map(c, background, mask_safe=s, correlation_radius=0.1)
        assert np.isfinite(to_host(res["sqrt_ts"].data)).all()
    for alpha in (0.2, np.float64(0.2), backend.asarray(np.array(0.2))):
        res = excess_map(c, counts_off=c * 5, alpha=alpha, mask_safe=s, correlation_radius=0.1)
        assert res["sqrt_ts"].data.shape == (1, 16, 20)
        assert np.isfinite(to_host(res["sqrt_ts"].data)).all()


def test_run_many_equals_run(backend, rng):
    """Datasets of equal shape share one batched FFT; results equal run() on each
    (Cash and on/off, with and without masks; a different shape on its own)."""
    geom = gpumask.WcsGeom.create(npix=(40, 30), binsz=0.05)
    other = gpumask.WcsGeom.create(npix=(25, 25), binsz=0.05)

    def cash(g, seed, masked=False):
        r = np.random.default_rng(seed)
        bkg = r.uniform(1, 3, g.data_shape)
        counts = r.poisson(bkg + 5 * (r.random(g.data_shape) > 0.98))
        ms = None
        if masked:
            ms = gpumask.Map.from_geom(g, data=r.random(g.data_shape) > 0.1, backend=backend)
        return gpumask.MapDataset(gpumask.Map.from_geom(g, data=counts.astype(float), backend=backend),
                                  background=gpumask.Map.from_geom(g, data=bkg, backend=backend), mask_safe=ms)

    def onoff(g, seed):
        r = np.random.default_rng(seed)
        m = lambda a: gpumask.Map.from_geom(g, data=a, backend=backend)  # noqa: E731
        return gpumask.MapDatasetOnOff(
            m(r.poisson(4, g.data_shape).astype(float)), counts_off=m(r.poisson(20, g.data_shape).astype(float)),
            acceptance=m(np.ones(g.data_shape)), acceptance_off=m(np.full(g.data_shape, 5.0)))

    datasets = [cash(geom, 1), cash(geom, 2, masked=True), onoff(geom, 3), cash(other, 4), cash(geom, 5)]
    est = gpumask.ExcessMapEstimator("0.15 deg", selection_optional="all")
    many = est.run_many(datasets)
    batched = est.run_many(datasets, max_batch_bytes=1)  # one dataset per FFT
    for ds, res, res1 in zip(datasets, many, batched):
        single = est.run(ds)
        assert set(res) == set(single)
        for key in single:
            a, b, c = (gpumask.to_host(x[key].data) for x in (res, single, res1))
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-12, equal_nan=True, err_msg=key)
            np.testing.assert_allclose(c, b, rtol=1e-13, atol=1e-12, equal_nan=True, err_msg=key)
