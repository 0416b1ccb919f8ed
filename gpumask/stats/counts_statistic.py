"""Poisson counts statistics on either backend: Cash (known background) and WStat (on/off).

The definitions are gammapy's (``gammapy.stats``), written once for numpy and cupy
arrays so that a significance map never leaves the device:

* ``cash(n, mu) = 2 (mu - n ln mu)`` with ``mu`` floored at ``1e-25``;
* ``wstat`` with the profiled background of de Naurois (2012) / XSPEC, whose
  no-signal TS is Li & Ma (1983) eq. 17;
* ``ts = max(stat_null - stat_max, 0)``, ``sqrt_ts = sign(excess) sqrt(ts)``.

Error bars and upper limits are where a map computation differs most from
gammapy's, which calls a scalar root finder once per pixel:

* Cash: closed form in the Lambert W function, as gammapy.  W is not taken from
  ``scipy.special`` (cupy has no equivalent) but solved here from
  ``u - log1p(u) = c / n_on`` by vectorised Newton steps, which is also more
  accurate than ``lambertw`` next to its branch point (large counts);
* WStat: the profile-likelihood crossing ``stat(mu) = stat_max + n_sigma^2`` in
  gammapy's brackets, solved for all pixels at once by the Illinois variant of
  regula falsi (superlinear, bracket kept).  No sign change in the bracket means
  no root, handled as gammapy does (``errn = n_on``, ``errp`` and ``ul`` NaN).

All functions take array-likes of broadcastable shapes and return float64 arrays
on the backend of their inputs.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import backend_of, get_backend, is_device_array

__all__ = [
    "TRUNCATION_VALUE",
    "cash",
    "wstat",
    "get_wstat_mu_bkg",
    "CashCountsStatistic",
    "WStatCountsStatistic",
]

TRUNCATION_VALUE = 1e-25  # gammapy's floor for the expected counts in cash()


def _backend(*arrays):
    for a in arrays:
        if is_device_array(a):
            return backend_of(a)
    return get_backend("numpy")


def _as_float(be, *arrays):
    return [be.xp.asarray(a, dtype=be.xp.float64) for a in arrays]


def cash(n_on, mu_on, truncation_value=TRUNCATION_VALUE):
    """Cash statistic ``2 (mu - n ln mu)`` per bin, ``mu`` floored at ``truncation_value``."""
    if not truncation_value > 0:
        raise ValueError(f"truncation_value must be positive, got {truncation_value!r}")
    be = _backend(n_on, mu_on)
    xp = be.xp
    n_on, mu_on = _as_float(be, n_on, mu_on)
    mu_on = xp.where(mu_on <= truncation_value, truncation_value, mu_on)
    return 2 * (mu_on - n_on * xp.log(mu_on))


def get_wstat_mu_bkg(n_on, n_off, alpha, mu_sig):
    """Profile-likelihood background ``mu_bkg`` of WStat (gammapy's formula)."""
    be = _backend(n_on, n_off, alpha, mu_sig)
    xp = be.xp
    n_on, n_off, alpha, mu_sig = _as_float(be, n_on, n_off, alpha, mu_sig)
    c = alpha * (n_on + n_off) - (1 + alpha) * mu_sig
    d = xp.sqrt(c**2 + 4 * alpha * (alpha + 1) * n_off * mu_sig)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c + d) / (2 * alpha * (alpha + 1))


def wstat(n_on, n_off, alpha, mu_sig, mu_bkg=None, extra_terms=True):
    """WStat per bin (Poisson data with Poisson background), gammapy's definition.

    ``mu_bkg`` defaults to the profile-likelihood value; ``extra_terms`` adds the
    goodness-of-fit terms that make the statistic zero for a perfect fit.
    """
    be = _backend(n_on, n_off, alpha, mu_sig, mu_bkg)
    xp = be.xp
    n_on, n_off, alpha, mu_sig = _as_float(be, n_on, n_off, alpha, mu_sig)
    if mu_bkg is None:
        mu_bkg = get_wstat_mu_bkg(n_on, n_off, alpha, mu_sig)
    else:
        (mu_bkg,) = _as_float(be, mu_bkg)
    with np.errstate(invalid="ignore", divide="ignore"):
        term1 = mu_sig + (1 + alpha) * mu_bkg
        term2 = xp.where(n_on == 0, 0.0, -n_on * xp.log(mu_sig + alpha * mu_bkg))
        term3 = xp.where(n_off == 0, 0.0, -n_off * xp.log(mu_bkg))
        stat = 2 * (term1 + term2 + term3)
        if extra_terms:
            stat = stat + 2 * (
                xp.where(n_on == 0, 0.0, -n_on * (1 - xp.log(n_on)))
                + xp.where(n_off == 0, 0.0, -n_off * (1 - xp.log(n_off)))
            )
    return stat


