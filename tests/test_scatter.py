"""The gather/scatter family against NumPy float64 (values and central-difference gradients) and
PyTorch (values and gradients): gather, scatter(_add/_reduce), index_add/copy/fill, masked_select,
masked_scatter, take, take_along_dim, nonzero/argwhere/where(cond)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

torch = pytest.importorskip("torch")


# ---- NumPy references ---------------------------------------------------------------------------
def _coords(idx, dim):
    """x's coordinates that gather/scatter pair with each element of idx along dim."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[dim] = idx
    return tuple(grid)


def np_gather(x, dim, idx):
    return x[_coords(idx, dim)]


_UFUNC = {"sum": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}


def np_scatter_reduce(x, dim, idx, src, reduce, include_self=True):
    out = x.astype(np.float64).copy()
    where = _coords(idx, dim)
    s = src[tuple(slice(0, n) for n in idx.shape)]
    if not include_self:
        out[where] = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf, "amin": np.inf}[reduce]
    if reduce == "mean":
        count = np.ones_like(out) if include_self else np.zeros_like(out)
        np.add.at(out, where, s)
        np.add.at(count, where, 1)
        return out / np.maximum(count, 1)
    _UFUNC[reduce].at(out, where, s)
    return out


def np_scatter(x, dim, idx, src):
    out = x.astype(np.float64).copy()
    out[_coords(idx, dim)] = src[tuple(slice(0, n) for n in idx.shape)] if np.ndim(src) else src
    return out


def _distinct_per_column(rng, rows, shape):
    """A (shape) index along dim 0 without duplicates in any column (scatter's result is defined)."""
    return np.stack([rng.permutation(rows)[:shape[0]] for _ in range(shape[1])], axis=1)


