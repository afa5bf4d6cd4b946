/* Convolution = im2col + GEMM. The column tensor is (N, K, P): for image n, row k = (c, kh, kw)
 * matches a PyTorch weight (OC, C, KH, KW) seen as (OC, K) and column p = (oh, ow), so one batched
 * GEMM W (OC, K) @ col[n] (K, P) writes the output straight into (N, OC, OH, OW).
 * Geometry is passed as a Window (common.h; runtime, not -D, so one build serves every layer), and
 * the input's element strides (any layout) as a Strides4. */
#include "common.h"

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
    const int c = k / (KH * KW), kh = (k / KW) % KH, kw = k % KW;
    const int h = oh * win.SH - win.PH + kh * win.DH;
    __global float *out = col + (long)r * OW;
    if (h < 0 || h >= win.H) {
        for (int ow = 0; ow < OW; ++ow)
            out[ow] = 0.0f;
        return;
    }
    __global const float *row = x + x_off + n * xs.n + c * xs.c + h * xs.h;
    const int w0 = kw * win.DW - win.PW;
    for (int ow = 0; ow < OW; ++ow) {
        const int w = w0 + ow * win.SW;
        out[ow] = (w >= 0 && w < win.W) ? row[w * xs.w] : 0.0f;
    }
}

/* dx[n, c, h, :] = sum of dcol[n, k, oh, ow] over every tap (kh, kw) that read (h, w): a gather,
 * so no atomics; one work-item per input row. dx is contiguous (N, C, H, W). */
__kernel void im2col_bwd(const Window win, __global const float *dcol, const int dcol_off,
                         __global float *dx, const int dx_off)
{
    dcol += dcol_off; dx += dx_off;
    const int C = win.C, H = win.H, W = win.W;
    const int OH = win.OH, OW = win.OW, KH = win.KH, KW = win.KW;
    const int rows = win.N * C * H;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int h = r % H, c = (r / H) % C, n = r / (H * C);
    __global float *out = dx + (long)r * W;
    for (int w = 0; w < W; ++w)
        out[w] = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
        const int th = h + win.PH - kh * win.DH;  /* = oh * SH when this tap reads row h */
        if (th < 0 || th % win.SH || th / win.SH >= OH)
            continue;
        const int oh = th / win.SH;
        for (int kw = 0; kw < KW; ++kw) {
            const int k = (c * KH + kh) * KW + kw;
            __global const float *src = dcol + (((long)n * C * KH * KW + k) * OH + oh) * OW;
            const int w0 = kw * win.DW - win.PW;  /* w = w0 + ow * SW */
            for (int ow = 0; ow < OW; ++ow) {
                const int w = w0 + ow * win.SW;
                if (w >= 0 && w < W)
                    out[w] += src[ow];
            }
        }
    }
}
