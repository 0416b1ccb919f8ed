"""Background estimators that use exclusion masks: the iterative kernel method and rings.

:class:`KernelBackgroundEstimator` (the old ``gammapy.detect`` method: a ring
background and a significance mask refined in turn), :class:`RingBackgroundEstimator`
and :class:`AdaptiveRingBackgroundEstimator` (gammapy's ring makers), and
:class:`ReflectedRegionsFinder` (off regions around the pointing, exact on the sphere)
with :class:`ReflectedRegionsBackgroundEstimator` (on/off counts of event lists).

May import: the device layer, :mod:`gpumask.sky`, :mod:`gpumask.stats` and
:mod:`gpumask.masks`.
"""

from .kernel import KernelBackgroundEstimator, KernelBackgroundResult
from .reflected import ReflectedRegionsFinder
from .reflected_estimator import ReflectedRegionsBackgroundEstimator
from .ring import AdaptiveRingBackgroundEstimator, RingBackgroundEstimator

__all__ = [
    "AdaptiveRingBackgroundEstimator",
    "KernelBackgroundEstimator",
    "KernelBackgroundResult",
    "ReflectedRegionsBackgroundEstimator",
    "ReflectedRegionsFinder",
    "RingBackgroundEstimator",
]
