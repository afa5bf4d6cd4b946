/* Element-wise maps over broadcast, strided shapes: map1 (unary, with scalars alpha/beta),
 * map2 (binary), where3 (select), dropout_apply, and a counter-based random fill.
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
#define OP_RELU_BWD 53     /* b <= 0 ? 0 : a */
#define OP_SIGMOID_BWD 54  /* a * b * (1 - b), b = sigmoid output */
#define OP_TANH_BWD 55     /* a * (1 - b * b), b = tanh output */
#define OP_AND 56
#define OP_OR 57
#define OP_XOR 58
/* math, dtypes and activations (issue 10) */
#define OP_TO_BOOL 60      /* nonzero is true, NaN included */
#define OP_LOG2 61
#define OP_LOG10 62
#define OP_LOG1P 63
#define OP_EXPM1 64
#define OP_EXP2 65
#define OP_ERF 66
#define OP_ERFINV 67
#define OP_TAN 68
#define OP_ASIN 69
#define OP_ACOS 70
#define OP_ATAN 71
#define OP_SINH 72
#define OP_COSH 73
#define OP_ASINH 74
#define OP_ACOSH 75
#define OP_ATANH 76
#define OP_FLOOR 77
#define OP_CEIL 78
#define OP_ROUND 79        /* round half to even of x * alpha, over alpha (alpha = 10^decimals) */
#define OP_ROUND_NEG 80    /* round half to even of x / alpha, times alpha (negative decimals) */
#define OP_TRUNC 81
#define OP_FRAC 82
#define OP_RECIPROCAL 83
#define OP_SQUARE 84
#define OP_ISNAN 85
#define OP_ISINF 86
#define OP_ISFINITE 87
#define OP_SIGNBIT 88
#define OP_BITNOT 89
#define OP_SILU 90
#define OP_SILU_GRAD 91
#define OP_MISH 92
#define OP_MISH_GRAD 93
#define OP_SOFTPLUS 94     /* alpha = beta, beta = threshold */
#define OP_SOFTPLUS_GRAD 95
#define OP_ELU 96          /* alpha = alpha, beta = scale (selu) */
#define OP_ELU_GRAD 97
#define OP_CELU 98
#define OP_CELU_GRAD 99
#define OP_LEAKY_RELU 100
#define OP_LEAKY_RELU_GRAD 101
#define OP_HARDTANH_GRAD 102 /* 0 at or outside alpha, beta, else 1 (NaN: 1) */
#define OP_HARDSWISH 103
#define OP_HARDSWISH_GRAD 104
#define OP_HARDSIGMOID 105
#define OP_HARDSIGMOID_GRAD 106
#define OP_SOFTSIGN 107
#define OP_LOGSIGMOID 108
#define OP_THRESHOLD 109   /* x <= alpha ? beta : x */
#define OP_GELU_TANH 110
#define OP_GELU_TANH_GRAD 111
/* binary */
#define OP_ATAN2 120
#define OP_FMOD 121
#define OP_FMOD_INT 122
#define OP_REMAINDER 123
#define OP_REMAINDER_INT 124
#define OP_FLOORDIV 125
#define OP_FLOORDIV_INT 126
#define OP_COPYSIGN 127
#define OP_HYPOT 128
#define OP_LOGADDEXP 129
#define OP_LOGADDEXP2 130
#define OP_XLOGY 131
#define OP_BITAND 132
#define OP_BITOR 133
#define OP_BITXOR 134
#define OP_SHL 135
#define OP_SHR 136
#define OP_TRUNCDIV_INT 137
#define OP_TRUNCDIV 138

/* Integer division helpers: a zero divisor gives 0 instead of a trap (the host checks first), and
 * x / -1 is negation so the most negative value wraps instead of trapping. */
