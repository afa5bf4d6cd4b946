"""DataLoader's worker processes: each fetches and collates whole batches on the host (NumPy only,
never OpenCL) and sends them back pickled; the main process puts them back in order and uploads.

Batch b goes to worker b % num_workers, at most prefetch_factor * num_workers batches are in flight.
Workers stop when told (None on their queue, or the done event), when their parent dies, and are
terminated if they do not stop within a few seconds. A failed fetch travels back as a _Failure and
is raised in the main process with the worker's traceback."""
import multiprocessing
import os
import pickle
import queue
import random
import sys
import time
import traceback
import weakref

import numpy as np

from .random import manual_seed

__all__ = ["WorkerPool", "WorkerInfo", "get_worker_info"]

_POLL_S = 0.2  # how often a waiting worker checks for shutdown, and the main process for dead workers


class WorkerInfo:
    """What get_worker_info() returns inside a worker: id, num_workers, seed, dataset."""

    def __init__(self, id, num_workers, seed, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed})"


_info = None


def get_worker_info():
    """The WorkerInfo of this DataLoader worker process, None in the main process."""
    return _info


class _Failure:
    """An exception raised in a worker, carried as its type (when picklable) and formatted traceback."""

    def __init__(self, worker_id, exc, what="fetching a batch"):
        self.worker_id, self.what = worker_id, what
        self.type_name = type(exc).__name__
        self.text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            self.exc_type = pickle.dumps(type(exc))
        except Exception:
            self.exc_type = None

    def reraise(self):
        msg = (f"Caught {self.type_name} in DataLoader worker process {self.worker_id} while {self.what}.\n"
               f"Original {self.text}")
        try:
            cls = pickle.loads(self.exc_type) if self.exc_type is not None else RuntimeError
            err = cls(msg)
        except Exception:
            err = RuntimeError(msg)
        raise err


def _worker_loop(fetch, dataset, collate_fn, index_queue, results, done, base_seed, worker_id, num_workers,
                 init_fn):
    global _info
    results.cancel_join_thread()  # exiting must not wait for unread results
    parent = os.getppid()
    seed = base_seed + worker_id
    init_error = None
    try:
        random.seed(seed)
        np.random.seed(np.random.SeedSequence([base_seed, worker_id]).generate_state(4))
        manual_seed(seed)
        _info = WorkerInfo(worker_id, num_workers, seed, dataset)
        if init_fn is not None:
            init_fn(worker_id)
    except Exception as err:
        init_error = _Failure(worker_id, err, "running worker_init_fn")
    while not done.is_set():
        try:
            task = index_queue.get(timeout=_POLL_S)
        except queue.Empty:
            if os.getppid() != parent:  # the main process is gone
                break
            continue
        if task is None:
            break
        epoch, number, idx = task
        try:  # pickled here, so a batch that cannot be pickled is reported, not lost in the queue's thread
            data = init_error if init_error is not None else fetch(dataset, idx, collate_fn)
            payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:
            payload = pickle.dumps(_Failure(worker_id, err), protocol=pickle.HIGHEST_PROTOCOL)
        results.put((epoch, number, payload))


def _default_context():
    # fork starts workers in milliseconds and needs no picklable data set; elsewhere spawn
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _shutdown(workers, index_queues, results, done):
    done.set()
    for q in index_queues:
        try:
            q.put(None)
        except (OSError, ValueError):
            pass
    for w in workers:
        w.join(timeout=3)
        if w.is_alive():
            w.terminate()
            w.join(timeout=1)
    for q in index_queues + [results]:
        q.cancel_join_thread()
        q.close()


class WorkerPool:
    """num_workers processes serving one DataLoader; run(batches) yields collated host batches in order."""

    def __init__(self, loader, base_seed, fetch):
        ctx = loader.multiprocessing_context or _default_context()
        if isinstance(ctx, str):
            ctx = multiprocessing.get_context(ctx)
        n = loader.num_workers
        self.index_queues = [ctx.Queue() for _ in range(n)]
        self.results = ctx.Queue()
        self.done = ctx.Event()
        self.workers = []
        for wid in range(n):
            w = ctx.Process(target=_worker_loop, daemon=True, name=f"DataLoader worker {wid}",
                            args=(fetch, loader.dataset, loader.collate_fn, self.index_queues[wid], self.results,
                                  self.done, base_seed, wid, n, loader.worker_init_fn))
            w.start()
            self.workers.append(w)
        self.in_flight = loader.prefetch_factor * n
        self.timeout = loader.timeout
        self.epoch = 0
        self._finalizer = weakref.finalize(self, _shutdown, self.workers, self.index_queues, self.results,
                                           self.done)

    def alive(self):
        return self._finalizer.alive and all(w.is_alive() for w in self.workers)

    def shutdown(self):
        self._finalizer()

    def run(self, batches):
        self.epoch += 1
        epoch, batches, n = self.epoch, iter(batches), len(self.workers)
        sent = received = 0
        pending = {}

        def send():
            nonlocal sent
            idx = next(batches, None)
            if idx is None:
                return False
            self.index_queues[sent % n].put((epoch, sent, idx))
            sent += 1
            return True

        while sent < self.in_flight and send():
            pass
        while received < sent:
            while received not in pending:
                e, number, payload = self._get()
                if e == epoch:  # results of an abandoned epoch (persistent workers) are dropped
                    pending[number] = payload
            data = pickle.loads(pending.pop(received))
            received += 1
            send()
            if isinstance(data, _Failure):
                self.shutdown()
                data.reraise()
            yield data

    def _get(self):
        deadline = time.monotonic() + self.timeout if self.timeout > 0 else None
        while True:
            try:
                return self.results.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [w for w in self.workers if not w.is_alive()]
                if dead:
                    self.shutdown()
                    raise RuntimeError("DataLoader worker(s) exited unexpectedly: " + ", ".join(
                        f"{w.name} (pid {w.pid}, exit code {w.exitcode})" for w in dead)) from None
                if deadline is not None and time.monotonic() > deadline:
                    self.shutdown()
                    raise RuntimeError(f"DataLoader timed out after {self.timeout} s waiting for a batch "
                                       f"from its workers") from None
