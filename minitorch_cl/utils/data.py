"""torch.utils.data's names; the implementation lives in minitorch_cl.data (also importable as such)."""
from ..data import (ConcatDataset, DataLoader, Dataset, DistributedSampler, Subset, TensorDataset, default_collate,
                    get_worker_info, random_split)
from ..data_workers import WorkerInfo

__all__ = ["DataLoader", "Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DistributedSampler",
           "default_collate",
           "get_worker_info", "WorkerInfo"]
