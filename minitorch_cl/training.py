"""What the example scripts share: their common options, checkpoints that resume a run exactly,
per-epoch metrics as CSV beside the checkpoint (and as a plot), and progress that suits a terminal
or a log file. The options follow PyTorch's scripts: `--epochs` is the total, `--resume PATH`."""
import csv
import os
import sys
import tempfile
import time

import click
import numpy as np
from click.core import ParameterSource

from .autocast_state import autocast
from .device import DeviceError, device as resolve_device
from .grad_mode import no_grad
from .random import _Seed  # manual_seed's state: saved so that a resumed run draws what it would have
from .serialization import load, save

__all__ = ["options", "open_device", "Run", "Progress", "plot_metrics", "plural", "train_epoch", "evaluate"]


def plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def options(epochs):
    """The options every example takes: --device, --epochs (the total), --checkpoint, --resume, --seed, --plot."""
    epochs_help = "Total epochs; a resumed run trains up to this many."
    decorators = [
        click.option("--device", default=None, help="OpenCL device: cl:N, cl:P:D, gpu, cpu or a name fragment."),
        click.option("--epochs", type=int, default=epochs, show_default=epochs is not None, help=epochs_help),
        click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                     help="Save the run here after every epoch (default with --resume: the resumed file); "
                          "the metrics go beside it as .csv."),
        click.option("--resume", type=click.Path(dir_okay=False), default=None,
                     help="Continue the run saved in this checkpoint."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--plot", type=click.Path(dir_okay=False), default=None,
                     help="Draw the per-epoch metrics into this PNG at the end (needs matplotlib)."),
    ]

    def decorate(f):
        for option in reversed(decorators):
            f = option(f)
        return f
    return decorate


def open_device(spec):
    """mt.device(spec), or the reason it fails as one line."""
    try:
        return resolve_device(spec)
    except DeviceError as err:
        raise click.ClickException(err.message) from None


def _check_writable(option, path):
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise click.ClickException(f"{option} {path}: cannot write to {folder} ({err.strerror})") from None


def _rng_state(generators):
    # np.random's global state too: vision.transforms' random crops and flips draw from it
    return {"mt": [_Seed.value, _Seed.counter], "numpy": [g.bit_generator.state for g in generators],
            "numpy_global": np.random.get_state(legacy=False)}


def _set_rng_state(state, generators):
    _Seed.value, _Seed.counter = state["mt"]
    for g, s in zip(generators, state["numpy"]):
        g.bit_generator.state = s
    if "numpy_global" in state:
        np.random.set_state(state["numpy_global"])


class Run:
    """One training run of an example. It resumes from --resume, saves the model, the optimizer, the
    random-number state and the metrics so far after every epoch (so a resumed run repeats the
    uninterrupted one exactly), writes the metrics as CSV and plots them."""

    def __init__(self, example, device, checkpoint=None, resume=None, plot=None, writes=True):
        self.example, self.device, self.resume = example, device, resume
        # writes=False (the ranks of a distributed run but the first): resume, but write no file
        self.checkpoint = (checkpoint or resume) if writes else None
        self.plot = plot if writes else None
        self.state = self._load(resume) if resume else None
        self.history = list(self.state["history"]) if self.state else []
        self.first_epoch = self.state["epoch"] + 1 if self.state else 1
        self.model = self.optimizer = None
        self.generators, self.fixed, self.extra = [], {}, {}
        if self.checkpoint:
            _check_writable("--checkpoint", self.checkpoint)
        if self.plot:
            _check_writable("--plot", self.plot)
            _import_pyplot()

    @property
    def metrics_path(self):
        """The CSV beside the checkpoint: run.mtcl -> run.csv."""
        return os.path.splitext(self.checkpoint)[0] + ".csv" if self.checkpoint else None

    def _load(self, path):
        if not os.path.isfile(path):
            raise click.ClickException(f"--resume {path}: no such file")
        try:
            state = load(path, map_location=self.device)
        except ValueError as err:
            raise click.ClickException(f"--resume {err}") from None
        example = state.get("example") if isinstance(state, dict) else None
        if example != self.example:
            what = f"a checkpoint of {example}" if example else "not a checkpoint of an example script"
            raise click.ClickException(f"--resume {path}: {what}, not of {self.example}")
        return state

    def config(self, **values):
        """The options a checkpoint fixes (the model's shape, the data): the checkpoint's values when
        resuming; one that the user set to something else is refused."""
        if self.state is not None:
            saved, ctx = self.state["config"], click.get_current_context(silent=True)
            for name, value in values.items():
                if name in saved and saved[name] != value and ctx is not None and \
                        ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
                    flag = next(p.opts[0] for p in ctx.command.params if p.name == name)
                    raise click.ClickException(f"{flag} {value} differs from {saved[name]} in the checkpoint "
                                               f"{self.resume}; leave {flag} out to resume, or start a new run")
            values = {name: saved.get(name, value) for name, value in values.items()}
        self.fixed = values
        return values

    def track(self, model, optimizer, generators=(), **extra):
        """The objects a checkpoint holds (with the NumPy generators that draw the data, and any other
        object with state_dict/load_state_dict: scheduler=, scaler=); restored here from --resume."""
        self.model, self.optimizer, self.generators, self.extra = model, optimizer, list(generators), extra
        if self.state is not None:
            model.load_state_dict(self.state["model"])
            optimizer.load_state_dict(self.state["optimizer"])
            _set_rng_state(self.state["rng"], self.generators)
            for name, obj in extra.items():
                obj.load_state_dict(self.state["extra"][name])

    def remaining(self, epochs):
        """The epoch numbers still to train, up to the total `epochs`; empty (and says so) when none."""
        if self.first_epoch > epochs:
            click.echo(f"nothing to do: {self.resume} is already at epoch {self.first_epoch - 1}, "
                       f"and --epochs {epochs} is the total")
        elif self.state is not None:
            click.echo(f"resumed from {self.resume} after {plural(self.first_epoch - 1, 'epoch')}")
        return range(self.first_epoch, epochs + 1)

    def end_epoch(self, epoch, **metrics):
        """Record an epoch's metrics; save the checkpoint and the CSV."""
        self.history.append({"epoch": epoch, **metrics})
        if self.checkpoint:
            save({"example": self.example, "epoch": epoch, "config": self.fixed, "model": self.model.state_dict(),
                  "optimizer": self.optimizer.state_dict(), "rng": _rng_state(self.generators),
                  "history": self.history, "extra": {k: v.state_dict() for k, v in self.extra.items()}},
                 self.checkpoint)
            write_csv(self.history, self.metrics_path)

    def finish(self):
        """Draw the metrics (--plot) and say where the files are."""
        if self.checkpoint:
            click.echo(f"checkpoint {self.checkpoint}, metrics {self.metrics_path}")
        if self.plot and self.history:
            plot_metrics(self.history, self.plot, title=self.example)
            click.echo(f"plot {self.plot}")


