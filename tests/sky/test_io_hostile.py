"""Hostile and broken FITS files, failed writes and stale temporary files (issue 16).

Every hostile file is a small gpumask map written into ``tmp_path`` whose raw header
bytes are then patched, as a fuzzer or a damaged disk would.  A risky read runs in
a forked child under a time limit and a memory limit (:func:`bounded`), so that a
regression to astropy's endless loop fails the test instead of hanging the suite.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import gpumask
from gpumask import FitsReadError, Map, MapAxis, WcsGeom
from gpumask.sky import io as sky_io
from gpumask.sky.io import (
    check_fits_structure,
    fits_image_shape,
    map_to_hdulist,
    remove_stale_temp_files,
)

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or not Path("/proc/self/statm").exists(),
    reason="the time-limited reads fork a child and bound its memory through /proc (Linux)",
)

TIME_LIMIT = 60.0  # s; a healthy read takes well under a second
MEMORY_MARGIN = 1 << 30  # the child may grow its address space by 1 GiB at most

# ---------------------------------------------------------------------- helpers


def bounded(func, *args, timeout=TIME_LIMIT, **kwargs):
    """Run ``func(*args, **kwargs)`` in a forked child under a time and a memory
    limit.  Returns ``("ok", repr)`` or ``(exception type name, message)``; a
    child past the time limit is killed and the test fails as a hang."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_fd)
            _limit_memory()
            try:
                result = ("ok", repr(func(*args, **kwargs))[:200])
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                result = (type(exc).__name__, str(exc))
            os.write(write_fd, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{getattr(func, '__name__', func)}{args} ran past {timeout} s (hang)")
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    assert chunks, "the child died without a result (killed for memory?)"
    return pickle.loads(b"".join(chunks))


def _limit_memory():
    with open("/proc/self/statm") as fh:
        vm_bytes = int(fh.read().split()[0]) * resource.getpagesize()
    limit = vm_bytes + MEMORY_MARGIN
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def read_fails(func, path, *words, hdu=None):
    """``func(path)`` raises FitsReadError naming ``path`` (and ``hdu``) whose
    message holds every one of ``words``; returns the message."""
    kind, message = bounded(func, path)
    assert kind == "FitsReadError", f"{kind}: {message}"
    assert str(path) in message, message
    rest = message.replace(str(path), "<file>")
    if hdu is not None:
        assert hdu in rest, message
    for word in words:
        assert word in rest, f"{word!r} not in {message!r}"
    return message


def header_starts(content: bytes) -> list[int]:
    """Byte offsets of the headers of a small file (data never starts a block with
    SIMPLE or XTENSION in these files)."""
    return [i for i in range(0, len(content), 2880) if content[i : i + 8] in (b"SIMPLE  ", b"XTENSION")]


def card_offset(content: bytes, key: str, hdu: int = 0) -> int:
    start = header_starts(content)[hdu]
    for offset in range(start, len(content), 80):
        name = content[offset : offset + 8].decode().strip()
        if name == key:
            return offset
        if name == "END":
            break
    raise KeyError(f"no card {key} in HDU {hdu}")


def patched(src: Path, dst: Path, changes, gz=False) -> Path:
    """Copy ``src`` to ``dst`` with header cards replaced: ``changes`` is a list of
    ``(hdu, key, value_text)``; ``value_text`` is written as is (``"NAN"``,
    ``"'abc'"``, ``"-1"``); ``None`` turns the card into a blank card, a key
    ``"+KEY"`` overwrites the card after ``KEY`` with a second ``KEY`` card."""
    content = bytearray(src.read_bytes())
    for hdu, key, value in changes:
        if key.startswith("+"):
            offset = card_offset(content, key[1:], hdu) + 80
            key = key[1:]
        else:
            offset = card_offset(content, key, hdu)
        card = b" " * 80 if value is None else f"{key:<8}= {value:>20}".ljust(80).encode()
        content[offset : offset + 80] = card
    data = gzip.compress(bytes(content)) if gz else bytes(content)
    dst.write_bytes(data)
    return dst


def hdu_index(path, name) -> int:
    with fits.open(path) as hdul:
        return [h.name for h in hdul].index(name)


def small_map(dtype="float32", axes=None, npix=(7, 5), **kwargs):
    geom = WcsGeom.create(npix=npix, binsz=0.2, skydir=(83.63, 22.01), axes=axes, **kwargs)
    data = np.arange(np.prod(geom.data_shape)).reshape(geom.data_shape).astype(dtype)
    return Map.from_geom(geom, data=data, backend="numpy")


def energy_axis(nbin=3):
    return MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin)


