"""Guards of configs and field lists against hostile input: bounded YAML, values
echoed in messages cut short, ``{key}`` templates, where outputs may go, file-name
limits and file identity.  Used by :mod:`gpumask.batch.config` and
:mod:`gpumask.batch.runner`; the rules are listed in the docstring of
:mod:`gpumask.batch.config`.

Functions that find problems return them (a message, or None) or add them to a
``problems`` collector with an ``add(key path, message)`` method; raising is left
to the caller (:class:`gpumask.batch.config.ConfigError`).
"""

from __future__ import annotations

import datetime
import os
import re
import reprlib
import string
from pathlib import Path

__all__ = [
    "MAX_CONFIG_NODES", "MAX_YAML_NODES", "MAX_YAML_TEXT", "NAME_MAX", "PATH_MAX", "TEMP_NAME_ROOM",
    "show", "check_name", "expansion_problem", "substitute", "template_folder", "inside", "blame",
    "path_problem", "file_key", "job_files", "folder_problem", "make_folders",
]

#: Most nodes (mappings, lists, scalars) a config may have once its YAML aliases are expanded.
MAX_CONFIG_NODES = 20_000
#: Most nodes a YAML field list may have once its aliases are expanded.
MAX_YAML_NODES = 1_000_000
#: Most characters of scalar text a YAML file may have once its aliases are expanded.
MAX_YAML_TEXT = 64 * 2**20
#: Longest file or folder name, in bytes (that of common file systems).
NAME_MAX = 255
#: Longest path, in bytes (Linux's PATH_MAX).
PATH_MAX = 4096
#: Bytes an output's file name leaves for the atomic writer's temporary name
#: (:func:`gpumask.sky.io.atomic_write_hdulist`): ``.NAME.HOST.PID-START.RANDOM.tmp.fits.gz``
#: adds at most 2 + 63 (host) + 1 + 7 (pid) + 1 + 20 (start) + 1 + 8 + 4 + 8 bytes,
#: whatever host writes it (a dask worker may run elsewhere).
TEMP_NAME_ROOM = 115
_SHOW_CHARS = 200
_SHOW_PROBLEMS = 100
_SHOW_MESSAGE = 1000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def _cut(text, limit):
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = _SHOW_CHARS


