"""torch.cuda's names over OpenCL (also reachable as minitorch_cl.cl): whether a GPU is there, and
the device memory pool's statistics and controls. "cuda" means an OpenCL GPU here."""
from . import amp  # noqa: F401  (torch.cuda.amp: autocast and GradScaler, as old PyTorch code imports them)
from .device import OutOfMemoryError, device as _device, devices  # noqa: F401  (OutOfMemoryError: torch's name)


def _gpus():
    return [d for d in devices() if d.type_name == "GPU"]


def is_available():
    """True when an OpenCL GPU is present."""
    return bool(_gpus())


def device_count():
    """The number of OpenCL GPUs."""
    return len(_gpus())


def synchronize(device=None):
    """Wait for every kernel queued on the device; raises what its kernels reported."""
    _device(device).synchronize()


def memory_allocated(device=None):
    """Bytes held by live tensors on the device (pool blocks in use)."""
    return _device(device)._pool_stats()[0]


def max_memory_allocated(device=None):
    """The peak of memory_allocated since the start or the last reset_peak_memory_stats()."""
    d = _device(device)
    return max(d.peak_bytes, d._pool_stats()[0])


def memory_reserved(device=None):
    """Bytes the pool holds from the runtime: in use plus cached for reuse."""
    return _device(device)._pool_stats()[1]


def reset_peak_memory_stats(device=None):
    d = _device(device)
    d.peak_bytes = d._pool_stats()[0]


def empty_cache(device=None):
    """Return the pool's cached, unused blocks to the runtime."""
    d = _device(device)
    if d._context is not None:
        d._pool.free_held()


def set_per_process_memory_fraction(fraction, device=None):
    """Cap this process's device memory at fraction of the device's memory (OutOfMemoryError past it)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the memory fraction must be in (0, 1], got {fraction}")
    _device(device).memory_fraction = float(fraction)
