"""KernelBackgroundEstimator: the seed's example and gammapy v0.16's unit test, an
independent scipy implementation of the seed algorithm (direct convolutions, true
iteration) on seeded random maps, the real Fermi GC map, device residency."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from astropy.convolution import Ring2DKernel, Tophat2DKernel

import gpumask
from gpumask import KernelBackgroundEstimator, KernelBackgroundResult, Map, WcsGeom
from gpumask.backend import to_host

from ..conftest import assert_on_backend


def _host(value):
    return to_host(value.data if isinstance(value, Map) else value)


# ----------------------------------------------------------------------------- the oracle


def _conv(image, kernel):
    """Zero-padded linear convolution, "same" output (direct sums; odd kernels)."""
    assert kernel.shape[0] % 2 and kernel.shape[1] % 2
    return ndi.convolve(image, kernel, mode="constant", cval=0.0)


def _cash_sqrt_ts(n_on, mu):
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = 2 * (n_on * np.log(n_on / mu) - (n_on - mu))
    return np.sign(n_on - mu) * np.sqrt(np.maximum(ts, 0))


def _seed_algorithm(counts, background, k_src, k_bkg, threshold, structure, niter_min, niter_max):
    """The seed document's loop, written out plainly (true iteration)."""
    k_src = k_src / k_src.max()
    n_on = np.rint(_conv(counts, k_src))
    exclusion = np.ones(counts.shape, bool)
    if background is None:
        background = _conv(counts, k_bkg) / _conv(np.ones(counts.shape), k_bkg)
    for n_iter in range(1, niter_max + 1):
        sig = _cash_sqrt_ts(n_on, _conv(background, k_src))
        sig[n_on < 1] = np.nan
        usable = (sig < threshold) | np.isnan(sig)
        new = ndi.binary_erosion(usable, structure, border_value=1) if structure is not None else usable
        norm = _conv(new.astype(float), k_bkg)
        assert norm.min() > 1e-6, "the plain loop divides by zero: choose a wider ring"
        background = _conv(counts * new, k_bkg) / norm
        unchanged = np.array_equal(new, exclusion)
        exclusion = new
        if unchanged and n_iter >= niter_min:
            break
    return dict(background=background, exclusion=exclusion, significance=sig, n_iter=n_iter)


def _sky(rng, shape, n_sources=6, level=5.0):
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    flux = np.full(shape, level)
    for _ in range(n_sources):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        sigma = rng.uniform(0.8, 2.5)
        flux += rng.uniform(2, 20) * np.exp(-0.5 * ((y - cy) ** 2 + (x - cx) ** 2) / sigma**2)
    return rng.poisson(flux).astype(float)


# ----------------------------------------------------------------------------- reference numbers


def test_seed_docstring_example(backend):
    """Counts 100x100 = 42 with one pixel of 1000, Tophat2DKernel(3), Ring2DKernel(4, 2)."""
    counts = np.full((100, 100), 42.0)
    counts[50][50] = 1000
    kbe = KernelBackgroundEstimator(Tophat2DKernel(3).array, Ring2DKernel(4, 2).array)
    result = kbe.run({"counts": backend.xp.asarray(counts)})
    assert isinstance(result, KernelBackgroundResult)
    excluded = ~_host(result["exclusion"])
    y, x = np.mgrid[:100, :100]
    np.testing.assert_array_equal(excluded, (y - 50) ** 2 + (x - 50) ** 2 <= 9)
    assert excluded.sum() == 29
    assert np.nanmax(_host(result["significance"])) == pytest.approx(24.685, abs=5e-4)
    np.testing.assert_allclose(_host(result["background"]), 42.0, rtol=1e-12)
    assert result.converged and result.n_iter == 2 and result.cycle == 0
    assert_on_backend(result["background"], backend)


def test_gammapy_v016_unit_test(backend):
    """gammapy 0.16's test_kernel: 11 pixels after one pass, 89 usable after run."""
    counts = np.full((10, 10), 42.0)
    counts[4][4] = 1000
    images = {"counts": backend.xp.asarray(counts), "background": backend.xp.full((10, 10), 42.0)}
    kbe = KernelBackgroundEstimator(np.ones((1, 3)), np.ones((5, 3)), significance_threshold=4,
                                    mask_dilation_radius="1 deg")
    one = kbe.run_iteration(images)
    excluded = {tuple(p) for p in np.argwhere(~_host(one["exclusion"]))}
    assert len(excluded) == 11
    assert {(4, 3), (4, 4), (4, 5), (3, 4), (5, 4)} <= excluded
    np.testing.assert_allclose(_host(one["background"]), 42.0, rtol=1e-12)
    assert one.n_iter == 1 and not one.converged
    result = kbe.run(images)
    assert _host(result["exclusion"]).sum() == 89
    np.testing.assert_allclose(_host(result["background"]), 42.0, rtol=1e-12)


