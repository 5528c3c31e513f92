/* LoRA adapters: GGUF adapters as llama.cpp loads them, and Hugging Face PEFT folders (lora.h). */
#include "formats/lora.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/quants.h"
#include "formats/safetensors.h"
#include "formats/torch.h"

#define CONFIG_LIMIT (1u << 20) /* adapter_config.json is a few hundred bytes */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Messages quote names from untrusted files: keep them one printable line. */
static void one_line(nm_error *err) {
    if (!err) return;
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

/* ---------------- GGUF adapters ---------------- */

static bool kv_string_is(const gguf_reader *g, const char *key, const char *want) {
    const gguf_value *v = gguf_get(g, key);
    return v && v->type == GGUF_TYPE_STRING && v->str.len == strlen(want) && memcmp(v->str.ptr, want, v->str.len) == 0;
}

bool nm_lora_is_adapter(const gguf_reader *g) { return kv_string_is(g, "general.type", "adapter"); }

static void quote_kv(const gguf_reader *g, const char *key, char *buf, size_t size) {
    const gguf_value *v = gguf_get(g, key);
    if (!v) snprintf(buf, size, "absent");
    else if (v->type != GGUF_TYPE_STRING) snprintf(buf, size, "of type %s", gguf_type_name(v->type));
    else snprintf(buf, size, "'%.*s'", (int)(v->str.len > 40 ? 40 : v->str.len), v->str.ptr);
}

/* Every value of a tensor finite (dequantized row by row); its pages are dropped afterwards (the
 * users read each tensor again when they need it). */
static int check_finite(const gguf_reader *g, const gguf_tensor_info *t, nm_error *err) {
    size_t row;
    if (ggml_row_size(t->type, (uint64_t)t->ne[0], &row) != 0)
        return nm_fail(err, "tensor %s: rows of %lld values are not whole %s blocks", t->name, (long long)t->ne[0],
                       ggml_type_name(t->type));
    float *f = malloc((size_t)t->ne[0] * sizeof(float));
    if (!f) return nm_fail(err, "out of memory");
    const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    for (int64_t r = 0; r < rows; r++) {
        nm_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * row, f, t->ne[0]);
        const int64_t i = nm_find_nonfinite(f, t->ne[0]);
        if (i >= 0) {
            const bool nan = isnan(f[i]);
            free(f);
            return nm_fail(err, "tensor %s: %s at row %lld, column %lld; the adapter is damaged", t->name,
                           nan ? "NaN" : "infinite value", (long long)r, (long long)i);
        }
    }
    free(f);
    gguf_drop_pages(g, t->data, t->size);
    return 0;
}

static nm_lora_pair *pair_for(nm_lora *l, const char *target, size_t cap) {
    for (size_t i = 0; i < l->n_pairs; i++)
        if (strcmp(l->pairs[i].target, target) == 0) return &l->pairs[i];
    if (l->n_pairs == cap) return NULL;
    nm_lora_pair *p = &l->pairs[l->n_pairs++];
    memset(p, 0, sizeof *p);
    snprintf(p->target, sizeof p->target, "%s", target);
    p->embedding = strcmp(target, "token_embd.weight") == 0;
    return p;
}

