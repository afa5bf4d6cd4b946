"""Element-wise ops and their gradients: every forward is one map kernel, every backward is
written with the engine's own ops."""
import math

from .. import backend, dtypes
from ..autograd import Function
from ..tensor import Tensor, full


def _float_dtype(dt):
    return dt if dt.is_floating else dtypes.float32


def _as_dtype(t, dt):
    return t if t.dtype is dt else t.to(dtype=dt)


# ---- tensor (op) tensor --------------------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return backend.map2("OP_ADD", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return backend.map2("OP_SUB", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, -g


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return backend.map2("OP_MUL", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return (g * b if ctx.needs_input_grad[0] else None), (g * a if ctx.needs_input_grad[1] else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ct = _float_dtype(dtypes.promote(a.dtype, b.dtype))
        return backend.map2("OP_DIV", a, b, compute_dtype=ct)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = g / b if ctx.needs_input_grad[0] else None
        gb = -g * a / (b * b) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = backend.map2("OP_POW", a, b, compute_dtype=_float_dtype(dtypes.promote(a.dtype, b.dtype)))
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        ga = g * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
        gb = g * out * log(a) if ctx.needs_input_grad[1] else None
        return ga, gb


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b, op="OP_MAX"):
        ctx.save_for_backward(a, b)
        ctx.op = op
        return backend.map2(op, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        a_wins = (a > b) if ctx.op == "OP_MAX" else (a < b)
        # ties share the gradient equally, as PyTorch does
        share = a_wins.to(dtype=g.dtype) + (a == b).to(dtype=g.dtype) * 0.5
        return g * share, g * (1 - share)


# ---- tensor (op) Python scalar -------------------------------------------------------------
class Scalar(Function):
    """out = F(a, s) for a Python scalar s; op picks F."""

    @staticmethod
    def forward(ctx, a, s, op):
        out = backend.map1(op, a, alpha=s)
        ctx.op, ctx.s = op, s
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved_tensors
        op, s = ctx.op, ctx.s
        if op == "OP_ADD_S":
            return g, None, None
        if op == "OP_MUL_S":
            return g * s, None, None
        if op == "OP_RSUB_S":
            return -g, None, None
        if op == "OP_RDIV_S":
            return -g * out / a, None, None
        if op == "OP_POW_S":
            return g * s * a ** (s - 1) if s != 1 else g, None, None
        if op == "OP_RPOW_S":
            return g * out * math.log(s), None, None
        raise NotImplementedError(op)


def _scalar_op(a, s, op):
    dt = dtypes.result_type(a.dtype, s)
    if op in ("OP_RDIV_S",) or (op in ("OP_POW_S", "OP_RPOW_S") and (isinstance(s, float) or s < 0)):
        dt = _float_dtype(dt)
    return Scalar.apply(_as_dtype(a, dt), s, op)


def _check_operand(x, other):
    if not isinstance(x, (Tensor, int, float, bool)):
        raise TypeError(f"unsupported operand type {type(x).__name__} for a tensor op with "
                        f"{type(other).__name__}")


def _binary(a, b, fn, scalar_right, scalar_left):
    _check_operand(a, b)
    _check_operand(b, a)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return fn(a, b)
    if isinstance(a, Tensor):
        return scalar_right(a, b)
    return scalar_left(b, a)


def add(a, b, alpha=1):
    if alpha != 1:
        b = b * alpha
    return _binary(a, b, Add.apply, lambda t, s: _scalar_op(t, s, "OP_ADD_S"),
                   lambda t, s: _scalar_op(t, s, "OP_ADD_S"))


def sub(a, b):
    return _binary(a, b, Sub.apply, lambda t, s: _scalar_op(t, -s, "OP_ADD_S"),
                   lambda t, s: _scalar_op(t, s, "OP_RSUB_S"))


def mul(a, b):
    return _binary(a, b, Mul.apply, lambda t, s: _scalar_op(t, s, "OP_MUL_S"),
                   lambda t, s: _scalar_op(t, s, "OP_MUL_S"))


def div(a, b):
    return _binary(a, b, Div.apply, _div_scalar, lambda t, s: _scalar_op(t, s, "OP_RDIV_S"))


def _div_scalar(t, s):
    if s == 0:  # no reciprocal: divide for real so the result is IEEE's inf or nan
        return Div.apply(t, full((), 0.0, device=t.device))
    return _scalar_op(_as_dtype(t, _float_dtype(t.dtype)), 1.0 / s, "OP_MUL_S")


def pow(a, b):
    return _binary(a, b, Pow.apply, lambda t, s: _scalar_op(t, s, "OP_POW_S"),
                   lambda t, s: _scalar_op(t, s, "OP_RPOW_S"))


def maximum(a, b):
    return Maximum.apply(a, b, "OP_MAX")


def minimum(a, b):
    return Maximum.apply(a, b, "OP_MIN")


_COMPARE = {"eq": "OP_EQ", "ne": "OP_NE", "lt": "OP_LT", "le": "OP_LE", "gt": "OP_GT", "ge": "OP_GE"}


def compare(name, a, b):
    """A bool mask tensor; no gradient."""
    _check_operand(b, a)
    if isinstance(b, Tensor):
        return backend.map2(_COMPARE[name], a, b, out_dtype=dtypes.bool_)
    a = _as_dtype(a, dtypes.result_type(a.dtype, b))
    return backend.map1(_COMPARE[name] + "_S", a, out_dtype=dtypes.bool_, alpha=b)


def _comparison(name):
    def fn(a, b):
        return compare(name, a, b)
    fn.__name__ = name
    fn.__doc__ = f"Element-wise `{name}` as a bool mask."
    return fn


eq, ne, lt, le, gt, ge = (_comparison(name) for name in _COMPARE)


def logical(op, a, b):
    if not isinstance(b, Tensor):
        b = full((), b, dtype=dtypes.bool_, device=a.device)
    return backend.map2(op, a, b, out_dtype=dtypes.bool_)


def logical_not(a):
    return backend.map1("OP_NOT", a, out_dtype=dtypes.bool_) if a.dtype is dtypes.bool_ \
        else backend.map1("OP_NOT", a, out_dtype=a.dtype)


# ---- unary ---------------------------------------------------------------------------------
class Unary(Function):
    """out = F(a); backward from the saved input or output, picked by op."""

    @staticmethod
    def forward(ctx, a, op):
        if op not in ("OP_NEG", "OP_ABS", "OP_RELU"):
            a = _as_dtype(a, _float_dtype(a.dtype))
        out = backend.map1(op, a)
        ctx.op = op
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved_tensors
        op = ctx.op
        if op == "OP_NEG":
            gi = -g
        elif op == "OP_EXP":
            gi = g * out
        elif op == "OP_LOG":
            gi = g / a
        elif op == "OP_SQRT":
            gi = g * 0.5 / out
        elif op == "OP_RSQRT":
            gi = g * -0.5 * out * out * out
        elif op == "OP_TANH":
            gi = backend.map2("OP_TANH_BWD", g, out)
        elif op == "OP_SIGMOID":
            gi = backend.map2("OP_SIGMOID_BWD", g, out)
        elif op == "OP_RELU":
            gi = backend.map2("OP_RELU_BWD", g, out)
        elif op == "OP_ABS":
            gi = g * backend.map1("OP_SIGN", a)
        elif op == "OP_GELU":
            gi = g * backend.map1("OP_GELU_GRAD", a)
        elif op == "OP_SIN":
            gi = g * backend.map1("OP_COS", a)
        elif op == "OP_COS":
            gi = -g * backend.map1("OP_SIN", a)
        else:
            raise NotImplementedError(op)
        return gi, None


def _unary(op):
    def fn(a):
        return Unary.apply(a, op)
    fn.__name__ = op[3:].lower()
    fn.__doc__ = f"Element-wise {fn.__name__}."
    return fn


neg = _unary("OP_NEG")
exp = _unary("OP_EXP")
log = _unary("OP_LOG")
sqrt = _unary("OP_SQRT")
rsqrt = _unary("OP_RSQRT")
tanh = _unary("OP_TANH")
sigmoid = _unary("OP_SIGMOID")
relu = _unary("OP_RELU")
abs = _unary("OP_ABS")
gelu = _unary("OP_GELU")
sin = _unary("OP_SIN")
cos = _unary("OP_COS")


def sign(a):
    return backend.map1("OP_SIGN", a)


class Clamp(Function):
    @staticmethod
    def forward(ctx, a, lo, hi):
        ctx.save_for_backward(a)
        ctx.lo, ctx.hi = lo, hi
        return backend.map1("OP_CLAMP", a, alpha=lo, beta=hi)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        inside = (a >= ctx.lo) & (a <= ctx.hi)
        return where(inside, g, 0.0), None, None


def clamp(a, min=None, max=None):
    big = float("inf") if a.dtype.is_floating else 2 ** 62
    return Clamp.apply(a, -big if min is None else min, big if max is None else max)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return backend.where3(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        zero = full((), 0.0, dtype=g.dtype, device=g.device)
        ga = backend.where3(cond, g, zero) if ctx.needs_input_grad[1] else None
        gb = backend.where3(cond, zero, g) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def where(cond, a, b):
    """cond ? a : b, broadcast; a and b may be Python scalars."""
    ref = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else cond
    dt = a.dtype if isinstance(a, Tensor) else b.dtype if isinstance(b, Tensor) else dtypes.float32
    if not isinstance(a, Tensor):
        a = full((), a, dtype=dtypes.result_type(dt, a), device=ref.device)
    if not isinstance(b, Tensor):
        b = full((), b, dtype=dtypes.result_type(dt, b), device=ref.device)
    return Where.apply(cond, a, b)


def masked_fill(a, mask, value):
    return where(mask, value, a)


def lerp(a, b, w):
    return a + (b - a) * w
