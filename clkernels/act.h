/* ACT_(v, ZERO): the activation -D ACT picks, for a float or a float8 v (ZERO: 0 in v's type), with
 * elementwise.cl's formulas (ReLU and ReLU6 pass NaN, as torch's): the fused epilogues of eval passes
 * (conv.cl's depthwise forwards, se.cl). The ACT_* codes come from shared_constants.py. */
#ifndef MINITORCH_ACT_H
#define MINITORCH_ACT_H
#ifndef ACT
#define ACT 0
#endif
/* ACT_BY(code, v, ZERO): the activation with that compile-time code (the untaken ones fold away) */
#define ACT_BY(code, v, ZERO) \
    ((code) == ACT_RELU ? ((v) < 0.0f ? (ZERO) : (v)) : \
     (code) == ACT_HARDSWISH ? (v) * fmin(fmax((v) + 3.0f, 0.0f), 6.0f) / 6.0f : \
     (code) == ACT_SILU ? (v) / (1.0f + exp(-(v))) : \
     (code) == ACT_RELU6 ? ((v) < 0.0f ? (ZERO) : ((v) > 6.0f ? (ZERO) + 6.0f : (v))) : \
     (code) == ACT_SIGMOID ? 1.0f / (1.0f + exp(-(v))) : \
     (code) == ACT_HARDSIGMOID ? ((v) <= -3.0f ? (ZERO) : ((v) >= 3.0f ? (ZERO) + 1.0f : (v) / 6.0f + 0.5f)) : (v))
#define ACT_(v, ZERO) ACT_BY(ACT, v, ZERO)
#endif
