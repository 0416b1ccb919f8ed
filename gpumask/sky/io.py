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

Temporary files
---------------
A write goes to ``.{name}.{host}.{pid}-{start}.{random}.tmp{suffix}`` beside the
target (``start``: the writing process's start time, so a reused pid is not taken
for the writer), then is renamed.  A killed writer leaves its temporary file
behind; :func:`remove_stale_temp_files` removes those whose writer is gone:

- same host: the process is dead, or its pid now belongs to another process;
- another host, or a name without the writer's identity (earlier versions wrote
  ``.{name}.{random}.tmp{suffix}``): not modified for ``max_age`` (1 day).

A live writer's file is never removed.  Every atomic write first removes the stale
temporary files of its own target.  Where the writer's identity would make the
temporary name longer than 255 bytes, the old name is used (cleaned by age).

Reading
-------
Before astropy parses a file, :func:`check_fits_structure` checks its structural
keywords (bounded reads; astropy loops with growing memory on some impossible
headers).  Every read failure raises :class:`FitsReadError` naming the file and,
where it applies, the HDU.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits

from ..backend import resolve_backend, to_device, to_host
from ..errors import GammapyCompatibilityWarning
from ._fits_guard import FitsHDUInfo, FitsReadError, check_fits_structure
from .axes import axes_from_bands_hdu, axes_to_bands_hdu
from .bridge import as_map
from .geom import WcsGeom
from .maps import Map
from .provenance import HDU_LABEL, HDU_LABEL2, MaskProvenance
from .._utils import expand_user

__all__ = [
    "read_map",
    "write_map",
    "map_to_hdulist",
    "FitsReadError",
    "FitsHDUInfo",
    "atomic_write_hdulist",
    "atomic_write_bytes",
    "check_fits_structure",
    "fits_image_shape",
    "remove_stale_temp_files",
]

_BOOL_KEY = "GPMBOOL"
_GAMMAPY_BOOL_NAMES = ("mask", "is_ul", "success")


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
    if m.provenance is not None:
        # why each pixel is excluded: two int32 label images and the component
        # table, after the map (gammapy and ds9 read the map HDU as before)
        hdus.extend(m.provenance.to_hdus(header))
    return fits.HDUList(hdus)


def write_map(m: Map, filename, overwrite=False, hdu=None, hdu_bands=None, checksum=False):
    """Write ``m`` to a FITS file that gammapy and ds9 read.

    The file is written atomically; with ``overwrite=False`` (the default) an
    existing file raises :class:`FileExistsError` and is left untouched.
    A ``.gz`` suffix writes a gzip-compressed file.
    """
    m = as_map(m, "map", backend="numpy")
    path = _check_target(filename, overwrite)
    hdulist = map_to_hdulist(m, hdu=hdu, hdu_bands=hdu_bands)
    atomic_write_hdulist(hdulist, path, overwrite=overwrite, checksum=checksum)


def _check_target(filename, overwrite) -> Path:
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"filename must be a str or path, got {type(filename).__name__}")
    path = expand_user(filename)
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
    ``path`` raises FileExistsError and is left untouched.

    Stale temporary files of ``path`` left by killed writers are removed first (see
    :func:`remove_stale_temp_files`).  A failed write (disk full, file size limit,
    permissions) leaves no temporary file and raises the :class:`OSError` of the
    same errno (and type) with a message naming ``path``.
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix

    def write(fd, tmp):
        os.close(fd)
        hdulist.writeto(tmp, overwrite=True, checksum=checksum)

    _write_through_temporary(path, f".tmp{suffix}", write, overwrite)


def atomic_write_bytes(path, data: bytes, overwrite=False) -> Path:
    """Write ``data`` (JSON, PNG, ...) to ``path`` atomically, as
    :func:`atomic_write_hdulist` does (stale temporary files removed first;
    failures raise an :class:`OSError` naming ``path`` and leave no temporary file)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")

    def write(fd, tmp):
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    _write_through_temporary(path, ".tmp", write, overwrite)
    return path


def _write_through_temporary(path: Path, suffix: str, write, overwrite: bool):
    """``write(fd, tmp)`` into a new temporary file beside ``path``, then commit it
    to ``path``.  Stale temporaries of ``path`` are removed first; an OSError names
    ``path``; the temporary never outlives the call."""
    _remove_stale_quietly(path)
    tmp = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path, suffix), suffix=suffix)
        tmp = Path(tmp_name)
        write(fd, tmp)
        _commit(tmp, path, overwrite)
    except OSError as exc:
        named = _naming(exc, path)
        if named is exc:
            raise
        raise named from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with a message that names the target ``path`` (same errno, and so
    the same OSError subclass)."""
    if str(path) in str(exc):
        return exc
    hint = ""
    if exc.errno in (None, errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)):
        # numpy reports a short write ("N requested and M written") without errno
        try:
            hint = f" ({shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free on its filesystem)"
        except OSError:
            pass
    if exc.errno is not None:
        return OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}{hint}")
    try:
        return type(exc)(f"cannot write {path}: {exc}{hint}")
    except Exception:  # an OSError subclass with another constructor
        return OSError(f"cannot write {path}: {exc}{hint}")


