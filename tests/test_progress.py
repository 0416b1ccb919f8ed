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


def test_catalog_mask_on_the_cpu_shows_a_bar(shown_at_once, capsys, tmp_path):
    """Rasterising many sources over a large map on the CPU reports its tiles; the
    mask is the same as without the bar (brute force: the CuPy path has no loop)."""
    geom = gpumask.WcsGeom.create(npix=(600, 400), binsz=0.01, frame="galactic")
    rng = np.random.default_rng(5)
    from astropy.table import Table

    table = Table({"name": [f"S{i}" for i in range(50)], "glon": rng.uniform(-3, 3, 50),
                   "glat": rng.uniform(-2, 2, 50)})
    table.write(tmp_path / "sources.ecsv")
    catalog = gpumask.SourceCatalog.read(tmp_path / "sources.ecsv", format="table")
    with_bar = gpumask.exclusion_mask(geom, catalog, radius="0.1 deg", backend="numpy")
    err = capsys.readouterr().err
    assert "rasterising shapes" in err and "tile" in err
    gpumask.set_progress(False)
    without = gpumask.exclusion_mask(geom, catalog, radius="0.1 deg", backend="numpy")
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(with_bar.data, without.data)
    # brute force: excluded = within 0.1 deg of a source (pixels at the edge of a
    # circle may differ by rounding; none do here at this seed)
    lon, lat = geom.get_coord(backend="numpy")
    from astropy.coordinates import SkyCoord

    pix = SkyCoord(lon, lat, unit="deg", frame="galactic")
    near = np.zeros(geom.data_shape, bool)
    for row in table:
        near |= pix.separation(SkyCoord(row["glon"], row["glat"], unit="deg", frame="galactic")).deg <= 0.1
    assert np.count_nonzero(near == ~with_bar.data) / near.size > 0.9999  # True = usable
    assert 0.01 < near.mean() < 0.5


def test_batch_in_a_notebook_shows_a_widget_bar(shown_at_once, monkeypatch):
    """In a Jupyter kernel a batch's progress is a tqdm bar, not a log line per field."""
    from gpumask.batch import FieldOutcome, runner

    bars = []

    class FakeBar:
        def __init__(self, total, desc, unit="it", delay=None):
            self.n, self.total, self.desc, self.postfix, self.closed = 0, total, desc, "", False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def set_postfix_str(self, text):
            self.postfix = text

        def close(self):
            self.closed = True

    monkeypatch.setattr(runner, "in_notebook", lambda: True)
    monkeypatch.setattr(runner, "open_bar", FakeBar)
    progress = runner.Progress(3)
    for name, status in (("a", "done"), ("b", "skipped"), ("c", "done")):
        progress.update(FieldOutcome(name, status))
    progress.close()
    (bar,) = bars
    assert (bar.n, bar.total, bar.desc, bar.closed) == (3, 3, "fields", True)
    assert bar.postfix == "done 2  skipped 1  failed 0"
    # silenced in the notebook: no bar, only failures
    gpumask.set_progress(False)
    import io
    import sys

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    quiet = runner.Progress(2)
    quiet.update(FieldOutcome("a", "done", seconds=0.5))
    quiet.update(FieldOutcome("b", "failed", error="ValueError: bad"))
    quiet.close()
    assert len(bars) == 1 and log.getvalue() == "b: ValueError: bad\n"
    # an explicit stream (or outside a notebook): one log line per field
    log = io.StringIO()
    lines = runner.Progress(1, stream=log)
    lines.update(FieldOutcome("a", "done", seconds=0.5))
    assert log.getvalue() == "[1/1] a done: 0.50 s\n"
