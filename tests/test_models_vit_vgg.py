"""vision.models' ViT, VGG, AlexNet and SqueezeNet against torchvision's: state_dict names and order,
eval-mode outputs with the same weights, a ViT training step's gradients, the init and the weights enums."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.vision import models as M
from minitorch_cl.vision.models import vision_transformer as vit_mod
from minitorch_cl.vision.models._meta import _IMAGENET_CATEGORIES
from torchvision_ref import copy_weights, import_torchvision

torch = pytest.importorskip("torch")
try:
    tv = import_torchvision()
except pytest.skip.Exception as e:
    pytest.skip(str(e), allow_module_level=True)


def _close(got, ref):
    """float32 through a GEMM chain: max abs error within 1e-4 of the output's scale."""
    got = got.detach().numpy() if isinstance(got, mt.Tensor) else got
    ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
    assert got.shape == ref.shape
    err, scale = np.abs(got - ref).max(), np.abs(ref).max()
    assert scale > 0, "a zero reference output proves nothing"
    assert err <= 1e-4 * scale + 1e-5, f"max abs error {err} vs output scale {scale}"


def _perturb(torch_model, names=None, std=0.05, seed=0):
    """Give zero-initialised parameters (and BatchNorm's running statistics) values, so outputs depend on them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in torch_model.state_dict().items():
            if t.dtype != torch.float32 or (names is not None and not any(n in name for n in names)):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=g) * std)
    return torch_model


def _pair(torch_model, our_model):
    """Both in eval mode with the same weights; the names must come in torchvision's order."""
    assert list(our_model.state_dict()) == list(torch_model.state_dict())
    copy_weights(torch_model, our_model)
    return torch_model.eval(), our_model.eval()


def _torch_twin(tv_builder, our_model, **kwargs):
    """torchvision's model holding our model's weights, built without running torch's init (on the meta
    device, then given memory): for the 100M-parameter models that init is most of a test's time."""
    with torch.device("meta"):
        t = tv_builder(**kwargs)
    t = t.to_empty(device="cpu")
    t.load_state_dict({k: torch.from_numpy(v.detach().numpy()) for k, v in our_model.state_dict().items()})
    return t


def _check_eval(torch_model, our_model, shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x))
    with mt.no_grad():
        got = our_model(mt.tensor(x))
    _close(got, ref)


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


# ---- ViT -----------------------------------------------------------------------------------------
SMALL_VIT = dict(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10)


@pytest.mark.parametrize("extra", [{}, {"representation_size": 48}, {"num_heads": 1, "hidden_dim": 16}])
def test_small_vit_eval_matches_torchvision_on_fused_attention(dev, extra):
    cfg = {**SMALL_VIT, **extra}
    torch.manual_seed(1)
    t, o = _pair(_perturb(tv.models.VisionTransformer(**cfg)), M.VisionTransformer(**cfg))
    with mt.profiler.profile(record_ops=False) as prof:
        _check_eval(t, o, (2, 3, 32, 32))
    launched = {e.name for e in prof.events}
    assert "attention.cl:attn_fwd" in launched, f"the encoder's attention did not run on the fused kernel: {sorted(launched)}"


def test_vit_conv_stem_matches_torchvision(dev):
    stem = [vit_mod.ConvStemConfig(8, 3, 2), vit_mod.ConvStemConfig(16, 3, 2)]
    tv_stem = [tv.models.vision_transformer.ConvStemConfig(8, 3, 2), tv.models.vision_transformer.ConvStemConfig(16, 3, 2)]
    cfg = {**SMALL_VIT, "patch_size": 4}
    torch.manual_seed(2)
    t, o = _pair(_perturb(tv.models.VisionTransformer(**cfg, conv_stem_configs=tv_stem)),
                 M.VisionTransformer(**cfg, conv_stem_configs=stem))
    _check_eval(t, o, (1, 3, 32, 32))


