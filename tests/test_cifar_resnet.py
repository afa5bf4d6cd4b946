"""examples/cifar_resnet.py: the 32x32 ResNet-18 (torchvision's, with its stem swapped), a CI-sized
digits run that learns (>= 98% test accuracy) and writes its checkpoint and CSV, and the run logic a
OneCycle schedule and a GradScaler add to minitorch_cl.training's (their state in the checkpoint)."""
import csv
import re

import numpy as np
import pytest
from click.testing import CliRunner

import minitorch_cl as mt
from minitorch_cl import nn, training
from minitorch_cl.serialization import load, save


@pytest.fixture(scope="module")
def ex(example):
    pytest.importorskip("sklearn")
    return example("cifar_resnet")


@pytest.fixture
def tiny_digits(ex, monkeypatch):
    real = ex.Digits

    def tiny(train=True, transform=None, **kw):
        ds = real(train=train, transform=transform)
        keep = slice(0, 64 if train else 32)
        ds.data, ds.targets = ds.data[keep], ds.targets[keep]
        return ds

    monkeypatch.setattr(ex, "Digits", tiny)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_width_64_is_resnet18_with_a_cifar_stem(ex, dev):
    model = ex.cifar_resnet18(num_classes=10)
    ref = ex.resnet18(num_classes=10)
    assert list(model.state_dict()) == list(ref.state_dict())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in ref.state_dict().items()} | {"conv1.weight": (64, 3, 3, 3),
                                                                                 "fc.weight": (10, 512)}
    assert model.conv1.stride == (1, 1) and model.conv1.padding == (1, 1) and isinstance(model.maxpool, nn.Identity)
    narrow = ex.cifar_resnet18(num_classes=10, width=4).to(dev).eval()
    assert list(narrow.state_dict()) == list(ref.state_dict())
    assert tuple(narrow.layer4[1].conv2.weight.shape) == (32, 32, 3, 3)
    w = narrow.layer2[0].conv1.weight.detach().numpy()  # torchvision's init on the rebuilt stages: fan_out 8*9
    assert w.std() == pytest.approx(np.sqrt(2 / 72), rel=0.25)
    with mt.no_grad():
        for size, spatial in [(32, 4), (8, 1)]:  # no stem stride, no max-pool: layer4 is size / 8
            x = mt.randn(2, 3, size, size, device=dev)
            feats = narrow.layer4(narrow.layer3(narrow.layer2(narrow.layer1(narrow.maxpool(narrow.conv1(x))))))
            assert tuple(feats.shape) == (2, 32, spatial, spatial)
            assert tuple(narrow(x).shape) == (2, 10)


def test_digits_at_8x8_are_the_original_digits(ex):
    from sklearn.datasets import load_digits
    train, test = ex.datasets("digits", None, False, 8, flip=False, crop_padding=0)
    images = load_digits().images
    expected = (images * (255.0 / 16.0)).round().astype(np.uint8)
    assert train.data.shape == (1437, 8, 8, 3) and test.data.shape == (360, 8, 8, 3)
    # every training image is one of the 8x8 originals, pixel for pixel
    originals = {e.tobytes() for e in expected}
    assert all(img[..., 0].tobytes() in originals for img in train.data[:50])
    x, y = train[0]
    assert x.shape == (3, 8, 8) and x.dtype == np.float32


def test_ci_sized_digits_run_learns_and_writes_its_files(ex, dev, tmp_path):
    ckpt = tmp_path / "resnet.mtcl"
    args = ["--dataset", "digits", "--device", dev.spec, "--seed", "0", "--checkpoint", str(ckpt)]
    result = CliRunner().invoke(ex.main, args)
    assert result.exit_code == 0, result.output
    accuracy = float(re.search(r"done: digits, test accuracy ([\d.]+)%", result.output).group(1))
    assert accuracy >= 98.0, result.output
    rows = _rows(tmp_path / "resnet.csv")
    epochs = ex.DEFAULTS["digits"]["epochs"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert {"train_loss", "test_accuracy", "images_per_s", "lr", "seconds"} <= set(rows[0])
    assert float(rows[-1]["test_accuracy"]) == pytest.approx(accuracy / 100, abs=1e-4)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    lrs = [float(r["lr"]) for r in rows]  # one cycle: up, then down to far below the peak
    assert max(lrs) <= ex.DEFAULTS["digits"]["lr"] and lrs[-1] < 1e-2 * ex.DEFAULTS["digits"]["lr"]
    state = load(ckpt, map_location=dev)
    assert state["example"] == "cifar_resnet" and state["epoch"] == epochs
    assert state["config"]["width"] == ex.DEFAULTS["digits"]["width"] and state["config"]["flip"] is False
    assert state["extra"]["scheduler"]["last_epoch"] == epochs * 23  # 1437 images, batch 64: 23 steps an epoch
    model = ex.cifar_resnet18(10, state["config"]["width"]).to(dev)
    model.load_state_dict(state["model"])
    _, test = ex.datasets("digits", None, False, state["config"]["image_size"], flip=False, crop_padding=0)
    loader = ex.DataLoader(test, batch_size=500, device=dev)
    assert training.evaluate(model, loader) == pytest.approx(accuracy / 100, abs=1e-4)


def _interrupt_after(monkeypatch, stop):
    real = training.Run.end_epoch

    def end_epoch(self, epoch, **metrics):
        real(self, epoch, **metrics)
        if epoch == stop:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.Run, "end_epoch", end_epoch)


