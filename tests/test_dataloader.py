"""DataLoader's collation and worker processes: same batches as num_workers=0, seeds, errors, shutdown."""
import collections
import gc
import multiprocessing
import os
import time

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.utils import data
from minitorch_cl.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, get_worker_info


class Items(Dataset):
    """Per-item samples of several kinds: the default collate stacks them field by field."""

    def __init__(self, n=23, fail_at=None, exit_at=None):
        self.n, self.fail_at, self.exit_at = n, fail_at, exit_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise ValueError(f"bad index {i}")
        if i == self.exit_at:
            os._exit(3)
        return {"x": np.full((2, 3), i, np.float32), "label": i % 5, "pair": (float(i) / 2, np.int32(i))}


class Noisy(Dataset):
    """Samples drawn from NumPy's global generator, as random transforms do."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        info = get_worker_info()
        return np.random.random(3).astype(np.float32), -1 if info is None else info.id


def _host(batch):
    if isinstance(batch, mt.Tensor):
        return batch.numpy()
    if isinstance(batch, dict):
        return {k: _host(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_host(b) for b in batch)
    return batch


def _epochs(loader, n=1):
    return [[_host(b) for b in loader] for _ in range(n)]


def _no_children(timeout=10):
    end = time.monotonic() + timeout
    while multiprocessing.active_children() and time.monotonic() < end:
        time.sleep(0.05)
    return not multiprocessing.active_children()


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, dict):
            assert sorted(x) == sorted(y)
            for k in x:
                _assert_same([x[k]], [y[k]])
        elif isinstance(x, (tuple, list)):
            _assert_same(list(x), list(y))
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kw", [dict(), dict(shuffle=True, drop_last=True), dict(shuffle=True, prefetch_factor=1)])
def test_workers_match_single_process(dev, kw):
    single = kw.copy()
    single.pop("prefetch_factor", None)
    want = _epochs(DataLoader(Items(), batch_size=4, seed=5, device=dev, **single), 2)
    got = _epochs(DataLoader(Items(), batch_size=4, seed=5, device=dev, num_workers=2, **kw), 2)
    _assert_same(got, want)
    first = want[0][0]
    assert first["x"].shape == (4, 2, 3) and first["label"].dtype == np.int64 and first["pair"][1].dtype == np.int32
    assert _no_children()


def test_workers_with_getitems_dataset(dev):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    ds = TensorDataset(x, np.arange(20))
    want = _epochs(DataLoader(ds, batch_size=3, shuffle=True, seed=1, device=dev))
    got = _epochs(DataLoader(ds, batch_size=3, shuffle=True, seed=1, device=dev, num_workers=3, pin_memory=True))
    _assert_same(got, want)


def test_worker_seeds_are_deterministic(dev):
    def run():
        return _epochs(DataLoader(Noisy(), batch_size=2, seed=9, num_workers=2, device=dev))[0]
    a, b = run(), run()
    _assert_same(a, b)
    assert [int(w[0]) for _, w in a] == [0, 1] * 4  # batch k comes from worker k % 2
    assert not np.allclose(a[0][0], a[1][0])  # the two workers draw different streams
    c = _epochs(DataLoader(Noisy(), batch_size=2, seed=10, num_workers=2, device=dev))[0]
    assert not np.allclose(a[0][0], c[0][0])  # another loader seed, other draws


def test_worker_exception_surfaces(dev):
    loader = DataLoader(Items(fail_at=9), batch_size=4, num_workers=2, device=dev)
    with pytest.raises(ValueError, match=r"(?s)Caught ValueError in DataLoader worker process 0.*bad index 9"):
        list(loader)
    assert _no_children()


def test_worker_init_fn_error_and_dead_worker(dev):
    def init(worker_id):
        raise KeyError(f"no config for worker {worker_id}")
    with pytest.raises(KeyError, match="running worker_init_fn"):
        list(DataLoader(Items(), batch_size=4, num_workers=2, worker_init_fn=init, device=dev))
    with pytest.raises(RuntimeError, match=r"exited unexpectedly: DataLoader worker 1 \(pid \d+, exit code 3\)"):
        list(DataLoader(Items(exit_at=5), batch_size=4, num_workers=2, device=dev))
    assert _no_children()


class Slow(Items):
    def __getitem__(self, i):
        time.sleep(1.5)
        return super().__getitem__(i)


def test_timeout(dev):
    with pytest.raises(RuntimeError, match=r"timed out after 0.3 s"):
        next(iter(DataLoader(Slow(4), batch_size=1, num_workers=1, timeout=0.3, device=dev)))
    assert _no_children()


def test_unpicklable_batch_is_reported(dev):
    loader = DataLoader(Items(), batch_size=4, num_workers=1, collate_fn=lambda s: (lambda: s), device=dev)
    with pytest.raises(Exception, match=r"(?s)in DataLoader worker process 0.*pickle"):
        next(iter(loader))
    assert _no_children()


def test_break_shuts_workers_down(dev):
    loader = DataLoader(Items(200), batch_size=2, num_workers=2, device=dev)
    for i, _ in enumerate(loader):
        if i == 1:
            break
    gc.collect()
    assert _no_children()


def test_exception_in_the_loop_body_shuts_workers_down(dev):
    with pytest.raises(ZeroDivisionError):
        for _ in DataLoader(Items(200), batch_size=2, num_workers=2, device=dev):
            1 / 0
    gc.collect()
    assert _no_children()


def test_persistent_workers_survive_epochs_and_breaks(dev):
    class Pids(Items):
        def __getitem__(self, i):
            return i, os.getpid()
    loader = DataLoader(Pids(12), batch_size=3, num_workers=2, persistent_workers=True, device=dev)
    first = _epochs(loader)[0]
    for _ in loader:  # abandon an epoch after one batch: its in-flight batches must not leak into the next
        break
    second = _epochs(loader)[0]
    assert [b[0].tolist() for b in second] == [list(range(k, k + 3)) for k in range(0, 12, 3)]
    assert {int(p) for b in first for p in b[1]} == {int(p) for b in second for p in b[1]}  # the same processes
    assert len(multiprocessing.active_children()) == 2
    del loader
    gc.collect()
    assert _no_children()


def test_spawn_context(dev):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    loader = DataLoader(TensorDataset(x, np.arange(6)), batch_size=4, num_workers=1, multiprocessing_context="spawn",
                        device=dev)
    got = _epochs(loader)[0]
    np.testing.assert_array_equal(got[1][0], x[4:])


def test_collate_fn_and_default_collate(dev):
    def collate(samples):
        return {"sum": np.sum([s["x"] for s in samples], axis=0), "n": len(samples), "names": ["a"] * len(samples)}
    for workers in (0, 2):
        batches = list(DataLoader(Items(6), batch_size=4, collate_fn=collate, num_workers=workers, device=dev))
        assert isinstance(batches[0]["sum"], mt.Tensor) and batches[1]["n"] == 2 and batches[0]["names"] == ["a"] * 4
        np.testing.assert_array_equal(batches[0]["sum"].numpy(), np.full((2, 3), 0 + 1 + 2 + 3))
    Point = collections.namedtuple("Point", "x y")
    out = default_collate([Point(np.ones(2), 1), Point(np.zeros(2), 2)], device=dev)
    assert isinstance(out, Point) and out.x.shape == (2, 2) and out.y.dtype is mt.int64
    assert default_collate([("s", 1.5), ("t", 2.5)], device=dev)[0] == ["s", "t"]
    with pytest.raises(RuntimeError, match="same length"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object()])


def test_batch_size_none(dev):
    for workers in (0, 2):
        samples = list(DataLoader(Items(5), batch_size=None, num_workers=workers, device=dev))
        assert len(samples) == 5 and samples[3]["x"].shape == (2, 3) and samples[3]["label"] == 3
        assert isinstance(samples[3]["x"], mt.Tensor)


def test_subset_concat_random_split(dev):
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    ds = TensorDataset(x, np.arange(10))
    a, b = data.random_split(ds, [0.7, 0.3], generator=np.random.default_rng(0))
    assert (len(a), len(b)) == (7, 3)
    seen = sorted(int(a[i][1]) for i in range(7)) + sorted(int(b[i][1]) for i in range(3))
    assert sorted(seen) == list(range(10)) and seen != list(range(10))  # a partition, shuffled
    parts = data.random_split(ds, [0.34, 0.33, 0.33], generator=np.random.default_rng(1))
    assert [len(p) for p in parts] == [4, 3, 3]  # torch spreads the remainder over the first subsets
    bx, by = next(iter(DataLoader(a, batch_size=7, device=dev)))
    np.testing.assert_array_equal(bx.numpy(), x[by.numpy()])
    cat = data.ConcatDataset([Items(3), Subset(Items(10), [9, 8])])
    assert len(cat) == 5 and cat[3]["label"] == 9 % 5 and cat[-1]["label"] == 8 % 5
    batch = next(iter(DataLoader(cat, batch_size=5, num_workers=1, device=dev)))
    np.testing.assert_array_equal(batch["x"].numpy()[:, 0, 0], [0, 1, 2, 9, 8])
    with pytest.raises(ValueError, match="do not sum"):
        data.random_split(ds, [3, 3])
    with pytest.raises(IndexError, match="out of range"):
        cat[5]


def test_aliases_and_arguments():
    assert data.DataLoader is mt.data.DataLoader and mt.utils.data.TensorDataset is mt.data.TensorDataset
    assert get_worker_info() is None
    with pytest.raises(ValueError, match="num_workers > 0"):
        DataLoader(Items(), persistent_workers=True)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(Items(), num_workers=-1)
