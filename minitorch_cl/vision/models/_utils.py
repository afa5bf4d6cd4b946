"""torchvision.models._utils' helpers that the model files share."""
from ... import nn
from ...ops.shape import flatten


def _make_divisible(v, divisor, min_value=None):
    """The nearest multiple of divisor to v, at least min_value and not below 90% of v (the TF MobileNet rule)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def init_mobile_weights(model, linear_init):
    """The MobileNets' and EfficientNet's initialisation, in module order: convolutions kaiming-normal
    (fan_out), norms weight 1 and bias 0, Linear weights by linear_init(linear), every bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            linear_init(m)
            nn.init.zeros_(m.bias)


class PooledClassifier(nn.Module):
    """The forward shared by MobileNetV3 and EfficientNet: features, avgpool, flatten, classifier
    (the subclass builds those three submodules, under torchvision's names)."""

    def _forward_impl(self, x):
        return self.classifier(flatten(self.avgpool(self.features(x)), 1))

    def forward(self, x):
        return self._forward_impl(x)
