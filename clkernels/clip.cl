/* Gradient clipping over many tensors with few launches. OpenCL 1.2 has no arrays of pointers, so
 * each launch takes SLOTS (= 8) gradient buffers with their sizes; unused slots have size 0.
 *   grad_norm_partial: each work-group reduces its share of all 8 tensors to one partial value
 *   grad_norm_finish:  one work-group reduces the partials to the total norm and the clip coefficient
 *   grad_scale:        g *= coef[0] (the coefficient stays on the device: no host round trip)
 *   grad_clamp:        g = clamp(g, -v, v) (NaN stays NaN, as torch.clamp)
 * -D NORM=NORM_INF|NORM_L1|NORM_L2|NORM_P (NORM_P reads the runtime p); -D WG = the work-group size. */
#ifndef WG
#define WG 64
#endif
#define NORM_INF 0
#define NORM_L1 1
#define NORM_L2 2
#define NORM_P 3
#ifndef NORM
#define NORM NORM_L2
#endif

#define SIZES int n0, int n1, int n2, int n3, int n4, int n5, int n6, int n7
#define GRADS(Q) __global Q float *g0, int g0_off, __global Q float *g1, int g1_off, \
                 __global Q float *g2, int g2_off, __global Q float *g3, int g3_off, \
                 __global Q float *g4, int g4_off, __global Q float *g5, int g5_off, \
                 __global Q float *g6, int g6_off, __global Q float *g7, int g7_off
#define FOR_SLOTS(M) M(g0, n0) M(g1, n1) M(g2, n2) M(g3, n3) M(g4, n4) M(g5, n5) M(g6, n6) M(g7, n7)
#define OFFSETS g0 += g0_off; g1 += g1_off; g2 += g2_off; g3 += g3_off; \
                g4 += g4_off; g5 += g5_off; g6 += g6_off; g7 += g7_off;

/* |x| raised for the norm, and how two partials combine (max keeps NaN, as torch's inf norm). */
#if NORM == NORM_INF
#define TERM(x, p) fabs(x)
#define COMBINE(a, b) (((b) > (a) || isnan(b)) ? (b) : (a))
#elif NORM == NORM_L1
#define TERM(x, p) fabs(x)
#define COMBINE(a, b) ((a) + (b))
#elif NORM == NORM_L2
#define TERM(x, p) ((x) * (x))
#define COMBINE(a, b) ((a) + (b))
#else
#define TERM(x, p) pow(fabs(x), p)
#define COMBINE(a, b) ((a) + (b))
#endif

/* Tree over the work-group in local memory; every work-item calls it. */
inline float group_reduce(__local float *buf, float acc)
{
    const int l = get_local_id(0);
    buf[l] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (l < s)
            buf[l] = COMBINE(buf[l], buf[l + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return buf[0];
}

#define ACCUMULATE(g, n) for (int j = i; j < n; j += stride) acc = COMBINE(acc, TERM(g[j], p));

/* partial[group] = combined terms of the elements this group's work-items stride over. */
__kernel void grad_norm_partial(SIZES, float p, GRADS(const), __global float *partial, int partial_off)
{
    __local float buf[WG];
    OFFSETS
    partial += partial_off;
    const int i = get_global_id(0), stride = get_global_size(0);
    float acc = 0.0f;
    FOR_SLOTS(ACCUMULATE)
    acc = group_reduce(buf, acc);
    if (get_local_id(0) == 0)
        partial[get_group_id(0)] = acc;
}

/* One work-group: total = root of the combined partials; coef = min(max_norm / (total + 1e-6), 1). */
__kernel void grad_norm_finish(int m, float p, float max_norm, __global const float *partial, int partial_off,
                               __global float *total, int total_off, __global float *coef, int coef_off)
{
    __local float buf[WG];
    partial += partial_off; total += total_off; coef += coef_off;
    float acc = 0.0f;
    for (int j = get_local_id(0); j < m; j += WG)
        acc = COMBINE(acc, partial[j]);
    acc = group_reduce(buf, acc);
    if (get_local_id(0) == 0) {
#if NORM == NORM_L2
        acc = sqrt(acc);
#elif NORM == NORM_P
        acc = pow(acc, 1.0f / p);
#endif
        total[0] = acc;
        coef[0] = fmin(max_norm / (acc + 1e-6f), 1.0f);  /* NaN total: fmin gives 1, so keep NaN: */
        if (isnan(acc))
            coef[0] = acc;
    }
}

#define SCALE(g, n) for (int j = i; j < n; j += stride) g[j] *= c;

__kernel void grad_scale(SIZES, __global const float *coef, int coef_off, GRADS())
{
    OFFSETS
    coef += coef_off;
    const int i = get_global_id(0), stride = get_global_size(0);
    const float c = coef[0];
    FOR_SLOTS(SCALE)
}

#define CLAMP(g, n) for (int j = i; j < n; j += stride) { const float x = g[j]; g[j] = isnan(x) ? x : clamp(x, -v, v); }

__kernel void grad_clamp(SIZES, float v, GRADS())
{
    OFFSETS
    const int i = get_global_id(0), stride = get_global_size(0);
    FOR_SLOTS(CLAMP)
}