@pytest.fixture
def files(tmp_path):
    """Good files: ``image`` (2D float32 in PRIMARY), ``counts`` (int64 PRIMARY,
    like the Fermi counts file), ``named`` (2D in HDU COUNTS), ``cube`` (COUNTS +
    COUNTS_BANDS) and ``dataset`` (COUNTS, BACKGROUND, MASK_SAFE + bands)."""
    out = {}
    src = tmp_path / "src"
    src.mkdir()
    out["image"] = src / "image.fits"
    small_map().write(out["image"], hdu="PRIMARY")
    out["counts"] = src / "counts.fits"
    small_map("int64").write(out["counts"], hdu="PRIMARY")
    out["named"] = src / "named.fits"
    small_map().write(out["named"], hdu="COUNTS")
    out["cube"] = src / "cube.fits"
    small_map(axes=[energy_axis()]).write(out["cube"], hdu="COUNTS")
    cube = small_map(axes=[energy_axis()])
    hdus = [fits.PrimaryHDU()]
    for name, m in (("COUNTS", cube), ("BACKGROUND", cube * 0.5), ("MASK_SAFE", cube > 3)):
        hdus += map_to_hdulist(m, hdu=name)[1:]
    out["dataset"] = src / "dataset.fits"
    fits.HDUList(hdus).writeto(out["dataset"])
    return out


# ---------------------------------------------------------------------- 2. structural keywords


# (file, hdu index, key, value, words of the message)
STRUCTURAL_CASES = {
    "naxis-1e9-primary": (
        "image", 0, "NAXIS", "1000000000", ["NAXIS = 1000000000", "out of range", "0 to 999"]
    ),
    "naxis-1e9-extension": ("named", 1, "NAXIS", "1000000000", ["NAXIS = 1000000000", "COUNTS"]),
    "naxis2-negative-int64-counts": ("counts", 0, "NAXIS2", "-1", ["NAXIS2 = -1", "out of range"]),
    "naxis1-negative-extension": ("named", 1, "NAXIS1", "-1", ["NAXIS1 = -1", "COUNTS"]),
    "naxis2-negative-bands": ("cube", 2, "NAXIS2", "-1", ["NAXIS2 = -1", "COUNTS_BANDS"]),
    "naxis-not-integer": ("image", 0, "NAXIS", "'abc'", ["NAXIS = 'abc'", "not an integer"]),
    "naxis1-float": ("image", 0, "NAXIS1", "7.5", ["NAXIS1 = 7.5", "not an integer"]),
    "naxis2-missing": ("image", 0, "NAXIS2", None, ["NAXIS2 is missing"]),
    "bitpix-invalid": ("named", 1, "BITPIX", "12", ["BITPIX = 12", "-64"]),
    "bitpix-missing": ("image", 0, "BITPIX", None, ["BITPIX is missing"]),
    "pcount-negative": ("named", 1, "PCOUNT", "-5", ["PCOUNT = -5"]),
    "gcount-huge": ("named", 1, "GCOUNT", "1000000000", ["truncated", "declares"]),
    "tfields-1e9": ("cube", 2, "TFIELDS", "1000000000", ["TFIELDS = 1000000000", "0 to 999"]),
    "data-beyond-file": ("image", 0, "NAXIS1", "100000", ["truncated", "2000000 bytes"]),
    "duplicate-naxis1": ("image", 0, "+NAXIS1", "7", ["NAXIS1 appears 2 times"]),
    "simple-false": ("image", 0, "SIMPLE", "F", ["SIMPLE = F"]),
    "xtension-not-string": ("named", 1, "XTENSION", "3", ["XTENSION = 3"]),
}


