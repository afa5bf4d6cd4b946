"""nn.init: torch's fan and gain rules exactly, and each initialiser's statistics on large tensors
(fixed seeds)."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.nn import init

torch = pytest.importorskip("torch")
TI = torch.nn.init


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (8, 4, 3), (16, 8, 3, 3), (4, 2, 1, 5, 2), (7, 0)])
def test_fan_in_and_fan_out_like_torch(shape):
    assert init._calculate_fan_in_and_fan_out(mt.empty(*shape)) == TI._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_fan_needs_two_dims():
    with pytest.raises(ValueError):
        init._calculate_fan_in_and_fan_out(mt.empty(5))
    with pytest.raises(ValueError):
        init.kaiming_uniform_(mt.empty(4, 4), mode="fan_avg")


@pytest.mark.parametrize("nl,param", [("linear", None), ("conv2d", None), ("conv_transpose3d", None),
                                      ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                                      ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_like_torch(nl, param):
    assert init.calculate_gain(nl, param) == pytest.approx(TI.calculate_gain(nl, param), rel=1e-12)


def test_calculate_gain_errors():
    with pytest.raises(ValueError):
        init.calculate_gain("swish")
    with pytest.raises(ValueError):
        init.calculate_gain("leaky_relu", True)


def _stats(t):
    a = t.numpy().astype(np.float64)
    return a, a.mean(), a.std()


SHAPE = (512, 256, 3)  # fan_in 768, fan_out 1536; 393,216 draws


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nl,a", [("relu", 0), ("leaky_relu", 0.1), ("tanh", 0)])
def test_kaiming(dev, mode, nl, a):
    mt.manual_seed(1)
    fan = 768 if mode == "fan_in" else 1536
    std = TI.calculate_gain(nl, a) / math.sqrt(fan)
    x, m, s = _stats(init.kaiming_normal_(mt.empty(*SHAPE, device=dev), a, mode, nl))
    assert abs(m) < 0.01 * std and abs(s / std - 1) < 0.01
    x, m, s = _stats(init.kaiming_uniform_(mt.empty(*SHAPE, device=dev), a=a, mode=mode, nonlinearity=nl))
    bound = math.sqrt(3) * std
    assert x.max() <= bound and x.min() >= -bound and x.max() > 0.99 * bound
    assert abs(s / std - 1) < 0.01


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier(dev, gain):
    mt.manual_seed(2)
    std = gain * math.sqrt(2.0 / (768 + 1536))
    x, m, s = _stats(init.xavier_normal_(mt.empty(*SHAPE, device=dev), gain))
    assert abs(m) < 0.01 * std and abs(s / std - 1) < 0.01
    x, m, s = _stats(init.xavier_uniform_(mt.empty(*SHAPE, device=dev), gain=gain))
    assert x.max() <= math.sqrt(3) * std * (1 + 1e-6) and abs(s / std - 1) < 0.01


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (1.0, 0.5, 0.0, 3.0), (0.0, 0.02, -0.04, 0.04)])
def test_trunc_normal(dev, mean, std, a, b):
    mt.manual_seed(3)
    x, m, s = _stats(init.trunc_normal_(mt.empty(200000, device=dev), mean, std, a, b))
    ref = torch.distributions.Normal(mean, std)  # the truncated normal's exact moments
    alpha, beta = (a - mean) / std, (b - mean) / std
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Z = float(ref.cdf(torch.tensor(b)) - ref.cdf(torch.tensor(a)))
    exp_mean = mean + std * (phi(alpha) - phi(beta)) / Z
    exp_var = std ** 2 * (1 + (alpha * phi(alpha) - beta * phi(beta)) / Z - ((phi(alpha) - phi(beta)) / Z) ** 2)
    assert x.min() >= a and x.max() <= b
    assert abs(m - exp_mean) < 0.01 * std and abs(s / math.sqrt(exp_var) - 1) < 0.01


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (8, 2, 3)])
def test_orthogonal(dev, shape):
    mt.manual_seed(4)
    w = init.orthogonal_(mt.empty(*shape, device=dev), gain=2.0).numpy().reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-5)
    with pytest.raises(ValueError):
        init.orthogonal_(mt.empty(3))


def test_simple_fills(dev):
    mt.manual_seed(5)
    t = mt.empty(3, 4, device=dev)
    np.testing.assert_array_equal(init.zeros_(t).numpy(), 0)
    np.testing.assert_array_equal(init.ones_(t).numpy(), 1)
    np.testing.assert_array_equal(init.constant_(t, 0.25).numpy(), 0.25)
    np.testing.assert_array_equal(init.eye_(t).numpy(), np.eye(3, 4))
    with pytest.raises(ValueError):
        init.eye_(mt.empty(2, 2, 2))
    x, m, s = _stats(init.uniform_(mt.empty(200000, device=dev), -1.0, 3.0))
    assert x.min() >= -1 and x.max() < 3 and abs(m - 1) < 0.01 and abs(s - 4 / math.sqrt(12)) < 0.01
    x, m, s = _stats(init.normal_(mt.empty(200000, device=dev), 2.0, 0.5))
    assert abs(m - 2) < 0.005 and abs(s - 0.5) < 0.005
    p = mt.nn.Parameter(mt.empty(4, 4, device=dev))  # in place on a parameter that requires grad
    init.kaiming_uniform_(p, a=math.sqrt(5))
    assert p.requires_grad and p.is_leaf


def test_seeded_init_is_reproducible(dev):
    mt.manual_seed(7)
    a = init.kaiming_normal_(mt.empty(50, 20, device=dev)).numpy()
    mt.manual_seed(7)
    b = init.kaiming_normal_(mt.empty(50, 20, device=dev)).numpy()
    np.testing.assert_array_equal(a, b)
