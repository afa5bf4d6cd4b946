"""gemm() against a float64 NumPy reference: odd sizes, transposes, batches, offsets, epilogues."""
import numpy as np
import pyopencl as cl
import pytest

from minitorch_cl import gemm as gemm_mod
from minitorch_cl.device import device


@pytest.fixture(scope="module")
def gdev():
    return device()


@pytest.fixture(params=["auto", "tiled"])
def path(request, monkeypatch):
    """auto: the device's own choice (packed panels on a CPU); tiled: the
    local-memory kernel for every size, so a CPU run covers the GPU kernel too."""
    if request.param == "tiled":
        monkeypatch.setattr(gemm_mod, "PACKED_MIN_WORK", float("inf"))
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
         pad=0, off=0, bias_mode=0, relu=False, accumulate=False):
    """Random operands laid out as asked (row pitch +pad, leading offset off), gemm, and compare."""
    nb_a, nb_b = (1 if bcast_a else batch), (1 if bcast_b else batch)
    ra, ca = (K, M) if trans_a else (M, K)
    rb, cb = (N, K) if trans_b else (K, N)
    lda, ldb, ldc = ca + pad, cb + pad, N + pad
    A = rng.standard_normal((nb_a, ra, lda)).astype(np.float32)
    B = rng.standard_normal((nb_b, rb, ldb)).astype(np.float32)
    C0 = rng.standard_normal((batch, M, ldc)).astype(np.float32)
    bias = rng.standard_normal(M if bias_mode == 2 else N).astype(np.float32)
    flat = lambda x: np.concatenate([np.full(off, np.nan, np.float32), x.ravel()])
    a, b, c, bb = (_upload(dev, flat(x)) for x in (A, B, C0, bias))
    gemm_mod.gemm(dev, M, N, K, a, b, c, trans_a=trans_a, trans_b=trans_b, lda=lda, ldb=ldb, ldc=ldc,
                  off_a=off, off_b=off, off_c=off, batch=batch, batch_a=0 if bcast_a else ra * lda,
                  batch_b=0 if bcast_b else rb * ldb, batch_c=M * ldc, bias=bb if bias_mode else None,
                  off_bias=off, bias_mode=bias_mode, relu=relu, accumulate=accumulate)
    got = _download(dev, c, off + C0.size)
    assert np.isnan(got[:off]).all()
    got = got[off:].reshape(C0.shape)

    opa = A[..., :ca].astype(np.float64)
    opa = np.swapaxes(opa, -1, -2) if trans_a else opa
    opb = B[..., :cb].astype(np.float64)
    opb = np.swapaxes(opb, -1, -2) if trans_b else opb
    want = np.broadcast_to(opa @ opb, (batch, M, N)).copy()
    if accumulate:
        want += C0[..., :N]
    if bias_mode == 1:
        want += bias[None, None, :]
    elif bias_mode == 2:
        want += bias[None, :, None]
    if relu:
        want = np.maximum(want, 0)
    # Each output is a K-term float32 dot product: its rounding error grows like sqrt(K).
    tol = 1e-5 * np.sqrt(max(K, 1)) * (1 + np.abs(want))
    np.testing.assert_array_less(np.abs(got[..., :N] - want), tol + 1e-6)
    np.testing.assert_array_equal(got[..., N:], C0[..., N:])  # the row padding is never written


@pytest.mark.parametrize("n", [1, 7, 33, 65, 127, 257])
def test_square(gdev, path, n):
    _run(gdev, np.random.default_rng(n), n, n, n)


@pytest.mark.parametrize("mnk", [(1, 257, 33), (65, 7, 127), (257, 1, 65), (33, 65, 1), (7, 33, 300),
                                 (130, 97, 260)])
def test_mixed(gdev, path, mnk):
    _run(gdev, np.random.default_rng(sum(mnk)), *mnk)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("mnk", [(65, 33, 127), (7, 130, 33)])
def test_transposes(gdev, path, ta, tb, mnk):
    _run(gdev, np.random.default_rng(7), *mnk, trans_a=ta, trans_b=tb, pad=3)


@pytest.mark.parametrize("bcast", ["none", "a", "b"])
def test_batched(gdev, path, bcast):
    _run(gdev, np.random.default_rng(3), 33, 40, 65, batch=3, bcast_a=bcast == "a", bcast_b=bcast == "b",
         trans_b=True)


def test_offsets_and_pitch(gdev, path):
    _run(gdev, np.random.default_rng(4), 47, 53, 61, pad=5, off=11, trans_a=True, batch=2)


@pytest.mark.parametrize("bias_mode", [1, 2])
@pytest.mark.parametrize("relu", [False, True])
def test_bias_relu(gdev, path, bias_mode, relu):
    _run(gdev, np.random.default_rng(5), 37, 70, 45, bias_mode=bias_mode, relu=relu, off=2)


@pytest.mark.parametrize("mnk", [(33, 65, 127), (5, 9, 3)])
def test_accumulate(gdev, path, mnk):
    _run(gdev, np.random.default_rng(6), *mnk, accumulate=True, pad=1)


@pytest.mark.parametrize("kw", [{}, {"bias_mode": 1}, {"bias_mode": 2, "relu": True}, {"accumulate": True}])
def test_k_zero(gdev, path, kw):
    _run(gdev, np.random.default_rng(8), 9, 17, 0, **kw)


def test_empty_is_noop(gdev):
    c = _upload(gdev, np.arange(4, dtype=np.float32))
    for M, N in [(0, 2), (2, 0)]:
        gemm_mod.gemm(gdev, M, N, 3, c, c, c, lda=3, ldb=2, ldc=2)
    np.testing.assert_array_equal(_download(gdev, c, 4), np.arange(4))


def test_one_build_per_device(gdev):
    """Every size and layout above shares one program: no build on the hot path."""
    progs = {key for key in gdev._programs if key[0] == "matmul.cl"}
    assert len(progs) <= 1
