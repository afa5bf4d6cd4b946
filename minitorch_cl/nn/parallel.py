"""Data parallelism: DistributedDataParallel across MPI ranks, DataParallel across the OpenCL
devices of one process. Both give the optimizer the gradient of the whole batch."""
import contextlib
import copy
import time
from collections import OrderedDict

from .. import autograd, distributed as dist
from ..autograd import Function, no_grad
from ..device import device as resolve_device
from ..ops.shape import cat
from ..tensor import Tensor, zeros
from .module import Module
from .parameter import Parameter

__all__ = ["DistributedDataParallel", "DataParallel"]

FIRST_BUCKET_BYTES = 1 << 20  # as PyTorch's DDP: a small first bucket starts communication early


class _Bucket:
    """Gradients of consecutive parameters (reverse registration order) reduced as one flat tensor."""

    def __init__(self, params):
        self.params = params
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append(n)
            n += p.numel()
        self.numel = n
        self._offset_of = {id(p): off for p, off in zip(params, self.offsets)}
        self.reset()

    def reset(self):
        self.flat, self.left, self.work = None, len(self.params), None

    def add(self, p, device):
        """Copy p.grad into its slot; slots of parameters that get no gradient stay zero."""
        if self.flat is None:
            self.flat = zeros(self.numel, device=device)
        off = self._offset_of[id(p)]
        self.flat[off:off + p.numel()].copy_(p.grad.reshape(-1))
        self.left -= 1


def _bucket_params(params, cap_bytes, first_cap_bytes):
    """PyTorch's assignment: fill a bucket until it holds at least its cap, then start the next."""
    buckets, current, size, cap = [], [], 0, first_cap_bytes
    for p in params:
        current.append(p)
        size += p.numel() * p.dtype.itemsize
        if size >= cap:
            buckets.append(current)
            current, size, cap = [], 0, cap_bytes
    if current:
        buckets.append(current)
    return [_Bucket(b) for b in buckets]


class DistributedDataParallel(Module):
    """torch.nn.parallel.DistributedDataParallel over MPI: one model replica per rank.

    At construction, rank 0's parameters and buffers are broadcast to every rank. During
    backward, gradients are averaged over ranks in buckets of about bucket_cap_mb (reverse
    registration order, so the first bucket fills first); a bucket's non-blocking all-reduce
    starts as soon as its last gradient has been accumulated, while backward carries on with the
    earlier layers. Buckets start in the same order on every rank, as MPI requires. A callback
    queued on the backward pass waits for every bucket when the pass ends, so the optimizer step
    sees averaged gradients. Inside no_sync() nothing is communicated and gradients accumulate
    locally until the next synchronised backward. Parameters that get no gradient in a pass are
    averaged as zeros (PyTorch's find_unused_parameters=True behaviour, without the flag).

    Args:
        module: the model, already on its device (device_ids and output_device are accepted for
            PyTorch's signature; the module's device is used).
        bucket_cap_mb: bucket size in MiB (the first bucket holds at most 1 MiB, as in PyTorch).
        broadcast_buffers: also broadcast rank 0's buffers at every forward.
    """

    def __init__(self, module, device_ids=None, output_device=None, broadcast_buffers=True, bucket_cap_mb=25):
        super().__init__()
        self.module = module
        self.world_size = dist.get_world_size()
        self.broadcast_buffers = broadcast_buffers
        with no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t, 0)
        params = [p for p in module.parameters() if p.requires_grad]
        cap = int(bucket_cap_mb * 2 ** 20)
        self._buckets = _bucket_params(reversed(params), cap, min(cap, FIRST_BUCKET_BYTES))
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self.require_backward_grad_sync = True
        self._sync_this_pass = True
        self._in_backward = False
        self._next = 0  # the next bucket to start
        self.last_step = {}  # timings and bytes of the last synchronised backward (for `bench ddp`)
        for p in params:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    def forward(self, *args, **kwargs):
        self._sync_this_pass = self.require_backward_grad_sync and autograd.is_grad_enabled()
        if self.broadcast_buffers and self.world_size > 1:
            for b in self.module.buffers():
                dist.broadcast(b, 0)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside this context communicate nothing."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ---- the backward hooks ------------------------------------------------------------------
    def _grad_ready(self, p):
        if not self._sync_this_pass:
            return
        if not self._in_backward:
            self._in_backward = True
            self.last_step = {"launched": [], "bytes": 0}
            autograd.queue_callback(self._finish_backward)
        bucket = self._bucket_of[id(p)]
        bucket.add(p, p.device)
        if bucket.left == 0:
            self._launch_ready()
        for b in self._buckets[:self._next]:
            b.work.is_completed()  # MPI progresses non-blocking collectives only inside MPI calls

    def _launch_ready(self):
        while self._next < len(self._buckets) and self._buckets[self._next].left == 0:
            self._launch(self._buckets[self._next])

    def _launch(self, bucket):
        if bucket.flat is None:  # no parameter of this bucket got a gradient on this rank
            bucket.flat = zeros(bucket.numel, device=bucket.params[0].device)
        bucket.work = dist.all_reduce(bucket.flat, dist.ReduceOp.AVG, async_op=True)
        self.last_step["launched"].append(time.perf_counter())  # when the bucket's map was enqueued
        self.last_step["bytes"] += bucket.numel * bucket.flat.dtype.itemsize
        self._next += 1

    def _finish_backward(self):
        self.last_step["backward_done"] = time.perf_counter()
        while self._next < len(self._buckets):  # buckets holding parameters unused in this pass
            self._launch(self._buckets[self._next])
        self.last_step["mpi"] = []  # (start, done) of each bucket's all-reduce
        for b in self._buckets:
            b.work.wait()
            self.last_step["mpi"].append((b.work.started_at, b.work.completed_at))
            for p, off in zip(b.params, b.offsets):
                p.grad = b.flat[off:off + p.numel()].view(p.shape)
            b.reset()
        self.last_step["reduced"] = time.perf_counter()
        self._next, self._in_backward = 0, False