# ----------------------------------------------------------------------------- vs the oracle


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("dilation", [0.0, 1.0, 2.3])
def test_matches_plain_scipy_loop(backend, seed, dilation):
    rng = np.random.default_rng(seed)
    shape = (64, 90) if seed % 2 else (71, 71)
    counts = _sky(rng, shape)
    k_src = Tophat2DKernel(2).array
    k_bkg = Ring2DKernel(6, 3).array
    structure = (Tophat2DKernel(dilation).array > 0) if dilation else None
    ref = _seed_algorithm(counts, None, k_src, k_bkg, 4.0, structure, 2, 10)
    kbe = KernelBackgroundEstimator(k_src, k_bkg, significance_threshold=4, mask_dilation_radius=dilation)
    got = kbe.run({"counts": backend.xp.asarray(counts)})
    assert got.n_iter == ref["n_iter"]
    np.testing.assert_array_equal(_host(got["exclusion"]), ref["exclusion"])
    assert (~ref["exclusion"]).sum() > 20  # the sources are found
    np.testing.assert_allclose(_host(got["background"]), ref["background"], rtol=1e-10)
    # sqrt_ts of n_on ~ mu cancels: 1e-7 absolute there
    np.testing.assert_allclose(_host(got["significance"]), ref["significance"], rtol=1e-9, atol=1e-7)


def test_true_iteration_differs_from_restarting(backend):
    """Each pass starts from the previous background (gammapy >= 0.8 restarted from
    the input, so its loop was one pass): on a broad source the first pass leaves
    the source in the ring, later passes exclude more."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[:120, :120]
    flux = 5.0 + 30.0 * np.exp(-0.5 * ((y - 60) ** 2 + (x - 60) ** 2) / 9.0**2)
    counts = rng.poisson(flux).astype(float)
    kbe = KernelBackgroundEstimator("3 deg", ("10 deg", "5 deg"), keep_record=True)
    result = kbe.run({"counts": backend.xp.asarray(counts)})
    excluded = [int((~_host(r["exclusion"])).sum()) for r in kbe.images_stack]
    error = [float(np.abs(_host(r["background"]) - 5.0).mean()) for r in kbe.images_stack]
    # measured: 414 px excluded and mean |B - 5| = 0.65 after one pass (what a
    # restarting loop returns); 1208 px and 0.25 after the 7 passes of true iteration
    assert result.converged and result.n_iter == 7
    assert excluded[1] == 414 and excluded[-1] == 1208
    assert error[1] > 2.5 * error[-1]


# ----------------------------------------------------------------------------- iteration control


@pytest.fixture
def gc_image(data_dir, backend):
    path = data_dir / "fermi-3fhl-gc"
    counts = gpumask.read_map(path / "fermi-3fhl-gc-counts.fits.gz", backend=backend.name)
    background = gpumask.read_map(path / "fermi-3fhl-gc-background.fits.gz", backend=backend.name)
    return counts, background


def test_fermi_gc_is_stable(gc_image):
    """The note's figures: 0.05 deg pixels, 0.1 deg source disk, 0.3-0.6 deg ring."""
    counts, _ = gc_image
    kbe = KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.3 deg"), keep_record=True)
    result = kbe.run({"counts": counts})
    assert result.converged and result.cycle == 0 and result.n_iter == 5
    excluded = [int((~r["exclusion"].to_numpy()).sum()) for r in kbe.images_stack]
    assert excluded == [0, 191, 213, 222, 224, 224]
    assert result["background"].geom == counts.geom
    assert not result["background_kept"].to_numpy().any()
    # a broader set-up converges too, to a larger mask
    broad = KernelBackgroundEstimator("0.2 deg", ("0.5 deg", "0.3 deg"), mask_dilation_radius="0.1 deg")
    result = broad.run({"counts": counts}, niter_max=20)
    assert result.converged and result.n_iter == 8
    assert int((~result["exclusion"].to_numpy()).sum()) == 2499


