"""OpenCL devices: discovery, the spec parser, the default rule, and the per-device context, queue,
pool and programs."""
import atexit
import ctypes
import functools
import glob
import os
import resource
import sys
import time
import warnings

import numpy as np
import pyopencl as cl
import pyopencl.tools

from . import compiler_check, device_profile, kernels, tuned_profile
from .shared_constants import ERR_CROSS_ENTROPY, ERR_EMBEDDING, ERR_INDEX_SELECT, ERR_INDEXING, ERR_NLL_LOSS
from .shared_constants import (ERR_GATHER, ERR_INDEX_ADD, ERR_INDEX_COPY, ERR_INDEX_FILL, ERR_INDEX_PUT, ERR_SCATTER,
                               ERR_TAKE)

ENV_VAR = "MINITORCH_CL_DEVICE"
NO_PLATFORM_HELP = (
    "No OpenCL platform found. Install PoCL's CPU runtime with "
    "`pip install 'minitorch_cl[pocl]'` (or `pip install pocl-binary-distribution`), "
    "or a vendor driver (NVIDIA, AMD ROCm, Intel compute-runtime)."
)


# Callables (device, kind 'upload'/'download', nbytes, event, host_seconds) after every transfer: the
# profiler's hook, as launch.observers is for kernels.
transfer_observers = []


class DeviceError(RuntimeError):
    """A device spec that matches nothing (or several devices), or no OpenCL at all.

    str() is the one-line message followed by the listing of devices; .message is the line alone."""

    def __init__(self, message, listing=""):
        self.message, self.listing = message, listing
        super().__init__(f"{message}\n{listing}" if listing else message)


class OutOfMemoryError(RuntimeError, MemoryError):
    """A buffer the device (or, for a CPU runtime, the host) cannot hold; torch.cuda.OutOfMemoryError."""


HOST_HEADROOM = 256 << 20  # what a CPU runtime needs beside our buffers (kernel builds, its own state)


