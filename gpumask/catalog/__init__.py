"""Source catalogs: readers for the catalogs of the field and the region each source occupies.

:class:`~gpumask.SourceCatalog` reads Fermi-LAT, H.E.S.S., HAWC, LHAASO, gamma-cat and
plain tables into one form (names, positions, morphology);
:func:`~gpumask.catalog.source_shapes` sizes each source from its morphology.  Named
``catalog`` as ``gammapy.catalog``.

May import: the device layer only.  Catalogs know nothing of maps; turning sources
into a mask is :func:`gpumask.exclusion_mask`.
"""

from .shapes import DEFAULT_PSF, DEFAULT_SCALE, SourceShapes, source_shapes, to_regions
from .source_catalog import FORMATS, MORPHOLOGY_TYPES, CatalogReadError, SourceCatalog, load

__all__ = [
    "CatalogReadError",
    "DEFAULT_PSF",
    "DEFAULT_SCALE",
    "FORMATS",
    "MORPHOLOGY_TYPES",
    "SourceCatalog",
    "SourceShapes",
    "load",
    "source_shapes",
    "to_regions",
]
