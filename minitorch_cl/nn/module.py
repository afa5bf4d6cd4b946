"""Module: parameters, buffers and submodules registered by attribute, as in torch.nn.Module."""
from collections import OrderedDict

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..device import Device
from ..tensor import Tensor
from .parameter import Parameter


class Module:
    training = True

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration ------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call super().__init__() before assigning to a Module's attributes")
        if value is None and name in self._parameters:  # `self.bias = None` keeps the slot, as torch does
            self._parameters[name] = None
            return
        if name in self._buffers and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value
            return
        target = self._parameters if isinstance(value, Parameter) else self._modules if isinstance(value, Module) \
            else None
        for store in (self._parameters, self._buffers, self._modules):
            if store is not target:  # a replaced parameter or submodule keeps its place in the order, as torch's
                store.pop(name, None)
        if target is None:
            object.__setattr__(self, name, value)
            return
        target[name] = value
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is None:
            self._parameters[name] = None
            self.__dict__.pop(name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name, value, persistent=True):
        """A tensor (or None) kept with the module, moved by to(); in state_dict only if persistent."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"cannot register a {type(value).__name__} as buffer {name!r} (a tensor or None)")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute {name!r} already exists as a parameter or submodule")
        self.__dict__.pop(name, None)
        self._buffers[name] = value
        non_persistent = self.__dict__.setdefault("_non_persistent", set())
        if persistent:
            non_persistent.discard(name)
        else:
            non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass (add_module {name!r})")
        self._modules[name] = module

    register_module = add_module

    # ---- traversal ---------------------------------------------------------------------
    def named_modules(self, memo=None, prefix=""):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mprefix, m in modules:
            for name, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mprefix, m in modules:
            for name, b in m._buffers.items():
                if b is not None and id(b) not in seen:
                    seen.add(id(b))
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def apply(self, fn):
        """fn(m) for every submodule (children first, as torch), then for self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and devices ---------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    def to(self, *args, **kwargs):
        """Move (or cast) every parameter and buffer in place, keeping Parameter identity. As in torch,
        a dtype casts only floating-point tensors (BatchNorm's int64 num_batches_tracked stays int64)."""
        for m in self.modules():
            for name, p in m._parameters.items():
                if p is not None:
                    p.data = p.data.to(*args, **kwargs)
            for name, b in m._buffers.items():
                if b is not None:
                    m._buffers[name] = b.to(*args, **kwargs) if b.dtype.is_floating else b.to(device=_device_of(b, args, kwargs))
        return self

    def float(self):
        return self.to(dtype="float32")

    def half(self):
        """Parameters and floating buffers as float16 (stored as half on every device, computed in float32)."""
        return self.to(dtype="float16")

    def cuda(self, device=None):
        """To an OpenCL GPU ("cuda" is its alias), the first or the given one."""
        return self.to("cuda" if device is None else device if not isinstance(device, int) else f"cuda:{device}")

    def cpu(self):
        """To the default OpenCL CPU device."""
        return self.to("cpu")

    # ---- calling ----------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- state ------------------------------------------------------------------------
    def state_dict(self, prefix=""):
        """Parameters and persistent buffers by dotted name, as detached tensors."""
        out = OrderedDict()
        for mprefix, m in self.named_modules(prefix=prefix.rstrip(".")):
            skip = m.__dict__.get("_non_persistent", set())
            for name, p in list(m._parameters.items()) + [(n, b) for n, b in m._buffers.items() if n not in skip]:
                if p is not None:
                    out[f"{mprefix}.{name}" if mprefix else name] = p.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values in by name; accepts tensors or NumPy arrays (e.g. a PyTorch state_dict's .numpy())."""
        state_dict = dict(state_dict)
        for name, m in self.named_modules():
            m._upgrade_state_dict(state_dict, name + "." if name else "")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for k, target in own.items():
            if k in state_dict:
                value = state_dict[k]
                shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
                if tuple(shape) != tuple(target.shape):
                    mismatched.append(f"{k}: checkpoint {tuple(shape)} vs model {tuple(target.shape)}")
        if mismatched or (strict and (missing or unexpected)):
            lines = []
            if missing:
                lines.append("missing keys: " + ", ".join(missing))
            if unexpected:
                lines.append("unexpected keys: " + ", ".join(unexpected))
            if mismatched:
                lines.append("shape mismatch: " + "; ".join(mismatched))
            raise RuntimeError(f"error loading state_dict into {type(self).__name__}:\n  " + "\n  ".join(lines))
        with no_grad():
            for k, target in own.items():
                if k in state_dict:
                    target.copy_(_as_tensor(state_dict[k], target))
        return _IncompatibleKeys(missing, unexpected)

    def _upgrade_state_dict(self, state_dict, prefix):
        """Rename, in place, this module's entries (under prefix) that an older version of it saved
        under other names; the counterpart of torch's version check in _load_from_state_dict."""

    # ---- printing -----------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = [f"({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


class _IncompatibleKeys:
    def __init__(self, missing, unexpected):
        self.missing_keys, self.unexpected_keys = missing, unexpected

    def __repr__(self):
        return f"<All keys matched successfully>" if not (self.missing_keys or self.unexpected_keys) else \
            f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


def _device_of(t, args, kwargs):
    """The device that to(*args, **kwargs) names (Tensor.to's rules), or t's own."""
    device = kwargs.get("device")
    for a in args:
        if isinstance(a, Tensor):
            device = a.device
        elif isinstance(a, Device) or (isinstance(a, str) and not dtypes.is_dtype_name(a)):
            device = a
    return t.device if device is None else device


def _as_tensor(value, like):
    if isinstance(value, Tensor):
        return value.to(like.device)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor
        value = value.detach().cpu().numpy()
    # a host array of the target's shape (a saved 0-d num_batches_tracked may be 1-D): copy_ uploads
    # it straight into the parameter's memory
    return np.asarray(value).reshape(like.shape)
