"""examples/transformer_seq2seq.py learns to reverse digit sequences: >= 95% of held-out sequences
exactly right under greedy decoding, in a CI-sized run; checkpoints resume."""
import re

from click.testing import CliRunner


def _accuracies(output):
    found = re.findall(r"token accuracy ([0-9.]+), exact-sequence accuracy ([0-9.]+)", output)
    assert found, output
    return tuple(float(x) for x in found[-1])


def test_reverses_digit_sequences(dev, example):
    args = ["--device", dev.spec, "--epochs", "6", "--steps", "100", "--seq-len", "6", "--d-model", "64", "--layers",
            "2", "--test-size", "300", "--seed", "0"]
    result = CliRunner().invoke(example("transformer_seq2seq").main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    token, exact = _accuracies(result.output)
    assert exact >= 0.95, result.output
    assert token >= exact


def test_checkpoint_resume(dev, tmp_path, example):
    ckpt = tmp_path / "s2s.ckpt"
    main = example("transformer_seq2seq").main
    args = ["--device", dev.spec, "--steps", "2", "--d-model", "16", "--nhead", "2", "--layers", "1",
            "--test-size", "8", "--seq-len", "4"]
    first = CliRunner().invoke(main, args + ["--epochs", "1", "--checkpoint", str(ckpt)])
    assert first.exit_code == 0, first.output + repr(first.exception)
    resumed = CliRunner().invoke(main, ["--device", dev.spec, "--test-size", "8", "--epochs", "2", "--resume", str(ckpt)])
    assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    assert "epoch 2:" in resumed.output and "epoch 1:" not in resumed.output  # --epochs is the total
    count = re.compile(r"(\d+) parameters")
    assert count.search(resumed.output).group(1) == count.search(first.output).group(1)  # the checkpoint's shape
    assert "task reverse, length 4" in resumed.output
