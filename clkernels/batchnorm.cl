/* Batch normalisation over a (N, C, S) view (S = the spatial size, 1 for (N, C) inputs), read
 * through element strides (sN, sC, sS) so channels-last and other views need no copy.
 * One work-group per channel, WG work-items reduce over its N*S elements:
 *   CPU: WG=1, a work-item walks its channel with nested loops (no division per element);
 *   GPU: WG=128..256, the group strides over the flattened index and tree-sums in local memory.
 * Forward: two-pass mean and variance, y = (x - mean) * rstd * w + b, the running statistics
 * updated in the same launch; backward: dw, db and dx in one kernel (reduce, then write dx; one
 * pass in eval mode). */
#include "common.h"

#ifndef WG
#define WG 1
#endif

/* UNIT=1: the spatial stride is 1 (sS, and gS in the backward; any NCHW-contiguous input), a
 * compile-time constant, so the CPU path's loops are over contiguous rows that LLVM vectorises, and
 * its sums run in the 8 lanes of a float8 (a single serial float sum waits on every add). */
#ifndef UNIT
#define UNIT 0
#endif

#if WG > 1
#define GROUP_SUM(v) group_sum((v), red, lid, WG)
#define FOR_NS for (int i_ = lid; i_ < N * S; i_ += WG) { const int n = i_ / S, s = i_ - n * S;
#else
#define GROUP_SUM(v) (v)
#define FOR_NS for (int n = 0; n < N; ++n) for (int s = 0; s < S; ++s) {
#endif
#define END_NS }

#if WG == 1 && UNIT
/* sum over the channel's N rows of S contiguous elements (row n at p + n * sN) of (p - mu), or of
 * its square */
inline float channel_sum(__global const float *p, const int N, const int S, const int sN, const float mu,
                         const int square)
{
    float8 acc = 0.0f;
    float tail = 0.0f;
    for (int n = 0; n < N; ++n) {
        __global const float *row = p + (long)n * sN;
        int s = 0;
        for (; s + 8 <= S; s += 8) {
            const float8 d = LD8(row + s) - mu;
            acc += square ? d * d : d;
        }
        for (; s < S; ++s) {
            const float d = row[s] - mu;
            tail += square ? d * d : d;
        }
    }
    return sum8(acc) + tail;
}

/* (sum g, sum g * (x - mu)) over the channel, as channel_sum */
inline float2 channel_grad_sums(__global const float *g, const int gN, __global const float *x, const int sN,
                                const int N, const int S, const float mu)
{
    float8 ag = 0.0f, agx = 0.0f;
    float tg = 0.0f, tgx = 0.0f;
    for (int n = 0; n < N; ++n) {
        __global const float *grow = g + (long)n * gN, *xrow = x + (long)n * sN;
        int s = 0;
        for (; s + 8 <= S; s += 8) {
            const float8 gv = LD8(grow + s);
            ag += gv;
            agx += gv * (LD8(xrow + s) - mu);
        }
        for (; s < S; ++s) {
            tg += grow[s];
            tgx += grow[s] * (xrow[s] - mu);
        }
    }
    return (float2)(sum8(ag) + tg, sum8(agx) + tgx);
}

/* y = u * a + c over the channel's rows (u's row n at u + n * uN, y's at y + n * yN), in float8s */
inline void channel_affine(__global float *y, const long yN, __global const float *u, const int uN,
                           const int N, const int S, const float a, const float c)
{
    for (int n = 0; n < N; ++n) {
        __global const float *urow = u + (long)n * uN;
        __global float *yrow = y + n * yN;
        int s = 0;
        for (; s + 8 <= S; s += 8)
            ST8(yrow + s, LD8(urow + s) * a + c);
        for (; s < S; ++s)
            yrow[s] = urow[s] * a + c;
    }
}