int nm_lora_open(nm_lora *l, const gguf_reader *g, nm_error *err) {
    memset(l, 0, sizeof *l);
    l->g = g;
    char got[64];
    if (!nm_lora_is_adapter(g)) {
        quote_kv(g, "general.type", got, sizeof got);
        return nm_fail(err, "not a LoRA adapter: general.type is %s, expected 'adapter'", got);
    }
    if (!kv_string_is(g, "adapter.type", "lora")) {
        quote_kv(g, "adapter.type", got, sizeof got);
        nm_fail(err, "adapter.type is %s; only LoRA adapters ('lora') are supported", got);
        one_line(err);
        return -1;
    }
    const gguf_value *arch = gguf_get(g, "general.architecture");
    if (!arch || arch->type != GGUF_TYPE_STRING || arch->str.len == 0 || arch->str.len >= sizeof l->arch)
        return nm_fail(err, "the adapter has no general.architecture (the base model's architecture)");
    memcpy(l->arch, arch->str.ptr, arch->str.len);
    l->arch[arch->str.len] = '\0';
    for (char *p = l->arch; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    const gguf_value *alpha = gguf_get(g, "adapter.lora.alpha");
    if (alpha) {
        if (alpha->type != GGUF_TYPE_FLOAT32)
            return nm_fail(err, "adapter.lora.alpha has type %s, expected FLOAT32", gguf_type_name(alpha->type));
        if (!isfinite(alpha->f32)) return nm_fail(err, "adapter.lora.alpha is not a finite number");
        l->alpha = alpha->f32;
    }
    if (gguf_get(g, "adapter.alora.invocation_tokens"))
        return nm_fail(err, "this is an activated LoRA (adapter.alora.invocation_tokens), which nomoat cannot apply yet");
    const size_t n = gguf_tensor_count(g);
    l->pairs = calloc(n ? n : 1, sizeof *l->pairs);
    if (!l->pairs) return nm_fail(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        char target[GGUF_MAX_NAME];
        bool is_a = ends_with(t->name, ".lora_a"), is_b = ends_with(t->name, ".lora_b");
        if (!is_a && !is_b) {
            if (ends_with(t->name, "_norm.weight")) {
                l->n_ignored++;
                continue;
            }
            nm_fail(err, "tensor %s is neither a .lora_a nor a .lora_b tensor", t->name);
            goto fail;
        }
        size_t len = strlen(t->name) - 7;
        memcpy(target, t->name, len);
        target[len] = '\0';
        if (len == 0) {
            nm_fail(err, "tensor %s does not name the tensor it adapts", t->name);
            goto fail;
        }
        if (t->n_dims != 2 || t->ne[2] != 1 || t->ne[3] != 1) {
            nm_fail(err, "tensor %s has %u dimensions; LoRA halves are matrices", t->name, t->n_dims);
            goto fail;
        }
        if (!nm_dequantize_supported(t->type)) {
            nm_fail(err, "tensor %s has type %s, which nomoat cannot read", t->name, ggml_type_name(t->type));
            goto fail;
        }
        nm_lora_pair *p = pair_for(l, target, n);
        if ((is_a && p->a) || (is_b && p->b)) {
            nm_fail(err, "tensor %s appears twice", t->name);
            goto fail;
        }
        if (is_a) p->a = t;
        else p->b = t;
    }
    for (size_t i = 0; i < l->n_pairs; i++) {
        nm_lora_pair *p = &l->pairs[i];
        if (!p->a || !p->b) {
            nm_fail(err, "tensor %s.%s is missing (the other half of the pair is there)", p->target,
                    p->a ? "lora_b" : "lora_a");
            goto fail;
        }
        /* both halves hold r in their ne[0] (lora_b) and ne[1] (lora_a; ne[0] for token_embd) */
        const int64_t ra = p->embedding ? p->a->ne[0] : p->a->ne[1];
        if (ra != p->b->ne[0]) {
            nm_fail(err, "%s: lora_a has rank %lld but lora_b has rank %lld", p->target, (long long)ra,
                    (long long)p->b->ne[0]);
            goto fail;
        }
        if (p->b->ne[0] < 1 || p->b->ne[0] > 65536) {
            nm_fail(err, "%s: rank %lld is out of range (1 to 65536)", p->target, (long long)p->b->ne[0]);
            goto fail;
        }
        p->rank = (uint32_t)p->b->ne[0];
        if (check_finite(g, p->a, err) || check_finite(g, p->b, err)) goto fail;
    }
    if (l->n_pairs == 0) {
        nm_fail(err, "the adapter holds no lora_a/lora_b pairs");
        goto fail;
    }
    return 0;
fail:
    one_line(err);
    nm_lora_free(l);
    return -1;
}

void nm_lora_free(nm_lora *l) {
    if (!l) return;
    free(l->pairs);
    l->pairs = NULL;
    l->n_pairs = 0;
}

const nm_lora_pair *nm_lora_find(const nm_lora *l, const char *target) {
    for (size_t i = 0; i < l->n_pairs; i++)
        if (strcmp(l->pairs[i].target, target) == 0) return &l->pairs[i];
    return NULL;
}

float nm_lora_pair_scale(const nm_lora *l, const nm_lora_pair *p, float user_scale) {
    const float rank = (float)p->rank;
    return l->alpha != 0.0f ? user_scale * l->alpha / rank : user_scale;
}

int nm_lora_check_base(const nm_lora_pair *p, const int64_t base_ne[4], nm_error *err) {
    char base[96];
    snprintf(base, sizeof base, "[%lld, %lld]", (long long)base_ne[0], (long long)base_ne[1]);
    if (base_ne[2] != 1 || base_ne[3] != 1)
        return nm_fail(err, "%s: the base tensor is not a matrix; LoRA adapts matrices", p->target);
    if (p->embedding) {
        if (base_ne[0] != p->b->ne[1] || base_ne[1] != p->a->ne[1])
            return nm_fail(err,
                           "%s: the adapter is for an embedding of %lld tokens x %lld, the base's is %s "
                           "(ne order); is this adapter for another model?",
                           p->target, (long long)p->a->ne[1], (long long)p->b->ne[1], base);
    } else if (base_ne[0] != p->a->ne[0] || base_ne[1] != p->b->ne[1]) {
        return nm_fail(err,
                       "%s: the adapter is for a matrix of ne [%lld, %lld], the base's is %s; is this adapter for "
                       "another model?",
                       p->target, (long long)p->a->ne[0], (long long)p->b->ne[1], base);
    }
    return 0;
}

int nm_lora_parse_arg(const char *arg, char *path, size_t path_size, float *scale, nm_error *err) {
    *scale = 1.0f;
    const char *colon = strrchr(arg, ':');
    size_t len = strlen(arg);
    if (colon && colon[1]) {
        char *end;
        errno = 0;
        double v = strtod(colon + 1, &end);
        if (*end == '\0' && errno == 0 && isfinite(v) && fabs(v) < 1e30) {
            len = (size_t)(colon - arg);
            *scale = (float)v;
        }
    }
    if (len == 0) return nm_fail(err, "--lora '%s': no file name", arg);
    if (len >= path_size) return nm_fail(err, "--lora: the path is too long");
    memcpy(path, arg, len);
    path[len] = '\0';
    return 0;
}

/* ---------------- adapter_config.json ---------------- */

/* Python's json keeps the last of duplicated keys; cJSON's lookup finds the first. */
static const cJSON *json_get(const cJSON *o, const char *key) {
    const cJSON *found = NULL;
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) found = c;
    return found;
}

