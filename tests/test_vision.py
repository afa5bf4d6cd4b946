"""vision.datasets (official formats, torchvision layouts, downloads from a local server) and
vision.transforms against NumPy float64 and torch."""
import functools
import gzip
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.vision import datasets, transforms as T


# ---- files in the official formats ---------------------------------------------------------------
def _idx(arr):
    """An idx-ubyte file: 0x0000, type 0x08 (ubyte), ndim, big-endian uint32 sizes, the bytes."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def _mnist_files(n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    return {k: v.astype(np.uint8) for k, v in arrays.items()}


def _write_mnist(folder, arrays, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(_idx(arr)))
        else:
            (folder / name).write_bytes(_idx(arr))


def _cifar100_archive(n=4, seed=0):
    """cifar-100-python.tar.gz in the official layout (train, test, meta); returns (blob, test images)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, obj):
            raw = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        test = None
        for name in ("train", "test"):
            imgs = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            add(name, {b"data": imgs, b"fine_labels": list(range(n)), b"coarse_labels": [0] * n})
            test = imgs
        add("meta", {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                     b"coarse_label_names": [b"c"] * 20})
    return buf.getvalue(), test


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# ---- data sets -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,gz", [(datasets.MNIST, False), (datasets.FashionMNIST, True)])
def test_mnist_reader(tmp_path, cls, gz):
    arrays = _mnist_files()
    _write_mnist(tmp_path / cls.__name__ / "raw", arrays, gz=gz)  # torchvision's root/<Name>/raw layout
    train, test = cls(tmp_path), cls(tmp_path, train=False, transform=T.ToTensor())
    assert len(train) == 5 and len(test) == 3 and train.data.shape == (5, 28, 28) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.data, arrays["train-images-idx3-ubyte"])
    img, label = train[2]
    assert type(label) is int and label == arrays["train-labels-idx1-ubyte"][2] and img.shape == (28, 28)
    x, _ = test[1]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], arrays["t10k-images-idx3-ubyte"][1] / 255.0, rtol=1e-6)
    xs, ys = test.__getitems__(np.array([2, 0]))  # the batch path equals the image-by-image one
    np.testing.assert_array_equal(xs, np.stack([test[2][0], test[0][0]]))
    assert ys.dtype == np.int64 and len(cls.classes) == 10


def test_mnist_errors(tmp_path):
    with pytest.raises(datasets.DatasetError, match=r"MNIST/raw/train-images-idx3-ubyte does not exist.*download=True"):
        datasets.MNIST(tmp_path)
    arrays = _mnist_files()
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, arrays)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(datasets.DatasetError, match=r"truncated or corrupt: shape \(5, 28, 28\)"):
        datasets.MNIST(tmp_path)
    path.write_bytes(b"\x00\x00\x08\x01" + bytes(8))
    with pytest.raises(datasets.DatasetError, match="not an idx file with 3 dimension"):
        datasets.MNIST(tmp_path)


