/* 2-D max and average pooling, forward and backward. Geometry travels as a Window (common.h;
 * runtime, so one build serves every layer; dilation is 1 for average pooling), and a strided
 * input or gradient's element strides as a Strides4.
 * Outputs are contiguous (N, C, OH, OW) / (N, C, H, W). */
#include "common.h"

/* One step of a max pool's scan: v at index `at` replaces the best so far if it is the first, is
 * larger, or is the first NaN (NaN wins, as in PyTorch), so ties keep the first maximum. */
inline void max_scan(const float v, const int at, float *best, int *arg)
{
    if (*arg < 0 || v > *best || (isnan(v) && !isnan(*best))) {
        *best = v;
        *arg = at;
    }
}

/* y[n,c,oh,ow] = max over the window; idx = h*W + w of the winner (first one on ties).
 * One work-item per output row (n, c, oh): the index math happens once per OW cells. */
__kernel void maxpool_fwd(const Window win, const Strides4 xs, __global const float *x, int x_off,
                          __global float *y, const int y_off, __global int *idx, const int idx_off)
{
    y += y_off; idx += idx_off;
    const int OH = win.OH, OW = win.OW, H = win.H, W = win.W;
    const int rows = win.N * win.C * OH;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int oh = r % OH, nc = r / OH;
    const int c = nc % win.C, n = nc / win.C;
    __global const float *plane = x + x_off + n * xs.n + c * xs.c;
    const int h0 = oh * win.SH - win.PH;
    for (int ow = 0; ow < OW; ++ow) {
        const int w0 = ow * win.SW - win.PW;
        float best = -INFINITY;
        int arg = -1;
        for (int kh = 0; kh < win.KH; ++kh) {
            const int h = h0 + kh * win.DH;
            if (h < 0 || h >= H)
                continue;
            for (int kw = 0; kw < win.KW; ++kw) {
                const int w = w0 + kw * win.DW;
                if (w < 0 || w >= W)
                    continue;
                const float v = plane[h * xs.h + w * xs.w];
                max_scan(v, h * W + w, &best, &arg);
            }
        }
        y[(long)r * OW + ow] = best;
        idx[(long)r * OW + ow] = arg;
    }
}

/* maxpool_fwd for windows without dilation whose size and stride are -D POOL_KH/KW/SH/SW (PoCL left
 * maxpool_fwd's loops scalar: 9 taps took ~15 ns an output): the output columns whose windows lie
 * inside the image columns go 8 at a time through float8s (the taps of 8 neighbouring windows are 8
 * contiguous, or every second of 16, input columns), the few at each end through the scalar scan.
 * Both keep the first maximum in (kh, kw) order and let the first NaN win. */
#ifdef POOL_KW
#if POOL_SW <= 2
#define LOAD8_COLUMNS(p) LD8_STRIDED(POOL_SW, p)
#endif
/* 2x2 windows at stride 2: one 16-float load per window row holds both taps of 8 windows (even
 * and odd lanes), reading nothing past the last tap; else LD8_STRIDED at stride 2 reads one past */
#define PAIRED (POOL_KW == 2 && POOL_SW == 2)
#define OVERREAD (PAIRED ? 0 : POOL_SW - 1)

