/* The forward pass (model.h) of every family arch/ describes, built from its blocks: RMSNorm or
 * LayerNorm, separate or fused QKV with optional biases and per-head Q/K norms, rotary (adjacent
 * pairs or NeoX halves, on n_rot dimensions; llama3 or longrope frequency divisors) or learned
 * positions, Q scaled before or the scores after, SwiGLU (gate and up separate or fused), GELU or
 * GEGLU, sequential or parallel residual, Gemma 2's post-norms, embedding scale and soft caps,
 * Gemma 3's local layers' own rotary base.
 * Batches run layer by layer over all tokens: matrix products quantize the
 * batch's activations once (to the type ggml pairs with the weight type) and tile rows × tokens
 * over the thread pool; attention reads K/V from a per-layer cache held as f16 (llama.cpp's
 * default) or f32 (exact mode). The default mode reproduces ggml's AVX2 arithmetic
 * (kernels/ggml_ops.h: flash attention, SwiGLU, LayerNorm, GELU; RoPE's fused multiply-adds here). */
#include "verify/model.h"
#include "verify/model_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/ggml_ops.h"
#include "formats/quants.h"
#include "formats/tensor.h"

/* ---------------- loading ---------------- */

static int get_u32_opt(const gguf_reader *g, const char *key, uint32_t def, uint32_t *out, nm_error *err) {
    const gguf_value *v = gguf_get(g, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (v->type == GGUF_TYPE_UINT32) {
        *out = v->u32;
        return 0;
    }
    if (v->type == GGUF_TYPE_INT32 && v->i32 >= 0) {
        *out = (uint32_t)v->i32;
        return 0;
    }
    if (v->type == GGUF_TYPE_ARRAY) return nm_fail(err, "metadata %s: per-layer arrays are not supported", key);
    return nm_fail(err, "metadata %s has type %s, expected UINT32", key, gguf_type_name(v->type));
}

static int get_u32_req(const gguf_reader *g, const char *key, uint32_t *out, nm_error *err) {
    if (!gguf_get(g, key)) return nm_fail(err, "metadata %s is missing", key);
    return get_u32_opt(g, key, 0, out, err);
}

static int get_f32_opt(const gguf_reader *g, const char *key, float def, float *out, nm_error *err) {
    const gguf_value *v = gguf_get(g, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (v->type == GGUF_TYPE_FLOAT32) {
        *out = v->f32;
        return 0;
    }
    if (v->type == GGUF_TYPE_FLOAT64) {
        *out = (float)v->f64;
        return 0;
    }
    return nm_fail(err, "metadata %s has type %s, expected FLOAT32", key, gguf_type_name(v->type));
}

static int load_weight(const gguf_reader *g, const char *name, int64_t n_in, int64_t n_out, bool matmul,
                       bool optional, vm_weight *w, nm_error *err) {
    const gguf_tensor_info *t = gguf_find_tensor(g, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (optional) return 0;
        return nm_fail(err, "tensor %s is missing", name);
    }
    const int64_t want_rows = n_out > 0 ? n_out : 1;
    if (t->ne[0] != n_in || t->ne[1] != want_rows || t->ne[2] != 1 || t->ne[3] != 1)
        return nm_fail(err, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)n_in, (long long)want_rows);
    if (matmul ? !nm_dot_supported(t->type) : !nm_dequantize_supported(t->type))
        return nm_fail(err, "tensor %s has type %s, which nomoat-verify cannot evaluate", name,
                       ggml_type_name(t->type));
    size_t rs;
    if (ggml_row_size(t->type, (uint64_t)n_in, &rs) != 0)
        return nm_fail(err, "tensor %s: rows of %lld are not whole %s blocks", name, (long long)n_in,
                       ggml_type_name(t->type));
    if (t->size < rs * (size_t)want_rows) return nm_fail(err, "tensor %s is truncated", name);
    w->name = t->name;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = want_rows;
    w->row_size = rs;
    w->data = t->data;
    return 0;
}

/* A 1-D tensor (bias, LayerNorm shift) of n elements, widened to float into dst. */
static int load_vector(const gguf_reader *g, const char *name, int64_t n, bool optional, float *dst, const float **out,
                       nm_error *err) {
    vm_weight w;
    *out = NULL;
    if (load_weight(g, name, n, 0, false, optional, &w, err)) return -1;
    if (!w.data) return 0;
    nm_dequantize_row(w.type, w.data, dst, n);
    *out = dst;
    return 0;
}

/* Where a role's tensor and bias live in a layer, and its shape (n_in, n_out; n_out 0: a vector). */
static vm_weight *layer_slot(const vm_model *m, vm_layer *L, nm_role r, const float ***bias, int64_t *n_in,
                             int64_t *n_out) {
    const int64_t E = m->n_embd, Q = (int64_t)m->n_head * m->head_dim, KV = (int64_t)m->n_head_kv * m->head_dim,
                  F = m->n_ff;
    switch (r) {
    case NM_ROLE_ATTN_NORM: *bias = &L->attn_norm_b; *n_in = E; *n_out = 0; return &L->attn_norm;
    case NM_ROLE_ATTN_Q: *bias = &L->bq; *n_in = E; *n_out = Q; return &L->wq;
    case NM_ROLE_ATTN_K: *bias = &L->bk; *n_in = E; *n_out = KV; return &L->wk;
    case NM_ROLE_ATTN_V: *bias = &L->bv; *n_in = E; *n_out = KV; return &L->wv;
    case NM_ROLE_ATTN_QKV: *bias = &L->bqkv; *n_in = E; *n_out = Q + 2 * KV; return &L->wqkv;
    case NM_ROLE_ATTN_OUT: *bias = &L->bo; *n_in = Q; *n_out = E; return &L->wo;
    case NM_ROLE_FFN_NORM: *bias = &L->ffn_norm_b; *n_in = E; *n_out = 0; return &L->ffn_norm;
    case NM_ROLE_FFN_GATE: *bias = &L->gate_b; *n_in = E; *n_out = F; return &L->gate;
    case NM_ROLE_FFN_UP: *bias = &L->up_b; *n_in = E; *n_out = m->family->ffn_up_gated ? 2 * F : F; return &L->up;
    case NM_ROLE_FFN_DOWN: *bias = &L->down_b; *n_in = F; *n_out = E; return &L->down;
    case NM_ROLE_ATTN_POST_NORM: *bias = NULL; *n_in = E; *n_out = 0; return &L->attn_post_norm;
    case NM_ROLE_FFN_POST_NORM: *bias = NULL; *n_in = E; *n_out = 0; return &L->ffn_post_norm;
    default: return NULL;
    }
}

/* A stacked expert tensor: n_expert matrices of n_out rows of n_in, kept as one weight whose
 * n_out rows are expert 0's (model.h). */
static int load_experts(const gguf_reader *g, const char *name, int64_t n_in, int64_t n_out, int64_t n_expert,
                        vm_weight *w, nm_error *err) {
    const gguf_tensor_info *t = gguf_find_tensor(g, name);
    memset(w, 0, sizeof *w);
    if (!t) return nm_fail(err, "tensor %s is missing", name);
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != n_expert || t->ne[3] != 1)
        return nm_fail(err, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)n_in, (long long)n_out, (long long)n_expert);
    if (!nm_dot_supported(t->type))
        return nm_fail(err, "tensor %s has type %s, which nomoat-verify cannot evaluate", name, ggml_type_name(t->type));
    size_t rs;
    if (ggml_row_size(t->type, (uint64_t)n_in, &rs) != 0)
        return nm_fail(err, "tensor %s: rows of %lld are not whole %s blocks", name, (long long)n_in,
                       ggml_type_name(t->type));
    if (t->size / rs < (size_t)(n_out * n_expert)) return nm_fail(err, "tensor %s is truncated", name);
    *w = (vm_weight){.name = t->name, .type = t->type, .n_in = n_in, .n_out = n_out, .row_size = rs, .data = t->data};
    return 0;
}

