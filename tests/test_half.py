"""float16 on every device: half storage read and written by every op family (the fused kernels
compute in float32), model.half(), autocast + GradScaler, and half checkpoints."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
import minitorch_cl.nn.functional as F

HALF = dict(rtol=2e-2, atol=2e-2)  # float16's 11-bit mantissa, through a chain of ops


def _both(dev, rng, *shapes):
    """float32 tensors and their float16 copies."""
    xs = [mt.tensor(rng.standard_normal(s).astype(np.float32), device=dev) for s in shapes]
    return xs, [x.half() for x in xs]


def _close(half_out, float_out, **tol):
    assert half_out.dtype is mt.float16, half_out.dtype
    np.testing.assert_allclose(half_out.detach().float().numpy(), float_out.detach().numpy(), **(tol or HALF))


FAMILIES = {
    "elementwise": lambda a, b: (a * b + a.exp() - b.tanh()).sigmoid(),
    "where": lambda a, b: mt.where(a > b, a, b * 2),
    "reduce": lambda a, b: (a.sum(1) + a.mean(0).sum() + a.max(1).values + b.amin(1)),
    "index": lambda a, b: a[mt.tensor([2, 0, 1], device=a.device)] + b[1:4],
    "views": lambda a, b: a.T.contiguous()[::2] + b.T[::2],
    "matmul": lambda a, b: a @ b.T,
    "linear": lambda a, b: F.linear(a, b, b[0]),
    "softmax": lambda a, b: F.softmax(a, 1) + F.log_softmax(b, 0),
    "layer_norm": lambda a, b: F.layer_norm(a, (a.shape[1],), b[0], b[1]),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_op_families_read_and_write_half(dev, rng, family):
    (a, b), (ah, bh) = _both(dev, rng, (7, 9), (7, 9))
    fn = FAMILIES[family]
    _close(fn(ah, bh), fn(a.half().float(), b.half().float()))


def test_half_gradients_flow(dev, rng):
    (a,), (ah,) = _both(dev, rng, (5, 6))
    ah.requires_grad_()
    a32 = ah.detach().float().requires_grad_()
    (ah.exp() * 3).sum().backward()
    (a32.exp() * 3).sum().backward()
    assert ah.grad.dtype is mt.float16
    np.testing.assert_allclose(ah.grad.float().numpy(), a32.grad.numpy(), **HALF)


def test_conv_pool_batchnorm_attention_rnn_take_half(dev, rng):
    (x,), (xh,) = _both(dev, rng, (2, 3, 9, 9))
    conv = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AvgPool2d(2)).to(dev)
    ref = conv(xh.float())
    _close(conv.half()(xh), ref)
    (q, k, v), (qh, kh, vh) = _both(dev, rng, (2, 3, 7, 16), (2, 3, 5, 16), (2, 3, 5, 16))
    _close(F.scaled_dot_product_attention(qh, kh, vh), F.scaled_dot_product_attention(qh.float(), kh.float(), vh.float()))
    (s,), (sh,) = _both(dev, rng, (6, 2, 8))
    for rnn in (nn.LSTM(8, 12), nn.GRU(8, 12)):
        rnn = rnn.to(dev)
        ref = rnn(sh.float())[0]
        _close(rnn.half()(sh)[0], ref)


def test_running_statistics_of_a_half_batchnorm_update(dev, rng):
    bn = nn.BatchNorm1d(4).to(dev).half()
    before = bn.running_mean.float().numpy().copy()
    bn(mt.tensor(rng.standard_normal((8, 4)) + 3.0, device=dev).half())
    assert bn.running_mean.dtype is mt.float16
    assert np.all(bn.running_mean.float().numpy() > before + 0.1)


class _ConvNet(nn.Module):
    def __init__(self, size=32):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * (size // 4) ** 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(mt.flatten(x, 1))


def test_model_half_forward_matches_float32(dev, rng):
    mt.manual_seed(0)
    cnn = _ConvNet().to(dev).eval()
    x = mt.tensor(rng.standard_normal((3, 3, 32, 32)).astype(np.float32), device=dev)
    ref = cnn(x)
    _close(cnn.half()(x.half()), ref, rtol=5e-2, atol=5e-2)
    lstm = nn.LSTM(10, 16, num_layers=2).to(dev)
    s = mt.tensor(rng.standard_normal((7, 2, 10)).astype(np.float32), device=dev)
    ref = lstm(s)[0]
    _close(lstm.half()(s.half())[0], ref)
    tr = nn.Transformer(32, 4, 2, 2, 64, dropout=0.0).to(dev).eval()
    src, tgt = (mt.tensor(rng.standard_normal(shape).astype(np.float32), device=dev) for shape in ((9, 2, 32), (5, 2, 32)))
    ref = tr(src, tgt)
    _close(tr.half()(src.half(), tgt.half()), ref, rtol=5e-2, atol=5e-2)


def test_half_model_trains_with_sgd(dev, rng):
    lin = nn.Linear(4, 1).to(dev).half()
    opt = mt.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    x = mt.tensor(rng.standard_normal((32, 4)), dtype=mt.float16, device=dev)
    y = x.float() @ mt.tensor([[1.0], [-2.0], [0.5], [3.0]], device=dev)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.mse_loss(lin(x).float(), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert lin.weight.dtype is mt.float16 and losses[-1] < 0.05 * losses[0]


def test_autocast_lists(dev, rng):
    x = mt.tensor(rng.standard_normal((4, 6)).astype(np.float32), device=dev)
    lin = nn.Linear(6, 3).to(dev)
    with mt.autocast(device_type=dev.type, dtype=mt.float16):
        y = lin(x)
        assert y.dtype is mt.float16                       # matmul-like: float16
        assert F.softmax(y, 1).dtype is mt.float32         # softmax: float32
        assert F.cross_entropy(y, mt.tensor([0, 1, 2, 0], device=dev)).dtype is mt.float32
    assert lin(x).dtype is mt.float32
    with pytest.raises(ValueError, match="device_type"):
        mt.autocast(device_type="tpu")


def test_grad_scaler_skips_steps_with_inf_and_backs_off(dev):
    p = nn.Parameter(mt.ones(3, device=dev))
    opt = mt.optim.SGD([p], lr=1.0)
    scaler = mt.amp.GradScaler(init_scale=1024.0, growth_interval=2)
    scaler.scale((p * 2).sum()).backward()
    np.testing.assert_allclose(p.grad.numpy(), [2048.0] * 3)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(p.detach().numpy(), [-1.0] * 3)  # unscaled gradient 2
    p.grad = mt.tensor([1.0, float("inf"), 1.0], device=dev)
    scaler.step(opt)  # skipped
    scaler.update()
    np.testing.assert_allclose(p.detach().numpy(), [-1.0] * 3)
    assert scaler.get_scale() == 512.0
    for _ in range(2):
        opt.zero_grad()
        scaler.scale(p.sum()).backward()
        scaler.step(opt)
        scaler.update()
    assert scaler.get_scale() == 1024.0  # grown after growth_interval clean steps


def _digits(dev):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = np.repeat(np.repeat(d.images / 16.0, 2, axis=1), 2, axis=2)[:, None].repeat(3, axis=1).astype(np.float32)
    return x[:1400], d.target[:1400], x[1400:], d.target[1400:]


def _train_digits(dev, amp, epochs=6):
    xtr, ytr, xte, yte = _digits(dev)  # 16x16
    mt.manual_seed(0)
    net = _ConvNet(size=16).to(dev)
    opt = mt.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    scaler = mt.amp.GradScaler(enabled=amp)
    order = np.random.default_rng(0)
    for _ in range(epochs):
        perm = order.permutation(len(xtr))
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            x, y = mt.tensor(xtr[idx], device=dev), mt.tensor(ytr[idx], device=dev)
            opt.zero_grad()
            with mt.autocast(device_type=dev.type, enabled=amp):
                loss = F.cross_entropy(net(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    with mt.no_grad():
        pred = net(mt.tensor(xte, device=dev)).argmax(1).numpy()
    return float((pred == yte).mean())


def test_autocast_and_grad_scaler_train_digits_to_float32_accuracy(dev):
    fp32 = _train_digits(dev, amp=False)
    mixed = _train_digits(dev, amp=True)
    assert fp32 > 0.93 and mixed >= fp32 - 0.02, (fp32, mixed)


def test_half_checkpoint_round_trip(dev, tmp_path, rng):
    model = _ConvNet().to(dev).half()
    for path in (tmp_path / "m.mtcl", tmp_path / "m.safetensors"):
        mt.save(model.state_dict(), path)
        loaded = mt.load(path, map_location=dev)
        for k, v in model.state_dict().items():
            assert loaded[k].dtype is mt.float16, (path, k)
            np.testing.assert_array_equal(np.asarray(loaded[k].numpy()), v.detach().numpy())


def test_grad_scaler_state_dict_round_trip_and_disabled_as_torch():
    """A disabled scaler's state is {} and loading anything into it does nothing; an enabled one refuses {}."""
    torch = pytest.importorskip("torch")
    ours = mt.amp.GradScaler(init_scale=8.0, growth_interval=3)
    ours._growth_tracker = 2
    again = mt.amp.GradScaler()
    again.load_state_dict(ours.state_dict())
    assert again.get_scale() == 8.0 and again.state_dict() == ours.state_dict()
    off, torch_off = mt.amp.GradScaler(enabled=False), torch.amp.GradScaler("cpu", enabled=False)
    assert off.state_dict() == torch_off.state_dict() == {}
    off.load_state_dict({})
    torch_off.load_state_dict({})
    off.load_state_dict(ours.state_dict())
    assert off.get_scale() == 1.0 and not off.is_enabled()
    with pytest.raises(RuntimeError, match="saved from a disabled instance of GradScaler"):
        mt.amp.GradScaler().load_state_dict({})
    with pytest.raises(RuntimeError, match="saved from a disabled instance of GradScaler"):
        torch.amp.GradScaler("cpu").load_state_dict({})
