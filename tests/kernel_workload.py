"""A tiny forward + backward run of every kernel family, for tools that watch the kernels rather
than the numbers: the OpenCL C 1.2 build test records the (file, defines) each family builds, and
the Oclgrind run checks every launch for out-of-bounds accesses and data races.

Sizes are tiny but straddle a work-group or a tile where it matters (7, 33, 65). Each family also
checks a value or two against NumPy, so a kernel that runs clean but wrong still fails.

    python tests/kernel_workload.py FAMILY [--profile cpu|gpu]...   # what test_oclgrind.py runs
"""
import contextlib
import math
import sys

import numpy as np

import minitorch_cl as mt
import minitorch_cl.nn.functional as F
from minitorch_cl import device_profile, gemm as gemm_mod, nn
from minitorch_cl.launch import launch
from minitorch_cl.tuner import profile_entries
from minitorch_cl.backend import RANDOM_UNIFORM
from minitorch_cl.ops import conv as conv_mod


@contextlib.contextmanager
def forced_profile(dev, type_name, **limits):
    """Run dev with the profile a device of type_name ('CPU', 'GPU') and its limits would get;
    limits (max_work_group_size=64, ...) stand in for the device's own, down to a smaller device's."""
    d = dev.cl_device
    old = dev._profile
    own = dict(max_work_group_size=d.max_work_group_size, local_mem_size=d.local_mem_size,
               mem_base_addr_align=d.mem_base_addr_align, extensions=d.extensions,
               native_vector_width_float=d.native_vector_width_float)
    dev._profile = device_profile.for_device(type_name, **{**own, **limits})
    try:
        yield dev.profile
    finally:
        dev._profile = old


def _t(dev, array, grad=True):
    return mt.tensor(np.asarray(array, np.float32), device=dev, requires_grad=grad)


def _close(got, want, tol=1e-4):
    got = got.detach().numpy() if isinstance(got, mt.Tensor) else np.asarray(got)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _backward(*outs):
    sum(o.sum() for o in outs).backward()


def elementwise(dev, rng):
    a, b = rng.standard_normal((7, 33)), rng.standard_normal((33,))
    x, y = _t(dev, a), _t(dev, b)
    z = (x * y + x.exp()).tanh() - mt.where(x > 0, x, y.sigmoid())
    _backward(z, F.gelu(x.T), x[:, ::2].relu())
    want = np.tanh(a * b + np.exp(a)) - np.where(a > 0, a, 1 / (1 + np.exp(-b)))
    _close(z, want)
    mt.manual_seed(0)
    r = mt.rand(65, device=dev).numpy()
    assert ((r >= 0) & (r < 1)).all()
    _close(F.dropout(_t(dev, np.ones(65), grad=False), 0.5, training=True).sum() >= 0, True)