def test_fermi_gc_limit_cycle_is_reported(gc_image):
    """With a 0.15 deg disk and a 0.4-0.8 deg ring a few edge pixels flip between
    four masks for ever: the run stops at the first repeat and says so."""
    counts, _ = gc_image
    kbe = KernelBackgroundEstimator("0.15 deg", ("0.4 deg", "0.4 deg"), mask_dilation_radius="0.05 deg",
                                    keep_record=True)
    result = kbe.run({"counts": counts}, niter_max=20)
    assert not result.converged and result.cycle == 4 and result.n_iter == 8
    masks = [r["exclusion"].to_numpy() for r in kbe.images_stack]
    np.testing.assert_array_equal(masks[8], masks[4])
    assert not np.array_equal(masks[8], masks[7])


@pytest.mark.parametrize("config", [
    dict(kernel_src="0.1 deg", kernel_bkg=("0.3 deg", "0.3 deg")),
    dict(kernel_src="0.15 deg", kernel_bkg=("0.4 deg", "0.4 deg"), mask_dilation_radius="0.05 deg"),
])
@pytest.mark.parametrize("niter_min", [1, 2, 6])
def test_sync_false_gives_the_same_result(gc_image, config, niter_min):
    counts, background = gc_image
    kbe = KernelBackgroundEstimator(**config)
    for images in ({"counts": counts}, {"counts": counts, "background": background}):
        a = kbe.run(images, niter_min=niter_min, niter_max=12)
        with gpumask.count_transfers() as c:
            b = kbe.run(images, niter_min=niter_min, niter_max=12, sync=False)
        assert c.calls == 0 and c.flags == 0
        assert "not read" in repr(b)
        assert (b.n_iter, b.converged, b.cycle) == (a.n_iter, a.converged, a.cycle)
        for key in ("background", "exclusion", "significance", "background_kept"):
            np.testing.assert_array_equal(b[key].to_numpy(), a[key].to_numpy(), err_msg=key)


def test_niter_limits(backend):
    counts = np.full((30, 30), 10.0)
    counts[15, 15] = 500
    kbe = KernelBackgroundEstimator(Tophat2DKernel(2).array, Ring2DKernel(3, 2).array)
    assert kbe.run({"counts": counts}, niter_min=4).n_iter == 4
    capped = kbe.run({"counts": counts}, niter_min=1, niter_max=1)
    assert capped.n_iter == 1 and not capped.converged


def test_no_host_copy_inside_run(backend):
    """Contract: nothing leaves the device inside run() but one flag per pass, and
    host kernels (source, ring, dilation footprint) cost one upload each the first
    time a device needs them (gpumask.backend.device_constant), none after.  The
    caches are cleared first, so the counts do not depend on test order."""
    from gpumask.backend import clear_device_constants
    from gpumask.stats.convolution import clear_kernel_cache

    rng = np.random.default_rng(3)
    geom = WcsGeom.create(npix=(80, 60), binsz=0.05, skydir=(0, 0), frame="galactic")
    counts = Map.from_geom(geom, data=backend.xp.asarray(_sky(rng, (60, 80))))
    kbe = KernelBackgroundEstimator("0.1 deg", ("0.2 deg", "0.15 deg"), mask_dilation_radius="0.05 deg",
                                    keep_record=True)
    k_src, k_bkg = kbe.kernels(0.05)
    clear_kernel_cache()
    clear_device_constants()
    with gpumask.count_transfers() as first:
        result = kbe.run({"counts": counts})
    assert first.calls == 0 and first.device_calls == 0
    # one boolean per pass from niter_min on, plus one at the stop
    assert 1 <= first.flags <= result.n_iter + 1
    assert_on_backend(result["exclusion"].data, backend)
    if backend.is_gpu:
        # the two kernels and the 3 x 3 dilation footprint (float64 for the FFT
        # dilation the device uses), once each
        assert first.uploads == 3
        assert first.upload_bytes == k_src.size * 8 + k_bkg.size * 8 + 3 * 3 * 8
    else:
        assert first.uploads == 0
    # a second run, and one on another map shape (new transforms), upload nothing
    other = Map.from_geom(WcsGeom.create(npix=(50, 40), binsz=0.05), data=backend.xp.asarray(_sky(rng, (40, 50))))
    with gpumask.count_transfers() as again:
        kbe.run({"counts": counts})
        kbe.run({"counts": other})
    assert again.uploads == 0 and again.calls == 0


