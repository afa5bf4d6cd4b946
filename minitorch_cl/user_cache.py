"""The user's cache folder, $XDG_CACHE_HOME/minitorch_cl (by default ~/.cache/minitorch_cl), and the
one way its JSON files are written: to a temporary file that is then renamed over the old one, so a
reader sees the old file or the new one, never half of one."""
import json
import os
import tempfile


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minitorch_cl")


def cache_path(filename):
    return os.path.join(cache_dir(), filename)


def write_json(filename, data):
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir(), prefix="." + filename + "-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, cache_path(filename))
    except BaseException:
        os.unlink(tmp)
        raise