__kernel void maxpool_rows_fwd(const Window win, const Strides4 xs, __global const float *x, int x_off,
                               __global float *y, const int y_off, __global int *idx, const int idx_off)
{
    y += y_off; idx += idx_off;
    const int OH = win.OH, OW = win.OW, H = win.H, W = win.W, PW = win.PW;
    const int r = get_global_id(0);
    if (r >= win.N * win.C * OH)
        return;
    const int oh = r % OH, nc = r / OH;
    const int c = nc % win.C, n = nc / win.C;
    __global const float *plane = x + x_off + n * xs.n + c * xs.c;
    __global float *yrow = y + (long)r * OW;
    __global int *irow = idx + (long)r * OW;
    const int h0 = oh * POOL_SH - win.PH;
    int ow = 0;
#ifdef LOAD8_COLUMNS
    /* vector columns: ow * SW - PW >= 0, and the last column a load touches, ow*SW - PW + KW - 1 +
     * OVERREAD, below W */
    const int lo = min(OW, (PW + POOL_SW - 1) / POOL_SW);
    const int hi = W - POOL_KW - OVERREAD + PW < 0 ? 0 : min(OW, (W - POOL_KW - OVERREAD + PW) / POOL_SW + 1);
    const int8 lane = (int8)(0, 1, 2, 3, 4, 5, 6, 7) * POOL_SW;
#endif
    while (ow < OW) {
#ifdef LOAD8_COLUMNS
        if (xs.w == 1 && ow >= lo && ow + 8 <= hi) {
            const int w0 = ow * POOL_SW - PW;
            float8 best = 0.0f;
            int8 arg = -1;
            int first = 1;
            for (int kh = 0; kh < POOL_KH; ++kh) {
                const int h = h0 + kh;
                if (h < 0 || h >= H)
                    continue;
                __global const float *p = plane + h * xs.h + w0;
#if PAIRED
                const float16 pair = *(__global const float16u *)p;
#endif
                for (int kw = 0; kw < POOL_KW; ++kw) {
#if PAIRED
                    const float8 v = kw ? pair.odd : pair.even;
#else
                    const float8 v = LOAD8_COLUMNS(p + kw);
#endif
                    const int8 at = h * W + w0 + kw + lane;
                    /* v != v is isnan(v); a vector ?: picks per lane by the condition's sign */
                    const int8 take = first ? (int8)(-1) : (v > best) | ((v != v) & (best == best));
                    best = take ? v : best;
                    arg = take ? at : arg;
                    first = 0;
                }
            }
            ST8(yrow + ow, best);
            ST8I(irow + ow, arg);
            ow += 8;
            continue;
        }
#endif
        const int w0 = ow * POOL_SW - PW;
        float best = -INFINITY;
        int arg = -1;
        for (int kh = 0; kh < POOL_KH; ++kh) {
            const int h = h0 + kh;
            if (h < 0 || h >= H)
                continue;
            for (int kw = 0; kw < POOL_KW; ++kw) {
                const int w = w0 + kw;
                if (w < 0 || w >= W)
                    continue;
                const float v = plane[h * xs.h + w * xs.w];
                max_scan(v, h * W + w, &best, &arg);
            }
        }
        yrow[ow] = best;
        irow[ow] = arg;
        ++ow;
    }
}
#endif

/* The gradient of any max pooling as a scatter of g into a zeroed dx at the arg-maxes, one work-item
 * per output row, in `passes` launches: launch `phase` takes the rows oh = phase (mod passes), whose
 * windows are disjoint when passes * SH covers the dilated window height, so no two work-items of a
 * launch write one cell, and no atomics are needed (the gather over candidate windows, maxpool_bwd,
 * spent its time on divisions). dx is contiguous (N, C, H, W). */
__kernel void maxpool_scatter_bwd(const Window win, const int phase, const int passes, const Strides4 gs,
                                  __global const float *g, int g_off, __global const int *idx, const int idx_off,
                                  __global float *dx, const int dx_off)
{
    idx += idx_off; dx += dx_off;
    const int OH = win.OH, OW = win.OW;
    const int R = (OH - phase + passes - 1) / passes;  /* rows in this phase */
    const int r = get_global_id(0);
    if (r >= win.N * win.C * R)
        return;
    const int oh = phase + passes * (r % R), nc = r / R;
    const int c = nc % win.C, n = nc / win.C;
    __global const float *grow = g + g_off + n * gs.n + c * gs.c + oh * gs.h;
    __global const int *irow = idx + ((long)nc * OH + oh) * OW;
    __global float *plane = dx + (long)nc * win.H * win.W;
    for (int ow = 0; ow < OW; ++ow)
        plane[irow[ow]] += grow[ow * gs.w];
}

/* Window size that divides a cell: the whole window (padding included, clipped at the padded
 * edge) or only the in-image part. */
inline int avg_count(int h0, int w0, const Window *win, int include_pad)
{
    int hs = max(h0, 0), ws = max(w0, 0);
    int he = min(h0 + win->KH, win->H), we = min(w0 + win->KW, win->W);
    if (include_pad) {
        hs = h0;
        ws = w0;
        he = min(h0 + win->KH, win->H + win->PH);
        we = min(w0 + win->KW, win->W + win->PW);
    }
    return (he - hs) * (we - ws);
}

/* divisor > 0 (divisor_override) replaces the window size. */
__kernel void avgpool_fwd(const Window win, int include_pad, int divisor, const Strides4 xs,
                          __global const float *x, int x_off, __global float *y, const int y_off)
{
    y += y_off;
    const int OH = win.OH, OW = win.OW;
    const int total = win.N * win.C * OH * OW;
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int ow = i % OW, oh = (i / OW) % OH, nc = i / (OW * OH);
    const int c = nc % win.C, n = nc / win.C;
    __global const float *plane = x + x_off + n * xs.n + c * xs.c;
    const int h0 = oh * win.SH - win.PH, w0 = ow * win.SW - win.PW;
    float acc = 0.0f;
    for (int h = max(h0, 0); h < min(h0 + win.KH, win.H); ++h)
        for (int w = max(w0, 0); w < min(w0 + win.KW, win.W); ++w)
            acc += plane[h * xs.h + w * xs.w];
    y[i] = acc / (float)(divisor > 0 ? divisor : avg_count(h0, w0, &win, include_pad));
}

