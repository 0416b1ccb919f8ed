"""Declarative mask configs: the steps of the "Creating exclusion masks" tutorial
as a YAML file, validated as a whole before any work.

A config (every section optional except ``output``; angles are numbers in deg or
strings with a unit)::

    backend: auto                 # numpy | cupy | auto
    geometry:                     # the mask's geometry; default: the inputs' geometry
      skydir: [83.633, 22.0145]   # map centre (lon, lat) in deg, in skydir_frame
      skydir_frame: icrs          # default: frame
      frame: galactic             # icrs | galactic | fk5
      width: 5 deg                # or [lon, lat]; or npix: [nx, ny]
      binsz: 0.02 deg
      proj: CAR
    regions:                      # excluded: ds9 text or region files
      - "galactic;box(185,-4,1.0,0.5,45)"
      - extra.reg
    catalogs:                     # excluded: every source touching the map
      - name: 3fhl                # a known catalog ($GAMMAPY_DATA) ...
        file: gll_psch_v13.fit.gz # ... or a file (format detected or given)
        radius: 0.3 deg           # fixed circles (the tutorial); or the
        psf: 0.1 deg              # morphology rule: psf, scale, min_radius
    significance:                 # excluded: significant excesses
      dataset: dataset.fits       # a MapDataset file, or counts + background files
      correlation_radius: 0.4 deg
      threshold: 5                # sqrt_ts >= threshold ...
      low: 3                      # ... grown to the connected sqrt_ts >= low
      dilation: 0.1 deg           # grow the significance exclusion
    dilation: 0 deg               # grow the combined exclusion (= Map.binary_erode of the usable mask)
    explain: true                 # record why each pixel is excluded (default true)
    output:
      mask: "{name}_mask.fits"    # boolean mask, True = usable (gammapy)
      sqrt_ts: "{name}_sqrt_ts.fits"          # optional
      significance_mask: "{name}_sig.fits"    # optional
      root: /data/masks           # optional: outputs may also go anywhere below

``dilation`` grows the excluded regions; the mask is True = usable (gammapy), so in
Python the same step erodes the mask: ``mask.binary_erode("0.1 deg")``.

``explain`` (true or false, default true) builds every part with ``explain=True``:
the mask file then carries the provenance HDUs (``EXPLAIN_LABEL``,
``EXPLAIN_LABEL2``, ``EXPLAIN_COMPONENTS``; gammapy reads the mask as before) and the
manifest lists the ``top_components`` by excluded area (see
:class:`~gpumask.sky.provenance.MaskProvenance`).  It costs a few small counted host
copies per field; ``explain: false`` keeps a field free of them.  A config that
leaves ``explain`` out has the job hash it had before the key existed.  Missing
output folders are created after validation, before the first write, only inside
the folders below.

Relative paths are relative to the config file's folder; ``$VAR`` and ``~`` are
expanded in the config's strings before any field value is put in.  String values
may hold ``{name}`` and the other columns of a field (see :mod:`gpumask.batch`):
plain ``{key}`` placeholders only (no format spec ``{key:>9}``, conversion
``{key!r}``, attribute or index); a value put into a template is text or a number.
Every problem is reported with its key path (``significance.threshold: ...``) in
one :class:`ConfigError`, before any work; values echoed in messages are cut to a
few hundred characters.

Hostile inputs are refused at validation:

* every output stays inside the folder its template names before its first
  placeholder (``out/{tag}_mask.fits``: ``out/``; ``{name}.fits``: the config's
  folder), symlinks resolved; ``output.root`` (config only, not a field) allows
  one more folder.  A field overriding an ``output`` key is held to the config's
  folder for that key (for a key the config lacks: the mask's folder);
* no output (nor the manifest) is the same file as an input, another output of
  the field or, in a batch, a file of another field, the config or the field list
  (real paths, hard links by device and inode);
* a file name may have at most 255 bytes (:data:`NAME_MAX`), an output's at most
  140 (room for the atomic writer's temporary ``.NAME.HOST.PID-START.XXXXXXXX.tmp.fits.gz``,
  :data:`~gpumask.batch.guards.TEMP_NAME_ROOM`);
  a path at most 4096 bytes (:data:`PATH_MAX`);
* a YAML file whose aliases (``*anchor``) expand it beyond
  :data:`MAX_CONFIG_NODES` nodes (a config) or :data:`MAX_YAML_NODES` (a field
  list), or beyond :data:`MAX_YAML_TEXT` characters of text, or that refers to
  itself, is refused before it is built ("billion laughs").
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
from pathlib import Path

from .._utils import expand_user, parse_angle
from ..backend import BACKEND_NAMES, memory_available, resolve_backend
from ..catalog.source_catalog import _ALIASES, DEFAULT_FILES, FORMATS
from .guards import (
    _SHOW_CHARS,
    _SHOW_MESSAGE,
    _SHOW_PROBLEMS,
    MAX_CONFIG_NODES,
    MAX_YAML_NODES,
    MAX_YAML_TEXT,
    NAME_MAX,
    PATH_MAX,
    _cut,
    blame,
    check_name,
    expand,
    expansion_problem,
    file_key,
    folder_problem,
    inside,
    is_file,
    job_files,
    path_problem,
    real_path,
    show,
    substitute,
    template_folder,
)

__all__ = [
    "ConfigError", "MaskConfig", "FieldJob", "load_yaml", "check_name",
    "MAX_CONFIG_NODES", "MAX_YAML_NODES", "MAX_YAML_TEXT", "NAME_MAX", "PATH_MAX",
]

_FRAMES = ("icrs", "galactic", "fk5")
_KEYS = {
    "": ("backend", "geometry", "regions", "catalogs", "significance", "dilation", "explain", "output"),
    "geometry": ("skydir", "skydir_frame", "frame", "width", "npix", "binsz", "proj"),
    "catalogs": ("name", "file", "format", "radius", "psf", "scale", "min_radius"),
    "significance": (
        "dataset", "counts", "background", "correlation_radius", "threshold", "low",
        "nan", "connectivity", "dilation", "dtype",
    ),
    "output": ("mask", "sqrt_ts", "significance_mask", "root"),
}
_OUTPUT_KEYS = ("mask", "sqrt_ts", "significance_mask")
_PATH_KEYS = {("significance", "dataset"), ("significance", "counts"), ("significance", "background")}
_EXAMPLES = {
    "width": "'5 deg' or [5 deg, 3 deg]",
    "binsz": "'0.02 deg'",
    "correlation_radius": "'0.4 deg'",
    "dilation": "'0.1 deg'",
    "radius": "'0.3 deg'",
    "psf": "'0.1 deg'",
    "min_radius": "'0.05 deg'",
}
# bytes per pixel of the working set: masks and coordinates; the significance
# step adds the float64 inputs, two padded complex transforms and ~10 maps
_BYTES_PER_PIXEL = 40
_BYTES_PER_PIXEL_SIGNIFICANCE = 200
_BYTES_PER_PIXEL_ENERGY_BIN = 16


class ConfigError(ValueError):
    """A config or field list with problems; ``problems`` lists ``(key path, message)``."""

    def __init__(self, problems, source=None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        n = len(self.problems)
        lines = [f"{n} problem{'s' * (n != 1)}{where}:"]
        lines += [f"  {_cut(path, _SHOW_CHARS) or '<top>'}: {_cut(msg, _SHOW_MESSAGE)}"
                  for path, msg in self.problems[:_SHOW_PROBLEMS]]
        if n > _SHOW_PROBLEMS:
            lines.append(f"  ... and {n - _SHOW_PROBLEMS} more problems")
        super().__init__("\n".join(lines))


def load_yaml(path, *, max_nodes=MAX_CONFIG_NODES, max_text=MAX_YAML_TEXT, what="config file"):
    """The mapping or list in a YAML file; errors name the file and the line.

    The document is refused (:class:`ConfigError`) when its aliases expand it
    beyond ``max_nodes`` nodes or ``max_text`` characters of scalar text, or when
    an alias refers to itself; both are checked on the parsed node graph, before
    any Python object is built.
    """
    import yaml  # noqa: PLC0415

    path = expand_user(os.path.expandvars(os.fspath(path)))
    try:
        found = path.is_file()
    except OSError as exc:
        raise FileNotFoundError(f"{what} {show(str(path))} cannot be read: {exc.strerror}") from None
    if not found:
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([("", f"not UTF-8 text (byte {exc.start}): save it as UTF-8")], str(path)) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problem = expansion_problem(node, max_nodes, max_text)
        if problem:
            raise ConfigError([("", problem)], source=str(path))
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([("", f"not valid YAML: {_cut(exc, _SHOW_MESSAGE)}")], source=str(path)) from None
    finally:
        loader.dispose()


# ----------------------------------------------------------------------------- values


class _Problems:
    def __init__(self):
        self.items = []

    def add(self, path, message):
        self.items.append((path, message))


def _join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def _unknown_keys(raw, section, path, problems):
    allowed = _KEYS[section]
    for key in raw:
        if key not in allowed:
            key = _cut(key, _SHOW_CHARS)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; accepted: {', '.join(allowed)}"
            problems.add(_join(path, key), f"unknown key{hint}")


def _angle(value, path, problems, *, positive=False, key=None):
    try:
        return parse_angle(value, path, allow_zero=not positive)
    except ValueError:
        example = _EXAMPLES.get(key or path.rsplit(".", 1)[-1], "'0.1 deg'")
        need = "a positive angle" if positive else "an angle >= 0"
        problems.add(path, f"{show(value)} is not {need}; give a number in deg or a string like {example}")
        return None


def _angle_pair(value, path, problems, *, key=None):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            problems.add(path, f"{show(value)}: give one angle or a [lon, lat] pair")
            return None
        pair = [_angle(v, f"{path}[{i}]", problems, positive=True, key=key) for i, v in enumerate(value)]
        return None if None in pair else tuple(pair)
    angle = _angle(value, path, problems, positive=True, key=key)
    return None if angle is None else (angle, angle)


def _number(value, path, problems, *, integer=False, choices=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        problems.add(path, f"{show(value)} is not {kind}")
        return None
    if integer and int(value) != value:
        problems.add(path, f"{show(value)} is not an integer")
        return None
    if choices is not None and value not in choices:
        problems.add(path, f"{show(value)} is not accepted; choose one of {list(choices)}")
        return None
    return int(value) if integer else float(value)


def _choice(value, path, problems, choices):
    if not isinstance(value, str) or value.lower() not in choices:
        problems.add(path, f"{show(value)} is not accepted; choose one of {list(choices)}")
        return None
    return value.lower()


def _text(value, path, problems):
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        problems.add(path, f"{show(value)}: expected a non-empty string")
        return None
    if "\0" in str(value):
        problems.add(path, f"{show(value)} holds a NUL character, which no file name or region can")
        return None
    return str(value)


def _section(raw, name, path, problems):
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping with keys {', '.join(_KEYS[name])}, got {type(raw).__name__}")
        return {}
    _unknown_keys(raw, name, path, problems)
    return raw


# ----------------------------------------------------------------------------- sections


def _geometry(raw, problems):
    g = _section(raw, "geometry", "geometry", problems)
    if not g:
        return None
    out = {"proj": "CAR", "frame": "icrs", "skydir": None, "skydir_frame": None,
           "width": None, "npix": None, "binsz": None}
    if "frame" in g:
        out["frame"] = _choice(g["frame"], "geometry.frame", problems, _FRAMES)
    if "skydir_frame" in g:
        out["skydir_frame"] = _choice(g["skydir_frame"], "geometry.skydir_frame", problems, _FRAMES)
    if "proj" in g:
        proj = _text(g["proj"], "geometry.proj", problems)
        if proj is not None and not re.fullmatch(r"[A-Z]{3}", proj.upper()):
            problems.add("geometry.proj", f"{show(proj)} is not a 3-letter WCS projection code (CAR, TAN, AIT, ...)")
        out["proj"] = None if proj is None else proj.upper()
    if "skydir" in g:
        sky = g["skydir"]
        if isinstance(sky, str):
            sky = sky.replace(",", " ").split()
        if not isinstance(sky, (list, tuple)) or len(sky) != 2:
            problems.add("geometry.skydir", f"{show(g['skydir'])}: give [lon, lat] in deg")
        else:
            lon = _angle(sky[0], "geometry.skydir[0]", problems)
            lat = _angle_signed(sky[1], "geometry.skydir[1]", problems)
            if lat is not None and abs(lat) > 90:
                problems.add("geometry.skydir[1]", f"latitude {lat} is outside [-90, 90] deg")
            out["skydir"] = None if lon is None or lat is None else (lon % 360.0, lat)
    if "width" in g:
        out["width"] = _angle_pair(g["width"], "geometry.width", problems, key="width")
    if "npix" in g:
        npix = g["npix"] if isinstance(g["npix"], (list, tuple)) else [g["npix"], g["npix"]]
        vals = [_number(v, f"geometry.npix[{i}]", problems, integer=True) for i, v in enumerate(npix[:2])]
        if len(npix) != 2 or None in vals or min(vals) < 1:
            problems.add("geometry.npix", f"{show(g['npix'])}: give a positive integer or [nx, ny]")
        else:
            out["npix"] = tuple(vals)
    if "binsz" in g:
        out["binsz"] = _angle_pair(g["binsz"], "geometry.binsz", problems, key="binsz")
    return out


def _angle_signed(value, path, problems):
    try:
        return parse_angle(value, path, allow_negative=True)
    except ValueError:
        problems.add(path, f"{show(value)} is not an angle; give a number in deg")
        return None


def _regions(raw, problems):
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        path = f"regions[{i}]" if isinstance(raw, list) else "regions"
        text = _text(item, path, problems)
        if text is not None:
            out.append(text)
    return out


def _catalogs(raw, problems):
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        path = f"catalogs[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        c = _section(item, "catalogs", path, problems)
        spec = {"name": None, "file": None, "format": None, "radius": None, "psf": None,
                "scale": None, "min_radius": None}
        for key in ("name", "format"):
            if key in c:
                value = _text(c[key], f"{path}.{key}", problems)
                if value is not None:
                    value = _ALIASES.get(value.strip().lower(), value.strip().lower())
                    known = DEFAULT_FILES if key == "name" else FORMATS
                    if value not in known:
                        problems.add(f"{path}.{key}", f"unknown catalog {show(value)}; known: {', '.join(known)}")
                        value = None
                spec[key] = value
        if "file" in c:
            spec["file"] = _text(c["file"], f"{path}.file", problems)
        if not c.get("name") and not c.get("file"):
            problems.add(path, "give name (a catalog in $GAMMAPY_DATA) or file (a catalog file)")
        for key in ("radius", "psf", "min_radius"):
            if key in c:
                spec[key] = _angle(c[key], f"{path}.{key}", problems, positive=key == "radius", key=key)
        if "scale" in c:
            scale = c["scale"]
            if isinstance(scale, dict):
                spec["scale"] = {k: _number(v, f"{path}.scale.{k}", problems) for k, v in scale.items()}
            else:
                spec["scale"] = _number(scale, f"{path}.scale", problems)
        if spec["radius"] is not None and (c.get("psf") is not None or c.get("scale") is not None):
            problems.add(f"{path}.radius", "radius gives every source a fixed circle; drop psf and scale, "
                         "or drop radius to use the morphology rule")
        out.append(spec)
    return out


def _significance(raw, problems):
    s = _section(raw, "significance", "significance", problems)
    if not s:
        return None
    out = {"dataset": None, "counts": None, "background": None, "correlation_radius": 0.1,
           "threshold": 5.0, "low": None, "nan": "keep", "connectivity": 1, "dilation": 0.0,
           "dtype": "float64"}
    for key in ("dataset", "counts", "background"):
        if key in s and s[key] is not None:
            out[key] = _text(s[key], f"significance.{key}", problems)
    if "correlation_radius" in s:
        out["correlation_radius"] = _angle(s["correlation_radius"], "significance.correlation_radius",
                                           problems, positive=True)
    if "dilation" in s:
        out["dilation"] = _angle(s["dilation"], "significance.dilation", problems)
    for key in ("threshold", "low"):
        if key in s and s[key] is not None:
            out[key] = _number(s[key], f"significance.{key}", problems)
    if "nan" in s:
        out["nan"] = _choice(s["nan"], "significance.nan", problems, ("keep", "exclude", "raise"))
    if "connectivity" in s:
        out["connectivity"] = _number(s["connectivity"], "significance.connectivity", problems,
                                      integer=True, choices=(1, 2))
    if "dtype" in s:
        out["dtype"] = _choice(s["dtype"], "significance.dtype", problems, ("float64", "float32"))
    if out["low"] is not None and out["threshold"] is not None and out["low"] > out["threshold"]:
        problems.add("significance.low", f"low ({out['low']:g}) must not be above threshold "
                     f"({out['threshold']:g})")
    return out


def _output(raw, problems):
    o = _section(raw, "output", "output", problems)
    out = {"mask": None, "sqrt_ts": None, "significance_mask": None}
    for key in _OUTPUT_KEYS:
        if o.get(key) is not None:
            out[key] = _text(o[key], f"output.{key}", problems)
            if out[key] is not None and not re.search(r"\.fits(\.gz)?$", out[key], re.I):
                problems.add(f"output.{key}", f"{show(out[key])} must end in .fits or .fits.gz")
    if out["mask"] is None:
        problems.add("output.mask", "missing: give the mask file, e.g. mask: \"{name}_mask.fits\"")
    if o.get("root") is not None:
        root = _text(o["root"], "output.root", problems)
        if root is not None and "{" in root:
            problems.add("output.root", f"{show(root)}: the allowed folder takes no {{placeholder}}")
            root = None
        out["root"] = root
    return out


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass
class FieldJob:
    """One field, fully resolved: absolute paths, geometry parameters, the steps.

    A plain picklable record (dask ships it to workers); ``job_hash`` identifies
    its result so that a finished field can be recognised and skipped.
    """

    name: str
    backend: str | None
    geometry: dict | None
    regions: list
    catalogs: list
    significance: dict | None
    dilation: float
    outputs: dict
    explain: bool = True  # provenance HDUs in the mask file, top components in the manifest
    shape: tuple | None = None  # (ny, nx) of the mask, when known before running
    inputs_shape: tuple | None = None  # shape of the significance inputs (from their headers)
    job_hash: str = ""

    @property
    def manifest(self) -> Path:
        """The JSON written last, after every output: it marks the field complete."""
        mask = Path(self.outputs["mask"])
        stem = re.sub(r"\.fits(\.gz)?$", "", mask.name, flags=re.I)
        return mask.with_name(f"{stem}.json")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class MaskConfig:
    """A validated mask config.

    Parameters
    ----------
    raw : dict
        The config mapping (see the module docstring).
    base_dir : path, optional
        Folder that relative paths are relative to (default: the working directory).
    source : str, optional
        Where the config came from, for messages.

    Raises
    ------
    ConfigError
        Listing every problem with its key path.
    """

    def __init__(self, raw, base_dir=None, source=None):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError([("", f"a config is a mapping of sections, got {type(raw).__name__}")], source)
        self.raw = copy.deepcopy(raw)
        self.base_dir = Path(base_dir or os.getcwd()).resolve()
        self.source = source
        problems = _Problems()
        _unknown_keys(raw, "", "", problems)
        self.spec = _validate(raw, problems)
        if problems.items:
            raise ConfigError(problems.items, source)

    @classmethod
    def read(cls, path, overrides=None) -> MaskConfig:
        """Read a YAML config; ``overrides`` (a nested dict) replace its keys."""
        path = expand_user(os.path.expandvars(os.fspath(path))).resolve()
        raw = load_yaml(path)
        if overrides:
            raw = merge(raw if isinstance(raw, dict) else {}, overrides)
        return cls(raw, base_dir=path.parent, source=str(path))

    def output_folders(self) -> dict:
        """``{output key: [folder, ...]}``: the real folders each output must stay in.

        The folder a template names before its first ``{placeholder}`` (a fixed
        path: its own folder); for an output key this config lacks, the mask's
        folder; and ``output.root`` when given.
        """
        out = self.spec["output"]
        extra = [real_path(expand(out["root"]), self.base_dir)] if out.get("root") else []
        mask = template_folder(out["mask"], self.base_dir)
        return {key: [template_folder(out[key], self.base_dir) if out.get(key) else mask, *extra]
                for key in _OUTPUT_KEYS}

    def field_job(self, name="field", values=None, base_dir=None, key_prefix="", output_folders=None) -> FieldJob:
        """Resolve the config for one field.

        Parameters
        ----------
        name : str
            Field name, available as ``{name}`` in strings.
        values : dict, optional
            More ``{key}`` values of the field.
        base_dir : path, optional
            Folder for the field's own relative paths (already in ``values``).
        key_prefix : str
            Prefix of key paths in messages (``fields[3].``).
        output_folders : dict, optional
            The folders outputs must stay in (:meth:`output_folders`); a batch
            passes those of the shared config, so that a field overriding an
            output key is held to the config's folder.  Default: this config's.

        Raises
        ------
        ConfigError
            Unresolvable ``{keys}``, missing input files, no way to get a geometry,
            a geometry too large for the backend's memory, outputs outside their
            folder or equal to an input, over-long file names.
        """
        problems = _Problems()

        def where(path):
            return _join(key_prefix, path)

        name, problem = check_name(name, where("name"))
        if problem:
            raise ConfigError([problem], self.source)
        variables = {"name": name, **{k: v for k, v in (values or {}).items() if v is not None}}
        spec = copy.deepcopy(self.spec)

        def sub(value, path):
            return substitute(value, variables, where(path), problems)

        def resolve(value, path, output=False):
            """The absolute path a config string names, or None (with a problem)."""
            text = sub(expand(value), path)
            if text is None:
                return None
            if "\0" in text:
                problems.add(where(path), f"{show(text)} holds a NUL character, which no file name can")
                return None
            p = Path(text)
            resolved = str(p if p.is_absolute() else (self.base_dir / p).resolve())
            problem = path_problem(resolved, output)
            if problem:
                problems.add(where(path), problem)
                return None
            return resolved

        regions = []
        for i, item in enumerate(spec["regions"]):
            text = sub(item, f"regions[{i}]")
            if text is None:
                continue
            if "(" in text or "\n" in text:
                regions.append(text)
            else:
                path = resolve(item, f"regions[{i}]")
                if path is None:
                    continue
                if not is_file(path):
                    problems.add(where(f"regions[{i}]"),
                                 f"region file not found: {path} (ds9 text needs a shape, e.g. 'icrs;circle(...)')")
                regions.append(path)
        catalogs = []
        for i, cat in enumerate(spec["catalogs"]):
            if cat["file"] is not None:
                cat["file"] = resolve(cat["file"], f"catalogs[{i}].file")
                if cat["file"] and not is_file(cat["file"]):
                    problems.add(where(f"catalogs[{i}].file"), f"catalog file not found: {cat['file']}")
            else:
                cat["file"] = _default_catalog_file(cat["name"], where(f"catalogs[{i}].name"), problems)
            catalogs.append(cat)
        sig = spec["significance"]
        if sig is not None:
            _check_inputs(sig, key_prefix, problems)
            for key in ("dataset", "counts", "background"):
                if sig[key] is not None:
                    sig[key] = resolve(sig[key], f"significance.{key}")
                    if sig[key] and not is_file(sig[key]):
                        problems.add(where(f"significance.{key}"), f"file not found: {sig[key]}")
        outputs = {}
        folders = output_folders or self.output_folders()
        for key in _OUTPUT_KEYS:
            template = spec["output"].get(key)
            path = None if template is None else resolve(template, f"output.{key}", output=True)
            if path is None:
                continue
            outputs[key] = path
            problem = folder_problem(str(Path(path).parent))  # a missing folder is created at run time
            if problem:
                problems.add(where(f"output.{key}"), problem)
            real = os.path.realpath(path)
            allowed = folders.get(key) or folders["mask"]
            if not any(inside(real, folder) for folder in allowed):
                culprit = blame(template, variables)
                value = f"{show(str(variables[culprit]))} puts " if culprit else ""
                problems.add(
                    where(culprit or f"output.{key}"),
                    f"{value}output.{key} ({show(template)}) at {real}, outside {allowed[0]}, the folder the "
                    "template names; field values must not leave it (write a value without / or .., or set "
                    "output.root in the config to allow another folder)")
        geometry = spec["geometry"]
        if geometry is not None:
            _check_geometry(geometry, sig, key_prefix, problems)
        elif sig is None:
            problems.add(where("geometry"),
                         "missing: give geometry (skydir, width, binsz) or significance inputs to take it from")
        job = FieldJob(
            name=str(name), backend=spec["backend"], geometry=geometry, regions=regions,
            catalogs=catalogs, significance=sig, dilation=spec["dilation"] or 0.0, outputs=outputs,
            explain=spec["explain"],
        )
        seen = {}
        for key_path, what, path, is_output in job_files(job):
            other = seen.setdefault(file_key(path), (what, is_output))
            if other != (what, is_output) and is_output:
                if other[1]:
                    problems.add(where(key_path), f"{path} is the same file as {other[0]}")
                else:
                    problems.add(where(key_path), f"{path} is also the {other[0]}; writing it would replace "
                                 "the input: choose another output file name")
        if not problems.items:
            job.shape = _check_size(job, key_prefix, problems)
        if problems.items:
            raise ConfigError(problems.items, self.source)
        job.job_hash = _hash(job)
        return job


def _validate(raw, problems) -> dict:
    spec = {"backend": None}
    if raw.get("backend") is not None:
        spec["backend"] = _choice(raw["backend"], "backend", problems, (*BACKEND_NAMES, "auto"))
        if spec["backend"] == "auto":
            spec["backend"] = None
    spec["geometry"] = _geometry(raw.get("geometry"), problems)
    spec["regions"] = _regions(raw.get("regions"), problems)
    spec["catalogs"] = _catalogs(raw.get("catalogs"), problems)
    spec["significance"] = _significance(raw.get("significance"), problems)
    spec["dilation"] = _angle(raw["dilation"], "dilation", problems) if "dilation" in raw else 0.0
    spec["explain"] = raw.get("explain", True)
    if not isinstance(spec["explain"], bool):
        problems.add("explain", f"{show(spec['explain'])} is not accepted; choose true or false")
    spec["output"] = _output(raw.get("output"), problems)
    for key in ("sqrt_ts", "significance_mask"):
        if spec["significance"] is None and spec["output"].get(key):
            problems.add(f"output.{key}", "needs a significance section")
    return spec


def _check_inputs(sig, prefix, problems):
    has_dataset = sig["dataset"] is not None
    if has_dataset and (sig["counts"] is not None or sig["background"] is not None):
        problems.add(_join(prefix, "significance.dataset"),
                     "give either dataset or counts + background, not both")
    elif not has_dataset and (sig["counts"] is None or sig["background"] is None):
        missing = "counts" if sig["counts"] is None else "background"
        problems.add(_join(prefix, f"significance.{missing}"),
                     "missing: give a dataset file, or both counts and background map files")


def _check_geometry(geometry, sig, prefix, problems):
    if geometry["binsz"] is None:
        problems.add(_join(prefix, "geometry.binsz"), "missing: give the pixel size, e.g. binsz: 0.02 deg")
    if geometry["width"] is None and geometry["npix"] is None:
        problems.add(_join(prefix, "geometry.width"), "missing: give width (e.g. '5 deg') or npix")
    if geometry["skydir"] is None:
        problems.add(_join(prefix, "geometry.skydir"), "missing: give the map centre [lon, lat] in deg")


def _default_catalog_file(name, path, problems):
    if name is None:
        return None
    root = os.environ.get("GAMMAPY_DATA")
    if not root:
        problems.add(path, f"catalog {show(name)} is looked up in $GAMMAPY_DATA, which is not set; "
                     "set it or give file: with the catalog file")
        return None
    file = expand_user(root) / "catalogs" / DEFAULT_FILES[name]
    if not file.is_file():
        problems.add(path, f"catalog {show(name)}: {file} does not exist; give file: with the catalog file")
        return None
    return str(file)


def _check_size(job, prefix, problems):
    """The mask shape, and a problem when the working set exceeds the backend's memory."""
    shape, n_energy = _planned_shape(job, prefix, problems)
    if shape is None:
        return None
    if job.significance is not None:
        job.inputs_shape = job.inputs_shape or shape
    npix = shape[0] * shape[1]
    per_pixel = _BYTES_PER_PIXEL
    if job.significance is not None:
        per_pixel += _BYTES_PER_PIXEL_SIGNIFICANCE + _BYTES_PER_PIXEL_ENERGY_BIN * n_energy
    need = npix * per_pixel
    try:
        be = resolve_backend(job.backend)
    except Exception as exc:  # noqa: BLE001 - reported as a config problem
        problems.add(_join(prefix, "backend"), str(exc))
        return shape
    available = memory_available(be)
    if available is not None and need > available:
        key = "geometry" if job.geometry is not None else "significance"
        problems.add(
            _join(prefix, key),
            f"{shape[1]} x {shape[0]} px need about {_gib(need)} on the {be.name} backend, which has "
            f"{_gib(available)} free; use a larger geometry.binsz or a smaller geometry.width, or split "
            "the field into several (gpumask batch)",
        )
    return shape


