/* Fused scaled-dot-product attention, float32, flash-attention style: the L x S score matrix never
 * reaches global memory. Softmax runs online (running max m and sum l per query row) in base 2:
 * scores are pre-multiplied by log2(e) so exp2 replaces exp; lse holds m + log2(l) per row.
 *
 * Each work-item owns BQ query rows (or, in the dK/dV kernel, BQ key rows) held in private
 * arrays, walks the other side in blocks of BK, and computes score tiles 8 columns at a time as
 * float8 FMAs (a register-blocked micro-kernel). The walked side is read transposed, (D, S), so
 * 8 consecutive keys form one vector; the host makes those transposed copies. Raw dot products are
 * formed in the same order in every kernel and scaled once, so the backward's recomputed scores
 * match the forward's bit for bit (P = exp2(s - lse) stays accurate at large scores).
 *   CPU (PoCL):  WG=1, BQ=12, USE_LOCAL=0: local memory is only cache there.
 *   GPU:         WG=64, BQ=1, USE_LOCAL=1: K^T and V tiles are staged in local memory per group.
 * (USE_LOCAL applies to the forward; the backward kernels read their operands from global memory.)
 *
 * Dropout (drop_p > 0) multiplies P by a keep factor hashed from (seed, n * L + i, j) after the row
 * sums are taken, so the normaliser is dropout-free as in PyTorch; the backward kernels recompute
 * the same factors (no mask is stored): dV = (P K)^T dO, dS = P (K dP - delta), delta = rowsum(dO O).
 *
 * Strided operands (q, k, v, do, mask, and the outputs o, dq, dk, dv) are addressed by a batch index n split as
 * (n / NB1, n % NB1) with RowStrides (batch stride 0, batch stride 1, row stride); columns
 * are contiguous. lse, delta and the transposed copies are contiguous. */

#include "common.h"

