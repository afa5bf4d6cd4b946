"""Whether mixed precision is on (torch.autocast), read by the ops; the context manager lives here so
that ops/ can read the state without importing anything above them."""
import contextlib
import threading

_state = threading.local()

DEVICE_TYPES = ("cl", "cuda", "cpu")  # a Device's .type; "cuda" and "cpu" are the drop-in aliases


def autocast_dtype():
    """The dtype matmul, convolution and attention run in under autocast, or None when it is off."""
    return getattr(_state, "dtype", None)


@contextlib.contextmanager
def paused():
    """Autocast off inside an op that already chose its dtypes (ops it calls must not cast again)."""
    previous = autocast_dtype()
    _state.dtype = None
    try:
        yield
    finally:
        _state.dtype = previous


class autocast(contextlib.ContextDecorator):
    """torch.autocast: inside the block matmul/linear/conv/attention/RNNs take float16 inputs and give
    float16 outputs, while softmax, log-softmax, the losses and the norms run in float32."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        if device_type not in DEVICE_TYPES:
            raise ValueError(f"autocast: device_type must be one of {DEVICE_TYPES}, got {device_type!r}")
        from_name = getattr(dtype, "name", dtype)
        if from_name not in (None, "float16"):
            raise ValueError(f"autocast supports dtype=float16, got {dtype!r}")
        self.enabled = bool(enabled)
        self._dtype = dtype

    def __enter__(self):
        self._previous = autocast_dtype()
        if self.enabled:
            _state.dtype = self._dtype or "float16"
        else:
            _state.dtype = None
        return self

    def __exit__(self, *exc):
        _state.dtype = self._previous
        return False
