"""torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad: param_groups, state, state_dict; every update is
a fused kernel (clkernels/optim.cl) with torch.optim's exact formulas, one launch per eight float32
parameters for SGD and Adam (torch's foreach step), one per parameter otherwise."""
import copy
import math

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..launch import launch
from ..tensor import Tensor, full_like, tensor, zeros_like

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


class Optimizer:
    """Holds param_groups (lists of parameters with their hyper-parameters) and per-parameter state."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        """Add a dict with 'params' and optional per-group hyper-parameters."""
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize tensors, got {type(p).__name__}")
            if p.dtype not in (dtypes.float32, dtypes.float16, dtypes.float64):
                raise TypeError(f"optimizer supports floating point parameters, got {p.dtype!r} of shape {p.shape}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def _params_with_grad(self, group):
        for p in group["params"]:
            if p.grad is None:
                continue
            if not p.is_contiguous() or p.offset:
                raise ValueError(f"optimizer needs contiguous parameters; got one of shape {p.shape} with "
                                 f"strides {p.strides}")
            g = p.grad
            if not g.is_contiguous() or g.offset:
                g = g.contiguous().clone()
            if g.device != p.device or tuple(g.shape) != tuple(p.shape):
                raise RuntimeError(f"gradient of shape {g.shape} on {g.device.spec} does not match its "
                                   f"parameter of shape {p.shape} on {p.device.spec}")
            yield p, g

    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}, as torch.optim."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        params = [p for g in self.param_groups for p in g["params"]]
        state = {index[id(p)]: dict(self.state[p]) for p in params if p in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by state_dict() (tensors or NumPy arrays)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        for saved, own in zip(groups, self.param_groups):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"a loaded parameter group has {len(saved['params'])} parameters, this "
                                 f"optimizer's has {len(own['params'])}")
        self.state = {}
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = copy.deepcopy(v)
            for idx, p in zip(saved["params"], own["params"]):
                entry = state_dict["state"].get(idx, state_dict["state"].get(str(idx)))
                if entry is not None:
                    self.state[p] = {k: _state_value(v, p, k) for k, v in entry.items()}

    def step(self, closure=None):
        raise NotImplementedError

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _state_value(v, p, key):
    """A saved state entry on p's device: buffers become tensors shaped like p, scalars stay scalars
    (torch keeps 'step' as a 0-d tensor: it becomes a float here)."""
    if key == "step" and (isinstance(v, Tensor) or isinstance(v, np.ndarray)) and int(np.prod(v.shape)) == 1:
        return float(v.item())
    if isinstance(v, Tensor) or isinstance(v, np.ndarray) and v.ndim > 0:
        arr = v if isinstance(v, Tensor) else tensor(v, dtype=p.dtype, device=p.device)
        if tuple(arr.shape) != tuple(p.shape):
            raise ValueError(f"optimizer state {key!r} of shape {tuple(arr.shape)} does not match its parameter "
                             f"of shape {p.shape}")
        return arr.to(p.device).clone()
    return v.item() if isinstance(v, np.ndarray) else v


_PER_ITEM = {"sgd_step": 8, "adam_step": 8}  # elements per work-item of the kernels that take eight


def _launch(p, name, *args):
    """One fused update of parameter p; like any in-place write it bumps p's version. The kernels
    are float32: a float16 parameter (model.half()) and its state are updated through float32
    copies, written back."""
    n = p.numel()
    copies = {}  # one float32 copy per tensor: an unused buffer argument is p (or v) again, and a
    for a in args:  # second copy written back after the first would undo its update
        if isinstance(a, Tensor) and a.dtype in (dtypes.float16, dtypes.float64) and id(a) not in copies:
            copies[id(a)] = (a, a.float())
    wide = [copies[id(a)][1] if id(a) in copies else a for a in args]
    launch(p.device, "optim.cl", name, (-(-n // _PER_ITEM.get(name, 1)),), n, *wide)
    for a, w in copies.values():
        a.copy_(w)
    p._bump_version()


SLOTS = 8  # parameters per launch of optim.cl's eight-slot kernels (sgd_step8, adam_step8)
# A parameter larger than this has a launch of its own: there the launch's host cost is small against
# its kernel, and the eight-slot kernel's per-work-item choice of pointers ran 1.5x slower on PoCL
# (a 2M-element weight: 0.8-0.9 ms against 0.5-0.6)
SLOT_MAX = 1 << 16


def _launch_all(name, common, updates):
    """The updates of one step, each (p, its scalars, its tensors): the float32 ones of at most
    SLOT_MAX elements in launches of SLOTS parameters of one device (torch's foreach step), any other
    through _launch."""
    by_device = {}
    for p, scalars, tensors in updates:
        if p.numel() <= SLOT_MAX and all(t.dtype is dtypes.float32 for t in tensors):
            by_device.setdefault(p.device, []).append((p, scalars, tensors))
        else:
            _launch(p, name, *common, *scalars, *tensors)
    for dev, items in by_device.items():
        for k in range(0, len(items), SLOTS):
            chunk = items[k:k + SLOTS]
            args, w = [], 0
            for p, scalars, tensors in chunk:
                args += [p.numel(), w, *scalars, *tensors]
                w += -(-p.numel() // _PER_ITEM[name])
            _, scalars, tensors = chunk[0]
            for _ in range(SLOTS - len(chunk)):  # unused slots: no elements, starting past the grid
                args += [0, 1 << 30, *scalars, *tensors]
            launch(dev, "optim.cl", name + "8", (w,), *common, *args)
            for p, _, _ in chunk:
                p._bump_version()


class SGD(Optimizer):
    """torch.optim.SGD: momentum, dampening, Nesterov and (coupled) weight decay."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid SGD hyper-parameters lr={lr}, momentum={momentum}, "
                             f"weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if maximize:
            raise NotImplementedError("SGD(maximize=True) is not implemented")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=False))

    @no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            momentum, updates = group["momentum"], []
            for p, g in self._params_with_grad(group):
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                first = buf is None
                if momentum != 0 and first:
                    buf = state["momentum_buffer"] = zeros_like(p)  # the kernel writes d into it
                updates.append((p, (first,), (g, p, buf if buf is not None else p)))
                if momentum == 0:
                    state["momentum_buffer"] = None
            _launch_all("sgd_step", (group["lr"], momentum, group["dampening"], group["weight_decay"],
                                     bool(group["nesterov"])), updates)
        return loss


