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
            ST8(yrow + ow, acc);
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
        yrow[ow] = acc;
        ++ow;
    }
}

/* depthwise_fwd for a small image at column stride 1 (the 14x14 and 7x7 layers, up to DW_NARROW
 * columns and rows): one work-item per (n, oc) plane, which copies its input plane once, zero-padded,
 * into private memory and then takes every output row in float8s. Per row, the float8 middle of a
 * narrow row was a few columns or none, and mobilenet_v3_small's 5x5 layers ran 38% of its forward
 * in the scalar edge loop. Taps add in (kh, kw) order after the bias, as in depthwise_fwd (a padded
 * tap adds k * 0). */
#define DW_NARROW 32
#define DW_PAD 8   /* (KH-1)*DH and (KW-1)*DW up to this */
__kernel void depthwise_fwd_plane(const Window win, const int M, const int has_bias, const Strides4 xs,
                                  __global const float *x, int x_off, __global const float *w, const int w_off,
                                  __global const float *bias, const int bias_off, __global float *y,
                                  const int y_off)
{
    w += w_off; bias += bias_off; y += y_off;
    const int KH = DW_KH_(win), KW = DW_KW_(win);
    const int OH = win.OH, OW = win.OW, OC = win.C * M, H = win.H, W = win.W;
    const int r = get_global_id(0);
    if (r >= win.N * OC)
        return;
    const int oc = r % OC, n = r / OC;
    __global const float *plane = x + x_off + n * xs.n + (oc / M) * xs.c;
    __global const float *k = w + oc * KH * KW;
    __global float *yp = y + (long)r * OH * OW;
    const float b = has_bias ? bias[oc] : 0.0f;
    const int nv = (OW + 7) / 8, cols = 8 * nv + (KW - 1) * win.DW, rows = OH + (KH - 1) * win.DH;
    float pp[(DW_NARROW + DW_PAD) * (DW_NARROW + DW_PAD)];  /* pp[i][j] = x[i - PH][j - PW] or 0 */
    for (int i = 0; i < rows; ++i) {
        const int hi = i - win.PH;
        for (int j = 0; j < cols; ++j) {
            const int wi = j - win.PW;
            pp[i * cols + j] = hi >= 0 && hi < H && wi >= 0 && wi < W ? plane[hi * xs.h + wi * xs.w] : 0.0f;
        }
    }
    for (int oh = 0; oh < OH; ++oh) {
        float8 acc[DW_NARROW / 8];
        for (int v = 0; v < nv; ++v)
            acc[v] = (float8)(b);
        for (int kh = 0; kh < KH; ++kh) {
            const float *prow = pp + (oh + kh * win.DH) * cols;
            for (int kw = 0; kw < KW; ++kw) {
                const float kv = k[kh * KW + kw];
                for (int v = 0; v < nv; ++v)
                    acc[v] += kv * *(const float8u *)(prow + 8 * v + kw * win.DW);
            }
        }
        for (int v = 0; v < nv; ++v) {
            float t[8];
            *(float8u *)t = acc[v];
            for (int i = 0; i < min(8, OW - 8 * v); ++i)
                yp[oh * OW + 8 * v + i] = t[i];
        }
    }
}

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
