"""torchvision.models.efficientnet: EfficientNet B0-B7 (arXiv:1905.11946) with torchvision's module tree,
stochastic depth and init; MBConv and FusedMBConv blocks."""
import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

from ... import nn
from ..ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth, sequential_eval
from ._api import Weights, WeightsEnum, load_weights, override_num_classes, register_model
from ._meta import _IMAGENET_CATEGORIES
from ._presets import ImageClassification
from ._utils import PooledClassifier, _make_divisible, init_mobile_weights

__all__ = ["EfficientNet", "EfficientNet_B0_Weights", "EfficientNet_B1_Weights", "EfficientNet_B2_Weights",
           "EfficientNet_B3_Weights", "EfficientNet_B4_Weights", "EfficientNet_B5_Weights",
           "EfficientNet_B6_Weights", "EfficientNet_B7_Weights", "efficientnet_b0", "efficientnet_b1",
           "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6",
           "efficientnet_b7"]


@dataclass
class _MBConvConfig:
    expand_ratio: float
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int
    block: Callable

    @staticmethod
    def adjust_channels(channels, width_mult, min_value: Optional[int] = None):
        return _make_divisible(channels * width_mult, 8, min_value)


class MBConvConfig(_MBConvConfig):
    def __init__(self, expand_ratio, kernel, stride, input_channels, out_channels, num_layers, width_mult=1.0,
                 depth_mult=1.0, block=None):
        input_channels = self.adjust_channels(input_channels, width_mult)
        out_channels = self.adjust_channels(out_channels, width_mult)
        num_layers = self.adjust_depth(num_layers, depth_mult)
        super().__init__(expand_ratio, kernel, stride, input_channels, out_channels, num_layers, block or MBConv)

    @staticmethod
    def adjust_depth(num_layers, depth_mult):
        return int(math.ceil(num_layers * depth_mult))


class FusedMBConvConfig(_MBConvConfig):
    def __init__(self, expand_ratio, kernel, stride, input_channels, out_channels, num_layers, block=None):
        super().__init__(expand_ratio, kernel, stride, input_channels, out_channels, num_layers,
                         block or FusedMBConv)


