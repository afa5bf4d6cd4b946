/* Convolution = im2col + GEMM. The column tensor is (N, K, P): for image n, row k = (c, kh, kw)
 * matches a PyTorch weight (OC, C, KH, KW) seen as (OC, K) and column p = (oh, ow), so one batched
 * GEMM W (OC, K) @ col[n] (K, P) writes the output straight into (N, OC, OH, OW).
 * Geometry is passed as a Window (common.h; runtime, not -D, so one build serves every layer), and
 * the input's element strides (any layout) as a Strides4. */
#include "common.h"

/* Column row k = (c, kh, kw) at output row oh: returns the input row h it reads (outside the image
 * when not in [0, H)), and sets its channel c and w0, the input column of ow = 0. */
inline int tap_row(const Window win, int k, int oh, int *c, int *w0)
{
    const int kh = (k / win.KW) % win.KH, kw = k % win.KW;
    *c = k / (win.KH * win.KW);
    *w0 = kw * win.DW - win.PW;
    return oh * win.SH - win.PH + kh * win.DH;
}

/* col[n, k, oh, :] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW] for every ow, 0 outside the
 * image: one work-item per output row, so the index math happens once per OW elements. */
__kernel void im2col_fwd(const Window win, const Strides4 xs, __global const float *x, int x_off,
                         __global float *col, const int col_off)
{
    col += col_off;
    const int OH = win.OH, OW = win.OW, KH = win.KH, KW = win.KW;
    const int K = win.C * KH * KW;
    const int rows = win.N * K * OH;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int oh = r % OH, nk = r / OH;
    const int k = nk % K, n = nk / K;
    int c, w0;
    const int h = tap_row(win, k, oh, &c, &w0);
    __global float *out = col + (long)r * OW;
    if (h < 0 || h >= win.H) {
        for (int ow = 0; ow < OW; ++ow)
            out[ow] = 0.0f;
        return;
    }
    __global const float *row = x + x_off + n * xs.n + c * xs.c + h * xs.h;
    if (win.SW == 1 && xs.w == 1) {
        /* three plain loops, zeros | a contiguous copy | zeros, which LLVM vectorises (the
         * bounds test inside one loop made a per-element gather) */
        const int lo = clamp(-w0, 0, OW), hi = clamp(win.W - w0, lo, OW);
        for (int ow = 0; ow < lo; ++ow)
            out[ow] = 0.0f;
        for (int ow = lo; ow < hi; ++ow)
            out[ow] = row[w0 + ow];
        for (int ow = hi; ow < OW; ++ow)
            out[ow] = 0.0f;
        return;
    }
    for (int ow = 0; ow < OW; ++ow) {
        const int w = w0 + ow * win.SW;
        out[ow] = (w >= 0 && w < win.W) ? row[w * xs.w] : 0.0f;
    }
}

/* xp (N, C, Hp, Wp) contiguous = x zero-padded by PH rows above and PW columns on the left, and
 * zeros to the right and below up to Wp, Hp, then `tail` more zeros: matmul.cl's gemm_implicit
 * reads a stride-1 convolution's columns from it as shifted runs. One work-item per row of xp; a
 * contiguous source row is three plain loops, zeros | copy | zeros (as in im2col_fwd). */
__kernel void conv_pad_planes(const Window win, const Strides4 xs, const int Hp, const int Wp, const int tail,
                              __global const float *x, int x_off, __global float *xp, const int xp_off)
{
    const int rows = win.N * win.C * Hp;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int hp = r % Hp, nc = r / Hp;
    const int c = nc % win.C, n = nc / win.C, h = hp - win.PH;
    __global float *out = xp + xp_off + (long)r * Wp;
    if (r == rows - 1)
        for (int i = 0; i < tail; ++i)
            out[Wp + i] = 0.0f;
    if (h < 0 || h >= win.H) {
        for (int i = 0; i < Wp; ++i)
            out[i] = 0.0f;
        return;
    }
    __global const float *row = x + x_off + n * xs.n + c * xs.c + h * xs.h;
    const int lo = min(win.PW, Wp), hi = min(win.PW + win.W, Wp);
    for (int i = 0; i < lo; ++i)
        out[i] = 0.0f;
    if (xs.w == 1)
        for (int i = lo; i < hi; ++i)
            out[i] = row[i - win.PW];
    else
        for (int i = lo; i < hi; ++i)
            out[i] = row[(i - win.PW) * xs.w];
    for (int i = hi; i < Wp; ++i)
        out[i] = 0.0f;
}

