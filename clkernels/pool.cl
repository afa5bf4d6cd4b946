/* 2-D max and average pooling, forward and backward. Geometry travels as int4 vectors (runtime,
 * so one build serves every layer):
 *   size  = (N, C, H, W)        input sizes
 *   osize = (OH, OW, KH, KW)    output and window sizes
 *   conv  = (SH, SW, PH, PW)    stride and padding
 *   dil   = (DH, DW, 0, 0)      dilation (max pooling; 1 for average)
 *   xs / gs                     element strides (sN, sC, sH, sW) of a strided input or gradient.
 * Outputs are contiguous (N, C, OH, OW) / (N, C, H, W). */
#include "common.h"

/* y[n,c,oh,ow] = max over the window; idx = h*W + w of the winner (first one on ties).
 * One work-item per output row (n, c, oh): the index math happens once per OW cells. */
__kernel void maxpool_fwd(int4 size, int4 osize, int4 conv, int4 dil, int4 xs,
                          __global const float *x, int x_off, __global float *y, const int y_off, __global int *idx, const int idx_off)
{
    y += y_off; idx += idx_off;
    const int OH = osize.s0, OW = osize.s1, H = size.s2, W = size.s3;
    const int rows = size.s0 * size.s1 * OH;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int oh = r % OH, nc = r / OH;
    const int c = nc % size.s1, n = nc / size.s1;
    __global const float *plane = x + x_off + n * xs.s0 + c * xs.s1;
    const int h0 = oh * conv.s0 - conv.s2;
    for (int ow = 0; ow < OW; ++ow) {
        const int w0 = ow * conv.s1 - conv.s3;
        float best = -INFINITY;
        int arg = -1;
        for (int kh = 0; kh < osize.s2; ++kh) {
            const int h = h0 + kh * dil.s0;
            if (h < 0 || h >= H)
                continue;
            for (int kw = 0; kw < osize.s3; ++kw) {
                const int w = w0 + kw * dil.s1;
                if (w < 0 || w >= W)
                    continue;
                const float v = plane[h * xs.s2 + w * xs.s3];
                if (arg < 0 || v > best || (isnan(v) && !isnan(best))) {  /* NaN wins, as in PyTorch */
                    best = v;
                    arg = h * W + w;
                }
            }
        }
        y[(long)r * OW + ow] = best;
        idx[(long)r * OW + ow] = arg;
    }
}

/* The ConvNet's case, 2x2 windows with stride 2 and no padding, as straight-line code over a
 * (OW, OH, N*C) grid: no per-cell integer division (slow, and not vectorised on CPUs), and PoCL
 * vectorises across neighbouring cells. Scan order and tie/NaN rules are those of maxpool_fwd. */
__kernel void maxpool2x2_fwd(int4 size, int4 osize, int4 xs,
                             __global const float *x, int x_off, __global float *y, const int y_off, __global int *idx, const int idx_off)
{
    y += y_off; idx += idx_off;
    const int ow = get_global_id(0), oh = get_global_id(1), nc = get_global_id(2);
    const int OH = osize.s0, OW = osize.s1, W = size.s3;
    if (ow >= OW || oh >= OH)
        return;
    const int c = nc % size.s1, n = nc / size.s1;  /* uniform over the work-group */
    const int h = 2 * oh, w = 2 * ow;
    __global const float *p = x + x_off + n * xs.s0 + c * xs.s1 + h * xs.s2 + w * xs.s3;
    const float v[4] = {p[0], p[xs.s3], p[xs.s2], p[xs.s2 + xs.s3]};
    float best = v[0];
    int k = 0;
    for (int j = 1; j < 4; ++j)  /* v != v is isnan(v) without a call (PoCL does not inline it) */
        if (v[j] > best || (v[j] != v[j] && best == best)) {
            best = v[j];
            k = j;
        }
    const int i = (nc * OH + oh) * OW + ow;
    y[i] = best;
    idx[i] = (h + (k >> 1)) * W + w + (k & 1);
}

/* Its gradient over the same grid: each output cell writes its four dx cells, g at the arg-max
 * and 0 elsewhere. Cells no window covers (an odd last row or column) must be zeroed beforehand. */
__kernel void maxpool2x2_bwd(int4 size, int4 osize, int4 gs,
                             __global const float *g, int g_off, __global const int *idx, const int idx_off, __global float *dx, const int dx_off)
{
    idx += idx_off; dx += dx_off;
    const int ow = get_global_id(0), oh = get_global_id(1), nc = get_global_id(2);
    const int OH = osize.s0, OW = osize.s1, H = size.s2, W = size.s3;
    if (ow >= OW || oh >= OH)
        return;
    const int c = nc % size.s1, n = nc / size.s1;
    const float gv = g[g_off + n * gs.s0 + c * gs.s1 + oh * gs.s2 + ow * gs.s3];
    const int arg = idx[(nc * OH + oh) * OW + ow];
    const int top = 2 * oh * W + 2 * ow;
    __global float *d = dx + (long)nc * H * W + top;
    d[0] = arg == top ? gv : 0.0f;
    d[1] = arg == top + 1 ? gv : 0.0f;
    d[W] = arg == top + W ? gv : 0.0f;
    d[W + 1] = arg == top + W + 1 ? gv : 0.0f;
}

/* dx[n,c,h,w] = sum of g over the output cells whose arg-max is (h, w): a gather over the
 * windows that can contain (h, w), so no atomics. */