class MBConv(nn.Module):
    """1x1 expansion (SiLU), depthwise kxk (SiLU), squeeze-excitation (SiLU, sigmoid), linear 1x1 projection;
    a residual through stochastic depth when shapes allow."""

    def __init__(self, cnf, stochastic_depth_prob, norm_layer, se_layer=SqueezeExcitation):
        super().__init__()
        if not (1 <= cnf.stride <= 2):
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        layers = []
        activation_layer = nn.SiLU
        expanded_channels = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded_channels != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, expanded_channels, kernel_size=1,
                                               norm_layer=norm_layer, activation_layer=activation_layer))
        layers.append(Conv2dNormActivation(expanded_channels, expanded_channels, kernel_size=cnf.kernel,
                                           stride=cnf.stride, groups=expanded_channels, norm_layer=norm_layer,
                                           activation_layer=activation_layer))
        squeeze_channels = max(1, cnf.input_channels // 4)
        layers.append(se_layer(expanded_channels, squeeze_channels, activation=partial(nn.SiLU, inplace=True)))
        layers.append(Conv2dNormActivation(expanded_channels, cnf.out_channels, kernel_size=1, norm_layer=norm_layer,
                                           activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels

    def forward(self, input):
        result = sequential_eval(self.block, input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += input
        return result


class FusedMBConv(nn.Module):
    """EfficientNetV2's block: a full kxk expansion conv (SiLU) and a linear 1x1 projection (or one kxk conv)."""

    def __init__(self, cnf, stochastic_depth_prob, norm_layer):
        super().__init__()
        if not (1 <= cnf.stride <= 2):
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        layers = []
        activation_layer = nn.SiLU
        expanded_channels = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded_channels != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, expanded_channels, kernel_size=cnf.kernel,
                                               stride=cnf.stride, norm_layer=norm_layer,
                                               activation_layer=activation_layer))
            layers.append(Conv2dNormActivation(expanded_channels, cnf.out_channels, kernel_size=1,
                                               norm_layer=norm_layer, activation_layer=None))
        else:
            layers.append(Conv2dNormActivation(cnf.input_channels, cnf.out_channels, kernel_size=cnf.kernel,
                                               stride=cnf.stride, norm_layer=norm_layer,
                                               activation_layer=activation_layer))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels

    def forward(self, input):
        result = self.block(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += input
        return result


class EfficientNet(PooledClassifier):
    """EfficientNet V1/V2: a SiLU stem, one Sequential stage per config (stochastic depth growing linearly
    with the block index up to stochastic_depth_prob), a 1x1 conv, pooling, dropout and a linear classifier."""

    def __init__(self, inverted_residual_setting, dropout, stochastic_depth_prob=0.2, num_classes=1000,
                 norm_layer=None, last_channel=None):
        super().__init__()
        if not inverted_residual_setting:
            raise ValueError("The inverted_residual_setting should not be empty")
        elif not (isinstance(inverted_residual_setting, Sequence)
                  and all(isinstance(s, _MBConvConfig) for s in inverted_residual_setting)):
            raise TypeError("The inverted_residual_setting should be List[MBConvConfig]")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        firstconv_output_channels = inverted_residual_setting[0].input_channels
        layers = [Conv2dNormActivation(3, firstconv_output_channels, kernel_size=3, stride=2, norm_layer=norm_layer,
                                       activation_layer=nn.SiLU)]
        total_stage_blocks = sum(cnf.num_layers for cnf in inverted_residual_setting)
        stage_block_id = 0
        for cnf in inverted_residual_setting:
            stage = []
            for _ in range(cnf.num_layers):
                block_cnf = copy.copy(cnf)
                if stage:
                    block_cnf.input_channels = block_cnf.out_channels
                    block_cnf.stride = 1
                sd_prob = stochastic_depth_prob * float(stage_block_id) / total_stage_blocks
                stage.append(block_cnf.block(block_cnf, sd_prob, norm_layer))
                stage_block_id += 1
            layers.append(nn.Sequential(*stage))
        lastconv_input_channels = inverted_residual_setting[-1].out_channels
        lastconv_output_channels = last_channel if last_channel is not None else 4 * lastconv_input_channels
        layers.append(Conv2dNormActivation(lastconv_input_channels, lastconv_output_channels, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True),
                                        nn.Linear(lastconv_output_channels, num_classes))
        init_mobile_weights(self, lambda linear: nn.init.uniform_(linear.weight, -1.0 / math.sqrt(linear.out_features),
                                                                  1.0 / math.sqrt(linear.out_features)))


def _efficientnet(inverted_residual_setting, dropout, last_channel, weights, progress, **kwargs):
    if weights is not None:
        override_num_classes(kwargs, weights)
    model = EfficientNet(inverted_residual_setting, dropout, last_channel=last_channel, **kwargs)
    return load_weights(model, weights, progress)


def _efficientnet_conf(arch, **kwargs):
    if arch.startswith("efficientnet_b"):
        bneck_conf = partial(MBConvConfig, width_mult=kwargs.pop("width_mult"), depth_mult=kwargs.pop("depth_mult"))
        inverted_residual_setting = [
            bneck_conf(1, 3, 1, 32, 16, 1),
            bneck_conf(6, 3, 2, 16, 24, 2),
            bneck_conf(6, 5, 2, 24, 40, 2),
            bneck_conf(6, 3, 2, 40, 80, 3),
            bneck_conf(6, 5, 1, 80, 112, 3),
            bneck_conf(6, 5, 2, 112, 192, 4),
            bneck_conf(6, 3, 1, 192, 320, 1),
        ]
        last_channel = None
    else:
        raise ValueError(f"Unsupported model type {arch}")
    return inverted_residual_setting, last_channel


_COMMON_META_V1 = {"categories": _IMAGENET_CATEGORIES, "min_size": (1, 1),
                   "recipe": "https://github.com/pytorch/vision/tree/main/references/classification#efficientnet-v1"}
_PORTED = "These weights are ported from the original paper."


def _v1(url, crop_size, resize_size, num_params, acc1, acc5, ops, file_size, interpolation="bicubic", **meta):
    """A Weights entry of EfficientNet V1 (torchvision's values)."""
    return Weights(url=url, transforms=partial(ImageClassification, crop_size=crop_size, resize_size=resize_size,
                                               interpolation=interpolation),
                   meta={**_COMMON_META_V1, "num_params": num_params,
                         "_metrics": {"ImageNet-1K": {"acc@1": acc1, "acc@5": acc5}},
                         "_ops": ops, "_file_size": file_size, "_docs": _PORTED, **meta})


_URL = "https://download.pytorch.org/models/"


class EfficientNet_B0_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b0_rwightman-7f5810bc.pth", 224, 256, 5288548, 77.692, 93.532,
                        0.386, 20.451)
    DEFAULT = IMAGENET1K_V1


class EfficientNet_B1_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b1_rwightman-bac287d4.pth", 240, 256, 7794184, 78.642, 94.186,
                        0.687, 30.134)
    IMAGENET1K_V2 = _v1(_URL + "efficientnet_b1-c27df63c.pth", 240, 255, 7794184, 79.838, 94.934, 0.687, 30.136,
                        interpolation="bilinear",
                        recipe="https://github.com/pytorch/vision/issues/3995#new-recipe-with-lr-wd-crop-tuning",
                        _docs="These weights improve upon the results of the original paper by using a modified "
                              "version of TorchVision's new training recipe.")
    DEFAULT = IMAGENET1K_V2


class EfficientNet_B2_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b2_rwightman-c35c1473.pth", 288, 288, 9109994, 80.608, 95.310,
                        1.088, 35.174)
    DEFAULT = IMAGENET1K_V1


