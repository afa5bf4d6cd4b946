/* ACT_(v, ZERO): the activation -D ACT picks, for a float or a float8 v (ZERO: 0 in v's type), with
 * elementwise.cl's formulas (ReLU and ReLU6 pass NaN, as torch's): the fused epilogues of eval passes
 * (conv.cl's depthwise forwards, se.cl). The ACT_* codes come from shared_constants.py. */
#ifndef MINITORCH_ACT_H
#define MINITORCH_ACT_H
#ifndef ACT
#define ACT 0
#endif
#if ACT == ACT_RELU
#define ACT_(v, ZERO) ((v) < 0.0f ? (ZERO) : (v))
#elif ACT == ACT_HARDSWISH
#define ACT_(v, ZERO) ((v) * fmin(fmax((v) + 3.0f, 0.0f), 6.0f) / 6.0f)
#elif ACT == ACT_SILU
#define ACT_(v, ZERO) ((v) / (1.0f + exp(-(v))))
#elif ACT == ACT_RELU6
#define ACT_(v, ZERO) ((v) < 0.0f ? (ZERO) : ((v) > 6.0f ? (ZERO) + 6.0f : (v)))
#elif ACT == ACT_SIGMOID
#define ACT_(v, ZERO) (1.0f / (1.0f + exp(-(v))))
#elif ACT == ACT_HARDSIGMOID
#define ACT_(v, ZERO) ((v) <= -3.0f ? (ZERO) : ((v) >= 3.0f ? (ZERO) + 1.0f : (v) / 6.0f + 0.5f))
#else
#define ACT_(v, ZERO) (v)
#endif
#endif
