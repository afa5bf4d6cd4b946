"""Activations, functional and module forms: values and gradients against NumPy float64, values
against PyTorch (with NaN and +-inf), parameters, inplace=True, and integer inputs refused."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
import minitorch_cl.nn.functional as F
from helpers import check

torch = pytest.importorskip("torch")
TF = torch.nn.functional

_SA, _SS = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _sig(a):
    return 1 / (1 + np.exp(-a))


def _softplus(a, beta=1.0, threshold=20.0):
    return np.where(a * beta > threshold, a, np.log1p(np.exp(a * beta)) / beta)


def _gelu_tanh(a):
    return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))


# name: (mt function, NumPy float64 reference, torch function, kinks to keep finite differences off)
ACTS = {
    "silu": (F.silu, lambda a: a * _sig(a), TF.silu, ()),
    "mish": (F.mish, lambda a: a * np.tanh(np.log1p(np.exp(a))), TF.mish, ()),
    "softplus": (F.softplus, _softplus, TF.softplus, ()),
    "softplus_beta": (lambda t: F.softplus(t, beta=2.0, threshold=1.5), lambda a: _softplus(a, 2.0, 1.5),
                      lambda t: TF.softplus(t, beta=2.0, threshold=1.5), (0.75,)),
    "elu": (lambda t: F.elu(t, alpha=0.7), lambda a: np.where(a > 0, a, 0.7 * np.expm1(a)),
            lambda t: TF.elu(t, alpha=0.7), (0.0,)),
    "selu": (F.selu, lambda a: _SS * np.where(a > 0, a, _SA * np.expm1(a)), TF.selu, (0.0,)),
    "celu": (lambda t: F.celu(t, alpha=1.5), lambda a: np.where(a > 0, a, 1.5 * np.expm1(a / 1.5)),
             lambda t: TF.celu(t, alpha=1.5), (0.0,)),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.2), lambda a: np.where(a > 0, a, 0.2 * a),
                   lambda t: TF.leaky_relu(t, 0.2), (0.0,)),
    "relu6": (F.relu6, lambda a: np.clip(a, 0, 6), TF.relu6, (0.0, 6.0)),
    "hardtanh": (lambda t: F.hardtanh(t, -0.5, 0.8), lambda a: np.clip(a, -0.5, 0.8),
                 lambda t: TF.hardtanh(t, -0.5, 0.8), (-0.5, 0.8)),
    "hardswish": (F.hardswish, lambda a: a * np.clip(a + 3, 0, 6) / 6, TF.hardswish, (-3.0, 3.0)),
    "hardsigmoid": (F.hardsigmoid, lambda a: np.clip(a + 3, 0, 6) / 6, TF.hardsigmoid, (-3.0, 3.0)),
    "softsign": (F.softsign, lambda a: a / (1 + np.abs(a)), TF.softsign, ()),
    "logsigmoid": (F.logsigmoid, lambda a: -np.log1p(np.exp(-a)), TF.logsigmoid, ()),
    "tanhshrink": (F.tanhshrink, lambda a: a - np.tanh(a), TF.tanhshrink, ()),
    "threshold": (lambda t: F.threshold(t, 0.3, -2.0), lambda a: np.where(a > 0.3, a, -2.0),
                  lambda t: TF.threshold(t, 0.3, -2.0), (0.3,)),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), _gelu_tanh, lambda t: TF.gelu(t, approximate="tanh"), ()),
    "relu": (F.relu, lambda a: np.maximum(a, 0), TF.relu, (0.0,)),
}


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("shape", [(7,), (33, 5), (2, 0)])
def test_activation_values_and_grads(dev, rng, name, shape):
    fn, ref, _, kinks = ACTS[name]
    a = rng.standard_normal(shape) * 3
    for k in kinks:
        a = np.where(np.abs(a - k) < 2e-2, a + 0.1, a)
    check(dev, fn, ref, a, noncontig=len(shape) > 1)


EDGES = np.array([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, -30.0, -3.0, -1.0, 0.3, 3.0, 6.0, 25.0, 90.0],
                 dtype=np.float32)


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_edges_like_torch(dev, name):
    fn, _, tfn, _ = ACTS[name]
    got = fn(mt.tensor(EDGES, device=dev)).numpy()
    want = tfn(torch.tensor(EDGES)).numpy()
    np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-6)  # NaN positions must agree too


def test_exp_maps_in_vectors_like_torch(dev, rng):
    """SiLU, the sigmoid and SiLU's gradient on contiguous float32 go 16 at a time (elementwise.cl
    map1_vec): the edge values in every lane and in the tail past the last whole vector."""
    x = np.concatenate([np.tile(EDGES, 3), rng.standard_normal(37).astype(np.float32) * 8])
    for fn, tfn in ((F.silu, TF.silu), (mt.sigmoid, torch.sigmoid)):
        np.testing.assert_allclose(fn(mt.tensor(x, device=dev)).numpy(), tfn(torch.tensor(x)).numpy(),
                                   rtol=3e-6, atol=1e-6)
    finite = x[np.isfinite(x)]
    xo, xt = mt.tensor(finite, device=dev, requires_grad=True), torch.tensor(finite, requires_grad=True)
    F.silu(xo).sum().backward()
    TF.silu(xt).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=3e-6, atol=1e-6)


def test_modules_like_torch(dev, rng):
    x = rng.standard_normal((4, 6)).astype(np.float32) * 3
    x[0, 0] = np.nan
    cases = [("SiLU", ()), ("Mish", ()), ("Softplus", (2.0, 5.0)), ("ELU", (0.5,)), ("SELU", ()), ("CELU", (2.0,)),
             ("LeakyReLU", (0.1,)), ("ReLU6", ()), ("Hardtanh", (-2.0, 2.0)), ("Hardswish", ()),
             ("Hardsigmoid", ()), ("Softsign", ()), ("LogSigmoid", ()), ("Tanhshrink", ()), ("Threshold", (0.1, 20.0)),
             ("Softmin", (1,)), ("GLU", (1,)), ("GELU", ("tanh",)), ("ReLU", ())]
    for name, args in cases:
        got = getattr(mt.nn, name)(*args)(mt.tensor(x, device=dev)).numpy()
        want = getattr(torch.nn, name)(*args)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-6, err_msg=name)


def test_softmin_and_glu_grads(dev, rng):
    def softmin_ref(a):
        e = np.exp(-a - np.max(-a, axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    check(dev, lambda t: F.softmin(t, dim=1), softmin_ref, rng.standard_normal((7, 5)), noncontig=True)
    check(dev, lambda t: F.glu(t, dim=0), lambda a: a[:3] * _sig(a[3:]), rng.standard_normal((6, 33)),
          noncontig=True)
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(mt.ones(3, 5, device=dev), dim=1)


def test_prelu(dev, rng):
    x = rng.standard_normal((4, 3, 5))
    x = np.where(np.abs(x) < 2e-2, 0.1, x)
    w = np.array([0.25, -0.1, 0.7])
    check(dev, F.prelu, lambda a, b: np.where(a > 0, a, b[:, None] * a), x, w, noncontig=True)
    check(dev, F.prelu, lambda a, b: np.where(a > 0, a, b * a), x, np.array([0.3]))
    m = mt.nn.PReLU(num_parameters=3, init=0.1)
    tm = torch.nn.PReLU(num_parameters=3, init=0.1)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()] == ["weight"]
    xf = x.astype(np.float32)
    np.testing.assert_allclose(m(mt.tensor(xf, device=dev)).detach().numpy(), tm(torch.tensor(xf)).detach().numpy(),
                               rtol=1e-6)
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers"):
        F.prelu(mt.ones(2, 4, device=dev), mt.ones(3, device=dev))


def test_inplace_true(dev):
    for name, args in (("elu", ()), ("leaky_relu", (0.1,)), ("relu6", ()), ("silu", ()), ("hardtanh", ()),
                       ("threshold", (0.0, 5.0)), ("selu", ()), ("celu", ()), ("mish", ()), ("hardswish", ()),
                       ("hardsigmoid", ()), ("relu", ())):
        x = mt.tensor([-2.0, -0.5, 0.5, 7.0], device=dev)
        want = getattr(TF, name)(torch.tensor([-2.0, -0.5, 0.5, 7.0]), *args, inplace=True).numpy()
        assert getattr(F, name)(x, *args, inplace=True) is x
        np.testing.assert_allclose(x.numpy(), want, rtol=1e-6, err_msg=name)
    x = mt.tensor([-2.0, 3.0], device=dev)
    assert mt.nn.ReLU(inplace=True)(x) is x and x.tolist() == [0.0, 3.0]


def test_inplace_true_keeps_the_graph(dev):
    a = mt.tensor([-1.0, 2.0], device=dev, requires_grad=True)
    b = a * 1
    F.leaky_relu(b, 0.5, inplace=True)
    b.sum().backward()
    assert a.grad.tolist() == [0.5, 1.0]
    with pytest.raises(RuntimeError, match="leaf Variable"):
        F.elu(mt.tensor([1.0], device=dev, requires_grad=True), inplace=True)


def test_inplace_without_graph_writes_views_and_refuses_expanded(dev):
    """No graph to record: one kernel straight into x's memory, through a strided view into its base."""
    base = np.array([[-2.0, 9.0, -0.5], [0.5, 9.0, 7.0]], np.float32)
    for name, args in (("relu6", ()), ("hardswish", ()), ("silu", ()), ("leaky_relu", (0.1,))):
        b = mt.tensor(base, device=dev, requires_grad=True)
        with mt.no_grad():
            v = b[:, ::2]
            before = v._version
            assert getattr(F, name)(v, *args, inplace=True) is v and v._version > before
        want = torch.tensor(base)
        getattr(TF, name)(want[:, ::2], *args, inplace=True)
        np.testing.assert_allclose(b.detach().numpy(), want.numpy(), rtol=1e-6, err_msg=name)
    with pytest.raises(RuntimeError, match="more than one element"):
        F.hardswish(mt.ones(3, device=dev).expand(2, 3), inplace=True)


