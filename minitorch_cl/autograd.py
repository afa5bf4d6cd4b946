"""Reverse-mode autograd: Function (forward and backward side by side), the tape walk, no_grad."""
import collections
import contextlib
import threading

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled):
    previous = is_grad_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = previous


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator that turns recording off."""

    def __enter__(self):
        self._cm = _grad_mode(False)
        self._cm.__enter__()

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


class enable_grad(no_grad):
    def __enter__(self):
        self._cm = _grad_mode(True)
        self._cm.__enter__()


class Context:
    """What forward leaves for backward."""

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


class Node:
    """One recorded call: the Function, its context, its tensor inputs and its outputs' metadata."""
    __slots__ = ("fn", "ctx", "inputs", "out_meta")

    def __init__(self, fn, ctx, inputs, outputs):
        self.fn, self.ctx, self.inputs = fn, ctx, inputs
        self.out_meta = [(o.shape, o.dtype, o.device) for o in outputs]


class Function:
    """Subclasses define forward(ctx, *args) on raw tensors and backward(ctx, *grad_outputs),
    which returns one gradient (or None) per positional argument of forward."""

    @classmethod
    def apply(cls, *args, **kwargs):
        from .tensor import Tensor
        tensors = [a if isinstance(a, Tensor) else None for a in args]
        ctx = Context()
        ctx.needs_input_grad = tuple(t is not None and t.requires_grad for t in tensors)
        record = is_grad_enabled() and any(ctx.needs_input_grad)
        with _grad_mode(False):
            out = cls.forward(ctx, *args, **kwargs)
        if record:
            outputs = out if isinstance(out, tuple) else (out,)
            node = Node(cls, ctx, tensors, outputs)
            for i, o in enumerate(outputs):
                if isinstance(o, Tensor) and o.dtype.is_floating:
                    o.requires_grad = True
                    o._node, o._out_index = node, i
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
            child = t._node if t is not None else None
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
    from .tensor import Tensor, ones
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
    order = list(_topological_order(tensor._node))
    # Edges still to come into each leaf: its post-accumulate-grad hooks run once, after the last.
    uses = collections.Counter(id(t) for n in order for t in n.inputs if t is not None and t._node is None)
    received = set()
    with _grad_mode(False):
        for node in order:
            grads = pending.pop(id(node), None)
            if grads is None or all(g is None for g in grads):
                for t in node.inputs:
                    if t is not None and t._node is None:
                        _accumulate_leaf(t, None, uses, received)
                continue
            if node.ctx is None:
                raise RuntimeError("trying to backward through the graph a second time; "
                                   "pass retain_graph=True to the first backward()")
            grads = [g if g is not None else _zeros(meta) for g, meta in zip(grads, node.out_meta)]
            in_grads = node.fn.backward(node.ctx, *grads)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            if not retain_graph:
                node.ctx = None
            for t, g in zip(node.inputs, in_grads):
                if t is None:
                    continue
                g = _sum_to_shape(g, t.shape) if g is not None and t.requires_grad else None
                if t._node is None:
                    _accumulate_leaf(t, g, uses, received)
                elif g is not None:
                    slot = pending.setdefault(id(t._node), [None] * len(t._node.out_meta))
                    i = t._out_index
                    slot[i] = g if slot[i] is None else slot[i] + g
    _run_callbacks()


def _zeros(meta):
    from .tensor import zeros
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


def _accumulate_leaf(t, g, uses, received):
    """Add g (None: this edge brought nothing) into t.grad; after t's last edge, run its hooks."""
    if g is not None:
        if g.dtype is not t.dtype:
            g = g.to(t.dtype)
        # A fresh buffer: g may be shared with another leaf, and .grad may be changed in place later.
        t.grad = g.contiguous().clone() if t.grad is None else (t.grad + g).detach()
        received.add(id(t))
    uses[id(t)] -= 1
    if uses[id(t)] == 0 and id(t) in received:
        for hook in list(t.__dict__.get("_post_accumulate_grad_hooks", {}).values()):
            hook(t)


class RemovableHandle:
    """What register_*_hook returns: .remove() unregisters the hook."""

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


def register_post_accumulate_grad_hook(t, hook):
    """hook(t) runs once per backward, after every contribution has been added to the leaf's .grad."""
    if t._node is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    hooks = t.__dict__.setdefault("_post_accumulate_grad_hooks", {})
    key = max(hooks, default=-1) + 1
    hooks[key] = hook
    return RemovableHandle(hooks, key)


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
