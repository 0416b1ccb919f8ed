"""Provenance in the batch pipeline (issue 20): ``explain`` (default on) writes the
EXPLAIN_* HDUs with the mask and lists the top components in the manifest; off, the
files and manifests are those of before.  Oracles: the same batch with explain off
(identical masks), the provenance read back from the mask file, gammapy's Map.read."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from astropy.io import fits

import gpumask
from gpumask import to_host
from gpumask.batch.config import ConfigError, MaskConfig
from gpumask.batch.examples import write_example_fields
from gpumask.batch.pipeline import TOP_COMPONENTS, _resample, run_jobs
from gpumask.batch.runner import Progress, plan, run_batch

EXPLAIN_HDUS = {"EXPLAIN_LABEL", "EXPLAIN_LABEL2", "EXPLAIN_COMPONENTS"}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain_example")
    write_example_fields(folder, n=3, npix=48, seed=5)
    return folder


def _copy(example, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(example, target)
    return target


def _run(folder, backend, overrides=None, stack=True):
    jobs = plan(folder / "config.yaml", folder / "fields.csv", overrides=overrides)
    report = run_batch(jobs, backend=backend.name, stack=stack, progress=Progress(len(jobs), stream=io.StringIO()))
    assert report["counts"]["done"] == len(jobs), report
    return jobs


def test_batch_explain_on_and_off(example, tmp_path, backend):
    """explain on: manifest top components sorted by area, consistent with the
    provenance read back from the mask file, whose labels cover exactly the
    excluded pixels; explain off: the same masks, no EXPLAIN HDUs, no top
    components, no host copy before writing."""
    on = _run(_copy(example, tmp_path, "on"), backend)
    off = _run(_copy(example, tmp_path, "off"), backend, overrides={"explain": False})
    for job_on, job_off in zip(on, off):
        assert job_on.explain and not job_off.explain
        manifest = json.loads(job_on.manifest.read_text())
        mask = gpumask.read_map(job_on.outputs["mask"], backend=backend.name)
        data = to_host(mask.data)
        assert manifest["excluded_pixels"] == int((~data).sum()) > 0
        # the file carries the provenance; its labels are exactly the excluded pixels
        prov = mask.provenance
        assert prov is not None and prov.backend.name == backend.name
        np.testing.assert_array_equal(to_host(prov.label) > 0, ~data)
        table = prov.components
        assert int(np.sum(table["npix"])) == manifest["excluded_pixels"]
        kinds = set(table["kind"][table["npix"] > 0])
        assert {"region", "catalog source", "significance blob"} <= kinds
        top = manifest["top_components"]
        assert 0 < len(top) <= TOP_COMPONENTS
        areas = [row["solid_angle_deg2"] for row in top]
        assert areas == sorted(areas, reverse=True)
        expected = prov.summary(top=TOP_COMPONENTS)
        assert [row["index"] for row in top] == list(expected["index"])
        assert [row["npix"] for row in top] == list(expected["npix"])
        assert set(top[0]) == {"index", "kind", "name", "rule", "npix", "npix_alone", "solid_angle_deg2"}
        if len(expected) == int(np.sum(table["npix"] > 0)):  # every component listed: they partition the mask
            assert sum(row["npix"] for row in top) == manifest["excluded_pixels"]
        with fits.open(job_on.outputs["mask"]) as hdul:
            assert EXPLAIN_HDUS <= {h.name for h in hdul}
        # explain off: same mask, nothing added
        manifest_off = json.loads(job_off.manifest.read_text())
        assert "top_components" not in manifest_off
        assert manifest_off["host_copies_before_writing"] == 0
        mask_off = gpumask.read_map(job_off.outputs["mask"], backend="numpy")
        assert mask_off.provenance is None
        np.testing.assert_array_equal(mask_off.to_numpy(), data)
        with fits.open(job_off.outputs["mask"]) as hdul:
            assert not EXPLAIN_HDUS & {h.name for h in hdul}


def test_stacked_and_single_fields_explain_alike(example, tmp_path):
    """Blob provenance per field out of a stacked significance step equals the one of
    fields run one by one."""
    numpy = gpumask.get_backend("numpy")
    stacked = _run(_copy(example, tmp_path, "stacked"), numpy, stack=True)
    single = _run(_copy(example, tmp_path, "single"), numpy, stack=False)
    for a, b in zip(stacked, single):
        ma, mb = (gpumask.read_map(j.outputs["mask"], backend="numpy") for j in (a, b))
        np.testing.assert_array_equal(ma.provenance.label, mb.provenance.label)
        np.testing.assert_array_equal(ma.provenance.label2, mb.provenance.label2)
        assert list(ma.provenance.components["name"]) == list(mb.provenance.components["name"])


@pytest.mark.gammapy
def test_gammapy_reads_the_explained_mask(example, tmp_path):
    pytest.importorskip("gammapy")
    from gammapy.maps import Map as GammapyMap

    jobs = _run(_copy(example, tmp_path, "g"), gpumask.get_backend("numpy"))
    path = jobs[0].outputs["mask"]
    theirs = GammapyMap.read(path)
    assert theirs.data.dtype == bool
    np.testing.assert_array_equal(theirs.data, gpumask.read_map(path, backend="numpy").to_numpy())


def test_explain_config_key(example):
    args = (example / "config.yaml", example / "fields.csv")
    plain = plan(*args)
    explicit, off = (plan(*args, overrides={"explain": flag}) for flag in (True, False))
    for a, b, c in zip(plain, explicit, off):
        assert a.explain and b.explain and not c.explain
        # a config without the key keeps the hash it had before the key existed (resume)
        assert a.job_hash == b.job_hash != c.job_hash
    with pytest.raises(ConfigError, match=r"explain: 'yes' is not accepted; choose true or false"):
        MaskConfig.read(example / "config.yaml", overrides={"explain": "yes"})


def test_resampled_significance_mask_keeps_its_blobs(backend):
    """Significance inputs on another geometry: the label maps are resampled with
    the mask (nearest pixel), so they still cover exactly its excluded pixels."""
    geom = gpumask.WcsGeom.create(npix=(60, 50), binsz=0.05, frame="galactic")
    rng = np.random.default_rng(7)
    sig = gpumask.Map.from_geom(geom, data=rng.normal(size=geom.data_shape) * 3, backend=backend.name)
    mask = gpumask.exclusion_from_significance(sig, 4.0, explain=True)
    target = gpumask.WcsGeom.create(npix=(40, 40), binsz=0.06, frame="icrs", skydir=geom.center_skydir)
    with gpumask.count_transfers() as copies:
        out = _resample(mask, target)
    assert copies.calls == 0 and out.backend.name == backend.name
    np.testing.assert_array_equal(to_host(out.provenance.label) > 0, ~to_host(out.data))
    assert (~to_host(out.data)).any()
    assert list(out.provenance.components["name"]) == list(mask.provenance.components["name"])


def test_run_jobs_without_significance_explains_regions(tmp_path):
    """A field of regions only: one component per region, the manifest lists them."""
    config = MaskConfig({"geometry": {"skydir": [0, 0], "frame": "galactic", "width": "2 deg", "binsz": "0.05 deg"},
                         "regions": ["galactic;circle(0,0,0.3)", "galactic;box(0.5,0.2,0.4,0.2,0)"],
                         "output": {"mask": "m.fits"}}, base_dir=tmp_path)
    job = config.field_job("r")
    (outcome,) = run_jobs([job], backend="numpy")
    assert outcome.status == "done", outcome.error
    top = json.loads(job.manifest.read_text())["top_components"]
    assert [row["kind"] for row in top] == ["region", "region"]
    assert top[0]["name"].startswith("galactic;circle(") and top[1]["name"].startswith("galactic;box(")
    assert sum(row["npix"] for row in top) == outcome.stats["excluded_pixels"]