#if OP == OP_FMOD_INT || OP == OP_REMAINDER_INT || OP == OP_FLOORDIV_INT || OP == OP_TRUNCDIV_INT
#define MINUS_ONE(b) ((T)-1 < (T)0 && (b) == (T)-1)  /* signed types only */
inline T int_div(T a, T b) { return b == 0 ? (T)0 : (MINUS_ONE(b) ? (T)(-a) : (T)(a / b)); }
inline T int_mod(T a, T b) { return (b == 0 || MINUS_ONE(b)) ? (T)0 : (T)(a % b); }
inline T int_floordiv(T a, T b)
{
    T q = int_div(a, b);
    return (int_mod(a, b) != 0 && ((a < 0) != (b < 0))) ? (T)(q - 1) : q;
}
inline T int_remainder(T a, T b)
{
    T r = int_mod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r;
}
#endif
#if OP == OP_REMAINDER || OP == OP_FLOORDIV
/* PyTorch's float remainder and floor division (sign of the divisor; exact quotients stay exact) */
inline T f_remainder(T a, T b)
{
    T m = fmod(a, b);
    return (m != (T)0 && ((b < (T)0) != (m < (T)0))) ? m + b : m;
}
inline T f_floordiv(T a, T b)
{
    if (b == (T)0) return a / b;
    T m = fmod(a, b);
    T d = (a - m) / b;
    if (m != (T)0 && ((b < (T)0) != (m < (T)0))) d -= (T)1;
    T f = floor(d);
    if (d - f > (T)0.5) f += (T)1;
    return d == (T)0 ? copysign((T)0, a / b) : f;
}
#endif

/* erf in float32 without the builtin (a library call on PoCL's generic CPU target, 20x an add; it
 * made GELU a sixth of a ViT forward): Chebyshev fits of our own, evaluated by Horner in float:
 * erf(t) = t P(2 t^2 - 1) on [0, 1], a polynomial in (t - 1.75) / 0.75 on [1, 2.5], and
 * 1 - erfc(t) with erfc a polynomial in (t - 3.25) / 0.75 on [2.5, 4]; +-1 beyond (erfc(4) is below
 * half an ulp of 1). Abs error < 1.2e-7, relative < 2e-7 below 1 (checked on a dense grid). */
inline float erf_f32(float x)
{
    float t = fabs(x);
    float ua = 2.0f * t * t - 1.0f, um = (t - 1.75f) * (4.0f / 3.0f), ub = (t - 3.25f) * (4.0f / 3.0f);
    float a = t * (((((((-7.557492410e-08f * ua + 1.231640567e-06f) * ua + -1.753682409e-05f) *
                  ua + 2.175119880e-04f) * ua + -2.285485622e-03f) * ua + 1.985249855e-02f) *
                  ua + -1.405360848e-01f) * ua + 9.654687643e-01f);
    float m = (((((((((((-1.336004743e-06f * um + -1.888607949e-05f) * um + 6.841767026e-05f) *
              um + 6.646591646e-05f) * um + -8.094822988e-04f) * um + 1.598615898e-03f) *
              um + 1.572201611e-03f) * um + -1.522062719e-02f) * um + 3.803507984e-02f) *
              um + -5.195032060e-02f) * um + 3.958124667e-02f) * um + 9.866716862e-01f);
    float b = 1.0f - (((((((((-1.556031748e-06f * ub + 8.254530258e-06f) * ub + -2.309873707e-05f) *
                     ub + 4.690368951e-05f) * ub + -7.428343815e-05f) *
                     ub + 9.065910854e-05f) * ub + -8.264013741e-05f) *
                     ub + 5.336379400e-05f) * ub + -2.189010956e-05f) * ub + 4.302714842e-06f);
    float r = t < 1.0f ? a : t < 2.5f ? m : t < 4.0f ? b : 1.0f;
    r = isnan(x) ? x : r;
    return as_float(as_int(r) | (as_int(x) & (int)0x80000000));  /* r >= 0; erf is odd (-0 included) */
}

