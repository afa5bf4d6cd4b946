from .. import dtypes
from ..autograd import no_grad
from ..ops.loss import embedding
from ..tensor import empty
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """A lookup table: integer indices (...) -> rows of weight (num_embeddings, embedding_dim), N(0, 1) init.
    The gradient is a scatter-add of the output gradient into the looked-up rows (repeats add up)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        if scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: scale_grad_by_freq and sparse are not implemented")
        self.max_norm, self.norm_type = max_norm, norm_type
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx {padding_idx} out of range for {num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        if _weight is not None:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding weight of shape {_weight.shape} does not match "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight.detach())
        else:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, device=device))
            self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is a copy of embeddings (num, dim); frozen unless freeze=False."""
        m = cls(embeddings.shape[0], embeddings.shape[1], padding_idx=padding_idx, max_norm=max_norm,
                norm_type=norm_type, _weight=embeddings.clone())
        m.weight.requires_grad = not freeze
        return m

    def forward(self, input):
        if input.dtype.is_floating or input.dtype is dtypes.bool_:
            raise TypeError(f"Embedding expects integer indices, got {input.dtype!r} of shape {input.shape}")
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        s += f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return s + (f", max_norm={self.max_norm}" if self.max_norm is not None else "")
