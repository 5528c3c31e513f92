/* The conversion plan: checkpoint names -> GGUF names (FORMATS.md §6.2), every tensor checked
 * against the configuration's shapes, output types chosen as llama.cpp's converter chooses
 * them, Q/K rows marked for the §6.3 permutation (Hugging Face weights only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convert/convert.h"

enum role {
    R_NONE = -1, R_DROP = -2,
    R_EMBD = 0, R_NORM, R_OUTPUT,
    R_ATTN_NORM, R_FFN_NORM, R_Q, R_K, R_V, R_O, R_GATE, R_UP, R_DOWN,
    R_COUNT
};

static const char *const gguf_names[R_COUNT] = {
    "token_embd", "output_norm", "output", "attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v",
    "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};
static const char *const hf_layer_names[R_COUNT] = {
    NULL, NULL, NULL, "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
    "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
};
static const char *const meta_layer_names[R_COUNT] = {
    NULL, NULL, NULL, "attention_norm", "ffn_norm", "attention.wq", "attention.wk", "attention.wv",
    "attention.wo", "feed_forward.w1", "feed_forward.w3", "feed_forward.w2",
};

const char *conv_outtype_name(conv_outtype t) {
    switch (t) {
    case CONV_OUT_F32: return "f32";
    case CONV_OUT_F16: return "f16";
    case CONV_OUT_BF16: return "bf16";
    case CONV_OUT_Q8_0: return "q8_0";
    default: return "auto";
    }
}

int conv_outtype_parse(const char *s, conv_outtype *out) {
    static const struct { const char *name; conv_outtype t; } map[] = {
        {"auto", CONV_OUT_AUTO}, {"f32", CONV_OUT_F32}, {"f16", CONV_OUT_F16},
        {"bf16", CONV_OUT_BF16}, {"q8_0", CONV_OUT_Q8_0},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcasecmp(s, map[i].name) == 0) {
            *out = map[i].t;
            return 0;
        }
    return -1;
}

/* Parses "<prefix><N>.<rest>"; returns rest or NULL. */
static const char *layer_of(const char *name, const char *prefix, long *layer) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0)
        return NULL;
    const char *p = name + n;
    if (*p < '0' || *p > '9')
        return NULL;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000)
            return NULL;
        p++;
    }
    if (*p != '.')
        return NULL;
    *layer = v;
    return p + 1;
}

/* role of a source name; *layer set for per-layer roles; *bias when ".bias". */
static int classify(const char *name, conv_layout layout, long *layer, bool *bias) {
    *layer = -1;
    *bias = false;
    const char *rest;
    if (layout == CONV_LAYOUT_HF) {
        if (strcmp(name, "model.embed_tokens.weight") == 0) return R_EMBD;
        if (strcmp(name, "model.norm.weight") == 0) return R_NORM;
        if (strcmp(name, "lm_head.weight") == 0) return R_OUTPUT;
        rest = layer_of(name, "model.layers.", layer);
    } else {
        if (strcmp(name, "tok_embeddings.weight") == 0) return R_EMBD;
        if (strcmp(name, "norm.weight") == 0) return R_NORM;
        if (strcmp(name, "output.weight") == 0) return R_OUTPUT;
        if (strcmp(name, "rope.freqs") == 0) return R_DROP;
        rest = layer_of(name, "layers.", layer);
    }
    if (!rest)
        return R_NONE;
    if (strcmp(rest, "self_attn.rotary_emb.inv_freq") == 0 || strcmp(rest, "attention.inner_attention.rope.freqs") == 0)
        return R_DROP;
    const char *const *names = layout == CONV_LAYOUT_HF ? hf_layer_names : meta_layer_names;
    for (int r = R_ATTN_NORM; r < R_COUNT; r++) {
        size_t n = strlen(names[r]);
        if (strncmp(rest, names[r], n) != 0)
            continue;
        if (strcmp(rest + n, ".weight") == 0)
            return r;
        if (strcmp(rest + n, ".bias") == 0 && r >= R_Q) {
            *bias = true;
            return r;
        }
    }
    return R_NONE;
}