/* float builds compute erf with erf_f32; float64 ones with the builtin */
#ifdef HAS_FP64
#define ERF(x) erf(x)
#else
#define ERF(x) erf_f32(x)
#endif

#if OP == OP_ERFINV
/* Giles' single-precision approximation, then two Newton steps on erf (exact to double). */
inline T erfinv_(T y)
{
    if (y <= (T)-1 || y >= (T)1)
        return y == (T)-1 ? -INFINITY : (y == (T)1 ? INFINITY : NAN);
    T w = -log(((T)1 - y) * ((T)1 + y)), p;
    if (w < (T)5) {
        w -= (T)2.5;
        p = (T)2.81022636e-08;
        p = (T)3.43273939e-07 + p * w; p = (T)-3.5233877e-06 + p * w; p = (T)-4.39150654e-06 + p * w;
        p = (T)0.00021858087 + p * w; p = (T)-0.00125372503 + p * w; p = (T)-0.00417768164 + p * w;
        p = (T)0.246640727 + p * w; p = (T)1.50140941 + p * w;
    } else {
        w = sqrt(w) - (T)3;
        p = (T)-0.000200214257;
        p = (T)0.000100950558 + p * w; p = (T)0.00134934322 + p * w; p = (T)-0.00367342844 + p * w;
        p = (T)0.00573950773 + p * w; p = (T)-0.0076224613 + p * w; p = (T)0.00943887047 + p * w;
        p = (T)1.00167406 + p * w; p = (T)2.83297682 + p * w;
    }
    T x = p * y;
    for (int k = 0; k < 2; ++k)
        x -= (erf(x) - y) / ((T)1.1283791670955126 * exp(-x * x));
    return x;
}
#endif
#if OP == OP_SHL || OP == OP_SHR
#define NBITS ((T)(sizeof(T) * 8))
#endif

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
#define F1(x) ((x) < (T)0 ? (T)0 : (x))  /* NaN passes */
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
#define F1(x) ((T)0.5 * (x) * ((T)1 + ERF((x) * (T)0.70710678118654752)))
#elif OP == OP_GELU_GRAD  /* d gelu / dx */
#define F1(x) ((T)0.5 * ((T)1 + ERF((x) * (T)0.70710678118654752)) + \
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
#define F2(x, y) ((y) <= (T)0 ? (T)0 : (x))  /* torch's threshold_backward: a NaN output passes g */
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
#elif OP == OP_TO_BOOL
#define F1(x) ((x) != (T)0)
#elif OP == OP_LOG2
#define F1(x) log2(x)
#elif OP == OP_LOG10
#define F1(x) log10(x)
#elif OP == OP_LOG1P
#define F1(x) log1p(x)
#elif OP == OP_EXPM1
#define F1(x) expm1(x)
#elif OP == OP_EXP2
#define F1(x) exp2(x)
#elif OP == OP_ERF
#define F1(x) ERF(x)
#elif OP == OP_ERFINV
#define F1(x) erfinv_(x)
#elif OP == OP_TAN
#define F1(x) tan(x)
#elif OP == OP_ASIN
#define F1(x) asin(x)
#elif OP == OP_ACOS
#define F1(x) acos(x)
#elif OP == OP_ATAN
#define F1(x) atan(x)
#elif OP == OP_SINH
#define F1(x) sinh(x)
#elif OP == OP_COSH
#define F1(x) cosh(x)
#elif OP == OP_ASINH
#define F1(x) asinh(x)
#elif OP == OP_ACOSH
#define F1(x) acosh(x)
#elif OP == OP_ATANH
#define F1(x) atanh(x)
#elif OP == OP_FLOOR
#define F1(x) floor(x)
#elif OP == OP_CEIL
#define F1(x) ceil(x)
#elif OP == OP_ROUND
#define F1(x) (rint((x) * alpha) / alpha)
#elif OP == OP_ROUND_NEG
#define F1(x) (rint((x) / alpha) * alpha)
#elif OP == OP_TRUNC
#define F1(x) trunc(x)
#elif OP == OP_FRAC
#define F1(x) ((x) - trunc(x))
#elif OP == OP_RECIPROCAL
#define F1(x) ((T)1 / (x))
#elif OP == OP_SQUARE
#define F1(x) ((x) * (x))
#elif OP == OP_ISNAN
#define F1(x) isnan(x)
#elif OP == OP_ISINF
#define F1(x) isinf(x)
#elif OP == OP_ISFINITE
#define F1(x) isfinite(x)
#elif OP == OP_SIGNBIT
#define F1(x) signbit(x)
#elif OP == OP_BITNOT
#define F1(x) (~(x))
#elif OP == OP_SILU
#define F1(x) ((x) / ((T)1 + exp(-(x))))
#elif OP == OP_SILU_GRAD  /* s (1 + x (1 - s)) */
#define F1(x) (((T)1 / ((T)1 + exp(-(x)))) * ((T)1 + (x) * ((T)1 - (T)1 / ((T)1 + exp(-(x))))))
#elif OP == OP_MISH
#define F1(x) ((x) * tanh(log1p(exp(x))))
#elif OP == OP_MISH_GRAD  /* tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2) */
#define F1(x) (tanh(log1p(exp(x))) + (x) * ((T)1 / ((T)1 + exp(-(x)))) * \
               ((T)1 - tanh(log1p(exp(x))) * tanh(log1p(exp(x)))))