# ----------------------------------------------------------------------------- solvers


def _u_minus_log1p(x, xp):
    """``x - log1p(x)`` for ``x >= 0``, by its series below 0.02 (no cancellation)."""
    small = x < 0.02
    t = xp.where(small, x, 0.0)
    series = t * t * (1 / 2 - t * (1 / 3 - t * (1 / 4 - t * (1 / 5 - t * (1 / 6 - t * (1 / 7 - t / 8))))))
    return xp.where(small, series, x - xp.log1p(xp.where(small, 1.0, x)))


def _v_plus_expm1(v, xp):
    """``v + expm1(-v)`` for ``v >= 0``, by its series below 0.1."""
    small = v < 0.1
    t = xp.where(small, v, 0.0)
    series = t * t * (1 / 2 - t * (1 / 6 - t * (1 / 24 - t * (1 / 120 - t * (1 / 720 - t * (1 / 5040 - t / 40320))))))
    return xp.where(small, series, v + xp.expm1(-xp.where(small, 1.0, v)))


_NEWTON_STEPS = 4  # from the starts below, 3 steps reach 1e-15 for q in [0, 1e5]


def _solve_u_minus_log1p(q, xp, branch):
    """Solve ``u - log1p(u) = q`` (q >= 0) for the root ``u >= 0`` (branch "upper")
    or ``-1 < u <= 0`` (branch "lower"), elementwise.

    These are Lambert W in disguise: with ``z = -exp(-1 - q)``,
    ``W_{-1}(z) = -1 - u_upper`` and ``W_0(z) = -1 - u_lower``.  The lower root is
    found through ``1 + u = exp(-v)``, i.e. ``v + expm1(-v) = q`` with ``v >= 0``.
    Both functions are convex and increasing in the unknown, so Newton's method
    started at the series inverse (small q) or the asymptote (large q) converges
    monotonically after its first step.
    """
    q = xp.maximum(q, 0.0)
    s = xp.sqrt(2 * q)
    large = q > 2
    if branch == "upper":
        x = xp.where(large, q + xp.log1p(q + xp.log1p(q)), s + s * s / 3 + s**3 / 36)
        for _ in range(_NEWTON_STEPS):
            positive = x > 0
            slope = xp.where(positive, x / (1 + x), 1.0)
            x = xp.where(positive, x - (_u_minus_log1p(x, xp) - q) / slope, 0.0)
        return x
    x = xp.where(large, q + 1, s + s * s / 6 + s**3 / 72)
    for _ in range(_NEWTON_STEPS):
        positive = x > 0
        slope = xp.where(positive, -xp.expm1(-x), 1.0)
        x = xp.where(positive, x - (_v_plus_expm1(x, xp) - q) / slope, 0.0)
    return xp.expm1(-x)


