"""clip_grad_norm_ / clip_grad_value_ with torch's semantics, in a few launches for all parameters.

OpenCL 1.2 kernels cannot take an array of buffers, so clkernels/clip.cl's kernels take SLOTS = 8
gradient buffers each: the norm costs ceil(P / 8) partial-reduction launches (each work-group writes
one partial into a shared buffer) plus one launch that finishes the norm and the clip coefficient on
the device; scaling is another ceil(P / 8) launches that read the coefficient from device memory.
Nothing waits for the device unless error_if_nonfinite asks for the norm's value. A model with
P = 62 parameter tensors (ResNet-18) needs 8 + 1 + 8 launches instead of 62 + 62."""
import math

from ...launch import launch
from ...tensor import Tensor, empty, full, zeros
from ... import dtypes

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

SLOTS = 8        # gradient buffers per launch (clip.cl's SIZES / GRADS)
MAX_GROUPS = 64  # work-groups of one partial-norm launch


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _check(tensors):
    dev = tensors[0].device
    for t in tensors:
        if t.device != dev:
            raise RuntimeError(f"gradient clipping needs every gradient on one device, got {dev.spec} and "
                               f"{t.device.spec}")
        if t.dtype is not dtypes.float32:
            raise TypeError(f"gradient clipping supports float32 gradients, got {t.dtype!r} of shape {t.shape}")
    return dev


def _slots(tensors):
    """The tensors in chunks of SLOTS, each padded with size-0 entries (any valid buffer)."""
    for k in range(0, len(tensors), SLOTS):
        chunk = list(tensors[k:k + SLOTS])
        sizes = [t.numel() for t in chunk] + [0] * (SLOTS - len(chunk))
        yield sizes, chunk + [chunk[0]] * (SLOTS - len(chunk))


def _norm_define(p):
    return {math.inf: "NORM_INF", 1.0: "NORM_L1", 2.0: "NORM_L2"}.get(p, "NORM_P")


def _norm_and_coef(tensors, norm_type, max_norm):
    """(total norm, clip coefficient) as 0-d tensors on the gradients' device."""
    dev = _check(tensors)
    p = float(norm_type)
    if math.isnan(p) or p <= 0:
        raise ValueError(f"norm_type must be positive or inf, got {norm_type}")
    wg = dev.profile.reduce_wg
    defines = {"NORM": _norm_define(p), "WG": wg}
    views = [t if t.is_contiguous() else t.contiguous() for t in tensors]
    chunks = list(_slots(views))
    partial = empty(len(chunks) * MAX_GROUPS, device=dev)
    m = 0  # the partials of all chunks, packed one after another
    for sizes, bufs in chunks:
        g = max(1, min(MAX_GROUPS, -(-sum(sizes) // wg)))
        launch(dev, "clip.cl", "grad_norm_partial", (g * wg,), *sizes, p, *bufs, partial[m:], local=(wg,),
               defines=defines)
        m += g
    total, coef = empty((), device=dev), empty((), device=dev)
    launch(dev, "clip.cl", "grad_norm_finish", (wg,), m, p, float(max_norm), partial, total, coef,
           local=(wg,), defines=defines)
    return total, coef


def _grid(sizes):
    return (min(-(-max(sizes) // 256), 1024) * 256,)


def _apply(tensors, name, scalar):
    """Run grad_scale / grad_clamp over the tensors in place (non-contiguous ones through a copy)."""
    dev = _check(tensors)
    work = [t if t.is_contiguous() else t.contiguous() for t in tensors]
    for sizes, bufs in _slots(work):
        launch(dev, "clip.cl", name, _grid(sizes), *sizes, scalar, *bufs)
    for t, w in zip(tensors, work):
        if w is not t:
            t.copy_(w)


def _nonfinite_error(total, norm_type):
    value = total.item()
    if math.isnan(value) or math.isinf(value):
        raise RuntimeError(f"The total norm of order {float(norm_type)} for gradients from `parameters` is "
                           f"non-finite ({value}), so it cannot be clipped. To disable this error and scale the "
                           f"gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of all tensors together, as if concatenated into one vector (a 0-d tensor)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if not tensors:
        return zeros(())
    total, _ = _norm_and_coef(tensors, norm_type, 1.0)
    if error_if_nonfinite:
        _nonfinite_error(total, norm_type)
    return total


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients by min(max_norm / (total_norm + 1e-6), 1)."""
    grads = _grads(parameters)
    if grads:
        norm = total_norm if isinstance(total_norm, Tensor) else None
        value = float(norm.item()) if norm is not None else float(total_norm)
        coef = min(float(max_norm) / (value + 1e-6), 1.0) if not math.isnan(value) else value
        _apply(grads, "grad_scale", full((), coef, device=grads[0].device))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so their total norm is at most max_norm; returns the total norm
    before clipping (a 0-d tensor), as torch.nn.utils.clip_grad_norm_. foreach is accepted and ignored."""
    grads = _grads(parameters)
    if not grads:
        return zeros(())
    total, coef = _norm_and_coef(grads, norm_type, max_norm)
    if error_if_nonfinite:
        _nonfinite_error(total, norm_type)
    _apply(grads, "grad_scale", coef)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    grads = _grads(parameters)
    if grads:
        _apply(grads, "grad_clamp", float(clip_value))
