"""Property tests of the pure index math: views, broadcasting and coalescing against NumPy."""
import numpy as np
from hypothesis import given, settings, strategies as st

from minitorch_cl import layout

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def _strided_view(base, shape, strides, offset=0):
    """NumPy view of a flat array through element strides."""
    item = base.itemsize
    return np.lib.stride_tricks.as_strided(base[offset:], shape, [s * item for s in strides])


@settings(max_examples=200, deadline=None)
@given(shapes, st.data())
def test_view_strides_agree_with_numpy_reshape(shape, data):
    perm = data.draw(st.permutations(range(len(shape))))
    base = np.arange(layout.numel(shape), dtype=np.float32)
    strides = layout.contiguous_strides(shape)
    pshape, pstrides = tuple(shape[p] for p in perm), tuple(strides[p] for p in perm)
    viewed = base.reshape(shape).transpose(perm)
    total = layout.numel(pshape)
    splits = data.draw(st.lists(st.sampled_from([d for d in range(1, total + 1) if total % d == 0]), max_size=3))
    target, rest = [], total
    for s in splits:
        if rest % s == 0:
            target.append(s)
            rest //= s
    target.append(rest)
    new = layout.view_strides(pshape, pstrides, tuple(target))
    if new is not None:  # a view must read exactly what a reshaping copy would
        np.testing.assert_array_equal(_strided_view(base, tuple(target), new), viewed.reshape(target))
    else:  # NumPy also needs a copy whenever we do
        assert not np.shares_memory(viewed.reshape(target), base)


@settings(max_examples=200, deadline=None)
@given(shapes, st.data())
def test_broadcast_strides_read_broadcast_values(shape, data):
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2))
    target = tuple(lead) + tuple(n if data.draw(st.booleans()) else n for n in shape)
    small = tuple(1 if data.draw(st.booleans()) else n for n in shape)
    base = np.arange(layout.numel(small), dtype=np.float32)
    strides = layout.broadcast_strides(small, layout.contiguous_strides(small), target)
    expected = np.broadcast_to(base.reshape(small), target)
    np.testing.assert_array_equal(_strided_view(base, target, strides), expected)
    assert layout.broadcast_shapes(small, target) == target


@settings(max_examples=200, deadline=None)
@given(shapes, st.data())
def test_coalesce_preserves_every_offset(shape, data):
    perm = data.draw(st.permutations(range(len(shape))))
    strides = layout.contiguous_strides(shape)
    a = tuple(strides[p] for p in perm)
    b = layout.contiguous_strides(tuple(shape[p] for p in perm))
    pshape = tuple(shape[p] for p in perm)
    cshape, (ca, cb) = layout.coalesce(pshape, [a, b])
    assert layout.numel(cshape) == layout.numel(pshape)
    idx = np.indices(pshape).reshape(len(pshape), -1).T
    cidx = np.indices(cshape).reshape(len(cshape), -1).T
    np.testing.assert_array_equal(idx @ np.array(a), cidx @ np.array(ca))
    np.testing.assert_array_equal(idx @ np.array(b), cidx @ np.array(cb))
