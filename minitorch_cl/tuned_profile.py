"""The autotuner's stored winners: one JSON file in $XDG_CACHE_HOME/minitorch_cl (~/.cache/minitorch_cl),
one record per device keyed by platform name + version, device name and driver version.

Device.profile applies a device's record when it first builds the profile, so a tuned device runs
tuned with no flag. A record is stale (and ignored) when its schema or the hash of the kernels it was
tuned on (matmul.cl, gemm_block.h, attention.cl) differs; a file that does not parse is ignored with a warning; a device never
tuned runs on the built-in defaults. The file is written to a temporary file and renamed.
"""
import hashlib
import json
import warnings

from . import kernels
from . import user_cache

SCHEMA = 1
FILENAME = "tuned.json"
TUNED_FILES = ("matmul.cl", "gemm_block.h", "attention.cl")  # the kernels whose -D parameters the records hold


def cache_path():
    return user_cache.cache_path(FILENAME)


def device_key(platform_name, platform_version, device_name, driver_version):
    return " | ".join(s.strip() for s in (platform_name, platform_version, device_name, driver_version))


def kernels_hash():
    h = hashlib.sha256()
    for name in TUNED_FILES:
        h.update((kernels.kernel_dir() / name).read_bytes())
    return h.hexdigest()[:16]


def read_all():
    """Every stored record by device key; {} when there is no file, or (with a warning) a corrupt one."""
    path = cache_path()
    try:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ValueError("not an object of records")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        warnings.warn(f"minitorch_cl: ignoring the corrupt tuning cache {path} ({err}); "
                      "built-in defaults apply (rerun `minitorch-cl tune`)", RuntimeWarning, stacklevel=2)
        return {}


def is_current(record):
    return record.get("schema") == SCHEMA and record.get("kernels") == kernels_hash() and \
        isinstance(record.get("entries"), dict)


def lookup(key):
    """The profile entries stored for this device key when its record is current, else {}."""
    record = read_all().get(key)
    return dict(record["entries"]) if record and is_current(record) else {}


def apply(profile, key):
    """Update a DeviceProfile with the device's stored winners; returns what was applied ({} if none)."""
    entries = lookup(key)
    if entries:
        try:
            profile.update(**entries)
        except KeyError as err:
            warnings.warn(f"minitorch_cl: ignoring the tuning record for {key}: {err}", RuntimeWarning)
            return {}
    return entries


def store(key, entries, **details):
    """Write (replace) this device's record, keeping the others; written atomically."""
    records = read_all()
    records[key] = dict(schema=SCHEMA, kernels=kernels_hash(), entries=entries, **details)
    user_cache.write_json(FILENAME, records)
    return records[key]
