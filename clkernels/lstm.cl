/* Fused LSTM cell, PyTorch's gate order (i, f, g, o), over the (B, H) state.
 * Forward: from the gate pre-activations (x W_ih^T + h W_hh^T + b, (B, 4H)) compute the gates,
 * c' = f*c + i*g and h' = o*tanh(c'); the activated gates overwrite the pre-activations in place,
 * so backward needs nothing else but c and c_prev.
 * Backward: from dh (output grad + recurrent grad) and dc, the pre-activation gate grads and dc_prev.
 * lstm_cell_fwd / lstm_cell_bwd: one work item handles VW consecutive columns of one row with float8
 * math (PoCL vectorises exp and tanh only on vector types: ~7x faster than scalar); the last partial
 * block of a row goes scalar. lstm_step_fwd / lstm_step_bwd (the CPU path) fuse each step's
 * recurrent product with the cell: the cell runs on the GEMM's accumulators.
 * Offsets are in elements; every (B, H) / (B, 4H) operand is contiguous from its offset. */
#include "common.h"
#include "gemm_block.h"

#ifndef VW
#error "build with -D VW (shared_constants.LSTM_VW)"
#endif

#define SIGMOID(x) (1.0f / (1.0f + exp(-(x))))

/* The cell's math on one vector or one float of units, any type T: i, f, g, o hold the
 * pre-activations and leave as the activations; cn and hn are the new c and h. */
#define CELL_FWD(i, f, g, o, cp, cn, hn)                                                          \
    { i = SIGMOID(i); f = SIGMOID(f); g = tanh(g); o = SIGMOID(o); cn = f * (cp) + i * g; hn = o * tanh(cn); }
/* From the activations, tanh(c) tc, dh and dc (the grad of c from the step after; it leaves as the
 * grad of c_prev), the pre-activation gate grads dgi .. dgo. */
#define CELL_BWD(T, i, f, g, o, tc, cp, dh, dc, dgi, dgf, dgg, dgo)                               \
    { const T dcn = (dc) + (dh) * o * (1.0f - tc * tc);                                          \
      dgi = dcn * g * i * (1.0f - i); dgf = dcn * (cp) * f * (1.0f - f);                         \
      dgg = dcn * i * (1.0f - g * g); dgo = (dh) * tc * o * (1.0f - o); dc = dcn * f; }

__kernel void lstm_cell_fwd(const int B, const int H, __global const float *c_prev, const int c_prev_off,
                            __global float *gates, const int gates_off, /* (B, 4H): in pre-act,
                            out act */ __global float *c, const int c_off,
                            __global float *h, const int h_off)
{
    int nb = (H + VW - 1) / VW;  /* column blocks per row */
    int t = get_global_id(0);
    if (t >= B * nb) return;
    int b = t / nb, j = (t - b * nb) * VW;
    __global float *gr = gates + gates_off + (long)b * 4 * H + j;
    long e = (long)b * H + j;
    if (j + VW <= H) {
        float8 i = vload8(0, gr), f = vload8(0, gr + H), g = vload8(0, gr + 2 * H), o = vload8(0, gr + 3 * H);
        float8 cn, hn;
        CELL_FWD(i, f, g, o, vload8(0, c_prev + c_prev_off + e), cn, hn)
        vstore8(i, 0, gr);
        vstore8(f, 0, gr + H);
        vstore8(g, 0, gr + 2 * H);
        vstore8(o, 0, gr + 3 * H);
        vstore8(cn, 0, c + c_off + e);
        vstore8(hn, 0, h + h_off + e);
        return;
    }
    for (int k = 0; k < H - j; ++k) {
        float i = gr[k], f = gr[H + k], g = gr[2 * H + k], o = gr[3 * H + k], cn, hn;
        CELL_FWD(i, f, g, o, c_prev[c_prev_off + e + k], cn, hn)
        gr[k] = i;
        gr[H + k] = f;
        gr[2 * H + k] = g;
        gr[3 * H + k] = o;
        c[c_off + e + k] = cn;
        h[h_off + e + k] = hn;
    }
}

/* dh = dh_out[t] + dh_rec; dc (in: grad of c_t from step t+1, out: grad of c_{t-1}) is updated in
 * place, which is safe because each work item reads and writes only its own elements. */
