"""Everything that makes or changes an exclusion mask.

Masks from sky regions (:func:`~gpumask.masks.region_mask`: parse, compile to a shape
table, rasterise on the backend), from source catalogs
(:func:`~gpumask.exclusion_mask`), from significance maps
(:func:`~gpumask.exclusion_from_significance`), and binary morphology
(:func:`~gpumask.binary_dilate`, :func:`~gpumask.binary_erode`, :func:`~gpumask.label`,
:func:`~gpumask.fill_holes`, :func:`~gpumask.hysteresis_threshold`).
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