static bool json_true(const cJSON *o, const char *key) { return cJSON_IsTrue(json_get(o, key)); }

/* A present, non-null, non-empty, non-false value. */
static bool json_set(const cJSON *v) {
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return false;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    if (cJSON_IsString(v)) return v->valuestring && v->valuestring[0];
    return true;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static bool regex_key(const char *k) {
    for (const char *p = k; *p; p++)
        if (strchr("\\^$*+?()[]{}|", *p)) return true;
    return false;
}

static int parse_patterns(const cJSON *o, const char *name, const char *key, bool integer, nm_peft_pattern **out,
                          size_t *n_out, nm_error *err) {
    const cJSON *v = json_get(o, key);
    *out = NULL;
    *n_out = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsObject(v)) return nm_fail(err, "%s: \"%s\" must be an object", name, key);
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0) return 0;
    *out = calloc(n, sizeof **out);
    if (!*out) return nm_fail(err, "out of memory");
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!c->string || !c->string[0]) return nm_fail(err, "%s: \"%s\" has an empty key", name, key);
        if (regex_key(c->string))
            return nm_fail(err,
                           "%s: \"%s\" key '%.80s' is a regular expression; nomoat matches module names literally "
                           "(a name or a suffix after '.')",
                           name, key, c->string);
        if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble))
            return nm_fail(err, "%s: \"%s\" entry '%.80s' must be a number", name, key, c->string);
        if (integer && (c->valuedouble != floor(c->valuedouble) || c->valuedouble < 1 || c->valuedouble > 65536))
            return nm_fail(err, "%s: \"%s\" entry '%.80s' = %g is not a rank from 1 to 65536", name, key, c->string,
                           c->valuedouble);
        /* a repeated key keeps its first place and its last value, as a Python dict does */
        size_t k;
        for (k = 0; k < *n_out; k++)
            if (strcmp((*out)[k].key, c->string) == 0) break;
        if (k == *n_out) {
            if (!((*out)[k].key = dup_str(c->string))) return nm_fail(err, "out of memory");
            (*n_out)++;
        }
        (*out)[k].value = c->valuedouble;
    }
    return 0;
}