def write_csv(history, path):
    """One row per epoch; the columns are the metrics' names."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def read_csv(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise click.ClickException("--plot needs matplotlib: pip install 'minitorch_cl[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_metrics(history, path, title=""):
    """One panel per metric against the epoch, side by side, into a PNG."""
    plt = _import_pyplot()
    names = [k for k in history[0] if k != "epoch"]
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, [row[name] for row in history], marker="o", markersize=3)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class Progress:
    """An epoch's progress: on a terminal a bar with the running loss, the rate and the ETA; in a log
    file nothing until the epoch ends, when summary() gives the same numbers in one line."""

    def __init__(self, steps, label, unit):
        self.steps, self.label, self.unit = steps, label, unit
        self.loss_sum = self.weight = self.items = 0.0
        self._bar = None

    def __enter__(self):
        self.start = time.perf_counter()
        if sys.stdout.isatty():
            self._bar = click.progressbar(length=self.steps, label=self.label, width=24, show_eta=True,
                                          item_show_func=lambda _: self._status()).__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def step(self, loss, items, weight=1.0):
        """After one batch: its loss (a float), how many images/tokens it held, its weight in the mean."""
        self.loss_sum, self.weight, self.items = self.loss_sum + loss * weight, self.weight + weight, self.items + items
        if self._bar is not None:
            self._bar.update(1)

    @property
    def loss(self):
        return self.loss_sum / max(self.weight, 1e-12)

    @property
    def seconds(self):
        return time.perf_counter() - self.start

    @property
    def rate(self):
        return self.items / max(self.seconds, 1e-9)

    def _status(self):
        return f"loss {self.loss:.3f}  {self.rate:.0f} {self.unit}/s" if self.weight else ""

    def summary(self):
        return f"loss {self.loss:.4f}, {self.rate:.0f} {self.unit}/s, {self.seconds:.1f} s"


def train_epoch(model, loader, criterion, optimizer, label, scheduler=None, scaler=None, amp=False):
    """One pass over loader; returns its Progress (mean loss, images/s, seconds). scheduler steps after
    every batch (OneCycleLR); amp runs the forward under autocast and steps through the GradScaler."""
    model.train()
    with Progress(len(loader), label, "img") as progress:
        for inputs, labels in loader:
            optimizer.zero_grad()
            with autocast(device_type=inputs.device.type, enabled=amp):
                loss = criterion(model(inputs), labels)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            progress.step(loss.item(), inputs.shape[0])  # reading the loss waits for the step: img/s is honest
    return progress


@no_grad()
def evaluate(model, loader):
    """Top-1 accuracy over loader."""
    model.eval()
    correct = count = 0
    for inputs, labels in loader:
        correct += int((model(inputs).argmax(1) == labels).sum().item())
        count += labels.shape[0]
    return correct / max(count, 1)
