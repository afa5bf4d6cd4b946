/* Fused scaled-dot-product attention, float32, flash-attention style: the L x S score matrix never
 * reaches global memory. Softmax runs online (running max m and sum l per query row) in base 2:
 * scores are pre-multiplied by log2(e) so exp2 replaces exp; lse holds m + log2(l) per row.
 *
 * Each work-item owns BQ query rows (or, in the dK/dV kernel, BQ key rows) held in private
 * arrays, walks the other side in blocks of BK, and computes score tiles AW columns at a time as
 * AW-float vector FMAs (a register-blocked micro-kernel). The walked side is read transposed, (D, S),
 * so AW consecutive keys form one vector; the host makes those transposed copies. Raw dot products
 * are formed in the same order in every kernel and scaled once, so the backward's recomputed scores
 * match the forward's bit for bit (P = exp2(s - lse) stays accurate at large scores).
 *   CPU (PoCL):  WG=1, USE_LOCAL=0: local memory is only cache there; AW=16, BQ=16 where the CPU
 *                has 16-float registers (AVX-512: PoCL's build keeps float8 code in ymm), else AW=8, BQ=12.
 *   GPU:         WG=64, BQ=1, USE_LOCAL=1, AW=8: K^T and V tiles are staged in local memory per group.
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

#ifndef AW
#define AW 8        /* floats per vector: 8 (an AVX ymm) or 16 (an AVX-512 zmm) */
#endif
#ifndef DMAX
#define DMAX 64     /* head dim rounded up to a multiple of AW (register array size) */
#endif
#ifndef BQ
#define BQ 8        /* rows owned by one work-item */
#endif
#ifndef BK
#define BK 32       /* columns per block walked; a multiple of AW */
#endif
#ifndef WG
#define WG 1
#endif
#ifndef USE_LOCAL
#define USE_LOCAL 0
#endif
#if DMAX % AW || BK % AW
#error "DMAX and BK must be multiples of AW"
#endif
#define DV (DMAX / AW)
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

#if AW == 8
typedef float8 floatw;
typedef int8 intw;
typedef uint8 uintw;
#define AS_INTW as_int8
#define AS_FLOATW as_float8
#define IOTAW ((uintw)(0, 1, 2, 3, 4, 5, 6, 7))
#define DROPOUT_KEEPW dropout_keep8
#elif AW == 16
typedef float16 floatw;
typedef int16 intw;
typedef uint16 uintw;
#define AS_INTW as_int16
#define AS_FLOATW as_float16
#define IOTAW ((uintw)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
/* common.h's hash eight at a time: the same factor for the same (row, column) whatever AW is */
#define DROPOUT_KEEPW(seed, row, col, p, scale) \
    ((floatw)(dropout_keep8(seed, (row).lo, (col).lo, p, scale), dropout_keep8(seed, (row).hi, (col).hi, p, scale)))
#else
#error "AW must be 8 or 16"
#endif
/* Lets LLVM use 16-float registers where its CPU tuning prefers 256-bit ones (AVX-512's zmm);
 * only 16-float builds (CPU profiles) carry the clang attribute, so no GPU compiler meets it. */
#if AW == 16
#define WIDE __attribute__((min_vector_width(512)))
#else
#define WIDE
#endif

/* How an operand's rows are found: batch item n is (n / NB1, n % NB1), each with its own stride;
 * rows are `row` elements apart (the operand's element offset travels beside its buffer). */
typedef struct { int batch0, batch1, row; } RowStrides;

#define ROWPTR(p, st, n, i) \
    ((p) + ((n) / NB1) * (st).batch0 + ((n) % NB1) * (st).batch1 + (i) * (st).row)

/* PoCL's CPU build does not inline builtins such as vload8/fma/fmax on vectors, and a call per FMA
 * is ruinous; so the hot loops use operators (a * b + c contracts to an FMA) and 4-byte-aligned
 * vector loads/stores through this typedef instead. */
typedef floatw floatwu __attribute__((aligned(4)));
#define LDG(p) (*(__global const floatwu *)(p))
#define LDL(p) (*(__local const floatwu *)(p))
#define LDP(p) (*(__private floatwu *)(p))
#define STG(p, x) (*(__global floatwu *)(p) = (x))
#define STP(p, x) (*(__private floatwu *)(p) = (x))
#define UNROLL _Pragma("unroll")
#define IMIN(a, b) ((a) < (b) ? (a) : (b))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))

