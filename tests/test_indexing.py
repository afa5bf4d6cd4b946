"""Indexing with tensors (several, broadcast, masks) and assignment through any index, against NumPy
float64 (values and central-difference gradients) and PyTorch (values and gradients)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

torch = pytest.importorskip("torch")

I4 = np.array([4, 0, -1, 4])          # duplicates and a negative index
J4 = np.array([1, -6, 5, 5])
I23 = np.array([[0, 3, -2], [4, 4, 1]])
J3 = np.array([5, 0, -3])
MASK57 = np.random.default_rng(5).random((5, 7)) > 0.4
MASK76 = np.random.default_rng(6).random((7, 6)) > 0.5
EMPTY = np.zeros(0, np.int64)
# Where NumPy's rule differs from PyTorch's: PyTorch applies int indices before the tensor indices.
NUMPY_FORM = {"int,:,j (ints first)": lambda x: x[2][:, J3]}

# Indices of a (5, 7, 6) tensor: 'T' marks an array that goes in as a device tensor.
CASES = {
    "i,j": (("T", I4), ("T", J4)),
    ":,i,j": (slice(None), ("T", I4), ("T", J4)),
    "i,:,j (front)": (("T", I4), slice(None), ("T", I4)),
    "broadcast i(2,3),j(3)": (("T", I23), ("T", J3)),
    "int,:,j (ints first)": (2, slice(None), ("T", J3)),
    "i,int,j": (("T", I4), 0, ("T", I4)),
    ":,int,j (in place)": (slice(1, 4), -2, ("T", J3)),
    "None,i,::2,j": (None, ("T", I4), slice(None, None, 2), ("T", I4)),
    "...,j": (Ellipsis, ("T", J3)),
    "list,list": ([1, 2, 2], [0, 6, 3]),
    "ndarray": (np.array([[1, 0], [3, 3]]),),
    "mask 2-d": (("T", MASK57),),
    ":,mask 2-d": (slice(None), ("T", MASK76)),
    "mask 1-d,int tensor": (("T", np.array([True, False, True, True, False])), slice(2, 6), ("T", J3)),
    "empty": (("T", EMPTY), slice(None), 1),
}


def _index(spec, to_tensor):
    return tuple(to_tensor(i[1]) if isinstance(i, tuple) else i for i in spec)


def _np_index(spec):
    return _index(spec, lambda a: a)


def _mt_index(spec, dev):
    return _index(spec, lambda a: mt.tensor(a, device=dev))


def _torch_index(spec):
    return _index(spec, torch.tensor)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("noncontig", [False, True])
def test_getitem_several_tensors_numpy(dev, rng, name, noncontig):
    spec = CASES[name]
    a = rng.standard_normal((5, 7, 6))
    ref = NUMPY_FORM.get(name, lambda x: x[_np_index(spec)])
    check(dev, lambda t: t[_mt_index(spec, dev)], ref, a, noncontig=noncontig)


@pytest.mark.parametrize("name", list(CASES))
def test_getitem_several_tensors_torch(dev, rng, name):
    spec = CASES[name]
    a = rng.standard_normal((5, 7, 6)).astype(np.float32)
    w = rng.standard_normal(np.asarray(torch.tensor(a)[_torch_index(spec)].shape)).astype(np.float32)
    t = mt.tensor(a, device=dev, requires_grad=True)
    out = t[_mt_index(spec, dev)]
    (out * mt.tensor(w, device=dev)).sum().backward()
    ta = torch.tensor(a, requires_grad=True)
    ref = ta[_torch_index(spec)]
    (ref * torch.tensor(w)).sum().backward()
    assert tuple(out.shape) == tuple(ref.shape)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-6)


def _random_index(rng, shape):
    """A random mix of ints, slices, None, '...', index tensors (broadcastable) and masks for shape."""
    out, d, ellipsis = [], 0, False
    while d < len(shape):
        kind = rng.integers(0, 7)
        if kind == 0:
            out.append(int(rng.integers(-shape[d], shape[d])))
        elif kind == 1:
            out.append(slice(int(rng.integers(0, 2)), None, int(rng.integers(1, 3))))
        elif kind == 2:
            out.append(None)
            continue
        elif kind == 3 and not ellipsis and d + 1 < len(shape):
            out.append(Ellipsis)
            ellipsis = True
            d = len(shape) - 1  # leave one dim to index after it
            continue
        elif kind == 4 and d + 1 < len(shape):
            out.append(("T", rng.random(shape[d:d + 2]) > 0.5))
            d += 2
            continue
        else:
            out.append(("T", rng.integers(-shape[d], shape[d], size=(2, 1, 3)[int(rng.integers(0, 3)):])))
        d += 1
    return tuple(out)


def test_random_index_mixes_match_torch(dev):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((4, 3, 5, 2)).astype(np.float32)
    t = mt.tensor(a, device=dev, requires_grad=True)
    ta = torch.tensor(a, requires_grad=True)
    tried = 0
    while tried < 60:
        spec = _random_index(rng, a.shape)
        try:
            ref = ta[_torch_index(spec)]
        except (IndexError, RuntimeError):  # index tensors that do not broadcast together
            with pytest.raises(IndexError):
                t[_mt_index(spec, dev)]
            continue
        tried += 1
        out = t[_mt_index(spec, dev)]
        assert tuple(out.shape) == tuple(ref.shape), spec
        np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy(), err_msg=str(spec))
        w = rng.standard_normal(tuple(ref.shape)).astype(np.float32)
        t.grad = None
        ta.grad = None
        (out * mt.tensor(w, device=dev)).sum().backward()
        (ref * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=str(spec))


@pytest.mark.parametrize("n", [1, 33, 257])
def test_getitem_sizes_straddling_work_groups(dev, rng, n):
    a = rng.standard_normal((n, 3))
    i = rng.integers(-n, n, size=65)
    j = rng.integers(0, 3, size=65)
    check(dev, lambda t: t[mt.tensor(i, device=dev), mt.tensor(j, device=dev)], lambda x: x[i, j], a)


@pytest.mark.parametrize("dt", [mt.float32, mt.float16, mt.int32, mt.int64, mt.bool])
@pytest.mark.parametrize("index_dt", [np.int64, np.int32])
def test_every_dtype_and_index_dtype(dev, rng, dt, index_dt):
    if dt is mt.float16 and not dev.has_fp16:
        pytest.skip("no cl_khr_fp16")
    a = (rng.standard_normal((4, 5)) * 3).astype(dt.np)
    t = mt.tensor(a, device=dev, dtype=dt)
    i, j = np.array([3, 0, -1], index_dt), np.array([4, 4, 1], index_dt)
    got = t[mt.tensor(i, device=dev), mt.tensor(j, device=dev)]
    assert got.dtype is dt
    np.testing.assert_array_equal(got.numpy(), a.astype(got.numpy().dtype)[i, j])
    mask = a.astype(np.float64) > 0
    np.testing.assert_array_equal(t[mt.tensor(mask, device=dev)].numpy(), a.astype(got.numpy().dtype)[mask])


@pytest.mark.parametrize("index", [True, False, (0, True), (Ellipsis, False), (slice(None), False, 1),
                                   (None, False, 0)])
def test_python_bool_index(dev, index):
    a = np.arange(24.0).reshape(2, 3, 4)
    got, want = mt.tensor(a, device=dev)[index], torch.tensor(a)[index]
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_index_errors(dev):
    t = mt.zeros(3, 4, device=dev)
    with pytest.raises(IndexError, match="must be long, int, byte or bool"):
        t[mt.tensor([0.0, 1.0], device=dev)]
    with pytest.raises(IndexError, match=r"could not be broadcast together with shapes \[2\], \[3\]"):
        t[mt.tensor([0, 1], device=dev), mt.tensor([0, 1, 2], device=dev)]
    with pytest.raises(IndexError, match=r"shape of the mask \[2, 4\] at index 0 does not match .* \[3, 4\]"):
        t[mt.tensor(np.ones((2, 4), bool), device=dev)]
    with pytest.raises(IndexError, match="too many indices"):
        t[mt.tensor([0], device=dev), 0, 0]


# ---- assignment -------------------------------------------------------------------------------
SET_CASES = [
    ((1, slice(None)), 5.0),
    ((slice(None), slice(1, 3)), "broadcast"),
    ((Ellipsis, None, 2), 1.5),
    ((("T", np.array([3, 0, -1])),), "broadcast"),
    ((("T", np.array([3, 0])), ("T", np.array([-1, 2]))), 7.0),
    ((slice(None), ("T", np.array([4, 1]))), "broadcast"),
    ((("T", np.array([[0, 1], [2, 3]])), slice(None)), "broadcast"),
    ((("T", np.array([[True, False, True, False, True]] * 4)),), "values"),
    ((("T", np.array([True, False, True, True])),), 2.0),
    ((("T", np.array([True, False, True, True])),), "broadcast"),
    ((("T", EMPTY),), 3.0),
]


def _value(kind, target_shape, rng):
    if kind == "broadcast":
        return rng.standard_normal(target_shape[-1:])
    if kind == "values":
        return rng.standard_normal(target_shape)
    return kind


@pytest.mark.parametrize("spec,kind", SET_CASES)
def test_setitem_matches_numpy(dev, rng, spec, kind):
    a = rng.standard_normal((4, 5))
    target_shape = a[_np_index(spec)].shape
    v = _value(kind, target_shape, rng)
    ref = a.copy()
    ref[_np_index(spec)] = v
    t = mt.tensor(a, device=dev, dtype=mt.float32)
    version = t._version
    t[_mt_index(spec, dev)] = mt.tensor(v, device=dev, dtype=mt.float32) if isinstance(v, np.ndarray) else v
    assert t._version > version
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-6)


@pytest.mark.parametrize("spec,kind", SET_CASES)
def test_setitem_autograd_matches_torch(dev, rng, spec, kind):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    target_shape = a[_np_index(spec)].shape
    v = _value(kind, target_shape, rng)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    leaf = mt.tensor(a, device=dev, requires_grad=True)
    tleaf = torch.tensor(a, requires_grad=True)
    if isinstance(v, np.ndarray):
        v = v.astype(np.float32)
        mv, tv = mt.tensor(v, device=dev, requires_grad=True), torch.tensor(v, requires_grad=True)
    else:
        mv = tv = v
    y = leaf * 2
    y[_mt_index(spec, dev)] = mv
    ty = tleaf * 2
    ty[_torch_index(spec)] = tv
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6)
    (y * mt.tensor(w, device=dev)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), tleaf.grad.numpy(), rtol=1e-6)
    if isinstance(v, np.ndarray):
        np.testing.assert_allclose(mv.grad.numpy(), tv.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_setitem_into_noncontiguous_view(dev, rng):
    a = rng.standard_normal((6, 8)).astype(np.float32)
    base = mt.tensor(a, device=dev)
    view = base[:, ::2]  # (6, 4), strided
    view[mt.tensor([0, 5], device=dev), mt.tensor([3, 1], device=dev)] = -9.0
    a[[0, 5], [6, 2]] = -9.0
    np.testing.assert_array_equal(base.numpy(), a)


def test_setitem_shape_mismatch_names_shapes(dev):
    t = mt.zeros(4, 5, device=dev)
    with pytest.raises(RuntimeError, match=r"value tensor of shape \[3\] cannot be broadcast to indexing result "
                                           r"of shape \[2, 5\]"):
        t[mt.tensor([0, 1], device=dev)] = mt.ones(3, device=dev)


def test_setitem_duplicates_store_one_of_the_values(dev):
    t = mt.zeros(3, device=dev)
    t[mt.tensor([1, 1, 1], device=dev)] = mt.tensor([4.0, 5.0, 6.0], device=dev)
    assert t.numpy()[1] in (4.0, 5.0, 6.0) and t.numpy()[0] == 0 and t.numpy()[2] == 0


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_matches_numpy_and_torch(dev, rng, accumulate):
    a = rng.standard_normal((33, 4))
    i = np.array([3, 3, -1, 0, 3, 32])
    v = rng.standard_normal((6, 4))
    expected = a.copy()
    if accumulate:
        np.add.at(expected, i, v)
        fn = lambda x, vv: x.index_put((mt.tensor(i, device=dev),), vv, accumulate=True)  # noqa: E731
        check(dev, fn, lambda x, vv: _np_add_at(x, i, vv), a, v, noncontig=True)
    else:
        j = np.array([3, -2, 0, 32, 7, 8])  # distinct rows: the result is defined
        expected[j] = v
        fn = lambda x, vv: mt.index_put(x, (mt.tensor(j, device=dev),), vv)  # noqa: E731
        check(dev, fn, lambda x, vv: _np_put(x, j, vv), a, v, noncontig=True)
    got = mt.tensor(a, device=dev, dtype=mt.float32)
    ta = torch.tensor(a, dtype=torch.float32)
    ii = i if accumulate else np.array([3, -2, 0, 32, 7, 8])
    got.index_put_((mt.tensor(ii, device=dev),), mt.tensor(v, device=dev, dtype=mt.float32), accumulate=accumulate)
    ta.index_put_((torch.tensor(ii),), torch.tensor(v, dtype=torch.float32), accumulate=accumulate)
    np.testing.assert_allclose(got.numpy(), ta.numpy(), rtol=1e-5, atol=1e-6)


def _np_add_at(x, i, v):
    out = x.copy()
    np.add.at(out, i, v)
    return out


def _np_put(x, i, v):
    out = x.copy()
    out[i] = v
    return out


@pytest.mark.parametrize("dt", [mt.float32, mt.float16, mt.int32, mt.int64, mt.bool])
def test_index_put_accumulate_every_dtype(dev, rng, dt):
    if dt is mt.float16 and not dev.has_fp16:
        pytest.skip("no cl_khr_fp16")
    a = (rng.standard_normal((5, 3)) * 3).astype(np.bool_ if dt is mt.bool else dt.np)
    v = (rng.standard_normal((4, 3)) * 3).astype(np.bool_ if dt is mt.bool else dt.np)
    i = np.array([1, 1, 4, 1])
    t = mt.tensor(a, device=dev, dtype=dt).index_put((mt.tensor(i, device=dev),),
                                                           mt.tensor(v, device=dev, dtype=dt), accumulate=True)
    ref = torch.tensor(a).index_put((torch.tensor(i),), torch.tensor(v), accumulate=True)
    assert t.dtype is dt
    np.testing.assert_allclose(t.numpy().astype(np.float64), ref.numpy().astype(np.float64), rtol=1e-3)


def test_index_put_with_several_broadcast_indices_and_grad(dev, rng):
    a = rng.standard_normal((5, 6, 7))
    i, j = np.array([0, 4, 4]), np.array([[5], [-1]])  # broadcast to (2, 3), with duplicates
    v = rng.standard_normal((2, 3, 7))

    def ref(x, vv):
        out = x.copy()
        np.add.at(out, (i, j), vv)
        return out
    check(dev, lambda x, vv: mt.index_put(x, (mt.tensor(i, device=dev), mt.tensor(j, device=dev)), vv,
                                          accumulate=True), ref, a, v, noncontig=True)


_CHILD = r"""
import numpy as np, minitorch_cl as mt
dev = mt.device()
x = mt.arange(12.0, device=dev).reshape(3, 4)
T = lambda v: mt.tensor(v, device=dev)


