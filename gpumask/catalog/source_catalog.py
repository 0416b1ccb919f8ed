"""Source catalogs: names, positions and morphologies of gamma-ray sources, host-side.

:class:`SourceCatalog` reads the catalogs gammapy reads (Fermi-LAT 3FGL, 4FGL, 2FHL, 3FHL,
H.E.S.S. HGPS, gamma-cat, HAWC 2HWC/3HWC, 1LHAASO) and any FITS/ECSV/CSV table with positions,
and describes every source by one morphology row that an exclusion mask can be built from.
Everything here is small and lives on the host (astropy tables and SkyCoord); this module
never imports cupy.

Morphology table (one row per catalog row, ``SourceCatalog.morphology``)
-----------------------------------------------------------------------
``type``            "point", "disk", "gauss", "ellipse", "shell" or "unknown"
``size``            deg: disk radius, Gaussian sigma, shell outer radius, ellipse semi-major
                    axis; NaN for point and unknown
``semi_major``,     deg: the ellipse's semi-axes; for disk, gauss and shell both equal ``size``;
``semi_minor``      NaN for point and unknown
``position_angle``  deg in [0, 180): major axis from north through east, north of the frame of
                    ``positions``; NaN unless the type is "ellipse"
``inner_radius``    deg: shell inner radius; NaN otherwise and where the catalog gives none
``profile``         the radial profile behind the shape: "point", "disk", "gauss", "shell",
                    "template" (a Fermi template map, drawn from its catalog semi-axes) or
                    "unknown"; tells an elongated Gaussian ("ellipse" of 1-sigma semi-axes)
                    from an elliptical disk
``size_ul``         deg: upper limit on the size of an unresolved source (HGPS ``Size_UL``,
                    1LHAASO ``r39_ul``), NaN elsewhere
``component``       1LHAASO only: "KM2A" or "WCDA"

Per-catalog rules
-----------------
Fermi-LAT (3FGL, 4FGL DR1-DR4, 2FHL, 3FHL): positions ``RAJ2000``/``DEJ2000`` as ICRS (as
gammapy does; the headers say ``RADECSYS = 'FK5'``, a difference of tens of milliarcseconds).
Extended sources come from the ``ExtendedSources`` HDU (2FHL: ``Extended Sources``), joined on
the stripped ``Extended_Source_Name`` (2FHL, which lacks that column: on ``Source_Name``).
``Model_SemiMajor``/``Model_SemiMinor``/``Model_PosAng`` give the shape:

- Gaussians (``Spatial_Function`` RadialGauss/RadialGaussian, or ``Model_Form`` "2D Gaussian"):
  the semi-axes are 68% containment radii, so sigma = semi-axis / 1.5096 (sqrt(-2 ln 0.32));
  e.g. HESS J1841-055 is a 0.62 x 0.38 deg "2D Gaussian" in 3FGL and sigma 0.41 x 0.25 deg in
  gamma-cat (3FHL lists it as a SpatialMap),
  and fermipy divides by the same factor.  gammapy 2.1 uses the semi-major axis as sigma.
- Disks (RadialDisk, or ``Model_Form`` "Disk"/"Elliptical Disk"): radius = semi-major axis.
- Everything else (SpatialMap templates, "Map", "Ring", "2D Gaussian x2"): profile "template",
  shape from the semi-axes as given.
- Equal semi-axes give "disk"/"gauss" (templates: "disk"); unequal ones give "ellipse" with
  ``Model_PosAng`` (already measured from celestial north through east).  Point sources: "point".

HGPS: ``RAJ2000``/``DEJ2000`` (ICRS).  ``Spatial_Model`` "Point-Like" -> point; "Gaussian"
-> gauss with sigma = ``Size``; "2-Gaussian", "3-Gaussian" -> gauss with sigma = the larger of
``Size`` and max(offset + 3 sigma_c) / 3 over the source's components in the
``HGPS_GAUSS_COMPONENTS`` HDU, so that a 3-sigma region holds every component (HESS J1825-137:
``Size`` 0.46 deg, components out to 1.98 deg); point with ``size_ul = Size_UL`` where ``Size``
is NULL (the fit only bounds the size); "Shell" -> shell with outer radius ``Size`` and no inner radius (HGPS
gives no shell width; gammapy assumes 5%).

gamma-cat: ``ra``/``dec`` (ICRS).  ``morph_type`` "point" -> point; "gauss" -> gauss with
sigma ``morph_sigma``, or, where ``morph_sigma2`` differs, an ellipse with semi-axes
``morph_sigma`` and ``morph_sigma2`` (the ``morph_sigma`` axis at ``morph_pa``; a PA given in the
galactic frame (``morph_pa_frame``) is turned into one from celestial north); "shell" -> shell
with inner radius ``morph_sigma`` and outer radius ``morph_sigma2`` where both are given (the
gamma-cat input files say so), else outer radius ``morph_sigma``; "none" and a gauss without
sigma -> unknown.

2HWC / 3HWC: ``ra``/``dec`` (ICRS); the disk radius ``spec0_radius`` of the main fit, or
2HWC's ``spec1_radius`` (the fit of extended candidates) where larger: 0 -> point, > 0 -> disk,
NaN -> unknown (3HWC J0659+147, Geminga, whose extended emission an exclusion must then
cover with ``min_radius`` or a region).

1LHAASO: ``RAJ2000``/``DECJ2000`` in FK5 (J2000).  One row per detected component: ``Model_a``
(position ``RAJ2000``/``DECJ2000``, ``r39``, ``r39_ul``) and, where it has a position,
``Model_b`` (the ``*_b`` columns).  Names are "<Source_Name> (<component>)"; looking up the bare
source name returns all its components.  ``r39`` is the 39% containment radius of a 2D Gaussian,
i.e. sigma -> gauss; a component with only ``r39_ul`` -> point with ``size_ul = r39_ul``.

Plain tables (``format="table"``, FITS, ECSV or CSV): positions and names from the usual
columns (see :meth:`SourceCatalog.read`).  The source extent is read from the first column
named (any case) ``size``, ``radius``, ``extension``, ``extent``, ``ext`` or ``r_ext`` (a disk
radius), or ``sigma``, ``gauss_sigma`` or ``morph_sigma`` (a Gaussian sigma), optionally with a
unit suffix (``radius_deg``, ``size_arcmin``, ``sigma_arcsec``).  The unit is the column's own,
else the suffix's, else ``size_unit`` (deg); a ``sigma`` column without either is not used (it
may be a significance).  A size of 0 gives "point", NaN "unknown".  Columns that look like sizes
but are not used (several candidates, a unit that is no angle, containment radii such as
``r68``, ``fwhm``, ``semi_major``) are named in a :class:`~gpumask.GpumaskWarning`; pass
``size="column"`` to choose, or ``size=False`` for point sources.  CSV files may start with a
UTF-8 byte-order mark.

Rows with non-finite positions are dropped with a :class:`~gpumask.GpumaskWarning`.  A FITS
file that is truncated or damaged raises :class:`CatalogReadError` naming the file.
"""

