"""Fuzz batch configs and field lists: hostile values at every key of a valid
config, hostile cells in its CSV field list, and YAML alias bombs.

Invariant: :class:`ConfigError` naming a key path or the file (bounded message),
or jobs whose every output lies inside the folder its template names (the
template's literal folder, or ``output.root``) and is none of the inputs -- and
validation writes nothing anywhere.  Cases are planned (``gpumask batch
--dry-run``'s validation), not run.
"""

from __future__ import annotations

import copy
import csv
import io
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumask.batch.config import ConfigError
from gpumask.batch.examples import write_example_fields
from gpumask.batch.runner import BatchError, plan

FUZZ = settings.get_profile("gpumask-fuzz")
MAX_BYTES = 256 << 20

HOSTILE = [
    "../x/{name}.fits", "../../X", "/tmp/gpumask-fuzz-evil/{name}.fits", "out/{name:>100000000}.fits",
    "out/{name!r}.fits", "out/{0}.fits", "out/{}.fits", "out/{name.__class__}.fits", "out/{name[0]}.fits",
    "inputs/{name}_counts.fits", "{counts}", "out/{tag}.fits", "out/{lon}/{name}.fits", "out/../{name}.fits",
    "out/{name}", "out/", "", " ", ".", "..", "/", "~", "$HOME/{name}.fits", "out/\x00.fits", "A" * 300,
    "out/" + "x" * 300 + ".fits", "out/" + "d/" * 2100 + "{name}.fits", "config.yaml", "fields.csv",
    "catalog.ecsv", float("nan"), float("inf"), -1, 0, 1e308, True, None, [], {}, ["a", "b"], {"a": 1},
    "nan", "abc", "5 m", "0.1 deg", "-3 deg", "1e999 deg", "!!python/object:os.system", "&a", "*a",
]
CELLS = ["../../X", "/abs/path", "/tmp", "0007", "1e3", "A" * 300, "{name}", "", "x/y", "..", ".",
         "\x00", "é", "nan", "inf", "-1", "f0000", "inputs/f0000_counts.fits", "config.yaml", "out",
         "{name:>9}", "a,b", '"', "\ufeffname", " ", "\n"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-batch")
    folder = root / "batch"
    write_example_fields(folder, n=3, npix=16, seed=1)
    text = (folder / "config.yaml").read_text()
    # a {tag} column for the output templates, and its use
    rows = list(csv.reader(io.StringIO((folder / "fields.csv").read_text())))
    rows[0].append("tag")
    for k, row in enumerate(rows[1:]):
        row.append(f"t{k}")
    return root, folder, yaml.safe_load(text), rows


def _key_paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield (*prefix, k)
            yield from _key_paths(item, (*prefix, k))


def _set(config, path, value):
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@st.composite
def cases(draw, base):
    _, _, config, rows = base
    config = copy.deepcopy(config)
    rows = [list(row) for row in rows]
    paths = list(_key_paths(config)) + [("output", "significance_mask"), ("output", "root"),
                                        ("geometry",), ("dilation",), ("backend",)]
    changes = []
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        path = draw(st.sampled_from(paths))
        value = draw(st.sampled_from(HOSTILE))
        try:
            _set(config, path, value)
        except (KeyError, IndexError, TypeError):
            continue
        changes.append(f"{'.'.join(map(str, path))}={value!r}"[:120])
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, len(rows[0]) - 1))
        rows[r][c] = draw(st.sampled_from(CELLS))
        changes.append(f"row {r} col {c}={rows[r][c]!r}"[:120])
    return Case(changes), config, rows


class Case(list):
    def __repr__(self):
        return "Case(" + "; ".join(self) + ")"


def _snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            out[str(p)] = (st_.st_size, st_.st_mtime_ns)
    return out


def _inside(path, folder):
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def _template_folder(template, config_dir):
    prefix = os.path.expandvars(os.path.expanduser(str(template))).split("{")[0]
    folder = Path(prefix) if prefix.endswith("/") else Path(prefix).parent
    return folder if folder.is_absolute() else config_dir / folder


