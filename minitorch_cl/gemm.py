"""The GEMM driver: C[z] (= or +=) op(A[z]) @ op(B[z]) (+ bias) (relu) on any OpenCL device.

Two paths over clkernels/matmul.cl, both built from one program per device:
  * CPU: gemm_pack copies op(A) and op(B)^T into zero-padded panels (from the memory
    pool), then gemm_packed computes MR x NR blocks of C in float8 registers. Packing makes both
    operands contiguous whatever their transposes and strides, and costs O(MK + KN) against the
    O(MNK) product. A small row-major B whose rows are whole aligned panel rows is read in place
    instead, and a long K runs in chunks so that the panels in use stay in L2.
  * GPU: gemm_tiled, local-memory tiles with register blocking, reading A and B in place through
    strides.
A constant B used by many calls (an RNN's recurrent weight) can be laid out once with pack_b() and
passed as gemm(b_packed=...): its panels are then reused, or on a GPU its buffer is read in place.
gemm(sum_batch=True) sums the batch's products into one C (a weight gradient over a batch): on a
CPU the packing lays the batch end to end along K, on a GPU it is one launch per batch item.
Every kernel has one fixed local size (PoCL compiles a kernel again for each new one) and all
sizes, strides and the epilogue are runtime arguments, so a device builds matmul.cl once.
"""
from .shared_constants import BIAS_NONE, BIAS_PER_ROW, PACK_KB
from .launch import At, launch

CPU_GROUP = (4, 4, 1)  # (m-blocks, n-blocks): run in turn, sharing panels through the cache
PACK_GROUP = (64, 1, 1)
PACK_BLOCK_GROUP = (8, 4)  # gemm_pack_rows_* / gemm_pack_ks1_*: (k blocks, panels)
# A CPU takes the packed path from this many multiply-adds (M*N*K) up, i.e. always: gemm_tiled's
# barriers cost PoCL ~50 us per work-group and K tile, packing ~50 us in all. Tests raise it to
# run gemm_tiled on a CPU.
PACKED_MIN_WORK = 0
# Read a row-major B with whole, aligned panels in place, not packed, when (rows of a K chunk) *
# (row pitch) is at most this many floats: batched conv GEMMs skip a pass over col (-35%), square
# 256 gains 5%, square 512 and 1024 lose 15% and 70% (their panels spread over L2's sets).
DIRECT_B_SPAN = 1 << 17
# ... or whatever its span when M or K is at most this: a panel then serves few m-blocks, or has few
# rows, and packing it costs more than reading it in place saves (pointwise convolutions, M = OC or
# K = C small against P = H*W columns: 2-4x less device time read in place, for M or K up to 256)
DIRECT_B_THIN = 128
DIRECT_A_MAX = 1 << 19  # read A (M, K) in place, not packed, up to this many elements,
# and a row-major A (k contiguous) up to this many: each of a work-item's MR rows is one stream
# (6400 x 512 @ 512 x 1024, an LSTM's input projection: 245 -> 314 GFLOP/s; square 1024: 283 -> 353)
DIRECT_A_ROWS_MAX = 1 << 40
# or whatever its size when N is at most this: its panels would serve few n-blocks (a 4x4 convolution
# layer's 512 x 4608 weight at N = 16 images x 16 positions: 5.0 vs 8.9 ms a call, packed)
DIRECT_A_NARROW = 256
K_CHUNK = 1024  # the CPU path splits a longer K into equal chunks of at most this,
CHUNK_MIN_MN = 128 * 128  # when C has at least this many elements,
PACK_BUDGET = 1 << 20  # and any K into chunks whose A and B panels take at most this many floats (4 MiB)


def _config(dev):
    """(defines, use_packed_path) from the device profile: one set of -D options, so one build."""
    prof = dev.profile
    defines = dict(prof.gemm_tiles)
    if prof.gemm_packed:
        defines.update(prof.gemm_cpu_block)
    return defines, prof.gemm_packed


