"""torchvision.datasets' CIFAR10, CIFAR100, MNIST and FashionMNIST in their official formats (CIFAR's
python pickle batches, MNIST's idx-ubyte files) and torchvision's folder layouts, with checked
downloads; and scikit-learn's bundled 8x8 digits scaled to CIFAR's 3x32x32 (no network needed).

Images are NumPy uint8 arrays, H x W x C (CIFAR) or H x W (MNIST), not PIL images; `data` holds them
all (N, H, W[, C]) and `targets` the int64 labels. `ds[i]` is (image, int label) after the transforms;
vision.transforms.ToTensor turns an image into C x H x W float32 in [0, 1]. When the extracted files
are in place nothing is downloaded, with or without download=True."""
import gzip
import importlib.util
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from .. import download
from ..data import Dataset

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "Digits", "digits", "DatasetError", "CIFAR10_URL",
           "CIFAR10_MD5"]

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
        img, label = self.data[index], int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def __getitems__(self, indices):
        """A whole batch at once when the transform is one of vision.transforms' (they take batches
        and give what image-by-image application gives); else image by image."""
        batched = self.transform is None or getattr(self.transform, "handles_batches", False)
        if self.target_transform is not None or not batched:
            samples = [self._one(int(i)) for i in indices]
            return np.stack([s[0] for s in samples]), np.asarray([s[1] for s in samples])
        imgs = self.data[indices]
        if self.transform is not None:
            imgs = self.transform(imgs[..., None] if imgs.ndim == 3 else imgs)  # grey: (B, H, W, 1) is a batch
        return imgs, self.targets[indices]

    @property
    def class_to_idx(self):
        return {c: i for i, c in enumerate(self.classes)}


class CIFAR10(_ImageDataset):
    """CIFAR-10 from root/cifar-10-batches-py (data_batch_1..5 or test_batch, batches.meta), torchvision's
    layout; download=True fetches the official archive, checks its MD5 and extracts it, unless the
    batches are already there. url/md5 can be overridden (tests point them at a local server)."""

    base_folder = CIFAR10_FOLDER
    url = CIFAR10_URL
    tgz_md5 = CIFAR10_MD5
    train_list = [f"data_batch_{i}" for i in range(1, 6)]
    test_list = ["test_batch"]
    meta = {"filename": "batches.meta", "key": "label_names"}
    label_key = "labels"
    default_classes = CIFAR10_CLASSES

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False, *, url=None,
                 md5=None, progress=True):
        self.root, self.train = Path(root).expanduser(), train
        self.url, self.md5 = url or type(self).url, md5 or type(self).tgz_md5
        if download:
            self.download(progress)
        folder = self.root / self.base_folder
        if not folder.is_dir():
            raise DatasetError(f"{self.name} not found: {folder} does not exist. Pass download=True to fetch it "
                               f"from {self.url}, or extract {os.path.basename(self.url)} into {self.root}.")
        images, labels = [], []
        for name in (self.train_list if train else self.test_list):
            x, y = _read_batch(folder / name, self.label_key, self.name)
            images.append(x)
            labels.append(y)
        super().__init__(np.concatenate(images), np.concatenate(labels), transform, target_transform)
        self.classes = self._read_classes(folder / self.meta["filename"])

    @property
    def name(self):
        return type(self).__name__.replace("CIFAR", "CIFAR-")

    def _read_classes(self, path):
        if not path.is_file():
            return list(self.default_classes) if self.default_classes else [str(i) for i in range(
                int(self.targets.max()) + 1 if len(self.targets) else 0)]
        try:
            with open(path, "rb") as f:
                meta = pickle.load(f, encoding="latin1")
            meta = {k.decode() if isinstance(k, bytes) else k: v for k, v in meta.items()}
            return [c.decode() if isinstance(c, bytes) else c for c in meta[self.meta["key"]]]
        except Exception as err:
            raise DatasetError(f"{self.name} meta file {path} is truncated or corrupt ({type(err).__name__}: "
                               f"{err}); delete {path.parent} and download again") from err

    def _complete(self):
        folder = self.root / self.base_folder
        return all((folder / f).is_file() for f in self.train_list + self.test_list)

    def download(self, progress=True):
        """Fetch the archive (unless the batches are already there), verify its MD5, extract it."""
        if self._complete():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        archive = self.root / os.path.basename(self.url)
        _download(self.url, archive, self.md5, progress, self.name)
        _extract(archive, self.root, self.base_folder)
        if not self._complete():
            raise DatasetError(f"{archive} did not contain {self.base_folder}/ with "
                               f"{', '.join(self.train_list + self.test_list)}")


