"""Every Tensor method beyond its data (tensor.py): the operators, conversions, in-place updates and
the op methods, attached to the class once, here, from the ops that implement them."""
from . import autograd, backend, dtypes, ops
from .device import Device, device as resolve_device
from .grad_mode import is_grad_enabled, no_grad
from .ops import elementwise, matmul, reduce, shape
from .random import rand, randn
from .tensor import Tensor, full


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
    """No host tensor type exists; returns self so `.cpu().numpy()` works."""
    return self


def clone(self):
    return shape.Clone.apply(self)


def contiguous(self):
    return self if self.is_contiguous() else shape.Clone.apply(self)


def backward(self, gradient=None, retain_graph=False):
    autograd.backward(self, gradient, retain_graph=retain_graph)


# ---- in place (no autograd; for optimizers, initialisation and loading weights) ---------------
def _check_inplace(t):
    if is_grad_enabled() and t.requires_grad and t.is_leaf:
        raise RuntimeError("a leaf tensor that requires grad is used in an in-place operation; "
                           "wrap it in `with mt.no_grad():`")


def copy_(self, src):
    _check_inplace(self)
    if not isinstance(src, Tensor):
        src = Tensor.from_data(src, dtype=self.dtype, device=self.device)
    elif src.device != self.device:
        src = src.to(self.device)
    backend.copy_(self, src)
    return self


def fill_(self, value):
    _check_inplace(self)
    backend.fill_(self, value)
    return self


def zero_(self):
    return self.fill_(0)


def _inplace(op):
    def update(self, other):
        _check_inplace(self)
        other = other if isinstance(other, Tensor) else full((), other, dtype=self.dtype, device=self.device)
        backend.map2(op, self, other, out=self, compute_dtype=self.dtype)
        return self
    return update


def add_(self, other, alpha=1):
    return _inplace("OP_ADD")(self, other * alpha if alpha != 1 else other)


def uniform_(self, a=0.0, b=1.0):
    return self.copy_(rand(*self.shape, device=self.device) * (b - a) + a)


def normal_(self, mean=0.0, std=1.0):
    return self.copy_(randn(*self.shape, device=self.device) * std + mean)


def setitem(self, index, value):
    if isinstance(index, Tensor):
        raise NotImplementedError("assignment through a tensor index; use where() or masked_fill()")
    target = self[index]
    with no_grad():
        if isinstance(value, Tensor):
            target.copy_(value)
        else:
            target.fill_(value)


def _reflected(fn):
    def reflected(self, other):
        return fn(other, self)
    return reflected


def _compare(name):
    def cmp(self, other):
        return elementwise.compare(name, self, other)
    return cmp


def _logical(op):
    def logical(self, other):
        return elementwise.logical(op, self, other)
    return logical


def _relu_backward(g, out):
    """g where out > 0, else 0: the ReLU gradient from its output."""
    return backend.map2("OP_RELU_BWD", g, out)


METHODS = {
    # conversion, autograd, in place
    "to": to, "float": _to_dtype(dtypes.float32), "half": _to_dtype(dtypes.float16),
    "long": _to_dtype(dtypes.int64), "int": _to_dtype(dtypes.int32), "bool": _to_dtype(dtypes.bool_),
    "type": type_, "cpu": cpu, "clone": clone, "contiguous": contiguous, "backward": backward,
    "copy_": copy_, "fill_": fill_, "zero_": zero_, "add_": add_, "sub_": _inplace("OP_SUB"),
    "mul_": _inplace("OP_MUL"), "div_": _inplace("OP_DIV"), "uniform_": uniform_, "normal_": normal_,
    "__setitem__": setitem, "__getitem__": shape.getitem,
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
    "__invert__": elementwise.logical_not, "__and__": _logical("OP_AND"), "__or__": _logical("OP_OR"),
    "__xor__": _logical("OP_XOR"),
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

METHODS.update({op.name: getattr(elementwise, op.name) for op in elementwise.UNARY + elementwise.BINARY})

for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
del ops
