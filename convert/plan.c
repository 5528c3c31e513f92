/* The conversion plan: checkpoint names -> GGUF names (FORMATS.md §6.2), every tensor checked
 * against the configuration's shapes, output types chosen as llama.cpp's converter chooses
 * them, Q/K rows marked for the §6.3 permutation (Hugging Face weights only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convert/convert.h"

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

/* The decimal number at p (at most 1,000,000): the character after it, or NULL when there is none. */
static const char *parse_number(const char *p, long *value) {
    if (*p < '0' || *p > '9')
        return NULL;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000)
            return NULL;
        p++;
    }
    *value = v;
    return p;
}

/* Parses "<prefix><N>.<rest>"; returns rest or NULL. */
static const char *layer_of(const char *name, const char *prefix, long *layer) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0)
        return NULL;
    long v;
    const char *p = parse_number(name + n, &v);
    if (!p || *p != '.')
        return NULL;
    *layer = v;
    return p + 1;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* "<stem>.weight" or "<stem>.bias" (when the tensor may have a bias). */
static bool stem_matches(const char *name, const char *stem, bool bias_ok, bool *bias) {
    size_t n = strlen(stem);
    if (strncmp(name, stem, n) != 0)
        return false;
    if (strcmp(name + n, ".weight") == 0)
        return true;
    if (bias_ok && strcmp(name + n, ".bias") == 0) {
        *bias = true;
        return true;
    }
    return false;
}

/* A stacked expert's "<before>*<after>.weight" (the "*" the expert's number): true with *expert set. */
static bool expert_stem_matches(const char *name, const char *stem, long *expert) {
    const char *star = strchr(stem, '*');
    size_t n = (size_t)(star - stem);
    if (strncmp(name, stem, n) != 0)
        return false;
    long v;
    const char *p = parse_number(name + n, &v);
    if (!p || (name[n] == '0' && p - (name + n) > 1)) /* "07": not a name the converter looks for */
        return false;
    size_t k = strlen(star + 1);
    if (strncmp(p, star + 1, k) != 0 || strcmp(p + k, ".weight") != 0)
        return false;
    *expert = v;
    return true;
}

/* The family's tensor a source name is (NULL: none; *dropped: a buffer the converter skips);
 * *layer set for per-layer tensors, *bias for ".bias", *expert for a stacked expert's part. */
static const nm_arch_tensor *classify_expert(const nm_arch *a, const char *name, conv_layout layout, long *layer,
                                             bool *bias, bool *dropped, long *expert) {
    *layer = *expert = -1;
    *bias = *dropped = false;
    for (const char *const *ig = a->hf_ignored; *ig; ig++)
        if (ends_with(name, *ig)) {
            *dropped = true;
            return NULL;
        }
    const bool meta = layout == CONV_LAYOUT_META;
    if (!meta && a->hf_optional_prefix && strncmp(name, a->hf_optional_prefix, strlen(a->hf_optional_prefix)) == 0)
        name += strlen(a->hf_optional_prefix);
    const char *rest = layer_of(name, meta ? a->meta_layer_prefix : a->hf_layer_prefix, layer);
    for (size_t i = 0; i < a->n_tensors; i++) {
        const nm_arch_tensor *t = &a->tensors[i];
        const char *stem = meta ? t->meta : t->hf;
        const bool per_layer = t->role >= NM_ROLE_FIRST_LAYER;
        if (!stem || per_layer != (rest != NULL))
            continue;
        if (t->transform == NM_XF_STACK_EXPERTS ? per_layer && expert_stem_matches(rest, stem, expert)
                                                : stem_matches(per_layer ? rest : name, stem, t->bias != NM_BIAS_NONE, bias))
            return t;
    }
    *layer = -1;
    return NULL;
}

static const nm_arch_tensor *classify(const nm_arch *a, const char *name, conv_layout layout, long *layer,
                                      bool *bias, bool *dropped) {
    long expert;
    return classify_expert(a, name, layout, layer, bias, dropped, &expert);
}

