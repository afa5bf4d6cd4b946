"""Every differentiable op, grouped by kernel family (the Tensor methods are attached in tensor_methods.py)."""
from . import elementwise, matmul, reduce, shape  # noqa: F401
