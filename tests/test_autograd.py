import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check


def test_chain_rule_matches_numeric(dev, rng):
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((5,))

    def f_mt(x, y):
        return ((x * y).tanh() + x.exp() / (1 + y * y)).sigmoid() * x

    def f_np(x, y):
        s = np.tanh(x * y) + np.exp(x) / (1 + y * y)
        return x / (1 + np.exp(-s))

    check(dev, f_mt, f_np, a, b, rtol=1e-5)


def test_reused_tensor_accumulates_within_graph(dev, rng):
    a = rng.standard_normal((6,))
    check(dev, lambda x: x * x + x * 3 + x.exp() * x, lambda x: x * x + x * 3 + np.exp(x) * x, a)


def test_grad_accumulates_across_backward_calls(dev):
    x = mt.tensor([1.0, 2.0, 3.0], device=dev, requires_grad=True)
    (x * x).sum().backward()
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 6.0, 8.0])


def test_backward_with_gradient_tensor(dev):
    x = mt.tensor([1.0, 2.0], device=dev, requires_grad=True)
    y = x * 3
    y.backward(mt.tensor([1.0, 10.0], device=dev))
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 30.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 3).backward()


def test_no_grad_and_detach(dev):
    x = mt.tensor([1.0, 2.0], device=dev, requires_grad=True)
    with mt.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = (x.detach() * 2 + x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])

    @mt.no_grad()
    def f(t):
        return t * 5
    assert not f(x).requires_grad


def test_broadcast_gradient_summed_to_operand_shape(dev, rng):
    a, b = rng.standard_normal((3, 1, 5)), rng.standard_normal((4, 1))
    check(dev, lambda x, y: x * y, lambda x, y: x * y, a, b)


def test_backward_twice_needs_retain_graph(dev):
    x = mt.tensor([1.0, 2.0], device=dev, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad is not None
    z = (x.exp() * x).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="second time"):
        z.backward()


def test_leaf_inplace_under_grad_is_refused(dev):
    x = mt.zeros(3, device=dev, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x.add_(1.0)
    with mt.no_grad():
        x.add_(1.0)
    np.testing.assert_allclose(x.detach().numpy(), [1.0, 1.0, 1.0])


def test_long_chain_does_not_recurse(dev):
    x = mt.tensor([1.0], device=dev, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y + 0.0
    y.sum().backward()
    assert x.grad.item() == 1.0


def test_integer_tensors_do_not_require_grad(dev):
    with pytest.raises(RuntimeError, match="floating"):
        mt.tensor([1, 2], device=dev, requires_grad=True)
