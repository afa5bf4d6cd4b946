"""Element-wise ops and their gradients: every forward is one map kernel, every backward is
written with the engine's own ops."""
import dataclasses
import math

from .. import backend, dtypes
from ..autograd import Function
from ..tensor import Tensor, full


def _float_dtype(dt):
    return dt if dt.is_floating else dtypes.float32


def _as_dtype(t, dt):
    return t if t.dtype is dt else t.to(dtype=dt)


# ---- the table: one row per element-wise op, its kernel macro and its gradient ---------------
@dataclasses.dataclass(frozen=True)
class Op:
    """An element-wise op: `macro` is its elementwise.cl OP_* name; `grad(ctx, g)` returns the
    gradient of each tensor input from ctx.inputs and ctx.out; `floating`: integer inputs are
    computed in float32 (exp of an int tensor is a float tensor), else the promoted dtype is kept."""
    name: str
    macro: str
    grad: object
    floating: bool = True
    saves: bool = True  # whether backward reads the inputs and the output (kept alive until then)


def _needs(ctx, i, make):
    return make() if ctx.needs_input_grad[i] else None


UNARY = (
    Op("neg", "OP_NEG", lambda c, g: -g, floating=False, saves=False),
    Op("abs", "OP_ABS", lambda c, g: g * backend.map1("OP_SIGN", c.inputs[0]), floating=False),
    Op("relu", "OP_RELU", lambda c, g: backend.map2("OP_RELU_BWD", g, c.out), floating=False),
    Op("exp", "OP_EXP", lambda c, g: g * c.out),
    Op("log", "OP_LOG", lambda c, g: g / c.inputs[0]),
    Op("sqrt", "OP_SQRT", lambda c, g: g * 0.5 / c.out),
    Op("rsqrt", "OP_RSQRT", lambda c, g: g * -0.5 * c.out * c.out * c.out),
    Op("tanh", "OP_TANH", lambda c, g: backend.map2("OP_TANH_BWD", g, c.out)),
    Op("sigmoid", "OP_SIGMOID", lambda c, g: backend.map2("OP_SIGMOID_BWD", g, c.out)),
    Op("gelu", "OP_GELU", lambda c, g: g * backend.map1("OP_GELU_GRAD", c.inputs[0])),
    Op("sin", "OP_SIN", lambda c, g: g * backend.map1("OP_COS", c.inputs[0])),
    Op("cos", "OP_COS", lambda c, g: -g * backend.map1("OP_SIN", c.inputs[0])),
)


def _mul_grad(c, g):
    a, b = c.inputs
    return _needs(c, 0, lambda: g * b), _needs(c, 1, lambda: g * a)


def _div_grad(c, g):
    a, b = c.inputs
    return _needs(c, 0, lambda: g / b), _needs(c, 1, lambda: -g * a / (b * b))


def _pow_grad(c, g):
    a, b = c.inputs
    return _needs(c, 0, lambda: g * b * a ** (b - 1)), _needs(c, 1, lambda: g * c.out * log(a))


def _extreme_grad(pick_a):
    """maximum/minimum: the gradient goes to the operand picked; ties share it equally, as in PyTorch."""
    def grad(c, g):
        a, b = c.inputs
        share = pick_a(a, b).to(dtype=g.dtype) + (a == b).to(dtype=g.dtype) * 0.5
        return g * share, g * (1 - share)
    return grad


BINARY = (
    Op("add", "OP_ADD", lambda c, g: (g, g), floating=False, saves=False),
    Op("sub", "OP_SUB", lambda c, g: (g, -g), floating=False, saves=False),
    Op("mul", "OP_MUL", _mul_grad, floating=False),
    Op("div", "OP_DIV", _div_grad),
    Op("pow", "OP_POW", _pow_grad),
    Op("maximum", "OP_MAX", _extreme_grad(lambda a, b: a > b), floating=False),
    Op("minimum", "OP_MIN", _extreme_grad(lambda a, b: a < b), floating=False),
)

# tensor (op) Python number s: the kernel reads s as `alpha`
WITH_NUMBER = (
    Op("add_number", "OP_ADD_S", lambda c, g: g, floating=False, saves=False),
    Op("mul_number", "OP_MUL_S", lambda c, g: g * c.number, floating=False, saves=False),
    Op("number_sub", "OP_RSUB_S", lambda c, g: -g, floating=False, saves=False),               # s - a
    Op("number_div", "OP_RDIV_S", lambda c, g: -g * c.out / c.inputs[0]),         # s / a
    Op("pow_number", "OP_POW_S", lambda c, g: g * c.number * c.inputs[0] ** (c.number - 1) if c.number != 1 else g,
       floating=False),
    Op("number_pow", "OP_RPOW_S", lambda c, g: g * c.out * math.log(c.number), floating=False),  # s ** a
)


