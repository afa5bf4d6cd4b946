"""torchvision's networks here and in PyTorch CPU with the same weights, in the same run: eval-mode
forward and training-step images/s, their time ratios, the geometric mean of the ratios over the models
(the peer OpenCL backend's headline methodology) and the peak memory of a training step.

One program times both frameworks: the framework is a parameter (`import minitorch_cl as torch`)."""
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
from typing import Callable, NamedTuple, Optional

import minitorch_cl as mt
from minitorch_cl.cuda import max_memory_allocated, reset_peak_memory_stats
from minitorch_cl.vision import models as zoo

from . import _fmt, paired_times, torch_or_none
from ._torchvision import copy_weights, import_torchvision

ZOO = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
       "vgg11_bn", "alexnet", "squeezenet1_1", "vit_b_16")
DEFAULT = ZOO + ("cifar_resnet18",)
EVAL_BATCH, TRAIN_BATCH = 16, 8
QUICK_BATCH = 2
CLASSES = 10  # labels drawn from range(10): valid for the 1000-class heads and the CIFAR ones
PAUSE = 1.0  # idle seconds before each framework's timings: PyTorch's idle threads spin a while
THREADS_ENV = "MINITORCH_CL_TORCH_THREADS"  # PyTorch's intra-op threads; default: the core count

NOTE = ("Eval: model.eval() forward under no_grad at batch 16; train: forward, CrossEntropyLoss, backward, "
        "SGD(lr=0.01, momentum=0.9) step at batch 8 (both at batch 2 with --quick); random inputs at 224x224 "
        "(32x32 for cifar_resnet18 = resnet18 with a 3x3 stride-1 stem and no max-pool, 10 classes). Both "
        "frameworks run the same code on the same weights (torchvision's init, copied into ours). PyTorch CPU "
        f"uses torch.set_num_threads(os.cpu_count(), or ${THREADS_ENV}: on a machine loaded by other work, "
        "OpenMP's pool at the core count can run several times slower than one thread). Medians of 5 timed "
        "repeats after 2 warm-ups (2 after 1 with --quick), ours and PyTorch's alternating call by call; "
        "'ratio' = our time / PyTorch's (below 1: we are faster); 'geomean' = the geometric mean of the ratios over the models timed in both. Peak memory of "
        "one training step after warm-up: ours = the device pool's high-water mark of bytes in live tensors "
        "(cuda.max_memory_allocated after reset_peak_memory_stats: weights, gradients, momentum, inputs and "
        "activations); PyTorch's = in a fresh process per model, the peak resident set (VmHWM, reset after "
        "warm-up by writing 5 to /proc/self/clear_refs; else the process's ru_maxrss) minus the resident set "
        "before the model was built, so the same things count, plus what the C allocator and thread pools keep.")


class Model(NamedTuple):
    build: Callable  # build(models, nn) -> the network, for either framework's (models, nn)
    size: int  # input height and width
    needs: Optional[str]  # the builder that minitorch_cl.vision.models must have, None: none


def _zoo_model(name):
    return Model(lambda models, nn: getattr(models, name)(), 224, name)