def math_dtypes(dev, rng):
    """Issue 10's element-wise rows: a float, an integer (int8, uint8) and, where the device has
    cl_khr_fp64, a float64 variant of each kernel shape (unary with parameters, binary, integer
    division, shifts, activations)."""
    a, b = rng.standard_normal((7, 33)), np.abs(rng.standard_normal((33,))) + 0.5
    x, y = _t(dev, a), _t(dev, b)
    z = mt.erfinv(x.tanh() * 0.9) + mt.round(x, decimals=1) + mt.remainder(x, y) + F.silu(x) + F.elu(x, 0.5)
    _backward(z, F.softplus(x, beta=2.0), mt.atan2(x, y), mt.logaddexp(x, y))
    want = (_erfinv_ref(np.tanh(a) * 0.9) + np.round(a, 1) + np.remainder(a, b) + a / (1 + np.exp(-a))
            + np.where(a > 0, a, 0.5 * np.expm1(a)))
    _close(z, want)
    i8 = mt.tensor(rng.integers(-50, 50, 65), dtype=mt.int8, device=dev)
    u8 = mt.tensor(rng.integers(1, 9, 65), dtype=mt.uint8, device=dev)
    # int8 * uint8 is int16 (no wrap); integer // and % check the divisor on the host first, which a
    # recording run (nothing enqueued) cannot feed, so they are left to tests/test_math_ops.py
    got = ((i8 * u8) + (i8 << 1) + (i8 >> 2) + (~i8 & 7) + (i8 ^ 5)).numpy()
    ni, nu = i8.numpy().astype(np.int64), u8.numpy().astype(np.int64)
    assert np.array_equal(got, ni * nu + (ni << 1) + (ni >> 2) + (~ni & 7) + (ni ^ 5))
    assert mt.isnan(x).sum().item() == 0 and x.bool().all().item() == bool(np.all(a != 0))
    if dev.profile.fp64:
        d = mt.tensor(a, dtype=mt.float64, device=dev)
        _close(mt.log1p(d.abs()) + d // 0.5 + mt.hypot(d, d), np.log1p(np.abs(a)) + a // 0.5 + np.hypot(a, a), 1e-9)


def _erfinv_ref(y):
    erf, exp, pi, sqrt = math.erf, math.exp, math.pi, math.sqrt
    out = np.zeros_like(y)
    for i, v in np.ndenumerate(y):
        x = 0.0
        for _ in range(60):
            x -= (erf(x) - v) / (2 / sqrt(pi) * exp(-x * x))
        out[i] = x
    return out

def reduce(dev, rng):
    a = rng.standard_normal((3, 65, 7))
    x = _t(dev, a)
    s = x.sum(1)
    _backward(s, x.amax(dim=(0, 2)), x.mean(), x.std(dim=2))
    _close(s, a.sum(1))
    _close(mt.argmax(x, dim=1), a.argmax(1))
    _close(mt.argmin(x.permute(2, 0, 1), dim=2), a.transpose(2, 0, 1).argmin(2))
    _close(mt.logsumexp(x, dim=1), np.log(np.exp(a).sum(1)))
    c = rng.standard_normal((5, 7, 16))  # columns eight at a time, an odd count of rows (reduce_cols8)
    _close(_t(dev, c, grad=False).sum(1), c.sum(1))


def index(dev, rng):
    a = rng.standard_normal((33, 7))
    idx = np.array([0, 32, 5, -1, 5])
    x = _t(dev, a)
    g = x[mt.tensor(idx, device=dev)]
    m = x[mt.tensor(a[:, 0] > 0, device=dev)]
    emb = nn.Embedding(33, 7).to(dev)
    e = emb(mt.tensor(np.array([[1, 2], [32, 1]]), device=dev))
    _backward(g, m, e, mt.index_select(x, 1, mt.tensor(np.array([6, 0]), device=dev)))
    _close(g, a[idx])
    want = np.zeros_like(a)
    np.add.at(want, idx, 1.0)
    _close(x.grad.numpy() - (a[:, :1] > 0) - np.isin(np.arange(7), [6, 0]), want)
    # several tensor indices, the gather/scatter family, nonzero
    rows, cols = mt.tensor(np.array([3, 0, 32]), device=dev), mt.tensor(np.array([6, 1, 0]), device=dev)
    y = _t(dev, a)
    picked = y[rows, cols]
    gathered = mt.gather(y, 1, mt.tensor(np.array([[0, 6]] * 33), device=dev))
    _backward(picked, gathered)
    _close(picked, a[[3, 0, 32], [6, 1, 0]])
    z = mt.zeros(33, 7, device=dev)
    z.scatter_add_(0, mt.tensor(np.zeros((2, 7), dtype=np.int64), device=dev), mt.ones(2, 7, device=dev))
    z[rows, cols] = 5.0
    _close(mt.nonzero(z)[:, 0], np.nonzero(z.numpy())[0])


def gemm_family(dev, rng):
    M, N, K = 7, 33, 65  # one tile of C, K over several K-steps; the gradients' GEMMs span two tiles
    a, b, bias = rng.standard_normal((M, K)), rng.standard_normal((N, K)), rng.standard_normal(N)
    x, w, c = _t(dev, a), _t(dev, b), _t(dev, bias)
    y = F.linear(x, w, c)  # x @ w.T + bias: the transposed operand read in place
    _backward(y.relu())
    _close(y, a @ b.T + bias)
    _close(w.grad, (a @ b.T + bias > 0).T @ a)
    p, q = rng.standard_normal((2, 1, 3)), rng.standard_normal((2, 3, 1))
    _close(mt.bmm(_t(dev, p), _t(dev, q)), p @ q)
    u, v = rng.standard_normal((9, 7)), rng.standard_normal((9, 35))
    _close(_t(dev, u).T @ _t(dev, v), u.T @ v)  # gemm_pack_rows_*: B (9, 35) row-major, a partial third panel


def conv(dev, rng):
    x = _t(dev, rng.standard_normal((2, 3, 7, 9)))
    layer = nn.Conv2d(3, 4, 3, stride=2, padding=1).to(dev)
    y = layer(x)
    _backward(F.relu(y))
    with mt.no_grad():
        F.conv2d(x, layer.weight, None, padding=(0, 2), dilation=2)
    assert y.shape == (2, 4, 4, 5) and np.isfinite(x.grad.numpy()).all()
    w = layer.weight.detach().numpy()
    want = np.einsum("nchw,ochw->o", x.detach().numpy()[:, :, 1:4, 1:4], w[:, :, :, :]) \
        + 2 * layer.bias.detach().numpy()
    _close(y[:, :, 1, 1].sum(0), want, 1e-3)
    depthwise = nn.Conv2d(3, 6, 3, padding=1, groups=3).to(dev)
    grouped = nn.Conv2d(3, 3, 3, groups=3, bias=False).to(dev)
    up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1).to(dev)
    u = up(x)
    _backward(depthwise(x), grouped(x), u)
    assert u.shape == (2, 2, 14, 18)
    wide = _t(dev, rng.standard_normal((1, 2, 4, 40)))  # rows wide enough for the depthwise float8 columns
    _backward(nn.Conv2d(2, 2, 5, padding=2, groups=2).to(dev)(wide),
              nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2).to(dev)(wide))
    thresholds = conv_mod.IMPLICIT_MIN_USE, conv_mod.IMPLICIT_MIN_K
    conv_mod.IMPLICIT_MIN_USE = conv_mod.IMPLICIT_MIN_K = 0  # gemm_implicit (CPU profile) on small planes:
    try:  # its last panels' reads
        small = _t(dev, rng.standard_normal((2, 3, 5, 7)))
        _backward(nn.Conv2d(3, 3, 3, padding=1).to(dev)(small), nn.Conv2d(3, 2, (3, 2), padding=(1, 3)).to(dev)(small),
                  nn.Conv2d(3, 4, 4, padding="same").to(dev)(small))
    finally:
        conv_mod.IMPLICIT_MIN_USE, conv_mod.IMPLICIT_MIN_K = thresholds
    mobile_eval(dev, rng)


