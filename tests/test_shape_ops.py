"""ops/manip.py: creation and shape ops against NumPy float64 and torch, with gradients and views."""
import numpy as np
import pytest

import minitorch_cl as mt
import minitorch_cl.nn.functional as F
from helpers import check

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def test_eye_tril_triu(dev, rng):
    for n, m in [(1, 1), (3, 5), (7, 2), (0, 3)]:
        np.testing.assert_array_equal(mt.eye(n, m, device=dev).numpy(), np.eye(n, m))
    assert mt.eye(3, dtype=mt.int64).dtype is mt.int64
    a = rng.standard_normal((2, 5, 7))
    for k in (-2, 0, 1, 9):
        check(dev, lambda t: mt.tril(t, k), lambda x: np.tril(x, k), a, noncontig=True)
        check(dev, lambda t: t.triu(k), lambda x: np.triu(x, k), a)
    ints = mt.tensor(rng.integers(0, 9, (4, 4)), device=dev)
    assert ints.triu().dtype is mt.int64
    with pytest.raises(RuntimeError):
        mt.tril(mt.ones(3))


def test_diag_diagonal(dev, rng):
    v = rng.standard_normal(5)
    for k in (-2, 0, 3):
        check(dev, lambda t: mt.diag(t, k), lambda x: np.diag(x, k), v)
    m = rng.standard_normal((4, 6))
    for k in (-5, -1, 0, 2, 7):
        check(dev, lambda t: mt.diag(t, k), lambda x: np.diag(x, k), m, noncontig=True)
    a = rng.standard_normal((3, 4, 5))
    for off, d1, d2 in [(0, 0, 1), (1, 1, 2), (-1, 2, 0), (0, -1, -2)]:
        check(dev, lambda t: t.diagonal(off, d1, d2), lambda x: np.diagonal(x, off, d1, d2), a, noncontig=True)
    t = mt.tensor(a, device=dev)
    d = t.diagonal(0, 1, 2)
    assert d.buffer is t.buffer  # a view
    with pytest.raises(RuntimeError):
        t.diagonal(0, 1, 1)


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(dev, indexing):
    xs = [np.arange(3.0), np.arange(4.0) * 2, np.arange(2.0) - 1]
    got = mt.meshgrid(*[mt.tensor(x, device=dev) for x in xs], indexing=indexing)
    ref = torch.meshgrid(*[torch.tensor(x) for x in xs], indexing=indexing)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g.numpy(), r.numpy())
    with pytest.raises(RuntimeError):
        mt.meshgrid(mt.ones(2), indexing="yx")


def test_flip_roll_rot90(dev, rng):
    a = rng.standard_normal((3, 4, 5))
    check(dev, lambda t: t.flip((0, 2)), lambda x: np.flip(x, (0, 2)), a, noncontig=True)
    check(dev, lambda t: mt.fliplr(t), np.fliplr, a)
    check(dev, lambda t: mt.flipud(t), np.flipud, a)
    for shifts, dims in [(2, 1), (-7, 2), ((1, -2), (0, 2)), (3, None)]:
        check(dev, lambda t: t.roll(shifts, dims), lambda x: np.roll(x, shifts, dims), a, noncontig=True)
    for k in (-1, 0, 1, 2, 3, 5):
        check(dev, lambda t: t.rot90(k, (1, 2)), lambda x: np.rot90(x, k, (1, 2)), a)
    ints = mt.tensor(rng.integers(0, 9, (3, 4)), device=dev)
    np.testing.assert_array_equal(mt.flip(ints, 1).numpy(), np.flip(ints.numpy(), 1))
    assert mt.flip(mt.zeros(0, 3), (0,)).shape == (0, 3)


