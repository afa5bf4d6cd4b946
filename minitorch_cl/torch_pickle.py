"""Read the zip files torch.save writes (<name>/data.pkl + <name>/data/<key> storages + <name>/byteorder)
without PyTorch. A restricted unpickler rebuilds tensors (torch._utils._rebuild_tensor_v2,
_rebuild_parameter), storages by dtype, OrderedDict and plain containers, and refuses every other
global (os.system, builtins.eval, ...) before anything is called.

Tensors come back as minitorch_cl tensors of the same dtype (bfloat16 widened to float32), 0-d ones from NumPy arrays of shape () so they keep the shape the tensor
factory gives a 0-d array."""
import collections
import pickle
import zipfile

import numpy as np

from .nn.parameter import Parameter
from .tensor import Tensor, tensor

__all__ = ["is_torch_zip", "load_torch_zip", "UnsafeCheckpointError"]

_STORAGES = {  # torch.<Name>Storage -> the NumPy dtype of its bytes
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_DTYPES = {"float64": "float64", "double": "float64", "float32": "float32", "float": "float32",
           "float16": "float16", "half": "float16", "bfloat16": "float32", "int64": "int64", "long": "int64",
           "int32": "int32", "int": "int32", "int16": "int16", "short": "int16", "int8": "int8", "uint8": "uint8",
           "bool": "bool"}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint whose pickle names a global outside the tensor-only allow-list."""


class _StorageType:
    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_STORAGES[name])


def is_torch_zip(path):
    """True for a zip archive with a <prefix>/data.pkl (torch.save's format since 1.6)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/data.pkl") or n == "data.pkl" for n in zf.namelist())


def load_torch_zip(path, device=None):
    """The object torch.save stored in path, with tensors as minitorch_cl tensors on device."""
    with zipfile.ZipFile(path) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
        prefix = pkl[:-len("data.pkl")]
        names = set(zf.namelist())
        byteorder = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise ValueError(f"{path}: unknown byteorder {byteorder!r} in {prefix}byteorder")
        with zf.open(pkl) as f:
            return _Unpickler(f, zf, prefix, byteorder, device, path).load()


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, zf, prefix, byteorder, device, path):
        super().__init__(f, encoding="utf-8")
        self.zf, self.prefix, self.byteorder, self.device, self.path = zf, prefix, byteorder, device, path
        self.storages = {}  # key -> 1-D NumPy array; tensors that share a storage read it once
        self.allowed = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_tensor"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter,
            ("torch._tensor", "_rebuild_from_type_v2"): self._rebuild_from_type,
            ("torch", "Tensor"): "Tensor", ("torch.nn.parameter", "Parameter"): "Parameter",
            ("torch", "Size"): tuple, ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
            ("builtins", "slice"): slice, ("_codecs", "encode"): _encode,
        }

    def find_class(self, module, name):
        module = "builtins" if module == "__builtin__" else module  # protocol 2 writes Python 2's names
        found = self.allowed.get((module, name))
        if found is not None:
            return found
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]  # a torch.dtype object in the pickle: its minitorch_cl name
        raise UnsafeCheckpointError(
            f"{self.path}: refusing to load global {module}.{name}: a checkpoint may only contain tensors, "
            f"storages, OrderedDict and plain containers (it could run code when unpickled). A model saved "
            f"whole with torch.save(model) loads here as torch.save(model.state_dict()) does")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"{self.path}: unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            name = f"{self.prefix}data/{key}"
            try:
                raw = self.zf.read(name)
            except KeyError:
                raise ValueError(f"{self.path}: storage {name} is missing from the archive") from None
            dt = storage_type.dtype.newbyteorder("<" if self.byteorder == "little" else ">")
            arr = np.frombuffer(raw, dtype=dt, count=len(raw) // dt.itemsize)
            if storage_type.name == "BFloat16Storage":  # the upper half of a float32
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            self.storages[key] = arr.astype(arr.dtype.newbyteorder("="))
        return self.storages[key]

    def _rebuild_tensor(self, storage, offset, size, stride, *_):
        if not isinstance(storage, np.ndarray) or storage.ndim != 1:
            raise UnsafeCheckpointError(f"{self.path}: a tensor is rebuilt from a {type(storage).__name__}, "
                                        f"not from a storage of the archive")
        size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        numel = int(np.prod(size)) if size else 1
        last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if numel else offset - 1
        if len(size) != len(stride) or any(s < 0 for s in stride) or offset < 0 or last >= len(storage):
            raise ValueError(f"{self.path}: tensor of size {size}, stride {stride}, offset {offset} does not fit "
                             f"its storage of {len(storage)} elements")
        if numel == 0:
            arr = np.zeros(size, dtype=storage.dtype)
        else:
            item = storage.dtype.itemsize
            arr = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                                  strides=[s * item for s in stride]).copy()
        return tensor(arr, device=self.device)

    def _rebuild_parameter(self, data, requires_grad, *_):
        if not isinstance(data, Tensor):
            raise UnsafeCheckpointError(f"{self.path}: a parameter is rebuilt from a {type(data).__name__}")
        return Parameter(data, requires_grad=bool(requires_grad))

    def _rebuild_from_type(self, func, cls, args, state):
        if state:
            raise UnsafeCheckpointError(f"{self.path}: a tensor of type {cls} with extra state {sorted(state)} "
                                        f"cannot be loaded")
        return func(*args)


def _encode(text, encoding="latin1"):
    """How protocol-2 pickles store bytes: _codecs.encode(str, 'latin1')."""
    return text.encode(encoding)
