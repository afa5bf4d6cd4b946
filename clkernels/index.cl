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

/* ---- several index tensors, any dims; gather / scatter along a dim; nonzero ------------------------
 * The index kernels below bounds-check every index they read (report_bad_index with the caller's
 * ERR_* code in `op`) and never read or write through a bad one: a gather writes 0 there, a scatter
 * skips it. `wrap` != 0 takes negative indices from the end (tensor indexing, take), as PyTorch does. */

#ifndef T_BITS
#define T_BITS 32
#endif
#ifndef REDUCE
#define REDUCE 0   /* 0: assign, 1: add, 2: multiply, 3: max, 4: min */
#endif

#if T_BITS == 64
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
typedef ulong U;
#define CAS(p, e, d) atom_cmpxchg(p, e, d)
#define ATOMIC_LOAD(p) atom_add(p, (ulong)0)
#else
typedef uint U;
#define CAS(p, e, d) atomic_cmpxchg(p, e, d)
#define ATOMIC_LOAD(p) atomic_or(p, 0u)
#endif

#define IS_NAN(v) ((v) != (v))
#if REDUCE == 1
#define COMBINE(a, b) ((a) + (b))
#elif REDUCE == 2
#define COMBINE(a, b) ((a) * (b))
#elif REDUCE == 3
#define COMBINE(a, b) ((IS_NAN(a) || (a) > (b)) ? (a) : (b))
#elif REDUCE == 4
#define COMBINE(a, b) ((IS_NAN(a) || (a) < (b)) ? (a) : (b))
#else
#define COMBINE(a, b) (b)
#endif

/* The scatters below combine values, so they are not built for half storage (T_IS_HALF): the
 * Python side widens half to float32 before scattering. */
/* *p = COMBINE(*p, v) atomically: a compare-and-swap loop on T's bits (int32/float32, or int64 with
 * cl_khr_int64_base_atomics); REDUCE == 0 is a plain store (duplicates: one of them wins). */
#ifndef T_IS_HALF
inline void combine_into(__global T *p, T v)
{
#if REDUCE == 0
    *p = v;
#else
    volatile __global U *bits = (volatile __global U *)p;
    union { U u; T f; } expected, desired;
    expected.u = ATOMIC_LOAD(bits);
    for (;;) {
        desired.f = COMBINE(expected.f, v);
        U seen = CAS(bits, expected.u, desired.u);
        if (seen == expected.u) break;
        expected.u = seen;
    }
#endif
}
#endif

/* A checked index: v (taken from the end when wrap and v < 0) if it lies in [0, size), else -1 after
 * reporting the given value. */
inline long checked_index(__global long *err, int op, int wrap, long v, long size)
{
    long r = (wrap && v < 0) ? v + size : v;
    if (r >= 0 && r < size)
        return r;
    report_bad_index(err, op, v, size);
    return -1;
}

/* Element offset in x of out[p, b, q] for advanced indexing: the non-indexed dims of x (rest, walked
 * with rest_st at flat position p*Q+q) plus, for each of the K = adv.ndim index tensors (broadcast to B
 * elements and stacked (K, B) in idx), idx[k, b] times x's stride in that dim; -1 if one is out of range. */
inline long adv_offset(const Shape *rest, const Strides *rest_st, const Shape *adv, const Strides *adv_st,
                       __global const long *idx, __global long *err, int op, int B, int Q, int t)
{
    int q = t % Q, b = (t / Q) % B, p = t / (Q * B);
    long off = rest->ndim == 1 ? (long)(p * Q + q) * rest_st->stride[0] : strided_offset(rest, rest_st, p * Q + q);
    for (int k = 0; k < adv->ndim; ++k) {
        long r = checked_index(err, op, 1, idx[(long)k * B + b], adv->size[k]);
        if (r < 0)
            return -1;
        off += r * adv_st->stride[k];
    }
    return off;
}

/* out (P, B, Q) contiguous = x[adv indices] (x[i, j], x[:, i, j], x[mask], ...). */
__kernel void adv_gather(const int n, const int B, const int Q, const Shape rest, const Strides rest_st,
                         const Shape adv, const Strides adv_st, const int op,
                         __global const T *x, const int x_off, __global const long *idx, const int idx_off,
                         __global T *out, const int out_off, __global long *err, const int err_off)
{
    x += x_off; idx += idx_off; out += out_off; err += err_off;
    int t = get_global_id(0);
    if (t >= n) return;
    long off = adv_offset(&rest, &rest_st, &adv, &adv_st, idx, err, op, B, Q, t);
    STORE(T, out, t, off < 0 ? 0.0f : LOAD(T, x, off));
}

