import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.ops import matmul as matmul_ops
from helpers import check, compare, sum_to


def _mm_grad(inputs, w):
    """Analytic float64 gradients of sum(matmul(a, b) * w); the helper sums broadcast batch dims."""
    a, b = inputs
    a2 = a[None] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    w2 = w.reshape(np.matmul(a2, b2).shape)
    da, db = w2 @ np.swapaxes(b2, -1, -2), np.swapaxes(a2, -1, -2) @ w2
    return sum_to(da, a2.shape).reshape(a.shape), sum_to(db, b2.shape).reshape(b.shape)


@pytest.mark.parametrize("shapes", [
    ((7,), (7,)), ((33,), (33, 5)), ((4, 65), (65,)), ((1, 1), (1, 1)), ((7, 33), (33, 65)),
    ((127, 65), (65, 1)), ((257, 7), (7, 33)), ((3, 7, 5), (3, 5, 9)), ((2, 1, 7, 5), (3, 5, 4)),
    ((5, 8), (2, 3, 8, 6)), ((0, 4), (4, 3)), ((3, 0), (0, 2)), ((5, 7, 13), (13, 11)), ((2, 3, 7, 13), (13, 11)),
])
def test_matmul_values_and_grads(dev, rng, shapes):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    check(dev, lambda x, y: x @ y, np.matmul, a, b, rtol=1e-4, atol=1e-4, np_grad=_mm_grad)


def test_shared_right_operand_folds_the_batch_into_rows_only_when_items_are_adjacent(dev, rng):
    """(..., M, K) @ (K, N) with A's and C's items end to end is one product of M * batch rows;
    items apart (a slice of a taller batch) stay a batched product, and both are right."""
    from minitorch_cl import launch
    base, b = (rng.standard_normal(s).astype(np.float32) for s in ((5, 9, 13), (13, 11)))  # (no float32 copy)
    grids = []
    launch.observers.append(lambda d, key, e, grid, local, work: grids.append((key[1], grid)))
    try:
        for a in (base[:, :7], base):
            grids.clear()
            x = mt.tensor(base, device=dev)
            got = (x[:, :7] if a is not base else x) @ mt.tensor(b, device=dev)
            compare(got.numpy(), np.asarray(a) @ b, rtol=1e-4, atol=1e-4)
            batches = [g[2] for name, g in grids if name in ("gemm_packed", "gemm_tiled")]
            assert batches == ([5] if a is not base else [1])
    finally:
        launch.observers.pop()


@pytest.mark.parametrize("view", ["aT", "bT", "both", "slice"])
def test_matmul_reads_views(dev, rng, view):
    a, b = rng.standard_normal((33, 7)), rng.standard_normal((7, 65))
    if view == "aT":
        check(dev, lambda x, y: x.T @ y, lambda x, y: x.T @ y, rng.standard_normal((7, 33)), b, rtol=1e-4,
              atol=1e-4, grad=False)
    elif view == "bT":
        check(dev, lambda x, y: x @ y.T, lambda x, y: x @ y.T, a, rng.standard_normal((65, 7)), rtol=1e-4,
              atol=1e-4, grad=False)
    elif view == "both":
        check(dev, lambda x, y: x.T @ y.T, lambda x, y: x.T @ y.T, rng.standard_normal((7, 33)),
              rng.standard_normal((65, 7)), rtol=1e-4, atol=1e-4, grad=False)
    else:
        check(dev, lambda x, y: x @ y, lambda x, y: x @ y, a, b, rtol=1e-4, atol=1e-4, noncontig=True)


def test_large_odd_matmul(dev, rng):
    a, b = rng.standard_normal((257, 127)).astype(np.float32), rng.standard_normal((127, 129)).astype(np.float32)
    compare(mt.tensor(a, device=dev) @ mt.tensor(b, device=dev), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_matmul_shape_errors_name_both_shapes(dev):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        mt.zeros(3, 4, device=dev) @ mt.zeros(5, 2, device=dev)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(5, 4, 2\)"):
        mt.zeros(2, 3, 4, device=dev) @ mt.zeros(5, 4, 2, device=dev)
    with pytest.raises(TypeError, match="float32"):
        mt.zeros(2, 2, dtype=mt.int64, device=dev) @ mt.zeros(2, 2, dtype=mt.int64, device=dev)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_fused_epilogue(dev, rng, monkeypatch, relu, bias, noncontig, swap):
    """swap: y^T = W @ x^T (few rows against a large weight, on the packed path) at any size."""
    monkeypatch.setattr(matmul_ops, "SWAP_MIN_WEIGHT", 0 if swap else float("inf"))
    x, w, b = rng.standard_normal((2, 5, 33)), rng.standard_normal((7, 33)), rng.standard_normal((7,))

    def ref(x, w, b=None):
        y = x @ w.T + (b if b is not None else 0)
        return np.maximum(y, 0) if relu else y

    args = (x, w, b) if bias else (x, w)
    check(dev, lambda x, w, b=None: mt.nn.functional.linear(x, w, b, relu=relu), ref, *args,
          noncontig=(noncontig, noncontig, False), rtol=1e-4, atol=1e-4)  # a strided bias: below


def test_linear_few_rows_large_weight(dev, rng):
    """A 21-row input against a 450 x 601 weight: y^T = W @ x^T with the built-in thresholds."""
    assert 450 * 601 >= matmul_ops.SWAP_MIN_WEIGHT and 21 <= matmul_ops.SWAP_MAX_ROWS
    def grads(inputs, weight):  # analytic: central differences over 270K weights take minutes
        x, w, b = inputs
        g = weight * (x @ w.T + b > 0)
        return g @ w, g.reshape(-1, 450).T @ x.reshape(-1, 601), g.reshape(-1, 450).sum(0)

    check(dev, lambda x, w, b: mt.nn.functional.linear(x, w, b, relu=True),
          lambda x, w, b: np.maximum(x @ w.T + b, 0), rng.standard_normal((3, 7, 601)),
          rng.standard_normal((450, 601)), rng.standard_normal(450), np_grad=grads, rtol=1e-4, atol=1e-4)


def test_linear_strided_bias(dev, rng):
    check(dev, lambda x, w, b: mt.nn.functional.linear(x, w, b), lambda x, w, b: x @ w.T + b,
          rng.standard_normal((5, 33)), rng.standard_normal((7, 33)), rng.standard_normal(7),
          noncontig=(False, False, True), rtol=1e-4, atol=1e-4)
