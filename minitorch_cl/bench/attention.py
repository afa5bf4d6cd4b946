"""Fused attention forward and backward at (batch 8, heads 8, seq 512, head dim 64), next to PyTorch's
CPU scaled_dot_product_attention when it is installed."""
import numpy as np

from . import paired_times, torch_or_none

NOTE = ("FLOPs: forward 4*B*H*L*S*D (Q K^T and P V); backward counted as 2.5x forward (the usual "
        "convention), whatever each implementation recomputes. Times are medians, ours and PyTorch's "
        "alternating call by call; backward = forward+backward - forward.")


def _shapes(quick):
    return [(8, 8, 128, 64)] if quick else [(8, 8, 512, 64), (8, 8, 512, 64, "causal")]


def run(dev, quick=False):
    import minitorch_cl as mt
    from minitorch_cl.nn.functional import scaled_dot_product_attention as sdpa
    torch = torch_or_none()
    rows = []
    repeats = 3 if quick else 7
    for shape in _shapes(quick):
        B, H, L, D = shape[:4]
        causal = len(shape) > 4
        flops = 4.0 * B * H * L * L * D * (0.5 if causal else 1.0)
        rng = np.random.default_rng(0)
        q, k, v, g = (rng.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(4))
        tq, tk, tv = (mt.tensor(a, device=dev, requires_grad=True) for a in (q, k, v))
        tg = mt.tensor(g, device=dev)

        def fwd():
            with mt.no_grad():
                sdpa(tq, tk, tv, is_causal=causal)

        def fwd_bwd():
            sdpa(tq, tk, tv, is_causal=causal).backward(tg)

        tfwd = tfwd_bwd = None
        if torch is not None:
            pq, pk, pv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
            pg = torch.tensor(g)
            F = torch.nn.functional.scaled_dot_product_attention

            def tfwd():
                with torch.no_grad():
                    F(pq, pk, pv, is_causal=causal)

            def tfwd_bwd():
                F(pq, pk, pv, is_causal=causal).backward(pg)

        # backward = forward+backward minus forward, from each side's medians
        t_f, ref_f, _ = paired_times(fwd, tfwd, repeats, 1, dev.synchronize)
        t_fb, ref_fb, _ = paired_times(fwd_bwd, tfwd_bwd, repeats, 1, dev.synchronize)
        res = {"fwd": t_f, "bwd": max(t_fb - t_f, 1e-9)}
        ref = {"fwd": ref_f, "bwd": max(ref_fb - ref_f, 1e-9)} if torch is not None else {}
        for pas in ("fwd", "bwd"):
            f = flops * (1.0 if pas == "fwd" else 2.5)
            row = {"shape (B,H,L,D)": f"{B},{H},{L},{D}" + (" causal" if causal else ""), "pass": pas,
                   "minitorch ms": 1e3 * res[pas], "minitorch GFLOP/s": f / res[pas] / 1e9}
            if ref:
                row["torch ms"] = 1e3 * ref[pas]
                row["torch GFLOP/s"] = f / ref[pas] / 1e9
                row["ratio (ours/torch time)"] = res[pas] / ref[pas]
            rows.append(row)
    return rows
