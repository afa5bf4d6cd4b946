"""torch.hub's checkpoint cache: load_state_dict_from_url downloads a file once into
get_dir()/checkpoints and loads it from there afterwards. The directory is torch's own
($TORCH_HOME/hub, by default ~/.cache/torch/hub), so checkpoints that torchvision already
downloaded are found and not fetched again."""
import os
import re
import sys
from urllib.parse import urlparse

from . import download
from .serialization import load

# torchvision's file names carry the first hex digits of the file's SHA-256: resnet18-f37072fd.pth
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")
_hub_dir = None


def get_dir():
    """The hub's cache directory: set_dir()'s, else $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    if _hub_dir is not None:
        return _hub_dir
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.expanduser(os.environ.get("TORCH_HOME") or os.path.join(cache, "torch")), "hub")


def set_dir(d):
    global _hub_dir
    _hub_dir = os.path.expanduser(os.fspath(d))


def download_url_to_file(url, dst, hash_prefix=None, progress=True):
    """url to dst (through a temporary dst.*.part); with hash_prefix, a file whose SHA-256 does not start with it is
    deleted and RuntimeError raised, as torch.hub does."""
    def check(digest):
        if hash_prefix and not digest.startswith(hash_prefix):
            raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{digest}") for {url}: '
                               f'the download is damaged or not the file named; nothing was saved')
    download.fetch(url, dst, progress, "sha256", check)


def load_state_dict_from_url(url, model_dir=None, map_location=None, progress=True, check_hash=False,
                             file_name=None, weights_only=None):
    """torch.hub.load_state_dict_from_url: the cached file if it is there, else download it (checking
    the hash prefix in its name when check_hash), then load it with minitorch_cl.load."""
    model_dir = model_dir or os.path.join(get_dir(), "checkpoints")
    filename = file_name or os.path.basename(urlparse(url).path)
    cached = os.path.join(model_dir, filename)
    if not os.path.exists(cached):
        print(f'Downloading: "{url}" to {cached}', file=sys.stderr)
        match = HASH_REGEX.search(filename) if check_hash else None
        download_url_to_file(url, cached, match.group(1) if match else None, progress)
    return load(cached, map_location=map_location, weights_only=weights_only)
