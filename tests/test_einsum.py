"""einsum against np.einsum in float64 (values and central-difference gradients, strided views) and
against torch.einsum; bad equations raise RuntimeError naming the subscript and shapes."""
import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]), ("ij->ji", [(3, 5)]), ("ij->", [(3, 5)]), ("i,i->", [(7,), (7,)]), ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ijk,jil->kl", [(3, 4, 5), (4, 3, 2)]), ("iij->j", [(3, 3, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ab,cd", [(2, 3), (4, 2)]), ("i,i,i->i", [(4,), (4,), (4,)]), ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("ji", [(3, 4)]), ("iji->j", [(3, 2, 3)]), ("ij,ij->ij", [(3, 1), (3, 4)]), ("i...->...", [(3, 2, 2)]),
    ("ab, bc -> ca", [(2, 7), (7, 3)]),
]


@pytest.mark.parametrize("eq,shapes", CASES)
def test_einsum_numpy(dev, rng, eq, shapes):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    check(dev, lambda *xs: mt.einsum(eq, *xs), lambda *xs: np.einsum(eq, *xs), *arrays, rtol=1e-5, atol=1e-5,
          noncontig=True)


def test_einsum_matches_torch(dev, rng):
    torch = pytest.importorskip("torch")
    for eq, shapes in CASES:
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        ta = [torch.tensor(a, requires_grad=True) for a in arrays]
        ma = [mt.tensor(a, device=dev, requires_grad=True) for a in arrays]
        yt, ym = torch.einsum(eq, *ta), mt.einsum(eq, ma)  # a list of operands works too
        assert tuple(ym.shape) == tuple(yt.shape), eq
        np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5, err_msg=eq)
        g = rng.standard_normal(yt.shape).astype(np.float32)
        yt.backward(torch.tensor(g))
        ym.backward(mt.tensor(g, device=dev))
        for a, b in zip(ta, ma):
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-5, err_msg=eq)


def test_einsum_large_contraction(dev, rng):
    """Sizes that straddle the GEMM tiles go through the batched GEMM."""
    a = rng.standard_normal((3, 65, 33)).astype(np.float32)
    b = rng.standard_normal((33, 3, 7)).astype(np.float32)
    out = mt.einsum("bik,kbj->bij", mt.tensor(a, device=dev), mt.tensor(b, device=dev))
    np.testing.assert_allclose(out.numpy(), np.einsum("bik,kbj->bij", a.astype(np.float64), b), rtol=1e-4,
                               atol=1e-4)


def test_einsum_errors(dev):
    a, b = mt.zeros(3, 4, device=dev), mt.zeros(5, 6, device=dev)
    with pytest.raises(RuntimeError, match=r"subscript j has size 5 for operand 1.*size 4"):
        mt.einsum("ij,jk->ik", a, b)
    with pytest.raises(RuntimeError, match=r"number of subscripts in the equation \(3\).*dimensions \(2\)"):
        mt.einsum("ijk->i", a)
    with pytest.raises(RuntimeError, match="output subscript z"):
        mt.einsum("ij->z", a)
    with pytest.raises(RuntimeError, match="more operands"):
        mt.einsum("ij->i", a, b)
    with pytest.raises(RuntimeError, match="repeated"):
        mt.einsum("ii->i", a)
