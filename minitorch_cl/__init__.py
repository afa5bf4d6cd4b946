"""minitorch_cl: a PyTorch-like tensor/autograd engine whose every op is an OpenCL kernel."""
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .autograd import Function
from . import autograd  # noqa: F401  (mt.autograd.detect_anomaly, ...)
from .device import Device, DeviceError, device, devices
from .dtypes import bool_ as bool, float16, float32, float64, int8, int16, int32, int64, uint8
from .dtypes import finfo, iinfo, promote_types
from .kernels import KernelBuildError
from .tensor import (Tensor, arange, as_tensor, empty, empty_like, from_numpy, full, full_like, linspace, ones,
                     ones_like, tensor, zeros, zeros_like)
from .random import manual_seed, rand, randint, randn, randperm
from . import tensor_methods  # noqa: F401  (attaches the Tensor's operators and op methods)
from .ops.elementwise import *  # noqa: F401,F403  (every element-wise op of the table: exp, add, ...)
from .ops.reduce import all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .ops.shape import (cat, chunk, expand, flatten, index_select, narrow, permute, reshape, split, squeeze,
                        stack, transpose, unbind, unsqueeze)
from .ops.matmul import bmm, matmul, mm
from . import amp
from .autocast_state import autocast
from .ops.einsum import einsum
from .ops.indexing import (argwhere, gather, index_add, index_copy, index_fill, index_put, masked_scatter,
                           masked_select, nonzero, scatter, scatter_add, scatter_reduce, take, take_along_dim,
                           where)
from .ops.reduce import count_nonzero, norm, std_mean, var_mean
from .ops.scan import cummax, cummin, cumprod, cumsum, logcumsumexp, prod
from .ops.sort import argsort, kthvalue, median, mode, msort, sort, topk, unique
from .ops.manip import (diag, diagonal, eye, flip, fliplr, flipud, meshgrid, moveaxis, movedim, repeat_interleave,
                        roll, rot90, tile, tril, triu)
from .random import bernoulli, normal
from . import linalg  # noqa: F401
from . import vision  # before data: data re-exports vision.transforms' first three names
from . import cuda, data, datasets, distributed, hub, nn, optim, profiler, utils
from .device import OutOfMemoryError
from .serialization import load, save

float = float32
half = float16
long = int64
int = int32
double = float64
short = int16

cl = cuda  # mt.cl.memory_allocated() and friends: the same module under the project's own name

__version__ = "0.1.0"
