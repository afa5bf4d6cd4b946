/* Fused optimizer updates following torch.optim's formulas: one launch per parameter, or (SGD and
 * Adam) one per eight parameters.
 * Scalars that depend on the step count (bias corrections) are computed on the host. */
#include "common.h"

/* SGD: d = g + wd * p; buf = first ? d : momentum * buf + (1 - dampening) * d;
 * d = nesterov ? d + momentum * buf : buf (when momentum != 0); p -= lr * d. The same statements
 * on a float (the tail) or a float8 (eight elements a work-item: PoCL left the scalar kernel's
 * uniform branches unvectorised, at half the memory's bandwidth). */
#define SGD_UPDATE(d, pv, bv)                                                  \
    do {                                                                       \
        if (weight_decay != 0.0f)                                              \
            d += weight_decay * pv;                                            \
        if (momentum != 0.0f) {                                                \
            if (first)                                                         \
                bv = d;                                                        \
            else                                                               \
                bv = momentum * bv + (1.0f - dampening) * d;                   \
            if (nesterov)                                                      \
                d += momentum * bv;                                            \
            else                                                               \
                d = bv;                                                        \
        }                                                                      \
        pv -= lr * d;                                                          \
    } while (0)

/* Elements i .. i+7 of one parameter (fewer at its end). */
inline void sgd_chunk(int i, int n, float lr, float momentum, float dampening, float weight_decay, int nesterov,
                      int first, __global const float *g, __global float *p, __global float *buf)
{
    g += i; p += i; buf += i;
    if (i + 8 <= n) {
        float8 d = LD8(g), pv = LD8(p), bv = momentum != 0.0f ? LD8(buf) : (float8)0.0f;
        SGD_UPDATE(d, pv, bv);
        ST8(p, pv);
        if (momentum != 0.0f)
            ST8(buf, bv);
        return;
    }
    for (int j = 0; j < n - i; ++j) {
        float d = g[j], pv = p[j], bv = momentum != 0.0f ? buf[j] : 0.0f;
        SGD_UPDATE(d, pv, bv);
        p[j] = pv;
        if (momentum != 0.0f)
            buf[j] = bv;
    }
}

/* Global size ceil(n / 8). */
__kernel void sgd_step(int n, float lr, float momentum, float dampening, float weight_decay, int nesterov,
                       int first, __global const float *g, int g_off, __global float *p, int p_off,
                       __global float *buf, int buf_off)
{
    const int i = get_global_id(0) * 8;
    if (i < n)
        sgd_chunk(i, n, lr, momentum, dampening, weight_decay, nesterov, first, g + g_off, p + p_off, buf + buf_off);
}

/* Adam / AdamW (decoupled when decoupled != 0):
 *   AdamW: p *= 1 - lr * wd;  Adam: g += wd * p
 *   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g;  (amsgrad: vmax = max(vmax, v))
 *   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps),  step_size = lr / (1 - b1^t). */
#define ADAM_UPDATE(gv, pv, mv, vv, vmaxv)                                     \
    do {                                                                       \
        if (weight_decay != 0.0f) {                                            \
            if (decoupled)                                                     \
                pv *= 1.0f - lr * weight_decay;                                \
            else                                                               \
                gv += weight_decay * pv;                                       \
        }                                                                      \
        mv += (gv - mv) * (1.0f - beta1); /* torch's lerp */                   \
        vv = beta2 * vv + (1.0f - beta2) * gv * gv;                            \
        if (amsgrad)                                                           \
            vmaxv = fmax(vmaxv, vv);                                           \
        else                                                                   \
            vmaxv = vv;                                                        \
        pv -= step_size * mv / (sqrt(vmaxv) / bc2_sqrt + eps);                 \
    } while (0)

