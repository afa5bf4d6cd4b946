"""torchvision.transforms._presets.ImageClassification, the `transforms` of the ImageNet weights entries:
resize the smaller edge, centre-crop, scale to [0, 1], normalize with the ImageNet mean/std."""
import numpy as np

from .. import transforms as T

__all__ = ["ImageClassification"]


class ImageClassification:
    """uint8 images (H, W, C) / batches (N, H, W, C), or float (C, H, W) ones already in [0, 1] ->
    normalized float32 (C, crop, crop) / (N, C, crop, crop)."""

    def __init__(self, *, crop_size, resize_size=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 interpolation="bilinear", antialias=True):
        self.crop_size, self.resize_size = [crop_size], [resize_size]
        self.mean, self.std = list(mean), list(std)
        self.interpolation, self.antialias = interpolation, antialias
        self._resize = T.Resize(resize_size, interpolation=interpolation, antialias=antialias)
        self._crop = T.CenterCrop(crop_size)
        self._to_tensor = T.ToTensor()
        self._normalize = T.Normalize(mean, std)

    def __call__(self, img):
        img = self._crop(self._resize(img))
        if isinstance(img, np.ndarray) and img.dtype == np.uint8:  # channels last, [0, 255]
            img = self._to_tensor(img)
        return self._normalize(img)

    def __repr__(self):
        return (f"ImageClassification(crop_size={self.crop_size}, resize_size={self.resize_size}, "
                f"mean={self.mean}, std={self.std}, interpolation={self.interpolation!r})")
