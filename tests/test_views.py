import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check


def shares_buffer(a, b):
    return a.buffer is b.buffer


VIEWS = [
    (lambda t: t.view(6, 5, 7), lambda a: a.reshape(6, 5, 7)),
    (lambda t: t.reshape(-1), lambda a: a.reshape(-1)),
    (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    (lambda t: t.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
    (lambda t: t.T, lambda a: a.T),
    (lambda t: t.unsqueeze(1), lambda a: a[:, None]),
    (lambda t: t[None], lambda a: a[None]),
    (lambda t: t.flatten(1), lambda a: a.reshape(5, 42)),
    (lambda t: t[1:4, ::2, 3], lambda a: a[1:4, ::2, 3]),
    (lambda t: t[..., -1], lambda a: a[..., -1]),
    (lambda t: t[-1], lambda a: a[-1]),
    (lambda t: t[:, 1:2].squeeze(1), lambda a: a[:, 1]),
    (lambda t: t.narrow(2, 2, 3), lambda a: a[:, :, 2:5]),
    (lambda t: t[:, :, 1:3].reshape(30, 2), lambda a: a[:, :, 1:3].reshape(30, 2)),
    (lambda t: t.transpose(0, 1).view(1, 6, 5, 7), lambda a: a.transpose(1, 0, 2)[None]),
]


@pytest.mark.parametrize("k", range(len(VIEWS)))
def test_views_share_the_buffer(dev, k):
    fn, ref = VIEWS[k]
    a = np.arange(210, dtype=np.float32).reshape(5, 6, 7)
    t = mt.tensor(a, device=dev)
    v = fn(t)
    assert shares_buffer(v, t)
    expected = ref(a)
    np.testing.assert_array_equal(v.numpy(), expected)


def test_expand_is_a_view(dev):
    t = mt.tensor([[1.0], [2.0]], device=dev)
    e = t.expand(2, 5)
    assert shares_buffer(e, t) and e.strides[1] == 0
    np.testing.assert_array_equal(e.numpy(), np.broadcast_to([[1.0], [2.0]], (2, 5)))
    np.testing.assert_array_equal(t.expand(3, -1, 4).numpy(), np.broadcast_to([[1.0], [2.0]], (3, 2, 4)))


def test_view_of_noncontiguous_fails_reshape_copies(dev):
    t = mt.tensor(np.arange(12.0).reshape(3, 4), device=dev).T
    with pytest.raises(RuntimeError, match="view"):
        t.view(12)
    r = t.reshape(12)
    np.testing.assert_array_equal(r.numpy(), np.arange(12.0).reshape(3, 4).T.reshape(12))
    assert not shares_buffer(r, t)


@pytest.mark.parametrize("index", [(slice(1, 5), slice(None), 2), (0,), (slice(None, None, 3), -1),
                                   (Ellipsis, slice(2, 7)), (None, 1, slice(0, 0))])
def test_getitem_grad(dev, rng, index):
    a = rng.standard_normal((7, 9, 8))
    check(dev, lambda t: t[index], lambda x: x[index], a)


def test_tensor_and_list_indexing(dev, rng):
    a = rng.standard_normal((7, 5))
    idx = np.array([4, 0, 4, 6])
    check(dev, lambda t: t[mt.tensor(idx, device=dev)], lambda x: x[idx], a)
    check(dev, lambda t: t[:, [1, 3]], lambda x: x[:, [1, 3]], a)
    mask = np.array([True, False, True, True, False, False, True])
    np.testing.assert_allclose(mt.tensor(a, device=dev)[mt.tensor(mask, device=dev)].numpy(), a[mask], rtol=1e-6)


def test_index_errors(dev):
    t = mt.zeros(3, 4, device=dev)
    with pytest.raises(IndexError, match="out of bounds for dimension 1 with size 4"):
        t[0, 4]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 0, 0]


def test_setitem(dev):
    a = np.zeros((4, 5), np.float32)
    t = mt.tensor(a, device=dev)
    t[1:3, ::2] = 5.0
    a[1:3, ::2] = 5.0
    t[0] = mt.tensor(np.arange(5.0), device=dev)
    a[0] = np.arange(5.0)
    np.testing.assert_array_equal(t.numpy(), a)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_stack(dev, rng, dim):
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    if dim == 0:
        b = rng.standard_normal((5, 4))
    check(dev, lambda x, y: mt.cat([x, y], dim), lambda x, y: np.concatenate([x, y], dim), a, b)
    check(dev, lambda x, y: mt.stack([x, y], dim), lambda x, y: np.stack([x, y], dim), a, c)


def test_cat_shape_error_names_shapes(dev):
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 4\)"):
        mt.cat([mt.zeros(2, 3, device=dev), mt.zeros(2, 4, device=dev)], 0)


def test_split_chunk_unbind(dev, rng):
    a = rng.standard_normal((7, 3))
    t = mt.tensor(a, device=dev)
    parts = t.split(3)
    assert [p.shape for p in parts] == [(3, 3), (3, 3), (1, 3)]
    np.testing.assert_array_equal(mt.cat(t.chunk(3), 0).numpy(), a)  # a float64 array stays float64
    rows = t.unbind(0)
    assert len(rows) == 7 and rows[2].shape == (3,)


def test_contiguous_copies_strided(dev, rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    t = mt.tensor(a, device=dev)
    c = t.T.contiguous()
    assert c.is_contiguous() and not shares_buffer(c, t)
    np.testing.assert_array_equal(c.numpy(), a.T)
    assert t.contiguous() is t


def test_repeat_and_dtype_conversion(dev):
    t = mt.tensor([[1, 2]], device=dev)
    np.testing.assert_array_equal(t.repeat(2, 3).numpy(), np.tile([[1, 2]], (2, 3)))
    f = t.float()
    assert f.dtype is mt.float32 and f.tolist() == [[1.0, 2.0]]
    assert mt.tensor([1.7, -1.7], device=dev).long().tolist() == [1, -1]


@pytest.mark.parametrize("sizes,dim", [(3, 0), ([2, 5, 0, 2], 1), (4, -1)])
def test_split_gradient_writes_each_piece_into_one_buffer(dev, rng, sizes, dim):
    try:
        import torch
    except ImportError:
        torch = None
    a = rng.standard_normal((7, 9, 5))

    def pieces(x, lib):
        out = x.split(sizes, dim)
        return tuple(p * (i + 1) for i, p in enumerate(out) if i != 1)  # piece 1 unused: its gradient is 0

    def np_split(x):
        n = x.shape[dim]
        lengths = sizes if isinstance(sizes, list) else [min(sizes, n - s) for s in range(0, n, sizes)]
        return np.split(x, np.cumsum(lengths)[:-1], axis=dim)

    ref = lambda x: tuple(p * (i + 1) for i, p in enumerate(np_split(x)) if i != 1)
    check(dev, lambda x: pieces(x, mt), ref, a, noncontig=True,
          torch_fn=(lambda x: pieces(x, torch)) if torch is not None else None)