/* The columns laid out as matmul.cl's B panels, so that gemm_packed reads them with no pack pass
 * between (CPU path), gathered from conv_pad_planes' padded input xp by two offset tables: column
 * row k starts at koff[k] and position q is qoff[q] past it, -1 in either marking a zero (a panel's
 * pad). Any stride or dilation: the index math is the tables', once per layer. One work-item per
 * float of dst, the panel lane fastest, so that PoCL vectorises across work-items: contiguous
 * stores and one gather (2-3x the speed of a work-item per output row, whose few columns on a
 * small image (4x4, 8x8) left it at 1-4 GB/s).
 * im2col_gather: B panels (panel, K, NR) over Q positions, dst[q / NR][k][q % NR]: image n's panels
 * (ceil(P/NR), K, NR), or joined, the images' positions end to end (the table says which a panel
 * holds). */
#ifdef NR
inline float gathered(__global const float *xp, const int ko, const int qo)
{
    /* the load always reads inside xp (the vectorised gather loads every lane, then selects) */
    const bool inside = ko >= 0 && qo >= 0;
    const float v = xp[inside ? ko + qo : 0];
    return inside ? v : 0.0f;
}

__kernel void im2col_gather(const int K, const int Q, __global const float *xp, const int xp_off,
                            __global const int *koff, const int koff_off, __global const int *qoff,
                            const int qoff_off, __global float *dst, const int dst_off)
{
    const int l = get_global_id(0), k = get_global_id(1), panel = get_global_id(2);
    const int q = panel * NR + l;
    if (k >= K || q >= Q)
        return;
    dst[dst_off + ((long)panel * K + k) * NR + l] = gathered(xp + xp_off, koff[koff_off + k], qoff[qoff_off + q]);
}

/* im2col_gather_t: the columns transposed, as B panels for the weight gradient dW (OC, K) = sum over
 * images of g[n] (OC, P) @ col[n]^T (P, K), whose K runs over every image's positions end to end:
 * dst[k / NR][r][k % NR] over R positions r = n*P + p, zero for k >= K. */
__kernel void im2col_gather_t(const int K, const int R, __global const float *xp, const int xp_off,
                              __global const int *koff, const int koff_off, __global const int *qoff,
                              const int qoff_off, __global float *dst, const int dst_off)
{
    const int i = get_global_id(0), r = get_global_id(1), kp = get_global_id(2);
    const int k = kp * NR + i;
    if (r >= R)
        return;
    dst[dst_off + ((long)kp * R + r) * NR + i] =
        gathered(xp + xp_off, k < K ? koff[koff_off + k] : -1, qoff[qoff_off + r]);
}
#endif

/* wt (C, OC, TAPS) = w (OC, C, TAPS) transposed, both contiguous: the weight of the input gradient
 * as a convolution (its taps' flip is the columns' table's). A (OC*TAPS, C) grid: TAPS is
 * compile-time, so the one division is by a constant and PoCL vectorises across work-items
 * (contiguous stores); a generic strided copy ran at 2-5 GB/s on ResNet's 512x512x3x3. */
#ifdef TAPS
__kernel void conv_weight_t(const int OC, const int C, __global const float *w, const int w_off,
                            __global float *wt, const int wt_off)
{
    const int r = get_global_id(0), c = get_global_id(1);
    if (r >= OC * TAPS || c >= C)
        return;
    const int oc = r / TAPS, t = r - oc * TAPS;
    wt[wt_off + (long)c * OC * TAPS + r] = w[w_off + ((long)oc * C + c) * TAPS + t];
}
#endif

