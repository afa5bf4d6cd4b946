"""mt.save / mt.load. Three formats, all written atomically (temporary file + rename, with the
permissions a plain open() would give under the user's umask):
- default: nested dicts, lists and scalars with tensors as NumPy arrays in one .npz file (a JSON
  description of the structure beside the arrays; no pickle);
- "*.safetensors": a flat {name: tensor} dict through the safetensors package's NumPy API;
- load() also reads PyTorch's torch.save zip files (torch_pickle.py; PyTorch need not be installed).
load() tells the formats apart by their contents, not by the file name."""
import json
import os
import tempfile
import zipfile

import numpy as np

from . import dtypes
from .tensor import Tensor, tensor
from .torch_pickle import UnsafeCheckpointError, is_torch_zip, load_torch_zip

__all__ = ["save", "load", "UnsafeCheckpointError"]

FORMAT = "minitorch_cl.checkpoint/1"


def save(obj, path):
    """Write obj (state dicts of models and optimizers, epochs, ...) to path atomically; a path ending
    in .safetensors takes a flat {str: tensor or array} dict and writes the safetensors format."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        data = _safetensors_bytes(obj, path)
        _atomic_write(path, lambda f: f.write(data))
        return
    arrays = {}
    meta = {"format": FORMAT, "root": _encode(obj, arrays)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def _atomic_write(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".mtcl")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600, made what open() would give
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _safetensors_bytes(obj, path):
    try:
        from safetensors.numpy import save as st_save
    except ImportError as err:
        raise ImportError(f"writing {path} needs the safetensors package: pip install safetensors") from err
    if not isinstance(obj, dict):
        raise TypeError(f"safetensors stores a flat dict of tensors; got {type(obj).__name__} for {path}")
    arrays = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, (Tensor, np.ndarray)):
            raise TypeError(f"safetensors stores str -> tensor entries; {k!r} is a {type(v).__name__} "
                            f"(save nested state to a non-.safetensors path instead)")
        arr = v.detach().numpy() if isinstance(v, Tensor) else v
        if isinstance(v, Tensor) and v.dtype is dtypes.bool_:
            arr = arr.astype(np.bool_)
        arrays[k] = np.ascontiguousarray(arr)
    return st_save(arrays)


def _umask():
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def load(path, map_location=None, weights_only=None):
    """Read a checkpoint of save() (.npz or .safetensors) or of torch.save; tensors are created on
    map_location (default: the default device). weights_only is accepted for torch.load's callers:
    torch files are always read through the tensor-only unpickler."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:2] == b"PK" and zipfile.is_zipfile(path) and is_torch_zip(path):
        return load_torch_zip(path, map_location)
    if head[:1] == b"\x80":
        raise ValueError(f"{path} is a pickle in torch's legacy format (torch.save with "
                         f"_use_new_zipfile_serialization=False); re-save it with torch.save's default format")
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < os.path.getsize(path):
        return _load_safetensors(path, map_location)  # u64 header length, then the JSON header
    return _load_npz(path, map_location)


def _load_safetensors(path, device):
    """A .safetensors file as {name: tensor}; BF16 entries (which NumPy lacks) are widened to float32."""
    try:
        from safetensors import safe_open
    except ImportError as err:
        raise ImportError(f"reading {path} needs the safetensors package: pip install safetensors") from err
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        arrays = {}
        with safe_open(path, framework="numpy") as st:
            for k in st.keys():
                arrays[k] = _bf16(path, 8 + n, header[k]) if header[k]["dtype"] == "BF16" else st.get_tensor(k)
    except Exception as err:
        raise ValueError(f"{path} is not a minitorch_cl, safetensors or torch checkpoint, or is damaged "
                         f"({type(err).__name__}: {err})") from None
    return {k: tensor(v, device=device) for k, v in arrays.items()}


def _bf16(path, data_start, entry):
    begin, end = entry["data_offsets"]
    with open(path, "rb") as f:
        f.seek(data_start + begin)
        bits = np.frombuffer(f.read(end - begin), dtype="<u2")
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def _load_npz(path, map_location):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
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
