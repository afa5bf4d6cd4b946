"""vision.models.resnet against torchvision: eval outputs with the same weights, one training step's
gradients, torchvision's checkpoint files read without PyTorch, and the pretrained-weights path (the
hub's cache, the hash in the file name) against a local HTTP server."""
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import hub, nn
from minitorch_cl.vision import models
from minitorch_cl.vision.models import resnet as R
from torchvision_ref import copy_weights, import_torchvision

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tv():
    return import_torchvision()


def _randomize_norms(torch_model, seed=0):
    """Running statistics and affine parameters away from 0/1, so eval mode tests them."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)
    return torch_model


def _image(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _assert_close(got, want, what="output"):
    """float32 through a chain of GEMMs: error relative to the reference's scale."""
    err, tol = np.abs(got - want).max(), 1e-4 * np.abs(want).max() + 1e-5
    assert err <= tol, f"{what}: max abs error {err:.3g} > {tol:.3g}"


def _eval_both(torch_model, our_model, x, dev):
    import torch
    torch_model.eval()
    copy_weights(torch_model, our_model)
    our_model.to(dev).eval()
    with torch.no_grad():
        want = torch_model(torch.from_numpy(x)).numpy()
    with mt.no_grad():
        got = our_model(mt.tensor(x, device=dev)).numpy()
    assert got.shape == want.shape
    _assert_close(got, want)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_eval_output_equals_torchvision(tv, dev, name):
    import torch
    torch.manual_seed(0)
    _eval_both(_randomize_norms(getattr(tv.models, name)()), getattr(models, name)(), _image((2, 3, 32, 32)), dev)


BUILDERS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]


def _resnet_args(module, builder, monkeypatch):
    """What builder() passes to module.ResNet: (block name, layers, kwargs); no network is built."""
    calls = []

    class Recorder:
        def __init__(self, block, layers, **kwargs):
            calls.append((block.__name__, list(layers), kwargs))

    monkeypatch.setattr(module, "ResNet", Recorder)
    monkeypatch.setattr(module, "_ovewrite_named_param", lambda kw, k, v: kw.setdefault(k, v), raising=False)
    builder(num_classes=5)
    return calls


@pytest.mark.parametrize("name", BUILDERS)
def test_builders_pass_torchvisions_configuration(tv, name, monkeypatch):
    """Each builder's block, blocks per stage and ResNet arguments are torchvision's; the ResNet they
    build is compared with torchvision's for every argument below, and whole for four of them."""
    ours = _resnet_args(R, getattr(models, name), monkeypatch)
    theirs = _resnet_args(tv.models.resnet, getattr(tv.models, name), monkeypatch)
    assert len(ours) == 1 and ours == theirs


@pytest.mark.parametrize("block, config", [
    ("Bottleneck", dict(groups=4, width_per_group=8)),                  # ResNeXt's grouped 3x3
    ("Bottleneck", dict(width_per_group=96)),                           # a wide ResNet's block
    ("Bottleneck", dict(replace_stride_with_dilation=[False, True, True])),
    ("BasicBlock", dict(num_classes=7, zero_init_residual=True)),
    ("Bottleneck", dict(zero_init_residual=True)),
    ("BasicBlock", dict(norm_layer="groupnorm")),
], ids=["grouped", "wide", "dilated", "basic-zero-init", "bottleneck-zero-init", "groupnorm"])
def test_constructor_arguments_equal_torchvisions(tv, dev, block, config):
    import torch
    ours_cfg, theirs_cfg = dict(config), dict(config)
    if config.get("norm_layer") == "groupnorm":
        ours_cfg["norm_layer"] = partial(nn.GroupNorm, 4)
        theirs_cfg["norm_layer"] = partial(torch.nn.GroupNorm, 4)
    torch.manual_seed(1)
    theirs = tv.models.resnet.ResNet(getattr(tv.models.resnet, block), [1, 2, 1, 1], **theirs_cfg)
    ours = R.ResNet(getattr(R, block), [1, 2, 1, 1], **ours_cfg)
    if config.get("zero_init_residual"):
        last = "bn3" if block == "Bottleneck" else "bn2"
        zeroed = [k for k, v in ours.state_dict().items() if k.endswith(f"{last}.weight")]
        assert len(zeroed) == 5 and all(not ours.state_dict()[k].numpy().any() for k in zeroed)
    else:
        _randomize_norms(theirs)
    _eval_both(theirs, ours, _image((1, 3, 33, 33), seed=2), dev)


