"""Statistics on maps: FFT convolution, Cash and WStat counts statistics, excess maps.

:func:`convolve` correlates maps with disk, ring, Gaussian and box kernels through
batched real FFTs on the data's backend; :class:`~gpumask.ExcessMapEstimator` turns counts and
background into excess and significance (``sqrt_ts``) maps as gammapy's does;
:func:`~gpumask.smooth` is gammapy's ``Map.smooth`` on the same FFTs.

May import: the device layer and :mod:`gpumask.sky`.
"""

from .convolution import Convolver, box_kernel, convolve, disk_kernel, gaussian_kernel, ring_kernel
from .counts_statistic import CashCountsStatistic, WStatCountsStatistic, cash, wstat
from .excess import ExcessMapEstimator, ExcessMaps, excess_map
from .smooth import smooth

__all__ = [
    "CashCountsStatistic",
    "Convolver",
    "ExcessMapEstimator",
    "ExcessMaps",
    "WStatCountsStatistic",
    "box_kernel",
    "cash",
    "convolve",
    "disk_kernel",
    "excess_map",
    "gaussian_kernel",
    "ring_kernel",
    "smooth",
    "wstat",
]