@pytest.mark.gpu
def test_run_reads_only_its_stopping_flags(device_reads):
    """On the emulated device every read is logged with its line: inside run()
    all of them are read_flag's one-byte reads, none of map data."""
    import cupy

    counts = cupy.asarray(_sky(np.random.default_rng(4), (60, 80)))
    kbe = KernelBackgroundEstimator(Tophat2DKernel(2).array, Ring2DKernel(4, 3).array)
    device_reads.clear()  # the reads of the setup above
    result = kbe.run({"counts": counts})
    assert device_reads, "the stopping test reads one flag per pass"
    assert all(r.nbytes == 1 and "gpumask/backend.py" in r.where for r in device_reads), device_reads
    assert len(device_reads) <= result.n_iter + 1


# ----------------------------------------------------------------------------- inputs and outputs


def test_maps_in_maps_out_and_angular_kernels(backend):
    rng = np.random.default_rng(5)
    data = _sky(rng, (50, 70))
    geom = WcsGeom.create(npix=(70, 50), binsz=0.1, skydir=(10, 0), frame="galactic")
    counts = Map.from_geom(geom, data=backend.xp.asarray(data), unit="")
    by_angle = KernelBackgroundEstimator("0.25 deg", ("0.4 deg", "0.3 deg"), mask_dilation_radius="0.1 deg")
    result = by_angle.run({"counts": counts})
    assert all(isinstance(v, Map) and v.geom == geom for v in result.values())
    k_src, k_bkg = by_angle.kernels(0.1)
    np.testing.assert_array_equal(k_src, Tophat2DKernel(2.5).array > 0)
    ring = Ring2DKernel(4, 3).array
    np.testing.assert_array_equal(k_bkg, ring / ring.max())
    by_array = KernelBackgroundEstimator(Tophat2DKernel(2.5).array, ring, mask_dilation_radius=1.0)
    ref = by_array.run({"counts": backend.xp.asarray(data)})
    assert not isinstance(ref["background"], Map)
    np.testing.assert_array_equal(result["exclusion"].to_numpy(), _host(ref["exclusion"]))
    np.testing.assert_allclose(result["background"].to_numpy(), _host(ref["background"]), rtol=1e-12)


def test_keep_record(backend):
    counts = np.full((40, 40), 20.0)
    counts[20, 20] = 900
    kbe = KernelBackgroundEstimator(Tophat2DKernel(2).array, Ring2DKernel(3, 2).array, keep_record=True)
    result = kbe.run({"counts": backend.xp.asarray(counts)})
    assert len(kbe.images_stack) == result.n_iter + 1
    first = kbe.images_stack[0]
    assert _host(first["exclusion"]).all() and np.nanmax(_host(first["significance"])) > 5
    np.testing.assert_array_equal(_host(kbe.images_stack[-1]["exclusion"]), _host(result["exclusion"]))
    kbe.run({"counts": backend.xp.asarray(counts)})
    assert len(kbe.images_stack) == result.n_iter + 1  # a new run starts a new record


def test_initial_exclusion_on_another_geometry(backend):
    """The initial mask only seeds the first background (the seed's algorithm); a Map
    on another geometry is resampled, nothing excluded outside it."""
    geom = WcsGeom.create(npix=(60, 60), binsz=0.1, skydir=(0, 0), frame="galactic")
    rng = np.random.default_rng(11)
    counts = Map.from_geom(geom, data=backend.xp.asarray(_sky(rng, (60, 60))))
    small = WcsGeom.create(npix=(20, 20), binsz=0.1, skydir=(0, 0), frame="galactic")
    mask = Map.from_geom(small, data=backend.xp.zeros((20, 20), dtype=bool))
    kbe = KernelBackgroundEstimator("0.2 deg", ("0.4 deg", "0.3 deg"), keep_record=True)
    kbe.run({"counts": counts, "exclusion": mask})
    initial = kbe.images_stack[0]["exclusion"].to_numpy()
    assert (~initial).sum() == 400 and (~initial[20:40, 20:40]).all()


def test_source_wider_than_the_ring_keeps_the_background():
    """Where the ring sees no usable pixel the previous background is kept and
    flagged; nothing turns NaN (gammapy divided 0 by 0)."""
    y, x = np.mgrid[:80, :80]
    counts = np.where((y - 40) ** 2 + (x - 40) ** 2 <= 15**2, 400.0, 10.0)
    kbe = KernelBackgroundEstimator(np.ones((3, 3)), np.ones((3, 3)))
    result = kbe.run({"counts": counts})
    kept = result["background_kept"]
    inside = (y - 40) ** 2 + (x - 40) ** 2 <= 15**2
    assert kept.sum() > 0 and inside[kept].all()
    assert np.isfinite(result["background"]).all() and np.isfinite(result["significance"]).all()
    # the ring is narrower than the source: its rim is excluded, its core is not
    # (the core's ring sees only the core); choose rings wider than the sources
    assert not result["exclusion"][40, 25] and result["exclusion"][40, 40]