/* Per-head norm weights: float copies like the biases. */
static const float **head_norm_slot(vm_layer *L, nm_role r) {
    return r == NM_ROLE_ATTN_Q_NORM ? &L->q_norm : r == NM_ROLE_ATTN_K_NORM ? &L->k_norm : NULL;
}

static int load_layer(const gguf_reader *g, vm_model *m, uint32_t i, float **vec, nm_error *err) {
    vm_layer *L = &m->layers[i];
    for (size_t k = 0; k < m->family->n_tensors; k++) {
        const nm_arch_tensor *t = &m->family->tensors[k];
        if (t->role < NM_ROLE_FIRST_LAYER) continue;
        if (t->role == NM_ROLE_FFN_GATE_INP || t->transform == NM_XF_STACK_EXPERTS) {
            const int64_t E = m->n_embd, F = m->n_ff_exp;
            char nm[GGUF_MAX_NAME + 32];
            snprintf(nm, sizeof nm, "blk.%u.%s.weight", i, nm_role_gguf_name(t->role));
            int rc = t->role == NM_ROLE_FFN_GATE_INP ? load_weight(g, nm, E, m->n_expert, true, false, &L->gate_inp, err)
                     : t->role == NM_ROLE_FFN_GATE_EXPS ? load_experts(g, nm, E, F, m->n_expert, &L->gate_exps, err)
                     : t->role == NM_ROLE_FFN_UP_EXPS   ? load_experts(g, nm, E, F, m->n_expert, &L->up_exps, err)
                                                        : load_experts(g, nm, F, E, m->n_expert, &L->down_exps, err);
            if (rc) return -1;
            continue;
        }
        const float **hn = head_norm_slot(L, t->role);
        if (hn) {
            char nm[GGUF_MAX_NAME + 32];
            snprintf(nm, sizeof nm, "blk.%u.%s.weight", i, nm_role_gguf_name(t->role));
            if (load_vector(g, nm, m->head_dim, false, *vec, hn, err)) return -1;
            *vec += m->head_dim;
            continue;
        }
        const float **bias;
        int64_t n_in, n_out;
        vm_weight *w = layer_slot(m, L, t->role, &bias, &n_in, &n_out);
        char nm[GGUF_MAX_NAME + 32];
        snprintf(nm, sizeof nm, "blk.%u.%s.weight", i, nm_role_gguf_name(t->role));
        if (load_weight(g, nm, n_in, n_out, n_out > 0, false, w, err)) return -1;
        if (t->bias == NM_BIAS_NONE) continue;
        snprintf(nm, sizeof nm, "blk.%u.%s.bias", i, nm_role_gguf_name(t->role));
        const int64_t n = n_out > 0 ? n_out : n_in;
        if (load_vector(g, nm, n, t->bias == NM_BIAS_OPTIONAL, *vec, bias, err)) return -1;
        if (*bias) *vec += n;
    }
    return 0;
}

