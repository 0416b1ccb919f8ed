"""Text and HTML summaries of every public result type (issue 18: users look before
they read).  Each must name the type, show its key facts, escape what it shows, and
read no device data (the counted host copies stay at zero)."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from astropy.table import Table

import gpumask


def _dataset(backend):
    geom = gpumask.WcsGeom.create(
        npix=(30, 20), binsz=0.1, frame="galactic",
        axes=[gpumask.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2)],
    )
    rng = np.random.default_rng(1)
    counts = gpumask.Map.from_geom(geom, data=rng.poisson(2.0, geom.data_shape).astype(float), backend=backend)
    background = gpumask.Map.from_geom(geom, data=np.full(geom.data_shape, 2.0), backend=backend)
    return gpumask.MapDataset(counts, background=background, name="<field & 1>")


def _objects(backend):
    ds = _dataset(backend)
    image = ds.counts.sum_over_axes(keepdims=False)
    kbe = gpumask.KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.2 deg"))
    table = Table({"Source_Name": ["a<b", "c"], "RAJ2000": [83.6, 84.0], "DEJ2000": [22.0, 22.4]})
    catalog = gpumask.SourceCatalog(
        table, table["Source_Name"], __import__("astropy.coordinates", fromlist=["SkyCoord"]).SkyCoord(
            table["RAJ2000"], table["DEJ2000"], unit="deg"),
        {"type": ["point", "point"], **{c: [np.nan, np.nan] for c in _morph_columns()}},
    )
    ring = gpumask.RingBackgroundEstimator("0.3 deg", "0.2 deg")
    return {
        "WcsGeom": (ds.counts.geom, ["galactic", "CAR", "0.1 deg x 0.1 deg"]),
        "MapAxis": (ds.counts.geom.axes[0], ["energy", "log", "TeV"]),
        "MapDataset": (ds, ["cash", "counts", "background", backend.name]),
        "MapDatasetOnOff": (ring.run(ds), ["wstat", "counts_off", "acceptance_off"]),
        "ExcessMaps": (gpumask.ExcessMapEstimator("0.2 deg").run(ds), ["sqrt_ts", "lon, lat, energy", "cash"]),
        "ExcessMapEstimator": (gpumask.ExcessMapEstimator("0.2 deg"), ["0.2 deg", "correlate_off"]),
        "KernelBackgroundEstimator": (kbe, ["ring(0.3 deg, 0.2 deg)", "significance_threshold"]),
        "KernelBackgroundResult": (kbe.run({"counts": image}), ["converged", "exclusion", "(20, 30)"]),
        "RingBackgroundEstimator": (ring, ["0.3 deg", "exclusion_mask"]),
        "AdaptiveRingBackgroundEstimator": (
            gpumask.AdaptiveRingBackgroundEstimator("0.3 deg", "0.8 deg", "0.1 deg"), ["fixed_width", "theta"]),
        "SourceCatalog": (catalog, ["2", "point: 2", "a<b"]),
        "MaskProvenance": (gpumask.exclusion_mask(
            gpumask.WcsGeom.create(npix=(40, 30), binsz=0.05, skydir=(83.8, 22.2)), catalog,
            regions="icrs;circle(83.2,22,0.3)", radius="0.2 deg", backend=backend.name,
            explain=True).provenance, ["components", "catalog source", "a<b", "icrs;circle"]),
    }


def _morph_columns():
    from gpumask.catalog.source_catalog import _MORPH_FLOAT_COLUMNS

    return _MORPH_FLOAT_COLUMNS


@pytest.mark.parametrize("name", [
    "WcsGeom", "MapAxis", "MapDataset", "MapDatasetOnOff", "ExcessMaps", "ExcessMapEstimator",
    "KernelBackgroundEstimator", "KernelBackgroundResult", "RingBackgroundEstimator",
    "AdaptiveRingBackgroundEstimator", "SourceCatalog", "MaskProvenance",
])
def test_text_and_html_reprs(name, backend):
    obj, facts = _objects(backend)[name]
    with gpumask.count_transfers() as counter:
        text = repr(obj)
        page = obj._repr_html_()
    assert counter.calls == 0  # a summary reads no device data
    assert name in text
    assert page.startswith("<div") and f"gpumask {name}" in page
    for fact in facts:
        assert fact in text or fact in html.unescape(page), (name, fact)
        assert fact in html.unescape(page), (name, fact)
    # what is shown is escaped: no raw user text makes it into the markup
    assert "<field & 1>" not in page and "a<b" not in page


def test_excess_maps_repr_lists_each_axis_once(backend):
    result = gpumask.ExcessMapEstimator("0.2 deg").run(_dataset(backend))
    line = next(line for line in repr(result).splitlines() if "shape" in line)
    assert re.search(r"\(30, 20, 1\) \(lon, lat, energy\)$", line), line