# ---------------------------------------------------------------------- temporary files

#: Age (seconds since the last modification) after which a temporary file whose
#: writer cannot be checked (another host, or no identity in its name) is stale.
STALE_TEMP_AGE = 86400.0

_TEMP_RE = re.compile(
    r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)-(?P<start>\d+)\.[a-z0-9_]{8}\.tmp(?:\.[^.]+){0,2}"
)
_LEGACY_TEMP_RE = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?:\.[^.]+){0,2}")


def _host_label() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def _process_start(pid: int):
    """Start time of process ``pid`` (clock ticks since boot, from /proc), or None
    where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rfind(b")") + 2 :].split()[19].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return None


_NAME_MAX = 255  # bytes of a file name on common file systems


def _temp_prefix(path: Path, suffix: str) -> str:
    """``.{name}.{host}.{pid}-{start}.`` or, where that would make the temporary
    name too long for the file system, ``.{name}.`` (cleaned by age only)."""
    pid = os.getpid()
    prefix = f".{path.name}.{_host_label()}.{pid}-{_process_start(pid) or 0}."
    if len(os.fsencode(prefix + suffix)) + 8 > _NAME_MAX:
        prefix = f".{path.name}."
    return prefix


def _writer_alive(pid: int, start: str):
    """True / False when the writer's process on this host is alive / gone, None
    when that cannot be told."""
    if pid <= 0 or os.name == "nt":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    except (OSError, OverflowError, ValueError):
        return None
    current = _process_start(pid)
    if start != "0" and current is not None and current != start:
        return False  # the pid now belongs to another process
    return True


def _is_stale(name: str, mtime: float, max_age: float, host: str, now: float):
    """``(target name, stale?)`` for a temporary file name, or None if it is not one
    of gpumask's."""
    match = _TEMP_RE.fullmatch(name)
    if match is not None:
        if match["host"] == host:
            alive = _writer_alive(int(match["pid"]), match["start"])
            if alive is not None:
                return match["name"], not alive
        return match["name"], now - mtime > max_age
    match = _LEGACY_TEMP_RE.fullmatch(name)
    if match is not None:
        return match["name"], now - mtime > max_age
    return None


def remove_stale_temp_files(folder, *, max_age=STALE_TEMP_AGE, target=None) -> list[Path]:
    """Remove the temporary files that killed gpumask writers left in ``folder``.

    A temporary file (``.{name}.{host}.{pid}-{start}.{random}.tmp{suffix}``) is
    stale when its writer, on this host, is dead or its pid belongs to another
    process now; a file from another host, or one named the old way without the
    writer's identity, is stale when not modified for ``max_age`` seconds.  A live
    writer's file is never removed.  Nothing but gpumask temporary files is
    touched; subfolders are not searched; a file that cannot be removed
    (permissions) is left and not listed.

    Parameters
    ----------
    folder : str or path
        A missing folder gives an empty list.
    max_age : float, optional
        Seconds; default :data:`STALE_TEMP_AGE` (1 day).
    target : str, optional
        Only the temporary files of this file name (what every atomic write does).

    Returns
    -------
    list of Path
        The files removed.

    Examples
    --------
    >>> from gpumask.sky.io import remove_stale_temp_files
    >>> removed = remove_stale_temp_files("masks/")  # after a killed batch: what was left
    """
    folder = expand_user(folder)
    host, now, removed = _host_label(), time.time(), []
    prefix = None if target is None else f".{target}."
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or ".tmp" not in name or (prefix and not name.startswith(prefix)):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            verdict = _is_stale(name, entry.stat(follow_symlinks=False).st_mtime, max_age, host, now)
            if verdict is None or not verdict[1] or (target is not None and verdict[0] != target):
                continue
            os.unlink(entry.path)
        except OSError:
            # gone meanwhile (its writer's rename, another cleaner), or not ours to remove
            continue
        removed.append(Path(entry.path))
    return removed