def test_mnist_download_with_mirrors(tmp_path, server):
    www, base = server
    arrays = _mnist_files(seed=3)
    (www / "good").mkdir()
    resources = []
    for name, arr in arrays.items():
        blob = gzip.compress(_idx(arr))
        (www / "good" / f"{name}.gz").write_bytes(blob)
        resources.append((f"{name}.gz", hashlib.md5(blob).hexdigest()))

    class Local(datasets.MNIST):
        pass
    Local.resources = resources
    mirrors = [f"{base}/missing/", f"{base}/good/"]  # the first mirror answers 404
    ds = Local(tmp_path / "data", download=True, mirrors=mirrors, progress=False)
    np.testing.assert_array_equal(ds.data, arrays["train-images-idx3-ubyte"])
    assert (tmp_path / "data" / "Local" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert not list((tmp_path / "data" / "Local" / "raw").glob("*.part"))
    # the files are there: no network needed even with download=True
    again = Local(tmp_path / "data", train=False, download=True, mirrors=["http://127.0.0.1:9/nowhere/"])
    assert len(again) == 3
    Local.resources = [(n, "0" * 32) for n, _ in resources]
    with pytest.raises(datasets.DatasetError, match=r"(?s)from any mirror.*404.*MD5 is [0-9a-f]{32}, expected 0{32}"):
        Local(tmp_path / "other", download=True, mirrors=mirrors, progress=False)


def test_cifar100_download_and_reader(tmp_path, server):
    www, base = server
    blob, test_imgs = _cifar100_archive()
    (www / "c100.tar.gz").write_bytes(blob)
    root = tmp_path / "data"
    ds = datasets.CIFAR100(root, train=False, download=True, url=f"{base}/c100.tar.gz",
                           md5=hashlib.md5(blob).hexdigest(), progress=False)
    assert len(ds) == 4 and ds.classes[3] == "class3" and ds.class_to_idx["class2"] == 2
    np.testing.assert_array_equal(ds.data, test_imgs.reshape(4, 3, 32, 32).transpose(0, 2, 3, 1))
    img, label = ds[3]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and label == 3
    (www / "c100.tar.gz").unlink()
    assert len(datasets.CIFAR100(root, download=True, url=f"{base}/c100.tar.gz")) == 4  # no download
    assert mt.datasets.CIFAR10 is datasets.CIFAR10 and mt.data.ToTensor is T.ToTensor  # the old names


def test_batch_path_matches_single_images(tmp_path):
    _write_mnist(tmp_path / "MNIST" / "raw", _mnist_files(n_train=6))
    tf = T.Compose([T.RandomCrop(24, padding=2), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize([0.1], [0.3])])
    ds = datasets.MNIST(tmp_path, transform=tf)
    np.random.seed(4)
    one = np.stack([ds[i][0] for i in (5, 1, 3)])
    np.random.seed(4)
    batch, _ = ds.__getitems__(np.array([5, 1, 3]))
    np.testing.assert_array_equal(batch, one)
    lam = datasets.MNIST(tmp_path, transform=T.Lambda(lambda im: im.reshape(-1)))
    assert lam.__getitems__(np.array([0, 1]))[0].shape == (2, 784)  # a Lambda always sees single images


# ---- transforms ------------------------------------------------------------------------------------
@pytest.fixture
def img(rng):
    return rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)


def test_to_tensor_normalize(img):
    x = T.ToTensor()(img)
    assert x.shape == (3, 13, 17) and x.dtype == np.float32
    np.testing.assert_allclose(x, img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    y = T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))(x)
    mean, std = np.array([0.5, 0.4, 0.3])[:, None, None], np.array([0.2, 0.25, 0.5])[:, None, None]
    want = (img.transpose(2, 0, 1) / 255.0 - mean) / std
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize((0.5,), (0.5,))(img)


def test_resize_matches_torch_bilinear(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 13, 17)).astype(np.float32)
    for size, out in [((7, 30), (7, 30)), (9, (9, 11)), ((26, 5), (26, 5))]:
        got = T.Resize(size)(x)
        want = torch.nn.functional.interpolate(torch.tensor(x), size=out, mode="bilinear", align_corners=False)
        assert got.shape == (2, 3) + out
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    u8 = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    small = T.Resize((6, 8))(u8)
    want = torch.nn.functional.interpolate(torch.tensor(u8, dtype=torch.float64).permute(2, 0, 1)[None], size=(6, 8),
                                           mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    assert small.dtype == np.uint8 and small.shape == (6, 8, 3)
    np.testing.assert_array_equal(small, np.clip(np.round(want), 0, 255).astype(np.uint8))


def test_crops_pads_flips(img):
    c = T.CenterCrop((5, 8))(img)
    np.testing.assert_array_equal(c, img[4:9, 4:12])
    big = T.CenterCrop(15)(img)  # larger than the image: zero-padded first, as torchvision
    assert big.shape == (15, 15, 3) and big[0].max() == 0
    np.testing.assert_array_equal(big[1:14, :, :], img[:, 1:16])
    for mode in ("constant", "edge", "reflect", "symmetric"):
        p = T.Pad((1, 2, 3, 4), fill=7, padding_mode=mode)(img)
        kw = dict(constant_values=7) if mode == "constant" else {}
        np.testing.assert_array_equal(p, np.pad(img, ((2, 4), (1, 3), (0, 0)), mode=mode, **kw))
    chw = T.ToTensor()(img)
    np.testing.assert_array_equal(T.Pad(2)(chw), np.pad(chw, ((0, 0), (2, 2), (2, 2))))  # float: C x H x W
    np.random.seed(0)
    crops = [T.RandomCrop(13, padding=2)(img) for _ in range(8)]
    padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
    for c in crops:  # each is a window of the padded image
        assert c.shape == (13, 13, 3)
        assert any(np.array_equal(c, padded[i:i + 13, j:j + 13]) for i in range(5) for j in range(9))
    assert len({c.tobytes() for c in crops}) > 1
    np.random.seed(0)
    assert all(np.array_equal(a, T.RandomCrop(13, padding=2)(img)) for a in crops)  # a seed reproduces them
    flips = [T.RandomHorizontalFlip()(img) for _ in range(20)]
    assert all(np.array_equal(f, img) or np.array_equal(f, img[:, ::-1]) for f in flips)
    assert 0 < sum(np.array_equal(f, img) for f in flips) < 20
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1.0)(chw), chw[:, ::-1])