def _illinois(f, a, b, be, maxiter=None, rtol=4 * np.finfo(float).eps, xtol=2e-12):
    """Roots of the vectorised ``f`` in the brackets ``[a, b]`` (arrays), NaN where
    ``f(a)`` and ``f(b)`` have the same sign or are not finite.

    Illinois regula falsi: the secant through the bracket ends, halving the
    retained end's value when the same end is kept twice, so the bracket always
    holds the root and convergence is superlinear.  The tolerances are brentq's
    defaults, as in gammapy.  On the host the loop ends when every element has
    converged (at most ``maxiter``, default 100, steps); on the device it runs
    ``maxiter`` (default 60) steps without looking (no host round trip).  Random
    WStat brackets converge within 40.  Elements not converged are NaN.
    """
    if maxiter is None:
        maxiter = 60 if be.is_gpu else 100
    xp = be.xp
    fa, fb = f(a), f(b)
    # signs, not the product, which underflows for tiny values of f
    valid = xp.isfinite(fa) & xp.isfinite(fb) & (xp.sign(fa) * xp.sign(fb) <= 0)
    a = xp.where(valid, a, 0.0)
    b = xp.where(valid, b, 0.0)
    fa = xp.where(valid, fa, -1.0)
    fb = xp.where(valid, fb, 1.0)
    # ``b`` is the latest iterate, ``a`` the retained bracket end
    side = xp.zeros(a.shape, dtype=xp.int8)
    for _ in range(maxiter):
        done = (fb == 0) | (xp.abs(b - a) <= xtol + rtol * xp.abs(b))
        if not be.is_gpu and bool(done.all()):
            break
        denom = fb - fa
        c = xp.where(denom != 0, b - fb * (b - a) / xp.where(denom != 0, denom, 1.0), 0.5 * (a + b))
        lo, hi = xp.minimum(a, b), xp.maximum(a, b)
        c = xp.where((c > lo) & (c < hi), c, 0.5 * (a + b))
        fc = f(c)
        fc = xp.where(xp.isfinite(fc), fc, fb)  # not for WStat/Cash with counts >= 0
        keep_a = xp.sign(fc) * xp.sign(fb) > 0  # root between a and c: a kept (Illinois halving)
        halve = keep_a & (side == 1)
        fa_new = xp.where(keep_a, xp.where(halve, fa / 2, fa), fb)
        a_new = xp.where(keep_a, a, b)
        side = xp.where(keep_a, xp.int8(1), xp.int8(0))
        a = xp.where(done, a, a_new)
        fa = xp.where(done, fa, fa_new)
        b = xp.where(done, b, c)
        fb = xp.where(done, fb, fc)
    done = (fb == 0) | (xp.abs(b - a) <= xtol + rtol * xp.abs(b))
    # not converged within maxiter: NaN, as gammapy's brentq failure
    return xp.where(valid & done, b, xp.nan)


# ----------------------------------------------------------------------------- classes


class _CountsStatistic:
    """Shared properties of the Cash and WStat statistics (gammapy's API)."""

    @property
    def ts(self):
        """TS of the measured excess against no excess, clipped at 0."""
        return self._xp.maximum(self.stat_null - self.stat_max, 0.0)

    @property
    def sqrt_ts(self):
        """Significance ``sign(n_sig) sqrt(ts)``."""
        return self._xp.sign(self.n_sig) * self._xp.sqrt(self.ts)

    @property
    def p_value(self):
        """One-sided p-value of the excess, ``chi2.sf(ts, 1) / 2``."""
        return 0.5 * self._be.special.erfc(self._xp.sqrt(self.ts / 2))

    def _profile_root(self, delta, lower, upper):
        """Signal where ``stat(mu) = stat_max + delta`` inside ``[lower, upper]``."""
        target = self.stat_max + delta
        return _illinois(lambda mu: self._stat_fcn(mu) - target, lower, upper, self._be)

    def compute_errn(self, n_sigma=1.0):
        """Downward excess error: ``n_sig`` minus the signal ``n_sigma`` below the best fit."""
        n_sigma = _check_n_sigma(n_sigma)
        xp = self._xp
        lower = self.n_sig - 2 * n_sigma * (self.error + 1)
        root = self._profile_root(n_sigma**2, lower, self.n_sig)
        return xp.where(xp.isnan(root), self.n_on, self.n_sig - root)

    def compute_errp(self, n_sigma=1.0):
        """Upward excess error (NaN where the bracket holds no crossing)."""
        n_sigma = _check_n_sigma(n_sigma)
        upper = self.n_sig + 2 * n_sigma * (self.error + 1)
        return self._profile_root(n_sigma**2, self.n_sig, upper) - self.n_sig

    def compute_upper_limit(self, n_sigma=3.0):
        """Upper limit on the signal at ``n_sigma`` (NaN where not bracketed)."""
        n_sigma = _check_n_sigma(n_sigma)
        upper = self.n_sig + 2 * n_sigma * (self.error + 1)
        return self._profile_root(n_sigma**2, self.n_sig, upper)


