"""Datasets and a DataLoader that batches on the host (in worker processes when num_workers > 0) and
moves each batch to the device in one transfer per array; the transforms' old home (now vision)."""
import bisect
import collections.abc
import math
import numbers

import numpy as np

from . import distributed
from .data_workers import WorkerPool, get_worker_info
from .ops.shape import stack
from .tensor import Tensor, tensor
from .vision.transforms import Compose, Normalize, ToTensor  # their old home; see vision.transforms

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DistributedSampler", "DataLoader",
           "default_collate",
           "get_worker_info", "ToTensor", "Normalize", "Compose"]


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


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices):
        rows = self.indices[np.asarray(indices, dtype=np.int64)]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(rows)
        return collate_numpy([self.dataset[int(i)] for i in rows])

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Data sets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one data set")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a ConcatDataset of {len(self)} samples")
        k = bisect.bisect_right(self.cumulative_sizes, index)
        return self.datasets[k][index - (self.cumulative_sizes[k - 1] if k else 0)]

    def __len__(self):
        return self.cumulative_sizes[-1]


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


def random_split(dataset, lengths, generator=None):
    """Subsets of a random permutation with the given lengths (or fractions summing to 1, the remainder
    spread one by one over the first subsets, as torch). generator: a NumPy Generator (default: fresh)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(0 <= f <= 1 for f in lengths) and abs(sum(lengths) - 1) < 1e-9 and sum(lengths) != n:
        sizes = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} do not sum to the data set's {n} samples")
    order = (generator if generator is not None else np.random.default_rng()).permutation(n)
    ends = np.cumsum(lengths)
    return [Subset(dataset, order[end - size:end]) for size, end in zip(lengths, ends)]


class DataLoader:
    """torch.utils.data.DataLoader over a map-style data set: batches of batch_size (single samples
    when it is None), optionally shuffled from `generator`/`seed`, collated on the host and uploaded
    to `device`, one copy per array. With num_workers > 0, worker processes fetch and collate batches
    ahead (prefetch_factor each) while the main process computes; batches arrive in the same order as
    with num_workers=0. persistent_workers keeps the processes between epochs.

    collate_fn(samples) runs where the batch is fetched (in a worker when num_workers > 0) and
    should return NumPy arrays, numbers, or tuples/lists/dicts of them; every NumPy array in the
    result is then uploaded to `device` in the main process. Without collate_fn, a data set's
    __getitems__(indices) (a whole batch at once) is used when it has one, else default collation.
    Each worker seeds NumPy's global generator, `random` and mt.manual_seed with base_seed + id
    (base_seed drawn from `generator` per epoch), so a seed reproduces random transforms.
    pin_memory is accepted and ignored (uploads already go straight from host memory)."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None, seed=None,
                 device=None, collate_fn=None, num_workers=0, pin_memory=False, timeout=0, worker_init_fn=None,
                 prefetch_factor=None, persistent_workers=False, multiprocessing_context=None, sampler=None):
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        self.sampler = sampler
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive or None, got {batch_size}")
        if batch_size is None and drop_last:
            raise ValueError("drop_last needs a batch_size")
        if num_workers < 0:
            raise ValueError(f"num_workers must be non-negative, got {num_workers}")
        if num_workers == 0 and (prefetch_factor is not None or persistent_workers):
            raise ValueError("prefetch_factor and persistent_workers need num_workers > 0")
        if prefetch_factor is not None and prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be positive, got {prefetch_factor}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last, self.device = shuffle, drop_last, device
        self.generator = generator if generator is not None else np.random.default_rng(seed)
        self.collate_fn, self.num_workers, self.pin_memory = collate_fn, num_workers, pin_memory
        self.timeout, self.worker_init_fn = timeout, worker_init_fn
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers else prefetch_factor
        self.persistent_workers, self.multiprocessing_context = persistent_workers, multiprocessing_context
        self._pool = None  # the persistent workers, once started

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self):
        """The index arrays of one epoch."""
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64)
        else:
            n = len(self.dataset)
            order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        n = len(order)
        if self.batch_size is None:  # no batching: one sample at a time, as torch's batch_size=None
            yield from (int(i) for i in order)
            return
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                return
            yield idx

    def __iter__(self):
        base_seed = int(self.generator.integers(2 ** 62))  # drawn in both modes: the same shuffles follow
        if self.num_workers == 0:
            for idx in self._batches():
                yield self._to_device(fetch(self.dataset, idx, self.collate_fn))
            return
        pool = self._pool
        if pool is None or not pool.alive():
            pool = WorkerPool(self, base_seed, fetch)
            if self.persistent_workers:
                self._pool = pool
        try:
            for batch in pool.run(self._batches()):
                yield self._to_device(batch)
        finally:
            if not self.persistent_workers:
                pool.shutdown()

    def _to_device(self, batch):
        return to_device(batch, self.device)

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()


def fetch(dataset, idx, collate_fn=None):
    """One batch on the host: collate_fn(samples), a data set's __getitems__, or default collation;
    an int index (batch_size=None) is one sample, passed through collate_fn when there is one."""
    if isinstance(idx, int):
        sample = dataset[idx]
        return collate_fn(sample) if collate_fn is not None else sample
    if collate_fn is not None:
        return collate_fn([dataset[int(i)] for i in idx])
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(idx)
    return collate_numpy([dataset[int(i)] for i in idx])


def collate_numpy(samples):
    """PyTorch's default_collate on the host: arrays and numbers stack into one array, tuples, lists and
    dicts are collated field by field, strings stay a list."""
    elem = samples[0]
    if isinstance(elem, Tensor):
        return stack(samples)
    if isinstance(elem, (np.ndarray, np.generic, numbers.Number)):
        return np.stack([np.asarray(s) for s in samples])
    if isinstance(elem, (str, bytes)) or elem is None:
        return list(samples)
    if isinstance(elem, collections.abc.Mapping):
        return {k: collate_numpy([s[k] for s in samples]) for k in elem}
    if isinstance(elem, (tuple, list)):
        if any(len(s) != len(elem) for s in samples):
            raise RuntimeError(f"each element in a batch should have the same length, got lengths "
                               f"{sorted({len(s) for s in samples})}")
        fields = [collate_numpy(list(f)) for f in zip(*samples)]
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
            return type(elem)(*fields)
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default collate: a batch must contain NumPy arrays, numbers, strings, tensors or "
                    f"dicts/lists/tuples of them; found {type(elem).__name__}")


def to_device(batch, device=None):
    """Upload every NumPy array in a (nested) batch; integer arrays become int64 (int32 stays int32)."""
    if isinstance(batch, np.ndarray):
        if batch.dtype.kind in "iu" and batch.dtype != np.int32:
            batch = batch.astype(np.int64)  # labels: int64, as PyTorch's collate gives
        return tensor(batch, device=device)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(b, device) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def default_collate(samples, device=None):
    """torch.utils.data.default_collate: a list of samples -> a batch of tensors."""
    return to_device(collate_numpy(samples), device)
