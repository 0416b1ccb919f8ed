"""``cupy.cuda`` stand-ins: one configurable emulated device, memory pools, streams.

The numbers are whatever :func:`configure` was told (an H100-like device by
default); nothing here measures or limits real memory.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class DeviceConfig:
    """What the emulated device reports."""

    name: str = "NVIDIA H100 80GB HBM3 (emulated)"
    total_memory: int = 80 * 2**30
    free_memory: int = 79 * 2**30
    pool_free_bytes: int = 0
    pool_used_bytes: int = 0
    compute_capability: str = "90"
    device_count: int = 1
    multi_processor_count: int = 132


CONFIG = DeviceConfig()


def configure(**kwargs) -> DeviceConfig:
    """Change what the emulated device reports (keys of :class:`DeviceConfig`);
    returns the previous settings so tests can restore them."""
    previous = dataclasses.replace(CONFIG)
    for key, value in kwargs.items():
        if not hasattr(CONFIG, key):
            raise TypeError(f"unknown device setting {key!r}; known: {[f.name for f in dataclasses.fields(CONFIG)]}")
        setattr(CONFIG, key, value)
    return previous


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``."""


class CUDADriverError(RuntimeError):
    """``cupy.cuda.driver.CUDADriverError``."""


class OutOfMemoryError(MemoryError):
    """``cupy.cuda.memory.OutOfMemoryError``."""


def _check_id(device_id):
    if not 0 <= int(device_id) < CONFIG.device_count:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return int(device_id)


_current = [0]


class Device:
    """``cupy.cuda.Device``."""

    def __init__(self, device=None):
        self.id = _current[0] if device is None else _check_id(device)

    def __int__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __enter__(self):
        self._prev = _current[0]
        _current[0] = self.id
        return self

    def __exit__(self, *exc):
        _current[0] = self._prev

    def use(self):
        _current[0] = self.id

    def synchronize(self):
        pass

    @property
    def compute_capability(self):
        return CONFIG.compute_capability

    @property
    def mem_info(self):
        return CONFIG.free_memory, CONFIG.total_memory

    @property
    def attributes(self):
        return {"MultiProcessorCount": CONFIG.multi_processor_count, "MaxThreadsPerBlock": 1024,
                "MaxGridDimX": 2**31 - 1, "MaxGridDimY": 65535, "MaxGridDimZ": 65535}


class MemoryPointer:
    """``cupy.cuda.MemoryPointer`` (only ``ptr`` and ``device_id``)."""

    def __init__(self, ptr):
        self.ptr = ptr
        self.device_id = 0


class MemoryPool:
    """``cupy.cuda.MemoryPool`` reporting the configured byte counts."""

    def __init__(self, allocator=None):
        self._limit = 0

    def used_bytes(self):
        return CONFIG.pool_used_bytes

    def free_bytes(self):
        return CONFIG.pool_free_bytes

    def total_bytes(self):
        return CONFIG.pool_used_bytes + CONFIG.pool_free_bytes

    def free_all_blocks(self, stream=None):
        CONFIG.free_memory += CONFIG.pool_free_bytes
        CONFIG.pool_free_bytes = 0

    def n_free_blocks(self):
        return 0

    def set_limit(self, size=None, fraction=None):
        self._limit = int(size or 0)

    def get_limit(self):
        return self._limit


class PinnedMemoryPool(MemoryPool):
    """``cupy.cuda.PinnedMemoryPool``."""


_POOL = MemoryPool()
_PINNED_POOL = PinnedMemoryPool()


def get_default_memory_pool():
    return _POOL


def get_default_pinned_memory_pool():
    return _PINNED_POOL


class Stream:
    """``cupy.cuda.Stream``: work is synchronous here, so streams only nest."""

    null = None

    def __init__(self, null=False, non_blocking=False, ptr=None, priority=None):
        self.ptr = 0 if null else id(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def synchronize(self):
        pass

    def use(self):
        return self

    @property
    def done(self):
        return True


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return Stream.null


def is_available():
    return CONFIG.device_count > 0


# --------------------------------------------------------------------------- runtime


def getDeviceCount():
    return CONFIG.device_count


def getDevice():
    return _current[0]


def setDevice(device):
    _current[0] = _check_id(device)


def getDeviceProperties(device):
    _check_id(device)
    cc = CONFIG.compute_capability
    return {"name": CONFIG.name.encode(), "totalGlobalMem": CONFIG.total_memory,
            "major": int(cc[:-1]), "minor": int(cc[-1]),
            "multiProcessorCount": CONFIG.multi_processor_count, "maxThreadsPerBlock": 1024,
            "maxGridSize": (2**31 - 1, 65535, 65535), "maxThreadsDim": (1024, 1024, 64),
            "warpSize": 32, "sharedMemPerBlock": 49152}


def memGetInfo():
    return CONFIG.free_memory, CONFIG.total_memory


def deviceSynchronize():
    pass


def runtimeGetVersion():
    return 13000


def driverGetVersion():
    return 13000
