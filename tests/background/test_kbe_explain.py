"""KernelBackgroundResult.explain_exclusion (issue 20): the final exclusion of the
kernel background estimator with its provenance.  Oracles: the result's own
exclusion and significance, scipy.ndimage labelling and dilation (brute force)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

import gpumask
from gpumask import KernelBackgroundEstimator, Map, WcsGeom
from gpumask.backend import to_host


def _sky(backend, seed=3):
    """Poisson counts on a flat background with a few Gaussian sources."""
    geom = WcsGeom.create(npix=(90, 70), binsz=0.02, frame="galactic")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:70, :90]
    rate = np.full((70, 90), 2.0)
    for x, y, amp, s in ((20, 20, 40, 2.0), (60, 45, 25, 3.0), (45, 15, 15, 1.5), (75, 60, 30, 2.0)):
        rate += amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
    return Map.from_geom(geom, data=rng.poisson(rate).astype(float), backend=backend.name)


def _check(result, estimator):
    """Labels cover exactly the exclusion; blobs are >= threshold; rings lie within the
    dilation disk of their parent blob, and every blob is a whole connected region."""
    explained = result.explain_exclusion()
    exclusion = result["exclusion"]
    assert explained.backend.name == exclusion.backend.name
    prov = explained.provenance
    assert prov.backend.name == exclusion.backend.name
    label, label2 = to_host(prov.label), to_host(prov.label2)
    excluded = ~to_host(exclusion.data)
    np.testing.assert_array_equal(to_host(explained.data), ~excluded)
    np.testing.assert_array_equal(label > 0, excluded)  # the union of labels is the exclusion
    sig = to_host(result["significance"].data)
    seeds = sig >= estimator.significance_threshold
    table = prov.components
    kinds = np.asarray(table["kind"])
    parents = np.asarray(table["parent"])
    blobs = np.flatnonzero(kinds == "significance blob") + 1
    assert len(blobs) == ndi.label(seeds)[1] > 0
    pixel = float(np.mean(np.abs(exclusion.geom.wcs.wcs.cdelt)))
    r = estimator.mask_dilation_radius / pixel
    h = int(np.floor(r + 1e-9))
    i, j = np.mgrid[-h:h + 1, -h:h + 1]
    disk = i * i + j * j <= r * r + 1e-9
    for b in blobs:
        mine = (label == b) | (label2 == b)
        assert np.all(sig[label == b] >= estimator.significance_threshold)
        lab, _ = ndi.label(seeds)
        assert len(np.unique(lab[label == b])) == 1  # one connected region each
        rings = np.flatnonzero(parents == b) + 1
        grown = ndi.binary_dilation(mine, structure=disk)
        for ring in rings:
            assert np.all(grown[label == ring]) and not np.any(seeds[label == ring])
    assert set(kinds[table["npix"] > 0]) <= {"significance blob", "dilation ring"}
    assert all(str(rule).startswith(f"KBE pass {result.n_iter}:") for rule in table["rule"])
    return explained


@pytest.mark.parametrize("sync", [True, False])
def test_explained_exclusion_matches_the_result(backend, sync):
    counts = _sky(backend)
    kbe = KernelBackgroundEstimator("0.06 deg", ("0.2 deg", "0.1 deg"), significance_threshold=5,
                                    mask_dilation_radius="0.05 deg")
    result = kbe.run({"counts": counts}, sync=sync)
    explained = _check(result, kbe)
    kinds = set(explained.provenance.summary()["kind"])
    assert kinds == {"significance blob", "dilation ring"}
    # explain(position) names a blob at the brightest source
    from astropy.coordinates import SkyCoord

    lon, lat = counts.geom.pix_to_coord((np.array([20.0]), np.array([20.0])))
    rows = explained.explain(SkyCoord(float(lon[0]), float(lat[0]), unit="deg", frame="galactic"))
    assert rows["kind"][0] == "significance blob" and rows["name"][0].startswith("blob 1: peak ")


def test_no_dilation_gives_blobs_only(backend):
    counts = _sky(backend, seed=4)
    kbe = KernelBackgroundEstimator("0.06 deg", ("0.2 deg", "0.1 deg"), mask_dilation_radius="0.01 deg")
    result = kbe.run({"counts": counts})
    explained = _check(result, kbe)
    assert set(explained.provenance.components["kind"]) == {"significance blob"}


def test_record_initial_state_is_the_given_exclusion(backend):
    counts = _sky(backend)
    given = counts.geom.region_mask("galactic;circle(0,0,0.1)", inside=False, backend=backend.name, explain=True)
    kbe = KernelBackgroundEstimator("0.06 deg", ("0.2 deg", "0.1 deg"), keep_record=True)
    result = kbe.run({"counts": counts, "exclusion": given})
    first = kbe.images_stack[0].explain_exclusion()
    np.testing.assert_array_equal(to_host(first.data), to_host(given.data))
    assert list(first.provenance.components["kind"]) == ["region"]
    second = kbe.images_stack[1].explain_exclusion()
    assert all(str(rule).startswith("KBE pass 1:") for rule in second.provenance.components["rule"])
    _check(result, kbe)
    # without a provenance of its own: one component of kind "mask"
    plain = kbe.run({"counts": counts, "exclusion": Map.from_geom(counts.geom, data=to_host(given.data),
                                                                    backend=backend.name)})
    assert plain["exclusion"].backend.name == backend.name
    initial = kbe.images_stack[0].explain_exclusion()
    assert list(initial.provenance.components["kind"]) == ["mask"]
    np.testing.assert_array_equal(to_host(initial.provenance.label) > 0, ~to_host(given.data))


def test_arrays_cannot_be_explained(backend):
    counts = _sky(backend)
    kbe = KernelBackgroundEstimator(np.ones((3, 3)), np.ones((9, 9)))
    result = kbe.run({"counts": counts.data})
    with pytest.raises(TypeError, match="explain_exclusion\\(\\) needs a run on Maps"):
        result.explain_exclusion()


def test_fermi_gc(data_dir, backend):
    counts = gpumask.read_map(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz", backend=backend.name)
    kbe = KernelBackgroundEstimator("0.2 deg", ("0.5 deg", "0.3 deg"), mask_dilation_radius="0.1 deg")
    result = kbe.run({"counts": counts}, niter_max=20)
    explained = _check(result, kbe)
    assert int(np.sum(explained.provenance.components["npix"])) == 2499  # test_kernel's count