int vm_model_load(vm_model *m, const gguf_reader *g, nm_error *err) {
    memset(m, 0, sizeof *m);
    const gguf_value *arch = gguf_get(g, "general.architecture");
    if (!arch || arch->type != GGUF_TYPE_STRING) return nm_fail(err, "no general.architecture: not a model file");
    if (!(m->family = nm_arch_by_name(arch->str.ptr, arch->str.len))) {
        char names[256];
        nm_arch_list_names(names, sizeof names);
        return nm_fail(err, "architecture '%.*s' is not supported (nomoat-verify runs: %s)",
                       (int)(arch->str.len > 64 ? 64 : arch->str.len), arch->str.ptr, names);
    }
    char ekey[2][96];
    snprintf(ekey[0], sizeof ekey[0], "%s.expert_count", m->family->name);
    snprintf(ekey[1], sizeof ekey[1], "%s.expert_used_count", m->family->name);
    uint32_t n_expert, n_used;
    if (get_u32_opt(g, ekey[0], 0, &n_expert, err)) return -1;
    if (n_expert > 0) { /* a mixture of experts (llama.cpp's loader: 0 is a dense model); Mixtral's files say "llama" */
        const nm_arch *moe = nm_arch_by_name_experts(arch->str.ptr, arch->str.len, true);
        if (get_u32_req(g, ekey[1], &n_used, err)) return -1;
        if (!moe)
            return nm_fail(err, "%s = %u: nomoat-verify does not run this architecture's mixture of experts", ekey[0],
                           n_expert);
        if (n_expert < 1 || n_expert > 512 || n_used < 1 || n_used > n_expert)
            return nm_fail(err, "implausible mixture of experts (%s = %u, %s = %u)", ekey[0], n_expert, ekey[1], n_used);
        m->family = moe;
        m->n_expert = (int)n_expert;
        m->n_expert_used = (int)n_used;
    }
    const nm_arch *a = m->family;
    char key[7][96];
    static const char *const suffix[7] = {"embedding_length", "block_count", "attention.head_count",
                                          "attention.head_count_kv", "feed_forward_length", "context_length",
                                          "rope.freq_base"};
    for (int k = 0; k < 7; k++) snprintf(key[k], sizeof key[k], "%s.%s", a->name, suffix[k]);
    char eps_key[96];
    snprintf(eps_key, sizeof eps_key, "%s.%s", a->name,
             a->norm == NM_NORM_RMS ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon");
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train, n_rot, head_dim;
    if (get_u32_req(g, key[0], &n_embd, err) || get_u32_req(g, key[1], &n_layer, err) ||
        get_u32_req(g, key[2], &n_head, err) || get_u32_opt(g, key[3], n_head, &n_head_kv, err) ||
        get_u32_req(g, key[4], &n_ff, err) || get_u32_opt(g, key[5], 2048, &n_ctx_train, err) ||
        get_f32_opt(g, key[6], 10000.0f, &m->rope_base, err) || get_f32_opt(g, eps_key, 1e-5f, &m->norm_eps, err))
        return -1;
    if (n_embd == 0 || n_embd > 65536 || n_layer == 0 || n_layer > 1024 || n_head == 0 || n_head > 1024 ||
        n_head_kv == 0 || n_head % n_head_kv != 0 || n_embd % n_head != 0 || n_ff == 0 || n_ff > 1 << 20)
        return nm_fail(err, "implausible hyper-parameters (embedding %u, layers %u, heads %u/%u, ffn %u)", n_embd,
                       n_layer, n_head, n_head_kv, n_ff);
    if (!(m->rope_base > 0.0f) || !isfinite(m->rope_base))
        return nm_fail(err, "metadata %s is %g, not a positive number", key[6], (double)m->rope_base);
    m->parallel_residual = a->residual == NM_RESIDUAL_PARALLEL;
    snprintf(key[0], sizeof key[0], "%s.use_parallel_residual", a->name);
    const gguf_value *pr = gguf_get(g, key[0]);
    if (pr) {
        if (pr->type != GGUF_TYPE_BOOL) return nm_fail(err, "metadata %s has type %s, expected BOOL", key[0], gguf_type_name(pr->type));
        m->parallel_residual = pr->b;
    }
    snprintf(key[0], sizeof key[0], "%s.attention.key_length", a->name);
    snprintf(key[1], sizeof key[1], "%s.attention.value_length", a->name);
    if (get_u32_opt(g, key[0], n_embd / n_head, &head_dim, err)) return -1;
    uint32_t vlen;
    if (get_u32_opt(g, key[1], head_dim, &vlen, err)) return -1;
    if (head_dim != vlen || head_dim == 0 || head_dim > 1024 || head_dim % 2)
        return nm_fail(err, "unsupported head size (key %u, value %u)", head_dim, vlen);
    snprintf(key[0], sizeof key[0], "%s.rope.dimension_count", a->name);
    if (get_u32_opt(g, key[0], head_dim, &n_rot, err)) return -1;
    if (n_rot > head_dim || n_rot % 2 || n_rot == 0)
        return nm_fail(err, "%s %u does not fit head size %u", key[0], n_rot, head_dim);
    m->rope_freq_scale = 1.0f;
    snprintf(key[0], sizeof key[0], "%s.rope.scaling.type", a->name);
    snprintf(key[1], sizeof key[1], "%s.rope.scaling.factor", a->name);
    const gguf_value *st = gguf_get(g, key[0]);
    if (st && st->type == GGUF_TYPE_STRING && !(st->str.len == 4 && !memcmp(st->str.ptr, "none", 4))) {
        const bool yarn = st->str.len == 4 && !memcmp(st->str.ptr, "yarn", 4);
        if ((st->str.len == 6 && !memcmp(st->str.ptr, "linear", 6)) || yarn) {
            float factor;
            if (get_f32_opt(g, key[1], 1.0f, &factor, err)) return -1;
            if (!(factor > 0.0f) || !isfinite(factor)) return nm_fail(err, "%s must be positive", key[1]);
            m->rope_freq_scale = 1.0f / factor;
            m->yarn_ext = yarn ? 1.0f : 0.0f; /* llama.cpp's default for YaRN (its qwen models read no
                                                * yarn_ext_factor, yarn_attn_factor or yarn_beta_* keys) */
        } else {
            return nm_fail(err, "RoPE scaling '%.*s' is not supported", (int)(st->str.len > 32 ? 32 : st->str.len),
                           st->str.ptr);
        }
    }
    const gguf_tensor_info *ff = gguf_find_tensor(g, "rope_freqs.weight");
    if (ff) { /* Llama 3.1+ rope scaling: each rotary frequency divided by its factor */
        if (ff->type != GGML_TYPE_F32 || ff->ne[0] != (int64_t)n_rot / 2 || ff->ne[1] != 1 || ff->ne[2] != 1 ||
            ff->ne[3] != 1 || ff->size < (size_t)n_rot / 2 * sizeof(float))
            return nm_fail(err, "tensor rope_freqs.weight must be F32 of shape [%u] (rotary dimensions / 2)", n_rot / 2);
        m->rope_freqs = (const float *)ff->data;
        for (uint32_t i = 0; i < n_rot / 2; i++)
            if (!(m->rope_freqs[i] > 0.0f) || !isfinite(m->rope_freqs[i]))
                return nm_fail(err, "tensor rope_freqs.weight: factor %u is %g, not a positive number", i,
                               (double)m->rope_freqs[i]);
    }
    snprintf(key[0], sizeof key[0], "%s.rope.scaling.original_context_length", a->name);
    snprintf(key[1], sizeof key[1], "%s.rope.scaling.attn_factor", a->name);
    uint32_t n_ctx_orig;
    if (get_u32_opt(g, key[0], n_ctx_train, &n_ctx_orig, err) || get_f32_opt(g, key[1], 1.0f, &m->rope_attn_factor, err))
        return -1;
    if (!(m->rope_attn_factor > 0.0f) || !isfinite(m->rope_attn_factor))
        return nm_fail(err, "metadata %s is %g, not a positive number", key[1], (double)m->rope_attn_factor);
    m->n_ctx_orig = n_ctx_orig > INT32_MAX ? INT32_MAX : (int)n_ctx_orig;
    if (m->yarn_ext != 0.0f) {
        if (n_ctx_orig == 0) return nm_fail(err, "metadata %s is 0", key[0]);
        /* llama_context: the attention factor YaRN's magnitude scaling cancels (llama.cpp's own
         * arithmetic, without fused multiply-adds: libllama is built for the baseline CPU) */
        const float factor = 1.0f / m->rope_freq_scale;
        float attn = factor <= 1.0f ? 1.0f : 0.1f * 1.0f * logf(factor) + 1.0f;
        attn *= 1.0f / (1.0f + 0.1f * logf(factor));
        m->rope_attn_factor *= attn;
        /* ggml_rope_yarn_corr_dims with llama.cpp's beta_fast 32 and beta_slow 1 */
        const float beta[2] = {32.0f, 1.0f};
        for (int k = 0; k < 2; k++) {
            const float d = (float)n_rot * logf((float)n_ctx_orig / (beta[k] * 2 * (float)M_PI)) /
                            (2 * logf(m->rope_base));
            m->yarn_corr[k] = k == 0 ? floorf(d) : ceilf(d);
        }
        m->yarn_corr[0] = m->yarn_corr[0] > 0.0f ? m->yarn_corr[0] : 0.0f;
        m->yarn_corr[1] = m->yarn_corr[1] < (float)(n_rot - 1) ? m->yarn_corr[1] : (float)(n_rot - 1);
    }
    static const char *const factor_names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (int k = 0; k < 2; k++) { /* longrope: both or neither */
        const gguf_tensor_info *t = gguf_find_tensor(g, factor_names[k]);
        if (!t) {
            if (gguf_find_tensor(g, factor_names[1 - k]))
                return nm_fail(err, "tensor %s is missing (%s is there)", factor_names[k], factor_names[1 - k]);
            continue;
        }
        if (ff) return nm_fail(err, "tensor %s cannot come with rope_freqs.weight", factor_names[k]);
        if (t->type != GGML_TYPE_F32 || t->ne[0] != (int64_t)n_rot / 2 || t->ne[1] != 1 || t->ne[2] != 1 ||
            t->ne[3] != 1 || t->size < (size_t)n_rot / 2 * sizeof(float))
            return nm_fail(err, "tensor %s must be F32 of shape [%u] (rotary dimensions / 2)", factor_names[k], n_rot / 2);
        const float *f = (const float *)t->data;
        for (uint32_t i = 0; i < n_rot / 2; i++)
            if (!(f[i] > 0.0f) || !isfinite(f[i]))
                return nm_fail(err, "tensor %s: factor %u is %g, not a positive number", factor_names[k], i, (double)f[i]);
        *(k ? &m->rope_short : &m->rope_long) = f;
    }
    const gguf_tensor_info *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return nm_fail(err, "tensor token_embd.weight is missing");
    if (emb->ne[1] < 1 || emb->ne[1] > 1 << 24) return nm_fail(err, "token_embd.weight has an implausible vocabulary size");
    m->n_embd = (int)n_embd;
    m->n_layer = (int)n_layer;
    m->n_head = (int)n_head;
    m->n_head_kv = (int)n_head_kv;
    m->head_dim = (int)head_dim;
    m->n_rot = (int)n_rot;
    m->n_ff = (int)n_ff;
    m->n_ff_exp = (int)n_ff;
    if (m->n_expert) {
        uint32_t ff_exp;
        snprintf(key[0], sizeof key[0], "%s.expert_feed_forward_length", a->name);
        if (get_u32_opt(g, key[0], n_ff, &ff_exp, err)) return -1;
        if (ff_exp == 0 || ff_exp > 1 << 20) return nm_fail(err, "%s = %u is implausible", key[0], ff_exp);
        m->n_ff_exp = (int)ff_exp;
    }
    m->n_vocab = (int)emb->ne[1];
    m->n_ctx_train = (int)n_ctx_train;
    const int64_t E = n_embd;
    if (load_weight(g, "token_embd.weight", E, m->n_vocab, false, false, &m->tok_embd, err) ||
        load_weight(g, "output_norm.weight", E, 0, false, false, &m->output_norm, err) ||
        load_weight(g, "output.weight", E, m->n_vocab, true, a->tie_by_absence, &m->output, err))
        return -1;
    if (a->embd_scale || a->logit_softcap || a->query_prescale) { /* Gemma 2: llama.cpp's hparams */
        m->embd_scale = a->embd_scale ? sqrtf((float)n_embd) : 1.0f;
        if (a->query_prescale) /* llama.cpp's 27B (Gemma 2: 46 layers, Gemma 3: 62) is scaled by n_embd/n_head */
            m->q_scale = a->query_scale_width_layers && n_layer == a->query_scale_width_layers
                             ? 1.0f / sqrtf((float)(n_embd / n_head)) : 1.0f / sqrtf((float)head_dim);
        char k1[96], k2[96], k3[96];
        snprintf(k1, sizeof k1, "%s.attn_logit_softcapping", a->name);
        snprintf(k2, sizeof k2, "%s.final_logit_softcapping", a->name);
        snprintf(k3, sizeof k3, "%s.attention.sliding_window", a->name);
        uint32_t swa;
        if (get_f32_opt(g, k1, a->logit_softcap ? 50.0f : 0.0f, &m->attn_softcap, err) ||
            get_f32_opt(g, k2, a->logit_softcap ? 30.0f : 0.0f, &m->final_softcap, err) ||
            get_u32_opt(g, k3, a->swa_rope_base ? 0 : 4096, &swa, err)) /* Gemma 3: no key, no window */
            return -1;
        if (!(m->attn_softcap >= 0.0f) || !(m->final_softcap >= 0.0f) || !isfinite(m->attn_softcap) ||
            !isfinite(m->final_softcap))
            return nm_fail(err, "metadata %s or %s is not a finite non-negative number", k1, k2);
        m->n_swa = swa > INT32_MAX ? INT32_MAX : (int)swa;
        if (a->swa_rope_base && swa > 0) { /* llama.cpp's gemma3: local layers, their own rotary base */
            char k4[96];
            snprintf(k4, sizeof k4, "%s.rope.freq_base_swa", a->name);
            if (get_f32_opt(g, k4, 10000.0f, &m->rope_base_swa, err)) return -1;
            if (!(m->rope_base_swa > 0.0f) || !isfinite(m->rope_base_swa))
                return nm_fail(err, "metadata %s is %g, not a positive number", k4, (double)m->rope_base_swa);
            /* llama.cpp reads a pattern key when a file has one (its converter writes none) */
            uint32_t period;
            snprintf(k4, sizeof k4, "%s.attention.sliding_window_pattern", a->name);
            if (get_u32_opt(g, k4, a->swa_period, &period, err)) return -1;
            if (period != a->swa_period)
                return nm_fail(err, "metadata %s = %u is not supported (nomoat-verify runs %s's pattern of %u)", k4,
                               period, a->name, a->swa_period);
            m->swa_period = (int)a->swa_period;
        }
    } else {
        m->embd_scale = 1.0f;
    }
    if (!m->output.data) { /* tied embeddings */
        if (load_weight(g, "token_embd.weight", E, m->n_vocab, true, false, &m->output, err)) return -1;
    }
    if (nm_arch_tensor_of(a, NM_ROLE_POS_EMBD) &&
        load_weight(g, "position_embd.weight", E, m->n_ctx_train, false, false, &m->pos_embd, err))
        return -1;
    /* the float copies of every bias and LayerNorm shift: at most one vector per role and layer */
    size_t per_layer = 0;
    for (size_t k = 0; k < a->n_tensors; k++) {
        vm_layer probe;
        if (head_norm_slot(&probe, a->tensors[k].role)) per_layer += head_dim;
    }
    for (size_t k = 0; k < a->n_tensors; k++) {
        vm_layer probe;
        const float **bias;
        int64_t n_in, n_out;
        if (a->tensors[k].role >= NM_ROLE_FIRST_LAYER && a->tensors[k].bias != NM_BIAS_NONE &&
            layer_slot(m, &probe, a->tensors[k].role, &bias, &n_in, &n_out))
            per_layer += (size_t)(n_out > 0 ? n_out : n_in);
    }
    m->layers = calloc(n_layer, sizeof *m->layers);
    m->vectors = malloc(((size_t)n_layer * per_layer + (size_t)E + 1) * sizeof(float));
    if (!m->layers || !m->vectors) {
        vm_model_free(m);
        return nm_fail(err, "out of memory");
    }
    float *vec = m->vectors;
    const nm_arch_tensor *on = nm_arch_tensor_of(a, NM_ROLE_OUTPUT_NORM);
    if (on && on->bias != NM_BIAS_NONE &&
        load_vector(g, "output_norm.bias", E, on->bias == NM_BIAS_OPTIONAL, vec, &m->output_norm_b, err)) {
        vm_model_free(m);
        return -1;
    }
    if (m->output_norm_b) vec += E;
    for (uint32_t i = 0; i < n_layer; i++)
        if (load_layer(g, m, i, &vec, err)) {
            vm_model_free(m);
            return -1;
        }
    return 0;
}

void vm_model_free(vm_model *m) {
    if (!m) return;
    free(m->layers);
    free(m->vectors);
    m->layers = NULL;
    m->vectors = NULL;
}

/* ---------------- context ---------------- */




void vm_ctx_set_observer(vm_ctx *c, vm_observe_fn fn, void *user) {
    c->observe = fn;
    c->observe_user = user;
}

void vm_ctx_free(vm_ctx *c) {
    if (!c) return;
    if (c->kcache)
        for (int i = 0; i < c->m->n_layer; i++) free(c->kcache[i]);
    if (c->vcache)
        for (int i = 0; i < c->m->n_layer; i++) free(c->vcache[i]);
    free(c->kcache);
    free(c->vcache);
    free(c->qkv); free(c->attn_out); free(c->gate_up);
    free(c->kt); free(c->vf); free(c->x); free(c->xn); free(c->q); free(c->k); free(c->v); free(c->att); free(c->fa); free(c->fb);
    free(c->out); free(c->act); free(c->aux); free(c->wscratch);
    free(c->router); free(c->moe_scratch);
    vm_lora_state_free(c->lora);
    free(c);
}

static void *alloc_floats(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }

vm_ctx *vm_ctx_create(const vm_model *m, int n_ctx, nm_pool *pool, bool exact, nm_error *err) {
    if (n_ctx < 1 || n_ctx > 1 << 20) {
        nm_fail(err, "context size %d out of range", n_ctx);
        return NULL;
    }
    if (m->pos_embd.data && n_ctx > m->n_ctx_train) {
        nm_fail(err, "context size %d is more than the model's %d learned positions", n_ctx, m->n_ctx_train);
        return NULL;
    }
    if (m->n_swa > 0 && n_ctx > m->n_swa) {
        nm_fail(err, "context size %d is more than the model's sliding window of %d positions; nomoat-verify does "
                "not implement sliding-window attention (use a context of at most %d)", n_ctx, m->n_swa, m->n_swa);
        return NULL;
    }
    vm_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    c->m = m;
    c->pool = pool;
    c->exact = exact;
    c->n_ctx = n_ctx;
    c->n_threads = nm_pool_threads(pool);
    const size_t T = (size_t)n_ctx, E = (size_t)m->n_embd, Q = (size_t)m->n_head * m->head_dim,
                 KV = (size_t)m->n_head_kv * m->head_dim, F = (size_t)m->n_ff, V = (size_t)m->n_vocab;
    size_t widest = E > F ? E : F;
    if (Q > widest) widest = Q;
    c->kcache = calloc((size_t)m->n_layer, sizeof(void *));
    c->vcache = calloc((size_t)m->n_layer, sizeof(void *));
    if (!c->kcache || !c->vcache) goto oom;
    const size_t esz = exact ? sizeof(float) : sizeof(uint16_t);
    for (int i = 0; i < m->n_layer; i++) {
        c->kcache[i] = malloc(T * KV * esz);
        c->vcache[i] = malloc(T * KV * esz);
        if (!c->kcache[i] || !c->vcache[i]) goto oom;
    }
    if (m->n_layer > 0 && m->layers[0].wqkv.data && !(c->qkv = alloc_floats(T * (Q + 2 * KV)))) goto oom;
    if (m->parallel_residual && !(c->attn_out = alloc_floats(T * E))) goto oom;
    if (m->n_expert) {
        c->moe_scratch_per_thread = vm_moe_scratch(m);
        if (!(c->router = alloc_floats(T * (size_t)m->n_expert)) ||
            !(c->moe_scratch = alloc_floats(c->moe_scratch_per_thread * (size_t)c->n_threads)))
            goto oom;
    }
    if (m->family->ffn_up_gated && !(c->gate_up = alloc_floats(T * 2 * F))) goto oom;
    /* llama.cpp: longrope's long factors once the context, which it rounds up to a multiple of
     * 256, passes the original length */
    const long padded_ctx = ((long)n_ctx + 255) / 256 * 256;
    c->rope_freqs = m->rope_freqs ? m->rope_freqs : padded_ctx > m->n_ctx_orig ? m->rope_long : m->rope_short;
    c->kt_stride = (T + NM_GGML_FA_TILE - 1) / NM_GGML_FA_TILE * NM_GGML_FA_TILE;
    c->kt = calloc(c->kt_stride * KV, sizeof(float));
    c->vf = alloc_floats(T * KV);
    c->x = alloc_floats(T * E);
    c->xn = alloc_floats(T * E);
    c->q = alloc_floats(T * Q);
    c->k = alloc_floats(T * KV);
    c->v = alloc_floats(T * KV);
    c->att = alloc_floats(T * Q);
    c->fa = alloc_floats(T * F);
    c->fb = alloc_floats(T * F);
    c->out = alloc_floats(T * (widest > V ? widest : V));
    /* the largest activation row: Q8_1 (36 bytes per 32) of the widest input */
    c->act = malloc(T * ((widest / 32 + 1) * 36 + 4 * widest + 64));
    c->aux = malloc(T * (4 * widest + 64)); /* the largest aux row: F16/BF16 widened to float */
    /* exact mode's dequantized weight rows, attention's scores and sums for one KV group (exact
     * mode), or the flash-attention scratch (default mode) */
    const size_t att_scratch = (size_t)(m->n_head / m->n_head_kv) * (T + (size_t)m->head_dim);
    size_t per_thread = (size_t)ROW_BLOCK * widest > att_scratch ? (size_t)ROW_BLOCK * widest : att_scratch;
    if (per_thread < nm_ggml_fa_scratch(m->head_dim)) per_thread = nm_ggml_fa_scratch(m->head_dim);
    c->wscratch_per_thread = per_thread + 64;
    c->wscratch = alloc_floats(c->wscratch_per_thread * (size_t)c->n_threads);
    if (!c->kt || !c->vf || !c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->fa || !c->fb || !c->out || !c->act ||
        !c->aux || !c->wscratch)
        goto oom;
    return c;
oom:
    vm_ctx_free(c);
    nm_fail(err, "out of memory for a context of %d tokens", n_ctx);
    return NULL;
}

/* ---------------- element-wise pieces ---------------- */

/* ggml's rms_norm of n_rows rows of n (sum of squares in double, scale in float) followed by
 * the weight product; y may be x. */
static void rms_norm_rows(int n, float eps, const float *x, const float *w, float *y, int n_rows) {
    for (int t = 0; t < n_rows; t++) {
        const float *xr = x + (size_t)t * n;
        float *yr = y + (size_t)t * n;
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / n);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int i = 0; i < n; i++) yr[i] = (xr[i] * scale) * w[i];
    }
}

