"""Warning classes of gpumask (errors live beside the code that raises them)."""

from __future__ import annotations

__all__ = ["GpumaskWarning", "HostFallbackWarning", "GammapyCompatibilityWarning"]


class GpumaskWarning(UserWarning):
    """Base class of gpumask warnings."""


class HostFallbackWarning(GpumaskWarning):
    """A step has no device implementation for this input and ran on the host,
    copying device data there (counted by :func:`gpumask.count_transfers`)."""


class GammapyCompatibilityWarning(GpumaskWarning):
    """What is being written will not read back the same in gammapy."""
