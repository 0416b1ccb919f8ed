"""Catalog file layouts: one reader per catalog family, and the morphology rows they fill.

The rules each reader applies are documented in :mod:`gpumask.catalog.source_catalog`.  Readers get a
``_Input`` (the opened table and its HDUs) and return a :class:`~gpumask.catalog.SourceCatalog`
through :func:`_build`.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import FK5, SkyCoord
from astropy.table import Table

from ..errors import GpumaskWarning

_MORPH_FLOAT_COLUMNS = ("size", "semi_major", "semi_minor", "position_angle", "inner_radius")
_FERMI_GAUSS = ("radialgauss", "radialgaussian", "ellipticalgauss", "ellipticalgaussian")
_FERMI_DISK = ("radialdisk", "ellipticaldisk")
R68_PER_SIGMA = float(np.sqrt(-2.0 * np.log(1.0 - 0.68)))  # a 2-D Gaussian's 68% radius / sigma

# --------------------------------------------------------------------------------------------
# Column helpers
# --------------------------------------------------------------------------------------------
def _column(table, name):
    """Column ``name``, matched case-insensitively (exact case first)."""
    if name in table.colnames:
        return table[name]
    for column in table.colnames:
        if column.lower() == name.lower():
            return table[column]
    raise KeyError(name)


def _require(table, columns, what):
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; available: {table.colnames}")


def _strings(column):
    """Stripped str array (masked entries -> "")."""
    data = np.ma.getdata(column)
    mask = np.ma.getmaskarray(column)
    data = np.asarray(data)
    if data.dtype.kind == "S":
        data = np.char.decode(data, "utf-8", "replace")
    out = np.char.strip(data.astype(str))
    if mask.any():
        out = out.copy()
        out[mask] = ""
    return out


def _floats(table, name, unit=u.deg, default_unit=u.deg, keep_float32=False):
    """Float64 values of a column in ``unit`` (masked -> NaN); ValueError for a unit that
    is not convertible.  A column without unit is taken to be in ``default_unit``.
    ``keep_float32``: a float32 column already in ``unit`` stays float32 (catalog
    positions: the file's values exactly, as gammapy and regions keep them, which
    decides boundary pixels in gammapy's pixel-space masks)."""
    column = table[name]
    col_unit = getattr(column, "unit", None)
    is_float32 = column.dtype.kind == "f" and column.dtype.itemsize == 4  # any byte order
    if keep_float32 and is_float32 and u.Unit(col_unit or default_unit) == unit:
        return np.ma.asarray(column).astype(np.float32).filled(np.float32(np.nan))
    try:
        values = np.ma.asarray(column, dtype=float).filled(np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"column {name!r} is not numeric (dtype {column.dtype})") from None
    col_unit = getattr(column, "unit", None)
    if col_unit is None or col_unit == u.dimensionless_unscaled:
        col_unit = default_unit
    if unit is None:
        return values
    try:
        return (values * u.Unit(col_unit)).to_value(unit)
    except u.UnitConversionError:
        raise ValueError(
            f"column {name!r} has unit {str(col_unit)!r}, which does not convert to "
            f"{unit}") from None


def _normalise_name(name):
    return "".join(str(name).lower().split()).replace("_", "")


def _normalise_names(names):
    return np.array([_normalise_name(n) for n in names], dtype=str)


# --------------------------------------------------------------------------------------------
# Morphology rows
# --------------------------------------------------------------------------------------------
class _Morphology:
    """Column arrays for the morphology table, filled row by row."""

    def __init__(self, n, default="point"):
        self.type = np.full(n, default, dtype="<U7")
        self.profile = np.full(n, default, dtype="<U8")
        self.values = {c: np.full(n, np.nan) for c in _MORPH_FLOAT_COLUMNS + ("size_ul",)}

    def point(self, i, size_ul=np.nan):
        self._set(i, "point", "point", size_ul=size_ul)

    def unknown(self, i):
        self._set(i, "unknown", "unknown")

    def circle(self, i, kind, size, profile=None):
        self._set(i, kind, profile or kind, size=size, semi_major=size, semi_minor=size)

    def shell(self, i, outer, inner=np.nan):
        self._set(i, "shell", "shell", size=outer, semi_major=outer, semi_minor=outer,
                  inner_radius=inner)

    def shape(self, i, profile, a, b, pa):
        """Circle or ellipse from semi-axis ``a`` (at ``pa``) and ``b`` (perpendicular)."""
        if not (np.isfinite(a) and a > 0):
            a = b
        if not (np.isfinite(b) and b > 0):
            b = a
        if not (np.isfinite(a) and a > 0):
            self.unknown(i)
            return
        kind = profile if profile in ("disk", "gauss") else "disk"
        if np.isclose(a, b, rtol=1e-6, atol=0.0) or not np.isfinite(pa):
            # circular, or elongated without an orientation: the circle of the major axis
            self.circle(i, kind, max(a, b), profile)
            return
        if b > a:
            a, b, pa = b, a, pa + 90.0
        self._set(i, "ellipse", profile, size=a, semi_major=a, semi_minor=b,
                  position_angle=float(np.mod(pa, 180.0)))

    def _set(self, i, kind, profile, **values):
        self.type[i] = kind
        self.profile[i] = profile
        for column, array in self.values.items():
            array[i] = values.get(column, np.nan)

    def table(self):
        out = Table()
        out["type"] = self.type
        for column in _MORPH_FLOAT_COLUMNS:
            out[column] = self.values[column]
            out[column].unit = u.deg
        out["profile"] = self.profile
        out["size_ul"] = self.values["size_ul"]
        out["size_ul"].unit = u.deg
        return out


def _build(name, table, names, lon, lat, frame, morphology, *, source_names=None,
           extra_columns=None):
    """The catalog of the rows with finite positions (the others dropped with a warning)."""
    from .source_catalog import SourceCatalog  # noqa: PLC0415 - catalog imports this module

    morph = morphology.table()
    for column, values in (extra_columns or {}).items():
        morph[column] = values
    names = np.asarray(names, dtype=str)
    source_names = names if source_names is None else np.asarray(source_names, dtype=str)
    finite = np.isfinite(lon) & np.isfinite(lat)
    if not finite.all():
        dropped = names[~finite]
        shown = ", ".join(repr(str(n)) for n in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        warnings.warn(
            f"catalog {name!r}: skipped {dropped.size} of {finite.size} rows with non-finite "
            f"positions ({shown})", GpumaskWarning, stacklevel=4)
        keep = np.flatnonzero(finite)
        table, names, source_names = table[keep], names[keep], source_names[keep]
        lon, lat, morph = lon[keep], lat[keep], morph[keep]
    if frame == "galactic":
        positions = SkyCoord(l=lon * u.deg, b=lat * u.deg, frame="galactic")
    elif frame == "fk5":
        positions = SkyCoord(ra=lon * u.deg, dec=lat * u.deg, frame=FK5(equinox="J2000"))
    else:
        positions = SkyCoord(ra=lon * u.deg, dec=lat * u.deg, frame="icrs")
    catalog = SourceCatalog(table, names, positions, morph, name=name)
    catalog._source_names = source_names
    return catalog


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------
def _read_fermi(source, fmt):
    main_hdu, ext_hdu = (("2FHL Source Catalog", "Extended Sources") if fmt == "2fhl"
                         else ("LAT_Point_Source_Catalog", "ExtendedSources"))
    table = source.hdu(main_hdu)
    what = f"{fmt.upper()} {main_hdu} HDU of {source.path}"
    _require(table, ["Source_Name", "RAJ2000", "DEJ2000"], what)
    names = _strings(table["Source_Name"])
    if "Extended_Source_Name" in table.colnames:
        keys = _strings(table["Extended_Source_Name"])
        flagged = keys != ""
    else:  # 2FHL: the extended table is keyed by the catalog name, which ends in "e"
        keys = names
        flagged = np.char.endswith(names, "e")
    morph = _Morphology(len(table))
    extended = {}
    if flagged.any() or ext_hdu.upper() in {n.upper() for n in source.hdu_names()}:
        ext = source.hdu(ext_hdu)
        _require(ext, ["Source_Name", "Model_SemiMajor", "Model_SemiMinor", "Model_PosAng"],
                 f"{fmt.upper()} {ext_hdu} HDU of {source.path}")
        extended = {key: row for key, row in zip(_strings(ext["Source_Name"]), ext)}
    unmatched = []
    for i in np.flatnonzero(flagged | np.isin(keys, list(extended))):
        row = extended.get(keys[i])
        if row is None:
            unmatched.append(keys[i])
            morph.unknown(i)
        else:
            _fermi_extended(morph, i, row)
    if unmatched:
        warnings.warn(f"catalog {fmt!r}: extended sources {unmatched} are missing from the "
                      f"{ext_hdu} HDU; their morphology is 'unknown'", GpumaskWarning,
                      stacklevel=3)
    return _build(fmt, table, names, _floats(table, "RAJ2000", keep_float32=True),
                  _floats(table, "DEJ2000", keep_float32=True),
                  "icrs", morph)


def _fermi_extended(morph, i, row):
    columns = row.colnames
    form = str(row["Model_Form"]).strip().lower() if "Model_Form" in columns else ""
    function = (str(row["Spatial_Function"]).strip().lower()
                if "Spatial_Function" in columns else "")
    a, b, pa = (float(np.ma.filled(row[c], np.nan))
                for c in ("Model_SemiMajor", "Model_SemiMinor", "Model_PosAng"))
    if function in _FERMI_GAUSS or form in ("2d gaussian", "elliptical 2d gaussian"):
        # Fermi quotes Gaussians by their 68% containment radius.
        morph.shape(i, "gauss", a / R68_PER_SIGMA, b / R68_PER_SIGMA, pa)
    elif function in _FERMI_DISK or form in ("disk", "elliptical disk"):
        morph.shape(i, "disk", a, b, pa)
    else:
        morph.shape(i, "template", a, b, pa)


def _read_hgps(source):
    table = source.hdu("HGPS_SOURCES")
    _require(table, ["Source_Name", "RAJ2000", "DEJ2000", "Spatial_Model", "Size"],
             f"HGPS_SOURCES HDU of {source.path}")
    models = _strings(table["Spatial_Model"])
    size = _floats(table, "Size")
    size_ul = _floats(table, "Size_UL") if "Size_UL" in table.colnames else np.full(len(table),
                                                                                   np.nan)
    reach = _hgps_component_reach(source, table)
    morph = _Morphology(len(table), default="unknown")
    for i, model in enumerate(models):
        if model == "Point-Like":
            morph.point(i)
        elif model in ("Gaussian", "2-Gaussian", "3-Gaussian"):
            if np.isfinite(size[i]) and size[i] > 0:
                # multi-Gaussian sources: a sigma whose 3-sigma radius holds every
                # component's 3-sigma disk around its own position (the combined
                # Size alone falls short, e.g. HESS J1825-137: 1.38 vs 1.98 deg)
                multi = model != "Gaussian"
                sigma = max(size[i], reach.get(i, 0.0) / HGPS_REACH_SIGMAS) if multi else size[i]
                morph.circle(i, "gauss", sigma)
            else:
                morph.point(i, size_ul=size_ul[i])
        elif model == "Shell" and np.isfinite(size[i]):
            morph.shell(i, size[i])
        else:
            morph.unknown(i)
    return _build("hgps", table, _strings(table["Source_Name"]),
                  _floats(table, "RAJ2000", keep_float32=True),
                  _floats(table, "DEJ2000", keep_float32=True), "icrs", morph)


HGPS_REACH_SIGMAS = 3.0  # catalog_mask's default Gaussian scale


def _hgps_component_reach(source, table):
    """``{row: max over the source's Gaussian components of (offset + 3 sigma_c)}`` in
    deg, from the HGPS_GAUSS_COMPONENTS HDU (empty when the file has none)."""
    if "HGPS_GAUSS_COMPONENTS" not in [n.upper() for n in source.hdu_names()]:
        return {}
    comps = source.hdu("HGPS_GAUSS_COMPONENTS")
    if not all(c in comps.colnames for c in ("Source_Name", "GLON", "GLAT", "Size")):
        return {}
    owner = _strings(comps["Source_Name"])
    rows = {name: i for i, name in enumerate(_strings(table["Source_Name"]))}
    keep = np.array([name in rows for name in owner])
    if not keep.any():
        return {}
    comp_pos = SkyCoord(_floats(comps, "GLON")[keep] * u.deg, _floats(comps, "GLAT")[keep] * u.deg,
                        frame="galactic")
    index = np.array([rows[name] for name in owner[keep]])
    src_pos = SkyCoord(_floats(table, "RAJ2000")[index] * u.deg, _floats(table, "DEJ2000")[index] * u.deg,
                       frame="icrs")
    extent = src_pos.separation(comp_pos).deg + HGPS_REACH_SIGMAS * _floats(comps, "Size")[keep]
    reach = {}
    for row, value in zip(index, extent):
        if np.isfinite(value):
            reach[int(row)] = max(reach.get(int(row), 0.0), float(value))
    return reach


def _read_gammacat(source):
    table = source.first_table()
    _require(table, ["common_name", "ra", "dec", "morph_type", "morph_sigma", "morph_sigma2",
                     "morph_pa"], f"gamma-cat table of {source.path}")
    ra, dec = _floats(table, "ra"), _floats(table, "dec")
    types = _strings(table["morph_type"])
    s1, s2 = _floats(table, "morph_sigma"), _floats(table, "morph_sigma2")
    pa = _floats(table, "morph_pa")
    frames = (_strings(table["morph_pa_frame"]) if "morph_pa_frame" in table.colnames
              else np.full(len(table), "radec"))
    galactic = (frames == "galactic") & np.isfinite(pa) & np.isfinite(ra) & np.isfinite(dec)
    if galactic.any():
        pa = pa.copy()
        pa[galactic] += _galactic_north_angle(ra[galactic], dec[galactic])
    morph = _Morphology(len(table), default="unknown")
    for i, kind in enumerate(types):
        if kind == "point":
            morph.point(i)
        elif kind == "gauss" and np.isfinite(s1[i]) and s1[i] > 0:
            morph.shape(i, "gauss", s1[i], s2[i], pa[i])
        elif kind == "shell" and np.isfinite(s1[i]) and s1[i] > 0:
            if np.isfinite(s2[i]) and s2[i] > s1[i]:
                morph.shell(i, s2[i], s1[i])
            else:
                morph.shell(i, s1[i])
        else:  # "none", or no size given
            morph.unknown(i)
    return _build("gamma-cat", table, _strings(table["common_name"]), ra, dec, "icrs", morph)


def _galactic_north_angle(ra, dec):
    """Position angle (deg, east of celestial north) of the direction to the north galactic
    pole at each ICRS position: add it to a PA measured from galactic north."""
    pole = SkyCoord(l=0 * u.deg, b=90 * u.deg, frame="galactic").icrs
    return SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").position_angle(pole).deg


def _read_hawc(source, fmt):
    table = source.first_table()
    _require(table, ["source_name", "ra", "dec", "spec0_radius"],
             f"{fmt.upper()} table of {source.path}")
    radius = _floats(table, "spec0_radius")
    if "spec1_radius" in table.colnames:
        # 2HWC fits every source as a point (spec0) and, for extended candidates, as a
        # disk (spec1): the larger radius is the one an exclusion must cover
        spec1 = _floats(table, "spec1_radius")
        radius = np.where(np.isfinite(spec1) & (spec1 > np.nan_to_num(radius)), spec1, radius)
    morph = _Morphology(len(table), default="unknown")
    for i, r in enumerate(radius):
        if r == 0:
            morph.point(i)
        elif r > 0:
            morph.circle(i, "disk", r)
    return _build(fmt, table, _strings(table["source_name"]), _floats(table, "ra"),
                  _floats(table, "dec"), "icrs", morph)


def _read_lhaaso(source):
    table = source.first_table()
    _require(table, ["Source_Name", "Model_a", "RAJ2000", "DECJ2000", "r39", "r39_ul"],
             f"1LHAASO table of {source.path}")
    n = len(table)
    has_b = all(f"{c}_b" in table.colnames for c in ("RAJ2000", "DECJ2000", "r39", "r39_ul")) \
        and "Model_b" in table.colnames
    parts = []  # (row indices, component labels, ra, dec, r39, r39_ul)
    for suffix, model in (("", "Model_a"), ("_b", "Model_b")):
        if suffix and not has_b:
            continue
        ra, dec = _floats(table, f"RAJ2000{suffix}"), _floats(table, f"DECJ2000{suffix}")
        # A second component without a position was not detected: it is no row at all.
        rows = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec)) if suffix else np.arange(n)
        labels = np.char.strip(np.char.replace(_strings(table[model]), "*", ""))
        labels = np.where(labels == "", "b" if suffix else "a", labels)
        parts.append((rows, labels[rows], ra[rows], dec[rows],
                      _floats(table, f"r39{suffix}")[rows], _floats(table, f"r39_ul{suffix}")[rows]))
    rows = np.concatenate([p[0] for p in parts])
    order = np.argsort(rows, kind="stable")  # the components of a source stay together
    rows, labels, ra, dec, r39, r39_ul = (np.concatenate([p[k] for p in parts])[order]
                                          for k in range(6))
    base = _strings(table["Source_Name"])[rows]
    morph = _Morphology(len(rows), default="unknown")
    for i in range(len(rows)):
        if np.isfinite(r39[i]) and r39[i] > 0:
            morph.circle(i, "gauss", r39[i])
        elif np.isfinite(r39_ul[i]):
            morph.point(i, size_ul=r39_ul[i])
        else:
            morph.unknown(i)
    names = np.char.add(np.char.add(base, " ("), np.char.add(labels.astype(str), ")"))
    return _build("1lhaaso", table[rows], names, ra, dec, "fk5", morph, source_names=base,
                  extra_columns={"component": labels.astype(str)})


