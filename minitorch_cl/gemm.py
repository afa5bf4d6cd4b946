"""The GEMM driver: C[z] (= or +=) op(A[z]) @ op(B[z]) (+ bias) (relu) on any OpenCL device.

Two paths over clkernels/matmul.cl, both built from one program per device:
  * CPU: gemm_pack copies op(A) and op(B)^T into zero-padded panels (from the memory
    pool), then gemm_packed computes MR x NR blocks of C in float8 registers. Packing makes both
    operands contiguous whatever their transposes and strides, and costs O(MK + KN) against the
    O(MNK) product.
  * GPU: gemm_tiled, local-memory tiles with register blocking, reading A and B in place through
    strides.
Every kernel has one fixed local size (PoCL compiles a kernel again for each new one) and all
sizes, strides and the epilogue are runtime arguments, so a device builds matmul.cl once.
"""
import numpy as np

# CPU register block, MR rows x 8*NV columns per work-item: 6x16 keeps 12 float8 accumulators,
# 2 B vectors and 1 broadcast in AVX2's 16 registers (measured ahead of 8x8 and 4x24).
CPU_DEFINES = {"MR": 6, "NV": 2}
CPU_GROUP = (4, 4, 1)  # (m-blocks, n-blocks): run in turn, sharing panels through the cache
PACK_GROUP = (64, 1, 1)
# A CPU takes the packed path from this many multiply-adds (M*N*K) up, i.e. always: gemm_tiled's
# barriers cost PoCL ~50 us per work-group and K tile, packing ~50 us in all. Tests raise it to
# run gemm_tiled on a CPU.
PACKED_MIN_WORK = 0

_i32 = np.int32
_CONFIGS = {}  # Device -> (defines, use the packed path)


def _config(dev):
    """(defines, use_packed_path) for the device: one set of -D options, so one build."""
    cfg = _CONFIGS.get(dev)
    if cfg is None:
        defines = {"TM": 64, "TN": 64, "TK": 16, "WM": 4, "WN": 4}  # work-group 16 x 16
        if dev.max_work_group_size < 256:
            defines.update(TM=32, TN=32)  # work-group 8 x 8
        packed = dev.is_cpu and dev.cl_device.mem_base_addr_align >= 256  # aligned float8 loads
        if packed:
            defines.update(CPU_DEFINES)
        cfg = _CONFIGS[dev] = (defines, packed)
    return cfg


def gemm(dev, M, N, K, a, b, c, *, trans_a=False, trans_b=False, lda, ldb, ldc,
         off_a=0, off_b=0, off_c=0, batch=1, batch_a=0, batch_b=0, batch_c=0,
         bias=None, off_bias=0, bias_mode=0, relu=False, accumulate=False):
    """C[z] (= or +=) op(A[z]) @ op(B[z]) (+ bias) (relu), float32, for z in range(batch).

    a, b, c, bias: OpenCL buffers (pooled). All offsets/strides in elements (float32).
    op(A) is (M,K): A[m*lda + k] when not trans_a, A[k*lda + m] when trans_a.
    op(B) is (K,N): B[k*ldb + n] when not trans_b, B[n*ldb + k] when trans_b.
    C[m*ldc + n]. batch_a/b/c: element stride between batch items (0 = the same matrix for every z;
    batch_c must not be 0 when batch > 1).
    bias_mode 0 none, 1 one bias per column n (bias[n], Linear), 2 one bias per row m (bias[m], conv).
    C = relu?((C if accumulate else 0) + op(A) @ op(B) + bias): relu applies after bias; accumulate
    adds the product into C (gradient accumulation). K == 0 gives C = bias or 0 (or C unchanged
    when accumulating without bias); M or N == 0 does nothing.
    Enqueues kernels only: never waits on the device, and builds matmul.cl once per device.
    """
    M, N, K, batch = int(M), int(N), int(K), int(batch)
    if M <= 0 or N <= 0 or batch <= 0:
        return
    if bias is None:
        bias, off_bias, bias_mode = c, 0, 0  # never read, but the kernel needs a buffer
    # op(A)[m][k] = A[m*sam + k*sak], op(B)[k][n] = B[k*sbk + n*sbn]
    sam, sak = (1, lda) if trans_a else (lda, 1)
    sbk, sbn = (1, ldb) if trans_b else (ldb, 1)
    epilogue = (_i32(off_bias), _i32(bias_mode), _i32(bool(relu)), _i32(bool(accumulate)))
    defines, packed = _config(dev)
    if packed and M * N * K >= PACKED_MIN_WORK:
        _gemm_packed(dev, defines, M, N, K, a, b, c, sam, sak, sbk, sbn, ldc, off_a, off_b, off_c,
                     batch, batch_a, batch_b, batch_c, bias, epilogue)
    else:
        kernel = dev.kernel("matmul.cl", "gemm_tiled", defines)
        tm, tn = defines["TM"], defines["TN"]
        gx, gy = tn // defines["WN"], tm // defines["WM"]
        dev.launch(kernel, (-(-N // tn) * gx, -(-M // tm) * gy, batch), (gx, gy, 1),
                   *map(_i32, (M, N, K, sam, sak, sbk, sbn, ldc, off_a, off_b, off_c,
                               batch_a, batch_b, batch_c)), *epilogue, a, b, bias, c)


def _pack(dev, kernel, R, K, W, src, rs, ks, off, batch, batch_src):
    """Panels (ceil(R/W), K, W) of src for each of `batch` items (1 when batch_src is 0)."""
    n = batch if batch_src else 1
    per_item = -(-R // W) * W * K
    dst = dev.alloc(4 * per_item * n)
    dev.launch(kernel, (K, -(-R // W), n), PACK_GROUP,
               *map(_i32, (R, K, W, rs, ks, off, batch_src, per_item)), src, dst)
    return dst, (per_item if batch_src else 0)


def _gemm_packed(dev, defines, M, N, K, a, b, c, sam, sak, sbk, sbn, ldc, off_a, off_b, off_c,
                 batch, batch_a, batch_b, batch_c, bias, epilogue):
    mr, nr = defines["MR"], 8 * defines["NV"]
    pack = dev.kernel("matmul.cl", "gemm_pack", defines)
    # The panels go back to the pool when this returns: the queue is in order, so any later user
    # of the same memory runs after gemm_packed has read it.
    if K:
        ap, batch_ap = _pack(dev, pack, M, K, mr, a, sam, sak, off_a, batch, batch_a)
        bp, batch_bp = _pack(dev, pack, N, K, nr, b, sbn, sbk, off_b, batch, batch_b)
    else:  # the epilogue alone: the panels are never read
        ap, bp, batch_ap, batch_bp = c, c, 0, 0
    kernel = dev.kernel("matmul.cl", "gemm_packed", defines)
    dev.launch(kernel, (-(-M // mr), -(-N // nr), batch), CPU_GROUP,
               *map(_i32, (M, N, K, ldc, off_c, batch_ap, batch_bp, batch_c)), *epilogue,
               ap, bp, bias, c)
