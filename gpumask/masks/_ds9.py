"""Region text and files -> ``regions`` objects, with nothing dropped silently.

:func:`parse_ds9` parses ds9 text with ``regions``; :func:`_read_file` reads a
region file (ds9 text, or CRTF / FITS by extension).  Where ``regions`` would
skip a shape with a warning (unknown shape or frame, a parameter it cannot
parse, a NaN or infinite parameter) or fail with an obscure error, these raise a
ValueError that quotes the offending line.  Used by :mod:`gpumask.masks.regions`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from .._utils import expand_user

__all__ = ["parse_ds9"]


def parse_ds9(text: str, source: str = "ds9 text"):
    """Parse ds9 region text with ``regions``, turning its skip-warnings (unknown
    shapes, missing frames, parameters it cannot parse), its parse errors and
    non-finite parameters into ValueErrors that quote the line."""
    from regions import Regions  # noqa: PLC0415

    _check_finite_parameters(text, source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = Regions.parse(text, format="ds9")
        except Exception as exc:  # regions raises ValueError, KeyError, IndexError...
            number, line = _first_bad_line(text)
            where = f" line {number}: {line!r}" if number else ""
            raise ValueError(f"cannot parse {source}{where} ({type(exc).__name__}: {exc})") from exc
    _raise_on_skipped(caught, text, source)
    return list(parsed)


def _raise_on_skipped(caught, text, source):
    """Re-emit the warnings of a ``regions`` reader, except those that mean a
    shape was dropped (unknown shape or frame, unparsable parameter): errors."""
    for warning in caught:
        message = str(warning.message)
        lowered = message.lower()
        if "skipping" in lowered or "unable to parse" in lowered or "cannot parse" in lowered:
            number, line = _line_quoted_in(text, message)
            where = f" line {number}: {line!r}" if number else ""
            raise ValueError(f"cannot parse {source}{where}: {message} (the shape would be dropped)")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


#: ds9 shapes whose parameters are numbers (positions, sizes, angles), and their names.
_DS9_PARAMETERS = {
    "circle": ("x", "y", "radius"),
    "ellipse": ("x", "y", "radius", "radius", "angle"),
    "box": ("x", "y", "width", "height", "angle"),
    "annulus": ("x", "y", "radius"),
    "polygon": ("x", "y"),
    "point": ("x", "y"),
    "line": ("x1", "y1", "x2", "y2"),
    "text": ("x", "y"),
}
_DS9_CALL = re.compile(r"\b(" + "|".join(_DS9_PARAMETERS) + r")\s*\(([^()]*)\)", re.IGNORECASE)
_DS9_UNIT_SUFFIX = "dr\"'pi"


def _parameter_name(shape, k, n):
    names = _DS9_PARAMETERS[shape]
    if shape == "polygon":
        return f"{names[k % 2]} of vertex {k // 2 + 1}"
    if shape in ("ellipse", "box") and k == n - 1 and k >= 4:
        return "angle"
    return names[min(k, len(names) - 1)]


def _check_finite_parameters(text, source):
    """ValueError for a ds9 shape with a NaN or infinite parameter (``regions``
    would drop the shape with a warning, or fail with an obscure KeyError)."""
    for number, line in enumerate(text.splitlines(), 1):
        body = line.strip()
        # "#" starts a comment (shapes there are ignored) or, after a shape, its metadata;
        # of the shapes checked here only text lives in comments
        body = body[1:] if re.match(r"#\s*text\s*\(", body) else body.split("#", 1)[0]
        for match in _DS9_CALL.finditer(body.split("{", 1)[0]):
            shape = match.group(1).lower()
            tokens = [t for t in re.split(r"[\s,]+", match.group(2)) if t]
            for k, token in enumerate(tokens):
                try:
                    value = float(token.rstrip(_DS9_UNIT_SUFFIX))
                except ValueError:
                    continue  # sexagesimal and other forms: left to regions
                if not np.isfinite(value):
                    raise ValueError(
                        f"{source} line {number}: {line.strip()!r}: {shape} parameter {k + 1} "
                        f"({_parameter_name(shape, k, len(tokens))}) is {token!r}; every position, "
                        "size and angle must be a finite number"
                    )


def _first_bad_line(text):
    """(1-based number, text) of the first line whose prefix no longer parses."""
    from regions import Regions  # noqa: PLC0415

    lines = text.splitlines()

    def fails(k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                Regions.parse("\n".join(lines[:k]), format="ds9")
            except Exception:
                return True
        return False

    lo, hi = 1, len(lines)
    if not lines or not fails(hi):
        return 0, ""
    while lo < hi:  # smallest failing prefix: O(log n) parses
        mid = (lo + hi) // 2
        if fails(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo, lines[lo - 1].strip()


def _line_quoted_in(text, message):
    lowered = message.lower()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        for part in [stripped, *stripped.split(";")]:
            part = part.strip()
            # quoted (skipped shapes and frames) or at the end (parameters regions cannot parse)
            if part and (f'"{part}"' in message or lowered.endswith(f": {part.lower()}")):
                return number, stripped
    # a quoted word of the message (a shape or frame name) in a line of the text
    for word in re.findall(r'"([^"]+)"', message):
        for number, line in enumerate(text.splitlines(), 1):
            if word.lower() in line.lower():
                return number, line.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        return 1, lines[0]
    return 0, ""


def _read_file(path: Path):
    from regions import Regions  # noqa: PLC0415

    if not path.is_file():
        raise FileNotFoundError(f"region file {str(path)!r} does not exist")
    name = path.name.lower()
    formats = {".crtf": "crtf", ".fits": "fits", ".fits.gz": "fits", ".fit": "fits"}
    fmt = next((f for suffix, f in formats.items() if name.endswith(suffix)), None)
    if fmt is not None:
        source = f"region file {str(path)!r}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                parsed = list(Regions.read(path, format=fmt))
            except Exception as exc:  # regions' parsers raise TypeError, ValueError, their own errors
                raise ValueError(f"cannot parse {source} as {fmt.upper()} regions "
                                 f"({type(exc).__name__}: {exc})") from exc
        _raise_on_skipped(caught, "", source)
        return parsed
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"region file {str(path)!r} is not ds9 text: {exc}") from exc
    return parse_ds9(text, source=f"region file {str(path)!r}")


def _is_file(text):
    try:
        return expand_user(text).is_file()
    except (OSError, ValueError):  # names too long, NUL bytes...
        return False