@pytest.mark.parametrize("gz", [False, True], ids=["fits", "gz"])
@pytest.mark.parametrize("case", sorted(STRUCTURAL_CASES))
def test_impossible_structural_keywords_fail_fast_naming_file_and_hdu(files, tmp_path, case, gz):
    name, hdu, key, value, words = STRUCTURAL_CASES[case]
    path = patched(files[name], tmp_path / f"{case}.fits{'.gz' if gz else ''}", [(hdu, key, value)], gz=gz)
    started = time.perf_counter()
    message = read_fails(gpumask.read_map, path, *words, hdu=f"HDU {hdu}")
    assert time.perf_counter() - started < TIME_LIMIT / 2, message
    # the same file in a dataset reader, and the shape peek of the batch config
    read_fails(gpumask.read_dataset, path, *words)
    read_fails(fits_image_shape, path, *words)


@pytest.mark.parametrize("hdu_name", ["BACKGROUND", "MASK_SAFE"])
def test_dataset_with_an_impossible_sub_hdu_names_it(files, tmp_path, hdu_name):
    index = hdu_index(files["dataset"], hdu_name)
    path = patched(files["dataset"], tmp_path / "ds.fits", [(index, "NAXIS", "1000000000")])
    read_fails(gpumask.read_dataset, path, "NAXIS = 1000000000", hdu=f"HDU {index} {hdu_name}")


def test_header_without_end_is_truncated(files, tmp_path):
    content = bytearray(files["image"].read_bytes())
    end = card_offset(content, "END")
    content[end : end + 80] = b"COMMENT no end".ljust(80)
    path = tmp_path / "noend.fits"
    path.write_bytes(bytes(content[:2880]))
    read_fails(gpumask.read_map, path, "truncated", "END")


def test_endless_header_stops_at_the_header_limit(tmp_path, monkeypatch):
    guard = sys.modules["gpumask.sky._fits_guard"]
    monkeypatch.setattr(guard, "MAX_HEADER_BLOCKS", 4)
    path = tmp_path / "endless.fits"
    card = b"SIMPLE  =                    T".ljust(80) + b"COMMENT x".ljust(80) * 35
    path.write_bytes(card + b"COMMENT x".ljust(80) * 36 * 10)
    message = read_fails(check_fits_structure, path, "no END card within 4 blocks")
    assert "11520 bytes" in message


def test_empty_and_non_fits_files(tmp_path):
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    read_fails(check_fits_structure, empty, "empty")
    text = tmp_path / "text.fits.gz"
    text.write_bytes(gzip.compress(b"hello, not FITS\n" * 400))
    read_fails(gpumask.read_map, text, "not a FITS file")


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_gzip_stream_is_reported(files, tmp_path, cut):
    data = gzip.compress(files["cube"].read_bytes())
    path = tmp_path / "cut.fits.gz"
    path.write_bytes(data[: int(len(data) * cut)])
    read_fails(gpumask.read_map, path, "truncated")


def test_structure_of_good_files_matches_astropy(files):
    for path in files.values():
        infos = check_fits_structure(path)
        with fits.open(path) as hdul:
            assert [i.name for i in infos] == [h.name for h in hdul]
            for info, hdu in zip(infos, hdul):
                expected = hdu.shape if hdu.is_image else (hdu.header["NAXIS2"],)
                assert info.shape == tuple(expected), (path, info)
                assert info.is_image == hdu.is_image
                assert info.bitpix == hdu.header["BITPIX"]
                assert info.data_offset == hdu.fileinfo()["datLoc"]


@pytest.mark.data
def test_structure_of_the_fermi_files_matches_astropy(data_dir):
    paths = sorted(data_dir.glob("fermi-3fhl-*/*.fits*"))
    assert paths
    for path in paths:
        infos = check_fits_structure(path)
        with fits.open(path) as hdul:
            assert [i.name for i in infos] == [h.name for h in hdul], path
            for info, hdu in zip(infos, hdul):
                assert info.shape == (hdu.shape if hdu.is_image else (hdu.header["NAXIS2"],)), path