def test_init_is_torchvisions():
    """kaiming_normal_(fan_out, relu) for convolutions, BatchNorm at weight 1 and bias 0, Linear's default."""
    model = models.resnet18(num_classes=10)
    conv = model.layer3[0].conv1.weight.detach().numpy()  # (256, 128, 3, 3): fan_out = 256 * 9
    assert abs(conv.mean()) < 3e-4 and conv.std() == pytest.approx(np.sqrt(2 / (256 * 9)), rel=0.02)
    stem = model.conv1.weight.detach().numpy()  # (64, 3, 7, 7): fan_out = 64 * 49
    assert stem.std() == pytest.approx(np.sqrt(2 / (64 * 49)), rel=0.05)
    for name, bn in [("bn1", model.bn1), ("layer4.1.bn2", model.layer4[1].bn2)]:
        assert (bn.weight.detach().numpy() == 1).all() and (bn.bias.detach().numpy() == 0).all(), name
    fc = model.fc.weight.detach().numpy()
    assert fc.shape == (10, 512) and np.abs(fc).max() <= 1 / np.sqrt(512) and fc.std() > 0.5 / np.sqrt(3 * 512)
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        models.resnet18(groups=2)
    with pytest.raises(NotImplementedError, match="Dilation > 1"):
        models.resnet18(replace_stride_with_dilation=[False, False, True])
    with pytest.raises(ValueError, match="3-element"):
        models.resnet50(replace_stride_with_dilation=[True])


def test_training_step_gradients_equal_torchvisions(tv, dev):
    """Train mode (BatchNorm on batch statistics), CrossEntropyLoss, batch 2: every parameter's gradient,
    the loss, and the running statistics the step leaves."""
    import torch
    torch.manual_seed(3)
    theirs = _randomize_norms(tv.models.resnet18(num_classes=10), seed=3)
    ours = models.resnet18(num_classes=10)
    copy_weights(theirs, ours)
    ours.to(dev).train()
    theirs.train()
    x, y = _image((2, 3, 48, 48), seed=4), np.array([3, 7])
    loss_t = torch.nn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y))
    loss_t.backward()
    loss = nn.CrossEntropyLoss()(ours(mt.tensor(x, device=dev)), mt.tensor(y, device=dev))
    loss.backward()
    assert loss.item() == pytest.approx(loss_t.item(), rel=1e-4)
    torch_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        _assert_close(p.grad.numpy(), torch_params[name].grad.numpy(), what=f"grad of {name}")
    torch_state = theirs.state_dict()
    for name, v in ours.state_dict().items():
        if "running" in name or "num_batches" in name:
            _assert_close(v.numpy(), torch_state[name].numpy(), what=name)


def test_dilated_resnet_output_stride_8(dev):
    """replace_stride_with_dilation keeps layer3 and layer4 at layer2's resolution."""
    model = R.ResNet(R.Bottleneck, [1, 1, 1, 1], replace_stride_with_dilation=[False, True, True]).to(dev).eval()
    with mt.no_grad():
        x = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.conv1(
            mt.tensor(_image((1, 3, 64, 64)), device=dev)))))))
    assert tuple(x.shape) == (1, 2048, 8, 8)


# ---- torchvision's checkpoint files, read with PyTorch unimportable -------------------------------------
NO_TORCH_LOAD = """
import sys
sys.modules["torch"] = None  # `import torch` now raises ImportError: the user's machine without PyTorch
import numpy as np
import minitorch_cl as mt
from minitorch_cl.vision.models import resnet18
path, out = sys.argv[1:]
model = resnet18()
model.load_state_dict(mt.load(path))
model.eval()
with mt.no_grad():
    y = model(mt.tensor(np.load(out + ".x.npy")))
np.save(out, y.numpy())
print("torch" in sys.modules and sys.modules["torch"] is None)
"""


