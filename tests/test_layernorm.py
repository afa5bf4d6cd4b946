"""layer_norm / nn.LayerNorm against a NumPy float64 reference: values and gradients of x, weight, bias."""
import numpy as np
import pytest

import minitorch_cl as mt
import minitorch_cl.nn.functional as F
from helpers import check, f32


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


def reference(dims, eps):
    """np_fn and np_grad for helpers.check, on inputs (x[, weight, bias])."""
    ref = lambda x, w=None, b=None: ref_layer_norm(x, dims, w, b, eps)
    return (lambda *inputs: ref(*inputs)[0]), (lambda inputs, g: ref(*inputs)[1](g)[:len(inputs)])


@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("shape,norm_shape,affine", [
    ((3, 7, 33), (33,), True),
    ((65, 1), (1,), True),         # a single element: output is the bias
    ((2, 5, 7), (5, 7), True),     # normalised over two dims
    ((4, 65), (65,), False),
    ((1, 512), (512,), True),
])
def test_values_and_gradients(dev, rng, shape, norm_shape, affine, noncontig):
    x = rng.standard_normal(shape) * 3 + 1
    arrays = (x, rng.standard_normal(norm_shape), rng.standard_normal(norm_shape)) if affine else (x,)
    np_fn, np_grad = reference(len(norm_shape), 1e-5)
    check(dev, lambda x, w=None, b=None: F.layer_norm(x, norm_shape, w, b, eps=1e-5), np_fn, *arrays,
          np_grad=np_grad, noncontig=noncontig, rtol=1e-4, atol=1e-5, grad_rtol=1e-4, grad_atol=1e-4)


def test_module_strided_input_and_state(dev, rng):
    x = rng.standard_normal((4, 7, 33))  # stored (4, 7, 33), fed as the (7, 4, 33) view
    ln = mt.nn.LayerNorm(33, eps=1e-6)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    w, b = f32(rng.standard_normal(33)), f32(rng.standard_normal(33))
    ln.load_state_dict({"weight": w, "bias": b})
    ref = lambda x: ref_layer_norm(np.swapaxes(x, 0, 1), 1, w, b, 1e-6)

    def np_grad(inputs, g):
        dx, dw, db = ref(inputs[0])[1](g)
        return np.swapaxes(dx, 0, 1), dw, db

    check(dev, lambda x: ln(x.transpose(0, 1)), lambda x: ref(x)[0], x, np_grad=np_grad,
          params={"weight": (ln.weight, w), "bias": (ln.bias, b)}, rtol=1e-4, atol=1e-5, grad_rtol=1e-7,
          grad_atol=1e-4)
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
    np_fn, np_grad = reference(1, 1e-5)
    check(dev, lambda x: F.layer_norm(x, (33,)), np_fn, rng.standard_normal((5, 33)), np_grad=np_grad,
          torch_fn=lambda x: torch.nn.functional.layer_norm(x, (33,)), rtol=1e-5, atol=1e-5)