#ifndef DMAX
#define DMAX 64     /* head dim rounded up to a multiple of 8 (register array size) */
#endif
#ifndef BQ
#define BQ 8        /* rows owned by one work-item */
#endif
#ifndef BK
#define BK 32       /* columns per block walked; a multiple of 8 */
#endif
#ifndef WG
#define WG 1
#endif
#ifndef USE_LOCAL
#define USE_LOCAL 0
#endif
#define DV (DMAX / 8)
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* How an operand's rows are found: batch item n is (n / NB1, n % NB1), each with its own stride;
 * rows are `row` elements apart (the operand's element offset travels beside its buffer). */
typedef struct { int batch0, batch1, row; } RowStrides;

#define ROWPTR(p, st, n, i) \
    ((p) + ((n) / NB1) * (st).batch0 + ((n) % NB1) * (st).batch1 + (i) * (st).row)

/* PoCL's CPU build does not inline builtins such as vload8/fma/fmax on vectors, and a call per FMA
 * is ruinous; so the hot loops use operators (a * b + c contracts to an FMA) and 4-byte-aligned
 * float8 loads/stores through this typedef instead. */
typedef float8 float8u __attribute__((aligned(4)));
#define LDG8(p) (*(__global const float8u *)(p))
#define LDL8(p) (*(__local const float8u *)(p))
#define LDP8(p) (*(__private float8u *)(p))
#define STG8(p, x) (*(__global float8u *)(p) = (x))
#define STP8(p, x) (*(__private float8u *)(p) = (x))
#define UNROLL _Pragma("unroll")
#define IMIN(a, b) ((a) < (b) ? (a) : (b))
#define IOTA8 ((uint8)(0, 1, 2, 3, 4, 5, 6, 7))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))

/* 8 floats from p, zero past the first cnt (never reads past them). */
inline float8 load8g(__global const float *p, int cnt)
{
    if (cnt >= 8) return LDG8(p);
    float t[8];
    for (int i = 0; i < 8; ++i) t[i] = i < cnt ? p[i] : 0.0f;
    return LDP8(t);
}

inline void store8g(float8 x, __global float *p, int cnt)
{
    if (cnt >= 8) { STG8(p, x); return; }
    float t[8];
    STP8(t, x);
    for (int i = 0; i < cnt; ++i) p[i] = t[i];
}

inline float hmax8(float8 x)
{
    float4 a = VMAX(x.lo, x.hi);
    float2 b = VMAX(a.lo, a.hi);
    return VMAX(b.x, b.y);
}

inline float hsum8(float8 x)
{
    float4 a = x.lo + x.hi;
    float2 b = a.lo + a.hi;
    return b.x + b.y;
}

/* Dot products (times mul) of BQ private rows `rows` against columns c0.. of a transposed (D, ncols)
 * matrix `t`; cnt columns valid from c0. Writes tile[r][0..BK). */
#define SCORE_TILE(tile, rows, t, ld, c0, cnt, mul)                              \
    for (int jj = 0; jj < BK; jj += 8) {                                         \
        float8 s8[BQ];                                                           \
        UNROLL for (int r = 0; r < BQ; ++r) s8[r] = (float8)(0.0f);                     \
        __global const float *tcol = (t) + (c0) + jj;                            \
        if ((cnt) - jj >= 8) {                                                   \
            for (int d = 0; d < D; ++d) {                                        \
                const float8 k8 = LDG8(tcol + d * (ld));                         \
                UNROLL for (int r = 0; r < BQ; ++r) s8[r] = (float8)(rows[r][d]) * k8 + s8[r]; \
            }                                                                    \
        } else if (jj < (cnt)) {                                                 \
            for (int d = 0; d < D; ++d) {                                        \
                const float8 k8 = load8g(tcol + d * (ld), (cnt) - jj);           \
                UNROLL for (int r = 0; r < BQ; ++r) s8[r] = (float8)(rows[r][d]) * k8 + s8[r]; \
            }                                                                    \
        }                                                                        \
        UNROLL for (int r = 0; r < BQ; ++r) STP8(&tile[r][jj], s8[r] * (mul));   \
    }

/* 2^x without a library call: x = n + f with |f| <= 1/2; 2^f from its Taylor series to degree 7
 * (relative error < 1e-8 before rounding) and 2^n written into the exponent bits. x < -126 gives 0,
 * so -inf (a masked score) gives exactly 0. */
inline float8 fexp2(float8 x)
{
    const float8 magic = (float8)(12582912.0f);  /* 1.5 * 2^23: adding it rounds to an integer */
    float8 xc = VMAX(x, (float8)(-127.0f));
    xc = xc < (float8)(127.0f) ? xc : (float8)(127.0f);
    const float8 t = xc + magic;
    const int8 n = as_int8(t) - as_int8(magic);
    const float8 f = (xc - (t - magic)) * LN2;
    float8 p = f * (1.0f / 5040.0f) + (1.0f / 720.0f);
    p = p * f + (1.0f / 120.0f);
    p = p * f + (1.0f / 24.0f);
    p = p * f + (1.0f / 6.0f);
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    const float8 two_n = as_float8((n + 127) << 23);
    return x < (float8)(-126.0f) ? (float8)(0.0f) : p * two_n;
}

/* Score tile of query rows r0.. x key columns j0..: entries past cnt columns or above the causal
 * diagonal become -inf; the additive mask is added in base 2. Skipped for full unmasked blocks. */
#define MASK_TILE(tile, r0, j0, cnt)                                                      \
    if (has_mask || (cnt) < BK || (causal && (j0) + BK - 1 > (r0))) {                     \
        UNROLL for (int r = 0; r < BQ; ++r) {                                             \
            const int i = (r0) + r;                                                       \
            const int jmax = causal ? IMIN((cnt), i - (j0) + 1) : (cnt);                  \
            __global const float *mrow = (has_mask && i < L) ? ROWPTR(mask, ms, n, i) + (j0) * mss : mask; \
            for (int j = 0; j < BK; ++j) {                                                \
                if (j >= jmax) tile[r][j] = -INFINITY;                                    \
                else if (has_mask && i < L) tile[r][j] += LOG2E * mrow[j * mss];          \
            }                                                                             \
        }                                                                                 \
    }

/* a[r] += sum_j coef[r][j] * X[j][8e .. 8e+8) over `count` rows of X starting at base. */
#define ACCUM(a, coef, base, rstride, count, e)                                      \
    if (D - (e) * 8 >= 8) {                                                          \
        for (int j = 0; j < (count); ++j) {                                          \
            const float8 x8 = LDG8((base) + j * (rstride) + (e) * 8);                \
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = (float8)(coef[r][j]) * x8 + a[r];    \
        }                                                                            \
    } else {                                                                         \
        for (int j = 0; j < (count); ++j) {                                          \
            const float8 x8 = load8g((base) + j * (rstride) + (e) * 8, D - (e) * 8); \
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = (float8)(coef[r][j]) * x8 + a[r];    \
        }                                                                            \
    }

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_fwd(const int N, const int NB1, const int L, const int S, const int D, const float scale,
              const int causal, const int has_mask, const float drop_p, const float drop_scale, const uint seed,
              const RowStrides qs, const RowStrides vs,
              const RowStrides ms, const int mss, const RowStrides os,
              __global const float *q, const int q_off, __global const float *kt, const int kt_off,
              __global const float *v, const int v_off, __global const float *mask, const int mask_off,
              __global float *o, const int o_off, __global float *lse, const int lse_off)
{
    q += q_off; kt += kt_off; v += v_off; mask += mask_off; o += o_off; lse += lse_off;
    const int n = get_global_id(1);
    if (n >= N) return;  /* dim 1 has local size 1: the whole group leaves together */
    const int r0 = get_global_id(0) * BQ;
    const int group_end = IMIN(L, (int)(get_group_id(0) + 1) * WG * BQ);
    const float qscale = scale * LOG2E;
    float qr[BQ][DMAX];
    float8 acc[BQ][DV];
    float m[BQ], l[BQ];
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int i = r0 + r;
        for (int d = 0; d < DMAX; ++d) qr[r][d] = 0.0f;
        if (i < L) {
            __global const float *row = ROWPTR(q, qs, n, i);
            for (int d = 0; d < D; ++d) qr[r][d] = row[d];
        }
        for (int e = 0; e < DV; ++e) acc[r][e] = (float8)(0.0f);
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    const int nd8 = (D + 7) / 8;
    const int kend = causal ? IMIN(S, group_end) : S;  /* top-left causal: key j <= query i */
    __global const float *ktn = kt + (long)n * D * S;
    float pr[BQ][BK];
#if USE_LOCAL
    __local float kt_tile[DMAX * BK];   /* (d, j) */
    __local float v_tile[BK * DMAX];    /* (j, d) */
    const int lid = get_local_id(0);
#endif
    for (int j0 = 0; j0 < kend; j0 += BK) {
        const int nk = IMIN(BK, kend - j0);
#if USE_LOCAL
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < DMAX * BK; idx += WG) {
            const int d = idx / BK, j = idx % BK;
            kt_tile[idx] = (d < D && j < nk) ? ktn[d * S + j0 + j] : 0.0f;
            const int jv = idx / DMAX, dv = idx % DMAX;
            v_tile[idx] = (dv < D && jv < nk) ? ROWPTR(v, vs, n, j0 + jv)[dv] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int jj = 0; jj < BK; jj += 8) {
            float8 s8[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) s8[r] = (float8)(0.0f);
            for (int d = 0; d < D; ++d) {
                float8 k8 = LDL8(kt_tile + d * BK + jj);
                UNROLL for (int r = 0; r < BQ; ++r) s8[r] = (float8)(qr[r][d]) * k8 + s8[r];
            }
            UNROLL for (int r = 0; r < BQ; ++r) STP8(&pr[r][jj], s8[r] * qscale);
        }
#else
        SCORE_TILE(pr, qr, ktn, S, j0, nk, qscale)
#endif
        MASK_TILE(pr, r0, j0, nk)
        /* online softmax: new running max, rescale factor, probabilities, running sum */
        float alpha[BQ];
        UNROLL for (int r = 0; r < BQ; ++r) {
            float8 mx8 = (float8)(m[r]);
            for (int jj = 0; jj < BK; jj += 8) mx8 = VMAX(mx8, LDP8(&pr[r][jj]));
            const float mx = hmax8(mx8);
            const float mu = (mx == -INFINITY) ? 0.0f : mx;  /* a fully masked row so far stays 0 */
            alpha[r] = fexp2((float8)(m[r] - mu)).s0;
            float8 sum8 = (float8)(0.0f);
            const uint8 row8 = (uint8)((uint)(n * L + r0 + r));
            for (int jj = 0; jj < BK; jj += 8) {
                const float8 p8 = fexp2(LDP8(&pr[r][jj]) - (float8)(mu));
                sum8 += p8;
                STP8(&pr[r][jj], drop_p > 0.0f ?
                     p8 * dropout_keep8(seed, row8, (uint8)((uint)(j0 + jj)) + IOTA8, drop_p, drop_scale) : p8);
            }
            l[r] = l[r] * alpha[r] + hsum8(sum8);
            m[r] = mx;
        }
        /* acc = acc * alpha + P V */
        for (int e = 0; e < nd8; ++e) {
            float8 a[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = acc[r][e] * alpha[r];
#if USE_LOCAL
            for (int j = 0; j < nk; ++j) {
                const float8 v8 = LDL8(v_tile + j * DMAX + e * 8);
                UNROLL for (int r = 0; r < BQ; ++r) a[r] = (float8)(pr[r][j]) * v8 + a[r];
            }
#else
            ACCUM(a, pr, ROWPTR(v, vs, n, j0), vs.row, nk, e)
#endif
            UNROLL for (int r = 0; r < BQ; ++r) acc[r][e] = a[r];
        }
    }
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int i = r0 + r;
        if (i >= L) break;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        __global float *orow = ROWPTR(o, os, n, i);
        for (int e = 0; e < nd8; ++e) store8g(acc[r][e] * inv, orow + e * 8, D - e * 8);
        lse[(long)n * L + i] = l[r] > 0.0f ? m[r] + log2(l[r]) : -INFINITY;
    }
}

