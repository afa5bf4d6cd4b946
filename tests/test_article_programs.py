"""The founding article's four PyTorch programs (examples/article/) run on minitorch_cl with only
their import lines swapped (minitorch_cl.porting), and give PyTorch's outputs for the same weights."""
import importlib.util
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.porting import swap_imports, swap_line

ARTICLE = Path(__file__).resolve().parent.parent / "examples" / "article"
PROGRAMS = ["cnn_forward", "lstm", "transformer", "cifar10"]


def _swapped(name, folder):
    """examples/article/<name>.py with its imports swapped, written into folder; (path, module)."""
    source = (ARTICLE / f"{name}.py").read_text()
    ported = swap_imports(source)
    changed = [(a, b) for a, b in zip(source.splitlines(), ported.splitlines()) if a != b]
    assert changed and all(a.lstrip().startswith(("import ", "from ")) for a, _ in changed)
    path = folder / f"{name}_cl.py"
    path.write_text(ported)
    spec = importlib.util.spec_from_file_location(f"{name}_cl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def _torch_module(name):
    spec = importlib.util.spec_from_file_location(f"{name}_torch", ARTICLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(path, call, cwd):
    code = f"import sys; sys.path.insert(0, {str(path.parent)!r}); import {path.stem} as m; {call}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert out.returncode == 0, f"exit status {out.returncode}; stdout:\n{out.stdout[-1000:]}\nstderr:\n{out.stderr[-3000:]}"
    return out.stdout


def _load_torch_weights(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def test_only_import_lines_change():
    assert swap_line("import torch") == "import minitorch_cl as torch"
    assert swap_line("import torch.nn.functional as F") == "import minitorch_cl.nn.functional as F"
    assert swap_line("from torch.utils.data import DataLoader") == "from minitorch_cl.utils.data import DataLoader"
    assert swap_line("import torchvision.transforms as transforms") == \
        "import minitorch_cl.vision.transforms as transforms"
    assert swap_line("import numpy as np") == "import numpy as np"
    with pytest.raises(ValueError, match="import torch.nn as NAME"):
        swap_line("import torch.nn")


def test_cnn_forward(tmp_path):
    path, ours = _swapped("cnn_forward", tmp_path)
    assert "output (1, 1000)" in _run(path, "m.main(batch=1, repeats=1)", tmp_path)
    torch = pytest.importorskip("torch")
    theirs = _torch_module("cnn_forward").CNN().eval()
    model = ours.CNN().eval()
    _load_torch_weights(model, theirs)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with mt.no_grad():
        got = model(mt.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_lstm(tmp_path):
    path, ours = _swapped("lstm", tmp_path)
    assert "h_n (1, 8, 32)" in _run(path, "m.main(seq=12, batch=8, input_size=24, hidden=32, repeats=1)", tmp_path)
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LSTM(24, 32)
    lstm = mt.nn.LSTM(24, 32)
    _load_torch_weights(lstm, theirs)
    x = np.random.default_rng(1).standard_normal((12, 8, 24)).astype(np.float32)
    out_t, (h_t, _) = theirs(torch.from_numpy(x))
    out, (h, _) = lstm(mt.tensor(x))
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h.detach().numpy(), h_t.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_transformer(tmp_path):
    path, ours = _swapped("transformer", tmp_path)
    small = "src_len=10, tgt_len=6, batch=2, d_model=32, nhead=4, layers=2"
    assert "output (6, 2, 32)" in _run(path, f"m.main({small})", tmp_path)
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(32, 4, 2, 2, dim_feedforward=64, dropout=0.0).eval()
    model = mt.nn.Transformer(32, 4, 2, 2, dim_feedforward=64, dropout=0.0).eval()
    _load_torch_weights(model, theirs)
    rng = np.random.default_rng(2)
    src, tgt = rng.standard_normal((10, 2, 32)).astype(np.float32), rng.standard_normal((6, 2, 32)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(src), torch.from_numpy(tgt)).numpy()
    with mt.no_grad():
        got = model(mt.tensor(src), mt.tensor(tgt)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def _write_cifar(root, n=40, seed=0):
    """root/cifar-10-batches-py in CIFAR-10's real pickle format, n images a batch file."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f, protocol=2)


def test_cifar10_training(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "data")  # ./data, where the program's download=True finds it present
    path, ours = _swapped("cifar10", tmp_path)
    out = _run(path, "m.main(epochs=1, batch_size=32)", tmp_path)
    assert "epoch 1: loss" in out and "test accuracy" in out
    torch = pytest.importorskip("torch")
    for name in ("torchvision", "torchvision.datasets", "torchvision.transforms"):  # Net needs neither
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name) or types.ModuleType(name))
    theirs = _torch_module("cifar10").Net()
    net = ours.Net()
    _load_torch_weights(net, theirs)
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(net(mt.tensor(x)).detach().numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
