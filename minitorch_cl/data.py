"""Datasets, a DataLoader that batches on the host and moves each batch to the device in one
transfer per tensor, and torchvision-style transforms on NumPy arrays."""
import math

import numpy as np

from . import distributed
from .tensor import Tensor, tensor

__all__ = ["Dataset", "TensorDataset", "DistributedSampler", "DataLoader", "ToTensor", "Normalize", "Compose"]


class Dataset:
    """A map-style data set: __getitem__(i) and __len__(). __getitems__(indices) may return a batch."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of equally long NumPy arrays (or tensors, read to the host once)."""

    def __init__(self, *arrays):
        arrays = [a.numpy() if isinstance(a, Tensor) else np.asarray(a) for a in arrays]
        if not arrays or any(len(a) != len(arrays[0]) for a in arrays):
            raise ValueError("TensorDataset needs arrays of equal length, got lengths " +
                             str([len(a) for a in arrays]))
        self.arrays = arrays

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __getitems__(self, indices):
        return tuple(a[indices] for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])


class DistributedSampler:
    """torch.utils.data.DistributedSampler: rank's share of the indices, the same length on every rank.

    Without drop_last the index list is padded by repeating its start until it divides evenly;
    with it the tail is dropped. The shuffled order depends only on (seed, epoch), so every rank
    draws the same permutation; call set_epoch(e) at the start of each epoch."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
        rank = distributed.get_rank() if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self):
        n = len(self.dataset)
        indices = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            indices = indices[:self.total_size]
        elif self.total_size > n:
            indices = np.resize(indices, self.total_size)  # repeats from the start, as torch pads
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        self.epoch = epoch


class DataLoader:
    """Iterates over (shuffled) batches; each field is stacked on the host and uploaded in one copy."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None, seed=None,
                 device=None, sampler=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        self.sampler = sampler
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last, self.device = shuffle, drop_last, device
        self.generator = generator if generator is not None else np.random.default_rng(seed)

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64)
        else:
            n = len(self.dataset)
            order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        n = len(order)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                return
            yield self._to_device(self._fetch(idx))

    def _fetch(self, idx):
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(idx)
        samples = [self.dataset[int(i)] for i in idx]
        if isinstance(samples[0], (tuple, list)):
            return tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(len(samples[0])))
        return np.stack([np.asarray(s) for s in samples])

    def _to_device(self, batch):
        if isinstance(batch, tuple):
            return tuple(self._to_device(b) for b in batch)
        arr = np.asarray(batch)
        if arr.dtype.kind in "iu" and arr.dtype != np.int32:
            arr = arr.astype(np.int64)  # labels: int64, as PyTorch's collate gives
        return tensor(arr, device=self.device)


class ToTensor:
    """uint8 images (..., H, W, C) in [0, 255] -> float32 (..., C, H, W) in [0, 1], as torchvision's."""

    def __call__(self, img):
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[..., None]
        scale = 1 / 255.0 if img.dtype == np.uint8 else 1.0
        return np.moveaxis(img, -1, -3).astype(np.float32) * np.float32(scale)


class Normalize:
    """(x - mean) / std per channel of (..., C, H, W) float arrays."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {std}")

    def __call__(self, x):
        return (np.asarray(x, dtype=np.float32) - self.mean) / self.std


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x
