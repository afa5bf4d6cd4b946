"""mt.save / mt.load: nested dicts, lists and scalars with tensors stored as NumPy arrays in one
.npz file (a JSON description of the structure beside the arrays; no pickle), written atomically."""
import json
import os
import tempfile

import numpy as np

from . import dtypes
from .tensor import Tensor, tensor

__all__ = ["save", "load"]

FORMAT = "minitorch_cl.checkpoint/1"


def save(obj, path):
    """Write obj (state dicts of models and optimizers, epochs, ...) to path atomically."""
    arrays = {}
    meta = {"format": FORMAT, "root": _encode(obj, arrays)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".mtcl")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600, made what open() would give
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def load(path, map_location=None):
    """Read what save() wrote; tensors are created on map_location (default: the default device)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{path} is not a minitorch_cl checkpoint or is damaged ({type(err).__name__}: {err})") \
            from None
    meta = arrays.pop("__meta__", None)
    info = json.loads(bytes(meta).decode()) if meta is not None else {}
    if info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a minitorch_cl checkpoint (format {info.get('format')!r}, "
                         f"expected {FORMAT!r})")
    return _decode(info["root"], arrays, map_location)


def _encode(obj, arrays):
    if isinstance(obj, Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = obj.detach().numpy()
        return {"t": "tensor", "k": key, "dtype": obj.dtype.name}
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"t": "ndarray", "k": key}
    if isinstance(obj, dict):
        return {"t": "dict", "items": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"t": type(obj).__name__, "v": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"t": "scalar", "v": obj}
    raise TypeError(f"mt.save cannot store an object of type {type(obj).__name__}; use tensors, NumPy arrays, "
                    f"dicts, lists, tuples, numbers and strings")


def _decode(node, arrays, device):
    t = node["t"]
    if t == "tensor":
        return tensor(arrays[node["k"]], dtype=dtypes.as_dtype(node["dtype"]), device=device)
    if t == "ndarray":
        return arrays[node["k"]]
    if t == "dict":
        return {_decode(k, arrays, device): _decode(v, arrays, device) for k, v in node["items"]}
    if t in ("list", "tuple"):
        items = [_decode(v, arrays, device) for v in node["v"]]
        return items if t == "list" else tuple(items)
    return node["v"]
