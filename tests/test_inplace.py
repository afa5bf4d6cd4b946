"""In-place updates with PyTorch's semantics: augmented assignment, the *_ methods, autograd through
them, the version-counter check, and the errors PyTorch raises."""
import numpy as np
import pytest

import minitorch_cl as mt


def test_augmented_assignment_updates_the_tensor_itself(dev):
    c = mt.zeros(3, device=dev)
    d = c
    d += 1
    d *= 4
    d -= 1
    d /= 2
    assert d is c
    np.testing.assert_array_equal(c.numpy(), [1.5, 1.5, 1.5])


def test_classic_manual_sgd_step_changes_the_model(dev):
    model = mt.nn.Linear(3, 2).to(dev)
    before = [p.detach().clone().numpy() for p in model.parameters()]
    loss = model(mt.ones(4, 3, device=dev)).sum()
    loss.backward()
    with mt.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    for b, p in zip(before, model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), b - 0.1 * p.grad.numpy(), rtol=1e-6)


def test_inplace_ops_match_numpy_on_a_strided_view(dev, rng):
    base = rng.standard_normal((4, 6)).astype(np.float32)
    t = mt.tensor(base, device=dev)
    view = t[:, 1::2]
    view.mul_(2).add_(1).clamp_(-1, 2)
    expected = base.copy()
    expected[:, 1::2] = np.clip(expected[:, 1::2] * 2 + 1, -1, 2)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["exp_", "relu_", "sigmoid_", "tanh_", "neg_", "abs_", "sqrt_"])
def test_unary_inplace_methods(dev, rng, name):
    x = np.abs(rng.standard_normal(7)).astype(np.float32) + 0.1
    t = mt.tensor(x, device=dev)
    out = getattr(t, name)()
    assert out is t
    ref = {"exp_": np.exp, "relu_": lambda a: np.maximum(a, 0), "sigmoid_": lambda a: 1 / (1 + np.exp(-a)),
           "tanh_": np.tanh, "neg_": np.negative, "abs_": np.abs, "sqrt_": np.sqrt}[name](x.astype(np.float64))
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-5)


def test_gradient_flows_through_inplace_ops_on_non_leaves(dev, rng):
    w0 = rng.standard_normal((2, 3))
    w = mt.tensor(w0, dtype=mt.float32, device=dev, requires_grad=True)
    y = w * 2
    y += 1
    y.mul_(w)            # y = (2w + 1) * w
    y[0, 1] = 5.0        # overwritten: no gradient there
    y.sum().backward()
    expected = 4 * w0 + 1
    expected[0, 1] = 0
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-5)


def test_setitem_sends_the_gradient_to_the_assigned_value(dev):
    v = mt.ones(2, device=dev, requires_grad=True)
    z = mt.zeros(3, 2, device=dev)
    z[1] = v * 3
    (z * mt.tensor([[1.0, 1.0], [2.0, 5.0], [1.0, 1.0]], device=dev)).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), [6.0, 15.0])


def test_mask_assignment(dev):
    m = mt.tensor([1.0, -2.0, 3.0, -4.0], device=dev)
    m[m < 0] = 0
    np.testing.assert_array_equal(m.numpy(), [1, 0, 3, 0])
    m[:, None][m > 2] = mt.tensor(7.0, device=dev)
    np.testing.assert_array_equal(m.numpy(), [1, 0, 7, 0])


def test_torch_agrees_on_inplace_history(dev, rng):
    torch = pytest.importorskip("torch")
    x0 = rng.standard_normal((3, 4))
    xt = torch.tensor(x0, requires_grad=True)
    yt = xt * 3
    yt.add_(2).mul_(xt)
    yt[1, :2] = 0.5
    (yt ** 2).sum().backward()
    x = mt.tensor(x0, dtype=mt.float32, device=dev, requires_grad=True)
    y = x * 3
    y.add_(2).mul_(x)
    y[1, :2] = 0.5
    (y ** 2).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_modifying_a_saved_tensor_is_caught_in_backward(dev):
    a = mt.ones(3, device=dev, requires_grad=True)
    b = a * 1
    c = b * b         # mul's backward needs b
    b.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*version 1; expected version 0"):
        c.sum().backward()


def test_an_inplace_op_may_need_its_own_input(dev, rng):
    x0 = rng.uniform(0.5, 2.0, 5)
    a = mt.tensor(x0, dtype=mt.float32, device=dev, requires_grad=True)
    b = a * 1
    b.log_()          # log's backward reads the values b had before: as in PyTorch, that works
    b.mul_(b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * np.log(x0) / x0, rtol=1e-5)