def mobile_eval(dev, rng):
    """vision.ops' blocks outside autograd (BatchNorm folded, activations fused, se.cl) against their
    generic pass: each fused activation, a depthwise band at stride 1 and 2, a row too wide for the
    band (depthwise_fwd), an expansion's activation fused into the depthwise loads."""
    from minitorch_cl.vision import ops
    x = _t(dev, rng.standard_normal((2, 3, 7, 9)))
    wide = _t(dev, rng.standard_normal((1, 3, 4, 40)))
    widest = _t(dev, rng.standard_normal((1, 3, 2, 2100)))
    cases = [(x, dict(kernel_size=3, groups=3, activation_layer=a)) for a in (nn.SiLU, nn.Hardswish, nn.ReLU6, None)]
    cases += [(x, dict(kernel_size=5, stride=2, groups=3)), (wide, dict(kernel_size=3, stride=2, groups=3)),
              (widest, dict(kernel_size=3, groups=3, activation_layer=nn.SiLU)),
              (x, dict(kernel_size=1, activation_layer=nn.SiLU))]
    for inp, kw in cases:
        block = ops.Conv2dNormActivation(3, 3, **kw).to(dev).eval()
        for se in (ops.SqueezeExcitation(3, 2), ops.SqueezeExcitation(3, 2, nn.SiLU, nn.Hardsigmoid)):
            se = se.to(dev)
            want = se(block(inp))  # inp requires grad: the generic pass
            with mt.no_grad():
                _close(se(block(inp)), want.detach().numpy())
    for inp in (x, widest):  # an expansion's SiLU in the depthwise loads (ACT_IN), or in place
        seq = nn.Sequential(ops.Conv2dNormActivation(3, 6, kernel_size=1, activation_layer=nn.SiLU),
                            ops.Conv2dNormActivation(6, 6, groups=6, activation_layer=nn.Hardswish)).to(dev).eval()
        want = seq(inp)
        with mt.no_grad():
            _close(ops.sequential_eval(seq, inp), want.detach().numpy())