static void rms_norm(const vm_model *m, const float *x, const float *w, float *y, int n_tokens) {
    rms_norm_rows(m->n_embd, m->norm_eps, x, w, y, n_tokens);
}

/* The family's norm of one row: RMSNorm × w, or LayerNorm × w + b (ggml_norm, mul, add). */
static void norm_row(const vm_model *m, const float *x, const float *w, const float *b, float *y) {
    if (m->family->norm == NM_NORM_RMS) {
        rms_norm(m, x, w, y, 1);
        return;
    }
    nm_ggml_layer_norm(m->n_embd, x, m->norm_eps, y);
    for (int i = 0; i < m->n_embd; i++) y[i] *= w[i];
    if (b)
        for (int i = 0; i < m->n_embd; i++) y[i] += b[i];
}

/* RoPE on the first n_rot dimensions of each head, angles as ggml's rope cache computes them:
 * adjacent pairs (normal) or the pairs (i, i + n_rot/2) (NeoX); the other dimensions pass. */
static void rope(const vm_model *m, const float *freqs, float base, float freq_scale, float *x, int n_heads,
                 int n_tokens, int pos0) {
    const int hd = m->head_dim, nr = m->n_rot;
    const int half = m->family->rope == NM_ROPE_NEOX ? nr / 2 : 1; /* distance between a pair's members */
    const float theta_scale = powf(base, -2.0f / (float)nr);
    float cs[2048];
    for (int t = 0; t < n_tokens; t++) {
        float theta = (float)(pos0 + t);
        for (int i = 0; i < nr; i += 2) {
            /* ggml: freq_scale * (theta / freq_factor), the factor 1 without rope_freqs; the
             * cosine and sine times the attention factor (an exact no-op when it is 1) */
            const float extrap = freqs ? theta / freqs[i / 2] : theta;
            float th = freq_scale * extrap, ms = m->rope_attn_factor;
            if (m->yarn_ext != 0.0f) { /* ggml's rope_yarn, its products fused as its build fuses them */
                const float y = ((float)(i / 2) - m->yarn_corr[0]) / fmaxf(0.001f, m->yarn_corr[1] - m->yarn_corr[0]);
                const float mix = (1 - fminf(1, fmaxf(0, y))) * m->yarn_ext;
                th = fmaf(th, 1 - mix, extrap * mix);
                ms *= fmaf(0.1f, logf(1.0f / freq_scale), 1.0f);
            }
            cs[i] = cosf(th) * ms;
            cs[i + 1] = sinf(th) * ms;
            theta *= theta_scale;
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < nr; i += 2) {
                const int at = half == 1 ? i : i / 2;
                const float x0 = v[at], x1 = v[at + half];
                /* ggml's rope (built with FMA contraction) fuses the first product of each line */
                v[at] = fmaf(x0, cs[i], -(x1 * cs[i + 1]));
                v[at + half] = fmaf(x0, cs[i + 1], x1 * cs[i]);
            }
        }
    }
}

