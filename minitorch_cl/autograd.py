"""Reverse-mode autograd: Function (forward and backward side by side) and the tape walk."""
import collections
import os
import sys
import threading
import traceback

import numpy as np

from .grad_mode import (detect_anomaly, enable_grad, grad_mode, is_anomaly_enabled, is_grad_enabled,  # noqa: F401
                        no_grad, set_detect_anomaly, set_grad_enabled)
from .tensor import Tensor, ones, zeros

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_backward_running = threading.local()  # anomaly mode checks the Functions' results there, not each op inside
_state = threading.local()  # the callbacks queued during the backward pass in progress


class Context:
    """What forward leaves for backward."""

    def __init__(self):
        self._saved, self._versions = (), ()
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors):
        self._saved = tensors
        self._versions = tuple(None if t is None else t._version for t in tensors)

    @property
    def saved_tensors(self):
        """The saved tensors, checked unchanged since forward (PyTorch's version-counter check)."""
        for t, v in zip(self._saved, self._versions):
            if t is not None and t._version != v:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: [{t.dtype.name} {list(t.shape)}] is at version {t._version}; expected version "
                    f"{v} instead")
        return self._saved


class Node:
    """One recorded call: the Function, its context, an Edge per input and its outputs' metadata."""
    __slots__ = ("fn", "ctx", "inputs", "out_meta", "hooks", "trace")

    def __init__(self, fn, ctx, inputs, outputs, trace=None):
        self.fn, self.ctx, self.hooks, self.trace = fn, ctx, {}, trace  # hooks: output index -> [hook(grad)]
        self.inputs = [Edge(t) if t is not None and t.requires_grad else None for t in inputs]
        self.out_meta = [(o.shape, o.dtype, o.device) for o in outputs]


class Edge:
    """Where an input's gradient goes: the node that made it (and which output), or the leaf
    itself. Taken when the op is recorded, so a later in-place op that gives the tensor a new
    history does not rewire this one. Only a leaf's tensor is kept: an intermediate one is
    freed as soon as nothing else (the user, a context's saved tensors) holds it, or the graph
    would keep every activation of the forward alive until the backward had finished."""
    __slots__ = ("tensor", "node", "index", "shape")

    def __init__(self, t):
        self.node, self.index, self.shape = t._node, t._out_index, t.shape
        self.tensor = t if t._node is None else None


class Function:
    """Subclasses define forward(ctx, *args) on raw tensors and backward(ctx, *grad_outputs),
    which returns one gradient (or None) per positional argument of forward."""

    @classmethod
    def apply(cls, *args, **kwargs):
        tensors = [a if isinstance(a, Tensor) else None for a in args]
        ctx = Context()
        ctx.needs_input_grad = tuple(t is not None and t.requires_grad for t in tensors)
        record = is_grad_enabled() and any(ctx.needs_input_grad)
        with grad_mode(False):
            out = cls.forward(ctx, *args, **kwargs)
        trace = None
        if is_anomaly_enabled() and not getattr(_backward_running, "on", False):
            trace = _user_trace()
            for i, o in enumerate(out if isinstance(out, tuple) else (out,)):
                _check_finite(o, f"Function '{cls.__name__}' returned nan or inf values in its {_nth(i)} output "
                                 f"in forward", trace)
        if record:
            outputs = out if isinstance(out, tuple) else (out,)
            node = Node(cls, ctx, tensors, outputs, trace)
            for i, o in enumerate(outputs):
                if isinstance(o, Tensor) and o.dtype.is_floating:
                    o.requires_grad = True
                    o._node, o._out_index = node, i
                    if any(t is not None and t.buffer is o.buffer for t in tensors):
                        o._is_view = True  # in place through it would bypass its base's history
        return out

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError


def _topological_order(root_node):
    """Nodes reachable from root, each after every node that consumes its outputs."""
    order, seen = [], {id(root_node)}
    stack = [(root_node, iter(root_node.inputs))]
    while stack:
        node, it = stack[-1]
        for t in it:
            child = t.node if t is not None else None
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return reversed(order)


def backward(tensor, grad=None, retain_graph=False):
    """Accumulate d(tensor)/d(leaf) into every leaf's .grad."""
    if not tensor.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if grad is None:
        if tensor.numel() != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs, got shape {tensor.shape}")
        grad = ones(tensor.shape, dtype=tensor.dtype, device=tensor.device)
    elif not isinstance(grad, Tensor):
        grad = Tensor.from_data(grad, dtype=tensor.dtype, device=tensor.device)
    if tuple(grad.shape) != tuple(tensor.shape):
        raise RuntimeError(f"gradient of shape {grad.shape} does not match the tensor's shape {tensor.shape}")
    _state.callbacks = []
    if tensor._node is None:
        _accumulate_leaf(tensor, grad, collections.Counter([id(tensor)]), set())
        _run_callbacks()
        return
    pending = {id(tensor._node): [None] * len(tensor._node.out_meta)}
    pending[id(tensor._node)][tensor._out_index] = grad
    _backward_running.on = True
    try:
        _run_backward(pending, tensor._node, retain_graph)
    except BaseException:
        _state.callbacks = None  # a failed pass (out of memory, anomaly) runs none of its callbacks
        raise
    finally:
        _backward_running.on = False
    _run_callbacks()
    tensor.device.check_errors()  # a bad index in forward or backward surfaces here at the latest


