"""torchvision.transforms' common transforms on NumPy images and batches, and some on tensors.

No PIL: the data sets return images as NumPy arrays, and the dtype tells the layout, as PIL image vs
tensor does in torchvision:
- uint8 arrays are images in H x W x C (or H x W for grey), batches N x H x W x C;
- float arrays (what ToTensor returns) and minitorch_cl tensors are C x H x W, batches N x C x H x W.
A 4-D input is a batch. Deterministic transforms work on a whole batch at once; random ones draw
their parameters per image, in order, from NumPy's global generator (np.random.seed reproduces
them, and DataLoader workers seed it per worker), so a batch gets what its images one by one get.
Tensors (on the device) are accepted by Normalize, CenterCrop, RandomCrop without padding,
RandomHorizontalFlip, Lambda and Compose."""
import math
import numbers

import numpy as np

from ..ops.shape import index_select, stack
from ..tensor import Tensor, arange, tensor

__all__ = ["Compose", "ToTensor", "Normalize", "Lambda", "CenterCrop", "Pad", "Resize", "RandomCrop",
           "RandomHorizontalFlip", "RandomVerticalFlip", "RandomResizedCrop", "ColorJitter"]


# ---- layout helpers -----------------------------------------------------------------------------
def _channels_last(x):
    return isinstance(x, np.ndarray) and x.dtype == np.uint8


def _hw_axes(x):
    """The (H, W) axes: HWC / NHWC for uint8 arrays, CHW / NCHW otherwise; HW images are (0, 1)."""
    if x.ndim == 2:
        return 0, 1
    if _channels_last(x):
        return x.ndim - 3, x.ndim - 2
    return x.ndim - 2, x.ndim - 1


def _size(x):
    h, w = _hw_axes(x)
    return x.shape[h], x.shape[w]


def _is_batch(x):
    return x.ndim == 4


def _check_image(x, name, tensors=False):
    if isinstance(x, Tensor):
        if not tensors:
            raise TypeError(f"{name} works on NumPy images (H x W x C uint8 or C x H x W float); got a tensor "
                            f"of shape {x.shape}: apply it before the batch moves to the device")
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"{name} expects a NumPy image{' or a tensor' if tensors else ''}, got {type(x).__name__}")
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{name} expects an image (H x W, H x W x C, C x H x W) or a 4-D batch, got shape "
                         f"{tuple(x.shape)}")


def _stack(items):
    return stack(items) if isinstance(items[0], Tensor) else np.stack(items)


def _pair(size, name):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        return size[0], size[0]
    if len(size) != 2:
        raise ValueError(f"{name}: size must be an int or (h, w), got {size}")
    return size


def _crop(x, top, left, h, w):
    ha, wa = _hw_axes(x)
    H, W = x.shape[ha], x.shape[wa]
    if top < 0 or left < 0 or top + h > H or left + w > W:
        raise ValueError(f"crop ({top}, {left}, {h}, {w}) does not fit an image of size {(H, W)}")
    index = [slice(None)] * x.ndim
    index[ha], index[wa] = slice(top, top + h), slice(left, left + w)
    return x[tuple(index)]


def _pad(x, left, top, right, bottom, fill=0, mode="constant"):
    ha, wa = _hw_axes(x)
    width = [(0, 0)] * x.ndim
    width[ha], width[wa] = (top, bottom), (left, right)
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=fill)
    if mode not in ("edge", "reflect", "symmetric"):
        raise ValueError(f"padding_mode must be constant, edge, reflect or symmetric, got {mode!r}")
    return np.pad(x, width, mode=mode)


def _padding4(padding):
    """torchvision's padding argument -> (left, top, right, bottom)."""
    if isinstance(padding, numbers.Number):
        return (int(padding),) * 4
    p = tuple(int(v) for v in padding)
    if len(p) == 1:
        return p * 4
    if len(p) == 2:
        return p[0], p[1], p[0], p[1]
    if len(p) == 4:
        return p
    raise ValueError(f"padding must be an int or a sequence of 1, 2 or 4 ints, got {padding}")


def _resize_axis(x, axis, out):
    """Linear interpolation along one axis with half-pixel centres (torch's bilinear, align_corners=False)."""
    n = x.shape[axis]
    src = (np.arange(out, dtype=np.float64) + 0.5) * (n / out) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = (src - i0).reshape([-1 if a == axis % x.ndim else 1 for a in range(x.ndim)])
    return np.take(x, i0, axis=axis) * (1 - lam) + np.take(x, i1, axis=axis) * lam


def _resize(x, h, w):
    ha, wa = _hw_axes(x)
    y = _resize_axis(_resize_axis(x.astype(np.float64), ha, h), wa, w)
    if x.dtype == np.uint8:
        return np.clip(np.round(y), 0, 255).astype(np.uint8)
    return y.astype(x.dtype)


