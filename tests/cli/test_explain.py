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
    path, mask = mask_file
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