/* ---------------- evaluation ---------------- */

static const float *norm_weights(const vm_weight *w, float *scratch) {
    if (w->type == GGML_TYPE_F32) return (const float *)w->data; /* the mapping is 32-byte aligned */
    nm_dequantize_row(w->type, w->data, scratch, w->n_in);
    return scratch;
}

/* Element-wise steps run per token over the pool (each token's arithmetic as before; the other
 * threads would otherwise idle through them). */
typedef struct token_job {
    vm_ctx *c;
    const float *norm_w, *norm_b;
    const vm_layer *L;     /* step_rope: the layer (its per-head norms) */
    float *y;              /* add_bias: rows of width floats, plus b */
    const float *b;
    size_t width;
    int pos0;
    size_t offset; /* rows of x (the residual stream) start here; the other buffers at row 0 */
    void (*step)(const struct token_job *j, size_t t);
} token_job;

static void token_task(void *ctx, size_t t, int thread) {
    (void)thread;
    const token_job *j = ctx;
    j->step(j, t);
}

static void step_norm(const token_job *j, size_t t) {
    const size_t E = (size_t)j->c->m->n_embd;
    norm_row(j->c->m, j->c->x + (t + j->offset) * E, j->norm_w, j->norm_b, j->c->xn + t * E);
}

