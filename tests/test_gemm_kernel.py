"""gemm() against a float64 NumPy reference: odd sizes, transposes, batches, offsets, epilogues."""
import numpy as np
import pyopencl as cl
import pytest

import minitorch_cl as mt
from minitorch_cl import gemm as gemm_mod
from minitorch_cl.tuner import profile_entries
from helpers import compare


@pytest.fixture(params=["auto", "packed", "other-lanes", "tiled"])
def path(request, monkeypatch, dev):
    """auto: the device's own choice (on a CPU: panels, with small operands read in place);
    packed: on a CPU, both operands packed into panels whatever their size; other-lanes: the
    packed kernel with the vector width the device does not take (16 floats on AVX2, 8 on
    AVX-512) and an odd block, so every machine runs both; tiled: the local-memory kernel for
    every size, so a CPU run covers the GPU kernel too."""
    if request.param == "packed":
        monkeypatch.setattr(gemm_mod, "DIRECT_A_MAX", 0)
        monkeypatch.setattr(gemm_mod, "DIRECT_A_ROWS_MAX", 0)
        monkeypatch.setattr(gemm_mod, "DIRECT_A_NARROW", 0)
        monkeypatch.setattr(gemm_mod, "DIRECT_B_SPAN", 0)
        monkeypatch.setattr(gemm_mod, "DIRECT_B_THIN", 0)
    if request.param == "tiled":
        monkeypatch.setattr(gemm_mod, "PACKED_MIN_WORK", float("inf"))
    if request.param != "other-lanes":
        yield request.param
        return
    lanes = 24 - dev.default_profile().gemm_cpu_block["LANES"]
    with profile_entries(dev, gemm_cpu_block=dict(MR=5, NV=3 if lanes == 8 else 2, LANES=lanes)):
        yield request.param


@pytest.fixture(params=["auto", "gpu-like"])
def device_kind(request, monkeypatch):
    """gpu-like: the device is treated as one without the packed path (pack_b keeps B as given)."""
    if request.param == "gpu-like":
        config = gemm_mod._config
        monkeypatch.setattr(gemm_mod, "_config", lambda dev: (config(dev)[0], False))
    return request.param


def _upload(dev, arr):
    buf = dev.alloc(arr.nbytes)
    cl.enqueue_copy(dev.queue, buf, np.ascontiguousarray(arr, dtype=np.float32))
    return buf


def _download(dev, buf, n):
    out = np.empty(n, np.float32)
    cl.enqueue_copy(dev.queue, out, buf)
    return out


def _run(dev, rng, M, N, K, *, trans_a=False, trans_b=False, batch=1, bcast_a=False, bcast_b=False,
         pad=0, off=0, bias_mode=0, relu=False, accumulate=False, packed_b=False,
         sum_batch=False):
    """Random operands laid out as asked (row pitch +pad, leading offset off), gemm, and compare.
    packed_b: B goes through pack_b() once (so it must be the same for every batch item).
    sum_batch: one C, the sum of the batch's products."""
    nb_a, nb_b = (1 if bcast_a else batch), (1 if bcast_b else batch)
    ra, ca = (K, M) if trans_a else (M, K)
    rb, cb = (N, K) if trans_b else (K, N)
    lda, ldb, ldc = ca + pad, cb + pad, N + pad
    A = rng.standard_normal((nb_a, ra, lda)).astype(np.float32)
    B = rng.standard_normal((nb_b, rb, ldb)).astype(np.float32)
    C0 = rng.standard_normal((1 if sum_batch else batch, M, ldc)).astype(np.float32)
    bias = rng.standard_normal(M if bias_mode == 2 else N).astype(np.float32)
    flat = lambda x: np.concatenate([np.full(off, np.nan, np.float32), x.ravel()])
    a, b, c, bb = (_upload(dev, flat(x)) for x in (A, B, C0, bias))
    pb = None
    if packed_b:
        assert bcast_b or batch == 1
        pb = gemm_mod.pack_b(dev, K, N, b, trans_b=trans_b, ldb=ldb, off_b=off)
        b = _upload(dev, np.full(4, np.nan, np.float32))  # never read
    gemm_mod.gemm(dev, M, N, K, a, b, c, trans_a=trans_a, trans_b=trans_b, lda=lda, ldb=ldb, ldc=ldc,
                  off_a=off, off_b=off, off_c=off, batch=batch, batch_a=0 if bcast_a else ra * lda,
                  batch_b=0 if bcast_b else rb * ldb, batch_c=M * ldc, bias=bb if bias_mode else None,
                  off_bias=off, bias_mode=bias_mode, relu=relu, accumulate=accumulate, b_packed=pb,
                  sum_batch=sum_batch)
    got = _download(dev, c, off + C0.size)
    assert np.isnan(got[:off]).all()
    got = got[off:].reshape(C0.shape)

    opa = A[..., :ca].astype(np.float64)
    opa = np.swapaxes(opa, -1, -2) if trans_a else opa
    opb = B[..., :cb].astype(np.float64)
    opb = np.swapaxes(opb, -1, -2) if trans_b else opb
    want = np.broadcast_to(opa @ opb, (batch, M, N)).copy()
    if sum_batch:
        want = want.sum(0, keepdims=True)
    if accumulate:
        want += C0[..., :N]
    if bias_mode == 1:
        want += bias[None, None, :]
    elif bias_mode == 2:
        want += bias[None, :, None]
    if relu:
        want = np.maximum(want, 0)
    # Each output is a K-term float32 dot product: its rounding error grows like sqrt(K).
    tol = 1e-5 * np.sqrt(max(K * (batch if sum_batch else 1), 1))
    compare(got[..., :N], want, rtol=tol, atol=tol + 1e-6)
    compare(got[..., N:], C0[..., N:], rtol=0, atol=0, what="row padding")  # never written


