/* Gather and scatter-add of rows along one axis of an (outer, rows, inner) contiguous view.
 * index_select: out[o, j, i] = x[o, idx[j], i];  index_add: out[o, idx[j], i] += g[o, j, i].
 * An out-of-range index is reported (report_bad_index, op = ERR_INDEXING, which also takes negative
 * indices from the end, or ERR_INDEX_SELECT / ERR_EMBEDDING) and reads as 0; index_add skips it. */
#include "common.h"

#ifndef T
#define T float
#endif

__kernel void index_select(const int outer, const int n_idx, const int inner, const int rows, const int op,
                           __global const T *x, const int x_off, __global const long *idx, const int idx_off,
                           __global T *out, const int out_off, __global long *err, const int err_off)
{
    out += out_off; err += err_off;
    int t = get_global_id(0);
    if (t >= outer * n_idx * inner) return;
    int i = t % inner, j = (t / inner) % n_idx, o = t / (inner * n_idx);
    const long given = idx[idx_off + j];
    const long r = (op == ERR_INDEXING && given < 0) ? given + rows : given;
    if (r >= 0 && r < rows) {
        STORE(T, out, t, LOAD(T, x, x_off + ((long)o * rows + r) * inner + i));
    } else {
        STORE(T, out, t, 0);  /* never read: the error is raised at the next wait on the device */
        if (i == 0 && o == 0)
            report_bad_index(err, op, given, rows);
    }
}

/* float atomic add through a compare-and-swap loop on the bits (OpenCL 1.2 has no float atomics);
 * every read of *p is atomic, and a failed swap hands back the value to retry with. */
inline void atomic_add_float(volatile __global float *p, float v)
{
    volatile __global unsigned int *bits = (volatile __global unsigned int *)p;
    union { unsigned int u; float f; } expected, desired;
    expected.u = atomic_or(bits, 0u);
    for (;;) {
        desired.f = expected.f + v;
        unsigned int seen = atomic_cmpxchg(bits, expected.u, desired.u);
        if (seen == expected.u) break;
        expected.u = seen;
    }
}

__kernel void index_add(const int outer, const int n_idx, const int inner, const int rows,
                        __global const float *g, const int g_off,
                        __global const long *idx, const int idx_off, __global float *out, const int out_off)
{
    g += g_off; out += out_off;
    int t = get_global_id(0);
    if (t >= outer * n_idx * inner) return;
    int i = t % inner, j = (t / inner) % n_idx, o = t / (inner * n_idx);
    long r = idx[idx_off + j];
    if (r < 0) r += rows;  /* forward reported anything out of range */
    if (r >= 0 && r < rows)
        atomic_add_float(out + ((long)o * rows + r) * inner + i, g[t]);
}
