"""CIFAR-10 in the official python pickle format (with a checked download) and scikit-learn's
bundled 8x8 digits scaled to CIFAR's 3x32x32, a real data set that needs no network."""
import hashlib
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from .data import Dataset

__all__ = ["CIFAR10", "Digits", "digits", "DatasetError", "CIFAR10_URL", "CIFAR10_MD5"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class DatasetError(RuntimeError):
    """A data set that is missing, damaged or could not be downloaded; the message says what to do."""


class _ImageDataset(Dataset):
    """uint8 images (N, H, W, C) and int64 labels (N,), with an optional transform on the images."""

    def __init__(self, images, labels, transform=None, target_transform=None):
        self.data, self.targets = images, labels
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self._one(index)

    def _one(self, index):
        img, label = self.data[index], self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def __getitems__(self, indices):
        """A whole batch at once: the transforms work on stacked (B, H, W, C) arrays too."""
        if self.target_transform is not None:
            samples = [self._one(int(i)) for i in indices]
            return np.stack([s[0] for s in samples]), np.asarray([s[1] for s in samples])
        imgs = self.data[indices]
        return (self.transform(imgs) if self.transform is not None else imgs), self.targets[indices]


class CIFAR10(_ImageDataset):
    """CIFAR-10 from root/cifar-10-batches-py (data_batch_1..5 or test_batch); download=True fetches
    and checks the official archive. url/md5 can be overridden (tests point them at a local server)."""

    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    test_files = ["test_batch"]
    classes = CIFAR10_CLASSES

    def __init__(self, root, train=True, download=False, transform=None, target_transform=None,
                 url=None, md5=None, progress=True):
        self.root = Path(root).expanduser()
        self.url, self.md5 = url or CIFAR10_URL, md5 or CIFAR10_MD5
        if download:
            self.download(progress)
        folder = self.root / CIFAR10_FOLDER
        if not folder.is_dir():
            raise DatasetError(f"CIFAR-10 not found: {folder} does not exist. Pass download=True (the example's "
                               f"--download) to fetch it from {self.url}, or extract cifar-10-python.tar.gz "
                               f"into {self.root}.")
        images, labels = [], []
        for name in (self.train_files if train else self.test_files):
            x, y = _read_batch(folder / name)
            images.append(x)
            labels.append(y)
        super().__init__(np.concatenate(images), np.concatenate(labels), transform, target_transform)

    def _complete(self):
        folder = self.root / CIFAR10_FOLDER
        return all((folder / f).is_file() for f in self.train_files + self.test_files)

    def download(self, progress=True):
        """Fetch the archive (unless the batches are already there), verify its MD5, extract it."""
        if self._complete():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        archive = self.root / os.path.basename(self.url)
        if not (archive.is_file() and _md5(archive) == self.md5):
            _fetch(self.url, archive, progress)
            digest = _md5(archive)
            if digest != self.md5:
                archive.unlink()
                raise DatasetError(f"downloaded {self.url} but its MD5 is {digest}, expected {self.md5}: the "
                                   f"file is damaged or not CIFAR-10. It was deleted; run again to retry.")
        _extract(archive, self.root)
        if not self._complete():
            raise DatasetError(f"{archive} did not contain {CIFAR10_FOLDER}/ with data_batch_1..5 and test_batch")


def _fetch(url, dest, progress):
    """Download url to dest through a temporary file, with a progress bar on stderr."""
    tmp = Path(f"{dest}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                if progress:
                    _progress(done, total)
        if progress:
            print(file=sys.stderr)
        if total and done != total:
            raise DatasetError(f"download of {url} stopped after {done} of {total} bytes; run again to retry")
        os.replace(tmp, dest)
    except (OSError, ValueError) as err:  # urllib.error.URLError is an OSError
        raise DatasetError(f"could not download {url}: {err}. Check the network (or a proxy), or download the "
                           f"file by hand and extract it into {dest.parent}.") from err
    finally:
        tmp.unlink(missing_ok=True)


def _progress(done, total):
    if total:
        filled = int(30 * done / total)
        print(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done / 2**20:6.1f} / {total / 2**20:.1f} MiB",
              end="", file=sys.stderr, flush=True)
    else:
        print(f"\r  {done / 2**20:6.1f} MiB", end="", file=sys.stderr, flush=True)


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _extract(archive, root):
    """Extract into a temporary folder beside root, then move the batches folder into place."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                if hasattr(tarfile, "data_filter"):  # refuse paths that escape tmp (Python >= 3.8.17)
                    tar.extractall(tmp, filter="data")
                else:
                    tar.extractall(tmp)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DatasetError(f"{archive} is truncated or not a gzip'd tar archive ({err}); delete it and "
                               f"download again") from err
        src = tmp / CIFAR10_FOLDER
        if not src.is_dir():
            raise DatasetError(f"{archive} has no {CIFAR10_FOLDER}/ folder: it is not the CIFAR-10 python archive")
        dest = root / CIFAR10_FOLDER
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_batch(path):
    """One pickled batch: {b'data': uint8 (10000, 3072) in CHW order, b'labels': [...]} -> (N, 32, 32, 3), (N,)."""
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 batch {path} is missing; delete {path.parent} and download again")
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")  # the batches were pickled by Python 2
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except Exception as err:  # truncated pickles raise EOFError, UnpicklingError, ValueError, KeyError ...
        raise DatasetError(f"CIFAR-10 batch {path} is truncated or corrupt ({type(err).__name__}: {err}); "
                           f"delete {path.parent} and download again") from err
    if len(labels) != len(images):
        raise DatasetError(f"CIFAR-10 batch {path} has {len(images)} images but {len(labels)} labels")
    return np.ascontiguousarray(images), labels


class Digits(_ImageDataset):
    """scikit-learn's 1797 8x8 digits as uint8 32x32 RGB images (each pixel a 4x4 block, grey in all
    three channels): a CIFAR-shaped, 10-class data set with no download. A fixed shuffle puts 1437
    in train and 360 in test."""

    classes = tuple(str(i) for i in range(10))

    def __init__(self, root=None, train=True, download=False, transform=None, target_transform=None):
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:
            raise DatasetError("the digits data set needs scikit-learn: pip install scikit-learn") from err
        d = load_digits()
        images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)  # (1797, 8, 8) in 0..16
        images = images.repeat(4, axis=1).repeat(4, axis=2)[..., None].repeat(3, axis=3)  # (N, 32, 32, 3)
        order = np.random.default_rng(0).permutation(len(images))
        split = len(images) * 4 // 5
        idx = order[:split] if train else order[split:]
        super().__init__(np.ascontiguousarray(images[idx]), d.target[idx].astype(np.int64), transform,
                         target_transform)


def digits(root=None, train=True, download=False, transform=None):
    """The Digits data set (see Digits)."""
    return Digits(root, train, download, transform)
