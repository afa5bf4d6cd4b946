"""One helper that runs an op and its gradient here and in a float64 reference (NumPy, and PyTorch if installed)."""
import numpy as np

import minitorch_cl as mt
from minitorch_cl import launch


def as_input(dev, array, noncontig=False, requires_grad=None):
    """A tensor holding array; with noncontig, a strided view into a larger buffer."""
    array = np.asarray(array)
    floating = array.dtype.kind == "f"
    rg = floating if requires_grad is None else requires_grad
    if noncontig and array.ndim > 0:
        padded = np.stack([array, np.full_like(array, 7)], axis=-1)  # (..., 2): every other element
        base = mt.tensor(padded, device=dev, dtype=mt.float32 if floating else None, requires_grad=rg)
        return base, base[..., 0]
    t = mt.tensor(array, device=dev, dtype=mt.float32 if floating else None, requires_grad=rg)
    return t, t


def f32(array):
    """array rounded to float32 and held in float64: the values a device tensor made from it holds."""
    return np.asarray(array).astype(np.float32).astype(np.float64)


def sum_to(g, shape):
    """A broadcast gradient summed back to shape (NumPy's broadcasting rule, read backwards)."""
    g = g.sum(tuple(range(g.ndim - len(shape))))
    return g.sum(tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1), keepdims=True)