/* delta[n, i] = sum_d dO[n, i, d] * O[n, i, d] */
__kernel void attn_bwd_delta(const int N, const int NB1, const int L, const int D, const RowStrides gs,
                             const RowStrides os, __global const float *g, const int g_off,
                             __global const float *o, const int o_off,
                             __global float *delta, const int delta_off)
{
    g += g_off; o += o_off; delta += delta_off;
    const int i = get_global_id(0), n = get_global_id(1);
    if (i >= L || n >= N) return;
    __global const float *grow = ROWPTR(g, gs, n, i);
    __global const float *orow = ROWPTR(o, os, n, i);
    float s = 0.0f;
    for (int d = 0; d < D; ++d) s += grow[d] * orow[d];
    delta[(long)n * L + i] = s;
}

/* dQ for BQ query rows: recompute P from lse, dP = dO V^T, dS = P (dP - delta), dQ = scale dS K. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_bwd_dq(const int N, const int NB1, const int L, const int S, const int D, const float scale,
                 const int causal, const int has_mask, const float drop_p, const float drop_scale, const uint seed,
                 const RowStrides qs, const RowStrides ks,
                 const RowStrides gs, const RowStrides ms, const int mss, const RowStrides dqs,
                 __global const float *q, const int q_off, __global const float *k, const int k_off,
                 __global const float *kt, const int kt_off, __global const float *vt, const int vt_off,
                 __global const float *g, const int g_off, __global const float *mask, const int mask_off,
                 __global const float *lse, const int lse_off,
                 __global const float *delta, const int delta_off, __global float *dq, const int dq_off)
{
    q += q_off; k += k_off; kt += kt_off; vt += vt_off; g += g_off; mask += mask_off; lse += lse_off;
    delta += delta_off; dq += dq_off;
    const int n = get_global_id(1);
    if (n >= N) return;
    const int r0 = get_global_id(0) * BQ;
    const int group_end = IMIN(L, (int)(get_group_id(0) + 1) * WG * BQ);
    const float qscale = scale * LOG2E;
    float qr[BQ][DMAX], gr[BQ][DMAX];
    float8 acc[BQ][DV];
    float lr[BQ], dr[BQ];
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int i = r0 + r;
        for (int d = 0; d < DMAX; ++d) qr[r][d] = gr[r][d] = 0.0f;
        lr[r] = INFINITY;  /* rows past L (and fully masked rows) get P = 0 */
        dr[r] = 0.0f;
        if (i < L) {
            __global const float *row = ROWPTR(q, qs, n, i);
            __global const float *grow = ROWPTR(g, gs, n, i);
            for (int d = 0; d < D; ++d) { qr[r][d] = row[d]; gr[r][d] = grow[d]; }
            lr[r] = lse[(long)n * L + i];
            if (lr[r] == -INFINITY) lr[r] = INFINITY;
            dr[r] = delta[(long)n * L + i];
        }
        for (int e = 0; e < DV; ++e) acc[r][e] = (float8)(0.0f);
    }
    const int nd8 = (D + 7) / 8;
    const int kend = causal ? IMIN(S, group_end) : S;
    __global const float *ktn = kt + (long)n * D * S;
    __global const float *vtn = vt + (long)n * D * S;
    float pr[BQ][BK], dp[BQ][BK];
    for (int j0 = 0; j0 < kend; j0 += BK) {
        const int nk = IMIN(BK, kend - j0);
        SCORE_TILE(pr, qr, ktn, S, j0, nk, qscale)
        SCORE_TILE(dp, gr, vtn, S, j0, nk, 1.0f)
        MASK_TILE(pr, r0, j0, nk)
        UNROLL for (int r = 0; r < BQ; ++r) {
            const uint8 row8 = (uint8)((uint)(n * L + r0 + r));
            for (int jj = 0; jj < BK; jj += 8) {  /* dS = P (K dP - delta), P = 2^(s - lse) */
                const float8 p8 = fexp2(LDP8(&pr[r][jj]) - (float8)(lr[r]));
                float8 dp8 = LDP8(&dp[r][jj]);
                if (drop_p > 0.0f)
                    dp8 *= dropout_keep8(seed, row8, (uint8)((uint)(j0 + jj)) + IOTA8, drop_p, drop_scale);
                STP8(&pr[r][jj], p8 * (dp8 - (float8)(dr[r])));
            }
        }
        for (int e = 0; e < nd8; ++e) {
            float8 a[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = acc[r][e];
            ACCUM(a, pr, ROWPTR(k, ks, n, j0), ks.row, nk, e)
            UNROLL for (int r = 0; r < BQ; ++r) acc[r][e] = a[r];
        }
    }
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int i = r0 + r;
        if (i >= L) break;
        __global float *out = ROWPTR(dq, dqs, n, i);
        for (int e = 0; e < nd8; ++e) store8g(acc[r][e] * scale, out + e * 8, D - e * 8);
    }
}

