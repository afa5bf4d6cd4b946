"""torch.utils.data's names; the implementation lives in minitorch_cl.data (also importable as such)."""
from ..data import DataLoader, Dataset, TensorDataset, default_collate, get_worker_info
from ..data_workers import WorkerInfo

__all__ = ["DataLoader", "Dataset", "TensorDataset", "default_collate", "get_worker_info", "WorkerInfo"]
