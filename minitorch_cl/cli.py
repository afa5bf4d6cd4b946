"""The `minitorch-cl` command: devices, info, doctor, bench, plot."""
import importlib
import os
import platform
import re

import click

from . import __version__
from .device import (ENV_VAR, NO_PLATFORM_HELP, DeviceError, device as resolve_device, devices as all_devices,
                     icd_file)

TABLE_WIDTH = 100
DEFAULT_RULE = (f"* the default: a GPU first, then a runtime installed into this Python environment (pip's\n"
                f"  PoCL), then the system's, passing over any whose compiler cannot build a kernel.\n"
                f"  {ENV_VAR} overrides it; `minitorch-cl info --device SPEC` shows a device's details.")


class _Group(click.Group):
    """Every command reports a device spec that matches nothing, or several devices, in one line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DeviceError as err:
            raise click.ClickException(err.message) from None


@click.group(cls=_Group)
@click.version_option(__version__, "--version", prog_name="minitorch-cl")
def main():
    """minitorch_cl: deep learning on any OpenCL device."""


def _mib(n):
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n % scale else f"{n // scale} {unit}"
    return f"{n} B"


def _origin(d):
    """Where a device's runtime comes from, in short: this Python environment, or the system's ICD file."""
    if d.bundled:
        return "python env (pip)"
    return icd_file(d.origin) or d.origin or "unknown"


def _fit(rows, shrink, width=TABLE_WIDTH):
    """Cut column `shrink` (with an ellipsis) so that the joined rows fit width."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    over = sum(widths) + 2 * (len(widths) - 1) - width
    if over > 0:
        keep = max(widths[shrink] - over, 8)
        rows = [r[:shrink] + (r[shrink] if len(r[shrink]) <= keep else r[shrink][:keep - 1] + "…",) + r[shrink + 1:]
                for r in rows]
    return rows


@main.command()
def devices():
    """List every OpenCL device with the spec that selects it and where its runtime comes from."""
    devs = all_devices()
    if not devs:
        raise click.ClickException(NO_PLATFORM_HELP)
    try:
        default, problem = resolve_device(None), None
    except DeviceError as err:  # a bad MINITORCH_CL_DEVICE: still list what exists
        default, problem = None, err
    rows = [("spec", "index", "type", "runtime", "device", "origin")]
    for d in devs:
        runtime = re.sub(r"^OpenCL \d+\.\d+\s*", "", d.short_version) or d.platform_name
        rows.append((d.spec + (" *" if d == default else ""), f"cl:{d.ordinal}", d.type_name, runtime, d.name,
                     _origin(d)))
    rows = _fit(rows, shrink=4)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    click.echo("\n" + DEFAULT_RULE)
    if problem is not None:
        raise click.ClickException(problem.message)


@main.command()
@click.option("--device", "spec", default=None, help="Device spec: cl:N, cl:P:D, gpu, cpu or a name fragment.")
def info(spec):
    """Versions, and the details of the selected device."""
    import numpy
    import pyopencl

    click.echo(f"minitorch_cl {__version__}, pyopencl {pyopencl.VERSION_TEXT}, numpy {numpy.__version__}, "
               f"Python {platform.python_version()}")
    d = resolve_device(spec)
    cl = d.cl_device
    chosen = f"--device {spec}" if spec else f"{ENV_VAR}" if os.environ.get(ENV_VAR) else "the default"
    details = [
        ("device", f"{d.spec} (cl:{d.ordinal}, {chosen}): {d.name}, {d.type_name}"),
        ("platform", f"{d.platform_name}, {d.platform_version}"),
        ("library", d.origin or "unknown"),
        ("ICD file", icd_file(d.origin) or "none found"),
        ("installed", "into this Python environment (pip)" if d.bundled else "system-wide"),
        ("compute units", str(cl.max_compute_units)),
        ("memory", f"global {_mib(cl.global_mem_size)}, local {_mib(cl.local_mem_size)}"),
        ("max work-group", str(d.max_work_group_size)),
        ("fp16 / fp64", f"{'yes' if d.has_fp16 else 'no'} / {'yes' if d.has_fp64 else 'no'}"),
    ]
    for key, value in details:
        click.echo(f"  {key + ':':16s}{value}")