def show(value, limit=_SHOW_CHARS) -> str:
    """``repr(value)`` for messages, cut to about ``limit`` characters (in bounded time,
    whatever the size of ``value``): ``'XXXX...' (100000 characters)``."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = _REPR.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def check_name(name, path="name"):
    """``(name as text, None)`` or ``(None, (key path, message))`` for a field name:
    letters, digits and ``_ . + -``, starting with a letter or digit (it names files)."""
    if isinstance(name, bool) or not isinstance(name, (str, int)):
        hint = f" (in YAML, quote it: name: \"{name}\")" if isinstance(name, float) else ""
        return None, (path, f"a name is text, got a {type(name).__name__}{hint}")
    name = str(name)
    if not _NAME.fullmatch(name):
        return None, (path, f"{show(name)}: use letters, digits and _ . + - (it names files)")
    return name, None


def expansion_problem(root, max_nodes, max_text):
    """Why the node graph ``root`` is refused (its expanded size), or None.

    Aliases make nodes shared: the expanded size is counted with one visit per
    distinct node (memoised), so a "billion laughs" document is measured in
    microseconds."""
    sizes = {}  # id(node) -> (nodes, text) of its expansion
    stack = [(root, False)]
    active = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node.value, str):
            sizes[key] = (1, len(node.value))
            continue
        children = [c for pair in node.value for c in (pair if isinstance(pair, tuple) else (pair,))]
        if not children_done:
            if key in active:
                return "an alias refers to itself (a recursive structure); write the values out"
            active.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in active and id(child) not in sizes:
                    return "an alias refers to itself (a recursive structure); write the values out"
                stack.append((child, False))
            continue
        active.discard(key)
        nodes = 1 + sum(sizes[id(c)][0] for c in children)
        chars = sum(sizes[id(c)][1] for c in children)
        sizes[key] = (nodes, chars)
        if nodes > max_nodes or chars > max_text:
            return (f"more than {max_nodes:,} nodes or {max_text:,} characters once its aliases (*anchor) "
                    f"are expanded (a config may have {MAX_CONFIG_NODES:,} nodes, a field list "
                    f"{MAX_YAML_NODES:,}); use fewer aliases or split the file")
    return None


def job_files(job):
    """``[(key path, description, path, is_output)]``: the files ``job`` reads, then
    those it writes, its manifest last."""
    files = []
    sig = job.significance or {}
    for key in ("dataset", "counts", "background"):
        if sig.get(key):
            files.append((f"significance.{key}", f"input significance.{key}", sig[key], False))
    for i, region in enumerate(job.regions):
        if "(" not in region and "\n" not in region:
            files.append((f"regions[{i}]", f"input regions[{i}]", region, False))
    for i, cat in enumerate(job.catalogs):
        if cat.get("file"):
            files.append((f"catalogs[{i}].file", f"input catalogs[{i}].file", cat["file"], False))
    for key, path in job.outputs.items():
        files.append((f"output.{key}", f"output.{key}", path, True))
    if "mask" in job.outputs:
        files.append(("output.mask", "manifest of output.mask", str(job.manifest), True))
    return files


def file_key(path):
    """What identifies the file at ``path``: its device and inode when it exists (hard
    links and symlinks compare equal), else its real path."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except (OSError, ValueError):
        return ("path", real)
    return ("file", st.st_dev, st.st_ino)


def expand(text):
    """``$VAR``/``${VAR}`` and a leading ``~`` of a config string (before field values go in)."""
    text = os.path.expandvars(text)
    return os.path.expanduser(text) if text.startswith("~") else text


def real_path(path, base):
    p = Path(path)
    return os.path.realpath(p if p.is_absolute() else Path(base) / p)


def template_folder(template, base):
    """The real folder ``template`` names before its first placeholder (a fixed
    path: its own folder)."""
    text = expand(template)
    prefix = ""
    try:
        for literal, field, _, _ in string.Formatter().parse(text):
            prefix += literal
            if field is not None:
                break
        else:
            return os.path.dirname(real_path(text, base))
    except ValueError:  # reported where the template is substituted
        return os.path.dirname(real_path(text.split("{")[0] + "x", base))
    folder = prefix if prefix.endswith(("/", os.sep)) else os.path.dirname(prefix)
    return real_path(folder or ".", base)


