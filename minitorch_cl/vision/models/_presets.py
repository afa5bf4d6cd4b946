"""torchvision.transforms._presets.ImageClassification on our NumPy-image transforms: what a
pretrained classifier's weights.transforms() builds."""
from .. import transforms as T


class ImageClassification(T.Compose):
    """uint8 (H, W, C) images or float (C, H, W) -> resized (smaller edge), centre-cropped, normalized float32.
    Our Resize is bilinear only (bicubic raises NotImplementedError) and does not antialias."""

    def __init__(self, *, crop_size, resize_size=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 interpolation="bilinear", antialias=True):
        self.crop_size, self.resize_size, self.mean, self.std = [crop_size], [resize_size], list(mean), list(std)
        self.interpolation = interpolation
        super().__init__([T.ToTensor(), T.Resize(resize_size, interpolation, antialias), T.CenterCrop(crop_size),
                          T.Normalize(mean, std)])