@pytest.mark.parametrize("n", [1, 7, 33, 65, 127, 257])
def test_square(dev, path, n):
    _run(dev, np.random.default_rng(n), n, n, n)


@pytest.mark.parametrize("mnk", [(1, 257, 33), (65, 7, 127), (257, 1, 65), (33, 65, 1), (7, 33, 300),
                                 (130, 97, 260)])
def test_mixed(dev, path, mnk):
    _run(dev, np.random.default_rng(sum(mnk)), *mnk)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("mnk", [(65, 33, 127), (7, 130, 33)])
def test_transposes(dev, path, ta, tb, mnk):
    _run(dev, np.random.default_rng(7), *mnk, trans_a=ta, trans_b=tb, pad=3)


@pytest.mark.parametrize("bcast", ["none", "a", "b"])
def test_batched(dev, path, bcast):
    _run(dev, np.random.default_rng(3), 33, 40, 65, batch=3, bcast_a=bcast == "a", bcast_b=bcast == "b",
         trans_b=True)


def test_offsets_and_pitch(dev, path):
    _run(dev, np.random.default_rng(4), 47, 53, 61, pad=5, off=11, trans_a=True, batch=2)


@pytest.mark.parametrize("bias_mode", [1, 2])
@pytest.mark.parametrize("relu", [False, True])
def test_bias_relu(dev, path, bias_mode, relu):
    _run(dev, np.random.default_rng(5), 37, 70, 45, bias_mode=bias_mode, relu=relu, off=2)


@pytest.mark.parametrize("mnk", [(33, 65, 127), (5, 9, 3)])
def test_accumulate(dev, path, mnk):
    _run(dev, np.random.default_rng(6), *mnk, accumulate=True, pad=1)


@pytest.mark.parametrize("kw", [{}, {"bias_mode": 1}, {"bias_mode": 2, "relu": True}, {"accumulate": True}])
def test_k_zero(dev, path, kw):
    _run(dev, np.random.default_rng(8), 9, 17, 0, **kw)


@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("mnk", [(65, 33, 127), (7, 48, 1), (1, 257, 33)])
def test_packed_b(dev, device_kind, tb, mnk):
    """A B packed once by pack_b, reused by a batch with an epilogue, against NumPy."""
    _run(dev, np.random.default_rng(9), *mnk, trans_b=tb, pad=3, off=5, packed_b=True, batch=2, bcast_b=True,
         bias_mode=1, accumulate=True)


def test_packed_b_reused_and_checked(dev, rng):
    """One PackedB serves several products; a mismatched shape is refused with both shapes named."""
    K, N = 37, 50
    B = rng.standard_normal((K, N)).astype(np.float32)
    pb = gemm_mod.pack_b(dev, K, N, _upload(dev, B), ldb=N)
    for M in (1, 13):
        A = rng.standard_normal((M, K)).astype(np.float32)
        c = _upload(dev, np.zeros(M * N, np.float32))
        gemm_mod.gemm(dev, M, N, K, _upload(dev, A), None, c, lda=K, ldc=N, b_packed=pb)
        want = A.astype(np.float64) @ B
        compare(_download(dev, c, M * N).reshape(M, N), want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"\(37, 50\).*\(36, 50\)"):
        gemm_mod.gemm(dev, 2, N, K - 1, c, None, c, lda=K, ldc=N, b_packed=pb)