#: Extent columns of plain tables, by lower-case name (a unit suffix _deg, _arcmin or
#: _arcsec may follow), in order of preference, and the morphology they give.
_SIZE_COLUMNS = (("size", "disk"), ("radius", "disk"), ("extension", "disk"), ("extent", "disk"),
                 ("ext", "disk"), ("r_ext", "disk"), ("sigma", "gauss"), ("gauss_sigma", "gauss"),
                 ("morph_sigma", "gauss"))
_SIZE_SUFFIXES = {"_deg": u.deg, "_arcmin": u.arcmin, "_arcsec": u.arcsec}
#: Name parts of columns that look like source sizes (warned about when not used) ...
_SIZE_LIKE = ("size", "radius", "ext", "sigma", "r68", "r39", "r95", "fwhm", "semi", "morph")
#: ... unless a part says it is an uncertainty, a limit or a test statistic.
_NOT_A_SIZE = {"err", "error", "unc", "ul", "ll", "lim", "limit", "ts", "stat", "sys", "flag", "lo", "hi",
               "min", "max", "pos", "snr", "significance"}


def _size_candidate(name):
    """``(size_type, unit from the name or None)`` when ``name`` is a standard extent column."""
    key = name.lower()
    for suffix, unit in _SIZE_SUFFIXES.items():
        if key.endswith(suffix) and key[: -len(suffix)] in dict(_SIZE_COLUMNS):
            return dict(_SIZE_COLUMNS)[key[: -len(suffix)]], unit
    kind = dict(_SIZE_COLUMNS).get(key)
    return (kind, None) if kind is not None else None