def compare(got, want, rtol=1e-5, atol=1e-5, what="output"):
    """got (a tensor or an array) against a reference: shape, then values (exactly when not floating)."""
    got = got.detach().numpy() if isinstance(got, mt.Tensor) else np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def numeric_grad(loss, x, entries=None, rng=None, h=1e-6):
    """d loss() / d x by central differences, x perturbed in place; with entries, only that many random
    entries are computed and the others are NaN."""
    flat = x.reshape(-1)
    assert x.size == 0 or np.shares_memory(flat, x), "the reference must read x itself"
    picked = range(flat.size) if entries is None or entries >= flat.size else \
        rng.choice(flat.size, entries, replace=False)
    grad = np.full(flat.size, np.nan)
    for i in picked:
        old = flat[i]
        flat[i] = old + h
        up = loss()
        flat[i] = old - h
        down = loss()
        flat[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad.reshape(x.shape)


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _pick(tol, i):
    """A tolerance given once, or one per output (values) or per gradient."""
    return tol[i] if isinstance(tol, (tuple, list)) else tol


def _torch_reference(torch_fn, ref_in, floating, grad, diff, w64):
    """torch_fn's outputs and input gradients in float64, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    tin = [torch.tensor(a, requires_grad=bool(grad and f)) for a, f in zip(ref_in, floating)]
    outs = _tuple(torch_fn(*tin))
    if grad:
        torch.autograd.backward([outs[i] for i in diff], [torch.tensor(w) for w in w64])
    values = [o.detach().numpy() for o in outs]
    return values, [t.grad.numpy() for t, f in zip(tin, floating) if f] if grad else []


def check(dev, mt_fn, np_fn, *arrays, grad=True, weights=None, np_grad=None, params=None, entries=None,
          torch_fn=None, noncontig=False, rtol=1e-5, atol=1e-5, grad_rtol=None, grad_atol=None):
    """mt_fn on float32 tensors vs np_fn on the same values in float64 (and torch_fn in torch float64, if
    installed): every output, then the gradient of sum_i sum(out_i * w_i) for each floating input and each
    param, a {name: (tensor, float64 array the reference reads)}.

    weights: the w_i, one per floating output (arrays or tensors; random by default). np_grad(inputs, weights)
    returns the gradients (floating inputs, then params; broadcast shapes are summed back); without it, central
    differences of np_fn, on only `entries` random entries of each gradient if given. rtol/atol may be given per
    output and grad_rtol/grad_atol (default 10 * rtol, 10 * atol + 1e-4 * max|gradient|) per gradient.
    noncontig (once, or per input) feeds strided views and checks that no gradient leaks outside them.
    """
    rng = np.random.default_rng(0)
    arrays = [np.asarray(a) for a in arrays]
    floating = [a.dtype.kind == "f" for a in arrays]
    strided = [bool(_pick(noncontig, i)) and a.ndim > 0 for i, a in enumerate(arrays)]
    made = [as_input(dev, a, s, requires_grad=grad and f) for a, f, s in zip(arrays, floating, strided)]
    bases, inputs = [b for b, _ in made], [t for _, t in made]
    ref_in = [f32(a) if f else a for a, f in zip(arrays, floating)]  # exactly the values the device holds
    outs, refs = _tuple(mt_fn(*inputs)), [np.asarray(r) for r in _tuple(np_fn(*ref_in))]
    assert len(outs) == len(refs), f"{len(outs)} outputs, the reference has {len(refs)}"
    for i, (o, r) in enumerate(zip(outs, refs)):
        compare(o, r, _pick(rtol, i), _pick(atol, i), f"output {i}")
    diff = [i for i, r in enumerate(refs) if r.dtype.kind == "f"]  # the outputs a gradient flows from
    ws = _tuple(weights) if weights is not None else [rng.standard_normal(refs[i].shape) for i in diff]
    assert len(ws) == len(diff), f"{len(ws)} weights for {len(diff)} floating outputs"
    wt = [w if isinstance(w, mt.Tensor) else mt.tensor(w, device=dev, dtype=mt.float32).reshape(np.shape(w))
          for w in ws]  # reshape: mt.tensor makes a 0-d array (1,)
    w64 = [w.numpy().astype(np.float64) for w in wt]
    expected = {}
    if torch_fn is not None:
        torch_ref = _torch_reference(torch_fn, ref_in, floating, grad, diff, w64)
        if torch_ref is not None:
            for i, (o, r) in enumerate(zip(outs, torch_ref[0])):
                compare(o, r, _pick(rtol, i), _pick(atol, i), f"output {i} vs torch")
            expected["torch"] = torch_ref[1]
    if not grad:
        return outs[0] if len(outs) == 1 else outs
    if len(diff) == 1:
        outs[diff[0]].backward(wt[0])
    else:
        sum((outs[i] * w).sum() for i, w in zip(diff, wt)).backward()

    targets = [(bases[i], ref_in[i], f"input {i}", strided[i]) for i in range(len(arrays)) if floating[i]]
    targets += [(t, a, f"param {name}", False) for name, (t, a) in (params or {}).items()]

    def loss():
        out = _tuple(np_fn(*ref_in))
        return sum(np.sum(np.asarray(out[i]) * w) for i, w in zip(diff, w64))

    expected["numpy"] = list(np_grad(ref_in, w64 if len(w64) > 1 else w64[0])) if np_grad else \
        [numeric_grad(loss, a, entries, rng) for _, a, _, _ in targets]
    assert len(expected["numpy"]) == len(targets), f"{len(expected['numpy'])} gradients for {len(targets)} leaves"
    grad_rtol = 10 * min(_tuple(rtol)) if grad_rtol is None else grad_rtol
    for k, (leaf, a, what, view) in enumerate(targets):
        assert leaf.grad is not None, f"no gradient reached {what}"
        got = leaf.grad.numpy()
        if view:
            assert np.all(got[..., 1] == 0), f"gradient leaked into elements outside the view of {what}"
            got = got[..., 0]
        for source, grads in expected.items():  # torch gives no gradients for params
            if k < len(grads):
                want = sum_to(np.asarray(grads[k], dtype=np.float64), a.shape)
                picked = ~np.isnan(want) if entries is not None else ...  # the entries central differences did
                tol = 10 * min(_tuple(atol)) + 1e-4 * np.abs(want[picked]).max(initial=0) if grad_atol is None \
                    else _pick(grad_atol, k)
                np.testing.assert_allclose(got[picked], want[picked], rtol=_pick(grad_rtol, k), atol=tol,
                                           err_msg=f"gradient of {what} ({source})")
    return outs[0] if len(outs) == 1 else outs


def count_launches(fn, wanted):
    """How many kernel launches fn() makes whose (file, kernel, defines) key satisfies wanted(key)."""
    seen = []
    observe = lambda dev, key, event, grid, local, work: seen.append(key) if wanted(key) else None
    launch.observers.append(observe)
    try:
        fn()
    finally:
        launch.observers.remove(observe)
    return len(seen)
