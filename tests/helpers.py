"""One helper that runs an op and its gradient here and in a NumPy float64 reference."""
import numpy as np

import minitorch_cl as mt


def as_input(dev, array, noncontig=False, requires_grad=None):
    """A tensor holding array; with noncontig, a strided view into a larger buffer."""
    array = np.asarray(array)
    floating = array.dtype.kind == "f"
    rg = floating if requires_grad is None else requires_grad
    if noncontig and array.ndim > 0:
        padded = np.stack([array, np.full_like(array, 7)], axis=-1)  # (..., 2): every other element
        base = mt.tensor(padded, device=dev, dtype=mt.float32 if floating else None, requires_grad=rg)
        return base, base[..., 0]
    t = mt.tensor(array, device=dev, dtype=mt.float32 if floating else None, requires_grad=rg)
    return t, t


def numeric_grad(fn, arrays, weight, index, h=1e-6):
    """d sum(fn(arrays) * weight) / d arrays[index] by central differences in float64."""
    x = arrays[index]
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = np.sum(np.asarray(fn(*arrays)) * weight)
        flat[i] = old - h
        down = np.sum(np.asarray(fn(*arrays)) * weight)
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * h)
    return grad


def check(dev, mt_fn, np_fn, *arrays, grad=True, rtol=1e-5, atol=1e-5, noncontig=False, np_grad=None):
    """mt_fn on float32 tensors vs np_fn on float64 arrays: values, then gradients of sum(out * w)."""
    rng = np.random.default_rng(0)
    arrays = [np.asarray(a) for a in arrays]
    bases, inputs = zip(*[as_input(dev, a, noncontig, requires_grad=grad and a.dtype.kind == "f") for a in arrays])
    ref_inputs = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    out = mt_fn(*inputs)
    ref = np.asarray(np_fn(*ref_inputs))
    assert tuple(out.shape) == ref.shape, f"shape {out.shape} != reference {ref.shape}"
    got = out.detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol)
    if not grad:
        return out
    w = rng.standard_normal(ref.shape)
    (out * mt.tensor(w, device=dev, dtype=mt.float32)).sum().backward()
    for i, a in enumerate(arrays):
        if a.dtype.kind != "f":
            continue
        expected = np_grad(ref_inputs, w, i) if np_grad else numeric_grad(np_fn, ref_inputs, w, i)
        g = bases[i].grad
        assert g is not None, f"no gradient reached input {i}"
        g = g.numpy()
        if noncontig and a.ndim > 0:
            assert np.all(g[..., 1] == 0), "gradient leaked into elements outside the view"
            g = g[..., 0]
        np.testing.assert_allclose(g, expected, rtol=10 * rtol, atol=10 * atol + 1e-4 * np.abs(expected).max(initial=0),
                                   err_msg=f"gradient of input {i}")
    return out