def _host_available_bytes():
    """What this process may still map: the address-space limit (ulimit -v) and the free RAM."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limits.append(soft - used)
    except OSError:  # not Linux: the runtime's own limits are all there is
        return None
    return min(limits) if limits else None


# What a bad index reported by a kernel (common.h's report_bad_index) says, PyTorch's way.
_INDEX_ERRORS = {
    ERR_INDEXING: "index {value} is out of bounds for a dimension with size {bound}",
    ERR_INDEX_SELECT: "index_select(): index {value} is out of range for a dimension of size {bound}",
    ERR_EMBEDDING: "Embedding: index {value} is out of range (num_embeddings = {bound})",
    ERR_CROSS_ENTROPY: "Target {value} is out of bounds (cross_entropy over {bound} classes).",
    ERR_NLL_LOSS: "Target {value} is out of bounds (nll_loss over {bound} classes).",
    ERR_INDEX_PUT: "index_put_(): index {value} is out of bounds for a dimension with size {bound}",
    ERR_GATHER: "gather(): index {value} is out of bounds for a dimension with size {bound}",
    ERR_SCATTER: "scatter(): index {value} is out of bounds for a dimension with size {bound}",
    ERR_INDEX_ADD: "index_add_(): index {value} is out of bounds for a dimension with size {bound}",
    ERR_INDEX_COPY: "index_copy_(): index {value} is out of bounds for a dimension with size {bound}",
    ERR_INDEX_FILL: "index_fill_(): index {value} is out of bounds for a dimension with size {bound}",
    ERR_TAKE: "take(): out of range: tried to access index {value} on a tensor of {bound} elements.",
}


class Device:
    """One OpenCL device with its own context, in-order queue, memory pool and program cache."""

    def __init__(self, cl_device, platform_index, device_index, ordinal):
        self.cl_device = cl_device
        self.platform_index = platform_index
        self.device_index = device_index
        self.ordinal = ordinal
        self._context = None
        self._programs = {}
        self._kernels = {}
        self._profile = None
        self._errors = None  # the device error buffer, made by the first kernel that checks indices
        self.memory_fraction = 1.0  # set_per_process_memory_fraction
        self.peak_bytes = 0
        self._host_checked = 0  # pool size up to which the host's limits were last found fine
        self._host_limit = None  # the RLIMIT_AS it was found fine under
        self._origin = None
        self._compile_announced = False
        self._launch_plans = {}  # launch.py's per-kernel argument plans
        self._profiling = False  # the queue records event timestamps (set_profiling)
        self._tuned = {}
        self._build_problem = False  # not probed yet; then None (builds fine) or the compiler's complaint

    # ---- identity -------------------------------------------------------------------------
    @property
    def spec(self):
        return f"cl:{self.platform_index}:{self.device_index}"

    @property
    def name(self):
        return self.cl_device.name.strip()

    @property
    def platform_name(self):
        return self.cl_device.platform.name.strip()

    @property
    def platform_version(self):
        return self.cl_device.platform.version.strip()

    @property
    def short_version(self):
        """The platform version up to its build details: 'OpenCL 3.0 PoCL 3.1+debian'."""
        return self.platform_version.split("  ")[0].strip()

    @property
    def origin(self):
        """The path of the OpenCL library (ICD) that provides this device's platform, or '' if unknown."""
        if self._origin is None:
            self._origin = platform_library(self.cl_device.platform)
        return self._origin

    @functools.cached_property
    def bundled(self):
        """Whether the runtime was installed into this Python environment (pip's PoCL), not the system's
        (kept: the default device's resolution asks on every tensor made without a device)."""
        prefix = os.path.realpath(sys.prefix) + os.sep
        return bool(self.origin) and os.path.realpath(self.origin).startswith(prefix)

    @functools.cached_property
    def _limits(self):
        """(global memory, largest single allocation) in bytes: each a runtime query, asked per allocation."""
        return self.cl_device.global_mem_size, self.cl_device.max_mem_alloc_size

    @functools.cached_property
    def type_name(self):
        # A simulator such as Oclgrind sets every type bit; only a single clear kind counts.
        t = self.cl_device.type & (cl.device_type.GPU | cl.device_type.CPU | cl.device_type.ACCELERATOR)
        return {cl.device_type.GPU: "GPU", cl.device_type.CPU: "CPU",
                cl.device_type.ACCELERATOR: "ACCEL"}.get(t, "OTHER")

    @property
    def is_cpu(self):
        return self.type_name == "CPU"

    @property
    def max_work_group_size(self):
        return self.cl_device.max_work_group_size

    @property
    def local_mem_size(self):
        return self.cl_device.local_mem_size

    @property
    def has_fp16(self):
        return self.profile.fp16

    @property
    def has_fp64(self):
        return self.profile.fp64

    @property
    def profile(self):
        """This device's DeviceProfile: local sizes, kernel variants and tiles, fp16/fp64, with the
        autotuner's stored winners applied."""
        if self._profile is None:
            self._profile = self.default_profile()
            self._tuned = tuned_profile.apply(self._profile, self.tuning_key)
        return self._profile

    @property
    def tuned(self):
        """The autotuner's stored entries that the profile applies ({} for a device never tuned)."""
        self.profile  # built on first use, which applies the stored record
        return self._tuned

    def default_profile(self):
        """A new DeviceProfile with the built-in entries for this device, nothing tuned."""
        d = self.cl_device
        return device_profile.for_device(
            self.type_name, max_work_group_size=d.max_work_group_size, local_mem_size=d.local_mem_size,
            mem_base_addr_align=d.mem_base_addr_align, extensions=d.extensions,
            native_vector_width_float=d.native_vector_width_float)

    @property
    def tuning_key(self):
        """The autotuner's key for this device: platform name and version, device name, driver version."""
        return tuned_profile.device_key(self.platform_name, self.platform_version, self.name,
                                        self.cl_device.driver_version)

    @property
    def type(self):
        """PyTorch's device type: 'cuda' for an OpenCL GPU (the documented alias), 'cpu' for an OpenCL
        CPU device, 'cl' for anything else (an accelerator, a simulator)."""
        return {"GPU": "cuda", "CPU": "cpu"}.get(self.type_name, "cl")

    @property
    def index(self):
        """Which device of its type this is, in the default order ('cuda:1' is the second GPU)."""
        same = [d for d in preferred(devices()) if d.type == self.type]
        return same.index(self) if self in same else 0

    def __repr__(self):
        index = "" if self.type == "cpu" and self.index == 0 else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self):
        """What mt.device() reads back: 'cuda:0', 'cpu' (the default CPU device), 'cpu:1', or cl:P:D."""
        if self.type == "cl":
            return self.spec
        return self.type if self.type == "cpu" and self.index == 0 else f"{self.type}:{self.index}"

    def __eq__(self, other):
        return isinstance(other, Device) and self.ordinal == other.ordinal

    def __hash__(self):
        return hash(self.ordinal)

    # ---- runtime state, created on first use -----------------------------------------------
    def _ensure_context(self):
        if self._context is None:
            context = cl.Context([self.cl_device])
            self._plain_queue = self._queue = cl.CommandQueue(context)
            if self._profiling:
                self._queue = cl.CommandQueue(context, properties=cl.command_queue_properties.PROFILING_ENABLE)
            self._pool = cl.tools.MemoryPool(cl.tools.ImmediateAllocator(self._plain_queue))
            self._context = context
            if not _STARTED:
                atexit.register(_finish_queues)
            _STARTED.append(self)
        return self._context

    @property
    def context(self):
        return self._ensure_context()

    @property
    def queue(self):
        self._ensure_context()
        return self._queue

    def set_profiling(self, enabled):
        """Finish the queue and swap in one that records event timestamps (or the plain one back):
        OpenCL 1.2 cannot turn profiling on for an existing queue, so normal runs pay nothing."""
        if self._profiling == bool(enabled):
            return
        self._profiling = bool(enabled)
        if self._context is not None:
            self._queue.finish()
            self._queue = self._plain_queue if not enabled else cl.CommandQueue(
                self._context, properties=cl.command_queue_properties.PROFILING_ENABLE)

    def alloc(self, nbytes):
        """A buffer of at least nbytes from the device's memory pool; OutOfMemoryError (never an abort
        in the runtime) when the device, the memory fraction or the host cannot hold it."""
        self._ensure_context()
        nbytes = max(int(nbytes), 4)
        pool = self._pool
        single = self._limits[1]
        if nbytes > single:
            raise self._oom(nbytes, f"the device's single-allocation limit is {_size(single)}")
        if pool.active_bytes + nbytes > self.memory_limit or not self._host_can_hold(nbytes):
            pool.free_held()  # cached blocks first, then look again
            if pool.active_bytes + nbytes > self.memory_limit:
                raise self._oom(nbytes, f"{_size(pool.active_bytes)} are in use of a limit of "
                                        f"{_size(self.memory_limit)}")
            if not self._host_can_hold(nbytes):
                raise self._oom(nbytes, f"the host can map only {_size(_host_available_bytes() or 0)} more, "
                                        f"{_size(HOST_HEADROOM)} of which stays free for the runtime")
        try:
            buf = pool.allocate(nbytes)
        except cl.Error:
            pool.free_held()
            try:
                buf = pool.allocate(nbytes)
            except cl.Error as err:
                raise self._oom(nbytes, f"the runtime refused it ({err})") from None
        self.peak_bytes = max(self.peak_bytes, pool.active_bytes)
        return buf

    def _pool_stats(self):
        """(bytes in use, bytes held from the runtime) of the memory pool."""
        if self._context is None:
            return 0, 0
        return self._pool.active_bytes, self._pool.managed_bytes

    @property
    def memory_limit(self):
        """Bytes this process may keep in use on the device: its memory times the memory fraction."""
        return int(self._limits[0] * self.memory_fraction)

    def _host_can_hold(self, nbytes):
        """A CPU runtime's buffers are host memory: past the host's limits it would abort, so ask first
        (only when the pool grows past the level last found fine, so it costs nothing per launch)."""
        if not self.is_cpu:
            return True
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]  # a limit set since the last look voids it
        if limit != self._host_limit:
            self._host_limit, self._host_checked = limit, 0
        if self._pool.managed_bytes + nbytes <= self._host_checked:
            return True
        free = _host_available_bytes()
        if free is not None and nbytes + HOST_HEADROOM > free:
            return False
        self._host_checked = self._pool.managed_bytes + nbytes + (free - nbytes - HOST_HEADROOM) // 2 \
            if free is not None else float("inf")
        return True

    def _oom(self, nbytes, why):
        pool = self._pool
        return OutOfMemoryError(f"{self.spec} ({self.name}): cannot allocate {_size(nbytes)}: {why}; the memory "
                                f"pool holds {_size(pool.active_bytes)} in use and {_size(pool.managed_bytes - pool.active_bytes)} "
                                f"cached. Free tensors, use a smaller batch, or call empty_cache().")

    def upload(self, buffer, host, nbytes_offset=0):
        """Start copying a contiguous host array into buffer; the returned event keeps `host` alive."""
        start = time.perf_counter()
        event = cl.enqueue_copy(self.queue, buffer, host, dst_offset=nbytes_offset, is_blocking=False)
        for observe in transfer_observers:
            observe(self, "upload", host.nbytes, event, time.perf_counter() - start)
        return event

    def download(self, host, buffer, nbytes_offset=0, kind="download"):
        """Copy buffer (from a byte offset) into a contiguous host array, waiting for the device.
        kind names the transfer for the profiler ("error check" for check_errors' read)."""
        start = time.perf_counter()
        event = cl.enqueue_copy(self.queue, host, buffer, src_offset=nbytes_offset, is_blocking=True)
        for observe in transfer_observers:
            observe(self, kind, host.nbytes, event, time.perf_counter() - start)
        return host

    @property
    def build_problem(self):
        """None if this device's compiler builds and runs clkernels/probe.cl correctly, else what went
        wrong, in one line (judged once per device and machine, in a child process: compiler_check)."""
        if self._build_problem is False:
            self._build_problem = compiler_check.problem(self)
        return self._build_problem

    @property
    def known_build_problem(self):
        """build_problem where it has been judged (in this process, or on this machine before), else None;
        starts no child process."""
        if self._build_problem is False:
            return compiler_check.known_problem(self)
        return self._build_problem

    def program(self, filename, defines=None):
        """The built program for (file, defines), built once per device."""
        key = (filename, tuple(sorted((defines or {}).items())))
        prog = self._programs.get(key)
        if prog is None:
            with kernels.announce_if_slow(self._announce_compiling):
                prog = kernels.build(self.context, self.cl_device, filename, defines or {})
            self._programs[key] = prog
        return prog

    def _announce_compiling(self):
        # Called by a timer while a build is slow: a cold compiler cache, not a hang.
        if not self._compile_announced:
            self._compile_announced = True
            print(f"compiling kernels for {self.spec} ({self.name}) (first run only)", file=sys.stderr, flush=True)

    def kernel(self, filename, name, defines=None):
        """A kernel object for (file, defines, name), cached so launches never rebuild."""
        key = (filename, tuple(sorted((defines or {}).items())), name)
        k = self._kernels.get(key)
        if k is None:
            k = getattr(self.program(filename, defines), name)
            self._kernels[key] = k
        return k

    @property
    def error_buffer(self):
        """Four int64s that kernels report the first bad index into: (flag, op, value, bound)."""
        if self._errors is None:
            self._errors = self.alloc(32)
            cl.enqueue_copy(self.queue, self._errors, np.zeros(4, np.int64), is_blocking=True)
        return self._errors

    def check_errors(self):
        """Raise the first bad index a kernel reported since the last check (waits for the device)."""
        if self._errors is None:
            return
        err = self.download(np.zeros(4, np.int64), self._errors, kind="error check")
        if err[0]:
            cl.enqueue_copy(self.queue, self._errors, np.zeros(4, np.int64), is_blocking=True)
            template = _INDEX_ERRORS.get(int(err[1]), "index {value} out of range (bound {bound})")
            raise IndexError(template.format(value=int(err[2]), bound=int(err[3])))

    def synchronize(self):
        """Wait for every queued kernel; raises what the kernels reported (a bad index)."""
        self.queue.finish()
        self.check_errors()


