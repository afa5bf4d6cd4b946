"""A character-level language model (Embedding -> LSTM -> Linear) trained with truncated
back-propagation through time. With no --text it trains on the Zen of Python, which ships with
every Python (the `this` module), so it runs with no network."""
import codecs
import contextlib
import io
import math

import click
import numpy as np

import minitorch_cl as mt
from minitorch_cl import nn, training
from minitorch_cl.nn.functional import cross_entropy
from minitorch_cl.optim import Adam


def default_text():
    """The Zen of Python: the rot13 text in the standard library's `this` module, decoded."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints it
        import this
    return codecs.decode(this.s, "rot13")


class CharLM(nn.Module):
    """Embedding -> LSTM -> Linear over a vocabulary of characters."""

    def __init__(self, vocab_size, embed=64, hidden=128, layers=1, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids, state=None):
        """ids (B, T) int64 -> logits (B, T, V) and the new (h, c)."""
        out, state = self.lstm(self.embed(ids), state)
        return self.head(out), state


def batchify(ids, batch_size):
    """Cut the id stream into batch_size parallel streams: (B, N // B), read left to right by TBPTT."""
    n = len(ids) // batch_size
    if n < 2:
        raise click.ClickException(f"text of {len(ids)} characters is too short for batch size {batch_size}")
    return ids[:n * batch_size].reshape(batch_size, n)


def clip_grad_norm(params, max_norm):
    """Scale every gradient so that their joint L2 norm is at most max_norm (on the device, no sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    total = mt.sqrt(sum((g * g).sum() for g in grads))
    scale = mt.clamp(max_norm / (total + 1e-6), max=1.0)
    with mt.no_grad():
        for g in grads:
            g.mul_(scale)


def train_epoch(model, opt, streams, seq_len, dev, progress=None, clip=1.0):
    """One pass over the streams in windows of seq_len, carrying the state across windows (detached);
    returns the mean loss per character."""
    model.train()
    state, total, count = None, 0.0, 0
    V = model.head.out_features
    for start in range(0, streams.shape[1] - 1, seq_len):
        n = min(seq_len, streams.shape[1] - 1 - start)
        x = mt.tensor(streams[:, start:start + n], device=dev)
        y = mt.tensor(streams[:, start + 1:start + 1 + n], device=dev)
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)  # truncate back-propagation at the window's edge
        loss = cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), clip)
        opt.step()
        value = loss.item()
        total, count = total + value * n, count + n
        if progress is not None:
            progress.step(value, streams.shape[0] * n, weight=n)
    return total / count


def evaluate(model, streams, seq_len, dev):
    """Mean per-character loss (nats) over the streams, in eval mode."""
    model.eval()
    state, total, count = None, 0.0, 0
    V = model.head.out_features
    with mt.no_grad():
        for start in range(0, streams.shape[1] - 1, seq_len):
            n = min(seq_len, streams.shape[1] - 1 - start)
            logits, state = model(mt.tensor(streams[:, start:start + n], device=dev), state)
            y = mt.tensor(streams[:, start + 1:start + 1 + n], device=dev)
            total += cross_entropy(logits.reshape(-1, V), y.reshape(-1)).item() * n
            count += n
    return total / count


def sample(model, vocab, n, temperature, dev, prime=None, seed=0):
    """n characters drawn one at a time from the model's softmax at the given temperature."""
    model.eval()
    rng = np.random.default_rng(seed)
    index = {ch: i for i, ch in enumerate(vocab)}
    prime = prime or vocab[rng.integers(len(vocab))]
    text, state = list(prime), None
    with mt.no_grad():
        logits, state = model(mt.tensor([[index[c] for c in prime]], device=dev), state)
        for _ in range(n):
            z = logits[0, -1].numpy().astype(np.float64) / max(temperature, 1e-6)
            p = np.exp(z - z.max())
            nxt = int(rng.choice(len(vocab), p=p / p.sum()))
            text.append(vocab[nxt])
            logits, state = model(mt.tensor([[nxt]], device=dev), state)
    return "".join(text)


def unigram_entropy(ids, vocab_size):
    """Entropy (nats) of the character frequencies: the loss of a model that ignores context."""
    p = np.bincount(ids, minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@click.command()
@training.options(epochs=40)
@click.option("--text", "text_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A UTF-8 text file to train on (default: the Zen of Python from the stdlib).")
@click.option("--seq-len", default=32, show_default=True, help="Truncated BPTT window.")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--embed", default=32, show_default=True)
@click.option("--hidden", default=128, show_default=True)
@click.option("--layers", default=1, show_default=True)
@click.option("--dropout", default=0.0, show_default=True)
@click.option("--lr", default=5e-3, show_default=True)
@click.option("--sample", "n_sample", default=0, show_default=True,
              help="Print this many characters sampled from the model at the end.")
@click.option("--temperature", default=0.8, show_default=True)
def main(device, epochs, checkpoint, resume, seed, plot, text_path, seq_len, batch_size, embed, hidden, layers,
         dropout, lr, n_sample, temperature):
    """Train a character-level LSTM language model and sample from it."""
    dev = training.open_device(device)
    run = training.Run("lstm_charlm", dev, checkpoint=checkpoint, resume=resume, plot=plot)
    text = open(text_path, encoding="utf-8").read() if text_path else default_text()
    fixed = run.config(vocab="".join(sorted(set(text))), embed=embed, hidden=hidden, layers=layers, seed=seed)
    vocab = fixed["vocab"]
    index = {ch: i for i, ch in enumerate(vocab)}
    unknown = set(text) - set(index)
    if unknown:
        raise click.ClickException(f"the text has characters the checkpoint's vocabulary lacks: {sorted(unknown)[:10]}")
    ids = np.array([index[c] for c in text], dtype=np.int64)
    mt.manual_seed(fixed["seed"])
    model = CharLM(len(vocab), fixed["embed"], fixed["hidden"], fixed["layers"], dropout).to(dev)
    opt = Adam(model.parameters(), lr=lr)
    run.track(model, opt)
    streams = batchify(ids, batch_size)
    todo = run.remaining(epochs)
    if not todo:
        return
    click.echo(f"device {dev.spec}: {dev.name} | {len(text)} characters, vocabulary {len(vocab)}, "
               f"unigram entropy {unigram_entropy(ids, len(vocab)):.3f} nats/char\n{model}")
    steps = -(-(streams.shape[1] - 1) // seq_len)
    for epoch in todo:
        with training.Progress(steps, f"epoch {epoch}/{epochs}", "char") as progress:
            loss = train_epoch(model, opt, streams, seq_len, dev, progress)
        click.echo(f"epoch {epoch}: {progress.summary()}; perplexity {math.exp(loss):.2f}")
        run.end_epoch(epoch, loss=loss, perplexity=math.exp(loss), chars_per_s=progress.rate,
                      lr=opt.param_groups[0]["lr"], seconds=progress.seconds)
    run.finish()
    if n_sample:
        click.echo(sample(model, vocab, n_sample, temperature, dev, seed=fixed["seed"]))


if __name__ == "__main__":
    main()
