"""Losses and distance functionals written with the engine's own ops (their gradients come from those
ops), PyTorch's formulas: binary cross-entropy (from probabilities and, stably, from logits), L1,
smooth L1, Huber, KL divergence, margin losses, cosine similarity, pairwise distance, normalize,
one_hot, and embedding with max_norm."""
from .. import dtypes, layout
from ..autograd import no_grad
from ..launch import launch
from ..shared_constants import ERR_EMBEDDING
from ..tensor import Tensor, arange, ones, zeros, zeros_like
from .elementwise import clamp, maximum, where
from .reduce import amax, amin
from .shape import index_select

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss",
           "huber_loss", "kl_div", "margin_ranking_loss", "cosine_embedding_loss", "triplet_margin_loss",
           "hinge_embedding_loss", "soft_margin_loss", "cosine_similarity", "pairwise_distance", "normalize",
           "one_hot", "embedding"]

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss, reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def _same_shape(input, target, name):
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name} needs tensors for input and target")
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"{name}: using a target size ({tuple(target.shape)}) that is different to the input "
                         f"size ({tuple(input.shape)}); please ensure they have the same size")
    if input.device != target.device:
        raise RuntimeError(f"{name}: input on {input.device.spec} and target on {target.device.spec}")


def _softplus_neg(x):
    """log(1 + exp(-x)) without overflow: max(-x, 0) + log(1 + exp(-|x|)). At x == 0 maximum's tie rule
    gives the gradient -1/2, as softplus has."""
    return maximum(-x, zeros_like(x)) + ((-x.abs()).exp() + 1).log()


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-w (t log x + (1 - t) log(1 - x)), each log clamped at -100 as in PyTorch."""
    _same_shape(input, target, "binary_cross_entropy")
    loss = -(target * clamp(input.log(), min=-100) + (1 - target) * clamp((1 - input).log(), min=-100))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """(1 - t) x + (1 + (pos_weight - 1) t) log(1 + exp(-x)), times weight: the stable form PyTorch uses."""
    _same_shape(input, target, "binary_cross_entropy_with_logits")
    sp = _softplus_neg(input)
    if pos_weight is not None:
        loss = (1 - target) * input + (target * (pos_weight - 1) + 1) * sp
    else:
        loss = (1 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def _diff(input, target, name):
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name} needs tensors for input and target")
    layout.broadcast_shapes(input.shape, target.shape)  # raises naming both shapes if incompatible
    return input - target


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _reduce(_diff(input, target, "l1_loss").abs(), reduction, "l1_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (plain L1 for beta == 0)."""
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    d = _diff(input, target, "smooth_l1_loss")
    a = d.abs()
    loss = a if beta == 0 else where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got {delta}")
    d = _diff(input, target, "huber_loss")
    a = d.abs()
    loss = where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "huber_loss")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """target * (log target - input) (0 where target == 0), or exp(t) (t - input) with log_target;
    'batchmean' divides the sum by the batch size."""
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"kl_div: reduction must be 'none', 'batchmean', 'sum' or 'mean', got {reduction!r}")
    _diff(input, target, "kl_div")
    if log_target:
        loss = target.exp() * (target - input)
    else:  # xlogy(t, t): t == 0 reads log(1), so neither value nor gradient becomes NaN
        loss = target * where(target == 0, 1.0, target).log() - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction, "kl_div")


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -y (x1 - x2) + margin)."""
    loss = (-target * (input1 - input2) + margin).relu()
    return _reduce(loss, reduction, "margin_ranking_loss")


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """x where y == 1, max(0, margin - x) where y == -1."""
    loss = where(target == 1, input, 0.0) + where(target == -1, (margin - input).relu(), 0.0)
    return _reduce(loss, reduction, "hinge_embedding_loss")


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-y x))."""
    return _reduce(_softplus_neg(target * input), reduction, "soft_margin_loss")


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where y == 1, max(0, cos(x1, x2) - margin) where y == -1 (cos over the last dim)."""
    EPS = 1e-12
    prod = (input1 * input2).sum(-1)
    mag = ((input1 * input1).sum(-1) + EPS) * ((input2 * input2).sum(-1) + EPS)
    cos = prod / mag.sqrt()
    loss = where(target == 1, 1 - cos, 0.0) + where(target == -1, (cos - margin).relu(), 0.0)
    return _reduce(loss, reduction, "cosine_embedding_loss")


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with pairwise_distance; swap uses min(d(a, n), d(p, n))."""
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = -maximum(-d_neg, -pairwise_distance(positive, negative, p, eps))
    return _reduce((d_pos - d_neg + margin).relu(), reduction, "triplet_margin_loss")


