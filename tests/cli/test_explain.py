"""``gpumask explain``: the components of a mask file, at a position, inside a
region, as ds9 regions and JSON, checked against the label maps and brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest
import regions
from astropy.coordinates import SkyCoord

import gpumask
from gpumask import WcsGeom
from gpumask.__main__ import main

REGIONS = ["galactic;circle(10,0,0.3)", "galactic;circle(10.3,0.1,0.25)", "galactic;box(9.4,-0.3,0.4,0.3,20)"]


@pytest.fixture
def mask_file(tmp_path):
    geom = WcsGeom.create(npix=(120, 80), binsz=0.02, frame="galactic", skydir=(10, 0))
    values = np.zeros((80, 120))
    values[60:66, 20:27] = 9.0  # one significance blob away from the regions
    sig = gpumask.Map.from_geom(geom, data=values)
    mask = geom.region_mask(REGIONS, inside=False, explain=True) & gpumask.exclusion_from_significance(
        sig, 5, explain=True)
    path = tmp_path / "mask.fits"
    mask.write(path)
    return path, mask


def test_summary_sorted_by_area(mask_file, capsys):
    path, mask = mask_file
    assert main(["explain", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    excluded = int((~mask.data).sum())
    assert report["excluded_pixels"] == excluded and report["components"] == 4
    assert report["kinds"] == {"region": 3, "significance blob": 1}
    areas = [r["solid_angle"] for r in report["summary"]]
    assert areas == sorted(areas, reverse=True)
    assert sum(r["npix"] for r in report["summary"]) == excluded
    label = mask.provenance.label
    for r in report["summary"]:
        assert r["npix"] == int((label == r["index"]).sum())
    assert main(["explain", str(path)]) == 0
    text = capsys.readouterr().out
    assert "4 components: 3 region, 1 significance blob" in text and "galactic;circle" in text


def test_at_positions(mask_file, capsys):
    path, mask = mask_file
    # inside the first two circles, inside the first only, usable, inside the blob
    lon, lat = mask.geom.pix_to_coord((23.0, 62.0))  # inside the blob
    args = ["explain", str(path), "--frame", "galactic", "--json", "--at", "10.15", "0.05",
            "--at", "9.85", "0", "--at", "10.8", "-0.7", "--at", f"{float(lon)}", f"{float(lat)}"]
    assert main(args) == 0
    at = json.loads(capsys.readouterr().out)["at"]
    assert [[c["index"] for c in a["components"]] for a in at] == [[1, 2], [1], [], [4]]
    assert [a["excluded"] for a in at] == [True, True, False, True]
    # brute force: the pixel of each position is inside exactly those regions
    geom = mask.geom
    for a, pos in zip(at, ([10.15, 0.05], [9.85, 0.0])):
        ix, iy = a["pixel"]
        inside = [int(not geom.region_mask(r, inside=False).data[iy, ix]) for r in REGIONS]
        assert [k + 1 for k, v in enumerate(inside) if v] == [c["index"] for c in a["components"]]
        assert (ix, iy) == tuple(int(np.floor(v + 0.5)) for v in geom.coord_to_pix(
            SkyCoord(*pos, unit="deg", frame="galactic")))


def test_region_counts_match_the_labels(mask_file, capsys):
    path, mask = mask_file
    region = "galactic;circle(10.1,0,0.35)"
    assert main(["explain", str(path), "--region", region, "--json"]) == 0
    inside = json.loads(capsys.readouterr().out)["regions"][0]
    rmask = mask.geom.region_mask(region).data
    label = mask.provenance.label
    expect = {k: int(((label == k) & rmask).sum()) for k in range(1, 5)}
    got = {c["index"]: c["npix_in_region"] for c in inside["components"]}
    assert got == {k: v for k, v in expect.items() if v}
    assert inside["pixels"] == int(rmask.sum())


def test_ds9_file(mask_file, tmp_path, capsys):
    path, _ = mask_file
    out = tmp_path / "why.reg"
    assert main(["explain", str(path), "--ds9", str(out)]) == 0
    parsed = regions.Regions.read(out, format="ds9")
    assert len(parsed) == 4
    names = [r.meta["text"] for r in parsed]
    assert names[0] == "1: galactic;circle(10.00000000,0.00000000,0.30000000)" and names[3].startswith("4: blob 1")
    assert main(["explain", str(path), "--ds9", str(out)]) == 2  # never overwritten unless asked
    assert "exists" in capsys.readouterr().err
    assert main(["explain", str(path), "--ds9", str(out), "--overwrite"]) == 0


def test_errors(mask_file, tmp_path, capsys):
    path, _ = mask_file
    plain = tmp_path / "plain.fits"
    WcsGeom.create(npix=(20, 20), binsz=0.1).region_mask("icrs;circle(0,0,0.3)", inside=False).write(plain)
    assert main(["explain", str(plain)]) == 2
    assert "no provenance" in capsys.readouterr().err
    assert main(["explain", str(path), "--at", "100", "50"]) == 2
    assert "outside the map" in capsys.readouterr().err
    assert main(["explain", str(path), "--at", "1", "x"]) == 2
    assert "two numbers" in capsys.readouterr().err
    assert main(["explain", str(path), "--frame", "fk4"]) == 2
    assert "fk4" in capsys.readouterr().err
    assert main(["explain", str(path), "--kind", "star"]) == 2
    assert "star" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "missing.fits")]) == 2


@pytest.fixture
def catalog_mask_file(tmp_path):
    geom = WcsGeom.create(npix=(200, 150), binsz=0.02, frame="icrs", skydir=(83.63, 22.01))
    extra = ["icrs;circle(83.63,22.01,0.4)", "icrs;box(85,21.5,0.5,0.3,0)"]
    mask = gpumask.exclusion_mask(geom, gpumask.demo_catalog(), regions=extra, explain=True)
    path = tmp_path / "catalog_mask.fits"
    mask.write(path)
    return path, mask


def test_at_catalog_sources_brute_force(catalog_mask_file, capsys):
    path, mask = catalog_mask_file
    comps = mask.provenance.components
    cat = gpumask.demo_catalog()
    crab, hwc = cat.positions[0], cat.positions[1]
    points = [(crab.ra.deg, crab.dec.deg), (hwc.ra.deg, hwc.dec.deg), (85.0, 21.5), (82.3, 21.0)]
    args = ["explain", str(path), "--json"]
    for lon, lat in points:
        args += ["--at", repr(float(lon)), repr(float(lat))]
    assert main(args) == 0
    at = json.loads(capsys.readouterr().out)["at"]
    geom = mask.geom
    # brute force: each component's own shape (its ds9 text) at the pixel, in priority order
    shapes = [geom.region_mask(str(r["region"])).data for r in comps]
    for a in at:
        ix, iy = a["pixel"]
        covering = [k + 1 for k, s in enumerate(shapes) if s[iy, ix]]
        assert [c["index"] for c in a["components"]] == covering[:2]
        assert a["excluded"] == bool(covering) == (not mask.data[iy, ix])
    assert [c["name"] for c in at[0]["components"]] == ["Crab nebula", str(comps["name"][4])]
    assert at[1]["components"][0]["name"] == "3HWC J0540+228"
    assert [c["kind"] for c in at[2]["components"]] == ["region"] and at[3]["components"] == []
    # the text output names the same components
    assert main(["explain", str(path), "--at", repr(float(crab.ra.deg)), repr(float(crab.dec.deg)),
                 "--at", "82.3", "21.0"]) == 0
    text = capsys.readouterr().out
    block = text.split("\nat (")[1]
    assert "excluded" in block.splitlines()[0] and "Crab nebula" in block
    assert "usable" in text.split("\nat (")[2] and "(none)" in text.split("\nat (")[2]


def test_kind_and_top(catalog_mask_file, capsys):
    path, mask = catalog_mask_file
    assert main(["explain", str(path), "--json", "--kind", "catalog source", "--top", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    comps = mask.provenance.components
    src = [r for r in comps if r["kind"] == "catalog source" and r["npix"] > 0]
    best = sorted(src, key=lambda r: -float(r["solid_angle"]))[:2]
    assert [r["index"] for r in summary] == [int(r["index"]) for r in best]
    np.testing.assert_allclose([r["solid_angle"] for r in summary], [float(r["solid_angle"]) for r in best])
    assert main(["explain", str(path), "--json", "--top", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert len(summary) == int((np.asarray(comps["npix"]) > 0).sum())
    assert main(["explain", str(path), "--top", "-1"]) == 2
    assert "--top" in capsys.readouterr().err


def test_region_file(catalog_mask_file, tmp_path, capsys):
    path, mask = catalog_mask_file
    reg = tmp_path / "look.reg"
    reg.write_text("# Region file format: DS9 version 4.1\nicrs\ncircle(83.9,22.0,0.45)\n")
    assert main(["explain", str(path), "--region", str(reg), "--json"]) == 0
    inside = json.loads(capsys.readouterr().out)["regions"][0]
    rmask = mask.geom.region_mask(str(reg)).data
    label = mask.provenance.label
    counts = np.bincount(label[rmask].ravel(), minlength=mask.provenance.n_components + 1)[1:]
    got = [(c["index"], c["npix_in_region"]) for c in inside["components"]]
    expect = sorted(((k + 1, int(v)) for k, v in enumerate(counts) if v), key=lambda kv: -kv[1])
    assert got == expect and len(got) >= 2
    assert inside["pixels"] == int(rmask.sum())


def test_ds9_with_catalog_and_rings(catalog_mask_file, tmp_path):
    _, mask = catalog_mask_file
    eroded = gpumask.binary_erode(mask, "0.06 deg")
    epath = tmp_path / "eroded.fits"
    eroded.write(epath)
    out = tmp_path / "eroded.reg"
    assert main(["explain", str(epath), "--ds9", str(out)]) == 0
    comps = eroded.provenance.components
    shaped = [r for r in comps if r["kind"] != "dilation ring"]
    parsed = regions.Regions.read(out, format="ds9")
    assert len(parsed) == len(shaped) == 6
    assert [r.meta["text"] for r in parsed] == [f"{int(r['index'])}: {r['name']}" for r in shaped]
    assert "# 7: dilation ring" in out.read_text()
    centre = parsed[0].center.icrs
    crab = gpumask.demo_catalog().positions[0]
    assert centre.separation(crab).deg < 1e-6


@pytest.mark.data
def test_fermi_gc_blobs(data_dir, tmp_path, capsys):
    from gpumask.stats.excess import excess_map

    counts = gpumask.read_map(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz", backend="numpy")
    background = gpumask.read_map(data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-background.fits.gz", backend="numpy")
    sqrt_ts = excess_map(counts, background, correlation_radius="0.2 deg")["sqrt_ts"]
    mask = gpumask.exclusion_from_significance(sqrt_ts, 5, low=3, explain=True)
    path = tmp_path / "gc.fits"
    mask.write(path)
    data = np.nan_to_num(np.asarray(sqrt_ts.data, float), nan=-np.inf).reshape(mask.data.shape[-2:])
    iy, ix = np.unravel_index(np.argmax(data), data.shape)
    pos = mask.geom.pix_to_coord((float(ix), float(iy)))
    assert main(["explain", str(path), "--json", "--top", "0", "--frame", "galactic",
                 "--at", repr(float(pos[0])), repr(float(pos[1]))]) == 0
    report = json.loads(capsys.readouterr().out)
    label = mask.provenance.label.reshape(data.shape)
    assert report["excluded_pixels"] == int((~mask.data).sum()) == sum(r["npix"] for r in report["summary"])
    assert set(report["kinds"]) == {"significance blob"} and report["components"] >= 2
    (at,) = report["at"]
    assert at["pixel"] == [int(ix), int(iy)] and at["excluded"]
    assert [c["index"] for c in at["components"]] == [int(label[iy, ix])]
    assert at["components"][0]["npix"] == int((label == label[iy, ix]).sum())