def cpu_block(dev):
    """The -D register block (MR, NV, LANES) of the packed CPU path where the device takes it, else None:
    what lstm.cl's fused steps are built with."""
    defines, packed = _config(dev)
    return {"MR": defines["MR"], "NV": defines["NV"], "LANES": _lanes(defines)} if packed else None


def _lanes(defines):
    """Floats per gemm_packed vector (matmul.cl's LANES, 8 unless the block says 16)."""
    return defines.get("LANES", 8)


class PackedB:
    """op(B) (K, N) laid out for gemm(b_packed=): once by pack_b() (the same for every batch item),
    or by a kernel that writes panels itself (conv.cl's im2col_gather, batch_stride apart)."""

    def __init__(self, dev, K, N, buf, off, trans, ld, panels, batch_stride=0):
        self.dev, self.K, self.N = dev, K, N
        self.buf, self.off, self.trans, self.ld = buf, off, trans, ld  # panels, or B as given
        self.panels = panels  # True: buf holds ceil(N/NR) zero-padded (K, NR) panels
        self.batch_stride = batch_stride  # elements between batch items' panels (0: one B for all)


def panel_width(dev):
    """NR, the columns of one B panel, where the device takes the packed CPU path; else None."""
    defines, packed = _config(dev)
    return _lanes(defines) * defines["NV"] if packed else None


def pack_b(dev, K, N, b, *, trans_b=False, ldb, off_b=0):
    """op(B) (K, N) from buffer b (see gemm) as a PackedB: packed panels on the CPU path, else b itself.
    Enqueues the packing only; the result keeps its buffer alive, and is stale once b changes."""
    K, N = int(K), int(N)
    defines, packed = _config(dev)
    if not (packed and K > 0 and N > 0):
        return PackedB(dev, K, N, b, off_b, trans_b, ldb, False)
    sbk, sbn = (1, ldb) if trans_b else (ldb, 1)
    buf, _ = _pack(dev, defines, N, K, _lanes(defines) * defines["NV"], At(b, off_b), sbn, sbk, 1, 0, K, 0)
    return PackedB(dev, K, N, buf.buffer, 0, False, None, True)


