/* Scans along the middle axis of an (outer, L, inner) contiguous view: one work-item per row
 * (o, i) walks its L elements in order, so every scan is exact in sequence (torch's CPU order).
 * -D OP=SCAN_SUM|SCAN_PROD|SCAN_MAX|SCAN_MIN|SCAN_LSE; T input type, ACC accumulator, TO output;
 * -D REVERSE=1 scans from the end; -D EXCLUSIVE=1 writes the scan of the elements before each one
 * (SUM/PROD only: prod's gradient). The max/min scans also write the index of their current pick. */
#include "common.h"

#ifndef T
#define T float
#endif
#ifndef ACC
#define ACC T
#endif
#ifndef TO
#define TO T
#endif
#define SCAN_SUM 1
#define SCAN_PROD 2
#define SCAN_MAX 3
#define SCAN_MIN 4
#define SCAN_LSE 5
#ifndef OP
#define OP SCAN_SUM
#endif
#ifndef REVERSE
#define REVERSE 0
#endif
#ifndef EXCLUSIVE
#define EXCLUSIVE 0
#endif

#define ISNAN(v) isnan((float)(v))

/* log(exp(a) + exp(b)) without overflow; NaN in, NaN out. */
inline float log_add_exp(float a, float b)
{
    if (isnan(a) || isnan(b))
        return NAN;
    float hi = fmax(a, b), lo = fmin(a, b);
    if (lo == -INFINITY || hi == INFINITY)
        return hi;
    return hi + log1p(exp(lo - hi));
}

__kernel void scan_fwd(const int outer, const int L, const int inner,
                       __global const T *x, const int x_off, __global TO *y, const int y_off,
                       __global long *index, const int index_off)
{
    x += x_off; y += y_off; index += index_off;
    const int o = get_global_id(0);
    if (o >= outer * inner || L == 0)
        return;
    const long base = (long)(o / inner) * L * inner + o % inner;
    x += base; y += base; index += base;
    const int first = REVERSE ? L - 1 : 0, step = REVERSE ? -1 : 1;
#if OP == SCAN_SUM
    ACC acc = (ACC)0;
#elif OP == SCAN_PROD
    ACC acc = (ACC)1;
#else
    ACC acc = (ACC)LOAD(T, x, (long)first * inner);
    long at = first;
#endif
    for (int k = 0, r = first; k < L; ++k, r += step) {
        const long p = (long)r * inner;
        const ACC v = (ACC)LOAD(T, x, p);
#if OP == SCAN_SUM || OP == SCAN_PROD
#if EXCLUSIVE
        STORE(TO, y, p, acc);
#endif
#if OP == SCAN_SUM
        acc += v;
#else
        acc *= v;
#endif
#if !EXCLUSIVE
        STORE(TO, y, p, acc);
#endif
#elif OP == SCAN_LSE
        acc = k ? log_add_exp(acc, v) : v;
        STORE(TO, y, p, acc);
#else
        /* torch's rule: a NaN takes over (and each later NaN moves the index); ties move the index */
#if OP == SCAN_MAX
        if (ISNAN(v) || (!ISNAN(acc) && v >= acc)) { acc = v; at = r; }
#else
        if (ISNAN(v) || (!ISNAN(acc) && v <= acc)) { acc = v; at = r; }
#endif
        STORE(TO, y, p, acc);
        index[p] = at;
#endif
    }
}

/* gx[o, idx[o, r, i], i] += g[o, r, i] over a row: the gradient of cummax/cummin (serial per row,
 * so no atomics). gx is contiguous (outer, L, inner) and written whole. */
__kernel void scan_index_bwd(const int outer, const int L, const int inner,
                             __global const T *g, const int g_off, __global const long *index, const int index_off,
                             __global T *gx, const int gx_off)
{
    g += g_off; index += index_off; gx += gx_off;
    const int o = get_global_id(0);
    if (o >= outer * inner)
        return;
    const long base = (long)(o / inner) * L * inner + o % inner;
    for (int r = 0; r < L; ++r)
        STORE(T, gx, base + (long)r * inner, 0.0f);
    for (int r = 0; r < L; ++r) {
        const long at = base + index[base + (long)r * inner] * inner;
        STORE(T, gx, at, (float)LOAD(T, gx, at) + (float)LOAD(T, g, base + (long)r * inner));
    }
}

/* d/dx of sum_j g_j * cumprod(x)_j, exact with zeros: before the first zero z, (sum_{j>=i} g_j y_j) / x_i;
 * at z, sum_{j>=z} g_j * y_{z-1} * prod_{z<k<=j} x_k; after z, 0. */
__kernel void cumprod_bwd(const int outer, const int L, const int inner,
                          __global const T *x, const int x_off, __global const T *y, const int y_off,
                          __global const T *g, const int g_off, __global T *gx, const int gx_off)
{
    x += x_off; y += y_off; g += g_off; gx += gx_off;
    const int o = get_global_id(0);
    if (o >= outer * inner)
        return;
    const long base = (long)(o / inner) * L * inner + o % inner;
    x += base; y += base; g += base; gx += base;
    int z = 0;
    while (z < L && (ACC)LOAD(T, x, (long)z * inner) != (ACC)0)
        ++z;
    ACC s = (ACC)0;
    for (int r = L - 1; r >= 0; --r) {
        const long p = (long)r * inner;
        s += (ACC)LOAD(T, g, p) * (ACC)LOAD(T, y, p);
        STORE(T, gx, p, r < z ? s / (ACC)LOAD(T, x, p) : (ACC)0);
    }
    if (z < L) {
        ACC run = z ? (ACC)LOAD(T, y, (long)(z - 1) * inner) : (ACC)1, acc = (ACC)0;
        for (int j = z; j < L; ++j) {
            if (j > z)
                run *= (ACC)LOAD(T, x, (long)j * inner);
            acc += (ACC)LOAD(T, g, (long)j * inner) * run;
        }
        STORE(T, gx, (long)z * inner, acc);
    }
}

