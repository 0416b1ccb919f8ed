"""The field pipeline and the batch runner: results against the public API run by
hand, stacking, resuming, shards, the dask executor and a worker killed mid-run."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
import textwrap

import numpy as np
import pytest

import gpumask
from gpumask.batch.examples import write_example_fields
from gpumask.__main__ import main
from gpumask.batch.runner import Progress, load_fields, parse_shard, plan, run_batch, select_shard, shard_from_env
from gpumask.batch.config import ConfigError, MaskConfig
from gpumask.batch.pipeline import field_state, run_job, run_jobs

N_FIELDS = 20
NPIX = 64


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """20 simulated fields (inputs only); tests copy the folder before running."""
    folder = tmp_path_factory.mktemp("example")
    write_example_fields(folder, n=N_FIELDS, npix=NPIX, seed=3)
    return folder


@pytest.fixture
def workdir(example, tmp_path):
    target = tmp_path / "batch"
    shutil.copytree(example, target)
    return target


def _masks(folder):
    return {p.name: gpumask.read_map(p, backend="numpy").to_numpy() for p in sorted((folder / "out").glob("*_mask.fits"))}


def _run(folder, **kwargs):
    jobs = plan(folder / "config.yaml", folder / "fields.csv")
    kwargs.setdefault("backend", "numpy")
    return run_batch(jobs, progress=Progress(len(jobs), stream=io.StringIO()), **kwargs)


# ----------------------------------------------------------------------------- one field


def test_field_equals_the_public_api_by_hand(workdir, backend):
    """Regions + catalog + significance (hysteresis, dilation): the pipeline's mask
    is the composition of the public functions, and its sqrt_ts is the estimator's."""
    # explain (default on) costs a few counted host copies; this test pins the copy-free path
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv", overrides={"explain": False})
    job = jobs[2]
    with gpumask.count_transfers() as transfers:
        outcome = run_job(job, backend=backend)
    assert outcome.status == "done", outcome.error
    assert outcome.stats["host_copies_before_writing"] == 0
    # the only copies are the FITS writing (one per map) and the excluded-pixel count
    assert transfers.calls == 3

    counts = gpumask.read_map(job.significance["counts"], backend=backend)
    background = gpumask.read_map(job.significance["background"], backend=backend)
    sqrt_ts = gpumask.ExcessMapEstimator("0.1 deg").run(gpumask.MapDataset(counts, background))["sqrt_ts"]
    sig = gpumask.exclusion_from_significance(sqrt_ts, 5, low=3).binary_erode("0.06 deg")
    catalog = gpumask.SourceCatalog.read(workdir / "catalog.ecsv", format="table")
    lon, lat = load_fields(workdir / "fields.csv")[0][2]["lon"], 0.0
    with gpumask.use_backend(backend):  # new masks on the test's backend, whatever the default
        expected = (
            counts.geom.region_mask(f"galactic;circle({lon},{lat},0.1)", inside=False)
            & gpumask.exclusion_mask(counts.geom, catalog, radius="0.15 deg")
            & sig
        )
    mask = gpumask.read_map(job.outputs["mask"], backend="numpy")
    assert mask.is_mask and mask.geom == counts.geom
    np.testing.assert_array_equal(mask.to_numpy(), expected.to_numpy())
    assert 0 < (~mask.to_numpy()).sum() < mask.data.size / 2
    written = gpumask.read_map(job.outputs["sqrt_ts"], backend="numpy").to_numpy()
    np.testing.assert_allclose(written, sqrt_ts.to_numpy(), rtol=0, atol=1e-12)
    manifest = json.loads(job.manifest.read_text())
    assert manifest["job_hash"] == job.job_hash and set(manifest["outputs"]) == {"mask", "sqrt_ts"}
    assert manifest["excluded_pixels"] == int((~mask.to_numpy()).sum())