static void step_rope(const token_job *j, size_t t) {
    const vm_model *m = j->c->m;
    if (j->L && j->L->q_norm) { /* each head's RMSNorm first (Qwen3) */
        rms_norm_rows(m->head_dim, m->norm_eps, j->c->q + t * (size_t)m->n_head * m->head_dim, j->L->q_norm,
                      j->c->q + t * (size_t)m->n_head * m->head_dim, m->n_head);
        rms_norm_rows(m->head_dim, m->norm_eps, j->c->k + t * (size_t)m->n_head_kv * m->head_dim, j->L->k_norm,
                      j->c->k + t * (size_t)m->n_head_kv * m->head_dim, m->n_head_kv);
    }
    if (m->family->rope == NM_ROPE_NONE) return;
    float *q = j->c->q + t * (size_t)m->n_head * m->head_dim;
    /* Gemma 3's local layers: their own base, no scaling (llama.cpp's get_rope_freq_base/scale) */
    const int il = j->L ? (int)(j->L - m->layers) : 0;
    const bool local = m->swa_period > 0 && il % m->swa_period < m->swa_period - 1;
    const float base = local ? m->rope_base_swa : m->rope_base, fs = local ? 1.0f : m->rope_freq_scale;
    rope(m, j->c->rope_freqs, base, fs, q, m->n_head, 1, j->pos0 + (int)t);
    rope(m, j->c->rope_freqs, base, fs, j->c->k + t * (size_t)m->n_head_kv * m->head_dim, m->n_head_kv, 1,
         j->pos0 + (int)t);
    /* ggml_scale of the rotated queries: by 1/sqrt(head_dim) (Phi-3) or m->q_scale (Gemma 2) */
    const float s = m->family->q_scaled_first ? 1.0f / sqrtf((float)m->head_dim) : m->q_scale;
    if (s != 0.0f)
        for (size_t i = 0; i < (size_t)m->n_head * m->head_dim; i++) q[i] *= s;
}

