"""torchvision.models._utils' helpers that the model files share."""


def _make_divisible(v, divisor, min_value=None):
    """The nearest multiple of divisor to v, at least min_value and not below 90% of v (the TF MobileNet rule)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v
