"""Every Tensor method beyond its data (tensor.py): the operators, conversions, in-place updates and
the op methods, attached to the class once, here, from the ops that implement them."""
import numpy as np

from . import autograd, backend, dtypes, layout, ops
from .device import Device, device as resolve_device
from .grad_mode import is_grad_enabled, no_grad
from .ops import elementwise, indexing, manip, matmul, reduce, scan, shape
from .ops import sort as sorting
from . import random as random_ops
from .random import rand, randn
from .tensor import Tensor, empty, full, ones, tensor, zeros


# ---- conversion ------------------------------------------------------------------------------
def to(self, *args, device=None, dtype=None, copy=False):
    """to(device), to(dtype), to(device, dtype), to(other_tensor)."""
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, Device) or (isinstance(a, str) and not dtypes.is_dtype_name(a)):
            device = a
        else:
            dtype = a
    dev = resolve_device(device) if device is not None else self.device
    dt = dtypes.as_dtype(dtype) or self.dtype
    out = self
    if dt is not self.dtype:
        out = shape.Cast.apply(out, dt)
    if dev != self.device:
        out = shape.ToDevice.apply(out, dev)
    return out.clone() if copy and out is self else out


def _to_dtype(dt):
    def convert(self):
        return self.to(dtype=dt)
    convert.__doc__ = f"This tensor as {dt.name}."
    return convert


def type_(self, dtype):
    return self.to(dtype=dtype)


def cpu(self):
    """This tensor on the default OpenCL CPU device (itself when it is there already)."""
    return self.to("cpu")


def cuda(self, device=None):
    """This tensor on an OpenCL GPU: the first, or `device` (an index or a spec), as in torch."""
    return self.to(resolve_device("cuda", device) if isinstance(device, int) or device is None else device)


def clone(self):
    return shape.Clone.apply(self)


def contiguous(self):
    return self if self.is_contiguous() else shape.Clone.apply(self)


def backward(self, gradient=None, retain_graph=False):
    autograd.backward(self, gradient, retain_graph=retain_graph)


# ---- in place: PyTorch's semantics ------------------------------------------------------------
# Without a graph to record (grad mode off, or nothing involved requires grad) the kernel writes
# straight into the tensor. With one, the op runs out of place as usual and its result is written
# back, the tensor taking over the result's history. Either way the version counter is bumped, so a
# backward that saved the old values raises instead of computing with the new ones.
def _check_writable(t, graph):
    if graph and t.requires_grad and t.is_leaf:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation; "
                           "wrap the update in `with mt.no_grad():`")
    if graph and t._is_view:
        raise NotImplementedError(f"in-place update of a view (shape {t.shape}) whose base requires grad: its "
                                  "base's history cannot be rewritten; use out-of-place ops")
    if any(st == 0 and n > 1 for st, n in zip(t.strides, t.shape)):
        raise RuntimeError(f"unsupported operation: more than one element of the written-to tensor (shape {t.shape}, "
                           f"strides {t.strides}) refers to a single memory location; clone() it first")


def _needs_graph(*tensors):
    return is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def _write_result(self, result):
    """self[...] = result, with its history when it has one."""
    if not dtypes.can_cast(result.dtype, self.dtype):
        raise RuntimeError(f"result type {result.dtype.name} can't be cast to the desired output type "
                           f"{self.dtype.name}")
    if layout.broadcast_shapes(self.shape, result.shape) != tuple(self.shape):
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape "
                           f"{list(layout.broadcast_shapes(self.shape, result.shape))}")
    backend.copy_(self, result.detach())
    self._bump_version()
    if result.requires_grad:
        self._node, self._out_index, self.requires_grad = result._node, result._out_index, True
    return self


def _inplace(fn):
    """The in-place form of fn(self, *args): fn's result written into self."""
    def update(self, *args, **kwargs):
        graph = _needs_graph(self, *args)
        _check_writable(self, graph)
        if graph:  # fn reads a copy of self, so its backward may use the values self had before
            src = self.clone()
            return _write_result(self, fn(src, *(src if a is self else a for a in args), **kwargs))
        with no_grad():
            return _write_result(self, fn(self, *args, **kwargs))
    update.__name__ = fn.__name__ + "_"
    update.__doc__ = f"In-place {fn.__name__}."
    return update


