"""Papercuts of issue 18 on ``gpumask mask`` and ``gpumask batch``: missing output
folders are created (only inside the allowed folder, only after validation), errors
of a flags-only run name the flags, batch reports go next to the outputs and a
skip-only rerun writes none, and the dilation/erosion naming is explained where
users look."""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import pytest

import gpumask
from gpumask.__main__ import main
from gpumask.batch.config import ConfigError, MaskConfig
from gpumask.batch.examples import write_example_fields

REGIONS = ["galactic;box(185,-4,1.0,0.5,45)", "icrs;circle(83.633,22.0145,0.3)"]
CONFIG = """
geometry:
  skydir: [83.633, 22.0145]
  skydir_frame: icrs
  frame: galactic
  width: 2 deg
  binsz: 0.02
regions:
  - "galactic;box(185,-4,1.0,0.5,45)"
  - "icrs;circle(83.633,22.0145,0.3)"
output:
  mask: "{mask}"
"""


def _config(tmp_path, mask):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(mask=mask)))
    return path


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ----------------------------------------------------------------------------- missing output folders


@pytest.mark.parametrize("template", ["out/{name}_mask.fits", "out/{name}/mask.fits", "a/b/c/{name}.fits"])
def test_mask_creates_missing_output_folders(tmp_path, capsys, backend, template):
    """``out/`` (and deeper folders named by the template or by {name}) are created;
    the mask equals the regions' mask computed by hand."""
    path = _config(tmp_path, template)
    assert main(["mask", str(path), "--name", "crab", "--backend", backend.name, "--dry-run"]) == 0
    assert "(folder to be created)" in capsys.readouterr().out
    assert _files(tmp_path) == ["config.yaml"]  # a dry run creates nothing
    assert main(["mask", str(path), "--name", "crab", "--backend", backend.name]) == 0, capsys.readouterr().err
    written = tmp_path / template.format(name="crab")
    mask = gpumask.read_map(written, backend="numpy")
    expected = mask.geom.region_mask(REGIONS, inside=False)
    assert mask.is_mask and (mask.to_numpy() == expected.to_numpy()).all()
    assert written.with_suffix(".json").is_file()  # the manifest, next to it


