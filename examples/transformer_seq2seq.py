"""An encoder-decoder Transformer that learns to reverse (or sort) sequences of digits: trained with
teacher forcing on freshly drawn random sequences, then evaluated by greedy decoding on a held-out
set. Needs no download. With --benchmark it times the forward pass at the shape of "Attention Is
All You Need" (src 512 x batch 64, tgt 128 x batch 64, d_model 512, 8 heads, 6 + 6 layers)."""
import math
import time

import click
import numpy as np

import minitorch_cl as mt
from minitorch_cl import nn, training
from minitorch_cl.nn.functional import cross_entropy
from minitorch_cl.optim import Adam

DIGITS = 10
BOS = DIGITS          # the decoder's start token
VOCAB = DIGITS + 1


def make_pairs(rng, n, seq_len, task):
    """n random digit sequences (n, seq_len) and their targets."""
    src = rng.integers(0, DIGITS, size=(n, seq_len))
    tgt = src[:, ::-1] if task == "reverse" else np.sort(src, axis=1)
    return src, np.ascontiguousarray(tgt)


def sinusoids(length, d_model):
    """The fixed sinusoidal position encodings (length, d_model)."""
    pos = np.arange(length)[:, None]
    freq = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)
    pe = np.zeros((length, d_model), dtype=np.float32)
    pe[:, 0::2], pe[:, 1::2] = np.sin(pos * freq), np.cos(pos * freq)
    return pe


class Seq2Seq(nn.Module):
    """Token embeddings + sinusoidal positions -> nn.Transformer (batch_first) -> vocabulary logits."""

    def __init__(self, d_model, nhead, layers, max_len, dropout=0.0, device=None):
        super().__init__()
        self.d_model = d_model
        self.src_embed = nn.Embedding(VOCAB, d_model, device=device)
        self.tgt_embed = nn.Embedding(VOCAB, d_model, device=device)
        self.transformer = nn.Transformer(d_model, nhead, layers, layers, dim_feedforward=4 * d_model,
                                          dropout=dropout, batch_first=True, device=device)
        self.head = nn.Linear(d_model, VOCAB, device=device)
        self.register_buffer("pe", mt.tensor(sinusoids(max_len + 1, d_model), device=device), persistent=False)

    def _embed(self, table, ids):
        return table(ids) * math.sqrt(self.d_model) + self.pe[:ids.shape[1]]

    def encode(self, src):
        return self.transformer.encoder(self._embed(self.src_embed, src))

    def decode(self, memory, tgt_in):
        """Logits (B, T, VOCAB) for the decoder inputs tgt_in (B, T), each position seeing only its past."""
        mask = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1], device=memory.device)
        out = self.transformer.decoder(self._embed(self.tgt_embed, tgt_in), memory, tgt_mask=mask, tgt_is_causal=True)
        return self.head(out)

    def forward(self, src, tgt_in):
        return self.decode(self.encode(src), tgt_in)


def teacher_inputs(tgt):
    """The decoder sees BOS followed by the target shifted right."""
    return np.concatenate([np.full((tgt.shape[0], 1), BOS), tgt[:, :-1]], axis=1)


def greedy_decode(model, src, seq_len, dev, batch_size=256):
    """Predicted targets (n, seq_len): the encoder runs once, the decoder once per output position."""
    model.eval()
    preds = []
    with mt.no_grad():
        for start in range(0, len(src), batch_size):
            s = src[start:start + batch_size]
            memory = model.encode(mt.tensor(s, device=dev))
            out = np.full((len(s), 1), BOS)
            for _ in range(seq_len):
                logits = model.decode(memory, mt.tensor(out, device=dev))
                nxt = logits[:, -1].argmax(dim=-1).numpy()
                out = np.concatenate([out, nxt[:, None]], axis=1)
            preds.append(out[:, 1:])
    return np.concatenate(preds)