def inside(path, folder):
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def blame(template, variables):
    """The field value that moves a template's output out of its folder, if one does."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(expand(template)) if f]
    except ValueError:
        return None
    for field in fields:
        value = str(variables.get(field, ""))
        if "/" in value or "\\" in value or value == ".." or os.path.isabs(value):
            return field
    return None


def is_file(path):
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def is_dir(path):
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def folder_problem(folder):
    """Why the folder ``folder`` (absolute) can be neither used nor created, or None.

    A missing folder is fine when its nearest existing ancestor is a folder: it is
    created before the first write (:func:`make_folders`)."""
    p = Path(folder)
    while True:
        try:
            if p.is_dir():
                return None
            if p.exists() or p.is_symlink():
                kind = "a broken link" if not p.exists() else "a file"
                return f"folder {folder} cannot be created: {p} is {kind}, not a folder"
        except (OSError, ValueError) as exc:
            return f"folder {folder} cannot be checked: {exc}"
        if p.parent == p:
            return f"folder {folder} cannot be created: no folder above it exists"
        p = p.parent


def make_folders(folder, allowed=None) -> list:
    """Create the missing folders of ``folder`` (absolute), one at a time; the folders created.

    Each one is created with ``os.mkdir`` (an existing link is never followed into a
    new place) and checked after creation: its real path must be where its parent's
    real path says, and, with ``allowed`` (real folders), inside one of them or on
    the way to one (the folder a template names before its placeholder, created
    with its parents).  Called only after validation, just before the first write.

    Raises
    ------
    OSError
        A folder cannot be created, or would lie outside ``allowed``.
    """
    folder = os.path.abspath(folder)
    missing = []
    p = folder
    while not os.path.isdir(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        missing.append(p)
        p = parent

    def permitted(real):
        return allowed is None or any(inside(real, a) or inside(a, real) for a in allowed)

    created = []
    for path in reversed(missing):
        expected = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if not permitted(expected):
            raise PermissionError(f"refusing to create {path}: outside {allowed[0]}, the folder outputs may use")
        try:
            os.mkdir(path)
            created.append(path)
        except FileExistsError:
            pass
        if not os.path.isdir(path) or os.path.realpath(path) != expected:
            raise FileExistsError(f"cannot create folder {path}: something else appeared there")
    return created


def path_problem(path, output=False):
    """Why ``path`` (absolute) cannot be a file on common file systems, or None."""
    try:
        raw = os.fsencode(path)
    except UnicodeError:
        return f"{show(path)} holds characters the file system cannot encode"
    if b"\0" in raw:
        return f"{show(path)} holds a NUL character, which no file name can"
    parts = raw.split(b"/")
    for k, part in enumerate(parts):
        last = output and k == len(parts) - 1
        limit = NAME_MAX - TEMP_NAME_ROOM if last else NAME_MAX
        if len(part) > limit:
            room = f" ({NAME_MAX} less room for the atomic writer's temporary name)" if last else ""
            return f"{show(os.fsdecode(part))} is {len(part)} bytes; a file name may have at most {limit}{room}"
    limit = PATH_MAX - (TEMP_NAME_ROOM if output else 0)
    if len(raw) > limit:
        return f"{show(path)} is {len(raw)} bytes; a path may have at most {limit}"
    return None


def substitute(value, variables, path, problems):
    """``value`` with each plain ``{key}`` replaced by the field's value as text; None
    (with a problem) for format specs, conversions, attributes, indexes, unknown keys
    and values that are not text or numbers."""
    if value is None or "{" not in value:
        return value
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        problems.add(path, f"{show(value)}: bad {{placeholder}} ({exc}); write {{key}}, and {{{{ or }}}} "
                     "for a brace")
        return None
    out, bad, kinds, missing = [], [], [], []
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        if field == "":
            bad.append("an empty {}")
        elif conversion:
            bad.append(f"the conversion '!{_cut(conversion, 20)}'")
        elif spec:
            bad.append(f"the format spec ':{_cut(spec, 40)}'")
        elif field in variables:
            v = variables[field]
            if isinstance(v, (str, int, float)) or _is_date(v):
                out.append(str(v))
            else:
                kinds.append(f"{{{_cut(field, 40)}}} is a {type(v).__name__}")
        elif re.split(r"[.\[]", field)[0] in variables:
            bad.append(f"{show(field, 40)} is not a value of the field (no attribute or index)")
        else:
            missing.append(field)
    if bad:
        problems.add(path, f"{show(value)}: {'; '.join(bad[:3])}: placeholders are plain; write {{key}} "
                     "with a key of the field")
    if kinds:
        problems.add(path, f"{show(value)}: {'; '.join(kinds[:3])}; templates take text or numbers")
    if missing:
        names = ", ".join("{" + _cut(k, 40) + "}" for k in sorted(set(missing))[:5])
        problems.add(path, f"{show(value)} uses {names}, which the field does not define (it has "
                     f"{_cut(', '.join(sorted(variables)), _SHOW_CHARS)})")
    if bad or kinds or missing:
        return None
    return "".join(out)


def _is_date(value):
    return isinstance(value, (datetime.date, datetime.datetime))
