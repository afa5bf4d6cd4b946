/* Row sort of a contiguous (rows, L) tensor by a bitonic network over (value, index) pairs padded to
 * P = next power of two: the index breaks every tie, so the order is total and the sort is stable
 * (equal values keep their input order, ascending or descending), as torch's stable sort.
 * NaN is larger than every number (last ascending, first descending); padding is always last.
 * sort_init copies a row into the (rows, P) scratch. sort_block runs, per block of SB pairs in local
 * memory, every stage with j < SB (all of them when P <= SB: one launch sorts the rows); for longer
 * rows each further k needs sort_step launches (one compare-exchange stage (j, k) in global memory)
 * for j >= SB, then one sort_block for the rest. sort_out writes the first L pairs back.
 * -D T storage type, KT the scratch keys' type (float for half); -D DESCENDING=0|1; -D SB block size (a power of two; SB / 2 work-items). */
#include "common.h"

#ifndef T
#define T float
#endif
#ifndef KT
#define KT T
#endif
#ifndef DESCENDING
#define DESCENDING 0
#endif

#ifndef SB
#define SB 256
#endif

#define ISNAN(v) isnan((float)(v))

/* Does (a, ia) come before (b, ib)? Padding (index >= L) comes last. */
inline int before(KT a, long ia, KT b, long ib, int L)
{
    if (ia >= L || ib >= L)
        return ia < ib;
    const int na = ISNAN(a), nb = ISNAN(b);
    if (na || nb) {
        if (na && nb)
            return ia < ib;
        return DESCENDING ? na : nb;
    }
#if DESCENDING
    return a > b || (a == b && ia < ib);
#else
    return a < b || (a == b && ia < ib);
#endif
}

__kernel void sort_init(const int rows, const int L, const int P, __global const T *x, const int x_off,
                        __global KT *keys, const int keys_off, __global long *idx, const int idx_off)
{
    x += x_off; keys += keys_off; idx += idx_off;
    const int t = get_global_id(0);
    if (t >= rows * P)
        return;
    const int r = t / P, i = t % P;
    keys[t] = i < L ? (KT)LOAD(T, x, (long)r * L + i) : (KT)0;
    idx[t] = i;
}

__kernel void sort_step(const int rows, const int L, const int P, const int j, const int k,
                        __global KT *keys, const int keys_off, __global long *idx, const int idx_off)
{
    keys += keys_off; idx += idx_off;
    const int t = get_global_id(0);
    if (t >= rows * (P / 2))
        return;
    /* the t-th pair of this stage: i has bit j clear, its partner i ^ j has it set */
    const int r = t / (P / 2), h = t % (P / 2);
    const int i = (h / j) * 2 * j + h % j, p = i + j;
    const long a = (long)r * P + i, b = (long)r * P + p;
    const int up = (i & k) == 0;
    const KT ka = keys[a], kb = keys[b];
    const long ia = idx[a], ib = idx[b];
    const int in_order = up ? before(ka, ia, kb, ib, L) : before(kb, ib, ka, ia, L);
    if (!in_order) {
        keys[a] = kb; keys[b] = ka;
        idx[a] = ib; idx[b] = ia;
    }
}

/* One work-group per block of SB consecutive positions of the flat (rows, P) scratch: a block holds
 * SB / P whole rows when P < SB, or a part of one row (P a multiple of SB); positions past the end
 * are padding. k_lo == 2: the full network up to k_hi = min(P, SB) (the first pass); k_lo == k_hi > SB:
 * the stages j < SB of stage k (after sort_step's larger j). The direction of a pair comes from its
 * position within its row. */