__kernel void lstm_cell_bwd(const int B, const int H, __global const float *gates, const int gates_off,
                            /* (B, 4H) activated */ __global const float *c, const int c_off,
                            __global const float *c_prev, const int c_prev_off,
                            __global const float *dh_out, const int dh_out_off,
                            __global const float *dh_rec, const int dh_rec_off,
                            __global float *dc, const int dc_off,
                            __global float *dgates, const int dgates_off)
{
    dh_rec += dh_rec_off; dc += dc_off;
    int nb = (H + VW - 1) / VW;
    int t = get_global_id(0);
    if (t >= B * nb) return;
    int b = t / nb, j = (t - b * nb) * VW;
    long row = (long)b * 4 * H + j, e = (long)b * H + j;
    __global const float *gr = gates + gates_off + row;
    __global float *dg = dgates + dgates_off + row;
    if (j + VW <= H) {
        float8 i = vload8(0, gr), f = vload8(0, gr + H), g = vload8(0, gr + 2 * H), o = vload8(0, gr + 3 * H);
        float8 tc = tanh(vload8(0, c + c_off + e));
        float8 dh = vload8(0, dh_out + dh_out_off + e) + vload8(0, dh_rec + e);
        float8 dcv = vload8(0, dc + e), dgi, dgf, dgg, dgo;
        CELL_BWD(float8, i, f, g, o, tc, vload8(0, c_prev + c_prev_off + e), dh, dcv, dgi, dgf, dgg, dgo)
        vstore8(dgi, 0, dg);
        vstore8(dgf, 0, dg + H);
        vstore8(dgg, 0, dg + 2 * H);
        vstore8(dgo, 0, dg + 3 * H);
        vstore8(dcv, 0, dc + e);
        return;
    }
    for (int k = 0; k < H - j; ++k) {
        float i = gr[k], f = gr[H + k], g = gr[2 * H + k], o = gr[3 * H + k];
        float tc = tanh(c[c_off + e + k]);
        float dh = dh_out[dh_out_off + e + k] + dh_rec[e + k];
        float dcv = dc[e + k];
        CELL_BWD(float, i, f, g, o, tc, c_prev[c_prev_off + e + k], dh, dcv, dg[k], dg[H + k], dg[2 * H + k],
                 dg[3 * H + k])
        dc[e + k] = dcv;
    }
}

/* ---- one step fused: the recurrent product, then the cell on its accumulators (CPU path) -------- */

/* The block's product over K: rows m0 .. of a row-major A read in place from a_rows (row i at
 * oa<i> = i * sai, k contiguous; M, m0 and sai in scope) times one B panel of NR floats a row at
 * panel, into the accumulators c<i>_<j>. */
#define STEP_PRODUCT(a_rows, panel, K)                                                              \
    const __global float *ap = (a_rows);                                                           \
    FOR_MR(AOFF_STRIDED)                                                                           \
    const __global float *bp = (panel);                                                            \
    FOR_MR(DECL)                                                                                   \
    for (int k = 0; k < (K); ++k) {                                                                \
        FOR_NV(LOADB_J, 0)                                                                         \
        FOR_MR(FMA)                                                                                \
        ++ap;                                                                                      \
        bp += NR;                                                                                  \
    }

/* Step t forward: pre = gates[t] (x W_ih^T + b, from the input GEMM) + h_{t-1} W_hh^T, then the
 * cell. One work-item takes MR rows (m0 ..) and the LANES units u0 = p * LANES .. of panel p, all
 * four gates: built with NV 4, its accumulators c<i>_0 .. c<i>_3 are row i's i, f, g, o vectors.
 * W_hh is laid out by lstm.py as wp (P, H, 4, LANES): panel p's row k holds the i, f, g, o weights
 * of its units from h[k], zero for units past H. */