static int config_refusals(const cJSON *o, const char *name, nm_error *err) {
    const cJSON *v = json_get(o, "peft_type");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) return nm_fail(err, "%s: \"peft_type\" must be a string", name);
        if (strcmp(v->valuestring, "LORA") != 0)
            return nm_fail(err, "%s: peft_type is '%.40s'; only LoRA adapters (LORA) can be converted", name,
                           v->valuestring);
    }
    if (json_true(o, "use_dora"))
        return nm_fail(err, "%s: use_dora is set: DoRA adapters (a learned magnitude per output row) cannot be "
                            "expressed as llama.cpp's lora_a/lora_b pairs; merge it with PEFT first",
                       name);
    if (json_true(o, "fan_in_fan_out"))
        return nm_fail(err, "%s: fan_in_fan_out is set (GPT-2-style Conv1D layers); only Linear layers are supported",
                       name);
    v = json_get(o, "bias");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && strcmp(v->valuestring, "none") == 0))
        return nm_fail(err, "%s: bias is '%.40s': the adapter trains biases, which llama.cpp's adapter format "
                            "cannot hold (bias must be \"none\")",
                       name, cJSON_IsString(v) ? v->valuestring : "?");
    if (json_true(o, "lora_bias"))
        return nm_fail(err, "%s: lora_bias is set (a bias on lora_B), which llama.cpp's adapter format cannot hold",
                       name);
    if (json_set(json_get(o, "modules_to_save")))
        return nm_fail(err, "%s: modules_to_save lists fully trained modules; they are not LoRA pairs and cannot be "
                            "converted (merge them with PEFT first)",
                       name);
    if (json_set(json_get(o, "alora_invocation_tokens")) || json_set(json_get(o, "invocation_string")))
        return nm_fail(err, "%s: this is an activated LoRA (alora_invocation_tokens / invocation_string), which nomoat "
                            "does not support yet",
                       name);
    return 0;
}

int nm_peft_config_parse(nm_peft_config *c, const char *json, size_t len, const char *name, nm_error *err) {
    memset(c, 0, sizeof *c);
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!o) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return nm_fail(err, "%s: invalid JSON near byte %zu", name, at);
    }
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        nm_fail(err, "%s: expected a JSON object", name);
        goto out;
    }
    if (config_refusals(o, name, err)) goto out;
    const cJSON *v = json_get(o, "r");
    if (!v || cJSON_IsNull(v)) {
        c->r = 8; /* PEFT's default */
    } else if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
               v->valuedouble > 65536) {
        nm_fail(err, "%s: \"r\" must be a whole number from 1 to 65536", name);
        goto out;
    } else if (v->valuedouble < 1) {
        nm_fail(err, "%s: \"r\" is 0: a rank-0 adapter has no weights", name);
        goto out;
    } else {
        c->r = (uint32_t)v->valuedouble;
    }
    v = json_get(o, "lora_alpha");
    if (!v || cJSON_IsNull(v)) {
        nm_fail(err, "%s: \"lora_alpha\" is missing (llama.cpp's converter needs it too)", name);
        goto out;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e30) {
        nm_fail(err, "%s: \"lora_alpha\" must be a finite number", name);
        goto out;
    }
    if (v->valuedouble == 0) {
        nm_fail(err, "%s: \"lora_alpha\" is 0: the adapter does nothing, and llama.cpp would read an alpha of 0 as "
                     "'no alpha/r scaling'",
                name);
        goto out;
    }
    c->lora_alpha = v->valuedouble;
    v = json_get(o, "use_rslora");
    if (v && !cJSON_IsNull(v) && !cJSON_IsBool(v)) {
        nm_fail(err, "%s: \"use_rslora\" must be true or false", name);
        goto out;
    }
    c->use_rslora = cJSON_IsTrue(v);
    v = json_get(o, "base_model_name_or_path");
    if (cJSON_IsString(v) && !(c->base_model = dup_str(v->valuestring))) goto oom;
    v = json_get(o, "target_modules");
    if (cJSON_IsString(v)) {
        if (!(c->target_modules = dup_str(v->valuestring))) goto oom;
    } else if (cJSON_IsArray(v)) {
        size_t total = 1;
        for (const cJSON *e = v->child; e; e = e->next)
            if (cJSON_IsString(e)) total += strlen(e->valuestring) + 1;
        if (!(c->target_modules = malloc(total))) goto oom;
        c->target_modules[0] = '\0';
        size_t at = 0;
        for (const cJSON *e = v->child; e; e = e->next) {
            if (!cJSON_IsString(e)) continue;
            size_t n = strlen(e->valuestring);
            if (at) c->target_modules[at++] = ',';
            memcpy(c->target_modules + at, e->valuestring, n + 1);
            at += n;
        }
    }
    if (parse_patterns(o, name, "rank_pattern", true, &c->rank_pattern, &c->n_rank_pattern, err) ||
        parse_patterns(o, name, "alpha_pattern", false, &c->alpha_pattern, &c->n_alpha_pattern, err))
        goto out;
    for (size_t i = 0; i < c->n_alpha_pattern; i++)
        if (c->alpha_pattern[i].value == 0 || fabs(c->alpha_pattern[i].value) > 1e30) {
            nm_fail(err, "%s: alpha_pattern entry '%.80s' must be a non-zero finite number", name,
                    c->alpha_pattern[i].key);
            goto out;
        }
    rc = 0;
    goto out;