from __future__ import annotations

import difflib
import gzip
import io
import numbers
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from ._formats import (
    _MORPH_FLOAT_COLUMNS,
    _READERS,
    R68_PER_SIGMA,  # noqa: F401 - re-exported (Fermi Gaussians: r68 = 1.5096 sigma)
    _column,
    _normalise_name,
    _normalise_names,
    _strings,
)
from .shapes import to_regions
from .._repr import html_table
from .._utils import expand_user

__all__ = ["CatalogReadError", "FORMATS", "MORPHOLOGY_TYPES", "SourceCatalog", "load"]

FORMATS = ("3fgl", "4fgl", "2fhl", "3fhl", "hgps", "gamma-cat", "2hwc", "3hwc", "1lhaaso", "table")
MORPHOLOGY_TYPES = ("point", "disk", "gauss", "ellipse", "shell", "unknown")
_ALIASES = {"gammacat": "gamma-cat", "gamma_cat": "gamma-cat"}

# gammapy 2.1's default files, relative to $GAMMAPY_DATA/catalogs (gammapy/catalog/*.py).
DEFAULT_FILES = {
    "3fgl": "fermi/gll_psc_v16.fit.gz",
    "4fgl": "fermi/gll_psc_v32.fit.gz",
    "2fhl": "fermi/gll_psch_v09.fit.gz",
    "3fhl": "fermi/gll_psch_v13.fit.gz",
    "hgps": "hgps_catalog_v1.fits.gz",
    "gamma-cat": "gammacat/gammacat.fits.gz",
    "2hwc": "2HWC.ecsv",
    "3hwc": "3HWC.ecsv",
    "1lhaaso": "1LHAASO_catalog.fits",
}



