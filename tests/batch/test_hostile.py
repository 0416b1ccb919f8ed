"""Hostile and broken configs and field lists (issue 16): outputs that leave their
folder or replace an input, YAML alias bombs, format specs and over-long names in
templates, CSV values kept as text, and two batches sharing one folder."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import gpumask
from gpumask.__main__ import main
from gpumask.batch.config import MAX_YAML_NODES, ConfigError, MaskConfig, load_yaml
from gpumask.batch.examples import write_example_fields
from gpumask.batch.pipeline import _claim, _claim_path, field_state, run_jobs
from gpumask.batch.runner import Progress, load_fields, plan, run_batch

N_FIELDS = 6
NPIX = 48


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    write_example_fields(folder, n=N_FIELDS, npix=NPIX, seed=5)
    return folder


@pytest.fixture
def workdir(example, tmp_path):
    target = tmp_path / "batch"
    shutil.copytree(example, target)
    return target


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def _problems(exc_info):
    return dict(exc_info.value.problems)


GEOMETRY_CONFIG = """
geometry: {skydir: [0, 0], frame: galactic, width: 1 deg, binsz: 0.1}
output:
  mask: "out/{tag}_mask.fits"
"""


def _geometry_batch(tmp_path, fields, config=GEOMETRY_CONFIG):
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "config.yaml").write_text(textwrap.dedent(config))
    (tmp_path / "fields.yaml").write_text(textwrap.dedent(fields))
    return tmp_path / "config.yaml", tmp_path / "fields.yaml"


# ----------------------------------------------------------------------------- 3: outputs stay inside


def test_field_values_cannot_write_outside_the_output_folder(tmp_path, capsys):
    base, outside = tmp_path / "cfg", tmp_path / "elsewhere"
    outside.mkdir()
    (base / "out" / "sub").mkdir(parents=True)
    (base / "out" / "link").symlink_to(outside)
    config, fields = _geometry_batch(base, f"""
        - {{name: a, tag: ../../X}}
        - {{name: b, tag: {outside}/abs}}
        - {{name: c, tag: out/link/x}}
        - {{name: d, tag: out/sub/ok}}
        - {{name: e, tag: e, output.mask: {outside}/e.fits}}
        - {{name: f, tag: f, output.root: /}}
    """, GEOMETRY_CONFIG.replace("out/{tag}", "{tag}"))
    before = _tree(tmp_path)
    with pytest.raises(ConfigError) as info:
        plan(config, fields)
    problems = _problems(info)
    assert problems["fields[0].tag"] == (
        f"'../../X' puts output.mask ('{{tag}}_mask.fits') at {tmp_path.parent}/X_mask.fits, outside {base}, "
        "the folder the template names; field values must not leave it (write a value without / or .., "
        "or set output.root in the config to allow another folder)")
    assert f"at {outside}/abs_mask.fits, outside {base}," in problems["fields[1].tag"]
    # a symlink inside the folder does not let a value out either
    assert f"at {outside}/x_mask.fits, outside {base}," in problems["fields[2].tag"]
    assert not any(k.startswith("fields[3]") for k in problems)  # a sub-folder is fine
    assert f"output.mask ('{outside}/e.fits') at {outside}/e.fits, outside {base}" in problems["fields[4].output.mask"]
    assert problems["fields[5].output.root"] == "output.root is set by the config only, not by a field"
    assert len(problems) == 5
    assert _tree(tmp_path) == before
    # nothing written through the command line either
    assert main(["batch", str(fields), "--config", str(config), "--backend", "numpy"]) == 2
    assert "fields[0].tag: '../../X' puts output.mask" in capsys.readouterr().err
    assert _tree(tmp_path) == before
    # the case: two folders up from out/
    config.write_text(GEOMETRY_CONFIG)
    fields.write_text("- {name: a, tag: ../../X}\n")
    with pytest.raises(ConfigError, match=rf"at {tmp_path}/X_mask.fits, outside {base}/out,"):
        plan(config, fields)


def test_output_root_allows_another_folder(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    config, fields = _geometry_batch(tmp_path, f"- {{name: a, tag: {other}/a}}\n",
                                     GEOMETRY_CONFIG.replace("out/{tag}", "{tag}") + f"  root: {other}\n")
    job, = plan(config, fields)
    assert job.outputs["mask"] == str(other / "a_mask.fits")
    report = run_batch([job], backend="numpy", progress=Progress(1, stream=io.StringIO()))
    assert report["counts"]["done"] == 1 and (other / "a_mask.fits").is_file()


def test_mask_command_name_is_checked(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(GEOMETRY_CONFIG.replace("out/{tag}", "{name}"))
    assert main(["mask", str(config), "--name", "../../escape", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "name: '../../escape': use letters, digits and _ . + -" in err
    assert _tree(tmp_path) == ["config.yaml"]


# ----------------------------------------------------------------------------- 4: outputs vs inputs


def test_an_output_equal_to_an_input_is_refused(workdir, capsys):
    config = workdir / "config.yaml"
    config.write_text(config.read_text().replace('"out/{name}_sqrt_ts.fits"', '"inputs/{name}_counts.fits"'))
    with pytest.raises(ConfigError) as info:
        plan(config, workdir / "fields.csv")
    problems = _problems(info)
    message = problems["fields[0].output.sqrt_ts"]
    assert f"{workdir}/inputs/f0000_counts.fits is also the input significance.counts" in message
    assert "writing it would replace the input" in message
    counts = (workdir / "inputs" / "f0000_counts.fits").read_bytes()
    assert main(["batch", str(workdir / "fields.csv"), "--config", str(config), "--overwrite",
                 "--backend", "numpy"]) == 2
    assert "is also the input significance.counts" in capsys.readouterr().err
    assert (workdir / "inputs" / "f0000_counts.fits").read_bytes() == counts
    assert not list((workdir / "out").iterdir())


def test_outputs_equal_through_links_are_refused(workdir):
    # a hard link of an input at the output's place: the same file
    os.link(workdir / "inputs" / "f0001_counts.fits", workdir / "out" / "f0001_sqrt_ts.fits")
    # two outputs of one field in one file, through a symlinked folder
    (workdir / "alias").symlink_to(workdir / "out")
    config = workdir / "config.yaml"
    config.write_text(config.read_text() + "  significance_mask: \"alias/{name}_mask.fits\"\n")
    with pytest.raises(ConfigError) as info:
        plan(config, workdir / "fields.csv")
    problems = _problems(info)
    assert "is also the input significance.counts" in problems["fields[1].output.sqrt_ts"]
    assert "same file as output.mask" in problems["fields[0].output.significance_mask"]


def test_one_fields_output_is_another_fields_input(workdir):
    config = workdir / "config.yaml"
    config.write_text(config.read_text().replace('"out/{name}_sqrt_ts.fits"', '"inputs/{next}_counts.fits"'))
    rows = (workdir / "fields.csv").read_text().splitlines()
    rows = [rows[0] + ",next"] + [f"{row},f{(k + 1) % N_FIELDS:04d}" for k, row in enumerate(rows[1:])]
    (workdir / "fields.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ConfigError) as info:
        plan(config, workdir / "fields.csv")
    problems = _problems(info)
    assert problems["fields[1].significance.counts"] == (
        f"{workdir}/inputs/f0001_counts.fits is written by field 'f0000' as output.sqrt_ts, which would "
        "replace this input")
    assert "is also the input significance.counts of field 'f0000'" in problems["fields[5].output.sqrt_ts"]


def test_two_fields_sharing_a_manifest_or_the_field_list(tmp_path):
    config, fields = _geometry_batch(tmp_path, """
        - {name: a, tag: x}
        - {name: b, tag: y, output.mask: out/x_mask.fits.gz}
    """)
    with pytest.raises(ConfigError) as info:
        plan(config, fields)
    assert "out/x_mask.json is also written by field 'a'" in _problems(info)["fields[1].output.mask"]
    # the manifest of a field named like the (JSON) field list would replace it
    (tmp_path / "config.yaml").write_text(GEOMETRY_CONFIG.replace("out/{tag}_mask", "{name}"))
    (tmp_path / "fields.json").write_text('[{"name": "fields"}]')
    with pytest.raises(ConfigError, match=r"fields\[0\].output.mask: .*fields.json is also the field list"):
        plan(config, tmp_path / "fields.json")


# ----------------------------------------------------------------------------- 8: alias bombs


def _bomb(levels=8):
    """A "billion laughs": 9**levels strings from a few lines, the expansion in ``*a{levels}``."""
    lines = ['a0: &a0 ["lol"]']
    for k in range(1, levels + 1):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_in_a_config(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(_bomb() + "geometry: {width: *a8}\noutput: {mask: m.fits}\n")
    t0 = time.perf_counter()
    assert main(["mask", str(path), "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - t0 < 2
    assert f"in {path}:\n  <top>: more than 20,000 nodes or 67,108,864 characters once its aliases" in err
    assert len(err) < 1000
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("regions: &r [*r]\n")
    with pytest.raises(ConfigError, match="an alias refers to itself"):
        load_yaml(recursive)
    # a bomb of text: few nodes, each a long string
    text = tmp_path / "text.yaml"
    text.write_text(f"a: &a {'x' * 100_000}\nb: &b [{', '.join(['*a'] * 30)}]\nc: [{', '.join(['*b'] * 30)}]\n")
    with pytest.raises(ConfigError, match="characters"):
        load_yaml(text)


def test_yaml_alias_bomb_in_a_field_list(tmp_path):
    config, fields = _geometry_batch(tmp_path, "")
    fields.write_text(_bomb() + "fields:\n  - {name: a, tag: *a8}\n")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        plan(config, fields)
    assert time.perf_counter() - t0 < 2
    assert f"more than {MAX_YAML_NODES:,} nodes" in str(info.value) and len(str(info.value)) < 1000


def test_moderate_anchors_still_work(tmp_path):
    config, fields = _geometry_batch(tmp_path, """
        defaults: &d {width: 2 deg, lon: 0, lat: 0}
        fields:
          - {<<: *d, name: a, tag: a}
          - {<<: *d, name: b, tag: b, lon: 1}
    """)
    jobs = plan(config, fields)
    assert [j.shape for j in jobs] == [(20, 20), (20, 20)]
    assert [j.geometry["skydir"] for j in jobs] == [(0.0, 0.0), (1.0, 0.0)]


def test_echoed_values_are_truncated(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(f"geometry:\n  proj: {'X' * 100_000}\noutput: {{mask: m.fits}}\n")
    with pytest.raises(ConfigError) as info:
        MaskConfig.read(path)
    message = _problems(info)["geometry.proj"]
    assert message.startswith("'XXXX") and "..." in message and "(100000 characters)" in message
    assert len(message) < 400
    many = ConfigError([(f"fields[{k}].name", "missing") for k in range(5000)])
    text = str(many)
    assert text.startswith("5000 problems:") and text.endswith("... and 4900 more problems")
    assert len(many.problems) == 5000 and len(text) < 5000


# ----------------------------------------------------------------------------- 9: names and templates


@pytest.mark.parametrize("template, what", [
    ("{tag:>100000000}_mask.fits", "format spec ':>100000000'"),
    ("{tag!r}_mask.fits", "conversion '!r'"),
    ("{tag.__class__}_mask.fits", "'tag.__class__' is not a value of the field"),
    ("{tag[0]}_mask.fits", "'tag[0]' is not a value of the field"),
    ("{}_mask.fits", "an empty {}"),
])
def test_template_format_specs_are_refused(tmp_path, template, what):
    config, fields = _geometry_batch(tmp_path, "- {name: a, tag: t}\n",
                                     GEOMETRY_CONFIG.replace("out/{tag}_mask.fits", template))
    with pytest.raises(ConfigError) as info:
        plan(config, fields)
    message = _problems(info)["fields[0].output.mask"]
    assert what in message and "write {key}" in message
    assert not list((tmp_path / "out").iterdir())


def test_over_long_names_are_config_errors(tmp_path, capsys):
    long = "n" * 300
    config, fields = _geometry_batch(tmp_path, f"- {{name: {long}, tag: t}}\n- {{name: ok, tag: {'t' * 240}}}\n",
                                     GEOMETRY_CONFIG.replace("{tag}", "{name}_{tag}"))
    with pytest.raises(ConfigError) as info:
        plan(config, fields)
    problems = _problems(info)
    assert problems["fields[0].output.mask"].startswith(f"'{long[:100]}")
    assert ("(312 characters) is 312 bytes; a file name may have at most 140 (255 less room for the atomic "
            "writer's temporary name)") in problems["fields[0].output.mask"]
    # 253 bytes fit a file system's 255 but not the writer's temporary name
    assert "is 253 bytes; a file name may have at most 140" in problems["fields[1].output.mask"]
    # an input path too long for the file system: a problem, not an OSError
    config.write_text(GEOMETRY_CONFIG + f"regions: [{'r' * 300}.reg]\n")
    with pytest.raises(ConfigError) as info:
        plan(config, fields)
    assert "is 304 bytes; a file name may have at most 255" in _problems(info)["fields[1].regions[0]"]
    # the mask command: a ConfigError naming the key, exit status 2
    single = tmp_path / "single.yaml"
    single.write_text(GEOMETRY_CONFIG.replace("out/{tag}", "{name}"))
    assert main(["mask", str(single), "--name", long, "--backend", "numpy"]) == 2
    assert "output.mask: 'nnnn" in capsys.readouterr().err
    assert main(["mask", str(single), "--name", "x", "--out", str(tmp_path / ("o" * 300 + ".fits")),
                 "--backend", "numpy"]) == 2
    assert "output.mask: 'oooo" in capsys.readouterr().err


def test_csv_values_stay_text(tmp_path):
    config, _ = _geometry_batch(tmp_path, "", """
        geometry: {frame: galactic, binsz: 0.1}
        regions: ["galactic;circle({lon},{lat},0.2)"]
        output: {mask: "out/{name}_{tag}_mask.fits"}
    """)
    fields = tmp_path / "fields.csv"
    fields.write_bytes("\ufeffname,tag,lon,lat,npix,geometry.proj\n0007,1e3,0010,-1.50,10,tan\n".encode())
    rows, _ = load_fields(fields)
    assert rows == [{"name": "0007", "tag": "1e3", "lon": "0010", "lat": "-1.50", "npix": "10",
                     "geometry.proj": "tan"}]
    job, = plan(config, fields)
    assert job.name == "0007" and job.outputs["mask"] == str(tmp_path / "out" / "0007_1e3_mask.fits")
    # numbers where the config expects numbers
    assert job.geometry["skydir"] == (10.0, -1.5) and job.shape == (10, 10) and job.geometry["proj"] == "TAN"
    assert job.regions == ["galactic;circle(0010,-1.50,0.2)"]


def test_unreadable_field_lists_are_config_errors(tmp_path):
    config, _ = _geometry_batch(tmp_path, "")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("name,tag\nf\xe9,x\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        plan(config, bad)
    huge = tmp_path / "huge.csv"
    huge.write_text("name,tag\na," + "x" * 200_000 + "\n")
    with pytest.raises(ConfigError, match="field larger than"):
        plan(config, huge)
    nested = tmp_path / "nested.yaml"
    nested.write_text("- {name: a, tag: [1, 2]}\n- {name: [b], tag: b}\n- {name: c, tag: c, "
                      "counts: x.fits, significance.counts.deeper: 1}\n- {name: 1.50, tag: d}\n")
    with pytest.raises(ConfigError) as info:
        plan(config, nested)
    problems = _problems(info)
    assert problems["fields[0].output.mask"] == ("'out/{tag}_mask.fits': {tag} is a list; templates take "
                                                 "text or numbers")
    assert problems["fields[1].name"] == "a name is text, got a list"
    assert problems["fields[3].name"] == 'a name is text, got a float (in YAML, quote it: name: "1.5")'
    assert problems["fields[2].significance.counts.deeper"] == (
        "significance.counts is not a section; a dotted key names a config key")


# ----------------------------------------------------------------------------- 13: claims


def test_a_claimed_field_is_skipped_and_dead_claims_are_taken_over(workdir):
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")[:3]
    held = _claim(jobs[1])
    assert not isinstance(held, str)
    assert _claim(jobs[1]) == f"{socket.gethostname()}:{os.getpid()}"  # a second claim fails
    outcomes = run_jobs(jobs, backend="numpy")
    assert [o.status for o in outcomes] == ["done", "skipped", "done"]
    assert outcomes[1].stats["reason"] == f"claimed by {socket.gethostname()}:{os.getpid()}"
    assert not Path(jobs[1].manifest).exists()
    held.release()
    # a claim file left by a process that died (no lock held): taken over
    _claim_path(jobs[1]).write_text(json.dumps({"host": socket.gethostname(), "pid": 999999999}))
    assert [o.status for o in run_jobs(jobs, backend="numpy")] == ["skipped", "done", "skipped"]
    assert not list((workdir / "out").glob(".*claim*"))


def test_a_field_completed_meanwhile_is_not_redone(workdir, monkeypatch):
    """The state is checked again once the claim is held: a field another run
    finished after this run's first look is skipped, with --overwrite too."""
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")[:2]
    import gpumask.batch.pipeline as pipeline

    original, other = pipeline._claim, []

    def claim_after_the_other_run(job):
        if job.name == jobs[1].name and not other:
            other.append(job.name)
            run_jobs([job], backend="numpy")  # "another run" completes it in between
        return original(job)

    monkeypatch.setattr(pipeline, "_claim", claim_after_the_other_run)
    outcomes = run_jobs(jobs, backend="numpy", overwrite=True)
    assert [o.status for o in outcomes] == ["done", "skipped"]
    assert outcomes[1].stats["reason"] == "complete (finished by another run meanwhile)"


