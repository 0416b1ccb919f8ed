"""Bounded check of a FITS file's structure before astropy parses it.

astropy trusts the structural keywords of a header: ``NAXIS = 1000000000`` or a
negative ``NAXIS2`` makes ``fits.open`` loop with growing memory instead of
failing.  :func:`check_fits_structure` walks the file itself, one 2880-byte
header block at a time, keeping only the structural keywords, and refuses a file
whose headers could not describe a readable file:

- the first header starts with ``SIMPLE = T``, every further one with
  ``XTENSION``; a header ends with ``END`` within :data:`MAX_HEADER_BLOCKS`
  blocks;
- ``BITPIX`` is one of 8, 16, 32, 64, -32, -64; ``0 <= NAXIS <= 999`` (the FITS
  standard); every ``NAXISn`` (n <= NAXIS) is present and a non-negative integer;
  ``PCOUNT >= 0`` and ``GCOUNT >= 0`` are integers; a binary or ASCII table has
  ``BITPIX = 8``, ``NAXIS = 2`` and ``0 <= TFIELDS <= 999``; a tile-compressed
  image (``ZIMAGE = T``) has a valid ``ZBITPIX``, ``ZNAXIS`` and ``ZNAXISn``;
- no structural keyword appears twice;
- the data every header declares fits in the file (else it is truncated).

Compressed files (gzip, bzip2, xz, zip: what astropy opens by their magic bytes)
are decompressed as a stream, a block at a time, never whole; a cut stream is
reported as truncated.  Memory stays bounded by one header block plus one read
chunk; time by the file's (decompressed) size.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from .._utils import expand_user

__all__ = ["FitsReadError", "FitsHDUInfo", "check_fits_structure", "MAX_HEADER_BLOCKS"]

BLOCK = 2880
CARD = 80
#: Largest header accepted, in 2880-byte blocks (36 cards each): 360 000 cards,
#: 28.8 MB.  A header without ``END`` within this is refused.
MAX_HEADER_BLOCKS = 10_000
#: Largest accepted ``NAXISn`` (and ``ZNAXISn``): far above any real map, small
#: enough that sizes stay exact in float64.
MAX_AXIS_LENGTH = 2**53
_BITPIX = (8, 16, 32, 64, -32, -64)
_CHUNK = 1 << 22

_STRUCTURAL = re.compile(
    rb"(SIMPLE|XTENSION|BITPIX|NAXIS\d{0,3}|PCOUNT|GCOUNT|GROUPS|EXTNAME|TFIELDS|ZIMAGE|ZBITPIX|ZNAXIS\d{0,3})$"
)
_INT = re.compile(r"[+-]?\d+")
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")


class FitsReadError(ValueError):
    """A file could not be read as a gpumask/gammapy map; the message names the
    file and the problem."""


@dataclass(frozen=True)
class FitsHDUInfo:
    """What the structural keywords of one HDU say (no data is read).

    Attributes
    ----------
    index : int
        Position in the file (0 = primary).
    name : str
        ``EXTNAME`` upper-cased as astropy reports it (``"PRIMARY"`` for a primary
        HDU without one; ``""`` for an unnamed extension).
    kind : str
        ``"PRIMARY"`` or the ``XTENSION`` value (``"IMAGE"``, ``"BINTABLE"``...).
    is_image : bool
        A primary or IMAGE HDU, or a tile-compressed image.
    bitpix : int
        ``BITPIX`` (``ZBITPIX`` of a compressed image).
    shape : tuple of int
        Data shape in numpy order (reversed ``NAXISn``; ``ZNAXISn`` of a
        compressed image; ``(NAXIS2,)`` rows for a table).
    header_offset, data_offset, data_nbytes : int
        Byte offsets in the (decompressed) file and the declared data size
        without padding.
    """

    index: int
    name: str
    kind: str
    is_image: bool
    bitpix: int
    shape: tuple
    header_offset: int
    data_offset: int
    data_nbytes: int


# ---------------------------------------------------------------------- opening


def _open_stream(path: Path):
    """A binary stream of the file's FITS bytes and whether it is compressed
    (seekable plain file, or a decompressing stream)."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b\x08"):
        return gzip.open(path, "rb"), "gzip"
    if magic.startswith(b"PK\x03\x04"):
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
        if len(names) != 1:
            archive.close()
            raise FitsReadError(
                f"{path}: a zip archive with {len(names)} members; gpumask reads one FITS file per zip"
            )
        return _ZipMember(archive, names[0]), "zip"
    if magic.startswith(b"BZ"):
        return bz2.open(path, "rb"), "bzip2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb"), "xz"
    return open(path, "rb"), None


class _ZipMember:
    def __init__(self, archive, name):
        self._archive = archive
        self._fh = archive.open(name)

    def read(self, n=-1):
        return self._fh.read(n)

    def close(self):
        self._fh.close()
        self._archive.close()


_STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def check_fits_structure(filename) -> list[FitsHDUInfo]:
    """Check the structural keywords of every HDU of a FITS file, bounded.

    Reads the raw header blocks (never more than :data:`MAX_HEADER_BLOCKS` per
    header) and skips the data; a compressed file is decompressed as a stream.
    Call it before handing a file from outside to astropy: astropy loops, with
    growing memory, on some impossible headers (``NAXIS = 1000000000``, a negative
    ``NAXIS2``).  The rules are listed in :mod:`gpumask.sky._fits_guard`.

    Parameters
    ----------
    filename : str or path

    Returns
    -------
    list of FitsHDUInfo
        One entry per HDU, in file order.

    Raises
    ------
    FileNotFoundError
        No such file.
    FitsReadError
        Naming the file (and the HDU) and the structural problem: empty, not FITS,
        truncated, or an invalid structural keyword with its value.

    Examples
    --------
    >>> from gpumask.sky.io import check_fits_structure
    >>> [(h.name, h.shape) for h in check_fits_structure("counts.fits")]  # doctest: +SKIP
    [('PRIMARY', (200, 400))]
    """
    path = expand_user(filename)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FitsReadError(f"{path}: is a directory, not a FITS file")
    try:
        stream, compression = _open_stream(path)
    except FitsReadError:
        raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise FitsReadError(f"{path}: cannot open ({type(exc).__name__}: {exc})") from None
    try:
        if compression is None:
            return _walk(stream, path, path.stat().st_size)
        try:
            hdus = _walk(stream, path, None)
            while stream.read(_CHUNK):  # a cut stream only shows at its end
                pass
        except _STREAM_ERRORS as exc:
            raise FitsReadError(f"{path}: file is truncated or corrupt ({compression}: {exc})") from None
        return hdus
    finally:
        stream.close()


# ---------------------------------------------------------------------- walking


def _read_exact(stream, n) -> bytes:
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _skip(stream, n, size) -> int:
    """Skip ``n`` bytes; returns how many could be skipped."""
    if size is not None:  # a plain file: seek
        here = stream.tell()
        target = min(here + n, size)
        stream.seek(target)
        return target - here
    skipped = 0
    while skipped < n:
        part = stream.read(min(_CHUNK, n - skipped))
        if not part:
            break
        skipped += len(part)
    return skipped


