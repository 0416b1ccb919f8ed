"""gpumask: exclusion masks for gamma-ray background estimation, on the GPU.

Data lives on a backend (``numpy`` or ``cupy``) from creation to FITS writing; see
:mod:`gpumask.backend` for how it is chosen.  ``import gpumask`` never imports cupy.
"""

from .axes import MapAxis
from .backend import (
    Backend,
    BackendError,
    MixedBackendError,
    count_transfers,
    get_backend,
    to_device,
    to_host,
    use_backend,
)
from .catalog import SourceCatalog
from .catalog_mask import exclusion_mask
from .datasets import MapDataset, MapDatasetOnOff, read_dataset
from .estimators import ExcessMapEstimator, ExcessMaps, excess_map
from .errors import GammapyCompatibilityWarning, GpumaskWarning, HostFallbackWarning
from .geom import WcsGeom
from .info import info
from .io import FitsReadError, read_map, write_map
from .kernel_background import KernelBackgroundEstimator, KernelBackgroundResult
from .maps import Map, WcsNDMap
from .morphology import (
    binary_dilate,
    binary_erode,
    exclusion_from_significance,
    fill_holes,
    hysteresis_threshold,
    label,
    remove_small_regions,
)
from .regions import make_region, parse_regions
from .ring_background import AdaptiveRingBackgroundEstimator, RingBackgroundEstimator

try:
    from importlib.metadata import version as _version

    __version__ = _version("gpumask")
except Exception:  # running from a checkout without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "AdaptiveRingBackgroundEstimator",
    "Backend",
    "BackendError",
    "ExcessMapEstimator",
    "ExcessMaps",
    "FitsReadError",
    "GammapyCompatibilityWarning",
    "GpumaskWarning",
    "HostFallbackWarning",
    "KernelBackgroundEstimator",
    "KernelBackgroundResult",
    "Map",
    "MapAxis",
    "MapDataset",
    "MapDatasetOnOff",
    "MixedBackendError",
    "SourceCatalog",
    "WcsGeom",
    "WcsNDMap",
    "binary_dilate",
    "binary_erode",
    "count_transfers",
    "excess_map",
    "exclusion_mask",
    "exclusion_from_significance",
    "fill_holes",
    "get_backend",
    "hysteresis_threshold",
    "info",
    "label",
    "make_region",
    "parse_regions",
    "read_dataset",
    "read_map",
    "remove_small_regions",
    "RingBackgroundEstimator",
    "to_device",
    "to_host",
    "use_backend",
    "write_map",
    "__version__",
]
