"""The ``gpumask`` command itself: dispatch, ``python -m gpumask``, ``gpumask info``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import gpumask
from gpumask.__main__ import main


def test_info_command(capsys):
    assert main(["info", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "backend         : numpy" in out and "explicit backend= argument" in out


def test_python_dash_m_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gpumask", "info", "--backend", "numpy"],
        capture_output=True, text=True, check=True,
    )
    assert "gpumask info" in result.stdout


def test_bad_backend_is_reported(capsys):
    assert main(["info", "--backend", "tpu"]) == 2
    assert "tpu" in capsys.readouterr().err


def test_info_json(capsys):
    assert main(["info", "--json", "--backend", "numpy"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "numpy" and isinstance(report["gpus"], list)


def test_help_lists_every_sub_command(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for name in ("info", "demo", "mask", "kbe", "batch", "examples"):
        assert name in out


# ----------------------------------------------------------------------------- info on a CPU-only machine

NO_CUPY = ("cupy cannot be imported (ModuleNotFoundError: No module named 'cupy'); install "
           "gpumask[cuda12] or gpumask[cuda13] to match your CUDA driver")


@pytest.fixture
def cpu_only(monkeypatch):
    """What ``gpumask.backend`` reports on a machine without CuPy."""
    import gpumask.backend as bk
    gi = importlib.import_module("gpumask.info")  # gpumask.info is also the function

    monkeypatch.delenv("GPUMASK_BACKEND", raising=False)
    for module in (bk, gi):
        monkeypatch.setattr(module, "cupy_status", lambda: (False, NO_CUPY))
    monkeypatch.setattr(gi, "gpu_devices", lambda: [])
    return NO_CUPY


def test_info_on_a_cpu_only_machine_says_so_plainly(cpu_only, capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend         : numpy, CPU backend (NumPy/SciPy) in use" in out
    assert "GPU backend     : not available: CuPy is not installed; to use a GPU install gpumask[cuda12] or " \
        "gpumask[cuda13]" in out
    assert out.count("ModuleNotFoundError") == 1  # the import error once, as a detail
    assert "    detail        : ModuleNotFoundError: No module named 'cupy'" in out
    assert "chosen because  : auto (GPUMASK_BACKEND unset): no usable GPU backend" in out


def test_info_function_on_a_cpu_only_machine(cpu_only):
    import gpumask

    report = gpumask.info()
    assert report["backend"] == "numpy" and report["cupy_usable"] is False
    assert report["cupy_status"] == cpu_only  # the full probe message stays in the dict
    assert report["gpu_backend"].startswith("not available: CuPy is not installed")
    assert str(report).count("No module named 'cupy'") == 1


def test_info_with_cupy_but_no_device(monkeypatch, capsys):
    import gpumask.backend as bk
    gi = importlib.import_module("gpumask.info")  # gpumask.info is also the function

    status = ("cupy 14.0.0 is installed but no CUDA device is available (cupy.cuda.is_available() is False; "
              "check the driver and CUDA_VISIBLE_DEVICES)")
    monkeypatch.setenv("GPUMASK_BACKEND", "auto")
    for module in (bk, gi):
        monkeypatch.setattr(module, "cupy_status", lambda: (False, status))
    monkeypatch.setattr(gi, "gpu_devices", lambda: [])
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "GPU backend     : not available: CuPy is installed but cannot use a CUDA device here" in out
    assert out.count("CUDA_VISIBLE_DEVICES") == 1


def test_info_when_the_gpu_backend_works(monkeypatch, capsys):
    import gpumask.backend as bk
    gi = importlib.import_module("gpumask.info")  # gpumask.info is also the function

    monkeypatch.delenv("GPUMASK_BACKEND", raising=False)
    for module in (bk, gi):
        monkeypatch.setattr(module, "cupy_status", lambda: (True, "cupy 14.0.0 with a CUDA device"))
    monkeypatch.setattr(gi, "gpu_devices", lambda: [{"id": 0, "name": "NVIDIA H200", "memory_gib": 139.8,
                                                     "compute_capability": "9.0"}])
    report = gi.info()
    assert report["backend"] == "cupy" and report["gpu_backend"] == "available (cupy 14.0.0 with a CUDA device)"
    text = str(report)
    assert "cupy, GPU backend (CuPy) in use" in text and "NVIDIA H200, 139.8 GiB" in text
    assert text.count("cupy 14.0.0 with a CUDA device") == 1


# ----------------------------------------------------------------------------- gpumask examples


def test_examples_command_writes_a_runnable_batch(tmp_path, capsys):
    folder = tmp_path / "example"
    assert main(["examples", str(folder), "--n", "2", "--npix", "16"]) == 0
    out = capsys.readouterr().out
    assert f"gpumask batch {folder / 'fields.csv'} --config {folder / 'config.yaml'}" in out
    rows = (folder / "fields.csv").read_text().splitlines()
    assert rows[0] == "name,lon,lat,counts,background" and [r.split(",")[0] for r in rows[1:]] == ["f0000", "f0001"]
    shape = gpumask.read_map(folder / "inputs" / "f0001_counts.fits", backend="numpy").data.shape
    assert shape == (16, 16)
    # the example runs as written
    assert main(["batch", str(folder / "fields.csv"), "--config", str(folder / "config.yaml"),
                 "--backend", "numpy", "--progress", "log"]) == 0
    assert "2 done" in capsys.readouterr().out
    assert sorted(p.name for p in (folder / "out").glob("*_mask.fits")) == ["f0000_mask.fits", "f0001_mask.fits"]
    # an existing example is not replaced without --overwrite
    before = (folder / "fields.csv").read_bytes()
    assert main(["examples", str(folder), "--n", "3", "--npix", "16"]) == 2
    assert "already holds config.yaml, fields.csv" in capsys.readouterr().err
    assert (folder / "fields.csv").read_bytes() == before
    assert main(["examples", str(folder), "--n", "3", "--npix", "16", "--overwrite"]) == 0
    assert len((folder / "fields.csv").read_text().splitlines()) == 4


def test_examples_command_refuses_bad_values(tmp_path, capsys):
    assert main(["examples", str(tmp_path / "e"), "--n", "0"]) == 2
    assert "n must be an integer >= 1, got 0" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["examples", str(tmp_path / "file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["examples", "--help"])
    assert exit_.value.code == 0
    assert "write_example_fields" in capsys.readouterr().out


def test_write_example_fields_is_public():
    import gpumask.batch

    assert "write_example_fields" in gpumask.batch.__all__
    doc = gpumask.batch.write_example_fields.__doc__
    assert all(part in doc for part in ("Parameters", "Returns", "Examples", "gpumask examples"))
    with pytest.raises(ValueError, match="npix must be an integer >= 8, got 4"):
        gpumask.batch.write_example_fields("unused", npix=4)
