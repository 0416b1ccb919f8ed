"""Non-finite input pixels in the kernel and ring background estimators: local, reported.

Before issue 16 one NaN or inf counts pixel made the kernel background estimator's
background NaN everywhere (its FFT sums mixed it into every pixel); the ring
estimators already left such pixels out but said nothing.

Oracle for the kernel background estimator: the algorithm of its module
docstring written out here with direct sums (``scipy.ndimage.convolve``, zero
padding; every kernel used is symmetric) and ``scipy.ndimage.binary_erosion``,
with the bad pixels left out of every sum (no counts, no background, never
usable for the background).  Exclusion masks must be identical, backgrounds
within 1e-9 relative, significances within 1e-6 (FFT round-off, amplified by
the square root where ``ts`` is near 0).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import gpumask
from gpumask import KernelBackgroundEstimator, Map, MapAxis, NonFiniteInputWarning, WcsGeom, to_host
from gpumask.background.ring import AdaptiveRingBackgroundEstimator, RingBackgroundEstimator
from gpumask.sky.datasets import MapDataset

BACKGROUND_RTOL = 1e-9
SIG_TOL = 1e-6
BAD = (17, 23)


def _host(x):
    return to_host(x.data if isinstance(x, Map) else x)


def _sky(seed, shape=(50, 60)):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(8.0, shape).astype(np.float64)
    counts[30:33, 40:43] += 60  # a source to exclude
    counts[10:12, 8:10] += 40
    return counts


def _conv(data, kernel):
    return ndimage.convolve(data, kernel, mode="constant", cval=0.0)


def _kbe_oracle(counts, k_src, k_bkg, footprint, threshold, niter_min, niter_max, background=None):
    """The kernel background estimator by direct sums, bad pixels left out."""
    valid = np.isfinite(counts)
    if background is not None:
        valid &= np.isfinite(background)
    c = np.where(valid, counts, 0.0)
    n = np.rint(_conv(c, k_src))
    w_min = 0.5 * k_bkg[k_bkg > 0].min()

    def significance(b_map):
        b = _conv(np.where(valid, b_map, 0.0), k_src)
        mu = np.maximum(b, 1e-25)
        with np.errstate(divide="ignore", invalid="ignore"):
            ts = 2 * (n * np.log(n / mu) - (n - mu))
            sig = np.sign(n - b) * np.sqrt(np.maximum(ts, 0))
        return np.where(n < 1, np.nan, sig)

    def estimate(usable, previous):
        usable = usable & valid
        num = _conv(np.where(usable, c, 0.0), k_bkg)
        den = _conv(usable.astype(float), k_bkg)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > w_min, num / den, previous)

    exclusion = np.ones(counts.shape, dtype=bool)
    if background is None:
        mean = c.sum() / max(valid.sum(), 1)
        background = estimate(exclusion, estimate(np.ones_like(exclusion), mean))
    for k in range(1, niter_max + 1):
        sig = significance(background)
        usable = (sig < threshold) | np.isnan(sig)
        new = ndimage.binary_erosion(usable, structure=footprint, border_value=1)
        background = estimate(new, background)
        stop = k >= niter_min and (new == exclusion).all()
        exclusion = new
        if stop:
            break
    return {"background": background, "exclusion": exclusion, "significance": sig, "n_iter": k}


def _disk(radius_px):
    h = int(np.floor(radius_px))
    y, x = np.mgrid[-h:h + 1, -h:h + 1]
    return (x**2 + y**2) <= radius_px**2 + 1e-9


def _compare(result, ref):
    assert result.n_iter == ref["n_iter"]
    np.testing.assert_array_equal(_host(result["exclusion"]), ref["exclusion"])
    np.testing.assert_allclose(_host(result["background"]), ref["background"], rtol=BACKGROUND_RTOL)
    sig = _host(result["significance"])
    np.testing.assert_array_equal(np.isnan(sig), np.isnan(ref["significance"]))
    np.testing.assert_allclose(sig, ref["significance"], rtol=0, atol=SIG_TOL, equal_nan=True)


# ----------------------------------------------------------------------------- kernel background


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["counts", "background", "both"])
def test_kbe_bad_pixel_matches_direct_sums(backend, value, where):
    counts = _sky(1)
    background = np.full(counts.shape, 8.0)
    images = {"counts": counts.copy(), "background": background.copy()}
    expected = {"counts": 0, "background": 0}
    if where in ("counts", "both"):
        images["counts"][BAD] = value
        expected["counts"] = 1
    if where in ("background", "both"):
        images["background"][BAD] = value
        images["background"][40, 5] = value
        expected["background"] = 2
    kbe = KernelBackgroundEstimator(np.ones((3, 3)), np.pad(np.zeros((5, 5)), 2, constant_values=1),
                                    significance_threshold=4, mask_dilation_radius=1.0)
    dev = {k: gpumask.to_device(v, backend) for k, v in images.items()}
    first = "counts" if where != "background" else "background"
    with pytest.warns(NonFiniteInputWarning, match=rf"KernelBackgroundEstimator: {first} has "
                                                   rf"{expected[first]} non-finite pixels?"):
        result = kbe.run(dev, niter_max=8)
    assert result.n_nonfinite == expected
    assert gpumask.backend.backend_of(result["background"]).name == backend.name
    k_src, k_bkg = kbe.kernels(1.0)
    ref = _kbe_oracle(images["counts"], k_src, k_bkg, _disk(1.0), 4.0, 2, 8, background=images["background"])
    _compare(result, ref)
    assert np.isfinite(_host(result["background"])).all()  # before the fix: NaN everywhere
    assert (~_host(result["exclusion"])).sum() > 0


def test_kbe_without_background_matches_direct_sums(backend):
    counts = _sky(2)
    counts[BAD] = np.nan
    counts[0, 0] = np.inf
    kbe = KernelBackgroundEstimator("0.1 deg", ("0.25 deg", "0.15 deg"), mask_dilation_radius="0.1 deg")
    geom = WcsGeom.create(npix=(60, 50), binsz=0.05, skydir=(0, 0), frame="galactic")
    with pytest.warns(NonFiniteInputWarning, match=r"counts has 2 non-finite pixels.*\(0, 0\)"):
        result = kbe.run({"counts": Map.from_geom(geom, data=gpumask.to_device(counts, backend))})
    assert result.n_nonfinite == {"counts": 2, "background": 0}
    k_src, k_bkg = kbe.kernels(0.05)
    _compare(result, _kbe_oracle(counts, k_src, k_bkg, _disk(2.0), 5.0, 2, 10))


def test_kbe_sync_false_reads_nothing_and_reports_later(backend):
    counts = _sky(3)
    counts[BAD] = np.nan
    kbe = KernelBackgroundEstimator(np.ones((3, 3)), np.pad(np.zeros((5, 5)), 2, constant_values=1))
    images = {"counts": gpumask.to_device(counts, backend)}
    with pytest.warns(NonFiniteInputWarning):
        synced = kbe.run(images)
    with gpumask.count_transfers() as counter:
        lazy = kbe.run(images, sync=False)  # no warning: that would need a read
    assert counter.calls == 0 and counter.flags == 0
    for key in ("background", "exclusion", "significance", "background_kept"):
        np.testing.assert_array_equal(_host(lazy[key]), _host(synced[key]), err_msg=key)
    with gpumask.count_transfers() as counter:
        assert lazy.n_nonfinite == {"counts": 1, "background": 0}
    assert counter.calls == 1
    assert lazy.n_nonfinite == {"counts": 1, "background": 0} and lazy.n_iter == synced.n_iter


def test_kbe_clean_inputs_cost_one_flag(backend):
    counts = _sky(4)
    kbe = KernelBackgroundEstimator(np.ones((3, 3)), np.pad(np.zeros((5, 5)), 2, constant_values=1))
    with gpumask.count_transfers() as counter:
        result = kbe.run({"counts": gpumask.to_device(counts, backend)})
    assert counter.calls == 0
    # the non-finite test, then one stopping flag per pass from niter_min (2) on and one at the stop
    assert counter.flags == 1 + result.n_iter
    assert result.n_nonfinite == {"counts": 0, "background": 0}
    # integer counts hold no NaN; run_iteration checks too
    with pytest.warns(NonFiniteInputWarning, match="background has 1"):
        bkg = np.full(counts.shape, 8.0)
        bkg[3, 3] = np.nan
        one = kbe.run_iteration({"counts": gpumask.to_device(counts.astype(np.int32), backend),
                                 "background": gpumask.to_device(bkg, backend)})
    assert one.n_nonfinite == {"counts": 0, "background": 1}


@pytest.mark.data
def test_kbe_fermi_gc_one_bad_pixel(data_dir, backend):
    """The issue's case: one NaN counts pixel turned the whole background NaN.
    Now the background is finite everywhere and the result equals the direct-sum
    oracle; the exclusion mask is the clean one (the pixel is off the sources)."""
    path = data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz"
    counts = gpumask.read_map(path, backend=backend.name)
    data = counts.to_numpy().astype(np.float64)
    kbe = KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.3 deg"))
    clean = kbe.run({"counts": counts})
    bad = data.copy()
    bad[60, 120] = np.nan
    with pytest.warns(NonFiniteInputWarning, match=r"counts has 1 non-finite pixel .*\(60, 120\)"):
        result = kbe.run({"counts": Map.from_geom(counts.geom, data=gpumask.to_device(bad, backend))})
    background = _host(result["background"])
    assert np.isfinite(background).all()
    np.testing.assert_array_equal(_host(result["exclusion"]), _host(clean["exclusion"]))
    # the background changed only where the ring (outer radius 0.6 deg = 12 px) reaches the pixel
    changed = ~np.isclose(background, _host(clean["background"]), rtol=BACKGROUND_RTOL, atol=0)
    yy, xx = np.nonzero(changed)
    assert changed.any() and np.abs(yy - 60).max() <= 12 and np.abs(xx - 120).max() <= 12
    k_src, k_bkg = kbe.kernels(0.05)
    _compare(result, _kbe_oracle(bad, k_src, k_bkg, _disk(0.4), 5.0, 2, 10))


@pytest.mark.gpu
def test_kbe_device_reads_on_the_emulated_gpu(device_reads):
    """With a bad pixel: the flags and one 2-integer read per input, no map data."""
    import cupy

    counts = _sky(5)
    counts[BAD] = np.nan
    kbe = KernelBackgroundEstimator(np.ones((3, 3)), np.pad(np.zeros((5, 5)), 2, constant_values=1))
    dev = cupy.asarray(counts)
    device_reads.clear()
    with pytest.warns(NonFiniteInputWarning):
        result = kbe.run({"counts": dev})
    sizes = sorted(r.nbytes for r in device_reads)
    assert sizes == [1] * (len(sizes) - 1) + [16]  # counts only: (count, first index)
    assert len(sizes) == 1 + 1 + result.n_iter


# ----------------------------------------------------------------------------- ring backgrounds


def _ring_dataset(backend, seed=9):
    rng = np.random.default_rng(seed)
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2, name="energy")
    geom = WcsGeom.create(npix=(40, 30), binsz=0.05, skydir=(0, 0), frame="galactic", axes=[axis])
    background = rng.uniform(0.5, 3.0, geom.data_shape)
    counts = rng.poisson(background).astype(np.float64)
    counts[1, 12, 14] = -np.inf
    background[0, 4, 6] = np.nan
    background[1, 4, 6] = np.inf
    maps = [Map.from_geom(geom, data=gpumask.to_device(a, backend)) for a in (counts, background)]
    return MapDataset(maps[0], background=maps[1], meta={"origin": "test"}), counts, background


def test_ring_reports_bad_pixels(backend):
    ds, counts, background = _ring_dataset(backend)
    est = RingBackgroundEstimator("0.1 deg", "0.1 deg")
    with pytest.warns(NonFiniteInputWarning, match=r"RingBackgroundEstimator: counts has 1 non-finite pixel "
                                                   r".*\(1, 12, 14\); background has 2 .*\(0, 4, 6\)"):
        result = est.run(ds)
    assert result.meta == {"origin": "test", "n_nonfinite": {"counts": 1, "background": 2}}
    assert ds.meta == {"origin": "test"}  # the input's meta is not changed
    # the ring sums equal those of the data with the bad pixels at 0
    zc, zb = counts.copy(), background.copy()
    for p in ((1, 12, 14), (0, 4, 6), (1, 4, 6)):
        zc[p] = zb[p] = 0
    geom = ds.counts.geom
    zeroed = MapDataset(*(Map.from_geom(geom, data=gpumask.to_device(a, backend)) for a in (zc, zb)))
    ref = est.run(zeroed)
    assert ref.meta["n_nonfinite"] == {"counts": 0, "background": 0}
    for name in ("counts_off", "acceptance_off"):
        np.testing.assert_array_equal(_host(getattr(result, name)), _host(getattr(ref, name)), err_msg=name)


def test_adaptive_ring_reports_bad_pixels(backend):
    ds, _, _ = _ring_dataset(backend)
    est = AdaptiveRingBackgroundEstimator("0.1 deg", "0.5 deg", "0.1 deg", stepsize="0.05 deg")
    with pytest.warns(NonFiniteInputWarning, match="AdaptiveRingBackgroundEstimator: counts has 1"):
        maps = est.make_maps_off(ds)
    assert np.isfinite(_host(maps["counts_off"])).all()
    with pytest.warns(NonFiniteInputWarning):
        result = est.run(ds)
    assert result.meta["n_nonfinite"] == {"counts": 1, "background": 2}