#elif OP == OP_SOFTPLUS
#define F1(x) ((x) * alpha > beta ? (x) : log1p(exp((x) * alpha)) / alpha)
#elif OP == OP_SOFTPLUS_GRAD
#define F1(x) ((x) * alpha > beta ? (T)1 : (T)1 / ((T)1 + exp(-(x) * alpha)))
#elif OP == OP_ELU
#define F1(x) ((x) > (T)0 ? beta * (x) : beta * alpha * expm1(x))
#elif OP == OP_ELU_GRAD
#define F1(x) ((x) > (T)0 ? beta : beta * alpha * exp(x))
#elif OP == OP_CELU
#define F1(x) ((x) > (T)0 ? (x) : alpha * expm1((x) / alpha))
#elif OP == OP_CELU_GRAD
#define F1(x) ((x) > (T)0 ? (T)1 : exp((x) / alpha))
#elif OP == OP_LEAKY_RELU
#define F1(x) ((x) > (T)0 ? (x) : (x) * alpha)
#elif OP == OP_LEAKY_RELU_GRAD
#define F1(x) ((x) > (T)0 ? (T)1 : alpha)
#elif OP == OP_HARDTANH_GRAD
#define F1(x) ((x) <= alpha || (x) >= beta ? (T)0 : (T)1)  /* torch's: NaN passes g */
#elif OP == OP_HARDSWISH
#define F1(x) ((x) * fmin(fmax((x) + (T)3, (T)0), (T)6) / (T)6)
#elif OP == OP_HARDSWISH_GRAD
#define F1(x) ((x) < (T)-3 ? (T)0 : ((x) <= (T)3 ? (x) / (T)3 + (T)0.5 : (T)1))
#elif OP == OP_HARDSIGMOID
#define F1(x) ((x) <= (T)-3 ? (T)0 : ((x) >= (T)3 ? (T)1 : (x) / (T)6 + (T)0.5))
#elif OP == OP_HARDSIGMOID_GRAD
#define F1(x) ((x) > (T)-3 && (x) < (T)3 ? (T)1 / (T)6 : (T)0)
#elif OP == OP_SOFTSIGN
#define F1(x) ((x) / ((T)1 + fabs(x)))
#elif OP == OP_LOGSIGMOID  /* min(x, 0) - log1p(exp(-|x|)) */
#define F1(x) (isnan(x) ? (x) : fmin((x), (T)0) - log1p(exp(-fabs(x))))
#elif OP == OP_THRESHOLD
#define F1(x) ((x) <= alpha ? beta : (x))
#elif OP == OP_GELU_TANH
#define F1(x) ((x) / ((T)1 + exp((T)-1.5957691216057307 * ((x) + (T)0.044715 * (x) * (x) * (x)))))  /* x sigmoid(2u) */
#elif OP == OP_GELU_TANH_GRAD
#define F1(x) ((T)0.5 * ((T)1 + tanh((T)0.79788456080286536 * ((x) + (T)0.044715 * (x) * (x) * (x)))) + \
               (T)0.5 * (x) * ((T)1 - tanh((T)0.79788456080286536 * ((x) + (T)0.044715 * (x) * (x) * (x))) * \
               tanh((T)0.79788456080286536 * ((x) + (T)0.044715 * (x) * (x) * (x)))) * \
               (T)0.79788456080286536 * ((T)1 + (T)0.134145 * (x) * (x)))