_STARTED = []  # devices whose context and queue exist, in the order they were made


def _finish_queues():
    """At exit, wait for what is still queued: a program that ends without reading its last results
    (a backward pass, then print) would otherwise exit while PoCL's threads still run its kernels,
    and the runtime's teardown under them crashed the process (SIGSEGV) now and then."""
    for dev in _STARTED:
        for queue in {id(q): q for q in (dev._queue, dev._plain_queue)}.values():
            try:
                queue.finish()
            except cl.Error:
                pass  # a device lost at exit: nothing left to wait for


def _size(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.2f} {unit}"
        n /= 1024


_DEVICES = None


def platform_library(cl_platform):
    """The file of the shared library that implements cl_platform ('' where it cannot be told).

    An ICD platform handle points to the vendor's dispatch table (cl_khr_icd), whose entries are
    functions inside the vendor's library; /proc/self/maps names the file mapped there (Linux). Each
    address is checked to be in a readable mapping before it is read."""
    try:
        with open("/proc/self/maps") as f:
            maps = []
            for line in f:
                fields = line.split(None, 5)
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                maps.append((lo, hi, fields[1].startswith("r"), fields[5].strip() if len(fields) == 6 else ""))
    except OSError:
        return ""

    def mapping(address):
        return next((m for m in maps if m[0] <= address < m[1] and m[2]), None) if address else None

    address = cl_platform.int_ptr
    for _ in range(2):  # handle -> dispatch table -> its first function
        if mapping(address) is None:
            return ""
        address = ctypes.c_void_p.from_address(address).value
    found = mapping(address)
    return found[3] if found and found[3].startswith("/") else ""


