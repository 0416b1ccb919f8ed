"""Everything that makes or changes an exclusion mask.

Masks from sky regions (:mod:`~gpumask.masks.regions`: parse, compile to a shape
table, rasterise on the backend), from source catalogs
(:mod:`~gpumask.masks.catalog_mask`), from significance maps
(:mod:`~gpumask.masks.significance`), and binary morphology
(:mod:`~gpumask.masks.morphology`: dilation, erosion, labels, holes, hysteresis).
Masks follow gammapy's convention: True = usable for the background, False = excluded.

May import: the device layer, :mod:`gpumask.sky`, :mod:`gpumask.catalog` and
:mod:`gpumask.stats`.
"""

from .catalog_mask import exclusion_mask, touching
from .morphology import (
    binary_dilate,
    binary_erode,
    fill_holes,
    footprint,
    hysteresis_threshold,
    label,
    remove_small_regions,
)
from .regions import make_region, parse_regions, region_mask
from .significance import exclusion_from_significance

__all__ = [
    "binary_dilate",
    "binary_erode",
    "exclusion_from_significance",
    "exclusion_mask",
    "fill_holes",
    "footprint",
    "hysteresis_threshold",
    "label",
    "make_region",
    "parse_regions",
    "region_mask",
    "remove_small_regions",
    "touching",
]
