"""optim.lr_scheduler against torch.optim.lr_scheduler: the same lr (and momentum) sequences."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import optim
from minitorch_cl.optim import lr_scheduler

torch = pytest.importorskip("torch")


def _pair(opt_name="SGD", groups=(0.1, 0.02), **kw):
    """The same optimizer here and in torch, with one param group per lr."""
    ours = getattr(optim, opt_name)([{"params": [mt.nn.Parameter(mt.zeros(2))], "lr": lr} for lr in groups], **kw)
    theirs = getattr(torch.optim, opt_name)([{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr}
                                             for lr in groups], **kw)
    return ours, theirs


def _sequence(opt, sched, steps, metrics=None):
    key = "betas" if "betas" in opt.defaults else "momentum"
    seq = [(list(sched.get_last_lr()), [g.get(key) for g in opt.param_groups])]
    for i in range(steps):
        opt.step()
        sched.step(*([metrics[i]] if metrics is not None else []))
        seq.append((list(sched.get_last_lr()), [g.get(key) for g in opt.param_groups]))
    return seq


def _compare(make, steps=12, opt_name="SGD", metrics=None, **opt_kw):
    ours, theirs = _pair(opt_name, **opt_kw)
    a = _sequence(ours, make(lr_scheduler, ours), steps, metrics)
    b = _sequence(theirs, make(torch.optim.lr_scheduler, theirs), steps, metrics)
    for (lr_a, m_a), (lr_b, m_b) in zip(a, b):
        np.testing.assert_allclose(lr_a, lr_b, rtol=1e-12, atol=0)
        if m_b[0] is not None:
            np.testing.assert_allclose(np.asarray(m_a, float), np.asarray(m_b, float), rtol=1e-12)
    return a


CASES = {
    "step": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "exponential": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=5, eta_min=0.001),  # 12 steps: down, up, down
    "lambda": lambda m, o: m.LambdaLR(o, lr_lambda=[lambda e: 0.95 ** e, lambda e: 1 / (e + 1)]),
    "linear": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4),
    "sequential": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=3),
                                                  m.CosineAnnealingLR(o, T_max=6)], milestones=[3]),
    "multiplicative": lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.9 if e % 2 else 1.05),
    "constant": lambda m, o: m.ConstantLR(o, factor=0.4, total_iters=3),
    "polynomial": lambda m, o: m.PolynomialLR(o, total_iters=8, power=2.0),
    "warm_restarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001),
    "chained": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=4),
                                                m.ExponentialLR(o, gamma=0.9)]),
    "onecycle_cos": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=12),
    "onecycle_linear_3phase": lambda m, o: m.OneCycleLR(o, max_lr=0.3, epochs=3, steps_per_epoch=4,
                                                        pct_start=0.25, anneal_strategy="linear", three_phase=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sequences_match_torch(name):
    kw = dict(momentum=0.9) if name.startswith("onecycle") else {}
    seq = _compare(CASES[name], **kw)
    assert len({tuple(lrs) for lrs, _ in seq}) >= 2  # the schedule actually moves


def test_onecycle_cycles_adam_beta1():
    seq = _compare(CASES["onecycle_cos"], opt_name="Adam")
    beta1 = [m[0][0] for _, m in seq]
    assert beta1[0] == pytest.approx(0.95) and min(beta1) == pytest.approx(0.85, abs=0.01)


def test_reduce_on_plateau_matches_torch():
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]
    _compare(lambda m, o: m.ReduceLROnPlateau(o, factor=0.5, patience=1, cooldown=1, min_lr=[0.01, 0.015]),
             metrics=metrics)
    _compare(lambda m, o: m.ReduceLROnPlateau(o, mode="max", threshold_mode="abs", threshold=0.1, patience=0),
             metrics=metrics)


@pytest.mark.parametrize("name", ["step", "cosine", "sequential", "onecycle_cos", "warm_restarts", "chained"])
def test_state_dict_resume(name):
    """Stop after 5 steps, load the scheduler state into a fresh one, and continue: same lrs."""
    kw = dict(momentum=0.9) if name.startswith("onecycle") else {}
    straight = _compare(CASES[name], **kw)
    opt, _ = _pair(**kw)
    sched = CASES[name](lr_scheduler, opt)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state and state.get("last_epoch", 5) == 5  # ChainedScheduler has none, as torch
    opt2, _ = _pair(**kw)
    opt2.load_state_dict(opt.state_dict())
    sched2 = CASES[name](lr_scheduler, opt2)
    sched2.load_state_dict(state)
    for g, lr in zip(opt2.param_groups, sched.get_last_lr()):
        g["lr"] = lr
    rest = _sequence(opt2, sched2, 7)
    for (a, _), (b, _) in zip(rest, straight[5:]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_errors():
    opt, _ = _pair()
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, step_size=2, last_epoch=3)
    with pytest.raises(ValueError, match="total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        sched.step()
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR(object(), 3)