class CIFAR100(CIFAR10):
    """CIFAR-100 from root/cifar-100-python (train, test, meta) with the 100 fine labels, as torchvision."""

    base_folder = "cifar-100-python"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    tgz_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    train_list = ["train"]
    test_list = ["test"]
    meta = {"filename": "meta", "key": "fine_label_names"}
    label_key = "fine_labels"
    default_classes = None


class MNIST(_ImageDataset):
    """MNIST from root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (torchvision's layout; the
    .gz files alone also do). download=True fetches the four .gz files from the first mirror that
    answers, checks each MD5 and decompresses them, unless they are already there. Images are
    (28, 28) uint8 arrays."""

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = [("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                 ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                 ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False, *, mirrors=None,
                 progress=True):
        self.root, self.train = Path(root).expanduser(), train
        if mirrors is not None:
            self.mirrors = list(mirrors)
        if download:
            self.download(progress)
        prefix = "train" if train else "t10k"
        images = _read_idx(self._file(f"{prefix}-images-idx3-ubyte"), 3)
        labels = _read_idx(self._file(f"{prefix}-labels-idx1-ubyte"), 1).astype(np.int64)
        if len(images) != len(labels):
            raise DatasetError(f"{self.raw_folder}: {len(images)} {prefix} images but {len(labels)} labels")
        super().__init__(images, labels, transform, target_transform)

    @property
    def raw_folder(self):
        return self.root / type(self).__name__ / "raw"

    def _file(self, name):
        for path in (self.raw_folder / name, self.raw_folder / f"{name}.gz"):
            if path.is_file():
                return path
        raise DatasetError(f"{type(self).__name__} not found: {self.raw_folder / name} does not exist. Pass "
                           f"download=True to fetch it from {self.mirrors[0]}, or put the official .gz files "
                           f"into {self.raw_folder}.")

    def _complete(self):
        return all((self.raw_folder / name[:-3]).is_file() for name, _ in self.resources)

    def download(self, progress=True):
        """Fetch, check and decompress each missing file, trying the mirrors in order."""
        if self._complete():
            return
        self.raw_folder.mkdir(parents=True, exist_ok=True)
        for name, md5 in self.resources:
            target = self.raw_folder / name[:-3]
            if target.is_file():
                continue
            errors = []
            for mirror in self.mirrors:
                try:
                    _download(f"{mirror}{name}", self.raw_folder / name, md5, progress, type(self).__name__)
                    break
                except DatasetError as err:
                    errors.append(str(err))
            else:
                raise DatasetError(f"could not download {name} from any mirror:\n  " + "\n  ".join(errors))
            _gunzip(self.raw_folder / name, target)


class FashionMNIST(MNIST):
    """Fashion-MNIST in MNIST's format, from root/FashionMNIST/raw."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                 ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                 ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


def _download(url, dest, md5, progress, what):
    """dest from url unless it is already there with the right MD5; a wrong MD5 deletes it and fails."""
    if dest.is_file() and _md5(dest) == md5:
        return
    _fetch(url, dest, progress)
    digest = _md5(dest)
    if digest != md5:
        dest.unlink()
        raise DatasetError(f"downloaded {url} but its MD5 is {digest}, expected {md5}: the file is damaged or "
                           f"not {what}. It was deleted; run again to retry.")


def _gunzip(src, dest):
    """Decompress src into dest through a temporary file."""
    tmp = Path(f"{dest}.part")
    try:
        with gzip.open(src, "rb") as f, open(tmp, "wb") as out:
            shutil.copyfileobj(f, out)
        os.replace(tmp, dest)
    except (OSError, EOFError) as err:
        raise DatasetError(f"{src} is truncated or not gzip'd ({err}); delete it and download again") from err
    finally:
        tmp.unlink(missing_ok=True)


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}


def _read_idx(path, ndim):
    """An idx file (optionally .gz): magic 0x0000 <type> <ndim>, ndim big-endian uint32 sizes, the data."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"{path} is truncated or corrupt ({err}); delete it and download again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] != ndim:
        raise DatasetError(f"{path} is not an idx file with {ndim} dimension(s) (magic {raw[:4].hex()})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    start = 4 + 4 * ndim
    if len(raw) - start != int(np.prod(shape)) * dtype.itemsize:
        raise DatasetError(f"{path} is truncated or corrupt: shape {shape} needs {int(np.prod(shape)) * dtype.itemsize}"
                           f" bytes of data, the file has {len(raw) - start}; delete it and download again")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def _fetch(url, dest, progress):
    try:
        download.fetch(url, dest, progress, hash_name="md5")
    except download.DownloadError as err:
        raise DatasetError(f"{err}. Check the network (or a proxy), or download the file by hand and extract "
                           f"it into {dest.parent}.") from err


def _md5(path):
    return download.file_digest(path, "md5")


def _extract(archive, root, folder):
    """Extract into a temporary folder beside root, then move `folder` into place."""
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
        src = tmp / folder
        if not src.is_dir():
            raise DatasetError(f"{archive} has no {folder}/ folder: it is not the expected archive")
        dest = root / folder
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_batch(path, label_key="labels", name="CIFAR-10"):
    """One pickled batch: {b'data': uint8 (N, 3072) in CHW order, b'labels': [...]} -> (N, 32, 32, 3), (N,)."""
    if not path.is_file():
        raise DatasetError(f"{name} batch {path} is missing; delete {path.parent} and download again")
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")  # the batches were pickled by Python 2
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except Exception as err:  # truncated pickles raise EOFError, UnpicklingError, ValueError, KeyError ...
        raise DatasetError(f"{name} batch {path} is truncated or corrupt ({type(err).__name__}: {err}); "
                           f"delete {path.parent} and download again") from err
    if len(labels) != len(images):
        raise DatasetError(f"{name} batch {path} has {len(images)} images but {len(labels)} labels")
    return np.ascontiguousarray(images), labels


class Digits(_ImageDataset):
    """scikit-learn's 1797 8x8 digits as uint8 32x32 RGB images (each pixel a 4x4 block, grey in all
    three channels): a CIFAR-shaped, 10-class data set with no download. A fixed shuffle puts 1437
    in train and 360 in test."""

    classes = tuple(str(i) for i in range(10))

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        pixels, target = _digits_csv()
        images = (pixels * (255.0 / 16.0)).round().astype(np.uint8)  # (1797, 8, 8) in 0..16
        images = images.repeat(4, axis=1).repeat(4, axis=2)[..., None].repeat(3, axis=3)  # (N, 32, 32, 3)
        order = np.random.default_rng(0).permutation(len(images))
        split = len(images) * 4 // 5
        idx = order[:split] if train else order[split:]
        super().__init__(np.ascontiguousarray(images[idx]), target[idx].astype(np.int64), transform,
                         target_transform)


def _digits_csv():
    """scikit-learn's digits as load_digits reads them ((1797, 8, 8) floats, (1797,) labels), from the
    file in its package: importing sklearn.datasets takes seconds (scipy and all), reading the file
    milliseconds."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise DatasetError("the digits data set needs scikit-learn: pip install scikit-learn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():  # another layout: ask sklearn itself
        from sklearn.datasets import load_digits
        d = load_digits()
        return d.images, d.target
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


def digits(root=None, train=True, transform=None, target_transform=None, download=False):
    """The Digits data set (see Digits)."""
    return Digits(root, train, transform, target_transform, download)
