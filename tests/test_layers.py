"""Containers (ModuleList, ModuleDict, ParameterList), Identity, Unflatten, channel-wise dropout and the
Module utilities (apply, named_modules, buffers, register_buffer, requires_grad_, zero_grad)."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(3, 4), nn.BatchNorm1d(4)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Identity()})
        self.scales = nn.ParameterList([nn.Parameter(mt.ones(2)), mt.zeros(3)])
        self.register_buffer("step", mt.zeros(1))
        self.register_buffer("cache", mt.zeros(2), persistent=False)

    def forward(self, x):
        for m in self.blocks:
            x = m(x)
        return self.heads["b"](self.heads["a"](x)) * self.scales[0]


def test_names_match_torch(dev):
    torch = pytest.importorskip("torch")

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)])
            self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 2), "b": torch.nn.Identity()})
            self.scales = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2)), torch.zeros(3)])
            self.register_buffer("step", torch.zeros(1))
            self.register_buffer("cache", torch.zeros(2), persistent=False)

    ref, net = TorchNet(), Net().to(dev)
    assert list(net.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in ref.named_modules()]
    assert [n for n, _ in net.named_children()] == [n for n, _ in ref.named_children()]
    net.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(net(mt.tensor(x, device=dev)).detach().numpy(), _torch_forward(ref, x),
                               rtol=1e-5, atol=1e-5)


def _torch_forward(ref, x):
    import torch
    h = torch.tensor(x)
    for m in ref.blocks:
        h = m(h)
    return (ref.heads["b"](ref.heads["a"](h)) * ref.scales[0]).detach().numpy()


def test_containers(dev):
    ml = nn.ModuleList([nn.Identity(), nn.ReLU()])
    ml.insert(1, nn.Tanh())
    ml[0] = nn.Sigmoid()
    assert [type(m).__name__ for m in ml] == ["Sigmoid", "Tanh", "ReLU"]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2"]
    assert len(ml[1:]) == 2
    md = nn.ModuleDict({"x": nn.ReLU()})
    md.update({"y": nn.Tanh()})
    assert "y" in md and list(md) == ["x", "y"]
    assert isinstance(md.pop("x"), nn.ReLU) and list(md.keys()) == ["y"]
    pl = nn.ParameterList([mt.ones(2, device=dev)])
    pl.append(mt.zeros(3, device=dev))
    assert len(pl) == 2 and all(isinstance(p, nn.Parameter) and p.requires_grad for p in pl)
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]
    x = mt.ones(2, device=dev, requires_grad=True)
    assert nn.Identity(54, unused="x")(x) is x


def test_unflatten(dev, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 12, 5)).astype(np.float32)
    for dim, sizes in ((1, (3, 4)), (-1, (5, 1)), (1, (2, -1))):
        got = nn.Unflatten(dim, sizes)(mt.tensor(x, device=dev)).numpy()
        want = torch.nn.Unflatten(dim, sizes)(torch.tensor(x)).numpy()
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cls,shape,spatial", [
    (nn.Dropout2d, (8, 64, 3, 5), 2), (nn.Dropout1d, (8, 64, 7), 1), (nn.Dropout1d, (64, 7), 1),
    (nn.Dropout3d, (4, 32, 2, 3, 2), 3), (nn.Dropout3d, (32, 2, 3, 2), 3),
    (nn.Dropout2d, (8, 64, 7), 1),  # torch 2 reads a 3-D input to Dropout2d as (N, C, L)
])
@pytest.mark.filterwarnings("ignore:dropout2d")  # the eval-mode call warns again
def test_channel_dropout(dev, rng, cls, shape, spatial):
    mt.manual_seed(0)
    p = 0.4
    drop = cls(p).to(dev)
    x = rng.uniform(0.5, 1.5, shape)
    xt = mt.tensor(x, device=dev, requires_grad=True)
    if cls is nn.Dropout2d and len(shape) == 3:
        with pytest.warns(UserWarning, match="N, C, L"):
            y = drop(xt)
    else:
        y = drop(xt)
    g = rng.standard_normal(shape)
    (y * mt.tensor(g, device=dev)).sum().backward()
    lead = shape[:len(shape) - spatial]
    ratio = (y.detach().numpy() / x).reshape(lead + (-1,))
    kept = ratio[..., 0] != 0
    # every channel is dropped or kept whole, kept ones scaled by 1/(1-p)
    np.testing.assert_allclose(ratio, np.where(kept, 1 / (1 - p), 0.0)[..., None] * np.ones_like(ratio),
                               rtol=1e-5)
    assert abs(1 - kept.mean() - p) < 0.1, kept.mean()
    np.testing.assert_allclose(xt.grad.numpy(), g * (y.detach().numpy() / x), rtol=1e-5, atol=1e-6)
    drop.eval()
    assert drop(xt) is xt
    with pytest.raises(ValueError, match="-D"):
        cls(p).to(dev)(mt.zeros(*((2,) * 6), device=dev))


def test_module_utilities(dev):
    net = Net().to(dev)
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.index("Linear") < seen.index("ModuleList")  # children first
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]  # a shared module once, as torch
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in net.named_buffers()] == ["step", "cache", "blocks.1.running_mean",
                                                   "blocks.1.running_var", "blocks.1.num_batches_tracked"]
    assert len(list(net.buffers(recurse=False))) == 2
    assert "cache" not in net.state_dict() and "step" in net.state_dict()
    net.register_buffer("cache", net.cache, persistent=True)
    assert "cache" in net.state_dict()
    with pytest.raises(TypeError):
        net.register_buffer("bad", 3.0)
    with pytest.raises(KeyError):
        net.register_buffer("a.b", None)

    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    net(mt.ones(3, 3, device=dev)).sum().backward()
    assert all(p.grad is not None for p in list(net.parameters())[:-1])  # scales[1] is unused
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in list(net.parameters())[:-1])
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())

    net.to(dtype=mt.float32)
    assert net.blocks[1].num_batches_tracked.dtype is mt.int64  # only floating tensors are cast
