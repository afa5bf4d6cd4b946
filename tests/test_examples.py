"""What the training examples share (minitorch_cl.training): --resume of a missing or a foreign file,
an unwritable --checkpoint, options a checkpoint fixes, an interrupted run resumed to the same losses,
the per-epoch CSV and the --plot PNG."""
import csv
import importlib.util
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from minitorch_cl import training
from minitorch_cl.cli import main as cli_main
from minitorch_cl.serialization import save

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seq2seq():
    return _load("transformer_seq2seq")


@pytest.fixture(scope="module")
def convnet():
    pytest.importorskip("sklearn")
    return _load("cifar_convnet")


def _tiny_args(name, dev, tmp_path):
    """The smallest configuration of each example: a test of the run logic, not of learning."""
    if name == "transformer_seq2seq":
        return ["--device", dev.spec, "--steps", "2", "--d-model", "16", "--nhead", "2", "--layers", "1",
                "--test-size", "8", "--seq-len", "4", "--batch-size", "8", "--dropout", "0.1"]
    if name == "lstm_charlm":
        text = tmp_path / "t.txt"
        text.write_text("abcab cabca bcabc " * 8)
        return ["--device", dev.spec, "--text", str(text), "--hidden", "7", "--embed", "5", "--batch-size", "4",
                "--seq-len", "16"]
    return ["--device", dev.spec, "--dataset", "digits", "--batch-size", "32"]


@pytest.fixture
def tiny_digits(convnet, monkeypatch):
    real = convnet.Digits

    def tiny(train=True, transform=None, **kw):
        ds = real(train=train, transform=transform)
        keep = slice(0, 64 if train else 32)
        ds.data, ds.targets = ds.data[keep], ds.targets[keep]
        return ds

    monkeypatch.setattr(convnet, "Digits", tiny)


