from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that a Module registers as one of its parameters; requires grad by default."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data.buffer, data.shape, data.strides, data.offset, data.dtype, data.device)
        self.requires_grad = requires_grad

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