# ---- several devices in one process ------------------------------------------------------------
class _Gather(Function):
    """Replica outputs (one per device) -> their concatenation on `dev`, as one autograd node so
    that backward hands every replica its gradient before any replica's backward is enqueued."""

    @staticmethod
    def forward(ctx, dev, dim, *outs):
        ctx.devices, ctx.dim = [o.device for o in outs], dim
        ctx.sizes = [o.shape[dim] for o in outs]
        return cat([o if o.device == dev else o.to(dev) for o in outs], dim)

    @staticmethod
    def backward(ctx, g):
        parts, start = [], 0
        for d, n in zip(ctx.devices, ctx.sizes):
            part = g.narrow(ctx.dim, start, n)
            parts.append(part if d == g.device else part.to(d))
            start += n
        return (None, None, *parts)


def _replicate(module, dev, memo):
    """A copy of module whose parameters and buffers live on dev (shared submodules stay shared)."""
    if id(module) in memo:
        return memo[id(module)]
    r = memo[id(module)] = copy.copy(module)
    params = OrderedDict()
    for name, p in module._parameters.items():
        if p is not None and id(p) not in memo:
            memo[id(p)] = Parameter(p.detach().to(dev), requires_grad=p.requires_grad)
        params[name] = None if p is None else memo[id(p)]
    r.__dict__["_parameters"] = params
    r.__dict__["_buffers"] = OrderedDict((n, None if b is None else b.to(dev)) for n, b in module._buffers.items())
    r.__dict__["_modules"] = OrderedDict((n, None if m is None else _replicate(m, dev, memo))
                                         for n, m in module._modules.items())
    return r


class DataParallel(Module):
    """torch.nn.DataParallel over OpenCL devices: splits the batch (dim 0) over device_ids.

    Every forward copies the module's parameters and buffers (on device_ids[0]) to a replica per
    further device, runs each replica on its chunk (each device has its own queue; nothing waits
    on the host between them) and concatenates the outputs on the first device. When backward
    has finished, a queued callback adds each replica's gradients into the module's own, so the
    optimizer, built on module.parameters(), sees the gradient of the whole batch.

    Args:
        module: the model, on device_ids[0].
        device_ids: device specs or Devices; the first holds the module and the outputs.
        dim: the batch dimension of inputs and outputs.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        devs = [resolve_device(d) for d in (device_ids or [None])]
        for name, p in module.named_parameters():
            if p.device != devs[0]:
                raise ValueError(f"DataParallel: parameter {name} {p.shape} is on {p.device.spec}, but device_ids[0] "
                                 f"is {devs[0].spec}; call module.to(device_ids[0]) first")
        self.module = module
        self.device_ids, self.dim = devs, dim
        replicas = [_replicate(module, d, {}) for d in devs[1:]]
        object.__setattr__(self, "_replicas", replicas)  # not submodules: state_dict stays module.*
        self._pairs = [list(zip(module.parameters(), r.parameters())) for r in replicas]
        self._reducing = False
        for pairs in self._pairs:
            for _, rp in pairs:
                rp.register_post_accumulate_grad_hook(self._replica_grad_ready)

    def forward(self, *inputs, **kwargs):
        if len(self.device_ids) == 1:
            return self.module(*inputs, **kwargs)
        self._sync_replicas()
        k = len(self.device_ids)
        n = next(x.shape[self.dim] for x in inputs if isinstance(x, Tensor))
        if n < k:
            raise ValueError(f"DataParallel: a batch of {n} cannot be split over {k} devices")
        chunks = [x.chunk(k, self.dim) if isinstance(x, Tensor) else (x,) * k for x in inputs]
        # Every chunk is moved before any replica runs: a later copy off the first device would wait
        # for replica 0's forward on that device's queue.
        args = [[c[i].to(d) if isinstance(c[i], Tensor) else c[i] for c in chunks]
                for i, d in enumerate(self.device_ids)]
        outs = [m(*a, **kwargs) for m, a in zip([self.module] + self._replicas, args)]
        if not all(isinstance(o, Tensor) for o in outs):
            raise TypeError("DataParallel supports modules that return one tensor")
        return _Gather.apply(self.device_ids[0], self.dim, *outs)

    @no_grad()
    def _sync_replicas(self):
        for dev, r, pairs in zip(self.device_ids[1:], self._replicas, self._pairs):
            for p, rp in pairs:
                rp.data = p.detach().to(dev)
            for m, rm in zip(self.module.modules(), r.modules()):
                for name, b in m._buffers.items():
                    if b is not None:
                        rm._buffers[name] = b.to(dev)

    def _replica_grad_ready(self, p):
        if not self._reducing:
            self._reducing = True
            autograd.queue_callback(self._reduce)

    def _reduce(self):
        """Add every replica's gradients onto the first device's parameters."""
        for pairs in self._pairs:
            for p, rp in pairs:
                if rp.grad is not None:
                    g = rp.grad.to(p.device)
                    p.grad = g if p.grad is None else (p.grad + g).detach()
                    rp.grad = None
        self._reducing = False