@pytest.mark.parametrize("name", ["cifar_convnet", "lstm_charlm", "transformer_seq2seq"])
def test_resume_of_a_missing_or_foreign_file_is_one_line(name, dev, tmp_path):
    if name == "cifar_convnet":
        pytest.importorskip("sklearn")
    main = _load(name).main
    args = _tiny_args(name, dev, tmp_path)
    missing = CliRunner().invoke(main, args + ["--resume", str(tmp_path / "nope.mtcl")])
    assert missing.exit_code == 1 and missing.output.strip() == f"Error: --resume {tmp_path / 'nope.mtcl'}: no such file"
    foreign = tmp_path / "foreign.mtcl"
    other = "lstm_charlm" if name != "lstm_charlm" else "cifar_convnet"
    save({"example": other, "epoch": 1, "model": {}}, foreign)
    result = CliRunner().invoke(main, args + ["--resume", str(foreign)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: --resume {foreign}: a checkpoint of {other}, not of {name}"
    plain = tmp_path / "plain.mtcl"
    save({"weights": [1, 2]}, plain)
    result = CliRunner().invoke(main, args + ["--resume", str(plain)])
    assert result.exit_code == 1 and "not a checkpoint of an example script" in result.output
    junk = tmp_path / "junk.mtcl"
    junk.write_bytes(b"junk")
    result = CliRunner().invoke(main, args + ["--resume", str(junk)])
    assert result.exit_code == 1 and "is not a minitorch_cl checkpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unwritable_checkpoint_fails_before_training(seq2seq, dev, tmp_path):
    target = str(tmp_path / "no" / "such" / "dir" / "run.mtcl")
    result = CliRunner().invoke(seq2seq.main, _tiny_args("transformer_seq2seq", dev, tmp_path) + ["--checkpoint", target])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --checkpoint {target}: cannot write to ")
    assert "epoch" not in result.output


def test_options_the_checkpoint_fixes_are_refused_when_changed(seq2seq, dev, tmp_path):
    ckpt = str(tmp_path / "s2s.mtcl")
    args = _tiny_args("transformer_seq2seq", dev, tmp_path)
    first = CliRunner().invoke(seq2seq.main, args + ["--epochs", "1", "--checkpoint", ckpt])
    assert first.exit_code == 0, first.output
    changed = CliRunner().invoke(seq2seq.main, args + ["--epochs", "2", "--resume", ckpt, "--d-model", "32"])
    assert changed.exit_code == 1
    assert f"--d-model 32 differs from 16 in the checkpoint {ckpt}" in changed.output and "epoch 2" not in changed.output
    # left out, the checkpoint's values hold; the same value repeated is fine
    again = CliRunner().invoke(seq2seq.main, ["--device", dev.spec, "--epochs", "2", "--resume", ckpt,
                                              "--d-model", "16", "--test-size", "8"])
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.output and "after 1 epoch\n" in again.output and "length 4" in again.output
    done = CliRunner().invoke(seq2seq.main, ["--device", dev.spec, "--epochs", "1", "--resume", ckpt])
    assert done.exit_code == 0
    assert done.output == f"nothing to do: {ckpt} is already at epoch 2, and --epochs 1 is the total\n"


def _losses(path, column):
    with open(path, newline="") as f:
        return [float(row[column]) for row in csv.DictReader(f)]


def _interrupt_after(monkeypatch, stop):
    """Ctrl-C right after epoch `stop` has been saved."""
    real = training.Run.end_epoch

    def end_epoch(self, epoch, **metrics):
        real(self, epoch, **metrics)
        if epoch == stop:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.Run, "end_epoch", end_epoch)


@pytest.mark.parametrize("name, column", [("transformer_seq2seq", "loss"), ("cifar_convnet", "train_loss")])
def test_interrupted_then_resumed_run_equals_the_uninterrupted_one(name, column, dev, tmp_path, monkeypatch, request):
    if name == "cifar_convnet":
        request.getfixturevalue("tiny_digits")  # shuffled batches: the loader's generator is restored
    main = _load(name).main if name != "cifar_convnet" else request.getfixturevalue("convnet").main
    args = _tiny_args(name, dev, tmp_path) + ["--epochs", "3"]
    whole = CliRunner().invoke(main, args + ["--checkpoint", str(tmp_path / "whole.mtcl")])
    assert whole.exit_code == 0, whole.output
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        cut = CliRunner().invoke(main, args + ["--checkpoint", str(tmp_path / "cut.mtcl")])
    assert cut.exit_code == 1 and "epoch 2:" in cut.output and "epoch 3:" not in cut.output
    resumed = CliRunner().invoke(main, args + ["--resume", str(tmp_path / "cut.mtcl")])
    assert resumed.exit_code == 0, resumed.output
    assert "epoch 3:" in resumed.output and "epoch 2:" not in resumed.output
    expected = _losses(tmp_path / "whole.csv", column)
    assert len(expected) == 3 and len(set(expected)) == 3
    assert _losses(tmp_path / "cut.csv", column) == expected


def test_csv_and_plot_of_a_short_run(seq2seq, dev, tmp_path):
    pytest.importorskip("matplotlib")
    ckpt, png = tmp_path / "run.mtcl", tmp_path / "curves.png"
    result = CliRunner().invoke(seq2seq.main, _tiny_args("transformer_seq2seq", dev, tmp_path) +
                                ["--epochs", "2", "--checkpoint", str(ckpt), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "run.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "token_accuracy", "tokens_per_s", "lr"} <= set(rows[0])
    assert all(float(r["tokens_per_s"]) > 0 for r in rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    again = tmp_path / "again.png"
    redraw = CliRunner().invoke(cli_main, ["plot", str(tmp_path / "run.csv"), str(again)])
    assert redraw.exit_code == 0, redraw.output
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no terminal: one line per epoch with the numbers, no progress bar
    epoch_lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all(" tok/s, " in line for line in epoch_lines)


def test_plot_without_matplotlib_is_one_line(seq2seq, dev, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    result = CliRunner().invoke(seq2seq.main, _tiny_args("transformer_seq2seq", dev, tmp_path) +
                                ["--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert result.output == "Error: --plot needs matplotlib: pip install 'minitorch_cl[plot]'\n"


@pytest.mark.parametrize("name", ["cifar_convnet", "lstm_charlm", "transformer_seq2seq", "lstm_forward"])
def test_bad_device_is_one_line(name, monkeypatch):
    monkeypatch.setenv("MINITORCH_CL_DEVICE", "bogus")
    result = CliRunner().invoke(_load(name).main, [])
    assert result.exit_code == 1
    assert result.output == ("Error: no OpenCL device matches MINITORCH_CL_DEVICE='bogus' "
                             "(`minitorch-cl devices` lists them)\n")
