import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(7, 3, bias=False)
        self.register_buffer("steps", mt.zeros(1))

    def forward(self, x):
        return self.head(self.body(x))


def test_registration_and_names(dev):
    net = Net().to(dev)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["body.0.weight", "body.0.bias", "head.weight"]
    assert list(net.state_dict()) == ["steps", "body.0.weight", "body.0.bias", "head.weight"]  # torch order
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "Linear"]
    assert len(list(net.modules())) == 6
    assert net.head.bias is None
    assert "(head): Linear(in_features=7, out_features=3, bias=False)" in repr(net)


def test_linear_default_init_bounds(dev):
    lin = nn.Linear(100, 50).to(dev)
    w = lin.weight.detach().numpy()
    bound = 1 / np.sqrt(100)
    assert w.shape == (50, 100) and np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert abs(w.mean()) < 0.01


def test_dropout_train_drops_and_scales_eval_is_identity(dev):
    mt.manual_seed(0)
    drop = nn.Dropout(0.25)
    x = (mt.rand(10000, device=dev) + 1).requires_grad_()  # no zeros of its own
    xs = x.detach().numpy()
    assert drop.training
    first, second = drop(x), drop(x)
    for y in (first.detach().numpy(), second.detach().numpy()):
        kept = y != 0
        assert 0.73 < kept.mean() < 0.77  # 1 - p kept (sd 0.004)
        np.testing.assert_allclose(y[kept], xs[kept] / 0.75, rtol=1e-6)  # the kept ones scaled by 1 / (1 - p)
    assert (first.detach().numpy() != second.detach().numpy()).any(), "the same mask twice"
    first.sum().backward()  # the gradient goes through the same mask, with the same scale
    np.testing.assert_allclose(x.grad.numpy(), (first.detach().numpy() != 0) / 0.75, rtol=1e-6)
    drop.eval()
    assert not drop.training
    np.testing.assert_array_equal(drop(x).detach().numpy(), xs)


def test_train_eval_reach_dropout_inside_modules(dev):
    mt.manual_seed(0)
    net = Net().to(dev)
    x = mt.rand(64, 5, device=dev)
    without_dropout = net.head(net.body[1](net.body[0](x))).detach().numpy()
    net.eval()
    assert not net.body[2].training
    np.testing.assert_array_equal(net(x).detach().numpy(), without_dropout)
    net.train()
    assert net.body[2].training
    a, b = net(x).detach().numpy(), net(x).detach().numpy()
    assert (a != without_dropout).any() and (a != b).any()


def test_state_dict_round_trip_with_numpy(dev):
    a, b = Net().to(dev), Net().to(dev)
    b.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_load_state_dict_names_what_differs(dev):
    net = Net().to(dev)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    state["head.weight"] = np.zeros((4, 7), np.float32)
    del state["body.0.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(state)
    msg = str(err.value)
    assert "body.0.bias" in msg and "extra" in msg and "head.weight" in msg and "(4, 7)" in msg and "(3, 7)" in msg


def test_zero_grad_and_parameter_identity_after_to(dev):
    net = Net()
    params = list(net.parameters())
    net.to(dev)
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    net(mt.ones(2, 5, device=dev)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_dropout_keeps_expectation(dev):
    mt.manual_seed(0)
    x = mt.ones(100000, device=dev)
    y = nn.functional.dropout(x, 0.3).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_sequential_rejects_a_non_module():
    with pytest.raises(TypeError, match="function is not a Module subclass"):
        nn.Sequential(nn.Linear(2, 2), mt.relu)


@pytest.mark.parametrize("dtype", [mt.float32, mt.float64, mt.float16])
def test_dropout_on_a_strided_view_stores_no_mask_and_keeps_its_dtype(dev, rng, dtype):
    if dtype is mt.float64 and not dev.has_fp64:
        pytest.skip("no cl_khr_fp64")
    mt.manual_seed(3)
    base = mt.tensor(rng.uniform(1, 2, (37, 66)), device=dev, dtype=dtype)
    x = base[:, ::2].requires_grad_()  # a strided view: factors follow the logical element order
    y = nn.functional.dropout(x, 0.4)
    assert y.dtype is dtype
    w = rng.standard_normal((37, 33))
    (y * mt.tensor(w, device=dev, dtype=dtype)).sum().backward()
    xs, ys = x.detach().numpy().astype(np.float64), y.detach().numpy().astype(np.float64)
    factor = np.where(ys != 0, 1 / 0.6, 0.0)
    rtol = {mt.float64: 1e-12, mt.float32: 1e-6, mt.float16: 1e-3}[dtype]
    np.testing.assert_allclose(ys, xs * factor, rtol=rtol)
    np.testing.assert_allclose(x.grad.numpy().astype(np.float64), w * factor, rtol=rtol, atol=rtol)


def test_replacing_a_submodule_or_parameter_keeps_its_place():
    """As torch: `model.conv1 = nn.Conv2d(...)` leaves conv1 first in named_modules and state_dict."""
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)), \
        torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    for m, lib in [(ours, nn), (theirs, torch.nn)]:
        setattr(m, "0", lib.Linear(2, 3, bias=False))
        m[2].weight = lib.Parameter(m[2].weight.detach() * 2)
        m[2].extra = lib.Identity()
        setattr(m, "1", lib.Tanh())
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0.weight", "2.weight", "2.bias"]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours[2].named_parameters()] == ["weight", "bias"]
    ours[2].extra = 5  # a plain value replaces a submodule, as torch's
    assert ours[2].extra == 5 and "extra" not in dict(ours[2].named_children())