def _fast_binary(op, fn):
    """add_/sub_/mul_/div_ without a graph: one kernel writing into self (optimizer loops, `p -= lr * g`)."""
    slow = _inplace(fn)

    def update(self, other, **kwargs):
        if kwargs or _needs_graph(self, other) or not isinstance(other, (Tensor, int, float, bool)) or \
                self.dtype is dtypes.bool_:  # bool tensors: the out-of-place rules (+ is or, * is and)
            return slow(self, other, **kwargs)
        _check_writable(self, False)
        if isinstance(other, Tensor):
            result = dtypes.promote(self.dtype, other.dtype)
        else:
            result = dtypes.result_type(self.dtype, other)
        if op == "OP_DIV" and not result.is_floating:
            result = dtypes.float32
        if not dtypes.can_cast(result, self.dtype) or (isinstance(other, Tensor) and other.device != self.device):
            return slow(self, other)  # raises the dtype error / moves nothing silently
        other = other if isinstance(other, Tensor) else full((), other, dtype=result, device=self.device)
        if layout.broadcast_shapes(self.shape, other.shape) != tuple(self.shape):
            return slow(self, other)
        backend.map2(op, self, other, out=self, compute_dtype=result)
        self._bump_version()
        return self
    update.__name__ = slow.__name__
    update.__doc__ = slow.__doc__
    return update


def _upload_into(self, data):
    """self[...] = host data of self's shape, self contiguous: one blocking transfer straight into self's
    memory, no staging copy on either side (load_state_dict of a 500 MB checkpoint)."""
    host = np.ascontiguousarray(data, dtype=self.dtype.np)
    if host.size:
        self.device.upload(self.buffer, host, self.offset * host.itemsize).wait()
    self._bump_version()
    return self


def copy_(self, src):
    graph = _needs_graph(self, src)
    _check_writable(self, graph)
    if not isinstance(src, Tensor):
        if not graph and self.is_contiguous() and tuple(np.shape(src)) == tuple(self.shape):
            return _upload_into(self, src)
        src = Tensor.from_data(src, dtype=self.dtype, device=self.device)
    elif src.device != self.device:
        src = src.to(self.device)
    if graph:  # self's values come from src: d self / d src is the identity (cast and broadcast)
        return _write_result(self, src.to(dtype=self.dtype).expand(*self.shape))
    backend.copy_(self, src)
    self._bump_version()
    return self


def fill_(self, value):
    graph = _needs_graph(self, value)
    _check_writable(self, graph)
    if graph or isinstance(value, Tensor):
        return copy_(self, value if isinstance(value, Tensor) else full((), value, dtype=self.dtype,
                                                                         device=self.device))
    backend.fill_(self, value)
    self._bump_version()
    return self


def zero_(self):
    return self.fill_(0)


def add_(self, other, alpha=1):
    return _add_inplace(self, other * alpha if alpha != 1 else other)


_add_inplace = _fast_binary("OP_ADD", elementwise.add)


def _random_fill_(self, mode, lo, hi):
    """self = a draw, in one pass when self is contiguous float32 and autograd does not watch it
    (initialising a 100M-parameter model is then one kernel per tensor), else through copy_."""
    if self.dtype is dtypes.float32 and self.is_contiguous() and not _needs_graph(self):
        _check_writable(self, False)
        backend.random_fill(self, mode, random_ops.next_seed(), lo, hi)
        self._bump_version()
        return self
    draw = empty(*self.shape, device=self.device)
    return self.copy_(backend.random_fill(draw, mode, random_ops.next_seed(), lo, hi))


def uniform_(self, a=0.0, b=1.0):
    return _random_fill_(self, backend.RANDOM_UNIFORM, float(a), float(b))


def normal_(self, mean=0.0, std=1.0):
    return _random_fill_(self, backend.RANDOM_NORMAL, float(mean), float(std))


def bernoulli_(self, p=0.5):
    """self = 1 with probability p (a number or a broadcastable tensor), else 0."""
    return self.copy_(rand(*self.shape, device=self.device) < p)


def exponential_(self, lambd=1.0):
    return self.copy_(-(1.0 - rand(*self.shape, device=self.device)).log() / lambd)


def setitem(self, index, value):
    """self[index] = value (a number or a broadcastable tensor), recorded by autograd when needed."""
    graph = _needs_graph(self, value)
    _check_writable(self, graph)
    if graph:
        return _write_result(self, indexing.setitem(self, index, value))
    if isinstance(value, Tensor) and value.device != self.device:
        value = value.to(self.device)
    if indexing.setitem_(self, index, value):  # a tensor index: index_put straight into self
        self._bump_version()
        return
    target = shape.indexed_view(self, index)
    if isinstance(value, Tensor):
        backend.copy_(target, value)
    else:
        backend.fill_(target, value)
    self._bump_version()


def _new(factory):
    def new(self, *size, dtype=None, device=None, requires_grad=False, **kwargs):
        return factory(*size, **kwargs, dtype=dtype or self.dtype, device=device or self.device,
                       requires_grad=requires_grad)
    new.__doc__ = f"A {factory.__name__} tensor with this tensor's dtype and device by default."
    return new


