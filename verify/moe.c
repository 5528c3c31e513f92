/* A mixture of experts' FFN (model_impl.h), token by token over the pool, in the arithmetic of
 * llama.cpp's build_moe_ffn on ggml's x86-64 CPU backend (AVX2 build):
 *   - the router's scores: a matrix product like any other (vm_matmul; the router is F32);
 *   - soft_max over the experts: the maximum, exp(x − max) eight lanes at a time through ggml's
 *     vector exp with each group's lanes summed as its AVX2 horizontal add does, the rest through
 *     libm expf, the sum in double, then every value times (float)(1 / sum);
 *   - the top n_expert_used experts by probability, largest first (argsort: std::sort, which for
 *     the at most 16 experts ggml sorts by insertion keeps ties in expert order);
 *   - their probabilities divided by their sum (a double sum rounded to float, clamped below at
 *     6.103515625e-5);
 *   - per chosen expert, mul_mat_id's products: each token's row against the expert's rows one
 *     row of activations at a time (ggml's vec_dot order, or its repacked one-row gemv for the
 *     Q4_0 and Q4_K tensors it repacks), SwiGLU, the down product, times the weight;
 *   - the experts' outputs added in slot order: ((o0 + o1) + o2) + ...
 * Exact mode: dequantized weights and f32 activations, plain expf. */
#include <math.h>
#include <string.h>

#include "formats/quants.h"
#include "kernels/dot.h"
#include "kernels/ggml_ops.h"
#include "verify/model_impl.h"

/* Bytes of one activation row of n for weight type t, in floats, with room for aux data. */
static size_t act_floats(uint32_t type, int64_t n) {
    return (nm_dot_act_row_size(type, n) + nm_dot_act_aux_row_size(type, n) + 64) / sizeof(float) + 1;
}

size_t vm_moe_scratch(const vm_model *m) {
    const size_t E = (size_t)m->n_embd, F = (size_t)m->n_ff_exp, wide = E > F ? E : F;
    size_t acts = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const vm_layer *L = &m->layers[l];
        size_t a = act_floats(L->gate_exps.type, L->gate_exps.n_in) + act_floats(L->up_exps.type, L->up_exps.n_in) +
                   act_floats(L->down_exps.type, L->down_exps.n_in);
        if (a > acts) acts = a;
    }
    /* probabilities, slot weights and choices; up, gate, down; a dequantized row; activations */
    return 3 * (size_t)m->n_expert + 3 * F + 2 * E + wide + acts + 64;
}

/* ggml_soft_max_f32 of one row of n (no mask, scale 1) into p. */
static void ggml_softmax_row(int n, const float *x, float *p, bool exact) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    double sum = 0.0;
    int i = 0;
    if (!exact)
        for (; i + 7 < n; i += 8) {
            float v[8];
            for (int k = 0; k < 8; k++) v[k] = p[i + k] = nm_ggml_expf(x[i + k] - max);
            const float s0 = (v[4] + v[0]) + (v[6] + v[2]), s1 = (v[5] + v[1]) + (v[7] + v[3]);
            sum += (double)(s0 + s1);
        }
    for (; i < n; i++) {
        p[i] = expf(x[i] - max);
        sum += (double)p[i];
    }
    const float scale = (float)(1.0 / sum);
    for (i = 0; i < n; i++) p[i] *= scale;
}

/* out[r] = row r of expert weight w (n_rows rows from row 0 at data) · the activation row, as
 * mul_mat_id computes it for one token. */
static void expert_rows(const vm_ctx *c, const vm_weight *w, const uint8_t *data, const void *act, const float *x,
                        float *wf, float *out) {
    const int64_t n = w->n_in;
    if (c->exact) {
        for (int64_t r = 0; r < w->n_out; r++) {
            nm_dequantize_row(w->type, data + (size_t)r * w->row_size, wf, n);
            nm_dot_tile(GGML_TYPE_F32, n, wf, (size_t)n * sizeof(float), 1, x, (size_t)n * sizeof(float), 1, out + r, 1);
        }
        return;
    }
    if (w->type == GGML_TYPE_F32 || w->type == GGML_TYPE_F16) { /* ggml_vec_dot_f32/_f16, never tinyBLAS */
        for (int64_t r = 0; r < w->n_out; r++) out[r] = nm_dot_float_vec(w->type, n, data + (size_t)r * w->row_size, act);
        return;
    }
    /* one activation row: the repacked types take their gemv kernel */
    const nm_dot_place at = {.weight_rows = w->n_out, .first_act_row = 0, .batch_rows = 1};
    nm_dot_tile_at(w->type, &at, n, data, w->row_size, (int)w->n_out, act, nm_dot_act_row_size(w->type, n), 1, out, 1);
}