# both augmentations on: the run logic with random crops and flips drawn from the restored generators
TINY = ["--dataset", "digits", "--width", "4", "--crop-padding", "1", "--flip", "--batch-size", "32", "--epochs", "3"]


def test_interrupted_then_resumed_run_equals_the_uninterrupted_one(ex, tiny_digits, dev, tmp_path, monkeypatch):
    """The OneCycle schedule's position and the data order come back with the model and the optimizer."""
    args = TINY + ["--device", dev.spec]
    whole = CliRunner().invoke(ex.main, args + ["--checkpoint", str(tmp_path / "whole.mtcl")])
    assert whole.exit_code == 0, whole.output
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        cut = CliRunner().invoke(ex.main, args + ["--checkpoint", str(tmp_path / "cut.mtcl")])
    assert cut.exit_code == 1 and "epoch 1:" in cut.output and "epoch 2:" not in cut.output
    resumed = CliRunner().invoke(ex.main, ["--device", dev.spec, "--resume", str(tmp_path / "cut.mtcl")])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "epoch 1:" not in resumed.output and "epoch 3:" in resumed.output
    expected = _rows(tmp_path / "whole.csv")
    assert len({r["train_loss"] for r in expected}) == 3
    got = _rows(tmp_path / "cut.csv")
    for column in ["train_loss", "test_accuracy", "lr"]:
        assert [r[column] for r in got] == [r[column] for r in expected], column


def test_the_schedule_fixes_epochs_and_batch_size_on_resume(ex, tiny_digits, dev, tmp_path):
    ckpt = str(tmp_path / "r.mtcl")
    args = TINY[:-2] + ["--device", dev.spec]
    first = CliRunner().invoke(ex.main, args + ["--epochs", "1", "--checkpoint", ckpt])
    assert first.exit_code == 0, first.output
    longer = CliRunner().invoke(ex.main, ["--device", dev.spec, "--resume", ckpt, "--epochs", "2"])
    assert longer.exit_code == 1 and f"--epochs 2 differs from 1 in the checkpoint {ckpt}" in longer.output
    batch = CliRunner().invoke(ex.main, ["--device", dev.spec, "--resume", ckpt, "--batch-size", "16"])
    assert batch.exit_code == 1 and "--batch-size 16 differs from 32" in batch.output
    done = CliRunner().invoke(ex.main, ["--device", dev.spec, "--resume", ckpt])
    assert done.exit_code == 0 and done.output.startswith(f"nothing to do: {ckpt} is already at epoch 1")


def test_amp_run_scales_and_saves_the_scaler(ex, tiny_digits, dev, tmp_path):
    """--amp on any device (default on GPUs with half): autocast forward, GradScaler steps, its scale saved."""
    ckpt = tmp_path / "amp.mtcl"
    result = CliRunner().invoke(ex.main, TINY[:-1] + ["1", "--device", dev.spec, "--amp", "--checkpoint", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert "amp on" in result.output
    state = load(ckpt, map_location=dev)
    assert state["config"]["amp"] is True and state["extra"]["scaler"]["scale"] > 0
    assert np.isfinite(float(_rows(tmp_path / "amp.csv")[0]["train_loss"]))


def test_amp_default_follows_the_device_and_plot(ex, tiny_digits, dev, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    result = CliRunner().invoke(ex.main, TINY[:-1] + ["1", "--device", dev.spec, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    want = dev.profile.fp16 and not dev.is_cpu
    assert ("amp on" if want else "amp off") in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot {png}" in result.output


def test_image_size_is_for_digits_only(ex, dev, tmp_path):
    result = CliRunner().invoke(ex.main, ["--device", dev.spec, "--image-size", "8", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "--image-size 8: CIFAR-10's images are 32x32" in result.output


def test_bad_device_is_one_line(ex, monkeypatch):
    monkeypatch.setenv("MINITORCH_CL_DEVICE", "bogus")
    result = CliRunner().invoke(ex.main, [])
    assert result.exit_code == 1
    assert result.output == ("Error: no OpenCL device matches MINITORCH_CL_DEVICE='bogus' "
                             "(`minitorch-cl devices` lists them)\n")
