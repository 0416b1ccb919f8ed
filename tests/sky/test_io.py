"""FITS input/output: gammapy 2.1 compatibility both ways, boolean masks, MapDataset
files, atomic writes, error messages for bad files and transfer counting.

gammapy 2.1 is the oracle for the layout (``gammapy.maps.Map.read`` /
``Map.write`` and ``gammapy.datasets.MapDataset.read``).  Every file lives under
``tmp_path``.
"""

from __future__ import annotations

import gc
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

import gpumask
from gpumask import FitsReadError, GammapyCompatibilityWarning, Map, MapAxis, WcsGeom
from gpumask.backend import backend_of

# ---------------------------------------------------------------------- helpers

_IGNORED_CARDS = ("", "COMMENT", "HISTORY")


def header_dict(header) -> dict:
    """Keyword -> value of a FITS header (commentary cards left out)."""
    return {key: header[key] for key in header.keys() if key not in _IGNORED_CARDS}


def assert_headers_equal(got, expected, what=""):
    got, expected = header_dict(got), header_dict(expected)
    diff = {
        key: (got.get(key, "<missing>"), expected.get(key, "<missing>"))
        for key in sorted(set(got) | set(expected))
        if got.get(key, "<missing>") != expected.get(key, "<missing>")
    }
    assert not diff, f"{what} header differs (got, expected): {diff}"


def native(dtype) -> np.dtype:
    """``dtype`` in native byte order (FITS data is big-endian on disk)."""
    return np.dtype(dtype).newbyteorder("=")


def host(array) -> np.ndarray:
    return gpumask.to_host(array)


def assert_axis_matches(axis, gp_axis, rtol=1e-12):
    """A gpumask MapAxis equals a gammapy MapAxis: name, node type, interpolation,
    unit, number of bins, edges and centres (to ``rtol``)."""
    assert axis.name == gp_axis.name
    assert axis.node_type == gp_axis.node_type, axis.name
    assert axis.interp == gp_axis.interp, axis.name
    assert axis.unit == gp_axis.unit, axis.name
    assert axis.nbin == gp_axis.nbin, axis.name
    np.testing.assert_allclose(axis.edges.to_value(gp_axis.unit), gp_axis.edges.value, rtol=rtol, atol=0)
    np.testing.assert_allclose(axis.center.to_value(gp_axis.unit), gp_axis.center.value, rtol=rtol, atol=0)


def assert_gammapy_axes_equal(axes, gp_axes, rtol=1e-12):
    assert len(axes) == len(gp_axes)
    for a, b in zip(axes, gp_axes):
        assert_axis_matches(a, b, rtol=rtol)


def assert_matches_gammapy_map(m, gp_map, *, rtol_axes=1e-12):
    """A gpumask map read from a file equals gammapy's reading of the same file."""
    assert_headers_equal(m.geom.to_header(), gp_map.geom.to_header(), "gpumask vs gammapy geometry")
    assert m.geom.data_shape == gp_map.geom.data_shape
    assert_gammapy_axes_equal(m.geom.axes, list(gp_map.geom.axes), rtol=rtol_axes)
    data = host(m.data)
    assert data.dtype == native(gp_map.data.dtype)
    np.testing.assert_array_equal(data, gp_map.data)
    assert m.unit == gp_map.unit


