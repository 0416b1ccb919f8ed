"""Hostile catalog files (issue 16): truncated or damaged FITS, CSV with a UTF-8
byte-order mark, and plain tables whose size column used to be ignored."""

from __future__ import annotations

import gzip
import re
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from numpy.testing import assert_allclose

import gpumask
from gpumask import SourceCatalog, WcsGeom
from gpumask.catalog import load, source_shapes
from gpumask.errors import GpumaskWarning

HGPS = "catalogs/hgps_catalog_v1.fits.gz"
FHL3 = "catalogs/fermi/gll_psch_v13.fit.gz"
GAMMACAT = "catalogs/gammacat/gammacat.fits.gz"
LHAASO = "catalogs/1LHAASO_catalog.fits"


def _raw(path):
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _truncated_error(path):
    """What a truncated file must raise: a CatalogReadError (a ValueError) naming it."""
    return pytest.raises(ValueError, match=re.escape(str(path)) + r".*(truncated or damaged)")


# ---------------------------------------------------------------- truncated / damaged FITS


def _small_fits(path):
    main = fits.BinTableHDU(Table({"Source_Name": ["A", "B", "C"] * 40, "RA": np.arange(120.0),
                                   "DEC": np.linspace(-10, 10, 120)}), name="SOURCES")
    extra = fits.BinTableHDU(Table({"x": np.arange(500.0)}), name="EXTRA")
    fits.HDUList([fits.PrimaryHDU(), main, extra]).writeto(path)
    return path.read_bytes()