def _remove_stale_quietly(path: Path):
    """Before writing ``path``: remove its stale temporary files; a failure to do
    so never stops the write."""
    try:
        remove_stale_temp_files(path.parent, target=path.name)
    except OSError:
        pass


def output_folder_paths(out_dir, filenames, overwrite=False) -> dict:
    """``{key: out_dir / name}`` for ``filenames`` (``{key: name}``), checked before any
    work: ValueError when ``out_dir`` is a file, FileExistsError naming the existing
    outputs unless ``overwrite``.  Nothing is created."""
    out = expand_user(out_dir)
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
    truncated, corrupt) into :class:`FitsReadError` naming the file.

    The file's structure is checked first (:func:`check_fits_structure`, bounded),
    so headers that would make astropy loop are refused before astropy sees them.
    """
    path = expand_user(filename)
    check_fits_structure(path)
    hdulist, where = None, ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdulist = fits.open(path, memmap=False, lazy_load_hdus=False)
            for index, hdu in enumerate(hdulist):
                where = f"HDU {index}"
                _ = hdu.name  # an unparsable EXTNAME shows up here
                where = f"HDU {index} {hdu.name}"
                _ = hdu.data  # force the read: truncation shows up here
            error = None
        except Exception as exc:
            error = f"{where + ': ' if where else ''}{type(exc).__name__}: {exc}"
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


def fits_image_shape(filename, hdu=None) -> tuple[int, ...]:
    """Data shape (numpy order) of an image HDU, from its header alone.

    Reads no data and never hands the file to astropy: the shape comes from
    :func:`check_fits_structure`, so a hostile header fails fast.

    Parameters
    ----------
    filename : str or path
    hdu : str or int, optional
        HDU name (case-insensitive) or index; default the first image HDU with
        ``NAXIS >= 2``.

    Raises
    ------
    FileNotFoundError, FitsReadError
        Naming the file (and the HDU): bad structure, no such HDU, not an image.

    Examples
    --------
    >>> from gpumask.sky.io import fits_image_shape
    >>> fits_image_shape("fermi-3fhl-gc-counts-cube.fits.gz")  # doctest: +SKIP
    (11, 200, 400)
    """
    path = expand_user(filename)
    hdus = check_fits_structure(path)
    names = [h.name for h in hdus]
    if hdu is None:
        for info in hdus:
            if info.is_image and len(info.shape) >= 2:
                return info.shape
        raise FitsReadError(f"{path}: no image HDU with two or more axes (HDUs: {names})")
    if isinstance(hdu, str):
        found = [h for h in hdus if h.name == hdu.strip().upper()]
    elif isinstance(hdu, (int, np.integer)) and not isinstance(hdu, bool) and 0 <= hdu < len(hdus):
        found = [hdus[int(hdu)]]
    else:
        found = []
    if not found:
        raise FitsReadError(f"{path}: no HDU {hdu!r} (HDUs: {names})")
    info = found[0]
    if not info.is_image:
        raise FitsReadError(f"{path}[{info.name}]: a {info.kind} HDU, not an image")
    return info.shape


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
    where = f"{path}[{hdu.name}]"
    source = "hdu_bands"
    if hdu_bands is None:
        source = "BANDSHDU"
        hdu_bands = hdu.header.get("BANDSHDU")
        if hdu_bands is None and hdu.is_image and hdu.header.get("NAXIS", 0) >= 3:
            for candidate in ("EBOUNDS", "ENERGIES"):
                if candidate in hdulist:
                    hdu_bands = candidate
                    break
    if hdu_bands is None:
        return None, "gadf"
    if not isinstance(hdu_bands, str) or not hdu_bands.strip():
        raise FitsReadError(
            f"{where}: {source} = {hdu_bands!r} is not an HDU name (accepted: the name of a "
            f"bands table in the file; HDUs: {names})"
        )
    try:
        bands = hdulist[hdu_bands.strip()]
    except KeyError:
        raise FitsReadError(f"{where}: bands HDU {hdu_bands!r} not found (HDUs: {names})") from None
    if not isinstance(bands, fits.BinTableHDU) or bands is hdu:
        kind = "an image HDU" if bands.is_image else f"a {type(bands).__name__}"
        raise FitsReadError(
            f"{where}: {source} = {hdu_bands!r} names {kind}, not a bands table "
            f"(a binary table HDU; HDUs: {names})"
        )
    fmt = {"EBOUNDS": "fgst-ccube", "ENERGIES": "fgst-template"}.get(bands.name, "gadf")
    return bands, fmt


def _unit_from_header(header, fmt, hdulist, where):
    text = header.get("BUNIT", "") or ""
    try:
        if not isinstance(text, str):
            raise ValueError(text)
        try:
            unit = u.Unit(text, format="fits")
        except ValueError:
            unit = u.Unit(text)
    except ValueError:
        warnings.warn(f"{where}: invalid BUNIT {text!r}; the map gets no unit", stacklevel=4)
        unit = u.dimensionless_unscaled
    if fmt == "fgst-template" and unit == u.dimensionless_unscaled:
        # gammapy's convention for Fermi templates without BUNIT
        unit = u.Unit("cm2 s") if "GTI" in hdulist else u.Unit("cm-2 s-1 MeV-1 sr-1")
    return unit


def map_from_hdulist(hdulist, hdu=None, hdu_bands=None, format=None, backend=None, path="<HDUList>"):
    """Map from an open HDU list (see :func:`read_map`).

    Raises :class:`FitsReadError` naming ``path`` and the HDU for anything in the
    HDUs that is not a readable map (unparsable cards included).
    """
    hdu_obj = _find_hdu(hdulist, hdu, path)
    where = f"{path}[{hdu_obj.name}]"
    try:
        return _map_from_hdu(hdulist, hdu_obj, hdu_bands, format, backend, path, where)
    except fits.VerifyError as exc:  # an unparsable card, met on first access
        raise FitsReadError(f"{where}: {exc}") from None


def _map_from_hdu(hdulist, hdu_obj, hdu_bands, format, backend, path, where):
    header = hdu_obj.header
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
    errors = (ValueError, KeyError, TypeError, IndexError, fits.VerifyError)
    try:
        axes = axes_from_bands_hdu(bands, format=fmt)
    except errors as exc:
        raise FitsReadError(f"{path}[{bands.name}]: bands table: {_message(exc)}") from None
    try:
        geom = WcsGeom.from_header(header)
        if axes:
            geom = geom.to_cube(axes)
    except errors as exc:
        raise FitsReadError(f"{where}: {_message(exc)}") from None
    data = np.asarray(hdu_obj.data)
    if data.shape != geom.data_shape:
        raise FitsReadError(
            f"{where}: data shape {data.shape} does not match the shape {geom.data_shape} "
            "given by its header and bands table"
        )
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if header.get(_BOOL_KEY, False) is True or any(k in hdu_obj.name.lower() for k in _GAMMAPY_BOOL_NAMES):
        data = data.astype(bool)
    unit = _unit_from_header(header, fmt, hdulist, where)
    meta = _meta_from_header(header, where)
    out = Map(geom, to_device(data, resolve_backend(backend)), unit=unit, meta=meta)
    if out.is_mask and hdu_obj.name not in (HDU_LABEL, HDU_LABEL2):
        try:
            out._explained(MaskProvenance.from_hdulist(hdulist, geom, backend=out.backend))
        except (ValueError, KeyError, TypeError) as exc:
            raise FitsReadError(f"{path}: mask provenance HDUs: {_message(exc)}") from None
    return out


def _message(exc) -> str:
    # str(KeyError) is the repr of its argument; show the text
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _meta_from_header(header, where) -> dict:
    """The ``META`` card (gammapy's JSON object of metadata); ``{}`` without one."""
    if "META" not in header:
        return {}
    text = header["META"]
    accepted = "accepted: a JSON object, as gammapy writes; remove the card to read the map"
    if not isinstance(text, str):
        raise FitsReadError(f"{where}: META = {text!r} is not a JSON string ({accepted})")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FitsReadError(f"{where}: META card is not valid JSON ({exc}; {accepted})") from None
    if not isinstance(meta, dict):
        shown = text if len(text) <= 60 else text[:57] + "..."
        kind = type(meta).__name__
        raise FitsReadError(f"{where}: META = {shown!r} is a JSON {kind}, not an object ({accepted})")
    return meta


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
    path = expand_user(filename)
    with open_fits(path) as hdulist:
        return map_from_hdulist(hdulist, hdu=hdu, hdu_bands=hdu_bands, format=format, backend=backend, path=str(path))