@pytest.mark.parametrize("M,N,K,chunk", [(13, 50, 37, None), (7, 33, 300, 128)])
def test_a_rows(dev, rng, monkeypatch, M, N, K, chunk):
    """a_rows: op(A)'s row m is the contiguous run A[off_a + a_rows[m]:][:K], rows anywhere and overlapping
    (a convolution's columns in its padded input), with bias, ReLU and K in chunks; refused off the
    packed CPU path."""
    if gemm_mod.panel_width(dev) is None:
        pytest.skip("the device takes the GPU GEMM path, which has no a_rows")
    if chunk:
        monkeypatch.setattr(gemm_mod, "K_CHUNK", chunk)
        monkeypatch.setattr(gemm_mod, "CHUNK_MIN_MN", 1)
    flat = rng.standard_normal(3 * K + 30).astype(np.float32)
    rows = rng.integers(0, 2 * K + 20, M).astype(np.int32)  # overlapping runs
    B = rng.standard_normal((K, N)).astype(np.float32)
    bias = rng.standard_normal(M).astype(np.float32)
    table = mt.tensor(rows, device=dev)
    c = _upload(dev, np.zeros(M * N, np.float32))
    gemm_mod.gemm(dev, M, N, K, _upload(dev, flat), _upload(dev, B), c, lda=0, ldb=N, ldc=N, off_a=3,
                  a_rows=table, bias=_upload(dev, bias), bias_mode=2, relu=True)
    A = np.stack([flat[3 + r:3 + r + K] for r in rows]).astype(np.float64)
    want = np.maximum(A @ B + bias[:, None], 0)
    compare(_download(dev, c, M * N).reshape(M, N), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw", [{}, {"trans_a": True, "bias_mode": 2, "relu": True},
                                {"trans_b": True, "accumulate": True, "bias_mode": 1, "relu": True},
                                {"batch": 2, "pad": 8, "off": 8}])
def test_k_chunks(dev, path, monkeypatch, kw):
    """A K longer than K_CHUNK runs as several products adding into C; the epilogue applies once."""
    monkeypatch.setattr(gemm_mod, "K_CHUNK", 40)
    monkeypatch.setattr(gemm_mod, "CHUNK_MIN_MN", 1)
    _run(dev, np.random.default_rng(10), 13, 32, 127, **kw)


@pytest.mark.parametrize("kw", [{"pad": 1, "off": 1, "batch": 3}, {"pad": 1, "off": 2, "bcast_b": True, "batch": 2},
                                {"pad": 3 / 8}, {"off": 3 / 8}])
def test_b_read_in_place(dev, path, kw):
    """N a multiple of the panel width: B is read in place when its rows are aligned, packed when not.
    Pads and offsets are in vectors of the block's width (3/8 of one is misaligned)."""
    defines, _ = gemm_mod._config(dev)
    lanes = gemm_mod._lanes(defines)
    _run(dev, np.random.default_rng(11), 19, 3 * lanes * defines["NV"], 33, bias_mode=1, relu=True,
         **{k: int(v * lanes) if k in ("pad", "off") else v for k, v in kw.items()})


@pytest.mark.parametrize("kw", [{}, {"trans_a": True, "bias_mode": 2, "relu": True, "off": 3},
                                {"trans_b": True, "accumulate": True, "bias_mode": 1, "pad": 2},
                                {"bcast_a": True, "trans_b": True, "relu": True}, {"bcast_b": True, "pad": 8}])
def test_sum_batch(dev, path, kw):
    """C = the sum over the batch of the products (conv's weight gradient), as one long K."""
    _run(dev, np.random.default_rng(12), 13, 27, 65, batch=5, sum_batch=True, **kw)


def test_sum_batch_in_k_chunks(dev, monkeypatch):
    """Chunks of the long K split batch items (K_CHUNK not a multiple of K)."""
    monkeypatch.setattr(gemm_mod, "K_CHUNK", 50)
    monkeypatch.setattr(gemm_mod, "CHUNK_MIN_MN", 1)
    _run(dev, np.random.default_rng(13), 9, 33, 31, batch=7, sum_batch=True, trans_b=True, bias_mode=2, relu=True)


