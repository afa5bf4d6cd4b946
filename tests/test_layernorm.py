"""layer_norm / nn.LayerNorm against a NumPy float64 reference: values and gradients of x, weight, bias."""
import numpy as np
import pytest

import minitorch_cl as mt
import minitorch_cl.nn.functional as F


def ref_layer_norm(x, dims, w, b, eps):
    """(y, backward) over the trailing `dims` axes, float64."""
    axes = tuple(range(x.ndim - dims, x.ndim))
    mu = x.mean(axes, keepdims=True)
    r = 1.0 / np.sqrt(x.var(axes, keepdims=True) + eps)
    xhat = (x - mu) * r
    y = xhat * (w if w is not None else 1.0) + (b if b is not None else 0.0)

    def backward(g):
        gw = g * (w if w is not None else 1.0)
        dx = r * (gw - gw.mean(axes, keepdims=True) - xhat * (gw * xhat).mean(axes, keepdims=True))
        lead = tuple(range(x.ndim - dims))
        return dx, (g * xhat).sum(lead), g.sum(lead)

    return y, backward


@pytest.mark.parametrize("shape,norm_shape,affine", [
    ((3, 7, 33), (33,), True),
    ((65, 1), (1,), True),         # a single element: output is the bias
    ((2, 5, 7), (5, 7), True),     # normalised over two dims
    ((4, 65), (65,), False),
    ((1, 512), (512,), True),
])
def test_values_and_gradients(dev, rng, shape, norm_shape, affine):
    x = rng.standard_normal(shape) * 3 + 1
    w = rng.standard_normal(norm_shape) if affine else None
    b = rng.standard_normal(norm_shape) if affine else None
    tx = mt.tensor(x, device=dev, requires_grad=True)
    tw = mt.tensor(w, device=dev, requires_grad=True) if affine else None
    tb = mt.tensor(b, device=dev, requires_grad=True) if affine else None
    y = F.layer_norm(tx, norm_shape, tw, tb, eps=1e-5)
    ref, backward = ref_layer_norm(x.astype(np.float32).astype(np.float64), len(norm_shape), w, b, 1e-5)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    g = rng.standard_normal(shape)
    (y * mt.tensor(g, device=dev)).sum().backward()
    dx, dw, db = backward(g)
    np.testing.assert_allclose(tx.grad.numpy(), dx, rtol=1e-4, atol=1e-4)
    if affine:
        np.testing.assert_allclose(tw.grad.numpy(), dw, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(tb.grad.numpy(), db, rtol=1e-4, atol=1e-4)


def test_module_strided_input_and_state(dev, rng):
    x = rng.standard_normal((7, 4, 33))
    ln = mt.nn.LayerNorm(33, eps=1e-6)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    w, b = rng.standard_normal(33), rng.standard_normal(33)
    ln.load_state_dict({"weight": w, "bias": b})
    base = mt.tensor(np.swapaxes(x, 0, 1).copy(), device=dev, requires_grad=True)
    y = ln(base.transpose(0, 1))  # a non-contiguous view
    ref, backward = ref_layer_norm(x.astype(np.float32).astype(np.float64), 1, w, b, 1e-6)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    y.sum().backward()
    np.testing.assert_allclose(np.swapaxes(base.grad.numpy(), 0, 1), backward(np.ones_like(ref))[0], atol=1e-4)
    plain = mt.nn.LayerNorm((4, 33), elementwise_affine=False)
    assert list(plain.parameters()) == []
    assert "elementwise_affine=False" in repr(plain)


def test_bad_shapes(dev):
    x = mt.zeros(3, 8, device=dev)
    with pytest.raises(ValueError, match=r"\(3, 8\).*\(7,\)"):
        F.layer_norm(x, (7,))
    with pytest.raises(ValueError, match="weight"):
        F.layer_norm(x, (8,), weight=mt.ones(7, device=dev))


def test_against_torch(dev, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 33)).astype(np.float32)
    want = torch.nn.functional.layer_norm(torch.tensor(x), (33,)).numpy()
    np.testing.assert_allclose(F.layer_norm(mt.tensor(x, device=dev), (33,)).numpy(), want, rtol=1e-5, atol=1e-5)