def dir_listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def read_error(exc_type, func, *args, **kwargs) -> tuple[str, list[str]]:
    """Call ``func`` expecting ``exc_type``.  Returns the message and the files the
    failed call left open (ResourceWarnings once the exception is gone)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(exc_type) as info:
            func(*args, **kwargs)
        message = str(info.value)
        del info
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    return message, leaks


def problem_of(message, path) -> str:
    """The error message must name the file; returns the rest of the message (the
    problem), so that words in the tmp_path directory name cannot satisfy a check."""
    assert str(path) in message, f"the message does not name {path}: {message}"
    return message.replace(str(path), "<file>")


def error_without_leak(exc_type, func, *args, **kwargs) -> str:
    """The message of the expected error; the failed read must close the file."""
    message, leaks = read_error(exc_type, func, *args, **kwargs)
    assert not leaks, f"the failed read left files open: {leaks}"
    return message


def energy_axis(nbin=4, name="energy", **kwargs):
    return MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin, name=name, **kwargs)


# Geometries: WcsGeom.create arguments shared by gpumask and gammapy.
GEOM_CASES = {
    "car-icrs": dict(npix=(20, 10), binsz=0.1, skydir=(83.63, 22.01), frame="icrs", proj="CAR"),
    "tan-galactic": dict(npix=(21, 11), binsz=0.05, skydir=(184.56, -5.78), frame="galactic", proj="TAN"),
    "ait-allsky": dict(npix=(36, 18), binsz=10, frame="galactic", proj="AIT"),
    "sin-fk5-rect-pixels": dict(npix=(10, 8), binsz=(0.1, 0.2), skydir=(10, 50), frame="fk5", proj="SIN"),
    "car-oblique-refpix": dict(npix=(10, 8), binsz=0.1, skydir=(10, 50), frame="icrs", proj="CAR", refpix=(1.0, 1.0)),
    "tan-width-skycoord": dict(
        width=(3, 2), binsz=0.25, skydir=SkyCoord(83.63, 22.01, unit="deg"), frame="galactic", proj="TAN"
    ),
}

SMALL = dict(npix=(7, 5), binsz=0.2, skydir=(83.63, 22.01), frame="icrs")


def filled_map(rng, dtype="float32", axes=None, unit="", meta=None, backend="numpy", **geom_kwargs):
    kwargs = dict(SMALL)
    kwargs.update(geom_kwargs)
    geom = WcsGeom.create(axes=axes, **kwargs)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        data = rng.random(geom.data_shape) < 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        data = rng.integers(max(info.min, -1000), min(info.max, 1000), size=geom.data_shape, endpoint=True)
    else:
        data = rng.normal(size=geom.data_shape) * 1e3
    data = data.astype(dtype)
    return Map.from_geom(geom, data=data, unit=unit, meta=meta, backend=backend)


# ====================================================================== 1. gpumask -> gammapy


@pytest.mark.gammapy
@pytest.mark.parametrize("case", sorted(GEOM_CASES))
def test_gpumask_2d_float_map_opens_in_gammapy(tmp_path, gammapy_maps, rng, case):
    kwargs = GEOM_CASES[case]
    geom = WcsGeom.create(**kwargs)
    m = Map.from_geom(geom, data=rng.normal(size=geom.data_shape).astype(np.float32), unit="cm-2 s-1")
    path = tmp_path / "map.fits"
    m.write(path)

    g = gammapy_maps.Map.read(path)
    expected = gammapy_maps.WcsGeom.create(**kwargs)
    assert g.geom == expected
    assert_headers_equal(g.geom.to_header(), expected.to_header(), "gammapy geometry of the gpumask file")
    # FITS headers store CRVAL with 14 significant digits, hence the tolerance
    assert g.geom.wcs.wcs.compare(expected.wcs.wcs, tolerance=1e-10)
    assert g.geom.data_shape == expected.data_shape == m.geom.data_shape
    assert native(g.data.dtype) == np.float32
    np.testing.assert_array_equal(g.data, m.data)
    assert g.unit == u.Unit("cm-2 s-1")


@pytest.mark.gammapy
@pytest.mark.parametrize("dtype", ["int16", "int32", "int64", "uint8", "uint16", "float64"])
def test_gpumask_int_and_double_maps_open_in_gammapy_with_their_dtype(tmp_path, gammapy_maps, rng, dtype):
    m = filled_map(rng, dtype=dtype)
    path = tmp_path / "counts.fits"
    m.write(path)
    g = gammapy_maps.Map.read(path)
    assert native(g.data.dtype) == np.dtype(dtype)
    np.testing.assert_array_equal(g.data, m.data)
    assert g.geom == gammapy_maps.WcsGeom.create(**SMALL)


@pytest.mark.gammapy
@pytest.mark.parametrize("hdu", [None, "COUNTS"])
def test_gpumask_energy_cube_opens_in_gammapy(tmp_path, gammapy_maps, rng, hdu):
    axis = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 6)
    m = filled_map(rng, dtype="int32", axes=[axis], unit="")
    path = tmp_path / "cube.fits"
    m.write(path, hdu=hdu)

    name = hdu or "PRIMARY"
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == (["PRIMARY", name, f"{name}_BANDS"] if hdu else ["PRIMARY", "PRIMARY_BANDS"])
        assert hdul[name].header["BANDSHDU"] == f"{name}_BANDS"

    g = gammapy_maps.Map.read(path, hdu=hdu) if hdu else gammapy_maps.Map.read(path)
    gp_axis = gammapy_maps.MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 6)
    expected = gammapy_maps.WcsGeom.create(axes=[gp_axis], **SMALL)
    assert g.geom == expected
    assert_headers_equal(g.geom.to_header(), expected.to_header(), "cube")
    assert_gammapy_axes_equal(m.geom.axes, list(g.geom.axes))
    assert_axis_matches(m.geom.axes[0], gp_axis)
    assert native(g.data.dtype) == np.int32
    np.testing.assert_array_equal(g.data, m.data)


AXES_CASES = {
    "energy_true-edges": lambda gp: (
        [energy_axis(3, name="energy_true")],
        [gp.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3, name="energy_true")],
    ),
    "energy_true-center-from-bounds": lambda gp: (
        [energy_axis(4, name="energy_true", node_type="center")],
        [gp.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 4, name="energy_true", node_type="center")],
    ),
    "rad-nodes": lambda gp: (
        [MapAxis.from_nodes([0.1, 0.5, 1.0], unit="deg", name="rad")],
        [gp.MapAxis.from_nodes([0.1, 0.5, 1.0], unit="deg", name="rad")],
    ),
    "energy+time": lambda gp: (
        [MapAxis.from_energy_bounds(0.1, 100, 2, unit="TeV", per_decade=True),
         MapAxis.from_edges([0, 1, 2, 3.5], unit="h", name="time")],
        [gp.MapAxis.from_energy_bounds(0.1, 100, 2, unit="TeV", per_decade=True),
         gp.MapAxis.from_edges([0, 1, 2, 3.5], unit="h", name="time")],
    ),
    "energy+index-nodes": lambda gp: (
        [energy_axis(2), MapAxis.from_nodes([1, 2, 3, 4], name="idx")],
        [gp.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2), gp.MapAxis.from_nodes([1, 2, 3, 4], name="idx")],
    ),
    "lin-energy-edges": lambda gp: (
        [MapAxis.from_edges([1, 2, 4, 8], unit="GeV", name="energy", interp="lin")],
        [gp.MapAxis.from_edges([1, 2, 4, 8], unit="GeV", name="energy", interp="lin")],
    ),
}


@pytest.mark.gammapy
@pytest.mark.parametrize("hdu", [None, "FLUX"])
@pytest.mark.parametrize("case", sorted(AXES_CASES))
def test_gpumask_maps_with_other_axes_open_in_gammapy(tmp_path, gammapy_maps, rng, case, hdu):
    axes, gp_axes = AXES_CASES[case](gammapy_maps)
    m = filled_map(rng, axes=axes, unit="TeV")
    path = tmp_path / "axes.fits"
    m.write(path, hdu=hdu)

    g = gammapy_maps.Map.read(path, hdu=hdu) if hdu else gammapy_maps.Map.read(path)
    expected = gammapy_maps.WcsGeom.create(axes=gp_axes, **SMALL)
    assert g.geom.axes.names == [ax.name for ax in axes]
    assert_gammapy_axes_equal(axes, gp_axes)  # gpumask builds the same axes as gammapy
    assert_gammapy_axes_equal(m.geom.axes, list(g.geom.axes))
    assert g.geom == expected
    assert_headers_equal(g.geom.to_header(), expected.to_header(), case)
    np.testing.assert_array_equal(g.data, m.data)
    assert g.unit == u.TeV


@pytest.mark.gammapy
@pytest.mark.parametrize(
    # (no "ct"/"ph": gammapy drops counts and photons from every unit it reads)
    "unit", ["", "cm-2 s-1 TeV-1", "sr", "deg2", "cm2 s", "1e-12 TeV-1 cm-2 s-1", "TeV cm-2 s-1 sr-1", "TeV"]
)
def test_gpumask_units_are_read_by_gammapy(tmp_path, gammapy_maps, rng, unit):
    m = filled_map(rng, unit=unit)
    path = tmp_path / "unit.fits"
    m.write(path)
    assert u.Unit(fits.getheader(path)["BUNIT"] or "", format="fits") == u.Unit(unit)
    g = gammapy_maps.Map.read(path)
    assert g.unit == u.Unit(unit)


@pytest.mark.gammapy
def test_gpumask_meta_is_read_by_gammapy(tmp_path, gammapy_maps, rng):
    meta = {"origin": "gpumask test", "creator": "tests/test_io.py", "nested": {"what": "exclusion"}}
    m = filled_map(rng, meta=meta, unit="cm-2")
    path = tmp_path / "meta.fits"
    m.write(path, hdu="FLUX")
    g = gammapy_maps.Map.read(path, hdu="FLUX")
    assert g.meta == meta
    assert json.loads(fits.getheader(path, "FLUX")["META"]) == meta


@pytest.mark.gammapy
@pytest.mark.parametrize("hdu", [None, "COUNTS"])
def test_gpumask_gzip_file_opens_in_gammapy(tmp_path, gammapy_maps, rng, hdu):
    m = filled_map(rng, dtype="float32", axes=[energy_axis(3)], unit="cm-2 s-1")
    path = tmp_path / "cube.fits.gz"
    m.write(path, hdu=hdu)
    assert path.read_bytes()[:2] == b"\x1f\x8b", "a .fits.gz file must be gzip-compressed"
    assert dir_listing(tmp_path) == ["cube.fits.gz"]
    g = gammapy_maps.Map.read(path, hdu=hdu) if hdu else gammapy_maps.Map.read(path)
    expected = gammapy_maps.WcsGeom.create(
        axes=[gammapy_maps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)], **SMALL
    )
    assert g.geom == expected
    assert_headers_equal(g.geom.to_header(), expected.to_header(), "gzip")
    np.testing.assert_array_equal(g.data, m.data)
    assert g.unit == u.Unit("cm-2 s-1")


SAME_FILE_CASES = {
    "2d-primary": (lambda: None, lambda gp: None, None),
    "2d-named": (lambda: None, lambda gp: None, "FLUX"),
    "cube-counts": (
        lambda: [energy_axis(3)],
        lambda gp: [gp.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)],
        "COUNTS",
    ),
    "energy_true-nodes": (
        lambda: [MapAxis.from_nodes([1.0, 2.0, 5.0], unit="TeV", name="energy_true", interp="log")],
        lambda gp: [gp.MapAxis.from_nodes([1.0, 2.0, 5.0], unit="TeV", name="energy_true", interp="log")],
        None,
    ),
    "energy+time": (
        lambda: [energy_axis(2), MapAxis.from_edges([0, 1, 2.5], unit="h", name="time")],
        lambda gp: [gp.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2), gp.MapAxis.from_edges([0, 1, 2.5], unit="h", name="time")],
        "FLUX",
    ),
}


@pytest.mark.gammapy
@pytest.mark.parametrize("case", sorted(SAME_FILE_CASES))
def test_gpumask_file_has_gammapys_layout(tmp_path, gammapy_maps, rng, case):
    """The same map written by gpumask and by gammapy gives the same HDUs, the same
    header keywords and the same bands table."""
    axes_fn, gp_axes_fn, hdu = SAME_FILE_CASES[case]
    meta = {"origin": "layout test"}
    m = filled_map(rng, axes=axes_fn(), unit="cm-2 s-1", meta=meta)
    g = gammapy_maps.Map.create(axes=gp_axes_fn(gammapy_maps), unit="cm-2 s-1", meta=meta, **SMALL)
    g.data = host(m.data)
    ours, theirs = tmp_path / "gpumask.fits", tmp_path / "gammapy.fits"
    m.write(ours, hdu=hdu)
    if hdu is None:
        g.write(theirs)
    else:
        g.write(theirs, hdu=hdu)
    with fits.open(ours) as a, fits.open(theirs) as b:
        assert [h.name for h in a] == [h.name for h in b]
        for ha, hb in zip(a, b):
            assert_headers_equal(ha.header, hb.header, ha.name)
            if isinstance(hb, fits.BinTableHDU):
                assert ha.columns.names == hb.columns.names
                for col in hb.columns.names:
                    np.testing.assert_allclose(ha.data[col], hb.data[col], rtol=1e-12, err_msg=col)
            elif hb.data is not None:
                np.testing.assert_array_equal(ha.data, hb.data)


@pytest.mark.gammapy
def test_custom_bands_hdu_and_checksum(tmp_path, gammapy_maps, rng):
    m = filled_map(rng, axes=[energy_axis(3)], unit="cm-2")
    path = tmp_path / "bands.fits"
    m.write(path, hdu="COUNTS", hdu_bands="mybands", checksum=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad checksum warns in astropy
        with fits.open(path, checksum=True) as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "COUNTS", "MYBANDS"]
            assert hdul["COUNTS"].header["BANDSHDU"] == "MYBANDS"
            assert "CHECKSUM" in hdul["COUNTS"].header and "DATASUM" in hdul["COUNTS"].header
    back = Map.read(path, hdu="COUNTS")
    assert back.geom == m.geom
    np.testing.assert_array_equal(back.data, m.data)
    g = gammapy_maps.Map.read(path, hdu="COUNTS")
    assert_gammapy_axes_equal(m.geom.axes, list(g.geom.axes))
    np.testing.assert_array_equal(g.data, m.data)


# ====================================================================== 2. boolean masks


def _mask_map(rng, cube):
    axes = [energy_axis(3)] if cube else None
    return filled_map(rng, dtype=bool, axes=axes)


@pytest.mark.parametrize("cube", [False, True], ids=["2d", "cube"])
def test_mask_is_written_as_uint8_to_hdu_mask_with_flag(tmp_path, rng, cube):
    mask = _mask_map(rng, cube)
    path = tmp_path / "mask.fits"
    mask.write(path)
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names == (["PRIMARY", "MASK", "MASK_BANDS"] if cube else ["PRIMARY", "MASK"])
        hdu = hdul["MASK"]
        assert hdu.header["BITPIX"] == 8
        assert hdu.header["GPMBOOL"] is True
        assert hdu.data.dtype == np.uint8
        assert set(np.unique(hdu.data)) <= {0, 1}
        np.testing.assert_array_equal(hdu.data, mask.data.astype(np.uint8))


@pytest.mark.parametrize("cube", [False, True], ids=["2d", "cube"])
def test_mask_reads_back_as_bool_in_gpumask(tmp_path, rng, cube):
    mask = _mask_map(rng, cube)
    path = tmp_path / "mask.fits"
    mask.write(path)
    for kwargs in ({}, {"hdu": "MASK"}):
        back = Map.read(path, **kwargs)
        assert back.dtype == np.bool_
        assert back.is_mask
        assert back.geom == mask.geom
        np.testing.assert_array_equal(back.data, mask.data)


@pytest.mark.gammapy
@pytest.mark.parametrize("cube", [False, True], ids=["2d", "cube"])
def test_mask_reads_back_as_bool_in_gammapy(tmp_path, gammapy_maps, rng, cube):
    mask = _mask_map(rng, cube)
    path = tmp_path / "mask.fits"
    mask.write(path)
    g = gammapy_maps.Map.read(path, hdu="MASK")
    assert g.data.dtype == np.bool_
    np.testing.assert_array_equal(g.data, mask.data)
    gp_axes = [gammapy_maps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)] if cube else None
    expected = gammapy_maps.WcsGeom.create(axes=gp_axes, **SMALL)
    assert g.geom == expected
    assert_headers_equal(g.geom.to_header(), expected.to_header(), "mask")
    # gammapy's default HDU search finds the mask too
    g_default = gammapy_maps.Map.read(path)
    assert g_default.data.dtype == np.bool_
    np.testing.assert_array_equal(g_default.data, mask.data)


@pytest.mark.parametrize("hdu", ["MASK_FIT", "mask_safe", "EXCLUSION_MASK"])
def test_mask_written_to_a_mask_named_hdu_does_not_warn(tmp_path, rng, hdu):
    mask = _mask_map(rng, cube=False)
    path = tmp_path / "mask.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask.write(path, hdu=hdu)
    back = Map.read(path, hdu=hdu)
    assert back.dtype == np.bool_
    np.testing.assert_array_equal(back.data, mask.data)


@pytest.mark.parametrize("hdu", ["EXCLUSION", "PRIMARY"])
def test_mask_written_to_non_mask_hdu_warns_and_reads_back_bool(tmp_path, rng, hdu):
    mask = _mask_map(rng, cube=True)
    path = tmp_path / "excl.fits"
    with pytest.warns(GammapyCompatibilityWarning, match="MASK"):
        mask.write(path, hdu=hdu)
    assert path.exists()
    with fits.open(path) as hdul:
        assert hdul[hdu].header["BITPIX"] == 8
        assert hdul[hdu].header["GPMBOOL"] is True
    back = Map.read(path, hdu=hdu)
    assert back.dtype == np.bool_
    assert back.geom == mask.geom
    np.testing.assert_array_equal(back.data, mask.data)


@pytest.mark.gammapy
def test_mask_in_non_mask_hdu_is_integer_in_gammapy_as_the_warning_says(tmp_path, gammapy_maps, rng):
    mask = _mask_map(rng, cube=False)
    path = tmp_path / "excl.fits"
    with pytest.warns(GammapyCompatibilityWarning):
        gpumask.write_map(mask, path, hdu="EXCLUSION")
    g = gammapy_maps.Map.read(path, hdu="EXCLUSION")
    assert g.data.dtype != np.bool_
    np.testing.assert_array_equal(g.data.astype(bool), mask.data)


# ====================================================================== 3. gammapy -> gpumask


def _gp_axes_case(gp, name):
    cases = {
        "none": [],
        "energy": [gp.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)],
        "energy_true-nodes": [gp.MapAxis.from_nodes([1, 2, 5, 10.0], name="energy_true", unit="TeV", interp="log")],
        "energy_true-center": [
            gp.MapAxis.from_energy_bounds("1 TeV", "100 TeV", 5, name="energy_true", node_type="center")
        ],
        "energy+rad-nodes": [
            gp.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2),
            gp.MapAxis.from_nodes([0.1, 0.2, 0.3], name="rad", unit="deg"),
        ],
    }
    return cases[name]


@pytest.mark.gammapy
@pytest.mark.parametrize(
    "axes_case, hdu, proj",
    [
        ("none", None, "CAR"),
        ("none", "IMAGE", "AIT"),
        ("none", "FLUX", "TAN"),
        ("energy", None, "CAR"),
        ("energy", "COUNTS", "TAN"),
        ("energy_true-nodes", None, "CAR"),
        ("energy_true-nodes", "EXPOSURE", "CAR"),
        ("energy_true-center", "EXPOSURE", "SIN"),
        ("energy+rad-nodes", "PSFMAP", "CAR"),
    ],
)
def test_gammapy_maps_open_in_gpumask(tmp_path, gammapy_maps, rng, axes_case, hdu, proj):
    gp_axes = _gp_axes_case(gammapy_maps, axes_case)
    geom = gammapy_maps.WcsGeom.create(
        npix=(9, 6), binsz=0.3, skydir=(184.56, -5.78), frame="galactic", proj=proj, axes=gp_axes
    )
    meta = {"origin": "gammapy 2.1"}
    g = gammapy_maps.Map.from_geom(geom, unit="cm-2 s-1", meta=meta, dtype=np.float32)
    g.data = rng.normal(size=g.data.shape).astype(np.float32)
    path = tmp_path / "gammapy.fits"
    if hdu is None:
        g.write(path)
    else:
        g.write(path, hdu=hdu)

    m = Map.read(path, hdu=hdu)
    assert_headers_equal(m.geom.to_header(), geom.to_header(), "gammapy-written geometry")
    assert_gammapy_axes_equal(m.geom.axes, list(geom.axes))
    assert m.geom.data_shape == geom.data_shape
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m.data, g.data)
    assert m.unit == u.Unit("cm-2 s-1")
    assert m.meta == meta
    # and equal to gammapy's own reading of the file
    assert_matches_gammapy_map(m, gammapy_maps.Map.read(path, hdu=hdu) if hdu else gammapy_maps.Map.read(path))


@pytest.mark.gammapy
@pytest.mark.parametrize("dtype", ["int16", "int32", "int64", "float64"])
def test_gammapy_maps_keep_their_dtype_in_gpumask(tmp_path, gammapy_maps, rng, dtype):
    g = gammapy_maps.Map.create(dtype=dtype, **SMALL)
    g.data = (rng.normal(size=g.data.shape) * 100).astype(dtype)
    path = tmp_path / "gammapy.fits"
    g.write(path)
    m = Map.read(path)
    assert m.dtype == np.dtype(dtype)
    assert m.data.dtype.isnative
    np.testing.assert_array_equal(m.data, g.data)


@pytest.mark.gammapy
@pytest.mark.parametrize("hdu", ["MASK", "MASK_SAFE", "MASK_EXCLUSION", "mask_fit"])
@pytest.mark.parametrize("cube", [False, True], ids=["2d", "cube"])
def test_gammapy_bool_masks_read_as_bool_in_gpumask(tmp_path, gammapy_maps, rng, hdu, cube):
    gp_axes = [gammapy_maps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)] if cube else None
    geom = gammapy_maps.WcsGeom.create(axes=gp_axes, **SMALL)
    g = gammapy_maps.Map.from_geom(geom, dtype=bool)
    g.data = rng.random(g.data.shape) < 0.3
    path = tmp_path / "gp_mask.fits"
    g.write(path, hdu=hdu)
    with fits.open(path) as hdul:
        assert hdul[hdu.upper()].header["BITPIX"] == 64  # gammapy stores masks as int64

    for kwargs in ({"hdu": hdu}, {}):
        m = Map.read(path, **kwargs)
        assert m.dtype == np.bool_
        np.testing.assert_array_equal(m.data, g.data)
        assert_headers_equal(m.geom.to_header(), geom.to_header(), "gammapy mask")
        assert_gammapy_axes_equal(m.geom.axes, list(geom.axes))


@pytest.mark.gammapy
def test_gammapy_fermi_ccube_format_opens_in_gpumask(tmp_path, gammapy_maps, rng):
    axis = gammapy_maps.MapAxis.from_energy_bounds("1 GeV", "100 GeV", 4)
    g = gammapy_maps.Map.create(npix=(7, 5), binsz=0.2, axes=[axis], frame="galactic")
    g.data = rng.poisson(5, size=g.data.shape).astype(np.float32)
    path = tmp_path / "ccube.fits"
    g.write(path, format="fgst-ccube")
    with fits.open(path) as hdul:
        assert "EBOUNDS" in [h.name for h in hdul]
    m = Map.read(path)
    assert_matches_gammapy_map(m, gammapy_maps.Map.read(path))
    assert_axis_matches(m.geom.axes[0], axis, rtol=1e-6)  # EBOUNDS are float32 on disk


FERMI_FILES = [
    "fermi-3fhl-gc/fermi-3fhl-gc-counts-cube.fits.gz",
    "fermi-3fhl-gc/fermi-3fhl-gc-counts.fits.gz",
    "fermi-3fhl-crab/Fermi-LAT-3FHL_iem.fits",
]


@pytest.mark.data
@pytest.mark.gammapy
@pytest.mark.parametrize("name", FERMI_FILES)
def test_fermi_files_read_like_gammapy(data_dir, gammapy_maps, name):
    path = data_dir / name
    m = Map.read(path)
    g = gammapy_maps.Map.read(path)
    assert_matches_gammapy_map(m, g, rtol_axes=1e-12)


@pytest.mark.data
@pytest.mark.gammapy
def test_fermi_files_have_the_expected_layout(data_dir, gammapy_maps):
    cube = Map.read(data_dir / FERMI_FILES[0])
    assert cube.geom.data_shape == (11, 200, 400)
    assert [ax.name for ax in cube.geom.axes] == ["energy"]
    assert cube.geom.axes[0].node_type == "edges"
    image = Map.read(data_dir / FERMI_FILES[1])
    assert image.geom.is_image and image.geom.data_shape == (200, 400)
    iem = Map.read(data_dir / FERMI_FILES[2])
    assert [ax.name for ax in iem.geom.axes] == ["energy_true"]
    assert iem.geom.axes[0].node_type == "center"
    assert iem.unit == u.Unit("cm-2 s-1 MeV-1 sr-1")
    # the 2D counts image is the cube summed over energy, on the same pixels
    assert cube.geom.to_image() == image.geom
    summed = cube.sum_over_axes(keepdims=False)
    assert summed.geom == image.geom
    np.testing.assert_array_equal(summed.data, image.data)


# ====================================================================== 4. read_dataset

DATASET_FILES = [
    "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits",
    "fermi-3fhl-gc/fermi-3fhl-gc.fits.gz",
]


def assert_dataset_matches_gammapy(ds, gp_ds, backend):
    for key in ("counts", "background", "exposure", "mask_safe", "mask_fit"):
        ours, theirs = getattr(ds, key), getattr(gp_ds, key)
        if theirs is None:
            assert ours is None, f"{key}: gpumask read a map that gammapy does not have"
            continue
        assert ours is not None, f"{key}: missing in gpumask's dataset"
        assert backend_of(ours.data).name == backend.name, key
        assert ours.backend.name == backend.name, key
        if key.startswith("mask"):
            assert ours.dtype == np.bool_, key
            assert theirs.data.dtype == np.bool_, key
        data = host(ours.data)
        assert data.dtype == native(theirs.data.dtype), key
        np.testing.assert_array_equal(data, theirs.data, err_msg=key)
        assert ours.unit == theirs.unit, key
        assert_headers_equal(ours.geom.to_header(), theirs.geom.to_header(), key)
        assert_gammapy_axes_equal(ours.geom.axes, list(theirs.geom.axes))
    assert [ax.name for ax in ds.exposure.geom.axes] == ["energy_true"]
    assert_axis_matches(ds.exposure.geom.axes[0], gp_ds.exposure.geom.axes["energy_true"])


@pytest.mark.data
@pytest.mark.gammapy
@pytest.mark.parametrize("name", DATASET_FILES)
def test_read_dataset_matches_gammapy(data_dir, backend, name):
    datasets = pytest.importorskip("gammapy.datasets")
    path = data_dir / name
    ds = gpumask.read_dataset(path, backend=backend.name)
    gp_ds = datasets.MapDataset.read(path)
    assert ds.backend.name == backend.name
    assert_dataset_matches_gammapy(ds, gp_ds, backend)
    assert ds.name == Path(name).name.split(".")[0]


@pytest.mark.data
@pytest.mark.gammapy
def test_read_dataset_with_mask_fit_written_by_gammapy(tmp_path, data_dir, backend, rng):
    datasets = pytest.importorskip("gammapy.datasets")
    gp_ds = datasets.MapDataset.read(data_dir / DATASET_FILES[0])
    assert gp_ds.mask_fit is None  # the Crab file has no MASK_FIT
    mask_fit = gp_ds.counts.geom.energy_mask(energy_min=None, energy_max=None)
    mask_fit.data = rng.random(mask_fit.data.shape) < 0.7
    gp_ds.mask_fit = mask_fit
    path = tmp_path / "dataset.fits"
    gp_ds.write(path)
    gp_back = datasets.MapDataset.read(path)
    assert gp_back.mask_fit is not None

    ds = gpumask.read_dataset(path, backend=backend.name)
    assert ds.mask_fit is not None
    assert_dataset_matches_gammapy(ds, gp_back, backend)
    combined = host(ds.mask.data)
    np.testing.assert_array_equal(combined, gp_back.mask_safe.data & gp_back.mask_fit.data)


# ====================================================================== 5. atomic writes


def test_overwrite_false_is_default_and_leaves_existing_file_untouched(tmp_path, rng):
    path = tmp_path / "map.fits"
    first = filled_map(rng)
    first.write(path)
    before = path.read_bytes()
    stat = path.stat()

    second = filled_map(rng)
    with pytest.raises(FileExistsError) as info:
        second.write(path)
    assert "overwrite=True" in problem_of(str(info.value), path)
    with pytest.raises(FileExistsError):
        gpumask.write_map(second, path)
    with pytest.raises(FileExistsError):
        second.write(path, overwrite=False)

    assert path.read_bytes() == before
    after = path.stat()
    assert after.st_mtime_ns == stat.st_mtime_ns
    assert after.st_ino == stat.st_ino
    assert dir_listing(tmp_path) == ["map.fits"]
    np.testing.assert_array_equal(Map.read(path).data, first.data)


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_overwrite_true_replaces_the_file(tmp_path, rng, suffix):
    path = tmp_path / f"map{suffix}"
    filled_map(rng).write(path)
    new = filled_map(rng, dtype="float64", axes=[energy_axis(2)], unit="sr")
    new.write(path, overwrite=True)
    back = Map.read(path)
    assert back.geom == new.geom
    assert back.dtype == np.float64
    assert back.unit == u.sr
    np.testing.assert_array_equal(back.data, new.data)
    assert dir_listing(tmp_path) == [path.name]
    # the function form too
    newer = filled_map(rng, dtype="int16")
    gpumask.write_map(newer, path, overwrite=True)
    np.testing.assert_array_equal(Map.read(path).data, newer.data)
    assert dir_listing(tmp_path) == [path.name]


def test_written_file_permissions_follow_the_umask(tmp_path, rng):
    path = tmp_path / "map.fits"
    old = os.umask(0o027)
    try:
        filled_map(rng).write(path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def _failing_writeto(self, fileobj, *args, **kwargs):
    raise RuntimeError("simulated failure while writing")


def _partial_writeto(self, fileobj, *args, **kwargs):
    Path(fileobj).write_bytes(b"SIMPLE  =                    T" + b" " * 100)
    raise OSError("simulated disk full after a partial write")


@pytest.mark.parametrize("failure", [_failing_writeto, _partial_writeto], ids=["raise", "partial-write"])
@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_failed_write_of_a_new_file_leaves_nothing(tmp_path, rng, monkeypatch, failure, suffix):
    path = tmp_path / f"map{suffix}"
    monkeypatch.setattr(fits.HDUList, "writeto", failure)
    with pytest.raises((RuntimeError, OSError), match="simulated"):
        filled_map(rng).write(path)
    assert not path.exists()
    assert dir_listing(tmp_path) == []


@pytest.mark.parametrize("failure", [_failing_writeto, _partial_writeto], ids=["raise", "partial-write"])
def test_failed_overwrite_leaves_the_old_file_untouched(tmp_path, rng, monkeypatch, failure):
    path = tmp_path / "map.fits"
    old = filled_map(rng)
    old.write(path)
    before, stat = path.read_bytes(), path.stat()

    monkeypatch.setattr(fits.HDUList, "writeto", failure)
    with pytest.raises((RuntimeError, OSError), match="simulated"):
        filled_map(rng, dtype="float64").write(path, overwrite=True)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert dir_listing(tmp_path) == ["map.fits"]
    np.testing.assert_array_equal(Map.read(path).data, old.data)


def test_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path, rng, monkeypatch):
    path = tmp_path / "map.fits"
    filled_map(rng).write(path)
    before = path.read_bytes()

    def failing_replace(src, dst, *args, **kwargs):
        raise OSError("simulated rename failure")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        filled_map(rng).write(path, overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["map.fits"]


def test_successful_writes_leave_no_temporary_files(tmp_path, rng):
    filled_map(rng).write(tmp_path / "a.fits")
    filled_map(rng, dtype=bool).write(tmp_path / "b.fits.gz")
    filled_map(rng).write(tmp_path / "a.fits", overwrite=True)
    gpumask.write_map(filled_map(rng), tmp_path / "c.fits", hdu="COUNTS")
    assert dir_listing(tmp_path) == ["a.fits", "b.fits.gz", "c.fits"]
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]


def test_write_into_missing_directory_names_the_directory(tmp_path, rng):
    missing = tmp_path / "no" / "such" / "dir"
    path = missing / "map.fits"
    with pytest.raises(FileNotFoundError) as info:
        filled_map(rng).write(path)
    assert "directory" in problem_of(str(info.value), missing)
    assert not missing.exists()
    with pytest.raises(FileNotFoundError) as info:
        gpumask.write_map(filled_map(rng), str(path), overwrite=True)
    assert "directory" in problem_of(str(info.value), missing)
    assert dir_listing(tmp_path) == []


def test_write_onto_a_directory_is_refused(tmp_path, rng):
    target = tmp_path / "sub"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        filled_map(rng).write(target, overwrite=True)
    assert "directory" in problem_of(str(info.value), target)
    assert dir_listing(target) == []


# ====================================================================== 6. bad files


def test_not_fits_text_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is a text file, not FITS\n" * 20)
    message = error_without_leak(FitsReadError, Map.read, path)
    problem = problem_of(message, path)
    assert "FITS" in problem
    assert issubclass(FitsReadError, ValueError)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    message = error_without_leak(FitsReadError, Map.read, path)
    problem = problem_of(message, path)
    assert "empty" in problem.lower()


def _truncated_copy(tmp_path, rng, suffix=".fits", cube=False, hdu=None):
    m = filled_map(rng, dtype="float64", axes=[energy_axis(3)] if cube else None, npix=(60, 40))
    full = tmp_path / f"full{suffix}"
    m.write(full, hdu=hdu)
    content = full.read_bytes()
    path = tmp_path / f"truncated{suffix}"
    path.write_bytes(content[: len(content) // 2])
    return path


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
@pytest.mark.parametrize("cube", [False, True], ids=["2d", "cube"])
def test_truncated_fits_names_file_and_truncation(tmp_path, rng, suffix, cube):
    path = _truncated_copy(tmp_path, rng, suffix, cube, hdu="COUNTS" if cube else None)
    message, _ = read_error(FitsReadError, Map.read, path)
    problem = problem_of(message, path)
    assert "truncat" in problem.lower() or "corrupt" in problem.lower(), message


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
@pytest.mark.parametrize("cube", [False, True], ids=["2d", "cube"])
def test_truncated_fits_error_closes_the_file(tmp_path, rng, suffix, cube):
    path = _truncated_copy(tmp_path, rng, suffix, cube, hdu="COUNTS" if cube else None)
    error_without_leak(FitsReadError, Map.read, path)


def test_truncated_dataset_file(tmp_path, rng):
    path = _truncated_copy(tmp_path, rng, hdu="COUNTS")
    message, leaks = read_error(FitsReadError, gpumask.read_dataset, path)
    problem = problem_of(message, path)
    assert "truncat" in problem.lower() or "corrupt" in problem.lower(), message
    assert not leaks, f"the failed read left files open: {leaks}"


def test_missing_hdu_lists_available_hdus(tmp_path, rng):
    path = tmp_path / "cube.fits"
    filled_map(rng, axes=[energy_axis(2)]).write(path, hdu="COUNTS")
    message = error_without_leak(FitsReadError, Map.read, path, hdu="NOPE")
    problem = problem_of(message, path)
    assert "NOPE" in problem
    for name in ("PRIMARY", "COUNTS", "COUNTS_BANDS"):
        assert name in problem


def test_image_without_wcs(tmp_path):
    path = tmp_path / "nowcs.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 5), np.float32), name="IMG")]).writeto(path)
    for kwargs in ({}, {"hdu": "IMG"}):
        message = error_without_leak(FitsReadError, Map.read, path, **kwargs)
        problem = problem_of(message, path)
        assert "WCS" in problem


def test_unsupported_projection(tmp_path):
    header = WcsGeom.create(**SMALL).to_header()
    header["CTYPE1"] = "RA---XYZ"
    header["CTYPE2"] = "DEC--XYZ"
    path = tmp_path / "xyz.fits"
    fits.PrimaryHDU(np.zeros((5, 7), np.float32), header=header).writeto(path)
    message = error_without_leak(FitsReadError, Map.read, path)
    problem = problem_of(message, path)
    assert "XYZ" in problem


def test_healpix_table(tmp_path):
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="CHANNEL", format="E", array=np.arange(12, dtype=np.float32))], name="SKYMAP"
    )
    table.header["PIXTYPE"] = "HEALPIX"
    table.header["NSIDE"] = 1
    table.header["ORDERING"] = "RING"
    table.header["COORDSYS"] = "C"
    path = tmp_path / "hpx.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    for kwargs in ({}, {"hdu": "SKYMAP"}):
        message = error_without_leak(FitsReadError, Map.read, path, **kwargs)
        problem = problem_of(message, path)
        assert "HEALPix" in problem


def test_binary_table_that_is_not_a_map(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="X", format="E", array=np.arange(3.0))], name="TAB")
    path = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    message = error_without_leak(FitsReadError, Map.read, path, hdu="TAB")
    problem = problem_of(message, path)
    assert "table" in problem.lower()


def test_missing_file(tmp_path):
    path = tmp_path / "missing.fits"
    for func in (Map.read, gpumask.read_map, gpumask.read_dataset):
        with pytest.raises(FileNotFoundError) as info:
            func(path)
        assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path):
    message = error_without_leak(FitsReadError, Map.read, tmp_path)
    assert "directory" in problem_of(message, tmp_path)


def test_read_dataset_on_a_plain_map_file(tmp_path, rng):
    path = tmp_path / "map.fits"
    filled_map(rng).write(path)
    message = error_without_leak(FitsReadError, gpumask.read_dataset, path)
    problem = problem_of(message, path)
    assert "COUNTS" in problem


# ====================================================================== 7. transfer counting


@pytest.mark.parametrize(
    "dtype, cube, hdu",
    [("float32", False, None), ("int64", True, "COUNTS"), ("bool", False, None), ("bool", True, "MASK_FIT")],
)
def test_write_copies_to_host_exactly_once(tmp_path, rng, backend, dtype, cube, hdu):
    m = filled_map(rng, dtype=dtype, axes=[energy_axis(3)] if cube else None, backend=backend.name)
    with gpumask.count_transfers() as counter:
        m.write(tmp_path / "map.fits", hdu=hdu)
    assert counter.calls == 1
    assert counter.device_calls == (1 if backend.is_gpu else 0)


def test_read_does_no_device_to_host_transfer(tmp_path, rng, backend):
    m = filled_map(rng, axes=[energy_axis(3)])
    path = tmp_path / "map.fits"
    m.write(path, hdu="COUNTS")
    mask_path = tmp_path / "mask.fits"
    filled_map(rng, dtype=bool).write(mask_path)
    with gpumask.count_transfers() as counter:
        back = Map.read(path, backend=backend.name)
        mask = gpumask.read_map(mask_path, backend=backend.name)
    assert counter.calls == 0
    assert counter.device_calls == 0
    assert back.backend.name == backend.name
    assert mask.backend.name == backend.name


@pytest.mark.data
def test_read_dataset_does_no_device_to_host_transfer(data_dir, backend):
    with gpumask.count_transfers() as counter:
        ds = gpumask.read_dataset(data_dir / DATASET_FILES[0], backend=backend.name)
    assert counter.calls == 0
    assert ds.backend.name == backend.name


# ====================================================================== 8. gpumask round trip

ROUND_TRIP_DTYPES = ["float32", "float64", "int16", "int32", "int64", "uint8", "uint16", "bool"]
ROUND_TRIP_AXES = {
    "2d": lambda: None,
    "energy": lambda: [energy_axis(3)],
    "energy_true-nodes": lambda: [MapAxis.from_nodes([1.0, 3.0, 10.0, 30.0], unit="GeV", name="energy_true", interp="log")],
    "energy+time": lambda: [energy_axis(2), MapAxis.from_edges([0, 1, 2.5], unit="h", name="time")],
}


@pytest.mark.parametrize("axes_case", sorted(ROUND_TRIP_AXES))
@pytest.mark.parametrize("dtype", ROUND_TRIP_DTYPES)
def test_round_trip_in_gpumask(tmp_path, rng, backend, dtype, axes_case):
    meta = {"origin": "test", "n": 3, "x": 2.5, "flags": [True, False], "nested": {"a": None}}
    unit = "" if dtype == "bool" else "cm-2 s-1"
    m = filled_map(rng, dtype=dtype, axes=ROUND_TRIP_AXES[axes_case](), unit=unit, meta=meta, backend=backend.name)
    path = tmp_path / "map.fits"
    m.write(path)
    back = Map.read(path, backend=backend.name)
    assert back.geom == m.geom
    assert_headers_equal(back.geom.to_header(), m.geom.to_header(), "round trip")
    assert back.dtype == m.dtype
    assert back.backend.name == backend.name
    assert backend_of(back.data).name == backend.name
    np.testing.assert_array_equal(host(back.data), host(m.data))
    assert back.unit == m.unit
    assert back.meta == meta


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
@pytest.mark.parametrize("hdu", [None, "COUNTS", "background"])
def test_round_trip_named_hdu_and_gzip(tmp_path, rng, backend, hdu, suffix):
    m = filled_map(rng, dtype="float32", axes=[energy_axis(4)], unit="TeV-1", meta={"k": "v"}, backend=backend.name)
    path = tmp_path / f"map{suffix}"
    m.write(path, hdu=hdu)
    back = Map.read(path, hdu=hdu, backend=backend.name)
    assert back.geom == m.geom
    assert back.dtype == m.dtype
    np.testing.assert_array_equal(host(back.data), host(m.data))
    assert back.unit == m.unit
    assert back.meta == m.meta
    assert back.backend.name == backend.name


def test_round_trip_keeps_nan_and_inf(tmp_path, rng, backend):
    m = filled_map(rng, dtype="float64", backend=backend.name)
    data = host(m.data).copy()
    data[0, 0], data[1, 1], data[2, 2] = np.nan, np.inf, -np.inf
    m = Map.from_geom(m.geom, data=data, backend=backend.name)
    path = tmp_path / "nan.fits"
    m.write(path)
    back = Map.read(path, backend=backend.name)
    np.testing.assert_array_equal(host(back.data), data)


@pytest.mark.parametrize("case", sorted(GEOM_CASES))
def test_round_trip_geometries(tmp_path, rng, case):
    geom = WcsGeom.create(**GEOM_CASES[case])
    m = Map.from_geom(geom, data=rng.normal(size=geom.data_shape))
    path = tmp_path / "geom.fits"
    m.write(path)
    back = Map.read(path)
    assert back.geom == geom
    assert back.geom.frame == geom.frame
    assert back.geom.projection == geom.projection
    assert_headers_equal(back.geom.to_header(), geom.to_header(), case)
    np.testing.assert_array_equal(back.data, m.data)