class CatalogReadError(ValueError):
    """A catalog file cannot be read: truncated or damaged FITS, or text that is no table.

    The message names the file (and HDU) and the problem.  A ``ValueError``, as
    :class:`gpumask.FitsReadError` for maps.

    Examples
    --------
    >>> try:
    ...     catalog = gpumask.SourceCatalog.read("hgps_catalog_v1.fits.gz")
    ... except gpumask.CatalogReadError as exc:
    ...     print(exc)  # names the file and what is wrong with it
    """


# --------------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------------
class SourceCatalog:
    """Sources with names, positions and one morphology row each (host-side).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog rows, original columns.
    names : array of str
        One name per row.
    positions : `~astropy.coordinates.SkyCoord`
        One finite position per row.
    morphology : `~astropy.table.Table`
        One row per source with at least the columns ``type``, ``size``, ``semi_major``,
        ``semi_minor``, ``position_angle``, ``inner_radius`` (see the module docstring).
    name : str
        Catalog name ("3fgl", ..., "table").

    Use :meth:`read` or :func:`load` to build one from a file.  Indexing with an int, slice,
    boolean or integer array returns a new catalog of those rows; with a str, the rows of that
    source.
    """

    def __init__(self, table, names, positions, morphology, name="table"):
        n = len(table)
        names = np.asarray(names, dtype=str)
        if not isinstance(positions, SkyCoord):
            raise TypeError(f"positions must be a SkyCoord, got {type(positions).__name__}")
        if positions.isscalar:
            positions = positions.reshape((1,))
        if not isinstance(morphology, Table):
            morphology = Table(morphology)
        lengths = {"table": n, "names": len(names), "positions": len(positions),
                   "morphology": len(morphology)}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"table, names, positions and morphology differ in length: {lengths}")
        missing = [c for c in ("type",) + _MORPH_FLOAT_COLUMNS if c not in morphology.colnames]
        if missing:
            raise ValueError(f"morphology lacks the columns {missing}; it has {morphology.colnames}")
        bad = sorted(set(np.asarray(morphology["type"], dtype=str)) - set(MORPHOLOGY_TYPES))
        if bad:
            raise ValueError(f"morphology types {bad} are not among {MORPHOLOGY_TYPES}")
        sph = positions.spherical
        if not (np.all(np.isfinite(sph.lon.deg)) and np.all(np.isfinite(sph.lat.deg))):
            raise ValueError("positions must be finite")
        self._name = str(name)
        self._table = table
        self._names = names
        self._positions = positions
        self._morphology = morphology
        self._source_names = names  # what a str key may also match (1LHAASO: w/o component)

    # -- attributes ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Catalog name ("3fgl", "4fgl", ..., "table")."""
        return self._name

    @property
    def table(self) -> Table:
        """The catalog rows with the file's original columns."""
        return self._table

    @property
    def names(self) -> np.ndarray:
        """Source names (str array, one per row)."""
        return self._names

    @property
    def positions(self) -> SkyCoord:
        """Source positions in the frame the catalog uses (icrs, fk5 or galactic)."""
        return self._positions

    @property
    def morphology(self) -> Table:
        """One morphology row per source (see the module docstring for the columns)."""
        return self._morphology

    # -- container protocol -----------------------------------------------------------------
    def __len__(self):
        return len(self._names)

    def __iter__(self):
        for i in range(len(self)):
            yield self._take(np.array([i]))

    def __getitem__(self, key):
        n = len(self)
        if isinstance(key, str):
            return self._take(self._lookup(key))
        if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
            index = int(key)
            if not -n <= index < n:
                raise IndexError(f"index {index} out of range for a catalog of {n} sources")
            return self._take(np.array([index % n]))
        if isinstance(key, slice):
            return self._take(np.arange(n)[key])
        if isinstance(key, (list, tuple, np.ndarray)):
            array = np.asarray(key)
            if array.size == 0:
                return self._take(np.zeros(0, dtype=int))
            if array.dtype == bool:
                if array.shape != (n,):
                    raise IndexError(
                        f"boolean index has shape {array.shape}, the catalog has {n} sources")
                return self._take(np.flatnonzero(array))
            if array.dtype.kind in "iu" and array.ndim == 1:
                if np.any((array < -n) | (array >= n)):
                    raise IndexError(f"index out of range for a catalog of {n} sources")
                return self._take(array % n)
        raise TypeError(
            f"catalog index must be an int, slice, boolean or integer array, or a source name; "
            f"got {key!r}")

    def select(self, mask) -> SourceCatalog:
        """The sources where the boolean ``mask`` (one value per source) is True."""
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"select needs a boolean mask, got dtype {mask.dtype}")
        if mask.shape != (len(self),):
            raise ValueError(f"mask has shape {mask.shape}, the catalog has {len(self)} sources")
        return self[mask]

    def _take(self, index):
        new = object.__new__(type(self))
        new._name = self._name
        new._table = self._table[index]
        new._names = self._names[index]
        new._positions = self._positions[index]
        new._morphology = self._morphology[index]
        new._source_names = self._source_names[index]
        return new

    def _lookup(self, key):
        hits = np.flatnonzero(self._names == key)
        if hits.size == 0:
            hits = np.flatnonzero(self._source_names == key)
        if hits.size == 0:
            wanted = _normalise_name(key)
            hits = np.flatnonzero((_normalise_names(self._names) == wanted)
                                  | (_normalise_names(self._source_names) == wanted))
        if hits.size == 0:
            close = difflib.get_close_matches(key, list(dict.fromkeys(self._names)), n=5)
            hint = f"close matches: {close}" if close else "no close matches"
            raise KeyError(f"no source named {key!r} in catalog {self._name!r} ({hint})")
        return hits

    def to_regions(self, radius=None, psf=None, scale=None, min_radius=None):
        """One sky region per source, sized by its morphology (or ``radius``); see
        :func:`gpumask.catalog.source_shapes` for the rules."""
        return to_regions(self, radius=radius, psf=psf, scale=scale, min_radius=min_radius)

    def _morphology_counts(self) -> str:
        types = np.asarray(self._morphology["type"], dtype=str)
        counts = ", ".join(f"{t}: {np.count_nonzero(types == t)}"
                           for t in MORPHOLOGY_TYPES if np.any(types == t))
        return counts or "empty"

    def __repr__(self):
        return f"SourceCatalog(name={self._name!r}, sources={len(self)}; {self._morphology_counts()})"

    def _repr_html_(self):
        names = [str(n) for n in self._names[:5]]
        more = f", ... ({len(self) - 5} more)" if len(self) > 5 else ""
        rows = [
            ("name", self._name),
            ("sources", str(len(self))),
            ("morphology", self._morphology_counts()),
            ("first sources", ", ".join(names) + more if names else "-"),
            ("columns", f"{len(self._table.colnames)} ({', '.join(self._table.colnames[:6])}"
                        f"{', ...' if len(self._table.colnames) > 6 else ''})"),
        ]
        return html_table("gpumask SourceCatalog", rows)

    __str__ = __repr__

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def read(cls, path, format=None, **kwargs) -> SourceCatalog:
        """Read a catalog file.

        Parameters
        ----------
        path : str or path-like
            FITS (optionally gzipped), ECSV or CSV file; ``$VARS`` and ``~`` are expanded.
        format : str, optional
            One of :data:`~gpumask.catalog.FORMATS` ("gammacat" is accepted for "gamma-cat").
            Default: detected from the file's content (HDU names, columns, source-name
            prefixes, ECSV metadata); a table that is no known catalog reads as "table".
        **kwargs
            Only for ``format="table"``:

            ``lon``, ``lat`` : position column names (any case).  Default: the first of
            ra/dec, RAJ2000/DEJ2000, RAJ2000/DECJ2000, glon/glat (any case).
            ``frame`` : "icrs", "fk5" (J2000) or "galactic".  Default: galactic for glon/glat
            (or l/b) columns, else icrs.
            ``name`` : name column.  Default: Source_Name, name, common_name, ... (any case),
            else the row numbers.
            ``size`` : size column (deg, or its own angle unit).  Default: detected by name
            (module docstring: size, radius, extension, ..., sigma); ``False``: none, every
            source is a point.  ``size_unit``: unit for a size column without one (default
            "deg").  ``size_type``: "disk", "gauss" or "point" (default: "gauss" for sigma
            columns, else "disk"); a size of 0 gives "point", NaN gives "unknown".
            ``hdu`` : FITS HDU name or number of the table (default: the first table HDU).

        Returns
        -------
        SourceCatalog
            Host-side (astropy objects).

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        ValueError
            Unknown format, or the file lacks a column or HDU the format needs (the message
            names it and what the file has).
        CatalogReadError
            A ValueError: the FITS file is truncated or damaged, or the text is no table.
        """
        path = expand_user(os.path.expandvars(os.fspath(path)))
        if not path.is_file():
            raise FileNotFoundError(f"catalog file not found: {path}")
        fmt = None if format is None else _normalise_format(format)
        if kwargs and fmt not in (None, "table"):
            raise TypeError(f"keyword arguments {sorted(kwargs)} only apply to format='table'")
        with warnings.catch_warnings():
            # Catalog FITS files carry unit strings astropy does not parse ("photon/cm**2/s")
            # in columns this module never uses.
            warnings.simplefilter("ignore", u.UnitsWarning)
            source = _Input(path)
            try:
                if fmt is None:
                    fmt = source.detect()
                    if kwargs and fmt != "table":
                        raise TypeError(
                            f"{path} reads as format {fmt!r}; keyword arguments {sorted(kwargs)} "
                            f"only apply to format='table' (pass it explicitly)")
                return _READERS[fmt](source, **kwargs)
            finally:
                source.close()