def test_fits_image_shape(files):
    assert fits_image_shape(files["image"]) == (5, 7)
    assert fits_image_shape(files["cube"]) == (3, 5, 7)
    assert fits_image_shape(files["dataset"], "COUNTS") == (3, 5, 7)
    assert fits_image_shape(files["dataset"], "background") == (3, 5, 7)
    assert fits_image_shape(files["named"], 1) == (5, 7)
    with pytest.raises(FitsReadError, match=r"no HDU 'NOPE'.*\['PRIMARY', 'COUNTS', 'COUNTS_BANDS'"):
        fits_image_shape(files["cube"], "NOPE")
    with pytest.raises(FitsReadError, match=r"\[COUNTS_BANDS\]: a BINTABLE HDU, not an image"):
        fits_image_shape(files["cube"], "COUNTS_BANDS")


# ---------------------------------------------------------------------- 5. uncaught exceptions


@pytest.mark.parametrize(
    "value, words",
    [
        ("'[1,2]'", ["META = '[1,2]' is a JSON list, not an object"]),
        ("'1e999'", ["is a JSON float, not an object"]),
        ("'\"text\"'", ["is a JSON str, not an object"]),
        ("'{'", ["META card is not valid JSON"]),
        ("3", ["META = 3 is not a JSON string"]),
    ],
    ids=["list", "inf", "string", "invalid", "number"],
)
def test_meta_that_is_not_a_json_object(files, tmp_path, value, words):
    path = patched(files["cube"], tmp_path / "meta.fits", [(1, "META", value)])
    read_fails(gpumask.read_map, path, *words, "accepted: a JSON object", hdu="[COUNTS]")


@pytest.mark.parametrize(
    "value, words",
    [
        ("3", ["BANDSHDU = 3 is not an HDU name"]),
        ("T", ["BANDSHDU = True is not an HDU name"]),
        ("'PRIMARY'", ["BANDSHDU = 'PRIMARY' names an image HDU, not a bands table"]),
        ("'COUNTS'", ["BANDSHDU = 'COUNTS' names an image HDU, not a bands table"]),
        ("'NOPE'", ["bands HDU 'NOPE' not found", "COUNTS_BANDS"]),
    ],
    ids=["int", "bool", "primary", "itself", "missing"],
)
def test_bandshdu_that_is_not_a_bands_table(files, tmp_path, value, words):
    path = patched(files["cube"], tmp_path / "bands.fits", [(1, "BANDSHDU", value)])
    read_fails(gpumask.read_map, path, *words, hdu="[COUNTS]")


def test_hdu_bands_argument_is_checked_the_same_way(files):
    read = lambda p: gpumask.read_map(p, hdu_bands="PRIMARY")  # noqa: E731
    message = read_fails(read, files["cube"], "not a bands table")
    assert "hdu_bands = 'PRIMARY'" in message


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("TTYPE2", "NAN", ["COUNTS_BANDS", "TTYPE2"]),
        ("AXCOLS1", "NAN", ["COUNTS_BANDS", "AXCOLS1"]),
        ("AXCOLS1", "1000000000", ["COUNTS_BANDS", "AXCOLS1 = 1000000000 is not a column list"]),
        ("AXCOLS1", "','", ["COUNTS_BANDS", "is not a column list"]),
        ("AXCOLS1", "'E_LO,E_HI'", ["COUNTS_BANDS", "no column 'E_LO'"]),
        ("TUNIT3", "'abc'", ["COUNTS_BANDS", "unknown unit 'abc'"]),
        ("EXTNAME", "NAN", ["HDU 2", "EXTNAME"]),
    ],
    ids=["ttype-unparsable", "axcols-unparsable", "axcols-int", "axcols-empty", "axcols-missing-column",
         "tunit-unknown", "extname-unparsable"],
)
def test_damaged_bands_table_names_file_and_table(files, tmp_path, key, value, words):
    path = patched(files["cube"], tmp_path / "bands.fits", [(2, key, value)])
    read_fails(gpumask.read_map, path, *words)