oom:
    nm_fail(err, "out of memory");
out:
    cJSON_Delete(o);
    if (rc) {
        one_line(err);
        nm_peft_config_free(c);
    }
    return rc;
}

void nm_peft_config_free(nm_peft_config *c) {
    if (!c) return;
    free(c->base_model);
    free(c->target_modules);
    for (size_t i = 0; i < c->n_rank_pattern; i++) free(c->rank_pattern[i].key);
    for (size_t i = 0; i < c->n_alpha_pattern; i++) free(c->alpha_pattern[i].key);
    free(c->rank_pattern);
    free(c->alpha_pattern);
    memset(c, 0, sizeof *c);
}

static bool pattern_matches(const char *key, const char *module) {
    size_t k = strlen(key), m = strlen(module);
    if (k > m || memcmp(module + m - k, key, k) != 0) return false;
    return k == m || module[m - k - 1] == '.';
}

static const nm_peft_pattern *find_pattern(const nm_peft_pattern *p, size_t n, const char *module) {
    for (size_t i = 0; i < n; i++)
        if (pattern_matches(p[i].key, module)) return &p[i];
    return NULL;
}

uint32_t nm_peft_config_rank(const nm_peft_config *c, const char *module, bool *from_pattern) {
    const nm_peft_pattern *p = find_pattern(c->rank_pattern, c->n_rank_pattern, module);
    if (from_pattern) *from_pattern = p != NULL;
    return p ? (uint32_t)p->value : c->r;
}

double nm_peft_config_alpha(const nm_peft_config *c, const char *module, bool *from_pattern) {
    const nm_peft_pattern *p = find_pattern(c->alpha_pattern, c->n_alpha_pattern, module);
    if (from_pattern) *from_pattern = p != NULL;
    return p ? p->value : c->lora_alpha;
}

/* ---------------- PEFT folders ---------------- */

struct nm_peft {
    nm_peft_config cfg;
    st_model *st;
    torch_model *pt;
    char *weights_path;
    nm_peft_module *modules;
    size_t n_modules;
    nm_peft_tensor *extras;
    size_t n_extras;
};

void nm_peft_close(nm_peft *p) {
    if (!p) return;
    nm_peft_config_free(&p->cfg);
    st_close(p->st);
    torch_close(p->pt);
    for (size_t i = 0; i < p->n_modules; i++) free(p->modules[i].module);
    free(p->modules);
    free(p->extras);
    free(p->weights_path);
    free(p);
}

static size_t weight_count(const nm_peft *p) { return p->st ? st_tensor_count(p->st) : torch_tensor_count(p->pt); }

