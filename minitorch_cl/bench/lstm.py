"""nn.LSTM (or, for `bench gru`, nn.GRU) at the article's shape (sequence 100, batch 64, input 512,
hidden 256): forward and forward+backward, next to PyTorch CPU in the same run when it is installed."""
import numpy as np

from . import paired_times, torch_or_none

NOTE = ("forward runs under no_grad; forward+backward is out.sum().backward() with weight and input grads. "
        "Ours and PyTorch's alternate call by call; ms are medians, ratio = minitorch_cl time / PyTorch "
        "time (lower is better).")


def _model(dev, T, B, I, H):
    import minitorch_cl as mt
    mt.manual_seed(0)
    model = mt.nn.LSTM(I, H).to(dev)
    xg = mt.randn(T, B, I, device=dev, requires_grad=True)

    def train_step():
        model.zero_grad()
        out, _ = model(xg)
        out.sum().backward()
    return train_step


def profile_step(dev):
    """one LSTM forward+backward at (T 100, B 64, I 512, H 256)"""
    return _model(dev, 100, 64, 512, 256)


def _ours(dev, T, B, I, H, cls):
    import minitorch_cl as mt
    mt.manual_seed(0)
    model = getattr(mt.nn, cls)(I, H).to(dev)
    x = mt.randn(T, B, I, device=dev)
    xg = mt.randn(T, B, I, device=dev, requires_grad=True)

    def forward():
        with mt.no_grad():
            model(x)

    def train_step():
        model.zero_grad()
        out, _ = model(xg)
        out.sum().backward()

    return forward, train_step


def _torch(torch, T, B, I, H, cls):
    torch.manual_seed(0)
    model = getattr(torch.nn, cls)(I, H)
    x = torch.randn(T, B, I)
    xg = torch.randn(T, B, I, requires_grad=True)

    def forward():
        with torch.no_grad():
            model(x)

    def train_step():
        model.zero_grad()
        out, _ = model(xg)
        out.sum().backward()

    return forward, train_step


def run(dev, quick=False, cls="LSTM"):
    T, B, I, H = 100, 64, 512, 256
    repeats = 3 if quick else 7
    ours = _ours(dev, T, B, I, H, cls)
    torch = torch_or_none()
    theirs = _torch(torch, T, B, I, H, cls) if torch is not None else (None, None)
    rows = []
    for name, fn, ref in zip(("forward", "forward+backward"), ours, theirs):
        t_ours, t_torch, ratio = paired_times(fn, ref, repeats, warmup=2, sync=dev.synchronize)
        row = {"pass": name, "shape (T,B,I,H)": f"{T},{B},{I},{H}", "minitorch_cl ms": 1e3 * t_ours,
               "tokens/s": T * B / t_ours}
        if t_torch is not None:
            row.update({"pytorch cpu ms": 1e3 * t_torch, "pytorch tokens/s": T * B / t_torch, "ratio": ratio})
        rows.append(row)
    return rows