/* dx[n, c, h, w] = sum of dcol[n, k, oh, ow] over every tap (kh, kw) that read (h, w): a gather,
 * so no atomics, through a table: toff[s*TAPS + t] is where tap t's column row holds the output that
 * read plane position s = h*W + w, t*P + oh*OW + ow, or -1 where none did (any stride, padding,
 * dilation: the index math is the table's, once per geometry). TAPS = KH*KW at compile time, so the
 * tap loop unrolls and PoCL vectorises across work-items (one per element of dx, N*C*S of them;
 * a 2-D grid of runtime divisions ran 3-5 ms a call on ResNet's stride-2 layers). Taps summed in
 * (kh, kw) order. dcol (N, C*TAPS, P) and dx (N, C, H, W) contiguous. */
#ifdef TAPS
__kernel void col2im_gather(const int NC, const int S, const int P, __global const float *dcol, const int dcol_off,
                            __global const int *toff, const int toff_off, __global float *dx, const int dx_off)
{
    const int i = get_global_id(0);
    if (i >= NC * S)
        return;
    const int s = i % S, nc = i / S;
    __global const float *src = dcol + dcol_off + (long)nc * TAPS * P;
    __global const int *to = toff + toff_off + s * TAPS;
    float acc = 0.0f;
    for (int t = 0; t < TAPS; ++t) {
        const int o = to[t];
        const float v = src[o >= 0 ? o : 0];  /* (a vectorised gather loads every lane) */
        acc += o >= 0 ? v : 0.0f;
    }
    dx[dx_off + i] = acc;
}
#endif

/* Depthwise convolution (groups == C, one input channel per group): out channel oc = c * M + m reads
 * only input channel c = oc / M, so a direct loop over the KH*KW taps beats a GEMM of K = KH*KW.
 * Window: the input's (N, C, H, W), the output's (OH, OW); weight (C*M, KH*KW) contiguous.
 * One work-item per output row (per input row for dx, per tap for dw): each tap adds to the whole row
 * in a branch-free loop over the columns it reaches inside the image, and the kernel size and strides,
 * given as -D DW_KH/DW_KW/DW_SH/DW_SW (0: the Window's, at run time), unroll the tap loops and make
 * the stride tests cheap. On PoCL (2 cores) MobileNetV2's depthwise layers (batch 8, 112x112) ran
 * 3x faster, forward and backward, than with one work-item per element and run-time divisions. */
#ifndef DW_KH
#define DW_KH 0
#endif
#ifndef DW_KW
#define DW_KW 0
#endif
#ifndef DW_SH
#define DW_SH 0
#endif
#ifndef DW_SW
#define DW_SW 0
#endif
#define DW_KH_(win) (DW_KH ? DW_KH : (win).KH)
#define DW_KW_(win) (DW_KW ? DW_KW : (win).KW)
#define DW_SH_(win) (DW_SH ? DW_SH : (win).SH)
#define DW_SW_(win) (DW_SW ? DW_SW : (win).SW)

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a */
inline int dw_floor_div(const int a, const int b) { return a >= 0 ? a / b : -((b - 1 - a) / b); }
inline int dw_ceil_div(const int a, const int b) { return -dw_floor_div(-a, b); }

/* DW_VEC: a compile-time column stride of 1 or 2, for which the kernels below take 8 columns at a
 * time in float8s wherever every tap of the 8 lies inside the image and the rows are contiguous
 * (PoCL left the loops inside a work-item scalar: 2-5 GFLOP/s); the columns at the ends, and
 * strided rows, take the scalar code. Both sum the taps of an output in the same order. */
#define DW_VEC (DW_SW == 1 || DW_SW == 2)

/* -D ACT (act.h): the activation that the depthwise forwards apply to each output as they store it
 * (an eval-mode Conv2dNormActivation with its BatchNorm folded in); -D ACT_IN: the one that
 * depthwise_fwd_band applies to its input as it copies it (the previous 1x1 convolution's, which
 * then needs no pass of its own). */
#include "act.h"
#ifndef ACT_IN
#define ACT_IN ACT_NONE
#endif

/* y[n, oc, oh, :] for one (n, oc, oh) per work-item; y contiguous (N, OC, OH, OW). Each output is
 * the bias plus its taps in (kh, kw) order, over the taps whose input column ow*SW + kw*DW - PW lies
 * inside the image. */