def test_kernel_wider_than_the_map_falls_back_to_the_mean():
    counts = np.arange(25.0).reshape(5, 5)
    kbe = KernelBackgroundEstimator(np.ones((1, 1)), Ring2DKernel(6, 1).array)
    result = kbe.run({"counts": counts})
    assert np.isfinite(result["background"]).all()
    assert result["background_kept"].all()


def test_float32(backend):
    rng = np.random.default_rng(2)
    counts = backend.xp.asarray(_sky(rng, (64, 64)))
    k = (Tophat2DKernel(2).array, Ring2DKernel(4, 3).array)
    a = KernelBackgroundEstimator(*k).run({"counts": counts})
    b = KernelBackgroundEstimator(*k, dtype=np.float32).run({"counts": counts})
    assert b["background"].dtype == np.float32
    np.testing.assert_allclose(_host(b["background"]), _host(a["background"]), rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_src=np.ones(3), kernel_bkg=np.ones((3, 3))), "2-D"),
    (dict(kernel_src=-np.ones((3, 3)), kernel_bkg=np.ones((3, 3))), "non-negative"),
    (dict(kernel_src=np.zeros((3, 3)), kernel_bkg=np.ones((3, 3))), "all zeros"),
    (dict(kernel_src="bad", kernel_bkg=np.ones((3, 3))), "kernel_src must be an angle"),
    (dict(kernel_src="0.1 deg", kernel_bkg=("0.1 deg", "0 deg")), "width must be positive"),
    (dict(kernel_src=np.ones((3, 3)), kernel_bkg=np.ones((3, 3)), significance_threshold="5"), "finite number"),
    (dict(kernel_src=np.ones((3, 3)), kernel_bkg=np.ones((3, 3)), mask_dilation_radius=-1), "negative"),
    (dict(kernel_src=np.ones((3, 3)), kernel_bkg=np.ones((3, 3)), dtype=np.int16), "float64 or float32"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KernelBackgroundEstimator(**kwargs)


def test_bad_images():
    kbe = KernelBackgroundEstimator(np.ones((3, 3)), np.ones((5, 5)))
    counts = np.ones((10, 10))
    geom = WcsGeom.create(npix=(10, 10), binsz=0.1)
    with pytest.raises(ValueError, match="needs 'counts'"):
        kbe.run({"background": counts})
    with pytest.raises(ValueError, match="unknown images"):
        kbe.run({"counts": counts, "exclusion_mask": counts})
    with pytest.raises(ValueError, match="shape"):
        kbe.run({"counts": counts, "background": np.ones((9, 10))})
    with pytest.raises(TypeError, match="both as Maps"):
        kbe.run({"counts": counts, "background": Map.from_geom(geom, data=counts)})
    with pytest.raises(ValueError, match="2-D image"):
        axis = gpumask.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)
        kbe.run({"counts": Map.from_geom(geom.to_cube([axis]))})
    with pytest.raises(ValueError, match="niter_min"):
        kbe.run({"counts": counts}, niter_min=5, niter_max=3)
    with pytest.raises(TypeError, match="dict"):
        kbe.run(counts)


def test_significance_is_the_cash_statistic(backend):
    from gpumask.background.kernel import _Problem
    from gpumask.stats.counts_statistic import CashCountsStatistic

    rng = np.random.default_rng(4)
    counts = backend.xp.asarray(rng.poisson(3.0, (40, 50)).astype(float))
    background = backend.xp.asarray(rng.uniform(0.0, 6.0, (40, 50)))
    background[:3] = 0.0  # truncated as gammapy's cash()
    kbe = KernelBackgroundEstimator(Tophat2DKernel(2).array, Ring2DKernel(3, 2).array)
    problem = _Problem(kbe, {"counts": counts})
    got = problem.significance(background)
    b = gpumask.stats.convolution.convolve(background, problem.k_src)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = _host(CashCountsStatistic(problem.n_on, b).sqrt_ts)
    ref[_host(problem.n_on) < 1] = np.nan
    np.testing.assert_allclose(_host(got), ref, rtol=1e-9, atol=1e-6)
