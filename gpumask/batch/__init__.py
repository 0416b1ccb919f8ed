"""Many fields, one config: declarative mask configs, the field pipeline, runners.

``config`` validates a YAML config (:class:`~gpumask.batch.MaskConfig`) and a field
list as a whole before any work; ``pipeline`` runs one field (or a stack of
equal-shape fields) through regions, catalogs, significance and morphology
(:func:`~gpumask.batch.run_jobs`); ``runner`` shards, resumes and dispatches fields
locally or on dask (:func:`~gpumask.batch.run_batch`); ``examples`` holds the built-in
example data (the demo field, simulated batch inputs) and finds the real data of the
examples; ``guards`` holds the checks against hostile configs and field lists
(bounded YAML, outputs kept in their folder, file-name limits).

May import: every layer below it: the device layer, :mod:`gpumask.sky`,
:mod:`gpumask.catalog`, :mod:`gpumask.stats`, :mod:`gpumask.masks` and
``gpumask.background``.  Only ``gpumask.cli`` sits above.
"""

from .config import ConfigError, FieldJob, MaskConfig
from .examples import demo_catalog, demo_dataset, demo_geom, shared_data_dir, write_example_fields
from .pipeline import FieldOutcome, run_job, run_jobs
from .runner import BatchError, Progress, load_fields, plan, run_batch

__all__ = [
    "BatchError",
    "ConfigError",
    "FieldJob",
    "FieldOutcome",
    "MaskConfig",
    "Progress",
    "load_fields",
    "plan",
    "run_batch",
    "run_job",
    "run_jobs",
    "demo_catalog",
    "demo_dataset",
    "demo_geom",
    "shared_data_dir",
    "write_example_fields",
]
