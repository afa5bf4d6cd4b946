/* GEMM: C[z] (=|+=) op(A[z]) @ op(B[z]) (+ bias) (relu), float32, driven by minitorch_cl/gemm.py.
 *
 *   gemm_pack    copies op(A), or op(B) transposed, into zero-padded panels laid out (panel, k, W),
 *                so that the CPU kernel reads both operands contiguously and never past an edge;
 *                it can also lay a batch end to end along K, for a sum of products over the batch.
 *   gemm_packed  the CPU kernel: each work-item computes an MR x NR block of C (NR = LANES*NV)
 *                in float8 or float16 registers from one A panel and one B panel (or B's own rows,
 *                when they already are whole, aligned panel rows).
 *   gemm_tiled   the GPU kernel: TM x TN tile of C per work-group, staged through local memory
 *                TK at a time, each work-item computing a WM x WN register block. Reads A and B
 *                straight through runtime strides and guards every edge.
 *
 * Transposes are runtime strides: op(A)[m][k] = A[m*sam + k*sak], op(B)[k][n] = B[k*sbk + n*sbn].
 * The epilogue is runtime too (it runs once per element of C, outside the hot loop):
 *   C = relu?( (accumulate ? C : 0) + product + bias ), bias_mode BIAS_NONE, BIAS_PER_COLUMN (bias[n])
 *   or BIAS_PER_ROW (bias[m]), all -D from shared_constants.py.
 * Only tile shapes are -D options, each with a default below so the file compiles alone. */
#include "common.h"
#include "gemm_block.h"

#ifndef TM
#define TM 64         /* gemm_tiled: C tile per work-group is TM x TN, K staged TK at a time */
#endif
#ifndef TN
#define TN 64
#endif
#ifndef TK
#define TK 16
#endif
#ifndef WM
#define WM 4          /* gemm_tiled: C block per work-item; work-group is (TN/WN, TM/WM) */
#endif
#ifndef WN
#define WN 4
#endif
#define GX (TN / WN)
#define GY (TM / WM)

/* The epilogue for one element of C. */
inline void store_c(__global float *c, const __global float *bias, int m, int n, float v,
                    int bias_mode, int relu, int accumulate)
{
    if (accumulate)
        v += *c;
    if (bias_mode == BIAS_PER_COLUMN)
        v += bias[n];
    else if (bias_mode == BIAS_PER_ROW)
        v += bias[m];
    if (relu)
        v = fmax(v, 0.0f);
    *c = v;
}

/* ---- packing ------------------------------------------------------------------------------ */

/* dst[z][p][k][i] = src(z, p*W + i, k0 + k) for i < W, 0 where p*W + i >= R, with
 * src(z, r, kk) = src[(z + kk / kin) * batch_src + r*rs + (kk % kin)*ks]: a k index past kin
 * steps on to the next batch item, so that a sum over the batch is one long K (kin = K otherwise).
 * One work-item per (PACK_KB k's, panel): its output is one contiguous (PACK_KB, W) block, and it
 * reads along the smaller of the two source strides in its inner loop, so a gather of rows at a
 * power-of-two pitch touches one source line at a time (not W lines in one cache set). */
#ifndef PACK_KB
#error "build with -D PACK_KB (shared_constants.PACK_KB)"
#endif
__kernel void gemm_pack(int R, int K, int W, int rs, int ks, int batch_src, int batch_dst, int kin, int k0,
                        __global const float *src, const int src_off, __global float *dst, const int dst_off)
{
    src += src_off; dst += dst_off;
    const int kb = get_global_id(0) * PACK_KB, p = get_global_id(1), z = get_global_id(2);
    if (kb >= K || p * W >= R)
        return;
    const int nk = min(PACK_KB, K - kb), rows = min(W, R - p * W);
    long so[PACK_KB];  /* source offset of each k of the block */
    int kz = (k0 + kb) / kin, kr = k0 + kb - kz * kin;  /* batch item and k within it */
    for (int j = 0; j < nk; ++j) {
        so[j] = (long)(z + kz) * batch_src + (long)kr * ks;
        if (++kr == kin) {
            kr = 0;
            ++kz;
        }
    }
    const __global float *s = src + (long)p * W * rs;
    __global float *d = dst + (long)z * batch_dst + ((long)p * K + kb) * W;
    if (ks <= rs) {
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < nk; ++j)
                d[j * W + i] = s[(long)i * rs + so[j]];
    } else {
        for (int j = 0; j < nk; ++j)
            for (int i = 0; i < rows; ++i)
                d[j * W + i] = s[(long)i * rs + so[j]];
    }
    for (int j = 0; j < nk; ++j)
        for (int i = rows; i < W; ++i)
            d[j * W + i] = 0.0f;
}

