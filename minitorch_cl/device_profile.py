"""What the engine decides per device, in one table per device type, clamped to the device's limits.

A new device quirk is one entry here; the autotuner writes its winners into the same object
(`DeviceProfile.update`). Nothing here talks to OpenCL: `for_device` reads the limits it is given.
"""
import dataclasses


@dataclasses.dataclass
class DeviceProfile:
    map_local: int            # work-group of element-wise and other one-item-per-output kernels
    reduce_wg: int            # work-group of the cooperative (one group per output) reduction
    reduce_cols8: bool        # float32 sums down columns take eight outputs a work-item in float8 (CPU)
    gemm_tiles: dict          # -D tile sizes of matmul.cl's gemm_tiled (GPU path)
    gemm_packed: bool         # the CPU path: packed panels and register blocks of vectors
    gemm_cpu_block: dict      # -D register block of gemm_packed: MR rows of NV vectors of LANES floats
    attention_local: bool     # attention.cl stages K/V tiles in local memory (GPU) or not (CPU)
    attention_bq: int         # query rows per work-item (CPU) / per group (GPU)
    attention_lanes: int      # attention.cl's -D AW: floats per vector, 8 or 16 (CPUs with AVX-512)
    layernorm_wg: int         # work-items per LayerNorm row (1: a work-item owns a row)
    batchnorm_wg: int         # work-items per BatchNorm/GroupNorm channel (1: a work-item owns a channel)
    sort_block: int           # elements a work-group of sort.cl sorts in local memory (sort_block / 2 items)
    sort_serial: bool         # sort.cl: a work-item merge-sorts a row (CPU) instead of the bitonic network
    fp16: bool                # cl_khr_fp16: native half arithmetic
    fp64: bool                # cl_khr_fp64: float64 tensors

    def update(self, **entries):
        """Overwrite entries (the autotuner's winners); unknown names are an error."""
        unknown = set(entries) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise KeyError(f"unknown device profile entries: {sorted(unknown)}")
        for k, v in entries.items():
            setattr(self, k, v)


_BY_TYPE = {
    "CPU": dict(map_local=256, reduce_wg=64, reduce_cols8=True, gemm_tiles=dict(TM=64, TN=64, TK=16, WM=4, WN=4),
                gemm_packed=True, gemm_cpu_block=dict(MR=6, NV=2, LANES=8), attention_local=False, attention_bq=12,
                attention_lanes=8, layernorm_wg=1, batchnorm_wg=1, sort_block=1024, sort_serial=True),
    "GPU": dict(map_local=256, reduce_wg=256, reduce_cols8=False, gemm_tiles=dict(TM=64, TN=64, TK=16, WM=4, WN=4),
                gemm_packed=False, gemm_cpu_block=dict(MR=6, NV=2, LANES=8), attention_local=True, attention_bq=1,
                attention_lanes=8, layernorm_wg=128, batchnorm_wg=256, sort_block=1024,
                sort_serial=False),
}


def for_device(type_name, *, max_work_group_size, local_mem_size, mem_base_addr_align, extensions,
               native_vector_width_float=8):
    """The profile of a device of this type ('CPU', 'GPU', ...), clamped to its limits.
    mem_base_addr_align is in bits, as OpenCL gives it."""
    entry = dict(_BY_TYPE.get(type_name, _BY_TYPE["GPU"]))
    entry["gemm_tiles"] = dict(entry["gemm_tiles"])
    entry["gemm_cpu_block"] = dict(entry["gemm_cpu_block"])
    wg = max_work_group_size
    # Every fixed local size must fit the device's work-group limit (powers of two all).
    for key in ("map_local", "reduce_wg", "layernorm_wg", "batchnorm_wg"):
        while entry[key] > wg:
            entry[key] //= 2
    while entry["sort_block"] // 2 > wg or 12 * entry["sort_block"] > local_mem_size:
        entry["sort_block"] //= 2  # (value, int64 index) pairs
    tiles = entry["gemm_tiles"]
    if wg < 256 or 4 * tiles["TK"] * (tiles["TM"] + tiles["TN"]) > local_mem_size:
        tiles.update(TM=32, TN=32)  # an 8 x 8 work-group and half the local memory
    # The packed CPU path loads aligned float8 vectors from pool buffers; a CPU with 16-float
    # registers (AVX-512) takes float16 ones, twice the work per instruction (2x the GFLOP/s on
    # PoCL's AVX-512 build, which otherwise keeps to 256-bit registers).
    entry["gemm_packed"] = entry["gemm_packed"] and mem_base_addr_align >= 256
    if entry["gemm_packed"] and native_vector_width_float >= 16 and mem_base_addr_align >= 512:
        entry["gemm_cpu_block"]["LANES"] = 16
    if entry["attention_local"] and wg < 64:
        entry["attention_local"] = False
    # Likewise attention's register rows (its loads need no alignment; the GPU path keeps float8),
    # with 16 rows, not 12: 32 registers hold 16 accumulators and more (about 15% faster here).
    if not entry["attention_local"] and native_vector_width_float >= 16:
        entry.update(attention_lanes=16, attention_bq=16)
    return DeviceProfile(**entry, fp16="cl_khr_fp16" in extensions, fp64="cl_khr_fp64" in extensions)