#elif OP == OP_ATAN2
#define F2(x, y) atan2((x), (y))
#elif OP == OP_FMOD
#define F2(x, y) fmod((x), (y))
#elif OP == OP_FMOD_INT
#define F2(x, y) int_mod((x), (y))
#elif OP == OP_REMAINDER
#define F2(x, y) f_remainder((x), (y))
#elif OP == OP_REMAINDER_INT
#define F2(x, y) int_remainder((x), (y))
#elif OP == OP_FLOORDIV
#define F2(x, y) f_floordiv((x), (y))
#elif OP == OP_FLOORDIV_INT
#define F2(x, y) int_floordiv((x), (y))
#elif OP == OP_TRUNCDIV
#define F2(x, y) trunc((x) / (y))
#elif OP == OP_TRUNCDIV_INT
#define F2(x, y) int_div((x), (y))
#elif OP == OP_COPYSIGN
#define F2(x, y) copysign((x), (y))
#elif OP == OP_HYPOT
#define F2(x, y) hypot((x), (y))
#elif OP == OP_LOGADDEXP  /* max + log1p(exp(-|x - y|)); equal infinities give that infinity */
#define F2(x, y) (isnan(x) || isnan(y) ? (x) + (y) : ((x) == (y) && isinf(x) ? (x) : fmax((x), (y)) + log1p(exp(-fabs((x) - (y))))))
#elif OP == OP_LOGADDEXP2
#define F2(x, y) (isnan(x) || isnan(y) ? (x) + (y) : ((x) == (y) && isinf(x) ? (x) : \
                  fmax((x), (y)) + log1p(exp2(-fabs((x) - (y)))) * (T)1.4426950408889634))
#elif OP == OP_XLOGY
#define F2(x, y) (isnan(y) ? (y) : ((x) == (T)0 ? (T)0 : (x) * log(y)))
#elif OP == OP_BITAND
#define F2(x, y) ((x) & (y))
#elif OP == OP_BITOR
#define F2(x, y) ((x) | (y))
#elif OP == OP_BITXOR
#define F2(x, y) ((x) ^ (y))
#elif OP == OP_SHL
#define F2(x, y) ((y) < (T)0 || (y) >= NBITS ? (T)0 : (T)((x) << (y)))
#elif OP == OP_SHR
#define F2(x, y) ((y) < (T)0 || (y) >= NBITS ? ((x) < (T)0 ? (T)-1 : (T)0) : (T)((x) >> (y)))
#endif

/* The _grid kernels' bounds test (uniform over a work-group that lies inside the grid, as PAST_END)
 * and an operand's element offset; the grid is (size[2], size[1], size[0]). */
#define PAST_GRID(sh) (PAST_END((int)get_global_id(0), (sh).size[2]) || \
    ((int)((get_group_id(1) + 1) * get_local_size(1)) > (sh).size[1] && (int)get_global_id(1) >= (sh).size[1]))
#define GRID_OFFSET(st) ((int)get_global_id(0) * (st).stride[2] + (int)get_global_id(1) * (st).stride[1] + \
    (int)get_global_id(2) * (st).stride[0])

