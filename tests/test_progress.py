"""Progress bars for long work: shown (tqdm) after a delay, silenced by
gpumask.set_progress(False) or GPUMASK_PROGRESS=0, never a device read."""

from __future__ import annotations

import numpy as np
import pytest

import gpumask
from gpumask import _progress


@pytest.fixture
def shown_at_once(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(_progress, "DELAY_S", 0.0)
    monkeypatch.delenv("GPUMASK_PROGRESS", raising=False)
    gpumask.set_progress(None)
    yield
    gpumask.set_progress(None)


def _images(backend):
    geom = gpumask.WcsGeom.create(npix=(40, 30), binsz=0.05)
    rng = np.random.default_rng(3)
    counts = rng.poisson(2.0, geom.data_shape).astype(float)
    counts[10:14, 10:14] += 30
    return {"counts": gpumask.Map.from_geom(geom, data=counts, backend=backend)}


def test_kbe_and_adaptive_ring_show_bars(shown_at_once, capsys, backend):
    kbe = gpumask.KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.2 deg"))
    with gpumask.count_transfers() as counter:
        result = kbe.run(_images(backend), niter_max=4)
    assert counter.calls == 0
    err = capsys.readouterr().err
    assert "KBE passes" in err and "pass" in err
    counts = _images(backend)["counts"]
    ds = gpumask.MapDataset(counts, background=counts * 0 + 2.0)
    gpumask.AdaptiveRingBackgroundEstimator("0.2 deg", "0.8 deg", "0.1 deg").run(ds)
    err = capsys.readouterr().err
    assert "adaptive rings" in err
    assert result.n_iter >= 2


@pytest.mark.parametrize("how", ["function", "environment"])
def test_bars_can_be_silenced(shown_at_once, capsys, monkeypatch, how, backend):
    if how == "function":
        gpumask.set_progress(False)
    else:
        monkeypatch.setenv("GPUMASK_PROGRESS", "0")
    gpumask.KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.2 deg")).run(_images(backend), niter_max=3)
    assert capsys.readouterr().err == ""
    assert not _progress.progress_enabled()


def test_quick_work_prints_nothing(capsys, monkeypatch):
    monkeypatch.delenv("GPUMASK_PROGRESS", raising=False)
    gpumask.set_progress(True)
    try:
        with _progress.progress_bar(3, "quick") as bar:
            bar.update(3)
    finally:
        gpumask.set_progress(None)
    assert capsys.readouterr().err == ""  # under DELAY_S: no bar


def test_set_progress_checks_its_argument():
    with pytest.raises(ValueError, match="True, False or None, got 'yes'"):
        gpumask.set_progress("yes")