/* AW floats from p, zero past the first cnt (never reads past them). */
inline floatw loadwg(__global const float *p, int cnt)
{
    if (cnt >= AW) return LDG(p);
    float t[AW];
    for (int i = 0; i < AW; ++i) t[i] = i < cnt ? p[i] : 0.0f;
    return LDP(t);
}

inline void storewg(floatw x, __global float *p, int cnt)
{
    if (cnt >= AW) { STG(p, x); return; }
    float t[AW];
    STP(t, x);
    for (int i = 0; i < cnt; ++i) p[i] = t[i];
}

/* Horizontal max and sum: the halves folded together down to one float. */
inline float hmaxw(floatw x)
{
#if AW == 16
    const float8 x8 = VMAX(x.lo, x.hi);
#else
    const float8 x8 = x;
#endif
    float4 a = VMAX(x8.lo, x8.hi);
    float2 b = VMAX(a.lo, a.hi);
    return VMAX(b.x, b.y);
}

inline float hsumw(floatw x)
{
#if AW == 16
    const float8 x8 = x.lo + x.hi;
#else
    const float8 x8 = x;
#endif
    float4 a = x8.lo + x8.hi;
    float2 b = a.lo + a.hi;
    return b.x + b.y;
}

/* Dot products (times mul) of BQ private rows `rows` against columns c0.. of a transposed (D, ncols)
 * matrix `t`; cnt columns valid from c0. Writes tile[r][0..BK). */
#define SCORE_TILE(tile, rows, t, ld, c0, cnt, mul)                              \
    for (int jj = 0; jj < BK; jj += AW) {                                        \
        floatw sv[BQ];                                                           \
        UNROLL for (int r = 0; r < BQ; ++r) sv[r] = (floatw)(0.0f);              \
        __global const float *tcol = (t) + (c0) + jj;                            \
        if ((cnt) - jj >= AW) {                                                  \
            for (int d = 0; d < D; ++d) {                                        \
                const floatw kv = LDG(tcol + d * (ld));                          \
                UNROLL for (int r = 0; r < BQ; ++r) sv[r] = (floatw)(rows[r][d]) * kv + sv[r]; \
            }                                                                    \
        } else if (jj < (cnt)) {                                                 \
            for (int d = 0; d < D; ++d) {                                        \
                const floatw kv = loadwg(tcol + d * (ld), (cnt) - jj);           \
                UNROLL for (int r = 0; r < BQ; ++r) sv[r] = (floatw)(rows[r][d]) * kv + sv[r]; \
            }                                                                    \
        }                                                                        \
        UNROLL for (int r = 0; r < BQ; ++r) STP(&tile[r][jj], sv[r] * (mul));    \
    }

/* 2^x without a library call: x = n + f with |f| <= 1/2; 2^f from its Taylor series to degree 7
 * (relative error < 1e-8 before rounding) and 2^n written into the exponent bits. x < -126 gives 0,
 * so -inf (a masked score) gives exactly 0. */
