"""The tensor dtypes, their NumPy and OpenCL C names, and PyTorch's promotion lattice."""
import numpy as np


class DType:
    def __init__(self, name, np_dtype, cl_name, rank, is_floating, is_signed=True):
        self.name, self.np, self.cl, self.rank, self.is_floating = name, np.dtype(np_dtype), cl_name, rank, is_floating
        self.is_signed = is_signed
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"minitorch_cl.{self.name}"

    @property
    def is_complex(self):
        return False

    @property
    def is_floating_point(self):
        return self.is_floating


bool_ = DType("bool", np.uint8, "uchar", 0, False, is_signed=False)
uint8 = DType("uint8", np.uint8, "uchar", 1, False, is_signed=False)
int8 = DType("int8", np.int8, "char", 1, False)
int16 = DType("int16", np.int16, "short", 2, False)
int32 = DType("int32", np.int32, "int", 3, False)
int64 = DType("int64", np.int64, "long", 4, False)
float16 = DType("float16", np.float16, "half", 5, True)
float32 = DType("float32", np.float32, "float", 6, True)
float64 = DType("float64", np.float64, "double", 7, True)
ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "half": float16, "double": float64, "int": int32, "long": int64,
                 "short": int16, "char": int8, "byte": uint8, "bool_": bool_})
_BY_NP = {d.np: d for d in ALL if d is not bool_}


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
    if nd in _BY_NP:
        return _BY_NP[nd]
    raise TypeError(f"unsupported dtype {x!r}; minitorch_cl has {', '.join(d.name for d in ALL)}"
                    + (" (convert unsigned arrays wider than 8 bits with .astype(np.int64))" if nd.kind == "u" else ""))


def is_dtype_name(text):
    return text in _BY_NAME


def _category(dt):
    return 0 if dt is bool_ else 2 if dt.is_floating else 1


def promote_types(a, b):
    """torch.promote_types: bool < integers < floats; uint8 with int8 is int16."""
    if a is b:
        return a
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    if ca == 1 and (a is uint8 or b is uint8):
        other = b if a is uint8 else a
        return int16 if other is int8 else other
    return a if a.rank >= b.rank else b


promote = promote_types


def scalar_dtype(value):
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    return float32


def _combine(higher, lower):
    """torch's combine_categories: a lower-priority operand only lifts the category."""
    if higher is None:
        return lower
    if lower is None or higher.is_floating:
        return higher
    if higher is bool_ or lower.is_floating:
        return promote_types(higher, lower)
    return higher


def result_type_of(*operands):
    """torch.result_type over operands given as (dtype, ndim) pairs or Python numbers: tensors with
    dimensions outrank 0-d tensors, which outrank Python numbers, except that a lower one lifts the
    category (int tensor + 0-d float tensor or a Python float is floating)."""
    dim = zero = wrapped = None
    for op in operands:
        if isinstance(op, tuple):
            dt, ndim = op
            if ndim:
                dim = dt if dim is None else promote_types(dim, dt)
            else:
                zero = dt if zero is None else promote_types(zero, dt)
        else:
            dt = scalar_dtype(op)
            wrapped = dt if wrapped is None else promote_types(wrapped, dt)
    return _combine(dim, _combine(zero, wrapped))


def result_type(tensor_dtype, scalar):
    """PyTorch's rule for tensor-with-Python-scalar: the scalar only lifts the category."""
    return result_type_of((tensor_dtype, 1), scalar)


def compute_dtype(dt):
    """The type a kernel computes in: float16 computes in float32, everything else in its own type."""
    return float32 if dt is float16 else dt


def cl_defines(device, **types):
    """-D options naming OpenCL C types (T=float, TA=long, ...). float16 is a storage type that every
    OpenCL 1.2 device reads and writes (common.h's LOAD/STORE), computed in float32 (compute_dtype);
    the fp16 extension is enabled only where the device has it. float64 needs cl_khr_fp64."""
    defines = {k: v.cl for k, v in types.items()}
    for k, v in types.items():
        if v is float16:
            defines[f"{k}_IS_HALF"] = 1  # a storage-only type there: no arithmetic, no atomics on it
    if any(v is float16 for v in types.values()) and device.has_fp16:
        defines["HAS_FP16"] = 1
    if any(v is float64 for v in types.values()):
        check_fp64(device)
        defines["HAS_FP64"] = 1
    return defines


def check_fp64(device):
    """float64 needs cl_khr_fp64; PyTorch's MPS backend refuses float64 the same way."""
    if not device.profile.fp64:
        raise TypeError(f"cannot use float64 on device {device.spec} ({device.name}): it has no cl_khr_fp64; "
                        "use float32 instead (.float())")


def can_cast(src, dst):
    """PyTorch's rule for writing a result into an existing tensor: no float into an integer or bool
    tensor, no integer into a bool one."""
    return _category(src) <= _category(dst)


def finfo(dtype=None):
    """torch.finfo: bits, eps, max, min, tiny, resolution of a floating dtype (default float32)."""
    dt = as_dtype(dtype) or float32
    if not dt.is_floating:
        raise TypeError("torch.finfo() requires a floating point input type. Use torch.iinfo to handle "
                        "'torch.finfo'")
    return np.finfo(dt.np)


def iinfo(dtype):
    """torch.iinfo: bits, max, min of an integer dtype."""
    dt = as_dtype(dtype)
    if dt.is_floating or dt is bool_:
        raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo to handle "
                        "'torch.iinfo'")
    return np.iinfo(dt.np)