def load(name, path=None) -> SourceCatalog:
    """Load a catalog by name, from gammapy's default location unless ``path`` is given.

    Parameters
    ----------
    name : str
        "3fgl", "4fgl", "2fhl", "3fhl", "hgps", "gamma-cat" (or "gammacat"), "2hwc", "3hwc",
        "1lhaaso".
    path : str or path-like, optional
        The catalog file.  Default: ``$GAMMAPY_DATA/catalogs/<file>`` with gammapy 2.1's file
        names (``DEFAULT_FILES`` in ``gpumask.catalog.source_catalog``).

    Raises
    ------
    FileNotFoundError
        ``$GAMMAPY_DATA`` is not set or the file is missing; the message names the expected
        path and says to pass ``path=``.
    """
    key = _normalise_format(name) if isinstance(name, str) else name
    if key not in DEFAULT_FILES:
        raise ValueError(f"unknown catalog {name!r}; known catalogs: {sorted(DEFAULT_FILES)}")
    if path is None:
        relative = f"catalogs/{DEFAULT_FILES[key]}"
        root = os.environ.get("GAMMAPY_DATA")
        if not root:
            raise FileNotFoundError(
                f"catalog {key!r}: $GAMMAPY_DATA is not set, so $GAMMAPY_DATA/{relative} "
                f"cannot be found; set GAMMAPY_DATA or pass path='.../{Path(relative).name}'")
        path = expand_user(root) / relative
        if not path.is_file():
            raise FileNotFoundError(
                f"catalog {key!r}: expected {path} ($GAMMAPY_DATA/{relative}, gammapy's default); "
                f"it is missing: get the gammapy data or pass path='...'")
    else:
        path = expand_user(os.path.expandvars(os.fspath(path)))
        if not path.is_file():
            raise FileNotFoundError(f"catalog {key!r}: file not found: {path} (given as path=)")
    return SourceCatalog.read(path, format=key)


