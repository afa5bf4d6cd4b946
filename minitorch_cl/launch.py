"""The one way to run a kernel: launch(device, file, name, grid, *args, local=..., defines=...).

Arguments go in the kernel's own order. A tensor becomes two kernel arguments, its buffer and its
element offset (every `__global T *x` in clkernels/ is followed by `int x_off`), so a view reaches a
kernel as it is. Python numbers are converted to the scalar type the kernel declares (read once per
kernel from the OpenCL argument info), NumPy structs (layout.layout_struct) pass as they are.
This is also the single place where launches are traced (MINITORCH_CL_DEBUG) and profiled.
"""
import sys
from typing import NamedTuple

import numpy as np
import pyopencl as cl

from . import kernels

_SCALARS = {"char": np.int8, "uchar": np.uint8, "short": np.int16, "ushort": np.uint16, "int": np.int32,
            "uint": np.uint32, "long": np.int64, "ulong": np.uint64, "float": np.float32,
            "double": np.float64}
_INTEGERS = {t for t in _SCALARS.values() if np.issubdtype(t, np.integer)}
_GLOBAL = cl.kernel_arg_address_qualifier.GLOBAL
_LOCAL = cl.kernel_arg_address_qualifier.LOCAL

# Callables (device, kernel_key, event, grid, local, work) called after every enqueue: the hook of the
# profiler (and of any tracing). work is (flops, nbytes) as the launch states them (None each
# when unstated).
observers = []


class At(NamedTuple):
    """A raw pool buffer and an element offset into it, for drivers that address buffers directly (gemm)."""
    buffer: object
    offset: int


class KernelArgumentError(TypeError):
    """A launch whose arguments do not fit the kernel's declared parameters."""


class _Plan:
    """What one kernel's parameters are: for each, 'tensor', 'local', 'struct' or a scalar dtype, and
    for each tensor the OpenCL C element type its buffer must hold."""
    __slots__ = ("kinds", "key", "elements", "kernel", "struct_slots", "struct_dtypes", "_scalar_dtypes")

    def __init__(self, kernel, key):
        self.key, self.kernel = key, kernel
        kinds, self.elements = [], {}
        n = kernel.num_args
        i = 0
        while i < n:
            qual = kernel.get_arg_info(i, cl.kernel_arg_info.ADDRESS_QUALIFIER)
            tname = kernel.get_arg_info(i, cl.kernel_arg_info.TYPE_NAME).strip()
            if qual == _GLOBAL:
                nxt = kernel.get_arg_info(i + 1, cl.kernel_arg_info.TYPE_NAME).strip() if i + 1 < n else ""
                if nxt != "int":
                    raise KernelArgumentError(f"{_name(key)}: buffer argument {i} ({tname}) must be followed "
                                              f"by its int element offset, found {nxt or 'nothing'}")
                self.elements[len(kinds)] = tname.rstrip("*").replace("const", "").strip()
                kinds.append("tensor")
                i += 2
                continue
            kinds.append("local" if qual == _LOCAL else _SCALARS.get(tname, "struct"))
            i += 1
        self.kinds = tuple(kinds)
        self.struct_slots = tuple(i for i, kind in enumerate(kinds) if kind == "struct")
        self.struct_dtypes = None  # each struct argument's NumPy dtype, learnt at the first launch
        self._scalar_dtypes = []
        for kind in kinds:
            if kind == "tensor":
                self._scalar_dtypes += [None, np.int32]
            else:
                self._scalar_dtypes.append(kind if isinstance(kind, type) else None)
        kernel.set_scalar_arg_dtypes(self._scalar_dtypes)

    def check_structs(self, args):
        """Declare the struct arguments' dtypes to pyopencl from the first launch's values (a struct
        left untyped goes through pyopencl's generic conversion: 29 us a launch of map2_flat against 2),
        and hold every later launch to them."""
        if self.struct_dtypes is None:
            self.struct_dtypes = {i: getattr(args[i], "dtype", None) for i in self.struct_slots}
            if all(isinstance(dt, np.dtype) and dt.names for dt in self.struct_dtypes.values()):
                dtypes, slot = list(self._scalar_dtypes), 0
                for i, kind in enumerate(self.kinds):
                    if kind == "struct":
                        dtypes[slot] = self.struct_dtypes[i]
                    slot += 2 if kind == "tensor" else 1
                self.kernel.set_scalar_arg_dtypes(dtypes)
            return
        for i in self.struct_slots:
            a = args[i]
            if getattr(a, "dtype", None) != self.struct_dtypes[i]:
                raise KernelArgumentError(f"{_name(self.key)}: argument {i} is a struct of dtype "
                                          f"{self.struct_dtypes[i]}, got {getattr(a, 'dtype', type(a).__name__)}")