__kernel void maxpool_bwd(int4 size, int4 osize, int4 conv, int4 dil, int4 gs,
                          __global const float *g, int g_off, __global const int *idx, const int idx_off, __global float *dx, const int dx_off)
{
    idx += idx_off; dx += dx_off;
    const int H = size.s2, W = size.s3, OH = osize.s0, OW = osize.s1;
    const int total = size.s0 * size.s1 * H * W;
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int w = i % W, h = (i / W) % H, nc = i / (W * H);
    const int c = nc % size.s1, n = nc / size.s1;
    const int me = h * W + w;
    __global const float *gplane = g + g_off + n * gs.s0 + c * gs.s1;
    __global const int *iplane = idx + nc * OH * OW;
    float acc = 0.0f;
    for (int kh = 0; kh < osize.s2; ++kh) {
        const int th = h + conv.s2 - kh * dil.s0;
        if (th < 0 || th % conv.s0 || th / conv.s0 >= OH)
            continue;
        const int oh = th / conv.s0;
        for (int kw = 0; kw < osize.s3; ++kw) {
            const int tw = w + conv.s3 - kw * dil.s1;
            if (tw < 0 || tw % conv.s1 || tw / conv.s1 >= OW)
                continue;
            const int ow = tw / conv.s1;
            if (iplane[oh * OW + ow] == me)
                acc += gplane[oh * gs.s2 + ow * gs.s3];
        }
    }
    dx[i] = acc;
}

/* The same gradient when windows do not overlap (stride >= dilated window): each output cell
 * writes its whole window, g at the arg-max and 0 elsewhere, with no index search. Cells no
 * window covers must be zeroed beforehand. dx is contiguous (N, C, H, W). */
__kernel void maxpool_bwd_disjoint(int4 size, int4 osize, int4 conv, int4 dil, int4 gs,
                                   __global const float *g, int g_off, __global const int *idx, const int idx_off,
                                   __global float *dx, const int dx_off)
{
    idx += idx_off; dx += dx_off;
    const int OH = osize.s0, OW = osize.s1, H = size.s2, W = size.s3;
    const int total = size.s0 * size.s1 * OH * OW;
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int ow = i % OW, oh = (i / OW) % OH, nc = i / (OW * OH);
    const int c = nc % size.s1, n = nc / size.s1;
    const float gv = g[g_off + n * gs.s0 + c * gs.s1 + oh * gs.s2 + ow * gs.s3];
    const int arg = idx[i];
    __global float *plane = dx + (long)nc * H * W;
    const int h0 = oh * conv.s0 - conv.s2, w0 = ow * conv.s1 - conv.s3;
    for (int kh = 0; kh < osize.s2; ++kh) {
        const int h = h0 + kh * dil.s0;
        if (h < 0 || h >= H)
            continue;
        for (int kw = 0; kw < osize.s3; ++kw) {
            const int w = w0 + kw * dil.s1;
            if (w >= 0 && w < W)
                plane[h * W + w] = (h * W + w == arg) ? gv : 0.0f;
        }
    }
}

/* Window size that divides a cell: the whole window (padding included, clipped at the padded
 * edge) or only the in-image part. */
inline int avg_count(int h0, int w0, int4 size, int4 osize, int4 conv, int include_pad)
{
    int hs = max(h0, 0), ws = max(w0, 0);
    int he = min(h0 + osize.s2, size.s2), we = min(w0 + osize.s3, size.s3);
    if (include_pad) {
        hs = h0;
        ws = w0;
        he = min(h0 + osize.s2, size.s2 + conv.s2);
        we = min(w0 + osize.s3, size.s3 + conv.s3);
    }
    return (he - hs) * (we - ws);
}

__kernel void avgpool_fwd(int4 size, int4 osize, int4 conv, int include_pad, int4 xs,
                          __global const float *x, int x_off, __global float *y, const int y_off)
{
    y += y_off;
    const int OH = osize.s0, OW = osize.s1;
    const int total = size.s0 * size.s1 * OH * OW;
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int ow = i % OW, oh = (i / OW) % OH, nc = i / (OW * OH);
    const int c = nc % size.s1, n = nc / size.s1;
    __global const float *plane = x + x_off + n * xs.s0 + c * xs.s1;
    const int h0 = oh * conv.s0 - conv.s2, w0 = ow * conv.s1 - conv.s3;
    float acc = 0.0f;
    for (int h = max(h0, 0); h < min(h0 + osize.s2, size.s2); ++h)
        for (int w = max(w0, 0); w < min(w0 + osize.s3, size.s3); ++w)
            acc += plane[h * xs.s2 + w * xs.s3];
    y[i] = acc / (float)avg_count(h0, w0, size, osize, conv, include_pad);
}

__kernel void avgpool_bwd(int4 size, int4 osize, int4 conv, int include_pad, int4 gs,
                          __global const float *g, int g_off, __global float *dx, const int dx_off)
{
    dx += dx_off;
    const int H = size.s2, W = size.s3, OH = osize.s0, OW = osize.s1;
    const int total = size.s0 * size.s1 * H * W;
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int w = i % W, h = (i / W) % H, nc = i / (W * H);
    const int c = nc % size.s1, n = nc / size.s1;
    __global const float *gplane = g + g_off + n * gs.s0 + c * gs.s1;
    float acc = 0.0f;
    for (int kh = 0; kh < osize.s2; ++kh) {
        const int th = h + conv.s2 - kh;
        if (th < 0 || th % conv.s0 || th / conv.s0 >= OH)
            continue;
        const int oh = th / conv.s0;
        for (int kw = 0; kw < osize.s3; ++kw) {
            const int tw = w + conv.s3 - kw;
            if (tw < 0 || tw % conv.s1 || tw / conv.s1 >= OW)
                continue;
            const int ow = tw / conv.s1;
            const int cnt = avg_count(oh * conv.s0 - conv.s2, ow * conv.s1 - conv.s3, size, osize, conv, include_pad);
            acc += gplane[oh * gs.s2 + ow * gs.s3] / (float)cnt;
        }
    }
    dx[i] = acc;
}