def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    return tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def _reflected(fn):
    def reflected(self, other):
        return fn(other, self)
    return reflected


def _compare(name):
    def cmp(self, other):
        return elementwise.compare(name, self, other)
    return cmp


def _relu_backward(g, out):
    """g where out > 0, else 0: the ReLU gradient from its output."""
    return backend.map2("OP_RELU_BWD", g, out)


METHODS = {
    # conversion, autograd, in place
    "to": to, "float": _to_dtype(dtypes.float32), "half": _to_dtype(dtypes.float16),
    "long": _to_dtype(dtypes.int64), "int": _to_dtype(dtypes.int32), "bool": _to_dtype(dtypes.bool_),
    "type": type_, "cpu": cpu, "cuda": cuda, "clone": clone, "contiguous": contiguous, "backward": backward,
    "copy_": copy_, "fill_": fill_, "zero_": zero_, "add_": add_, "sub_": _fast_binary("OP_SUB", elementwise.sub),
    "mul_": _fast_binary("OP_MUL", elementwise.mul), "div_": _fast_binary("OP_DIV", elementwise.div),
    "pow_": _inplace(elementwise.pow), "clamp_": _inplace(elementwise.clamp), "clip_": _inplace(elementwise.clamp),
    "masked_fill_": _inplace(elementwise.masked_fill), "uniform_": uniform_, "normal_": normal_,
    "__setitem__": setitem, "__getitem__": indexing.getitem, "register_hook": autograd.register_hook,
    "register_post_accumulate_grad_hook": autograd.register_post_accumulate_grad_hook,
    "new_zeros": _new(zeros), "new_ones": _new(ones), "new_empty": _new(empty), "new_full": new_full,
    "new_tensor": new_tensor,
    # operators
    "__add__": elementwise.add, "__radd__": _reflected(elementwise.add),
    "__sub__": elementwise.sub, "__rsub__": _reflected(elementwise.sub),
    "__mul__": elementwise.mul, "__rmul__": _reflected(elementwise.mul),
    "__truediv__": elementwise.div, "__rtruediv__": _reflected(elementwise.div),
    "__pow__": elementwise.pow, "__rpow__": _reflected(elementwise.pow),
    "__matmul__": matmul.matmul, "__rmatmul__": _reflected(matmul.matmul),
    "__neg__": elementwise.neg, "__abs__": elementwise.abs,
    "__eq__": _compare("eq"), "__ne__": _compare("ne"), "__lt__": _compare("lt"),
    "__le__": _compare("le"), "__gt__": _compare("gt"), "__ge__": _compare("ge"),
    # element-wise
    # (every op of the element-wise table is a method too: added below)
    "sign": elementwise.sign, "clamp": elementwise.clamp, "clip": elementwise.clamp,
    "masked_fill": elementwise.masked_fill, "eq": elementwise.eq, "ne": elementwise.ne, "lt": elementwise.lt,
    "le": elementwise.le, "gt": elementwise.gt, "ge": elementwise.ge, "logical_not": elementwise.logical_not,
    "relu_backward": _relu_backward,
    # reductions
    "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max, "min": reduce.min, "amax": reduce.amax,
    "amin": reduce.amin, "argmax": reduce.argmax, "argmin": reduce.argmin, "var": reduce.var,
    "std": reduce.std, "all": reduce.all, "any": reduce.any, "logsumexp": reduce.logsumexp,
    # shapes
    "reshape": shape.reshape, "view": shape.view, "flatten": shape.flatten, "unflatten": shape.unflatten,
    "unsqueeze": shape.unsqueeze, "squeeze": shape.squeeze, "permute": shape.permute,
    "transpose": shape.transpose, "t": shape.t, "expand": shape.expand, "expand_as": shape.expand_as,
    "view_as": shape.view_as, "reshape_as": shape.reshape_as, "repeat": shape.repeat,
    "narrow": shape.narrow, "split": shape.split, "chunk": shape.chunk, "unbind": shape.unbind,
    "index_select": shape.index_select,
    # matmul
    "matmul": matmul.matmul, "mm": matmul.mm, "bmm": matmul.bmm, "dot": matmul.dot,
}

# indexing and the gather/scatter family (ops/indexing.py)
_INDEXING = ("gather", "scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy", "index_fill",
             "index_put", "masked_scatter")
METHODS.update({name: getattr(indexing, name) for name in _INDEXING})
METHODS.update({name + "_": _inplace(getattr(indexing, name)) for name in _INDEXING if name != "gather"})
METHODS.update({"masked_select": indexing.masked_select, "nonzero": indexing.nonzero, "take": indexing.take,
                "take_along_dim": indexing.take_along_dim, "argwhere": indexing.argwhere})
