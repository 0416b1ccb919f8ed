"""The ``gpumask`` command itself: dispatch, ``python -m gpumask``, ``gpumask info``."""

from __future__ import annotations

import json
import subprocess
import sys

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
    for name in ("info", "demo", "mask", "kbe", "batch"):
        assert name in out
