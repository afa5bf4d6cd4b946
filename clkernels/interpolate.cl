/* Resampling (F.interpolate) of (N*C, H, W) planes, separable: each output cell reads up to 4 taps
 * per axis with weights. -D MODE picks the rule (as PyTorch's upsample kernels):
 *   MODE_NEAREST        src = min(floor(o * scale), in - 1)
 *   MODE_NEAREST_EXACT  src = min(floor((o + 0.5) * scale), in - 1)
 *   MODE_LINEAR         two taps at src = o * scale (align_corners) or max((o + 0.5) * scale - 0.5, 0)
 *   MODE_CUBIC          four taps around the unclamped src, Keys' cubic with A = -0.75, clamped indices
 * scale per axis comes from the host: (in - 1) / (out - 1) with align_corners, else 1 / scale_factor
 * or in / out. 1-D resampling is the 2-D case with H = OH = 1 and scale_h = 1.
 * Forward is a gather; backward the adjoint, a scatter-add of g * weight (float atomics by CAS). */
#include "common.h"

#define MODE_NEAREST 0
#define MODE_NEAREST_EXACT 1
#define MODE_LINEAR 2
#define MODE_CUBIC 3
#ifndef MODE
#define MODE MODE_LINEAR
#endif

inline float cubic_near(float t) { return ((1.25f * t - 2.25f) * t) * t + 1.0f; }          /* |t| <= 1 */
inline float cubic_far(float t) { return ((-0.75f * t + 3.75f) * t - 6.0f) * t + 3.0f; }  /* 1 < |t| < 2 */

/* The taps of output o along an axis of size n: indices into idx, weights into w; returns their count. */
inline int taps(int o, int n, float scale, int align, int *idx, float *w)
{
#if MODE == MODE_NEAREST || MODE == MODE_NEAREST_EXACT
#if MODE == MODE_NEAREST
    int s = (int)floor((float)o * scale);
#else
    int s = (int)floor(((float)o + 0.5f) * scale);
#endif
    idx[0] = min(s, n - 1);
    w[0] = 1.0f;
    return 1;
#elif MODE == MODE_LINEAR
    float src = align ? (float)o * scale : max(((float)o + 0.5f) * scale - 0.5f, 0.0f);
    int i0 = min((int)src, n - 1);
    float l = min(src - (float)i0, 1.0f);
    idx[0] = i0;
    idx[1] = min(i0 + 1, n - 1);
    w[0] = 1.0f - l;
    w[1] = l;
    return 2;
#else
    float src = align ? (float)o * scale : ((float)o + 0.5f) * scale - 0.5f;
    float f = floor(src);
    float t = src - f;
    int i = (int)f;
    w[0] = cubic_far(t + 1.0f);
    w[1] = cubic_near(t);
    w[2] = cubic_near(1.0f - t);
    w[3] = cubic_far(2.0f - t);
    for (int k = 0; k < 4; ++k)
        idx[k] = clamp(i - 1 + k, 0, n - 1);
    return 4;
#endif
}

/* y[p, oh, ow] = sum over taps of wh * ww * x[p, h, w]; x (P, H, W) with strides (xs.c unused: the plane
 * p = n * C + c is split with C). */
__kernel void interp_fwd(const int P, const int C, const int H, const int W, const int OH, const int OW,
                         const float scale_h, const float scale_w, const int align, const Strides4 xs,
                         __global const float *x, int x_off, __global float *y, const int y_off)
{
    y += y_off;
    const int i = get_global_id(0);
    if (i >= P * OH * OW)
        return;
    const int ow = i % OW, oh = (i / OW) % OH, p = i / (OW * OH);
    __global const float *plane = x + x_off + (p / C) * xs.n + (p % C) * xs.c;
    int hi[4], wi[4];
    float hw[4], ww[4];
    const int nh = taps(oh, H, scale_h, align, hi, hw), nw = taps(ow, W, scale_w, align, wi, ww);
    float acc = 0.0f;
    for (int a = 0; a < nh; ++a) {
        float row = 0.0f;
        for (int b = 0; b < nw; ++b)
            row += ww[b] * plane[hi[a] * xs.h + wi[b] * xs.w];
        acc += hw[a] * row;
    }
    y[i] = acc;
}


/* dx (P, H, W) contiguous, zeroed beforehand, += wh * ww * g[p, oh, ow] at every tap. */
__kernel void interp_bwd(const int P, const int C, const int H, const int W, const int OH, const int OW,
                         const float scale_h, const float scale_w, const int align, const Strides4 gs,
                         __global const float *g, int g_off, __global float *dx, const int dx_off)
{
    dx += dx_off;
    const int i = get_global_id(0);
    if (i >= P * OH * OW)
        return;
    const int ow = i % OW, oh = (i / OW) % OH, p = i / (OW * OH);
    const float gv = g[g_off + (p / C) * gs.n + (p % C) * gs.c + oh * gs.h + ow * gs.w];
    int hi[4], wi[4];
    float hw[4], ww[4];
    const int nh = taps(oh, H, scale_h, align, hi, hw), nw = taps(ow, W, scale_w, align, wi, ww);
    __global float *plane = dx + (long)p * H * W;
    for (int a = 0; a < nh; ++a)
        for (int b = 0; b < nw; ++b)
            atomic_add_float(plane + hi[a] * W + wi[b], gv * hw[a] * ww[b]);
}