def test_tile_repeat_repeat_interleave(dev, rng):
    a = rng.standard_normal((2, 3))
    check(dev, lambda t: t.repeat(2, 1, 3), lambda x: np.tile(x, (2, 1, 3)), a, noncontig=True)
    check(dev, lambda t: t.tile((2,)), lambda x: np.tile(x, (2,)), a)
    check(dev, lambda t: mt.tile(t, (3, 1, 2)), lambda x: np.tile(x, (3, 1, 2)), a)
    check(dev, lambda t: t.repeat_interleave(2), lambda x: np.repeat(x, 2), a)
    check(dev, lambda t: t.repeat_interleave(3, dim=1), lambda x: np.repeat(x, 3, 1), a, noncontig=True)
    reps = np.array([2, 0, 1])
    check(dev, lambda t: mt.repeat_interleave(t, mt.tensor(reps, device=dev), dim=-1),
          lambda x: np.repeat(x, reps, -1), a)
    with pytest.raises(RuntimeError):
        mt.repeat_interleave(mt.tensor(a, device=dev), mt.tensor([1, 2], device=dev), dim=1)
    with pytest.raises(RuntimeError):
        mt.tensor(a, device=dev).repeat(2)
    with pytest.raises(RuntimeError):
        torch.tensor(a).repeat(2)


def test_movedim(dev, rng):
    a = rng.standard_normal((2, 3, 4, 5))
    for s, d in [(0, -1), ((0, 1), (3, 0)), (-1, 1)]:
        check(dev, lambda t: mt.movedim(t, s, d), lambda x: np.moveaxis(x, s, d), a, grad=False)
        assert tuple(mt.moveaxis(mt.tensor(a, device=dev), s, d).shape) == \
            tuple(torch.moveaxis(torch.tensor(a), s, d).shape)
    check(dev, lambda t: t.movedim(0, 2), lambda x: np.moveaxis(x, 0, 2), a[:, :, :2, :2])
    with pytest.raises(RuntimeError):
        mt.movedim(mt.tensor(a, device=dev), (0, 0), (1, 2))


@pytest.mark.parametrize("dim,size,step", [(0, 3, 2), (1, 2, 1), (-1, 4, 3), (1, 5, 5)])
def test_tensor_unfold_view(dev, rng, dim, size, step):
    a = rng.standard_normal((4, 5, 7))
    ref = torch.tensor(a).unfold(dim, size, step).numpy()
    out = check(dev, lambda t: t.unfold(dim, size, step), lambda x: torch.tensor(x).unfold(dim, size, step).numpy(),
                a, noncontig=True)
    assert out.shape == ref.shape
    t = mt.tensor(a, device=dev)
    assert t.unfold(dim, size, step).buffer is t.buffer
    with pytest.raises(RuntimeError):
        t.unfold(0, 9, 1)


@pytest.mark.parametrize("k,dil,pad,st", [(2, 1, 0, 1), (3, 1, 1, 2), ((2, 3), (2, 1), (1, 0), (1, 2))])
def test_functional_unfold_fold(dev, rng, k, dil, pad, st):
    a = rng.standard_normal((2, 3, 6, 7))
    ref = lambda x: TF.unfold(torch.tensor(x), k, dil, pad, st).numpy()  # noqa: E731
    check(dev, lambda t: F.unfold(t, k, dil, pad, st), ref, a, noncontig=True)
    cols = ref(a)
    fref = lambda c: TF.fold(torch.tensor(c), (6, 7), k, dil, pad, st).numpy()  # noqa: E731
    check(dev, lambda c: F.fold(c, (6, 7), k, dil, pad, st), fref, cols, rtol=1e-4, atol=1e-4,
          grad=cols.size <= 400)
    with pytest.raises(RuntimeError):
        F.fold(mt.tensor(cols, device=dev), (5, 5), k, dil, pad, st)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", [(1, 2), (2, 0, 1, 1), (0, 1, 2, 1, 1, 0), (-1, 2, 1, -2)])
