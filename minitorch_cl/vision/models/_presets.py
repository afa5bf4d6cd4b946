"""torchvision's ImageClassification preset (torchvision.transforms._presets): what a pretrained
classifier expects of an image, built from vision.transforms. Takes uint8 (H, W, C) images or
batches (what PIL images are in torchvision) and float (C, H, W) ones in [0, 1]. Resize is bilinear
without antialiasing (vision.transforms has no antialias), so downscaled images differ slightly."""
import numpy as np

from ..transforms import CenterCrop, Normalize, Resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageClassification:
    """Resize the smaller edge to resize_size, center-crop crop_size, scale to [0, 1], normalize."""

    def __init__(self, *, crop_size, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 interpolation="bilinear", antialias=True):
        self.crop_size, self.resize_size = [crop_size], [resize_size]
        self.mean, self.std = list(mean), list(std)
        self.interpolation, self.antialias = interpolation, antialias
        self._resize, self._crop = Resize(resize_size, interpolation), CenterCrop(crop_size)
        self._normalize = Normalize(mean, std)

    def __call__(self, img):
        img = self._crop(self._resize(np.asarray(img)))
        if img.dtype == np.uint8:  # (..., H, W, C) -> (..., C, H, W) in [0, 1]
            img = np.moveaxis(img, -1, -3).astype(np.float32) / np.float32(255.0)
        return self._normalize(img)

    def __repr__(self):
        return (f"ImageClassification(\n    crop_size={self.crop_size}\n    resize_size={self.resize_size}\n"
                f"    mean={self.mean}\n    std={self.std}\n    interpolation={self.interpolation}\n)")
