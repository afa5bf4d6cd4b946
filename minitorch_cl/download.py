"""Files from the network: one download routine for the datasets and the model hub. It writes through a
temporary file beside the destination, hashes on the way and lets the caller reject the digest before
the rename, so an interrupted or damaged download never lands under the final name."""
import hashlib
import os
import sys
import urllib.request
import uuid
from pathlib import Path


class DownloadError(RuntimeError):
    """The network failed or the transfer stopped short."""


def fetch(url, dest, progress=True, hash_name="sha256", check=None):
    """Download url to dest; returns the file's hex digest. check(digest) may raise to refuse the file
    (it is then deleted and dest is left as it was)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # a temporary name of its own: processes fetching the same file at once (the ranks of one job) do
    # not write into each other's; the last rename wins, with a whole file
    tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:12]}.part")
    digest = hashlib.new(hash_name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "minitorch_cl"})
        with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for chunk in iter(lambda: response.read(1 << 20), b""):
                f.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    _progress(done, total)
        if progress:
            print(file=sys.stderr)
        if total and done != total:
            raise DownloadError(f"download of {url} stopped after {done} of {total} bytes; run again to retry")
        if check is not None:
            check(digest.hexdigest())
        os.replace(tmp, dest)
    except (OSError, ValueError) as err:  # urllib.error.URLError is an OSError
        raise DownloadError(f"could not download {url}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def file_digest(path, hash_name="sha256"):
    h = hashlib.new(hash_name)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress(done, total):
    if total:
        filled = int(30 * done / total)
        print(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done / 2**20:6.1f} / {total / 2**20:.1f} MiB",
              end="", file=sys.stderr, flush=True)
    else:
        print(f"\r  {done / 2**20:6.1f} MiB", end="", file=sys.stderr, flush=True)
