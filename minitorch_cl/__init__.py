"""minitorch_cl: a PyTorch-like tensor/autograd engine whose every op is an OpenCL kernel."""
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .device import Device, DeviceError, device, devices
from .dtypes import bool_ as bool, float16, float32, int32, int64
from .kernels import KernelBuildError
from .tensor import (Tensor, arange, empty, empty_like, full, full_like, linspace, manual_seed, ones,
                     ones_like, rand, randint, randn, randperm, tensor, zeros, zeros_like)
from .ops.elementwise import (abs, add, clamp, cos, div, eq, exp, ge, gelu, gt, le, log, lt, masked_fill,
                              maximum, minimum, mul, ne, neg, pow, relu, rsqrt, sigmoid, sign, sin, sqrt,
                              sub, tanh, where)
from .ops.reduce import all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .ops.shape import (cat, chunk, expand, flatten, index_select, narrow, permute, reshape, split, squeeze,
                        stack, transpose, unbind, unsqueeze)
from .ops.matmul import bmm, matmul, mm
from . import vision  # before data: data re-exports vision.transforms' first three names
from . import data, datasets, nn, optim, utils
from .serialization import load, save

float = float32
half = float16
long = int64
int = int32

__version__ = "0.1.0"