/* Expected PyTorch shape (rows, cols); cols 0 for 1-D tensors. */
static void expected_shape(const conv_config *c, nm_role role, bool bias, uint64_t *rows, uint64_t *cols) {
    uint64_t q = (uint64_t)c->n_head * c->head_dim, kv = (uint64_t)c->n_head_kv * c->head_dim;
    const uint64_t ff_exp = c->n_ff_exp ? c->n_ff_exp : c->n_ff;
    switch (role) {
    case NM_ROLE_TOKEN_EMBD: case NM_ROLE_OUTPUT: *rows = c->n_vocab; *cols = c->n_embd; break;
    case NM_ROLE_POS_EMBD: *rows = c->n_ctx; *cols = c->n_embd; break;
    case NM_ROLE_OUTPUT_NORM: case NM_ROLE_ATTN_NORM: case NM_ROLE_FFN_NORM: *rows = c->n_embd; *cols = 0; break;
    case NM_ROLE_ATTN_POST_NORM: case NM_ROLE_FFN_POST_NORM: *rows = c->n_embd; *cols = 0; break;
    case NM_ROLE_ATTN_Q: *rows = q; *cols = c->n_embd; break;
    case NM_ROLE_ATTN_K: case NM_ROLE_ATTN_V: *rows = kv; *cols = c->n_embd; break;
    case NM_ROLE_ATTN_QKV: *rows = q + 2 * kv; *cols = c->n_embd; break;
    case NM_ROLE_ATTN_OUT: *rows = c->n_embd; *cols = q; break;
    case NM_ROLE_FFN_GATE: *rows = c->n_ff; *cols = c->n_embd; break;
    case NM_ROLE_FFN_UP: *rows = (c->family->ffn_up_gated ? 2ull : 1ull) * c->n_ff; *cols = c->n_embd; break;
    case NM_ROLE_FFN_DOWN: *rows = c->n_embd; *cols = c->n_ff; break;
    case NM_ROLE_FFN_GATE_INP: *rows = c->n_expert; *cols = c->n_embd; break;
    /* one expert's part of a stacked tensor */
    case NM_ROLE_FFN_GATE_EXPS: case NM_ROLE_FFN_UP_EXPS: *rows = ff_exp; *cols = c->n_embd; break;
    case NM_ROLE_FFN_DOWN_EXPS: *rows = c->n_embd; *cols = ff_exp; break;
    case NM_ROLE_ATTN_Q_NORM: case NM_ROLE_ATTN_K_NORM: *rows = c->head_dim; *cols = 0; break;
    default: *rows = *cols = 0;
    }
    if (bias)
        *cols = 0;
}

/* The row reordering a Hugging Face tensor of `rows` rows gets (0: none); -1 when its rows
 * cannot be split as the transform needs. */