__kernel void depthwise_fwd(const Window win, const int M, const int has_bias, const Strides4 xs,
                            __global const float *x, int x_off, __global const float *w, const int w_off,
                            __global const float *bias, const int bias_off, __global float *y, const int y_off)
{
    w += w_off; bias += bias_off; y += y_off;
    const int KH = DW_KH_(win), KW = DW_KW_(win), SW = DW_SW_(win);
    const int OH = win.OH, OW = win.OW, OC = win.C * M, W = win.W, PW = win.PW;
    const int r = get_global_id(0);
    if (r >= win.N * OC * OH)
        return;
    const int oh = r % OH, oc = (r / OH) % OC, n = r / (OH * OC);
    __global const float *plane = x + x_off + n * xs.n + (oc / M) * xs.c;
    __global const float *k = w + oc * KH * KW;
    __global float *yrow = y + (long)r * OW;
    const float b = has_bias ? bias[oc] : 0.0f;
    const int h0 = oh * DW_SH_(win) - win.PH;
#if DW_VEC
    /* vector columns: ow*SW - PW >= 0 and ow*SW - PW + (KW-1)*DW + (SW-1) <= W - 1 */
    const int lo = min(OW, (PW + SW - 1) / SW), top = W - 1 - (KW - 1) * win.DW - (SW - 1) + PW;
    const int hi = top < 0 ? 0 : min(OW, top / SW + 1);
#endif
    int ow = 0;
    while (ow < OW) {
#if DW_VEC
        if (xs.w == 1 && ow >= lo && ow + 8 <= hi) {
            float8 acc = b;
            for (int kh = 0; kh < KH; ++kh) {
                const int h = h0 + kh * win.DH;
                if (h < 0 || h >= win.H)
                    continue;
                __global const float *row = plane + h * xs.h + ow * SW - PW;
                for (int kw = 0; kw < KW; ++kw)
                    acc += k[kh * KW + kw] * LD8_STRIDED(DW_SW, row + kw * win.DW);
            }
            ST8(yrow + ow, ACT_(acc, (float8)(0.0f)));
            ow += 8;
            continue;
        }
#endif
        float acc = b;
        for (int kh = 0; kh < KH; ++kh) {
            const int h = h0 + kh * win.DH;
            if (h < 0 || h >= win.H)
                continue;
            __global const float *row = plane + h * xs.h;
            for (int kw = 0; kw < KW; ++kw) {
                const int wi = ow * SW + kw * win.DW - PW;
                if (wi >= 0 && wi < W)
                    acc += k[kh * KW + kw] * row[wi * xs.w];
            }
        }
        yrow[ow] = ACT_(acc, 0.0f);
        ++ow;
    }
}

/* depthwise_fwd from a private, zero-padded copy of a band of input rows: one work-item per (n, oc)
 * and RB output rows (all of a small plane's), which copies the rows those read once, 8 columns at
 * a time (buf row i, column j = ACT_IN(input column j - PW), zero outside), and takes every tap of 8
 * outputs from it as one float8 (at column stride 2 the even lanes of a float16); the weights sit in
 * registers and ACT maps each output as it is stored. Taps add in (kh, kw) order after the bias, as
 * in depthwise_fwd (a padded tap adds k * 0). Needs DW_KH, DW_KW, DW_SW at compile time and
 * rows * L <= DW_BUF (ops/conv.py's _band_rows; depthwise_fwd takes wider rows). On PoCL (one
 * thread) it ran MobileNetV3's and EfficientNet's layers 1.5-6x faster than depthwise_fwd, which
 * reads every tap from global memory and a row shorter than 8 in scalars (112x112 at stride 2:
 * 0.9-1.1x). */
#define DW_BUF 2048
/* a band's columns: the last tap of the last float8 reads column SW * 8 * nv - SW + (KW-1) * DW (and a
 * float16's odd lane after it), rounded up to whole float8s for the copy */