# scans, prod, sorting and selection (ops/scan.py, ops/sort.py)
METHODS.update({
    "cumsum": scan.cumsum, "cumprod": scan.cumprod, "cummax": scan.cummax, "cummin": scan.cummin,
    "logcumsumexp": scan.logcumsumexp, "prod": scan.prod, "sort": sorting.sort, "argsort": sorting.argsort,
    "msort": sorting.msort, "topk": sorting.topk, "kthvalue": sorting.kthvalue, "median": sorting.median,
    "unique": sorting.unique, "mode": sorting.mode, "norm": reduce.norm,
    "count_nonzero": reduce.count_nonzero,
})
# creation and shape manipulation (ops/manip.py), random fills
METHODS.update({
    "movedim": manip.movedim, "moveaxis": manip.movedim, "diagonal": manip.diagonal, "diag": manip.diag,
    "tril": manip.tril, "triu": manip.triu, "flip": manip.flip, "fliplr": manip.fliplr, "flipud": manip.flipud,
    "roll": manip.roll, "rot90": manip.rot90, "tile": manip.tile, "repeat_interleave": manip.repeat_interleave,
    "unfold": manip.unfold_view, "tril_": _inplace(manip.tril), "triu_": _inplace(manip.triu),
    "bernoulli": random_ops.bernoulli, "bernoulli_": bernoulli_, "exponential_": exponential_,
})

METHODS.update({op.name: getattr(elementwise, op.name) for op in elementwise.UNARY + elementwise.BINARY})
METHODS.update({op.name + "_": _inplace(getattr(elementwise, op.name)) for op in elementwise.UNARY})
# augmented assignment is in place, as in PyTorch: `p -= lr * p.grad` updates p
METHODS.update({"__iadd__": METHODS["add_"], "__isub__": METHODS["sub_"], "__imul__": METHODS["mul_"],
                "__itruediv__": METHODS["div_"], "__ipow__": METHODS["pow_"]})  # &= |= ^= below

# ---- dtypes, element-wise math, bitwise and logical ops (issue 10) ----------------------------
_MATH = ([op.name for op in elementwise.MATH_UNARY + elementwise.MATH_BINARY if op.name not in ("round_neg", "trunc_divide")]
         + ["arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "arctan2", "fix", "bitwise_not",
            "logical_and", "logical_or", "logical_xor", "isnan", "isinf", "isfinite", "isposinf", "isneginf",
            "signbit", "nan_to_num", "isclose", "allclose", "true_divide"])
METHODS.update({name: getattr(elementwise, name) for name in _MATH})
METHODS.update({name + "_": _inplace(getattr(elementwise, name)) for name in _MATH
                if name not in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit", "isclose", "allclose")})
METHODS.update({
    "double": _to_dtype(dtypes.float64), "short": _to_dtype(dtypes.int16), "byte": _to_dtype(dtypes.uint8),
    "char": _to_dtype(dtypes.int8),
    "div": elementwise.divide, "divide": elementwise.divide, "div_": _fast_binary("OP_DIV", elementwise.divide),
    "divide_": _inplace(elementwise.divide), "clamp": elementwise.clamp, "clamp_": _inplace(elementwise.clamp),
    "clip_": _inplace(elementwise.clamp), "lerp": elementwise.lerp, "lerp_": _inplace(elementwise.lerp),
    "logical_not_": _inplace(elementwise.logical_not),
    "__mod__": elementwise.remainder, "__rmod__": _reflected(elementwise.remainder),
    "__imod__": _inplace(elementwise.remainder),
    "__floordiv__": elementwise.floor_divide, "__rfloordiv__": _reflected(elementwise.floor_divide),
    "__ifloordiv__": _inplace(elementwise.floor_divide),
    "__and__": elementwise.bitwise_and, "__rand__": _reflected(elementwise.bitwise_and),
    "__iand__": _inplace(elementwise.bitwise_and),
    "__or__": elementwise.bitwise_or, "__ror__": _reflected(elementwise.bitwise_or),
    "__ior__": _inplace(elementwise.bitwise_or),
    "__xor__": elementwise.bitwise_xor, "__rxor__": _reflected(elementwise.bitwise_xor),
    "__ixor__": _inplace(elementwise.bitwise_xor),
    "__lshift__": elementwise.bitwise_left_shift, "__rlshift__": _reflected(elementwise.bitwise_left_shift),
    "__ilshift__": _inplace(elementwise.bitwise_left_shift),
    "__rshift__": elementwise.bitwise_right_shift, "__rrshift__": _reflected(elementwise.bitwise_right_shift),
    "__irshift__": _inplace(elementwise.bitwise_right_shift),
    "__invert__": elementwise.bitwise_not, "is_floating_point": elementwise.is_floating_point,
})

for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
del ops