def pool(dev, rng):
    a = rng.standard_normal((2, 3, 8, 7))
    x = _t(dev, a)
    m2 = F.max_pool2d(x, 2)                  # 2x2 / stride 2 on narrow rows: the scalar columns
    m3 = F.max_pool2d(x, 3, stride=2, padding=1)
    av = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    _backward(m2, m3, av, F.avg_pool2d(x, 2))
    _close(m2, a[:, :, :8, :6].reshape(2, 3, 4, 2, 3, 2).max((3, 5)))
    ad, (am, ai) = F.adaptive_avg_pool2d(x, (3, 2)), F.adaptive_max_pool2d(x, 3, return_indices=True)
    wide = _t(dev, rng.standard_normal((1, 2, 5, 40)))  # rows wide enough for maxpool_rows_fwd's float8 columns
    _backward(ad, am, F.max_pool2d(x, 3, stride=2, ceil_mode=True), F.max_pool2d(wide, 3, stride=2, ceil_mode=True),
              F.max_pool2d(wide, 3, stride=1, padding=1), F.max_pool2d(wide, 2))  # 2x2: paired 16-float loads
    _close(F.adaptive_avg_pool2d(x, 1).reshape(2, 3), a.mean((2, 3)))
    assert F.max_unpool2d(am, ai, 3, output_size=(8, 7)).shape == (2, 3, 8, 7)


def interpolate(dev, rng):
    a = rng.standard_normal((2, 3, 5, 4))
    x = _t(dev, a)
    near = F.interpolate(x, scale_factor=2, mode="nearest")
    _backward(near, F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False),
              F.interpolate(x, size=(6, 6), mode="bicubic", align_corners=True))
    _close(near, a.repeat(2, axis=2).repeat(2, axis=3))


def softmax(dev, rng):
    a = rng.standard_normal((7, 33))
    x = _t(dev, a)
    s = F.softmax(x, dim=1)
    labels = rng.integers(0, 33, 7)
    loss = F.cross_entropy(x, mt.tensor(labels, device=dev), label_smoothing=0.1) \
        + F.nll_loss(F.log_softmax(x.T, dim=0).T, mt.tensor(labels, device=dev)) + F.mse_loss(s, x.detach())
    _backward(loss, F.softmax(x, dim=0))
    e = np.exp(a - a.max(1, keepdims=True))
    _close(s, e / e.sum(1, keepdims=True))


