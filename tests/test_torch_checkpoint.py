"""mt.load of torch.save's zip files (without torch importable), the unpickler's refusals, and safetensors."""
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.serialization import UnsafeCheckpointError

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import numpy as np
import minitorch_cl as mt
obj = mt.load(sys.argv[1])
want = np.load(sys.argv[2])
def flat(o, name=''):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from flat(v, f'{name}/{k}')
    elif isinstance(o, (list, tuple)):
        for i, v in enumerate(o):
            yield from flat(v, f'{name}/{i}')
    else:
        yield name, o
got = dict(flat(obj))
assert sorted(got) == sorted(want.files), (sorted(got), want.files)
for k, v in got.items():
    if isinstance(v, mt.Tensor):
        assert want[k].shape == () or tuple(v.shape) == want[k].shape, (k, v.shape, want[k].shape)
        np.testing.assert_array_equal(v.detach().numpy().reshape(want[k].shape), want[k], err_msg=k)
        print(k, v.dtype.name, type(v).__name__)
    else:
        assert v == want[k], (k, v, want[k])
assert type(obj['model']).__name__ == 'OrderedDict'
assert 'torch' not in sys.modules or sys.modules['torch'] is None
print('OK')
"""


def _flat(o, name=""):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _flat(v, f"{name}/{k}")
    elif isinstance(o, (list, tuple)):
        for i, v in enumerate(o):
            yield from _flat(v, f"{name}/{i}")
    else:
        yield name, o


def _torch_checkpoint(torch, path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Embedding(5, 2))
    model[1](torch.randn(6, 4))  # running stats and num_batches_tracked (a 0-d int64) move
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "model": model.state_dict(),
        "epoch": 7, "name": "run", "blob": b"\x00\xffbytes",
        "extra": [base.t(), base[1:, ::2], base[2], torch.tensor([1.5, -2.0], dtype=torch.float16),
                  torch.tensor([1.0, 3.5], dtype=torch.bfloat16), torch.tensor([True, False, True]),
                  torch.tensor([[1, -2]], dtype=torch.int32), torch.tensor([0.1, 0.2], dtype=torch.float64),
                  torch.tensor([200, 3], dtype=torch.uint8), torch.nn.Parameter(torch.ones(2, 2)),
                  torch.zeros(0, 3)],
        "nested": {"a": {"b": (torch.tensor(3.25), 4)}},
    }
    torch.save(obj, path)
    return obj


def test_torch_zip_loads_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    pt = tmp_path / "ckpt.pt"
    obj = _torch_checkpoint(torch, pt)
    wide = (torch.bfloat16,)  # minitorch_cl has float32 for it
    want = {k: (v.detach().float().numpy() if v.dtype in wide else v.detach().numpy())
            if isinstance(v, torch.Tensor) else v for k, v in _flat(obj)}
    np.savez(tmp_path / "want.npz", **want)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", _CHILD, str(pt), str(tmp_path / "want.npz")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.endswith("OK\n"), res.stdout + res.stderr
    assert "/model/1.num_batches_tracked int64" in res.stdout
    assert "/extra/5 bool" in res.stdout and "/extra/3 float16" in res.stdout
    assert "/extra/9 float32 Parameter" in res.stdout
    assert " uint8" in res.stdout  # small integer dtypes keep their dtype


def test_torch_state_dict_into_model(dev, tmp_path):
    torch = pytest.importorskip("torch")
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    torch.save(tmodel.state_dict(), tmp_path / "m.pth")
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).to(dev)
    model.load_state_dict(mt.load(tmp_path / "m.pth", map_location=dev, weights_only=True))
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    want = tmodel(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(model(mt.tensor(x, device=dev)).detach().numpy(), want, rtol=1e-5, atol=1e-6)


class _Evil:
    def __reduce__(self):
        return os.system, ("echo pwned > pwned.txt",)


def _zip_with_pickle(path, payload):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")


@pytest.mark.parametrize("payload,name", [
    (pickle.dumps({"w": _Evil()}, protocol=2), "system"),
    (pickle.dumps(eval, protocol=2), "builtins.eval"),
    (pickle.dumps(np.ones(2), protocol=2), "numpy"),
])
def test_unsafe_pickles_refused(tmp_path, monkeypatch, payload, name):
    monkeypatch.chdir(tmp_path)
    _zip_with_pickle(tmp_path / "evil.pt", payload)
    with pytest.raises(UnsafeCheckpointError, match=rf"refusing to load global \S*{name}"):
        mt.load(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned.txt").exists()


def test_rebuild_from_a_non_storage_refused(tmp_path):
    """_rebuild_tensor_v2 called by hand on a plain list with a huge offset: refused before any read."""
    args = pickle.dumps(([1.0, 2.0], 10 ** 9, (2,), (1,), False, None), protocol=2)[2:-1]  # pushes the tuple
    _zip_with_pickle(tmp_path / "fake.pt", b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R.")
    with pytest.raises(UnsafeCheckpointError, match="rebuilt from a list"):
        mt.load(tmp_path / "fake.pt")


def test_tensor_outside_its_storage_refused(tmp_path):
    """A hand-written pickle whose tensor (size 3) reads past its 2-element storage."""
    pid = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQ"
    pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"K\x00K\x03\x85K\x01\x85\x89NtR."
    with zipfile.ZipFile(tmp_path / "oob.pt", "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/data/0", np.array([1.0, 2.0], "<f4").tobytes())
    with pytest.raises(ValueError, match=r"size \(3,\), stride \(1,\), offset 0 does not fit its storage of 2"):
        mt.load(tmp_path / "oob.pt")


def test_damaged_torch_zip(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(3)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, zipfile.ZipFile(tmp_path / "bad.pt", "w") as dst:
        for item in src.namelist():
            if "/data/" not in item:
                dst.writestr(item, src.read(item))
    with pytest.raises(ValueError, match=r"storage \S+/data/0 is missing"):
        mt.load(tmp_path / "bad.pt")
    torch.save({"w": torch.ones(3)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="legacy format"):
        mt.load(tmp_path / "legacy.pt")


def test_safetensors_round_trip(dev, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).to(dev)
    sd = dict(model.state_dict(), mask=mt.tensor([True, False], device=dev),
              ids=mt.tensor([3, 4], dtype=mt.int64, device=dev), half=mt.tensor([1.5], dtype=mt.float16, device=dev))
    path = tmp_path / "m.safetensors"
    mt.save(sd, path)
    raw = st.load_file(str(path))  # readable by the safetensors package itself
    assert raw["mask"].dtype == np.bool_ and raw["ids"].dtype == np.int64 and raw["half"].dtype == np.float16
    back = mt.load(path, map_location=dev)
    assert sorted(back) == sorted(sd)
    for k, v in sd.items():
        assert back[k].dtype is v.dtype, k
        np.testing.assert_array_equal(back[k].numpy(), v.numpy())
    other = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).to(dev)
    other.load_state_dict({k: v for k, v in back.items() if k in model.state_dict()})
    with pytest.raises(TypeError, match="'nested' is a dict"):
        mt.save({"nested": {"a": 1}}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_safetensors_written_by_the_package(dev, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((3, 5)).astype(np.float32), "b": np.arange(4, dtype=np.int32),
              "steps": np.array(12, dtype=np.int64), "f64": np.array([0.5, 0.25])}
    st.save_file(arrays, str(tmp_path / "pkg.safetensors"), metadata={"format": "np"})
    back = mt.load(tmp_path / "pkg.safetensors", map_location=dev)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k].numpy().reshape(v.shape), v)
    assert back["b"].dtype is mt.int32 and back["f64"].dtype is mt.float64


def test_safetensors_from_torch_with_bfloat16(dev, tmp_path):
    torch = pytest.importorskip("torch")
    stt = pytest.importorskip("safetensors.torch")
    w = torch.tensor([[1.5, -2.25], [3.0, 1e-3]], dtype=torch.bfloat16)
    stt.save_file({"w": w, "b": torch.arange(3, dtype=torch.int64)}, str(tmp_path / "t.safetensors"))
    back = mt.load(tmp_path / "t.safetensors", map_location=dev)
    assert back["w"].dtype is mt.float32 and back["b"].dtype is mt.int64
    np.testing.assert_array_equal(back["w"].numpy(), w.float().numpy())
    np.testing.assert_array_equal(back["b"].numpy(), [0, 1, 2])


def test_torch_optimizer_state_resumes(dev, tmp_path):
    """An Adam state_dict saved by torch (its 'step' is a 0-d tensor) continues here as it would in torch."""
    torch = pytest.importorskip("torch")
    from minitorch_cl import optim
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(5).astype(np.float32)
    grads = [rng.standard_normal(5).astype(np.float32) for _ in range(4)]
    tp = torch.nn.Parameter(torch.tensor(p0))
    topt = torch.optim.Adam([tp], lr=0.01)
    for g in grads[:2]:
        tp.grad = torch.tensor(g)
        topt.step()
    torch.save({"p": tp.detach(), "opt": topt.state_dict()}, tmp_path / "ckpt.pt")
    for g in grads[2:]:
        tp.grad = torch.tensor(g)
        topt.step()
    ckpt = mt.load(tmp_path / "ckpt.pt", map_location=dev)
    p = nn.Parameter(ckpt["p"])
    opt = optim.Adam([p], lr=0.5)
    opt.load_state_dict(ckpt["opt"])
    assert opt.param_groups[0]["lr"] == 0.01 and opt.state[p]["step"] == 2
    for g in grads[2:]:
        p.grad = mt.tensor(g, device=dev)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
