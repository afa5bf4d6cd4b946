/* Fused GRU and Elman-RNN cells (PyTorch's formulas and gate order), over the (B, H) state.
 * GRU, gates r, z, n:  r = sig(xr + hr + bhr),  z = sig(xz + hz + bhz),
 *                      n = tanh(xn + r * (hn + bhn)),  h' = (1 - z) * n + z * h
 * where x* = x W_ih^T + b_ih (one GEMM for the whole sequence) and h* = h W_hh^T (one GEMM per step).
 * RNN: h' = act(x W_ih^T + h W_hh^T + b_ih + b_hh), act = tanh or relu (-D ACT).
 * As in lstm.cl, a work item handles VW consecutive columns of one row with float8 math (PoCL
 * vectorises exp and tanh only on vector types) and the last partial block of a row goes scalar.
 * Offsets are in elements; every (B, H) / (B, 3H) operand is contiguous from its offset. */

#define VW 8
#define ACT_TANH 0
#define ACT_RELU 1
#ifndef ACT
#define ACT ACT_TANH
#endif

inline float8 sigmoid8(float8 x) { return 1.0f / (1.0f + exp(-x)); }
inline float sigmoid1(float x) { return 1.0f / (1.0f + exp(-x)); }

/* gx (B, 3H): in x W_ih^T + b_ih, out the activations r, z, n (what backward needs);
 * gh (B, 3H): in h W_hh^T, out (its n third) hn + bhn, the term that r scales. */
__kernel void gru_cell_fwd(const int B, const int H,
                           __global const float *h_prev, const int h_prev_off,
                           __global const float *b_hh, const int b_hh_off,
                           __global float *gx, const int gx_off,
                           __global float *gh, const int gh_off,
                           __global float *h, const int h_off)
{
    const int nb = (H + VW - 1) / VW;  /* column blocks per row */
    const int t = get_global_id(0);
    if (t >= B * nb) return;
    const int b = t / nb, j = (t - b * nb) * VW;
    __global float *xr = gx + gx_off + (long)b * 3 * H + j;
    __global float *hr = gh + gh_off + (long)b * 3 * H + j;
    __global const float *bh = b_hh + b_hh_off + j;
    const long e = (long)b * H + j;
    h_prev += h_prev_off + e;
    h += h_off + e;
    if (j + VW <= H) {
        const float8 r = sigmoid8(vload8(0, xr) + vload8(0, hr) + vload8(0, bh));
        const float8 z = sigmoid8(vload8(0, xr + H) + vload8(0, hr + H) + vload8(0, bh + H));
        const float8 hn = vload8(0, hr + 2 * H) + vload8(0, bh + 2 * H);
        const float8 n = tanh(vload8(0, xr + 2 * H) + r * hn);
        vstore8(r, 0, xr);
        vstore8(z, 0, xr + H);
        vstore8(n, 0, xr + 2 * H);
        vstore8(hn, 0, hr + 2 * H);
        vstore8((1.0f - z) * n + z * vload8(0, h_prev), 0, h);
        return;
    }
    for (int k = 0; k < H - j; ++k) {
        const float r = sigmoid1(xr[k] + hr[k] + bh[k]);
        const float z = sigmoid1(xr[H + k] + hr[H + k] + bh[H + k]);
        const float hn = hr[2 * H + k] + bh[2 * H + k];
        const float n = tanh(xr[2 * H + k] + r * hn);
        xr[k] = r;
        xr[H + k] = z;
        xr[2 * H + k] = n;
        hr[2 * H + k] = hn;
        h[k] = (1.0f - z) * n + z * h_prev[k];
    }
}

/* dh (in: the grad reaching h_t from step t+1, out: its direct part dh_t * z towards h_{t-1}, to
 * which the caller adds dgh @ W_hh) is updated in place: each work item owns its elements.
 * dgx = d(x W_ih^T + b_ih) = (dr, dz, dn); dgh = d(h W_hh^T + b_hh) = (dr, dz, dn * r), pre-activation. */
