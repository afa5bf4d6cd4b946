"""SGD / Adam / AdamW against NumPy float64 versions of torch.optim's update formulas."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import optim
from helpers import check, compare


def np_sgd(p, grads, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
    p, buf = p.copy(), None
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def np_adam(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, decoupled=False):
    p = p.copy()
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    b1, b2 = betas
    for t, g in enumerate(grads, 1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        denom = np.sqrt(vmax if amsgrad else v) / np.sqrt(1 - b2 ** t) + eps
        p = p - lr / (1 - b1 ** t) * m / denom
    return p


def np_reference(cls, p, grads, kw):
    if cls is optim.SGD:
        return np_sgd(p, grads, **kw)
    decoupled = cls is optim.AdamW
    if decoupled:
        kw = dict(kw, weight_decay=kw.get("weight_decay", 1e-2))
    return np_adam(p, grads, decoupled=decoupled, **kw)


def _run(dev, opt_cls, p0, grads, **kw):
    """p0 (an array or a tensor) as a Parameter, stepped once per gradient."""
    p = mt.nn.Parameter(mt.tensor(p0, dtype=mt.float32, device=dev))
    opt = opt_cls([p], **kw)
    for g in grads:
        opt.zero_grad()
        p.grad = mt.tensor(g, dtype=mt.float32, device=dev)
        opt.step()
    return p.detach().numpy(), opt, p


def _data(rng, shape=(33, 7), steps=5):
    p0 = rng.standard_normal(shape).astype(np.float32).astype(np.float64)
    grads = [rng.standard_normal(shape).astype(np.float32).astype(np.float64) for _ in range(steps)]
    return p0, grads


def check_optimizer(dev, cls, p0, grads, kw, torch_cls=None):
    """cls's updates against NumPy's (and torch_cls's, float64) from the same p0 and gradients."""
    torch_fn = None
    if torch_cls is not None:
        def torch_fn(p):
            import torch
            tp = torch.nn.Parameter(p.clone())
            opt = torch_cls([tp], **kw)
            for g in grads:
                tp.grad = torch.tensor(g)
                opt.step()
            return tp.detach()
    check(dev, lambda p: _run(dev, cls, p, grads, **kw)[0], lambda p: np_reference(cls, p, grads, kw), p0,
          grad=False, torch_fn=torch_fn, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.1),
])
def test_sgd(dev, rng, kw):
    check_optimizer(dev, optim.SGD, *_data(rng), kw)


@pytest.mark.parametrize("cls,kw", [
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.03, weight_decay=0.2, eps=1e-6, amsgrad=True)),
])
def test_adam(dev, rng, cls, kw):
    check_optimizer(dev, cls, *_data(rng, (65,), steps=6), kw)


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                    (optim.SGD, dict(lr=0.05)),  # (float16 without momentum: p stood still)
                                    (optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
                                    (optim.AdamW, dict(lr=0.01))])
def test_many_parameters_step_eight_to_a_launch(dev, rng, cls, kw):
    """Twelve parameters of assorted sizes: ten small float32 ones in two launches (the second with
    unused slots), the float16 one and one past SLOT_MAX alone; one gets no gradient in the first two
    steps (its own step count, its own first momentum step). Each ends where its own NumPy reference
    does."""
    from minitorch_cl import launch
    from minitorch_cl.optim.optimizer import SLOT_MAX
    sizes, steps, late, half = [1, 7, 8, 9, 33, 64, 100, 3, 5, 16, 17, SLOT_MAX + 9], 4, 4, 6
    p0s = [rng.standard_normal(n).astype(np.float32).astype(np.float64) for n in sizes]
    grads = [[rng.standard_normal(n).astype(np.float16).astype(np.float64) for _ in range(steps)] for n in sizes]
    params = [mt.nn.Parameter(mt.tensor(p, dtype=mt.float16 if i == half else mt.float32, device=dev))
              for i, p in enumerate(p0s)]
    opt = cls(params, **kw)
    names = []
    launch.observers.append(lambda d, key, e, grid, local, work: names.append(key[1]))
    try:
        for t in range(steps):
            opt.zero_grad()
            for i, p in enumerate(params):
                if not (i == late and t < 2):
                    p.grad = mt.tensor(grads[i][t], dtype=p.dtype, device=dev)
            names.clear()
            opt.step()
            assert names.count("sgd_step8" if cls is optim.SGD else "adam_step8") == 2
    finally:
        launch.observers.pop()
    for i, p in enumerate(params):
        want = np_reference(cls, p0s[i] if i != half else p0s[i].astype(np.float16).astype(np.float64),
                            grads[i][2:] if i == late else grads[i], kw)
        tol = 2e-3 if i == half else 1e-5  # (float16 storage of the parameter and its state)
        compare(p.detach().float(), want, rtol=tol, atol=tol, what=f"parameter {i} of size {sizes[i]}")