# --------------------------------------------------------------------------------------------
# Input files
# --------------------------------------------------------------------------------------------
def _normalise_format(format):
    key = str(format).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"unknown catalog format {format!r}; known formats: {list(FORMATS)}")
    return key


def _is_fits(path):
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        return f.read(9) == b"SIMPLE  ="


def _open_fits(path):
    """The HDUs of a FITS catalog with every HDU's data read: a truncated or damaged file
    (cut gzip stream, short data, bad header) raises :class:`CatalogReadError` here, not a
    bare numpy error (or silently fewer HDUs) later."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:  # read in full here: astropy stops silently at the end of a cut gzip stream
        with (gzip.open if gzipped else open)(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise CatalogReadError(f"{path}: the gzip stream is truncated or damaged ({exc})") from None
    hdul, hdu = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=False)
            for hdu in hdul:
                _ = hdu.data  # short data shows up here
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError, ...
            if hdul is not None:
                hdul.close()
            where = f" {_hdu_label(hdul, hdu)}" if hdu is not None else ""
            raise CatalogReadError(f"{path}:{where} cannot be read, the file is truncated or damaged "
                                   f"({type(exc).__name__}: {exc})") from None
    # astropy also drops, without a word, an HDU whose header or data the file cuts short
    last = hdul.fileinfo(len(hdul) - 1)
    end = last["datLoc"] + last["datSpan"]
    problem = None
    if len(raw) < end:
        problem = f"it ends at byte {len(raw)}, inside {_hdu_label(hdul, hdul[-1])}, which needs {end}"
    elif raw[end:end + 8] == b"XTENSION":
        problem = f"an incomplete HDU follows {_hdu_label(hdul, hdul[-1])} at byte {end}"
    for warning in caught:
        message = str(warning.message)
        if "truncat" in message.lower() or "corrupt" in message.lower():
            problem = problem or message
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if problem:
        hdul.close()
        raise CatalogReadError(f"{path}: the file is truncated or damaged: {problem}")
    return hdul


def _hdu_label(hdul, hdu):
    index = next((i for i, item in enumerate(hdul) if item is hdu), None)
    return f"HDU {index} ({hdu.name!r})" if hdu.name else f"HDU {index}"


class _Input:
    """A catalog file opened once: a FITS HDU list (read in full, so that a truncated or
    damaged file fails here, naming the file), or one text table."""

    def __init__(self, path):
        self.path = path
        self.hdul = None
        self._text = None
        self._tables = {}
        if _is_fits(path):
            self.hdul = _open_fits(path)
        else:
            with open(path, "rb") as f:
                head = f.read(19)
            bom = head.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark (Excel's CSV)
            head = head[3:] if bom else head
            suffixes = [s.lower() for s in path.suffixes]
            if head.startswith(b"# %ECSV") or ".ecsv" in suffixes:
                fmt = "ascii.ecsv"
            elif ".csv" in suffixes:
                fmt = "ascii.csv"
            else:
                fmt = "ascii"
            try:
                self._text = Table.read(path, format=fmt, encoding="utf-8-sig" if bom else None)
            except (ValueError, OSError, UnicodeDecodeError) as error:
                raise CatalogReadError(f"{path} is neither FITS nor a table astropy can read "
                                       f"({error})") from None
            for name in self._text.colnames:  # a BOM that another reader left in a name
                if name.startswith("\ufeff"):
                    self._text.rename_column(name, name.lstrip("\ufeff"))

    def close(self):
        if self.hdul is not None:
            self.hdul.close()

    def hdu_names(self):
        return [hdu.name for hdu in self.hdul] if self.hdul is not None else []

    def hdu(self, name):
        """The table in HDU ``name`` (case-insensitive)."""
        if self.hdul is None:
            raise ValueError(f"{self.path} is not a FITS file; HDU {name!r} is needed")
        key = name.upper()
        if key not in self._tables:
            match = next((hdu for hdu in self.hdul if hdu.name.upper() == key), None)
            if match is None:
                raise ValueError(
                    f"{self.path} has no HDU {name!r}; HDUs present: {self.hdu_names()}")
            self._tables[key] = self._read_hdu(match)
        return self._tables[key]

    def _read_hdu(self, hdu):
        try:
            return Table.read(hdu)
        except Exception as exc:  # astropy: ValueError, TypeError, KeyError on damaged tables
            raise CatalogReadError(f"{self.path}: HDU {hdu.name!r} cannot be read as a table, the file "
                                   f"is damaged ({type(exc).__name__}: {exc})") from None

    def first_table(self, hdu=None):
        if self.hdul is None:
            return self._text
        if hdu is not None:
            try:
                match = self.hdul[hdu]
            except (KeyError, IndexError):
                raise ValueError(
                    f"{self.path} has no HDU {hdu!r}; HDUs present: {self.hdu_names()}") from None
            return self._read_hdu(match)
        for item in self.hdul:
            if isinstance(item, (fits.BinTableHDU, fits.TableHDU)):
                return self._read_hdu(item)
        raise ValueError(f"{self.path} holds no table HDU; HDUs present: {self.hdu_names()}")

    def detect(self):
        if self.hdul is not None:
            names = {name.upper() for name in self.hdu_names()}
            if "2FHL SOURCE CATALOG" in names:
                return "2fhl"
            if "LAT_POINT_SOURCE_CATALOG" in names:
                table = self.hdu("LAT_Point_Source_Catalog")
                if "Source_Name" in table.colnames and len(table):
                    prefix = _strings(table["Source_Name"][:1])[0].upper()
                    for fmt in ("3fgl", "4fgl", "3fhl", "2fhl"):
                        if prefix.startswith(fmt.upper()):
                            return fmt
                raise ValueError(
                    f"{self.path} has the Fermi-LAT layout but no 3FGL/4FGL/2FHL/3FHL source "
                    f"names; pass format= (one of {list(FORMATS)})")
            if "HGPS_SOURCES" in names:
                return "hgps"
        table = self.first_table()
        columns = {c.lower() for c in table.colnames}
        if {"source_id", "common_name", "morph_type"} <= columns:
            return "gamma-cat"
        if {"model_a", "r39", "decj2000"} <= columns:
            return "1lhaaso"
        tag = str(table.meta.get("catalog_name", "")).lower()
        if tag in ("2hwc", "3hwc"):
            return tag
        if {"source_name", "spec0_radius"} <= columns and len(table):
            prefix = _strings(_column(table, "source_name")[:1])[0].upper()
            for fmt in ("2hwc", "3hwc"):
                if prefix.startswith(fmt.upper()):
                    return fmt
        return "table"