def gemm(dev, M, N, K, a, b, c, *, trans_a=False, trans_b=False, lda, ldb=None, ldc,
         off_a=0, off_b=0, off_c=0, batch=1, batch_a=0, batch_b=0, batch_c=0,
         bias=None, off_bias=0, bias_mode=BIAS_NONE, relu=False, accumulate=False, b_packed=None,
         sum_batch=False, a_rows=None):
    """C[z] (= or +=) op(A[z]) @ op(B[z]) (+ bias) (relu), float32, for z in range(batch).

    a, b, c, bias: OpenCL buffers (pooled). All offsets/strides in elements (float32).
    op(A) is (M,K): A[m*lda + k] when not trans_a, A[k*lda + m] when trans_a.
    op(B) is (K,N): B[k*ldb + n] when not trans_b, B[n*ldb + k] when trans_b.
    C[m*ldc + n]. batch_a/b/c: element stride between batch items (0 = the same matrix for every z;
    batch_c must not be 0 when batch > 1).
    bias_mode (shared_constants): BIAS_NONE, BIAS_PER_COLUMN (bias[n], Linear) or BIAS_PER_ROW (bias[m], conv).
    C = relu?((C if accumulate else 0) + op(A) @ op(B) + bias): relu applies after bias; accumulate
    adds the product into C (gradient accumulation). K == 0 gives C = bias or 0 (or C unchanged
    when accumulating without bias); M or N == 0 does nothing.
    b_packed: a PackedB of shape (K, N) from pack_b(), used for every z in place of b/trans_b/ldb/
    off_b/batch_b (which are then ignored).
    sum_batch: one C = sum over z of op(A[z]) @ op(B[z]) (a weight gradient over a batch); batch_c
    is ignored.
    With sum_batch, a packed B is (K * batch, N): panels that lay the batch end to end along K
    (conv.cl's im2col_gather_t).
    a_rows: an int32 buffer (or At) of M offsets, CPU path only: op(A)[m][k] = A[off_a + a_rows[m] + k]
    (rows anywhere in A, each contiguous; lda, trans_a and batch_a are ignored, no sum_batch).
    Enqueues kernels only: never waits on the device, and builds matmul.cl once per device.
    """
    M, N, K, batch = int(M), int(N), int(K), int(batch)
    if M <= 0 or N <= 0 or batch <= 0:
        return
    if b_packed is not None:
        k_all = K * batch if sum_batch else K
        if (b_packed.K, b_packed.N) != (k_all, N) or b_packed.dev != dev:
            raise ValueError(f"gemm: packed B is ({b_packed.K}, {b_packed.N}) on {b_packed.dev.spec}, "
                             f"the product needs ({k_all}, {N}) on {dev.spec}")
        if sum_batch and not b_packed.panels:
            raise ValueError("gemm: sum_batch takes a packed B only as panels (the packed CPU path)")
        b, trans_b, ldb, off_b = b_packed.buf, b_packed.trans, b_packed.ld, b_packed.off
        batch_b = b_packed.batch_stride
    elif ldb is None:
        raise TypeError("gemm: ldb is required unless b_packed is given")
    b_panels = b_packed is not None and b_packed.panels
    if batch > 1 and batch_b == 0 and not (sum_batch or trans_a) and a_rows is None and \
            bias_mode != BIAS_PER_ROW and batch_a == M * lda and batch_c == M * ldc:
        # one B for every item, and A's and C's items end to end: a single product of M * batch rows
        # (a Linear's input gradient at (64, 8, 128): 64 items of 8 rows ran at 70 GFLOP/s)
        M, batch, batch_a, batch_c = M * batch, 1, 0, 0
    if bias is None:
        bias, off_bias, bias_mode = c, 0, BIAS_NONE  # never read, but the kernel needs a buffer
    # op(A)[m][k] = A[m*sam + k*sak], op(B)[k][n] = B[k*sbk + n*sbn]
    sam, sak = (1, lda) if trans_a else (lda, 1)
    sbk, sbn = (1, ldb) if trans_b else (ldb, 1)
    bias = At(bias, off_bias)
    epilogue = (bias_mode, bool(relu), bool(accumulate))
    defines, packed = _config(dev)
    if a_rows is not None:
        if not packed or sum_batch:
            raise ValueError("gemm: a_rows needs the packed CPU path and no sum_batch")
        sam, sak, batch_a = 0, 1, 0  # (aps = MR * sam = 0: every block's rows come from a_rows)
    if packed and (M * N * K >= PACKED_MIN_WORK or b_panels or a_rows is not None):
        _gemm_packed(dev, defines, M, N, K, a, b, c, sam, sak, sbk, sbn, ldc, off_a, off_b, off_c,
                     batch, batch_a, batch_b, batch_c, bias, epilogue, b_panels, sum_batch, a_rows)
        return
    tm, tn = defines["TM"], defines["TN"]
    gx, gy = tn // defines["WN"], tm // defines["WM"]
    # a sum over the batch is one launch per item, each adding into C
    parts = [(z, 1) for z in range(batch)] if sum_batch and batch > 1 else [(0, batch)]
    for i, (z, n) in enumerate(parts):
        launch(dev, "matmul.cl", "gemm_tiled", (-(-N // tn) * gx, -(-M // tm) * gy, n),
               M, N, K, sam, sak, sbk, sbn, ldc, batch_a, batch_b, batch_c,
               *_part_epilogue(epilogue, i == 0, i == len(parts) - 1), At(a, off_a + z * batch_a),
               At(b, off_b + z * batch_b), bias, At(c, off_c), local=(gx, gy, 1), defines=defines,
               flops=2 * M * N * K * n)


def _part_epilogue(epilogue, first, last):
    """The epilogue for one of several products summed into C: the bias with the first, the relu
    after the last, and every later one adds into C."""
    bias_mode, relu, accumulate = epilogue
    return bias_mode if first else BIAS_NONE, relu if last else False, accumulate if first else True


def _pack(dev, defines, R, K, W, src, rs, ks, batch, batch_src, kin, k0):
    """Panels (ceil(R/W), K, W) of src, rows k0.. of op, for each of `batch` items (1 when batch_src
    is 0); k indices past kin continue in the next batch item (see gemm_pack)."""
    n = batch if batch_src else 1
    per_item = -(-R // W) * W * K
    dst = dev.alloc(4 * per_item * n)
    # no batch of panels, a unit stride (compile time there), no block of k's across two items
    whole_blocks = k0 + K <= kin or (kin % PACK_KB, k0 % PACK_KB) == (0, 0)
    if n == 1 and 1 in (rs, ks) and whole_blocks:
        kind = ("rows_" if rs == 1 else "ks1_") + ("a" if W == defines["MR"] else "b")
        launch(dev, "matmul.cl", "gemm_pack_" + kind, (-(-K // PACK_KB), -(-R // W)), R, K,
               ks if rs == 1 else rs, k0, kin, batch_src, src, At(dst, 0), local=PACK_BLOCK_GROUP,
               defines=defines, nbytes=8 * per_item)
        return At(dst, 0), 0
    launch(dev, "matmul.cl", "gemm_pack", (-(-K // PACK_KB), -(-R // W), n), R, K, W, rs, ks, batch_src,
           per_item, kin, k0, src, At(dst, 0), local=PACK_GROUP, defines=defines, nbytes=8 * per_item * n)
    return At(dst, 0), (per_item if batch_src else 0)


def _gemm_packed(dev, defines, M, N, K, a, b, c, sam, sak, sbk, sbn, ldc, off_a, off_b, off_c,
                 batch, batch_a, batch_b, batch_c, bias, epilogue, b_is_panels, sum_batch, a_rows=None):
    """Pack and multiply; a long K goes in chunks of at most K_CHUNK, each adding into C, so that a
    work-group's panels stay in L2 (25% faster at K = 6400; pre-packed B is used whole).
    sum_batch packs the batch end to end along K: one product with K * batch."""
    mr, nr, lanes = defines["MR"], _lanes(defines) * defines["NV"], _lanes(defines)
    kin = K
    if sum_batch:  # z runs along K; the pack kernel steps batch_a/batch_b at every kin rows
        K, batch = K * batch, 1
    # vector loads of B in place need whole panels and vector-aligned rows; a panel spanning more
    # than L2 thrashes it (power-of-two row pitches), and one pack then pays for itself
    direct_b = not (b_is_panels or sum_batch) and sbn == 1 and N % nr == 0 and \
        (sbk % lanes, off_b % lanes, batch_b % lanes) == (0, 0, 0) and \
        (min(K, K_CHUNK) * sbk <= DIRECT_B_SPAN or min(M, K) <= DIRECT_B_THIN)
    # A read in place saves a launch and a pass over A, which pays for small A (an RNN step:
    # -20%), for any row-major one, and for a narrow C; a large transposed A streams better from
    # panels, and a batch-wide A is packed once anyway
    direct_a = a_rows is not None or not sum_batch and (batch_a or batch == 1) and \
        (M * K <= (DIRECT_A_ROWS_MAX if sak == 1 else DIRECT_A_MAX) or N <= DIRECT_A_NARROW)
    # (a small C has too few blocks for a chunk's three launches to pay: conv1's dW, 32 x 27)
    chunks = 1 if b_is_panels or M * N < CHUNK_MIN_MN else -(-K // K_CHUNK)
    # and the panels of one chunk stay within PACK_BUDGET (conv1's dW at batch 64 packed 15 MiB
    # whole), in chunks of K_CHUNK at the least (each chunk is one more pass over C)
    panel_rows = (0 if direct_a else M * (batch if batch_a else 1)) + \
        (0 if direct_b or b_is_panels else N * (batch if batch_b else 1))
    chunks = max(chunks, min(-(-K * panel_rows // PACK_BUDGET), -(-K // K_CHUNK)))
    step = max(-(-K // max(chunks, 1)), 1)
    for k0 in range(0, max(K, 1), step):
        kc = min(step, K - k0)
        ep = _part_epilogue(epilogue, k0 == 0, k0 + kc >= K)
        # The panels go back to the pool when this returns: the queue is in order, so any later
        # user of the same memory runs after gemm_packed has read it.
        ldbp, bps = nr, kc * nr  # B packed into panels
        sai, sakp, aps = 1, mr, kc * mr  # A packed into panels
        if not kc:  # the epilogue alone: the panels are never read
            ap, bp, batch_ap, batch_bp = At(c, 0), At(c, 0), 0, 0
        else:
            if direct_a:  # A's rows are read in place through its strides
                ap, batch_ap, sai, sakp, aps = At(a, off_a + k0 * sak), batch_a, sam, sak, mr * sam
            else:
                ap, batch_ap = _pack(dev, defines, M, kc, mr, At(a, off_a), sam, sak, batch, batch_a, kin, k0)
            if b_is_panels:  # the whole K's panels: this chunk's rows of each
                bp, batch_bp, bps = At(b, off_b + k0 * nr), batch_b, K * nr
            elif direct_b:  # B's rows are already panel rows: read B in place
                bp, batch_bp, ldbp, bps = At(b, off_b + k0 * sbk), batch_b, sbk, nr
            else:
                bp, batch_bp = _pack(dev, defines, N, kc, nr, At(b, off_b), sbn, sbk, batch, batch_b, kin, k0)
        launch(dev, "matmul.cl", "gemm_packed", (-(-M // mr), -(-N // nr), batch),
               M, N, kc, ldc, sai, sakp, aps, batch_ap, ldbp, bps, batch_bp, batch_c, *ep, int(a_rows is not None),
               ap, bp, a_rows if a_rows is not None else At(c, 0), bias, At(c, off_c), local=CPU_GROUP,
               defines=defines, flops=2 * M * N * kc * batch)


def gemm_implicit(dev, M, K, a, lda, off_a, xp, koff, img, OH, OW, Wp, c, off_c, batch, bias=None, off_bias=0,
                  relu=False):
    """A stride-1 convolution as a GEMM with no columns (CPU path): C[z] (M, OH*OW), batch_c M*OH*OW
    apart, = A (M, K) row-major (lda) @ B[z] (+ bias[m]) (relu), where row k of B[z] over positions
    q = oh*Wp + ow is xp[z*img + koff[k] + q] (conv.cl's conv_pad_planes and matmul.cl's gemm_implicit;
    xp and koff are buffers or At). The positions ow >= OW are computed and dropped."""
    defines, _ = _config(dev)
    mr, nr = defines["MR"], _lanes(defines) * defines["NV"]
    N = OH * Wp
    if M * K <= DIRECT_A_MAX:  # as in _gemm_packed: a small A is read in place
        ap, sai, sak, aps = At(a, off_a), lda, 1, mr * lda
    else:
        ap, _ = _pack(dev, defines, M, K, mr, At(a, off_a), lda, 1, 1, 0, K, 0)
        sai, sak, aps = 1, mr, K * mr
    bias_mode = BIAS_PER_ROW if bias is not None else BIAS_NONE
    bias = At(bias, off_bias) if bias is not None else At(c, 0)
    launch(dev, "matmul.cl", "gemm_implicit", (-(-M // mr), -(-N // nr), batch), M, N, K, OW, Wp, OH * OW,
           sai, sak, aps, img, M * OH * OW, bias_mode, bool(relu), ap, xp, koff, bias, At(c, off_c),
           local=CPU_GROUP, defines=defines, flops=2 * M * OH * OW * K * batch)