def _norm(x, p, dim, keepdim):
    if p == 2:
        return (x * x).sum(dim, keepdim=keepdim).sqrt()
    if p == 1:
        return x.abs().sum(dim, keepdim=keepdim)
    if p == float("inf"):
        return amax(x.abs(), dim, keepdim=keepdim)
    if p == -float("inf"):
        return amin(x.abs(), dim, keepdim=keepdim)
    if p == 0:
        return (x != 0).float().sum(dim, keepdim=keepdim)
    return (x.abs() ** p).sum(dim, keepdim=keepdim) ** (1.0 / p)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 x2) / (max(|x1|, eps) max(|x2|, eps)) along dim, after broadcasting x1 and x2."""
    shape = layout.broadcast_shapes(x1.shape, x2.shape)
    x1, x2 = x1.expand(*shape), x2.expand(*shape)
    n1 = clamp(_norm(x1, 2, dim, True), min=eps)
    n2 = clamp(_norm(x2, 2, dim, True), min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    d = x1 - x2 + eps
    if d.ndim == 0:
        d = d.reshape(1)
    return _norm(d, p, -1, keepdim)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p, eps) along dim."""
    if out is not None:
        raise NotImplementedError("normalize: out= is not implemented")
    return input / clamp(_norm(input, p, dim, True), min=eps).expand(*input.shape)


def one_hot(tensor, num_classes=-1):
    """(..., num_classes) int64 with a 1 at each label; reads the labels' range on the host, as PyTorch does."""
    if not isinstance(tensor, Tensor) or tensor.dtype is not dtypes.int64:
        raise RuntimeError(f"one_hot is only applicable to index tensor of type LongTensor, got "
                           f"{getattr(tensor, 'dtype', type(tensor))!r}")
    if tensor.numel():
        lo, hi = amin(tensor).item(), amax(tensor).item()
        if lo < 0:
            raise RuntimeError("one_hot: class values must be non-negative.")
        if num_classes == -1:
            num_classes = hi + 1
        elif hi >= num_classes:
            raise RuntimeError(f"one_hot: class values must be smaller than num_classes ({hi} >= {num_classes}).")
    elif num_classes == -1:
        raise RuntimeError("one_hot: can not infer total number of classes from empty tensor.")
    classes = arange(num_classes, dtype=dtypes.int64, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).long()


def _renorm_rows_(weight, input, max_norm, norm_type):
    """PyTorch's embedding_renorm_: every row that input looks up and whose norm exceeds max_norm is
    scaled in place to max_norm / (norm + 1e-7)."""
    idx = input.reshape(-1).long().contiguous()
    rows = weight.shape[0]
    hits = zeros(rows, device=weight.device)
    if idx.numel():
        ones_ = ones(idx.numel(), device=weight.device)
        launch(weight.device, "index.cl", "index_add", (idx.numel(),), 1, idx.numel(), 1, rows, ones_, idx, hits)
    norm = _norm(weight, norm_type, 1, True)
    scale = where(hits.unsqueeze(1) > 0, where(norm > max_norm, max_norm / (norm + 1e-7), 1.0), 1.0)
    weight.mul_(scale)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """torch.nn.functional.embedding: rows of weight at input; max_norm renormalises them in place first."""
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse are not implemented")
    if input.dtype.is_floating or input.dtype is dtypes.bool_:
        raise TypeError(f"embedding expects integer indices, got {input.dtype!r} of shape {input.shape}")
    if input.device != weight.device:
        raise RuntimeError(f"embedding indices on {input.device.spec} but weight on {weight.device.spec}")
    if max_norm is not None:
        with no_grad():
            _renorm_rows_(weight, input, max_norm, norm_type)
    out = index_select(weight, 0, input.reshape(-1), _op=ERR_EMBEDDING).reshape(*input.shape, weight.shape[1])
    if padding_idx is not None:  # same values, but no gradient flows to the padding row
        if padding_idx < 0:
            padding_idx += weight.shape[0]
        out = where((input != padding_idx).unsqueeze(-1), out, out.detach())
    return out
