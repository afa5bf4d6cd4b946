"""torchvision.ops' building blocks of the classification networks, written as torchvision writes them
(same submodule names, so state_dict keys match): Conv2dNormActivation, SqueezeExcitation, MLP,
StochasticDepth / stochastic_depth."""
from .. import dtypes, nn
from ..grad_mode import is_grad_enabled
from ..nn import functional as F
from ..nn.utils.fusion import fuse_conv_bn_weights
from ..ops.conv import depthwise_conv2d_act
from ..launch import launch
from ..shared_constants import (ACT_HARDSIGMOID, ACT_HARDSWISH, ACT_NONE, ACT_RELU, ACT_RELU6, ACT_SIGMOID,
                                ACT_SILU)
from ..tensor import empty

__all__ = ["Conv2dNormActivation", "SqueezeExcitation", "MLP", "StochasticDepth", "stochastic_depth"]


def stochastic_depth(input, p, mode, training=True):
    """Zero whole rows (mode "row": per sample) or the whole input ("batch") with probability p, scaling
    the survivors by 1 / (1 - p); the identity when not training."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ["batch", "row"]:
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input
    survival_rate = 1.0 - p
    size = [input.shape[0]] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
    noise = empty(*size, dtype=input.dtype, device=input.device).bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: see stochastic_depth."""

    def __init__(self, p, mode):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, input):
        return stochastic_depth(input, self.p, self.mode, self.training)

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p}, mode={self.mode})"