def _function(op, arity):
    """The autograd Function of one table row, named after it (ExpBackward-style names in graphs)."""
    def forward(ctx, *args):
        tensors = args[:arity]
        if arity == 1:
            out = backend.map1(op.macro, tensors[0], alpha=args[1] if len(args) > 1 else 0)
        else:
            a, b = tensors
            ct = dtypes.promote(a.dtype, b.dtype)
            out = backend.map2(op.macro, a, b, compute_dtype=_float_dtype(ct) if op.floating else ct)
        ctx.number = args[1] if arity == 1 and len(args) > 1 else None
        if op.saves:
            ctx.inputs, ctx.out = tensors, out
        return out

    def backward(ctx, g):
        grads = op.grad(ctx, g)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return grads + (None,) * (1 if arity == 1 else 0)

    name = "".join(part.capitalize() for part in op.name.split("_"))
    return type(name, (Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


FUNCTIONS = {op.name: _function(op, 1) for op in UNARY + WITH_NUMBER}
FUNCTIONS.update({op.name: _function(op, 2) for op in BINARY})


def _number_op(a, s, name):
    """a (op) s for a Python number s, in PyTorch's result dtype."""
    dt = dtypes.result_type(a.dtype, s)
    if name == "number_div" or (name in ("pow_number", "number_pow") and (isinstance(s, float) or s < 0)):
        dt = _float_dtype(dt)
    return FUNCTIONS[name].apply(_as_dtype(a, dt), s)


def _check_operand(x, other):
    if not isinstance(x, (Tensor, int, float, bool)):
        raise TypeError(f"unsupported operand type {type(x).__name__} for a tensor op with "
                        f"{type(other).__name__}")


def _binary(a, b, name, number_right, number_left):
    """a (op) b where either may be a Python number: the tensor-tensor row, or the row that takes
    the number as the kernel's scalar (number_right for tensor op s, number_left for s op tensor)."""
    _check_operand(a, b)
    _check_operand(b, a)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return FUNCTIONS[name].apply(a, b)
    if isinstance(a, Tensor):
        return number_right(a, b)
    return number_left(b, a)


def add(a, b, alpha=1):
    if alpha != 1:
        b = b * alpha
    return _binary(a, b, "add", lambda t, s: _number_op(t, s, "add_number"),
                   lambda t, s: _number_op(t, s, "add_number"))


def sub(a, b):
    return _binary(a, b, "sub", lambda t, s: _number_op(t, -s, "add_number"),
                   lambda t, s: _number_op(t, s, "number_sub"))


def mul(a, b):
    return _binary(a, b, "mul", lambda t, s: _number_op(t, s, "mul_number"),
                   lambda t, s: _number_op(t, s, "mul_number"))


def div(a, b):
    return _binary(a, b, "div", _div_number, lambda t, s: _number_op(t, s, "number_div"))


def _div_number(t, s):
    if s == 0:  # no reciprocal: divide for real so the result is IEEE's inf or nan
        return FUNCTIONS["div"].apply(t, full((), 0.0, device=t.device))
    return _number_op(_as_dtype(t, _float_dtype(t.dtype)), 1.0 / s, "mul_number")


def pow(a, b):
    return _binary(a, b, "pow", lambda t, s: _number_op(t, s, "pow_number"),
                   lambda t, s: _number_op(t, s, "number_pow"))


def maximum(a, b):
    return FUNCTIONS["maximum"].apply(a, b)


def minimum(a, b):
    return FUNCTIONS["minimum"].apply(a, b)


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


def _unary(op):
    fn_class = FUNCTIONS[op.name]

    def fn(a):
        return fn_class.apply(_as_dtype(a, _float_dtype(a.dtype)) if op.floating else a)
    fn.__name__ = op.name
    fn.__doc__ = f"Element-wise {op.name}."
    return fn


neg, abs, relu, exp, log, sqrt, rsqrt, tanh, sigmoid, gelu, sin, cos = (_unary(op) for op in UNARY)


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


# The exports of minitorch_cl (mt.exp, mt.maximum, ...): every table row that is a public op, and the rest.
__all__ = [op.name for op in UNARY + BINARY] + ["clamp", "eq", "ge", "gt", "le", "lerp", "logical_not", "lt",
                                                "masked_fill", "ne", "sign", "where"]
