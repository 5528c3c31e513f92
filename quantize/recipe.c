/* llama-quantize's per-tensor type rules (FORMATS.md §5). Written from the description in
 * FORMATS.md and checked against the reference files made by llama-quantize itself.
 * The rules go by tensor names alone; the fused tensors of Phi-3 (phi3) get none of their own
 * (src/llama-quant.cpp has no phi3 case): attn_qkv takes attn_v's rule (attn_v_like, as GPT-NeoX's
 * and GPT-2's fused QKV do), ffn_up with its 2 × n_ff gate and up rows the plain ffn_up rule, and
 * the 1-D rope_factors_long/short vectors stay F32 (tests/data/phi3/quant-types.txt). */
#include "quantize/recipe.h"

#include <ctype.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formats/tensor.h"

static const qt_ftype ftype_table[] = {
    {"Q4_0", QT_FTYPE_Q4_0, GGML_TYPE_Q4_0, "4.34G, +0.4685 ppl @ Llama-3-8B"},
    {"Q4_1", QT_FTYPE_Q4_1, GGML_TYPE_Q4_1, "4.78G, +0.4511 ppl @ Llama-3-8B"},
    {"Q5_0", QT_FTYPE_Q5_0, GGML_TYPE_Q5_0, "5.21G, +0.1316 ppl @ Llama-3-8B"},
    {"Q5_1", QT_FTYPE_Q5_1, GGML_TYPE_Q5_1, "5.65G, +0.1062 ppl @ Llama-3-8B"},
    {"IQ2_XXS", QT_FTYPE_IQ2_XXS, GGML_TYPE_IQ2_XXS, "2.06 bpw quantization (needs --imatrix)"},
    {"IQ2_XS", QT_FTYPE_IQ2_XS, GGML_TYPE_IQ2_XS, "2.31 bpw quantization (needs --imatrix)"},
    {"IQ2_S", QT_FTYPE_IQ2_S, GGML_TYPE_IQ2_XS, "2.5 bpw quantization (needs --imatrix)"},
    {"IQ2_M", QT_FTYPE_IQ2_M, GGML_TYPE_IQ2_S, "2.7 bpw quantization (needs --imatrix)"},
    {"IQ1_S", QT_FTYPE_IQ1_S, GGML_TYPE_IQ1_S, "1.56 bpw quantization (needs --imatrix)"},
    {"IQ1_M", QT_FTYPE_IQ1_M, GGML_TYPE_IQ1_M, "1.75 bpw quantization (needs --imatrix)"},
    {"TQ1_0", QT_FTYPE_TQ1_0, GGML_TYPE_TQ1_0, "1.69 bpw ternarization"},
    {"TQ2_0", QT_FTYPE_TQ2_0, GGML_TYPE_TQ2_0, "2.06 bpw ternarization"},
    {"Q2_K", QT_FTYPE_Q2_K, GGML_TYPE_Q2_K, "2.96G, +3.5199 ppl @ Llama-3-8B"},
    {"Q2_K_S", QT_FTYPE_Q2_K_S, GGML_TYPE_Q2_K, "2.96G, +3.1836 ppl @ Llama-3-8B (needs --imatrix)"},
    {"IQ3_XXS", QT_FTYPE_IQ3_XXS, GGML_TYPE_IQ3_XXS, "3.06 bpw quantization (needs --imatrix)"},
    {"IQ3_S", QT_FTYPE_IQ3_S, GGML_TYPE_IQ3_S, "3.44 bpw quantization"},
    {"IQ3_M", QT_FTYPE_IQ3_M, GGML_TYPE_IQ3_S, "3.66 bpw quantization mix"},
    {"Q3_K_S", QT_FTYPE_Q3_K_S, GGML_TYPE_Q3_K, "3.41G, +1.6321 ppl @ Llama-3-8B"},
    {"Q3_K_M", QT_FTYPE_Q3_K_M, GGML_TYPE_Q3_K, "3.74G, +0.6569 ppl @ Llama-3-8B (alias Q3_K)"},
    {"Q3_K_L", QT_FTYPE_Q3_K_L, GGML_TYPE_Q3_K, "4.03G, +0.5562 ppl @ Llama-3-8B"},
    {"IQ3_XS", QT_FTYPE_IQ3_XS, GGML_TYPE_IQ3_S, "3.3 bpw quantization (needs --imatrix)"},
    {"IQ4_NL", QT_FTYPE_IQ4_NL, GGML_TYPE_IQ4_NL, "4.50 bpw non-linear quantization"},
    {"IQ4_XS", QT_FTYPE_IQ4_XS, GGML_TYPE_IQ4_XS, "4.25 bpw non-linear quantization"},
    {"Q4_K_S", QT_FTYPE_Q4_K_S, GGML_TYPE_Q4_K, "4.37G, +0.2689 ppl @ Llama-3-8B"},
    {"Q4_K_M", QT_FTYPE_Q4_K_M, GGML_TYPE_Q4_K, "4.58G, +0.1754 ppl @ Llama-3-8B (alias Q4_K)"},
    {"Q5_K_S", QT_FTYPE_Q5_K_S, GGML_TYPE_Q5_K, "5.21G, +0.1049 ppl @ Llama-3-8B"},
    {"Q5_K_M", QT_FTYPE_Q5_K_M, GGML_TYPE_Q5_K, "5.33G, +0.0569 ppl @ Llama-3-8B (alias Q5_K)"},
    {"Q6_K", QT_FTYPE_Q6_K, GGML_TYPE_Q6_K, "6.14G, +0.0217 ppl @ Llama-3-8B"},
    {"Q8_0", QT_FTYPE_Q8_0, GGML_TYPE_Q8_0, "7.96G, +0.0026 ppl @ Llama-3-8B"},
    {"F16", QT_FTYPE_F16, GGML_TYPE_F16, "14.00G, +0.0020 ppl @ Mistral-7B"},
    {"BF16", QT_FTYPE_BF16, GGML_TYPE_BF16, "14.00G, -0.0050 ppl @ Mistral-7B"},
    {"F32", QT_FTYPE_ALL_F32, GGML_TYPE_F32, "26.00G @ 7B"},
    {"COPY", QT_FTYPE_ALL_F32, GGML_TYPE_F32, "only copy tensors, no quantizing"},
    {NULL, 0, 0, NULL},
};