def test_vit_loads_pre_0_13_mlp_names(dev):
    """torchvision's published vit_* checkpoints name the MLP's Linears linear_1/linear_2."""
    torch.manual_seed(3)
    t = _perturb(tv.models.VisionTransformer(**SMALL_VIT)).eval()
    legacy = {k.replace("mlp.0.", "mlp.linear_1.").replace("mlp.3.", "mlp.linear_2."): v.numpy()
              for k, v in t.state_dict().items()}
    assert any("linear_1" in k for k in legacy)
    o = M.VisionTransformer(**SMALL_VIT).eval()
    o.load_state_dict(legacy)
    _check_eval(t, o, (1, 3, 32, 32))
    with pytest.raises(RuntimeError, match="unexpected keys: .*linear_9"):
        o.load_state_dict({**legacy, "encoder.layers.encoder_layer_0.mlp.linear_9.weight": np.zeros(1)})


def test_small_vit_training_step_gradients(dev):
    """Train mode (dropout 0): the loss's gradient for every parameter equals torchvision's."""
    torch.manual_seed(4)
    t = _perturb(tv.models.VisionTransformer(**SMALL_VIT))
    o = M.VisionTransformer(**SMALL_VIT)
    copy_weights(t, o)
    t.train(), o.train()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((2, 10)).astype(np.float32)
    (t(torch.from_numpy(x)) * torch.from_numpy(w)).sum().backward()
    (o(mt.tensor(x)) * mt.tensor(w)).sum().backward()
    ours = dict(o.named_parameters())
    for name, p in t.named_parameters():
        assert ours[name].grad is not None, f"no gradient for {name}"
        ref = p.grad.numpy()
        got = ours[name].grad.numpy()
        err, scale = np.abs(got - ref).max(), np.abs(ref).max()
        assert err <= 1e-4 * scale + 1e-6, f"{name}: max abs error {err} vs gradient scale {scale}"


def _init_values(model, names):
    """Host copies of some freshly initialised parameters (the pair then overwrites them)."""
    state = model.state_dict()
    return {n: state[n].detach().numpy() for n in names}


@pytest.fixture(scope="module")
def vit_b_16_pair():
    torch.manual_seed(5)
    o = M.vit_b_16()
    t = _perturb(_torch_twin(tv.models.vit_b_16, o), names=("heads", "class_token"), std=0.02)
    mlp = "encoder.layers.encoder_layer_0.mlp."
    init = _init_values(o, ["heads.head.weight", "heads.head.bias", "class_token", "conv_proj.weight",
                            "conv_proj.bias", "encoder.pos_embedding", mlp + "0.weight", mlp + "0.bias"])
    return _pair(t, o) + (init,)


def test_vit_b_16_eval_matches_torchvision(dev, vit_b_16_pair):
    _check_eval(*vit_b_16_pair[:2], (1, 3, 224, 224))


def test_vit_b_16_init_and_size(dev, vit_b_16_pair):
    _, o, init = vit_b_16_pair
    assert _num_params(o) == M.ViT_B_16_Weights.IMAGENET1K_V1.meta["num_params"]
    for zero in ("heads.head.weight", "heads.head.bias", "class_token", "conv_proj.bias"):
        assert not init[zero].any(), zero
    w = init["conv_proj.weight"]  # truncated normal: std sqrt(1 / fan_in), cut at +-2
    assert np.abs(w).max() <= 2.0 and abs(w.std() - math.sqrt(1 / (3 * 16 * 16))) < 2e-3
    assert abs(init["encoder.pos_embedding"].std() - 0.02) < 1e-3
    mlp = o.encoder.layers.encoder_layer_0.mlp
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "Dropout", "Linear", "Dropout"]
    lin = init["encoder.layers.encoder_layer_0.mlp.0.weight"]  # xavier uniform: bound sqrt(6 / (768 + 3072))
    assert abs(np.abs(lin).max() - math.sqrt(6 / (768 + 3072))) < 1e-3
    b = init["encoder.layers.encoder_layer_0.mlp.0.bias"]  # normal, std 1e-6
    assert 0 < np.abs(b).max() < 1e-5