/* Expected PyTorch shape (rows, cols); cols 0 for 1-D tensors. */
static void expected_shape(const conv_config *c, int role, bool bias, uint64_t *rows, uint64_t *cols) {
    uint64_t q = (uint64_t)c->n_head * c->head_dim, kv = (uint64_t)c->n_head_kv * c->head_dim;
    switch (role) {
    case R_EMBD: case R_OUTPUT: *rows = c->n_vocab; *cols = c->n_embd; break;
    case R_NORM: case R_ATTN_NORM: case R_FFN_NORM: *rows = c->n_embd; *cols = 0; break;
    case R_Q: *rows = q; *cols = c->n_embd; break;
    case R_K: case R_V: *rows = kv; *cols = c->n_embd; break;
    case R_O: *rows = c->n_embd; *cols = q; break;
    case R_GATE: case R_UP: *rows = c->n_ff; *cols = c->n_embd; break;
    case R_DOWN: *rows = c->n_embd; *cols = c->n_ff; break;
    default: *rows = *cols = 0;
    }
    if (bias)
        *cols = 0;
}

static void shape_str(const uint64_t *shape, uint32_t n, char *buf, size_t size) {
    size_t len = 0;
    len += (size_t)snprintf(buf, size, "[");
    for (uint32_t i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

/* llama.cpp's converter yields rope_freqs.weight before the checkpoint's tensors. */
static int add_llama3_rope_freqs(conv_plan *p, const conv_config *c, nm_error *err) {
    uint32_t n = c->head_dim / 2;
    if (!(p->rope_factors = malloc((size_t)n * sizeof(float))))
        return nm_fail(err, "out of memory");
    conv_llama3_rope_factors(c, p->rope_factors);
    p->rope_freqs = (conv_tensor){.name = "rope_freqs (computed from rope_scaling)", .dtype = NM_DTYPE_F32,
                                  .n_dims = 1, .shape = {n}, .size = (size_t)n * sizeof(float),
                                  .data = p->rope_factors};
    conv_item *it = &p->items[p->n_items++];
    snprintf(it->name, sizeof it->name, "rope_freqs.weight");
    snprintf(it->hf_name, sizeof it->hf_name, "rope_freqs.weight");
    it->src = &p->rope_freqs;
    it->type = GGML_TYPE_F32;
    it->n_dims = 1;
    it->ne[0] = n;
    it->ne[1] = it->ne[2] = it->ne[3] = 1;
    it->n_rows = 1;
    it->n_cols = n;
    it->out_size = p->rope_freqs.size;
    p->total_params += n;
    p->total_out += it->out_size;
    if (it->out_size > p->largest_out)
        p->largest_out = it->out_size;
    return 0;
}

static int by_hf_name(const void *a, const void *b) {
    return strcmp(((const conv_item *)a)->hf_name, ((const conv_item *)b)->hf_name);
}

int conv_plan_build(conv_plan *p, conv_config *c, const conv_source *s, conv_outtype outtype, nm_error *err) {
    memset(p, 0, sizeof *p);
    size_t n = conv_source_count(s);
    if (n == 0)
        return nm_fail(err, "the checkpoint holds no tensors");
    p->items = calloc(n + 1, sizeof *p->items);
    bool *seen = calloc((size_t)c->n_layer * R_COUNT + R_COUNT, 1);
    if (!p->items || !seen) {
        free(seen);
        conv_plan_free(p);
        return nm_fail(err, "out of memory");
    }
    /* Meta: the FFN width comes from the weights; vocab -1 from the embedding. */
    if (c->layout == CONV_LAYOUT_META) {
        const conv_tensor *w1 = conv_source_find(s, "layers.0.feed_forward.w1.weight");
        const conv_tensor *emb = conv_source_find(s, "tok_embeddings.weight");
        if (!w1 || w1->n_dims != 2 || w1->shape[0] == 0 || w1->shape[0] > UINT32_MAX) {
            free(seen);
            conv_plan_free(p);
            return nm_fail(err, "tensor layers.0.feed_forward.w1.weight is missing or not 2-D");
        }
        c->n_ff = (uint32_t)w1->shape[0];
        if (c->n_vocab == 0 && emb && emb->n_dims == 2 && emb->shape[0] <= UINT32_MAX)
            c->n_vocab = (uint32_t)emb->shape[0];
    }
    if (outtype == CONV_OUT_AUTO) {
        nm_dtype d = conv_source_at(s, 0)->dtype;
        outtype = d == NM_DTYPE_BF16 ? CONV_OUT_BF16 : CONV_OUT_F16;
    }
    p->outtype = outtype;
    static const uint32_t ftypes[] = {0, 1, 32, 7};
    static const uint32_t gtypes[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0};
    p->file_type = ftypes[outtype];

    int rc = -1;
    if (c->rope_llama3 && add_llama3_rope_freqs(p, c, err) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const conv_tensor *t = conv_source_at(s, i);
        long layer;
        bool bias;
        int role = classify(t->name, c->layout, &layer, &bias);
        if (role == R_DROP)
            continue;
        if (role == R_NONE) {
            nm_fail(err, "tensor %s is not part of a Llama model (cannot map it to a GGUF name)", t->name);
            goto out;
        }
        if (layer >= (long)c->n_layer) {
            nm_fail(err, "tensor %s: layer %ld is beyond the %u layers in the configuration", t->name, layer, c->n_layer);
            goto out;
        }
        if (t->dtype != NM_DTYPE_F32 && t->dtype != NM_DTYPE_F16 && t->dtype != NM_DTYPE_BF16) {
            nm_fail(err, "tensor %s has dtype %s, which cannot be converted (supported: F32, F16, BF16)", t->name,
                    nm_dtype_name(t->dtype));
            goto out;
        }
        uint64_t rows, cols;
        expected_shape(c, role, bias, &rows, &cols);
        uint32_t want_dims = cols ? 2 : 1;
        if (t->n_dims != want_dims || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
            char got[128], want[64];
            uint64_t ws[2] = {rows, cols};
            shape_str(t->shape, t->n_dims, got, sizeof got);
            shape_str(ws, want_dims, want, sizeof want);
            nm_fail(err, "tensor %s has shape %s but the configuration implies %s", t->name, got, want);
            goto out;
        }
        size_t key = role < R_ATTN_NORM ? (size_t)role : R_COUNT + (size_t)layer * R_COUNT + (size_t)role;
        if (!bias) {
            if (seen[key]) {
                nm_fail(err, "tensor %s appears twice", t->name);
                goto out;
            }
            seen[key] = 1;
        }
        conv_item *it = &p->items[p->n_items++];
        it->src = t;
        if (role < R_ATTN_NORM)
            snprintf(it->name, sizeof it->name, "%s.%s", gguf_names[role], bias ? "bias" : "weight");
        else
            snprintf(it->name, sizeof it->name, "blk.%ld.%s.%s", layer, gguf_names[role], bias ? "bias" : "weight");
        if (c->layout == CONV_LAYOUT_HF) {
            snprintf(it->hf_name, sizeof it->hf_name, "%s", t->name);
        } else if (role < R_ATTN_NORM) {
            static const char *hf_top[] = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
            snprintf(it->hf_name, sizeof it->hf_name, "%s", hf_top[role]);
        } else {
            snprintf(it->hf_name, sizeof it->hf_name, "model.layers.%ld.%s.%s", layer, hf_layer_names[role],
                     bias ? "bias" : "weight");
        }
        it->n_dims = want_dims;
        it->ne[0] = (int64_t)(cols ? cols : rows);
        it->ne[1] = cols ? (int64_t)rows : 1;
        it->ne[2] = it->ne[3] = 1;
        if (c->layout == CONV_LAYOUT_HF && (role == R_Q || role == R_K)) {
            /* q: permute(W, n_head, n_head); k: permute(W, n_head, n_head_kv), which uses n_head_kv */
            uint32_t heads = role == R_Q ? c->n_head : c->n_head_kv;
            if (rows % heads != 0 || (rows / heads) % 2 != 0) {
                nm_fail(err, "tensor %s: %llu rows cannot be split into %u heads of pairs", t->name,
                        (unsigned long long)rows, heads);
                goto out;
            }
            it->permute_heads = heads;
        }
        it->n_rows = cols ? rows : (it->permute_heads ? rows : 1);
        it->n_cols = cols ? cols : (it->permute_heads ? 1 : rows);
        bool is_norm = strlen(it->name) >= 12 && strcmp(it->name + strlen(it->name) - 12, "_norm.weight") == 0;
        if (want_dims <= 1 || is_norm)
            it->type = GGML_TYPE_F32;
        else
            it->type = gtypes[outtype];
        if (it->type == GGML_TYPE_Q8_0 && it->ne[0] % 32 != 0)
            it->type = GGML_TYPE_F16; /* llama.cpp falls back to F16 for rows that do not fit blocks */
        if (ggml_tensor_size(it->type, it->ne, &it->out_size) != 0) {
            nm_fail(err, "tensor %s: output size overflows", t->name);
            goto out;
        }
        p->total_params += (uint64_t)it->ne[0] * (uint64_t)it->ne[1];
        if (it->out_size > p->largest_out)
            p->largest_out = it->out_size;
        if (t->size > p->largest_src)
            p->largest_src = t->size;
        p->total_out += it->out_size;
    }
    /* everything a Llama model needs must be there */
    static const char *const hf_top[] = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
    static const char *const meta_top[] = {"tok_embeddings.weight", "norm.weight", "output.weight"};
    for (int r = R_EMBD; r <= R_OUTPUT; r++) {
        if (seen[r] || (r == R_OUTPUT && c->layout == CONV_LAYOUT_HF && c->tied))
            continue;
        nm_fail(err, "tensor %s is missing%s", c->layout == CONV_LAYOUT_HF ? hf_top[r] : meta_top[r],
                r == R_OUTPUT ? " (and tie_word_embeddings is not set)" : "");
        goto out;
    }
    for (uint32_t l = 0; l < c->n_layer; l++)
        for (int r = R_ATTN_NORM; r < R_COUNT; r++)
            if (!seen[R_COUNT + (size_t)l * R_COUNT + (size_t)r]) {
                if (c->layout == CONV_LAYOUT_HF)
                    nm_fail(err, "tensor model.layers.%u.%s.weight is missing", l, hf_layer_names[r]);
                else
                    nm_fail(err, "tensor layers.%u.%s.weight is missing", l, meta_layer_names[r]);
                goto out;
            }
    if (c->layout == CONV_LAYOUT_META)
        qsort(p->items, p->n_items, sizeof *p->items, by_hf_name);
    rc = 0;
out:
    free(seen);
    if (rc != 0)
        conv_plan_free(p);
    return rc;
}

int conv_hf_target(const conv_config *c, const char *hf_name, conv_target *t, nm_error *err) {
    memset(t, 0, sizeof *t);
    long layer;
    bool bias;
    int role = classify(hf_name, CONV_LAYOUT_HF, &layer, &bias);
    if (role < 0 || bias)
        return nm_fail(err, "%s is not a weight of a Llama model (cannot map it to a GGUF name)", hf_name);
    if (layer >= (long)c->n_layer)
        return nm_fail(err, "%s: layer %ld is beyond the base model's %u layers", hf_name, layer, c->n_layer);
    if (role == R_OUTPUT && c->tied)
        return nm_fail(err, "%s: the base model ties its output to the token embedding (no separate lm_head)",
                       hf_name);
    uint64_t rows, cols;
    expected_shape(c, role, false, &rows, &cols);
    if (role < R_ATTN_NORM)
        snprintf(t->name, sizeof t->name, "%s.weight", gguf_names[role]);
    else
        snprintf(t->name, sizeof t->name, "blk.%ld.%s.weight", layer, gguf_names[role]);
    t->ne0 = (int64_t)(cols ? cols : rows);
    t->ne1 = cols ? (int64_t)rows : 1;
    if (role == R_Q || role == R_K) {
        uint32_t heads = role == R_Q ? c->n_head : c->n_head_kv;
        if (heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0)
            return nm_fail(err, "%s: %llu rows cannot be split into %u heads of pairs", hf_name,
                           (unsigned long long)rows, heads);
        t->permute_heads = heads;
    }
    return 0;
}

void conv_plan_free(conv_plan *p) {
    free(p->rope_factors);
    p->rope_factors = NULL;
    free(p->items);
    p->items = NULL;
    p->n_items = 0;
}