/* dx = k * (g - mg - (x - mu) * mgx) over the channel's rows, as channel_affine */
inline void channel_dx(__global float *dx, const long dN, __global const float *g, const int gN,
                       __global const float *x, const int sN, const int N, const int S, const float k,
                       const float mg, const float mu, const float mgx)
{
    for (int n = 0; n < N; ++n) {
        __global const float *grow = g + (long)n * gN, *xrow = x + (long)n * sN;
        __global float *drow = dx + n * dN;
        int s = 0;
        for (; s + 8 <= S; s += 8)
            ST8(drow + s, k * (LD8(grow + s) - mg - (LD8(xrow + s) - mu) * mgx));
        for (; s < S; ++s)
            drow[s] = k * (grow[s] - mg - (xrow[s] - mu) * mgx);
    }
}
#endif

/* use_batch: normalise with this batch's statistics (training, or no running statistics);
 * otherwise with running_mean / running_var. update: fold the batch statistics into the running
 * ones with factor momentum, or 1 / num_batches_tracked (cumulative average) when momentum < 0.
 * mean and rstd receive the statistics used, for backward. y is contiguous (N, C, S). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void batchnorm_fwd(const int N, const int C, const int S, const int sN, const int sC, const int sS,
                   const float eps, const float momentum, const int use_batch, const int update,
                   const int has_w, const int has_b,
                   __global const float *x, const int x_off, __global const float *w, const int w_off,
                   __global const float *b, const int b_off, __global const long *nbt, const int nbt_off,
                   __global float *y, const int y_off, __global float *mean, const int mean_off,
                   __global float *rstd, const int rstd_off, __global float *run_mean, const int run_mean_off,
                   __global float *run_var, const int run_var_off)
{
    const int c = get_global_id(1), lid = get_local_id(0);
    if (c >= C) return;
#if WG > 1
    __local float red[WG];
#endif
    x += x_off + (long)c * sC;
    y += y_off + (long)c * S;
    w += w_off; b += b_off; nbt += nbt_off; mean += mean_off; rstd += rstd_off;
    run_mean += run_mean_off; run_var += run_var_off;
    float mu, r, unbiased = 0.0f;
#if UNIT
    const int sS_ = 1;
#else
    const int sS_ = sS;
#endif
    if (use_batch) {
        const int M = N * S;
#if WG == 1 && UNIT
        mu = channel_sum(x, N, S, sN, 0.0f, 0) / M;
        const float var = channel_sum(x, N, S, sN, mu, 1) / M;
#else
        float acc = 0.0f;
        FOR_NS acc += x[(long)n * sN + (long)s * sS_]; END_NS
        mu = GROUP_SUM(acc) / M;
        acc = 0.0f;
        FOR_NS const float d = x[(long)n * sN + (long)s * sS_] - mu; acc += d * d; END_NS
        const float var = GROUP_SUM(acc) / M;
#endif
        r = rsqrt(var + eps);
        unbiased = var * M / (M - 1);  /* torch's running variance */
    } else {
        mu = run_mean[c];
        r = rsqrt(run_var[c] + eps);
    }
    const float scale = has_w ? w[c] * r : r;
    const float shift = (has_b ? b[c] : 0.0f) - mu * scale;
#if WG == 1 && UNIT
    channel_affine(y, (long)C * S, x, sN, N, S, scale, shift);
#else
    FOR_NS y[(long)n * C * S + s] = x[(long)n * sN + (long)s * sS_] * scale + shift; END_NS
#endif
    /* After the last barrier on purpose: PoCL 3.0 ran a `lid == 0` block placed between the
     * barriers of the use_batch branch once per work-item (64 running-statistics updates). */
    if (lid == 0) {
        mean[c] = mu;
        rstd[c] = r;
        if (update) {
            const float f = momentum < 0.0f ? 1.0f / (float)nbt[0] : momentum;
            run_mean[c] = (1.0f - f) * run_mean[c] + f * mu;
            run_var[c] = (1.0f - f) * run_var[c] + f * unbiased;
        }
    }
}

