"""DataLoader, transforms, the CIFAR-10 reader and its download (against a local HTTP server), digits."""
import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import data, datasets
from minitorch_cl.vision import datasets as vision_datasets


def test_dataloader_batches_shuffle_drop_last(dev):
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=4, device=dev)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert batches[0][1].dtype is mt.int64
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
    shuffled = data.DataLoader(data.TensorDataset(x, y), batch_size=4, shuffle=True, drop_last=True, seed=3,
                               device=dev)
    assert len(shuffled) == 2
    seen = np.concatenate([b[1].numpy() for b in shuffled])
    assert len(seen) == 8 and len(set(seen)) == 8 and not np.array_equal(seen, np.arange(8))
    for bx, by in data.DataLoader(data.TensorDataset(x, y), batch_size=4, shuffle=True, seed=3, device=dev):
        np.testing.assert_array_equal(bx.numpy(), x[by.numpy()])  # rows stay paired with their labels
    again = np.concatenate([b[1].numpy() for b in data.DataLoader(data.TensorDataset(x, y), batch_size=4,
                                                                  shuffle=True, drop_last=True, seed=3)])
    np.testing.assert_array_equal(seen, again)


class _Squares(data.Dataset):  # a plain map-style data set: per-item __getitem__, stacked by the loader
    def __getitem__(self, i):
        return np.full((2,), i, np.float32), i * i

    def __len__(self):
        return 5


def test_dataloader_map_style(dev):
    xs, ys = zip(*data.DataLoader(_Squares(), batch_size=2, device=dev))
    np.testing.assert_array_equal(ys[2].numpy(), [16])
    np.testing.assert_array_equal(xs[1].numpy(), [[2, 2], [3, 3]])


def test_transforms():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    t = data.Compose([data.ToTensor(), data.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    out = t(img)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, (img.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, rtol=1e-6, atol=1e-6)
    batch = t(np.stack([img, img]))  # the same transforms work on a stacked batch
    np.testing.assert_allclose(batch[1], out)


# ---- CIFAR-10 in the real format, on small files -----------------------------------------------
def _write_cifar(root, n=6, seed=0):
    """cifar-10-batches-py/ with n images per batch, in the official pickle layout; returns test data."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        entry = {b"batch_label": name.encode(), b"labels": labels, b"data": images.reshape(n, 3072),
                 b"filenames": [b"x.png"] * n}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    return images, labels


def test_cifar_reader(tmp_path):
    images, labels = _write_cifar(tmp_path)
    test = datasets.CIFAR10(tmp_path, train=False)
    assert len(test) == 6 and test.data.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(test.data, images.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(test.targets, labels)
    train = datasets.CIFAR10(tmp_path, train=True, transform=data.ToTensor())
    assert len(train) == 30
    img, label = train[7]
    assert img.shape == (3, 32, 32) and 0 <= label < 10


def test_cifar_missing_and_corrupt(tmp_path):
    with pytest.raises(datasets.DatasetError, match="download=True"):
        datasets.CIFAR10(tmp_path / "nowhere")
    _write_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(datasets.DatasetError, match="data_batch_3 is truncated or corrupt"):
        datasets.CIFAR10(tmp_path, train=True)


def _archive(tmp_path):
    src = tmp_path / "src"
    _write_cifar(src, n=3, seed=1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An HTTP server on 127.0.0.1 serving files from a folder; yields (folder, base URL). One per module
    (stopping one takes half a second): each test writes the files it serves before it asks for them."""
    folder = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_good_archive(tmp_path, server):
    folder, base = server
    blob = _archive(tmp_path)
    (folder / "cifar.tar.gz").write_bytes(blob)
    root = tmp_path / "data"
    ds = datasets.CIFAR10(root, train=False, download=True, url=f"{base}/cifar.tar.gz",
                          md5=hashlib.md5(blob).hexdigest(), progress=False)
    assert len(ds) == 3
    assert not list(root.glob(".extract-*")) and not list(root.glob("*.part"))
    # a second call finds the batches and does not download again
    (folder / "cifar.tar.gz").unlink()
    assert len(datasets.CIFAR10(root, train=True, download=True, url=f"{base}/cifar.tar.gz", progress=False)) == 15


def test_download_wrong_checksum(tmp_path, server):
    folder, base = server
    (folder / "cifar.tar.gz").write_bytes(_archive(tmp_path))
    root = tmp_path / "data"
    with pytest.raises(datasets.DatasetError, match="MD5"):
        datasets.CIFAR10(root, download=True, url=f"{base}/cifar.tar.gz", md5="0" * 32, progress=False)
    assert not (root / "cifar.tar.gz").exists() and not (root / "cifar-10-batches-py").exists()


def test_download_truncated_archive(tmp_path, server):
    folder, base = server
    blob = _archive(tmp_path)[:-200]
    (folder / "cifar.tar.gz").write_bytes(blob)
    root = tmp_path / "data"
    with pytest.raises(datasets.DatasetError, match="truncated"):
        datasets.CIFAR10(root, download=True, url=f"{base}/cifar.tar.gz", md5=hashlib.md5(blob).hexdigest(),
                         progress=False)
    assert not (root / "cifar-10-batches-py").exists()


def test_download_failure_names_url(tmp_path, server):
    _, base = server
    url = f"{base}/missing.tar.gz"
    with pytest.raises(datasets.DatasetError, match="could not download " + url.replace(".", r"\.")):
        datasets.CIFAR10(tmp_path / "data", download=True, url=url, progress=False)


def test_digits():
    pytest.importorskip("sklearn")
    train, test = datasets.Digits(train=True), datasets.digits(train=False, transform=data.ToTensor())
    assert len(train) == 1437 and len(test) == 360
    assert train.data.shape == (1437, 32, 32, 3) and train.data.dtype == np.uint8
    img, label = test[0]
    assert img.shape == (3, 32, 32) and img.max() <= 1.0 and 0 <= label < 10
    np.testing.assert_array_equal(img[0], img[2])  # grey: the channels agree
    np.testing.assert_array_equal(img[0, :4, :4], img[0, 0, 0])  # each 8x8 pixel is a 4x4 block


def test_digits_file_is_load_digits():
    """Digits reads sklearn's file itself (no import of sklearn.datasets): the same images and labels."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    images, target = vision_datasets._digits_csv()
    d = sklearn_datasets.load_digits()
    np.testing.assert_array_equal(images, d.images)
    np.testing.assert_array_equal(target, d.target)