/* A norm of the block's output rows (c->out) in place (Gemma 2's post-attention and post-FFN norms). */
static void step_out_norm(const token_job *j, size_t t) {
    const size_t E = (size_t)j->c->m->n_embd;
    rms_norm_rows(j->c->m->n_embd, j->c->m->norm_eps, j->c->out + t * E, j->norm_w, j->c->out + t * E, 1);
}

/* Gemma: the embedding rows times sqrt(n_embd) (ggml_scale). */
static void step_embd_scale(const token_job *j, size_t t) {
    const size_t E = (size_t)j->c->m->n_embd;
    float *x = j->c->x + t * E;
    for (size_t i = 0; i < E; i++) x[i] *= j->c->m->embd_scale;
}

/* The output logits soft-capped (Gemma 2): one row of n_vocab per task. */
static void step_final_softcap(const token_job *j, size_t t) {
    nm_ggml_softcap(j->c->m->n_vocab, j->y + t * (size_t)j->c->m->n_vocab, j->c->m->final_softcap);
}

static void step_add_bias(const token_job *j, size_t t) {
    float *y = j->y + t * j->width;
    for (size_t i = 0; i < j->width; i++) y[i] += j->b[i];
}

/* A fused projection's row (bias added) split into the query, key and value rows. */
static void step_split_qkv(const token_job *j, size_t t) {
    const vm_model *m = j->c->m;
    const size_t Q = (size_t)m->n_head * m->head_dim, KV = (size_t)m->n_head_kv * m->head_dim;
    float *row = j->c->qkv + t * (Q + 2 * KV);
    if (j->b)
        for (size_t i = 0; i < Q + 2 * KV; i++) row[i] += j->b[i];
    memcpy(j->c->q + t * Q, row, Q * sizeof(float));
    memcpy(j->c->k + t * KV, row + Q, KV * sizeof(float));
    memcpy(j->c->v + t * KV, row + Q + KV, KV * sizeof(float));
}

/* The FFN's activation: SwiGLU (fa = silu(fa) * fb) or GELU (fa = gelu(fa)); ggml's vector
 * kernels in the default mode, plain libm in exact mode. */
static void step_activation(const token_job *j, size_t t) {
    const size_t F = (size_t)j->c->m->n_ff;
    float *fa = j->c->fa + t * F;
    const float *gate = fa, *fb = j->c->fb + t * F;
    if (j->c->gate_up) { /* one fused projection: the gate's half, then the up half */
        gate = j->c->gate_up + t * 2 * F;
        fb = gate + F;
    } else if (j->c->m->family->ffn == NM_FFN_GEGLU) { /* GELU of the gate times the up projection */
        if (!j->c->exact) {
            nm_ggml_geglu((int)F, fa, fa, fb);
            return;
        }
        for (size_t i = 0; i < F; i++) fa[i] = nm_gelu_tanh(fa[i]) * fb[i];
        return;
    }
    if (j->c->m->family->ffn == NM_FFN_GELU) {
        if (!j->c->exact) {
            nm_ggml_gelu((int)F, fa, fa);
            return;
        }
        for (size_t i = 0; i < F; i++) fa[i] = nm_gelu_tanh(fa[i]);
        return;
    }
    if (!j->c->exact) {
        nm_ggml_swiglu((int)F, fa, gate, fb);
        return;
    }
    for (size_t i = 0; i < F; i++) {
        const float g = gate[i];
        fa[i] = (g / (1.0f + expf(-g))) * fb[i];
    }
}

static void step_residual(const token_job *j, size_t t) {
    const size_t E = (size_t)j->c->m->n_embd;
    float *x = j->c->x + (t + j->offset) * E;
    const float *o = j->c->out + t * E;
    for (size_t i = 0; i < E; i++) x[i] += o[i];
}

/* x = (ffn + x) + attention, llama.cpp's order for a parallel residual. */
static void step_parallel_residual(const token_job *j, size_t t) {
    const size_t E = (size_t)j->c->m->n_embd;
    float *x = j->c->x + (t + j->offset) * E;
    const float *o = j->c->out + t * E, *a = j->c->attn_out + (t + j->offset) * E;
    for (size_t i = 0; i < E; i++) x[i] = (o[i] + x[i]) + a[i];
}

static void per_token(vm_ctx *c, int offset, int n_tokens, void (*step)(const token_job *, size_t),
                      const float *norm_w, int pos0) {
    token_job j = {.c = c, .norm_w = norm_w, .pos0 = pos0, .offset = (size_t)offset, .step = step};
    nm_pool_run(c->pool, (size_t)n_tokens, token_task, &j);
}

static void norm_rows(vm_ctx *c, int offset, int n_tokens, const float *w, const float *b) {
    token_job j = {.c = c, .norm_w = w, .norm_b = b, .offset = (size_t)offset, .step = step_norm};
    nm_pool_run(c->pool, (size_t)n_tokens, token_task, &j);
}

/* y[t] = W x[t] (+ b) for n_tokens rows. */
static void linear(vm_ctx *c, const vm_weight *w, const float *b, const float *x, int n_tokens, float *y) {
    vm_matmul(c, w, x, n_tokens, y);
    if (!b) return;
    token_job j = {.c = c, .y = y, .b = b, .width = (size_t)w->n_out, .step = step_add_bias};
    nm_pool_run(c->pool, (size_t)n_tokens, token_task, &j);
}

static void attention_block(vm_ctx *c, int l, int n_tokens, int pos0, float *nw, float *dst) {
    const vm_model *m = c->m;
    const vm_layer *L = &m->layers[l];
    const int KV = m->n_head_kv * m->head_dim;
    norm_rows(c, 0, n_tokens, norm_weights(&L->attn_norm, nw), L->attn_norm_b);
    if (L->wqkv.data) {
        vm_matmul(c, &L->wqkv, c->xn, n_tokens, c->qkv);
        token_job j = {.c = c, .b = L->bqkv, .step = step_split_qkv};
        nm_pool_run(c->pool, (size_t)n_tokens, token_task, &j);
    } else {
        linear(c, &L->wq, L->bq, c->xn, n_tokens, c->q);
        linear(c, &L->wk, L->bk, c->xn, n_tokens, c->k);
        linear(c, &L->wv, L->bv, c->xn, n_tokens, c->v);
    }
    if (m->family->rope != NM_ROPE_NONE || L->q_norm || m->q_scale != 0.0f) {
        token_job j = {.c = c, .L = L, .pos0 = pos0, .step = step_rope};
        nm_pool_run(c->pool, (size_t)n_tokens, token_task, &j);
    }
    if (c->exact) {
        memcpy((float *)c->kcache[l] + (size_t)pos0 * KV, c->k, (size_t)n_tokens * KV * sizeof(float));
        memcpy((float *)c->vcache[l] + (size_t)pos0 * KV, c->v, (size_t)n_tokens * KV * sizeof(float));
    } else {
        nm_f32_to_f16_row(c->k, (uint16_t *)c->kcache[l] + (size_t)pos0 * KV, (size_t)n_tokens * KV);
        nm_f32_to_f16_row(c->v, (uint16_t *)c->vcache[l] + (size_t)pos0 * KV, (size_t)n_tokens * KV);
    }
    vm_attention(c, l, n_tokens, pos0);
    linear(c, &L->wo, L->bo, c->att, n_tokens, dst);
    if (L->attn_post_norm.data) {
        token_job j = {.c = c, .norm_w = norm_weights(&L->attn_post_norm, nw), .step = step_out_norm};
        nm_pool_run(c->pool, (size_t)n_tokens, token_task, &j);
    }
}