def icd_file(library):
    """The ICD file (.icd) that registers library: the system's vendor folder, OCL_ICD_VENDORS, or the
    folder pyopencl's own loader reads (where pip's pocl-binary-distribution puts its pocl.icd)."""
    folders = [os.environ.get("OCL_ICD_VENDORS", ""), "/etc/OpenCL/vendors",
               os.path.join(os.path.dirname(cl.__file__), ".libs")]
    name = os.path.basename(library)
    for folder in filter(os.path.isdir, folders):
        for path in sorted(glob.glob(os.path.join(folder, "*.icd"))):
            try:
                with open(path) as f:
                    entry = f.read().strip()
            except OSError:
                continue
            if entry and (os.path.basename(entry) == name or os.path.realpath(entry) == os.path.realpath(library)):
                return path
    return ""


def preferred(devs):
    """devs in the order the default takes them: GPUs first; then runtimes installed into this
    Python environment (pip's PoCL) before the system's; then discovery order. With more than one
    device, any whose compiler cannot build a trivial kernel goes last (a warning says why, once)."""
    ordered = sorted(devs, key=lambda d: (d.type_name != "GPU", not d.bundled, d.ordinal))
    if len(ordered) < 2:
        return ordered
    broken = [d for d in ordered if d.build_problem is not None]
    for d in broken:
        if d.spec not in _WARNED:
            _WARNED.add(d.spec)
            warnings.warn(f"minitorch_cl: {d.spec} ({d.short_version} / {d.name}) goes last in the default "
                          f"order: its OpenCL C compiler fails on a trivial kernel ({d.build_problem}). "
                          f"Set {ENV_VAR} to choose a device.", RuntimeWarning, stacklevel=3)
    return [d for d in ordered if d not in broken] + broken


