"""Significance masks: thresholds and hysteresis against scikit-image and the tutorial's recipe."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

import gpumask
from gpumask import Map, WcsGeom
from gpumask.masks.significance import exclusion_from_significance


def _host(x):
    return gpumask.to_host(x.data if isinstance(x, Map) else x)


def _dev(backend, array):
    return gpumask.to_device(np.asarray(array), backend)


def test_exclusion_from_significance(backend, rng):
    filters = pytest.importorskip("skimage.filters")
    sqrt_ts = ndi.gaussian_filter(rng.normal(size=(60, 70)), 1.5) * 12
    sqrt_ts[rng.uniform(size=sqrt_ts.shape) < 0.03] = np.nan
    sqrt_ts[:5, :5] = -10.0
    sqrt_ts[1, 1], sqrt_ts[1, 2], sqrt_ts[1, 3] = 5.0, 3.0, np.nan  # exact ties
    geom = WcsGeom.create(npix=(70, 60), binsz=0.05)
    m = Map.from_geom(geom, data=_dev(backend, sqrt_ts))
    nan = np.isnan(sqrt_ts)
    with np.errstate(invalid="ignore"):
        plain = sqrt_ts < 5
    plain[nan] = True  # the tutorial's recipe
    got = exclusion_from_significance(m)
    assert isinstance(got, Map) and got.is_mask and got.geom == geom
    np.testing.assert_array_equal(got.to_numpy(), plain)
    assert not got.to_numpy()[1, 1] and got.to_numpy()[1, 2:4].all()  # >= threshold is excluded
    np.testing.assert_array_equal(exclusion_from_significance(m, 5.0, low=5.0).to_numpy(), plain)
    np.testing.assert_array_equal(exclusion_from_significance(m, nan="exclude").to_numpy(), plain & ~nan)

    hyst = exclusion_from_significance(m, 5.0, low=3.0).to_numpy()
    sk = filters.apply_hysteresis_threshold(np.nan_to_num(sqrt_ts, nan=-np.inf), 3.0, 5.0)
    sk_ties = sk.copy()
    assert not sk[1, 1:3].any()  # strict comparisons: neither tie counts for scikit-image
    sk_ties[1, 1:3] = True  # inclusive: the pixel at 5.0 seeds, the one at 3.0 joins it
    np.testing.assert_array_equal(hyst, ~sk_ties)
    assert (hyst <= plain).all() and (~hyst).sum() > (~plain).sum()
    hyst8 = exclusion_from_significance(m, 5.0, low=3.0, connectivity=2, nan="exclude").to_numpy()
    assert (hyst8 <= hyst).all() and not hyst8[nan].any()


def test_exclusion_nan_raise_copies_one_scalar(backend):
    data = np.zeros((10, 12))
    ok = _dev(backend, data)
    with gpumask.count_transfers() as counter:
        out = exclusion_from_significance(ok, nan="raise")
    assert counter.calls == 1 and bool(_host(out).all())
    data[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 NaN pixels.*nan='keep'"):
        exclusion_from_significance(_dev(backend, data), nan="raise")


def test_errors_name_the_value(backend):
    floats = backend.xp.zeros((10, 10))
    cases = [
        (lambda: exclusion_from_significance(floats, 5, low=6), ValueError, r"low \(6.0\).*threshold \(5.0\)"),
        (lambda: exclusion_from_significance(floats, nan="drop"), ValueError, "nan must be one of.*'drop'"),
        (lambda: exclusion_from_significance(floats, connectivity=0), ValueError, "connectivity"),
        (lambda: exclusion_from_significance(backend.xp.zeros((10, 10), dtype=bool)), ValueError,
         "real-valued sqrt_ts map.*bool"),
        (lambda: exclusion_from_significance(floats, float("nan")), ValueError, "threshold must not be NaN"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
