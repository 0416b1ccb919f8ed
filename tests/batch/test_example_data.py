"""The built-in example data: the demo field and the lookup of the real data."""

from __future__ import annotations

import numpy as np
import pytest

import gpumask
from gpumask.batch.examples import demo_geom, shared_data_dir, true_background


def test_demo_dataset_is_the_demo_field(backend):
    dataset = gpumask.demo_dataset(backend=backend.name)
    assert dataset.counts.geom == demo_geom()
    assert dataset.counts.backend.name == backend.name
    counts = gpumask.to_host(dataset.counts.data)
    np.testing.assert_array_equal(gpumask.to_host(dataset.background.data), true_background(demo_geom()))
    # seeded: the same draw every time, a different one for another seed
    again = gpumask.to_host(gpumask.demo_dataset(backend=backend.name).counts.data)
    np.testing.assert_array_equal(counts, again)
    other = gpumask.to_host(gpumask.demo_dataset(backend=backend.name, seed=1).counts.data)
    assert not np.array_equal(counts, other)
    # the Crab is the brightest spot, far above the background of ~0.7 counts/pixel
    iy, ix = np.unravel_index(np.argmax(counts), counts.shape)
    crab = demo_geom().pix_to_coord((ix, iy))
    assert abs(crab[0] - 184.557) < 0.1 and abs(crab[1] + 5.784) < 0.1
    assert counts.max() > 50


def test_demo_catalog_lies_in_the_field():
    catalog = gpumask.demo_catalog()
    assert len(catalog) >= 3
    assert demo_geom().contains(catalog.positions).all()


def test_shared_data_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUMASK_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()


def test_shared_data_dir_found_beside_a_parent(tmp_path, monkeypatch):
    monkeypatch.delenv("GPUMASK_DATA", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    work = tmp_path / "repo" / "docs"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert shared_data_dir() == (tmp_path / "shared" / "data").resolve()


def test_shared_data_dir_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUMASK_DATA", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    if any((p / "shared" / "data").is_dir() for p in (tmp_path, *tmp_path.parents)):
        pytest.skip("a shared/data folder exists above the temporary folder")
    assert shared_data_dir() is None
    with pytest.raises(FileNotFoundError, match="GPUMASK_DATA=.*nowhere.*not a folder"):
        shared_data_dir(required=True)


def test_demo_dataset_on_a_cube_is_what_gammapy_tools_take(backend):
    """A one-bin cube geometry: the same expected counts, an all-True mask_safe, so
    the gammapy conversion runs gammapy's ExcessMapEstimator as the 2-D field does."""
    axis = gpumask.MapAxis.from_energy_bounds("1 TeV", "100 TeV", nbin=1)
    cube = gpumask.demo_dataset(geom=demo_geom().to_cube([axis]), backend=backend.name)
    assert cube.counts.geom.data_shape == (1, 250, 250)
    assert gpumask.to_host(cube.mask_safe.data).all()
    np.testing.assert_array_equal(gpumask.to_host(cube.counts.data)[0],
                                  gpumask.to_host(gpumask.demo_dataset(backend=backend.name).counts.data))
    # two bins share the expectation: each bin has half the background
    two = gpumask.MapAxis.from_energy_bounds("1 TeV", "100 TeV", nbin=2)
    split = gpumask.demo_dataset(geom=demo_geom().to_cube([two]), backend=backend.name)
    np.testing.assert_allclose(gpumask.to_host(split.background.data).sum(axis=0), true_background(demo_geom()))
    gammapy_estimators = pytest.importorskip("gammapy.estimators")
    theirs = gammapy_estimators.ExcessMapEstimator("0.4 deg").run(cube.to_gammapy())["sqrt_ts"].data
    ours = gpumask.ExcessMapEstimator("0.4 deg").run(cube)["sqrt_ts"]
    np.testing.assert_allclose(gpumask.to_host(ours.data), theirs, atol=1e-4, equal_nan=True)


def test_get_backend_without_a_name_is_the_active_backend():
    with gpumask.use_backend("numpy"):
        assert gpumask.get_backend().name == "numpy"
        assert gpumask.get_backend(None) is gpumask.backend.resolve_backend()