/* dK and dV for BQ key rows: walk the queries in blocks of BK with Q^T and dO^T (D, L):
 * P^T = exp2(K Q^T - lse), dV = P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK = scale dS^T Q.
 * fuse_dq (the CPU path, enough batch items to fill the cores): one work-item walks every key block
 * of its batch item in turn and also adds dQ += scale dS K into dq, which it alone writes, so the
 * backward makes 5 products instead of 7 (attn_bwd_dq recomputes P and dP) and needs no V^T. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_bwd_dkdv(const int N, const int NB1, const int L, const int S, const int D, const float scale,
                   const int causal, const int has_mask, const float drop_p, const float drop_scale,
                   const uint seed, const RowStrides qs, const RowStrides ks,
                   const RowStrides vs, const RowStrides gs, const RowStrides ms, const int mss,
                   const RowStrides dks, const RowStrides dvs, const RowStrides dqs, const int fuse_dq,
                   __global const float *q, const int q_off, __global const float *k, const int k_off,
                   __global const float *v, const int v_off, __global const float *g, const int g_off,
                   __global const float *qt, const int qt_off, __global const float *gt, const int gt_off,
                   __global const float *mask, const int mask_off,
                   __global const float *lse, const int lse_off,
                   __global const float *delta, const int delta_off, __global float *dk, const int dk_off,
                   __global float *dv, const int dv_off, __global float *dq, const int dq_off)
{
    q += q_off; k += k_off; v += v_off; g += g_off; qt += qt_off; gt += gt_off; mask += mask_off;
    lse += lse_off; delta += delta_off; dk += dk_off; dv += dv_off; dq += dq_off;
    const int n = get_global_id(1);
    if (n >= N) return;
    const float kscale = scale * LOG2E;
    const int nd8 = (D + 7) / 8;
    __global const float *qtn = qt + (long)n * D * L;
    __global const float *gtn = gt + (long)n * D * L;
    __global const float *lsen = lse + (long)n * L;
    __global const float *deltan = delta + (long)n * L;
    if (fuse_dq)
        for (int i = 0; i < L; ++i)
            for (int e = 0; e < nd8; ++e) store8g((float8)(0.0f), ROWPTR(dq, dqs, n, i) + e * 8, D - e * 8);
    /* without fuse_dq: one key block per work-item; with it: all of them, one after another */
    const int first = fuse_dq ? 0 : get_global_id(0) * BQ;
    const int last = fuse_dq ? S : first + 1;
    for (int c0 = first; c0 < last; c0 += BQ) {   /* c0: first key row of the block */
    const int group_start = fuse_dq ? c0 : get_group_id(0) * WG * BQ;
    float kr[BQ][DMAX], vr[BQ][DMAX];
    float8 dka[BQ][DV], dva[BQ][DV];
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int j = c0 + r;
        for (int d = 0; d < DMAX; ++d) kr[r][d] = vr[r][d] = 0.0f;
        if (j < S) {
            __global const float *krow = ROWPTR(k, ks, n, j);
            __global const float *vrow = ROWPTR(v, vs, n, j);
            for (int d = 0; d < D; ++d) { kr[r][d] = krow[d]; vr[r][d] = vrow[d]; }
        }
        for (int e = 0; e < DV; ++e) dka[r][e] = dva[r][e] = (float8)(0.0f);
    }
    const int istart = causal ? IMIN(L, group_start) : 0;   /* queries before the first key see none */
    float pt[BQ][BK], dpt[BQ][BK];
    for (int i0 = istart; i0 < L; i0 += BK) {
        const int ni = IMIN(BK, L - i0);
        SCORE_TILE(pt, kr, qtn, L, i0, ni, kscale)
        SCORE_TILE(dpt, vr, gtn, L, i0, ni, 1.0f)
        /* transposed tile: rows are keys c0.., columns queries i0..; mask (i, j) lives at row i, column j */
        if (has_mask || ni < BK || c0 + BQ > S || (causal && c0 + BQ - 1 > i0)) {
            UNROLL for (int r = 0; r < BQ; ++r) {
                const int j = c0 + r;
                __global const float *mcol = has_mask ? ROWPTR(mask, ms, n, i0) + j * mss : mask;
                for (int ii = 0; ii < BK; ++ii) {
                    if (ii >= ni || j >= S || (causal && j > i0 + ii)) pt[r][ii] = -INFINITY;
                    else if (has_mask) pt[r][ii] += LOG2E * mcol[ii * ms.row];
                }
            }
        }
        float8 lse8[BK / 8], delta8[BK / 8];
        for (int jj = 0; jj < BK; jj += 8) {
            lse8[jj / 8] = load8g(lsen + i0 + jj, ni - jj);
            lse8[jj / 8] = lse8[jj / 8] == (float8)(-INFINITY) ? (float8)(INFINITY) : lse8[jj / 8];
            delta8[jj / 8] = load8g(deltan + i0 + jj, ni - jj);
        }
        UNROLL for (int r = 0; r < BQ; ++r) {
            const uint8 col8 = (uint8)((uint)(c0 + r));
            for (int jj = 0; jj < BK; jj += 8) {  /* (P K)^T and dS^T = P^T (K^T dP^T - delta) */
                const float8 p8 = fexp2(LDP8(&pt[r][jj]) - lse8[jj / 8]);
                const float8 k8 = drop_p > 0.0f ? dropout_keep8(seed, (uint8)((uint)(n * L + i0 + jj)) + IOTA8,
                                                                col8, drop_p, drop_scale) : (float8)(1.0f);
                STP8(&pt[r][jj], p8 * k8);
                STP8(&dpt[r][jj], p8 * (LDP8(&dpt[r][jj]) * k8 - delta8[jj / 8]));
            }
        }
        for (int e = 0; e < nd8; ++e) {
            float8 a[BQ], b[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) { a[r] = dva[r][e]; b[r] = dka[r][e]; }
            ACCUM(a, pt, ROWPTR(g, gs, n, i0), gs.row, ni, e)
            ACCUM(b, dpt, ROWPTR(q, qs, n, i0), qs.row, ni, e)
            UNROLL for (int r = 0; r < BQ; ++r) { dva[r][e] = a[r]; dka[r][e] = b[r]; }
        }
        if (fuse_dq) {  /* dQ[i] += sum over this block's keys r of dS^T[r][i] K[r] */
            for (int ii = 0; ii < ni; ++ii) {
                __global float *dqrow = ROWPTR(dq, dqs, n, i0 + ii);
                for (int e = 0; e < nd8; ++e) {
                    float8 a = load8g(dqrow + e * 8, D - e * 8);
                    UNROLL for (int r = 0; r < BQ; ++r) a = (float8)(dpt[r][ii]) * LDP8(&kr[r][e * 8]) + a;
                    store8g(a, dqrow + e * 8, D - e * 8);
                }
            }
        }
    }
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int j = c0 + r;
        if (j >= S) break;
        __global float *dkrow = ROWPTR(dk, dks, n, j);
        __global float *dvrow = ROWPTR(dv, dvs, n, j);
        for (int e = 0; e < nd8; ++e) {
            store8g(dka[r][e] * scale, dkrow + e * 8, D - e * 8);
            store8g(dva[r][e], dvrow + e * 8, D - e * 8);
        }
    }
    }  /* key blocks */
    if (fuse_dq)
        for (int i = 0; i < L; ++i) {
            __global float *dqrow = ROWPTR(dq, dqs, n, i);
            for (int e = 0; e < nd8; ++e) store8g(load8g(dqrow + e * 8, D - e * 8) * scale, dqrow + e * 8, D - e * 8);
        }
}


