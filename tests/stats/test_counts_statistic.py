"""Cash and WStat statistics against gammapy 2.1's gammapy.stats (the oracle) and
against their defining equations evaluated in extended precision."""

from __future__ import annotations

import numpy as np
import pytest

from gpumask import to_host
from gpumask.backend import to_device
from gpumask.stats.counts_statistic import (
    CashCountsStatistic,
    WStatCountsStatistic,
    _solve_u_minus_log1p,
    cash,
    get_wstat_mu_bkg,
    wstat,
)


@pytest.fixture
def gstats():
    return pytest.importorskip("gammapy.stats")


def _dev(backend, *arrays):
    return [to_device(np.asarray(a, dtype=float), backend) for a in arrays]


def _random_counts(seed, n=400):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0, 50, n) ** rng.uniform(0.5, 2, n)
    n_on = rng.poisson(mu * rng.uniform(0.3, 3, n)).astype(float)
    n_on[:10] = 0
    mu[10:15] = 0
    return n_on, mu


def test_reference_values(backend):
    n_on, mu = _dev(backend, [10.0], [2.0])
    assert to_host(CashCountsStatistic(n_on, mu).sqrt_ts)[0] == pytest.approx(4.0235256, abs=1e-7)
    n_on, n_off, alpha = _dev(backend, [10.0], [20.0], [0.1])
    assert to_host(WStatCountsStatistic(n_on, n_off, alpha).sqrt_ts)[0] == pytest.approx(3.68503223, abs=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_cash_and_wstat_functions_match_gammapy(backend, gstats, seed):
    from gammapy.stats import fit_statistics as gfs

    n_on, mu = _random_counts(seed)
    rng = np.random.default_rng(seed + 10)
    n_off = rng.poisson(30, n_on.size).astype(float)
    n_off[5:20] = 0
    alpha = rng.uniform(0.01, 2, n_on.size)
    mu_sig = rng.uniform(-2, 10, n_on.size)
    d = _dev(backend, n_on, mu, n_off, alpha, mu_sig)
    np.testing.assert_allclose(to_host(cash(d[0], d[1])), gfs.cash(n_on, mu), rtol=1e-14)
    with np.errstate(all="ignore"):
        ref_bkg = gfs.get_wstat_mu_bkg(n_on, n_off, alpha, mu_sig)
        ref = gfs.wstat(n_on, n_off, alpha, mu_sig)
    np.testing.assert_allclose(to_host(get_wstat_mu_bkg(d[0], d[2], d[3], d[4])), ref_bkg, rtol=1e-13, equal_nan=True)
    np.testing.assert_allclose(to_host(wstat(d[0], d[2], d[3], d[4])), ref, rtol=1e-12, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cash_statistic_matches_gammapy(backend, gstats, seed):
    n_on, mu = _random_counts(seed)
    ours = CashCountsStatistic(*_dev(backend, n_on, mu))
    ref = gstats.CashCountsStatistic(n_on, mu)
    for name in ("n_sig", "n_bkg", "error", "ts", "sqrt_ts", "p_value"):
        np.testing.assert_allclose(to_host(getattr(ours, name)), getattr(ref, name), rtol=1e-12, atol=1e-12, err_msg=name)
    # closed forms in Lambert W; scipy's lambertw is accurate to ~1e-12 for the
    # counts used here (< 5000 / n_sigma^2), which bounds the comparison
    for n_sigma in (1, 2, 5):
        np.testing.assert_allclose(to_host(ours.compute_errn(n_sigma)), ref.compute_errn(n_sigma), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(to_host(ours.compute_errp(n_sigma)), ref.compute_errp(n_sigma), rtol=1e-9)
        np.testing.assert_allclose(
            to_host(ours.compute_upper_limit(n_sigma)), ref.compute_upper_limit(n_sigma), rtol=1e-9, atol=1e-9
        )


def test_cash_errors_satisfy_profile_equation_at_large_counts(backend):
    """Where scipy's lambertw loses digits (n_on > ~1e4) the errors still solve
    cash(n, n - errn) - cash(n, n) = n_sigma^2, checked in long double."""
    n_on = np.array([1.0, 3.0, 1e2, 1e4, 1e6, 1e8, 1e10])
    mu = n_on * 0.9
    stat = CashCountsStatistic(*_dev(backend, n_on, mu))
    ld = np.longdouble
    for n_sigma in (1.0, 3.0):
        for err, sign in ((stat.compute_errn(n_sigma), -1), (stat.compute_errp(n_sigma), 1)):
            e = to_host(err).astype(ld)
            n = n_on.astype(ld)
            m = n + sign * e
            delta = 2 * (m - n * np.log(m)) - 2 * (n - n * np.log(n))
            np.testing.assert_allclose(delta.astype(float), n_sigma**2, rtol=2e-6 if n_sigma == 1 else 1e-6)
            # the relative error of e itself is what matters: delta ~ e^2 / n
            assert np.all(np.abs(delta - n_sigma**2) / n_sigma**2 < 1e-7 * np.maximum(1, np.sqrt(n_on)))


@pytest.mark.parametrize("branch, k", [("upper", -1), ("lower", 0)])
def test_lambert_solver_matches_scipy(branch, k):
    from scipy.special import lambertw

    q = np.logspace(-4, 2.5, 500)  # where scipy's lambertw is accurate
    u = _solve_u_minus_log1p(q, np, branch)
    ref = -1 - lambertw(-np.exp(-1 - q), k=k).real
    np.testing.assert_allclose(u, ref, rtol=1e-11)
    assert _solve_u_minus_log1p(np.zeros(1), np, branch)[0] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_wstat_statistic_matches_gammapy(backend, gstats, seed):
    rng = np.random.default_rng(100 + seed)
    n = 150
    n_on = rng.poisson(rng.uniform(0, 40, n)).astype(float)
    n_off = rng.poisson(rng.uniform(0, 200, n)).astype(float)
    alpha = rng.uniform(0.02, 0.5, n)
    n_on[:5] = 0
    n_off[5:10] = 0
    ours = WStatCountsStatistic(*_dev(backend, n_on, n_off, alpha))
    ref = gstats.WStatCountsStatistic(n_on, n_off, alpha)
    with np.errstate(all="ignore"):
        for name in ("n_sig", "n_bkg", "error", "ts", "sqrt_ts"):
            np.testing.assert_allclose(to_host(getattr(ours, name)), getattr(ref, name), rtol=1e-10, atol=1e-10, err_msg=name)
        for n_sigma in (1, 3):
            # gammapy: scipy brentq per element (xtol 2e-12); ours: Illinois on the array
            for method in ("compute_errn", "compute_errp", "compute_upper_limit"):
                a = to_host(getattr(ours, method)(n_sigma))
                b = getattr(ref, method)(n_sigma)
                np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=method)
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{method} {n_sigma}")


def test_wstat_with_signal_model(backend, gstats):
    rng = np.random.default_rng(7)
    n_on = rng.poisson(20, 50).astype(float)
    n_off = rng.poisson(100, 50).astype(float)
    alpha = np.full(50, 0.1)
    mu_sig = rng.uniform(0, 5, 50)
    ours = WStatCountsStatistic(*_dev(backend, n_on, n_off, alpha, mu_sig))
    ref = gstats.WStatCountsStatistic(n_on, n_off, alpha, mu_sig)
    np.testing.assert_allclose(to_host(ours.sqrt_ts), ref.sqrt_ts, rtol=1e-10, atol=1e-12)


def test_broadcasting_and_scalars():
    stat = CashCountsStatistic(np.array([[5.0], [10.0]]), 2.0)
    assert stat.sqrt_ts.shape == (2, 1)
    assert float(CashCountsStatistic(10, 2).sqrt_ts) == pytest.approx(4.0235256, abs=1e-7)


@pytest.mark.parametrize("bad", [0, -1, np.nan, "x"])
def test_bad_n_sigma(bad):
    with pytest.raises(ValueError, match="n_sigma"):
        CashCountsStatistic(np.ones(3), np.ones(3)).compute_errn(bad)


def test_bad_truncation():
    with pytest.raises(ValueError, match="truncation_value"):
        cash(1.0, 1.0, truncation_value=0)


def test_illinois_device_path_on_a_numpy_stand_in():
    """The fixed-step loop the GPU runs (no early exit) on a Backend named "cupy"
    whose array module is numpy: same roots as the host loop."""
    import gpumask
    from gpumask.stats.counts_statistic import _illinois

    fake = gpumask.Backend("cupy", np)
    assert fake.is_gpu
    rng = np.random.default_rng(9)
    n = 5000
    stat = WStatCountsStatistic(
        rng.poisson(rng.uniform(0, 60, n)).astype(float),
        rng.poisson(rng.uniform(0, 300, n)).astype(float),
        rng.uniform(0.01, 1.0, n),
    )
    target = stat.stat_max + 1.0
    lower, upper = stat.n_sig, stat.n_sig + 2 * (stat.error + 1)

    def f(mu):
        return stat._stat_fcn(mu) - target

    host = _illinois(f, lower, upper, get_backend_numpy())
    device = _illinois(f, lower, upper, fake)
    np.testing.assert_allclose(device, host, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isfinite(host).all()
    # a bracket without a sign change, and f tiny everywhere (product underflow)
    flat = _illinois(lambda x: np.full_like(x, 1e-170), np.zeros(3), np.ones(3), fake)
    assert np.isnan(flat).all()
    # too few steps: NaN rather than an unconverged value
    assert np.isnan(_illinois(f, lower, upper, fake, maxiter=2)).any()


def get_backend_numpy():
    from gpumask import get_backend

    return get_backend("numpy")