def _looks_like_size(table, name):
    if table[name].dtype.kind not in "iuf":  # flags ("Extended"), strings
        return False
    parts = [p for p in name.lower().replace("-", "_").split("_") if p]
    return (any(p.startswith(_SIZE_LIKE) for p in parts) and not any(p in _NOT_A_SIZE for p in parts))


def _detect_size(table, source, size_unit):
    """The extent column of a plain table, picked by name (see
    :mod:`gpumask.catalog.source_catalog`): ``(column, size_type, unit)`` or None, with a
    GpumaskWarning naming the size-like columns left unused."""
    ranked = {key: rank for rank, (key, _) in enumerate(_SIZE_COLUMNS)}
    found, unused = [], []
    for name in table.colnames:
        candidate = _size_candidate(name)
        if candidate is None:
            if _looks_like_size(table, name):
                unused.append((name, "not a standard extent column"))
            continue
        kind, name_unit = candidate
        column = table[name]
        col_unit = getattr(column, "unit", None)
        if column.dtype.kind not in "iuf":
            unused.append((name, f"not numeric (dtype {column.dtype})"))
        elif col_unit is not None and col_unit != u.dimensionless_unscaled and not col_unit.is_equivalent(u.deg):
            unused.append((name, f"unit {col_unit} is no angle"))
        elif kind == "gauss" and col_unit in (None, u.dimensionless_unscaled) and name_unit is None:
            unused.append((name, "no unit: a Gaussian sigma or a significance?"))
        else:
            unit = name_unit if col_unit in (None, u.dimensionless_unscaled) and name_unit else size_unit
            key = name.lower()
            base = next((k for k in ranked if key == k or key.startswith(k + "_")), key)
            found.append((ranked.get(base, len(ranked)), name, kind, unit))
    found.sort(key=lambda item: item[0])
    chosen = found[0][1:] if found else None
    unused += [(name, f"{chosen[0]!r} is used") for _, name, _, _ in found[1:]]
    if unused:
        listed = "; ".join(f"{name!r} ({why})" for name, why in unused)
        used = (f"source sizes come from {chosen[0]!r} ({chosen[1]})" if chosen
                else "every source is a point (a psf circle in masks)")
        warnings.warn(f"catalog table {source.path}: size-like columns not used: {listed}; {used}. "
                      "Pass size='column' (and size_type=, size_unit=) to choose, or size=False",
                      GpumaskWarning, stacklevel=4)
    return chosen