/* gemm_pack's panels of a source whose op rows or k's are contiguous, rs == 1 or ks == 1
 * (pack_block's caller passes that stride as a literal 1, so inlining makes it constant), with no
 * batch of panels; k may wrap into the next batch item at every kin rows (a sum over the batch)
 * when kin and k0 are multiples of PACK_KB, so that no block straddles two items. One work-item
 * per (PACK_KB k's, panel), over a (k blocks, panels) grid. A whole block is straight-line code
 * at compile-time PW: LLVM turns the runs of PW (rs == 1) or PACK_KB (ks == 1) source floats
 * into vector loads and the contiguous PACK_KB x PW output into vector stores (gemm_pack's
 * runtime W kept it scalar, at a quarter to a half of the memory's bandwidth). */
inline void pack_block(const int PW, int R, int K, const int rs, const int ks, int k0, int kin, int batch_src,
                       __global const float *src, __global float *dst)
{
    const int kb = get_global_id(0) * PACK_KB, p = get_global_id(1);
    if (kb >= K || p * PW >= R)
        return;
    const int z = (k0 + kb) / kin, kr = k0 + kb - z * kin;
    const __global float *s = src + (long)z * batch_src + (long)p * PW * rs + (long)kr * ks;
    __global float *d = dst + ((long)p * K + kb) * PW;
    const int rows = min(PW, R - p * PW), nk = min(PACK_KB, K - kb);
    if (rows == PW && nk == PACK_KB) {
        for (int j = 0; j < PACK_KB; ++j)
            for (int i = 0; i < PW; ++i)
                d[j * PW + i] = s[(long)i * rs + (long)j * ks];
        return;
    }
    for (int j = 0; j < nk; ++j)
        for (int i = 0; i < PW; ++i)
            d[j * PW + i] = i < rows ? s[(long)i * rs + (long)j * ks] : 0.0f;
}

#define PACK_BLOCK_KERNEL(NAME, PW, RS, KS)                                                         \
    __kernel void NAME(int R, int K, int stride, int k0, int kin, int batch_src,                    \
                       __global const float *src, const int src_off, __global float *dst, const int dst_off) \
    {                                                                                                \
        pack_block(PW, R, K, RS, KS, k0, kin, batch_src, src + src_off, dst + dst_off);             \
    }
/* stride: the source's other stride (ks for the rows kernels, rs for the ks1 ones) */
PACK_BLOCK_KERNEL(gemm_pack_rows_a, MR, 1, stride)
PACK_BLOCK_KERNEL(gemm_pack_rows_b, NR, 1, stride)
PACK_BLOCK_KERNEL(gemm_pack_ks1_a, MR, stride, 1)
PACK_BLOCK_KERNEL(gemm_pack_ks1_b, NR, stride, 1)

/* ---- CPU: register-blocked kernel on packed panels ----------------------------------------- */

#define LOADBU_J(i, j) const vecf b##j = bp[j];  /* gemm_implicit's rows: unaligned runs */
#define AOFF(i) const long oa##i = a_rows ? arow[min(m0 + i, M - 1)] : (long)min(i, M - 1 - m0) * sai;
#define STORE_J(i, j) store_row(cr + LANES * j, bias, m0 + i, n0 + LANES * j, N - n0 - LANES * j, c##i##_##j, \
                                bias_mode, relu, accumulate);
#define STORE_ROW(i) if (m0 + i < M) { __global float *cr = c + (long)(m0 + i) * ldc; FOR_NV(STORE_J, i) }

/* C[m][n + j] for j < min(LANES, cols), from the lanes of v. */
inline void store_row(__global float *c, const __global float *bias, int m, int n, int cols,
                      vecf v, int bias_mode, int relu, int accumulate)
{
    if (cols >= LANES) {  /* store_c's epilogue on all lanes at once (the scalar loop cost more
                           * than the product itself for conv1's K = 27) */
        if (accumulate)
            v += VLOAD(0, c);
        if (bias_mode == BIAS_PER_COLUMN)
            v += VLOAD(0, bias + n);
        else if (bias_mode == BIAS_PER_ROW)
            v += bias[m];
        if (relu)
            v = fmax(v, (vecf)(0.0f));
        VSTORE(v, 0, c);
        return;
    }
    float t[LANES];
    VSTORE(v, 0, t);
    for (int j = 0; j < min(cols, LANES); ++j)
        store_c(c + j, bias, m, n + j, t[j], bias_mode, relu, accumulate);
}
/* gemm_implicit's store of v, positions q .. q + LANES - 1 (q = oh * Wp + ow, below N), into row m
 * of C, (OH, OW) row-major at c: one vector store where the lanes are one run of valid columns, else
 * the epilogue on the vector and the valid lanes' runs stored one float at a time (in C the end of
 * row oh and the start of row oh + 1 are adjacent, so each run lands at oh * OW + ow on). */