def _cifar_resnet18(models, nn):
    """resnet18 for 32x32 images, as examples/cifar_resnet.py builds it."""
    m = models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def _tiny(models, nn):
    """A three-layer net for smoke runs (`--models tiny`); not in the default list."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, CLASSES))


MODELS = {name: _zoo_model(name) for name in ZOO}
MODELS["cifar_resnet18"] = Model(_cifar_resnet18, 32, "resnet18")
MODELS["tiny"] = Model(_tiny, 32, None)


def _phases(fw, model, device, size, eval_batch, train_batch):
    """{"eval": fn, "train": fn}: the same code for PyTorch (fw=torch) and for us (fw=minitorch_cl)."""
    x_eval = fw.randn(eval_batch, 3, size, size, device=device)
    x = fw.randn(train_batch, 3, size, size, device=device)
    y = fw.randint(0, CLASSES, (train_batch,), device=device)
    criterion = fw.nn.CrossEntropyLoss()
    opt = fw.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def evaluate():
        model.eval()
        with fw.no_grad():
            model(x_eval)

    def train():
        model.train()
        opt.zero_grad()
        criterion(model(x), y).backward()
        opt.step()

    return {"eval": evaluate, "train": train}


def _torch_model(torch, name):
    """PyTorch's network `name` (torchvision's builders, imported only for a model that needs them)."""
    torch.manual_seed(0)
    return MODELS[name].build(import_torchvision().models if MODELS[name].needs else None, torch.nn)


def _missing(name):
    """Why `name` cannot run here, or None."""
    if name not in MODELS:
        return f"unknown model (choose from {', '.join(list(MODELS))})"
    needs = MODELS[name].needs
    if needs is not None and not hasattr(zoo, needs):
        return f"minitorch_cl.vision.models has no {needs} yet"
    return None


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds the package


def _torch_peak(name, batches, threads):
    """PyTorch's peak memory of one training step of `name`, in bytes, measured in a fresh process."""
    cmd = [sys.executable, "-m", "minitorch_cl.bench.models", name, str(batches[0]), str(batches[1]), str(threads)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak"]


def _kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _peak_worker(name, eval_batch, train_batch, threads):
    """In a fresh process: print {"peak": bytes} for one PyTorch training step after one warm-up."""
    torch = torch_or_none()
    torch.set_num_threads(threads)
    try:
        before = _kib("VmRSS")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = _torch_model(torch, name)
    train = _phases(torch, model, "cpu", MODELS[name].size, eval_batch, train_batch)["train"]
    train()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS now
        train()
        peak = _kib("VmHWM")
    except OSError:  # no /proc: the process's peak, warm-up included (the same step)
        train()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak": (peak - before) * 1024}))


def _ours(dev, name, theirs, batches):
    """The phases of our model, with the weights of `theirs` (PyTorch's) where given."""
    mt.manual_seed(0)
    model = MODELS[name].build(zoo, mt.nn)
    if theirs is not None:
        copy_weights(theirs, model)
    model.to(dev)
    return _phases(mt, model, dev, MODELS[name].size, *batches)


def _time(dev, ours, theirs, repeats, warmup):
    """{phase: (our s, their s or None, ratio or None)}, the two frameworks' calls alternating."""
    time.sleep(PAUSE)
    return {k: paired_times(fn, theirs.get(k), repeats, warmup, sync=dev.synchronize) for k, fn in ours.items()}


def _peak_bytes(dev, train):
    """Our peak bytes in tensors over one training step (after the timed ones)."""
    dev.synchronize()
    reset_peak_memory_stats(dev)
    train()
    dev.synchronize()
    return max_memory_allocated(dev)


def run(dev, quick=False, models=None, log=print):
    """One row per model that runs here, then the geometric means of the ratios."""
    repeats, warmup = (2, 1) if quick else (5, 2)
    batches = (QUICK_BATCH, QUICK_BATCH) if quick else (EVAL_BATCH, TRAIN_BATCH)
    torch = torch_or_none()
    threads = int(os.environ.get(THREADS_ENV) or os.cpu_count() or 1)
    if torch is not None:
        torch.set_num_threads(threads)
        log(f"PyTorch {torch.__version__} CPU: {threads} thread{'s' if threads != 1 else ''}")
    else:
        log("PyTorch is not installed: our columns only")
    rows = []
    for name in models or DEFAULT:
        why = _missing(name)
        if why:
            log(f"skipped {name}: {why}")
            continue
        start = time.perf_counter()
        theirs = None
        if torch is not None:
            try:
                theirs = _torch_model(torch, name)
            except ImportError:
                log(f"{name}: torchvision is not installed, our columns only")
        ours = ref = None
        try:
            ours = _ours(dev, name, theirs, batches)
            ref = _phases(torch, theirs, "cpu", MODELS[name].size, *batches) if theirs is not None else {}
            t = _time(dev, ours, ref, repeats, warmup)
            peak = _peak_bytes(dev, ours["train"])
        except Exception as err:  # one model's missing op must not hide the others' figures
            log(f"skipped {name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            continue
        finally:
            ours = ref = None
            gc.collect()
        size = MODELS[name].size
        (t_eval, ref_eval, eval_ratio), (t_train, ref_train, train_ratio) = t["eval"], t["train"]
        row = {"model": name, "input": f"{size}x{size}", "eval img/s": batches[0] / t_eval,
               "PyTorch eval img/s": None, "eval ratio": eval_ratio, "train img/s": batches[1] / t_train,
               "PyTorch train img/s": None, "train ratio": train_ratio, "peak MiB": peak / 2 ** 20,
               "PyTorch peak MiB": None}
        if theirs is not None:
            del theirs
            gc.collect()
            row.update({"PyTorch eval img/s": batches[0] / ref_eval, "PyTorch train img/s": batches[1] / ref_train})
            try:
                row["PyTorch peak MiB"] = _torch_peak(name, batches, threads) / 2 ** 20
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                log(f"{name}: PyTorch's peak memory not measured: {str(err).splitlines()[0]}")
        rows.append(row)
        # a full run takes a while: each model's figures as soon as they are known, so an interrupted
        # run still has them
        log(f"{name}: measured in {time.perf_counter() - start:.0f} s: "
            + ", ".join(f"{k} {_fmt(row[k])}" for k in ("eval ratio", "train ratio", "peak MiB", "PyTorch peak MiB")))
    pairs = [r for r in rows if r["eval ratio"] is not None]
    if pairs:
        rows.append({"model": f"geomean ({len(pairs)})", "eval ratio": _geomean(r["eval ratio"] for r in pairs),
                     "train ratio": _geomean(r["train ratio"] for r in pairs)})
    return rows


def _geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def profile_step(dev):
    """one resnet18 training step (forward, CrossEntropyLoss, backward, SGD momentum) at batch 8, 224x224"""
    if _missing("resnet18"):
        raise RuntimeError(f"bench models --profile profiles resnet18: {_missing('resnet18')}")
    mt.manual_seed(0)
    model = zoo.resnet18().to(dev)
    return _phases(mt, model, dev, 224, 1, TRAIN_BATCH)["train"]


if __name__ == "__main__":
    _peak_worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
