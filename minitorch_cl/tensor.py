"""Tensor: a pooled OpenCL buffer seen through (shape, strides, offset, dtype), plus autograd state."""
import numbers

import numpy as np
import pyopencl as cl

from . import autograd, backend, dtypes, layout
from .device import Device, device as resolve_device


class Tensor:
    """An n-dimensional array on an OpenCL device. Views share the buffer of their base."""

    __hash__ = object.__hash__  # == is element-wise, identity stays the hash

    def __init__(self, buffer, shape, strides, offset, dtype, device):
        self.buffer, self.offset = buffer, offset
        self.shape, self.strides = tuple(shape), tuple(strides)
        self.dtype, self.device = dtype, device
        self.requires_grad = False
        self.grad = None
        self._node, self._out_index = None, 0
        self._upload = None  # the pending host->device copy keeps its host array alive

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_data(cls, data, dtype=None, device=None):
        if isinstance(data, Tensor):
            return data.to(device=device or data.device, dtype=dtype or data.dtype).detach()
        dev = resolve_device(device)
        arr = np.asarray(data)
        dt = dtypes.as_dtype(dtype) or _infer_dtype(arr)
        host = np.ascontiguousarray(arr, dtype=dt.np)
        t = empty(host.shape, dtype=dt, device=dev)
        if host.size:
            t._upload = cl.enqueue_copy(dev.queue, t.buffer, host, is_blocking=False)
        return t

    # ---- metadata ---------------------------------------------------------------------------
    @property
    def ndim(self):
        return len(self.shape)

    def dim(self):
        return len(self.shape)

    def numel(self):
        return layout.numel(self.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[layout.normalize_dim(dim, self.ndim)]

    def stride(self, dim=None):
        return self.strides if dim is None else self.strides[layout.normalize_dim(dim, self.ndim)]

    def element_size(self):
        return self.dtype.itemsize

    def is_contiguous(self):
        return layout.is_contiguous(self.shape, self.strides)

    @property
    def data(self):
        """This tensor's values, detached from the graph (shares the buffer)."""
        return self.detach()

    @data.setter
    def data(self, other):
        self.buffer, self.offset, self.shape, self.strides = other.buffer, other.offset, other.shape, other.strides
        self.dtype, self.device = other.dtype, other.device

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node.fn if self._node is not None else None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    # ---- host transfer ---------------------------------------------------------------------
    def numpy(self):
        """A NumPy copy (waits for the device)."""
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use .detach().numpy()")
        return self._to_host()

    def _to_host(self):
        t = self if self.is_contiguous() else self.contiguous()
        host = np.empty(t.shape, dtype=t.dtype.np)
        if host.size:
            cl.enqueue_copy(t.device.queue, host, t.buffer, src_offset=t.offset * t.dtype.itemsize,
                            is_blocking=True)
        return host.astype(bool) if t.dtype is dtypes.bool_ else host

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"only one-element tensors can be converted to Python scalars, got shape {self.shape}")
        return self._to_host().reshape(()).item()

    def tolist(self):
        return self._to_host().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __index__(self):
        if self.dtype.is_floating:
            raise TypeError("only integer tensors can be used as an index")
        return int(self.item())

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        body = np.array2string(self._to_host(), separator=", ", precision=4, threshold=200, prefix="tensor(")
        extras = []
        if self.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_):
            extras.append(f"dtype={self.dtype!r}")
        extras.append(f"device='{self.device.spec}'")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.fn.__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}, {', '.join(extras)})"

    # ---- conversion ------------------------------------------------------------------------
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
            out = _ops().shape.Cast.apply(out, dt)
        if dev != self.device:
            out = _ops().shape.ToDevice.apply(out, dev)
        return out.clone() if copy and out is self else out

    def float(self):
        return self.to(dtype=dtypes.float32)

    def half(self):
        return self.to(dtype=dtypes.float16)

    def long(self):
        return self.to(dtype=dtypes.int64)

    def int(self):
        return self.to(dtype=dtypes.int32)

    def bool(self):
        return self.to(dtype=dtypes.bool_)

    def type(self, dtype):
        return self.to(dtype=dtype)

    def cpu(self):
        """No host tensor type exists; returns self so `.cpu().numpy()` works."""
        return self

    def detach(self):
        t = Tensor(self.buffer, self.shape, self.strides, self.offset, self.dtype, self.device)
        return t

    def detach_(self):
        self._node, self.requires_grad = None, False
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not self.dtype.is_floating:
            raise RuntimeError(f"only floating point tensors can require gradients, got {self.dtype!r}")
        self.requires_grad = requires_grad
        return self

    def clone(self):
        return _ops().shape.Clone.apply(self)

    def contiguous(self):
        return self if self.is_contiguous() else _ops().shape.Clone.apply(self)

    def backward(self, gradient=None, retain_graph=False):
        autograd.backward(self, gradient, retain_graph=retain_graph)

    def register_post_accumulate_grad_hook(self, hook):
        """hook(self) runs after backward has accumulated all of this leaf's gradient into .grad."""
        return autograd.register_post_accumulate_grad_hook(self, hook)

    # ---- in-place (no autograd; for optimizers, initialisation and loading weights) ---------
    def _check_inplace(self):
        if autograd.is_grad_enabled() and self.requires_grad and self.is_leaf:
            raise RuntimeError("a leaf tensor that requires grad is used in an in-place operation; "
                               "wrap it in `with mt.no_grad():`")

    def copy_(self, src):
        self._check_inplace()
        if not isinstance(src, Tensor):
            src = Tensor.from_data(src, dtype=self.dtype, device=self.device)
        elif src.device != self.device:
            src = src.to(self.device)
        backend.copy_(self, src)
        return self

    def fill_(self, value):
        self._check_inplace()
        backend.fill_(self, value)
        return self

    def zero_(self):
        return self.fill_(0)

    def _inplace(self, op, other):
        self._check_inplace()
        other = other if isinstance(other, Tensor) else full((), other, dtype=self.dtype, device=self.device)
        backend.map2(op, self, other, out=self, compute_dtype=self.dtype)
        return self

    def add_(self, other, alpha=1):
        return self._inplace("OP_ADD", other * alpha if alpha != 1 else other)

    def sub_(self, other):
        return self._inplace("OP_SUB", other)

    def mul_(self, other):
        return self._inplace("OP_MUL", other)

    def div_(self, other):
        return self._inplace("OP_DIV", other)

    def uniform_(self, a=0.0, b=1.0):
        return self.copy_(rand(*self.shape, device=self.device) * (b - a) + a)

    def normal_(self, mean=0.0, std=1.0):
        return self.copy_(randn(*self.shape, device=self.device) * std + mean)

    def __setitem__(self, index, value):
        target = self[index] if not isinstance(index, Tensor) else None
        if target is None:
            raise NotImplementedError("assignment through a tensor index; use where() or masked_fill()")
        with autograd.no_grad():
            if isinstance(value, Tensor):
                target.copy_(value)
            else:
                target.fill_(value)

    # ---- operators and methods: thin wrappers over minitorch_cl.ops ------------------------
    def __add__(self, other):
        return _ops().elementwise.add(self, other)

    def __radd__(self, other):
        return _ops().elementwise.add(other, self)

    def __sub__(self, other):
        return _ops().elementwise.sub(self, other)

    def __rsub__(self, other):
        return _ops().elementwise.sub(other, self)

    def __mul__(self, other):
        return _ops().elementwise.mul(self, other)

    def __rmul__(self, other):
        return _ops().elementwise.mul(other, self)

    def __truediv__(self, other):
        return _ops().elementwise.div(self, other)

    def __rtruediv__(self, other):
        return _ops().elementwise.div(other, self)

    def __pow__(self, other):
        return _ops().elementwise.pow(self, other)

    def __rpow__(self, other):
        return _ops().elementwise.pow(other, self)

    def __neg__(self):
        return _ops().elementwise.neg(self)

    def __abs__(self):
        return _ops().elementwise.abs(self)

    def __matmul__(self, other):
        return _ops().matmul.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul.matmul(other, self)

    def __eq__(self, other):
        return _ops().elementwise.compare("eq", self, other)

    def __ne__(self, other):
        return _ops().elementwise.compare("ne", self, other)

    def __lt__(self, other):
        return _ops().elementwise.compare("lt", self, other)

    def __le__(self, other):
        return _ops().elementwise.compare("le", self, other)

    def __gt__(self, other):
        return _ops().elementwise.compare("gt", self, other)

    def __ge__(self, other):
        return _ops().elementwise.compare("ge", self, other)

    def __invert__(self):
        return _ops().elementwise.logical_not(self)

    def __and__(self, other):
        return _ops().elementwise.logical("OP_AND", self, other)

    def __or__(self, other):
        return _ops().elementwise.logical("OP_OR", self, other)

    def __xor__(self, other):
        return _ops().elementwise.logical("OP_XOR", self, other)

    def __getitem__(self, index):
        return _ops().shape.getitem(self, index)

    def __getattr__(self, name):
        # Tensor methods that are module-level functions in minitorch_cl.ops (exp, sum, view, ...).
        fn = _ops().METHODS.get(name)
        if fn is None:
            raise AttributeError(f"'Tensor' object has no attribute {name!r}")
        return fn.__get__(self)