@pytest.mark.parametrize("key", ["EXTNAME", "CTYPE1", "CRVAL2", "CRPIX1"])
def test_unparsable_card_in_the_map_header(files, tmp_path, key):
    source = tmp_path / "mask.fits"
    (small_map(axes=[energy_axis()]) > 3).write(source)  # HDU MASK, with GPMBOOL
    path = patched(source, tmp_path / "card.fits", [(1, key, "NAN")])
    read_fails(gpumask.read_map, path, key, "Unparsable card")


def test_gpmbool_must_be_true_to_make_booleans(files, tmp_path):
    content = bytearray(files["named"].read_bytes())
    offset = card_offset(content, "BUNIT", 1)
    content[offset : offset + 80] = "GPMBOOL = 'yes'".ljust(80).encode()
    path = tmp_path / "flag.fits"
    path.write_bytes(bytes(content))
    m = gpumask.read_map(path)
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m.data, np.arange(35, dtype=np.float32).reshape(5, 7))


def test_invalid_bunit_warning_names_file_and_hdu(files, tmp_path):
    path = patched(files["named"], tmp_path / "unit.fits", [(1, "BUNIT", "3")])
    with pytest.warns(UserWarning, match=re.escape(f"{path}[COUNTS]: invalid BUNIT 3")):
        m = gpumask.read_map(path)
    assert m.unit == "" and m.data.shape == (5, 7)


def test_dataset_sub_hdu_with_another_geometry_names_file_and_hdu(files, tmp_path):
    index = hdu_index(files["dataset"], "BACKGROUND")
    path = patched(files["dataset"], tmp_path / "ds.fits", [(index, "CRVAL1", "84.0")])
    read_fails(gpumask.read_dataset, path, "geometry differs from the COUNTS geometry", "CRVAL",
               hdu="[BACKGROUND]")
    path = patched(files["dataset"], tmp_path / "ds2.fits", [(index, "CDELT1", "NAN")])
    read_fails(gpumask.read_dataset, path, "CDELT1", hdu="[BACKGROUND]")


def test_dataset_mask_with_another_shape_names_file_and_hdu(tmp_path):
    hdus = [fits.PrimaryHDU()]
    hdus += map_to_hdulist(small_map(), hdu="COUNTS")[1:]
    hdus += map_to_hdulist(small_map(npix=(9, 5)) > 2, hdu="MASK_SAFE")[1:]
    path = tmp_path / "ds.fits"
    fits.HDUList(hdus).writeto(path)
    read_fails(gpumask.read_dataset, path, "data shape (5, 9), COUNTS has (5, 7)", hdu="[MASK_SAFE]")


# ---------------------------------------------------------------------- 5. failed writes name the target


def _temporary_files(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_disk_full_while_writing_a_map_names_the_target(tmp_path, monkeypatch):
    path = tmp_path / "map.fits"

    def full_disk(self, fileobj, *args, **kwargs):
        Path(fileobj).write_bytes(b"SIMPLE  =                    T".ljust(2880))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", full_disk)
    with pytest.raises(OSError) as info:
        small_map().write(path)
    assert info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert message.startswith(f"[Errno {errno.ENOSPC}] cannot write {path}: No space left on device (")
    assert message.endswith(" MiB free on its filesystem)")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_bytes_names_the_target(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, fd):
            self._fh = real_fdopen(fd, "wb")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

        def write(self, data):
            self._fh.write(data[:10])
            self._fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sky_io.os, "fdopen", lambda fd, mode="r": FullFile(fd))
    with pytest.raises(OSError) as info:
        sky_io.atomic_write_bytes(path, b"{}" * 1000)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert f"cannot write {path}" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_permission_error_keeps_its_type_and_names_the_target(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sky_io.tempfile, "mkstemp", refuse)
    path = tmp_path / "map.fits"
    with pytest.raises(PermissionError, match=re.escape(f"cannot write {path}: Permission denied")):
        small_map().write(path)


