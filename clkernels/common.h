/* Shared by every kernel file: layout structs and the strided-index helper. OpenCL C 1.2. */
#ifndef MINITORCH_COMMON_H
#define MINITORCH_COMMON_H

#ifdef HAS_FP16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif
#ifdef HAS_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

/* Loads and stores through a pointer of storage type TYPE (a one-word OpenCL C type name), as the
 * kernel's compute type: half goes through vload_half / vstore_half, which are core OpenCL 1.2, so
 * float16 tensors work on every device, with or without cl_khr_fp16. */
#define LOAD(TYPE, p, i) LOAD_(TYPE, p, i)
#define LOAD_(TYPE, p, i) LOAD_##TYPE(p, i)
#define STORE(TYPE, p, i, v) STORE_(TYPE, p, i, v)
#define STORE_(TYPE, p, i, v) STORE_##TYPE(p, i, v)
#define LOAD_half(p, i) vload_half((i), (p))
#define STORE_half(p, i, v) vstore_half((float)(v), (i), (p))
#define LOAD_PLAIN(p, i) ((p)[i])
#define LOAD_uchar LOAD_PLAIN
#define LOAD_char LOAD_PLAIN
#define LOAD_short LOAD_PLAIN
#define LOAD_ushort LOAD_PLAIN
#define LOAD_int LOAD_PLAIN
#define LOAD_uint LOAD_PLAIN
#define LOAD_long LOAD_PLAIN
#define LOAD_float LOAD_PLAIN
#define LOAD_double LOAD_PLAIN
#define STORE_PLAIN(p, i, v) ((p)[i] = (v))
#define STORE_uchar STORE_PLAIN
#define STORE_char STORE_PLAIN
#define STORE_short STORE_PLAIN
#define STORE_ushort STORE_PLAIN
#define STORE_int STORE_PLAIN
#define STORE_uint STORE_PLAIN
#define STORE_long STORE_PLAIN
#define STORE_float STORE_PLAIN
#define STORE_double STORE_PLAIN

#ifndef MAXDIM
#error "build with -D MAXDIM (shared_constants.MAXDIM)"
#endif

/* A work-item past the end of a 1-D range of n (the grid is rounded up to the work-group): the
 * test goes through the work-group first, uniform over it, so that on PoCL only the last group
 * takes the per-item branch. A plain `if (i >= n) return;` stops PoCL's vectorisation across
 * work-items (a 2M-element SGD step ran 4-5x slower). */
#define PAST_END(i, n) ((int)((get_group_id(0) + 1) * get_local_size(0)) > (n) && (i) >= (n))

/* The iteration shape, passed by value. */
typedef struct { int ndim; int size[MAXDIM]; } Shape;
/* One operand's view of that shape: per-dim element strides (0 = broadcast). Its element offset
 * travels beside its buffer, as for every kernel buffer argument. */
typedef struct { int stride[MAXDIM]; } Strides;

/* A 2-D sliding window (convolution, pooling): input (N, C, H, W), output (OH, OW), window
 * (KH, KW), stride, padding and dilation. */
typedef struct { int N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW; } Window;
/* The element strides of an (N, C, H, W) operand. */
typedef struct { int n, c, h, w; } Strides4;

/* Explicit float8 row code (a loop inside a work-item stays scalar on PoCL, and its CPU build does
 * not inline vload8 and the other vector builtins, so row loops use 4-byte-aligned vector types and
 * operators): LD8/ST8 load and store 8 floats (ST8I 8 ints), LD8_STRIDED(s, p) = p[0], p[s], ...,
 * p[7s] for a compile-time stride s of 1 or 2 (the 16-float load behind s == 2 reads p[15] too, one
 * past the last), sum8 adds a float8's lanes. */
typedef float8 float8u __attribute__((aligned(4)));
typedef float16 float16u __attribute__((aligned(4)));
typedef int8 int8u __attribute__((aligned(4)));
#define LD8(p) (*(__global const float8u *)(p))
#define ST8(p, v) (*(__global float8u *)(p) = (v))
#define ST8I(p, v) (*(__global int8u *)(p) = (v))
#define LD8_STRIDED(s, p) ((s) == 1 ? LD8(p) : (*(__global const float16u *)(p)).even)

inline float sum8(float8 a)
{
    return ((a.s0 + a.s1) + (a.s2 + a.s3)) + ((a.s4 + a.s5) + (a.s6 + a.s7));
}

/* The sum of v over the n work-items (n a power of two) of a work-group, through buf, n floats of
 * local memory; every work-item gets it. */
inline float group_sum(float v, __local float *buf, int lid, int n)
{
    buf[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s >>= 1) {
        if (lid < s) buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
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

/* A bad index found on the device: the first one is kept as err[0..3] = (1, op, value, bound) in
 * the device's error buffer (op: an ERR_* code), which the host reads at its next wait on the
 * device and raises as IndexError. The kernel never reads or writes through the bad index. */
inline void report_bad_index(__global long *err, int op, long value, long bound)
{
    if (atomic_cmpxchg((volatile __global int *)err, 0, 1) == 0) {
        err[1] = op;
        err[2] = value;
        err[3] = bound;
    }
}

/* A stateless hash of (seed, counter): the same seed always gives the same stream. random_fill draws
 * from it; the fused attention's dropout recomputes its keep test in the backward instead of storing it. */
inline uint mix32(uint x)
{
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

inline float uniform01(uint seed, uint counter)
{
    uint h = mix32(counter * 0x9E3779B9U ^ mix32(seed));
    return ((float)(h >> 8) + 0.5f) * (1.0f / 16777216.0f);  /* in (0, 1) */
}

inline uint8 mix32x8(uint8 x)
{
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Dropout factors of 8 elements (row[k], col[k]) of one stream: `scale` (1 / (1 - p)) where the
 * element is kept (probability 1 - p), else 0. */
inline float8 dropout_keep8(uint seed, uint8 row, uint8 col, float p, float scale)
{
    const uint8 h = mix32x8(col * 0x9E3779B9U ^ mix32x8((uint8)(seed) ^ mix32x8(row * 0x85EBCA6BU)));
    const float8 u = (convert_float8(h >> 8) + 0.5f) * (1.0f / 16777216.0f);
    return u >= (float8)(p) ? (float8)(scale) : (float8)(0.0f);
}

/* Element offset of the i-th element (row-major over shape) in an operand with strides st. */
inline int strided_offset(const Shape *shape, const Strides *st, int i)
{
    int off = 0;
    for (int d = shape->ndim - 1; d > 0; --d) {
        int n = shape->size[d];
        off += (i % n) * st->stride[d];
        i /= n;
    }
    return off + i * st->stride[0];
}

#endif