def test_vit_builder_configs(dev, monkeypatch):
    """Each builder's config line is torchvision's (seen through the constructor's arguments, so no
    300M-parameter model is built)."""
    seen = {}
    monkeypatch.setattr(vit_mod, "VisionTransformer", lambda **kw: seen.setdefault("ours", kw))
    monkeypatch.setattr(tv.models.vision_transformer, "VisionTransformer", lambda **kw: seen.setdefault("tv", kw))
    for name in ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"]:
        seen.clear()
        getattr(M, name)(num_classes=7)
        getattr(tv.models, name)(num_classes=7)
        assert seen["ours"] == seen["tv"], name
        assert M.get_model_builder(name) is getattr(M, name)
    monkeypatch.undo()
    small = M.vit_b_32(image_size=64, num_classes=3)
    assert small.seq_length == 5 and small.heads.head.out_features == 3
    with pytest.raises(ValueError, match="indivisible"):
        M.VisionTransformer(30, 8, 1, 1, 8, 8)
    with pytest.raises(ValueError, match="Wrong image size"):
        M.VisionTransformer(**SMALL_VIT)(mt.zeros(1, 3, 40, 40))


# ---- VGG, AlexNet, SqueezeNet ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg11_bn_pair():
    torch.manual_seed(6)
    o = M.vgg11_bn()
    t = _perturb(_torch_twin(tv.models.vgg11_bn, o), names=("features.",), std=0.1)
    init = _init_values(o, ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                            "classifier.6.weight", "classifier.6.bias"])
    return _pair(t, o) + (init,)


def test_vgg11_bn_eval_matches_torchvision(dev, vgg11_bn_pair):
    _check_eval(*vgg11_bn_pair[:2], (1, 3, 32, 32))


def test_vgg11_bn_init_and_size(dev, vgg11_bn_pair):
    _, o, init = vgg11_bn_pair
    assert _num_params(o) == M.VGG11_BN_Weights.IMAGENET1K_V1.meta["num_params"]
    conv = init["features.0.weight"]  # kaiming normal, fan_out = 64 * 3 * 3
    assert abs(conv.std() - math.sqrt(2 / (64 * 9))) < 0.01 and not init["features.0.bias"].any()
    assert abs(init["classifier.6.weight"].std() - 0.01) < 1e-4 and not init["classifier.6.bias"].any()
    assert (init["features.1.weight"] == 1).all() and not init["features.1.bias"].any()