def test_a_file_in_the_way_is_a_validation_problem(tmp_path, capsys):
    (tmp_path / "out").write_text("not a folder")
    path = _config(tmp_path, "out/{name}_mask.fits")
    with pytest.raises(ConfigError) as info:
        MaskConfig.read(path).field_job("crab")
    (key, message), = info.value.problems
    assert key == "output.mask" and f"{tmp_path / 'out'} is a file, not a folder" in message
    assert main(["mask", str(path), "--name", "crab", "--backend", "numpy"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert _files(tmp_path) == ["config.yaml", "out"]


def test_no_folder_is_created_when_validation_fails(tmp_path, capsys):
    path = _config(tmp_path, "out/{name}_mask.fits")
    text = path.read_text().replace("width: 2 deg", "width: 2 parsec")
    path.write_text(text)
    assert main(["mask", str(path), "--name", "crab", "--backend", "numpy"]) == 2
    assert "geometry.width" in capsys.readouterr().err
    assert _files(tmp_path) == ["config.yaml"]
    # a field value that leaves the folder: refused, nothing created anywhere
    path.write_text(text.replace("2 parsec", "2 deg"))
    assert main(["mask", str(path), "--name", "../escape", "--backend", "numpy"]) == 2
    assert _files(tmp_path) == ["config.yaml"] and not (tmp_path.parent / "escape_mask.fits").exists()


def test_make_folders_stays_inside_the_allowed_folder(tmp_path):
    from gpumask.batch.guards import folder_problem, make_folders

    allowed = [os.path.realpath(tmp_path / "out")]
    created = make_folders(str(tmp_path / "out" / "a" / "b"), allowed)
    assert created == [str(tmp_path / "out"), str(tmp_path / "out" / "a"), str(tmp_path / "out" / "a" / "b")]
    assert make_folders(str(tmp_path / "out" / "a"), allowed) == []  # existing: nothing to do
    with pytest.raises(PermissionError, match="outside"):
        make_folders(str(tmp_path / "elsewhere" / "x"), allowed)
    assert not (tmp_path / "elsewhere").exists()
    # a link inside the allowed folder that points out of it is not followed to create folders
    (tmp_path / "outside").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(PermissionError, match="outside"):
        make_folders(str(tmp_path / "out" / "link" / "new"), allowed)
    assert list((tmp_path / "outside").iterdir()) == []
    # a file where a folder should be
    (tmp_path / "out" / "file").write_text("x")
    assert "is a file, not a folder" in folder_problem(str(tmp_path / "out" / "file" / "sub"))
    with pytest.raises(OSError):
        make_folders(str(tmp_path / "out" / "file" / "sub"), allowed)


# ----------------------------------------------------------------------------- flags-only messages


def test_flags_only_without_out_names_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = ["mask", "--name", "crab", "--skydir", "83.633", "22.0145", "--width", "2 deg", "--binsz", "0.02",
             "--backend", "numpy"]
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert "--out is required" in err and "output.mask" not in err
    assert main([*flags, "--threshold", "5", "--out", "m.fits"]) == 2  # a key without its section
    err = capsys.readouterr().err
    assert "--counts is required with significance flags: give --dataset, or both --counts and --background" \
        in err and "significance.counts" not in err
    assert main([*flags[:-2], "--binsz", "0.02 m", "--backend", "numpy", "--out", "m.fits"]) == 2
    assert "--binsz: '0.02 m' is not a positive angle" in capsys.readouterr().err
    # with a config file, the message names the config key
    (tmp_path / "c.yaml").write_text("geometry: {skydir: [1, 2], width: 1 deg, binsz: 0.02}\n")
    assert main(["mask", "c.yaml", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "output.mask: missing" in err and "--out is required" not in err
    assert _files(tmp_path) == ["c.yaml"]


# ----------------------------------------------------------------------------- dilation = erosion


def test_mask_help_explains_dilation_is_an_erosion_of_the_usable_mask(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["mask", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "erosion of the mask" in out and "binary_erode" in out
    import gpumask.batch.config as config

    assert "binary_erode" in config.__doc__


def test_dilation_in_the_config_equals_binary_erode_in_python(tmp_path, capsys):
    """What the help text says, checked: ``dilation: 0.1 deg`` in a config is
    ``mask.binary_erode("0.1 deg")`` of the regions' mask in Python."""
    path = _config(tmp_path, "{name}_mask.fits")
    path.write_text(path.read_text() + "dilation: 0.1 deg\n")
    assert main(["mask", str(path), "--name", "crab", "--backend", "numpy"]) == 0, capsys.readouterr().err
    mask = gpumask.read_map(tmp_path / "crab_mask.fits", backend="numpy")
    expected = mask.geom.region_mask(REGIONS, inside=False).binary_erode("0.1 deg")
    assert (mask.to_numpy() == expected.to_numpy()).all()
    assert mask.to_numpy().sum() < mask.geom.region_mask(REGIONS, inside=False).to_numpy().sum()


# ----------------------------------------------------------------------------- batch reports and folders


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("papercut-example")
    write_example_fields(folder, n=3, npix=16, seed=2)
    return folder


@pytest.fixture
def workdir(example, tmp_path):
    target = tmp_path / "batch"
    shutil.copytree(example, target)
    return target


def _batch(workdir, *extra):
    return main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
                 "--backend", "numpy", "--progress", "log", *extra])


def test_batch_report_goes_next_to_the_outputs(workdir, tmp_path, capsys, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    shutil.rmtree(workdir / "out")  # the output folder is created too
    assert _batch(workdir) == 0
    out = capsys.readouterr().out
    reports = list((workdir / "out").glob("gpumask-batch-*.json"))
    assert len(reports) == 1 and f"report {reports[0]}" in out
    assert list(elsewhere.iterdir()) == []  # nothing in the working directory
    report = json.loads(reports[0].read_text())
    assert report["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    assert report["created_folders"] == [str(workdir / "out")]
    # a rerun that only skips complete fields writes no report ...
    assert _batch(workdir) == 0
    assert "no report written" in capsys.readouterr().out
    assert len(list((workdir / "out").glob("gpumask-batch-*.json"))) == 1
    # ... unless one is asked for
    assert _batch(workdir, "--report", str(tmp_path / "asked.json")) == 0
    assert json.loads((tmp_path / "asked.json").read_text())["counts"] == {"done": 0, "skipped": 3, "failed": 0}
    assert list(elsewhere.iterdir()) == []


def test_batch_report_of_a_template_with_the_name_first(workdir, capsys):
    """``{name}/mask.fits``: the report goes to the config's folder, where the
    template's fixed part ends; every field's folder is created."""
    config = workdir / "config.yaml"
    config.write_text(config.read_text().replace("out/{name}_mask.fits", "{name}/mask.fits")
                      .replace("out/{name}_sqrt_ts.fits", "{name}/sqrt_ts.fits"))
    assert _batch(workdir) == 0, capsys.readouterr().err
    assert len(list(workdir.glob("gpumask-batch-*.json"))) == 1
    assert all((workdir / f"f{k:04d}" / "mask.fits").is_file() for k in range(3))


def test_batch_with_config_problems_creates_no_folder(workdir, capsys):
    shutil.rmtree(workdir / "out")
    config = workdir / "config.yaml"
    config.write_text(config.read_text().replace("threshold: 5", "threshold: five"))
    assert _batch(workdir) == 2
    assert "significance.threshold" in capsys.readouterr().err
    assert not (workdir / "out").exists()
