import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check, count_launches


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


# ---- a leaf's .grad: its own buffer, taken over from the backward when nothing else can see it ----
def test_leaf_takes_over_a_fresh_gradient_without_a_copy(dev, rng):
    lin = mt.nn.Linear(5, 3, device=dev)
    x, w = (mt.tensor(rng.standard_normal(s), device=dev, dtype=mt.float32) for s in ((4, 5), (4, 3)))
    assert count_launches(lambda: (lin(x) * w).sum().backward(), lambda key: ("OP", "OP_COPY") in key[2]) == 0
    np.testing.assert_allclose(lin.weight.grad.numpy(), w.numpy().T @ x.numpy(), rtol=1e-5)
    np.testing.assert_allclose(lin.bias.grad.numpy(), w.numpy().sum(0), rtol=1e-5)


def test_leaf_grads_never_alias_each_other_or_the_callers_tensors(dev, rng):
    a, b = (mt.tensor(rng.standard_normal(3), device=dev, dtype=mt.float32, requires_grad=True) for _ in range(2))
    (a + b).sum().backward()  # add's backward hands the same gradient to both leaves
    a.grad.add_(1.0)
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(3))
    w = mt.ones(3, device=dev)
    a.grad = None
    (a * 1.0).backward(w)  # the caller's gradient tensor passes straight through to the leaf
    a.grad.add_(5.0)
    np.testing.assert_array_equal(w.numpy(), np.ones(3))
    kept = []
    b.grad = None
    b.register_hook(lambda g: kept.append(g * 2.0) or kept[-1])  # a hook that keeps what it returns
    (b * 1.0).sum().backward()
    b.grad.add_(1.0)
    np.testing.assert_array_equal(kept[0].numpy(), 2 * np.ones(3))
    c = mt.tensor(rng.standard_normal((2, 3)), device=dev, dtype=mt.float32, requires_grad=True)
    g = mt.tensor(rng.standard_normal((2, 3)), device=dev, dtype=mt.float32)
    view = g[0]  # a view of g lives on while c's gradient (g itself) arrives
    c.backward(g)
    c.grad.mul_(0.0)
    assert np.all(view.numpy() == g.numpy()[0]) and np.any(view.numpy() != 0)