RUNNER = """
import sys, time
from pathlib import Path
import gpumask.batch.runner
from gpumask.__main__ import main

go = Path(sys.argv[1])
(go.parent / f"ready-{sys.argv[2]}").touch()
while not go.exists():
    time.sleep(0.005)
sys.exit(main(sys.argv[3:]))
"""


def test_two_batches_on_one_folder_compute_each_field_once(example, tmp_path):
    shared, clean = tmp_path / "shared", tmp_path / "clean"
    shutil.copytree(example, shared)
    shutil.copytree(example, clean)
    script, go = tmp_path / "runner.py", tmp_path / "go"
    script.write_text(RUNNER)
    env = {**os.environ, "GPUMASK_BACKEND": "numpy"}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(go), str(k), "batch", str(shared / "fields.csv"),
                          "--config", str(shared / "config.yaml"), "--backend", "numpy", "--progress", "log",
                          "--report", str(tmp_path / f"report{k}.json")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(2)
    ]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready-{k}").exists() for k in range(2)) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()  # both have imported gpumask: they start together
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    reports = [json.loads((tmp_path / f"report{k}.json").read_text()) for k in range(2)]
    done = [f["name"] for r in reports for f in r["fields"] if f["status"] == "done"]
    assert sorted(done) == [f"f{k:04d}" for k in range(N_FIELDS)]  # each field computed once
    jobs = plan(shared / "config.yaml", shared / "fields.csv")
    assert all(field_state(j) == ("complete", "") for j in jobs)
    assert not list((shared / "out").glob(".*"))  # no claim or temporary file left
    run_batch(plan(clean / "config.yaml", clean / "fields.csv"), backend="numpy",
              progress=Progress(N_FIELDS, stream=io.StringIO()))
    for job in jobs:
        name = Path(job.outputs["mask"]).name
        np.testing.assert_array_equal(gpumask.read_map(shared / "out" / name).to_numpy(),
                                      gpumask.read_map(clean / "out" / name).to_numpy())


