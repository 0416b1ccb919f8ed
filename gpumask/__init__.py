"""gpumask: exclusion masks for gamma-ray background estimation, on the GPU.

Data lives on a backend (``numpy`` or ``cupy``) from creation to FITS writing; see
:mod:`gpumask.backend` for how it is chosen.  ``import gpumask`` never imports cupy.

The package is layered; each layer imports only those before it (at module level):

- the device layer: ``backend`` (dispatch, the one device->host copy), ``_kernels``
  (CUDA sources), ``errors``, ``info``;
- :mod:`gpumask.sky`: geometries, axes, maps, FITS, datasets;
- :mod:`gpumask.catalog`: source catalogs;
- :mod:`gpumask.stats`: convolution, Cash/WStat, excess maps;
- :mod:`gpumask.masks`: region, catalog and significance masks, morphology;
- ``gpumask.background``: kernel and ring background estimators;
- :mod:`gpumask.batch`: configs, the field pipeline, batch runners;
- ``gpumask.cli``: the ``gpumask`` command.

This module re-exports the names users reach for; ``tests/test_layers.py`` keeps the
layering true.
"""

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
from .errors import GammapyCompatibilityWarning, GpumaskWarning, HostFallbackWarning, NonFiniteInputWarning
from .info import info
from ._progress import set_progress
from .sky import (
    FitsReadError,
    Map,
    MapAxis,
    MapDataset,
    MapDatasetOnOff,
    MaskProvenance,
    WcsGeom,
    WcsNDMap,
    read_dataset,
    read_map,
    reproject_to_geom,
    write_map,
)
from .catalog import CatalogReadError, SourceCatalog
from .stats import ExcessMapEstimator, ExcessMaps, excess_map, smooth
from .masks import (
    binary_dilate,
    binary_erode,
    exclusion_from_significance,
    exclusion_mask,
    fill_holes,
    hysteresis_threshold,
    label,
    make_region,
    parse_regions,
    remove_small_regions,
)
from .background import (
    AdaptiveRingBackgroundEstimator,
    KernelBackgroundEstimator,
    KernelBackgroundResult,
    ReflectedRegionsBackgroundEstimator,
    ReflectedRegionsFinder,
    RingBackgroundEstimator,
)
from .batch.examples import demo_catalog, demo_dataset, shared_data_dir

try:
    from importlib.metadata import version as _version

    __version__ = _version("gpumask")
except Exception:  # running from a checkout without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "AdaptiveRingBackgroundEstimator",
    "Backend",
    "BackendError",
    "CatalogReadError",
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
    "MaskProvenance",
    "MixedBackendError",
    "NonFiniteInputWarning",
    "ReflectedRegionsBackgroundEstimator",
    "ReflectedRegionsFinder",
    "SourceCatalog",
    "WcsGeom",
    "WcsNDMap",
    "binary_dilate",
    "binary_erode",
    "count_transfers",
    "demo_catalog",
    "demo_dataset",
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
    "reproject_to_geom",
    "RingBackgroundEstimator",
    "set_progress",
    "shared_data_dir",
    "smooth",
    "to_device",
    "to_host",
    "use_backend",
    "write_map",
    "__version__",
]
