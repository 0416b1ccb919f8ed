"""``kill -9`` loops: a writer killed at random moments never leaves a
half-written file under the target name, and the next write removes the
temporary files the killed writers left.

- ``Map.write`` in a forked child that rewrites an 8 MB map in a loop (each
  version filled with its own number, also in META), killed 12 times;
- ``gpumask mask`` (the CLI, a fresh interpreter each time) killed 4 times at
  random moments of its run, then run to completion: the outputs equal a clean
  run's and the manifest's sha256 sums hold.

Bounded: about 10 s for the first, 20 s for the second; seeded kill times.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gpumask
from gpumask.batch.examples import write_example_fields


def _temporaries(folder, name):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(f".{name}.") and ".tmp" in p.name)


def _rewrite_forever(target, start, ready):
    geom = gpumask.WcsGeom.create(npix=(1000, 1000), binsz=0.01)
    k = start
    ready.set()
    while True:
        m = gpumask.Map.from_geom(geom, data=np.full(geom.data_shape, k, np.float64), backend="numpy")
        m.meta = {"k": k}
        m.write(target, overwrite=True)
        k += 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_map_write_killed_in_a_loop(tmp_path):
    target = tmp_path / "map.fits"
    rng = np.random.default_rng(16)
    context = multiprocessing.get_context("fork")
    seen_versions, left_behind, deadline = [], 0, time.monotonic() + 30
    for kill in range(12):
        ready = context.Event()
        child = context.Process(target=_rewrite_forever, args=(target, 1000 * kill, ready), daemon=True)
        child.start()
        assert ready.wait(10), "the writer did not start"
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        left_behind += bool(_temporaries(tmp_path, target.name))
        if target.exists():
            m = gpumask.read_map(target, backend="numpy")  # never a half-written file
            k = m.meta["k"]
            assert np.all(m.data == k), f"kill {kill}: the file mixes versions"
            seen_versions.append(k)
        assert time.monotonic() < deadline, "kill loop over its time bound"
    assert seen_versions, "no write ever completed"
    assert left_behind, "no kill landed inside a write (the loop tested nothing)"
    # the next write of the target removes the temporaries of the dead writers
    gpumask.Map.from_geom(gpumask.WcsGeom.create(npix=(4, 4), binsz=0.1), backend="numpy").write(
        target, overwrite=True)
    assert _temporaries(tmp_path, target.name) == []


CONFIG = """\
regions:
  - "galactic;circle(0,0,0.1)"
significance:
  counts: inputs/f0000_counts.fits
  background: inputs/f0000_background.fits
  correlation_radius: 0.1 deg
  threshold: 5
  low: 3
  dilation: 0.06 deg
output:
  mask: "out/{name}_mask.fits"
  sqrt_ts: "out/{name}_sqrt_ts.fits"
"""


def _mask_command(folder, *extra):
    env = dict(os.environ, GPUMASK_BACKEND="numpy")
    env.pop("GPUMASK_EMULATE_CUPY", None)
    return subprocess.Popen([sys.executable, "-m", "gpumask", "mask", str(folder / "config.yaml"),
                             "--name", "f0000", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=folder)


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_mask_command_killed_in_a_loop(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    write_example_fields(clean, n=1, npix=300, seed=4)
    (clean / "config.yaml").write_text(CONFIG)
    shutil.copytree(clean, killed)
    reference = _mask_command(clean)
    _, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err.decode()[-2000:]
    expected = gpumask.read_map(clean / "out" / "f0000_mask.fits", backend="numpy").to_numpy()

    rng = np.random.default_rng(9)
    for kill in range(4):
        run = _mask_command(killed, "--overwrite")
        time.sleep(rng.uniform(0.5, 3.0))
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
        for path in (killed / "out").glob("*.fits"):
            gpumask.read_map(path, backend="numpy")  # complete, or absent
        manifest = killed / "out" / "f0000_mask.json"
        if manifest.exists():
            for entry in json.loads(manifest.read_text())["outputs"].values():
                assert _sha256(entry["path"]) == entry["sha256"], f"kill {kill}: manifest does not hold"
    final = _mask_command(killed, "--overwrite")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-2000:]
    got = gpumask.read_map(killed / "out" / "f0000_mask.fits", backend="numpy").to_numpy()
    assert np.array_equal(got, expected)
    for entry in json.loads((killed / "out" / "f0000_mask.json").read_text())["outputs"].values():
        assert _sha256(entry["path"]) == entry["sha256"]
    assert [p.name for p in (killed / "out").iterdir() if ".tmp" in p.name] == []