def _ops():
    from . import ops
    return ops


def _infer_dtype(arr):
    if arr.dtype == np.bool_:
        return dtypes.bool_
    if arr.dtype.kind in "iuf":
        return dtypes.as_dtype(arr.dtype)  # int32 stays int32; float64 becomes float32
    if arr.dtype == object:
        raise TypeError("could not build a tensor from ragged or non-numeric data")
    raise TypeError(f"unsupported data type {arr.dtype}")


# ---- creation ---------------------------------------------------------------------------------
def _shape_args(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"sizes must be non-negative integers, got {tuple(size)}")
    return tuple(int(s) for s in size)


def empty(*size, dtype=None, device=None, requires_grad=False):
    shape = _shape_args(size)
    dev = resolve_device(device)
    dt = dtypes.as_dtype(dtype) or dtypes.float32
    buf = dev.alloc(layout.numel(shape) * dt.itemsize)
    t = Tensor(buf, shape, layout.contiguous_strides(shape), 0, dt, dev)
    return t.requires_grad_(requires_grad) if requires_grad else t


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dtypes.scalar_dtype(fill_value)
    t = empty(*_shape_args((size,) if isinstance(size, int) else (tuple(size),)), dtype=dtype, device=device)
    backend.fill_(t, fill_value)
    return t.requires_grad_(requires_grad) if requires_grad else t


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return full(_shape_args(size), 0, dtype=dtype or dtypes.float32, device=device, requires_grad=requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return full(_shape_args(size), 1, dtype=dtype or dtypes.float32, device=device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device)


def empty_like(t, dtype=None, device=None):
    return empty(t.shape, dtype=dtype or t.dtype, device=device or t.device)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A tensor from a (nested) list, NumPy array, Python scalar or another tensor."""
    t = Tensor.from_data(data, dtype=dtype, device=device)
    return t.requires_grad_(requires_grad) if requires_grad else t


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = dtypes.float32 if any(isinstance(v, float) for v in (start, end, step)) else dtypes.int64
    return tensor(np.arange(start, end, step), dtype=dtype, device=device, requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None):
    return tensor(np.linspace(start, end, steps), dtype=dtype or dtypes.float32, device=device)


class _Seed:
    value = 0x5EED
    counter = 0


def manual_seed(seed):
    """Seed every random op (rand, randn, dropout, initialisation, shuffling)."""
    _Seed.value, _Seed.counter = int(seed), 0


def next_seed():
    """A fresh 32-bit seed for one random launch, derived from manual_seed's value."""
    _Seed.counter += 1
    return int(np.random.SeedSequence([_Seed.value & 0xFFFFFFFF, _Seed.counter]).generate_state(1)[0])


def _random(size, mode, lo, hi, dtype, device, requires_grad):
    t = empty(*_shape_args(size), dtype=dtypes.float32, device=device)
    backend.random_fill(t, mode, next_seed(), lo, hi)
    dt = dtypes.as_dtype(dtype) or dtypes.float32
    if dt is not dtypes.float32:
        t = t.to(dtype=dt)
    return t.requires_grad_(requires_grad) if requires_grad else t


def rand(*size, dtype=None, device=None, requires_grad=False):
    return _random(size, 0, 0.0, 1.0, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    return _random(size, 1, 0.0, 1.0, dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    if high is None:
        low, high = 0, low
    rng = np.random.default_rng(next_seed())
    return tensor(rng.integers(low, high, size=size), dtype=dtype or dtypes.int64, device=device)


def randperm(n, dtype=None, device=None):
    rng = np.random.default_rng(next_seed())
    return tensor(rng.permutation(n), dtype=dtype or dtypes.int64, device=device)