def test_pack_budget_splits_k(dev, path, monkeypatch):
    """A small C with a long K (conv1's weight gradient) still runs in chunks when its panels would
    exceed PACK_BUDGET; the chunks add into C and the epilogue applies once."""
    monkeypatch.setattr(gemm_mod, "PACK_BUDGET", 2000)
    _run(dev, np.random.default_rng(14), 9, 33, 31, batch=7, sum_batch=True, trans_b=True, bias_mode=2, relu=True)
    _run(dev, np.random.default_rng(15), 7, 20, 300, accumulate=True, bias_mode=1)


def test_packed_b_in_k_chunks(dev, monkeypatch):
    """Panels laid out once for the whole K (pack_b, im2col_panels) are read chunk by chunk when a
    packed A's size splits K (a 512-channel 3x3 convolution: A is 512 x 4608)."""
    monkeypatch.setattr(gemm_mod, "DIRECT_A_MAX", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_A_ROWS_MAX", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_A_NARROW", 0)
    monkeypatch.setattr(gemm_mod, "PACK_BUDGET", 500)
    monkeypatch.setattr(gemm_mod, "K_CHUNK", 16)
    _run(dev, np.random.default_rng(16), 13, 40, 71, packed_b=True, batch=2, bcast_b=True, bias_mode=1, relu=True)


def test_large_a_read_in_place_when_n_is_narrow(dev, rng, monkeypatch):
    """An A over DIRECT_A_MAX is still read in place, not packed, when N is at most DIRECT_A_NARROW
    (a deep convolution on a few small images), whatever its layout (DIRECT_A_ROWS_MAX 0: the
    row-major rule is off); against NumPy."""
    from helpers import count_launches
    monkeypatch.setattr(gemm_mod, "DIRECT_A_ROWS_MAX", 0)
    if gemm_mod.panel_width(dev) is None:
        pytest.skip("the device takes the GPU GEMM path")
    M, K, N = 600, 1000, 2 * gemm_mod.panel_width(dev)
    assert M * K > gemm_mod.DIRECT_A_MAX and N <= gemm_mod.DIRECT_A_NARROW
    A, B = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
    a, b, c = _upload(dev, A), _upload(dev, B), _upload(dev, np.zeros(M * N, np.float32))
    packs = count_launches(lambda: gemm_mod.gemm(dev, M, N, K, a, b, c, lda=K, ldb=N, ldc=N),
                           lambda key: key[1].startswith("gemm_pack") and key[1] != "gemm_packed")
    assert packs == 0
    compare(_download(dev, c, M * N).reshape(M, N), A.astype(np.float64) @ B, rtol=1e-4, atol=1e-4)


def test_empty_is_noop(dev):
    c = _upload(dev, np.arange(4, dtype=np.float32))
    for M, N in [(0, 2), (2, 0)]:
        gemm_mod.gemm(dev, M, N, 3, c, c, c, lda=3, ldb=2, ldc=2)
    compare(_download(dev, c, 4), np.arange(4.0), rtol=0, atol=0)


def test_one_build_per_device(dev, rng):
    """Every size and layout shares one program: no build on the hot path (other tests may have
    built other profiles' variants on this device before: count what these GEMMs add)."""
    import minitorch_cl as mt
    before = {key for key in dev._programs if key[0] == "matmul.cl"}
    for M, N, K in ((1, 1, 1), (7, 33, 65), (257, 3, 129), (64, 64, 2000)):
        a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
        np.testing.assert_allclose((mt.tensor(a, device=dev) @ mt.tensor(b, device=dev)).numpy(), a @ b,
                                   rtol=1e-4, atol=1e-4)
        mt.tensor(a, device=dev).T.contiguous().T @ mt.tensor(b, device=dev)
    added = {key for key in dev._programs if key[0] == "matmul.cl"} - before
    assert len(added) <= 1


@pytest.mark.parametrize("transposed", [False, True])
def test_gemm_into_packed_tensor(dev, rng, transposed):
    """ops.matmul.pack_b on a tensor (a transposed view too) feeds gemm_into, batched, accumulating."""
    import minitorch_cl as mt
    from minitorch_cl.ops.matmul import gemm_into, pack_b
    K, N = 33, 65
    W = rng.standard_normal((N, K) if transposed else (K, N)).astype(np.float32)
    w = mt.tensor(W, device=dev)
    packed = pack_b(w.T if transposed else w)
    Bm = (W.T if transposed else W).astype(np.float64)
    A = rng.standard_normal((3, 7, K)).astype(np.float32)
    C0 = rng.standard_normal((3, 7, N)).astype(np.float32)
    out = mt.tensor(C0, device=dev)
    gemm_into(out, mt.tensor(A, device=dev), packed, accumulate=True)
    compare(out, C0 + A.astype(np.float64) @ Bm, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="2-D"):
        pack_b(mt.tensor(A, device=dev))