/* d/dx of sum_j g_j * logcumsumexp(x)_j: gx_i = exp(x_i - y_i) * S_i with S_i = sum_{j>=i} g_j exp(y_i - y_j),
 * S_i = g_i + exp(y_i - y_{i+1}) S_{i+1}; y is non-decreasing, so every exponent is <= 0. */
__kernel void logcumsumexp_bwd(const int outer, const int L, const int inner,
                               __global const T *x, const int x_off, __global const T *y, const int y_off,
                               __global const T *g, const int g_off, __global T *gx, const int gx_off)
{
    x += x_off; y += y_off; g += g_off; gx += gx_off;
    const int o = get_global_id(0);
    if (o >= outer * inner)
        return;
    const long base = (long)(o / inner) * L * inner + o % inner;
    x += base; y += base; g += base; gx += base;
    float s = 0.0f, next = 0.0f;
    for (int r = L - 1; r >= 0; --r) {
        const long p = (long)r * inner;
        const float yr = (float)LOAD(T, y, p);
        const float decay = (r == L - 1 || next == -INFINITY) ? 0.0f : exp(yr - next);
        s = (float)LOAD(T, g, p) + decay * s;
        next = yr;
        const float xr = (float)LOAD(T, x, p);
        STORE(T, gx, p, xr == -INFINITY ? 0.0f : exp(xr - yr) * s);
    }
}

#ifndef WG
#define WG 64
#endif

/* One step of the scan: (acc, at, has) takes element v at position r. It also combines a prefix
 * with a chunk's aggregate (v, r = its index): the max/min rule picks the same element either way. */
#if OP == SCAN_SUM
#define STEP(acc, at, has, v, r) { acc += (v); has = 1; }
#elif OP == SCAN_PROD
#define STEP(acc, at, has, v, r) { acc *= (v); has = 1; }
#elif OP == SCAN_LSE
#define STEP(acc, at, has, v, r) { acc = has ? log_add_exp(acc, v) : (v); has = 1; }
#elif OP == SCAN_MAX
#define STEP(acc, at, has, v, r) \
    { if (!has || ISNAN(v) || (!ISNAN(acc) && (v) >= acc)) { acc = (v); at = (r); } has = 1; }
#else
#define STEP(acc, at, has, v, r) \
    { if (!has || ISNAN(v) || (!ISNAN(acc) && (v) <= acc)) { acc = (v); at = (r); } has = 1; }
#endif
#if OP == SCAN_PROD
#define SCAN_IDENTITY ((ACC)1)
#else
#define SCAN_IDENTITY ((ACC)0)
#endif

/* scan_fwd for few long rows: a work-group per row. Each work-item scans a contiguous chunk of the
 * row (in scan order) for its aggregate, item 0 scans the WG aggregates into per-chunk prefixes in
 * local memory, and each work-item rescans its chunk from its prefix, writing the outputs. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void scan_group(const int outer, const int L, const int inner,
                __global const T *x, const int x_off, __global TO *y, const int y_off,
                __global long *index, const int index_off)
{
    __local ACC aggs[WG];
    __local long ats[WG];
    __local int has[WG];
    x += x_off; y += y_off; index += index_off;
    const int o = get_group_id(0), lid = get_local_id(0);
    const long base = (long)(o / inner) * L * inner + o % inner;
    x += base; y += base; index += base;
    const int C = (L + WG - 1) / WG, k0 = min(lid * C, L), k1 = min(k0 + C, L);
    ACC acc = SCAN_IDENTITY;
    long at = 0;
    int h = 0;
    for (int k = k0; k < k1; ++k) {
        const int r = REVERSE ? L - 1 - k : k;
        const ACC v = (ACC)LOAD(T, x, (long)r * inner);
        STEP(acc, at, h, v, (long)r);
    }
    aggs[lid] = acc; ats[lid] = at; has[lid] = h;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {  /* exclusive scan of the chunk aggregates */
        ACC run = SCAN_IDENTITY;
        long rat = 0;
        int rh = 0;
        for (int t = 0; t < WG; ++t) {
            const ACC a = aggs[t];
            const long ta = ats[t];
            const int ht = has[t];
            aggs[t] = run; ats[t] = rat; has[t] = rh;
            if (ht)
                STEP(run, rat, rh, a, ta);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    acc = aggs[lid]; at = ats[lid]; h = has[lid];
    for (int k = k0; k < k1; ++k) {
        const int r = REVERSE ? L - 1 - k : k;
        const long p = (long)r * inner;
        const ACC v = (ACC)LOAD(T, x, p);
#if EXCLUSIVE
        STORE(TO, y, p, acc);
#endif
        STEP(acc, at, h, v, (long)r);
#if !EXCLUSIVE
        STORE(TO, y, p, acc);
#endif
#if OP == SCAN_MAX || OP == SCAN_MIN
        index[p] = at;
#endif
    }
}