@pytest.fixture(scope="module")
def torch_resnet18(tv, tmp_path_factory):
    """torchvision's resnet18 (random BatchNorm statistics) and its torch.save'd state_dict as its
    hub name: resnet18-<first 8 hex digits of the file's SHA-256>.pth."""
    import torch
    torch.manual_seed(5)
    model = _randomize_norms(tv.models.resnet18(), seed=5).eval()
    folder = tmp_path_factory.mktemp("served")
    tmp = folder / "resnet18.pth"
    torch.save(model.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"resnet18-{digest[:8]}.pth"
    tmp.rename(path)
    return model, path


def _torch_out(model, x):
    import torch
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_torchvision_checkpoint_loads_without_torch(torch_resnet18, tmp_path, dev):
    model, path = torch_resnet18
    x = _image((1, 3, 48, 48), seed=6)
    out = tmp_path / "out.npy"
    np.save(str(out) + ".x.npy", x)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MINITORCH_CL_DEVICE": dev.spec}
    result = subprocess.run([sys.executable, "-c", NO_TORCH_LOAD, str(path), str(out)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "True"
    _assert_close(np.load(out), _torch_out(model, x))


# ---- the pretrained-weights path: hub cache, hash check, against a local server -------------------------
class _Server:
    """http.server on 127.0.0.1 serving one folder, counting the requests per path."""

    def __init__(self, folder):
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(torch_resnet18):
    s = _Server(torch_resnet18[1].parent)
    yield s
    s.close()


@pytest.fixture
def hub_home(tmp_path, monkeypatch):
    """TORCH_HOME at tmp_path, set_dir cleared: the cache is tmp_path/hub/checkpoints."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(hub, "_hub_dir", None)
    return tmp_path / "hub" / "checkpoints"


def _point(monkeypatch, member, url):
    monkeypatch.setattr(member.value, "url", url)


def test_pretrained_weights_download_once_and_equal_torchvision(torch_resnet18, server, hub_home, monkeypatch,
                                                                 capfd, dev):
    model, path = torch_resnet18
    member = models.ResNet18_Weights.IMAGENET1K_V1
    _point(monkeypatch, member, server.url(path.name))
    ours = models.resnet18(weights=member).to(dev).eval()
    assert server.requests == [f"/{path.name}"]
    assert sorted(os.listdir(hub_home)) == [path.name]
    assert (hub_home / path.name).read_bytes() == path.read_bytes()
    assert "Downloading" in capfd.readouterr().err
    again = models.resnet18(weights="IMAGENET1K_V1", progress=False)  # the cached file: no request
    assert server.requests == [f"/{path.name}"]
    x = _image((2, 3, 40, 40), seed=7)
    want = _torch_out(model, x)
    with mt.no_grad():
        _assert_close(ours(mt.tensor(x, device=dev)).numpy(), want)
        _assert_close(again.to(dev).eval()(mt.tensor(x, device=dev)).numpy(), want)


def test_damaged_download_raises_and_leaves_nothing(torch_resnet18, tmp_path, hub_home, monkeypatch):
    _, path = torch_resnet18
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "resnet18-0123abcd.pth").write_bytes(path.read_bytes())  # its hash is not 0123abcd
    s = _Server(folder)
    try:
        _point(monkeypatch, models.ResNet18_Weights.IMAGENET1K_V1, s.url("resnet18-0123abcd.pth"))
        with pytest.raises(RuntimeError, match='invalid hash value .*expected "0123abcd"'):
            models.resnet18(weights=models.ResNet18_Weights.DEFAULT, progress=False)
        assert s.requests == ["/resnet18-0123abcd.pth"]
    finally:
        s.close()
    assert not hub_home.exists() or os.listdir(hub_home) == []


def test_missing_file_and_unreachable_server_are_download_errors(hub_home, server, tmp_path):
    with pytest.raises(RuntimeError, match="could not download .*404"):
        hub.load_state_dict_from_url(server.url("resnet18-00000000.pth"), check_hash=True, progress=False)
    assert not hub_home.exists() or os.listdir(hub_home) == []
    with pytest.raises(RuntimeError, match="could not download"):
        hub.download_url_to_file("http://127.0.0.1:9/x.pth", tmp_path / "x.pth", progress=False)
    assert not (tmp_path / "x.pth").exists()


def test_concurrent_downloads_do_not_share_a_temporary_file(torch_resnet18, server, tmp_path):
    """Another process's download in progress (its .part file) is left alone, and this one completes."""
    _, path = torch_resnet18
    dest = tmp_path / path.name
    other = tmp_path / f"{path.name}.part"
    other.write_bytes(b"another process's partial download")
    hub.download_url_to_file(server.url(path.name), dest, hash_prefix=path.name.split("-")[1][:8], progress=False)
    assert dest.read_bytes() == path.read_bytes()
    assert other.read_bytes() == b"another process's partial download"
    assert sorted(os.listdir(tmp_path)) == sorted([dest.name, other.name])


def test_hub_directory_is_torchs(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "_hub_dir", None)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.get_dir() == str(tmp_path / "xdg" / "torch" / "hub")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hub.get_dir() == os.path.join(os.path.expanduser("~"), ".cache", "torch", "hub")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert hub.get_dir() == str(tmp_path / "th" / "hub")
    hub.set_dir(tmp_path / "mine")
    assert hub.get_dir() == str(tmp_path / "mine")


def test_set_dir_model_dir_file_name_and_hash_unchecked(torch_resnet18, server, tmp_path, monkeypatch):
    _, path = torch_resnet18
    monkeypatch.setattr(hub, "_hub_dir", None)
    hub.set_dir(tmp_path / "hubdir")
    state = hub.load_state_dict_from_url(server.url(path.name), progress=False)
    assert (tmp_path / "hubdir" / "checkpoints" / path.name).is_file() and "fc.weight" in state
    # without check_hash a name that is no hash is not checked; file_name renames it in the cache
    bad = tmp_path / "served2"
    bad.mkdir()
    (bad / "weights-ffffffff.pth").write_bytes(path.read_bytes())
    s = _Server(bad)
    try:
        hub.load_state_dict_from_url(s.url("weights-ffffffff.pth"), model_dir=tmp_path / "md", file_name="w.pth",
                                     progress=True)
    finally:
        s.close()
    assert os.listdir(tmp_path / "md") == ["w.pth"]


def test_weights_enum_api(tv):
    W = models.ResNet50_Weights
    assert W.DEFAULT is W.IMAGENET1K_V2 and W.verify("IMAGENET1K_V1") is W.IMAGENET1K_V1
    assert W.verify("ResNet50_Weights.IMAGENET1K_V2") is W.IMAGENET1K_V2 and W.verify(None) is None
    with pytest.raises(ValueError, match="IMAGENET1K_V3"):
        W.verify("IMAGENET1K_V3")
    with pytest.raises(ValueError, match="num_classes=10 conflicts"):
        models.resnet18(weights="DEFAULT", num_classes=10)
    with pytest.raises(ValueError, match="is not a ResNet18_Weights"):
        models.resnet18(weights="IMAGENET1K_V2")
    assert models.get_model("resnet18", num_classes=3).fc.out_features == 3
    assert models.get_model_weights("resnet18") is models.ResNet18_Weights
    for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]:
        ours, theirs = models.get_model_weights(name), tv.models.get_model_weights(name)
        assert list(ours.__members__) == list(theirs.__members__), name
        for member in ours:
            ref = theirs[member.name]
            assert member.url == ref.url and member.transforms.keywords == ref.transforms.keywords
            assert {k: member.meta[k] for k in ref.meta if k != "_docs"} == \
                   {k: v for k, v in ref.meta.items() if k != "_docs"}, member


def test_weights_transforms_are_torchvisions_preset(tv):
    """resize the smaller edge, centre crop, [0, 1], ImageNet normalization (on an image needing no
    antialiasing: upscaled, where torchvision's antialias changes nothing)."""
    import torch
    img = np.random.default_rng(8).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    ours = models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    theirs = tv.models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    got = ours(img)
    want = theirs(torch.from_numpy(img).permute(2, 0, 1)).numpy()
    assert got.shape == want.shape == (3, 224, 224)
    np.testing.assert_allclose(got, want, atol=2e-2)  # torchvision rounds the resized uint8 image to uint8
