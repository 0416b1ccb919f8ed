"""``gpumask kbe``: the kernel background estimator on files.  Its outputs must be
what calling :class:`gpumask.KernelBackgroundEstimator` directly gives, on
simulated maps, cubes, gammapy MapDataset files and the real Fermi GC data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import gpumask
from gpumask import KernelBackgroundEstimator, Map, MapAxis, WcsGeom
from gpumask.cli import main

OUTPUT_NAMES = ("exclusion_mask.fits", "background.fits", "significance.fits", "kbe.json")


def _sky(l, b):
    return SkyCoord(l, b, unit="deg", frame="galactic")


def _geom(axes=None):
    return WcsGeom.create(skydir=_sky(0, 0), width=(4, 3), binsz=0.05, frame="galactic", axes=axes)


def _expected(geom, level=2.0):
    """Flat background plus two Gaussian sources (host array)."""
    image = np.full(geom.data_shape_image, level)
    for (l, b), counts, sigma in (((0.5, 0.3), 400.0, 0.1), ((-1.0, -0.5), 150.0, 0.15)):
        d = geom.separation(_sky(l, b), backend="numpy")
        image += counts * 0.05**2 / (2 * np.pi * sigma**2) * np.exp(-0.5 * (d / sigma) ** 2)
    return image


@pytest.fixture
def counts_file(tmp_path):
    geom = _geom()
    counts = np.random.default_rng(7).poisson(_expected(geom)).astype(np.float32)
    path = tmp_path / "counts.fits"
    Map.from_geom(geom, data=counts, backend="numpy").write(path)
    return path


def _run(*argv):
    return main(["kbe", *map(str, argv), "--backend", "numpy"])


def _outputs(out):
    return (
        gpumask.read_map(out / "exclusion_mask.fits", backend="numpy"),
        gpumask.read_map(out / "background.fits", backend="numpy").to_numpy(),
        gpumask.read_map(out / "significance.fits", backend="numpy").to_numpy(),
        json.loads((out / "kbe.json").read_text()),
    )


def _assert_same(out, result):
    mask, background, significance, summary = _outputs(out)
    assert mask.is_mask
    np.testing.assert_array_equal(mask.to_numpy(), result["exclusion"].to_numpy())
    np.testing.assert_allclose(background, result["background"].to_numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(significance, result["significance"].to_numpy(), rtol=1e-12, atol=0, equal_nan=True)
    run = summary["run"]
    assert (run["passes"], run["converged"], run["cycle"]) == (result.n_iter, result.converged, result.cycle)
    assert summary["excluded_pixels"] == int((~result["exclusion"].to_numpy()).sum())
    return summary


# ----------------------------------------------------------------------------- equal to the estimator


def test_defaults_equal_the_estimator(counts_file, tmp_path, capsys):
    out = tmp_path / "nested" / "out"  # created with its parents
    assert _run(counts_file, "--out", out) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_NAMES)
    counts = gpumask.read_map(counts_file, backend="numpy")
    result = KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.3 deg")).run({"counts": counts})
    summary = _assert_same(out, result)
    assert result.converged and int((~result["exclusion"].to_numpy()).sum()) > 20
    assert summary["run"]["host_copies"] == 0
    assert summary["parameters"] == {
        "source_kernel_deg": 0.1, "ring_r_in_deg": 0.3, "ring_width_deg": 0.3, "threshold": 5.0,
        "dilation_deg": 0.02, "niter_min": 2, "niter_max": 10, "ring_deg": [0.3, 0.6],
    }
    assert summary["inputs"]["counts"] == str(counts_file.resolve())
    assert summary["inputs"]["background"] is None and summary["inputs"]["exclusion"] is None
    assert set(summary["run"]["timings_s"]) == {"read", "kbe", "write"}
    assert summary["outputs"]["exclusion_mask"] == str((out / "exclusion_mask.fits").resolve())
    for name in OUTPUT_NAMES:
        assert str(out / name) in printed
    assert "converged after" in printed and "summed over energy" not in printed


def test_options_reach_the_estimator(counts_file, tmp_path):
    geom = _geom()
    background_file, exclusion_file = tmp_path / "bkg.fits", tmp_path / "excl.fits"
    Map.from_geom(geom, data=np.full(geom.data_shape, 1.9), backend="numpy").write(background_file)
    exclusion = geom.region_mask("galactic;circle(0.5,0.3,0.3)", inside=False, backend="numpy")
    exclusion.write(exclusion_file)
    out = tmp_path / "out"
    argv = [counts_file, "--background", background_file, "--exclusion", exclusion_file,
            "--source-kernel", "9 arcmin", "--ring", "0.2", "0.4 deg", "--threshold", "4",
            "--dilation", "0.1 deg", "--niter-min", "3", "--niter-max", "6", "--out", out]
    assert _run(*argv) == 0
    images = {
        "counts": gpumask.read_map(counts_file, backend="numpy"),
        "background": gpumask.read_map(background_file, backend="numpy"),
        "exclusion": gpumask.read_map(exclusion_file, backend="numpy"),
    }
    kbe = KernelBackgroundEstimator("0.15 deg", ("0.2 deg", "0.4 deg"), significance_threshold=4,
                                    mask_dilation_radius="0.1 deg")
    result = kbe.run(images, niter_min=3, niter_max=6)
    summary = _assert_same(out, result)
    assert summary["parameters"]["source_kernel_deg"] == pytest.approx(0.15)
    assert summary["parameters"]["ring_deg"] == pytest.approx([0.2, 0.6])
    assert summary["inputs"]["background"] == str(background_file.resolve())
    assert summary["inputs"]["exclusion"] == str(exclusion_file.resolve())


def test_a_counts_cube_is_summed_over_energy(tmp_path, capsys):
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    geom = _geom(axes=[axis])
    rng = np.random.default_rng(11)
    cube = np.stack([rng.poisson(_expected(geom, level=0.7)) for _ in range(3)]).astype(np.float32)
    path = tmp_path / "cube.fits"
    Map.from_geom(geom, data=cube, backend="numpy").write(path)
    out = tmp_path / "out"
    assert _run(path, "--out", out) == 0
    assert "a cube with 3 energy bins, summed over energy to an image" in capsys.readouterr().out
    image = Map.from_geom(geom.to_image(), data=cube.sum(axis=0), backend="numpy")
    result = KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.3 deg")).run({"counts": image})
    summary = _assert_same(out, result)
    assert summary["inputs"]["energy_bins_summed"] == 3


def test_other_axes_are_refused(tmp_path, capsys):
    axis = MapAxis.from_edges([0.0, 1.0, 2.0], unit="h", name="time")
    geom = _geom(axes=[axis])
    path = tmp_path / "time.fits"
    Map.from_geom(geom, data=np.ones(geom.data_shape), backend="numpy").write(path)
    assert _run(path, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("gpumask: error: COUNTS has the non-spatial axes ['time']") and "energy" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.gammapy
def test_gammapy_mapdataset_file(tmp_path, capsys):
    """A MapDataset written by gammapy 2.1: its COUNTS and BACKGROUND cubes are
    summed over energy; --background replaces the dataset's."""
    gmaps = pytest.importorskip("gammapy.maps")
    gdatasets = pytest.importorskip("gammapy.datasets")
    axis = gmaps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)
    ggeom = gmaps.WcsGeom.create(skydir=_sky(0, 0), width=(4, 3), binsz=0.05, frame="galactic", axes=[axis])
    rng = np.random.default_rng(3)
    expected = _expected(_geom(), level=1.0)
    counts = np.stack([rng.poisson(expected) for _ in range(2)]).astype(float)
    background = np.full(ggeom.data_shape, 0.95)
    dataset = gdatasets.MapDataset(
        counts=gmaps.Map.from_geom(ggeom, data=counts),
        background=gmaps.Map.from_geom(ggeom, data=background),
        name="sim",
    )
    path = tmp_path / "dataset.fits.gz"
    dataset.write(path)

    out = tmp_path / "out"
    assert _run(path, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "MapDataset COUNTS" in printed and "summed over energy" in printed
    geom = gpumask.read_map(path, hdu="COUNTS", backend="numpy").geom.to_image()
    images = {
        "counts": Map.from_geom(geom, data=counts.sum(axis=0), backend="numpy"),
        "background": Map.from_geom(geom, data=background.sum(axis=0), backend="numpy"),
    }
    kbe = KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.3 deg"))
    summary = _assert_same(out, kbe.run(images))
    assert summary["inputs"]["counts_kind"] == "MapDataset"
    assert summary["inputs"]["background"].endswith("[BACKGROUND]")

    # --background replaces the dataset's BACKGROUND
    flat = tmp_path / "flat.fits"
    Map.from_geom(geom, data=np.full(geom.data_shape, 2.2), backend="numpy").write(flat)
    assert _run(path, "--background", flat, "--out", tmp_path / "out2") == 0
    images["background"] = gpumask.read_map(flat, backend="numpy")
    _assert_same(tmp_path / "out2", kbe.run(images))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--source-kernel", "0.1 m"], ["--source-kernel", "'0.1 deg'"]),
        (["--source-kernel", "0"], ["--source-kernel", "positive"]),
        (["--source-kernel", "wide"], ["--source-kernel", "angle"]),
        (["--ring", "0.3 deg", "0"], ["--ring WIDTH", "positive"]),
        (["--ring", "-0.1", "0.3"], ["--ring R_IN", "zero or positive"]),
        (["--ring", "0.001 deg", "0.001 deg"], ["--ring", "no pixel centre"]),
        (["--dilation", "-0.02 deg"], ["--dilation", "zero or positive"]),
        (["--dilation", "2 kg"], ["--dilation", "angle"]),
        (["--threshold", "0"], ["--threshold", "positive number"]),
        (["--threshold", "nan"], ["--threshold", "positive number"]),
        (["--niter-min", "0"], ["--niter-min", "positive integer"]),
        (["--niter-max", "2.5"], ["--niter-max", "positive integer"]),
        (["--niter-min", "5", "--niter-max", "3"], ["--niter-min (5) must not exceed --niter-max (3)"]),
        (["--background", "missing.fits"], ["--background", "file not found", "missing.fits"]),
        (["--exclusion", "missing.fits"], ["--exclusion", "file not found"]),
        (["--hdu", "NOPE"], ["NOPE", "HDUs"]),
    ],
)
def test_bad_options_are_reported(counts_file, tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    assert _run(counts_file, *argv, "--out", out) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("gpumask: error: ") and captured.out == ""
    for word in words:
        assert word in captured.err
    assert not out.exists()  # nothing written, not even the directory


def test_bad_inputs_are_reported(counts_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(tmp_path / "nope.fits", "--out", out) == 2
    assert "COUNTS: file not found" in capsys.readouterr().err
    text = tmp_path / "text.fits"
    text.write_text("not a FITS file")
    assert _run(text, "--out", out) == 2
    assert str(text) in capsys.readouterr().err
    small = tmp_path / "small.fits"
    Map.create(skydir=_sky(0, 0), width=1, binsz=0.05, frame="galactic", backend="numpy").write(small)
    assert _run(counts_file, "--background", small, "--out", out) == 2
    err = capsys.readouterr().err
    assert "--background" in err and "geometry differs" in err
    (tmp_path / "file").write_text("")
    assert _run(counts_file, "--out", tmp_path / "file") == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert not out.exists()


def test_refuses_to_overwrite(counts_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(counts_file, "--out", out) == 0
    before = {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in OUTPUT_NAMES}
    capsys.readouterr()
    assert _run(counts_file, "--out", out) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and str(out / "exclusion_mask.fits") in err
    assert before == {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in OUTPUT_NAMES}
    assert _run(counts_file, "--out", out, "--overwrite", "--threshold", "6") == 0
    assert json.loads((out / "kbe.json").read_text())["parameters"]["threshold"] == 6


def test_one_existing_output_blocks_every_write(counts_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "kbe.json").write_text("{}")
    assert _run(counts_file, "--out", out) == 2
    err = capsys.readouterr().err
    assert str(out / "kbe.json") in err and "exclusion_mask.fits" not in err
    assert [p.name for p in out.iterdir()] == ["kbe.json"]  # no other file, no temporary left
    assert (out / "kbe.json").read_text() == "{}"


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["kbe", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("COUNTS", "--background", "--exclusion", "--hdu", "--source-kernel", "--ring", "--threshold",
                   "--dilation", "--niter-min", "--niter-max", "--out", "--overwrite", "--backend"):
        assert option in text
    assert "0.3 deg 0.3 deg" in text


# ----------------------------------------------------------------------------- real data


@pytest.mark.data
def test_fermi_gc_counts_image(data_dir, tmp_path):
    """The Fermi-LAT 3FHL GC counts image with the defaults: the figures of
    test_kernel_background's test_fermi_gc_is_stable (5 passes, 224 px)."""
    path = data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    out = tmp_path / "out"
    assert _run(path, "--out", out) == 0
    result = KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.3 deg")).run(
        {"counts": gpumask.read_map(path, backend="numpy")})
    summary = _assert_same(out, result)
    assert summary["run"]["passes"] == 5 and summary["run"]["converged"] and summary["excluded_pixels"] == 224


@pytest.mark.data
def test_fermi_gc_dataset_file(data_dir, tmp_path, capsys):
    """The GC MapDataset file (11 energy bins): the same as the counts and
    background image files of the same data set, which are those cubes summed."""
    folder = data_dir / "fermi-3fhl-gc"
    path = folder / "fermi-3fhl-gc.fits.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    out = tmp_path / "out"
    assert _run(path, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "11 energy bins, summed over energy" in printed and "MASK_SAFE is not applied" in printed
    images = {
        "counts": gpumask.read_map(folder / "fermi-3fhl-gc-counts.fits.gz", backend="numpy"),
        "background": gpumask.read_map(folder / "fermi-3fhl-gc-background.fits.gz", backend="numpy"),
    }
    result = KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.3 deg")).run(images)
    mask, background, _, summary = _outputs(out)
    np.testing.assert_array_equal(mask.to_numpy(), result["exclusion"].to_numpy())
    # float32 cubes summed in another order than the image files: round-off only
    np.testing.assert_allclose(background, result["background"].to_numpy(), rtol=1e-5)
    assert summary["run"]["passes"] == result.n_iter and summary["inputs"]["energy_bins_summed"] == 11