def test_real_data_field_equals_the_public_api(data_dir, tmp_path):
    """The Fermi GC counts and background through a config; the same steps by hand."""
    gc = data_dir / "fermi-3fhl-gc"
    config = tmp_path / "gc.yaml"
    config.write_text(textwrap.dedent(f"""
        regions: ["galactic;box(0,0,1,0.4,0)"]
        significance:
          counts: {gc / 'fermi-3fhl-gc-counts.fits.gz'}
          background: {gc / 'fermi-3fhl-gc-background.fits.gz'}
          correlation_radius: 0.2 deg
          threshold: 5
          low: 3
          dilation: 0.1 deg
        dilation: 0.05 deg
        output: {{mask: gc_mask.fits}}
    """))
    job = MaskConfig.read(config).field_job("gc")
    outcome = run_job(job, backend="numpy")
    assert outcome.status == "done", outcome.error
    counts = gpumask.read_map(gc / "fermi-3fhl-gc-counts.fits.gz", backend="numpy")
    background = gpumask.read_map(gc / "fermi-3fhl-gc-background.fits.gz", backend="numpy")
    sqrt_ts = gpumask.ExcessMapEstimator("0.2 deg").run(gpumask.MapDataset(counts, background))["sqrt_ts"]
    expected = (
        counts.geom.region_mask("galactic;box(0,0,1,0.4,0)", inside=False, backend="numpy")
        & gpumask.exclusion_from_significance(sqrt_ts, 5, low=3).binary_erode("0.1 deg")
    ).binary_erode("0.05 deg")
    mask = gpumask.read_map(tmp_path / "gc_mask.fits").to_numpy()
    np.testing.assert_array_equal(mask, expected.to_numpy())
    assert 1000 < (~mask).sum() < mask.size / 2


