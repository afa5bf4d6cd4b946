"""Whether operations record the autograd graph: no_grad, enable_grad, set_grad_enabled."""
import contextlib
import threading

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def grad_mode(enabled):
    """Recording on or off inside the block, restored after it."""
    previous = is_grad_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = previous


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


class set_grad_enabled(no_grad):
    """set_grad_enabled(mode): as a context manager, recording per `mode` in the block; as a call, from now on."""

    def __init__(self, mode):
        self._enabled = bool(mode)
        self._previous = is_grad_enabled()
        _state.enabled = self._enabled

    def __exit__(self, *exc):
        _state.enabled = self._previous
        return False
