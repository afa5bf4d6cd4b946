/* Convolution = im2col + GEMM. The column tensor is (N, K, P): for image n, row k = (c, kh, kw)
 * matches a PyTorch weight (OC, C, KH, KW) seen as (OC, K) and column p = (oh, ow), so one batched
 * GEMM W (OC, K) @ col[n] (K, P) writes the output straight into (N, OC, OH, OW).
 * Geometry is passed as int4 vectors (runtime, not -D, so one build serves every layer):
 *   size  = (N, C, H, W)           input sizes
 *   osize = (OH, OW, KH, KW)       output and kernel sizes
 *   conv  = (SH, SW, PH, PW)       stride and padding
 *   dil   = (DH, DW, 0, 0)         dilation
 *   xs    = (sN, sC, sH, sW)       input element strides (any layout), plus x_off. */
#include "common.h"

/* col[n, k, oh, :] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW] for every ow, 0 outside the
 * image: one work-item per output row, so the index math happens once per OW elements. */
__kernel void im2col_fwd(int4 size, int4 osize, int4 conv, int4 dil, int4 xs,
                         __global const float *x, int x_off, __global float *col, const int col_off)
{
    col += col_off;
    const int OH = osize.s0, OW = osize.s1, KH = osize.s2, KW = osize.s3;
    const int K = size.s1 * KH * KW;
    const int rows = size.s0 * K * OH;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int oh = r % OH, nk = r / OH;
    const int k = nk % K, n = nk / K;
    const int c = k / (KH * KW), kh = (k / KW) % KH, kw = k % KW;
    const int h = oh * conv.s0 - conv.s2 + kh * dil.s0;
    __global float *out = col + (long)r * OW;
    if (h < 0 || h >= size.s2) {
        for (int ow = 0; ow < OW; ++ow)
            out[ow] = 0.0f;
        return;
    }
    __global const float *row = x + x_off + n * xs.s0 + c * xs.s1 + h * xs.s2;
    const int w0 = kw * dil.s1 - conv.s3;
    for (int ow = 0; ow < OW; ++ow) {
        const int w = w0 + ow * conv.s1;
        out[ow] = (w >= 0 && w < size.s3) ? row[w * xs.s3] : 0.0f;
    }
}

/* dx[n, c, h, :] = sum of dcol[n, k, oh, ow] over every tap (kh, kw) that read (h, w): a gather,
 * so no atomics; one work-item per input row. dx is contiguous (N, C, H, W). */
__kernel void im2col_bwd(int4 size, int4 osize, int4 conv, int4 dil,
                         __global const float *dcol, const int dcol_off, __global float *dx, const int dx_off)
{
    dcol += dcol_off; dx += dx_off;
    const int C = size.s1, H = size.s2, W = size.s3;
    const int OH = osize.s0, OW = osize.s1, KH = osize.s2, KW = osize.s3;
    const int rows = size.s0 * C * H;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    const int h = r % H, c = (r / H) % C, n = r / (H * C);
    __global float *out = dx + (long)r * W;
    for (int w = 0; w < W; ++w)
        out[w] = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
        const int th = h + conv.s2 - kh * dil.s0;  /* = oh * SH when this tap reads row h */
        if (th < 0 || th % conv.s0 || th / conv.s0 >= OH)
            continue;
        const int oh = th / conv.s0;
        for (int kw = 0; kw < KW; ++kw) {
            const int k = (c * KH + kh) * KW + kw;
            __global const float *src = dcol + (((long)n * C * KH * KW + k) * OH + oh) * OW;
            const int w0 = kw * dil.s1 - conv.s3;  /* w = w0 + ow * SW */
            for (int ow = 0; ow < OW; ++ow) {
                const int w = w0 + ow * conv.s1;
                if (w >= 0 && w < W)
                    out[w] += src[ow];
            }
        }
    }
}
