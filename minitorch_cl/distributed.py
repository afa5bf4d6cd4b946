"""torch.distributed's names on MPI: a process group, and collectives on Tensors.

A device buffer reaches MPI through host memory with as few copies as the device allows: it is
mapped (zero-copy on CPU devices, one transfer each way on a GPU), MPI works on the mapping in
place, and unmapping hands it back. The map is enqueued without waiting; the MPI call starts once
the device has reached it, collectives always starting in the order they were issued (MPI matches
them across ranks by order). mpi4py is imported by init_process_group, never by
`import minitorch_cl`.
"""
import collections
import os
import sys
import time

import numpy as np
import pyopencl as cl

from . import dtypes
from .autograd import no_grad
from .tensor import Tensor

__all__ = ["ReduceOp", "Work", "init_process_group", "is_initialized", "is_available", "get_rank",
           "get_world_size", "get_node_local_rank", "barrier", "quiet_unless_rank0", "destroy_process_group", "all_reduce", "broadcast", "all_gather",
           "reduce_scatter"]


class ReduceOp:
    SUM, AVG, MAX, MIN = "sum", "avg", "max", "min"


class _World:
    """The process group: MPI.COMM_WORLD and the excepthook it replaced."""

    def __init__(self, MPI):
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        self.local_rank = node.Get_rank()
        node.Free()
        self.previous_excepthook = sys.excepthook
        self.queued = collections.deque()  # issued Work not yet handed to MPI, oldest first


_world = None


def is_available():
    """True when mpi4py can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def init_process_group(backend="mpi", **kwargs):
    """Join the job started by mpiexec (without mpiexec: a world of one). Only backend='mpi'.

    An uncaught exception on any rank then prints its traceback and aborts every rank, so a
    failing job exits instead of hanging in a collective."""
    global _world
    if backend != "mpi":
        raise ValueError(f"backend {backend!r} is not supported; minitorch_cl has backend='mpi'")
    if _world is not None:
        raise RuntimeError("trying to initialize the default process group twice")
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("init_process_group needs mpi4py: pip install 'minitorch_cl[mpi]' (or mpi4py built "
                          "against your system MPI)") from None
    _world = _World(MPI)
    sys.excepthook = _abort_on_uncaught


def _abort_on_uncaught(exc_type, exc, tb):
    _world.previous_excepthook(exc_type, exc, tb)
    sys.stderr.flush()
    time.sleep(0.5)  # lets the launcher forward the traceback before Abort tears the job down
    _world.comm.Abort(1)


def is_initialized():
    return _world is not None


def _require():
    if _world is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to call "
                           "init_process_group.")
    return _world


def get_rank():
    return _require().rank


def get_world_size():
    return _require().size


def get_node_local_rank():
    """This rank's index among the ranks on its machine (pick a GPU by it)."""
    return _require().local_rank


def barrier():
    w = _require()
    _start_queued()
    w.comm.Barrier()


def quiet_unless_rank0():
    """Send stdout of every rank but 0 to os.devnull, so a job prints one progress report
    (errors still reach stderr)."""
    if _require().rank != 0:
        sys.stdout = open(os.devnull, "w")


def destroy_process_group():
    """Leave the group (MPI itself is finalized at exit) and restore sys.excepthook."""
    global _world
    w = _require()
    sys.excepthook = w.previous_excepthook
    _world = None


# ---- host views of device tensors --------------------------------------------------------------
_MPI_DTYPES = (dtypes.float32, dtypes.int32, dtypes.int64)


def _check(t, name="tensor"):
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a minitorch_cl Tensor, got {type(t).__name__}")
    if t.dtype not in _MPI_DTYPES:
        raise TypeError(f"collectives support float32, int32 and int64 tensors, got {t.dtype!r} of shape {t.shape}")


class _Mapped:
    """A contiguous tensor's buffer mapped into host memory as a flat NumPy array, valid once
    `event` has completed."""

    def __init__(self, t, write=True):
        self.t = t
        flags = cl.map_flags.READ | (cl.map_flags.WRITE if write else 0)
        self.array, self.event = cl.enqueue_map_buffer(t.device.queue, t.buffer, flags, t.offset * t.dtype.itemsize,
                                                       (t.numel(),), t.dtype.np, is_blocking=False)
        t.device.queue.flush()

    def release(self):
        self.array.base.release(self.t.device.queue)
        self.array = None


def _writable(t):
    """t itself when it is contiguous, else a contiguous copy that finish() copies back."""
    return t if t.is_contiguous() else t.contiguous().clone()


def _upload(t, host):
    """Copy a host array into tensor t (same number of elements)."""
    if t.is_contiguous():
        if host.size:
            cl.enqueue_copy(t.device.queue, t.buffer, np.ascontiguousarray(host, dtype=t.dtype.np),
                            dst_offset=t.offset * t.dtype.itemsize, is_blocking=True)
    else:
        with no_grad():
            t.copy_(host.reshape(t.shape))


