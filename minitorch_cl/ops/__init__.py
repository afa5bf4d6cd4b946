"""Every differentiable op, grouped by kernel family; METHODS lists those that are also Tensor methods."""
from . import elementwise, matmul, reduce, shape
from .. import backend


def _relu_backward(g, out):
    """g where out > 0, else 0: the ReLU gradient from its output."""
    return backend.map2("OP_RELU_BWD", g, out)


METHODS = {
    # elementwise
    "add": elementwise.add, "sub": elementwise.sub, "mul": elementwise.mul, "div": elementwise.div,
    "pow": elementwise.pow, "neg": elementwise.neg, "exp": elementwise.exp, "log": elementwise.log,
    "sqrt": elementwise.sqrt, "rsqrt": elementwise.rsqrt, "tanh": elementwise.tanh,
    "sigmoid": elementwise.sigmoid, "relu": elementwise.relu, "abs": elementwise.abs,
    "sin": elementwise.sin, "cos": elementwise.cos, "sign": elementwise.sign,
    "clamp": elementwise.clamp, "clip": elementwise.clamp, "maximum": elementwise.maximum,
    "minimum": elementwise.minimum, "masked_fill": elementwise.masked_fill, "eq": elementwise.eq,
    "ne": elementwise.ne, "lt": elementwise.lt, "le": elementwise.le, "gt": elementwise.gt,
    "ge": elementwise.ge, "logical_not": elementwise.logical_not, "relu_backward": _relu_backward,
    # reductions
    "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max, "min": reduce.min, "amax": reduce.amax,
    "amin": reduce.amin, "argmax": reduce.argmax, "argmin": reduce.argmin, "var": reduce.var,
    "std": reduce.std, "all": reduce.all, "any": reduce.any, "logsumexp": reduce.logsumexp,
    # shapes
    "reshape": shape.reshape, "view": shape.view, "flatten": shape.flatten, "unflatten": shape.unflatten,
    "unsqueeze": shape.unsqueeze, "squeeze": shape.squeeze, "permute": shape.permute,
    "transpose": shape.transpose, "t": shape.t, "expand": shape.expand, "expand_as": shape.expand_as,
    "view_as": shape.view_as, "reshape_as": shape.reshape_as, "repeat": shape.repeat,
    "narrow": shape.narrow, "split": shape.split, "chunk": shape.chunk, "unbind": shape.unbind,
    "index_select": shape.index_select,
    # matmul
    "matmul": matmul.matmul, "mm": matmul.mm, "bmm": matmul.bmm, "dot": matmul.dot,
}