def _name(key):
    file, name, defines = key
    return f"{file}:{name}" + (f" ({kernels.short_defines(defines)})" if defines else "")


def _plan(device, key):
    """The kernel's plan, holding the kernel itself: one dict lookup per launch once built."""
    plan = device._launch_plans.get(key)
    if plan is None:
        file, name, defines = key
        plan = device._launch_plans[key] = _Plan(device.kernel(file, name, dict(defines)), key)
    return plan


def _kernel_args(plan, args):
    if len(args) != len(plan.kinds):
        raise KernelArgumentError(f"{_name(plan.key)} takes {len(plan.kinds)} arguments "
                                  f"(a tensor counts once), got {len(args)}")
    if plan.struct_slots:
        plan.check_structs(args)
    out = []
    append, elements = out.append, plan.elements
    for i, kind in enumerate(plan.kinds):
        a = args[i]
        if kind == "tensor":
            try:
                append(a.buffer)
                append(a.offset)
            except AttributeError:
                raise KernelArgumentError(f"{_name(plan.key)}: argument {i} is a buffer, "
                                          f"got {type(a).__name__}") from None
            dt = getattr(a, "dtype", None)  # (a raw At buffer has none)
            if dt is not None and dt.cl != elements[i]:
                raise KernelArgumentError(f"{_name(plan.key)}: argument {i} is a {elements[i]} buffer, got a "
                                          f"{dt.name} tensor of shape {tuple(a.shape)}")
        elif type(a) is int:  # the common scalar: nothing to check
            append(a)
        else:
            if hasattr(a, "buffer"):
                raise KernelArgumentError(f"{_name(plan.key)}: argument {i} is a scalar or struct, got a tensor")
            if type(a) is float and kind in _INTEGERS:
                if not a.is_integer():
                    raise KernelArgumentError(f"{_name(plan.key)}: argument {i} is an integer, got {a}")
                a = int(a)
            append(a)
    return out


def launch(device, file, name, grid, *args, local=None, defines=None, flops=None, nbytes=None):
    """Enqueue clkernels/<file>'s kernel `name` over `grid` (rounded up to a multiple of `local`).

    `local` defaults to the device profile's element-wise work-group for 1-D grids; n-D grids name
    theirs. `flops`/`nbytes` state the launch's work for the profiler's GFLOP/s and GB/s (only
    observers read them). An empty grid enqueues nothing and returns None; otherwise the event is
    returned."""
    grid = tuple(int(g) for g in grid)
    if 0 in grid:
        return None
    if local is None:
        if len(grid) != 1:
            raise ValueError(f"{file}:{name}: an {len(grid)}-D grid needs an explicit local size")
        local = (device.profile.map_local,)
    local = tuple(local)
    grid = tuple(-(-g // l) * l for g, l in zip(grid, local))
    key = (file, name, tuple(sorted(defines.items())) if defines else ())
    plan = _plan(device, key)
    kernel = plan.kernel
    kernel.set_args(*_kernel_args(plan, args))
    event = cl.enqueue_nd_range_kernel(device.queue, kernel, grid, local)
    if kernels.DEBUG:
        print(f"[minitorch_cl] launch {_name(key)} global={grid} local={local}", file=sys.stderr)
    for observe in observers:
        observe(device, key, event, grid, local, (flops, nbytes))
    return event