inline void step_cell_fwd(vecf pi, vecf pf, vecf pg, vecf po, int H, int u0, __global const float *cp,
                          __global float *gr, __global float *c, __global float *h)
{
    if (u0 + LANES <= H) {
        pi += VLOAD(0, gr + u0); pf += VLOAD(0, gr + H + u0);
        pg += VLOAD(0, gr + 2 * H + u0); po += VLOAD(0, gr + 3 * H + u0);
        vecf cn, hn;
        CELL_FWD(pi, pf, pg, po, VLOAD(0, cp + u0), cn, hn)
        VSTORE(pi, 0, gr + u0); VSTORE(pf, 0, gr + H + u0);
        VSTORE(pg, 0, gr + 2 * H + u0); VSTORE(po, 0, gr + 3 * H + u0);
        VSTORE(cn, 0, c + u0);
        VSTORE(hn, 0, h + u0);
        return;
    }
    float t[4][LANES];
    VSTORE(pi, 0, t[0]); VSTORE(pf, 0, t[1]); VSTORE(pg, 0, t[2]); VSTORE(po, 0, t[3]);
    for (int u = u0; u < H; ++u) {
        float i = t[0][u - u0] + gr[u], f = t[1][u - u0] + gr[H + u];
        float g = t[2][u - u0] + gr[2 * H + u], o = t[3][u - u0] + gr[3 * H + u], cn, hn;
        CELL_FWD(i, f, g, o, cp[u], cn, hn)
        gr[u] = i; gr[H + u] = f; gr[2 * H + u] = g; gr[3 * H + u] = o;
        c[u] = cn;
        h[u] = hn;
    }
}

/* wp[p][k][g][u] = W_hh[g*H + p*LANES + u][k], zero for units p*LANES + u >= H: one work-item per
 * (k, p) writes its 4 x LANES floats (a 4-D permute through strided copies ran at 1 GB/s). */
__kernel void lstm_gate_panels(const int H, __global const float *w, const int w_off,
                               __global float *wp, const int wp_off)
{
    w += w_off; wp += wp_off;
    const int k = get_global_id(0), p = get_global_id(1);
    if (k >= H || p * LANES >= H)
        return;
    __global float *d = wp + ((long)p * H + k) * 4 * LANES;
    for (int g = 0; g < 4; ++g)
        for (int u = 0; u < LANES; ++u) {
            const int unit = p * LANES + u;
            d[g * LANES + u] = unit < H ? w[((long)g * H + unit) * H + k] : 0.0f;
        }
}

#define STEP_FWD_ROW(i) if (m0 + i < M) {                                                          \
    const long r = m0 + i;                                                                         \
    step_cell_fwd(c##i##_0, c##i##_1, c##i##_2, c##i##_3, H, u0, c_prev + r * H, gates + r * 4 * H, \
                  c + r * H, h + r * H); }

#if NV == 4
__kernel WIDE void lstm_step_fwd(const int B, const int H, __global const float *h_prev, const int h_prev_off,
                                 __global const float *wp, const int wp_off,
                                 __global const float *c_prev, const int c_prev_off,
                                 __global float *gates, const int gates_off,
                                 __global float *c, const int c_off, __global float *h, const int h_off)
{
    h_prev += h_prev_off; wp += wp_off; c_prev += c_prev_off; gates += gates_off; c += c_off; h += h_off;
    const int M = B, sai = H, m0 = get_global_id(0) * MR, u0 = get_global_id(1) * LANES;
    if (m0 >= M || u0 >= H)
        return;
    STEP_PRODUCT(h_prev + (long)m0 * H, wp + (long)get_global_id(1) * H * NR, H)
    FOR_MR(STEP_FWD_ROW)
}
#endif

/* Step t backward: dh = dh_out[t] + dgates[t+1] W_hh, then the cell's backward, for the MR rows
 * m0 .. and NR units n0 .. of one work-item. W_hh (4H, H) comes as gemm_pack's B panels
 * (ceil(H/NR), 4H, NR), as gemm.pack_b lays it; the (B, 4H) dgates of step t+1 is read in place. */
