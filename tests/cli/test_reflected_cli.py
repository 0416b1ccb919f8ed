"""``gpumask reflected``: off regions and on/off counts over a field list, resumable and
sharded.  Counts are checked against a brute-force astropy separation count of the
on region and of the off regions read back from the written ds9 files."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from regions import Regions

import gpumask
from gpumask import Map, WcsGeom
from gpumask.cli import main

POINTINGS = {"a": (83.63, 22.51), "b": (83.63, 21.51)}
TARGETS = {"crab": "icrs;circle(83.63,22.01,0.11)", "src2": "icrs;circle(84.30,22.20,0.15)"}
NAMES = [f"{t}_{p}" for p in POINTINGS for t in TARGETS]
EDGES = [0.1, 1.0, 10.0, 100.0]


def _write_events(path, pointing, seed):
    rng = np.random.default_rng(seed)
    n = 20000
    center = SkyCoord(*pointing, unit="deg")
    pos = center.directional_offset_by(rng.uniform(0, 360, n) * u.deg, 2.5 * np.sqrt(rng.uniform(0, 1, n)) * u.deg)
    crab = SkyCoord(83.63, 22.01, unit="deg").directional_offset_by(rng.uniform(0, 360, 600) * u.deg,
                                                                    np.abs(rng.normal(0, 0.06, 600)) * u.deg)
    ra = np.concatenate([pos.ra.deg, crab.ra.deg])
    dec = np.concatenate([pos.dec.deg, crab.dec.deg])
    energy = 10 ** rng.uniform(-1.2, 2.2, len(ra))
    hdu = fits.table_to_hdu(Table({"RA": ra * u.deg, "DEC": dec * u.deg, "ENERGY": energy * u.TeV}))
    hdu.name = "EVENTS"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


def _csv(path, rows, header="name,target,pointing_ra,pointing_dec,events"):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def fields(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for k, (p, pointing) in enumerate(POINTINGS.items()):
        _write_events(data / f"events_{p}.fits", pointing, seed=11 + k)
    rows = [f'{t}_{p},"{TARGETS[t]}",{ra},{dec},events_{p}.fits'
            for p, (ra, dec) in POINTINGS.items() for t in TARGETS]
    return _csv(data / "fields.csv", rows)


def _run(fields, out, *extra):
    return main(["reflected", str(fields), "--out", str(out), "--progress", "log", *map(str, extra)])


def _report(out):
    paths = sorted(out.glob("gpumask-reflected-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(paths[-1].read_text())


def _brute(events, region, energy):
    c = SkyCoord(events["RA"], events["DEC"], unit="deg")
    inside = c.separation(region.center).deg < region.radius.to_value(u.deg)
    if not energy:
        return np.array([np.count_nonzero(inside)])
    return np.histogram(np.asarray(events["ENERGY"])[inside], bins=EDGES)[0]


def _check_counts(out, data, name, energy=False):
    target, pointing = name.rsplit("_", 1)
    events = Table.read(data / f"events_{pointing}.fits", hdu="EVENTS")
    offs = Regions.read(out / f"{name}_off.reg", format="ds9")
    assert len(offs) > 0
    table = Table.read(out / f"{name}_reflected.ecsv", format="ascii.ecsv")
    if energy:
        np.testing.assert_allclose(table["energy_min"].quantity.to_value(u.TeV), EDGES[:-1], rtol=1e-12)
    else:
        assert len(table) == 1 and np.isnan(table["energy_min"][0])
    on = gpumask.masks.regions.make_region(TARGETS[target])
    np.testing.assert_array_equal(table["counts"], _brute(events, on, energy))
    np.testing.assert_array_equal(table["counts_off"], sum(_brute(events, r, energy) for r in offs))
    assert set(table["n_off_regions"]) == {len(offs)}
    np.testing.assert_allclose(table["alpha"], 1.0 / len(offs))
    return offs


def test_outputs_and_counts_match_brute_force(fields, tmp_path, capsys):
    out = tmp_path / "out" / "new"  # created
    assert _run(fields, out, "--energy-edges", "0.1,1,10,100 TeV") == 0
    for name in NAMES:
        _check_counts(out, fields.parent, name, energy=True)
        manifest = json.loads((out / f"{name}_reflected.json").read_text())
        assert set(manifest["outputs"]) == {"off", "counts"}
    crab = Table.read(out / "crab_a_reflected.ecsv", format="ascii.ecsv")
    assert crab["counts"].sum() > 5 * crab["alpha"][0] * crab["counts_off"].sum()  # the source is there
    report = _report(out)
    assert report["counts"] == {"done": 4, "skipped": 0, "failed": 0}
    text = capsys.readouterr().out
    assert "4 done" in text and f"{report['totals']['off_regions']} off regions" in text


def test_rerun_skips_overwrite_redoes_and_missing_manifest(fields, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(fields, out) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert _run(fields, out) == 0
    assert _report(out)["counts"] == {"done": 0, "skipped": 4, "failed": 0}
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in out.iterdir() if p.name in stamps)
    assert _run(fields, out, "--overwrite") == 0
    assert _report(out)["counts"] == {"done": 4, "skipped": 0, "failed": 0}
    # gpumask batch's semantics: outputs this row wrote (they carry its job hash) but no
    # manifest (a killed run) are redone without --overwrite ...
    (out / "crab_b_reflected.json").unlink()
    assert _run(fields, out) == 0
    report = _report(out)
    assert report["counts"] == {"done": 1, "skipped": 3, "failed": 0}
    assert [f["name"] for f in report["fields"] if f["status"] == "done"] == ["crab_b"]
    # ... while files it did not write are refused (the row fails, exit 1) unless --overwrite
    (out / "src2_a_reflected.json").unlink()
    (out / "src2_a_off.reg").write_text("# my own regions\nicrs\ncircle(1,2,0.1)\n")
    capsys.readouterr()
    assert _run(fields, out) == 1
    assert "src2_a_off.reg exists and was not written for this row" in capsys.readouterr().err
    assert (out / "src2_a_off.reg").read_text().startswith("# my own")
    assert _run(fields, out, "--dry-run") == 0
    assert "1 in conflict" in capsys.readouterr().out
    assert _run(fields, out, "--overwrite") == 0
    _check_counts(out, fields.parent, "src2_a")


def test_shards_cover_all_rows(fields, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _run(fields, out, "--shard", "1/2") == 0
    first = {f["name"] for f in _report(out)["fields"]}
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert _run(fields, out) == 0
    report = _report(out)
    second = {f["name"] for f in report["fields"]}
    assert report["shard"] == "2/2" and first.isdisjoint(second) and first | second == set(NAMES)
    assert all((out / f"{n}_reflected.json").is_file() for n in NAMES)


def test_dry_run_writes_nothing(fields, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(fields, out, "--dry-run") == 0
    assert not out.exists()
    assert "4 rows: 4 to run, 0 complete, 0 in conflict" in capsys.readouterr().out


def test_rows_without_events_write_only_off_regions(fields, tmp_path):
    rows = [f'{t},"{TARGETS[t]}",83.63,22.51,' for t in TARGETS]
    path = _csv(fields.parent / "noevents.csv", rows)
    out = tmp_path / "out"
    assert _run(path, out) == 0
    assert sorted(p.name for p in out.glob("crab*")) == ["crab_off.reg", "crab_reflected.json"]
    assert _report(out)["totals"]["counts"] == 0


GOOD = '{n},"icrs;circle(83.63,22.01,0.11)",83.63,22.51,events_a.fits'


@pytest.mark.parametrize("rows, header, expected", [
    ([GOOD.format(n="x"), GOOD.format(n="x")], None, "row 2 (line 3), column name: 'x' is also the name of row 1"),
    ([GOOD.format(n="x"), GOOD.format(n="../y")], None, "row 2 (line 3), column name: '../y'"),
    ([GOOD.format(n="x"), 'y,"icrs;circel(1,2,0.1)",1,2,'], None, "row 2 (line 3), column target: 'icrs;circel"),
    ([GOOD.format(n="x"), 'y,"icrs;circle(1,2,0.1)",nan,2,'], None, "row 2 (line 3), column pointing_ra: 'nan'"),
    ([GOOD.format(n="x"), 'y,"icrs;circle(1,2,0.1)",1,95,'], None, "row 2 (line 3), column pointing_dec: '95'"),
    ([GOOD.format(n="x"), 'y,"icrs;circle(1,2,0.1)",1,2,nope.fits'], None,
     "row 2 (line 3), column events: 'nope.fits': file not found"),
    ([GOOD.format(n="x"), "y,icrs;circle(1,2,0.1),1,2,"], None, "row 2 (line 3): 2 more cells than the 5 columns"),
    ([GOOD.format(n="x")], "name,target,pointing_ra,pointing_dec,events,run", "unknown column 'run'"),
    ([GOOD.format(n="x"), 'y,"icrs;circle(1,2,0.1)",83.0,22.51,events_a.fits'], None,
     "row 2 (line 3), columns pointing_ra/pointing_dec: (83.0, 22.51) differs from row 1"),
])
def test_bad_inputs_exit_2_naming_row_and_column(fields, tmp_path, capsys, rows, header, expected):
    path = _csv(fields.parent / "bad.csv", rows, *([header] if header else []))
    out = tmp_path / "out"
    assert _run(path, out) == 2
    err = capsys.readouterr().err
    assert err.count("gpumask: error:") == 1 and expected in err, err
    assert not out.exists()


@pytest.mark.parametrize("extra, expected", [
    (["--energy-edges", "10,1 TeV"], "--energy-edges '10,1 TeV'"),
    (["--energy-edges", "1,10 TeV"], "no ENERGY column (needed by --energy-edges)"),
    (["--angle-increment", "-1 deg"], "angle_increment"),
    (["--shard", "3/2"], "--shard '3/2'"),
    (["--exclusion-mask", "missing.fits"], "missing.fits"),
])
def test_bad_options_exit_2(fields, tmp_path, capsys, extra, expected):
    if "ENERGY" in expected:
        hdu = fits.table_to_hdu(Table({"RA": [83.6], "DEC": [22.0]}))
        hdu.name = "EVENTS"
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(fields.parent / "events_a.fits", overwrite=True)
    assert _run(fields, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("gpumask: error:") == 1 and expected in err, err


def _excluded_centres(mask):
    geom = mask.geom
    iy, ix = np.nonzero(~mask.to_numpy())
    return geom.wcs.pixel_to_world(ix, iy)


def test_exclusion_mask_moves_off_regions(fields, tmp_path, backend):
    pointing = SkyCoord(*POINTINGS["a"], unit="deg")
    out0 = tmp_path / "plain"
    assert _run(fields, out0) == 0
    plain = Regions.read(out0 / "crab_a_off.reg", format="ds9")
    # exclude a disk around the 3rd off region of crab_a
    hole = plain[2].center
    geom = WcsGeom.create(skydir=pointing, width=6, binsz=0.02, frame="icrs")
    usable = geom.separation(hole, backend="numpy") > 0.2
    mask_path = tmp_path / "mask.fits"
    Map.from_geom(geom, data=usable, backend="numpy").write(mask_path)
    out = tmp_path / "masked"
    with gpumask.use_backend(backend.name):
        assert _run(fields, out, "--exclusion-mask", mask_path) == 0
    excluded = _excluded_centres(gpumask.read_map(mask_path, backend="numpy"))
    assert len(excluded) > 100
    for name in NAMES:
        offs = _check_counts(out, fields.parent, name)
        for r in offs:  # brute force on the sphere: no excluded pixel centre inside an off region
            assert np.all(excluded.separation(r.center).deg >= r.radius.to_value(u.deg))
    masked = Regions.read(out / "crab_a_off.reg", format="ds9")
    assert [(r.center.ra.deg, r.center.dec.deg) for r in masked] != [(r.center.ra.deg, r.center.dec.deg)
                                                                      for r in plain]
    manifest = json.loads((out / "crab_a_reflected.json").read_text())
    assert manifest["options"]["exclusion_mask"] == str(mask_path.resolve())


def test_pixel_method(fields, tmp_path):
    out = tmp_path / "out"
    assert _run(fields, out, "--method", "pixel", "--energy-edges", "0.1, 1, 10, 100") == 0
    finder = gpumask.ReflectedRegionsFinder(method="pixel")
    for name in NAMES:
        offs = _check_counts(out, fields.parent, name, energy=True)
        target, p = name.rsplit("_", 1)
        expected, _ = finder.run(TARGETS[target], SkyCoord(*POINTINGS[p], unit="deg"))
        assert len(offs) == len(expected)
        sep = SkyCoord([r.center for r in offs]).separation(SkyCoord([r.center for r in expected])).deg
        assert sep.max() < 1e-6
    assert json.loads((out / "crab_a_reflected.json").read_text())["options"]["method"] == "pixel"
