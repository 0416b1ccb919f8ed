"""FITS input/output compatible with gammapy 2.1 (and ds9).

Writing is the one place where map data leaves the device: :func:`write_map`
copies through :func:`gpumask.to_host` (counted) and writes atomically (temporary
file in the target directory, then rename).  An existing file is never touched
unless ``overwrite=True``.

Boolean masks on disk
---------------------
A boolean map is stored as unsigned 8-bit integers (``BITPIX = 8``, 1 = True) in an
image HDU named ``MASK`` by default, with the header flag ``GPMBOOL = T``:

- gpumask reads it back as booleans (from ``GPMBOOL``, or from an HDU name that
  contains "mask", "is_ul" or "success", which is gammapy's rule);
- gammapy 2.1 reads it back as booleans because the HDU name contains "mask"
  (gammapy itself writes masks as int64 and would read a mask in ``PRIMARY`` as
  integers, which is why a mask is never written to ``PRIMARY`` by default);
- ds9 shows it as a 0/1 image; uint8 is 8 times smaller than gammapy's int64.

Writing a boolean map to an HDU whose name lacks "mask" warns with
:class:`~gpumask.errors.GammapyCompatibilityWarning`.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits

from ..backend import resolve_backend, to_device, to_host
from ..errors import GammapyCompatibilityWarning
from .axes import axes_to_bands_hdu
from .geom import WcsGeom
from .maps import Map

__all__ = ["read_map", "write_map", "map_to_hdulist", "FitsReadError", "atomic_write_hdulist"]

_BOOL_KEY = "GPMBOOL"
_GAMMAPY_BOOL_NAMES = ("mask", "is_ul", "success")


class FitsReadError(ValueError):
    """A file could not be read as a gpumask/gammapy map; the message names the
    file and the problem."""


# ---------------------------------------------------------------------- writing


def map_to_hdulist(m: Map, hdu=None, hdu_bands=None) -> fits.HDUList:
    """FITS HDUs for ``m`` in gammapy's "gadf" layout (copies the data to the host).

    ``hdu`` defaults to ``"MASK"`` for boolean maps and ``"PRIMARY"`` otherwise.
    A named HDU follows an empty primary HDU; non-spatial axes go to a bands table
    ``{HDU}_BANDS`` referenced by ``BANDSHDU``.
    """
    if hdu is None:
        hdu = "MASK" if m.is_mask else "PRIMARY"
    if not isinstance(hdu, str) or not hdu.strip():
        raise ValueError(f"hdu must be a non-empty HDU name, got {hdu!r}")
    hdu = hdu.strip().upper()
    if m.is_mask and not any(key in hdu.lower() for key in _GAMMAPY_BOOL_NAMES):
        warnings.warn(
            f"boolean map written to HDU {hdu!r}: gpumask reads it back as booleans, but "
            "gammapy reads it as integers because the name does not contain 'MASK'",
            GammapyCompatibilityWarning,
            stacklevel=3,
        )

    header = m.geom.to_header()
    bands = None
    if m.geom.axes:
        hdu_bands = f"{hdu}_BANDS" if hdu_bands is None else str(hdu_bands).upper()
        bands = axes_to_bands_hdu(m.geom.axes, hdu_bands=hdu_bands)
        header["BANDSHDU"] = hdu_bands

    if m.dtype.kind == "c" or m.dtype == np.float16:
        raise TypeError(
            f"cannot write a {m.dtype} map to FITS; use map.astype('float32') (or float64, "
            "int*, uint8, bool)"
        )
    data = to_host(m.data)  # the one device->host copy on the way to disk
    if m.is_mask:
        data = data.astype(np.uint8)
        header[_BOOL_KEY] = (True, "gpumask: boolean mask stored as uint8, 1 = True")
    elif data.dtype.kind == "b":
        data = data.astype(np.uint8)
    header["META"] = json.dumps(m.meta, default=_json_default)
    header["BUNIT"] = m.unit.to_string("fits") if m.unit != u.dimensionless_unscaled else ""

    if hdu == "PRIMARY":
        hdus = [fits.PrimaryHDU(data=data, header=header)]
    else:
        hdus = [fits.PrimaryHDU(), fits.ImageHDU(data=data, header=header, name=hdu)]
    if bands is not None:
        hdus.append(bands)
    return fits.HDUList(hdus)


def write_map(m: Map, filename, overwrite=False, hdu=None, hdu_bands=None, checksum=False):
    """Write ``m`` to a FITS file that gammapy and ds9 read.

    The file is written atomically; with ``overwrite=False`` (the default) an
    existing file raises :class:`FileExistsError` and is left untouched.
    A ``.gz`` suffix writes a gzip-compressed file.
    """
    path = _check_target(filename, overwrite)
    hdulist = map_to_hdulist(m, hdu=hdu, hdu_bands=hdu_bands)
    atomic_write_hdulist(hdulist, path, overwrite=overwrite, checksum=checksum)


def _check_target(filename, overwrite) -> Path:
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"filename must be a str or path, got {type(filename).__name__}")
    path = Path(filename).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    return path


_umask_lock = threading.Lock()


def _current_umask() -> int:
    with _umask_lock:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def _commit(tmp: Path, path: Path, overwrite: bool):
    """Move the finished temporary file ``tmp`` to ``path``: a rename with
    ``overwrite``, else a hard link, which fails rather than replace a file that
    appeared meanwhile."""
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual mode
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it") from None
    except OSError:
        # Filesystems without hard links: best effort no-clobber rename.
        if path.exists():
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it") from None
        os.replace(tmp, path)


def atomic_write_hdulist(hdulist, path, overwrite=False, checksum=False):
    """Write ``hdulist`` to ``path`` through a temporary file and a rename, so a
    crash never leaves a half-written ``path``.  Without ``overwrite`` an existing
    ``path`` raises FileExistsError and is left untouched."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        hdulist.writeto(tmp, overwrite=True, checksum=checksum)
        _commit(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes, overwrite=False) -> Path:
    """Write ``data`` (JSON, PNG, ...) to ``path`` atomically, as
    :func:`atomic_write_hdulist` does."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _commit(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def output_folder_paths(out_dir, filenames, overwrite=False) -> dict:
    """``{key: out_dir / name}`` for ``filenames`` (``{key: name}``), checked before any
    work: ValueError when ``out_dir`` is a file, FileExistsError naming the existing
    outputs unless ``overwrite``.  Nothing is created."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    paths = {key: out / name for key, name in filenames.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist{'s' if len(existing) == 1 else ''}; "
                              "pass --overwrite to replace, or choose another --out")
    return paths