inline void store_mapped(__global float *c, const __global float *bias, int m, int q, int N, int OW, int Wp,
                         vecf v, int bias_mode, int relu)
{
    const int oh = q / Wp, ow = q - oh * Wp;
    if (ow + LANES <= OW) {
        store_row(c + oh * OW + ow, bias, m, oh * OW + ow, LANES, v, bias_mode, relu, 0);
        return;
    }
    if (bias_mode == BIAS_PER_ROW)
        v += bias[m];
    if (relu)
        v = fmax(v, (vecf)(0.0f));
    float t[LANES];
    VSTORE(v, 0, t);
    const int end = min(LANES, N - q);
    for (int r = 0, s = -ow; s < end; ++r, s += Wp) {  /* lanes s .. s + OW - 1 are row oh + r's */
        __global float *row = c + (oh + r) * OW - s;
        for (int j = max(s, 0); j < min(s + OW, end); ++j)
            row[j] = t[j];
    }
}
#define STORE_MAPPED_J(i, j) if (n0 + LANES * j < N) store_mapped(cr, bias, m0 + i, n0 + LANES * j, N, OW, Wp, \
                                                               c##i##_##j, bias_mode, relu);
#define STORE_MAPPED_ROW(i) if (m0 + i < M) { __global float *cr = c + (long)(m0 + i) * ldc; FOR_NV(STORE_MAPPED_J, i) }
/* One MR x NR block of C[z] per work-item: m-block get_global_id(0), n-block get_global_id(1).
 * Ap holds ceil(M/MR) panels (K, MR) per batch item, Bp ceil(N/NR) panels (K, NR).
 * PoCL runs the work-items of a group one after another, m-block fastest: they share one B panel
 * and the group's few A panels, which stay in L2 for K up to ~1000 (gemm.py splits a longer K into
 * launches over chunks of it; a chunk loop in here, with a barrier per chunk to interleave the
 * work-items, measured no faster). */
__kernel WIDE void gemm_packed(int M, int N, int K, int ldc, int sai, int sak, int aps, int batch_ap, int ldbp,
                          int bps, int batch_bp, int batch_c, int bias_mode, int relu, int accumulate, int a_rows,
                          __global const float *Ap, const int Ap_off,
                          __global const float *Bp, const int Bp_off, __global const int *arow, const int arow_off,
                          __global const float *bias, const int bias_off, __global float *c, const int c_off)
{
    Ap += Ap_off; Bp += Bp_off; arow += arow_off; bias += bias_off; c += c_off;
    const int bm = get_global_id(0), bn = get_global_id(1), z = get_global_id(2);
    const int m0 = bm * MR, n0 = bn * NR;
    if (m0 >= M || n0 >= N)
        return;
    /* Row i of A block bm at k: ap[i*sai + k*sak]: packed (sai = 1, sak = MR, aps = K*MR), or A
     * itself (its strides, aps = MR*sam), or with a_rows, ap[arow[m0 + i] + k] (rows anywhere, aps = 0,
     * sak = 1: a convolution's columns read from its padded input); rows past M read row M-1 and
     * are never stored. */
    const __global float *ap = Ap + (long)z * batch_ap + (long)bm * aps;
    FOR_MR(AOFF)
    /* B panel bn's row k at bp + k*ldbp: packed (ldbp = NR, bps = K*NR), or B itself when it is
     * row-major with N % NR == 0 and vector-aligned rows (ldbp = ldb, bps = NR). */
    const __global float *bp = Bp + (long)z * batch_bp + (long)bn * bps;
    FOR_MR(DECL)
    for (int k = 0; k < K; ++k) {
        FOR_NV(LOADB_J, 0)
        FOR_MR(FMA)
        ap += sak;
        bp += ldbp;
    }
    c += (long)z * batch_c + n0;
    FOR_MR(STORE_ROW)
}
/* Implicit GEMM for a stride-1 convolution (conv.py): B is never materialised. Its rows are
 * shifted copies of a zero-padded input, xp (N, C, Hp, Wp) from conv.cl's conv_pad_planes, seen
 * over positions q = oh * Wp + ow (N = OH * Wp): row k = (c, kh, kw) of image z is
 * xp[z * batch_bp + koff[k] + q], koff[k] = c*Hp*Wp + kh*DH*Wp + kw*DW, one contiguous unaligned
 * run per k (a tap reading past a row's end lands in the next row's left padding, a zero). The
 * columns ow >= OW are computed and dropped: the stores write C (OC, OH*OW) per image, ldc apart
 * rows. A as in gemm_packed (packed, or in place through its strides). */