def test_optimizer_step_bumps_the_version_of_saved_weights(dev):
    lin = mt.nn.Linear(2, 2).to(dev)
    opt = mt.optim.SGD(lin.parameters(), lr=0.1)
    out = lin(mt.ones(1, 2, device=dev, requires_grad=True)).sum()
    out.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_inplace_errors(dev):
    leaf = mt.ones(3, device=dev, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.add_(1)
    ints = mt.zeros(3, dtype=mt.int64, device=dev)
    with pytest.raises(RuntimeError, match="float32 can't be cast to the desired output type int64"):
        ints += 0.5
    expanded = mt.zeros(1, device=dev).expand(4)
    with pytest.raises(RuntimeError, match="more than one element"):
        expanded.add_(1)
    small = mt.zeros(3, device=dev)
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        small.add_(mt.ones(2, 3, device=dev))
    base = leaf * 1
    with pytest.raises(NotImplementedError, match="view"):
        base[0:2].mul_(2)


def test_integer_and_bool_inplace(dev):
    i = mt.tensor([1, 2, 3], device=dev)
    i += 2
    i *= 3
    assert i.dtype is mt.int64
    np.testing.assert_array_equal(i.numpy(), [9, 12, 15])
    b = mt.tensor([True, False, True], device=dev)
    b &= mt.tensor([True, True, False], device=dev)
    np.testing.assert_array_equal(b.numpy(), [True, False, False])


def test_register_hook_on_leaf_and_non_leaf(dev):
    x = mt.ones(3, device=dev, requires_grad=True)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 10)
    (y * mt.tensor([1.0, 2.0, 3.0], device=dev)).sum().backward()
    np.testing.assert_array_equal(seen[0], [1, 2, 3])
    np.testing.assert_array_equal(x.grad.numpy(), [20, 40, 60])
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 1])


def test_zero_dim_tensors_and_factories(dev):
    assert mt.tensor(3.0, device=dev).shape == ()
    assert mt.tensor(np.array(0), device=dev).shape == ()
    assert mt.tensor(np.array(0), device=dev).item() == 0
    x = mt.ones(2, 3, dtype=mt.int32, device=dev)
    z = x.new_zeros(4)
    assert z.shape == (4,) and z.dtype is mt.int32 and z.device == dev
    assert x.new_full((2,), 7).numpy().tolist() == [7, 7]
    assert x.new_tensor([1, 2]).dtype is mt.int32
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = mt.from_numpy(a)
    assert t.dtype is mt.int32 and t.numpy().tolist() == a.tolist()
    assert mt.as_tensor(t) is t
    with mt.inference_mode():
        assert not (mt.ones(1, device=dev, requires_grad=True) * 2).requires_grad


def test_copy_from_host_array_uploads_in_place(dev):
    """copy_(ndarray) into a contiguous tensor (or contiguous view at an offset) writes its memory
    directly, converting the dtype; the array can change afterwards; other layouts go through a copy."""
    base = mt.zeros(10, device=dev)
    src = np.arange(4, dtype=np.float64)
    base[3:7].copy_(src)
    src[:] = -1  # the transfer has finished: the tensor keeps the values
    np.testing.assert_array_equal(base.numpy(), [0, 0, 0, 0, 1, 2, 3, 0, 0, 0])
    ints = mt.zeros(2, 3, dtype=mt.int64, device=dev)
    ints.copy_(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32).T.T)  # a host view is fine
    assert ints.dtype is mt.int64 and ints.numpy().tolist() == [[1, 2, 3], [4, 5, 6]]
    t = mt.zeros(3, 2, device=dev).t()  # a strided target
    t.copy_(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    np.testing.assert_array_equal(t.numpy(), [[1, 2, 3], [4, 5, 6]])
    b = mt.zeros(2, 3, device=dev)
    b.copy_(np.array([7.0, 8.0, 9.0]))  # broadcast: through a staging tensor
    np.testing.assert_array_equal(b.numpy(), [[7, 8, 9], [7, 8, 9]])
    with pytest.raises(RuntimeError, match="leaf Variable"):
        mt.zeros(3, device=dev, requires_grad=True).copy_(np.ones(3))


def test_inplace_on_a_product_whose_backward_reads_only_its_inputs(dev):
    # torchvision's MBConv does `result += input` on a product: mul saves its inputs, not its output
    x = mt.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], device=dev, requires_grad=True)
    h = x * 2 + 0
    r = h * mt.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=dev)
    r += h
    r.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (np.array([[1, 2, 3], [4, 5, 6]]) + 1))
    y = x.exp()  # exp's backward reads its output: changing that output in place is refused, as in torch
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