# ---- helpers --------------------------------------------------------------------------------------
def torch_check(dev, mt_fn, torch_fn, *arrays, rtol=1e-5, atol=1e-5):
    """mt_fn and torch_fn on the same float32/int64 inputs: values, then gradients of sum(out * w)."""
    rng = np.random.default_rng(3)
    ins = [mt.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, device=dev,
                     requires_grad=a.dtype.kind == "f") for a in arrays]
    tins = [torch.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, requires_grad=a.dtype.kind == "f")
            for a in arrays]
    out, ref = mt_fn(*ins), torch_fn(*tins)
    assert tuple(out.shape) == tuple(ref.shape)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    if not ref.requires_grad:
        return
    w = rng.standard_normal(tuple(ref.shape)).astype(np.float32)
    (out * mt.tensor(w, device=dev)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    for k, (i, t) in enumerate(zip(ins, tins)):
        if t.grad is not None:
            np.testing.assert_allclose(i.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"input {k}")


# ---- gather / take / take_along_dim ----------------------------------------------------------------
@pytest.mark.parametrize("shape,dim,idx_shape", [((7, 5), 0, (9, 4)), ((7, 5), 1, (7, 33)), ((3, 4, 65), -1, (2, 4, 7)),
                                                 ((33,), 0, (65,)), ((4, 5), 0, (0, 5))])
@pytest.mark.parametrize("noncontig", [False, True])
def test_gather(dev, rng, shape, dim, idx_shape, noncontig):
    a = rng.standard_normal(shape)
    idx = rng.integers(0, shape[dim], idx_shape)  # duplicates: the gradient sums them
    check(dev, lambda x, i: mt.gather(x, dim, i), lambda x, i: np_gather(x, dim % x.ndim, i), a, idx,
          noncontig=noncontig)
    torch_check(dev, lambda x, i: x.gather(dim, i), lambda x, i: x.gather(dim, i), a, idx)


def test_take_and_take_along_dim(dev, rng):
    a = rng.standard_normal((5, 7))
    flat = np.array([[0, -1, 34], [17, 17, -35]])  # negative indices from the end, duplicates
    check(dev, lambda x: mt.take(x, mt.tensor(flat, device=dev)), lambda x: np.take(x, flat), a, noncontig=True)
    torch_check(dev, lambda x, i: mt.take(x, i), torch.take, a, flat)
    along = rng.integers(0, 7, (1, 3))  # broadcast against a outside dim 1
    check(dev, lambda x: mt.take_along_dim(x, mt.tensor(along, device=dev), 1),
          lambda x: np.take_along_axis(x, along, 1), a, noncontig=True)
    torch_check(dev, lambda x, i: mt.take_along_dim(x, i, dim=1), lambda x, i: torch.take_along_dim(x, i, dim=1), a,
                along)
    flat_idx = np.array([3, 34, 0])
    torch_check(dev, lambda x, i: x.take_along_dim(i), lambda x, i: x.take_along_dim(i), a, flat_idx)
    argmax = rng.standard_normal((4, 6)).argmax(1)[:, None]
    torch_check(dev, lambda x, i: mt.take_along_dim(x, i, 1), lambda x, i: torch.take_along_dim(x, i, 1),
                rng.standard_normal((4, 6)), argmax)


# ---- scatter ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("noncontig", [False, True])
def test_scatter_src_and_value(dev, rng, noncontig):
    a, src = rng.standard_normal((9, 5)), rng.standard_normal((7, 6))
    idx = _distinct_per_column(rng, 9, (6, 5))
    check(dev, lambda x, s, i: mt.scatter(x, 0, i, s), lambda x, s, i: np_scatter(x, 0, i, s), a, src, idx,
          noncontig=noncontig)
    check(dev, lambda x, i: x.scatter(0, i, -2.5), lambda x, i: np_scatter(x, 0, i, -2.5), a, idx,
          noncontig=noncontig)
    # PyTorch's backward rejects a src larger than index (NumPy above checks that case)
    torch_check(dev, lambda x, s, i: x.scatter(0, i, s), lambda x, s, i: x.scatter(0, i, s), a, src[:6, :5], idx)
    torch_check(dev, lambda x, i: mt.scatter(x, 1, i, value=3.0), lambda x, i: torch.scatter(x, 1, i, value=3.0),
                a, rng.integers(0, 5, (9, 2)))


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(dev, rng, reduce, include_self):
    a, src = rng.standard_normal((6, 33)), rng.standard_normal((8, 33))
    idx = rng.integers(0, 4, (8, 33))  # duplicates everywhere; rows 4, 5 get nothing
    if reduce == "prod":
        src[0, :3] = 0.0  # single zeros: the gradient's exact path
    check(dev, lambda x, s, i: mt.scatter_reduce(x, 0, i, s, reduce, include_self=include_self),
          lambda x, s, i: np_scatter_reduce(x, 0, i, s, reduce, include_self), a, src, idx, noncontig=True)
    torch_check(dev, lambda x, s, i: x.scatter_reduce(0, i, s, reduce, include_self=include_self),
                lambda x, s, i: x.scatter_reduce(0, i, s, reduce, include_self=include_self), a, src, idx)


def test_scatter_add_and_deprecated_reduce(dev, rng):
    a, src = rng.standard_normal((5, 65)), rng.standard_normal((5, 65))
    idx = rng.integers(0, 65, (5, 65))
    check(dev, lambda x, s, i: mt.scatter_add(x, 1, i, s), lambda x, s, i: np_scatter_reduce(x, 1, i, s, "sum"),
          a, src, idx, noncontig=True)
    torch_check(dev, lambda x, s, i: x.scatter_add(1, i, s), lambda x, s, i: x.scatter_add(1, i, s), a, src, idx)
    for mode, ref in (("add", "sum"), ("multiply", "prod")):
        got = mt.tensor(a, device=dev, dtype=mt.float32).scatter(1, mt.tensor(idx, device=dev),
                                                                  mt.tensor(src, device=dev, dtype=mt.float32),
                                                                  reduce=mode)
        np.testing.assert_allclose(got.numpy(), np_scatter_reduce(a, 1, idx, src, ref), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dt", [mt.float32, mt.float16, mt.int32, mt.int64, mt.bool])
def test_every_dtype(dev, rng, dt):
    if dt is mt.float16 and not dev.has_fp16:
        pytest.skip("no cl_khr_fp16")
    npdt = np.bool_ if dt is mt.bool else dt.np
    a, src = (rng.standard_normal((4, 7)) * 4).astype(npdt), (rng.standard_normal((4, 7)) * 4).astype(npdt)
    idx = rng.integers(0, 4, (3, 7))
    x, s, i = mt.tensor(a, device=dev, dtype=dt), mt.tensor(src, device=dev, dtype=dt), mt.tensor(idx, device=dev)
    tx, ts, ti = torch.tensor(a), torch.tensor(src), torch.tensor(idx)
    pairs = [(x.gather(0, i), tx.gather(0, ti)), (x.scatter(0, i[:1], s), tx.scatter(0, ti[:1], ts)),
             (x.index_select(0, i[0]), tx.index_select(0, ti[0])),
             (x.index_fill(1, i[0], 1), tx.index_fill(1, ti[0], 1)), (x[x != 0], tx[tx != 0]),
             (mt.take(x, i), torch.take(tx, ti)), (mt.nonzero(x), torch.nonzero(tx))]
    if dt is not mt.bool:  # PyTorch has no bool scatter_add / index_add
        pairs += [(x.scatter_add(0, i, s), tx.scatter_add(0, ti, ts)),
                  (x.index_add(0, i[0, :4], s), tx.index_add(0, ti[0, :4], ts)),
                  (x.scatter_reduce(0, i, s, "amax"), tx.scatter_reduce(0, ti, ts, "amax"))]
        pairs += [(x.scatter_reduce(0, i, s, r, include_self=inc), tx.scatter_reduce(0, ti, ts, r, include_self=inc))
                  for r in ("mean", "prod", "amin") for inc in (True, False)]  # integer mean: floor division
    for got, ref in pairs:
        assert got.dtype.name == str(ref.dtype).replace("torch.", ""), (got.dtype, ref.dtype)
        np.testing.assert_allclose(got.numpy().astype(np.float64), ref.numpy().astype(np.float64), rtol=2e-3)


# ---- index_add / index_copy / index_fill -----------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_add_copy_fill(dev, rng, dim):
    a = rng.standard_normal((7, 5, 4))
    d = dim % 3
    dup = rng.integers(0, a.shape[d], 6)  # duplicates: index_add sums them
    src_shape = list(a.shape)
    src_shape[d] = 6
    src = rng.standard_normal(src_shape)

    def np_index_add(x, s):
        out = x.copy()
        np.add.at(out, (slice(None),) * d + (dup,), 2.0 * s)
        return out
    check(dev, lambda x, s: mt.index_add(x, dim, mt.tensor(dup, device=dev), s, alpha=2.0), np_index_add, a, src,
          noncontig=True)
    torch_check(dev, lambda x, s, i: x.index_add(dim, i, s, alpha=2.0),
                lambda x, s, i: x.index_add(dim, i, s, alpha=2.0), a, src, dup)
    distinct = rng.permutation(a.shape[d])[:3]
    csrc = np.take(src, np.arange(3), axis=d)

    def np_index_copy(x, s):
        out = x.copy()
        out[(slice(None),) * d + (distinct,)] = s
        return out
    check(dev, lambda x, s: mt.index_copy(x, dim, mt.tensor(distinct, device=dev), s), np_index_copy, a, csrc,
          noncontig=True)
    torch_check(dev, lambda x, s, i: x.index_copy(dim, i, s), lambda x, s, i: x.index_copy(dim, i, s), a, csrc,
                distinct)

    def np_index_fill(x):
        out = x.copy()
        out[(slice(None),) * d + (dup,)] = -1.5
        return out
    check(dev, lambda x: mt.index_fill(x, dim, mt.tensor(dup, device=dev), -1.5), np_index_fill, a, noncontig=True)
    torch_check(dev, lambda x, v, i: x.index_fill(dim, i, v.sum()), lambda x, v, i: x.index_fill(dim, i, v.sum()), a,
                np.array([0.5, 2.0]), dup)


# ---- masks and nonzero -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 65, 257, 70001])
def test_nonzero_sizes_straddling_chunks(dev, rng, n):
    a = np.where(rng.random(n) > 0.7, rng.standard_normal(n), 0.0)
    a[rng.integers(0, n)] = np.nan  # NaN is nonzero
    t = mt.tensor(a, device=dev, dtype=mt.float32)
    np.testing.assert_array_equal(mt.nonzero(t).numpy(), np.argwhere(a))
    (got,) = mt.where(t)
    np.testing.assert_array_equal(got.numpy(), np.nonzero(a)[0])


def test_nonzero_strided_empty_and_scalar(dev, rng):
    a = (rng.random((6, 8, 5)) > 0.5).astype(np.float32)
    base = mt.tensor(a, device=dev)
    view = base.permute(2, 0, 1)[:, ::2]  # non-contiguous
    ref = a.transpose(2, 0, 1)[:, ::2]
    np.testing.assert_array_equal(view.nonzero().numpy(), np.argwhere(ref))
    np.testing.assert_array_equal(mt.argwhere(view).numpy(), np.argwhere(ref))
    for got, want in zip(mt.nonzero(view, as_tuple=True), np.nonzero(ref)):
        np.testing.assert_array_equal(got.numpy(), want)
    assert mt.nonzero(mt.zeros(4, 0, device=dev)).shape == (0, 2)
    assert mt.nonzero(mt.zeros(5, device=dev)).shape == (0, 1)
    assert tuple(mt.nonzero(mt.tensor(3.0, device=dev)).shape) == tuple(torch.nonzero(torch.tensor(3.0)).shape)


def test_masked_select_and_masked_scatter(dev, rng):
    a = rng.standard_normal((5, 33))
    mask = rng.random((1, 33)) > 0.5  # broadcast over the rows
    full_mask = np.broadcast_to(mask, a.shape)
    check(dev, lambda x: mt.masked_select(x, mt.tensor(mask, device=dev)), lambda x: x[full_mask], a, noncontig=True)
    torch_check(dev, lambda x: x.masked_select(mt.tensor(mask, device=dev)),
                lambda x: x.masked_select(torch.tensor(mask)), a)
    src = rng.standard_normal((7, 33))

    def np_masked_scatter(x, s):
        out = x.copy()
        out[full_mask] = s.reshape(-1)[:full_mask.sum()]
        return out
    check(dev, lambda x, s: mt.masked_scatter(x, mt.tensor(mask, device=dev), s), np_masked_scatter, a, src,
          noncontig=True)
    torch_check(dev, lambda x, s: x.masked_scatter(mt.tensor(mask, device=dev), s),
                lambda x, s: x.masked_scatter(torch.tensor(mask), s), a, src)


# ---- in place ----------------------------------------------------------------------------------------
def test_in_place_forms_bump_the_version_and_keep_the_graph(dev, rng):
    a, src = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((2, 5)).astype(np.float32)
    idx = rng.integers(0, 4, (2, 5))
    leaf, tleaf = mt.tensor(a, device=dev, requires_grad=True), torch.tensor(a, requires_grad=True)
    s, ts = mt.tensor(src, device=dev, requires_grad=True), torch.tensor(src, requires_grad=True)
    y, ty = leaf * 1.5, tleaf * 1.5
    version = y._version
    y.scatter_add_(0, mt.tensor(idx, device=dev), s).index_fill_(1, mt.tensor([0, 3], device=dev), 2.0)
    y.masked_scatter_(y > 1.0, s.repeat(2, 1) * 3)
    ty.scatter_add_(0, torch.tensor(idx), ts).index_fill_(1, torch.tensor([0, 3]), 2.0)
    ty.masked_scatter_(ty > 1.0, ts.repeat(2, 1) * 3)
    assert y._version > version
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), tleaf.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-6)
    plain = mt.zeros(6, device=dev)
    plain.index_add_(0, mt.tensor([1, 1, 5], device=dev), mt.ones(3, device=dev))
    plain.index_copy_(0, mt.tensor([0], device=dev), mt.full((1,), 9.0, device=dev))
    plain.scatter_reduce_(0, mt.tensor([5, 5], device=dev), mt.tensor([4.0, -1.0], device=dev), "amin")
    np.testing.assert_array_equal(plain.numpy(), [9, 2, 0, 0, 0, -1])


