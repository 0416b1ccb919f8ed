"""``gpumask demo``: README's first command, its files, figures and numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import gpumask
from gpumask.__main__ import main

DEMO_FITS = (
    "exclusion_mask.fits", "catalog_mask.fits", "sqrt_ts.fits", "significance_mask.fits", "combined_mask.fits",
    "kbe_exclusion_mask.fits", "kbe_background.fits",
)
DEMO_FILES = DEMO_FITS + ("preview.png", "summary.json")


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
    from gpumask.cli._demo import DEMO_REGIONS

    ny, nx = mask.geom.data_shape
    yy, xx = np.mgrid[:ny, :nx]
    expected = np.zeros((ny, nx), bool)
    for region in regions.Regions.parse(DEMO_REGIONS, format="ds9"):
        expected |= region.to_pixel(mask.geom.wcs).contains(regions.PixCoord(xx, yy))
    np.testing.assert_array_equal(~data, expected)
    assert expected.sum() == 1958


def test_demo_significance_and_combined_masks(tmp_path):
    """The demo's significance step, redone here from its public pieces, and the
    combination of the three masks: every file is a boolean mask and nothing left
    the device early."""
    from gpumask.batch.examples import demo_dataset as simulated_dataset, demo_geom

    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["host_copies_before_writing"] == 0
    regions_mask = gpumask.read_map(tmp_path / "exclusion_mask.fits").to_numpy()
    catalog_mask = gpumask.read_map(tmp_path / "catalog_mask.fits").to_numpy()
    significance = gpumask.read_map(tmp_path / "significance_mask.fits")
    combined = gpumask.read_map(tmp_path / "combined_mask.fits").to_numpy()
    assert significance.is_mask and catalog_mask.dtype == bool
    np.testing.assert_array_equal(combined, regions_mask & catalog_mask & significance.to_numpy())

    # the demo's own geometry: the one read back from FITS differs in the last bits,
    # which moves sqrt_ts by ~1e-9 where it is near 0 (ts is a difference of large terms)
    dataset = simulated_dataset(demo_geom(), backend="numpy")
    sqrt_ts = gpumask.ExcessMapEstimator("0.4 deg").run(dataset)["sqrt_ts"].to_numpy()
    written = gpumask.read_map(tmp_path / "sqrt_ts.fits").to_numpy()
    np.testing.assert_array_equal(np.isnan(written), np.isnan(sqrt_ts))
    np.testing.assert_allclose(written, sqrt_ts, rtol=1e-12, equal_nan=True)
    seeds = sqrt_ts >= 5
    assert seeds.sum() > 0 and summary["significance"]["peak_sqrt_ts"] == pytest.approx(np.nanmax(sqrt_ts), abs=1e-3)
    excluded = ~significance.to_numpy()
    assert excluded[seeds].all()  # every 5 sigma pixel is excluded
    assert summary["significance"]["excluded_pixels"] == int(excluded.sum())
    assert summary["combined_excluded_pixels"] == int((~combined).sum())


def test_demo_kernel_background(tmp_path):
    """Step 5: the iterative estimator finds the simulated sources and a background
    whose mean is within 2% of the true one, and its files are what a rerun gives."""
    from gpumask.batch.examples import demo_dataset as simulated_dataset, true_background

    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["kernel_background"]
    mask = gpumask.read_map(tmp_path / "kbe_exclusion_mask.fits")
    background = gpumask.read_map(tmp_path / "kbe_background.fits").to_numpy()
    assert mask.is_mask and summary["converged"] and summary["passes"] >= 2
    assert summary["excluded_pixels"] == int((~mask.to_numpy()).sum()) > 500
    truth = true_background(mask.geom)
    assert summary["true_background"] == pytest.approx(truth.mean(), abs=1e-4)
    assert summary["mean_background"] == pytest.approx(truth.mean(), rel=0.02)
    # the smooth background is followed pixel by pixel within the ring's Poisson noise (~2.5%)
    relative = np.abs(background - truth) / truth
    assert summary["mean_relative_error"] == pytest.approx(relative.mean(), abs=1e-4) and relative.mean() < 0.04
    dataset = simulated_dataset(mask.geom, backend="numpy")
    kbe = gpumask.KernelBackgroundEstimator("0.1 deg", ("0.4 deg", "0.3 deg"), mask_dilation_radius="0.04 deg")
    again = kbe.run({"counts": dataset.counts})
    np.testing.assert_array_equal(again["exclusion"].to_numpy(), mask.to_numpy())
    np.testing.assert_allclose(again["background"].to_numpy(), background, rtol=1e-6)
    # the Crab (the brightest simulated source) is excluded
    x, y = mask.geom.coord_to_pix(SkyCoord(184.557, -5.784, unit="deg", frame="galactic"))
    assert not mask.to_numpy()[round(float(y)), round(float(x))]


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
    for name in DEMO_FITS:
        theirs = gammapy_maps.Map.read(tmp_path / name)
        ours = gpumask.read_map(tmp_path / name, backend="numpy")
        want = np.dtype(bool) if ours.is_mask else ours.dtype
        assert (theirs.data.dtype.kind, theirs.data.dtype.itemsize) == (want.kind, want.itemsize), name
        assert theirs.geom.data_shape == ours.geom.data_shape and theirs.geom.frame == "galactic"
        np.testing.assert_array_equal(theirs.data, ours.to_numpy())


def test_demo_prints_every_file(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DEMO_FILES)  # no temporary left
    for name in DEMO_FILES:
        line = next(line for line in lines if str(tmp_path / name) in line)
        assert len(line.split(str(tmp_path / name), 1)[1].strip()) > 10  # with a description
    summary = json.loads((tmp_path / "summary.json").read_text())
    for source in summary["catalog"]["sources"]:
        assert source["name"] in printed
    assert f"{summary['catalog']['excluded_pixels']} px excluded" in printed
    assert "0 host copies before writing" in printed


def _package_sources():
    """The demo's sources read straight from the package data with astropy."""
    import importlib.resources

    from astropy.table import Table

    ref = importlib.resources.files("gpumask.cli") / "data" / "demo_sources.ecsv"
    with importlib.resources.as_file(ref) as path:
        return Table.read(path, format="ascii.ecsv")