@main.command()
@click.option("--device", "spec", default=None, help="Self-test only this device (default: every device).")
@click.option("--no-self-test", is_flag=True, help="Only report the setup.")
def doctor(spec, no_self_test):
    """The OpenCL setup (loader, vendor files, devices, caches) and a self-test on each device."""
    from . import doctor as checks
    if not checks.run(click.echo, only=resolve_device(spec) if spec else None, self_tests=not no_self_test):
        raise click.exceptions.Exit(1)


@main.command()
@click.argument("name", type=click.Choice(["gemm", "convnet", "lstm", "gru", "attention", "transformer", "ddp",
                                           "models"]))
@click.option("--device", "spec", default=None, help="Device spec: cl:N, cl:P:D, gpu, cpu or a name fragment.")
@click.option("--quick", is_flag=True, help="Fewer sizes and repeats (a smoke run).")
@click.option("--profile", "profile", is_flag=True, help="Then print the kernel profiler's table of the run.")
@click.option("--models", "model_names", default=None,
              help="bench models only: comma-separated names (default: the zoo and cifar_resnet18; tiny: a smoke net).")
def bench(name, spec, quick, profile, model_names):
    """Time minitorch_cl next to NumPy (and PyTorch when installed) in the same run."""
    from .bench import format_table
    if model_names is not None and name != "models":
        raise click.UsageError("--models applies to `bench models` only")
    d = resolve_device(spec)
    module = importlib.import_module(f"minitorch_cl.bench.{name}")
    options = {}
    if name == "models":  # its model list, and its notes (models skipped) as it goes
        names = [m.strip() for m in model_names.split(",") if m.strip()] if model_names else None
        options = {"models": names, "log": click.echo}
    click.echo(f"# {name} on {d.spec}: {d.name} [{d.platform_name} {d.platform_version}]")
    step = getattr(module, "profile_step", None) if profile else None
    if profile and step is None:  # no step of its own: the whole run, PyTorch's part included
        from . import profiler
        with profiler.profile() as prof:
            rows = module.run(d, quick=quick, **options)
    else:
        rows = module.run(d, quick=quick, **options)
    click.echo(format_table(rows))
    note = getattr(module, "NOTE", "")
    if note:
        click.echo(note)
    if profile:
        from .bench import profile_table
        click.echo(profile_table(d, step, prof if step is None else None))


@main.command()
@click.option("--device", "spec", default=None, help="Device spec: cl:N, cl:P:D, gpu, cpu or a name fragment.")
@click.option("--budget", default=120.0, show_default=True, help="Seconds after which no new candidate starts.")
@click.option("--show", is_flag=True, help="Print the stored tuning records and exit.")
def tune(spec, budget, show):
    """Autotune GEMM and attention for a device; the winners apply in every later run on it."""
    from . import tuner
    if show:
        click.echo("\n".join(tuner.show()))
        return
    try:
        d = resolve_device(spec)
    except DeviceError as err:
        raise click.ClickException(str(err))
    click.echo(f"# tuning {d.spec}: {d.name} [{d.platform_name}], budget {budget:g} s "
               "(each search's first candidate is the built-in default)")
    record = tuner.tune(d, budget=budget, log=click.echo)
    click.echo(f"stored {record['entries']} ({record['speedup']:.2f}x the defaults) in "
               f"{tuner.tuned_profile.cache_path()}")


@main.command()
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False))
@click.argument("png_path", type=click.Path(dir_okay=False))
def plot(csv_path, png_path):
    """Draw an example's per-epoch metrics (the CSV beside its checkpoint) into a PNG."""
    from .training import plot_metrics, read_csv
    rows = read_csv(csv_path)
    if not rows:
        raise click.ClickException(f"{csv_path} has no epochs")
    plot_metrics(rows, png_path, title=csv_path)
    click.echo(f"plot {png_path}")


@main.command()
@click.argument("program", type=click.File("r"))
def port(program):
    """Print a PyTorch program with its imports swapped for minitorch_cl's (docs/PORTING.md)."""
    from .porting import swap_imports
    try:
        click.echo(swap_imports(program.read()), nl=False)
    except ValueError as err:
        raise click.ClickException(str(err))


if __name__ == "__main__":
    main()