#ifdef F1
__kernel void map1(const int n, const Shape shape, const Strides sa, const Strides so, const T alpha,
                   const T beta, __global const TA *a, const int a_off, __global TO *out, const int out_off)
{
    a += a_off; out += out_off;
    int i = get_global_id(0);
    if (PAST_END(i, n)) return;
    T x = (T)LOAD(TA, a, strided_offset(&shape, &sa, i));
    STORE(TO, out, strided_offset(&shape, &so, i), F1(x));
}

/* map1 over a 1-D iteration (shape.ndim <= 1 once coalesced: any contiguous or evenly strided
 * operands): the offsets without strided_offset's loop, which stops PoCL's vectorisation across
 * work-items (a contiguous 2M-element map2 ran 5-6x slower). Same arguments as map1. */
__kernel void map1_flat(const int n, const Shape shape, const Strides sa, const Strides so, const T alpha,
                        const T beta, __global const TA *a, const int a_off, __global TO *out, const int out_off)
{
    a += a_off; out += out_off;
    int i = get_global_id(0);
    if (PAST_END(i, n)) return;
    T x = (T)LOAD(TA, a, i * sa.stride[0]);
    STORE(TO, out, i * so.stride[0], F1(x));
}

/* map1_flat for contiguous float32 operands, 16 elements per work-item in float16 vectors (the last
 * one also takes the n % 16 tail): for the maps built on exp (SiLU, the sigmoid), whose builtin call
 * PoCL's CPU target leaves scalar across work-items (4 GB/s; the float16 builtin runs near the copy's
 * speed). Built only for the ops whose F1 takes vectors: backend.py's _VECTOR_MAPS. Same arguments
 * as map1_flat. */
#if OP == OP_SIGMOID || OP == OP_SILU || OP == OP_SILU_GRAD
__kernel void map1_vec(const int n, const Shape shape, const Strides sa, const Strides so, const T alpha,
                       const T beta, __global const float *a, const int a_off, __global float *out,
                       const int out_off)
{
    a += a_off; out += out_off;
    const int i = get_global_id(0);
    if (16 * i + 16 <= n) {
        const float16 x = vload16(i, a);
        vstore16(F1(x), i, out);
    } else {
        for (int j = 16 * i; j < n; ++j) {
            const float x = a[j];
            out[j] = F1(x);
        }
    }
}
#endif

/* map1 over a 3-D iteration (2-D and 3-D ones, padded with leading size-1 dims) on a grid of that
 * shape, innermost dim first: each work-item's offsets come from its ids, with none of
 * strided_offset's per-element divisions (a broadcast or sliced map ran at 2 GB/s through map1). */
__kernel void map1_grid(const int n, const Shape shape, const Strides sa, const Strides so, const T alpha,
                        const T beta, __global const TA *a, const int a_off, __global TO *out, const int out_off)
{
    a += a_off; out += out_off;
    if (PAST_GRID(shape)) return;
    T x = (T)LOAD(TA, a, GRID_OFFSET(sa));
    STORE(TO, out, GRID_OFFSET(so), F1(x));
}
#endif

#ifdef F2
__kernel void map2(const int n, const Shape shape, const Strides sa, const Strides sb, const Strides so,
                   const T alpha, __global const TA *a, const int a_off,
                   __global const TB *b, const int b_off, __global TO *out, const int out_off)
{
    a += a_off; b += b_off; out += out_off;
    int i = get_global_id(0);
    if (PAST_END(i, n)) return;
    T x = (T)LOAD(TA, a, strided_offset(&shape, &sa, i));
    T y = (T)LOAD(TB, b, strided_offset(&shape, &sb, i));
    STORE(TO, out, strided_offset(&shape, &so, i), F2(x, y));
}

