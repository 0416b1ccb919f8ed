"""Fuzz the FITS readers with mutated real headers, byte damage and truncations.

Bases: a gpumask cube with an energy axis and META (PRIMARY + bands table), a
gpumask boolean mask (MASK HDU), the Fermi-LAT Galactic-centre counts image
(``../shared/data``, when present) and a gammapy 2.1 MapDataset (when gammapy is
installed).  Each case changes one header card to a hostile value, deletes one,
damages header bytes, or cuts the file, optionally gzips it, then reads it.

Invariant: :class:`gpumask.FitsReadError` (or FileNotFoundError) naming the file,
or a map whose data shape is the geometry's and whose pixel scale is finite and
positive -- within the time and memory bounds of the harness (files are < 1 MB,
so the memory bound is 64 MiB).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from hypothesis import given, settings
from hypothesis import strategies as st

import gpumask

FUZZ = settings.get_profile("gpumask-fuzz")
CARD = 80
BLOCK = 2880
MAX_BYTES = 64 << 20

HOSTILE_VALUES = [
    "1000000000", "-1", "0", "1", "3", "999", "1000", "99999999999999999999", "-99999999999",
    "T", "F", "NAN", "INF", "1E300", "-1E300", "1E-300", "-0.0", "0.5",
    "'PRIMARY'", "'abc'", "'nan'", "''", "'[1,2]'", "'1e999'", "'{}'", "'null'",
    "'{\"a\": [1, 2]}'", "'RA---XXX'", "'GLON-CAR'", "'deg'", "'MASK'", "'BANDS'",
    "'" + "A" * 60 + "'", "(1, 2)", "1.0E", "--", "'",
]


def _cards(raw: bytes):
    """[(hdu index, byte offset of the card, keyword)] of every header card, and the
    header/data layout, parsed by hand (robust to what astropy would reject)."""
    cards, offset, index = [], 0, 0
    while offset + BLOCK <= len(raw):
        start = offset
        end_seen = False
        while offset + BLOCK <= len(raw) and not end_seen:
            for k in range(0, BLOCK, CARD):
                card = raw[offset + k: offset + k + CARD]
                key = card[:8].decode("ascii", "replace").strip()
                if key == "END":
                    end_seen = True
                    break
                if key:
                    cards.append((index, offset + k, key))
            offset += BLOCK
        if not end_seen:
            break
        header = raw[start:offset].decode("ascii", "replace")
        size = _data_size(header)
        offset += -(-size // BLOCK) * BLOCK
        index += 1
    return cards


def _data_size(header: str) -> int:
    values = {}
    for k in range(0, len(header), CARD):
        card = header[k: k + CARD]
        if "=" in card[8:10]:
            values[card[:8].strip()] = card[10:].split("/")[0].strip()
    try:
        naxis = int(values.get("NAXIS", "0"))
        if naxis == 0:
            return 0
        n = 1
        for i in range(1, naxis + 1):
            n *= int(values[f"NAXIS{i}"])
        bitpix = abs(int(values.get("BITPIX", "8")))
        pcount = int(values.get("PCOUNT", "0"))
        gcount = int(values.get("GCOUNT", "1"))
        return bitpix // 8 * gcount * (pcount + n)
    except (KeyError, ValueError):
        return 0


def _set_card(raw: bytes, offset: int, key: str, value: str, encoding="ascii") -> bytes:
    text = f"{key:<8}= {value:>20}"[:CARD].ljust(CARD)
    return raw[:offset] + text.encode(encoding) + raw[offset + CARD:]


@pytest.fixture(scope="module")
def bases(tmp_path_factory, data_dir_optional):
    folder = tmp_path_factory.mktemp("fits-bases")
    axis = gpumask.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    geom = gpumask.WcsGeom.create(skydir=(83.63, 22.01), npix=(30, 20), binsz=0.05, frame="icrs", axes=[axis])
    rng = np.random.default_rng(0)
    cube = gpumask.Map.from_geom(geom, data=rng.random(geom.data_shape).astype(np.float32), unit="cm-2 s-1",
                                 backend="numpy")
    cube.meta = {"creator": "fuzz", "values": [1, 2]}
    cube.write(folder / "cube.fits")
    image = geom.to_image()
    mask = gpumask.Map.from_geom(image, data=rng.random(image.data_shape) > 0.3, backend="numpy")
    mask.write(folder / "mask.fits")
    out = {"cube": (folder / "cube.fits").read_bytes(), "mask": (folder / "mask.fits").read_bytes()}
    if data_dir_optional is not None:
        counts = data_dir_optional / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz"
        out["fermi-counts"] = gzip.decompress(counts.read_bytes())
    return out


@pytest.fixture(scope="module")
def dataset_base(tmp_path_factory):
    """A small gammapy 2.1 MapDataset file (counts, background, exposure, mask_safe)."""
    datasets = pytest.importorskip("gammapy.datasets")
    maps = pytest.importorskip("gammapy.maps")
    folder = tmp_path_factory.mktemp("dataset-base")
    energy = maps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=2)
    geom = maps.WcsGeom.create(skydir=(0, 0), npix=(24, 16), binsz=0.1, frame="galactic", axes=[energy])
    dataset = datasets.MapDataset.create(geom, name="fuzz")
    dataset.counts.data += 3
    dataset.background.data += 2.5
    dataset.write(folder / "dataset.fits")
    return (folder / "dataset.fits").read_bytes()


@pytest.fixture(scope="module")
def data_dir_optional():
    import os

    path = Path(os.environ.get("GPUMASK_TEST_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    return path if path.is_dir() else None


class Mutation(tuple):
    """(description, damaged bytes), shown by its description."""

    def __repr__(self):
        return f"Mutation({self[0]!r})"


@st.composite
def mutations(draw, raw: bytes):
    return Mutation(_mutation(draw, raw))


def _mutation(draw, raw: bytes):
    """(description, damaged bytes)."""
    cards = _cards(raw)
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "bytes", "truncate", "append"]))
    if kind in ("set", "delete"):
        hdu, offset, key = draw(st.sampled_from(cards))
        if kind == "delete":
            return f"delete {key} in HDU {hdu}", raw[:offset] + b" " * CARD + raw[offset + CARD:]
        value = draw(st.sampled_from(HOSTILE_VALUES) | st.integers(-2**40, 2**40).map(str)
                     | st.floats(allow_nan=True, allow_infinity=False).map(lambda x: f"{x!r}".upper()))
        return f"{key} = {value} in HDU {hdu}", _set_card(raw, offset, key, value)
    if kind == "bytes":
        header_end = max(offset for _, offset, _ in cards) + CARD
        where = draw(st.integers(0, header_end - 1))
        junk = draw(st.binary(min_size=1, max_size=16))
        return f"bytes {junk!r} at {where}", raw[:where] + junk + raw[where + len(junk):]
    if kind == "truncate":
        where = draw(st.integers(0, len(raw) - 1))
        return f"truncated at {where} of {len(raw)}", raw[:where]
    junk = draw(st.binary(min_size=1, max_size=3000))
    return f"{len(junk)} bytes appended", raw + junk


def _check_map(fuzz, suite, m, describe):
    if not isinstance(m, gpumask.Map):
        fuzz.wrong(suite, describe, f"read_map returned {type(m).__name__}")
    if tuple(m.data.shape) != tuple(m.geom.data_shape):
        fuzz.wrong(suite, describe, f"data shape {m.data.shape} != geometry {m.geom.data_shape}")
    scales = m.geom.pixel_scales.to_value(u.deg)
    if not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
        fuzz.wrong(suite, describe, f"pixel scales {scales}")


@pytest.mark.parametrize("base", ["cube", "mask", "fermi-counts"])
@pytest.mark.parametrize("compress", [False, True], ids=["fits", "gz"])
def test_read_map_mutated(fuzz, bases, base, compress, tmp_path):
    if base not in bases:
        pytest.skip("shared data not found (set GPUMASK_TEST_DATA)")
    raw = bases[base]

    @FUZZ
    @given(mutations(raw))
    def case(mutation):
        describe, damaged = mutation
        path = tmp_path / (f"{base}.fits.gz" if compress else f"{base}.fits")
        path.write_bytes(gzip.compress(damaged, compresslevel=1) if compress else damaged)
        result, _ = fuzz.run("fits", lambda: gpumask.read_map(path, backend="numpy"),
                             errors=(gpumask.FitsReadError, FileNotFoundError), names=(str(path), path.name),
                             max_bytes=MAX_BYTES, describe=f"{base}: {describe}")
        if result is not None:
            _check_map(fuzz, "fits", result, f"{base}: {describe}")

    case()


@pytest.mark.gammapy
def test_read_dataset_mutated(fuzz, dataset_base, tmp_path):
    @FUZZ
    @given(mutations(dataset_base))
    def case(mutation):
        describe, damaged = mutation
        path = tmp_path / "dataset.fits"
        path.write_bytes(damaged)
        result, _ = fuzz.run("fits", lambda: gpumask.read_dataset(path, backend="numpy"),
                             errors=(gpumask.FitsReadError, FileNotFoundError), names=(str(path), path.name),
                             max_bytes=MAX_BYTES, describe=f"dataset: {describe}")
        if result is not None:
            for name, m in result.maps.items():
                _check_map(fuzz, "fits", m, f"dataset {name}: {describe}")

    case()


def test_mutations_parse_the_bases(bases):
    """The mutation engine sees the cards of every HDU (else the fuzz would only
    ever hit the primary header)."""
    hdus = {hdu for hdu, _, _ in _cards(bases["cube"])}
    keys = {key for _, _, key in _cards(bases["cube"])}
    assert hdus == {0, 1}
    assert {"NAXIS", "NAXIS3", "CDELT1", "BANDSHDU", "META", "TFIELDS"} <= keys


# ----------------------------------------------------------------- regression corpus

CORPUS = sorted((Path(__file__).parent / "corpus" / "fits").glob("*.json"))


@pytest.mark.parametrize("case", CORPUS, ids=[p.stem for p in CORPUS])
@pytest.mark.parametrize("compress", [False, True], ids=["fits", "gz"])
def test_corpus(fuzz, bases, case, compress, tmp_path):
    """The hostile files the outside fuzz run and this suite found (issue 16)."""
    spec = json.loads(case.read_text())
    if spec["base"] not in bases:
        pytest.skip("shared data not found (set GPUMASK_TEST_DATA)")
    raw = bases[spec["base"]]
    for key, value in spec["cards"].items():
        offsets = [offset for hdu, offset, k in _cards(raw) if k == key and hdu == spec["hdu"]]
        assert offsets, f"{case.name}: no card {key} in HDU {spec['hdu']}"
        raw = _set_card(raw, offsets[0], key, value, spec.get("encoding", "ascii"))
    if spec.get("truncate"):
        raw = raw[: spec["truncate"]]
    path = tmp_path / (f"{case.stem}.fits.gz" if compress else f"{case.stem}.fits")
    path.write_bytes(gzip.compress(raw, compresslevel=1) if compress else raw)
    result, error = fuzz.run("fits", lambda: gpumask.read_map(path, backend="numpy"),
                             errors=(gpumask.FitsReadError,), names=(str(path),), max_bytes=MAX_BYTES,
                             seconds=5, describe=f"corpus {case.stem}")
    if spec["expect"] == "ok":
        _check_map(fuzz, "fits", result, f"corpus {case.stem}")
    else:
        assert error is not None, f"{case.stem}: read without error: {result!r}"