def test_random_transforms_on_batches(rng):
    batch = rng.integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    tf = T.RandomResizedCrop(8, scale=(0.3, 1.0))
    np.random.seed(2)
    out = tf(batch)
    np.random.seed(2)
    one = np.stack([tf(b) for b in batch])
    assert out.shape == (5, 8, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, one)  # per image, in order
    assert len({o.tobytes() for o in out}) == 5
    full = T.RandomResizedCrop((12, 12), scale=(1.0, 1.0), ratio=(1.0, 1.0))(batch[0])
    np.testing.assert_array_equal(full, batch[0])  # the whole image, resized to its own size


def test_color_jitter(img):
    x = T.ToTensor()(img)
    np.random.seed(1)
    got = T.ColorJitter(brightness=0.5, contrast=0.4, saturation=0.3)(x)
    np.random.seed(1)  # the same draws, applied by hand with torchvision's formulas in float64
    order = np.random.permutation(3)
    f = [np.random.uniform(0.5, 1.5), np.random.uniform(0.6, 1.4), np.random.uniform(0.7, 1.3)]
    y = x.astype(np.float64)
    grey = lambda z: 0.2989 * z[0] + 0.587 * z[1] + 0.114 * z[2]  # noqa: E731
    for k in order:
        other = [np.zeros_like(y), np.full_like(y, grey(y).mean()), grey(y)[None]][k]
        y = np.clip(f[k] * y + (1 - f[k]) * other, 0, 1)
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(T.ColorJitter()(img), img)
    dark = T.ColorJitter(brightness=(0.5, 0.5))(img)
    np.testing.assert_array_equal(dark, (img * 0.5).astype(np.uint8))
    with pytest.raises(NotImplementedError, match="hue"):
        T.ColorJitter(hue=0.1)


def test_transforms_on_tensors(dev, img):
    x = T.ToTensor()(img)
    t = mt.tensor(x, device=dev)
    norm = T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    np.testing.assert_allclose(norm(t).numpy(), norm(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(T.CenterCrop(6)(t).numpy(), T.CenterCrop(6)(x))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(t).numpy(), x[:, :, ::-1])
    np.random.seed(3)
    crop = T.RandomCrop((4, 9))(mt.tensor(np.stack([x, x]), device=dev))
    assert crop.shape == (2, 3, 4, 9)
    with pytest.raises(TypeError, match="Resize works on NumPy images"):
        T.Resize(4)(t)


def test_lambda_compose_repr():
    tf = T.Compose([T.Lambda(lambda a: a + 1), T.Normalize((0.0,), (2.0,))])
    np.testing.assert_allclose(tf(np.zeros((1, 2, 2), np.float32)), 0.5)
    assert "Normalize" in repr(tf) and not tf.handles_batches and tf.random
    nested = T.Compose([T.Compose([T.ToTensor()]), T.Normalize((0.5,), (0.5,))])
    assert nested.handles_batches and not nested.random
