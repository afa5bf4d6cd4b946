"""One training step (forward, backward, SGD step) of the article's CIFAR-10 ConvNet at batch 64,
here and (when installed) in PyTorch on the CPU, timed in the same run."""
import numpy as np

from . import our_step_peak_mib, paired_times, torch_or_none, torch_step_peak_rss_mib

NOTE = ("ConvNet: Conv(3->32,k3,p1)-ReLU-MaxPool2-Conv(32->64,k3,p1)-ReLU-MaxPool2-Linear(4096->512)-ReLU-"
        "Linear(512->10), CrossEntropyLoss, SGD(lr=0.001, momentum=0.9); inputs (64, 3, 32, 32). "
        "Medians of timed repeats after warm-up, ours and PyTorch's alternating call by call; 'ratio' is "
        "this engine's time over PyTorch CPU's. "
        "'peak MiB' (train step only): ours is the device pool's high-water mark of bytes in tensors over "
        "one step above what was in use before it; PyTorch's is its peak resident-set growth over one "
        "step (VmHWM reset through /proc/self/clear_refs).")

BATCH = 64


def _mt_step(dev):
    import minitorch_cl as mt
    from .ddp import Net  # the article's ConvNet, one definition for both benches
    from minitorch_cl import nn
    from minitorch_cl.optim import SGD

    mt.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Net().to(dev)
    opt = SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    x = mt.tensor(rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32), device=dev)
    y = mt.tensor(rng.integers(0, 10, BATCH), device=dev)

    def forward():
        with mt.no_grad():
            model(x)

    def fwd_bwd():
        opt.zero_grad()
        criterion(model(x), y).backward()

    def step():
        fwd_bwd()
        opt.step()

    return {"forward": forward, "forward+backward": fwd_bwd, "train step": step}


def profile_step(dev):
    """one ConvNet training step (forward, backward, SGD) at batch 64"""
    return _mt_step(dev)["train step"]


def _torch_step(torch):
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                          nn.Linear(4096, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    x = torch.randn(BATCH, 3, 32, 32)
    y = torch.randint(0, 10, (BATCH,))

    def forward():
        with torch.no_grad():
            model(x)

    def fwd_bwd():
        opt.zero_grad()
        criterion(model(x), y).backward()

    def step():
        fwd_bwd()
        opt.step()

    return {"forward": forward, "forward+backward": fwd_bwd, "train step": step}


def run(dev, quick=False):
    repeats, warmup = (3, 2) if quick else (11, 3)
    ours = _mt_step(dev)
    torch = torch_or_none()
    theirs = _torch_step(torch) if torch is not None else {}
    rows = []
    for name, fn in ours.items():
        t, tt, ratio = paired_times(fn, theirs.get(name), repeats, warmup, sync=dev.synchronize)
        row = {"phase": name, "minitorch_cl ms": 1e3 * t, "img/s": BATCH / t}
        if tt is not None:
            row.update({"PyTorch CPU ms": 1e3 * tt, "PyTorch img/s": BATCH / tt, "ratio": ratio})
        rows.append(row)
    step = rows[-1]
    step["minitorch_cl peak MiB"] = our_step_peak_mib(dev, ours["train step"])
    if "train step" in theirs:
        step["PyTorch peak MiB"] = torch_step_peak_rss_mib(theirs["train step"])
    return rows