class Conv2dNormActivation(nn.Sequential):
    """Conv2d, then a norm layer (BatchNorm2d), then an activation (ReLU), as submodules 0, 1, 2.
    padding defaults to (kernel_size - 1) // 2 * dilation; the conv has a bias only without a norm layer."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, dilation=1, inplace=True, bias=None):
        if padding is None:
            if isinstance(kernel_size, int) and isinstance(dilation, int):
                padding = (kernel_size - 1) // 2 * dilation
            else:
                n = len(kernel_size) if not isinstance(kernel_size, int) else len(dilation)
                kernel_size = (kernel_size,) * n if isinstance(kernel_size, int) else tuple(kernel_size)
                dilation = (dilation,) * n if isinstance(dilation, int) else tuple(dilation)
                padding = tuple((k - 1) // 2 * d for k, d in zip(kernel_size, dilation))
        if bias is None:
            bias = norm_layer is None
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                            groups=groups, bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
        super().__init__(*layers)
        self.out_channels = out_channels

    def forward(self, input):
        return super().forward(input) if not _foldable(self, input) else _fused_eval(self, input)


# the activations that an eval pass fuses after a folded conv-BatchNorm: their act.h codes
_ACTS = {nn.ReLU: ACT_RELU, nn.Hardswish: ACT_HARDSWISH, nn.SiLU: ACT_SILU, nn.ReLU6: ACT_RELU6}
_IN_PLACE = {ACT_HARDSWISH: F.hardswish, ACT_SILU: F.silu, ACT_RELU6: F.relu6}  # after the GEMM


def _foldable(block, x):
    """Whether a Conv2dNormActivation's pass on x can run as _fused_eval: eval-mode BatchNorm, an
    activation act.h has, float32, and nothing that autograd would record."""
    conv, bn, act = (list(block) + [None])[:3]
    return not (block.training or len(block) > 3 or type(conv) is not nn.Conv2d or type(bn) is not nn.BatchNorm2d
                or bn.training or bn.running_mean is None or conv.padding_mode != "zeros"
                or isinstance(conv.padding, str) or (act is not None and type(act) not in _ACTS)
                or x.ndim != 4 or x.dtype is not dtypes.float32 or conv.weight.dtype is not dtypes.float32
                or (is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in block.parameters()))))


def _depthwise(block, x):
    conv = block[0]
    return conv.groups == conv.in_channels == x.shape[1] and conv.weight.shape[1] == 1


def _fused_eval(block, x, act_in=ACT_NONE, defer=False):
    """A foldable Conv2dNormActivation's pass as one convolution with the BatchNorm folded in, its
    activation fused in the depthwise kernel or the GEMM's ReLU epilogue, else run in place. act_in:
    an activation that x still needs (a depthwise block fuses it into its loads). defer=True (not
    depthwise): (y, code), y before the activation with that code (ACT_NONE: applied)."""
    conv, bn, act = (list(block) + [None])[:3]
    code = _ACTS[type(act)] if act is not None else ACT_NONE
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    if _depthwise(block, x):
        return depthwise_conv2d_act(x, w, b, conv.stride, conv.padding, conv.dilation, code, act_in)
    if act_in != ACT_NONE:
        x = _IN_PLACE[act_in](x, inplace=True) if act_in in _IN_PLACE else F.relu(x, inplace=True)
    y = F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups, relu=code == ACT_RELU)
    if defer:
        return (y, code) if code in _IN_PLACE else (y, ACT_NONE)
    return _IN_PLACE[code](y, inplace=True) if code in _IN_PLACE else y


def sequential_eval(layers, x):
    """x through the Sequential `layers`, as layers(x), except that a foldable Conv2dNormActivation
    followed by a foldable depthwise one leaves its activation to the depthwise kernel's loads
    (depthwise_fwd_band's ACT_IN: one pass over the expanded activation fewer), in MBConv and the
    inverted residuals."""
    mods, pending = list(layers), ACT_NONE
    for i, m in enumerate(mods):
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if pending != ACT_NONE:  # m is the depthwise block that takes it
            x, pending = _fused_eval(m, x, act_in=pending), ACT_NONE
        elif (type(m) is Conv2dNormActivation and type(nxt) is Conv2dNormActivation and _foldable(m, x)
              and not _depthwise(m, x) and _foldable(nxt, x) and nxt[0].in_channels == m.out_channels
              and nxt[0].groups == nxt[0].in_channels and nxt[0].weight.shape[1] == 1):
            x, pending = _fused_eval(m, x, defer=True)
        else:
            x = m(x)
    return x


class SqueezeExcitation(nn.Module):
    """x * sigma(fc2(delta(fc1(avgpool(x))))) with 1x1 convolutions fc1, fc2 (arXiv:1709.01507)."""

    def __init__(self, input_channels, squeeze_channels, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input):
        scale = self.avgpool(input)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale)

    def forward(self, input):
        if _se_fusable(self, input):
            return squeeze_excitation_eval(input, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias,
                                           _SE_ACTS[type(self.activation)], _SE_ACTS[type(self.scale_activation)])
        return self._scale(input) * input


_SE_ACTS = {nn.ReLU: ACT_RELU, nn.SiLU: ACT_SILU, nn.Hardswish: ACT_HARDSWISH, nn.ReLU6: ACT_RELU6,
            nn.Sigmoid: ACT_SIGMOID, nn.Hardsigmoid: ACT_HARDSIGMOID}


def _se_fusable(se, x):
    """Whether se's pass can run as squeeze_excitation_eval: nothing to record for autograd, float32
    (N, C, H, W), the layers as built (1x1 convolutions, activations that act.h has)."""
    fc = (se.fc1, se.fc2)
    return (type(se.avgpool) is nn.AdaptiveAvgPool2d and se.avgpool.output_size in (1, (1, 1))
            and all(type(c) is nn.Conv2d and c.kernel_size == (1, 1) and c.groups == 1 and c.padding in ((0, 0), "valid")
                    and c.stride == (1, 1) and c.weight.dtype is dtypes.float32 for c in fc)
            and type(se.activation) in _SE_ACTS and type(se.scale_activation) in _SE_ACTS
            and x.ndim == 4 and x.dtype is dtypes.float32 and x.shape[1] == se.fc1.in_channels
            and not (is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in se.parameters()))))


def squeeze_excitation_eval(x, w1, b1, w2, b2, act, scale_act):
    """x * scale_act(fc2(act(fc1(mean over H, W of x)))) in four launches (clkernels/se.cl) outside
    autograd: w1 (S, C, 1, 1), w2 (C, S, 1, 1), the activations act.h codes."""
    N, C, H, W = x.shape
    S = w1.shape[0]
    dev = x.device
    x = x.contiguous()
    pooled, hidden, scale = empty(N, C, device=dev), empty(N, S, device=dev), empty(N, C, device=dev)
    launch(dev, "se.cl", "se_mean", (N * C,), N * C, H * W, x, pooled)
    for inp, w, b, out, a in ((pooled, w1, b1, hidden, act), (hidden, w2, b2, scale, scale_act)):
        w = w.detach().contiguous()
        launch(dev, "se.cl", "se_dense", (out.numel(),), N, w.shape[0], w.shape[1], int(b is not None), inp, w,
               b.detach() if b is not None else w, out, defines={"ACT": a})
    y = empty(N, C, H, W, device=dev)
    launch(dev, "se.cl", "se_scale", (N * C,), N * C, H * W, x, scale, y)
    return y


class MLP(nn.Sequential):
    """Linear (+ norm) + activation + Dropout per hidden width, then Linear + Dropout."""

    def __init__(self, in_channels, hidden_channels, norm_layer=None, activation_layer=nn.ReLU, inplace=None,
                 bias=True, dropout=0.0):
        params = {} if inplace is None else {"inplace": inplace}
        layers, in_dim = [], in_channels
        for hidden_dim in hidden_channels[:-1]:
            layers.append(nn.Linear(in_dim, hidden_dim, bias=bias))
            if norm_layer is not None:
                layers.append(norm_layer(hidden_dim))
            layers.append(activation_layer(**params))
            layers.append(nn.Dropout(dropout, **params))
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, hidden_channels[-1], bias=bias))
        layers.append(nn.Dropout(dropout, **params))
        super().__init__(*layers)
