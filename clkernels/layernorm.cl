/* Layer normalisation over the last C elements of each row of a contiguous (rows, C) tensor:
 * y = (x - mean) * rstd * w + b, two-pass mean and variance for accuracy.
 * Each row is handled by WG work-items; a group holds RPG rows.
 *   CPU: WG=1, RPG=1 (one work-item walks a row in cache, no barriers)
 *   GPU: WG=128, RPG=1 (a tree sum in local memory)
 * With WG > 1, RPG must be 1 so that the row bounds guard is uniform over the group. */
#include "common.h"

#ifndef WG
#define WG 1
#endif
#ifndef RPG
#define RPG 1
#endif

#if WG > 1
#define ROW_SUM(v) group_sum((v), red, lid, WG)  /* the sum over the WG work-items of this row */
#define VEC 1
#else
#define ROW_SUM(v) (v)
#define VEC 8  /* CPU: a work-item owns the row and walks it eight lanes at a time */
#endif

/* The row loops of a work-item: with WG == 1, eight at a time over the row's first C8 elements,
 * each a float8 expression (a scalar `s += x` is one dependent chain that LLVM may not reorder:
 * one add per element at its latency), then one by one over the rest; with WG > 1, by WG from lid. */
/* (LD8, ST8, sum8: common.h) */

__kernel __attribute__((reqd_work_group_size(WG, RPG, 1)))
void layernorm_fwd(const int rows, const int C, const float eps, const int has_w, const int has_b,
                   __global const float *x, const int x_off, __global const float *w, const int w_off,
                   __global const float *b, const int b_off, __global float *y, const int y_off,
                   __global float *mean, const int mean_off, __global float *rstd, const int rstd_off)
{
    w += w_off; b += b_off; y += y_off; mean += mean_off; rstd += rstd_off;
    const int row = get_global_id(1), lid = get_local_id(0);
    if (row >= rows) return;
#if WG > 1
    __local float red[WG];
#endif
    __global const float *xr = x + x_off + (long)row * C;
    __global float *yr = y + (long)row * C;
    const int C8 = VEC == 8 ? C / 8 * 8 : 0;  /* the elements taken eight at a time */
    float8 s8 = (float8)(0.0f);
    float s = 0.0f;
    for (int c = 0; c < C8; c += 8) s8 += LD8(xr + c);
    for (int c = C8 + lid; c < C; c += WG) s += xr[c];
    const float mu = ROW_SUM(s + sum8(s8)) / C;
    s8 = (float8)(0.0f);
    float ss = 0.0f;
    for (int c = 0; c < C8; c += 8) { const float8 d = LD8(xr + c) - (float8)(mu); s8 += d * d; }
    for (int c = C8 + lid; c < C; c += WG) { const float d = xr[c] - mu; ss += d * d; }
    const float r = rsqrt(ROW_SUM(ss + sum8(s8)) / C + eps);
    for (int c = 0; c < C8; c += 8) {
        float8 v = (LD8(xr + c) - (float8)(mu)) * (float8)(r);
        if (has_w) v *= LD8(w + c);
        if (has_b) v += LD8(b + c);
        ST8(yr + c, v);
    }
    for (int c = C8 + lid; c < C; c += WG) {
        float v = (xr[c] - mu) * r;
        if (has_w) v *= w[c];
        if (has_b) v += b[c];
        yr[c] = v;
    }
    if (lid == 0) { mean[row] = mu; rstd[row] = r; }
}

/* dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * w */
__kernel __attribute__((reqd_work_group_size(WG, RPG, 1)))
void layernorm_bwd(const int rows, const int C, const int has_w, __global const float *x, const int x_off,
                   __global const float *w, const int w_off, __global const float *g, const int g_off,
                   __global const float *mean, const int mean_off,
                   __global const float *rstd, const int rstd_off, __global float *dx, const int dx_off)
{
    w += w_off; g += g_off; mean += mean_off; rstd += rstd_off; dx += dx_off;
    const int row = get_global_id(1), lid = get_local_id(0);
    if (row >= rows) return;
#if WG > 1
    __local float red[WG];
#endif
    __global const float *xr = x + x_off + (long)row * C;
    __global const float *gr = g + (long)row * C;
    __global float *dr = dx + (long)row * C;
    const float mu = mean[row], r = rstd[row];
    const int C8 = VEC == 8 ? C / 8 * 8 : 0;
    float8 a8 = (float8)(0.0f), b8 = (float8)(0.0f);
    for (int c = 0; c < C8; c += 8) {
        const float8 gw = has_w ? LD8(gr + c) * LD8(w + c) : LD8(gr + c);
        a8 += gw;
        b8 += gw * (LD8(xr + c) - (float8)(mu)) * (float8)(r);
    }
    float s1 = sum8(a8), s2 = sum8(b8);
    for (int c = C8 + lid; c < C; c += WG) {
        const float gw = has_w ? gr[c] * w[c] : gr[c];
        s1 += gw;
        s2 += gw * (xr[c] - mu) * r;
    }
    const float m1 = ROW_SUM(s1) / C;
    const float m2 = ROW_SUM(s2) / C;
    for (int c = 0; c < C8; c += 8) {
        const float8 gw = has_w ? LD8(gr + c) * LD8(w + c) : LD8(gr + c);
        ST8(dr + c, (float8)(r) * (gw - (float8)(m1) - (LD8(xr + c) - (float8)(mu)) * (float8)(r) * (float8)(m2)));
    }
    for (int c = C8 + lid; c < C; c += WG) {
        const float gw = has_w ? gr[c] * w[c] : gr[c];
        dr[c] = r * (gw - m1 - (xr[c] - mu) * r * m2);
    }
}

/* dw[c] = sum_rows g * xhat, db[c] = sum_rows g: one work-item per column (adjacent columns
 * are adjacent work-items, so each row is read contiguously across the group); on a CPU (VEC 8)
 * one per eight columns, whose rows are one float8 each (a column walk per work-item reread
 * every row's cache line for each of its columns). */
__kernel void layernorm_bwd_params(const int rows, const int C, __global const float *x, const int x_off,
                                   __global const float *g, const int g_off,
                                   __global const float *mean, const int mean_off,
                                   __global const float *rstd, const int rstd_off,
                                   __global float *dw, const int dw_off,
                                   __global float *db, const int db_off)
{
    g += g_off; mean += mean_off; rstd += rstd_off; dw += dw_off; db += db_off;
    x += x_off;
    const int c0 = get_global_id(0) * VEC;
    if (c0 >= C) return;
    if (VEC == 8 && c0 + 8 <= C) {
        float8 sw = (float8)(0.0f), sb = (float8)(0.0f);
        for (int row = 0; row < rows; ++row) {
            const float8 gv = LD8(g + (long)row * C + c0);
            sw += gv * (LD8(x + (long)row * C + c0) - (float8)(mean[row])) * (float8)(rstd[row]);
            sb += gv;
        }
        ST8(dw + c0, sw);
        ST8(db + c0, sb);
        return;
    }
    for (int c = c0; c < min(c0 + VEC, C); ++c) {
        float sw = 0.0f, sb = 0.0f;
        for (int row = 0; row < rows; ++row) {
            const float gv = g[(long)row * C + c];
            sw += gv * (x[(long)row * C + c] - mean[row]) * rstd[row];
            sb += gv;
        }
        dw[c] = sw;
        db[c] = sb;
    }
}
