/* Reductions over the middle axis of an (outer, R, inner) contiguous view:
 * out[o, i] = reduce_r x[o, r, i]. reduce_serial runs one work-item per output (many outputs);
 * reduce_group one work-group per output, with a tree in local memory (few, long outputs).
 * -D OP=RED_SUM|RED_MAX|RED_MIN|RED_ARGMAX|RED_ARGMIN|RED_PROD; T input/accumulator type, TO output type.
 * LANE_SUM=1 (a float32 sum): reduce_serial sums a contiguous row (inner == 1) in eight lanes, as a
 * scalar `best += x` is one dependent chain, one add per element at its latency. */
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
#ifndef WG
#define WG 64
#endif
#define RED_SUM 1
#define RED_MAX 2
#define RED_MIN 3
#define RED_ARGMAX 4
#define RED_ARGMIN 5
#define RED_PROD 6
#define ACCUMULATES (OP == RED_SUM || OP == RED_PROD)
#if OP == RED_PROD
#define IDENTITY ((ACC)1)
#else
#define IDENTITY ((ACC)0)
#endif
#ifndef OP
#define OP RED_SUM
#endif

#if ACCUMULATES
#define ARG 0
#define BETTER(x, best) 0
#elif OP == RED_MAX || OP == RED_ARGMAX
#define ARG (OP == RED_ARGMAX)
#define BETTER(x, best) ((x) > (best) || (isnan((float)(x)) && !isnan((float)(best))))
#else
#define ARG (OP == RED_ARGMIN)
#define BETTER(x, best) ((x) < (best) || (isnan((float)(x)) && !isnan((float)(best))))
#endif

/* Combine candidate (x, ix) into (best, bi); ties keep the lower index, like PyTorch. */
#if OP == RED_SUM
#define COMBINE(best, bi, x, ix) best += (x)
#elif OP == RED_PROD
#define COMBINE(best, bi, x, ix) best *= (x)
#else
#define COMBINE(best, bi, x, ix) \
    if (BETTER(x, best) || ((x) == (best) && (ix) < (bi))) { best = (x); bi = (ix); }
#endif

inline void store(__global TO *out, __global long *index, int o, ACC best, long bi, const ACC scale)
{
#if ARG
    index[o] = bi;
#elif OP == RED_SUM
    STORE(TO, out, o, best * scale);
#else
    STORE(TO, out, o, best);
#endif
}

__kernel void reduce_serial(const int outer, const int R, const int inner, const ACC scale,
                            __global const T *x, const int x_off, __global TO *out, const int out_off,
                            __global long *index, const int index_off)
{
    out += out_off; index += index_off;
    int o = get_global_id(0);
    if (o >= outer * inner) return;
    int oi = o / inner, ii = o % inner;
    __global const T *row = x + x_off + (long)oi * R * inner + ii;
#if ACCUMULATES
    ACC best = IDENTITY;
#else
    ACC best = (ACC)LOAD(T, row, 0);
#endif
    long bi = 0;
    int r0 = ACCUMULATES ? 0 : 1;
#if LANE_SUM
    if (inner == 1) {
        float8 a8 = (float8)(0.0f);
        for (; r0 + 8 <= R; r0 += 8)
            a8 += LD8(row + r0);
        best = sum8(a8);
    }
#endif
    for (int r = r0; r < R; ++r) {
        ACC v = (ACC)LOAD(T, row, (long)r * inner);
        COMBINE(best, bi, v, (long)r);
    }
    store(out, index, o, best, bi, scale);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void reduce_group(const int outer, const int R, const int inner, const ACC scale,
                  __global const T *x, const int x_off, __global TO *out, const int out_off,
                  __global long *index, const int index_off)
{
    out += out_off; index += index_off;
    __local ACC vals[WG];
    __local long idxs[WG];
    int o = get_group_id(0), lid = get_local_id(0);
    int oi = o / inner, ii = o % inner;
    __global const T *row = x + x_off + (long)oi * R * inner + ii;
    ACC best;
    long bi = lid;
#if ACCUMULATES
    best = IDENTITY;
    for (int r = lid; r < R; r += WG) {
        ACC v = (ACC)LOAD(T, row, (long)r * inner);
        COMBINE(best, bi, v, (long)r);
    }
#else
    best = (ACC)LOAD(T, row, (long)min(lid, R - 1) * inner);
    bi = min(lid, R - 1);
    for (int r = lid + WG; r < R; r += WG) {
        ACC v = (ACC)LOAD(T, row, (long)r * inner);
        COMBINE(best, bi, v, (long)r);
    }
#endif
    vals[lid] = best;
    idxs[lid] = bi;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            ACC v = vals[lid + s];
            long iv = idxs[lid + s];
            best = vals[lid];
            bi = idxs[lid];
            COMBINE(best, bi, v, iv);
            vals[lid] = best;
            idxs[lid] = bi;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) store(out, index, o, vals[0], idxs[0], scale);
}

#if LANE_SUM
/* A float32 sum down the columns of (outer, R, inner) with inner a multiple of 8 (a bias gradient,
 * a sum over the batch): eight adjacent outputs per work-item as one float8, in two chains down the
 * rows. reduce_serial's work-item per output is one scalar chain each, which PoCL runs at ~5 GB/s. */
__kernel void reduce_cols8(const int outer, const int R, const int inner, const float scale,
                           __global const float *x, const int x_off, __global TO *out, const int out_off)
{
    int per = inner / 8, o8 = get_global_id(0);
    if (o8 >= outer * per) return;
    int oi = o8 / per, c = (o8 % per) * 8;
    __global const float *col = x + x_off + (long)oi * R * inner + c;
    float8 a = (float8)(0.0f), b = (float8)(0.0f);
    int r = 0;
    for (; r + 2 <= R; r += 2) {
        a += LD8(col + (long)r * inner);
        b += LD8(col + (long)(r + 1) * inner);
    }
    if (r < R)
        a += LD8(col + (long)r * inner);
    a = (a + b) * scale;
    out += out_off + (long)oi * inner + c;
    STORE(TO, out, 0, a.s0); STORE(TO, out, 1, a.s1); STORE(TO, out, 2, a.s2); STORE(TO, out, 3, a.s3);
    STORE(TO, out, 4, a.s4); STORE(TO, out, 5, a.s5); STORE(TO, out, 6, a.s6); STORE(TO, out, 7, a.s7);
}
#endif