def test_target_appearing_during_the_write_is_reported_once(tmp_path, monkeypatch):
    path = tmp_path / "map.fits"

    def appear(src, dst, *args, **kwargs):
        Path(dst).write_bytes(b"someone else's")
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", appear)
    with pytest.raises(FileExistsError) as info:
        small_map().write(path)
    assert str(info.value) == f"{path} exists; pass overwrite=True to replace it"
    assert info.value.__cause__ is None
    assert path.read_bytes() == b"someone else's"
    assert _temporary_files(tmp_path) == []


_FSIZE_SCRIPT = """
import json, os, resource, signal, sys
import numpy as np
import gpumask
from gpumask.sky.io import atomic_write_bytes
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
folder = sys.argv[1]
geom = gpumask.WcsGeom.create(npix=(400, 300), binsz=0.1)
out = {}
for name, write in [
    ("map.fits", lambda p: gpumask.Map.from_geom(geom, data=np.ones((300, 400)), backend="numpy").write(p)),
    ("map.fits.gz", lambda p: gpumask.Map.from_geom(
        geom, data=np.random.default_rng(1).random((300, 400)), backend="numpy").write(p)),
    ("blob.bin", lambda p: atomic_write_bytes(p, b"x" * 200000)),
]:
    path = os.path.join(folder, name)
    try:
        write(path)
        out[name] = None
    except OSError as exc:
        out[name] = [type(exc).__name__, exc.errno, str(exc)]
print(json.dumps(out))
"""


def test_real_file_size_limit_names_the_target_and_leaves_no_temporary(tmp_path):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", GPUMASK_BACKEND="numpy")
    proc = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, outcome in result.items():
        assert outcome is not None, f"{name}: the write passed the 64 KiB file size limit"
        kind, code, message = outcome
        assert kind == "OSError"
        assert f"cannot write {tmp_path / name}: " in message, outcome
        assert "MiB free on its filesystem" in message, outcome
        if name == "map.fits":
            # numpy's tofile reports the short write without an errno
            assert code is None and "requested and" in message, outcome
        else:
            assert code == errno.EFBIG and "File too large" in message, outcome
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- 12. stale temporary files


def _start_token(pid):
    return sky_io._process_start(pid) or "0"


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _touch(path: Path, age_s: float = 0.0) -> Path:
    path.write_bytes(b"partial")
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def written_names(monkeypatch):
    """The names of the files astropy writes (the atomic writer's temporaries)."""
    seen = []
    real = fits.HDUList.writeto

    def spy(self, fileobj, *args, **kwargs):
        seen.append(Path(fileobj).name)
        return real(self, fileobj, *args, **kwargs)

    monkeypatch.setattr(fits.HDUList, "writeto", spy)
    return seen


def test_temporary_name_carries_the_writers_identity(tmp_path, written_names):
    seen = written_names
    small_map().write(tmp_path / "map.fits.gz")
    host = sky_io._host_label()
    pid = os.getpid()
    pattern = rf"\.map\.fits\.gz\.{re.escape(host)}\.{pid}-{_start_token(pid)}\.[a-z0-9_]{{8}}\.tmp\.fits\.gz"
    assert re.fullmatch(pattern, seen[0]), seen


