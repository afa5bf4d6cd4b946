"""torch.nn.utils' gradient clipping and conv-BatchNorm fusion."""
from . import fusion
from .clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .fusion import fuse_conv_bn_weights

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
           "fuse_conv_bn_weights"]