inline void step_cell_bwd(vecf dh, int H, int u, __global const float *gr, __global const float *c,
                          __global const float *cp, __global const float *dh_out, __global float *dc,
                          __global float *dg)
{
    if (u + LANES <= H) {
        vecf i = VLOAD(0, gr + u), f = VLOAD(0, gr + H + u), g = VLOAD(0, gr + 2 * H + u);
        vecf o = VLOAD(0, gr + 3 * H + u), tc = tanh(VLOAD(0, c + u)), dcv = VLOAD(0, dc + u);
        vecf dgi, dgf, dgg, dgo;
        dh += VLOAD(0, dh_out + u);
        CELL_BWD(vecf, i, f, g, o, tc, VLOAD(0, cp + u), dh, dcv, dgi, dgf, dgg, dgo)
        VSTORE(dgi, 0, dg + u); VSTORE(dgf, 0, dg + H + u);
        VSTORE(dgg, 0, dg + 2 * H + u); VSTORE(dgo, 0, dg + 3 * H + u);
        VSTORE(dcv, 0, dc + u);
        return;
    }
    float t[LANES];
    VSTORE(dh, 0, t);
    for (int k = u; k < H; ++k) {  /* the partial vector: u + LANES > H */
        float i = gr[k], f = gr[H + k], g = gr[2 * H + k], o = gr[3 * H + k], tc = tanh(c[k]);
        float dhk = t[k - u] + dh_out[k], dcv = dc[k];
        CELL_BWD(float, i, f, g, o, tc, cp[k], dhk, dcv, dg[k], dg[H + k], dg[2 * H + k], dg[3 * H + k])
        dc[k] = dcv;
    }
}

#define STEP_BWD_J(i, j) if (n0 + LANES * j < H)                                                  \
    step_cell_bwd(c##i##_##j, H, n0 + LANES * j, gates + r * 4 * H, c + r * H, c_prev + r * H,       \
                  dh_out + r * H, dc + r * H, dgates + r * 4 * H);
#define STEP_BWD_ROW(i) if (m0 + i < M) { const long r = m0 + i; FOR_NV(STEP_BWD_J, i) }

__kernel WIDE void lstm_step_bwd(const int B, const int H, __global const float *dg_next, const int dg_next_off,
                                 __global const float *wp, const int wp_off,
                                 __global const float *gates, const int gates_off,
                                 __global const float *c, const int c_off,
                                 __global const float *c_prev, const int c_prev_off,
                                 __global const float *dh_out, const int dh_out_off,
                                 __global float *dc, const int dc_off, __global float *dgates, const int dgates_off)
{
    dg_next += dg_next_off; wp += wp_off; gates += gates_off; c += c_off; c_prev += c_prev_off;
    dh_out += dh_out_off; dc += dc_off; dgates += dgates_off;
    const int M = B, K = 4 * H, sai = K, m0 = get_global_id(0) * MR, n0 = get_global_id(1) * NR;
    if (m0 >= M || n0 >= H)
        return;
    STEP_PRODUCT(dg_next + (long)m0 * K, wp + (long)get_global_id(1) * K * NR, K)
    FOR_MR(STEP_BWD_ROW)
}

/* The bias gradient: column sums of dgates (R, N) = (T*B, 4H). Each work item sums one VW-column
 * block over a chunk of RC rows into out[chunk, :]; a second launch with RC >= R sums the chunks.
 * Short chunks keep each work-group's rows in cache (one long strided walk per column block is
 * ~5x slower on a CPU, and a ones-row GEMM ~5x slower too). */
__kernel void lstm_bias_bwd(const int R, const int N, const int RC, __global const float *x, const int x_off,
                            __global float *out, const int out_off)
{
    x += x_off; out += out_off;
    int nb = (N + VW - 1) / VW;
    int nc = (R + RC - 1) / RC;
    int t = get_global_id(0);
    if (t >= nb * nc) return;
    int chunk = t / nb, j = (t - chunk * nb) * VW;
    int r0 = chunk * RC, r1 = min(R, r0 + RC);
    __global float *dst = out + (long)chunk * N + j;
    if (j + VW <= N) {
        float8 acc = (float8)(0.0f);
        for (int r = r0; r < r1; ++r)
            acc += vload8(0, x + (long)r * N + j);
        vstore8(acc, 0, dst);
        return;
    }
    for (int k = 0; k < N - j; ++k) {
        float acc = 0.0f;
        for (int r = r0; r < r1; ++r)
            acc += x[(long)r * N + j + k];
        dst[k] = acc;
    }
}