class EfficientNet_B3_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b3_rwightman-b3899882.pth", 300, 320, 12233232, 82.008, 96.054,
                        1.827, 47.184)
    DEFAULT = IMAGENET1K_V1


class EfficientNet_B4_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b4_rwightman-23ab8bcd.pth", 380, 384, 19341616, 83.384, 96.594,
                        4.394, 74.489)
    DEFAULT = IMAGENET1K_V1


class EfficientNet_B5_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b5_lukemelas-1a07897c.pth", 456, 456, 30389784, 83.444, 96.628,
                        10.266, 116.864)
    DEFAULT = IMAGENET1K_V1


class EfficientNet_B6_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b6_lukemelas-24a108a5.pth", 528, 528, 43040704, 84.008, 96.916,
                        19.068, 165.362)
    DEFAULT = IMAGENET1K_V1


class EfficientNet_B7_Weights(WeightsEnum):
    IMAGENET1K_V1 = _v1(_URL + "efficientnet_b7_lukemelas-c5b4e57e.pth", 600, 600, 66347960, 84.122, 96.908,
                        37.746, 254.675)
    DEFAULT = IMAGENET1K_V1


def _build(arch, weights, progress, width_mult, depth_mult, dropout, **kwargs):
    inverted_residual_setting, last_channel = _efficientnet_conf(arch, width_mult=width_mult, depth_mult=depth_mult)
    return _efficientnet(inverted_residual_setting, kwargs.pop("dropout", dropout), last_channel, weights, progress,
                         **kwargs)


_BN_B5_B7 = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)  # torchvision's B5-B7 norm layer


@register_model(weights=EfficientNet_B0_Weights)
def efficientnet_b0(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B0 (width 1.0, depth 1.0); weights: an EfficientNet_B0_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B0_Weights.verify(weights)
    return _build("efficientnet_b0", weights, progress, 1.0, 1.0, 0.2, **kwargs)


@register_model(weights=EfficientNet_B1_Weights)
def efficientnet_b1(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B1 (width 1.0, depth 1.1); weights: an EfficientNet_B1_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B1_Weights.verify(weights)
    return _build("efficientnet_b1", weights, progress, 1.0, 1.1, 0.2, **kwargs)


@register_model(weights=EfficientNet_B2_Weights)
def efficientnet_b2(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B2 (width 1.1, depth 1.2); weights: an EfficientNet_B2_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B2_Weights.verify(weights)
    return _build("efficientnet_b2", weights, progress, 1.1, 1.2, 0.3, **kwargs)


@register_model(weights=EfficientNet_B3_Weights)
def efficientnet_b3(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B3 (width 1.2, depth 1.4); weights: an EfficientNet_B3_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B3_Weights.verify(weights)
    return _build("efficientnet_b3", weights, progress, 1.2, 1.4, 0.3, **kwargs)


@register_model(weights=EfficientNet_B4_Weights)
def efficientnet_b4(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B4 (width 1.4, depth 1.8); weights: an EfficientNet_B4_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B4_Weights.verify(weights)
    return _build("efficientnet_b4", weights, progress, 1.4, 1.8, 0.4, **kwargs)


@register_model(weights=EfficientNet_B5_Weights)
def efficientnet_b5(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B5 (width 1.6, depth 2.2); weights: an EfficientNet_B5_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B5_Weights.verify(weights)
    return _build("efficientnet_b5", weights, progress, 1.6, 2.2, 0.4, norm_layer=_BN_B5_B7, **kwargs)


@register_model(weights=EfficientNet_B6_Weights)
def efficientnet_b6(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B6 (width 1.8, depth 2.6); weights: an EfficientNet_B6_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B6_Weights.verify(weights)
    return _build("efficientnet_b6", weights, progress, 1.8, 2.6, 0.5, norm_layer=_BN_B5_B7, **kwargs)


@register_model(weights=EfficientNet_B7_Weights)
def efficientnet_b7(*, weights=None, progress=True, **kwargs):
    """EfficientNet-B7 (width 2.0, depth 3.1); weights: an EfficientNet_B7_Weights or None, kwargs: EfficientNet's."""
    weights = EfficientNet_B7_Weights.verify(weights)
    return _build("efficientnet_b7", weights, progress, 2.0, 3.1, 0.5, norm_layer=_BN_B5_B7, **kwargs)