# ---- errors --------------------------------------------------------------------------------------
def test_errors_name_shapes_and_dtypes(dev):
    x = mt.zeros(3, 4, device=dev)
    i32 = mt.tensor([[0, 1]], device=dev, dtype=mt.int32)
    with pytest.raises(RuntimeError, match="gather\\(\\): Expected dtype int64 for index"):
        x.gather(0, i32)
    with pytest.raises(RuntimeError, match=r"expected index \[2, 5\] to be no larger than self \[3, 4\]"):
        x.gather(0, mt.zeros(2, 5, device=dev, dtype=mt.int64))
    with pytest.raises(RuntimeError, match=r"as input tensor \(index \[2\], input \[3, 4\]\)"):
        x.gather(0, mt.zeros(2, device=dev, dtype=mt.int64))
    with pytest.raises(RuntimeError, match=r"no larger than src \[1, 4\]"):
        x.scatter(0, mt.zeros(2, 4, device=dev, dtype=mt.int64), mt.ones(1, 4, device=dev))
    with pytest.raises(RuntimeError, match=r"source of shape \[2, 3\] does not match self of shape \[3, 4\]"):
        x.index_add(0, mt.tensor([0, 1], device=dev), mt.ones(2, 3, device=dev))
    with pytest.raises(RuntimeError, match="Expected dtype int32/int64 for index"):
        x.index_fill(0, mt.tensor([0.0], device=dev), 1.0)
    with pytest.raises(RuntimeError, match="expected BoolTensor for mask"):
        x.masked_select(mt.ones(3, 4, device=dev))
    with pytest.raises(RuntimeError, match="at least as many elements as ones in mask"):
        x.masked_scatter(mt.ones(3, 4, device=dev) > 0, mt.ones(5, device=dev))
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        x.scatter_add(0, mt.zeros(1, 4, device=dev, dtype=mt.int64), mt.ones(1, 4, device=dev, dtype=mt.int32))
    with pytest.raises(RuntimeError, match="take\\(\\): Expected a long tensor for index"):
        mt.take(x, i32)
    with pytest.raises(RuntimeError, match="reduce argument must be one of"):
        x.scatter_reduce(0, mt.zeros(1, 4, device=dev, dtype=mt.int64), x, "max")


