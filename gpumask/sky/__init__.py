"""The data model: WCS geometries, non-spatial axes, maps, datasets and their FITS files.

A geometry (:class:`~gpumask.WcsGeom`, host-side, small) says where each pixel is on the sky;
a map (:class:`~gpumask.Map`) is a geometry plus data that stays on the backend that holds it
until FITS writing.  Pixel coordinates are computed on that backend too
(``gpumask.sky.projections``).

May import: the device layer (``gpumask.backend``, ``gpumask._kernels``,
``gpumask.errors``, ``gpumask._utils``).  Nothing else at module level; the thin
gammapy-style convenience methods (``WcsGeom.region_mask``, ``Map.binary_erode``,
``Map.convolve``, ...) import :mod:`gpumask.masks` and :mod:`gpumask.stats` when
called, and say so.

gammapy objects cross with ``gpumask.sky.bridge`` (``from_gammapy`` /
``to_gammapy``); gammapy is optional and imported only to build gammapy objects.
"""

from .axes import MapAxes, MapAxis
from .datasets import MapDataset, MapDatasetOnOff, read_dataset
from .geom import WcsGeom
from .io import FitsReadError, read_map, write_map
from .maps import Map, WcsNDMap
from .provenance import MaskProvenance
from .reproject import reproject_to_geom

__all__ = [
    "FitsReadError",
    "Map",
    "MapAxes",
    "MapAxis",
    "MapDataset",
    "MapDatasetOnOff",
    "MaskProvenance",
    "WcsGeom",
    "WcsNDMap",
    "read_dataset",
    "read_map",
    "reproject_to_geom",
    "write_map",
]
