"""torch.nn.utils.fusion's fuse_conv_bn_weights: the weight and bias of the one convolution that
equals a convolution followed by an eval-mode BatchNorm (one launch, clkernels/batchnorm.cl bn_fold)."""
from ... import dtypes
from ...launch import launch
from ...tensor import empty

__all__ = ["fuse_conv_bn_weights"]


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(weight, bias) with weight[oc] = conv_w[oc] * s, bias = (conv_b - bn_rm) * s + bn_b and
    s = bn_w / sqrt(bn_rv + bn_eps) (conv_b, bn_w, bn_b may be None: 0, 1, 0). float32 tensors on
    one device; the results are new tensors outside any graph (torch's are Parameters)."""
    tensors = [t for t in (conv_w, conv_b, bn_rm, bn_rv, bn_w, bn_b) if t is not None]
    if any(t.dtype is not dtypes.float32 for t in tensors):
        raise TypeError("fuse_conv_bn_weights: float32 tensors only, got "
                        f"{', '.join(str(t.dtype) for t in tensors)}")
    OC = conv_w.shape[0]
    if any(tuple(t.shape) != (OC,) for t in tensors[1:]):
        raise ValueError(f"fuse_conv_bn_weights: the bias and BatchNorm tensors must be ({OC},), got "
                         f"{[tuple(t.shape) for t in tensors[1:]]}")
    dev = conv_w.device
    w = conv_w.detach().contiguous()
    wf, bf = empty(*w.shape, device=dev), empty(OC, device=dev)
    vec = lambda t: (t if t is not None else bn_rm).detach().contiguous()  # noqa: E731 (unread when absent)
    launch(dev, "batchnorm.cl", "bn_fold", (OC,), OC, w.numel() // max(OC, 1), float(bn_eps),
           int(conv_b is not None), int(bn_w is not None), int(bn_b is not None), w, vec(conv_b), vec(bn_rm),
           vec(bn_rv), vec(bn_w), vec(bn_b), wf, bf)
    return wf, bf