_CHILD = r"""
import minitorch_cl as mt
dev = mt.device()
x = mt.arange(12.0, device=dev).reshape(3, 4)
bad = mt.tensor([[0, 5, 1, 1]], device=dev)
ops = [("gather", lambda: x.gather(0, bad)), ("gather-neg", lambda: x.gather(1, bad - 6)),
       ("scatter", lambda: x.scatter(0, bad, 1.0)), ("scatter_add", lambda: x.scatter_add(0, bad, x[:1])),
       ("index_add", lambda: x.index_add(0, bad[0, :2], x[:2])),
       ("index_copy", lambda: x.index_copy(0, bad[0, :2], x[:2])),
       ("index_fill", lambda: x.index_fill(1, bad[0], 0.0)), ("take", lambda: mt.take(x, bad * 3)),
       ("gather-grad", lambda: mt.gather(x.detach().requires_grad_(), 0, bad).sum())]
for name, op in ops:
    try:
        op().detach().numpy()
        print(name, "no error")
    except IndexError as e:
        print(name, "IndexError:", e)
    print(name, "next", x.gather(1, mt.tensor([[3], [0], [1]], device=dev)).reshape(-1).numpy().tolist())
"""


def test_out_of_range_raises_at_next_sync_and_process_goes_on(dev):
    env = dict(os.environ, MINITORCH_CL_DEVICE=dev.spec)
    res = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    for name, msg in [("gather", "gather(): index 5 is out of bounds for a dimension with size 3"),
                      ("gather-neg", "gather(): index -6 is out of bounds for a dimension with size 4"),
                      ("scatter", "scatter(): index 5 is out of bounds for a dimension with size 3"),
                      ("scatter_add", "scatter(): index 5 is out of bounds for a dimension with size 3"),
                      ("index_add", "index_add_(): index 5 is out of bounds for a dimension with size 3"),
                      ("index_copy", "index_copy_(): index 5 is out of bounds for a dimension with size 3"),
                      ("index_fill", "index_fill_(): index 5 is out of bounds for a dimension with size 4"),
                      ("take", "take(): out of range: tried to access index 15 on a tensor of 12 elements."),
                      ("gather-grad", "gather(): index 5 is out of bounds for a dimension with size 3")]:
        assert f"{name} IndexError: {msg}" in lines, res.stdout
        assert f"{name} next [3.0, 4.0, 9.0]" in lines, res.stdout


def test_empty_index_tensors(dev, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x = mt.tensor(a, device=dev, requires_grad=True)
    empty2 = mt.zeros(0, 4, device=dev, dtype=mt.int64)
    empty1 = mt.zeros(0, device=dev, dtype=mt.int64)
    outs = [x.scatter(0, empty2, mt.zeros(0, 4, device=dev)), x.scatter_add(0, empty2, mt.zeros(0, 4, device=dev)),
            x.scatter_reduce(0, empty2, mt.zeros(0, 4, device=dev), "amax"), x.index_fill(1, empty1, 5.0),
            x.index_add(0, empty1, mt.zeros(0, 4, device=dev)), x.index_copy(1, empty1, mt.zeros(3, 0, device=dev)),
            x.masked_scatter(mt.zeros(3, 4, device=dev) > 0, mt.zeros(0, device=dev))]
    for out in outs:
        np.testing.assert_array_equal(out.detach().numpy(), a)
    sum(o.sum() for o in outs).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), len(outs)))
    assert x.gather(1, mt.zeros(3, 0, device=dev, dtype=mt.int64)).shape == (3, 0)
    assert mt.take(x, empty1).shape == (0,)
    assert x.masked_select(mt.zeros(3, 4, device=dev) > 0).shape == (0,)
