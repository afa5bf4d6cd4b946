"""A real learning test: the article's ConvNet (examples/cifar_convnet.py) trained on scikit-learn's
digits reaches at least 95% accuracy on the 360 held-out test digits."""
import re

import pytest


def test_convnet_learns_digits(dev, example):
    pytest.importorskip("sklearn")
    from click.testing import CliRunner
    args = ["--dataset", "digits", "--device", dev.spec, "--seed", "0"]
    result = CliRunner().invoke(example("cifar_convnet").main, args)
    assert result.exit_code == 0, result.output
    accuracy = float(re.search(r"done: digits, test accuracy ([\d.]+)%", result.output).group(1))
    assert accuracy >= 95.0, result.output
