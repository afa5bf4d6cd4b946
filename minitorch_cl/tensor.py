"""Tensor's data: a pooled OpenCL buffer seen through (shape, strides, offset, dtype), autograd state,
host transfer, and the factories that allocate (empty, full, zeros, tensor, arange, ...).

This is the bottom layer: it imports nothing of the package above the device and the launcher. The
Tensor's operators and op methods (`+`, `sum`, `view`, `to`, ...) are attached to the class in one
table by minitorch_cl/tensor_methods.py."""
import numbers

import numpy as np

from . import dtypes, layout
from .device import device as resolve_device
from .launch import launch


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
        self._is_view = False  # a recorded view of another tensor (autograd sets it)
        self._grad_hooks = []  # a leaf's register_hook hooks (a non-leaf's live on its node)
        self._post_accumulate_grad_hooks = []
        self._upload = None  # the pending host->device copy keeps its host array alive

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_data(cls, data, dtype=None, device=None):
        if isinstance(data, Tensor):
            return data.to(device=device or data.device, dtype=dtype or data.dtype).detach()
        dev = resolve_device(device)
        arr = np.asarray(data)
        # as in torch: a float64 array (or NumPy float64 scalar) stays float64, Python floats give float32
        keep_float64 = isinstance(data, (np.ndarray, np.floating)) and dev.profile.fp64
        dt = dtypes.as_dtype(dtype) or _infer_dtype(arr, keep_float64=keep_float64)
        host = np.array(arr, dtype=dt.np, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        t = empty(host.shape, dtype=dt, device=dev)
        if host.size:
            t._upload = dev.upload(t.buffer, host)
        return t

    # ---- the version counter: in-place writes bump it, backward checks what it saved -------
    @property
    def _version(self):
        """How many in-place writes this tensor's memory has had (shared by every view of it)."""
        return getattr(self.buffer, "_mt_version", 0)

    def _bump_version(self):
        self.buffer._mt_version = self._version + 1

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
            t.device.download(host, t.buffer, t.offset * t.dtype.itemsize)
        t.device.check_errors()  # a bad index behind these values is raised here, the next wait on the device
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
        extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.fn.__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}, {', '.join(extras)})"

    def detach(self):
        return Tensor(self.buffer, self.shape, self.strides, self.offset, self.dtype, self.device)

    def detach_(self):
        self._node, self.requires_grad = None, False
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not self.dtype.is_floating:
            raise RuntimeError(f"only floating point tensors can require gradients, got {self.dtype!r}")
        self.requires_grad = requires_grad
        return self


def _infer_dtype(arr, keep_float64=False):
    """The array's own dtype (uint8 stays uint8, int32 int32, float64 float64 with keep_float64: a NumPy
    float64 on a device with cl_khr_fp64); Python floats give float32."""
    if arr.dtype == np.bool_:
        return dtypes.bool_
    if arr.dtype == np.float64 and not keep_float64:
        return dtypes.float32
    if arr.dtype.kind in "iuf":
        return dtypes.as_dtype(arr.dtype)
    if arr.dtype == object:
        raise TypeError("could not build a tensor from ragged or non-numeric data")
    raise TypeError(f"unsupported data type {arr.dtype}")


# ---- creation ---------------------------------------------------------------------------------
def _shape_args(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if all(type(s) is int and s >= 0 for s in size):  # the common case, without the ABC checks below
        return tuple(size)
    for s in size:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"sizes must be non-negative integers, got {tuple(size)}")
    return tuple(int(s) for s in size)


def empty(*size, dtype=None, device=None, requires_grad=False):
    shape = _shape_args(size)
    dev = resolve_device(device)
    dt = dtypes.as_dtype(dtype) or dtypes.float32
    if dt is dtypes.float64:
        dtypes.check_fp64(dev)
    buf = dev.alloc(layout.numel(shape) * dt.itemsize)
    t = Tensor(buf, shape, layout.contiguous_strides(shape), 0, dt, dev)
    return t.requires_grad_(requires_grad) if requires_grad else t


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dtypes.scalar_dtype(fill_value)
    t = empty(*_shape_args((size,) if isinstance(size, int) else (tuple(size),)), dtype=dtype, device=device)
    fill_(t, fill_value)
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


def from_numpy(array, device=None):
    """A tensor with the array's values and dtype (a copy on the device: OpenCL memory is not host memory)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor.from_data(array, device=device, dtype=dtypes.float64 if array.dtype == np.float64 else None)


def as_tensor(data, dtype=None, device=None):
    """data itself when it is already a tensor of that dtype and device, else a new tensor."""
    if isinstance(data, Tensor):
        return data.to(device=device or data.device, dtype=dtype or data.dtype)
    return Tensor.from_data(data, dtype=dtype, device=device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = dtypes.float32 if any(isinstance(v, float) for v in (start, end, step)) else dtypes.int64
    return tensor(np.arange(start, end, step), dtype=dtype, device=device, requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None):
    return tensor(np.linspace(start, end, steps), dtype=dtype or dtypes.float32, device=device)




def fill_(t, value):
    """t[...] = value in place, on any view: one element-wise kernel."""
    n = t.numel()
    if n:
        shape, (st,) = layout.coalesce(t.shape, [t.strides])
        kernel, grid, local, (sh, so) = layout.map_launch("map1", shape, [st], t.device.profile.map_local)
        defines = dict(OP="OP_FILL", **dtypes.cl_defines(t.device, T=dtypes.compute_dtype(t.dtype), TA=t.dtype,
                                                          TO=t.dtype))
        launch(t.device, "elementwise.cl", kernel, grid, n, sh, so, so, value, 0, t, t, defines=defines,
               local=local)
    return t
