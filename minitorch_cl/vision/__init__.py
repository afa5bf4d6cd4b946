"""torchvision's names: vision.datasets (CIFAR10/100, MNIST, FashionMNIST) and vision.transforms,
on NumPy images (no PIL)."""
from . import transforms  # first: minitorch_cl.data re-exports three transforms while vision loads
from . import datasets

__all__ = ["datasets", "transforms"]
