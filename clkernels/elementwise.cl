/* Element-wise maps over broadcast, strided shapes: map1 (unary, with scalars alpha/beta),
 * map2 (binary), where3 (select), and a counter-based random fill.
 * -D OP=<OP_* name> picks the operation; TA/TB/TO are the operand and output types and
 * T the type the arithmetic runs in. */
#include "common.h"

#ifndef T
#define T float
#endif
#ifndef TA
#define TA T
#endif
#ifndef TB
#define TB T
#endif
#ifndef TO
#define TO T
#endif
#ifndef OP
#define OP OP_COPY
#endif

/* unary, with the scalars alpha and beta */
#define OP_COPY 1
#define OP_NEG 2
#define OP_EXP 3
#define OP_LOG 4
#define OP_SQRT 5
#define OP_TANH 6
#define OP_SIGMOID 7
#define OP_RELU 8
#define OP_ABS 9
#define OP_ADD_S 10
#define OP_MUL_S 11
#define OP_RSUB_S 12
#define OP_RDIV_S 13
#define OP_POW_S 14
#define OP_RPOW_S 15
#define OP_CLAMP 16
#define OP_SIGN 17
#define OP_EQ_S 18
#define OP_NE_S 19
#define OP_LT_S 20
#define OP_LE_S 21
#define OP_GT_S 22
#define OP_GE_S 23
#define OP_GELU 24
#define OP_SIN 25
#define OP_COS 26
#define OP_FILL 27
#define OP_NOT 28
#define OP_RSQRT 29
#define OP_GELU_GRAD 30
/* binary */
#define OP_ADD 40
#define OP_SUB 41
#define OP_MUL 42
#define OP_DIV 43
#define OP_POW 44
#define OP_MAX 45
#define OP_MIN 46
#define OP_EQ 47
#define OP_NE 48
#define OP_LT 49
#define OP_LE 50
#define OP_GT 51
#define OP_GE 52
#define OP_RELU_BWD 53     /* a * (b > 0) */
#define OP_SIGMOID_BWD 54  /* a * b * (1 - b), b = sigmoid output */
#define OP_TANH_BWD 55     /* a * (1 - b * b), b = tanh output */
#define OP_AND 56
#define OP_OR 57
#define OP_XOR 58

#if OP == OP_COPY
#define F1(x) (x)
#elif OP == OP_NEG
#define F1(x) (-(x))
#elif OP == OP_EXP
#define F1(x) exp(x)
#elif OP == OP_LOG
#define F1(x) log(x)
#elif OP == OP_SQRT
#define F1(x) sqrt(x)
#elif OP == OP_RSQRT
#define F1(x) rsqrt(x)
#elif OP == OP_TANH
#define F1(x) tanh(x)
#elif OP == OP_SIGMOID
#define F1(x) ((T)1 / ((T)1 + exp(-(x))))
#elif OP == OP_RELU
#define F1(x) ((x) > (T)0 ? (x) : (T)0)
#elif OP == OP_ABS
#define F1(x) ((x) < (T)0 ? -(x) : (x))
#elif OP == OP_ADD_S
#define F1(x) ((x) + alpha)
#elif OP == OP_MUL_S
#define F1(x) ((x) * alpha)
#elif OP == OP_RSUB_S
#define F1(x) (alpha - (x))
#elif OP == OP_RDIV_S
#define F1(x) (alpha / (x))
#elif OP == OP_POW_S
#define F1(x) pow((x), alpha)
#elif OP == OP_RPOW_S
#define F1(x) pow(alpha, (x))
#elif OP == OP_CLAMP
#define F1(x) ((x) < alpha ? alpha : ((x) > beta ? beta : (x)))
#elif OP == OP_SIGN
#define F1(x) ((T)((x) > (T)0) - (T)((x) < (T)0))
#elif OP == OP_EQ_S
#define F1(x) ((x) == alpha)
#elif OP == OP_NE_S
#define F1(x) ((x) != alpha)
#elif OP == OP_LT_S
#define F1(x) ((x) < alpha)
#elif OP == OP_LE_S
#define F1(x) ((x) <= alpha)
#elif OP == OP_GT_S
#define F1(x) ((x) > alpha)
#elif OP == OP_GE_S
#define F1(x) ((x) >= alpha)
#elif OP == OP_GELU
#define F1(x) ((T)0.5 * (x) * ((T)1 + erf((x) * (T)0.70710678118654752)))
#elif OP == OP_GELU_GRAD  /* d gelu / dx */
#define F1(x) ((T)0.5 * ((T)1 + erf((x) * (T)0.70710678118654752)) + \
               (x) * (T)0.39894228040143268 * exp((T)-0.5 * (x) * (x)))