#define DW_BAND_COLS(nv, DD) ((DW_SW * 8 * (nv) + (DW_KW - 1) * (DD) + 7) / 8 * 8)
#if DW_KH > 0 && DW_KW > 0 && DW_SW > 0
#if DW_SW == 1
#define DW_TAP(p) (*(const float8u *)(p))
#elif DW_SW == 2
#define DW_TAP(p) ((*(const float16u *)(p)).even)
#else
#define DW_TAP(p) ((float8)((p)[0], (p)[DW_SW], (p)[2 * DW_SW], (p)[3 * DW_SW], (p)[4 * DW_SW], (p)[5 * DW_SW], \
                            (p)[6 * DW_SW], (p)[7 * DW_SW]))
#endif
/* buf[i * L + j] = ACT_IN(plane's row h0 + i, column j - PW), zero outside the image, for rows
 * rows: the private band that depthwise_fwd_band and depthwise_bwd_weight_band read their taps from. */
inline void dw_copy_band(float *buf, __global const float *plane, const Strides4 xs, const int h0, const int rows,
                         const int L, const int H, const int W, const int PW)
{
    for (int i = 0; i < rows; ++i) {  /* zeros, then the row over them at column PW */
        const int h = h0 + i;
        float *brow = buf + i * L, *dst = brow + PW;
        for (int q = 0; q < L; q += 8)
            *(float8u *)(brow + q) = 0.0f;
        if (h < 0 || h >= H)
            continue;
        __global const float *xrow = plane + h * xs.h;
        if (xs.w == 1 && W >= 8) {  /* the last 8 end at the row's end, over a few again */
            for (int j = 0; j < W; j += 8) {
                const float8 t = LD8(xrow + min(j, W - 8));
                *(float8u *)(dst + min(j, W - 8)) = ACT_BY(ACT_IN, t, (float8)(0.0f));
            }
        } else {  /* 8 at a time through a private float8 (ACT_IN's float8 exp, not a scalar call per element) */
            for (int j0 = 0; j0 < W; j0 += 8) {
                float t[8];
                for (int j = 0; j < 8; ++j)
                    t[j] = j0 + j < W ? xrow[(j0 + j) * xs.w] : 0.0f;
                const float8 v = *(float8u *)t;
                *(float8u *)t = ACT_BY(ACT_IN, v, (float8)(0.0f));
                for (int j = 0; j < min(8, W - j0); ++j)
                    dst[j0 + j] = t[j];
            }
        }
    }
}

/* Stores 8 outputs at yrow + c0: a row's last 8 columns end at its end (c0 = OW - 8, recomputing a
 * few); a row shorter than 8 stores all 8 lanes, running into the next rows, which the work-item
 * writes after, unless its band has fewer than 8 columns left (rows_left rows: the scalar loop). */
inline void dw_store8(__global float *yrow, const int c0, const float8 v, const int OW, const int rows_left)
{
    if (OW >= 8 || rows_left * OW >= 8) {
        ST8(yrow + c0, v);
    } else {
        float t[8];
        *(float8u *)t = v;
        for (int i = 0; i < OW; ++i)
            yrow[i] = t[i];
    }
}