@pytest.mark.parametrize("cut", ["data", "header", "padding"])
@pytest.mark.parametrize("packing", ["plain", "gzip of the cut file", "cut gzip stream"])
def test_truncated_table_fits(tmp_path, cut, packing):
    raw = _small_fits(tmp_path / "full.fits")
    assert len(SourceCatalog.read(tmp_path / "full.fits")) == 120
    hdul = fits.open(tmp_path / "full.fits")
    info = [hdul.fileinfo(i) for i in range(3)]
    hdul.close()
    stop = {"data": info[1]["datLoc"] + 1000,  # inside the SOURCES rows
            "header": info[2]["hdrLoc"] + 400,  # inside the EXTRA header
            "padding": info[2]["datLoc"] + info[2]["datSpan"] - 100}[cut]  # EXTRA's last block
    blob = raw[:stop]
    if packing == "gzip of the cut file":
        blob = gzip.compress(blob)
    elif packing == "cut gzip stream":
        full = gzip.compress(raw)
        blob = full[: len(full) * stop // len(raw)]
    path = tmp_path / ("cut.fits.gz" if packing != "plain" else "cut.fits")
    path.write_bytes(blob)
    with _truncated_error(path) as raised:
        SourceCatalog.read(path)
    assert isinstance(raised.value, gpumask.catalog.CatalogReadError)
    with _truncated_error(path):
        SourceCatalog.read(path, format="table")


@pytest.mark.parametrize("name, fmt, hdu", [(HGPS, "hgps", None), (FHL3, "3fhl", "LAT_Point_Source_Catalog"),
                                            (GAMMACAT, "gamma-cat", "HDU 1"), (LHAASO, "1lhaaso", "HDU 1")])
@pytest.mark.parametrize("fraction", [0.3, 0.67])
def test_truncated_real_catalogs(data_dir, tmp_path, name, fmt, hdu, fraction):
    raw = _raw(data_dir / name)
    path = tmp_path / "catalog.fits"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with _truncated_error(path) as raised:
        load(fmt, path=path)
    assert isinstance(raised.value, gpumask.catalog.CatalogReadError)
    if hdu and fraction > 0.5:
        assert hdu in str(raised.value)  # which HDU the cut falls in
    path_gz = tmp_path / "catalog.fits.gz"
    path_gz.write_bytes(gzip.compress(raw[: int(len(raw) * fraction)]))
    with _truncated_error(path_gz):
        load(fmt, path=path_gz)
    cut_stream = tmp_path / "stream.fits.gz"
    cut_stream.write_bytes((data_dir / name).read_bytes()[:5000] if name.endswith(".gz")
                           else gzip.compress(raw)[:5000])
    with _truncated_error(cut_stream) as raised:
        SourceCatalog.read(cut_stream)
    assert "gzip stream" in str(raised.value)


def test_hgps_cut_after_its_sources_is_not_silently_short(data_dir, tmp_path):
    """The HGPS sources HDU intact, the components and everything after it cut off:
    astropy drops those HDUs without a word (gzip) or warns only (plain FITS)."""
    raw = _raw(data_dir / HGPS)
    path = tmp_path / "hgps.fits.gz"
    path.write_bytes(gzip.compress(raw[:157440]))
    with _truncated_error(path) as raised:
        SourceCatalog.read(path)
    assert "HGPS_SOURCES" in str(raised.value)
    plain = tmp_path / "hgps.fits"
    plain.write_bytes(raw[:157440])
    with _truncated_error(plain):
        SourceCatalog.read(plain, format="hgps")


def test_intact_catalogs_still_read_without_warnings(data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load("hgps", path=data_dir / HGPS)) == 78
        assert len(load("1lhaaso", path=data_dir / LHAASO)) > 90


# ---------------------------------------------------------------- CSV with a byte-order mark


def test_csv_with_a_utf8_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfra,dec,name,size\n83.63,22.01,Crab,0\n266.4,-28.9,GC,0.2\n")
    cat = SourceCatalog.read(path)
    assert "ra" in cat.table.colnames and not any(c.startswith("\ufeff") for c in cat.table.colnames)
    assert list(cat.names) == ["Crab", "GC"]
    assert_allclose(cat.positions.ra.deg, [83.63, 266.4])
    assert list(cat.morphology["type"]) == ["point", "disk"]
    assert_allclose(cat.morphology["size"][1], 0.2)


def test_ecsv_with_a_utf8_bom(tmp_path):
    plain = tmp_path / "plain.ecsv"
    Table({"name": ["a", "b"], "glon": [1.0, 2.0] * u.deg, "glat": [0.5, -0.5] * u.deg}).write(plain)
    path = tmp_path / "bom.ecsv"
    path.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    cat = SourceCatalog.read(path)
    assert cat.positions.frame.name == "galactic"
    assert_allclose(cat.positions.l.deg, [1.0, 2.0])
    assert list(cat.names) == ["a", "b"]


def test_unreadable_text_names_the_file(tmp_path):
    path = tmp_path / "junk.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x00\x01")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*neither FITS nor a table"):
        SourceCatalog.read(path)


# ---------------------------------------------------------------- size columns of plain tables


def _write(tmp_path, table, name="cat.ecsv"):
    path = tmp_path / name
    table.write(path, overwrite=True)
    return path


def _base(n=3):
    return {"name": [f"S{i}" for i in range(n)], "ra": np.linspace(83.0, 84.0, n), "dec": np.full(n, 22.0)}


def test_csv_size_column_is_picked_up(tmp_path):
    """The issue's case: a CSV with a size column gave psf points unless size="size"."""
    path = _write(tmp_path, Table({**_base(), "size": [0.0, 0.3, np.nan]}), "cat.csv")
    cat = SourceCatalog.read(path)
    assert list(cat.morphology["type"]) == ["point", "disk", "unknown"]
    assert_allclose(cat.morphology["size"][1], 0.3)  # no unit in a CSV: deg
    shapes = source_shapes(cat)
    assert_allclose(shapes.semi_major, [0.1, np.hypot(0.3, 0.1), 0.1])  # psf 0.1 deg in quadrature
    geom = WcsGeom.create(skydir=(83.5, 22.0), width=2.0, binsz=0.02, frame="icrs")
    got = gpumask.to_host(gpumask.exclusion_mask(geom, cat, backend="numpy").data)
    want = gpumask.exclusion_mask(geom, cat, radius=shapes.semi_major * u.deg, backend="numpy")
    np.testing.assert_array_equal(got, gpumask.to_host(want.data))
    points = gpumask.exclusion_mask(geom, SourceCatalog.read(path, size=False), backend="numpy")
    assert (~got).sum() > 3 * (~gpumask.to_host(points.data)).sum()