/* Converts x (n floats) into weight type w's activation type at act (exact mode: nothing). */
static const void *activation(const vm_ctx *c, const vm_weight *w, const float *x, void *act) {
    if (c->exact) return x;
    nm_dot_quantize_act(w->type, x, act, w->n_in);
    return act;
}

typedef struct moe_job {
    vm_ctx *c;
    const vm_layer *L;
} moe_job;

static void moe_token(void *ctx, size_t t, int thread) {
    const moe_job *j = ctx;
    vm_ctx *c = j->c;
    const vm_model *m = c->m;
    const vm_layer *L = j->L;
    const int NE = m->n_expert, K = m->n_expert_used, E = m->n_embd, F = m->n_ff_exp;
    float *probs = c->moe_scratch + (size_t)thread * c->moe_scratch_per_thread;
    float *weight = probs + NE, *up = weight + NE, *gate = up + F, *h = gate + F, *down = h + F, *wf = down + E;
    int *chosen = (int *)(wf + (E > F ? E : F));
    uint8_t *act = (uint8_t *)(chosen + NE);
    const float *xn = c->xn + t * (size_t)E;
    float *out = c->out + t * (size_t)E;

    ggml_softmax_row(NE, c->router + t * (size_t)NE, probs, c->exact);
    for (int s = 0; s < K; s++) { /* largest first; ties in expert order */
        int best = -1;
        for (int e = 0; e < NE; e++) {
            bool taken = false;
            for (int u = 0; u < s; u++) taken |= chosen[u] == e;
            if (!taken && (best < 0 || probs[e] > probs[best])) best = e;
        }
        chosen[s] = best;
        weight[s] = probs[best];
    }
    double sum = 0.0;
    for (int s = 0; s < K; s++) sum += (double)weight[s];
    float fsum = (float)sum;
    if (!(fsum >= 6.103515625e-5f)) fsum = 6.103515625e-5f;
    for (int s = 0; s < K; s++) weight[s] /= fsum;

    const void *a_up = activation(c, &L->up_exps, xn, act);
    const void *a_gate = L->gate_exps.type == L->up_exps.type
                             ? a_up
                             : activation(c, &L->gate_exps, xn, act + nm_dot_act_row_size(L->up_exps.type, E) + 64);
    uint8_t *act_h = act + nm_dot_act_row_size(L->up_exps.type, E) + nm_dot_act_row_size(L->gate_exps.type, E) + 128;
    for (int s = 0; s < K; s++) {
        const size_t e = (size_t)chosen[s];
        expert_rows(c, &L->up_exps, L->up_exps.data + e * (size_t)F * L->up_exps.row_size, a_up, xn, wf, up);
        expert_rows(c, &L->gate_exps, L->gate_exps.data + e * (size_t)F * L->gate_exps.row_size, a_gate, xn, wf, gate);
        if (c->exact)
            for (int i = 0; i < F; i++) h[i] = (gate[i] / (1.0f + expf(-gate[i]))) * up[i];
        else
            nm_ggml_swiglu(F, h, gate, up);
        const void *a_h = activation(c, &L->down_exps, h, act_h);
        expert_rows(c, &L->down_exps, L->down_exps.data + e * (size_t)E * L->down_exps.row_size, a_h, h, wf, down);
        for (int i = 0; i < E; i++) {
            const float o = down[i] * weight[s];
            out[i] = s == 0 ? o : out[i] + o;
        }
    }
}

void vm_moe_ffn(vm_ctx *c, const vm_layer *L, int n_tokens) {
    vm_matmul(c, &L->gate_inp, c->xn, n_tokens, c->router);
    moe_job j = {.c = c, .L = L};
    nm_pool_run(c->pool, (size_t)n_tokens, moe_token, &j);
}
