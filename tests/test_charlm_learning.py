"""examples/lstm_charlm.py learns: its training loss falls well below the corpus's unigram entropy."""
import math

import numpy as np
import pytest

import minitorch_cl as mt


@pytest.fixture(scope="session")
def charlm(example):
    return example("lstm_charlm")


def test_loss_falls_below_unigram_entropy(dev, charlm):
    mt.manual_seed(0)
    text = charlm.default_text()
    vocab = "".join(sorted(set(text)))
    ids = np.array([vocab.index(c) for c in text], dtype=np.int64)
    entropy = charlm.unigram_entropy(ids, len(vocab))
    assert 2.5 < entropy < math.log(len(vocab))  # English-like text, not uniform
    model = charlm.CharLM(len(vocab), embed=32, hidden=64).to(dev)
    opt = charlm.Adam(model.parameters(), lr=1e-2)
    streams = charlm.batchify(ids, 8)
    losses = [charlm.train_epoch(model, opt, streams, 32, dev) for _ in range(25)]
    assert losses[0] > 0.9 * entropy  # it starts out knowing nothing
    assert losses[-1] < 0.5 * entropy, f"loss {losses[-1]:.3f} vs unigram entropy {entropy:.3f}"
    assert charlm.evaluate(model, streams, 32, dev) < 0.5 * entropy
    text_out = charlm.sample(model, vocab, 40, 0.5, dev, prime="Beautiful")
    assert len(text_out) == len("Beautiful") + 40 and set(text_out) <= set(vocab)


def test_cli_checkpoint_and_resume(tmp_path, dev, charlm):
    from click.testing import CliRunner
    module = charlm
    text = tmp_path / "t.txt"
    text.write_text("abcab cabca bcabc " * 20)
    ckpt = tmp_path / "m.ckpt"
    args = ["--text", str(text), "--device", dev.spec, "--hidden", "7", "--embed", "5", "--batch-size", "4",
            "--seq-len", "16", "--checkpoint", str(ckpt)]
    result = CliRunner().invoke(module.main, args + ["--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "epoch 1: loss" in result.output and ckpt.exists()
    result = CliRunner().invoke(module.main, args + ["--epochs", "2", "--resume", str(ckpt), "--sample", "12"])
    assert result.exit_code == 0, result.output
    assert "epoch 2: loss" in result.output
    assert set(result.output.strip().splitlines()[-1]) <= set("abc ")