# ---- the transforms ---------------------------------------------------------------------------
class Compose:
    """Apply transforms in order. On a batch with a random transform inside, each image goes through
    the whole chain in turn, so the random draws happen in the same order as image by image."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    @property
    def handles_batches(self):
        return all(getattr(t, "handles_batches", False) for t in self.transforms)

    @property
    def random(self):
        return any(getattr(t, "random", True) for t in self.transforms)

    def __call__(self, x):
        if _is_batch(x) and self.random:
            return _stack([self(xi) for xi in x])
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        return "Compose(\n" + "".join(f"    {t!r}\n" for t in self.transforms) + ")"


class _Transform:
    random = False           # draws from np.random
    handles_batches = True   # a 4-D input is treated as a batch of images

    def __call__(self, x):
        if self.random and _is_batch(x):
            return _stack([self.forward(xi) for xi in x])
        return self.forward(x)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class ToTensor(_Transform):
    """uint8 images (H, W[, C]) or batches (N, H, W, C) in [0, 255] -> float32 (C, H, W) / (N, C, H, W)
    in [0, 1], as torchvision's; other dtypes are moved to channels-first without scaling. Returns a
    NumPy array (the DataLoader uploads it)."""

    def forward(self, img):
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[..., None]
        scale = 1 / 255.0 if img.dtype == np.uint8 else 1.0
        return np.moveaxis(img, -1, -3).astype(np.float32) * np.float32(scale)


class Normalize(_Transform):
    """(x - mean) / std per channel of (C, H, W) or (N, C, H, W) float arrays or tensors."""

    def __init__(self, mean, std, inplace=False):
        self.mean, self.std = tuple(float(m) for m in np.atleast_1d(mean)), tuple(float(s) for s in np.atleast_1d(std))
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must be non-zero, got {std}")
        self._mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        self._std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)

    def forward(self, x):
        if isinstance(x, Tensor):
            return (x - tensor(self._mean, device=x.device)) / tensor(self._std, device=x.device)
        if _channels_last(x):
            raise TypeError("Normalize expects a float (C, H, W) image; apply ToTensor to uint8 images first")
        return (np.asarray(x, dtype=np.float32) - self._mean) / self._std


class Lambda(_Transform):
    """Apply a user function; it sees what it is given (an image, or a batch when called on one)."""
    random = True  # unknown: Compose runs it image by image on batches
    handles_batches = False

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda needs a callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class CenterCrop(_Transform):
    """Crop the centre (h, w), padding with zeros first when the image is smaller (as torchvision)."""

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def forward(self, x):
        _check_image(x, "CenterCrop", tensors=True)
        th, tw = self.size
        H, W = _size(x)
        if th > H or tw > W:
            _check_image(x, "CenterCrop (with padding)")
            pl, pt = (tw - W) // 2 if tw > W else 0, (th - H) // 2 if th > H else 0
            x = _pad(x, pl, pt, (tw - W + 1) // 2 if tw > W else 0, (th - H + 1) // 2 if th > H else 0)
            H, W = _size(x)
        return _crop(x, int(round((H - th) / 2.0)), int(round((W - tw) / 2.0)), th, tw)


class Pad(_Transform):
    """Pad the borders: padding int, (left/right, top/bottom) or (left, top, right, bottom)."""

    def __init__(self, padding, fill=0, padding_mode="constant"):
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode
        self._p = _padding4(padding)
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"padding_mode must be constant, edge, reflect or symmetric, got {padding_mode!r}")

    def forward(self, x):
        _check_image(x, "Pad")
        return _pad(x, *self._p, fill=self.fill, mode=self.padding_mode)


class Resize(_Transform):
    """Bilinear resize to (h, w), or the smaller edge to size keeping the aspect ratio (an int). Half-pixel
    centres and no antialiasing: torch.nn.functional.interpolate(mode='bilinear', align_corners=False)."""

    def __init__(self, size, interpolation="bilinear", antialias=None):
        if interpolation not in ("bilinear", 2):
            raise NotImplementedError(f"Resize supports bilinear interpolation only, got {interpolation!r}")
        self.size = size if isinstance(size, numbers.Number) else tuple(size)

    def _target(self, H, W):
        if isinstance(self.size, numbers.Number) or len(self.size) == 1:
            s = int(self.size if isinstance(self.size, numbers.Number) else self.size[0])
            return (s, int(s * W / H)) if H <= W else (int(s * H / W), s)
        return _pair(self.size, "Resize")

    def forward(self, x):
        _check_image(x, "Resize")
        return _resize(x, *self._target(*_size(x)))


class RandomCrop(_Transform):
    """Pad (optionally), then crop (h, w) at a uniformly random position."""
    random = True

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _pair(size, "RandomCrop")
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    def forward(self, x):
        _check_image(x, "RandomCrop", tensors=self.padding is None and not self.pad_if_needed)
        if self.padding is not None:
            x = _pad(x, *_padding4(self.padding), fill=self.fill, mode=self.padding_mode)
        th, tw = self.size
        H, W = _size(x)
        if self.pad_if_needed and (H < th or W < tw):
            dw, dh = max(tw - W, 0), max(th - H, 0)
            x = _pad(x, dw, dh, dw, dh, fill=self.fill, mode=self.padding_mode)
            H, W = _size(x)
        if H < th or W < tw:
            raise ValueError(f"RandomCrop: crop size {(th, tw)} is larger than the (padded) image {(H, W)}")
        top = int(np.random.randint(0, H - th + 1))
        left = int(np.random.randint(0, W - tw + 1))
        return _crop(x, top, left, th, tw)


def _flip(x, axis):
    if isinstance(x, Tensor):
        n = x.shape[axis]
        return index_select(x, axis, arange(n - 1, -1, -1, device=x.device))
    return np.flip(x, axis=axis).copy()


class RandomHorizontalFlip(_Transform):
    """Mirror left-right with probability p."""
    random = True

    def __init__(self, p=0.5):
        self.p = p

    def forward(self, x):
        _check_image(x, "RandomHorizontalFlip", tensors=True)
        return _flip(x, _hw_axes(x)[1]) if np.random.random() < self.p else x


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability p."""

    def forward(self, x):
        _check_image(x, "RandomVerticalFlip", tensors=True)
        return _flip(x, _hw_axes(x)[0]) if np.random.random() < self.p else x


