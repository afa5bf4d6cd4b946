"""Constants that Python and OpenCL C share: defined here once, passed to every build as -D."""

MAXDIM = 8     # dims of the Shape/Strides structs (clkernels/common.h)
PACK_KB = 8    # k's per gemm_pack work-item (clkernels/matmul.cl)
LSTM_VW = 8    # hidden units per LSTM cell work-item, one float8 (clkernels/lstm.cl)

# gemm's bias epilogue (clkernels/matmul.cl): none, bias[n] added to every row (Linear), bias[m]
# added to every column (a convolution's per-channel bias over OH*OW)
BIAS_NONE, BIAS_PER_COLUMN, BIAS_PER_ROW = 0, 1, 2

# The activation an eval pass fuses into a kernel's stores (-D ACT, clkernels/act.h)
ACT_NONE, ACT_RELU, ACT_HARDSWISH, ACT_SILU, ACT_RELU6, ACT_SIGMOID, ACT_HARDSIGMOID = range(7)

# Which op found a bad index on the device (the device error buffer's second word; errors.py
# turns it into PyTorch's message)
ERR_INDEXING, ERR_INDEX_SELECT, ERR_EMBEDDING, ERR_CROSS_ENTROPY, ERR_NLL_LOSS = 1, 2, 3, 4, 5
# the gather/scatter family (ops/indexing.py; passed to kernels as an argument, never as a -D)
ERR_INDEX_PUT, ERR_GATHER, ERR_SCATTER, ERR_INDEX_ADD, ERR_INDEX_COPY, ERR_INDEX_FILL, ERR_TAKE = 6, 7, 8, 9, 10, 11, 12

AS_DEFINES = {"MAXDIM": MAXDIM, "PACK_KB": PACK_KB, "VW": LSTM_VW, "BIAS_NONE": BIAS_NONE,
              "BIAS_PER_COLUMN": BIAS_PER_COLUMN, "BIAS_PER_ROW": BIAS_PER_ROW, "ERR_INDEXING": ERR_INDEXING,
              "ERR_INDEX_SELECT": ERR_INDEX_SELECT, "ERR_EMBEDDING": ERR_EMBEDDING,
              "ERR_CROSS_ENTROPY": ERR_CROSS_ENTROPY, "ERR_NLL_LOSS": ERR_NLL_LOSS, "ACT_NONE": ACT_NONE,
              "ACT_RELU": ACT_RELU, "ACT_HARDSWISH": ACT_HARDSWISH, "ACT_SILU": ACT_SILU, "ACT_RELU6": ACT_RELU6,
              "ACT_SIGMOID": ACT_SIGMOID, "ACT_HARDSIGMOID": ACT_HARDSIGMOID}