# ----------------------------------------------------------------------------- 12: stale temporary files


def test_a_batch_run_removes_stale_temporary_files(workdir, monkeypatch):
    import gpumask.sky.io as gio

    calls = []
    monkeypatch.setattr(gio, "remove_stale_temp_files", lambda folder: calls.append(Path(folder)) or [],
                        raising=False)
    assert main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
                 "--backend", "numpy", "--dry-run"]) == 0
    assert calls == []
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")
    run_batch(jobs, backend="numpy", progress=Progress(len(jobs), stream=io.StringIO()))
    assert calls == [(workdir / "out").resolve()]


def test_the_report_is_not_a_file_of_the_batch(workdir, capsys):
    counts = workdir / "inputs" / "f0000_counts.fits"
    before = counts.read_bytes()
    assert main(["batch", str(workdir / "fields.csv"), "--config", str(workdir / "config.yaml"),
                 "--backend", "numpy", "--overwrite", "--report", str(counts)]) == 2
    assert f"--report {counts} is the input significance.counts of field 'f0000'" in capsys.readouterr().err
    assert counts.read_bytes() == before and not list((workdir / "out").iterdir())


def test_mask_command_with_a_claimed_field(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(GEOMETRY_CONFIG.replace("out/{tag}", "{name}"))
    job = MaskConfig.read(config).field_job("x")
    held = _claim(job)
    try:
        assert main(["mask", str(config), "--name", "x", "--backend", "numpy"]) == 1
        assert f"x: claimed by {socket.gethostname()}:{os.getpid()}" in capsys.readouterr().err
    finally:
        held.release()
    assert main(["mask", str(config), "--name", "x", "--backend", "numpy"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "x_mask.fits", "x_mask.json"]


def test_a_nan_input_pixel_is_reported_in_the_manifest(workdir):
    """A NaN counts pixel stays local (issue 16.1) and the field's manifest says how
    many input pixels were left out of the significance sums."""
    counts = workdir / "inputs" / "f0001_counts.fits"
    m = gpumask.read_map(counts, backend="numpy")
    data = m.to_numpy().copy()
    data[10, 12] = np.nan
    gpumask.Map.from_geom(m.geom, data=data, backend="numpy").write(counts, overwrite=True)
    jobs = plan(workdir / "config.yaml", workdir / "fields.csv")[:2]
    with pytest.warns(gpumask.NonFiniteInputWarning, match="counts has 1 non-finite pixel"):
        outcomes = run_jobs(jobs, backend="numpy")
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    manifests = [json.loads(job.manifest.read_text()) for job in jobs]
    assert "nonfinite_input_pixels" not in manifests[0]
    assert manifests[1]["nonfinite_input_pixels"]["counts"] == 1
    sqrt_ts = gpumask.read_map(jobs[1].outputs["sqrt_ts"], backend="numpy").to_numpy()
    assert np.isfinite(sqrt_ts).all()
