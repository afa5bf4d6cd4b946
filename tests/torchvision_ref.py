"""torchvision for the reference comparisons, where it is installed (the import's workaround for the
registry's CUDA-build wheel lives in minitorch_cl/bench/_torchvision.py, which `bench models` shares)."""
import pytest

from minitorch_cl.bench._torchvision import copy_weights, import_torchvision as _import_torchvision

__all__ = ["import_torchvision", "copy_weights"]


def import_torchvision():
    """torchvision, or skip the test."""
    pytest.importorskip("torch")
    try:
        return _import_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed")