/* map2 over a 1-D iteration, as map1_flat. */
__kernel void map2_flat(const int n, const Shape shape, const Strides sa, const Strides sb, const Strides so,
                        const T alpha, __global const TA *a, const int a_off,
                        __global const TB *b, const int b_off, __global TO *out, const int out_off)
{
    a += a_off; b += b_off; out += out_off;
    int i = get_global_id(0);
    if (PAST_END(i, n)) return;
    T x = (T)LOAD(TA, a, i * sa.stride[0]);
    T y = (T)LOAD(TB, b, i * sb.stride[0]);
    STORE(TO, out, i * so.stride[0], F2(x, y));
}

/* map2 over a 3-D iteration, as map1_grid. */
__kernel void map2_grid(const int n, const Shape shape, const Strides sa, const Strides sb, const Strides so,
                        const T alpha, __global const TA *a, const int a_off,
                        __global const TB *b, const int b_off, __global TO *out, const int out_off)
{
    a += a_off; b += b_off; out += out_off;
    if (PAST_GRID(shape)) return;
    T x = (T)LOAD(TA, a, GRID_OFFSET(sa));
    T y = (T)LOAD(TB, b, GRID_OFFSET(sb));
    STORE(TO, out, GRID_OFFSET(so), F2(x, y));
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
    if (PAST_END(i, n)) return;
    const int o = strided_offset(&shape, &so, i);
    if (cond[strided_offset(&shape, &sc, i)])
        STORE(TO, out, o, LOAD(TA, a, strided_offset(&shape, &sa, i)));
    else
        STORE(TO, out, o, LOAD(TB, b, strided_offset(&shape, &sb, i)));
}

/* out = a * (keep ? scale : 0) with keep drawn as random_fill's mode 2 draws it for element i: the
 * same (seed, i) gives the same factor, so the backward applies the forward's mask without storing it. */
__kernel void dropout_apply(const int n, const Shape shape, const Strides sa, const Strides so, const float keep,
                            const T scale, const uint seed, __global const TA *a, const int a_off,
                            __global TO *out, const int out_off)
{
    a += a_off; out += out_off;
    int i = get_global_id(0);
    if (i >= n) return;
    const T x = (T)LOAD(TA, a, strided_offset(&shape, &sa, i));
    STORE(TO, out, strided_offset(&shape, &so, i), uniform01(seed, (uint)(2 * i)) < keep ? x * scale : (T)0);
}

/* dropout_apply over a 1-D iteration, as map1_flat (strided_offset's loop stopped PoCL's vectorisation:
 * the Transformer's dropouts ran at 2 GB/s). Same arguments. */
__kernel void dropout_apply_flat(const int n, const Shape shape, const Strides sa, const Strides so, const float keep,
                                 const T scale, const uint seed, __global const TA *a, const int a_off,
                                 __global TO *out, const int out_off)
{
    a += a_off; out += out_off;
    int i = get_global_id(0);
    if (PAST_END(i, n)) return;
    const T x = (T)LOAD(TA, a, i * sa.stride[0]);
    STORE(TO, out, i * so.stride[0], uniform01(seed, (uint)(2 * i)) < keep ? x * scale : (T)0);
}

/* uniform01's 24 random bits (common.h): uniform01(s, c) = (uniform24(s, c) + 1/2) / 2^24 */
inline uint uniform24(uint seed, uint counter)
{
    return mix32(counter * 0x9E3779B9U ^ mix32(seed)) >> 8;
}

/* log(u) for u in (0, 1], within 1 ulp (checked on every uniform01 value): u = m 2^e with
 * m in [sqrt(1/2), sqrt(2)), log(1 + x) = x - x^2/2 + x^3 P(x) with P our degree-8 Chebyshev fit on
 * that range (abs error 1.3e-9 before rounding); PoCL's generic log costs ten times more. */
