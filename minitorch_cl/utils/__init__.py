"""torch.utils' names: utils.data."""
from . import data

__all__ = ["data"]
