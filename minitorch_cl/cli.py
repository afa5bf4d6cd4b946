"""The `minitorch-cl` command: devices, info, bench."""
import importlib
import platform

import click

from .device import ENV_VAR, NO_PLATFORM_HELP, DeviceError, default_device, device as resolve_device, devices as all_devices


@click.group()
def main():
    """minitorch_cl: deep learning on any OpenCL device."""


def _mib(n):
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n % scale else f"{n // scale} {unit}"
    return f"{n} B"


@main.command()
def devices():
    """List every OpenCL device with the spec that selects it."""
    try:
        devs = all_devices()
        if not devs:
            raise DeviceError(NO_PLATFORM_HELP)
    except DeviceError as err:
        raise click.ClickException(str(err))
    default = default_device()
    rows = [("spec", "index", "platform (version)", "device", "type", "CUs", "global mem", "local mem",
             "max WG", "fp16", "fp64")]
    for d in devs:
        cl = d.cl_device
        rows.append((d.spec + (" *" if d == default else ""), f"cl:{d.ordinal}",
                     f"{d.platform_name} ({d.platform_version})", d.name, d.type_name, str(cl.max_compute_units),
                     _mib(cl.global_mem_size), _mib(cl.local_mem_size), str(d.max_work_group_size),
                     "yes" if d.has_fp16 else "no", "yes" if d.has_fp64 else "no"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    click.echo(f"\n* the default device ({ENV_VAR} overrides it)")


@main.command()
@click.option("--device", "spec", default=None, help="Device spec: cl:N, cl:P:D, gpu, cpu or a name fragment.")
def info(spec):
    """Versions and the selected device."""
    import numpy
    import pyopencl

    from . import __version__
    click.echo(f"minitorch_cl {__version__}, pyopencl {pyopencl.VERSION_TEXT}, numpy {numpy.__version__}, "
               f"Python {platform.python_version()}")
    try:
        d = resolve_device(spec)
    except DeviceError as err:
        raise click.ClickException(str(err))
    click.echo(f"device {d.spec}: {d.name} on {d.platform_name} ({d.platform_version}), {d.type_name}")


@main.command()
@click.argument("name", type=click.Choice(["gemm", "convnet", "lstm", "gru", "attention", "transformer", "ddp"]))
@click.option("--device", "spec", default=None, help="Device spec: cl:N, cl:P:D, gpu, cpu or a name fragment.")
@click.option("--quick", is_flag=True, help="Fewer sizes and repeats (a smoke run).")
def bench(name, spec, quick):
    """Time minitorch_cl next to NumPy (and PyTorch when installed) in the same run."""
    from .bench import format_table
    try:
        d = resolve_device(spec)
    except DeviceError as err:
        raise click.ClickException(str(err))
    module = importlib.import_module(f"minitorch_cl.bench.{name}")
    click.echo(f"# {name} on {d.spec}: {d.name} [{d.platform_name} {d.platform_version}]")
    rows = module.run(d, quick=quick)
    click.echo(format_table(rows))
    note = getattr(module, "NOTE", "")
    if note:
        click.echo(note)


if __name__ == "__main__":
    main()
