"""Reverse-mode autograd: Function (forward and backward side by side) and the tape walk."""
from .grad_mode import enable_grad, grad_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .tensor import Tensor, ones, zeros


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
        tensors = [a if isinstance(a, Tensor) else None for a in args]
        ctx = Context()
        ctx.needs_input_grad = tuple(t is not None and t.requires_grad for t in tensors)
        record = is_grad_enabled() and any(ctx.needs_input_grad)
        with grad_mode(False):
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
    if tensor._node is None:
        _accumulate_leaf(tensor, grad)
        return
    pending = {id(tensor._node): [None] * len(tensor._node.out_meta)}
    pending[id(tensor._node)][tensor._out_index] = grad
    with grad_mode(False):
        for node in _topological_order(tensor._node):
            grads = pending.pop(id(node), None)
            if grads is None or all(g is None for g in grads):
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
                if t is None or g is None or not t.requires_grad:
                    continue
                g = _sum_to_shape(g, t.shape)
                if t._node is None:
                    _accumulate_leaf(t, g)
                else:
                    slot = pending.setdefault(id(t._node), [None] * len(t._node.out_meta))
                    i = t._out_index
                    slot[i] = g if slot[i] is None else slot[i] + g


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


def _accumulate_leaf(t, g):
    if g.dtype is not t.dtype:
        g = g.to(t.dtype)
    # A fresh buffer: g may be shared with another leaf, and .grad may be changed in place later.
    t.grad = g.contiguous().clone() if t.grad is None else (t.grad + g).detach()