def test_stacked_equals_one_at_a_time(example, tmp_path):
    """The local executor stacks the 20 equal-shape fields; masks identical to
    fields run one by one, significance maps within 1e-12."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(example, a)
    shutil.copytree(example, b)
    report_a = _run(a, stack=True)
    report_b = _run(b, stack=False)
    assert report_a["counts"] == report_b["counts"] == {"done": N_FIELDS, "skipped": 0, "failed": 0}
    # per-field times add up to the batch time (a stack's step is shared, not repeated)
    assert sum(f["seconds"] for f in report_a["fields"]) <= report_a["seconds"] * 1.05 + 0.05
    masks_a, masks_b = _masks(a), _masks(b)
    assert len(masks_a) == N_FIELDS
    for name in masks_a:
        np.testing.assert_array_equal(masks_a[name], masks_b[name])
        ts_a = gpumask.read_map(a / "out" / name.replace("_mask", "_sqrt_ts")).to_numpy()
        ts_b = gpumask.read_map(b / "out" / name.replace("_mask", "_sqrt_ts")).to_numpy()
        np.testing.assert_allclose(ts_a, ts_b, rtol=0, atol=1e-12)


def test_stack_budget_splits_but_does_not_change_results(workdir):
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")[:6]
    outcomes = run_jobs(jobs, backend="numpy", stack=True, max_stack_bytes=4 * NPIX * NPIX * 8 * 2 * 4)
    assert [o.status for o in outcomes] == ["done"] * 6
    for job in jobs:
        ref = run_job(job, backend="numpy", overwrite=True)
        assert ref.stats["excluded_pixels"] == [o for o in outcomes if o.name == job.name][0].stats["excluded_pixels"]


def test_a_field_failing_inside_a_stack_fails_alone(workdir):
    """A NaN background poisons its field's significance (nan="raise" refuses it):
    the stacked step fails, the fields are redone one by one, and only that field
    fails, with its own error."""
    bad = workdir / "inputs" / "f0003_background.fits"
    m = gpumask.read_map(bad, backend="numpy")
    data = m.to_numpy().copy()
    data[10, 10] = np.nan
    gpumask.Map.from_geom(m.geom, data=data, backend="numpy").write(bad, overwrite=True)
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv",
                overrides={"significance": {"nan": "raise"}})[:6]
    outcomes = run_jobs(jobs, backend="numpy", stack=True)
    assert [o.status for o in outcomes] == ["done"] * 3 + ["failed"] + ["done"] * 2
    assert "NaN" in outcomes[3].error and outcomes[3].name == "f0003"


# ----------------------------------------------------------------------------- resuming


def test_rerun_skips_complete_fields_and_finishes_the_rest(workdir):
    """A batch interrupted after 7 fields; the re-run does only the 13 others and
    leaves the finished files untouched."""

    class Interrupt(Progress):
        def update(self, outcome):
            super().update(outcome)
            if self.finished == 7:
                raise KeyboardInterrupt

    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")
    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, backend="numpy", progress=Interrupt(len(jobs), stream=io.StringIO()))
    complete = [j for j in jobs if field_state(j)[0] == "complete"]
    assert len(complete) == 7
    stamps = {j.name: j.manifest.stat().st_mtime_ns for j in complete}
    report = _run(workdir)
    assert report["counts"] == {"done": N_FIELDS - 7, "skipped": 7, "failed": 0}
    skipped = {f["name"] for f in report["fields"] if f["status"] == "skipped"}
    assert skipped == set(stamps)
    assert all(j.manifest.stat().st_mtime_ns == stamps[j.name] for j in complete)
    again = _run(workdir)
    assert again["counts"] == {"done": 0, "skipped": N_FIELDS, "failed": 0}
    rebuilt = _run(workdir, overwrite=True)
    assert rebuilt["counts"]["done"] == N_FIELDS


def test_damaged_or_foreign_outputs(workdir):
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")[:3]
    run_jobs(jobs, backend="numpy")
    # a damaged output makes the field incomplete: rebuilt (it is this job's file)
    with open(jobs[0].outputs["mask"], "r+b") as fh:
        fh.seek(3000)
        fh.write(b"garbage")
    assert field_state(jobs[0]) == ("todo", "incomplete earlier run")
    # a file gpumask did not write is never overwritten without --overwrite
    jobs[1].manifest.unlink()
    with open(jobs[1].outputs["mask"], "wb") as fh:
        fh.write(b"someone else's file")
    state, why = field_state(jobs[1])
    assert state == "conflict" and "not written by this job" in why
    # outputs of another config: conflict naming the manifest
    other = plan(workdir / "config.yaml", workdir / "fields.csv",
                 overrides={"significance": {"threshold": 6}})[2]
    state, why = field_state(other)
    assert state == "conflict" and "another config" in why
    outcomes = run_jobs([jobs[0], jobs[1], other], backend="numpy")
    assert [o.status for o in outcomes] == ["done", "failed", "failed"]
    assert "--overwrite" in outcomes[1].error
    assert Path(jobs[1].outputs["mask"]).read_bytes() == b"someone else's file"
    assert [o.status for o in run_jobs([jobs[1], other], backend="numpy", overwrite=True)] == ["done", "done"]


def test_a_failing_field_does_not_stop_the_others(workdir, capsys):
    os.remove(workdir / "inputs" / "f0004_counts.fits")
    # validation refuses to start: the missing file is named with its field
    assert main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
                 "--backend", "numpy", "--progress", "log"]) == 2
    err = capsys.readouterr().err
    assert "fields[4].significance.counts: file not found" in err
    assert not list((workdir / "out").iterdir())
    # a file that breaks after validation: that field fails, the others finish
    # (counts on another geometry than the background: found only when running)
    gpumask.Map.create(npix=32, binsz=0.02, frame="galactic", backend="numpy").write(
        workdir / "inputs" / "f0004_counts.fits")
    report_path = workdir / "report.json"
    rc = main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
               "--backend", "numpy", "--progress", "log", "--report", str(report_path)])
    assert rc == 1
    report = json.loads(report_path.read_text())
    assert report["counts"] == {"done": N_FIELDS - 1, "skipped": 0, "failed": 1}
    failed = [f for f in report["fields"] if f["status"] == "failed"]
    assert failed[0]["name"] == "f0004" and failed[0]["error"]
    assert "f0004" in capsys.readouterr().err


# ----------------------------------------------------------------------------- shards


def test_shards_cover_every_field_once(workdir):
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")
    seen = []
    for i in range(1, 4):
        seen += [j.name for j in select_shard(jobs, parse_shard(f"{i}/3"))]
    assert sorted(seen) == sorted(j.name for j in jobs) and len(seen) == N_FIELDS
    # run as three array tasks: every field done exactly once
    done = []
    for i in range(1, 4):
        report_path = workdir / f"report{i}.json"
        assert main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
                     "--backend", "numpy", "--shard", f"{i}/3", "--progress", "log",
                     "--report", str(report_path)]) == 0
        report = json.loads(report_path.read_text())
        assert report["shard"] == f"{i}/3" and report["counts"]["skipped"] == 0
        done += [f["name"] for f in report["fields"] if f["status"] == "done"]
    assert sorted(done) == sorted(j.name for j in jobs)


def test_shard_parsing_and_slurm_defaults():
    assert parse_shard("1/3") == (0, 3) and parse_shard(" 3 / 3 ") == (2, 3)
    for bad in ("0/3", "4/3", "1/0", "a/b", "2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    assert shard_from_env({}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"}) == (5, 8)
    env = {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}
    assert shard_from_env(env) == (7, 8)
    with pytest.raises(ValueError, match="pass --shard"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8"})


def test_slurm_environment_selects_the_shard(workdir, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()[:-1]]
    assert listed == [f"f{k:04d}" for k in range(2, N_FIELDS, 4)]
    assert "(shard 3/4)" in out


# ----------------------------------------------------------------------------- field lists


def test_field_list_problems_are_all_reported(workdir):
    fields = workdir / "bad.yaml"
    fields.write_text(textwrap.dedent("""
        - name: a
          lon: 10
        - name: a
        - lat: 3
        - name: "b c"
        - name: d
          counts: inputs/f0000_counts.fits
          background: inputs/f0000_background.fits
          significance.threshold: five
    """))
    with pytest.raises(ConfigError) as info:
        plan(workdir / "config.yaml", fields)
    problems = dict(info.value.problems)
    assert "give both lon and lat" in problems["fields[0].lat"]
    assert "also the name of fields[0]" in problems["fields[1].name"]
    assert "missing" in problems["fields[2].name"]
    assert "letters, digits" in problems["fields[3].name"]
    assert "not a finite number" in problems["fields[4].significance.threshold"]


def test_outputs_must_differ_between_fields(workdir):
    config = workdir / "config.yaml"
    config.write_text(config.read_text().replace('"out/{name}_mask.fits"', '"out/mask.fits"'))
    with pytest.raises(ConfigError, match="also written by field 'f0000'"):
        plan(config, workdir / "fields.csv")


def test_yaml_field_list_with_geometry_from_the_fields(tmp_path, backend):
    """Fields given by centre and size only (regions and catalog, no inputs)."""
    (tmp_path / "out").mkdir()
    (tmp_path / "config.yaml").write_text(textwrap.dedent("""
        geometry: {binsz: 0.05, frame: galactic}
        output: {mask: "out/{name}.fits"}
    """))
    (tmp_path / "fields.yaml").write_text(textwrap.dedent("""
        fields:
          - {name: gc, lon: 0, lat: 0, width: 4 deg, regions: "galactic;circle(0,0,0.5)"}
          - {name: crab, ra: 83.633, dec: 22.0145, width: [3 deg, 2 deg], regions: "icrs;circle(83.633,22.0145,0.5)"}
    """))
    jobs = plan(tmp_path / "config.yaml", tmp_path / "fields.yaml")
    assert [j.shape for j in jobs] == [(80, 80), (40, 60)]
    report = run_batch(jobs, backend=backend, progress=Progress(2, stream=io.StringIO()))
    assert report["counts"]["done"] == 2
    crab = gpumask.read_map(tmp_path / "out" / "crab.fits")
    assert crab.geom.frame == "galactic" and not crab.to_numpy()[20, 30] and crab.to_numpy()[0, 0]
    gc = gpumask.read_map(tmp_path / "out" / "gc.fits").to_numpy()
    assert not gc[40, 40] and gc[0, 0]  # the centre excluded, a corner usable
    # 0.5 deg disk at 0.05 deg/px: about pi * 10^2 pixels
    assert abs((~gc).sum() - np.pi * 100) < 20


# ----------------------------------------------------------------------------- progress


def test_progress_bar_and_log_lines():
    from gpumask.batch.pipeline import FieldOutcome

    log = io.StringIO()
    p = Progress(2, stream=log, tty=False)
    p.update(FieldOutcome("a", "done", 0.5))
    p.update(FieldOutcome("b", "failed", 0.1, error="ValueError: bad"))
    p.close()
    assert log.getvalue().splitlines() == ["[1/2] a done: 0.50 s", "[2/2] b failed: ValueError: bad"]
    bar = io.StringIO()
    p = Progress(2, stream=bar, tty=True)
    p.update(FieldOutcome("a", "done", 0.5))
    p.update(FieldOutcome("b", "skipped"))
    p.close()
    text = bar.getvalue()
    assert text.startswith("\r[") and "2/2" in text and "skipped 1" in text and text.endswith("\n")


# ----------------------------------------------------------------------------- dask


def _distributed():
    return pytest.importorskip("distributed", reason="dask.distributed (gpumask[dask]) not installed")


@pytest.fixture(scope="module")
def cluster():
    _distributed()
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        with Client(c) as client:
            yield client


def test_dask_executor_matches_local(example, tmp_path, cluster):
    local, remote = tmp_path / "local", tmp_path / "dask"
    shutil.copytree(example, local)
    shutil.copytree(example, remote)
    _run(local)
    report = _run(remote, executor="dask", client=cluster, chunk=3)
    assert report["counts"] == {"done": N_FIELDS, "skipped": 0, "failed": 0} and report["workers"] == 2
    masks_local, masks_remote = _masks(local), _masks(remote)
    assert masks_local.keys() == masks_remote.keys() and len(masks_local) == N_FIELDS
    for name in masks_local:
        np.testing.assert_array_equal(masks_local[name], masks_remote[name])
    # resumable on dask too
    assert _run(remote, executor="dask", client=cluster)["counts"]["skipped"] == N_FIELDS


KILLER = """
import os, signal
from pathlib import Path

