"""An emulated CuPy for CPU CI: gpumask's CuPy branches run without a GPU.

``install()`` puts stand-ins for ``cupy``, ``cupy.cuda`` (``runtime``, ``driver``,
``compiler``, ``memory``), ``cupy.fft``, ``cupy.linalg``, ``cupy.random``,
``cupyx`` and ``cupyx.scipy.fft/ndimage/special`` into ``sys.modules``.
tests/conftest.py does so when ``GPUMASK_EMULATE_CUPY=1`` (``.ci/run`` sets it for
its second pass) and never when ``GPUMASK_REQUIRE_GPU`` is set: ``ci/test-gpu.sh``
always runs the real CuPy.  This package lives under ``tests/`` and is not part of
the wheel.

What it enforces, as the real CuPy and the driver would:

- **Only CuPy's names**, with CuPy's keywords: the namespace is built from
  ``cupy_names.json``, recorded from the real ``cupy-cuda13x`` wheel by
  ``record_names.py`` (ufuncs take only ``out``, ``dtype``, ``casting``;
  ``cupyx.scipy.fft`` has no ``workers``).
- **A distinct array type** (:class:`~emulated_cupy._array.ndarray`): implicit
  conversion to NumPy raises CuPy's ``TypeError``, NumPy arrays are refused as
  operands, reductions return 0-d arrays, and every device->host read is logged
  with its calling line (:data:`HOST_READS`, :func:`host_reads`).
- **Raw kernels** (``RawModule``/``RawKernel``): the same assembled source and
  options gpumask gives NVRTC are compiled as host C++ and run on every block
  and thread; each launch checks the argument count, each scalar's exact C
  type, each pointer's dtype, contiguity and writeability, and the launch
  sizes (``__launch_bounds__``, 1024 threads, grid.y <= 65535).
- **Device queries** (``cupy.cuda.Device().mem_info``, runtime properties,
  memory pools, streams) report a device set by :func:`configure`.

What it cannot show (only a real GPU run, ``ci/test-gpu.sh``, can):

- rounding: cuFFT vs pocketfft, CUDA's libdevice math (not correctly rounded)
  vs the host libm, FMA contraction where a kernel allows it;
- concurrency: threads run one after another, so races, missing atomics and
  barriers are invisible; shared memory is not modelled;
- asynchronous behaviour: errors surface at the launch, not at a later sync;
  streams are synchronous;
- resources: memory limits, out-of-memory, register pressure and occupancy
  (the NVRTC check, ``ci/check-nvrtc.sh``, reports registers and spills);
- speed.
"""

from __future__ import annotations

import contextlib
import sys

from ._array import HOST_READS, IMPLICIT_UPLOADS, Transfer, ndarray
from ._device import CONFIG, configure

__all__ = ["install", "host_reads", "configure", "CONFIG", "HOST_READS",
           "IMPLICIT_UPLOADS", "Transfer", "ReadLog", "ndarray"]


def install() -> None:
    """Put the emulator into ``sys.modules`` as ``cupy``/``cupyx`` (idempotent; for
    the whole test process, as a real CuPy would be)."""
    from ._namespace import build  # noqa: PLC0415

    sys.modules.update(build())


class ReadLog:
    """A live view of the device->host reads logged since it was made (or since
    :meth:`clear`): iterate it, take its ``len``, index it."""

    def __init__(self):
        self._start = len(HOST_READS)

    def clear(self):
        self._start = len(HOST_READS)

    def _items(self):
        return HOST_READS[self._start:]

    def __iter__(self):
        return iter(self._items())

    def __len__(self):
        return len(self._items())

    def __getitem__(self, i):
        return self._items()[i]

    def __repr__(self):
        return "ReadLog(" + ", ".join(f"{r.kind} {r.nbytes} B at {r.where}" for r in self) + ")"


@contextlib.contextmanager
def host_reads():
    """Collect the device->host reads made inside the block (a :class:`ReadLog`).

    >>> with host_reads() as reads:
    ...     float(cupy.ones(3).sum())
    >>> [r.kind for r in reads]
    ['float']
    """
    log = ReadLog()
    yield log