def test_demo_sources_are_package_data():
    from gpumask.batch.examples import demo_catalog, demo_geom

    table = _package_sources()
    assert 4 <= len(table) <= 7 and "Crab nebula" in list(table["Source_Name"])
    assert {"Source_Name", "RAJ2000", "DEJ2000", "Size", "Counts"} <= set(table.colnames)
    assert table["RAJ2000"].unit == "deg" and table["Size"].unit == "deg"
    assert any("3FGL" in line or "gamma-cat" in line for line in table.meta["comments"])
    catalog = demo_catalog()
    assert list(catalog.names) == list(table["Source_Name"])
    assert demo_geom().contains(catalog.positions).all()
    counts = np.asarray(table["Counts"])
    assert counts.max() >= 10 * np.median(counts)  # the Crab stands out


@pytest.mark.data
def test_demo_sources_match_the_catalogs(data_dir):
    """Positions (and sizes: all point-like) as the shared catalog files give them."""
    table = _package_sources()
    cats = data_dir / "catalogs"
    files = {"gamma-cat": ("gamma-cat", "gammacat/gammacat.fits.gz"), "3FGL": ("3fgl", "fermi/gll_psc_v16.fit.gz"),
             "3HWC": ("3hwc", "3HWC.ecsv")}
    for row in table:
        fmt, name = files[row["Position_Catalog"]]
        if not (cats / name).is_file():
            pytest.skip(f"{cats / name} not found")
        catalog = gpumask.SourceCatalog.read(cats / name, format=fmt)
        ours = SkyCoord(row["RAJ2000"], row["DEJ2000"], unit="deg")
        sep = catalog.positions.separation(ours).arcsec
        best = int(np.argmin(sep))
        assert sep[best] < 0.5, (row["Source_Name"], catalog.names[best], sep[best])
        assert catalog.morphology["type"][best] == "point" and row["Size"] == 0


