"""A real learning test: the article's ConvNet (examples/cifar_convnet.py) trained on scikit-learn's
digits reaches at least 95% accuracy on the 360 held-out test digits."""
import importlib.util
import re
from pathlib import Path

import pytest


def test_convnet_learns_digits(dev):
    pytest.importorskip("sklearn")
    from click.testing import CliRunner
    path = Path(__file__).resolve().parent.parent / "examples" / "cifar_convnet.py"
    spec = importlib.util.spec_from_file_location("cifar_convnet", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = CliRunner().invoke(example.main, ["--dataset", "digits", "--device", dev.spec, "--seed", "0"])
    assert result.exit_code == 0, result.output
    accuracy = float(re.search(r"done: digits, test accuracy ([\d.]+)%", result.output).group(1))
    assert accuracy >= 95.0, result.output