__kernel void depthwise_fwd_band(const Window win, const int M, const int has_bias, const Strides4 xs,
                                 __global const float *x, int x_off, __global const float *w, const int w_off,
                                 __global const float *bias, const int bias_off, __global float *y,
                                 const int y_off, const int RB)
{
    w += w_off; bias += bias_off; y += y_off;
    const int SH = DW_SH_(win), DH = win.DH, DD = win.DW;
    const int OH = win.OH, OW = win.OW, OC = win.C * M, H = win.H, W = win.W;
    const int nb = (OH + RB - 1) / RB;
    const int r = get_global_id(0);
    if (r >= win.N * OC * nb)
        return;
    const int blk = r % nb, oc = (r / nb) % OC, n = r / (nb * OC);
    __global const float *plane = x + x_off + n * xs.n + (oc / M) * xs.c;
    float k[DW_KH * DW_KW];
    for (int t = 0; t < DW_KH * DW_KW; ++t)
        k[t] = w[oc * DW_KH * DW_KW + t];
    const float b = has_bias ? bias[oc] : 0.0f;
    const int oh0 = blk * RB, rows_out = min(RB, OH - oh0), nv = (OW + 7) / 8;
    const int L = DW_BAND_COLS(nv, DD);
    const int rows = (rows_out - 1) * SH + (DW_KH - 1) * DH + 1;
    float buf[DW_BUF];
    dw_copy_band(buf, plane, xs, oh0 * SH - win.PH, rows, L, H, W, win.PW);
    __global float *yp = y + (((long)n * OC + oc) * OH + oh0) * OW;
    int ro = 0;
#if DW_SH == 1
    /* two output rows at a time share KH of their KH + 1 input rows: each tap's load feeds both */
    if (DH == 1)
        for (; ro + 2 <= rows_out; ro += 2)
            for (int v = 0; v < nv; ++v) {
                const int c0 = OW >= 8 ? min(8 * v, OW - 8) : 0;
                float8 a0 = b, a1 = b;
                for (int i = 0; i <= DW_KH; ++i) {
                    const float *prow = buf + (ro + i) * L + c0 * DW_SW;
                    for (int kw = 0; kw < DW_KW; ++kw) {
                        const float8 t = DW_TAP(prow + kw * DD);
                        if (i < DW_KH)
                            a0 += k[i * DW_KW + kw] * t;
                        if (i > 0)
                            a1 += k[(i - 1) * DW_KW + kw] * t;
                    }
                }
                dw_store8(yp + ro * OW, c0, ACT_(a0, (float8)(0.0f)), OW, rows_out - ro);
                dw_store8(yp + (ro + 1) * OW, c0, ACT_(a1, (float8)(0.0f)), OW, rows_out - ro - 1);
            }
#endif
    for (; ro < rows_out; ++ro)
        for (int v = 0; v < nv; ++v) {
            const int c0 = OW >= 8 ? min(8 * v, OW - 8) : 0;
            float8 acc = b;
            for (int kh = 0; kh < DW_KH; ++kh) {
                const float *prow = buf + (ro * SH + kh * DH) * L + c0 * DW_SW;
                for (int kw = 0; kw < DW_KW; ++kw)
                    acc += k[kh * DW_KW + kw] * DW_TAP(prow + kw * DD);
            }
            dw_store8(yp + ro * OW, c0, ACT_(acc, (float8)(0.0f)), OW, rows_out - ro);
        }
}

/* dw[oc, kh, kw] = sum over n, oh, ow of g[n, oc, oh, ow] * x[n, oc / M, tap] from depthwise_fwd_band's
 * private bands: one work-item per output channel, each band of RB output rows of each image copied
 * once, and every tap's sum in its own float8 of 8 neighbouring columns, so a tap's load is
 * depthwise_fwd_band's; the lanes add at the end. depthwise_bwd_weight (a
 * work-item per tap, over global memory) ran MobileNetV3's 5x5 layers on 14x14 and 7x7 in scalars. */
__kernel void depthwise_bwd_weight_band(const Window win, const int M, const Strides4 xs, const Strides4 gs,
                                        __global const float *x, int x_off, __global const float *g, int g_off,
                                        __global float *dw, const int dw_off, const int RB)
{
    const int SH = DW_SH_(win), DH = win.DH, DD = win.DW, OH = win.OH, OW = win.OW, OC = win.C * M;
    const int oc = get_global_id(0);
    if (oc >= OC)
        return;
    const int nv = (OW + 7) / 8, L = DW_BAND_COLS(nv, DD);
    float8 acc[DW_KH * DW_KW];
    for (int t = 0; t < DW_KH * DW_KW; ++t)
        acc[t] = 0.0f;
    float buf[DW_BUF];
    for (int n = 0; n < win.N; ++n) {
        __global const float *plane = x + x_off + n * xs.n + (oc / M) * xs.c;
        __global const float *gplane = g + g_off + n * gs.n + oc * gs.c;
        for (int oh0 = 0; oh0 < OH; oh0 += RB) {
            const int rows_out = min(RB, OH - oh0);
            dw_copy_band(buf, plane, xs, oh0 * SH - win.PH, (rows_out - 1) * SH + (DW_KH - 1) * DH + 1, L,
                         win.H, win.W, win.PW);
            for (int ro = 0; ro < rows_out; ++ro) {
                __global const float *grow = gplane + (oh0 + ro) * gs.h;
                for (int v = 0; v < nv; ++v) {
                    if (gs.w == 1 && 8 * v + 8 <= OW) {
                        const float8 gv = LD8(grow + 8 * v);
                        for (int kh = 0; kh < DW_KH; ++kh) {
                            const float *prow = buf + (ro * SH + kh * DH) * L + 8 * v * DW_SW;
                            for (int kw = 0; kw < DW_KW; ++kw)
                                acc[kh * DW_KW + kw] += gv * DW_TAP(prow + kw * DD);
                        }
                    } else {  /* the lanes past OW add nothing (not 0 * x: an infinite x there) */
                        float t[8];
                        for (int j = 0; j < 8; ++j)
                            t[j] = 8 * v + j < OW ? grow[(8 * v + j) * gs.w] : 0.0f;
                        const float8 gv = *(float8u *)t;
                        const int8 in = (int8)(0, 1, 2, 3, 4, 5, 6, 7) + 8 * v < OW;
                        for (int kh = 0; kh < DW_KH; ++kh) {
                            const float *prow = buf + (ro * SH + kh * DH) * L + 8 * v * DW_SW;
                            for (int kw = 0; kw < DW_KW; ++kw)
                                acc[kh * DW_KW + kw] += select((float8)(0.0f), gv * DW_TAP(prow + kw * DD), in);
                        }
                    }
                }
            }
        }
    }
    for (int t = 0; t < DW_KH * DW_KW; ++t)
        dw[dw_off + oc * DW_KH * DW_KW + t] = sum8(acc[t]);
}
#endif

