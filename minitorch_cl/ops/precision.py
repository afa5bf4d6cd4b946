"""float16 and float64 through the fused families: their kernels compute in float32, so half inputs
are widened at the op's boundary, float64 ones narrowed, and the results cast back (element-wise
kernels instead read and write half storage directly, and compute float64 in double). Under autocast, the "lower precision" ops take their floating
inputs as float16 and the "float32" ops give float32 results, as torch.autocast does."""
import functools

from .. import dtypes
from ..autocast_state import autocast_dtype, paused
from ..tensor import Tensor


def _cast(value, dtype):
    if isinstance(value, Tensor) and value.dtype.is_floating and value.dtype is not dtype:
        return value.to(dtype=dtype)
    if isinstance(value, (list, tuple)) and _has_tensor(value):
        items = [_cast(v, dtype) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)  # namedtuples too
    return value


def _has_tensor(values):
    return any(isinstance(v, Tensor) or (isinstance(v, (list, tuple)) and _has_tensor(v)) for v in values)


def _other_float(values):
    """float16 or float64 when an input has that dtype (float64 wins), else None."""
    found = None
    for v in values:
        dt = v.dtype if isinstance(v, Tensor) else _other_float(v) if isinstance(v, (list, tuple)) else None
        if dt is dtypes.float64 or (dt is dtypes.float16 and found is None):
            found = dt
    return found


LOWER, FLOAT32, SAME = "lower", "float32", "same"  # autocast's op lists, and the ops on neither


def float32_kernels(policy=SAME):
    """Decorate an op whose kernels are float32: half inputs are widened and its floating outputs
    narrowed back to half. Under autocast, policy LOWER casts its floating inputs to float16 first
    (matmul, conv, attention, RNNs), FLOAT32 keeps its float32 results (softmax, losses, norms), and
    SAME answers in its inputs' dtype (pooling)."""
    def decorate(fn):
        @functools.wraps(fn)
        def op(*args, **kwargs):
            autocasting = autocast_dtype() is not None
            if policy == LOWER and autocasting:
                args, kwargs = _cast(args, dtypes.float16), {k: _cast(v, dtypes.float16) for k, v in kwargs.items()}
            given = _other_float(list(args) + list(kwargs.values()))
            if given is None:
                if not autocasting:  # (paused() would only set what is already so)
                    return fn(*args, **kwargs)
                with paused():
                    return fn(*args, **kwargs)
            with paused():
                out = fn(*_cast(args, dtypes.float32), **{k: _cast(v, dtypes.float32) for k, v in kwargs.items()})
            return out if policy == FLOAT32 and autocasting else _cast(out, given)
        return op
    return decorate