_WARNED = set()  # specs already warned about
_NAMED = set()  # specs already asked for by name, whose known verdict was looked up


def devices():
    """Every OpenCL device on every platform, in platform order."""
    global _DEVICES
    if _DEVICES is None:
        try:
            platforms = cl.get_platforms()
        except cl.Error:
            platforms = []
        found = []
        for p_i, platform in enumerate(platforms):
            try:
                cl_devs = platform.get_devices()
            except cl.Error:
                continue
            for d_i, d in enumerate(cl_devs):
                found.append(Device(d, p_i, d_i, len(found)))
        _DEVICES = found
    return list(_DEVICES)


def _listing(devs):
    return "\n".join(f"  {d.spec:8s} cl:{d.ordinal:<3d} {d.platform_name} ({d.short_version}) / "
                     f"{d.name} [{d.type_name}]" for d in devs)


def device(spec=None, index=None):
    """Resolve a device spec: cl:N, cl:P:D, gpu, cpu, cuda[:N] (the N-th OpenCL GPU), cpu:N, or a
    fragment of one device's names (cl:nvidia). device("cuda", 1) is device("cuda:1"), as in torch.

    With no spec: MINITORCH_CL_DEVICE, else the first of preferred(devices())."""
    if isinstance(spec, Device):
        return spec
    if index is not None:
        spec = f"{spec}:{int(index)}"
    all_devs = devices()
    if not all_devs:
        raise DeviceError(NO_PLATFORM_HELP)
    source = repr(spec)
    if spec is None and os.environ.get(ENV_VAR):
        spec = os.environ[ENV_VAR]
        source = f"{ENV_VAR}={spec!r}"
    if spec is None:
        return preferred(all_devs)[0]
    found = _match(str(spec).strip(), all_devs, source)
    if found is None:
        raise DeviceError(f"no OpenCL device matches {source} (`minitorch-cl devices` lists them)",
                          f"devices on this machine:\n{_listing(all_devs)}")
    if found.spec not in _NAMED:
        _NAMED.add(found.spec)
        problem = found.known_build_problem
        if problem and found.spec not in _WARNED:
            _WARNED.add(found.spec)
            warnings.warn(f"minitorch_cl: {found.spec} ({found.short_version} / {found.name}), asked for by "
                          f"{source}, failed the compiler check on this machine ({problem}); its kernels may fail "
                          f"to build or abort the process", RuntimeWarning, stacklevel=2)
    return found


