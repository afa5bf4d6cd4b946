/* The register block of the CPU GEMM kernels (matmul.cl's gemm_packed and gemm_implicit, lstm.cl's
 * fused steps): MR rows of C per work-item, NV vectors of LANES floats each, the accumulators as
 * named variables c<i>_<j>, and the macros that declare, load and multiply-add them. A kernel
 * that includes it sets m0, M, sai and ap (row i of A at ap[oa<i>], stepping by its k stride) and
 * bp (the B panel's row, vector-aligned), then runs FOR_MR(DECL) and, per k, FOR_NV(LOADB_J, 0)
 * and FOR_MR(FMA). */
#ifndef MINITORCH_GEMM_BLOCK_H
#define MINITORCH_GEMM_BLOCK_H

#ifndef MR
#define MR 6          /* rows of C per work-item (1..12) */
#endif
#ifndef NV
#define NV 2          /* vectors of C per row and work-item (1..4) */
#endif
#ifndef LANES
#define LANES 8       /* floats per vector, 8 (an AVX ymm) or 16 (an AVX-512 zmm) */
#endif
#define NR (LANES * NV)
#if LANES == 8
typedef float8 vecf;
typedef float8u vecfu;
#define VLOAD vload8
#define VSTORE vstore8
#elif LANES == 16
typedef float16 vecf;
typedef float16u vecfu;
#define VLOAD vload16
#define VSTORE vstore16
#else
#error "LANES must be 8 or 16"
#endif
/* Lets LLVM use 16-float registers where its CPU tuning prefers 256-bit ones (AVX-512's zmm);
 * only 16-lane builds (CPU profiles) carry the clang attribute, so no GPU compiler meets it. */
#if LANES == 16
#define WIDE __attribute__((min_vector_width(512)))
#else
#define WIDE
#endif

/* FOR_MR(X) expands X(0) .. X(MR-1). The accumulators are named variables, not an array, so that
 * they stay in registers through PoCL's work-item loops. */
#define FOR_MR1(X) X(0)
#define FOR_MR2(X) FOR_MR1(X) X(1)
#define FOR_MR3(X) FOR_MR2(X) X(2)
#define FOR_MR4(X) FOR_MR3(X) X(3)
#define FOR_MR5(X) FOR_MR4(X) X(4)
#define FOR_MR6(X) FOR_MR5(X) X(5)
#define FOR_MR7(X) FOR_MR6(X) X(6)
#define FOR_MR8(X) FOR_MR7(X) X(7)
#define FOR_MR9(X) FOR_MR8(X) X(8)
#define FOR_MR10(X) FOR_MR9(X) X(9)
#define FOR_MR11(X) FOR_MR10(X) X(10)
#define FOR_MR12(X) FOR_MR11(X) X(11)
#if MR < 1 || MR > 12
#error "MR must be 1..12"
#endif
#define FOR_MR_(n) FOR_MR##n
#define FOR_MR_N(n) FOR_MR_(n)
#define FOR_MR FOR_MR_N(MR)

#if NV == 1
#define FOR_NV(X, i) X(i, 0)
#elif NV == 2
#define FOR_NV(X, i) X(i, 0) X(i, 1)
#elif NV == 3
#define FOR_NV(X, i) X(i, 0) X(i, 1) X(i, 2)
#elif NV == 4
#define FOR_NV(X, i) X(i, 0) X(i, 1) X(i, 2) X(i, 3)
#else
#error "NV must be 1..4"
#endif

#define DECL_J(i, j) vecf c##i##_##j = (vecf)(0.0f);
#define DECL(i) FOR_NV(DECL_J, i)
/* Panels are aligned to a vector, so a plain vector load: vload and fma() are out-of-line calls on
 * PoCL, which spill every accumulator; a*b + c in one expression contracts to vfmadd. */
#define LOADB_J(i, j) const vecf b##j = ((const __global vecf *)bp)[j];
#define FMA_J(i, j) c##i##_##j += a##i * b##j;
#define AOFF_STRIDED(i) const long oa##i = (long)min(i, M - 1 - m0) * sai;
#define FMA(i) { const float a##i = ap[oa##i]; FOR_NV(FMA_J, i) }

#endif