def _planned_shape(job, prefix, problems):
    g = job.geometry
    sig = job.significance
    if g is not None:
        if sig is not None:  # the input maps' shape too (for dask chunks); errors are found later
            try:
                job.inputs_shape = _fits_image_shape(sig["dataset"] or sig["counts"],
                                                     "COUNTS" if sig["dataset"] else None)[-2:]
            except Exception:  # noqa: BLE001
                job.inputs_shape = None
        if g["npix"] is not None:
            return (g["npix"][1], g["npix"][0]), 1
        nx, ny = (max(1, int(round(w / b))) for w, b in zip(g["width"], g["binsz"]))
        return (ny, nx), 1
    path = sig["dataset"] or sig["counts"]
    try:
        shape = _fits_image_shape(path, "COUNTS" if sig["dataset"] else None)
    except Exception as exc:  # noqa: BLE001 - reported as a config problem
        key = "dataset" if sig["dataset"] else "counts"
        problems.add(_join(prefix, f"significance.{key}"), f"cannot read the map shape of {path}: {exc}")
        return None, 1
    n_energy = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return tuple(shape[-2:]), n_energy


def _fits_image_shape(path, hdu):
    """The image shape from the header alone (structure checked first, so a
    hostile header fails fast instead of hanging astropy)."""
    from ..sky.io import fits_image_shape  # noqa: PLC0415

    return fits_image_shape(path, hdu)


def _gib(n):
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def _hash(job: FieldJob) -> str:
    """sha256 of what determines the field's result (not the backend).  ``explain``
    enters only when off, so configs without it keep their hash (and resume)."""
    content = job.as_dict()
    for key in ("job_hash", "backend", "shape", "inputs_shape"):
        content.pop(key)
    if content.get("explain", True):
        content.pop("explain", None)
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied key by key (nested mappings merged)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