static int set_transform(const conv_config *c, const nm_arch_tensor *t, uint64_t rows, const char *name,
                         uint32_t *permute_heads, uint32_t *qkv_heads, nm_error *err) {
    *permute_heads = *qkv_heads = 0;
    if (t->transform == NM_XF_ROTARY_Q || t->transform == NM_XF_ROTARY_K) {
        /* q: permute(W, n_head, n_head); k: permute(W, n_head, n_head_kv), which uses n_head_kv */
        uint32_t heads = t->transform == NM_XF_ROTARY_Q ? c->n_head : c->n_head_kv;
        if (heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0)
            return nm_fail(err, "tensor %s: %llu rows cannot be split into %u heads of pairs", name,
                           (unsigned long long)rows, heads);
        *permute_heads = heads;
    } else if (t->transform == NM_XF_QKV_HEADS) {
        if (c->n_head_kv != c->n_head || rows % (3ull * c->n_head) != 0)
            return nm_fail(err, "tensor %s: %llu rows cannot be split into %u heads of [q|k|v]", name,
                           (unsigned long long)rows, c->n_head);
        *qkv_heads = c->n_head;
    }
    return 0;
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

/* Phi-3's longrope factors, long then short, before the checkpoint's tensors as the converter
 * yields them; they count as parameters (gguf-py counts every tensor). */
static void add_longrope_factors(conv_plan *p, const conv_config *c) {
    for (int k = 0; k < 2; k++) {
        conv_tensor *t = k ? &p->rope_short : &p->rope_long;
        const uint32_t n = c->n_rope_factors;
        *t = (conv_tensor){.name = k ? "rope_scaling.short_factor" : "rope_scaling.long_factor", .dtype = NM_DTYPE_F32,
                           .n_dims = 1, .shape = {n}, .size = (size_t)n * sizeof(float),
                           .data = k ? c->rope_short : c->rope_long};
        conv_item *it = &p->items[p->n_items++];
        snprintf(it->name, sizeof it->name, k ? "rope_factors_short.weight" : "rope_factors_long.weight");
        snprintf(it->hf_name, sizeof it->hf_name, "%s", it->name);
        it->src = t;
        it->type = GGML_TYPE_F32;
        it->n_dims = 1;
        it->ne[0] = n;
        it->ne[1] = it->ne[2] = it->ne[3] = 1;
        it->n_rows = 1;
        it->n_cols = n;
        it->out_size = t->size;
        p->total_params += n;
        p->total_out += it->out_size;
        if (it->out_size > p->largest_out)
            p->largest_out = it->out_size;
    }
}

static int by_hf_name(const void *a, const void *b) {
    return strcmp(((const conv_item *)a)->hf_name, ((const conv_item *)b)->hf_name);
}

/* The tensor's names: GGUF, and the Hugging Face spelling that orders Meta checkpoints. */
static void item_names(conv_item *it, const conv_config *c, const nm_arch_tensor *t, long layer, bool bias,
                       const char *src_name) {
    const char *suffix = bias ? "bias" : "weight";
    if (t->role < NM_ROLE_FIRST_LAYER)
        snprintf(it->name, sizeof it->name, "%s.%s", nm_role_gguf_name(t->role), suffix);
    else
        snprintf(it->name, sizeof it->name, "blk.%ld.%s.%s", layer, nm_role_gguf_name(t->role), suffix);
    if (c->layout == CONV_LAYOUT_HF)
        snprintf(it->hf_name, sizeof it->hf_name, "%s", src_name);
    else if (t->role < NM_ROLE_FIRST_LAYER)
        snprintf(it->hf_name, sizeof it->hf_name, "%s.%s", t->hf, suffix);
    else
        snprintf(it->hf_name, sizeof it->hf_name, "%s%ld.%s.%s", c->family->hf_layer_prefix, layer, t->hf, suffix);
}

/* The family's stacked expert tensors: how many, and t's place among them. */
static uint32_t stacked_count(const nm_arch *a) {
    uint32_t n = 0;
    for (size_t i = 0; i < a->n_tensors; i++)
        n += a->tensors[i].transform == NM_XF_STACK_EXPERTS;
    return n;
}
static uint32_t stacked_slot(const nm_arch *a, const nm_arch_tensor *t) {
    uint32_t n = 0;
    for (const nm_arch_tensor *u = a->tensors; u < t; u++)
        n += u->transform == NM_XF_STACK_EXPERTS;
    return n;
}

/* "block_sparse_moe.experts.3.w2" from the stem "block_sparse_moe.experts.*.w2". */
static void expert_name(const char *stem, uint32_t expert, char *buf, size_t size) {
    const char *star = strchr(stem, '*');
    snprintf(buf, size, "%.*s%u%s", (int)(star - stem), stem, expert, star + 1);
}

/* The config.json key that gives a hyper-parameter, for messages. */
static const char *config_key(const nm_arch *a, nm_hparam hp) {
    for (const nm_arch_hf_key *k = a->hf_keys; k->key; k++)
        if (k->hp == hp)
            return k->key;
    for (const nm_arch_hf_key *k = a->hf_keys_more; k && k->key; k++)
        if (k->hp == hp)
            return k->key;
    return "?";
}

/* A layer's stacked tensor, once the converter has all of the layer's experts: one 3-D item of
 * n_expert × the part's rows, written where the last of the layer's expert tensors stands. */
static int add_stacked_item(conv_plan *p, const conv_config *c, const nm_arch_tensor *at, long layer,
                            const conv_tensor *const *srcs, nm_error *err) {
    uint64_t rows, cols;
    expected_shape(c, at->role, false, &rows, &cols);
    conv_item *it = &p->items[p->n_items++];
    it->src = srcs[0];
    it->experts = srcs;
    it->n_experts = c->n_expert;
    snprintf(it->name, sizeof it->name, "blk.%ld.%s.weight", layer, nm_role_gguf_name(at->role));
    snprintf(it->hf_name, sizeof it->hf_name, "%s", srcs[0]->name);
    it->n_dims = 3;
    it->ne[0] = (int64_t)cols;
    it->ne[1] = (int64_t)rows;
    it->ne[2] = (int64_t)c->n_expert;
    it->ne[3] = 1;
    it->n_rows = rows * c->n_expert;
    it->n_cols = cols;
    static const uint32_t gtypes[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0};
    it->type = gtypes[p->outtype];
    if (it->type == GGML_TYPE_Q8_0 && it->ne[0] % 32 != 0)
        it->type = GGML_TYPE_F16;
    if (ggml_tensor_size(it->type, it->ne, &it->out_size) != 0)
        return nm_fail(err, "tensor %s: output size overflows", it->name);
    const uint64_t elements = rows * cols * c->n_expert;
    p->total_params += elements;
    p->stacked_params += elements;
    p->expert_params += rows * cols;
    if (it->out_size > p->largest_out)
        p->largest_out = it->out_size;
    p->total_out += it->out_size;
    return 0;
}

/* What the checkpoint must hold: every tensor of every layer, with the biases the family requires. */
static int check_complete(const conv_config *c, const conv_plan *p, const uint8_t *seen, nm_error *err) {
    const nm_arch *a = c->family;
    const bool meta = c->layout == CONV_LAYOUT_META;
    const uint32_t n_stack = stacked_count(a);
    for (size_t i = 0; i < a->n_tensors; i++) {
        const nm_arch_tensor *t = &a->tensors[i];
        if (t->transform == NM_XF_STACK_EXPERTS) {
            const uint32_t slot = stacked_slot(a, t);
            for (uint32_t l = 0; l < c->n_layer; l++)
                for (uint32_t e = 0; e < c->n_expert; e++)
                    if (!p->expert_srcs[((size_t)l * n_stack + slot) * c->n_expert + e]) {
                        char part[128];
                        expert_name(t->hf, e, part, sizeof part);
                        return nm_fail(err, "tensor %s%u.%s.weight is missing (%s = %u experts per layer)",
                                       a->hf_layer_prefix, l, part, config_key(a, NM_HP_EXPERTS), c->n_expert);
                    }
            continue;
        }
        const char *stem = meta ? t->meta : t->hf;
        const char *prefix = meta ? a->meta_layer_prefix : a->hf_layer_prefix;
        if (t->role < NM_ROLE_FIRST_LAYER) {
            uint8_t got = seen[t->role];
            if (!(got & 1) && !(t->role == NM_ROLE_OUTPUT && !meta && c->tied))
                return nm_fail(err, "tensor %s.weight is missing%s", stem,
                               t->role == NM_ROLE_OUTPUT ? " (and tie_word_embeddings is not set)" : "");
            if (t->bias == NM_BIAS_REQUIRED && (got & 1) && !(got & 2))
                return nm_fail(err, "tensor %s.bias is missing", stem);
            continue;
        }
        for (uint32_t l = 0; l < c->n_layer; l++) {
            uint8_t got = seen[NM_ROLE_COUNT + (size_t)l * NM_ROLE_COUNT + t->role];
            if (!(got & 1))
                return nm_fail(err, "tensor %s%u.%s.weight is missing", prefix, l, stem);
            if (t->bias == NM_BIAS_REQUIRED && !(got & 2))
                return nm_fail(err, "tensor %s%u.%s.bias is missing", prefix, l, stem);
        }
    }
    return 0;
}

int conv_plan_build(conv_plan *p, conv_config *c, const conv_source *s, conv_outtype outtype, nm_error *err) {
    memset(p, 0, sizeof *p);
    size_t n = conv_source_count(s);
    if (n == 0)
        return nm_fail(err, "the checkpoint holds no tensors");
    p->items = calloc(n + 2, sizeof *p->items); /* the computed tensors too */
    uint8_t *seen = calloc((size_t)c->n_layer * NM_ROLE_COUNT + NM_ROLE_COUNT, 1); /* bit 0 weight, bit 1 bias */
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
    const uint32_t n_stack = stacked_count(c->family);
    uint64_t *layer_experts = NULL; /* expert tensors seen per layer */
    if (n_stack) {
        size_t cells;
        if (c->n_expert == 0 || c->n_expert > 65536 ||
            nm_mul_size((size_t)c->n_layer * n_stack, c->n_expert, &cells) != 0) {
            nm_fail(err, "%s = %u experts per layer is not a supported count (1 to 65536)",
                    config_key(c->family, NM_HP_EXPERTS), c->n_expert);
            goto out;
        }
        p->n_expert = c->n_expert;
        p->expert_srcs = calloc(cells, sizeof *p->expert_srcs);
        layer_experts = calloc(c->n_layer, sizeof *layer_experts);
        if (!p->expert_srcs || !layer_experts) {
            nm_fail(err, "out of memory");
            goto out;
        }
    }
    if (c->rope_llama3 && add_llama3_rope_freqs(p, c, err) != 0)
        goto out;
    if (c->rope_longrope)
        add_longrope_factors(p, c);
    for (size_t i = 0; i < n; i++) {
        const conv_tensor *t = conv_source_at(s, i);
        long layer, expert;
        bool bias, dropped;
        const nm_arch_tensor *at = classify_expert(c->family, t->name, c->layout, &layer, &bias, &dropped, &expert);
        if (dropped)
            continue;
        if (!at) {
            nm_fail(err, "tensor %s is not part of a %s model (cannot map it to a GGUF name)", t->name, c->arch);
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
        expected_shape(c, at->role, bias, &rows, &cols);
        uint32_t want_dims = cols ? 2 : 1;
        const bool transposed = cols && at->transform == NM_XF_TRANSPOSE; /* stored [in, out] */
        const uint64_t r0 = transposed ? cols : rows, c0 = transposed ? rows : cols;
        if (t->n_dims != want_dims || t->shape[0] != r0 || (cols && t->shape[1] != c0)) {
            char got[128], want[64];
            uint64_t ws[2] = {r0, c0};
            shape_str(t->shape, t->n_dims, got, sizeof got);
            shape_str(ws, want_dims, want, sizeof want);
            nm_fail(err, "tensor %s has shape %s but the configuration implies %s", t->name, got, want);
            goto out;
        }
        if (at->transform == NM_XF_STACK_EXPERTS) {
            /* the converter buffers a layer's expert tensors until it has all of them */
            if (expert >= (long)c->n_expert) {
                nm_fail(err, "tensor %s: expert %ld is beyond the %u experts in the configuration (%s)", t->name,
                        expert, c->n_expert, config_key(c->family, NM_HP_EXPERTS));
                goto out;
            }
            const size_t row = ((size_t)layer * n_stack + stacked_slot(c->family, at)) * c->n_expert;
            if (p->expert_srcs[row + (size_t)expert]) {
                nm_fail(err, "tensor %s appears twice", t->name);
                goto out;
            }
            p->expert_srcs[row + (size_t)expert] = t;
            if (t->size > p->largest_src)
                p->largest_src = t->size;
            if (++layer_experts[layer] < (uint64_t)n_stack * c->n_expert)
                continue;
            for (size_t k = 0; k < c->family->n_tensors; k++) {
                const nm_arch_tensor *st = &c->family->tensors[k];
                if (st->transform != NM_XF_STACK_EXPERTS)
                    continue;
                const size_t first = ((size_t)layer * n_stack + stacked_slot(c->family, st)) * c->n_expert;
                if (add_stacked_item(p, c, st, layer, p->expert_srcs + first, err) != 0)
                    goto out;
            }
            continue;
        }
        size_t key = at->role < NM_ROLE_FIRST_LAYER ? (size_t)at->role
                                                    : NM_ROLE_COUNT + (size_t)layer * NM_ROLE_COUNT + (size_t)at->role;
        const uint8_t bit = bias ? 2 : 1;
        if (seen[key] & bit) {
            nm_fail(err, "tensor %s appears twice", t->name);
            goto out;
        }
        seen[key] |= bit;
        conv_item *it = &p->items[p->n_items++];
        it->src = t;
        item_names(it, c, at, layer, bias, t->name);
        it->n_dims = want_dims;
        it->ne[0] = (int64_t)(cols ? cols : rows);
        it->ne[1] = cols ? (int64_t)rows : 1;
        it->ne[2] = it->ne[3] = 1;
        /* Meta's checkpoints already hold ggml's row order */
        if (c->layout == CONV_LAYOUT_HF &&
            set_transform(c, at, rows, t->name, &it->permute_heads, &it->qkv_heads, err) != 0)
            goto out;
        it->transpose = transposed;
        it->plus_one = at->transform == NM_XF_PLUS_ONE;
        const bool reordered = it->permute_heads || it->qkv_heads;
        it->n_rows = cols ? rows : (reordered ? rows : 1);
        it->n_cols = cols ? cols : (reordered ? 1 : rows);
        bool is_norm = strlen(it->name) >= 12 && strcmp(it->name + strlen(it->name) - 12, "_norm.weight") == 0;
        /* the converter keeps 1-D tensors, norms and some kinds (position embeddings) in F32 */
        if (want_dims <= 1 || is_norm || at->role == NM_ROLE_POS_EMBD || at->role == NM_ROLE_FFN_GATE_INP)
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
    if (check_complete(c, p, seen, err) != 0)
        goto out;
    if (c->layout == CONV_LAYOUT_META)
        qsort(p->items, p->n_items, sizeof *p->items, by_hf_name);
    rc = 0;
out:
    free(seen);
    free(layer_experts);
    if (rc != 0)
        conv_plan_free(p);
    return rc;
}

int conv_hf_target(const conv_config *c, const char *hf_name, conv_target *t, nm_error *err) {
    memset(t, 0, sizeof *t);
    long layer;
    bool bias, dropped;
    const nm_arch_tensor *at = classify(c->family, hf_name, CONV_LAYOUT_HF, &layer, &bias, &dropped);
    if (!at || bias)
        return nm_fail(err, "%s is not a weight of a %s model (cannot map it to a GGUF name)", hf_name,
                       c->family->name);
    if (at->transform == NM_XF_STACK_EXPERTS)
        return nm_fail(err, "%s: adapters of a mixture of experts' expert tensors are not supported", hf_name);
    if (layer >= (long)c->n_layer)
        return nm_fail(err, "%s: layer %ld is beyond the base model's %u layers", hf_name, layer, c->n_layer);
    if (at->role == NM_ROLE_OUTPUT && c->tied)
        return nm_fail(err, "%s: the base model ties its output to the token embedding (no separate lm_head)",
                       hf_name);
    uint64_t rows, cols;
    expected_shape(c, at->role, false, &rows, &cols);
    if (at->role < NM_ROLE_FIRST_LAYER)
        snprintf(t->name, sizeof t->name, "%s.weight", nm_role_gguf_name(at->role));
    else
        snprintf(t->name, sizeof t->name, "blk.%ld.%s.weight", layer, nm_role_gguf_name(at->role));
    t->ne0 = (int64_t)(cols ? cols : rows);
    t->ne1 = cols ? (int64_t)rows : 1;
    uint32_t qkv_heads;
    if (set_transform(c, at, rows, hf_name, &t->permute_heads, &qkv_heads, err) != 0)
        return -1;
    if (qkv_heads)
        return nm_fail(err, "%s: adapters of a fused QKV projection are not supported", hf_name);
    return 0;
}

void conv_plan_free(conv_plan *p) {
    free(p->expert_srcs);
    p->expert_srcs = NULL;
    free(p->rope_factors);
    p->rope_factors = NULL;
    free(p->items);
    p->items = NULL;
    p->n_items = 0;
}