def test_skips_params_without_grad_and_param_groups(dev, rng):
    a = mt.nn.Parameter(mt.ones(3, device=dev))
    b = mt.nn.Parameter(mt.ones(3, device=dev))
    c = mt.nn.Parameter(mt.ones(3, device=dev))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = mt.ones(3, device=dev)
    b.grad = mt.ones(3, device=dev)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), 0.9)
    np.testing.assert_allclose(b.detach().numpy(), 0.5)
    opt.add_param_group({"params": c, "lr": 0.2})
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    opt.step()  # nothing has a gradient: nothing moves
    np.testing.assert_allclose(c.detach().numpy(), 1.0)
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.05, momentum=0.9)), (optim.AdamW, dict(lr=0.01))])
def test_state_dict_round_trip(dev, rng, cls, kw):
    """Stopping after 3 steps, restoring into a fresh optimizer and doing 3 more equals 6 in a row."""
    p0, grads = _data(rng, steps=6)
    straight, _, _ = _run(dev, cls, p0, grads, **kw)
    half, opt, _ = _run(dev, cls, p0, grads[:3], **kw)
    state = opt.state_dict()
    assert sorted(state) == ["param_groups", "state"] and state["param_groups"][0]["params"] == [0]
    p = mt.nn.Parameter(mt.tensor(half, device=dev))
    opt2 = cls([p], lr=123.0)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    for g in grads[3:]:
        p.grad = mt.tensor(g, dtype=mt.float32, device=dev)
        opt2.step()
    compare(p, straight, rtol=1e-6, atol=1e-7)


def test_against_torch(dev, rng):
    torch = pytest.importorskip("torch")
    p0, grads = _data(rng, steps=4)
    for cls, tcls, kw in [(optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                          (optim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
                          (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, amsgrad=True))]:
        check_optimizer(dev, cls, p0, grads, kw, torch_cls=tcls)


def test_errors(dev):
    p = mt.nn.Parameter(mt.ones(2, device=dev))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="int64"):
        optim.Adam([mt.ones(2, dtype=mt.int64, device=dev)])
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


@pytest.mark.parametrize("name,kw", [
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.005, momentum=0.9)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.05)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
])
def test_rmsprop_adagrad_against_torch(dev, rng, name, kw):
    torch = pytest.importorskip("torch")
    p0, grads = _data(rng, (65, 3), steps=6)
    got, opt, _ = _run(dev, getattr(optim, name), p0, grads, **kw)
    tp = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float32))
    topt = getattr(torch.optim, name)([tp], **kw)
    for g in grads:
        tp.grad = torch.tensor(g, dtype=torch.float32)
        topt.step()
    np.testing.assert_allclose(got, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    ours, theirs = opt.state_dict()["state"][0], topt.state_dict()["state"][0]
    assert sorted(ours) == sorted(theirs)  # same state layout: step, square_avg, momentum_buffer, grad_avg / sum
    for k, v in theirs.items():
        np.testing.assert_allclose(np.asarray(ours[k].numpy() if k != "step" else ours[k]), v.numpy(),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kw", [("RMSprop", dict(lr=0.01)), ("RMSprop", dict(lr=0.005, momentum=0.9)),
                                     ("Adagrad", dict(lr=0.1))])
def test_float16_parameters_move_as_float32_ones(dev, rng, name, kw):
    """A float16 parameter steps through float32 copies of it and its state; the kernels' unused
    buffer arguments are the parameter itself, which once made a second copy whose write-back undid
    the update (RMSprop without momentum left the parameter where it was)."""
    p0, grads = _data(rng, (65,), steps=3)
    p0, grads = p0.astype(np.float16), [g.astype(np.float16) for g in grads]
    want, _, _ = _run(dev, getattr(optim, name), p0.astype(np.float64), grads, **kw)
    p = mt.nn.Parameter(mt.tensor(p0, device=dev))
    opt = getattr(optim, name)([p], **kw)
    for g in grads:
        p.grad = mt.tensor(g, device=dev)
        opt.step()
    assert p.dtype is mt.float16
    compare(p.detach().float(), want, rtol=3e-3, atol=3e-3)  # (float16 storage of p and its state)


def test_rmsprop_state_dict_resume(dev, rng):
    kw = dict(lr=0.01, momentum=0.9, centered=True)
    p0, grads = _data(rng, steps=6)
    straight, _, _ = _run(dev, optim.RMSprop, p0, grads, **kw)
    half, opt, _ = _run(dev, optim.RMSprop, p0, grads[:3], **kw)
    p = mt.nn.Parameter(mt.tensor(half, device=dev))
    opt2 = optim.RMSprop([p], lr=1.0)
    opt2.load_state_dict(opt.state_dict())
    for g in grads[3:]:
        p.grad = mt.tensor(g, dtype=mt.float32, device=dev)
        opt2.step()
    np.testing.assert_allclose(p.detach().numpy(), straight, rtol=1e-6, atol=1e-7)
