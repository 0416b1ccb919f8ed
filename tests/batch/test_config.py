"""Mask configs: validation of the whole config before any work, key paths in every
message, and the resolution of one field (templates, paths, geometry size)."""

from __future__ import annotations

import textwrap

import pytest

from gpumask.batch.config import ConfigError, MaskConfig
from gpumask.__main__ import main


def _config(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
geometry:
  skydir: [83.633, 22.0145]
  skydir_frame: icrs
  frame: galactic
  width: 2 deg
  binsz: 0.02
regions:
  - "icrs;circle(83.633,22.0145,0.3)"
output:
  mask: "{name}_mask.fits"
"""


def test_a_good_config_resolves_to_a_job(tmp_path):
    config = MaskConfig.read(_config(tmp_path, GOOD))
    job = config.field_job("crab")
    assert job.shape == (100, 100)
    assert job.outputs["mask"] == str(tmp_path / "crab_mask.fits")  # relative to the config's folder
    assert job.manifest == tmp_path / "crab_mask.json"
    assert job.geometry["frame"] == "galactic" and job.geometry["skydir"] == (83.633, 22.0145)
    # the hash follows what determines the result, not the backend
    again = MaskConfig.read(_config(tmp_path, GOOD.replace("geometry:", "backend: numpy\ngeometry:")))
    assert again.field_job("crab").job_hash == job.job_hash
    other = MaskConfig.read(_config(tmp_path, GOOD.replace("0.3)", "0.4)")))
    assert other.field_job("crab").job_hash != job.job_hash


def test_every_problem_is_reported_with_its_key_path(tmp_path):
    path = _config(tmp_path, """
        geometry:
          skydir: [83.6, 122]
          widht: 5 deg
          binsz: 0.02 m
          frame: ecliptic
        regions: [""]
        catalogs:
          - name: 5fgl
          - radius: 0.3 deg
        significance:
          counts: c.fits
          correlation_radius: -0.4 deg
          threshold: 3
          low: 5
          nan: drop
          connectivity: 3
        dilation: 1 m
        output:
          mask: mask.png
        extra: 1
    """)
    with pytest.raises(ConfigError) as info:
        MaskConfig.read(path)
    problems = dict(info.value.problems)
    expected = {
        "extra": "unknown key",
        "geometry.widht": "did you mean 'width'",
        "geometry.binsz": "not a positive angle",
        "geometry.frame": "choose one of",
        "geometry.skydir[1]": "outside [-90, 90]",
        "regions[0]": "non-empty string",
        "catalogs[0].name": "unknown catalog '5fgl'",
        "catalogs[1]": "give name",
        "significance.correlation_radius": "not a positive angle",
        "significance.low": "must not be above threshold",
        "significance.nan": "choose one of",
        "significance.connectivity": "choose one of [1, 2]",
        "dilation": "'0.1 deg'",
        "output.mask": ".fits",
    }
    for key, text in expected.items():
        assert key in problems, (key, info.value)
        assert text in problems[key], (key, problems[key])
    assert str(path) in str(info.value) and f"{len(problems)} problems" in str(info.value)


def test_field_resolution_problems(tmp_path):
    config = MaskConfig.read(_config(tmp_path, """
        significance:
          counts: "{run}/counts.fits"
          background: missing_background.fits
        regions: [no_such_file.reg]
        output:
          mask: "out/{name}.fits"
    """))
    with pytest.raises(ConfigError) as info:
        config.field_job("f1", {"run": "r1"}, key_prefix="fields[0]")
    problems = dict(info.value.problems)
    assert "file not found" in problems["fields[0].significance.counts"]
    assert "file not found" in problems["fields[0].significance.background"]
    assert "region file not found" in problems["fields[0].regions[0]"]
    assert "fields[0].output.mask" not in problems  # a missing out/ is created at run time
    with pytest.raises(ConfigError, match=r"uses \{run\}, which the field does not define"):
        config.field_job("f1")


def test_geometry_too_large_for_the_backend(tmp_path):
    config = MaskConfig.read(_config(tmp_path, GOOD.replace("width: 2 deg", "width: 180 deg")
                                     .replace("binsz: 0.02", "binsz: 0.0002")))
    with pytest.raises(ConfigError) as info:
        config.field_job("huge")
    (key, message), = info.value.problems
    assert key == "geometry"
    assert "900000 x 900000 px" in message and "larger geometry.binsz" in message


def test_missing_geometry_and_inputs(tmp_path):
    config = MaskConfig.read(_config(tmp_path, "output: {mask: m.fits}\n"))
    with pytest.raises(ConfigError, match="geometry: missing: give geometry"):
        config.field_job()
    with pytest.raises(ConfigError, match="output.mask: missing"):
        MaskConfig({})


def test_bad_config_writes_nothing(tmp_path, capsys):
    path = _config(tmp_path, GOOD.replace("width: 2 deg", "width: 2 parsec"))
    assert main(["mask", str(path)]) == 2
    err = capsys.readouterr().err
    assert "geometry.width" in err and "'5 deg'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_yaml_syntax_error_names_the_file(tmp_path, capsys):
    path = _config(tmp_path, "geometry: [unclosed\n")
    assert main(["mask", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_mask_command_with_flags_and_rerun(tmp_path, capsys, monkeypatch):
    """``gpumask mask`` with flags only: the notebook's region mask, then an
    idempotent rerun, a refusal to replace a foreign file, and --overwrite."""
    import gpumask

    monkeypatch.chdir(tmp_path)
    args = ["mask", "--name", "crab", "--skydir", "83.633", "22.0145", "--skydir-frame", "icrs",
            "--frame", "galactic", "--width", "5 deg", "--binsz", "0.02 deg",
            "--region", "galactic;box(185,-4,1.0,0.5,45)", "--region", "icrs;circle(83.633,22.0145,0.3)",
            "--out", "crab_mask.fits", "--backend", "numpy"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "crab: 250 x 250 px, 1958 excluded" in out and "crab_mask.json" in out
    mask = gpumask.read_map(tmp_path / "crab_mask.fits")
    expected = mask.geom.region_mask(["galactic;box(185,-4,1.0,0.5,45)", "icrs;circle(83.633,22.0145,0.3)"],
                                     inside=False)
    assert (mask.to_numpy() == expected.to_numpy()).all()
    stamp = (tmp_path / "crab_mask.fits").stat().st_mtime_ns
    assert main(args) == 0
    assert "complete" in capsys.readouterr().out
    assert (tmp_path / "crab_mask.fits").stat().st_mtime_ns == stamp
    assert main([*args, "--dry-run"]) == 0 and "crab: complete" in capsys.readouterr().out
    (tmp_path / "other.fits").write_bytes(b"not mine")
    other = [a if a != "crab_mask.fits" else "other.fits" for a in args]
    assert main(other) == 2
    assert "not written by this job" in capsys.readouterr().err
    assert (tmp_path / "other.fits").read_bytes() == b"not mine"
    assert main([*other, "--overwrite"]) == 0
    assert gpumask.read_map(tmp_path / "other.fits").is_mask


def test_mask_command_flags_override_the_config(tmp_path, capsys):
    path = _config(tmp_path, GOOD)
    assert main(["mask", str(path), "--name", "x", "--width", "1 deg", "--backend", "numpy", "--dry-run"]) == 0
    assert "50 x 50 px" in capsys.readouterr().out
    assert main(["mask"]) == 2 and "give a config file or flags" in capsys.readouterr().err


def test_info_json(capsys):
    import json

    assert main(["info", "--json", "--backend", "numpy"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "numpy" and "numpy" in report["packages"] and "cupy_cache_dir" in report