inline floatw fexp2(floatw x)
{
    const floatw magic = (floatw)(12582912.0f);  /* 1.5 * 2^23: adding it rounds to an integer */
    floatw xc = VMAX(x, (floatw)(-127.0f));
    xc = xc < (floatw)(127.0f) ? xc : (floatw)(127.0f);
    const floatw t = xc + magic;
    const intw n = AS_INTW(t) - AS_INTW(magic);
    const floatw f = (xc - (t - magic)) * LN2;
    floatw p = f * (1.0f / 5040.0f) + (1.0f / 720.0f);
    p = p * f + (1.0f / 120.0f);
    p = p * f + (1.0f / 24.0f);
    p = p * f + (1.0f / 6.0f);
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    const floatw two_n = AS_FLOATW((n + 127) << 23);
    return x < (floatw)(-126.0f) ? (floatw)(0.0f) : p * two_n;
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

/* a[r] += sum_j coef[r][j] * X[j][AW e .. AW (e + 1)) over `count` rows of X starting at base. */
#define ACCUM(a, coef, base, rstride, count, e)                                  \
    if (D - (e) * AW >= AW) {                                                    \
        for (int j = 0; j < (count); ++j) {                                      \
            const floatw xv = LDG((base) + j * (rstride) + (e) * AW);            \
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = (floatw)(coef[r][j]) * xv + a[r]; \
        }                                                                        \
    } else {                                                                     \
        for (int j = 0; j < (count); ++j) {                                      \
            const floatw xv = loadwg((base) + j * (rstride) + (e) * AW, D - (e) * AW); \
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = (floatw)(coef[r][j]) * xv + a[r]; \
        }                                                                        \
    }

__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) WIDE
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
    floatw acc[BQ][DV];
    float m[BQ], l[BQ];
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int i = r0 + r;
        for (int d = 0; d < DMAX; ++d) qr[r][d] = 0.0f;
        if (i < L) {
            __global const float *row = ROWPTR(q, qs, n, i);
            for (int d = 0; d < D; ++d) qr[r][d] = row[d];
        }
        for (int e = 0; e < DV; ++e) acc[r][e] = (floatw)(0.0f);
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    const int ndv = (D + AW - 1) / AW;
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
        for (int jj = 0; jj < BK; jj += AW) {
            floatw sv[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) sv[r] = (floatw)(0.0f);
            for (int d = 0; d < D; ++d) {
                floatw kv = LDL(kt_tile + d * BK + jj);
                UNROLL for (int r = 0; r < BQ; ++r) sv[r] = (floatw)(qr[r][d]) * kv + sv[r];
            }
            UNROLL for (int r = 0; r < BQ; ++r) STP(&pr[r][jj], sv[r] * qscale);
        }
#else
        SCORE_TILE(pr, qr, ktn, S, j0, nk, qscale)
#endif
        MASK_TILE(pr, r0, j0, nk)
        /* online softmax: new running max, rescale factor, probabilities, running sum */
        float alpha[BQ];
        UNROLL for (int r = 0; r < BQ; ++r) {
            floatw mxv = (floatw)(m[r]);
            for (int jj = 0; jj < BK; jj += AW) mxv = VMAX(mxv, LDP(&pr[r][jj]));
            const float mx = hmaxw(mxv);
            const float mu = (mx == -INFINITY) ? 0.0f : mx;  /* a fully masked row so far stays 0 */
            alpha[r] = fexp2((floatw)(m[r] - mu)).s0;
            floatw sumv = (floatw)(0.0f);
            const uintw roww = (uintw)((uint)(n * L + r0 + r));
            for (int jj = 0; jj < BK; jj += AW) {
                const floatw pv = fexp2(LDP(&pr[r][jj]) - (floatw)(mu));
                sumv += pv;
                STP(&pr[r][jj], drop_p > 0.0f ?
                     pv * DROPOUT_KEEPW(seed, roww, (uintw)((uint)(j0 + jj)) + IOTAW, drop_p, drop_scale) : pv);
            }
            l[r] = l[r] * alpha[r] + hsumw(sumv);
            m[r] = mx;
        }
        /* acc = acc * alpha + P V */
        for (int e = 0; e < ndv; ++e) {
            floatw a[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = acc[r][e] * alpha[r];
#if USE_LOCAL
            for (int j = 0; j < nk; ++j) {
                const floatw vv = LDL(v_tile + j * DMAX + e * AW);
                UNROLL for (int r = 0; r < BQ; ++r) a[r] = (floatw)(pr[r][j]) * vv + a[r];
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
        for (int e = 0; e < ndv; ++e) storewg(acc[r][e] * inv, orow + e * AW, D - e * AW);
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
__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) WIDE
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
    floatw acc[BQ][DV];
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
        for (int e = 0; e < DV; ++e) acc[r][e] = (floatw)(0.0f);
    }
    const int ndv = (D + AW - 1) / AW;
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
            const uintw roww = (uintw)((uint)(n * L + r0 + r));
            for (int jj = 0; jj < BK; jj += AW) {  /* dS = P (K dP - delta), P = 2^(s - lse) */
                const floatw pv = fexp2(LDP(&pr[r][jj]) - (floatw)(lr[r]));
                floatw dpv = LDP(&dp[r][jj]);
                if (drop_p > 0.0f)
                    dpv *= DROPOUT_KEEPW(seed, roww, (uintw)((uint)(j0 + jj)) + IOTAW, drop_p, drop_scale);
                STP(&pr[r][jj], pv * (dpv - (floatw)(dr[r])));
            }
        }
        for (int e = 0; e < ndv; ++e) {
            floatw a[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) a[r] = acc[r][e];
            ACCUM(a, pr, ROWPTR(k, ks, n, j0), ks.row, nk, e)
            UNROLL for (int r = 0; r < BQ; ++r) acc[r][e] = a[r];
        }
    }
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int i = r0 + r;
        if (i >= L) break;
        __global float *out = ROWPTR(dq, dqs, n, i);
        for (int e = 0; e < ndv; ++e) storewg(acc[r][e] * scale, out + e * AW, D - e * AW);
    }
}

