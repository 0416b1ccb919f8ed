"""Non-finite input pixels in ExcessMapEstimator stay a local problem, and are reported.

gammapy (and gpumask before issue 16) convolves ``counts * mask`` by FFT, so one
NaN or inf pixel turns every output pixel NaN (on the Fermi GC image: all 80,000
``sqrt_ts`` pixels), and ``exclusion_from_significance`` keeps NaN usable, so the
mask excluded nothing.  Now a bad pixel is left out of every sum.

Oracles:

* the same estimator on the data with the bad pixel's values set to 0 in every
  input (the documented meaning): identical maps (the FFT inputs are identical);
* brute-force direct sums (``scipy.ndimage.convolve``, zero padding) of the
  finite pixels and the Cash formula written out here: ``npred``,
  ``npred_background`` within 1e-9 of their maximum, ``sqrt_ts`` within 1e-6
  (FFT round-off, amplified by the square root where ``ts`` is near 0);
* the clean data: outside the correlation disk around the bad pixel ``sqrt_ts``
  differs by at most 1e-6 (round-off; measured 7.6e-10 on the GC image), inside
  it every pixel differs.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from scipy import ndimage

import gpumask
from gpumask import Map, MapAxis, NonFiniteInputWarning, WcsGeom, to_host
from gpumask.sky.datasets import MapDataset
from gpumask.stats.convolution import disk_kernel
from gpumask.stats.excess import ExcessMapEstimator, excess_map

GC_COUNTS = "fermi-3fhl-gc/fermi-3fhl-gc-counts.fits.gz"
GC_BACKGROUND = "fermi-3fhl-gc/fermi-3fhl-gc-background.fits.gz"
SUM_TOL = 1e-9  # of the map maximum, FFT vs direct sums
SQRT_TS_TOL = 1e-6
BAD = (20, 30)
VALUES = [np.nan, np.inf, -np.inf]


def _random_images(seed=3, shape=(50, 60)):
    rng = np.random.default_rng(seed)
    background = rng.uniform(0.5, 4.0, shape)
    counts = rng.poisson(background).astype(np.float64)
    counts[30:34, 10:14] += 25  # a source, so that the significance is not all noise
    return counts, background


def _maps(backend, counts, background, binsz=0.05):
    geom = WcsGeom.create(npix=counts.shape[::-1], binsz=binsz, skydir=(0, 0), frame="galactic")
    return (Map.from_geom(geom, data=gpumask.to_device(counts, backend)),
            Map.from_geom(geom, data=gpumask.to_device(background, backend)))


def _run(backend, counts, background, radius="0.15 deg", **kwargs):
    c, b = _maps(backend, counts, background)
    return ExcessMapEstimator(radius, **kwargs).run(MapDataset(c, background=b))


def _direct_cash(counts, background, kernel):
    """Brute force: direct disk sums of the finite pixels, Cash sqrt_ts written out."""
    good = np.isfinite(counts) & np.isfinite(background)
    n = np.rint(ndimage.convolve(np.where(good, counts, 0), kernel, mode="constant"))
    mu = ndimage.convolve(np.where(good, background, 0), kernel, mode="constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = 2 * (np.where(n > 0, n * np.log(n / np.maximum(mu, 1e-25)), 0) - (n - mu))
    return n, mu, np.sign(n - mu) * np.sqrt(np.maximum(ts, 0))


def _disk_around(shape, centre, kernel):
    """True where the (symmetric) kernel centred on a pixel reaches ``centre``."""
    out = np.zeros(shape, dtype=bool)
    out[centre] = True
    return ndimage.convolve(out.astype(float), kernel, mode="constant") > 0.5


@pytest.mark.parametrize("which", ["counts", "background"])
@pytest.mark.parametrize("value", VALUES, ids=["nan", "inf", "-inf"])
def test_one_bad_pixel_stays_local(backend, which, value):
    counts, background = _random_images()
    bad = {"counts": counts.copy(), "background": background.copy()}
    bad[which][BAD] = value
    with pytest.warns(NonFiniteInputWarning, match=rf"{which} has 1 non-finite pixel \(NaN or inf\), "
                                                   rf"the first at index \(20, 30\)"):
        result = _run(backend, bad["counts"], bad["background"])
    expected = {"counts": 0, "background": 0, which: 1}
    assert result.meta["n_nonfinite"] == expected
    assert result["sqrt_ts"].backend.name == backend.name
    sqrt_ts = to_host(result["sqrt_ts"].data)
    assert np.isfinite(sqrt_ts).all()  # before the fix: NaN in all 3000 pixels

    # oracle 1: the bad pixel set to 0 in both inputs (its meaning), bit for bit
    zeroed_c, zeroed_b = counts.copy(), background.copy()
    zeroed_c[BAD] = zeroed_b[BAD] = 0
    zeroed = _run(backend, zeroed_c, zeroed_b)
    for name in ("npred", "npred_background", "npred_excess", "npred_excess_err", "ts", "sqrt_ts"):
        np.testing.assert_array_equal(to_host(result[name].data), to_host(zeroed[name].data), err_msg=name)

    # oracle 2: brute-force direct sums of the finite pixels
    kernel = disk_kernel("0.15 deg", binsz=0.05)
    n, mu, ref = _direct_cash(bad["counts"], bad["background"], kernel)
    np.testing.assert_array_equal(to_host(result["npred"].data), n)
    np.testing.assert_allclose(to_host(result["npred_background"].data), mu, rtol=0, atol=SUM_TOL * mu.max())
    np.testing.assert_allclose(sqrt_ts, ref, rtol=0, atol=SQRT_TS_TOL)

    # the clean map: only the disk around the bad pixel changed
    clean = to_host(_run(backend, counts, background)["sqrt_ts"].data)
    near = _disk_around(counts.shape, BAD, kernel)
    changed = np.abs(sqrt_ts - clean) > SQRT_TS_TOL
    assert not changed[~near].any()
    assert changed[near].all()


def test_cube_bad_bins_inside_and_outside_mask_safe(backend):
    """A NaN in one safe energy bin drops that bin only (the pixel keeps its other
    bins and a finite value); a NaN in an unsafe bin is ignored and not counted."""
    rng = np.random.default_rng(8)
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3, name="energy")
    geom = WcsGeom.create(npix=(40, 30), binsz=0.05, skydir=(0, 0), frame="galactic", axes=[axis])
    background = rng.uniform(0.5, 3.0, geom.data_shape)
    counts = rng.poisson(background).astype(np.float32)
    safe = np.ones(geom.data_shape, dtype=bool)
    safe[2, :, :8] = False
    bad_c, bad_b = counts.copy(), background.copy()
    bad_c[1, 12, 15] = np.nan  # safe bin: left out
    bad_b[0, 20, 25] = np.inf  # safe bin: left out
    bad_c[2, 5, 3] = np.nan  # unsafe bin: ignored anyway, not reported

    def run(c, b):
        maps = [Map.from_geom(geom, data=gpumask.to_device(a, backend)) for a in (c, b, safe)]
        return ExcessMapEstimator("0.1 deg").run(MapDataset(maps[0], background=maps[1], mask_safe=maps[2]))

    with pytest.warns(NonFiniteInputWarning, match=r"counts has 1 non-finite pixel.*\(1, 12, 15\); "
                                                   r"background has 1 non-finite pixel.*\(0, 20, 25\)"):
        result = run(bad_c, bad_b)
    assert result.meta["n_nonfinite"] == {"counts": 1, "background": 1}
    zc, zb = bad_c.copy(), bad_b.copy()
    zc[1, 12, 15] = zb[1, 12, 15] = 0
    zc[0, 20, 25] = zb[0, 20, 25] = 0
    zc[2, 5, 3] = 0
    zeroed = run(zc, zb)
    got = to_host(result["sqrt_ts"].data)
    np.testing.assert_array_equal(got, to_host(zeroed["sqrt_ts"].data))
    assert np.isfinite(got).all()


def test_on_off_bad_pixels_stay_local(backend):
    rng = np.random.default_rng(12)
    counts, _ = _random_images(seed=12, shape=(40, 50))
    counts_off = rng.poisson(20.0, counts.shape).astype(float)
    alpha = np.full(counts.shape, 0.1)
    counts_off[10, 10] = np.nan
    alpha[25, 30] = np.inf
    geom = WcsGeom.create(npix=(50, 40), binsz=0.05, skydir=(0, 0), frame="galactic")

    def run(c, off, a):
        m = [Map.from_geom(geom, data=gpumask.to_device(x, backend)) for x in (c, off, a)]
        return excess_map(m[0], counts_off=m[1], alpha=m[2], correlation_radius="0.15 deg",
                          selection_optional=["alpha"])

    with pytest.warns(NonFiniteInputWarning,
                      match=r"counts_off has 1 .*\(10, 10\); acceptance has 1 .*\(25, 30\)"):
        result = run(counts, counts_off, alpha)
    assert result.meta["n_nonfinite"] == {"counts": 0, "counts_off": 1, "acceptance": 1, "acceptance_off": 0}
    zc, zoff, za = counts.copy(), counts_off.copy(), alpha.copy()
    for p in ((10, 10), (25, 30)):
        zc[p] = zoff[p] = za[p] = 0
    zeroed = run(zc, zoff, za)
    for name in ("sqrt_ts", "npred", "alpha"):
        np.testing.assert_array_equal(to_host(result[name].data), to_host(zeroed[name].data), err_msg=name)
    sqrt_ts = to_host(result["sqrt_ts"].data)
    assert np.isfinite(sqrt_ts).all()


def test_clean_inputs_cost_one_flag_and_no_copy(backend):
    counts, background = _random_images()
    c, b = _maps(backend, counts, background)
    dataset = MapDataset(c, background=b)
    with gpumask.count_transfers() as counter:
        result = ExcessMapEstimator("0.15 deg").run(dataset)
    assert counter.calls == 0 and counter.device_calls == 0 and counter.flags == 1
    assert result.meta["n_nonfinite"] == {"counts": 0, "background": 0}
    assert re.search(r"n_nonfinite +: \{'counts': 0, 'background': 0\}", repr(result))
    # integer counts hold no NaN: only the background is tested
    ci = Map.from_geom(c.geom, data=gpumask.to_device(counts.astype(np.int32), backend))
    with gpumask.count_transfers() as counter:
        ExcessMapEstimator("0.15 deg").run(MapDataset(ci, background=b))
    assert counter.flags == 1


def test_bad_pixels_cost_one_flag_and_one_copy(backend):
    counts, background = _random_images()
    counts[BAD] = np.nan
    background[5, 6] = np.inf
    background[7, 8] = np.nan
    c, b = _maps(backend, counts, background)
    with gpumask.count_transfers() as counter, pytest.warns(NonFiniteInputWarning, match="background has 2"):
        result = ExcessMapEstimator("0.15 deg").run(MapDataset(c, background=b))
    assert counter.flags == 1 and counter.calls == 1  # the counts, read only because some are bad
    assert result.meta["n_nonfinite"] == {"counts": 1, "background": 2}


def test_run_many_reports_each_dataset(backend):
    counts, background = _random_images()
    bad = counts.copy()
    bad[BAD] = np.inf
    datasets = []
    for c in (counts, bad):
        cm, bm = _maps(backend, c, background)
        datasets.append(MapDataset(cm, background=bm))
    with pytest.warns(NonFiniteInputWarning, match="counts has 1") as record:
        results = ExcessMapEstimator("0.15 deg").run_many(datasets)
    assert len(record) == 1
    assert [r.meta["n_nonfinite"]["counts"] for r in results] == [0, 1]
    single = ExcessMapEstimator("0.15 deg").run(datasets[0])
    np.testing.assert_array_equal(to_host(results[0]["sqrt_ts"].data), to_host(single["sqrt_ts"].data))


def test_warning_points_at_the_caller(backend):
    counts, background = _random_images()
    counts[BAD] = np.nan
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _run(backend, counts, background)
    assert [w.category for w in record] == [NonFiniteInputWarning]
    assert record[0].filename == __file__


@pytest.mark.gpu
def test_device_reads_on_the_emulated_gpu(device_reads):
    """Clean data: one 1-byte read (the flag).  Bad data: the flag and one read of
    the per-input counts (2 integers per input), no map data."""
    backend = gpumask.get_backend("cupy")
    counts, background = _random_images()
    c, b = _maps(backend, counts, background)
    device_reads.clear()
    ExcessMapEstimator("0.15 deg").run(MapDataset(c, background=b))
    assert [r.nbytes for r in device_reads] == [1]
    counts[BAD] = np.nan
    c, b = _maps(backend, counts, background)
    device_reads.clear()
    with pytest.warns(NonFiniteInputWarning):
        ExcessMapEstimator("0.15 deg").run(MapDataset(c, background=b))
    assert [r.nbytes for r in device_reads] == [1, 2 * 2 * 8]


# ----------------------------------------------------------------------------- Fermi GC


@pytest.fixture
def gc_image(data_dir, backend):
    counts = gpumask.read_map(data_dir / GC_COUNTS, backend=backend.name)
    background = gpumask.read_map(data_dir / GC_BACKGROUND, backend=backend.name)
    counts = Map.from_geom(counts.geom, data=counts.data.astype(np.float64))  # int64 in the file
    return counts, background


def _with(m, pixel, value):
    data = m.to_numpy().astype(np.float64)
    data[pixel] = value
    return Map.from_geom(m.geom, data=gpumask.to_device(data, m.backend))


@pytest.mark.data
@pytest.mark.parametrize("which, pixel, value", [
    ("counts", (60, 120), np.nan),  # off the plane
    ("counts", (100, 200), np.nan),  # Sgr A*, the brightest source
    ("background", (95, 230), np.inf),
    ("background", (150, 300), -np.inf),
])
def test_fermi_gc_one_bad_pixel(gc_image, which, pixel, value):
    """The issue's case: before the fix all 80,000 sqrt_ts pixels were NaN.  Now
    none is, and exactly the 49 pixels whose 0.2 deg disk holds the bad pixel change."""
    counts, background = gc_image
    estimator = ExcessMapEstimator("0.2 deg")
    clean = to_host(estimator.run(MapDataset(counts, background=background))["sqrt_ts"].data)
    inputs = {"counts": counts, "background": background}
    inputs[which] = _with(inputs[which], pixel, value)
    with pytest.warns(NonFiniteInputWarning, match=rf"{which} has 1 non-finite pixel"):
        result = estimator.run(MapDataset(inputs["counts"], background=inputs["background"]))
    sqrt_ts = to_host(result["sqrt_ts"].data)
    assert not np.isnan(sqrt_ts).any()
    kernel = estimator.estimate_kernel(counts.geom)
    near = _disk_around(sqrt_ts.shape, pixel, kernel)
    changed = np.abs(sqrt_ts - clean) > SQRT_TS_TOL
    assert near.sum() == kernel.sum() == 49
    np.testing.assert_array_equal(changed, near)
    # and the bad pixel's neighbours equal the direct sums without it
    c = inputs["counts"].to_numpy().astype(float)
    b = inputs["background"].to_numpy().astype(float)
    box = tuple(slice(p - 12, p + 13) for p in pixel)
    _, _, ref = _direct_cash(c[box], b[box], kernel)
    inner = (slice(4, -4), slice(4, -4))  # where the box holds every disk
    np.testing.assert_allclose(sqrt_ts[box][inner], ref[inner], rtol=0, atol=SQRT_TS_TOL)
