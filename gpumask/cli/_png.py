"""A PNG preview without matplotlib: a minimal encoder and a significance renderer.

``gpumask demo`` must run after a plain ``pip install .`` (numpy, scipy, astropy,
regions), so its preview cannot use matplotlib.  PNG needs nothing but zlib:
8-bit RGB (colour type 2), every row with filter type 0 (none), one IDAT chunk.

Everything here works on host (numpy) arrays; callers copy maps with
``Map.to_numpy()`` first.  Writes are atomic (temporary file in the target
directory, then a rename), as :func:`gpumask.sky.io.write_map`.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..sky.io import atomic_write_bytes

__all__ = [
    "NAN_COLOUR",
    "OUTLINE_COLOUR",
    "colour_ramp",
    "encode_png",
    "outline",
    "render_significance",
    "write_png",
]

# viridis (matplotlib's default map, CC0), sampled at 17 evenly spaced points and
# interpolated linearly in between: perceptually ordered, readable in grey scale
_VIRIDIS = np.array(
    [
        (68, 1, 84), (72, 24, 106), (71, 45, 123), (66, 64, 134), (59, 82, 139),
        (51, 99, 141), (44, 114, 142), (38, 130, 142), (33, 145, 140), (31, 159, 136),
        (39, 173, 129), (61, 188, 116), (92, 200, 99), (129, 211, 77), (170, 220, 50),
        (213, 226, 26), (253, 231, 37),
    ],
    dtype=np.float64,
)
OUTLINE_COLOUR = (255, 0, 0)  # red: absent from viridis, visible on its dark and bright ends
NAN_COLOUR = (128, 128, 128)  # pixels without a significance (estimator masked them)

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------- writing


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(rgb) -> bytes:
    """PNG bytes of an ``(height, width, 3)`` uint8 image (row 0 at the top)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(
            f"expected a non-empty (height, width, 3) uint8 array, got {rgb.dtype} of shape {rgb.shape}"
        )
    height, width, _ = rgb.shape
    # width, height, bit depth 8, colour type 2 (RGB), compression 0, filter 0, no interlace
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, 3 * width)], axis=1)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(
        b"IEND", b""
    )


def write_png(path, rgb, overwrite=False) -> Path:
    """Write an ``(height, width, 3)`` uint8 RGB image as a PNG file, atomically.

    Parameters
    ----------
    path : str or path
    rgb : numpy.ndarray
        uint8, shape ``(height, width, 3)``, row 0 at the top of the picture.
    overwrite : bool
        Replace an existing file (default: raise :class:`FileExistsError`).
    """
    return atomic_write_bytes(path, encode_png(rgb), overwrite=overwrite)


# ---------------------------------------------------------------------- rendering


def colour_ramp(values, vmin, vmax) -> np.ndarray:
    """RGB uint8 colours (shape ``values.shape + (3,)``) of ``values`` on the viridis
    ramp from ``vmin`` to ``vmax`` (clipped at both ends; NaN -> :data:`NAN_COLOUR`)."""
    if not vmax > vmin:
        raise ValueError(f"vmax ({vmax}) must be above vmin ({vmin})")
    values = np.asarray(values, dtype=np.float64)
    t = np.clip((values - vmin) / (vmax - vmin), 0.0, 1.0)
    t = np.where(np.isnan(values), 0.0, t)
    x = t * (len(_VIRIDIS) - 1)
    lo = np.minimum(x.astype(np.intp), len(_VIRIDIS) - 2)
    frac = (x - lo)[..., None]
    rgb = _VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[np.isnan(values)] = NAN_COLOUR
    return rgb


def outline(excluded) -> np.ndarray:
    """Boolean array: the excluded pixels with a usable 4-neighbour inside the array
    (the inner edge of every excluded region; the array border draws no line)."""
    excluded = np.asarray(excluded, dtype=bool)
    usable = ~excluded
    touches = np.zeros_like(excluded)
    touches[1:, :] |= usable[:-1, :]
    touches[:-1, :] |= usable[1:, :]
    touches[:, 1:] |= usable[:, :-1]
    touches[:, :-1] |= usable[:, 1:]
    return excluded & touches


def render_significance(sqrt_ts, mask=None, *, vmin=-3.0, vmax=10.0, scale=2) -> np.ndarray:
    """RGB picture of a significance image with the outline of an exclusion mask.

    Parameters
    ----------
    sqrt_ts : numpy.ndarray
        2-D significance in FITS order (row 0 = the bottom of the sky image).
    mask : numpy.ndarray, optional
        Boolean exclusion mask of the same shape (True = usable, gammapy's
        convention); the inner edge of its excluded regions is drawn in
        :data:`OUTLINE_COLOUR`, one output pixel wide.
    vmin, vmax : float
        Ends of the colour ramp (default -3 to 10: the noise in dark blue-violet,
        the 5 sigma threshold in the middle, bright sources saturated in yellow).
    scale : int
        Every map pixel becomes ``scale x scale`` picture pixels (default 2).

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(scale * ny, scale * nx, 3)``, north (the last FITS row) up.
    """
    sqrt_ts = np.asarray(sqrt_ts)
    if sqrt_ts.ndim != 2:
        raise ValueError(f"sqrt_ts must be a 2-D image, got shape {sqrt_ts.shape}")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")

    def up(a):
        return np.repeat(np.repeat(a[::-1], scale, axis=0), scale, axis=1)  # flip: north up

    rgb = colour_ramp(up(sqrt_ts), vmin, vmax)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != sqrt_ts.shape:
            raise ValueError(f"mask has shape {mask.shape}, sqrt_ts {sqrt_ts.shape}")
        rgb[outline(~up(mask))] = OUTLINE_COLOUR
    return rgb