_LON_LAT_PAIRS = (("ra", "dec", "icrs"), ("raj2000", "dej2000", "icrs"),
                  ("raj2000", "decj2000", "icrs"), ("glon", "glat", "galactic"))
_NAME_COLUMNS = ("source_name", "name", "common_name", "src_name", "source", "id")


def _read_table(source, *, lon=None, lat=None, frame=None, name=None, size=None,
                size_unit="deg", size_type=None, hdu=None):
    table = source.first_table(hdu)
    lowered = {c.lower(): c for c in reversed(table.colnames)}

    def resolve(column, role):
        if column in table.colnames:
            return column
        if str(column).lower() in lowered:
            return lowered[str(column).lower()]
        raise ValueError(f"{role} column {column!r} not found in {source.path}; "
                         f"available: {table.colnames}")

    if (lon is None) != (lat is None):
        raise ValueError("give both lon= and lat= column names, or neither")
    if lon is None:
        for lon_key, lat_key, default_frame in _LON_LAT_PAIRS:
            if lon_key in lowered and lat_key in lowered:
                lon, lat = lowered[lon_key], lowered[lat_key]
                break
        else:
            raise ValueError(
                f"no position columns in {source.path}: expected ra/dec, RAJ2000/DEJ2000 or "
                f"glon/glat (any case), or pass lon= and lat=; available: {table.colnames}")
    else:
        lon, lat = resolve(lon, "lon"), resolve(lat, "lat")
        default_frame = "galactic" if lon.lower() in ("glon", "l", "lon_gal") else "icrs"
    frame = default_frame if frame is None else str(frame).lower()
    if frame not in ("icrs", "fk5", "galactic"):
        raise ValueError(f"frame must be 'icrs', 'fk5' or 'galactic', got {frame!r}")
    lon_deg, lat_deg = _floats(table, lon), _floats(table, lat)

    if name is not None:
        names = _strings(table[resolve(name, "name")])
    else:
        found = next((lowered[c] for c in _NAME_COLUMNS if c in lowered), None)
        names = (_strings(table[found]) if found is not None
                 else np.array([str(i) for i in range(len(table))]))

    if size_type not in (None, "disk", "gauss", "point"):
        raise ValueError(f"size_type must be 'disk', 'gauss' or 'point', got {size_type!r}")
    try:
        default_unit = u.Unit(size_unit)
        default_unit.to(u.deg)
    except (ValueError, TypeError, u.UnitConversionError):
        raise ValueError(f"size_unit must be an angle unit, got {size_unit!r}") from None
    morph = _Morphology(len(table))
    if size is None:  # pick the extent column by name
        detected = _detect_size(table, source, default_unit)
        if detected is not None:
            size, detected_type, default_unit = detected
            size_type = size_type or detected_type
    elif size is False:
        size = None
    if size is not None:
        size_col = resolve(size, "size")
        sizes = _floats(table, size_col, default_unit=default_unit)
        negative = np.flatnonzero(sizes < 0)
        if negative.size:
            raise ValueError(f"size column {size_col!r} of {source.path} has negative values (rows "
                             f"{[int(i) for i in negative[:5]]})")
        size_type = size_type or "disk"
        for i, value in enumerate(sizes):
            if not np.isfinite(value):
                morph.unknown(i)
            elif value > 0 and size_type != "point":
                morph.circle(i, size_type, value)
    return _build("table", table, names, lon_deg, lat_deg, frame, morph)


_READERS = {
    "3fgl": lambda s: _read_fermi(s, "3fgl"),
    "4fgl": lambda s: _read_fermi(s, "4fgl"),
    "2fhl": lambda s: _read_fermi(s, "2fhl"),
    "3fhl": lambda s: _read_fermi(s, "3fhl"),
    "hgps": _read_hgps,
    "gamma-cat": _read_gammacat,
    "2hwc": lambda s: _read_hawc(s, "2hwc"),
    "3hwc": lambda s: _read_hawc(s, "3hwc"),
    "1lhaaso": _read_lhaaso,
    "table": _read_table,
}