def _walk(stream, path, size) -> list[FitsHDUInfo]:
    hdus = []
    offset = 0
    while True:
        index = len(hdus)
        first = _read_exact(stream, BLOCK)
        if index == 0:
            if not first:
                raise FitsReadError(f"{path}: empty file (0 bytes), not a FITS file")
            if not first.startswith(b"SIMPLE  ="):
                raise FitsReadError(f"{path}: not a FITS file (it does not start with a SIMPLE = T card)")
        elif len(first) < BLOCK or not first.startswith(b"XTENSION"):
            # end of file, or bytes after the last HDU: astropy reports the latter
            break
        where = f"{path}[HDU {index}]"
        cards = _read_header(stream, first, where)
        header_bytes = cards.pop("__size__")
        info = _check_header(cards, index, offset, offset + header_bytes, path)
        padded = -(-info.data_nbytes // BLOCK) * BLOCK
        skipped = _skip(stream, padded, size)
        if skipped < info.data_nbytes:
            shape = "x".join(str(n) for n in reversed(info.shape)) or "0"
            raise FitsReadError(
                f"{path}: file is truncated: HDU {index} ({info.name or info.kind}) declares "
                f"{info.data_nbytes} bytes of data (BITPIX = {info.bitpix}, NAXISn = {shape}) "
                f"but only {skipped} bytes follow its header"
            )
        hdus.append(info)
        offset = info.data_offset + padded
        if skipped < padded:  # missing padding at the end of the file
            break
    return hdus


def _read_header(stream, first, where) -> dict:
    """The structural cards of one header as ``{key: [values...]}`` (all
    occurrences, so duplicates can be refused) and ``"__size__"`` in bytes."""
    cards: dict = {}
    block, nblocks = first, 1
    while True:
        if len(block) < BLOCK:
            raise FitsReadError(f"{where}: file is truncated: the header ends before its END card")
        for start in range(0, BLOCK, CARD):
            card = block[start : start + CARD]
            key = card[:8].rstrip(b" ")
            if key == b"END" and not card[8:].strip(b" "):
                cards["__size__"] = nblocks * BLOCK
                return cards
            if card[8:10] == b"= " and _STRUCTURAL.match(key):
                if not _PRINTABLE.fullmatch(card):
                    # astropy may loop on such a card in a compressed file (found by the fuzz suite)
                    raise FitsReadError(f"{where}: structural card {key.decode('ascii')} holds bytes that are "
                                        "not printable ASCII, as the FITS standard requires")
                cards.setdefault(key.decode("ascii"), []).append(_card_value(card))
        if nblocks >= MAX_HEADER_BLOCKS:
            raise FitsReadError(
                f"{where}: header has no END card within {MAX_HEADER_BLOCKS} blocks "
                f"({MAX_HEADER_BLOCKS * BLOCK} bytes); not a readable FITS header"
            )
        block = _read_exact(stream, BLOCK)
        nblocks += 1


def _card_value(card: bytes) -> str:
    """The value text of a ``KEY = value / comment`` card (a string's content
    without quotes, marked by a leading quote)."""
    text = card[10:].decode("latin-1").strip()
    if text.startswith("'"):
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(text[i])
            i += 1
        return "'" + "".join(out).rstrip()
    return text.split("/", 1)[0].strip()


def _check_header(cards, index, header_offset, data_offset, path) -> FitsHDUInfo:
    extname = cards.get("EXTNAME", [""])[0]
    name = extname[1:].strip().upper() if extname.startswith("'") else ""
    if index == 0 and not name:
        name = "PRIMARY"
    where = f"{path}[HDU {index}{' ' + name if name else ''}]"
    for key, values in cards.items():
        if len(values) > 1:
            raise FitsReadError(f"{where}: structural keyword {key} appears {len(values)} times")
    values = {key: v[0] for key, v in cards.items()}

    def integer(key, low, high, default=None):
        if key not in values:
            if default is not None:
                return default
            raise FitsReadError(f"{where}: required keyword {key} is missing")
        text = values[key]
        accepted = f"an integer from {low} to {high if high < MAX_AXIS_LENGTH else '2**53'}"
        if not _INT.fullmatch(text):
            raise FitsReadError(f"{where}: {key} = {_shown(text)} is not an integer (accepted: {accepted})")
        value = int(text)
        if not low <= value <= high:
            raise FitsReadError(f"{where}: {key} = {value} is out of range (accepted: {accepted})")
        return value

    def logical(key):
        return values.get(key, "F").upper() == "T"

    if index == 0:
        if not logical("SIMPLE"):
            shown = _shown(values.get("SIMPLE", ""))
            raise FitsReadError(f"{where}: SIMPLE = {shown}; a FITS file starts with SIMPLE = T")
        kind = "PRIMARY"
    else:
        xtension = values.get("XTENSION", "")
        if not xtension.startswith("'") or not xtension[1:].strip():
            raise FitsReadError(f"{where}: XTENSION = {_shown(xtension)} is not an extension type string")
        kind = xtension[1:].strip().upper()

    bitpix = _bitpix(values, "BITPIX", where)
    naxis = integer("NAXIS", 0, 999)
    dims = [integer(f"NAXIS{n}", 0, MAX_AXIS_LENGTH) for n in range(1, naxis + 1)]
    groups = index == 0 and naxis > 0 and dims[0] == 0 and logical("GROUPS")
    if index == 0 and not groups:
        pcount, gcount = 0, 1
    else:
        pcount = integer("PCOUNT", 0, MAX_AXIS_LENGTH, default=0)
        gcount = integer("GCOUNT", 0, MAX_AXIS_LENGTH, default=1)

    if naxis == 0:
        nbytes = 0
    else:
        counted = dims[1:] if groups else dims
        nelem = 1
        for n in counted:
            nelem *= n
        nbytes = abs(bitpix) // 8 * gcount * (pcount + nelem)

    shape = tuple(reversed(dims))
    is_image = kind in ("PRIMARY", "IMAGE")
    if kind in ("BINTABLE", "TABLE"):
        if bitpix != 8 or naxis != 2:
            raise FitsReadError(f"{where}: a {kind} needs BITPIX = 8 and NAXIS = 2, got {bitpix} and {naxis}")
        integer("TFIELDS", 0, 999)
        shape = (dims[1],)
        if kind == "BINTABLE" and logical("ZIMAGE"):
            bitpix = _bitpix(values, "ZBITPIX", where)
            znaxis = integer("ZNAXIS", 0, 999)
            shape = tuple(reversed([integer(f"ZNAXIS{n}", 0, MAX_AXIS_LENGTH) for n in range(1, znaxis + 1)]))
            is_image = True
    return FitsHDUInfo(index, name, kind, is_image, bitpix, shape, header_offset, data_offset, nbytes)


def _bitpix(values, key, where) -> int:
    text = values.get(key)
    if text is None:
        raise FitsReadError(f"{where}: required keyword {key} is missing")
    if not _INT.fullmatch(text) or int(text) not in _BITPIX:
        accepted = ", ".join(map(str, _BITPIX))
        raise FitsReadError(f"{where}: {key} = {_shown(text)} is invalid (accepted: {accepted})")
    return int(text)


def _shown(text: str) -> str:
    """A card value as written (strings quoted), shortened for messages."""
    shown = f"'{text[1:]}'" if text.startswith("'") else text
    return shown if len(shown) <= 40 else shown[:37] + "..."
