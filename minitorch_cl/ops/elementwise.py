"""Element-wise ops and their gradients: every forward is one map kernel, every backward is
written with the engine's own ops."""
import dataclasses
import math

import numpy as np

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
    saves: object = True  # what backward reads (kept alive until then): True (inputs and output),
    #                       "out" or "inputs" (only those, so the rest can be freed), False (nothing)
    int_macro: str = None  # the macro for integer (and bool) operands, where it differs


def _needs(ctx, i, make):
    return make() if ctx.needs_input_grad[i] else None


UNARY = (
    Op("neg", "OP_NEG", lambda c, g: -g, floating=False, saves=False),
    Op("abs", "OP_ABS", lambda c, g: g * backend.map1("OP_SIGN", c.inputs[0]), floating=False, saves="inputs"),
    Op("relu", "OP_RELU", lambda c, g: backend.map2("OP_RELU_BWD", g, c.out), floating=False, saves="out"),
    Op("exp", "OP_EXP", lambda c, g: g * c.out, saves="out"),
    Op("log", "OP_LOG", lambda c, g: g / c.inputs[0], saves="inputs"),
    Op("sqrt", "OP_SQRT", lambda c, g: g * 0.5 / c.out, saves="out"),
    Op("rsqrt", "OP_RSQRT", lambda c, g: g * -0.5 * c.out * c.out * c.out, saves="out"),
    Op("tanh", "OP_TANH", lambda c, g: backend.map2("OP_TANH_BWD", g, c.out), saves="out"),
    Op("sigmoid", "OP_SIGMOID", lambda c, g: backend.map2("OP_SIGMOID_BWD", g, c.out), saves="out"),
    Op("gelu", "OP_GELU", lambda c, g: g * backend.map1("OP_GELU_GRAD", c.inputs[0]), saves="inputs"),
    Op("sin", "OP_SIN", lambda c, g: g * backend.map1("OP_COS", c.inputs[0]), saves="inputs"),
    Op("cos", "OP_COS", lambda c, g: -g * backend.map1("OP_SIN", c.inputs[0]), saves="inputs"),
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
    Op("mul", "OP_MUL", _mul_grad, floating=False, saves="inputs"),
    Op("div", "OP_DIV", _div_grad, saves="inputs"),
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
        numbers = args[arity:] + (0, 0)
        if arity == 1:
            out = backend.map1(op.macro, tensors[0], alpha=numbers[0], beta=numbers[1])
        else:
            a, b = tensors
            ct = dtypes.result_type_of((a.dtype, a.ndim), (b.dtype, b.ndim))
            ct = _float_dtype(ct) if op.floating else ct
            macro = op.int_macro if op.int_macro and not ct.is_floating else op.macro
            out = backend.map2(macro, a, b, compute_dtype=ct, out_dtype=ct)
        ctx.number, ctx.number2 = numbers[0] if len(args) > arity else None, numbers[1]
        if op.saves:
            ctx.save_for_backward(*(tensors if op.saves != "out" else ()), *((out,) if op.saves != "inputs" else ()))
        return out

    def backward(ctx, g):
        if op.saves:
            saved = list(ctx.saved_tensors)
            ctx.out = saved.pop() if op.saves != "inputs" else None
            ctx.inputs = saved if op.saves != "out" else None
        grads = op.grad(ctx, g)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return grads + (None,) * (len(ctx.needs_input_grad) - len(grads))

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


def _bools(a, b):
    """Both operands bool (tensors or Python bools, at least one a tensor): torch keeps bool there."""
    def is_bool(x):
        return isinstance(x, bool) or (isinstance(x, Tensor) and x.dtype is dtypes.bool_)
    return is_bool(a) and is_bool(b) and (isinstance(a, Tensor) or isinstance(b, Tensor))


def _bool_op(op, a, b):
    if not isinstance(a, Tensor):
        a, b = b, a
    return logical(op, a, b)


def add(a, b, alpha=1):
    if _bools(a, b) and alpha == 1:
        return _bool_op("OP_OR", a, b)  # True + True is True, as in torch
    if alpha != 1:
        b = b * alpha
    return _binary(a, b, "add", lambda t, s: _number_op(t, s, "add_number"),
                   lambda t, s: _number_op(t, s, "add_number"))


def sub(a, b):
    if _bools(a, b):
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    return _binary(a, b, "sub", lambda t, s: _number_op(t, -s, "add_number"),
                   lambda t, s: _number_op(t, s, "number_sub"))


def mul(a, b):
    if _bools(a, b):
        return _bool_op("OP_AND", a, b)
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
    return backend.map1("OP_NOT", a, out_dtype=dtypes.bool_)


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
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        return _clamp_tensor(a, min, max)
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
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
    """cond ? a : b, broadcast; a and b may be Python scalars. The result dtype is torch.result_type's
    (a 0-d tensor or a number only lifts the category)."""
    ref = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else cond
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        dt = dtypes.result_type(dtypes.float32 if isinstance(a, float) or isinstance(b, float) else
                                dtypes.scalar_dtype(a), b)
    else:
        dt = dtypes.result_type_of(*((x.dtype, x.ndim) if isinstance(x, Tensor) else x for x in (a, b)))
    a = _as_dtype(a, dt) if isinstance(a, Tensor) else full((), a, dtype=dt, device=ref.device)
    b = _as_dtype(b, dt) if isinstance(b, Tensor) else full((), b, dtype=dt, device=ref.device)
    return Where.apply(cond, a, b)


def masked_fill(a, mask, value):
    return where(mask, value, a)


def lerp(a, b, w):
    """a + w (b - a), by torch's formula (from b's side for w >= 0.5, so w == 1 gives b exactly)."""
    if not isinstance(w, Tensor):
        return a + (b - a) * w if -0.5 < w < 0.5 else b - (b - a) * (1 - w)
    return where(compare("lt", abs(w), 0.5), a + (b - a) * w, b - (b - a) * (1 - w))



# ---- math, dtypes and bitwise ops (issue 10) ---------------------------------------------------
_LN2, _LN10 = math.log(2.0), math.log(10.0)


def _zeros(g):
    return full(g.shape, 0.0, dtype=g.dtype, device=g.device)


def _x(c):
    return c.inputs[0]


MATH_UNARY = (
    Op("log2", "OP_LOG2", lambda c, g: g / (_x(c) * _LN2)),
    Op("log10", "OP_LOG10", lambda c, g: g / (_x(c) * _LN10)),
    Op("log1p", "OP_LOG1P", lambda c, g: g / (_x(c) + 1)),
    Op("expm1", "OP_EXPM1", lambda c, g: g * (c.out + 1)),
    Op("exp2", "OP_EXP2", lambda c, g: g * c.out * _LN2),
    Op("erf", "OP_ERF", lambda c, g: g * (2 / math.sqrt(math.pi)) * exp(-_x(c) * _x(c))),
    Op("erfinv", "OP_ERFINV", lambda c, g: g * (math.sqrt(math.pi) / 2) * exp(c.out * c.out)),
    Op("tan", "OP_TAN", lambda c, g: g * (c.out * c.out + 1)),
    Op("asin", "OP_ASIN", lambda c, g: g * rsqrt(1 - _x(c) * _x(c))),
    Op("acos", "OP_ACOS", lambda c, g: -g * rsqrt(1 - _x(c) * _x(c))),
    Op("atan", "OP_ATAN", lambda c, g: g / (_x(c) * _x(c) + 1)),
    Op("sinh", "OP_SINH", lambda c, g: g * cosh(_x(c))),
    Op("cosh", "OP_COSH", lambda c, g: g * sinh(_x(c))),
    Op("asinh", "OP_ASINH", lambda c, g: g * rsqrt(_x(c) * _x(c) + 1)),
    Op("acosh", "OP_ACOSH", lambda c, g: g * rsqrt(_x(c) * _x(c) - 1)),
    Op("atanh", "OP_ATANH", lambda c, g: g / (1 - _x(c) * _x(c))),
    Op("reciprocal", "OP_RECIPROCAL", lambda c, g: -g * c.out * c.out),
    Op("square", "OP_SQUARE", lambda c, g: g * 2 * _x(c), floating=False),
    Op("frac", "OP_FRAC", lambda c, g: g, saves=False),
    # piecewise constant: zero gradient, as in PyTorch; integer inputs are returned as they are
    Op("floor", "OP_FLOOR", lambda c, g: _zeros(g), saves=False),
    Op("ceil", "OP_CEIL", lambda c, g: _zeros(g), saves=False),
    Op("trunc", "OP_TRUNC", lambda c, g: _zeros(g), saves=False),
    Op("round", "OP_ROUND", lambda c, g: _zeros(g), saves=False),
    Op("round_neg", "OP_ROUND_NEG", lambda c, g: _zeros(g), saves=False),
)


def _atan2_grad(c, g):
    a, b = c.inputs
    r2 = a * a + b * b
    return _needs(c, 0, lambda: g * b / r2), _needs(c, 1, lambda: -g * a / r2)


def _mod_grad(rounding):
    """fmod / remainder: d/da = 1, d/db = -(a / b rounded)."""
    def grad(c, g):
        a, b = c.inputs
        return g, _needs(c, 1, lambda: -g * FUNCTIONS[rounding].apply(a, b))
    return grad


def _copysign_grad(c, g):
    a, _ = c.inputs
    return _needs(c, 0, lambda: g * where(a == 0, 0.0, c.out / a)), _needs(c, 1, lambda: _zeros(g))


def _hypot_grad(c, g):
    a, b = c.inputs
    return _needs(c, 0, lambda: g * a / c.out), _needs(c, 1, lambda: g * b / c.out)


def _logaddexp_grad(scale):
    def grad(c, g):
        a, b = c.inputs
        return _needs(c, 0, lambda: g * sigmoid((a - b) * scale)), _needs(c, 1, lambda: g * sigmoid((b - a) * scale))
    return grad


def _xlogy_grad(c, g):
    a, b = c.inputs
    return _needs(c, 0, lambda: g * where(a == 0, 0.0, log(b))), _needs(c, 1, lambda: g * a / b)


def _no_grad(c, g):
    return _zeros(g), _zeros(g)


MATH_BINARY = (
    Op("atan2", "OP_ATAN2", _atan2_grad),
    Op("fmod", "OP_FMOD", _mod_grad("trunc_divide"), floating=False, int_macro="OP_FMOD_INT"),
    Op("remainder", "OP_REMAINDER", _mod_grad("floor_divide"), floating=False, int_macro="OP_REMAINDER_INT"),
    Op("floor_divide", "OP_FLOORDIV", _no_grad, floating=False, saves=False, int_macro="OP_FLOORDIV_INT"),
    Op("trunc_divide", "OP_TRUNCDIV", _no_grad, floating=False, saves=False, int_macro="OP_TRUNCDIV_INT"),
    Op("copysign", "OP_COPYSIGN", _copysign_grad),
    Op("hypot", "OP_HYPOT", _hypot_grad),
    Op("logaddexp", "OP_LOGADDEXP", _logaddexp_grad(1.0)),
    Op("logaddexp2", "OP_LOGADDEXP2", _logaddexp_grad(_LN2)),
    Op("xlogy", "OP_XLOGY", _xlogy_grad),
    # integer and bool operands only: no gradient to give
    Op("bitwise_and", "OP_BITAND", None, floating=False, saves=False),
    Op("bitwise_or", "OP_BITOR", None, floating=False, saves=False),
    Op("bitwise_xor", "OP_BITXOR", None, floating=False, saves=False),
    Op("bitwise_left_shift", "OP_SHL", None, floating=False, saves=False),
    Op("bitwise_right_shift", "OP_SHR", None, floating=False, saves=False),
)
FUNCTIONS.update({op.name: _function(op, 1) for op in MATH_UNARY})
FUNCTIONS.update({op.name: _function(op, 2) for op in MATH_BINARY})


def _floating_only(name, a):
    if not a.dtype.is_floating:
        raise NotImplementedError(f'"{name}" not implemented for \'{a.dtype.name}\' tensors')


def _math_unary(op):
    fn_class = FUNCTIONS[op.name]

    def fn(a):
        if op.name == "frac":
            _floating_only("frac", a)
        return fn_class.apply(_as_dtype(a, _float_dtype(a.dtype)) if op.floating else a)
    fn.__name__ = op.name
    fn.__doc__ = f"Element-wise {op.name}."
    return fn


(log2, log10, log1p, expm1, exp2, erf, erfinv, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh, reciprocal,
 square, frac) = (_math_unary(op) for op in MATH_UNARY[:19])
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
special_erfinv = erfinv


def _rounding(name):
    def fn(a):
        return FUNCTIONS[name].apply(a) if a.dtype.is_floating else a.clone()
    fn.__name__ = name
    fn.__doc__ = f"Element-wise {name} (integer tensors are returned unchanged, as a copy)."
    return fn


floor, ceil, trunc = _rounding("floor"), _rounding("ceil"), _rounding("trunc")
fix = trunc


def round(a, decimals=0):
    """Round half to even, to `decimals` decimal places (negative: to tens, hundreds, ...)."""
    if not a.dtype.is_floating:
        if decimals:
            raise NotImplementedError(f"round with decimals is not implemented for '{a.dtype.name}' tensors")
        return a.clone()
    if decimals >= 0:
        return FUNCTIONS["round"].apply(a, 10.0 ** decimals)
    return FUNCTIONS["round_neg"].apply(a, 10.0 ** -decimals)


def _as_operands(a, b, name):
    """Both operands as tensors: a Python number becomes a 0-d tensor of its default dtype, which
    promotes exactly as the number would (torch.result_type)."""
    _check_operand(a, b)
    _check_operand(b, a)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{name}(): expected at least one tensor, got {type(a).__name__} and {type(b).__name__}")
    ref = a if isinstance(a, Tensor) else b
    if not isinstance(a, Tensor):
        a = full((), a, dtype=dtypes.scalar_dtype(a), device=ref.device)
    if not isinstance(b, Tensor):
        b = full((), b, dtype=dtypes.scalar_dtype(b), device=ref.device)
    return a, b


def _result(a, b):
    return dtypes.result_type_of((a.dtype, a.ndim), (b.dtype, b.ndim))


def _any_zero(b):
    return bool((b == 0).to(dtype=dtypes.int64).numpy().any())


def _math_binary(name, integer_only=False, int_divisor=False):
    def fn(a, b):
        a, b = _as_operands(a, b, name)
        if integer_only and (a.dtype.is_floating or b.dtype.is_floating):
            raise NotImplementedError(f'"{name}" not implemented for '
                                      f"'{(a.dtype if a.dtype.is_floating else b.dtype).name}' tensors")
        if int_divisor and not _result(a, b).is_floating and _any_zero(b):
            raise RuntimeError("ZeroDivisionError")
        return FUNCTIONS[name].apply(a, b)
    fn.__name__ = name
    fn.__doc__ = f"Element-wise {name}, broadcast; either operand may be a Python number."
    return fn


atan2 = arctan2 = _math_binary("atan2")
fmod = _math_binary("fmod", int_divisor=True)
remainder = _math_binary("remainder", int_divisor=True)
floor_divide = _math_binary("floor_divide", int_divisor=True)
_trunc_divide = _math_binary("trunc_divide", int_divisor=True)
copysign, hypot = _math_binary("copysign"), _math_binary("hypot")
logaddexp, logaddexp2, xlogy = _math_binary("logaddexp"), _math_binary("logaddexp2"), _math_binary("xlogy")
bitwise_and, bitwise_or, bitwise_xor = (_math_binary(n, integer_only=True) for n in
                                        ("bitwise_and", "bitwise_or", "bitwise_xor"))
bitwise_left_shift = _math_binary("bitwise_left_shift", integer_only=True)
bitwise_right_shift = _math_binary("bitwise_right_shift", integer_only=True)


def divide(a, b, rounding_mode=None):
    """a / b (true division), or rounded: rounding_mode 'trunc' or 'floor' (integers stay integers)."""
    if rounding_mode is None:
        return div(a, b)
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        return _trunc_divide(a, b)
    raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")


true_divide = div


def bitwise_not(a):
    """~a: bitwise for integers, logical for bool."""
    if a.dtype.is_floating:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return backend.map1("OP_NOT" if a.dtype is dtypes.bool_ else "OP_BITNOT", a)


def logical_and(a, b):
    return logical("OP_AND", a, b)


def logical_or(a, b):
    return logical("OP_OR", a, b)


def logical_xor(a, b):
    return logical("OP_XOR", a, b)


def _bool_test(macro, int_value):
    def fn(a):
        if not a.dtype.is_floating:
            return int_value(a)
        return backend.map1(macro, a, out_dtype=dtypes.bool_)
    return fn


def _all(value):
    return lambda a: full(a.shape, value, dtype=dtypes.bool_, device=a.device)


isnan = _bool_test("OP_ISNAN", _all(False))
isinf = _bool_test("OP_ISINF", _all(False))
isfinite = _bool_test("OP_ISFINITE", _all(True))
signbit = _bool_test("OP_SIGNBIT", lambda a: compare("lt", a, 0) if a.dtype.is_signed else _all(False)(a))
isnan.__name__, isinf.__name__, isfinite.__name__, signbit.__name__ = "isnan", "isinf", "isfinite", "signbit"
isposinf = lambda a: isinf(a) & ~signbit(a)  # noqa: E731
isneginf = lambda a: isinf(a) & signbit(a)  # noqa: E731


def nan_to_num(a, nan=0.0, posinf=None, neginf=None):
    """NaN -> nan, +inf -> posinf, -inf -> neginf (defaults: 0 and the dtype's largest finite values)."""
    if not a.dtype.is_floating:
        return a.clone()
    big = float(np.finfo(a.dtype.np).max)
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf
    out = where(isnan(a), nan, a)
    return where(isinf(a), where(signbit(a), neginf, posinf), out)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol |b|, element-wise, as a bool mask (infinities equal only themselves)."""
    a, b = _as_operands(a, b, "isclose")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"{a.dtype.name} did not match {b.dtype.name}")
    close = compare("eq", a, b)
    if not a.dtype.is_floating and (rtol or atol):  # integers: the same test on their values
        a, b = a.to(dtype=dtypes.float32), b.to(dtype=dtypes.float32)
    if a.dtype.is_floating:
        diff = abs(a - b)
        finite = logical_and(isfinite(a), isfinite(b))
        close = logical_or(close, logical_and(finite, compare("le", diff, atol + rtol * abs(b))))
        if equal_nan:
            close = logical_or(close, logical_and(isnan(a), isnan(b)))
    return close


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(isclose(a, b, rtol, atol, equal_nan).numpy().all())


def _clamp_tensor(a, lo, hi):
    """clamp with tensor (or mixed) bounds, broadcast: NaN in `a` passes, gradients go to the bound
    that was taken, to `a` where it was inside [lo, hi]."""
    out = a
    if lo is not None:
        out = where(compare("lt", out, lo), lo, out)
    if hi is not None:
        out = where(compare("gt", out, hi), hi, out)
    return out


clip = clamp


def result_type(a, b):
    """torch.result_type of two tensors or numbers."""
    return dtypes.result_type_of(*((x.dtype, x.ndim) if isinstance(x, Tensor) else x for x in (a, b)))


def is_floating_point(a):
    return a.dtype.is_floating


# ---- activations (issue 10): rows whose numbers are the kernel's alpha and beta ----------------
def _grad_map(macro):
    """g * d f / dx, with d f / dx one kernel over the input (and the row's alpha, beta)."""
    return lambda c, g: g * backend.map1(macro, c.inputs[0], alpha=c.number or 0, beta=c.number2)


ACTIVATIONS = (
    Op("silu", "OP_SILU", _grad_map("OP_SILU_GRAD")),
    Op("mish", "OP_MISH", _grad_map("OP_MISH_GRAD")),
    Op("softplus", "OP_SOFTPLUS", _grad_map("OP_SOFTPLUS_GRAD")),            # beta, threshold
    Op("elu", "OP_ELU", _grad_map("OP_ELU_GRAD")),                           # alpha, scale
    Op("celu", "OP_CELU", _grad_map("OP_CELU_GRAD")),                        # alpha
    Op("leaky_relu", "OP_LEAKY_RELU", _grad_map("OP_LEAKY_RELU_GRAD")),      # negative_slope
    Op("hardtanh", "OP_CLAMP", _grad_map("OP_HARDTANH_GRAD")),               # min_val, max_val
    Op("hardswish", "OP_HARDSWISH", _grad_map("OP_HARDSWISH_GRAD")),
    Op("hardsigmoid", "OP_HARDSIGMOID", _grad_map("OP_HARDSIGMOID_GRAD")),
    Op("softsign", "OP_SOFTSIGN", lambda c, g: g / ((abs(c.inputs[0]) + 1) * (abs(c.inputs[0]) + 1))),
    Op("logsigmoid", "OP_LOGSIGMOID", lambda c, g: g * sigmoid(-c.inputs[0])),
    Op("threshold", "OP_THRESHOLD", lambda c, g: where(compare("gt", c.inputs[0], c.number), g, 0.0)),
    Op("gelu_tanh", "OP_GELU_TANH", _grad_map("OP_GELU_TANH_GRAD")),
)
FUNCTIONS.update({op.name: _function(op, 1) for op in ACTIVATIONS})

# ---- in-place relu_ / hardtanh_ under autograd: the gradient from the output (as PyTorch's), so the
# input needs no copy before it is overwritten
INPLACE_FROM_OUTPUT = (
    Op("relu_out", "OP_RELU", lambda c, g: backend.map2("OP_RELU_BWD", g, c.out), floating=False, saves="out"),
    Op("hardtanh_out", "OP_CLAMP", lambda c, g: g * backend.map1("OP_HARDTANH_GRAD", c.out, alpha=c.number or 0,
                                                                 beta=c.number2), saves="out"),
)
FUNCTIONS.update({op.name: _function(op, 1) for op in INPLACE_FROM_OUTPUT})


def activation(name, x, *numbers):
    """One activation row on x (floating point only), with its numbers as alpha and beta."""
    if not x.dtype.is_floating:
        raise NotImplementedError(f'"{name}" not implemented for \'{x.dtype.name}\' tensors')
    return FUNCTIONS[name].apply(x, *(float(v) for v in numbers))


# The exports of minitorch_cl (mt.exp, mt.maximum, ...): every table row that is a public op, and the rest.
__all__ = [op.name for op in UNARY + BINARY] + ["clamp", "eq", "ge", "gt", "le", "lerp", "logical_not", "lt",
                                                "masked_fill", "ne", "sign", "where"]
__all__ += [op.name for op in MATH_UNARY + MATH_BINARY if op.name not in ("round_neg", "trunc_divide")]
__all__ += ["arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "fix", "divide", "true_divide",
            "bitwise_not", "logical_and", "logical_or", "logical_xor", "isnan", "isinf", "isfinite", "isposinf",
            "isneginf", "signbit", "nan_to_num", "isclose", "allclose", "clip", "result_type",
            "is_floating_point"]