#elif OP == OP_SIN
#define F1(x) sin(x)
#elif OP == OP_COS
#define F1(x) cos(x)
#elif OP == OP_FILL
#define F1(x) alpha
#elif OP == OP_NOT
#define F1(x) (!(x))
#elif OP == OP_ADD
#define F2(x, y) ((x) + (y))
#elif OP == OP_SUB
#define F2(x, y) ((x) - (y))
#elif OP == OP_MUL
#define F2(x, y) ((x) * (y))
#elif OP == OP_DIV
#define F2(x, y) ((x) / (y))
#elif OP == OP_POW
#define F2(x, y) pow((x), (y))
#elif OP == OP_MAX
#define F2(x, y) ((x) > (y) || isnan((float)(x)) ? (x) : (y))
#elif OP == OP_MIN
#define F2(x, y) ((x) < (y) || isnan((float)(x)) ? (x) : (y))
#elif OP == OP_EQ
#define F2(x, y) ((x) == (y))
#elif OP == OP_NE
#define F2(x, y) ((x) != (y))
#elif OP == OP_LT
#define F2(x, y) ((x) < (y))
#elif OP == OP_LE
#define F2(x, y) ((x) <= (y))
#elif OP == OP_GT
#define F2(x, y) ((x) > (y))
#elif OP == OP_GE
#define F2(x, y) ((x) >= (y))
#elif OP == OP_RELU_BWD
#define F2(x, y) ((y) > (T)0 ? (x) : (T)0)
#elif OP == OP_SIGMOID_BWD
#define F2(x, y) ((x) * (y) * ((T)1 - (y)))
#elif OP == OP_TANH_BWD
#define F2(x, y) ((x) * ((T)1 - (y) * (y)))
#elif OP == OP_AND
#define F2(x, y) ((x) && (y))
#elif OP == OP_OR
#define F2(x, y) ((x) || (y))
#elif OP == OP_XOR
#define F2(x, y) ((!(x)) != (!(y)))
#endif

#ifdef F1
__kernel void map1(const int n, const Shape shape, const Strides sa, const Strides so, const T alpha,
                   const T beta, __global const TA *a, const int a_off, __global TO *out, const int out_off)
{
    a += a_off; out += out_off;
    int i = get_global_id(0);
    if (i >= n) return;
    T x = (T)LOAD(TA, a, strided_offset(&shape, &sa, i));
    STORE(TO, out, strided_offset(&shape, &so, i), F1(x));
}
#endif

#ifdef F2
__kernel void map2(const int n, const Shape shape, const Strides sa, const Strides sb, const Strides so,
                   const T alpha, __global const TA *a, const int a_off,
                   __global const TB *b, const int b_off, __global TO *out, const int out_off)
{
    a += a_off; b += b_off; out += out_off;
    int i = get_global_id(0);
    if (i >= n) return;
    T x = (T)LOAD(TA, a, strided_offset(&shape, &sa, i));
    T y = (T)LOAD(TB, b, strided_offset(&shape, &sb, i));
    STORE(TO, out, strided_offset(&shape, &so, i), F2(x, y));
}
#endif

/* out = cond ? a : b */
__kernel void where3(const int n, const Shape shape, const Strides sc, const Strides sa, const Strides sb,
                     const Strides so, __global const uchar *cond, const int cond_off,
                     __global const TA *a, const int a_off, __global const TB *b, const int b_off,
                     __global TO *out, const int out_off)
{
    cond += cond_off; a += a_off; b += b_off; out += out_off;
    int i = get_global_id(0);
    if (i >= n) return;
    const int o = strided_offset(&shape, &so, i);
    if (cond[strided_offset(&shape, &sc, i)])
        STORE(TO, out, o, LOAD(TA, a, strided_offset(&shape, &sa, i)));
    else
        STORE(TO, out, o, LOAD(TB, b, strided_offset(&shape, &sb, i)));
}

/* A stateless hash of (seed, counter): the same seed always gives the same stream. */
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

/* mode 0: uniform [lo, hi); mode 1: normal(lo, hi) by Box-Muller; mode 2: bernoulli(keep = lo)
 * scaled by hi (dropout masks). */
__kernel void random_fill(const int n, const int mode, const uint seed, const float lo, const float hi,
                          __global float *out, const int out_off)
{
    out += out_off;
    int i = get_global_id(0);
    if (i >= n) return;
    float u = uniform01(seed, (uint)(2 * i));
    float r;
    if (mode == 0) {
        r = lo + (hi - lo) * u;
    } else if (mode == 1) {
        float v = uniform01(seed, (uint)(2 * i + 1));
        r = lo + hi * sqrt(-2.0f * log(u)) * cos(6.283185307179586f * v);
    } else {
        r = u < lo ? hi : 0.0f;
    }
    out[i] = r;
}