/* i-th weight as a PEFT tensor (dtype, 2-D shape); the caller checks what it needs. */
static int weight_at(const nm_peft *p, size_t i, nm_peft_tensor *t, uint32_t *n_dims, nm_error *err) {
    const uint64_t *shape;
    memset(t, 0, sizeof *t);
    t->index = i;
    if (p->st) {
        const st_tensor *s = st_tensor_at(p->st, i);
        t->name = s->name;
        t->dtype = s->dtype;
        *n_dims = s->n_dims;
        shape = s->shape;
    } else {
        const torch_tensor *s = torch_tensor_at(p->pt, i);
        t->name = s->name;
        t->dtype = s->dtype;
        *n_dims = s->n_dims;
        shape = s->shape;
    }
    if (*n_dims == 1) {
        t->rows = 1;
        t->cols = shape[0];
    } else if (*n_dims == 2) {
        t->rows = shape[0];
        t->cols = shape[1];
    }
    if (t->dtype != NM_DTYPE_F32 && t->dtype != NM_DTYPE_F16 && t->dtype != NM_DTYPE_BF16)
        return nm_fail(err, "tensor %s has dtype %s; LoRA weights must be F32, F16 or BF16", t->name,
                       nm_dtype_name(t->dtype));
    return 0;
}

enum { K_A, K_B, K_EMB_A, K_EMB_B, K_SKIP, K_EXTRA };

/* What a key is, llama.cpp's converter's way; *module_len is the length of the module part. */
static int classify_key(const char *key, const char **module, size_t *module_len, nm_error *err) {
    static const char prefix[] = "base_model.model.";
    const char *name = strncmp(key, prefix, sizeof prefix - 1) == 0 ? key + sizeof prefix - 1 : key;
    static const struct {
        const char *suffix;
        int kind;
    } kinds[] = {{".lora_A.weight", K_A}, {".lora_B.weight", K_B}, {".lora_embedding_A", K_EMB_A},
                 {".lora_embedding_B", K_EMB_B}};
    *module = name;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (ends_with(name, kinds[i].suffix)) {
            *module_len = strlen(name) - strlen(kinds[i].suffix);
            if (*module_len == 0) return nm_fail(err, "tensor %s names no module", key);
            return kinds[i].kind;
        }
    if (strstr(name, "lora_magnitude_vector"))
        return nm_fail(err, "tensor %s is a DoRA magnitude vector: DoRA adapters cannot be expressed as llama.cpp's "
                            "lora_a/lora_b pairs",
                       key);
    if (ends_with(name, ".base_layer.weight")) return K_SKIP;
    if (strstr(name, ".lora_A.") || strstr(name, ".lora_B.") || strstr(name, ".lora_embedding_"))
        return nm_fail(err, "tensor %s: a LoRA weight with an unexpected suffix (a bias, or a key still holding the "
                            "adapter's name such as '.default'); save the adapter with PEFT's save_pretrained",
                       key);
    if (strstr(name, "_layernorm") || strstr(name, ".norm")) {
        *module_len = strlen(name);
        return K_EXTRA;
    }
    if (strstr(name, ".embed_tokens.weight") || strstr(name, "lm_head.weight"))
        return nm_fail(err, "tensor %s is a full embedding or LM-head weight (new tokens added during fine-tuning?); "
                            "it is not a LoRA pair and cannot be converted",
                       key);
    return nm_fail(err, "tensor %s is not a lora_A or lora_B weight", key);
}

static int by_name(const void *a, const void *b, void *ctx) {
    const nm_peft *p = ctx;
    const size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const char *x = p->st ? st_tensor_at(p->st, i)->name : torch_tensor_at(p->pt, i)->name;
    const char *y = p->st ? st_tensor_at(p->st, j)->name : torch_tensor_at(p->pt, j)->name;
    return strcmp(x, y);
}