@pytest.mark.parametrize("cfg", ["A", "E"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_features_match_torchvision(dev, cfg, batch_norm):
    torch.manual_seed(7)
    t = _perturb(tv.models.vgg.make_layers(tv.models.vgg.cfgs[cfg], batch_norm), names=("running_",), std=0.1)
    _check_eval(*_pair(t, M.vgg.make_layers(M.vgg.cfgs[cfg], batch_norm)), (2, 3, 33, 33))


def test_vgg_builders_are_torchvisions_configs(dev):
    for name in ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]:
        assert name in M.list_models()
    assert M.vgg.cfgs == tv.models.vgg.cfgs
    with pytest.raises(ValueError, match="1000 classes"):
        M.vgg11(weights="IMAGENET1K_V1", num_classes=10)


def test_alexnet_eval_matches_torchvision(dev):
    torch.manual_seed(8)
    o = M.alexnet()
    t, o = _pair(_torch_twin(tv.models.alexnet, o), o)
    assert _num_params(o) == M.AlexNet_Weights.IMAGENET1K_V1.meta["num_params"]
    _check_eval(t, o, (1, 3, 63, 63))  # the smallest input (min_size): 1x1 after the last pool
    _check_eval(t, o, (2, 3, 75, 75), seed=1)


@pytest.mark.parametrize("version, size", [("1_0", 21), ("1_0", 47), ("1_1", 17), ("1_1", 33)])
def test_squeezenet_eval_matches_torchvision(dev, version, size):
    torch.manual_seed(9)
    t, o = _pair(getattr(tv.models, f"squeezenet{version}")(num_classes=13),
                 getattr(M, f"squeezenet{version}")(num_classes=13))
    _check_eval(t, o, (2, 3, size, size))


def test_squeezenet_loads_a_torch_saved_checkpoint_file(dev, tmp_path):
    """model.load_state_dict(mt.load(f)) with the file torch.save(torchvision_model.state_dict()) wrote."""
    torch.manual_seed(10)
    t = tv.models.squeezenet1_1().eval()
    torch.save(t.state_dict(), tmp_path / "squeezenet1_1.pth")
    o = M.squeezenet1_1()
    o.load_state_dict(mt.load(tmp_path / "squeezenet1_1.pth"))
    _check_eval(t, o.eval(), (1, 3, 33, 33))


def test_squeezenet_init_and_size(dev):
    o = M.squeezenet1_1()
    assert _num_params(o) == M.SqueezeNet1_1_Weights.IMAGENET1K_V1.meta["num_params"]
    assert _num_params(M.squeezenet1_0()) == M.SqueezeNet1_0_Weights.IMAGENET1K_V1.meta["num_params"]
    final = o.classifier[1].weight.detach().numpy()
    assert abs(final.std() - 0.01) < 5e-4
    first = o.features[0].weight.detach().numpy()  # kaiming uniform, a=0: bound sqrt(6 / fan_in)
    assert abs(np.abs(first).max() - math.sqrt(6 / 27)) < 0.02
    with pytest.raises(ValueError, match="Unsupported SqueezeNet version"):
        M.SqueezeNet("2_0")


# ---- weights enums ---------------------------------------------------------------------------------
ENUMS = ["ViT_B_16_Weights", "ViT_B_32_Weights", "ViT_L_16_Weights", "ViT_L_32_Weights", "ViT_H_14_Weights",
         "VGG11_Weights", "VGG11_BN_Weights", "VGG13_Weights", "VGG13_BN_Weights", "VGG16_Weights",
         "VGG16_BN_Weights", "VGG19_Weights", "VGG19_BN_Weights", "AlexNet_Weights", "SqueezeNet1_0_Weights",
         "SqueezeNet1_1_Weights"]


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("name", ENUMS)
def test_weights_enums_are_torchvisions(name):
    ours, theirs = getattr(M, name), getattr(tv.models, name)
    assert list(ours.__members__) == list(theirs.__members__)
    assert ours.DEFAULT.name == theirs.DEFAULT.name
    for member, ref in theirs.__members__.items():
        w = ours[member]
        assert w.url == ref.url
        assert _same(w.meta, {k: v for k, v in ref.meta.items() if k != "_docs"})
        kw = dict(ref.transforms.keywords)
        if "interpolation" in kw:
            kw["interpolation"] = kw["interpolation"].value
        assert w.transforms.keywords == kw
    first = next(iter(ours.__members__))
    assert ours.verify(f"{name}.{first}") is ours[first] and ours.verify(first) is ours[first]
    assert any(M.get_model_weights(fn) is ours for fn in M.list_models())


def test_categories_and_preset_transform():
    assert _IMAGENET_CATEGORIES == tv.models._meta._IMAGENET_CATEGORIES
    preset = M.ViT_B_16_Weights.DEFAULT.transforms()
    img = np.full((300, 260, 3), 128, dtype=np.uint8)
    out = preset(img)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.broadcast_to(((128 / 255 - mean) / std)[:, None, None], out.shape), rtol=1e-5)
    batch = preset(np.zeros((2, 256, 256, 3), dtype=np.uint8))
    assert batch.shape == (2, 3, 224, 224)
    with pytest.raises(NotImplementedError, match="bicubic"):
        M.ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1.transforms()