def optim(dev, rng):
    for make in (lambda p: mt.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                 lambda p: mt.optim.Adam(p, lr=0.1, amsgrad=True),
                 lambda p: mt.optim.AdamW(p, lr=0.1),
                 lambda p: mt.optim.RMSprop(p, lr=0.1, momentum=0.5, centered=True),
                 lambda p: mt.optim.Adagrad(p, lr=0.1)):
        ws = [nn.Parameter(_t(dev, rng.standard_normal(n))) for n in (65, 3, 9, 1, 8, 17, 5, 2, 33, 4)]
        opt = make(ws)  # (ten parameters: two launches of the eight-slot kernels, the second part empty)
        for _ in range(2):
            opt.zero_grad()
            sum((w * w).sum() for w in ws).backward()
            opt.step()
        assert all(np.isfinite(w.detach().numpy()).all() for w in ws)
    w = nn.Parameter(_t(dev, np.ones(7)))
    opt = mt.optim.SGD([w], lr=0.5)
    (w * w).sum().backward()
    opt.step()
    _close(w, np.zeros(7))


def lstm(dev, rng):
    # batch 7 and 19 units: past one block of rows and one panel of units, with partial edges
    layer = nn.LSTM(5, 19, bidirectional=True).to(dev)
    out, (h, c) = layer(_t(dev, rng.standard_normal((3, 7, 5))))
    _backward(out, h, c)
    assert out.shape == (3, 7, 38) and np.isfinite(layer.weight_hh_l0.grad.numpy()).all()


def rnn(dev, rng):
    x = _t(dev, rng.standard_normal((2, 2, 5)))
    gru, elman = nn.GRU(5, 7).to(dev), nn.RNN(5, 7, nonlinearity="relu", batch_first=True).to(dev)
    cell = nn.GRUCell(5, 7).to(dev)
    y1, h1 = gru(x)
    y2, h2 = elman(x)
    _backward(y1, h1, y2, h2, cell(x[0]))
    assert np.isfinite(gru.weight_hh_l0.grad.numpy()).all() and np.isfinite(x.grad.numpy()).all()


def _ref_attention(q, k, v, causal):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def attention(dev, rng):
    """On a CPU profile, at both vector widths (the device's and the other one), so that both are
    recorded for the build test and run on Oclgrind."""
    if dev.profile.attention_local:
        return _attention(dev, rng)
    for width in (dev.profile.attention_lanes, 24 - dev.profile.attention_lanes):
        with profile_entries(dev, attention_lanes=width):
            _attention(dev, rng)


def _attention(dev, rng):
    for L, S, D, causal in ((7, 7, 8, True), (33, 5, 16, False), (17, 18, 24, False)):
        q, k, v = (rng.standard_normal((2, 1, n, D)) for n in (L, S, S))
        tq, tk, tv = _t(dev, q), _t(dev, k), _t(dev, v)
        y = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
        _backward(y)
        _close(y, _ref_attention(q, k, v, causal), 1e-3)
    mask = _t(dev, rng.standard_normal((7, 7)), grad=False)
    _backward(F.scaled_dot_product_attention(tq[..., :7, :], tq[..., :7, :], tq[..., :7, :], attn_mask=mask))
    _backward(F.scaled_dot_product_attention(tq, tk, tv, dropout_p=0.3))  # keep factors recomputed in backward


def layernorm(dev, rng):
    a = rng.standard_normal((3, 65))
    x = _t(dev, a)
    ln = nn.LayerNorm(65).to(dev)
    y = ln(x)
    _backward(y * _t(dev, rng.standard_normal(65), grad=False), F.layer_norm(x[:, :33], (33,)))
    _close(y, (a - a.mean(1, keepdims=True)) / np.sqrt(a.var(1, keepdims=True) + 1e-5), 1e-3)


def batchnorm(dev, rng):
    a = rng.standard_normal((3, 4, 5, 7))
    x = _t(dev, a)
    bn = nn.BatchNorm2d(4).to(dev)
    y = bn(x)
    gn = F.group_norm(x, 2, _t(dev, np.ones(4)), _t(dev, np.zeros(4)))
    _backward(y * _t(dev, rng.standard_normal((4, 1, 1)), grad=False), gn)
    bn.eval()
    _backward(bn(x))
    m, v = a.mean((0, 2, 3), keepdims=True), a.var((0, 2, 3), keepdims=True)
    _close(y, (a - m) / np.sqrt(v + 1e-5), 1e-3)