class Adam(Optimizer):
    """torch.optim.Adam (weight decay added to the gradient); amsgrad supported."""
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid {type(self).__name__} hyper-parameters lr={lr}, betas={betas}, "
                             f"eps={eps}, weight_decay={weight_decay}")
        if maximize:
            raise NotImplementedError(f"{type(self).__name__}(maximize=True) is not implemented")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=False))

    @no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            amsgrad, updates = bool(group["amsgrad"]), []
            for p, g in self._params_with_grad(group):
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0.0
                    state["exp_avg"], state["exp_avg_sq"] = zeros_like(p), zeros_like(p)
                    if amsgrad:
                        state["max_exp_avg_sq"] = zeros_like(p)
                state["step"] += 1
                t = state["step"]
                step_size = group["lr"] / (1 - beta1 ** t)
                bc2_sqrt = math.sqrt(1 - beta2 ** t)
                vmax = state.get("max_exp_avg_sq", state["exp_avg_sq"])
                updates.append((p, (step_size, bc2_sqrt), (g, p, state["exp_avg"], state["exp_avg_sq"], vmax)))
            _launch_all("adam_step", (group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                                      self._decoupled, amsgrad), updates)
        return loss


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (p *= 1 - lr * weight_decay)."""
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: square-average decay alpha, eps outside the root, momentum, centered."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or alpha < 0:
            raise ValueError(f"invalid RMSprop hyper-parameters lr={lr}, alpha={alpha}, eps={eps}, "
                             f"weight_decay={weight_decay}, momentum={momentum}")
        if maximize:
            raise NotImplementedError("RMSprop(maximize=True) is not implemented")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=False))

    @no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            momentum, centered = group["momentum"], bool(group["centered"])
            for p, g in self._params_with_grad(group):
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0.0
                    state["square_avg"] = zeros_like(p)
                    if momentum > 0:
                        state["momentum_buffer"] = zeros_like(p)
                    if centered:
                        state["grad_avg"] = zeros_like(p)
                state["step"] += 1
                _launch(p, "rmsprop_step", group["lr"], group["alpha"], group["eps"], group["weight_decay"],
                        momentum, centered, g, p, state["square_avg"], state.get("grad_avg", p),
                        state.get("momentum_buffer", p))
        return loss


class Adagrad(Optimizer):
    """torch.optim.Adagrad: sum += g^2, p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum) + eps)."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        if lr < 0 or lr_decay < 0 or weight_decay < 0 or initial_accumulator_value < 0 or eps < 0:
            raise ValueError(f"invalid Adagrad hyper-parameters lr={lr}, lr_decay={lr_decay}, "
                             f"weight_decay={weight_decay}, initial_accumulator_value={initial_accumulator_value}, "
                             f"eps={eps}")
        if maximize:
            raise NotImplementedError("Adagrad(maximize=True) is not implemented")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=False))
        for group in self.param_groups:  # torch creates Adagrad's state up front
            for p in group["params"]:
                self.state[p] = {"step": 0.0, "sum": full_like(p, group["initial_accumulator_value"])}

    @no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p, g in self._params_with_grad(group):
                state = self.state[p]
                state["step"] += 1
                clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
                _launch(p, "adagrad_step", clr, group["eps"], group["weight_decay"], g, p, state["sum"])
        return loss