static int pair_weights(nm_peft *p, nm_error *err) {
    const size_t n = weight_count(p);
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    p->modules = calloc(n ? n : 1, sizeof *p->modules);
    p->extras = calloc(n ? n : 1, sizeof *p->extras);
    if (!order || !p->modules || !p->extras) {
        free(order);
        return nm_fail(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++) order[i] = i;
    /* Python's safetensors load_file gives the keys sorted; torch.load the pickle's order */
    if (p->st) qsort_r(order, n, sizeof *order, by_name, p);
    int rc = -1;
    for (size_t k = 0; k < n; k++) {
        nm_peft_tensor t;
        uint32_t n_dims;
        if (weight_at(p, order[k], &t, &n_dims, err)) goto out;
        const char *module;
        size_t mlen = 0;
        int kind = classify_key(t.name, &module, &mlen, err);
        if (kind < 0) goto out;
        if (kind == K_SKIP) continue;
        if (kind == K_EXTRA) {
            if (n_dims != 1) {
                nm_fail(err, "tensor %s: a norm weight kept in the adapter must be a vector", t.name);
                goto out;
            }
            p->extras[p->n_extras++] = t;
            continue;
        }
        if (n_dims != 2) {
            nm_fail(err, "tensor %s has %u dimensions; LoRA weights are matrices", t.name, n_dims);
            goto out;
        }
        const bool emb = kind == K_EMB_A || kind == K_EMB_B, is_a = kind == K_A || kind == K_EMB_A;
        nm_peft_module *m = NULL;
        for (size_t i = 0; i < p->n_modules; i++)
            if (strlen(p->modules[i].module) == mlen && memcmp(p->modules[i].module, module, mlen) == 0) m = &p->modules[i];
        if (!m) {
            m = &p->modules[p->n_modules];
            if (!(m->module = malloc(mlen + 1))) {
                nm_fail(err, "out of memory");
                goto out;
            }
            memcpy(m->module, module, mlen);
            m->module[mlen] = '\0';
            m->embedding = emb;
            p->n_modules++;
        } else if (m->embedding != emb) {
            nm_fail(err, "tensor %s: module %s has both linear and embedding LoRA weights", t.name, m->module);
            goto out;
        }
        nm_peft_tensor *slot = is_a ? &m->a : &m->b;
        if (slot->name) {
            nm_fail(err, "tensor %s: module %s has two lora_%s weights", t.name, m->module, is_a ? "A" : "B");
            goto out;
        }
        *slot = t;
    }
    for (size_t i = 0; i < p->n_modules; i++) {
        nm_peft_module *m = &p->modules[i];
        if (!m->a.name || !m->b.name) {
            nm_fail(err, "module %s has a lora_%s weight but no lora_%s", m->module, m->a.name ? "A" : "B",
                    m->a.name ? "B" : "A");
            goto out;
        }
        if (m->a.rows != m->b.cols) {
            nm_fail(err, "module %s: lora_A is [%llu, %llu] and lora_B [%llu, %llu]; their ranks differ", m->module,
                    (unsigned long long)m->a.rows, (unsigned long long)m->a.cols, (unsigned long long)m->b.rows,
                    (unsigned long long)m->b.cols);
            goto out;
        }
        if (m->a.rows == 0) {
            nm_fail(err, "module %s has rank 0 (lora_A is [0, %llu]): such an adapter has no weights", m->module,
                    (unsigned long long)m->a.cols);
            goto out;
        }
        if (m->a.rows > 65536 || m->a.cols == 0 || m->b.rows == 0) {
            nm_fail(err, "module %s: implausible LoRA shapes [%llu, %llu] and [%llu, %llu]", m->module,
                    (unsigned long long)m->a.rows, (unsigned long long)m->a.cols, (unsigned long long)m->b.rows,
                    (unsigned long long)m->b.cols);
            goto out;
        }
        m->rank = (uint32_t)m->a.rows;
        bool rank_pat, alpha_pat;
        const uint32_t want = nm_peft_config_rank(&p->cfg, m->module, &rank_pat);
        if (want != m->rank) {
            nm_fail(err, "module %s has rank %u but adapter_config.json says r = %u%s", m->module, m->rank, want,
                    rank_pat ? " (from rank_pattern)" : " (and no rank_pattern entry matches it)");
            goto out;
        }
        m->alpha = nm_peft_config_alpha(&p->cfg, m->module, &alpha_pat);
        m->patterned = rank_pat || alpha_pat;
        m->scaling = p->cfg.use_rslora ? m->alpha / sqrt((double)m->rank) : m->alpha / (double)m->rank;
    }
    if (p->n_modules == 0) {
        nm_fail(err, "the adapter holds no lora_A/lora_B weights");
        goto out;
    }
    rc = 0;
out:
    free(order);
    return rc;
}

static char *read_file(const char *path, size_t limit, size_t *len, nm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nm_fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        nm_fail(err, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > limit) {
        nm_fail(err, "%s: too large (%lld bytes) for a configuration file", path, (long long)st.st_size);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        nm_fail(err, "out of memory reading %s", path);
    } else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        nm_fail(err, "%s: read error", path);
        free(buf);
        buf = NULL;
    } else {
        buf[st.st_size] = '\0';
        *len = (size_t)st.st_size;
    }
    fclose(f);
    return buf;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool nm_peft_is_adapter_dir(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    return is_file(path);
}

nm_peft *nm_peft_open(const char *dir, nm_error *err) {
    char path[4096];
    nm_peft *p = calloc(1, sizeof *p);
    if (!p) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    size_t len = 0;
    char *json = read_file(path, CONFIG_LIMIT, &len, err);
    if (!json) goto fail;
    int rc = nm_peft_config_parse(&p->cfg, json, len, path, err);
    free(json);
    if (rc) goto fail;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (is_file(path)) {
        if (!(p->st = st_open(path, err))) {
            nm_error_prefix(err, "%s", path);
            goto fail;
        }
    } else {
        snprintf(path, sizeof path, "%s/adapter_model.bin", dir);
        if (!is_file(path)) {
            nm_fail(err, "%s has adapter_config.json but neither adapter_model.safetensors nor adapter_model.bin", dir);
            goto fail;
        }
        if (!(p->pt = torch_open(path, NULL, err))) {
            nm_error_prefix(err, "%s", path);
            goto fail;
        }
    }
    if (!(p->weights_path = dup_str(path))) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    if (pair_weights(p, err)) {
        nm_error_prefix(err, "%s", path);
        goto fail;
    }
    return p;
fail:
    one_line(err);
    nm_peft_close(p);
    return NULL;
}

nm_peft *nm_peft_open_memory(const char *config, size_t config_len, const void *safetensors, size_t st_len,
                             nm_error *err) {
    nm_peft *p = calloc(1, sizeof *p);
    if (!p) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    if (nm_peft_config_parse(&p->cfg, config, config_len, "adapter_config.json", err) ||
        !(p->st = st_open_memory(safetensors, st_len, err)) || !(p->weights_path = dup_str("(memory)")) ||
        pair_weights(p, err)) {
        one_line(err);
        nm_peft_close(p);
        return NULL;
    }
    return p;
}

const nm_peft_config *nm_peft_get_config(const nm_peft *p) { return &p->cfg; }
size_t nm_peft_module_count(const nm_peft *p) { return p->n_modules; }
const nm_peft_module *nm_peft_module_at(const nm_peft *p, size_t i) { return i < p->n_modules ? &p->modules[i] : NULL; }
size_t nm_peft_extra_count(const nm_peft *p) { return p->n_extras; }
const nm_peft_tensor *nm_peft_extra_at(const nm_peft *p, size_t i) { return i < p->n_extras ? &p->extras[i] : NULL; }
const char *nm_peft_weights_kind(const nm_peft *p) { return p->st ? "safetensors" : "pytorch"; }
const char *nm_peft_weights_path(const nm_peft *p) { return p->weights_path; }

int nm_peft_read_f32(const nm_peft *p, const nm_peft_tensor *t, float *dst, nm_error *err) {
    const size_t n = (size_t)(t->rows * t->cols);
    const size_t es = t->dtype == NM_DTYPE_F32 ? 4 : 2;
    const void *src;
    void *owned = NULL;
    if (p->st) {
        src = st_tensor_at(p->st, t->index)->data;
    } else {
        const torch_tensor *tt = torch_tensor_at(p->pt, t->index);
        src = tt->data;
        if (!src) {
            if (!(owned = malloc(tt->size ? tt->size : 1))) return nm_fail(err, "out of memory");
            if (torch_tensor_read(p->pt, tt, owned, err)) {
                free(owned);
                return -1;
            }
            src = owned;
        }
    }
    /* the mapping may leave F32 data unaligned (safetensors offsets are byte offsets) */
    if (t->dtype == NM_DTYPE_F32) {
        memcpy(dst, src, n * es);
    } else {
        uint16_t *tmp = malloc((n ? n : 1) * 2);
        if (!tmp) {
            free(owned);
            return nm_fail(err, "out of memory");
        }
        memcpy(tmp, src, n * 2);
        if (t->dtype == NM_DTYPE_F16) nm_f16_to_f32_row(tmp, dst, n);
        else nm_bf16_to_f32_row(tmp, dst, n);
        free(tmp);
    }
    free(owned);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) {
            nm_fail(err, "tensor %s: %s at row %llu, column %llu; the adapter is damaged", t->name,
                    isnan(dst[i]) ? "NaN" : "infinite value", (unsigned long long)(i / t->cols),
                    (unsigned long long)(i % t->cols));
            one_line(err);
            return -1;
        }
    return 0;
}