def clip(dev, rng):
    params = [nn.Parameter(_t(dev, rng.standard_normal(n))) for n in (1, 7, 65, 33, 5, 2, 3, 4, 9)]
    sum((p * p).sum() for p in params).backward()
    grads = np.concatenate([p.grad.numpy() for p in params])
    total = nn.utils.clip_grad_norm_(params, 1.0)
    _close(total, np.linalg.norm(grads), 1e-3)
    nn.utils.clip_grad_norm_(params, 1.0, norm_type=float("inf"))
    nn.utils.clip_grad_value_(params, 0.01)
    assert np.abs(np.concatenate([p.grad.numpy() for p in params])).max() <= 0.01 + 1e-7


def scan(dev, rng):
    a, b = rng.standard_normal((7, 65)), rng.standard_normal((2, 1100))  # b: few long rows, scan_group
    x, y = _t(dev, a), _t(dev, b)
    c = mt.cumsum(x, 1)
    _backward(c, x.cumprod(0), mt.cummax(x, 1).values, mt.cummin(x.T, 1).values, mt.logcumsumexp(x, 1),
              x.prod(1), mt.cumsum(y, 1), mt.cummax(y, 1).values)
    _close(c, np.cumsum(a, 1))
    _close(mt.cumsum(y, 1), np.cumsum(b, 1), 1e-3)


def sort(dev, rng):
    # b: longer than a local block of the GPU profile (1024), so that its rows pad to 2048 and take
    # one global stage (sort_step) between local ones
    a, b = rng.standard_normal((7, 65)), rng.standard_normal((1, 1100))
    x, y = _t(dev, a), _t(dev, b)
    v, w = mt.sort(x, 1, descending=True).values, mt.sort(y).values
    _backward(v, mt.topk(x, 3, 0).values, mt.median(x, 1).values, mt.kthvalue(x, 2, 1).values, w)
    _close(v, -np.sort(-a, 1))
    _close(w, np.sort(b))


def canary_out_of_bounds(dev, rng):
    """A launch that writes past its buffer's end, which Oclgrind must report (never in FAMILIES)."""
    out = mt.empty(16, device=dev)
    launch(dev, "elementwise.cl", "random_fill", (64,), 64, 0, 0.0, 1.0, out, defines=dict(RANDOM_MODE=RANDOM_UNIFORM))


FAMILIES = {"elementwise": elementwise, "reduce": reduce, "index": index, "gemm": gemm_family, "conv": conv,
            "interpolate": interpolate,
            "pool": pool, "softmax": softmax, "optim": optim, "lstm": lstm, "rnn": rnn, "attention": attention,
            "layernorm": layernorm, "batchnorm": batchnorm, "clip": clip, "scan": scan, "sort": sort,
            "math_dtypes": math_dtypes}  # last: a recording run reads pooled buffers nothing has written
PROFILES = ("CPU", "GPU")
LIMITS = {"SMALLGPU": ("GPU", {"max_work_group_size": 64})}  # a GPU whose work-groups hold 64 items


def run(dev, family, profile):
    """Run one family with the kernel variants of a CPU or a GPU profile (gemm_packed or gemm_tiled,
    attention with or without local memory, the norms' work-group tree sums or not, ...)."""
    type_name, limits = LIMITS.get(profile, (profile, {}))
    with forced_profile(dev, type_name, **limits):
        FAMILIES.get(family, globals().get(family))(dev, np.random.default_rng(0))
        dev.synchronize()


def main(argv):
    families = [a for a in argv if not a.startswith("--")] or list(FAMILIES)
    profiles = [a[len("--profile="):].upper() for a in argv if a.startswith("--profile=")] or PROFILES
    dev = mt.device()
    for family in families:
        for profile in profiles:
            print(f"== {family} {profile} on {dev.spec} ({dev.name})", file=sys.stderr, flush=True)
            run(dev, family, profile)
    print("workload ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
