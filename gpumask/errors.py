"""Warning classes of gpumask (errors live beside the code that raises them)."""

from __future__ import annotations

__all__ = ["GpumaskWarning", "HostFallbackWarning", "GammapyCompatibilityWarning", "NonFiniteInputWarning"]


class GpumaskWarning(UserWarning):
    """Base class of gpumask warnings."""


class HostFallbackWarning(GpumaskWarning):
    """A step has no device implementation for this input and ran on the host,
    copying device data there (counted by :func:`gpumask.count_transfers`)."""


class GammapyCompatibilityWarning(GpumaskWarning):
    """What is being written will not read back the same in gammapy."""


class NonFiniteInputWarning(GpumaskWarning):
    """An input map holds NaN or infinite pixels.

    The estimators leave such pixels out of their sums (convolutions), so the
    damage stays local: only the outputs whose correlation or background kernel
    covers a bad pixel change, and they equal the result computed without it.
    The message names the input and its number of non-finite pixels; the result
    records them too (``n_nonfinite``).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", gpumask.NonFiniteInputWarning)  # stop on bad pixels
    ...     maps = gpumask.ExcessMapEstimator("0.2 deg").run(dataset)
    >>> maps.meta["n_nonfinite"]  # e.g. {'counts': 0, 'background': 0}
    """