__kernel __attribute__((reqd_work_group_size(SB / 2, 1, 1)))
void sort_block(const int rows, const int L, const int P, const int k_lo, const int k_hi,
                __global KT *keys, const int keys_off, __global long *idx, const int idx_off)
{
    keys += keys_off; idx += idx_off;
    __local KT lk[SB];
    __local long li[SB];
    const int lid = get_local_id(0);
    const long base = (long)get_group_id(0) * SB, total = (long)rows * P;
    for (int t = lid; t < SB; t += SB / 2) {
        const int real = base + t < total;
        lk[t] = real ? keys[base + t] : (KT)0;
        li[t] = real ? idx[base + t] : (long)P + t;  /* past the end: padding, sorted last */
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = k_lo; k <= k_hi; k <<= 1) {
        for (int j = min(k, SB) >> 1; j > 0; j >>= 1) {
            const int i = (lid / j) * 2 * j + lid % j, p = i + j;
            const int up = ((int)((base + i) & (P - 1)) & k) == 0;  /* i within its row */
            const KT ka = lk[i], kb = lk[p];
            const long ia = li[i], ib = li[p];
            const int in_order = up ? before(ka, ia, kb, ib, L) : before(kb, ib, ka, ia, L);
            if (!in_order) {
                lk[i] = kb; lk[p] = ka;
                li[i] = ib; li[p] = ia;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }
    for (int t = lid; t < SB; t += SB / 2)
        if (base + t < total) {
            keys[base + t] = lk[t];
            idx[base + t] = li[t];
        }
}

/* The CPU path: a work-item merge-sorts its row of the scratch, bottom-up, ping-ponging with a second
 * scratch (keys2, idx2); the pairs' order is total, so the result equals the network's. */
__kernel void sort_rows_serial(const int rows, const int L, const int P,
                               __global KT *keys, const int keys_off, __global long *idx, const int idx_off,
                               __global KT *keys2, const int keys2_off, __global long *idx2, const int idx2_off)
{
    keys += keys_off; idx += idx_off; keys2 += keys2_off; idx2 += idx2_off;
    const int r = get_global_id(0);
    if (r >= rows)
        return;
    __global KT *ka = keys + (long)r * P, *kb = keys2 + (long)r * P;
    __global long *ia = idx + (long)r * P, *ib = idx2 + (long)r * P;
    for (int w = 1; w < L; w *= 2) {
        for (int lo = 0; lo < L; lo += 2 * w) {
            const int mid = min(lo + w, L), hi = min(lo + 2 * w, L);
            int a = lo, b = mid, o = lo;
            while (a < mid && b < hi) {
                if (before(ka[b], ia[b], ka[a], ia[a], L)) { kb[o] = ka[b]; ib[o++] = ia[b++]; }
                else { kb[o] = ka[a]; ib[o++] = ia[a++]; }
            }
            while (a < mid) { kb[o] = ka[a]; ib[o++] = ia[a++]; }
            while (b < hi) { kb[o] = ka[b]; ib[o++] = ia[b++]; }
        }
        __global KT *kt = ka; ka = kb; kb = kt;
        __global long *it = ia; ia = ib; ib = it;
    }
    if (ka != keys + (long)r * P)  /* the result is in the second scratch: copy it back */
        for (int i = 0; i < L; ++i) {
            kb[i] = ka[i];
            ib[i] = ia[i];
        }
}

/* values/indices (rows, K) = the sorted pairs at positions start .. start+K-1 of each row, or at
 * the row's own position pos[r] (K == 1) when PICK is set (median). */
__kernel void sort_out(const int rows, const int P, const int K, const int start,
                       __global const KT *keys, const int keys_off, __global const long *idx, const int idx_off,
                       __global const long *pos, const int pos_off,
                       __global T *values, const int values_off, __global long *indices, const int indices_off)
{
    keys += keys_off; idx += idx_off; pos += pos_off; values += values_off; indices += indices_off;
    const int t = get_global_id(0);
    if (t >= rows * K)
        return;
    const int r = t / K, c = t % K;
#ifdef PICK
    const long s = (long)r * P + pos[r];
#else
    const long s = (long)r * P + start + c;
#endif
    STORE(T, values, t, keys[s]);
    indices[t] = idx[s];
}

/* gx (rows, L), zero-filled, gets g (rows, K) at the picked indices: the gradient of every
 * sort-based selection (the indices of a row are distinct, so no two items write one place). */
__kernel void sort_scatter_bwd(const int rows, const int K, const int L,
                               __global const T *g, const int g_off, __global const long *idx, const int idx_off,
                               __global T *gx, const int gx_off)
{
    g += g_off; idx += idx_off; gx += gx_off;
    const int t = get_global_id(0);
    if (t >= rows * K)
        return;
    STORE(T, gx, (long)(t / K) * L + idx[t], LOAD(T, g, t));
}
