"""torch.einsum: the equation is parsed once, repeated subscripts of one operand become a strided
diagonal view, labels no later operand or the output needs are summed away, and operands are
contracted left to right, each pair as one batched GEMM through permute/reshape (matmul). Gradients
come from the composed ops (and the diagonal's own backward)."""
from .. import backend, layout
from ..autograd import Function
from ..tensor import Tensor, zeros
from .matmul import matmul
from .shape import _view

__all__ = ["einsum"]

_ELL = "\u2026"  # "..." after parsing; its dims get the labels chr(0x400 + k)


class Diagonal(Function):
    """x's view in which the dim groups `groups` (lists of dims with one label) run together."""

    @staticmethod
    def forward(ctx, x, groups):
        ctx.shape = x.shape
        ctx.groups = groups
        return _view(x, *_diag_geometry(x.shape, x.strides, groups))

    @staticmethod
    def backward(ctx, g):
        gx = zeros(*ctx.shape, device=g.device)
        backend.copy_(_view(gx, *_diag_geometry(gx.shape, gx.strides, ctx.groups)), g)
        return gx, None


def _diag_geometry(shape, strides, groups):
    return tuple(shape[grp[0]] for grp in groups), tuple(sum(strides[d] for d in grp) for grp in groups)


def _parse(equation, operands):
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, out = eq.split("->", 1)
        explicit = True
    else:
        lhs, out, explicit = eq, None, False
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(f"einsum(): {'more' if len(operands) > len(terms) else 'fewer'} operands were provided "
                           f"than specified in the equation ({len(operands)} operands, {len(terms)} terms)")
    labels, ell_ndim = [], 0
    for i, (term, x) in enumerate(zip(terms, operands)):
        term = term.replace("...", _ELL)
        if any(not (c.isalpha() or c == _ELL) for c in term) or term.count(_ELL) > 1:
            raise RuntimeError(f"einsum(): invalid subscripts {term!r} for operand {i}: letters and at most one "
                               f"ellipsis")
        named = len(term) - term.count(_ELL)
        if (_ELL not in term and named != x.ndim) or named > x.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({named}) does not match the "
                               f"number of dimensions ({x.ndim}) for operand {i}"
                               f"{'' if _ELL in term else ' and no ellipsis was given'}")
        n_ell = x.ndim - named
        ell_ndim = max(ell_ndim, n_ell) if _ELL in term else ell_ndim
        labels.append((term, n_ell))
    ell = [chr(0x400 + k) for k in range(ell_ndim)]
    subs = []
    for term, n_ell in labels:
        subs.append([c for part in term for c in (ell[ell_ndim - n_ell:] if part == _ELL else [part])])
    if explicit:
        out = out.replace("...", _ELL)
        out_labels = [c for part in out for c in (ell if part == _ELL else [part])]
        seen = set(c for s in subs for c in s)
        for c in out_labels:
            if c not in seen:
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for any "
                                   f"input operand")
            if out_labels.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
    else:
        counts = {}
        for s in subs:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out_labels = ell + sorted(c for c, n in counts.items() if n == 1 and c not in ell)
    return subs, out_labels


def _sizes(subs, operands):
    sizes = {}
    for i, (s, x) in enumerate(zip(subs, operands)):
        for c in set(s):
            own = {n for l, n in zip(s, x.shape) if l == c}
            if len(own) > 1:
                raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {i} of shape {x.shape} but "
                                   f"the sizes don't match ({sorted(own)})")
        for c, n in zip(s, x.shape):
            if c in sizes and n != sizes[c] and 1 not in (n, sizes[c]):
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {i} which does not "
                                   f"broadcast with previously seen size {sizes[c]}")
            sizes[c] = max(n, sizes.get(c, n)) if c in sizes and n != sizes[c] else n
    return sizes


def _diagonal(x, s):
    """Collapse repeated labels of one operand into a diagonal view."""
    if len(set(s)) == len(s):
        return x, s
    order = list(dict.fromkeys(s))
    return Diagonal.apply(x, [[d for d, l in enumerate(s) if l == c] for c in order]), order


def _sum_out(x, s, keep):
    dims = [d for d, c in enumerate(s) if c not in keep]
    if not dims:
        return x, s
    return x.sum(tuple(dims)), [c for c in s if c in keep]


def _contract(a, sa, b, sb, keep, sizes):
    """a (labels sa) times b (labels sb), summing the shared labels keep does not hold: one matmul."""
    batch = [c for c in sa if c in sb and c in keep]
    contr = [c for c in sa if c in sb and c not in keep]
    a_only = [c for c in sa if c not in sb]
    b_only = [c for c in sb if c not in sa]

    def arrange(x, s, groups):
        order = [c for g in groups for c in g]
        x = x.permute(*[s.index(c) for c in order])
        return x.expand(*[sizes[c] for c in order])  # size-1 (broadcast) dims grow to the shared size

    def n(labels):
        return layout.numel([sizes[c] for c in labels])
    A = arrange(a, sa, (batch, a_only, contr)).reshape(n(batch), n(a_only), n(contr))
    B = arrange(b, sb, (batch, contr, b_only)).reshape(n(batch), n(contr), n(b_only))
    out = matmul(A, B)  # (batch, M, K) @ (batch, K, N)
    labels = batch + a_only + b_only
    return out.reshape(*[sizes[c] for c in labels]), labels


def einsum(equation, *operands):
    """torch.einsum(equation, *operands) (operands may also be one list)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str) or not all(isinstance(x, Tensor) for x in operands):
        raise TypeError("einsum(equation, *operands) needs a string and tensors")
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    subs, out_labels = _parse(equation, operands)
    sizes = _sizes(subs, operands)
    terms = [_diagonal(x, s) for x, s in zip(operands, subs)]

    def needed(after):
        return set(out_labels).union(*[set(s) for _, s in terms[after:]])
    x, s = _sum_out(*terms[0], needed(1) | set(terms[1][1]) if len(terms) > 1 else needed(1))
    for i in range(1, len(terms)):
        y, t = terms[i]
        keep = needed(i + 1)
        x, s = _sum_out(x, s, keep | set(t))
        y, t = _sum_out(y, t, keep | set(s))
        x, s = _contract(x, s, y, t, keep, sizes)
    x, s = _sum_out(x, s, set(out_labels))
    x = x.permute(*[s.index(c) for c in out_labels]) if s else x
    return x.expand(*[sizes[c] for c in out_labels]) if out_labels else x
