"""torchvision's names: vision.datasets (CIFAR10/100, MNIST, FashionMNIST), vision.transforms on NumPy
images (no PIL), and vision.models."""
from . import transforms  # first: minitorch_cl.data re-exports three transforms while vision loads
from . import datasets
from . import models
from . import ops

__all__ = ["datasets", "models", "ops", "transforms"]
