"""torch.nn.functional's names, re-exported from the op families in minitorch_cl.ops."""
from ..ops.dropout import dropout, dropout1d, dropout2d, dropout3d
from ..ops.elementwise import gelu, relu, sigmoid, tanh
from ..ops.matmul import linear
from ..ops.conv import *  # noqa: F401,F403  conv2d
from ..ops.pool import *  # noqa: F401,F403  max_pool2d, avg_pool2d
from ..ops.softmax import *  # noqa: F401,F403  softmax, log_softmax, cross_entropy, nll_loss, mse_loss
from ..ops.lstm import *  # noqa: F401,F403
from ..ops.rnn import *  # noqa: F401,F403  gru, rnn, gru_cell, rnn_cell
from ..ops.attention import *  # noqa: F401,F403  scaled_dot_product_attention
from ..ops.norm import *  # noqa: F401,F403  layer_norm
from ..ops.batchnorm import *  # noqa: F401,F403  batch_norm, group_norm
from ..ops.loss import *  # noqa: F401,F403  binary_cross_entropy(_with_logits), l1/smooth_l1/huber, kl_div, ...
from ..ops.interpolate import *  # noqa: F401,F403  interpolate, pixel_shuffle, pixel_unshuffle
from ..ops.manip import fold, pad, unfold  # noqa: F401
from ..ops.activation import *  # noqa: F401,F403  silu, elu, softplus, prelu, gelu(approximate=), ... (after elementwise)