def test_pad(dev, rng, mode, pad):
    # torch pads (N, C, *spatial) in the non-constant modes: one 2-D input more than padded dims
    a = rng.standard_normal((2, 2, 3, 4, 5)[3 - len(pad) // 2:] if mode != "constant" else (2, 3, 4, 5))
    ref = lambda x: TF.pad(torch.tensor(x), pad, mode=mode).numpy()  # noqa: E731
    check(dev, lambda t: F.pad(t, pad, mode=mode), ref, a, noncontig=True, grad=True)
    if mode == "constant":
        got = F.pad(mt.tensor(a, device=dev), pad, value=2.5).numpy()
        np.testing.assert_array_equal(got, TF.pad(torch.tensor(a), pad, value=2.5).numpy())  # float64 both


def test_pad_more_dims_than_torch_allows(dev, rng):
    """Non-constant modes on 4 padded dims (torch stops at 3): one mode per dim composes exactly."""
    a = rng.standard_normal((3, 4, 3, 4))
    pad = (1, 2, 2, 1, 0, 3, 1, 1)
    for mode in ("reflect", "replicate", "circular"):
        np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
        widths = [(pad[2 * i], pad[2 * i + 1]) for i in range(4)][::-1]
        check(dev, lambda t: F.pad(t, pad, mode=mode), lambda x: np.pad(x, widths, mode=np_mode), a,
              grad=mode == "circular")


def test_pad_errors_and_ints(dev):
    x = mt.ones(2, 3, device=dev)
    with pytest.raises(RuntimeError):
        F.pad(x, (1,))
    with pytest.raises(RuntimeError):
        F.pad(x, (3, 0), mode="reflect")
    ints = mt.tensor([[1, 2, 3]], device=dev)
    np.testing.assert_array_equal(F.pad(ints, (1, 1), value=7).numpy(), [[7, 1, 2, 3, 7]])


def test_factories_and_random_functions(dev):
    for fn in (mt.zeros, mt.ones, mt.empty):
        for dt in (mt.int64, mt.int32, mt.bool, mt.float32):
            assert fn(2, 3, dtype=dt, device=dev).dtype is dt
    assert mt.full((2,), 3, device=dev).dtype is mt.int64 and mt.full((2,), 3.0).dtype is mt.float32
    mt.manual_seed(0)
    z = mt.normal(2.0, 3.0, (200000,), device=dev).numpy()
    assert abs(z.mean() - 2.0) < 0.03 and abs(z.std() - 3.0) < 0.03
    means = mt.tensor([0.0, 10.0, -5.0], device=dev).reshape(3, 1).expand(3, 50000)
    z = mt.normal(means, 0.5).numpy()
    np.testing.assert_allclose(z.mean(1), [0.0, 10.0, -5.0], atol=0.02)
    p = mt.tensor([0.0, 0.25, 1.0], device=dev).reshape(3, 1).expand(3, 40000)
    b = mt.bernoulli(p).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_allclose(b.mean(1), [0.0, 0.25, 1.0], atol=0.01)
    t = mt.empty(100000, device=dev)
    assert abs(t.bernoulli_(0.3).numpy().mean() - 0.3) < 0.01
    e = t.exponential_(2.0).numpy()
    assert e.min() >= 0 and abs(e.mean() - 0.5) < 0.01


ERRORS = {  # each call, written once for both libraries, must raise the same kind of error
    "kthvalue k=0": lambda m, t: m.kthvalue(t, 0), "kthvalue k>n": lambda m, t: m.kthvalue(t, 4),
    "topk k>n": lambda m, t: m.topk(t, 4), "sort dim": lambda m, t: m.sort(t, 2),
    "cumsum dim": lambda m, t: m.cumsum(t, 2), "prod dim": lambda m, t: t.prod(2),
    "logcumsumexp int": lambda m, t: m.logcumsumexp(m.arange(3), 0),
    "median empty": lambda m, t: m.median(m.zeros(2, 0), 1), "mode empty": lambda m, t: m.mode(m.zeros(2, 0), 1),
    "diag 3-D": lambda m, t: m.diag(m.zeros(2, 2, 2)), "diagonal same dims": lambda m, t: t.diagonal(0, 1, 1),
    "tril 1-D": lambda m, t: m.tril(m.zeros(3)), "unfold too big": lambda m, t: t.unfold(1, 4, 1),
    "unfold step 0": lambda m, t: t.unfold(1, 2, 0), "roll mismatch": lambda m, t: m.roll(t, (1, 2), (0,)),
    "rot90 same dims": lambda m, t: m.rot90(t, 1, (0, 0)),
    "repeat_interleave negative": lambda m, t: m.repeat_interleave(t, m.tensor([1, -1]), 0),
    "repeat_interleave size": lambda m, t: m.repeat_interleave(t, m.tensor([1, 2, 3]), 0),
    "movedim repeated": lambda m, t: m.movedim(t, (0, 0), (0, 1)),
    "pad odd": lambda m, t: m.nn.functional.pad(t, (1,)),
    "pad reflect too big": lambda m, t: m.nn.functional.pad(t[None], (3, 3), mode="reflect"),
    "meshgrid indexing": lambda m, t: m.meshgrid(m.zeros(2), indexing="yx"),
    "fold size": lambda m, t: m.nn.functional.fold(m.zeros(1, 4, 5), (5, 5), 2),
    "eye negative": lambda m, t: m.eye(-1), "vector_norm int": lambda m, t: m.linalg.vector_norm(m.arange(3)),
    "repeat too few": lambda m, t: t.repeat(2), "fliplr 1-D": lambda m, t: m.fliplr(m.zeros(3)),
    "cumsum 0-d dim 1": lambda m, t: m.cumsum(m.tensor(1.0), 1),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_bad_arguments_raise_torchs_kind_of_error(dev, name):
    call = ERRORS[name]
    with pytest.raises(Exception) as ref:
        call(torch, torch.arange(6.0).reshape(2, 3))
    with pytest.raises(ref.type):
        call(mt, mt.arange(6.0, device=dev).reshape(2, 3))


OPS = {  # written once for both libraries
    "tril": lambda m, t: m.tril(t, 1), "triu": lambda m, t: t.triu(-1), "diagonal": lambda m, t: t.diagonal(1),
    "flip": lambda m, t: m.flip(t, (0, 1)), "roll": lambda m, t: m.roll(t, (1, -2), (0, 1)),
    "rot90": lambda m, t: m.rot90(t), "tile": lambda m, t: m.tile(t, (2, 1, 2)),
    "repeat_interleave": lambda m, t: m.repeat_interleave(t, 2, 1), "movedim": lambda m, t: m.movedim(t, 0, 1),
    "unfold": lambda m, t: t.unfold(1, 2, 1), "pad": lambda m, t: m.nn.functional.pad(t, (1, 2, 0, 1)),
    "sort": lambda m, t: m.sort(t, 1, descending=True).values, "cumsum": lambda m, t: m.cumsum(t, 0),
    "cummax": lambda m, t: m.cummax(t, 1).indices, "median": lambda m, t: m.median(t, 1).values,
    "count_nonzero": lambda m, t: m.count_nonzero(t, 0), "diag": lambda m, t: m.diag(t),
    "topk": lambda m, t: m.topk(t, 2).values,
    "kthvalue": lambda m, t: m.kthvalue(t, 1).values,  # values only: on ties torch quickselects its index
    "mode": lambda m, t: m.mode(t, 0).values, "cumprod": lambda m, t: m.cumprod(t, 1), "prod": lambda m, t: t.prod(1),
}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("kind", ["int64", "int32", "bool", "empty"])
def test_dtypes_and_empty_dims_like_torch(dev, rng, name, kind):
    a = rng.integers(-2, 3, (4, 6))
    if kind == "empty":
        a = np.zeros((0, 6), dtype=np.float32)
        if name in ("median",):
            a = np.zeros((3, 0), dtype=np.float32)
    elif kind == "bool":
        a = a > 0
    dt = {"int64": (mt.int64, torch.int64), "int32": (mt.int32, torch.int32), "bool": (mt.bool, torch.bool),
          "empty": (mt.float32, torch.float32)}[kind]
    try:
        ref = OPS[name](torch, torch.tensor(a, dtype=dt[1]))
    except (RuntimeError, IndexError, NotImplementedError) as e:
        with pytest.raises(type(e)):
            OPS[name](mt, mt.tensor(a, dtype=dt[0], device=dev))
        return
    got = OPS[name](mt, mt.tensor(a, dtype=dt[0], device=dev))
    assert tuple(got.shape) == tuple(ref.shape)
    assert got.dtype.name == str(ref.dtype).replace("torch.", "")
    np.testing.assert_array_equal(got.numpy(), ref.numpy())
