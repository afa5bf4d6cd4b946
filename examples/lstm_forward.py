"""Time nn.LSTM at the article's shape (sequence 100, batch 64, input 512, hidden 256):
forward, and forward+backward, on the device chosen by --device."""
import click

import minitorch_cl as mt
from minitorch_cl import training
from minitorch_cl.bench import median_time


def _median_ms(fn, dev, repeats):
    return 1e3 * median_time(fn, repeats, warmup=1, sync=dev.synchronize)


@click.command()
@click.option("--device", "spec", default=None, help="Device spec: cl:N, cl:P:D, gpu, cpu or a name fragment.")
@click.option("--seq-len", default=100, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--input-size", default=512, show_default=True)
@click.option("--hidden", default=256, show_default=True)
@click.option("--layers", default=1, show_default=True)
@click.option("--bidirectional", is_flag=True)
@click.option("--repeats", default=5, show_default=True, help="Timed runs; the median is printed.")
@click.option("--backward/--no-backward", default=True, show_default=True, help="Also time forward+backward.")
def main(spec, seq_len, batch_size, input_size, hidden, layers, bidirectional, repeats, backward):
    """Forward (and forward+backward) timing of a (T, B, I) -> (T, B, H) LSTM."""
    dev = training.open_device(spec)
    click.echo(f"device {dev.spec}: {dev.name} [{dev.platform_name}]")
    mt.manual_seed(0)
    model = mt.nn.LSTM(input_size, hidden, num_layers=layers, bidirectional=bidirectional).to(dev)
    x = mt.randn(seq_len, batch_size, input_size, device=dev)
    tokens = seq_len * batch_size

    def forward():
        with mt.no_grad():
            model(x)

    def forward_backward():
        model.zero_grad()
        out, _ = model(x)
        out.sum().backward()

    ms = _median_ms(forward, dev, repeats)
    click.echo(f"{model}\ninput (T={seq_len}, B={batch_size}, I={input_size})")
    click.echo(f"forward:          {ms:8.1f} ms  {tokens / ms * 1e3:10.0f} tokens/s")
    if backward:
        ms = _median_ms(forward_backward, dev, repeats)
        click.echo(f"forward+backward: {ms:8.1f} ms  {tokens / ms * 1e3:10.0f} tokens/s")


if __name__ == "__main__":
    main()