const qt_ftype *qt_ftype_list(void) { return ftype_table; }

const qt_ftype *qt_ftype_from_name(const char *name) {
    static const struct {
        const char *alias, *name;
    } aliases[] = {{"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}, {"Q3_K", "Q3_K_M"}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(name, aliases[i].alias) == 0)
            name = aliases[i].name;
    for (const qt_ftype *f = ftype_table; f->name; f++)
        if (strcasecmp(f->name, name) == 0)
            return f;
    return NULL;
}

bool qt_ftype_is_copy(const qt_ftype *ft) { return strcmp(ft->name, "COPY") == 0; }

const qt_ftype *qt_ftype_from_id(uint32_t id) {
    for (const qt_ftype *f = ftype_table; f->name; f++)
        if (f->ftype == id)
            return f;
    return NULL;
}

/* Layer number as llama.cpp's sscanf(name, "blk.%d.") finds it; -1 when there is none. */
static long layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    const char *p = name + 4;
    while (isspace((unsigned char)*p))
        p++;
    const char *digits = p;
    if (*digits == '+' || *digits == '-')
        digits++;
    if (!isdigit((unsigned char)*digits))
        return -1;
    long v = strtol(p, NULL, 10);
    if (v > INT_MAX)
        v = INT_MAX;
    if (v < INT_MIN)
        v = INT_MIN;
    return v;
}

int qt_tensor_order(const char *a, const char *b) {
    long la = layer_of(a), lb = layer_of(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    int c = strcmp(a, b);
    return c < 0 ? -1 : c > 0;
}

static int cmp_tensor(const void *pa, const void *pb) {
    const qt_tensor *a = pa, *b = pb;
    int c = qt_tensor_order(a->name, b->name);
    if (c)
        return c;
    return a->index < b->index ? -1 : a->index > b->index; /* duplicate names: keep input order */
}

void qt_sort_tensors(qt_tensor *t, size_t n) { qsort(t, n, sizeof *t, cmp_tensor); }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}
static bool contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

bool qt_tensor_eligible(const char *name, uint32_t n_dims) {
    static const char *const never[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d.weight", "shortconv.conv.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
        "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
        "attn_rel_b.weight", ".position_embd.",
    };
    if (n_dims < 2 || !ends_with(name, "weight"))
        return false;
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (contains(name, never[i]))
            return false;
    if (strcmp(name, "position_embd.weight") == 0 || strcmp(name, "token_types.weight") == 0)
        return false;
    return true;
}

static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

typedef struct mix_state {
    const qt_model *model;
    const qt_options *opt;
    bool has_output;
    bool has_imatrix;
    int n_attention_wv, i_attention_wv;
    int i_ffn_down, i_ffn_gate, i_ffn_up;
} mix_state;

/* The 1- and 2-bit i-quant mixes, which share one set of rules. */
static bool iq12_mix(uint32_t ftype) {
    return ftype == QT_FTYPE_IQ2_XXS || ftype == QT_FTYPE_IQ2_XS || ftype == QT_FTYPE_IQ1_S ||
           ftype == QT_FTYPE_IQ2_S || ftype == QT_FTYPE_IQ2_M || ftype == QT_FTYPE_IQ1_M;
}

static bool attn_v_like(const char *name) {
    return contains(name, "attn_v.weight") || contains(name, "attn_qkv.weight") ||
           contains(name, "attn_kv_b.weight");
}

/* Layer of an ffn tensor: a running counter, or the parsed blk number for expert models. */
static int ffn_layer(const mix_state *s, int counter, const char *name) {
    if (s->model->n_expert > 1) {
        long l = layer_of(name);
        if (l >= 0 && l < (long)s->model->n_layer)
            return (int)l;
    }
    return counter;
}

/* §5.3: the mixture rules for one eligible tensor (not --pure, quantized default). */
static uint32_t mix_type(mix_state *s, uint32_t new_type, const qt_tensor *t, uint32_t ftype) {
    const char *name = t->name;
    const qt_model *m = s->model;
    const int n_layer = (int)m->n_layer;

    if (strcmp(name, "output.weight") == 0 || (!s->has_output && strcmp(name, "token_embd.weight") == 0)) {
        uint32_t bs = ggml_type_get(new_type)->block_size;
        if (s->opt->output_type >= 0)
            new_type = (uint32_t)s->opt->output_type;
        else if (m->falcon || t->ne[0] % bs != 0)
            new_type = GGML_TYPE_Q8_0;
        else if (iq12_mix(ftype) || ftype == QT_FTYPE_IQ3_XXS)
            new_type = GGML_TYPE_Q5_K;
        else if (new_type != GGML_TYPE_Q8_0)
            new_type = GGML_TYPE_Q6_K;
    } else if (strcmp(name, "token_embd.weight") == 0) {
        /* unchanged for legacy and K mixes */
        if (ftype == QT_FTYPE_TQ1_0 || ftype == QT_FTYPE_TQ2_0)
            new_type = GGML_TYPE_Q4_K;
        else if (ftype == QT_FTYPE_IQ2_XXS || ftype == QT_FTYPE_IQ2_XS || ftype == QT_FTYPE_IQ1_S ||
                 ftype == QT_FTYPE_IQ1_M)
            new_type = GGML_TYPE_Q2_K;
        else if (ftype == QT_FTYPE_IQ2_S || ftype == QT_FTYPE_IQ2_M || ftype == QT_FTYPE_IQ3_XXS)
            new_type = GGML_TYPE_IQ3_S;
    } else if (iq12_mix(ftype)) {
        const bool iq2_sm = ftype == QT_FTYPE_IQ2_S || ftype == QT_FTYPE_IQ2_M;
        if (attn_v_like(name)) {
            if (m->n_gqa >= 4 || m->n_expert >= 4)
                new_type = GGML_TYPE_Q4_K;
            else
                new_type = iq2_sm ? GGML_TYPE_IQ3_S : GGML_TYPE_Q2_K;
            s->i_attention_wv++;
        } else if (m->n_expert == 8 && contains(name, "attn_k.weight")) {
            new_type = GGML_TYPE_Q4_K;
        } else if (contains(name, "ffn_down")) {
            if (s->i_ffn_down < n_layer / 8)
                new_type = iq2_sm ? GGML_TYPE_IQ3_S : GGML_TYPE_Q2_K;
            s->i_ffn_down++;
        } else if (contains(name, "attn_output.weight")) {
            if (m->n_expert == 8)
                new_type = GGML_TYPE_Q5_K;
            else if (ftype == QT_FTYPE_IQ1_S || ftype == QT_FTYPE_IQ1_M)
                new_type = GGML_TYPE_IQ2_XXS;
            else if (iq2_sm)
                new_type = GGML_TYPE_IQ3_S;
        }
    } else if (attn_v_like(name)) { /* a fused attn_qkv too: llama.cpp's own QKV rule below it is never reached */
        if (ftype == QT_FTYPE_Q2_K)
            new_type = m->n_gqa >= 4 ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
        else if (ftype == QT_FTYPE_Q2_K_S && m->n_gqa >= 4)
            new_type = GGML_TYPE_Q4_K;
        else if ((ftype == QT_FTYPE_IQ4_NL || ftype == QT_FTYPE_IQ4_XS) && m->n_gqa >= 4)
            new_type = GGML_TYPE_Q5_K;
        else if (ftype == QT_FTYPE_IQ3_XXS)
            new_type = m->n_gqa >= 4 ? GGML_TYPE_Q4_K : !s->has_imatrix ? GGML_TYPE_IQ3_S : GGML_TYPE_IQ3_XXS;
        else if ((ftype == QT_FTYPE_IQ3_XS || ftype == QT_FTYPE_IQ3_S) && m->n_gqa >= 4)
            new_type = GGML_TYPE_Q4_K;
        else if (ftype == QT_FTYPE_IQ3_M)
            new_type = GGML_TYPE_Q4_K;
        else if (ftype == QT_FTYPE_Q3_K_M)
            new_type = s->i_attention_wv < 2 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
        else if (ftype == QT_FTYPE_Q3_K_L)
            new_type = GGML_TYPE_Q5_K;
        else if ((ftype == QT_FTYPE_Q4_K_M || ftype == QT_FTYPE_Q5_K_M) &&
                 use_more_bits(s->i_attention_wv, s->n_attention_wv))
            new_type = GGML_TYPE_Q6_K;
        else if (ftype == QT_FTYPE_Q4_K_S && s->i_attention_wv < 4)
            new_type = GGML_TYPE_Q5_K;
        if (m->llama_70b && (new_type == GGML_TYPE_Q3_K || new_type == GGML_TYPE_Q4_K))
            new_type = GGML_TYPE_Q5_K;
        if (m->n_expert == 8)
            new_type = GGML_TYPE_Q8_0;
        s->i_attention_wv++;
    } else if (contains(name, "attn_k.weight")) {
        if (m->n_expert == 8)
            new_type = GGML_TYPE_Q8_0;
        else if (ftype == QT_FTYPE_IQ3_XS)
            new_type = GGML_TYPE_IQ3_XXS;
        else if (ftype == QT_FTYPE_IQ3_XXS)
            new_type = GGML_TYPE_IQ2_S;
    } else if (contains(name, "attn_q.weight")) {
        if (ftype == QT_FTYPE_IQ3_XS)
            new_type = GGML_TYPE_IQ3_XXS;
        else if (ftype == QT_FTYPE_IQ3_XXS)
            new_type = GGML_TYPE_IQ2_S;
    } else if (contains(name, "ffn_down")) {
        int i = ffn_layer(s, s->i_ffn_down, name);
        if (ftype == QT_FTYPE_Q2_K)
            new_type = GGML_TYPE_Q3_K;
        else if (ftype == QT_FTYPE_Q2_K_S) {
            if (i < n_layer / 8)
                new_type = GGML_TYPE_Q4_K;
        } else if (ftype == QT_FTYPE_IQ3_XXS && !s->has_imatrix) {
            new_type = i < n_layer / 8 ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
        } else if (ftype == QT_FTYPE_Q3_K_M)
            new_type = i < n_layer / 16                      ? GGML_TYPE_Q5_K
                       : !m->falcon || use_more_bits(i, n_layer) ? GGML_TYPE_Q4_K
                                                                 : GGML_TYPE_Q3_K;
        else if (ftype == QT_FTYPE_IQ3_M && (i < n_layer / 8 || (m->n_expert == 8 && use_more_bits(i, n_layer))))
            new_type = GGML_TYPE_Q4_K;
        else if (ftype == QT_FTYPE_Q3_K_L)
            new_type = m->falcon ? GGML_TYPE_Q4_K : GGML_TYPE_Q5_K;
        else if (ftype == QT_FTYPE_Q4_K_M) {
            if (m->falcon) {
                if (i < n_layer / 16)
                    new_type = GGML_TYPE_Q6_K;
                else if (use_more_bits(i, n_layer))
                    new_type = GGML_TYPE_Q5_K;
            } else if (use_more_bits(i, n_layer)) {
                new_type = GGML_TYPE_Q6_K;
            }
        } else if (i < n_layer / 8 && (ftype == QT_FTYPE_IQ4_NL || ftype == QT_FTYPE_IQ4_XS) && !s->has_imatrix)
            new_type = GGML_TYPE_Q5_K;
        else if (ftype == QT_FTYPE_Q5_K_M && use_more_bits(i, n_layer))
            new_type = GGML_TYPE_Q6_K;
        else if (ftype == QT_FTYPE_Q4_K_S && !m->falcon && i < n_layer / 8)
            new_type = GGML_TYPE_Q5_K;
        else if ((ftype == QT_FTYPE_Q4_0 || ftype == QT_FTYPE_Q5_0) && s->has_imatrix && i < n_layer / 8)
            new_type = ftype == QT_FTYPE_Q4_0 ? GGML_TYPE_Q4_1 : GGML_TYPE_Q5_1;
        s->i_ffn_down++;
    } else if (contains(name, "attn_output.weight")) {
        if (!m->falcon) {
            if (m->n_expert == 8) {
                if (ftype == QT_FTYPE_Q2_K || ftype == QT_FTYPE_Q3_K_S || ftype == QT_FTYPE_Q3_K_M ||
                    ftype == QT_FTYPE_Q4_K_S || ftype == QT_FTYPE_Q4_K_M || ftype == QT_FTYPE_IQ4_NL ||
                    ftype == QT_FTYPE_IQ4_XS || ftype == QT_FTYPE_IQ3_XS || ftype == QT_FTYPE_IQ3_XXS ||
                    ftype == QT_FTYPE_IQ3_S || ftype == QT_FTYPE_IQ3_M)
                    new_type = GGML_TYPE_Q5_K;
            } else {
                if (ftype == QT_FTYPE_Q2_K)
                    new_type = GGML_TYPE_Q3_K;
                else if (ftype == QT_FTYPE_IQ3_XXS)
                    new_type = GGML_TYPE_IQ3_S;
                else if (ftype == QT_FTYPE_Q3_K_M)
                    new_type = GGML_TYPE_Q4_K;
                else if (ftype == QT_FTYPE_Q3_K_L)
                    new_type = GGML_TYPE_Q5_K;
                else if (ftype == QT_FTYPE_IQ3_M)
                    new_type = GGML_TYPE_Q4_K;
            }
        } else if (ftype == QT_FTYPE_Q3_K_L) {
            new_type = GGML_TYPE_Q4_K;
        }
    } else if (contains(name, "ffn_gate")) {
        int i = ffn_layer(s, s->i_ffn_gate, name);
        if (ftype == QT_FTYPE_IQ3_XS && i >= n_layer / 8 && i < 7 * n_layer / 8)
            new_type = GGML_TYPE_IQ3_XXS;
        s->i_ffn_gate++;
    } else if (contains(name, "ffn_up")) {
        int i = ffn_layer(s, s->i_ffn_up, name);
        if (ftype == QT_FTYPE_IQ3_XS && i >= n_layer / 8 && i < 7 * n_layer / 8)
            new_type = GGML_TYPE_IQ3_XXS;
        s->i_ffn_up++;
    }
    return new_type;
}

/* §5.4: a type whose block does not divide the row length. 0 = fine, 1 = replaced, -1 = none. */
static int shape_fallback(uint32_t *type, int64_t ne0) {
    if (ne0 % ggml_type_get(*type)->block_size == 0)
        return 0;
    switch (*type) {
    case GGML_TYPE_Q4_K: *type = GGML_TYPE_Q5_0; break;
    case GGML_TYPE_Q5_K: *type = GGML_TYPE_Q5_1; break;
    case GGML_TYPE_Q6_K: *type = GGML_TYPE_Q8_0; break;
    case GGML_TYPE_IQ1_S:
    case GGML_TYPE_IQ1_M:
    case GGML_TYPE_IQ2_XXS:
    case GGML_TYPE_IQ2_XS:
    case GGML_TYPE_IQ2_S:
    case GGML_TYPE_IQ3_XXS:
    case GGML_TYPE_IQ3_S:
    case GGML_TYPE_IQ4_XS: *type = GGML_TYPE_IQ4_NL; break;
    case GGML_TYPE_Q2_K:
    case GGML_TYPE_Q3_K:
    case GGML_TYPE_TQ1_0:
    case GGML_TYPE_TQ2_0: *type = GGML_TYPE_Q4_0; break;
    default: return -1;
    }
    if (ne0 % ggml_type_get(*type)->block_size != 0)
        *type = GGML_TYPE_F16;
    return 1;
}

int qt_plan(qt_tensor *t, size_t n, const qt_model *model, const qt_ftype *ft, const qt_options *opt,
            nm_error *err) {
    qt_sort_tensors(t, n);
    const ggml_type_info *def = ggml_type_get(ft->default_type);
    mix_state s = {.model = model, .opt = opt, .has_imatrix = opt->has_imatrix};
    for (size_t i = 0; i < n; i++) {
        if (attn_v_like(t[i].name))
            s.n_attention_wv++;
        else if (strcmp(t[i].name, "output.weight") == 0)
            s.has_output = true;
    }
    for (size_t i = 0; i < n; i++) {
        qt_tensor *x = &t[i];
        x->new_type = x->type;
        x->convert = false;
        x->fallback = false;
        bool eligible = qt_tensor_eligible(x->name, x->n_dims);
        if ((opt->leave_output && strcmp(x->name, "output.weight") == 0) || opt->only_copy)
            eligible = false;
        if (!eligible)
            continue;
        uint32_t type = ft->default_type;
        if (!opt->pure && def->quantized) {
            type = mix_type(&s, type, x, ft->ftype);
            int fb = shape_fallback(&type, x->ne[0]);
            if (fb < 0)
                return nm_fail(err, "tensor %s: rows of %lld values do not fit %s blocks of %u and %s has no fallback type",
                               x->name, (long long)x->ne[0], ggml_type_name(type), ggml_type_get(type)->block_size,
                               ggml_type_name(type));
            x->fallback = fb > 0;
        }
        if (opt->token_embd_type >= 0 && strcmp(x->name, "token_embd.weight") == 0)
            type = (uint32_t)opt->token_embd_type;
        if (opt->output_type >= 0 && strcmp(x->name, "output.weight") == 0)
            type = (uint32_t)opt->output_type;
        const ggml_type_info *ti = ggml_type_get(type);
        if (x->ne[0] % ti->block_size != 0)
            return nm_fail(err, "tensor %s: rows of %lld values are not a multiple of the %s block size %u%s",
                           x->name, (long long)x->ne[0], ti->name, ti->block_size,
                           opt->pure ? " (--pure disables the fallback types)" : "");
        x->new_type = type;
        x->convert = type != x->type;
    }
    return 0;
}

void qt_message_escape(nm_error *err) {
    char out[NM_ERROR_MAX];
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)err->msg; *p && k + 5 < sizeof out; p++) {
        if (*p < 0x20 || *p == 0x7f)
            k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", *p);
        else
            out[k++] = (char)*p;
    }
    out[k] = '\0';
    memcpy(err->msg, out, k + 1);
}

bool qt_tensor_requires_imatrix(const char *name, uint32_t type, uint32_t ftype) {
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "per_layer_token_embd.weight") == 0 ||
        strcmp(name, "output.weight") == 0)
        return false;
    switch (type) {
    case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS: case GGML_TYPE_IQ2_S:
    case GGML_TYPE_IQ1_M: case GGML_TYPE_IQ1_S:
        return true;
    case GGML_TYPE_Q2_K:
        return ftype == QT_FTYPE_Q2_K_S; /* the one K-quant mix that needs it */
    default:
        return false;
    }
}