__kernel void avgpool_bwd(const Window win, int include_pad, int divisor, const Strides4 gs,
                          __global const float *g, int g_off, __global float *dx, const int dx_off)
{
    dx += dx_off;
    const int H = win.H, W = win.W, OH = win.OH, OW = win.OW;
    const int total = win.N * win.C * H * W;
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int w = i % W, h = (i / W) % H, nc = i / (W * H);
    const int c = nc % win.C, n = nc / win.C;
    __global const float *gplane = g + g_off + n * gs.n + c * gs.c;
    float acc = 0.0f;
    for (int kh = 0; kh < win.KH; ++kh) {
        const int th = h + win.PH - kh;
        if (th < 0 || th % win.SH || th / win.SH >= OH)
            continue;
        const int oh = th / win.SH;
        for (int kw = 0; kw < win.KW; ++kw) {
            const int tw = w + win.PW - kw;
            if (tw < 0 || tw % win.SW || tw / win.SW >= OW)
                continue;
            const int ow = tw / win.SW;
            const int cnt = divisor > 0 ? divisor
                                        : avg_count(oh * win.SH - win.PH, ow * win.SW - win.PW, &win, include_pad);
            acc += gplane[oh * gs.h + ow * gs.w] / (float)cnt;
        }
    }
    dx[i] = acc;
}

/* Adaptive pooling: output cell o of OUT over an axis of IN covers [floor(o*IN/OUT), ceil((o+1)*IN/OUT)),
 * PyTorch's windows (they overlap when IN % OUT != 0). Only N, C, H, W, OH, OW of the Window are used. */
inline int adaptive_start(int o, int in, int out) { return (o * in) / out; }
inline int adaptive_end(int o, int in, int out) { return ((o + 1) * in + out - 1) / out; }

__kernel void adaptive_avgpool_fwd(const Window win, const Strides4 xs, __global const float *x, int x_off,
                                   __global float *y, const int y_off)
{
    y += y_off;
    const int OH = win.OH, OW = win.OW;
    const int i = get_global_id(0);
    if (i >= win.N * win.C * OH * OW)
        return;
    const int ow = i % OW, oh = (i / OW) % OH, nc = i / (OW * OH);
    const int c = nc % win.C, n = nc / win.C;
    __global const float *plane = x + x_off + n * xs.n + c * xs.c;
    const int hs = adaptive_start(oh, win.H, OH), he = adaptive_end(oh, win.H, OH);
    const int ws = adaptive_start(ow, win.W, OW), we = adaptive_end(ow, win.W, OW);
    float acc = 0.0f;
    for (int h = hs; h < he; ++h)
        for (int w = ws; w < we; ++w)
            acc += plane[h * xs.h + w * xs.w];
    y[i] = acc / (float)((he - hs) * (we - ws));
}

/* dx[h, w] = sum of g / window size over the output cells whose window holds (h, w): those o in
 * [floor(h*OUT/IN), ceil((h+1)*OUT/IN)), a gather with no atomics. */
__kernel void adaptive_avgpool_bwd(const Window win, const Strides4 gs, __global const float *g, int g_off,
                                   __global float *dx, const int dx_off)
{
    dx += dx_off;
    const int H = win.H, W = win.W, OH = win.OH, OW = win.OW;
    const int i = get_global_id(0);
    if (i >= win.N * win.C * H * W)
        return;
    const int w = i % W, h = (i / W) % H, nc = i / (W * H);
    const int c = nc % win.C, n = nc / win.C;
    __global const float *gplane = g + g_off + n * gs.n + c * gs.c;
    float acc = 0.0f;
    for (int oh = adaptive_start(h, OH, H); oh < adaptive_end(h, OH, H); ++oh) {
        const int hs = adaptive_start(oh, H, OH), he = adaptive_end(oh, H, OH);
        if (h < hs || h >= he)
            continue;
        for (int ow = adaptive_start(w, OW, W); ow < adaptive_end(w, OW, W); ++ow) {
            const int ws = adaptive_start(ow, W, OW), we = adaptive_end(ow, W, OW);
            if (w >= ws && w < we)
                acc += gplane[oh * gs.h + ow * gs.w] / (float)((he - hs) * (we - ws));
        }
    }
    dx[i] = acc;
}