def test_gemm_into_sum_batch(dev, rng):
    """gemm_into(sum_batch=True): out (M, N) = sum over the broadcast batch of a @ b (a transposed view)."""
    import minitorch_cl as mt
    from minitorch_cl.ops.matmul import gemm_into
    A = rng.standard_normal((2, 3, 33, 7)).astype(np.float32)
    B = rng.standard_normal((3, 33, 65)).astype(np.float32)
    out = mt.zeros(7, 65, device=dev)
    gemm_into(out, mt.tensor(A, device=dev).mT, mt.tensor(B, device=dev), sum_batch=True)
    want = (np.swapaxes(A, -1, -2).astype(np.float64) @ B).sum((0, 1))
    compare(out, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kw", [{"trans_a": True}, {"trans_a": True, "pad": 3, "off": 5},
                                {"batch": 2, "bcast_b": True, "trans_a": True, "bias_mode": 1, "relu": True},
                                {"trans_a": True, "accumulate": True, "chunks": True},
                                {"trans_b": True}, {"trans_b": True, "pad": 2, "off": 3},
                                {"trans_b": True, "accumulate": True, "chunks": True}])
@pytest.mark.parametrize("mnk", [(1, 1, 1), (7, 17, 5), (65, 33, 66), (13, 130, 257)])
def test_pack_block(dev, monkeypatch, mnk, kw):
    """gemm_pack_rows_* (sources with contiguous rows: A transposed, B row-major) and gemm_pack_ks1_*
    (contiguous k's: A row-major, B transposed) at every size, over grids that straddle their
    (8, 4) work-group, partial panels of both widths and partial 8-k blocks; with K chunks they
    pack rows k0.. of the source. DIRECT_*: 0 so that both operands are packed."""
    kw = dict(kw)
    monkeypatch.setattr(gemm_mod, "DIRECT_A_MAX", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_A_ROWS_MAX", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_A_NARROW", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_B_SPAN", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_B_THIN", 0)
    if kw.pop("chunks", False):
        monkeypatch.setattr(gemm_mod, "K_CHUNK", 40)
        monkeypatch.setattr(gemm_mod, "CHUNK_MIN_MN", 1)
    _run(dev, np.random.default_rng(sum(mnk)), *mnk, **kw)


@pytest.mark.parametrize("kw", [{}, {"trans_a": True, "trans_b": True}, {"pad": 2, "off": 1, "bias_mode": 2}])
@pytest.mark.parametrize("chunk", [None, 40, 36])
@pytest.mark.parametrize("mnk", [(7, 33, 16), (13, 65, 40)])
def test_pack_block_across_a_summed_batch(dev, monkeypatch, mnk, chunk, kw):
    """A sum over a batch (conv dW) lays the items end to end along K: the pack_block kernels take
    it when every 8-k block lies in one item (K per item and each chunk's start multiples of 8;
    a chunk of 36 falls back to gemm_pack for its unaligned starts)."""
    monkeypatch.setattr(gemm_mod, "DIRECT_A_MAX", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_A_ROWS_MAX", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_A_NARROW", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_B_SPAN", 0)
    monkeypatch.setattr(gemm_mod, "DIRECT_B_THIN", 0)
    if chunk:
        monkeypatch.setattr(gemm_mod, "K_CHUNK", chunk)
        monkeypatch.setattr(gemm_mod, "CHUNK_MIN_MN", 1)
    _run(dev, np.random.default_rng(sum(mnk) + (chunk or 0)), *mnk, batch=5, sum_batch=True, **kw)


@pytest.mark.parametrize("trans_b", [False, True])
def test_pack_block_with_default_settings(dev, trans_b):
    """A large B (1000 x 2100), N not a multiple of the panel width, packed by gemm_pack_rows_b
    (row-major) or gemm_pack_ks1_b (transposed), with a 17-row A read in place."""
    _run(dev, np.random.default_rng(12), 17, 2100, 1000, trans_b=trans_b)
