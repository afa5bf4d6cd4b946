"""The tensor dtypes, their NumPy and OpenCL C names, and promotion."""
import numpy as np


class DType:
    def __init__(self, name, np_dtype, cl_name, rank, is_floating):
        self.name, self.np, self.cl, self.rank, self.is_floating = name, np.dtype(np_dtype), cl_name, rank, is_floating
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"minitorch_cl.{self.name}"


bool_ = DType("bool", np.uint8, "uchar", 0, False)
int32 = DType("int32", np.int32, "int", 1, False)
int64 = DType("int64", np.int64, "long", 2, False)
float16 = DType("float16", np.float16, "half", 3, True)
float32 = DType("float32", np.float32, "float", 4, True)
ALL = (bool_, int32, int64, float16, float32)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "half": float16, "int": int32, "long": int64, "bool_": bool_})


def as_dtype(x):
    """A DType from a DType, a name, a NumPy dtype or a Python type."""
    if x is None or isinstance(x, DType):
        return x
    if isinstance(x, str) and x in _BY_NAME:
        return _BY_NAME[x]
    if x is bool:
        return bool_
    if x is int:
        return int64
    if x is float:
        return float32
    nd = np.dtype(x)
    if nd == np.bool_:
        return bool_
    if nd.kind == "f":
        return float16 if nd == np.float16 else float32
    if nd.kind in "iu":
        return int32 if nd.itemsize <= 4 and nd != np.uint32 else int64
    raise TypeError(f"unsupported dtype {x!r}; minitorch_cl has {', '.join(d.name for d in ALL)}")


def is_dtype_name(text):
    return text in _BY_NAME


def promote(a, b):
    return a if a.rank >= b.rank else b


def scalar_dtype(value):
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int64
    return float32


def result_type(tensor_dtype, scalar):
    """PyTorch's rule for tensor-with-Python-scalar: the scalar only lifts int to float."""
    if isinstance(scalar, float) and not tensor_dtype.is_floating:
        return float32
    if isinstance(scalar, int) and not isinstance(scalar, bool) and tensor_dtype is bool_:
        return int64
    return tensor_dtype


def compute_dtype(dt):
    """The type a kernel computes in: float16 computes in float32, everything else in its own type."""
    return float32 if dt is float16 else dt


def cl_defines(device, **types):
    """-D options naming OpenCL C types (T=float, TA=long, ...). float16 is a storage type that every
    OpenCL 1.2 device reads and writes (common.h's LOAD/STORE), computed in float32 (compute_dtype);
    the fp16 extension is enabled only where the device has it."""
    defines = {k: v.cl for k, v in types.items()}
    for k, v in types.items():
        if v is float16:
            defines[f"{k}_IS_HALF"] = 1  # a storage-only type there: no arithmetic, no atomics on it
    if any(v is float16 for v in types.values()) and device.has_fp16:
        defines["HAS_FP16"] = 1
    return defines


def can_cast(src, dst):
    """PyTorch's rule for writing a result into an existing tensor: no float into an integer or bool
    tensor, no integer into a bool one."""
    kind = {False: 1, True: 2}
    src_kind = 0 if src is bool_ else kind[src.is_floating]
    dst_kind = 0 if dst is bool_ else kind[dst.is_floating]
    return src_kind <= dst_kind