def assign(t, index, value):
    t[index] = value
    return t


for name, op in [("index", lambda: x[T([0, 7]), T([1, 1])]),
                 ("index_put_", lambda: x.clone().index_put_((T([-9]),), T(1.0))),
                 ("setitem", lambda: assign(x.clone(), (T([1]), T([4])), 1.0))]:
    try:
        op().numpy()
        print(name, "no error")
    except IndexError as e:
        print(name, "IndexError:", e)
    # the process goes on and the next op is right
    print(name, "next", x[T([2, -1]), T([3, 0])].numpy().tolist())
"""


def test_out_of_range_raises_at_next_sync_and_process_goes_on(dev):
    env = dict(os.environ, MINITORCH_CL_DEVICE=dev.spec)
    res = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "index IndexError: index 7 is out of bounds for a dimension with size 3" in lines
    assert "index_put_ IndexError: index_put_(): index -9 is out of bounds for a dimension with size 3" in lines
    assert "setitem IndexError: index_put_(): index 4 is out of bounds for a dimension with size 4" in lines
    for name in ("index", "index_put_", "setitem"):
        assert f"{name} next [11.0, 8.0]" in lines


def test_setitem_reading_its_own_target(dev, rng):
    a = rng.standard_normal(65).astype(np.float32)
    perm = rng.permutation(65)
    t = mt.tensor(a, device=dev)
    t[mt.tensor(perm, device=dev)] = t  # the value is read before anything is overwritten
    expected = a.copy()
    expected[perm] = a
    np.testing.assert_array_equal(t.numpy(), expected)
    t[t > 0] = 0.0
    expected[expected > 0] = 0.0
    np.testing.assert_array_equal(t.numpy(), expected)


def test_assignment_after_a_save_fails_at_backward(dev):
    x = mt.ones(4, device=dev, requires_grad=True)
    for update in (lambda y: y.__setitem__(mt.tensor([1, 2], device=dev), 0.0),
                   lambda y: y.__setitem__(mt.tensor([True, False, True, True], device=dev), mt.ones(3, device=dev)),
                   lambda y: y.index_put_((mt.tensor([0], device=dev),), mt.ones(1, device=dev), accumulate=True)):
        y = x * 1
        z = y * y  # saves y
        update(y)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()