@pytest.mark.parametrize(
    "column, values, unit, kind, deg",
    [
        ("Radius", [0.0, 6.0, 12.0], u.arcmin, "disk", [np.nan, 0.1, 0.2]),
        ("extension", [0.0, 0.2, 0.4], u.deg, "disk", [np.nan, 0.2, 0.4]),
        ("r_ext", [0.0, 0.2, 0.4], None, "disk", [np.nan, 0.2, 0.4]),
        ("radius_arcmin", [0.0, 6.0, 12.0], None, "disk", [np.nan, 0.1, 0.2]),
        ("SIGMA", [0.0, 360.0, 720.0], u.arcsec, "gauss", [np.nan, 0.1, 0.2]),
        ("sigma_deg", [0.0, 0.1, 0.2], None, "gauss", [np.nan, 0.1, 0.2]),
    ],
)
def test_standard_extent_columns(tmp_path, column, values, unit, kind, deg):
    table = Table(_base())
    table[column] = values if unit is None else values * unit
    table["size_err"] = [0.01, 0.02, 0.03]  # an uncertainty: neither used nor warned about
    table["Extended"] = [False, True, True]  # a flag: neither used nor warned about
    cat = SourceCatalog.read(_write(tmp_path, table))
    assert list(cat.morphology["type"]) == ["point", kind, kind]
    assert_allclose(cat.morphology["size"], deg)
    gauss = SourceCatalog.read(_write(tmp_path, table), size_type="gauss")
    assert list(gauss.morphology["type"]) == ["point", "gauss", "gauss"]


@pytest.mark.parametrize(
    "columns, used, match",
    [
        ({"sigma": [1.0, 5.0, 30.0]}, None, r"'sigma' \(no unit: a Gaussian sigma or a significance\?\)"),
        ({"r68": [0.1, 0.2, 0.3] * u.deg}, None, r"'r68' \(not a standard extent column\)"),
        ({"Model_SemiMajor": [0.1, 0.2, 0.3]}, None, r"'Model_SemiMajor'"),
        ({"size": [1.0, 2.0, 3.0] * u.pc}, None, r"'size' \(unit pc is no angle\)"),
        ({"size": ["a", "b", "c"]}, None, r"'size' \(not numeric"),
        ({"sigma": [0.1, 0.2, 0.3] * u.deg, "radius": [0.2, 0.3, 0.4] * u.deg}, "radius",
         r"'sigma' \('radius' is used\).*sizes come from 'radius' \(disk\)"),
    ],
)
def test_size_like_columns_not_used_are_named(tmp_path, columns, used, match):
    path = _write(tmp_path, Table({**_base(), **columns}))
    with pytest.warns(GpumaskWarning, match=re.escape(str(path)) + ".*size-like columns not used: " + match):
        cat = SourceCatalog.read(path)
    if used is None:
        assert list(cat.morphology["type"]) == ["point"] * 3
    else:
        assert_allclose(cat.morphology["size"], u.Quantity(Table.read(path)[used]).to_value(u.deg))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice silences the warning
        assert list(SourceCatalog.read(path, size=False).morphology["type"]) == ["point"] * 3


def test_negative_detected_size_names_file_and_column(tmp_path):
    path = _write(tmp_path, Table({**_base(), "radius": [0.1, -0.2, 0.3]}))
    with pytest.raises(ValueError, match=r"size column 'radius' of .*cat\.ecsv has negative values \(rows \[1\]\)"):
        SourceCatalog.read(path)