@pytest.mark.parametrize("name, args", [("relu", ()), ("relu6", ()), ("hardtanh", (-1.0, 1.0)), ("hardtanh", (0.5, 0.5))])
def test_inplace_in_graph_gradient_from_output(dev, name, args):
    """relu_/hardtanh_ in a graph take their gradient from the output (no copy of the input): the same
    gradient as PyTorch's, at the clamp's edges, outside it and at NaN."""
    v = np.array([-7.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 7.0, np.nan], np.float32)
    w = np.arange(1, 11, dtype=np.float32)
    a = mt.tensor(v, device=dev, requires_grad=True)
    b = a * 1
    assert getattr(F, name)(b, *args, inplace=True) is b
    (b * mt.tensor(w, device=dev)).sum().backward()
    at = torch.tensor(v, requires_grad=True)
    bt = at * 1
    getattr(TF, name)(bt, *args, inplace=True)
    (bt * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(b.detach().numpy(), bt.detach().numpy())
    np.testing.assert_array_equal(a.grad.numpy(), at.grad.numpy())


def test_integer_inputs_and_bad_arguments_refused(dev):
    for fn in (F.silu, F.elu, F.softplus, F.hardswish, F.logsigmoid):
        with pytest.raises(NotImplementedError, match="not implemented for 'int64'"):
            fn(mt.tensor([1, 2], device=dev))
    with pytest.raises(RuntimeError, match="approximate"):
        F.gelu(mt.ones(2, device=dev), approximate="fast")
    with pytest.raises(ValueError, match="min_val cannot be greater"):
        mt.nn.Hardtanh(1.0, -1.0)
