"""Constants that Python and OpenCL C share: defined here once, passed to every build as -D."""

MAXDIM = 8     # dims of the Shape/Strides structs (clkernels/common.h)
PACK_KB = 8    # k's per gemm_pack work-item (clkernels/matmul.cl)
LSTM_VW = 8    # hidden units per LSTM cell work-item, one float8 (clkernels/lstm.cl)

AS_DEFINES = {"MAXDIM": MAXDIM, "PACK_KB": PACK_KB, "VW": LSTM_VW}