def positive_number(value, name):
    """``value`` as a finite positive float, or ValueError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return v


def _check_n_sigma(n_sigma):
    return positive_number(n_sigma, "n_sigma")


class CashCountsStatistic(_CountsStatistic):
    """Poisson counts ``n_on`` with a known background ``mu_bkg`` (gammapy's class).

    Parameters
    ----------
    n_on, mu_bkg : array-like
        Measured counts and expected background, on either backend.
    """

    def __init__(self, n_on, mu_bkg):
        self._be = _backend(n_on, mu_bkg)
        self._xp = self._be.xp
        self.n_on, self.mu_bkg = self._xp.broadcast_arrays(*_as_float(self._be, n_on, mu_bkg))

    @property
    def n_bkg(self):
        return self.mu_bkg

    @property
    def n_sig(self):
        return self.n_on - self.mu_bkg

    @property
    def error(self):
        """Symmetric error ``sqrt(n_on)``."""
        return self._xp.sqrt(self.n_on)

    @property
    def stat_null(self):
        return cash(self.n_on, self.mu_bkg)

    @property
    def stat_max(self):
        return cash(self.n_on, self.n_on)

    def _stat_fcn(self, mu):
        return cash(self.n_on, self.mu_bkg + mu)

    def _lambert_terms(self, n_sigma):
        xp = self._xp
        c = _check_n_sigma(n_sigma) ** 2 / 2
        positive = self.n_on > 0
        q = c / xp.where(positive, self.n_on, 1.0)
        return c, positive, q

    def compute_errn(self, n_sigma=1.0):
        """``n_on (W_0(-exp(-c/n_on - 1)) + 1)``, ``c = n_sigma^2 / 2``; 0 where n_on = 0."""
        xp = self._xp
        _, positive, q = self._lambert_terms(n_sigma)
        u = _solve_u_minus_log1p(q, xp, "lower")
        return xp.where(positive, -self.n_on * u, 0.0)

    def compute_errp(self, n_sigma=1.0):
        """``-n_on (W_{-1}(-exp(-c/n_on - 1)) + 1)``; ``c`` where n_on = 0."""
        xp = self._xp
        c, positive, q = self._lambert_terms(n_sigma)
        u = _solve_u_minus_log1p(q, xp, "upper")
        return xp.where(positive, self.n_on * u, c)

    def compute_upper_limit(self, n_sigma=3.0):
        """``errp + n_sig`` where n_on > 0; ``c = n_sigma^2 / 2`` where n_on = 0 (gammapy's
        convention for empty bins)."""
        xp = self._xp
        c, positive, q = self._lambert_terms(n_sigma)
        u = _solve_u_minus_log1p(q, xp, "upper")
        return xp.where(positive, self.n_on * u + self.n_sig, c)


class WStatCountsStatistic(_CountsStatistic):
    """On counts ``n_on``, off counts ``n_off`` and exposure ratio ``alpha`` (gammapy's class).

    Parameters
    ----------
    n_on, n_off, alpha : array-like
        On counts, off counts and ``alpha = acceptance_on / acceptance_off``.
    mu_sig : array-like, optional
        Expected signal counts in the on region (default 0).
    """

    def __init__(self, n_on, n_off, alpha, mu_sig=None):
        self._be = _backend(n_on, n_off, alpha, mu_sig)
        self._xp = self._be.xp
        arrays = _as_float(self._be, n_on, n_off, alpha, 0.0 if mu_sig is None else mu_sig)
        self.n_on, self.n_off, self.alpha, self.mu_sig = self._xp.broadcast_arrays(*arrays)

    @property
    def n_bkg(self):
        """Background ``alpha * n_off``."""
        return self.alpha * self.n_off

    @property
    def n_sig(self):
        return self.n_on - self.n_bkg - self.mu_sig

    @property
    def error(self):
        """Symmetric error ``sqrt(n_on + alpha^2 n_off)``."""
        return self._xp.sqrt(self.n_on + self.alpha**2 * self.n_off)

    @property
    def stat_null(self):
        return wstat(self.n_on, self.n_off, self.alpha, self.mu_sig)

    @property
    def stat_max(self):
        return wstat(self.n_on, self.n_off, self.alpha, self.n_sig + self.mu_sig)

    def _stat_fcn(self, mu):
        return wstat(self.n_on, self.n_off, self.alpha, mu + self.mu_sig)