/* x[adv indices] (=, or COMBINE=) v, v (P, B, Q) contiguous: index_put_, and adv_gather's gradient. */
#ifndef T_IS_HALF
__kernel void adv_put(const int n, const int B, const int Q, const Shape rest, const Strides rest_st,
                      const Shape adv, const Strides adv_st, const int op,
                      __global const T *v, const int v_off, __global const long *idx, const int idx_off,
                      __global T *x, const int x_off, __global long *err, const int err_off)
{
    v += v_off; idx += idx_off; x += x_off; err += err_off;
    int t = get_global_id(0);
    if (t >= n) return;
    long off = adv_offset(&rest, &rest_st, &adv, &adv_st, idx, err, op, B, Q, t);
    if (off >= 0)
        combine_into(x + off, v[t]);
}
#endif

/* Offsets of element t of the index's shape: in idx (is), in src (ss), and in x (xs) with the
 * coordinate along dim left out. */
inline void dim_offsets(const Shape *shape, const Strides *xs, const Strides *is, const Strides *ss, int dim,
                        int t, long *xo, long *io, long *so)
{
    *xo = 0; *io = 0; *so = 0;
    for (int d = shape->ndim - 1; d >= 0; --d) {
        int c = t % shape->size[d];
        t /= shape->size[d];
        *io += (long)c * is->stride[d];
        *so += (long)c * ss->stride[d];
        if (d != dim)
            *xo += (long)c * xs->stride[d];
    }
}

/* torch.gather: out[..., j, ...] = x[..., idx[..., j, ...], ...] along dim (x of `size` there). */
__kernel void gather_dim(const int n, const Shape shape, const Strides xs, const Strides is, const int dim,
                         const int size, const int wrap, const int op,
                         __global const T *x, const int x_off, __global const long *idx, const int idx_off,
                         __global T *out, const int out_off, __global long *err, const int err_off)
{
    x += x_off; idx += idx_off; out += out_off; err += err_off;
    int t = get_global_id(0);
    if (t >= n) return;
    long xo, io, so;
    dim_offsets(&shape, &xs, &is, &is, dim, t, &xo, &io, &so);
    long r = checked_index(err, op, wrap, idx[io], size);
    STORE(T, out, t, r < 0 ? 0.0f : LOAD(T, x, xo + r * xs.stride[dim]));
}

/* torch.scatter / scatter_add / scatter_reduce: x[..., idx[..., j, ...], ...] (COMBINE=) src[..., j, ...]. */
#ifndef T_IS_HALF
__kernel void scatter_dim(const int n, const Shape shape, const Strides xs, const Strides is, const Strides ss,
                          const int dim, const int size, const int wrap, const int op,
                          __global const T *src, const int src_off, __global const long *idx, const int idx_off,
                          __global T *x, const int x_off, __global long *err, const int err_off)
{
    src += src_off; idx += idx_off; x += x_off; err += err_off;
    int t = get_global_id(0);
    if (t >= n) return;
    long xo, io, so;
    dim_offsets(&shape, &xs, &is, &ss, dim, t, &xo, &io, &so);
    long r = checked_index(err, op, wrap, idx[io], size);
    if (r >= 0)
        combine_into(x + xo + r * xs.stride[dim], src[so]);
}
#endif

/* nonzero, pass 1: counts[c] = the number of nonzero elements among flat positions [c*chunk, (c+1)*chunk). */
__kernel void nonzero_count(const int n, const int chunk, const Shape shape, const Strides st,
                            __global const T *x, const int x_off, __global int *counts, const int counts_off)
{
    x += x_off; counts += counts_off;
    int c = get_global_id(0);
    if ((long)c * chunk >= n) return;
    int end = min(n, (c + 1) * chunk), k = 0;
    for (int i = c * chunk; i < end; ++i)
        k += LOAD(T, x, strided_offset(&shape, &st, i)) != 0;
    counts[c] = k;
}

/* nonzero, pass 2: the coordinates of each nonzero element, row-major, written from row starts[c]
 * (the exclusive prefix sum of the counts) into out (count, ndim). */
__kernel void nonzero_write(const int n, const int chunk, const Shape shape, const Strides st,
                            __global const T *x, const int x_off, __global const int *starts, const int starts_off,
                            __global long *out, const int out_off)
{
    x += x_off; starts += starts_off; out += out_off;
    int c = get_global_id(0);
    if ((long)c * chunk >= n) return;
    int end = min(n, (c + 1) * chunk);
    long row = starts[c];
    for (int i = c * chunk; i < end; ++i) {
        if (LOAD(T, x, strided_offset(&shape, &st, i)) == 0)
            continue;
        int rest = i;
        for (int d = shape.ndim - 1; d >= 0; --d) {
            out[row * shape.ndim + d] = rest % shape.size[d];
            rest /= shape.size[d];
        }
        ++row;
    }
}