__kernel void gru_cell_bwd(const int B, const int H,
                           __global const float *acts, const int acts_off,    /* (B, 3H) r, z, n */
                           __global const float *gh, const int gh_off,        /* (B, 3H), n third: hn + bhn */
                           __global const float *h_prev, const int h_prev_off,
                           __global const float *dh_out, const int dh_out_off,
                           __global float *dh, const int dh_off,
                           __global float *dgx, const int dgx_off,
                           __global float *dgh, const int dgh_off)
{
    const int nb = (H + VW - 1) / VW;
    const int t = get_global_id(0);
    if (t >= B * nb) return;
    const int b = t / nb, j = (t - b * nb) * VW;
    const long row = (long)b * 3 * H + j, e = (long)b * H + j;
    __global const float *a = acts + acts_off + row;
    __global const float *hn_ = gh + gh_off + row + 2 * H;
    __global float *dx = dgx + dgx_off + row;
    __global float *dr = dgh + dgh_off + row;
    h_prev += h_prev_off + e;
    dh_out += dh_out_off + e;
    dh += dh_off + e;
    if (j + VW <= H) {
        const float8 r = vload8(0, a), z = vload8(0, a + H), n = vload8(0, a + 2 * H);
        const float8 d = vload8(0, dh_out) + vload8(0, dh);
        const float8 dn = d * (1.0f - z) * (1.0f - n * n);
        const float8 dr_ = dn * vload8(0, hn_) * r * (1.0f - r);
        const float8 dz = d * (vload8(0, h_prev) - n) * z * (1.0f - z);
        vstore8(dr_, 0, dx);
        vstore8(dz, 0, dx + H);
        vstore8(dn, 0, dx + 2 * H);
        vstore8(dr_, 0, dr);
        vstore8(dz, 0, dr + H);
        vstore8(dn * r, 0, dr + 2 * H);
        vstore8(d * z, 0, dh);
        return;
    }
    for (int k = 0; k < H - j; ++k) {
        const float r = a[k], z = a[H + k], n = a[2 * H + k];
        const float d = dh_out[k] + dh[k];
        const float dn = d * (1.0f - z) * (1.0f - n * n);
        const float dr_ = dn * hn_[k] * r * (1.0f - r);
        const float dz = d * (h_prev[k] - n) * z * (1.0f - z);
        dx[k] = dr_;
        dx[H + k] = dz;
        dx[2 * H + k] = dn;
        dr[k] = dr_;
        dr[H + k] = dz;
        dr[2 * H + k] = dn * r;
        dh[k] = d * z;
    }
}

#if ACT == ACT_RELU
#define ACT8(v) fmax((v), (float8)(0.0f))
#define ACT1(v) fmax((v), 0.0f)
#define DACT8(h) select((float8)(0.0f), (float8)(1.0f), (h) > (float8)(0.0f))
#define DACT1(h) ((h) > 0.0f ? 1.0f : 0.0f)
#else
#define ACT8(v) tanh(v)
#define ACT1(v) tanh(v)
#define DACT8(h) (1.0f - (h) * (h))
#define DACT1(h) (1.0f - (h) * (h))
#endif

/* h = act(pre) over n = B*H contiguous elements, VW per work item. */
__kernel void rnn_cell_fwd(const int n, __global const float *pre, const int pre_off,
                           __global float *h, const int h_off)
{
    const int j = get_global_id(0) * VW;
    if (j >= n) return;
    pre += pre_off + j;
    h += h_off + j;
    if (j + VW <= n) {
        vstore8(ACT8(vload8(0, pre)), 0, h);
        return;
    }
    for (int k = 0; k < n - j; ++k)
        h[k] = ACT1(pre[k]);
}

/* dpre = (dh_out + dh_rec) * act'(h), written from h = act(pre). */
__kernel void rnn_cell_bwd(const int n, __global const float *h, const int h_off,
                           __global const float *dh_out, const int dh_out_off,
                           __global const float *dh_rec, const int dh_rec_off,
                           __global float *dpre, const int dpre_off)
{
    const int j = get_global_id(0) * VW;
    if (j >= n) return;
    h += h_off + j;
    dh_out += dh_out_off + j;
    dh_rec += dh_rec_off + j;
    dpre += dpre_off + j;
    if (j + VW <= n) {
        const float8 hv = vload8(0, h);
        vstore8((vload8(0, dh_out) + vload8(0, dh_rec)) * DACT8(hv), 0, dpre);
        return;
    }
    for (int k = 0; k < n - j; ++k)
        dpre[k] = (dh_out[k] + dh_rec[k]) * DACT1(h[k]);
}