__kernel WIDE void gemm_implicit(int M, int N, int K, int OW, int Wp, int ldc, int sai, int sak, int aps,
                                 int batch_bp, int batch_c, int bias_mode, int relu,
                                 __global const float *Ap, const int Ap_off,
                                 __global const float *Bp, const int Bp_off,
                                 __global const int *koff, const int koff_off,
                                 __global const float *bias, const int bias_off, __global float *c, const int c_off)
{
    Ap += Ap_off; Bp += Bp_off; koff += koff_off; bias += bias_off; c += c_off;
    const int bm = get_global_id(0), bn = get_global_id(1), z = get_global_id(2);
    const int m0 = bm * MR, n0 = bn * NR;
    if (m0 >= M || n0 >= N)
        return;
    const __global float *ap = Ap + (long)bm * aps;
    FOR_MR(AOFF_STRIDED)
    const __global float *bz = Bp + (long)z * batch_bp + n0;
    FOR_MR(DECL)
    for (int k = 0; k < K; ++k) {
        const __global vecfu *bp = (const __global vecfu *)(bz + koff[k]);
        FOR_NV(LOADBU_J, 0)
        FOR_MR(FMA)
        ap += sak;
    }
    c += (long)z * batch_c;
    FOR_MR(STORE_MAPPED_ROW)
}
/* ---- GPU: local-memory tiles, register-blocked --------------------------------------------- */
/* One TM x TN tile of C[get_group_id(2)] per work-group of (GX, GY); work-item (tx, ty) owns rows
 * ty + i*GY and columns tx + j*GX, so its stores and local reads are spread over neighbours. */
__kernel __attribute__((reqd_work_group_size(GX, GY, 1)))
void gemm_tiled(int M, int N, int K, int sam, int sak, int sbk, int sbn, int ldc, int batch_a, int batch_b,
                int batch_c, int bias_mode, int relu, int accumulate,
                __global const float *a, const int a_off, __global const float *b, const int b_off,
                __global const float *bias, const int bias_off, __global float *c, const int c_off)
{
    a += a_off; b += b_off; bias += bias_off; c += c_off;
    __local float As[TK][TM + 1];  /* +1: a column of the tile does not hit one bank */
    __local float Bs[TK][TN + 1];
    const int tx = get_local_id(0), ty = get_local_id(1), lid = ty * GX + tx;
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM, z = get_group_id(2);
    a += (long)z * batch_a;
    b += (long)z * batch_b;
    float acc[WM][WN];
    for (int i = 0; i < WM; ++i)
        for (int j = 0; j < WN; ++j)
            acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TK) {
        /* Neighbouring work-items load along whichever index is contiguous in memory. */
        for (int e = lid; e < TM * TK; e += GX * GY) {
            const int m = sak == 1 ? e / TK : e % TM, k = sak == 1 ? e % TK : e / TM;
            const int gm = m0 + m, gk = k0 + k;
            As[k][m] = gm < M && gk < K ? a[(long)gm * sam + (long)gk * sak] : 0.0f;
        }
        for (int e = lid; e < TN * TK; e += GX * GY) {
            const int n = sbn == 1 ? e % TN : e / TK, k = sbn == 1 ? e / TN : e % TK;
            const int gn = n0 + n, gk = k0 + k;
            Bs[k][n] = gn < N && gk < K ? b[(long)gk * sbk + (long)gn * sbn] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TK; ++k) {
            float av[WM], bv[WN];
            for (int i = 0; i < WM; ++i)
                av[i] = As[k][ty + i * GY];
            for (int j = 0; j < WN; ++j)
                bv[j] = Bs[k][tx + j * GX];
            for (int i = 0; i < WM; ++i)
                for (int j = 0; j < WN; ++j)
                    acc[i][j] += av[i] * bv[j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    c += (long)z * batch_c;
    for (int i = 0; i < WM; ++i) {
        const int m = m0 + ty + i * GY;
        for (int j = 0; j < WN; ++j) {
            const int n = n0 + tx + j * GX;
            if (m < M && n < N)
                store_c(c + (long)m * ldc + n, bias, m, n, acc[i][j], bias_mode, relu, accumulate);
        }
    }
}