class Work:
    """A collective (async_op=True returns it): start() makes the MPI call once `ready` (an OpenCL
    event, or None) has completed; wait() completes it and finish() writes the result back."""

    def __init__(self, start=None, finish=None, ready=None):
        self._start, self._finish, self._ready = start, finish, ready
        self._request = None
        self._done = start is None
        self.started_at = self.completed_at = None  # perf_counter() times, for profiling
        if start is not None:
            _world.queued.append(self)
            _start_queued(only_ready=True)

    def is_completed(self):
        """True when the result has been written back; otherwise starts what it can and tests
        (which is what makes MPI progress a non-blocking collective)."""
        if not self._done:
            _start_queued(only_ready=True)
            if self._request is not None and self._request.Test():
                self.wait()
        return self._done

    def wait(self):
        if not self._done:
            _start_queued(until=self)
            self._request.Wait()
            self.completed_at = time.perf_counter()
            if self._finish is not None:
                self._finish()
            self._done = True
        return True


_COMPLETE = cl.command_execution_status.COMPLETE


def _start_queued(only_ready=False, until=None):
    """Hand queued collectives to MPI, oldest first: those whose input is ready (only_ready), those
    up to `until`, or all."""
    queued = _world.queued
    while queued and (until is None or until._request is None):
        head = queued[0]
        if head._ready is not None:
            if only_ready and head._ready.command_execution_status != _COMPLETE:
                return
            head._ready.wait()
        queued.popleft()
        head._request = head._start()
        head.started_at = time.perf_counter()


def _run(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def _mpi_op(op, t):
    MPI = _world.MPI
    if op == ReduceOp.AVG and not t.dtype.is_floating:
        raise ValueError(f"ReduceOp.AVG needs a floating point tensor, got {t.dtype!r} of shape {t.shape} "
                         f"(as in PyTorch, average an integer tensor with SUM and a division)")
    ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN}
    if op not in ops:
        raise ValueError(f"unsupported reduce op {op!r}; use ReduceOp.SUM, AVG, MAX or MIN")
    return ops[op]


# ---- collectives ---------------------------------------------------------------------------------
def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce tensor over every rank, in place on every rank."""
    w = _require()
    _check(tensor)
    mpi_op = _mpi_op(op, tensor)
    if tensor.numel() == 0:
        return _run(Work(), async_op)
    buf = _writable(tensor)
    mapped = _Mapped(buf)

    def start():
        return w.comm.Iallreduce(w.MPI.IN_PLACE, mapped.array, op=mpi_op)

    def finish():
        if op == ReduceOp.AVG:
            mapped.array /= w.size
        mapped.release()
        if buf is not tensor:
            with no_grad():
                tensor.copy_(buf)
    return _run(Work(start, finish, mapped.event), async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy rank src's tensor into tensor on every other rank."""
    w = _require()
    _check(tensor)
    if not 0 <= src < w.size:
        raise ValueError(f"broadcast src {src} is not a rank of a world of {w.size}")
    if tensor.numel() == 0:
        return _run(Work(), async_op)
    buf = _writable(tensor)
    mapped = _Mapped(buf)

    def start():
        return w.comm.Ibcast(mapped.array, root=src)

    def finish():
        mapped.release()
        if buf is not tensor:
            with no_grad():
                tensor.copy_(buf)
    return _run(Work(start, finish, mapped.event), async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[r] = rank r's tensor, on every rank."""
    w = _require()
    _check(tensor)
    if len(tensor_list) != w.size:
        raise ValueError(f"all_gather needs a list of {w.size} tensors (one per rank), got {len(tensor_list)}")
    for i, out in enumerate(tensor_list):
        _check(out, f"tensor_list[{i}]")
        if tuple(out.shape) != tuple(tensor.shape) or out.dtype is not tensor.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] is {out.dtype!r} {out.shape}, the input is "
                             f"{tensor.dtype!r} {tensor.shape}")
    if tensor.numel() == 0:
        return _run(Work(), async_op)
    send = _Mapped(tensor.contiguous(), write=False)
    recv = np.empty((w.size, tensor.numel()), dtype=tensor.dtype.np)

    def start():
        return w.comm.Iallgather(send.array, recv)

    def finish():
        send.release()
        for out, row in zip(tensor_list, recv):
            _upload(out, row)
    return _run(Work(start, finish, send.event), async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """output on rank r = the reduction over ranks of input_list[r]."""
    w = _require()
    _check(output, "output")
    mpi_op = _mpi_op(op, output)
    if len(input_list) != w.size:
        raise ValueError(f"reduce_scatter needs {w.size} inputs (one per rank), got {len(input_list)}")
    for i, t in enumerate(input_list):
        _check(t, f"input_list[{i}]")
        if tuple(t.shape) != tuple(output.shape) or t.dtype is not output.dtype:
            raise ValueError(f"reduce_scatter: input_list[{i}] is {t.dtype!r} {t.shape}, the output is "
                             f"{output.dtype!r} {output.shape}")
    if output.numel() == 0:
        return _run(Work(), async_op)
    send = np.concatenate([t.detach().numpy().reshape(-1) for t in input_list])
    recv = np.empty(output.numel(), dtype=send.dtype)

    def start():
        return w.comm.Ireduce_scatter_block(send, recv, op=mpi_op)

    def finish():
        if op == ReduceOp.AVG:
            recv[...] /= w.size
        _upload(output, recv)
    return _run(Work(start, finish), async_op)
