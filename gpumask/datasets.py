"""The maps of a gammapy MapDataset file, on a gpumask backend.

gammapy writes a MapDataset as an empty PRIMARY HDU followed by COUNTS, EXPOSURE,
BACKGROUND, EDISP, PSF, MASK_SAFE, MASK_FIT (each with a ``*_BANDS`` table) and GTI.
gpumask reads the maps that exclusion masks and background estimation need:
COUNTS, BACKGROUND, EXPOSURE, MASK_SAFE and MASK_FIT (when present).  IRFs (PSF,
EDISP) are not read.
"""

from __future__ import annotations

from pathlib import Path

from .backend import common_backend
from .io import FitsReadError, map_from_hdulist, open_fits
from .maps import Map

__all__ = ["MapDataset", "read_dataset"]

_MAP_HDUS = ("COUNTS", "BACKGROUND", "EXPOSURE", "MASK_SAFE", "MASK_FIT")


class MapDataset:
    """Counts, background, exposure and masks of one dataset (gammapy's names).

    Attributes are :class:`~gpumask.Map` objects or None when absent.  All maps
    live on one backend.
    """

    def __init__(self, counts, background=None, exposure=None, mask_safe=None, mask_fit=None, name="", meta=None):
        if not isinstance(counts, Map):
            raise TypeError(f"counts must be a Map, got {type(counts).__name__}")
        self.counts = counts
        self.background = background
        self.exposure = exposure
        self.mask_safe = mask_safe
        self.mask_fit = mask_fit
        self.name = name
        self.meta = dict(meta or {})
        common_backend(*self.maps.values(), op="MapDataset")
        for key in ("background", "mask_safe", "mask_fit"):
            other = getattr(self, key)
            if other is not None and not other.geom == counts.geom:
                raise ValueError(f"{key} geometry differs from the counts geometry")

    @property
    def maps(self) -> dict[str, Map]:
        """The maps present, by gammapy's attribute name."""
        keys = ("counts", "background", "exposure", "mask_safe", "mask_fit")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    @property
    def backend(self):
        return self.counts.backend

    @property
    def mask(self):
        """``mask_safe & mask_fit`` (either alone when the other is absent; None if both are)."""
        if self.mask_safe is None:
            return self.mask_fit
        if self.mask_fit is None:
            return self.mask_safe
        return self.mask_safe & self.mask_fit

    def to_backend(self, backend) -> "MapDataset":
        maps = {k: v.to_backend(backend) for k, v in self.maps.items()}
        return MapDataset(name=self.name, meta=self.meta, **maps)

    def __repr__(self):
        lines = [f"MapDataset {self.name!r} (backend {self.backend.name})"]
        for key, m in self.maps.items():
            shape = tuple(m.geom.npix) + tuple(ax.nbin for ax in m.geom.axes)
            lines.append(f"  {key:<11s}: shape {shape}, dtype {m.dtype}, unit {m.unit.to_string() or '-'}")
        return "\n".join(lines)


def read_dataset(filename, name=None, backend=None) -> MapDataset:
    """Read the maps of a gammapy MapDataset FITS file.

    Parameters
    ----------
    filename : str or path
    name : str, optional
        Dataset name (default: the file name stem).
    backend : str, optional
        Where the data goes (``backend=`` > context > ``GPUMASK_BACKEND`` > auto).
    """
    path = Path(filename).expanduser()
    with open_fits(path) as hdulist:
        present = [h.name for h in hdulist]
        if "COUNTS" not in present:
            raise FitsReadError(f"{path}: not a MapDataset file, no COUNTS HDU (HDUs: {present})")
        maps = {}
        for key in _MAP_HDUS:
            if key in present:
                maps[key.lower()] = map_from_hdulist(hdulist, hdu=key, backend=backend, path=str(path))
    if name is None:
        name = path.name.split(".")[0]
    return MapDataset(name=name, **maps)
