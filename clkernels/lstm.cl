/* Fused LSTM cell, PyTorch's gate order (i, f, g, o), over the (B, H) state.
 * Forward: from the gate pre-activations (x W_ih^T + h W_hh^T + b, (B, 4H)) compute the gates,
 * c' = f*c + i*g and h' = o*tanh(c'); the activated gates overwrite the pre-activations in place,
 * so backward needs nothing else but c and c_prev.
 * Backward: from dh (output grad + recurrent grad) and dc, the pre-activation gate grads and dc_prev.
 * One work item handles VW consecutive columns of one row with float8 math (PoCL vectorises exp and
 * tanh only on vector types: ~7x faster than scalar); the last partial block of a row goes scalar.
 * Offsets are in elements; every (B, H) / (B, 4H) operand is contiguous from its offset. */

#ifndef VW
#error "build with -D VW (shared_constants.LSTM_VW)"
#endif

inline float8 sigmoid8(float8 x)
{
    return 1.0f / (1.0f + exp(-x));
}

inline float sigmoid1(float x)
{
    return 1.0f / (1.0f + exp(-x));
}

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
        float8 i = sigmoid8(vload8(0, gr));
        float8 f = sigmoid8(vload8(0, gr + H));
        float8 g = tanh(vload8(0, gr + 2 * H));
        float8 o = sigmoid8(vload8(0, gr + 3 * H));
        float8 cn = f * vload8(0, c_prev + c_prev_off + e) + i * g;
        vstore8(i, 0, gr);
        vstore8(f, 0, gr + H);
        vstore8(g, 0, gr + 2 * H);
        vstore8(o, 0, gr + 3 * H);
        vstore8(cn, 0, c + c_off + e);
        vstore8(o * tanh(cn), 0, h + h_off + e);
        return;
    }
    for (int k = 0; k < H - j; ++k) {
        float i = sigmoid1(gr[k]);
        float f = sigmoid1(gr[H + k]);
        float g = tanh(gr[2 * H + k]);
        float o = sigmoid1(gr[3 * H + k]);
        float cn = f * c_prev[c_prev_off + e + k] + i * g;
        gr[k] = i;
        gr[H + k] = f;
        gr[2 * H + k] = g;
        gr[3 * H + k] = o;
        c[c_off + e + k] = cn;
        h[h_off + e + k] = o * tanh(cn);
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
        float8 dcn = vload8(0, dc + e) + dh * o * (1.0f - tc * tc);
        vstore8(dcn * g * i * (1.0f - i), 0, dg);
        vstore8(dcn * vload8(0, c_prev + c_prev_off + e) * f * (1.0f - f), 0, dg + H);
        vstore8(dcn * i * (1.0f - g * g), 0, dg + 2 * H);
        vstore8(dh * tc * o * (1.0f - o), 0, dg + 3 * H);
        vstore8(dcn * f, 0, dc + e);
        return;
    }
    for (int k = 0; k < H - j; ++k) {
        float i = gr[k], f = gr[H + k], g = gr[2 * H + k], o = gr[3 * H + k];
        float tc = tanh(c[c_off + e + k]);
        float dh = dh_out[dh_out_off + e + k] + dh_rec[e + k];
        float dcn = dc[e + k] + dh * o * (1.0f - tc * tc);
        dg[k] = dcn * g * i * (1.0f - i);
        dg[H + k] = dcn * c_prev[c_prev_off + e + k] * f * (1.0f - f);
        dg[2 * H + k] = dcn * i * (1.0f - g * g);
        dg[3 * H + k] = dh * tc * o * (1.0f - o);
        dc[e + k] = dcn * f;
    }
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
