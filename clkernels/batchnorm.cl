/* Batch normalisation over a (N, C, S) view (S = the spatial size, 1 for (N, C) inputs), read
 * through element strides (sN, sC, sS) so channels-last and other views need no copy.
 * One work-group per channel, WG work-items reduce over its N*S elements:
 *   CPU: WG=1, a work-item walks its channel with nested loops (no division per element);
 *   GPU: WG=128..256, the group strides over the flattened index and tree-sums in local memory.
 * (CPU, contiguous spatial rows: each row in eight lanes; see row_moment.)
 * Forward: two-pass mean and variance, y = (x - mean) * rstd * w + b, the running statistics
 * updated in the same launch; backward: dw, db and dx in one kernel (reduce, then write dx; one
 * pass in eval mode). */
#include "common.h"

#ifndef WG
#define WG 1
#endif

#if WG > 1
#define GROUP_SUM(v) group_sum((v), red, lid, WG)
#define FOR_NS for (int i_ = lid; i_ < N * S; i_ += WG) { const int n = i_ / S, s = i_ - n * S;
#else
#define GROUP_SUM(v) (v)
#define FOR_NS for (int n = 0; n < N; ++n) for (int s = 0; s < S; ++s) {
#endif
#define END_NS }

/* CPU (WG == 1) with contiguous spatial rows (sS == 1, the NCHW case): each image's row of the
 * channel is summed in eight lanes at once. A scalar `acc += x` is one dependent chain that LLVM
 * may not reorder, one add per element at its latency: BatchNorm ran at well under 1 GB/s. */
#if WG == 1
/* (LD8, ST8 and hsum8: common.h) */

/* sum of (p[s] - mu)^pw over s < S, pw 1 or 2 */
inline float row_moment(__global const float *p, int S, float mu, int pw)
{
    float8 a8 = (float8)(0.0f);
    float a = 0.0f;
    int s = 0;
    if (pw == 1) {
        for (; s + 8 <= S; s += 8)
            a8 += LD8(p + s);
        for (; s < S; ++s)
            a += p[s];
    } else {
        for (; s + 8 <= S; s += 8) {
            const float8 d = LD8(p + s) - (float8)(mu);
            a8 += d * d;
        }
        for (; s < S; ++s)
            a += (p[s] - mu) * (p[s] - mu);
    }
    return a + hsum8(a8);
}

/* q[s] = p[s] * scale + shift for s < S */
inline void row_affine(__global float *q, __global const float *p, int S, float scale, float shift)
{
    int s = 0;
    for (; s + 8 <= S; s += 8)
        ST8(q + s, LD8(p + s) * (float8)(scale) + (float8)(shift));
    for (; s < S; ++s)
        q[s] = p[s] * scale + shift;
}

/* (sum g[s], sum g[s] * (x[s] - mu)) over s < S */
inline float2 row_gsums(__global const float *g, __global const float *x, int S, float mu)
{
    float8 a8 = (float8)(0.0f), b8 = (float8)(0.0f);
    float a = 0.0f, b = 0.0f;
    int s = 0;
    for (; s + 8 <= S; s += 8) {
        const float8 gv = LD8(g + s);
        a8 += gv;
        b8 += gv * (LD8(x + s) - (float8)(mu));
    }
    for (; s < S; ++s) {
        a += g[s];
        b += g[s] * (x[s] - mu);
    }
    return (float2)(a + hsum8(a8), b + hsum8(b8));
}

/* dx[s] = k * (g[s] - mg - (x[s] - mu) * mgx) for s < S */
inline void row_dx(__global float *dx, __global const float *g, __global const float *x, int S, float k,
                   float mg, float mu, float mgx)
{
    int s = 0;
    for (; s + 8 <= S; s += 8)
        ST8(dx + s, (float8)(k) * (LD8(g + s) - (float8)(mg) - (LD8(x + s) - (float8)(mu)) * (float8)(mgx)));
    for (; s < S; ++s)
        dx[s] = k * (g[s] - mg - (x[s] - mu) * mgx);
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
#if WG == 1
    const int rows = sS == 1;  /* the contiguous-row path */
#else
    const int rows = 0;
#endif
    if (use_batch) {
        float acc = 0.0f;
        const int M = N * S;
#if WG == 1
        if (rows) {
            for (int n = 0; n < N; ++n)
                acc += row_moment(x + (long)n * sN, S, 0.0f, 1);
            mu = acc / M;
            acc = 0.0f;
            for (int n = 0; n < N; ++n)
                acc += row_moment(x + (long)n * sN, S, mu, 2);
        }
#endif
        if (!rows) {
            FOR_NS acc += x[(long)n * sN + (long)s * sS]; END_NS
            mu = GROUP_SUM(acc) / M;
            acc = 0.0f;
            FOR_NS const float d = x[(long)n * sN + (long)s * sS] - mu; acc += d * d; END_NS
        }
        const float var = GROUP_SUM(acc) / M;
        r = rsqrt(var + eps);
        unbiased = var * M / (M - 1);  /* torch's running variance */
    } else {
        mu = run_mean[c];
        r = rsqrt(run_var[c] + eps);
    }
    const float scale = has_w ? w[c] * r : r;
    const float shift = (has_b ? b[c] : 0.0f) - mu * scale;
#if WG == 1
    if (rows) {
        for (int n = 0; n < N; ++n)
            row_affine(y + (long)n * C * S, x + (long)n * sN, S, scale, shift);
    }
#endif
    if (!rows) {
        FOR_NS y[(long)n * C * S + s] = x[(long)n * sN + (long)s * sS] * scale + shift; END_NS
    }
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
    float sg = 0.0f, sgx = 0.0f;
#if WG == 1
    const int rows = sS == 1 && gS == 1;  /* the contiguous-row path */
    if (rows) {
        for (int n = 0; n < N; ++n) {
            const float2 t = row_gsums(g + (long)n * gN, x + (long)n * sN, S, mu);
            sg += t.x;
            sgx += t.y;
            if (dx_now)
                row_affine(dx + (long)n * C * S, g + (long)n * gN, S, k, 0.0f);
        }
    }
#else
    const int rows = 0;
#endif
    if (!rows) {
        FOR_NS
            const float gv = g[(long)n * gN + (long)s * gS];
            sg += gv;
            sgx += gv * (x[(long)n * sN + (long)s * sS] - mu);
            if (dx_now) dx[(long)n * C * S + s] = k * gv;
        END_NS
    }
    sg = GROUP_SUM(sg);
    sgx = GROUP_SUM(sgx) * r;
    if (lid == 0) { db[c] = sg; dw[c] = sgx; }
    if (!need_dx || !use_batch) return;
    const int M = N * S;
    const float mg = sg / M, mgx = sgx * r / M;
#if WG == 1
    if (rows) {
        for (int n = 0; n < N; ++n)
            row_dx(dx + (long)n * C * S, g + (long)n * gN, x + (long)n * sN, S, k, mg, mu, mgx);
        return;
    }
#endif
    FOR_NS
        const float xc = x[(long)n * sN + (long)s * sS] - mu;
        dx[(long)n * C * S + s] = k * (g[(long)n * gN + (long)s * gS] - mg - xc * mgx);
    END_NS
}
