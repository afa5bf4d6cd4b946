/* Softmax and log-softmax over one dim, and a fused cross-entropy (also NLL) from logits and
 * integer labels. A contiguous tensor is seen as (outer, D, inner) and reduced over D; every
 * row subtracts its max first, so logits of any magnitude stay finite. */
#include "common.h"

#ifndef WG
#define WG 256  /* work-group size of the single-group cross-entropy reduction */
#endif

/* y = softmax(x) (or log_softmax when is_log) along D; one work-item per (outer, inner) row,
 * so neighbouring work-items read neighbouring addresses when inner > 1. */
__kernel void softmax_fwd(int rows, int D, int inner, int is_log, __global const float *x, int x_off,
                          __global float *y, const int y_off)
{
    y += y_off;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const long base = (long)(r / inner) * D * inner + r % inner;
    __global const float *xr = x + x_off + base;
    __global float *yr = y + base;
    float m = -INFINITY;
    for (int d = 0; d < D; ++d)
        m = fmax(m, xr[(long)d * inner]);
    if (m == -INFINITY)
        m = 0.0f;  /* an all -inf row: keep exp finite, the result is nan like PyTorch */
    float s = 0.0f;
    for (int d = 0; d < D; ++d)
        s += exp(xr[(long)d * inner] - m);
    if (is_log) {  /* (x - m) - log(s): forming m + log(s) first would round it at large m */
        const float ls = log(s);
        for (int d = 0; d < D; ++d)
            yr[(long)d * inner] = (xr[(long)d * inner] - m) - ls;
    } else {
        const float inv = 1.0f / s;
        for (int d = 0; d < D; ++d)
            yr[(long)d * inner] = exp(xr[(long)d * inner] - m) * inv;
    }
}

/* softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g). */
__kernel void softmax_bwd(int rows, int D, int inner, int is_log, __global const float *y, const int y_off,
                          __global const float *g, const int g_off, __global float *dx, const int dx_off)
{
    y += y_off; g += g_off; dx += dx_off;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const long base = (long)(r / inner) * D * inner + r % inner;
    __global const float *yr = y + base, *gr = g + base;
    __global float *dr = dx + base;
    float s = 0.0f;
    for (int d = 0; d < D; ++d)
        s += is_log ? gr[(long)d * inner] : gr[(long)d * inner] * yr[(long)d * inner];
    for (int d = 0; d < D; ++d) {
        const long o = (long)d * inner;
        dr[o] = is_log ? gr[o] - exp(yr[o]) * s : yr[o] * (gr[o] - s);
    }
}

/* Cross-entropy of logits x (B, C) against labels (B,), one work-group of WG for the batch:
 *   row_loss[b] = lse_b - (1 - eps) * x[b, y_b] - eps / C * sum_c x[b, c]   (0 where y_b == ignore)
 * With is_logp the rows already are log-probabilities (NLL): lse_b = 0.
 * A label outside [0, C) (other than ignore_index) is reported to the device error buffer
 * (op ERR_CROSS_ENTROPY, or ERR_NLL_LOSS for log-probabilities) and gives a nan loss.
 * stats = (sum of row losses, number of rows not ignored); out[0] = sum, or sum / count when
 * mode == 2 (mean); mode 0 (none) leaves only row_loss. lse keeps (max_b, log sum exp(x_b - max_b)). */
__kernel void cross_entropy_fwd(int B, int C, int ignore_index, float eps, int is_logp, int mode,
                                __global const float *x, int x_off,
                                __global const long *labels, const int labels_off,
                                __global float *row_loss, const int row_loss_off,
                                __global float *lse, const int lse_off,
                                __global float *stats, const int stats_off,
                                __global float *out, const int out_off,
                                __global long *err, const int err_off)
{
    labels += labels_off; row_loss += row_loss_off; lse += lse_off; stats += stats_off; out += out_off;
    err += err_off;
    __local float part_loss[WG], part_count[WG];
    const int lid = get_local_id(0);
    if (get_group_id(0) != 0)
        return;
    float tot = 0.0f, cnt = 0.0f;
    for (int b = lid; b < B; b += WG) {
        __global const float *xr = x + x_off + (long)b * C;
        const long y = labels[b];
        float loss = 0.0f, m = 0.0f, ls = 0.0f;
        if (y != ignore_index) {
            /* lse = m + ls is kept in two parts: (m - x_y) + ls and (x - m) - ls stay exact
             * where m + ls would round away ls for logits of 1e4 */
            if (!is_logp) {
                m = -INFINITY;
                for (int c = 0; c < C; ++c)
                    m = fmax(m, xr[c]);
                float s = 0.0f;
                for (int c = 0; c < C; ++c)
                    s += exp(xr[c] - m);
                ls = log(s);
            }
            float dsum = 0.0f;  /* sum of (x_c - m) */
            for (int c = 0; c < C; ++c)
                dsum += xr[c] - m;
            const float xy = (y >= 0 && y < C) ? xr[y] : NAN;
            if (y < 0 || y >= C)
                report_bad_index(err, is_logp ? ERR_NLL_LOSS : ERR_CROSS_ENTROPY, y, C);
            loss = (1.0f - eps) * ((m - xy) + ls) + (eps > 0.0f ? eps * (ls - dsum / C) : 0.0f);
            cnt += 1.0f;
        }
        row_loss[b] = loss;
        lse[2 * b] = m;
        lse[2 * b + 1] = ls;
        tot += loss;
    }
    part_loss[lid] = tot;
    part_count[lid] = cnt;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            part_loss[lid] += part_loss[lid + s];
            part_count[lid] += part_count[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        stats[0] = part_loss[0];
        stats[1] = part_count[0];
        out[0] = mode == 2 ? part_loss[0] / part_count[0] : part_loss[0];
    }
}

/* dx[b, c] = scale_b * (softmax(x_b)[c] - (1 - eps) * [c == y_b] - eps / C), 0 for ignored rows;
 * scale_b = g[b] (mode none), g[0] (sum) or g[0] / count (mean). With is_logp, no softmax term. */
__kernel void cross_entropy_bwd(int B, int C, int ignore_index, float eps, int is_logp, int mode,
                                __global const float *x, int x_off,
                                __global const long *labels, const int labels_off,
                                __global const float *lse, const int lse_off,
                                __global const float *stats, const int stats_off,
                                __global const float *g, int g_off, __global float *dx, const int dx_off)
{
    labels += labels_off; lse += lse_off; stats += stats_off; dx += dx_off;
    const int i = get_global_id(0);
    if (i >= B * C)
        return;
    const int b = i / C, c = i - b * C;
    const long y = labels[b];
    if (y == ignore_index) {
        dx[i] = 0.0f;
        return;
    }
    const float gb = g[g_off + (mode == 0 ? b : 0)];
    const float scale = mode == 2 ? gb / stats[1] : gb;
    const float p = is_logp ? 0.0f : exp((x[x_off + i] - lse[2 * b]) - lse[2 * b + 1]);
    const float target = (c == y ? 1.0f - eps : 0.0f) + eps / C;
    dx[i] = scale * (p - target);
}