/* dx[n, c, h, :] for one (n, c, h) per work-item; dx contiguous (N, C, H, W). Input column x_w is
 * read by output column ow = (x_w - kw*DW + PW) / SW of tap (kh, kw) where that divides exactly, and
 * the taps add k * g to dx in (m, kh, kw) order. Stride 1 gathers: each dx element sums its taps, the
 * middle columns (which every tap reaches, in contiguous rows) 8 at a time. Other strides scatter:
 * each tap adds to the columns it reaches in a zeroed row (a gather tested every tap's divisibility
 * per element, 5x slower at stride 2). */
__kernel void depthwise_bwd_input(const Window win, const int M, const Strides4 gs, __global const float *g,
                                  int g_off, __global const float *w, const int w_off,
                                  __global float *dx, const int dx_off)
{
    w += w_off; dx += dx_off;
    const int KH = DW_KH_(win), KW = DW_KW_(win), SH = DW_SH_(win), SW = DW_SW_(win);
    const int C = win.C, H = win.H, W = win.W, OH = win.OH, OW = win.OW, PW = win.PW;
    const int r = get_global_id(0);
    if (r >= win.N * C * H)
        return;
    const int h = r % H, c = (r / H) % C, n = r / (H * C);
    __global float *dxrow = dx + (long)r * W;
    __global const float *gbase = g + g_off + n * gs.n;
#if DW_SW == 1
    /* columns whose every tap lands in [0, OW): x_w - (KW-1)*DW + PW >= 0 and x_w + PW <= OW - 1 */
    const int lo = min(W, max(0, (KW - 1) * win.DW - PW)), hi = max(0, min(W, OW - PW));
    int x_w = 0;
    while (x_w < W) {
        if (gs.w == 1 && x_w >= lo && x_w + 8 <= hi) {
            float8 acc = 0.0f;
            for (int m = 0; m < M; ++m) {
                const int oc = c * M + m;
                __global const float *kk = w + oc * KH * KW;
                for (int kh = 0; kh < KH; ++kh) {
                    const int th = h + win.PH - kh * win.DH;  /* = oh * SH when this tap reads row h */
                    if (th < 0 || th % SH || th / SH >= OH)
                        continue;
                    __global const float *grow = gbase + oc * gs.c + (th / SH) * gs.h + x_w + PW;
                    for (int kw = 0; kw < KW; ++kw)
                        acc += kk[kh * KW + kw] * LD8(grow - kw * win.DW);
                }
            }
            ST8(dxrow + x_w, acc);
            x_w += 8;
            continue;
        }
        float acc = 0.0f;
        for (int m = 0; m < M; ++m) {
            const int oc = c * M + m;
            __global const float *kk = w + oc * KH * KW;
            for (int kh = 0; kh < KH; ++kh) {
                const int th = h + win.PH - kh * win.DH;
                if (th < 0 || th % SH || th / SH >= OH)
                    continue;
                __global const float *grow = gbase + oc * gs.c + (th / SH) * gs.h;
                for (int kw = 0; kw < KW; ++kw) {
                    const int ow = x_w + PW - kw * win.DW;
                    if (ow >= 0 && ow < OW)
                        acc += kk[kh * KW + kw] * grow[ow * gs.w];
                }
            }
        }
        dxrow[x_w] = acc;
        ++x_w;
    }
#else
    for (int x_w = 0; x_w < W; ++x_w)
        dxrow[x_w] = 0.0f;
    for (int m = 0; m < M; ++m) {
        const int oc = c * M + m;
        __global const float *gplane = gbase + oc * gs.c;
        __global const float *k = w + oc * KH * KW;
        for (int kh = 0; kh < KH; ++kh) {
            const int th = h + win.PH - kh * win.DH;  /* = oh * SH when this tap reads row h */
            if (th < 0 || th % SH || th / SH >= OH)
                continue;
            __global const float *grow = gplane + (th / SH) * gs.h;
            for (int kw = 0; kw < KW; ++kw) {
                const int d = kw * win.DW - PW;
                const int lo = max(0, dw_ceil_div(-d, SW)), hi = min(OW, dw_floor_div(W - 1 - d, SW) + 1);
                const float kv = k[kh * KW + kw];
                for (int ow = lo; ow < hi; ++ow)
                    dxrow[ow * SW + d] += kv * grow[ow * gs.w];
            }
        }
    }
#endif
}