inline void adam_chunk(int i, int n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       int decoupled, int amsgrad, float step_size, float bc2_sqrt, __global const float *g,
                       __global float *p, __global float *m, __global float *v, __global float *vmax)
{
    g += i; p += i; m += i; v += i; vmax += i;
    if (i + 8 <= n) {
        float8 gv = LD8(g), pv = LD8(p), mv = LD8(m), vv = LD8(v), vmaxv = amsgrad ? LD8(vmax) : (float8)0.0f;
        ADAM_UPDATE(gv, pv, mv, vv, vmaxv);
        ST8(m, mv);
        ST8(v, vv);
        if (amsgrad)
            ST8(vmax, vmaxv);
        ST8(p, pv);
        return;
    }
    for (int j = 0; j < n - i; ++j) {
        float gv = g[j], pv = p[j], mv = m[j], vv = v[j], vmaxv = amsgrad ? vmax[j] : 0.0f;
        ADAM_UPDATE(gv, pv, mv, vv, vmaxv);
        m[j] = mv;
        v[j] = vv;
        if (amsgrad)
            vmax[j] = vmaxv;
        p[j] = pv;
    }
}

/* Global size ceil(n / 8), eight elements a work-item as sgd_step. */
__kernel void adam_step(int n, float lr, float beta1, float beta2, float eps, float weight_decay,
                        int decoupled, int amsgrad, float step_size, float bc2_sqrt,
                        __global const float *g, int g_off, __global float *p, int p_off,
                        __global float *m, int m_off, __global float *v, int v_off,
                        __global float *vmax, int vmax_off)
{
    const int i = get_global_id(0) * 8;
    if (i < n)
        adam_chunk(i, n, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step_size, bc2_sqrt,
                   g + g_off, p + p_off, m + m_off, v + v_off, vmax + vmax_off);
}

/* Eight parameters' updates in one launch, as torch's foreach steps (a launch per parameter cost the
 * host ~35 us each on PoCL). Slot s is one parameter: its n<s> elements are the ceil(n<s> / 8)
 * work-items from w<s> on, the slots end to end; an unused slot has n 0 and w past the grid. Each
 * slot brings the parameter's own scalars (its bias corrections, its first step). A large parameter
 * takes sgd_step/adam_step alone (optimizer.py's SLOT_MAX): the pointers chosen per work-item here
 * cost PoCL's loop 1.5x in bandwidth. */
#define FOR_SLOTS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define SGD_SLOT(s) , int n##s, int w##s, int first##s, __global const float *g##s, int g##s##_off, \
    __global float *p##s, int p##s##_off, __global float *buf##s, int buf##s##_off
#define SGD_PICK(s) if (w >= w##s) { \
        n = n##s; i = (w - w##s) * 8; first = first##s; \
        g = g##s + g##s##_off; p = p##s + p##s##_off; buf = buf##s + buf##s##_off; }

__kernel void sgd_step8(float lr, float momentum, float dampening, float weight_decay, int nesterov
                        FOR_SLOTS(SGD_SLOT))
{
    const int w = get_global_id(0);
    int n = 0, i = 0, first = 0;
    __global const float *g = g0;
    __global float *p = p0, *buf = buf0;
    FOR_SLOTS(SGD_PICK)
    if (i < n)
        sgd_chunk(i, n, lr, momentum, dampening, weight_decay, nesterov, first, g, p, buf);
}

#define ADAM_SLOT(s) , int n##s, int w##s, float step_size##s, float bc2_sqrt##s, \
    __global const float *g##s, int g##s##_off, __global float *p##s, int p##s##_off, \
    __global float *m##s, int m##s##_off, __global float *v##s, int v##s##_off, \
    __global float *vmax##s, int vmax##s##_off
#define ADAM_PICK(s) if (w >= w##s) { \
        n = n##s; i = (w - w##s) * 8; step_size = step_size##s; bc2_sqrt = bc2_sqrt##s; \
        g = g##s + g##s##_off; p = p##s + p##s##_off; m = m##s + m##s##_off; v = v##s + v##s##_off; \
        vmax = vmax##s + vmax##s##_off; }

__kernel void adam_step8(float lr, float beta1, float beta2, float eps, float weight_decay, int decoupled,
                         int amsgrad FOR_SLOTS(ADAM_SLOT))
{
    const int w = get_global_id(0);
    int n = 0, i = 0;
    float step_size = 0.0f, bc2_sqrt = 1.0f;
    __global const float *g = g0;
    __global float *p = p0, *m = m0, *v = v0, *vmax = vmax0;
    FOR_SLOTS(ADAM_PICK)
    if (i < n)
        adam_chunk(i, n, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step_size, bc2_sqrt,
                   g, p, m, v, vmax);
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
