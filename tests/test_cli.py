"""``gpumask info`` / ``gpumask demo`` (README's first command)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from astropy.coordinates import SkyCoord
import pytest

import gpumask
from gpumask.__main__ import main


def test_info_command(capsys):
    assert main(["info", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "backend         : numpy" in out and "explicit backend= argument" in out


def test_demo_writes_the_tutorial_mask(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--out", str(out_dir), "--backend", "numpy"]) == 0
    printed = capsys.readouterr().out
    assert "exclusion_mask.fits" in printed
    mask = gpumask.read_map(out_dir / "exclusion_mask.fits", backend="numpy")
    assert mask.is_mask and mask.geom.npix == (250, 250) and mask.geom.frame == "galactic"
    summary = json.loads((out_dir / "summary.json").read_text())
    data = mask.to_numpy()
    assert summary["excluded_pixels"] == int((~data).sum())

    # The tutorial's two regions, rasterised independently with the regions package
    # (pixel-centre containment) on the same WCS: the same pixels are excluded.
    regions = pytest.importorskip("regions")
    from gpumask._demo import DEMO_REGIONS

    ny, nx = mask.geom.data_shape
    yy, xx = np.mgrid[:ny, :nx]
    expected = np.zeros((ny, nx), bool)
    for region in regions.Regions.parse(DEMO_REGIONS, format="ds9"):
        expected |= region.to_pixel(mask.geom.wcs).contains(regions.PixCoord(xx, yy))
    np.testing.assert_array_equal(~data, expected)
    assert expected.sum() == 1958


def test_demo_significance_and_combined_masks(tmp_path):
    """The demo's significance step, redone here from its public pieces, and the
    combination: every file is a boolean mask and nothing left the device early."""
    from gpumask._demo import simulated_dataset

    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["host_copies_before_writing"] == 0
    regions_mask = gpumask.read_map(tmp_path / "exclusion_mask.fits").to_numpy()
    significance = gpumask.read_map(tmp_path / "significance_mask.fits")
    combined = gpumask.read_map(tmp_path / "combined_mask.fits").to_numpy()
    assert significance.is_mask
    np.testing.assert_array_equal(combined, regions_mask & significance.to_numpy())

    dataset = simulated_dataset(significance.geom, "numpy")
    sqrt_ts = gpumask.ExcessMapEstimator("0.4 deg").run(dataset)["sqrt_ts"].to_numpy()
    seeds = sqrt_ts >= 5
    assert seeds.sum() > 0 and summary["significance"]["peak_sqrt_ts"] == pytest.approx(np.nanmax(sqrt_ts), abs=1e-3)
    excluded = ~significance.to_numpy()
    assert excluded[seeds].all()  # every 5 sigma pixel is excluded
    assert summary["significance"]["excluded_pixels"] == int(excluded.sum())
    assert summary["combined_excluded_pixels"] == int((~combined).sum())


def test_demo_kernel_background(tmp_path):
    """Step 4: the iterative estimator finds the simulated sources and a background
    within 2% of the true flat level, and its files are what a rerun gives."""
    from gpumask._demo import DEMO_BACKGROUND, simulated_dataset

    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["kernel_background"]
    mask = gpumask.read_map(tmp_path / "kbe_exclusion_mask.fits")
    background = gpumask.read_map(tmp_path / "kbe_background.fits").to_numpy()
    assert mask.is_mask and summary["converged"] and summary["passes"] >= 2
    assert summary["excluded_pixels"] == int((~mask.to_numpy()).sum()) > 500
    assert summary["mean_background"] == pytest.approx(DEMO_BACKGROUND, rel=0.02)
    dataset = simulated_dataset(mask.geom, "numpy")
    kbe = gpumask.KernelBackgroundEstimator("0.1 deg", ("0.4 deg", "0.3 deg"), mask_dilation_radius="0.04 deg")
    again = kbe.run({"counts": dataset.counts})
    np.testing.assert_array_equal(again["exclusion"].to_numpy(), mask.to_numpy())
    np.testing.assert_allclose(again["background"].to_numpy(), background, rtol=1e-6)
    # the Crab (the brightest simulated source) is excluded
    x, y = mask.geom.coord_to_pix(SkyCoord(184.557, -5.784, unit="deg", frame="galactic"))
    assert not mask.to_numpy()[int(round(float(y))), int(round(float(x)))]


def test_demo_refuses_to_overwrite(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--out", str(out_dir), "--backend", "numpy"]) == 0
    target = out_dir / "exclusion_mask.fits"
    before = (target.read_bytes(), target.stat().st_mtime_ns)
    assert main(["demo", "--out", str(out_dir), "--backend", "numpy"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before
    assert main(["demo", "--out", str(out_dir), "--backend", "numpy", "--overwrite"]) == 0


@pytest.mark.gammapy
def test_demo_output_opens_in_gammapy_as_bool(tmp_path, gammapy_maps):
    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    m = gammapy_maps.Map.read(tmp_path / "exclusion_mask.fits")
    assert m.data.dtype == bool and int((~m.data).sum()) == 1958


def test_python_dash_m_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gpumask", "info", "--backend", "numpy"],
        capture_output=True, text=True, check=True,
    )
    assert "gpumask info" in result.stdout


def test_bad_backend_is_reported(capsys):
    assert main(["info", "--backend", "tpu"]) == 2
    assert "tpu" in capsys.readouterr().err