def _json_default(value):
    if isinstance(value, u.Quantity):
        return str(value)
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()  # host-ok: numpy metadata scalar
    if isinstance(value, np.ndarray):
        return value.tolist()  # host-ok: numpy metadata array
    return str(value)


# ---------------------------------------------------------------------- reading


def open_fits(filename):
    """Open ``filename`` fully into memory, turning astropy's failures (not FITS,
    truncated, corrupt) into :class:`FitsReadError` naming the file."""
    path = Path(filename).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FitsReadError(f"{path}: is a directory, not a FITS file")
    _check_gzip_complete(path)
    hdulist = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdulist = fits.open(path, memmap=False, lazy_load_hdus=False)
            for hdu in hdulist:
                _ = hdu.data  # force the read: truncation shows up here
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    problems = [
        str(w.message) for w in caught
        if any(word in str(w.message).lower() for word in ("truncat", "corrupt"))
    ]
    if problems or error:
        if hdulist is not None:
            hdulist.close()
        if problems:
            raise FitsReadError(f"{path}: file is truncated or corrupt ({problems[0]})")
        raise FitsReadError(f"{path}: not a readable FITS file ({error})")
    return hdulist


def _check_gzip_complete(path):
    """astropy silently stops at the end of a cut gzip stream; read it through to
    the end so a truncated .gz is reported as such."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (EOFError, OSError, zlib.error) as exc:
        raise FitsReadError(f"{path}: file is truncated or corrupt (gzip: {exc})") from None


def _find_hdu(hdulist, hdu, path):
    names = [h.name for h in hdulist]
    if hdu is None:
        for candidate in hdulist:
            if candidate.data is not None:
                return candidate
        raise FitsReadError(f"{path}: no HDU holds data (HDUs: {names})")
    try:
        return hdulist[hdu.upper() if isinstance(hdu, str) else hdu]
    except (KeyError, IndexError):
        raise FitsReadError(f"{path}: no HDU {hdu!r} (HDUs: {names})") from None


def _find_bands(hdulist, hdu, hdu_bands, path):
    names = [h.name for h in hdulist]
    if hdu_bands is None:
        hdu_bands = hdu.header.get("BANDSHDU")
        if hdu_bands is None and hdu.is_image and hdu.header.get("NAXIS", 0) >= 3:
            for candidate in ("EBOUNDS", "ENERGIES"):
                if candidate in hdulist:
                    hdu_bands = candidate
                    break
    if hdu_bands is None:
        return None, "gadf"
    try:
        bands = hdulist[hdu_bands]
    except KeyError:
        raise FitsReadError(f"{path}: bands HDU {hdu_bands!r} not found (HDUs: {names})") from None
    fmt = {"EBOUNDS": "fgst-ccube", "ENERGIES": "fgst-template"}.get(bands.name, "gadf")
    return bands, fmt


def _unit_from_header(header, fmt, hdulist):
    text = header.get("BUNIT", "") or ""
    try:
        unit = u.Unit(text, format="fits")
    except ValueError:
        try:
            unit = u.Unit(text)
        except ValueError:
            warnings.warn(f"invalid BUNIT {text!r}; the map gets no unit", stacklevel=3)
            unit = u.dimensionless_unscaled
    if fmt == "fgst-template" and unit == u.dimensionless_unscaled:
        # gammapy's convention for Fermi templates without BUNIT
        unit = u.Unit("cm2 s") if "GTI" in hdulist else u.Unit("cm-2 s-1 MeV-1 sr-1")
    return unit


def map_from_hdulist(hdulist, hdu=None, hdu_bands=None, format=None, backend=None, path="<HDUList>"):
    """Map from an open HDU list (see :func:`read_map`)."""
    hdu_obj = _find_hdu(hdulist, hdu, path)
    header = hdu_obj.header
    where = f"{path}[{hdu_obj.name}]"
    if header.get("PIXTYPE") == "HEALPIX":
        raise FitsReadError(f"{where}: HEALPix maps are not supported (gpumask handles WCS maps)")
    if not hdu_obj.is_image:
        raise FitsReadError(
            f"{where}: a binary table, not an image; gpumask reads WCS image maps "
            "(sparse and region maps are not supported)"
        )
    if hdu_obj.data is None:
        raise FitsReadError(f"{where}: HDU holds no data")
    if "CTYPE1" not in header:
        raise FitsReadError(f"{where}: image has no WCS (no CTYPE1 keyword)")
    bands, fmt = _find_bands(hdulist, hdu_obj, hdu_bands, path)
    fmt = format or fmt
    try:
        geom = WcsGeom.from_header(header, bands, format=fmt)
    except (ValueError, KeyError) as exc:
        raise FitsReadError(f"{where}: {exc}") from None
    data = np.asarray(hdu_obj.data)
    if data.shape != geom.data_shape:
        raise FitsReadError(
            f"{where}: data shape {data.shape} does not match the shape {geom.data_shape} "
            "given by its header and bands table"
        )
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if header.get(_BOOL_KEY, False) or any(k in hdu_obj.name.lower() for k in _GAMMAPY_BOOL_NAMES):
        data = data.astype(bool)
    unit = _unit_from_header(header, fmt, hdulist)
    meta = {}
    if "META" in header:
        try:
            meta = json.loads(header["META"])
        except json.JSONDecodeError:
            meta = {}
    return Map(geom, to_device(data, resolve_backend(backend)), unit=unit, meta=meta)


def read_map(filename, hdu=None, hdu_bands=None, format=None, backend=None) -> Map:
    """Read a WCS map written by gpumask, gammapy or the Fermi tools.

    Parameters
    ----------
    filename : str or path
    hdu : str or int, optional
        HDU with the map; default the first HDU holding data.
    hdu_bands : str, optional
        Bands table; default the ``BANDSHDU`` keyword, else ``EBOUNDS`` (Fermi
        counts cube) or ``ENERGIES`` (Fermi template) for cubes.
    format : {"gadf", "fgst-ccube", "fgst-template"}, optional
        Bands table layout, normally detected.
    backend : str, optional
        Where the data goes (new data: ``backend=`` > context > env > auto).

    Raises
    ------
    FileNotFoundError, FitsReadError
        Naming the file and the problem (not FITS, truncated, missing HDU, no WCS,
        unsupported projection or layout).
    """
    path = Path(filename).expanduser()
    with open_fits(path) as hdulist:
        return map_from_hdulist(hdulist, hdu=hdu, hdu_bands=hdu_bands, format=format, backend=backend, path=str(path))
