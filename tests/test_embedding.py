"""nn.Embedding: values and the scatter-add gradient (repeated indices add up) against NumPy."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from helpers import check


def scatter_add(idx, g, num, skip=None):
    """The float64 weight gradient: g's rows added into the rows idx names (repeats add up)."""
    want = np.zeros((num, g.shape[-1]))
    np.add.at(want, idx.reshape(-1), g.reshape(-1, g.shape[-1]))
    if skip is not None:
        want[skip] = 0
    return want


@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("num,dim,idx_shape", [(7, 33, (5, 13)), (1, 1, (9,)), (65, 7, (2, 3, 4))])
def test_embedding_values_and_grad(dev, rng, num, dim, idx_shape, noncontig):
    emb = nn.Embedding(num, dim).to(dev)
    w = emb.weight.detach().numpy().astype(np.float64)
    idx = rng.integers(0, num, size=idx_shape)
    idx.reshape(-1)[:3] = idx.reshape(-1)[0]  # repeats for sure
    check(dev, emb, lambda i: w[i], idx, params={"weight": (emb.weight, w)},
          np_grad=lambda inputs, g: [scatter_add(inputs[0], g, num)], noncontig=noncontig, rtol=1e-6, atol=1e-6,
          grad_rtol=1e-5, grad_atol=1e-5)  # noncontig: strided indices


def test_embedding_init_is_standard_normal(dev):
    mt.manual_seed(3)
    w = nn.Embedding(200, 50).to(dev).weight.detach().numpy()
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05


def test_embedding_padding_idx_gets_no_gradient(dev, rng):
    emb = nn.Embedding(6, 4, padding_idx=2).to(dev)
    w = emb.weight.detach().numpy().astype(np.float64)
    assert np.all(w[2] == 0)
    check(dev, emb, lambda i: w[i], np.array([[2, 1, 2], [0, 1, 5]]), params={"weight": (emb.weight, w)},
          np_grad=lambda inputs, g: [scatter_add(inputs[0], g, 6, skip=2)], rtol=1e-7, atol=0, grad_rtol=1e-5,
          grad_atol=1e-5)


def test_embedding_from_pretrained_and_errors(dev):
    table = mt.tensor(np.arange(12.0).reshape(4, 3), device=dev)
    emb = nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad
    np.testing.assert_allclose(emb(mt.tensor([3, 0], device=dev)).numpy(), [[9, 10, 11], [0, 1, 2]])
    with pytest.raises(TypeError, match="integer indices"):
        emb(mt.tensor([1.0], device=dev))
    assert repr(nn.Embedding(5, 2, padding_idx=0)) == "Embedding(5, 2, padding_idx=0)"