/* out[n, d, j] = x[n, j, d]: a strided (N, R, D) operand as a contiguous (N, D, R) copy, so that
 * the kernels above can read 8 consecutive rows as one vector. 8 rows x 8 columns per step. */
__kernel void attn_transpose(const int N, const int NB1, const int R, const int D, const RowStrides xs,
                             __global const float *x, const int x_off,
                             __global float *out, const int out_off)
{
    x += x_off; out += out_off;
    const int j0 = get_global_id(0) * 8, n = get_global_id(1);
    if (j0 >= R || n >= N) return;
    const int cnt = IMIN(8, R - j0);
    __global float *o = out + (long)n * D * R + j0;
    for (int d0 = 0; d0 < D; d0 += 8) {
        float t[8][8];
        for (int jj = 0; jj < 8; ++jj) {
            const float8 row = jj < cnt ? load8g(ROWPTR(x, xs, n, j0 + jj) + d0, D - d0) : (float8)(0.0f);
            STP8(t[jj], row);
        }
        const int dc = IMIN(8, D - d0);
        for (int dd = 0; dd < dc; ++dd) {
            const float8 col = (float8)(t[0][dd], t[1][dd], t[2][dd], t[3][dd],
                                        t[4][dd], t[5][dd], t[6][dd], t[7][dd]);
            store8g(col, o + (long)(d0 + dd) * R, cnt);
        }
    }
}

/* out[n, j, :] = x[n, j, :]: strided rows (e.g. heads viewed inside a (L, B, 3E) projection) packed
 * densely, so that the kernels above walk neighbouring rows instead of rows pages apart. */
__kernel void attn_pack(const int N, const int NB1, const int R, const int D, const RowStrides xs,
                        __global const float *x, const int x_off, __global float *out, const int out_off)
{
    x += x_off; out += out_off;
    const int j = get_global_id(0), n = get_global_id(1);
    if (j >= R || n >= N) return;
    __global const float *src = ROWPTR(x, xs, n, j);
    __global float *dst = out + ((long)n * R + j) * D;
    for (int d0 = 0; d0 < D; d0 += 8) store8g(load8g(src + d0, D - d0), dst + d0, D - d0);
}