/* The FFN of rows f0 .. f0+nf of the residual stream into c->out (rows from 0). */
static void ffn_block(vm_ctx *c, int l, int f0, int nf, float *nw) {
    const vm_layer *L = &c->m->layers[l];
    norm_rows(c, f0, nf, norm_weights(&L->ffn_norm, nw), L->ffn_norm_b);
    if (L->gate_inp.data) {
        vm_moe_ffn(c, L, nf);
        return;
    }
    if (L->gate.data) linear(c, &L->gate, L->gate_b, c->xn, nf, c->fa);
    linear(c, &L->up, L->up_b, c->xn, nf, c->gate_up ? c->gate_up : L->gate.data ? c->fb : c->fa);
    per_token(c, 0, nf, step_activation, NULL, 0);
    linear(c, &L->down, L->down_b, c->fa, nf, c->out);
    if (L->ffn_post_norm.data) {
        token_job j = {.c = c, .norm_w = norm_weights(&L->ffn_post_norm, nw), .step = step_out_norm};
        nm_pool_run(c->pool, (size_t)nf, token_task, &j);
    }
}

float *vm_ctx_hidden(vm_ctx *c) { return c->x; }

int vm_eval_embed(vm_ctx *c, const int32_t *tokens, int n_tokens, int pos0, nm_error *err) {
    const vm_model *m = c->m;
    if (n_tokens < 1 || pos0 < 0 || pos0 + n_tokens > c->n_ctx)
        return nm_fail(err, "batch of %d tokens at position %d does not fit the context of %d", n_tokens, pos0, c->n_ctx);
    const int E = m->n_embd;
    for (int t = 0; t < n_tokens; t++)
        if (tokens[t] < 0 || tokens[t] >= m->n_vocab)
            return nm_fail(err, "token id %d is outside the vocabulary (%d tokens)", tokens[t], m->n_vocab);
    float *nw = malloc((size_t)E * sizeof(float));
    if (!nw) return nm_fail(err, "out of memory");
    for (int t = 0; t < n_tokens; t++)
        nm_dequantize_row(m->tok_embd.type, m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_size,
                          c->x + (size_t)t * E, E);
    if (c->lora) vm_lora_embed(c, tokens, n_tokens);
    if (m->embd_scale != 1.0f) per_token(c, 0, n_tokens, step_embd_scale, NULL, pos0);
    for (int t = 0; m->pos_embd.data && t < n_tokens; t++) { /* x = token (+ adapters) + position */
        nm_dequantize_row(m->pos_embd.type, m->pos_embd.data + (size_t)(pos0 + t) * m->pos_embd.row_size, nw, E);
        for (int i = 0; i < E; i++) c->x[(size_t)t * E + i] += nw[i];
    }
    free(nw);
    return 0;
}

int vm_eval_layer(vm_ctx *c, int l, int n_tokens, int pos0, int logits_from, nm_error *err) {
    const vm_model *m = c->m;
    if (l < 0 || l >= m->n_layer || n_tokens < 1 || pos0 < 0 || pos0 + n_tokens > c->n_ctx)
        return nm_fail(err, "layer %d of a batch of %d tokens at position %d is outside the model or context", l,
                       n_tokens, pos0);
    if (logits_from < 0 || logits_from > n_tokens) logits_from = n_tokens;
    float *nw = malloc((size_t)m->n_embd * sizeof(float));
    if (!nw) return nm_fail(err, "out of memory");
    attention_block(c, l, n_tokens, pos0, nw, m->parallel_residual ? c->attn_out : c->out);
    if (!m->parallel_residual) per_token(c, 0, n_tokens, step_residual, NULL, pos0);
    /* llama.cpp keeps only the rows that give logits after the last layer's attention
     * (inp_out_ids), so its last FFN sees a batch of just those rows, and which of them
     * ggml's 4-row kernels take (nm_dot_tile_at) follows from that batch. An observer
     * (imatrix) wants every row. */
    int f0 = 0;
    if (l == m->n_layer - 1 && !c->observe) f0 = logits_from;
    const int nf = n_tokens - f0;
    if (nf > 0) {
        ffn_block(c, l, f0, nf, nw);
        per_token(c, f0, nf, m->parallel_residual ? step_parallel_residual : step_residual, NULL, pos0);
    }
    free(nw);
    return 0;
}

/* The output norm of the batch's rows from..from+n-1 into c->xn (the head's input), or NULL. */
static const float *head_norm(vm_ctx *c, int from, int n, nm_error *err) {
    const vm_model *m = c->m;
    float *nw = malloc((size_t)m->n_embd * sizeof(float));
    if (!nw) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    norm_rows(c, from, n, norm_weights(&m->output_norm, nw), m->output_norm_b);
    free(nw);
    return c->xn;
}

const float *vm_eval_head_input(vm_ctx *c, int n_tokens, nm_error *err) {
    if (n_tokens < 1 || n_tokens > c->n_ctx) {
        nm_fail(err, "batch of %d tokens does not fit the context of %d", n_tokens, c->n_ctx);
        return NULL;
    }
    return head_norm(c, 0, n_tokens, err);
}

int vm_eval(vm_ctx *c, const int32_t *tokens, int n_tokens, int pos0, int logits_from, float *logits, nm_error *err) {
    const vm_model *m = c->m;
    if (logits_from < 0 || logits_from > n_tokens) logits_from = n_tokens;
    if (vm_eval_embed(c, tokens, n_tokens, pos0, err)) return -1;
    for (int l = 0; l < m->n_layer; l++)
        if (vm_eval_layer(c, l, n_tokens, pos0, logits_from, err)) return -1;
    const int n_out = n_tokens - logits_from;
    if (n_out > 0) {
        const float *xn = head_norm(c, logits_from, n_out, err);
        if (!xn) return -1;
        vm_matmul(c, &m->output, xn, n_out, logits);
        if (m->final_softcap != 0.0f) {
            token_job j = {.c = c, .y = logits, .step = step_final_softcap};
            nm_pool_run(c->pool, (size_t)n_out, token_task, &j);
        }
    }
    return 0;
}