def _match(spec, all_devs, source=None):
    """The device spec names, None if none; DeviceError if a name fragment fits several."""
    text = spec.lower()
    body = text[3:] if text.startswith("cl:") else text
    parts = body.split(":")
    if body and all(p.isdigit() for p in parts):
        nums = [int(p) for p in parts]
        if len(nums) == 1:
            return all_devs[nums[0]] if nums[0] < len(all_devs) else None
        if len(nums) == 2:
            return next((d for d in all_devs if (d.platform_index, d.device_index) == tuple(nums)), None)
        return None
    if body in ("gpu", "cpu", "accel"):
        return next((d for d in preferred(all_devs) if d.type_name.lower() == body), None)
    kind, _, number = body.partition(":")
    if kind in ("cuda", "cpu") and (number.isdigit() or not number):
        same = [d for d in preferred(all_devs) if d.type_name == ("GPU" if kind == "cuda" else "CPU")]
        n = int(number or 0)
        if n < len(same):
            return same[n]
        what = "GPU (torch.cuda.is_available() is False here)" if kind == "cuda" else "CPU device"
        raise DeviceError(f"{source or repr(spec)}: there {'is no' if not same else f'are only {len(same)}'} OpenCL "
                          f"{what}", _listing(all_devs))
    if not body:
        return None
    found = [d for d in all_devs if body in f"{d.platform_name} {d.platform_version} {d.name}".lower()]
    if len(found) > 1:
        raise DeviceError(f"{source or repr(spec)} matches {len(found)} devices ({', '.join(d.spec for d in found)}); "
                          f"pick one by its cl:P:D spec", _listing(found))
    return found[0] if found else None


def default_device():
    return device(None)