def test_demo_catalog_mask_brute_force(tmp_path):
    """catalog_mask.fits against every pixel centre's separation from every source
    (astropy WCS + SkyCoord.separation), radius = hypot(3 sigma, 0.1 deg psf)."""
    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    mask = gpumask.read_map(tmp_path / "catalog_mask.fits", backend="numpy")
    table = _package_sources()
    ny, nx = mask.geom.data_shape
    yy, xx = np.mgrid[:ny, :nx]
    pixels = mask.geom.wcs.pixel_to_world(xx, yy)
    excluded = np.zeros((ny, nx), bool)
    for row in table:
        radius = np.hypot(3 * row["Size"], 0.1)
        excluded |= pixels.separation(SkyCoord(row["RAJ2000"], row["DEJ2000"], unit="deg")).deg <= radius
    assert excluded.sum() > 5 * 70  # every source covers a ~0.1 deg disk (~78 px)
    np.testing.assert_array_equal(~mask.to_numpy(), excluded)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["catalog"]["excluded_pixels"] == int(excluded.sum())


def test_demo_preview_png(tmp_path):
    """preview.png is a matplotlib figure (Agg) of sensible size: the PNG's Software
    chunk names matplotlib, it reads back with matplotlib.image, is mostly not blank,
    and the drawing did not count as a host copy before writing."""
    image = pytest.importorskip("matplotlib.image")

    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    raw = (tmp_path / "preview.png").read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" in raw[:400] and b"Matplotlib" in raw[:400]
    picture = image.imread(tmp_path / "preview.png")
    from gpumask.cli._demo import PREVIEW_DPI, PREVIEW_SIZE

    assert picture.shape[:2] == (round(PREVIEW_SIZE[1] * PREVIEW_DPI), round(PREVIEW_SIZE[0] * PREVIEW_DPI))
    rgb = picture[..., :3]
    assert (rgb.std(axis=-1) > 0.05).mean() > 0.2  # colour images, not an empty canvas
    assert len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 500
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["host_copies_before_writing"] == 0


def test_demo_preview_figure_objects(tmp_path):
    """The figure render_preview draws: WCS axes with frame labels, labelled colorbars,
    one legend entry per mask, the map's data in the images, a title with the numbers."""
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    from gpumask.cli import _demo

    drawn = {}
    original = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn["fig"] = fig
        return original(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.figure.Figure, "savefig", keep)
        summary = _demo.run_demo(tmp_path, backend="numpy")
    fig = drawn["fig"]
    left, right = [ax for ax in fig.axes if hasattr(ax, "coords")]
    assert left.coords[0].get_axislabel() == "Galactic Longitude"
    assert left.coords[1].get_axislabel() == "Galactic Latitude"
    sqrt_ts = gpumask.read_map(tmp_path / "sqrt_ts.fits").to_numpy()
    np.testing.assert_array_equal(np.asarray(left.images[0].get_array().filled(np.nan)), sqrt_ts)
    background = gpumask.read_map(tmp_path / "kbe_background.fits").to_numpy()
    np.testing.assert_allclose(np.asarray(right.images[0].get_array()), background)
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert [label.split(":")[0].split(" (")[0] for label in labels] == ["regions", "catalog", "significance",
                                                                        "combined"]
    fraction = 100 * summary["combined_excluded_pixels"] / 250**2
    assert f"combined: {fraction:.1f} % excluded" in labels
    assert len(right.get_legend().get_texts()) == 1
    colorbar_labels = [ax.get_ylabel() for ax in fig.axes if not hasattr(ax, "coords")]
    assert any("sqrt(TS)" in text for text in colorbar_labels)
    assert any("counts / pixel" in text for text in colorbar_labels)
    title = fig._suptitle.get_text()
    assert "Crab" in title and "250x250" in title and f"{fraction:.1f} %" in title


def test_demo_refusal_writes_nothing(tmp_path, capsys):
    """One existing output (here the preview) stops the run before any work."""
    out_dir = tmp_path / "demo"
    out_dir.mkdir()
    (out_dir / "preview.png").write_bytes(b"mine")
    assert main(["demo", "--out", str(out_dir), "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert str(out_dir / "preview.png") in err and "--overwrite" in err
    assert [p.name for p in out_dir.iterdir()] == ["preview.png"]
    assert (out_dir / "preview.png").read_bytes() == b"mine"


def test_import_gpumask_does_not_import_matplotlib():
    """matplotlib is a dependency, but only the figure code imports it, when called."""
    code = "import sys, gpumask, gpumask.cli._demo; sys.exit('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