/* dK and dV for BQ key rows: walk the queries in blocks of BK with Q^T and dO^T (D, L):
 * P^T = exp2(K Q^T - lse), dV = P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK = scale dS^T Q.
 * fuse_dq (the CPU path, enough batch items to fill the cores): one work-item walks every key block
 * of its batch item in turn and also adds dQ += scale dS K into dq, which it alone writes, so the
 * backward makes 5 products instead of 7 (attn_bwd_dq recomputes P and dP) and needs no V^T. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) WIDE
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
    const int ndv = (D + AW - 1) / AW;
    __global const float *qtn = qt + (long)n * D * L;
    __global const float *gtn = gt + (long)n * D * L;
    __global const float *lsen = lse + (long)n * L;
    __global const float *deltan = delta + (long)n * L;
    if (fuse_dq)
        for (int i = 0; i < L; ++i)
            for (int e = 0; e < ndv; ++e) storewg((floatw)(0.0f), ROWPTR(dq, dqs, n, i) + e * AW, D - e * AW);
    /* without fuse_dq: one key block per work-item; with it: all of them, one after another */
    const int first = fuse_dq ? 0 : get_global_id(0) * BQ;
    const int last = fuse_dq ? S : first + 1;
    for (int c0 = first; c0 < last; c0 += BQ) {   /* c0: first key row of the block */
    const int group_start = fuse_dq ? c0 : get_group_id(0) * WG * BQ;
    float kr[BQ][DMAX], vr[BQ][DMAX];
    floatw dka[BQ][DV], dva[BQ][DV];
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int j = c0 + r;
        for (int d = 0; d < DMAX; ++d) kr[r][d] = vr[r][d] = 0.0f;
        if (j < S) {
            __global const float *krow = ROWPTR(k, ks, n, j);
            __global const float *vrow = ROWPTR(v, vs, n, j);
            for (int d = 0; d < D; ++d) { kr[r][d] = krow[d]; vr[r][d] = vrow[d]; }
        }
        for (int e = 0; e < DV; ++e) dka[r][e] = dva[r][e] = (floatw)(0.0f);
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
        floatw lsew[BK / AW], deltaw[BK / AW];
        for (int jj = 0; jj < BK; jj += AW) {
            lsew[jj / AW] = loadwg(lsen + i0 + jj, ni - jj);
            lsew[jj / AW] = lsew[jj / AW] == (floatw)(-INFINITY) ? (floatw)(INFINITY) : lsew[jj / AW];
            deltaw[jj / AW] = loadwg(deltan + i0 + jj, ni - jj);
        }
        UNROLL for (int r = 0; r < BQ; ++r) {
            const uintw colw = (uintw)((uint)(c0 + r));
            for (int jj = 0; jj < BK; jj += AW) {  /* (P K)^T and dS^T = P^T (K^T dP^T - delta) */
                const floatw pv = fexp2(LDP(&pt[r][jj]) - lsew[jj / AW]);
                const floatw keep = drop_p > 0.0f ? DROPOUT_KEEPW(seed, (uintw)((uint)(n * L + i0 + jj)) + IOTAW,
                                                                colw, drop_p, drop_scale) : (floatw)(1.0f);
                STP(&pt[r][jj], pv * keep);
                STP(&dpt[r][jj], pv * (LDP(&dpt[r][jj]) * keep - deltaw[jj / AW]));
            }
        }
        for (int e = 0; e < ndv; ++e) {
            floatw a[BQ], b[BQ];
            UNROLL for (int r = 0; r < BQ; ++r) { a[r] = dva[r][e]; b[r] = dka[r][e]; }
            ACCUM(a, pt, ROWPTR(g, gs, n, i0), gs.row, ni, e)
            ACCUM(b, dpt, ROWPTR(q, qs, n, i0), qs.row, ni, e)
            UNROLL for (int r = 0; r < BQ; ++r) { dva[r][e] = a[r]; dka[r][e] = b[r]; }
        }
        if (fuse_dq) {  /* dQ[i] += sum over this block's keys r of dS^T[r][i] K[r] */
            for (int ii = 0; ii < ni; ++ii) {
                __global float *dqrow = ROWPTR(dq, dqs, n, i0 + ii);
                for (int e = 0; e < ndv; ++e) {
                    floatw a = loadwg(dqrow + e * AW, D - e * AW);
                    UNROLL for (int r = 0; r < BQ; ++r) a = (floatw)(dpt[r][ii]) * LDP(&kr[r][e * AW]) + a;
                    storewg(a, dqrow + e * AW, D - e * AW);
                }
            }
        }
    }
    UNROLL for (int r = 0; r < BQ; ++r) {
        const int j = c0 + r;
        if (j >= S) break;
        __global float *dkrow = ROWPTR(dk, dks, n, j);
        __global float *dvrow = ROWPTR(dv, dvs, n, j);
        for (int e = 0; e < ndv; ++e) {
            storewg(dka[r][e] * scale, dkrow + e * AW, D - e * AW);
            storewg(dva[r][e], dvrow + e * AW, D - e * AW);
        }
    }
    }  /* key blocks */
    if (fuse_dq)
        for (int i = 0; i < L; ++i) {
            __global float *dqrow = ROWPTR(dq, dqs, n, i);
            for (int e = 0; e < ndv; ++e) storewg(loadwg(dqrow + e * AW, D - e * AW) * scale, dqrow + e * AW, D - e * AW);
        }
}


