"""mt.save / mt.load round trips, atomic writes, mismatch messages, and the example's --resume."""
import os

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn, optim
from minitorch_cl.serialization import load, save


class _Small(nn.Module):
    def __init__(self, hidden=4):
        super().__init__()
        self.fc1 = nn.Linear(3, hidden)
        self.fc2 = nn.Linear(hidden, 2)


def test_round_trip_model_and_optimizer(dev, tmp_path):
    model = _Small().to(dev)
    opt = optim.Adam(model.parameters(), lr=0.01)
    for p in model.parameters():
        p.grad = mt.ones(*p.shape, device=dev)
    opt.step()
    path = tmp_path / "ckpt.mtcl"
    save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "note": "hi",
          "shape": (1, 2), "labels": mt.tensor([1, 2], device=dev)}, path)
    state = load(path, map_location=dev)
    assert state["epoch"] == 3 and state["note"] == "hi" and state["shape"] == (1, 2)
    assert state["labels"].dtype is mt.int64
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(state["model"][k].numpy(), v.numpy())
    other = _Small().to(dev)
    other.load_state_dict(state["model"])
    opt2 = optim.Adam(other.parameters(), lr=0.5)
    opt2.load_state_dict(state["optimizer"])
    assert opt2.param_groups[0]["lr"] == 0.01
    assert opt2.state[other.fc1.weight]["step"] == 1
    np.testing.assert_array_equal(opt2.state[other.fc1.weight]["exp_avg"].numpy(),
                                  opt.state[model.fc1.weight]["exp_avg"].numpy())


def test_save_is_atomic(dev, tmp_path):
    path = tmp_path / "ckpt.mtcl"
    save({"a": mt.ones(2, device=dev)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot store"):
        save({"a": mt.zeros(2, device=dev), "bad": object()}, path)
    assert path.read_bytes() == before  # the old checkpoint survives a failed save
    assert sorted(os.listdir(tmp_path)) == ["ckpt.mtcl"]  # and no temporary file is left behind


def test_load_errors(dev, tmp_path):
    bad = tmp_path / "bad.mtcl"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a minitorch_cl checkpoint"):
        load(bad)
    path = tmp_path / "small.mtcl"
    save({"model": _Small(hidden=4).to(dev).state_dict()}, path)
    wrong = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2)).to(dev)
    with pytest.raises(RuntimeError) as err:
        wrong.load_state_dict(load(path, map_location=dev)["model"])
    msg = str(err.value)
    assert "missing keys: 0.weight" in msg and "unexpected keys: fc1.weight" in msg
    bigger = _Small(hidden=5).to(dev)
    with pytest.raises(RuntimeError, match=r"fc1.weight: checkpoint \(4, 3\) vs model \(5, 3\)"):
        bigger.load_state_dict(load(path, map_location=dev)["model"])


def test_example_resume(dev, tmp_path, monkeypatch, example):
    pytest.importorskip("sklearn")
    from click.testing import CliRunner
    example = example("cifar_convnet")
    # a tiny slice of digits keeps this a test of the resume logic, not of learning
    real = example.Digits

    def tiny(train=True, transform=None, **kw):
        ds = real(train=train, transform=transform)
        keep = slice(0, 128 if train else 64)
        ds.data, ds.targets = ds.data[keep], ds.targets[keep]
        return ds

    monkeypatch.setattr(example, "Digits", tiny)
    ckpt = str(tmp_path / "net.mtcl")
    args = ["--dataset", "digits", "--device", dev.spec, "--checkpoint", ckpt, "--batch-size", "64"]
    runner = CliRunner()
    first = runner.invoke(example.main, args + ["--epochs", "1"])
    assert first.exit_code == 0, first.output
    assert "epoch 1:" in first.output and "done: digits" in first.output
    state = load(ckpt, map_location=dev)
    assert state["epoch"] == 1
    second = runner.invoke(example.main, args + ["--epochs", "2", "--resume", ckpt])
    assert second.exit_code == 0, second.output
    assert f"resumed from {ckpt} after 1 epoch\n" in second.output
    assert "epoch 2:" in second.output and "epoch 1:" not in second.output
    assert load(ckpt, map_location=dev)["epoch"] == 2
    assert (tmp_path / "net.csv").read_text().count("\n") == 3  # header and two epochs, across the resume


def test_checkpoint_mode_follows_the_umask(dev, tmp_path):
    old = os.umask(0o022)
    try:
        save({"a": mt.ones(2, device=dev)}, tmp_path / "ckpt.mtcl")
    finally:
        os.umask(old)
    assert (tmp_path / "ckpt.mtcl").stat().st_mode & 0o777 == 0o644