def test_long_target_names_fall_back_to_the_short_temporary_name(tmp_path, written_names):
    seen = written_names
    name = "m" * 220 + ".fits.gz"  # with the writer's identity the temporary name would pass 255 bytes
    small_map().write(tmp_path / name)
    assert re.fullmatch(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp\.fits\.gz", seen[0]), seen
    assert len(seen[0]) <= 255
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    np.testing.assert_array_equal(gpumask.read_map(tmp_path / name).data, small_map().data)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_remove_stale_temp_files_removes_only_files_of_gone_writers(tmp_path):
    host = sky_io._host_label()
    me, dead = os.getpid(), _dead_pid()
    day = sky_io.STALE_TEMP_AGE
    stale = [
        _touch(tmp_path / f".a.fits.{host}.{dead}-123.abcdefgh.tmp.fits"),  # dead writer
        _touch(tmp_path / f".b.json.{host}.{me}-1.abcdefgh.tmp"),  # my pid, another process's start
        _touch(tmp_path / f".c.fits.gz.otherhost.{me}-5.abcdefgh.tmp.fits.gz", 2 * day),  # old, other host
        _touch(tmp_path / ".d.fits.k2j4h5g6.tmp.fits", 2 * day),  # old, without identity
    ]
    kept = [
        _touch(tmp_path / f".e.fits.{host}.{me}-{_start_token(me)}.abcdefgh.tmp.fits", 3 * day),  # live
        _touch(tmp_path / f".f.fits.otherhost.{dead}-5.abcdefgh.tmp.fits"),  # fresh, other host
        _touch(tmp_path / ".g.fits.k2j4h5g6.tmp.fits", 0.5 * day),  # fresh, without identity
        _touch(tmp_path / "h.fits", 2 * day),  # not a temporary file
        _touch(tmp_path / ".h.fits.tmp", 2 * day),  # not gpumask's
        _touch(tmp_path / ".bashrc", 2 * day),
    ]
    folder_like = tmp_path / f".i.fits.{host}.{dead}-1.abcdefgh.tmp.fits"
    folder_like.mkdir()
    link = tmp_path / f".j.fits.{host}.{dead}-1.abcdefgh.tmp.fits"
    link.symlink_to(kept[0])

    removed = remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in kept)
    assert folder_like.is_dir() and link.is_symlink()
    assert not any(p.exists() for p in stale)
    assert remove_stale_temp_files(tmp_path) == []
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_max_age_and_target_options(tmp_path):
    old = _touch(tmp_path / ".a.fits.otherhost.1-1.abcdefgh.tmp.fits", 120)
    other = _touch(tmp_path / ".b.fits.otherhost.1-1.abcdefgh.tmp.fits", 120)
    assert remove_stale_temp_files(tmp_path) == []
    assert remove_stale_temp_files(tmp_path, max_age=60, target="a.fits") == [old]
    assert remove_stale_temp_files(tmp_path, max_age=60) == [other]


def test_each_write_removes_the_stale_temporaries_of_its_target(tmp_path):
    host, dead, me = sky_io._host_label(), _dead_pid(), os.getpid()
    mine_stale = _touch(tmp_path / f".map.fits.{host}.{dead}-9.abcdefgh.tmp.fits")
    mine_live = _touch(tmp_path / f".map.fits.{host}.{me}-{_start_token(me)}.zzzzzzzz.tmp.fits")
    other_stale = _touch(tmp_path / f".other.fits.{host}.{dead}-9.abcdefgh.tmp.fits")
    small_map().write(tmp_path / "map.fits")
    assert not mine_stale.exists()
    assert mine_live.exists() and other_stale.exists()
    sky_io.atomic_write_bytes(tmp_path / "other.fits", b"x")
    assert not other_stale.exists()


_KILLED_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from astropy.io import fits
import gpumask

def stall(self, fileobj, *args, **kwargs):
    Path(fileobj).write_bytes(b"SIMPLE  =                    T".ljust(2880))
    print("writing", flush=True)
    time.sleep(600)

fits.HDUList.writeto = stall
geom = gpumask.WcsGeom.create(npix=(10, 10), binsz=0.1)
gpumask.Map.from_geom(geom, data=np.ones((10, 10)), backend="numpy").write(sys.argv[1])
"""


def test_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "map.fits"
    env = dict(os.environ, GPUMASK_BACKEND="numpy")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "writing"
        leftovers = _temporary_files(tmp_path)
        assert len(leftovers) == 1
        # a live writer's file survives a cleanup and a write by someone else
        assert remove_stale_temp_files(tmp_path) == []
        small_map().write(target)
        assert _temporary_files(tmp_path) == leftovers
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert _temporary_files(tmp_path) == leftovers  # the kill leaves it behind
    small_map().write(target, overwrite=True)
    assert _temporary_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.fits"]


def test_host_label_is_a_safe_name_part(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "node-12.cluster.example.org")
    assert sky_io._host_label() == "node-12-cluster-example-org"
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert sky_io._host_label() == "host"