inline float log_unit(float u)
{
    int bits = as_int(u);
    int e = ((bits >> 23) & 0xff) - 126;
    float m = as_float((bits & 0x007fffff) | 0x3f000000);  /* [0.5, 1) */
    if (m < 0.70710678f) { e -= 1; m = m + m; }
    float x = m - 1.0f, z = x * x, fe = (float)e;
    float y = ((((((((7.1497528449e-2f * x - 1.1571200994e-1f) * x + 1.1661511629e-1f) * x
              - 1.2411050666e-1f) * x + 1.4249936461e-1f) * x - 1.6668480239e-1f) * x
              + 2.0000707482e-1f) * x - 2.4999989049e-1f) * x + 3.3333331191e-1f) * x * z;
    y += -2.1219444005e-4f * fe - 0.5f * z;  /* ln 2 = 0.693359375 (exact in float) + this */
    return x + y + 0.693359375f * fe;
}

/* cos(2 pi v) for uniform01's v = (k + 1/2) / 2^24, k in [0, 2^24): the reflections v -> 1 - v,
 * 1/2 - v, 1/4 - v are exact on k, leaving x = 2 pi v in (0, pi/4) for cos x = 1 - z/2 + z^2 Q(z) and
 * sin x = x + x z R(z), z = x^2, Q and R our quadratic Chebyshev fits (abs error < 1e-8 before rounding). No builtins: PoCL's generic CPU target makes rint/fabs/cos library calls that
 * cost ten times the polynomial. */
inline float cos_turn(uint k)
{
    if (k >= 0x800000u) k = 0xFFFFFFu - k;        /* cos(2 pi v) = cos(2 pi (1 - v)) */
    float sign = 1.0f;
    if (k >= 0x400000u) { k = 0x7FFFFFu - k; sign = -1.0f; }  /* = -cos(2 pi (1/2 - v)) */
    int use_sin = k >= 0x200000u;
    if (use_sin) k = 0x3FFFFFu - k;               /* = sin(2 pi (1/4 - v)) */
    float x = ((float)k + 0.5f) * (6.283185307179586f / 16777216.0f), z = x * x;
    float cosx = 1.0f - 0.5f * z + z * z * ((2.4415339057e-5f * z - 1.3887280505e-3f) * z + 4.1666648888e-2f);
    float sinx = x + x * z * ((-1.9587949843e-4f * z + 8.3327486344e-3f) * z - 1.6666664665e-1f);
    return sign * (use_sin ? sinx : cosx);
}

/* sqrt(a) for a >= 0 without the builtin (a library call on PoCL's generic CPU target, the costliest
 * step of a normal draw): the bit-trick reciprocal square root, three Newton steps, a * rsqrt(a) and
 * one Heron correction; within 1 ulp. */
inline float sqrt_nonneg(float a)
{
    float y = as_float(0x5f3759df - (as_int(a) >> 1));
    float h = 0.5f * a;
    y = y * (1.5f - h * y * y);
    y = y * (1.5f - h * y * y);
    y = y * (1.5f - h * y * y);
    float s = a * y;
    return s + 0.5f * y * (a - s * s);
}

/* RANDOM_MODE 0: uniform [lo, hi); 1: normal(lo, hi) by Box-Muller; 2: bernoulli(keep = lo) scaled by
 * hi (dropout masks). A build option, not an argument: a run-time branch keeps PoCL from vectorising
 * the work-group loop and makes a normal draw six times slower. */
#ifndef RANDOM_MODE
#define RANDOM_MODE 0
#endif
__kernel void random_fill(const int n, const uint seed, const float lo, const float hi,
                          __global float *out, const int out_off)
{
    out += out_off;
    int i = get_global_id(0);
    if (PAST_END(i, n)) return;
    float u = uniform01(seed, (uint)(2 * i));
#if RANDOM_MODE == 0
    out[i] = lo + (hi - lo) * u;
#elif RANDOM_MODE == 1
    out[i] = lo + hi * sqrt_nonneg(-2.0f * log_unit(u)) * cos_turn(uniform24(seed, (uint)(2 * i + 1)));
#else
    out[i] = u < lo ? hi : 0.0f;
#endif
}