/* dw[oc, kh, kw] = sum over n, oh, ow of g[n, oc, oh, ow] * x[n, oc / M, tap]: one work-item per tap,
 * over the output columns whose input column lies inside the image; 8 columns at a time in float8
 * lanes where the rows are contiguous (a single serial sum waits on every add). */
__kernel void depthwise_bwd_weight(const Window win, const int M, const Strides4 xs, const Strides4 gs,
                                   __global const float *x, int x_off, __global const float *g, int g_off,
                                   __global float *dw, const int dw_off)
{
    dw += dw_off;
    const int KH = DW_KH_(win), KW = DW_KW_(win), SH = DW_SH_(win), SW = DW_SW_(win), OC = win.C * M;
    const int i = get_global_id(0);
    if (i >= OC * KH * KW)
        return;
    const int kw = i % KW, kh = (i / KW) % KH, oc = i / (KW * KH);
    const int d = kw * win.DW - win.PW;  /* input column = ow * SW + d */
    const int lo = max(0, dw_ceil_div(-d, SW)), hi = min(win.OW, dw_floor_div(win.W - 1 - d, SW) + 1);
#if DW_VEC
    /* vector chunks also keep LD8_STRIDED's extra column inside the row: ow*SW + d + SW - 1 <= W - 1 */
    const int vhi = min(hi, dw_floor_div(win.W - SW - d, SW) + 1);
    const int vec = xs.w == 1 && gs.w == 1;
    float8 acc8 = 0.0f;
#endif
    float acc = 0.0f;
    for (int n = 0; n < win.N; ++n) {
        __global const float *plane = x + x_off + n * xs.n + (oc / M) * xs.c;
        __global const float *gplane = g + g_off + n * gs.n + oc * gs.c;
        for (int oh = 0; oh < win.OH; ++oh) {
            const int h = oh * SH - win.PH + kh * win.DH;
            if (h < 0 || h >= win.H)
                continue;
            __global const float *row = plane + h * xs.h, *grow = gplane + oh * gs.h;
            int ow = lo;
#if DW_VEC
            if (vec)
                for (; ow + 8 <= vhi; ow += 8)
                    acc8 += LD8(grow + ow) * LD8_STRIDED(DW_SW, row + ow * SW + d);
#endif
            for (; ow < hi; ++ow)
                acc += grow[ow * gs.w] * row[(ow * SW + d) * xs.w];
        }
    }
#if DW_VEC
    acc += sum8(acc8);
#endif
    dw[i] = acc;
}