def lr_at(step, total, peak, warmup=50):
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def run_benchmark(dev, batch, repeats):
    """Median forward time of nn.Transformer() (PyTorch's defaults) at the article's shape, eval mode."""
    model = nn.Transformer(device=dev).eval()
    rng = np.random.default_rng(0)
    src = mt.tensor(rng.standard_normal((512, batch, 512)).astype(np.float32), device=dev)
    tgt = mt.tensor(rng.standard_normal((128, batch, 512)).astype(np.float32), device=dev)
    mask = nn.Transformer.generate_square_subsequent_mask(128, device=dev)
    times = []
    with mt.no_grad():
        for i in range(repeats + 1):
            start = time.perf_counter()
            model(src, tgt, tgt_mask=mask, tgt_is_causal=True)
            dev.synchronize()
            if i:  # the first run builds the kernels
                times.append(time.perf_counter() - start)
    click.echo(f"Transformer forward, src (512, {batch}, 512), tgt (128, {batch}, 512), d_model 512, 8 heads, "
               f"6+6 layers, eval: median {np.median(times):.2f} s over {repeats} runs on {dev.spec} ({dev.name})")


@click.command()
@training.options(epochs=6)
@click.option("--task", type=click.Choice(["reverse", "sort"]), default="reverse", show_default=True)
@click.option("--steps", default=100, show_default=True, help="Training batches per epoch.")
@click.option("--d-model", default=64, show_default=True)
@click.option("--nhead", default=4, show_default=True)
@click.option("--layers", default=2, show_default=True, help="Encoder layers (and as many decoder layers).")
@click.option("--dropout", default=0.0, show_default=True)
@click.option("--seq-len", default=6, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=3e-3, show_default=True, help="Peak learning rate (warm-up, then cosine decay).")
@click.option("--test-size", default=500, show_default=True, help="Held-out sequences for greedy decoding.")
@click.option("--benchmark", is_flag=True, help="Only time the forward pass at the article's shape.")
@click.option("--benchmark-batch", default=64, show_default=True)
@click.option("--benchmark-repeats", default=3, show_default=True)
def main(device, epochs, checkpoint, resume, seed, plot, task, steps, d_model, nhead, layers, dropout, seq_len,
         batch_size, lr, test_size, benchmark, benchmark_batch, benchmark_repeats):
    """Train a Transformer to reverse or sort digit sequences; report greedy-decoding accuracy."""
    dev = training.open_device(device)
    if benchmark:
        mt.manual_seed(seed)
        return run_benchmark(dev, benchmark_batch, benchmark_repeats)
    run = training.Run("transformer_seq2seq", dev, checkpoint=checkpoint, resume=resume, plot=plot)
    fixed = run.config(task=task, d_model=d_model, nhead=nhead, layers=layers, seq_len=seq_len, steps=steps,
                       seed=seed)
    task, seq_len, steps, seed = fixed["task"], fixed["seq_len"], fixed["steps"], fixed["seed"]
    mt.manual_seed(seed)
    model = Seq2Seq(fixed["d_model"], fixed["nhead"], fixed["layers"], seq_len, dropout, device=dev)
    opt = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)  # draws the training batches
    run.track(model, opt, generators=[rng])
    todo = run.remaining(epochs)
    if not todo:
        return
    test_src, test_tgt = make_pairs(np.random.default_rng([seed, 10 ** 6]), test_size, seq_len, task)
    n_params = sum(p.numel() for p in model.parameters())
    click.echo(f"device {dev.spec}: {dev.name} | task {task}, length {seq_len} | {n_params} parameters")
    total = epochs * steps
    for epoch in todo:
        model.train()
        with training.Progress(steps, f"epoch {epoch}/{epochs}", "tok") as progress:
            for i in range(steps):
                for group in opt.param_groups:
                    group["lr"] = lr_at((epoch - 1) * steps + i, total, lr)
                src, tgt = make_pairs(rng, batch_size, seq_len, task)
                logits = model(mt.tensor(src, device=dev), mt.tensor(teacher_inputs(tgt), device=dev))
                loss = cross_entropy(logits.reshape(-1, VOCAB), mt.tensor(tgt, device=dev).reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
                progress.step(loss.item(), tgt.size)
        pred = greedy_decode(model, test_src, seq_len, dev)
        token, exact = (pred == test_tgt).mean(), (pred == test_tgt).all(1).mean()
        click.echo(f"epoch {epoch}: {progress.summary()} | held-out greedy decoding: token accuracy "
                   f"{token:.4f}, exact-sequence accuracy {exact:.4f}")
        run.end_epoch(epoch, loss=progress.loss, token_accuracy=float(token), exact_accuracy=float(exact),
                      tokens_per_s=progress.rate, lr=opt.param_groups[0]["lr"], seconds=progress.seconds)
    run.finish()


if __name__ == "__main__":
    main()