/* db = sum g, dw = sum g * xhat; dx = w * rstd * (g - db / M - xhat * dw / M) with batch
 * statistics, w * rstd * g (written during the reduction) with running ones. g is read through its own strides (gN, gC, gS);
 * dx is contiguous (N, C, S) and written only when need_dx. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void batchnorm_bwd(const int N, const int C, const int S, const int sN, const int sC, const int sS,
                   const int gN, const int gC, const int gS, const int use_batch, const int has_w,
                   const int need_dx,
                   __global const float *x, const int x_off, __global const float *w, const int w_off,
                   __global const float *g, const int g_off, __global const float *mean, const int mean_off,
                   __global const float *rstd, const int rstd_off,
                   __global float *dx, const int dx_off, __global float *dw, const int dw_off,
                   __global float *db, const int db_off)
{
    const int c = get_global_id(1), lid = get_local_id(0);
    if (c >= C) return;
#if WG > 1
    __local float red[WG];
#endif
    x += x_off + (long)c * sC;
    g += g_off + (long)c * gC;
    dx += dx_off + (long)c * S;
    w += w_off; mean += mean_off; rstd += rstd_off; dw += dw_off; db += db_off;
    const float mu = mean[c], r = rstd[c];
    const float k = has_w ? w[c] * r : r;
    const int dx_now = need_dx && !use_batch;  /* with running statistics dx needs no sums: one pass */
#if UNIT
    const int sS_ = 1, gS_ = 1;
#else
    const int sS_ = sS, gS_ = gS;
#endif
#if WG == 1 && UNIT
    const float2 sums = channel_grad_sums(g, gN, x, sN, N, S, mu);
    float sg = sums.x, sgx = sums.y * r;
    if (dx_now)
        channel_affine(dx, (long)C * S, g, gN, N, S, k, 0.0f);
#else
    float sg = 0.0f, sgx = 0.0f;
    FOR_NS
        const float gv = g[(long)n * gN + (long)s * gS_];
        sg += gv;
        sgx += gv * (x[(long)n * sN + (long)s * sS_] - mu);
        if (dx_now) dx[(long)n * C * S + s] = k * gv;
    END_NS
    sg = GROUP_SUM(sg);
    sgx = GROUP_SUM(sgx) * r;
#endif
    if (lid == 0) { db[c] = sg; dw[c] = sgx; }
    if (!need_dx || !use_batch) return;
    const int M = N * S;
    const float mg = sg / M, mgx = sgx * r / M;
#if WG == 1 && UNIT
    channel_dx(dx, (long)C * S, g, gN, x, sN, N, S, k, mg, mu, mgx);
#else
    FOR_NS
        const float xc = x[(long)n * sN + (long)s * sS_] - mu;
        dx[(long)n * C * S + s] = k * (g[(long)n * gN + (long)s * gS_] - mg - xc * mgx);
    END_NS
#endif
}

/* An eval-mode BatchNorm folded into the convolution before it (nn/utils/fusion.py): one work-item
 * per output channel oc, scale = weight[oc] * rsqrt(running_var[oc] + eps) as batchnorm_fwd takes it,
 * wf[oc, :] = w[oc, :] * scale and bf[oc] = (conv_bias[oc] - running_mean[oc]) * scale + bias[oc].
 * w and wf are (OC, K) contiguous. */
__kernel void bn_fold(const int OC, const int K, const float eps, const int has_cb, const int has_w,
                      const int has_b, __global const float *w, const int w_off, __global const float *cb,
                      const int cb_off, __global const float *run_mean, const int run_mean_off,
                      __global const float *run_var, const int run_var_off, __global const float *bw,
                      const int bw_off, __global const float *bb, const int bb_off, __global float *wf,
                      const int wf_off, __global float *bf, const int bf_off)
{
    const int oc = get_global_id(0);
    if (oc >= OC) return;
    w += w_off + (long)oc * K; wf += wf_off + (long)oc * K;
    const float r = rsqrt(run_var[run_var_off + oc] + eps);
    const float scale = has_w ? bw[bw_off + oc] * r : r;
    for (int k = 0; k < K; ++k)
        wf[k] = w[k] * scale;
    bf[bf_off + oc] = ((has_cb ? cb[cb_off + oc] : 0.0f) - run_mean[run_mean_off + oc]) * scale +
                      (has_b ? bb[bb_off + oc] : 0.0f);
}