MARK = Path({mark!r})


def dask_setup(worker):
    import gpumask.sky.io as gio

    original = gio.atomic_write_hdulist

    def dying_write(hdulist, path, overwrite=False, checksum=False):
        # the first time field f0007's mask is written: half a temporary file,
        # then the worker process is killed (SIGKILL: no cleanup, no goodbye)
        if Path(path).name == "f0007_mask.fits" and not MARK.exists():
            MARK.write_text(str(os.getpid()))
            tmp = Path(path).with_name(".f0007_mask.fits.partial.tmp.fits")
            tmp.write_bytes(b"SIMPLE  =" + b" " * 2000)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(hdulist, path, overwrite=overwrite, checksum=checksum)

    gio.atomic_write_hdulist = dying_write
"""


def test_worker_killed_mid_run_loses_nothing(example, tmp_path):
    """A worker process dies (SIGKILL) while writing field f0007; the nanny restarts
    it, the scheduler reruns the lost task, and every field ends complete and equal
    to the local executor's result."""
    _distributed()
    from distributed import Client, LocalCluster

    remote, local = tmp_path / "dask", tmp_path / "local"
    shutil.copytree(example, remote)
    shutil.copytree(example, local)
    mark = tmp_path / "killed"
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(mark=str(mark)))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      preload=[str(script)]) as c, Client(c) as client:
        report = _run(remote, executor="dask", client=client, chunk=2)
    assert mark.exists(), "the worker was not killed"
    # the rerun task skips the field of its chunk that was complete before the kill
    counts = report["counts"]
    assert counts["failed"] == 0 and counts["done"] + counts["skipped"] == N_FIELDS and counts["skipped"] <= 1
    jobs = plan(remote / "config.yaml", remote / "fields.csv")
    assert all(field_state(j) == ("complete", "") for j in jobs)
    _run(local)
    masks_local, masks_remote = _masks(local), _masks(remote)
    for name in masks_local:
        np.testing.assert_array_equal(masks_local[name], masks_remote[name])


def test_dask_missing_says_how_to_install(workdir, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name.split(".")[0] == "distributed":
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    assert main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
                 "--executor", "dask"]) == 2
    assert "pip install 'gpumask[dask]'" in capsys.readouterr().err
    assert not list((workdir / "out").iterdir())
