"""Autograd's switches: whether operations record the graph (no_grad, enable_grad,
set_grad_enabled, inference_mode) and whether anomaly detection checks it (detect_anomaly)."""
import contextlib
import threading

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "enabled", True)


class grad_mode:
    """Recording on or off inside the block, restored after it (a plain class: every Function call
    enters one, and a generator-based context manager costs several times more)."""
    __slots__ = ("enabled", "previous")

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.previous = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc):
        _state.enabled = self.previous
        return False


def is_anomaly_enabled():
    return getattr(_state, "anomaly", False)


def set_detect_anomaly(mode):
    """Check every Function's forward outputs and backward gradients for NaN/Inf (slow: one wait each)."""
    _state.anomaly = bool(mode)


class detect_anomaly(contextlib.ContextDecorator):
    """Anomaly detection on inside the block (and as a decorator)."""

    def __init__(self, check_nan=True):
        self._mode = bool(check_nan)

    def __enter__(self):
        self._previous = is_anomaly_enabled()
        set_detect_anomaly(self._mode)

    def __exit__(self, *exc):
        set_detect_anomaly(self._previous)
        return False


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator that turns recording off."""
    _enabled = False

    def __enter__(self):
        self._cm = grad_mode(self._enabled)
        self._cm.__enter__()

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


class enable_grad(no_grad):
    """Context manager and decorator that turns recording on."""
    _enabled = True


class inference_mode(no_grad):
    """inference_mode(mode=True): torch's faster no_grad; here the same as no_grad when mode is True."""

    def __init__(self, mode=True):
        self._enabled = not mode


class set_grad_enabled(no_grad):
    """set_grad_enabled(mode): as a context manager, recording per `mode` in the block; as a call, from now on."""

    def __init__(self, mode):
        self._enabled = bool(mode)
        self._previous = is_grad_enabled()
        _state.enabled = self._enabled

    def __exit__(self, *exc):
        _state.enabled = self._previous
        return False