/* out[n, d, j] = x[n, j, d]: a strided (N, R, D) operand as a contiguous (N, D, R) copy, so that
 * the kernels above can read AW consecutive rows as one vector. AW rows x AW columns per step. */
__kernel WIDE void attn_transpose(const int N, const int NB1, const int R, const int D, const RowStrides xs,
                                  __global const float *x, const int x_off,
                                  __global float *out, const int out_off)
{
    x += x_off; out += out_off;
    const int j0 = get_global_id(0) * AW, n = get_global_id(1);
    if (j0 >= R || n >= N) return;
    const int cnt = IMIN(AW, R - j0);
    __global float *o = out + (long)n * D * R + j0;
    for (int d0 = 0; d0 < D; d0 += AW) {
        float t[AW][AW];
        for (int jj = 0; jj < AW; ++jj) {
            const floatw row = jj < cnt ? loadwg(ROWPTR(x, xs, n, j0 + jj) + d0, D - d0) : (floatw)(0.0f);
            STP(t[jj], row);
        }
        const int dc = IMIN(AW, D - d0);
        for (int dd = 0; dd < dc; ++dd) {
            float col[AW];
            UNROLL for (int jj = 0; jj < AW; ++jj) col[jj] = t[jj][dd];
            storewg(LDP(col), o + (long)(d0 + dd) * R, cnt);
        }
    }
}

/* out[n, j, :] = x[n, j, :]: strided rows (e.g. heads viewed inside a (L, B, 3E) projection) packed
 * densely, so that the kernels above walk neighbouring rows instead of rows pages apart. */
__kernel WIDE void attn_pack(const int N, const int NB1, const int R, const int D, const RowStrides xs,
                             __global const float *x, const int x_off, __global float *out, const int out_off)
{
    x += x_off; out += out_off;
    const int j = get_global_id(0), n = get_global_id(1);
    if (j >= R || n >= N) return;
    __global const float *src = ROWPTR(x, xs, n, j);
    __global float *dst = out + ((long)n * R + j) * D;
    for (int d0 = 0; d0 < D; d0 += AW) storewg(loadwg(src + d0, D - d0), dst + d0, D - d0);
}