class RandomResizedCrop(_Transform):
    """A random crop of random area (scale) and aspect ratio (ratio), resized to size; torchvision's
    parameter search (10 tries, then a centre crop)."""
    random = True

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation="bilinear",
                 antialias=None):
        self.size = _pair(size, "RandomResizedCrop")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomResizedCrop: scale and ratio must be (min, max), got {scale}, {ratio}")
        Resize(1, interpolation)  # the same check of interpolation

    def get_params(self, H, W):
        area = H * W
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= W and 0 < h <= H:
                return int(np.random.randint(0, H - h + 1)), int(np.random.randint(0, W - w + 1)), h, w
        in_ratio = W / H
        if in_ratio < min(self.ratio):
            w, h = W, int(round(W / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = H, int(round(H * max(self.ratio)))
        else:
            w, h = W, H
        return (H - h) // 2, (W - w) // 2, h, w

    def forward(self, x):
        _check_image(x, "RandomResizedCrop")
        top, left, h, w = self.get_params(*_size(x))
        return _resize(_crop(x, top, left, h, w), *self.size)


class ColorJitter(_Transform):
    """Random brightness, contrast and saturation (factors uniform in [max(0, 1 - v), 1 + v]), applied in
    a random order, with torchvision's tensor formulas (uint8 results are truncated as there). On RGB
    images; grey images get brightness and contrast. hue is not implemented."""
    random = True

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        if hue:
            raise NotImplementedError("ColorJitter(hue=...) is not implemented; brightness, contrast and "
                                      "saturation are")
        self.brightness, self.contrast, self.saturation = (self._range(v, n) for v, n in
                                                           ((brightness, "brightness"), (contrast, "contrast"),
                                                            (saturation, "saturation")))

    @staticmethod
    def _range(v, name):
        if isinstance(v, numbers.Number):
            if v < 0:
                raise ValueError(f"ColorJitter: {name} must be non-negative, got {v}")
            return None if v == 0 else (max(0.0, 1.0 - v), 1.0 + v)
        lo, hi = (float(t) for t in v)
        if not 0 <= lo <= hi:
            raise ValueError(f"ColorJitter: {name} range must be 0 <= min <= max, got {v}")
        return None if lo == hi == 1 else (lo, hi)

    def forward(self, x):
        _check_image(x, "ColorJitter")
        order = np.random.permutation(3)
        factors = [None if r is None else float(np.random.uniform(*r))
                   for r in (self.brightness, self.contrast, self.saturation)]
        axis = None if x.ndim == 2 else (-1 if _channels_last(x) else -3)
        bound = 255.0 if x.dtype == np.uint8 else 1.0
        y = x.astype(np.float32)
        for k in order:
            f = factors[k]
            if f is None:
                continue
            if k == 0:
                other = np.zeros_like(y)
            elif k == 1:
                other = np.full_like(y, _grey(y, axis, x.dtype).mean(dtype=np.float32))
            else:
                if axis is None or y.shape[axis] == 1:
                    continue
                other = np.expand_dims(_grey(y, axis, x.dtype), axis)
            y = np.clip(f * y + (1.0 - f) * other, 0.0, bound)
            if x.dtype == np.uint8:
                y = np.floor(y)  # torchvision's .to(uint8) after each blend
        return y.astype(x.dtype)


def _grey(y, axis, dtype):
    """0.2989 R + 0.587 G + 0.114 B over the channel axis (grey images as they are)."""
    if axis is None or y.shape[axis] == 1:
        return y if axis is None else np.take(y, 0, axis=axis)
    r, g, b = (np.take(y, i, axis=axis) for i in range(3))
    grey = 0.2989 * r + 0.587 * g + 0.114 * b
    return np.floor(grey) if dtype == np.uint8 else grey
