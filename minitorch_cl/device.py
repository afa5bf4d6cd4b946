"""OpenCL devices: discovery, the spec parser, and the per-device context, queue, pool and programs."""
import os
import time

import pyopencl as cl
import pyopencl.tools

from . import device_profile, kernels, tuned_profile

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
    """A device spec that matches nothing, or no OpenCL at all."""


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
        self._launch_plans = {}  # launch.py's per-kernel argument plans
        self._profiling = False  # the queue records event timestamps (set_profiling)
        self._tuned = {}

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
            mem_base_addr_align=d.mem_base_addr_align, extensions=d.extensions)

    @property
    def tuning_key(self):
        """The autotuner's key for this device: platform name and version, device name, driver version."""
        return tuned_profile.device_key(self.platform_name, self.platform_version, self.name,
                                        self.cl_device.driver_version)

    def __repr__(self):
        return f"device('{self.spec}')  # {self.name} [{self.platform_name}]"

    def __str__(self):
        return self.spec

    def __eq__(self, other):
        return isinstance(other, Device) and self.ordinal == other.ordinal

    def __hash__(self):
        return hash(self.ordinal)

    # ---- runtime state, created on first use -----------------------------------------------
    def _ensure_context(self):
        if self._context is None:
            self._context = cl.Context([self.cl_device])
            self._plain_queue = self._queue = cl.CommandQueue(self._context)
            if self._profiling:
                self._queue = cl.CommandQueue(self._context, properties=cl.command_queue_properties.PROFILING_ENABLE)
            self._pool = cl.tools.MemoryPool(cl.tools.ImmediateAllocator(self._plain_queue))
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
        """A buffer of at least nbytes from the device's memory pool."""
        self._ensure_context()
        return self._pool.allocate(max(int(nbytes), 4))

    def upload(self, buffer, host, nbytes_offset=0):
        """Start copying a contiguous host array into buffer; the returned event keeps `host` alive."""
        start = time.perf_counter()
        event = cl.enqueue_copy(self.queue, buffer, host, dst_offset=nbytes_offset, is_blocking=False)
        for observe in transfer_observers:
            observe(self, "upload", host.nbytes, event, time.perf_counter() - start)
        return event

    def download(self, host, buffer, nbytes_offset=0):
        """Copy buffer (from a byte offset) into a contiguous host array, waiting for the device."""
        start = time.perf_counter()
        event = cl.enqueue_copy(self.queue, host, buffer, src_offset=nbytes_offset, is_blocking=True)
        for observe in transfer_observers:
            observe(self, "download", host.nbytes, event, time.perf_counter() - start)
        return host

    def program(self, filename, defines=None):
        """The built program for (file, defines), built once per device."""
        key = (filename, tuple(sorted((defines or {}).items())))
        prog = self._programs.get(key)
        if prog is None:
            prog = kernels.build(self.context, self.cl_device, filename, defines or {})
            self._programs[key] = prog
        return prog

    def kernel(self, filename, name, defines=None):
        """A kernel object for (file, defines, name), cached so launches never rebuild."""
        key = (filename, tuple(sorted((defines or {}).items())), name)
        k = self._kernels.get(key)
        if k is None:
            k = getattr(self.program(filename, defines), name)
            self._kernels[key] = k
        return k

    def synchronize(self):
        self.queue.finish()


_DEVICES = None


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


def _listing():
    return "\n".join(f"  {d.spec:8s} cl:{d.ordinal:<3d} {d.platform_name} ({d.platform_version}) / "
                     f"{d.name} [{d.type_name}]" for d in devices())


def device(spec=None):
    """Resolve a device spec: cl:N, cl:P:D, gpu, cpu, or a name fragment like cl:pocl."""
    if isinstance(spec, Device):
        return spec
    all_devs = devices()
    if not all_devs:
        raise DeviceError(NO_PLATFORM_HELP)
    if spec is None:
        spec = os.environ.get(ENV_VAR) or None
    if spec is None:
        gpus = [d for d in all_devs if d.type_name == "GPU"]
        return (gpus or all_devs)[0]
    found = _match(str(spec).strip(), all_devs)
    if found is None:
        raise DeviceError(f"no OpenCL device matches {spec!r}; devices on this machine:\n{_listing()}")
    return found


def _match(spec, all_devs):
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
        return next((d for d in all_devs if d.type_name.lower() == body), None)
    if not body:
        return None
    for d in all_devs:
        haystack = f"{d.platform_name} {d.platform_version} {d.name}".lower()
        if body in haystack:
            return d
    return None


def default_device():
    return device(None)