def _run_backward(pending, root, retain_graph):
    order = list(_topological_order(root))
    # Edges still to come into each leaf: its post-accumulate-grad hooks run once, after the last.
    uses = collections.Counter(id(e.tensor) for n in order for e in n.inputs if e is not None and e.node is None)
    received = set()
    with grad_mode(False):
        for node in order:
            grads = pending.pop(id(node), None)
            if grads is None or all(g is None for g in grads):
                for e in node.inputs:
                    if e is not None and e.node is None:
                        _accumulate_leaf(e.tensor, None, uses, received)
                continue
            if node.ctx is None:
                raise RuntimeError("trying to backward through the graph a second time; "
                                   "pass retain_graph=True to the first backward()")
            # a gradient has its tensor's dtype, as in torch (w * float32_out with a float64 w gives a
            # float64 product, whose gradient into out is float32 again)
            grads = [_zeros(meta) if g is None else g if g.dtype is meta[1] else g.to(dtype=meta[1])
                     for g, meta in zip(grads, node.out_meta)]
            for i, hooks in node.hooks.items():
                grads[i] = _run_hooks(hooks, grads[i])
            in_grads = node.fn.backward(node.ctx, *grads)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            if is_anomaly_enabled():
                for i, g in enumerate(in_grads):
                    _check_finite(g, f"Function '{node.fn.__name__}Backward' returned nan or inf values in its "
                                     f"{_nth(i)} output", node.trace)
            if not retain_graph:
                node.ctx = None
            in_grads = list(in_grads)
            for i in range(min(len(node.inputs), len(in_grads))):
                e, g, in_grads[i] = node.inputs[i], in_grads[i], None  # g is then this loop's own reference
                if e is None:
                    continue
                g = _sum_to_shape(g, e.shape) if g is not None else None
                if e.node is None:
                    g = g if e.tensor.requires_grad else None
                    owned = g is not None and _sole_owner(g)  # before g is an argument (one more reference)
                    _accumulate_leaf(e.tensor, g, uses, received, owned)
                elif g is not None:
                    slot = pending.setdefault(id(e.node), [None] * len(e.node.out_meta))
                    slot[e.index] = g if slot[e.index] is None else slot[e.index] + g


def _user_trace():
    """The caller's stack without the package's own frames: where the user's code made this op."""
    frames = [f for f in traceback.extract_stack()[:-2] if not f.filename.startswith(_PACKAGE_DIR)]
    return "".join(traceback.format_list(frames[-8:]))


def _nth(i):
    return f"{i}{'th' if 10 <= i % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(i % 10, 'th')}"


def _check_finite(t, what, trace):
    if isinstance(t, Tensor) and t.dtype.is_floating and t.numel():
        if not np.isfinite(t._to_host()).all():  # on the host: no op here may record or check again
            where = f"\nIt was created in forward at:\n{trace}" if trace else ""
            raise RuntimeError(f"{what}.{where}")


def _zeros(meta):
    shape, dtype, device = meta
    return zeros(shape, dtype=dtype, device=device)


def _sum_to_shape(g, shape):
    """Sum a broadcast gradient back to the operand's own shape."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    if dims:
        g = g.sum(dim=dims, keepdim=True)
    return g.reshape(shape)


def _run_hooks(hooks, g):
    for hook in list(hooks):
        out = hook(g)
        g = g if out is None else out
    return g


class RemovableHandle:
    """What register_*hook returns: .remove() takes the hook off again."""

    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register_hook(t, hook):
    """hook(grad) runs when t's gradient is computed; a returned tensor replaces the gradient."""
    if not t.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    hooks = t._grad_hooks if t._node is None else t._node.hooks.setdefault(t._out_index, [])
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def register_post_accumulate_grad_hook(t, hook):
    """hook(t) runs once per backward, after every contribution has been added to the leaf's .grad."""
    if t._node is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    t._post_accumulate_grad_hooks.append(hook)
    return RemovableHandle(t._post_accumulate_grad_hooks, hook)


def queue_callback(fn):
    """Run fn() when the backward pass in progress has finished (PyTorch's engine.queue_callback)."""
    callbacks = getattr(_state, "callbacks", None)
    if callbacks is None:
        raise RuntimeError("queue_callback can only be called during a backward pass")
    callbacks.append(fn)


def _run_callbacks():
    callbacks = _state.callbacks
    while callbacks:  # a callback may queue another
        callbacks.pop(0)()
    _state.callbacks = None


def _sole_owner(g):
    """Whether the backward loop holds the only reference to g and g the only one to its buffer (no
    view of it, no other leaf's gradient, nothing the user or a saved context keeps): then the leaf
    can take g's buffer as its .grad instead of a copy, as PyTorch's AccumulateGrad steals one.
    The counts: the loop's variable, this parameter and getrefcount's own argument; for the buffer,
    g's attribute and the argument."""
    return sys.getrefcount(g) <= 3 and sys.getrefcount(g.buffer) <= 2


def _accumulate_leaf(t, g, uses, received, owned=False):
    """Add g (None: this edge brought nothing) into t.grad; after t's last edge, run its hooks.
    owned: nothing else can see g's buffer (see _sole_owner), so .grad may be g itself."""
    if g is not None:
        hooked = _run_hooks(t._grad_hooks, g)
        owned = owned and hooked is g  # a hook's tensor may be kept by the hook
        g = hooked
        if g.dtype is not t.dtype:
            g, owned = g.to(t.dtype), True
        if t.grad is None:
            # .grad is changed in place later (optimizers, clip_grad_norm_), so it must be a buffer of
            # its own: a copy unless g is fresh (a contiguous() copy) or owned outright.
            fresh = g.contiguous()
            t.grad = fresh.detach() if fresh is not g or (owned and g.offset == 0) else fresh.clone()
        else:
            t.grad = (t.grad + g).detach()
        received.add(id(t))
    uses[id(t)] -= 1
    if uses[id(t)] == 0 and id(t) in received:
        for hook in list(t._post_accumulate_grad_hooks):
            hook(t)
