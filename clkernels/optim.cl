/* Fused optimizer updates, one launch per parameter, following torch.optim's formulas.
 * Scalars that depend on the step count (bias corrections) are computed on the host. */
#include "common.h"

/* SGD: d = g + wd * p; buf = first ? d : momentum * buf + (1 - dampening) * d;
 * d = nesterov ? d + momentum * buf : buf (when momentum != 0); p -= lr * d. */
__kernel void sgd_step(int n, float lr, float momentum, float dampening, float weight_decay, int nesterov,
                       int first, __global const float *g, int g_off, __global float *p, int p_off,
                       __global float *buf, int buf_off)
{
    const int i = get_global_id(0);
    if (PAST_END(i, n))
        return;
    g += g_off; p += p_off; buf += buf_off;
    float d = g[i];
    if (weight_decay != 0.0f)
        d += weight_decay * p[i];
    if (momentum != 0.0f) {
        const float b = first ? d : momentum * buf[i] + (1.0f - dampening) * d;
        buf[i] = b;
        d = nesterov ? d + momentum * b : b;
    }
    p[i] -= lr * d;
}

/* Adam / AdamW (decoupled when decoupled != 0):
 *   AdamW: p *= 1 - lr * wd;  Adam: g += wd * p
 *   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g;  (amsgrad: vmax = max(vmax, v))
 *   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps),  step_size = lr / (1 - b1^t). */
__kernel void adam_step(int n, float lr, float beta1, float beta2, float eps, float weight_decay,
                        int decoupled, int amsgrad, float step_size, float bc2_sqrt,
                        __global const float *g, int g_off, __global float *p, int p_off,
                        __global float *m, int m_off, __global float *v, int v_off,
                        __global float *vmax, int vmax_off)
{
    const int i = get_global_id(0);
    if (PAST_END(i, n))
        return;
    g += g_off; p += p_off; m += m_off; v += v_off; vmax += vmax_off;
    float gi = g[i], pi = p[i];
    if (weight_decay != 0.0f) {
        if (decoupled)
            pi *= 1.0f - lr * weight_decay;
        else
            gi += weight_decay * pi;
    }
    const float mi = m[i] + (gi - m[i]) * (1.0f - beta1);  /* torch's lerp */
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float vd = vi;
    if (amsgrad) {
        vd = fmax(vmax[i], vi);
        vmax[i] = vd;
    }
    p[i] = pi - step_size * mi / (sqrt(vd) / bc2_sqrt + eps);
}

/* RMSprop: g += wd * p;  sq = alpha * sq + (1 - alpha) * g * g;
 *   centered: ga = lerp(ga, g, 1 - alpha), avg = sqrt(sq - ga * ga) + eps;  else avg = sqrt(sq) + eps
 *   momentum > 0: buf = momentum * buf + g / avg, p -= lr * buf;  else p -= lr * g / avg.
 * grad_avg and buf are unused (any buffer) when not centered / momentum == 0. */
__kernel void rmsprop_step(int n, float lr, float alpha, float eps, float weight_decay, float momentum,
                           int centered, __global const float *g, int g_off, __global float *p, int p_off,
                           __global float *sq, int sq_off, __global float *grad_avg, int grad_avg_off,
                           __global float *buf, int buf_off)
{
    const int i = get_global_id(0);
    if (PAST_END(i, n))
        return;
    g += g_off; p += p_off; sq += sq_off; grad_avg += grad_avg_off; buf += buf_off;
    float gi = g[i];
    if (weight_decay != 0.0f)
        gi += weight_decay * p[i];
    const float s = alpha * sq[i] + (1.0f - alpha) * gi * gi;
    sq[i] = s;
    float avg;
    if (centered) {
        const float ga = grad_avg[i] + (gi - grad_avg[i]) * (1.0f - alpha);
        grad_avg[i] = ga;
        avg = sqrt(s - ga * ga) + eps;
    } else {
        avg = sqrt(s) + eps;
    }
    if (momentum > 0.0f) {
        const float b = momentum * buf[i] + gi / avg;
        buf[i] = b;
        p[i] -= lr * b;
    } else {
        p[i] -= lr * gi / avg;
    }
}

/* Adagrad: g += wd * p;  sum += g * g;  p -= clr * g / (sqrt(sum) + eps),
 * clr = lr / (1 + (t - 1) * lr_decay) from the host. */
__kernel void adagrad_step(int n, float clr, float eps, float weight_decay, __global const float *g, int g_off,
                           __global float *p, int p_off, __global float *sum, int sum_off)
{
    const int i = get_global_id(0);
    if (PAST_END(i, n))
        return;
    g += g_off; p += p_off; sum += sum_off;
    float gi = g[i];
    if (weight_decay != 0.0f)
        gi += weight_decay * p[i];
    const float s = sum[i] + gi * gi;
    sum[i] = s;
    p[i] -= clr * gi / (sqrt(s) + eps);
}
