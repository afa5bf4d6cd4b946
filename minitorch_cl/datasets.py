"""The data sets' old home: minitorch_cl.vision.datasets under its former name."""
from .vision.datasets import (CIFAR10, CIFAR10_MD5, CIFAR10_URL, CIFAR100, MNIST, DatasetError, Digits, FashionMNIST,
                              digits)

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "Digits", "digits", "DatasetError", "CIFAR10_URL",
           "CIFAR10_MD5"]
