/* Squeeze-excitation's pass outside autograd (vision/ops.py SqueezeExcitation, eval): the plane
 * means, the two 1x1 convolutions on (N, C, 1, 1) as small dense layers with their activations
 * fused (-D ACT, act.h), and the per-channel scale. Through the generic ops the block took ten
 * launches, four of them GEMM packs for 16-row products. Everything contiguous. */
#include "common.h"
#include "act.h"

/* m[p] = the mean of plane p (x[p * S .. p * S + S)); one work-item per plane */
__kernel void se_mean(const int P, const int S, __global const float *x, const int x_off, __global float *m,
                      const int m_off)
{
    const int p = get_global_id(0);
    if (p >= P)
        return;
    x += x_off + (long)p * S;
    float8 acc = 0.0f;
    int s = 0;
    for (; s + 8 <= S; s += 8)
        acc += LD8(x + s);
    float t = sum8(acc);
    for (; s < S; ++s)
        t += x[s];
    m[m_off + p] = t / S;
}

/* y[n, o] = ACT(sum_k w[o, k] x[n, k] + b[o]); one work-item per (n, o), w (O, K), x (N, K) */
__kernel void se_dense(const int N, const int O, const int K, const int has_b, __global const float *x,
                       const int x_off, __global const float *w, const int w_off, __global const float *b,
                       const int b_off, __global float *y, const int y_off)
{
    const int i = get_global_id(0);
    if (i >= N * O)
        return;
    const int o = i % O, n = i / O;
    __global const float *xr = x + x_off + (long)n * K, *wr = w + w_off + (long)o * K;
    float8 acc = 0.0f;
    int k = 0;
    for (; k + 8 <= K; k += 8)
        acc += LD8(wr + k) * LD8(xr + k);
    float t = sum8(acc);
    for (; k < K; ++k)
        t += wr[k] * xr[k];
    t += has_b ? b[b_off + o] : 0.0f;
    y[y_off + i] = ACT_(t, 0.0f);
}

/* y[p, :] = x[p, :] * s[p] over planes of S; one work-item per plane */
__kernel void se_scale(const int P, const int S, __global const float *x, const int x_off,
                       __global const float *s, const int s_off, __global float *y, const int y_off)
{
    const int p = get_global_id(0);
    if (p >= P)
        return;
    x += x_off + (long)p * S;
    y += y_off + (long)p * S;
    const float k = s[s_off + p];
    int j = 0;
    for (; j + 8 <= S; j += 8)
        ST8(y + j, LD8(x + j) * k);
    for (; j < S; ++j)
        y[j] = x[j] * k;
}