def _check_jobs(fuzz, describe, jobs, config, folder):
    inputs = {(folder / n).resolve() for n in ("config.yaml", "fields.csv", "catalog.ecsv")}
    inputs |= {p.resolve() for p in (folder / "inputs").iterdir()}
    output = config.get("output") or {}
    root = output.get("root")
    for job in jobs:
        for key, path in job.outputs.items():
            if path is None:
                continue
            allowed = [_template_folder(output.get(key, ""), folder)]
            if isinstance(root, str) and root:
                allowed.append(_template_folder(root.rstrip("/") + "/", folder))
            if not any(_inside(path, a) for a in allowed):
                fuzz.wrong("batch", describe, f"{job.name}: {key} = {path} outside {allowed}")
            if Path(path).resolve() in inputs:
                fuzz.wrong("batch", describe, f"{job.name}: {key} = {path} is an input")


def test_configs_and_field_lists(fuzz, base, tmp_path):
    root, folder, _, _ = base

    @FUZZ
    @given(cases(base))
    def case(drawn):
        changes, config, rows = drawn
        (folder / "fuzz-config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        (folder / "fuzz-fields.csv").write_text(buffer.getvalue(), encoding="utf-8", errors="surrogatepass")
        before = _snapshot(root)
        names = ["fields[", "fuzz-config.yaml", "fuzz-fields.csv", *(config if isinstance(config, dict) else [])]
        names += ["output", "significance", "geometry", "catalogs", "regions", "dilation", "backend"]
        jobs, _ = fuzz.run("batch", lambda: plan(folder / "fuzz-config.yaml", folder / "fuzz-fields.csv"),
                           errors=(ConfigError, BatchError), names=names, max_bytes=MAX_BYTES,
                           describe=repr(changes))
        if _snapshot(root) != before:
            fuzz.wrong("batch", repr(changes), "validation wrote or changed files")
        if jobs is not None:
            _check_jobs(fuzz, repr(changes), jobs, config, folder)

    case()


def _bomb(depth, width):
    lines = ["a0: &a0 [x]"]
    for k in range(1, depth + 1):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * width) + "]")
    return "\n".join(lines)


def test_yaml_alias_bombs(fuzz, base):
    _, folder, _, _ = base

    @FUZZ
    @given(st.integers(2, 9), st.integers(2, 9), st.sampled_from(["config", "fields"]))
    def case(depth, width, where):
        bomb = _bomb(depth, width)
        config = folder / "fuzz-config.yaml"
        fields = folder / "fields.csv"
        if where == "config":
            config.write_text(bomb + "\noutput:\n  mask: out/{name}_mask.fits\nregions: *a%d\n" % depth)
        else:
            config.write_text((folder / "config.yaml").read_text())
            fields = folder / "fuzz-fields.yaml"
            fields.write_text(bomb + f"\nfields:\n  - name: f1\n    lon: *a{depth}\n")
        jobs, _ = fuzz.run("batch", lambda: plan(config, fields), errors=(ConfigError, BatchError),
                           names=[config.name, fields.name, "fields["], max_bytes=MAX_BYTES, seconds=20,
                           describe=f"{where} bomb {width}^{depth}")
        if jobs is not None and width**depth > 10**6:
            fuzz.wrong("batch", f"bomb {width}^{depth}", "an alias bomb was expanded")

    case()


# ----------------------------------------------------------------- regression corpus

CORPUS = sorted(p for p in (Path(__file__).parent / "corpus" / "batch").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus(fuzz, base, case, tmp_path):
    """The configs and field lists of issue 16 (traversal, output = input, alias
    bombs, format specs, long names, CSV text values and BOM)."""
    import json
    import shutil

    _, folder, _, _ = base
    work = tmp_path / "batch"
    shutil.copytree(folder, work)
    for item in case.iterdir():
        if item.name != "expect.json":
            shutil.copy(item, work / item.name)
    expect = json.loads((case / "expect.json").read_text())
    fields = work / ("fields.yaml" if (case / "fields.yaml").exists() else "fields.csv")
    before = _snapshot(tmp_path)
    jobs, error = fuzz.run("batch", lambda: plan(work / "config.yaml", fields), errors=(ConfigError,),
                           names=expect.get("contains", [])[:1] or ["config.yaml"], seconds=20,
                           describe=f"corpus {case.name}")
    assert _snapshot(tmp_path) == before, "validation wrote files"
    if expect.get("ok"):
        assert error is None
        assert sorted(Path(job.outputs["mask"]).name for job in jobs) == expect["outputs"]
    else:
        assert error is not None, f"{case.name}: planned without error"
        for word in expect["contains"]:
            assert word in str(error), f"{word!r} not in {str(error)[:500]}"
        assert len(str(error)) <= expect.get("max_message", 4000)
