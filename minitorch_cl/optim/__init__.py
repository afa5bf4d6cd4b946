"""torch.optim's names: the optimizers (optimizer.py, fused kernels in clkernels/optim.cl) and
lr_scheduler (host-side learning-rate schedules over param_groups)."""
from .optimizer import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