/* Adaptive max: idx = h*W + w of the first maximum (NaN wins), as maxpool_fwd. */
__kernel void adaptive_maxpool_fwd(const Window win, const Strides4 xs, __global const float *x, int x_off,
                                   __global float *y, const int y_off, __global int *idx, const int idx_off)
{
    y += y_off; idx += idx_off;
    const int OH = win.OH, OW = win.OW, W = win.W;
    const int i = get_global_id(0);
    if (i >= win.N * win.C * OH * OW)
        return;
    const int ow = i % OW, oh = (i / OW) % OH, nc = i / (OW * OH);
    const int c = nc % win.C, n = nc / win.C;
    __global const float *plane = x + x_off + n * xs.n + c * xs.c;
    float best = -INFINITY;
    int arg = -1;
    for (int h = adaptive_start(oh, win.H, OH); h < adaptive_end(oh, win.H, OH); ++h)
        for (int w = adaptive_start(ow, W, OW); w < adaptive_end(ow, W, OW); ++w) {
            const float v = plane[h * xs.h + w * xs.w];
            max_scan(v, h * W + w, &best, &arg);
        }
    y[i] = best;
    idx[i] = arg;
}

/* Its gradient: a gather over the output cells whose window holds (h, w) and whose arg-max is it. */
__kernel void adaptive_maxpool_bwd(const Window win, const Strides4 gs, __global const float *g, int g_off,
                                   __global const int *idx, const int idx_off, __global float *dx, const int dx_off)
{
    idx += idx_off; dx += dx_off;
    const int H = win.H, W = win.W, OH = win.OH, OW = win.OW;
    const int i = get_global_id(0);
    if (i >= win.N * win.C * H * W)
        return;
    const int w = i % W, h = (i / W) % H, nc = i / (W * H);
    const int c = nc % win.C, n = nc / win.C;
    const int me = h * W + w;
    __global const float *gplane = g + g_off + n * gs.n + c * gs.c;
    __global const int *iplane = idx + nc * OH * OW;
    float acc = 0.0f;
    for (int oh = adaptive_start(h, OH, H); oh < adaptive_end(h, OH, H); ++oh)
        for (int ow = adaptive_start(w, OW, W); ow < adaptive_end(w, OW, W); ++ow)
            if (iplane[oh * OW + ow] == me)
                acc += gplane[oh * gs.h + ow * gs.w];
    dx[i] = acc;
}

/* max_unpool2d: y (N, C, OH, OW), zeroed beforehand, gets x[n, c, h, w] at plane index idx (an
 * index outside the plane is reported, as ERR_INDEXING, and skipped). One work-item per input cell;
 * idx is contiguous int64. */
__kernel void maxunpool_fwd(const Window win, const Strides4 xs, __global const float *x, int x_off,
                            __global const long *idx, const int idx_off, __global float *y, const int y_off,
                            __global long *err, const int err_off)
{
    idx += idx_off; y += y_off; err += err_off;
    const int H = win.H, W = win.W, P = win.OH * win.OW;
    const int i = get_global_id(0);
    if (i >= win.N * win.C * H * W)
        return;
    const int w = i % W, h = (i / W) % H, nc = i / (W * H);
    const int c = nc % win.C, n = nc / win.C;
    const long j = idx[i];
    if (j >= 0 && j < P)
        y[(long)nc * P + j] = x[x_off + n * xs.n + c * xs.c + h * xs.h + w * xs.w];
    else
        report_bad_index(err, ERR_INDEXING, j, P);
}

/* Its gradient: dx[n, c, h, w] = g[n, c] at plane index idx (0 for a skipped index). */
__kernel void maxunpool_bwd(const Window win, const Strides4 gs, __global const float *g, int g_off,
                            __global const long *idx, const int idx_off, __global float *dx, const int dx_off)
{
    idx += idx_off; dx += dx_off;
    const int H = win.H, W = win.W, OW = win.OW, P = win.OH * win.OW;
    const int i = get_global_id(0);
    if (i >= win.N * win.C * H * W)
        return;
    const int nc = i / (W * H);
    const int c = nc % win.C, n = nc / win.C;
    const long j = idx[i];
    dx[i] = (j >= 0 && j < P) ? g[g_off + n * gs.n + c * gs.c + (int)(j / OW) * gs.h + (int)(j % OW) * gs.w] : 0.0f;
}
