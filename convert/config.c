/* Model configuration: Hugging Face config.json (+ tokenizer_config.json, tokenizer.json's
 * added tokens) or Meta params.json, read the way llama.cpp's converters read them
 * (FORMATS.md §6.1, §7.1). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "convert/convert.h"

const char *const conv_special_names[CONV_SPECIAL_COUNT] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};

/* Reads a whole small file (config files are at most a few MB; tokenizer.json up to 64 MB). */
static char *read_small_file(const char *path, size_t limit, size_t *len, nm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nm_fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        nm_fail(err, "%s: not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > limit) {
        fclose(f);
        nm_fail(err, "%s: too large (%lld bytes) for a configuration file", path, (long long)st.st_size);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        nm_fail(err, "out of memory reading %s", path);
        return NULL;
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        nm_fail(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static bool file_exists(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Parses dir/name as a JSON object. Returns NULL with err set (missing file: *missing = true). */
static cJSON *load_json(const char *dir, const char *name, size_t limit, bool *missing, nm_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (missing)
        *missing = !file_exists(dir, name);
    if (missing && *missing) {
        nm_fail(err, "%s: no such file", path);
        return NULL;
    }
    size_t len;
    char *text = read_small_file(path, limit, &len, err);
    if (!text)
        return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        nm_fail(err, "%s: invalid JSON near byte %zu", path, at);
        free(text);
        return NULL;
    }
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        nm_fail(err, "%s: expected a JSON object", path);
        return NULL;
    }
    return j;
}

/* An integer-valued JSON number in [lo, hi]. 1 = found, 0 = absent/null, -1 = bad (err set). */
static int get_int(const cJSON *o, const char *file, const char *key, double lo, double hi, int64_t *out,
                   nm_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
        return nm_fail(err, "%s: \"%s\" must be an integer", file, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return nm_fail(err, "%s: \"%s\" = %.17g is out of range [%.0f, %.0f]", file, key, v->valuedouble, lo, hi);
    *out = (int64_t)v->valuedouble;
    return 1;
}

static int get_u32_req(const cJSON *o, const char *file, const char *key, uint32_t lo, uint32_t *out,
                       nm_error *err) {
    int64_t v;
    int r = get_int(o, file, key, lo, 1 << 30, &v, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return nm_fail(err, "%s: missing \"%s\"", file, key);
    *out = (uint32_t)v;
    return 0;
}

/* A finite positive float. 1 found, 0 absent, -1 bad. */
static int get_pos_float(const cJSON *o, const char *file, const char *key, double *out, nm_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0 || v->valuedouble > 3.4e38)
        return nm_fail(err, "%s: \"%s\" must be a positive number", file, key);
    *out = v->valuedouble;
    return 1;
}

uint32_t conv_guess_meta_context(double norm_eps, double rope_theta, bool have_theta) {
    if (have_theta && rope_theta == 1000000.0)
        return 16384; /* CodeLlama */
    if (norm_eps == 1e-5 || norm_eps == 1e-6)
        return 4096;  /* Llama 2 */
    return 2048;      /* LLaMA 1 */
}

static void set_special(conv_config *c, int type, int64_t id) {
    if (id < 0 || id > UINT32_MAX)
        return;
    for (int i = 0; i < c->n_special; i++)
        if (c->special_type[i] == type)
            return; /* first source wins */
    c->special_type[c->n_special] = type;
    c->special_id[c->n_special] = (uint32_t)id;
    c->n_special++;
}

/* generation_config.json (optional; the converter ignores one it cannot parse, and so do we).
 * A value of the wrong kind is skipped with a warning where the converter would crash. */
static int load_generation_config(conv_config *c, const char *dir, nm_error *err) {
    static const struct { const char *json, *key; bool is_int; } keys[CONV_SAMPLING_MAX] = {
        {"top_k", "general.sampling.top_k", true},
        {"top_p", "general.sampling.top_p", false},
        {"min_p", "general.sampling.min_p", false},
        {"xtc_probability", "general.sampling.xtc_probability", false},
        {"xtc_threshold", "general.sampling.xtc_threshold", false},
        {"temperature", "general.sampling.temp", false},
        {"penalty_last_n", "general.sampling.penalty_last_n", true},
        {"penalty_repeat", "general.sampling.penalty_repeat", false},
        {"mirostat", "general.sampling.mirostat", true},
        {"mirostat_tau", "general.sampling.mirostat_tau", false},
        {"mirostat_eta", "general.sampling.mirostat_eta", false},
    };
    bool missing;
    nm_error ignored;
    cJSON *j = load_json(dir, "generation_config.json", 1u << 20, &missing, &ignored);
    if (!j)
        return 0;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "sequence");
    if (cJSON_IsString(seq) && !(c->sampling_sequence = strdup(seq->valuestring))) {
        cJSON_Delete(j);
        return nm_fail(err, "out of memory");
    }
    for (int k = 0; k < CONV_SAMPLING_MAX; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k].json);
        if (!v || cJSON_IsNull(v))
            continue;
        bool ok = cJSON_IsNumber(v) && isfinite(v->valuedouble);
        if (ok && keys[k].is_int)
            ok = v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) <= 2147483647.0;
        if (!ok) {
            fprintf(stderr, "nomoat-convert: warning: %s/generation_config.json: \"%s\" is not %s; not written\n", dir,
                    keys[k].json, keys[k].is_int ? "a 32-bit integer" : "a number");
            continue;
        }
        c->sampling[c->n_sampling++] = (struct conv_sampling){keys[k].key, keys[k].is_int, v->valuedouble};
    }
    cJSON_Delete(j);
    return 0;
}

/* One config.json value of the family's table (arch.h) into c; -1 with a message naming the
 * file and key when it is missing but required, or of the wrong kind. */
static int read_hparam(conv_config *c, const cJSON *j, const char *file, const nm_arch_hf_key *k, nm_error *err) {
    int64_t v = 0;
    double d = 0;
    int r;
    switch (k->hp) {
    case NM_HP_EMBD: case NM_HP_LAYERS: case NM_HP_HEADS: case NM_HP_FF: case NM_HP_VOCAB:
    case NM_HP_HEADS_KV: case NM_HP_HEAD_DIM: case NM_HP_CTX: case NM_HP_ORIG_CTX:
    case NM_HP_EXPERTS: case NM_HP_EXPERTS_USED: case NM_HP_EXPERT_FF:
        r = get_int(j, file, k->key, 1, k->hp == NM_HP_CTX || k->hp == NM_HP_ORIG_CTX ? UINT32_MAX : 1 << 30, &v, err);
        break;
    case NM_HP_SLIDING_WINDOW:
        r = get_int(j, file, k->key, 0, UINT32_MAX, &v, err);
        break;
    case NM_HP_SWA_PATTERN:
        r = get_int(j, file, k->key, 1, 1 << 30, &v, err);
        break;
    case NM_HP_PARALLEL_RESIDUAL: case NM_HP_NORM_TOPK: {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, k->key);
        r = !b || cJSON_IsNull(b) ? 0 : cJSON_IsBool(b) ? 1 : -1;
        if (r < 0)
            return nm_fail(err, "%s: \"%s\" must be true or false", file, k->key);
        v = cJSON_IsTrue(b);
        break;
    }
    default:
        r = get_pos_float(j, file, k->key, &d, err);
    }
    if (r < 0)
        return -1;
    if (r == 0)
        return k->required ? nm_fail(err, "%s: missing \"%s\"", file, k->key) : 0;
    switch (k->hp) {
    case NM_HP_EMBD: c->n_embd = (uint32_t)v; break;
    case NM_HP_LAYERS: c->n_layer = (uint32_t)v; break;
    case NM_HP_HEADS: c->n_head = (uint32_t)v; break;
    case NM_HP_FF: c->n_ff = (uint32_t)v; break;
    case NM_HP_VOCAB: c->n_vocab = (uint32_t)v; break;
    case NM_HP_HEADS_KV: c->n_head_kv = (uint32_t)v; c->has_head_kv = true; break;
    case NM_HP_HEAD_DIM: c->head_dim = (uint32_t)v; c->has_head_dim = true; break;
    case NM_HP_CTX: c->n_ctx = (uint32_t)v; c->has_ctx = true; break;
    case NM_HP_ORIG_CTX: c->n_ctx_orig = (uint32_t)v; break;
    case NM_HP_SLIDING_WINDOW: c->sliding_window = (uint32_t)v; break;
    case NM_HP_ROPE_THETA: c->rope_theta = (float)d; c->has_rope_theta = true; break;
    case NM_HP_RMS_EPS: c->rms_eps = (float)d; break;
    case NM_HP_NORM_EPS: c->norm_eps = (float)d; break;
    case NM_HP_ROTARY_PCT:
        if (d > 1.0)
            return nm_fail(err, "%s: \"%s\" = %g is more than 1", file, k->key, d);
        c->rotary_pct = d;
        c->has_rotary_pct = true;
        break;
    case NM_HP_PARALLEL_RESIDUAL: c->parallel_residual = v != 0; break;
    case NM_HP_EXPERTS: c->n_expert = (uint32_t)v; c->has_expert = true; break;
    case NM_HP_EXPERTS_USED: c->n_expert_used = (uint32_t)v; c->has_expert_used = true; break;
    case NM_HP_EXPERT_FF: c->n_ff_exp = (uint32_t)v; break;
    case NM_HP_NORM_TOPK:
        if (!v)
            return nm_fail(err, "%s: \"%s\" = false is not supported (llama.cpp always renormalises the chosen "
                           "experts' weights, which would change the model)", file, k->key);
        break;
    case NM_HP_ATTN_SOFTCAP: c->attn_softcap = (float)d; break;
    case NM_HP_FINAL_SOFTCAP: c->final_softcap = (float)d; break;
    case NM_HP_QUERY_SCALAR: c->query_scalar = d; c->has_query_scalar = true; break;
    case NM_HP_ROPE_THETA_SWA: c->rope_theta_swa = (float)d; c->has_rope_theta_swa = true; break;
    case NM_HP_SWA_PATTERN: c->swa_pattern = (uint32_t)v; break;
    default: break;
    }
    return 0;
}

/* rope_scaling {rope_type: yarn} as TextModel.set_gguf_parameters reads it: the factor, the original
 * context (both required: the converter writes nothing without a factor, which would drop the
 * scaling, and fails without the context) and four optional values it passes on. */
static int yarn_load(conv_config *c, const cJSON *rs, const char *file, nm_error *err) {
    double d;
    int r = get_pos_float(rs, file, "factor", &d, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return nm_fail(err, "%s: rope_scaling of type yarn has no \"factor\"", file);
    c->rope_yarn = true;
    c->yarn_factor = (float)d;
    int64_t v;
    if ((r = get_int(rs, file, "original_max_position_embeddings", 1, UINT32_MAX, &v, err)) < 0)
        return -1;
    if (r == 0)
        return nm_fail(err, "%s: rope_scaling of type yarn has no \"original_max_position_embeddings\"", file);
    c->yarn_orig_ctx = (uint32_t)v;
    static const char *const hf[4] = {"extrapolation_factor", "attention_factor", "beta_fast", "beta_slow"};
    static const char *const gguf[4] = {"yarn_ext_factor", "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow"};
    for (int i = 0; i < 4; i++) {
        const char *key = hf[i];
        if (i == 1 && !cJSON_GetObjectItemCaseSensitive(rs, key))
            key = "attn_factor"; /* the converter's fallback name */
        if ((r = get_pos_float(rs, file, key, &d, err)) < 0)
            return -1;
        c->yarn_opt[i] = (struct conv_yarn_opt){hf[i], gguf[i], r == 1, (float)d};
    }
    return 0;
}

/* Whether s contains needle, ignoring ASCII case. */
static bool contains_nocase(const char *s, const char *needle) {
    const size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0)
            return true;
    return false;
}

/* Whether the family's converter writes hp's GGUF key. */
static bool writes_key(const nm_arch *a, nm_hparam hp) {
    for (const nm_arch_gguf_key *g = a->gguf_keys; g->key; g++)
        if (g->hp == hp)
            return true;
    for (const nm_arch_gguf_key *g = a->gguf_keys_more; g && g->key; g++)
        if (g->hp == hp)
            return true;
    return false;
}

/* A variant of the family the converter writes as another kind of model (nm_arch's
 * hf_refused_variants), named by the folder, config.json or README.md: an error. */
static bool refused_variant(const nm_arch *a, const char *dir, const cJSON *j, nm_error *err) {
    if (!a->hf_refused_variants)
        return false;
    char real[PATH_MAX];
    const char *path = realpath(dir, real) ? real : dir;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "_name_or_path");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    char *readme = NULL;
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/README.md", dir);
    FILE *f = fopen(file, "rb");
    if (f) { /* the first 4 MiB are plenty for a model card's headings */
        const size_t cap = 4u << 20;
        if ((readme = malloc(cap + 1))) {
            const size_t got = fread(readme, 1, cap, f);
            readme[got] = '\0';
        }
        fclose(f);
    }
    const char *where = NULL, *which = NULL;
    for (const char *const *v = a->hf_refused_variants; *v && !where; v++) {
        char heading[64];
        snprintf(heading, sizeof heading, "# %s", *v);
        which = *v;
        if (contains_nocase(base, *v)) where = "the folder's name";
        else if (cJSON_IsString(name) && contains_nocase(name->valuestring, *v)) where = "config.json's _name_or_path";
        else if (cJSON_IsString(type) && contains_nocase(type->valuestring, *v)) where = "config.json's model_type";
        else if (readme && contains_nocase(readme, heading)) where = "README.md's heading";
    }
    free(readme);
    if (!where)
        return false;
    nm_fail(err, "%s: %s says this is a %s model, which llama.cpp's converter writes as a ranking model "
            "(pooling type rank, a cls_out tensor from lm_head's \"yes\" and \"no\" rows); nomoat-convert does not "
            "support that yet, and converting it as a %s language model would not be the same file", dir, where, which,
            a->name);
    return true;
}

/* Gemma 3: which layers slide. Hugging Face makes layer i local when (i + 1) % sliding_window_pattern
 * != 0 (default 6; 1: none), or as config.json's layer_types lists them; llama.cpp's loader takes
 * every layer il with il % swa_period < swa_period - 1 as local when the file has a window (the
 * converter writes the window unless the pattern is 1, and no pattern). Another layout would change
 * the model. */
static int check_swa_layout(conv_config *c, const cJSON *j, const char *file, nm_error *err) {
    const uint32_t period = c->family->swa_period;
    const uint32_t pattern = c->swa_pattern ? c->swa_pattern : period;
    if (pattern != 1 && pattern != period)
        return nm_fail(err, "%s: sliding_window_pattern = %u is not supported for %s (llama.cpp makes every %uth "
                       "layer global and the rest local, which would change the model)", file, pattern, c->arch,
                       period);
    if (pattern != 1 && c->sliding_window == 0)
        return nm_fail(err, "%s: \"sliding_window\" must be a positive number of positions for %s", file, c->arch);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (!types || cJSON_IsNull(types))
        return 0;
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != (int)c->n_layer)
        return nm_fail(err, "%s: \"layer_types\" must list the %u layers' attention kinds", file, c->n_layer);
    for (uint32_t il = 0; il < c->n_layer; il++) {
        const cJSON *t = cJSON_GetArrayItem(types, (int)il);
        const bool local = pattern != 1 && il % period < period - 1;
        const char *want = local ? "sliding_attention" : "full_attention";
        if (!cJSON_IsString(t) || strcmp(t->valuestring, want) != 0)
            return nm_fail(err, "%s: layer_types[%u] is %s%s%s but llama.cpp's %s makes layer %u %s (every %uth layer "
                           "global%s), which would change the model", file, il, cJSON_IsString(t) ? "\"" : "",
                           cJSON_IsString(t) ? t->valuestring : "not a string", cJSON_IsString(t) ? "\"" : "",
                           c->family->name, il, want, period, pattern == 1 ? "; with sliding_window_pattern 1, all" : "");
    }
    return 0;
}

static int load_hf(conv_config *c, const char *dir, nm_error *err) {
    char file[4200];
    snprintf(file, sizeof file, "%s/config.json", dir);
    bool missing;
    cJSON *j = load_json(dir, "config.json", 16u << 20, &missing, err);
    if (!j) {
        if (missing) {
            if (file_exists(dir, "params.json"))
                return -1; /* not reached: caller checks params.json first */
            return nm_fail(err, "%s has no config.json (Hugging Face layout) or params.json (Meta layout)", dir);
        }
        return -1;
    }
    int rc = -1;
    char supported[512];
    nm_arch_list_hf(supported, sizeof supported);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0)) {
        nm_fail(err, "%s/config.json: missing \"architectures\" (supported: %s)", dir, supported);
        goto out;
    }
    snprintf(c->arch, sizeof c->arch, "%s", a0->valuestring);
    if (!(c->family = nm_arch_by_hf_class(c->arch))) {
        nm_fail(err, "%s/config.json: architecture %s is not supported (supported: %s)", dir, c->arch, supported);
        goto out;
    }
    if (refused_variant(c->family, dir, j, err))
        goto out;
    c->parallel_residual = c->family->residual == NM_RESIDUAL_PARALLEL;
    for (const nm_arch_hf_key *k = c->family->hf_keys; k->key; k++)
        if (read_hparam(c, j, file, k, err) != 0)
            goto out;
    for (const nm_arch_hf_key *k = c->family->hf_keys_more; k && k->key; k++)
        if (read_hparam(c, j, file, k, err) != 0)
            goto out;
    if (c->family->experts && c->n_expert_used > c->n_expert) {
        nm_fail(err, "%s/config.json: %u experts per token (num_experts_per_tok) but only %u experts", dir,
                c->n_expert_used, c->n_expert);
        goto out;
    }
    if (c->family->ff_per_embd) {
        /* the converter writes this width whatever the config says; a different one would not load */
        const uint64_t ff = (uint64_t)c->family->ff_per_embd * c->n_embd;
        if (c->n_ff && c->n_ff != ff) {
            nm_fail(err, "%s/config.json: an FFN width of %u (n_inner) is not supported: llama.cpp's converter writes "
                    "%u × n_embd = %llu for %s", dir, c->n_ff, c->family->ff_per_embd, (unsigned long long)ff, c->arch);
            goto out;
        }
        c->n_ff = (uint32_t)ff;
    }
    if (!c->has_head_kv)
        c->n_head_kv = c->n_head;
    if (!c->has_head_dim)
        c->head_dim = c->n_embd / c->n_head;
    /* the converter: int(rotary_pct * (hidden_size // num_attention_heads)) */
    c->n_rot = c->has_rotary_pct ? (uint32_t)(c->rotary_pct * (double)c->head_dim) : c->head_dim;
    int r;
    double d;
    const cJSON *nop = cJSON_GetObjectItemCaseSensitive(j, "_name_or_path");
    if (cJSON_IsString(nop) && !(c->name_or_path = strdup(nop->valuestring))) {
        nm_fail(err, "out of memory");
        goto out;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    c->tied = cJSON_IsBool(tie) ? cJSON_IsTrue(tie) : c->family->tied_by_default;
    /* rope_parameters (newer transformers) or rope_scaling, as llama.cpp's converter reads them */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (!cJSON_IsObject(rs))
        rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (cJSON_IsObject(rs) && (cJSON_GetObjectItemCaseSensitive(rs, "full_attention") ||
                               cJSON_GetObjectItemCaseSensitive(rs, "sliding_attention"))) {
        nm_fail(err, "%s/config.json: rope parameters given per attention kind (full_attention, sliding_attention) "
                "are not supported yet; a config.json with rope_theta and rope_scaling is", dir);
        goto out;
    }
    if (c->family->hf_longrope) {
        /* Phi3MiniModel reads rope_scaling alone (null: no long-context factors) */
        rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
        if (rs && !cJSON_IsNull(rs) && !cJSON_IsObject(rs)) {
            nm_fail(err, "%s: \"rope_scaling\" must be an object or null", file);
            goto out;
        }
        if (cJSON_IsObject(rs) && conv_longrope_load(c, rs, file, err) != 0)
            goto out;
    } else if (cJSON_IsObject(rs) && !c->family->hf_rope_scaling) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!t)
            t = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (c->family->hf_rope_yarn && cJSON_IsString(t) && strcmp(t->valuestring, "yarn") == 0) {
            if (yarn_load(c, rs, file, err) != 0)
                goto out;
        } else if (!cJSON_IsString(t) || strcmp(t->valuestring, "default") != 0) {
            nm_fail(err, "%s/config.json: rope_scaling is not supported for %s%s (converting without it would change "
                    "the model)", dir, c->arch, c->family->hf_rope_yarn ? " except {\"rope_type\": \"yarn\"}" : "");
            goto out;
        }
    } else if (cJSON_IsObject(rs)) {
        /* the converter takes rope_theta from this section when it has one */
        if ((r = get_pos_float(rs, file, "rope_theta", &d, err)) < 0)
            goto out;
        if (r == 1) {
            c->has_rope_theta = true;
            c->rope_theta = (float)d;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!t)
            t = cJSON_GetObjectItemCaseSensitive(rs, "type");
        const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
        if (type && strcmp(type, "linear") == 0) {
            if ((r = get_pos_float(rs, file, "factor", &d, err)) < 0)
                goto out;
            c->rope_linear = r == 1;
            c->rope_linear_factor = (float)d;
        } else if (type && strcasecmp(type, "llama3") == 0 && !c->family->hf_rope_llama3) {
            /* TextModel leaves llama3 to LlamaModel's extra tensors, which this class lacks */
            nm_fail(err, "%s/config.json: rope_scaling type \"%s\" is not supported for %s (llama.cpp's converter "
                    "ignores it for this class, which would change the model; supported: linear)", dir, type, c->arch);
            goto out;
        } else if (type && strcasecmp(type, "llama3") == 0) {
            if (conv_llama3_rope_load(c, j, rs, file, err) != 0)
                goto out;
        } else if (type && strcmp(type, "default") != 0) {
            nm_fail(err, "%s/config.json: rope_scaling type \"%s\" is not supported (supported: linear%s)", dir,
                    type, c->family->hf_rope_llama3 ? ", llama3" : "");
            goto out;
        }
    }
    if (c->family->query_prescale) {
        /* Gemma 2: llama.cpp's converter writes no rope.freq_base and no query scale; the loader
         * takes 10000 and 1/sqrt(head_dim) (1/sqrt(n_embd/n_head) for its 46-layer 27B) */
        const uint32_t used = c->family->query_scale_width_layers && c->n_layer == c->family->query_scale_width_layers
                                  ? c->n_embd / c->n_head : c->head_dim;
        if (!writes_key(c->family, NM_HP_ROPE_THETA) && c->has_rope_theta && c->rope_theta != 10000.0f) {
            nm_fail(err, "%s/config.json: rope_theta = %g is not supported for %s (llama.cpp's converter does not "
                    "write it and llama.cpp uses 10000, which would change the model)", dir, (double)c->rope_theta,
                    c->arch);
            goto out;
        }
        if (c->has_query_scalar && c->query_scalar != (double)used) {
            nm_fail(err, "%s/config.json: query_pre_attn_scalar = %g is not supported for %s with %u layers "
                    "(llama.cpp's converter does not write it and llama.cpp scales queries by 1/sqrt(%u), which "
                    "would change the model)", dir, c->query_scalar, c->arch, c->n_layer, used);
            goto out;
        }
    }
    if (c->attn_softcap != 0.0f && !writes_key(c->family, NM_HP_ATTN_SOFTCAP)) {
        /* Gemma3Model asserts that attn_logit_softcapping is null; llama.cpp's gemma3 has no such cap */
        nm_fail(err, "%s/config.json: attn_logit_softcapping = %g is not supported for %s (llama.cpp's %s does not "
                "soft-cap attention scores, which would change the model)", dir, (double)c->attn_softcap, c->arch,
                c->family->name);
        goto out;
    }
    if (c->family->swa_period && check_swa_layout(c, j, file, err) != 0)
        goto out;
    /* Qwen2/Qwen3's use_sliding_window: Hugging Face gives a window of sliding_window tokens to the
     * layers config.json's layer_types marks "sliding_attention", or without it to those from
     * max_window_layers on (transformers' default 28); the converter ignores these keys and
     * llama.cpp's qwen2/qwen3 attend to the whole context */
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "use_sliding_window"))) {
        int64_t window = 0, from = 28, n_sliding = 0;
        if ((r = get_int(j, file, "sliding_window", 1, UINT32_MAX, &window, err)) < 0 ||
            get_int(j, file, "max_window_layers", 0, 1 << 30, &from, err) < 0)
            goto out;
        const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
        if (cJSON_IsArray(types)) {
            int64_t i = 0;
            const cJSON *t;
            from = -1;
            cJSON_ArrayForEach(t, types) {
                if (cJSON_IsString(t) && strcmp(t->valuestring, "sliding_attention") == 0) {
                    n_sliding++;
                    if (from < 0) from = i;
                }
                i++;
            }
        } else if (from < c->n_layer) {
            n_sliding = c->n_layer - from;
        }
        if (r == 1 && n_sliding > 0) {
            nm_fail(err, "%s/config.json: use_sliding_window is true (%lld of %u layers, from layer %lld on, attend "
                    "to a window of %lld tokens); llama.cpp's converter ignores it and its %s attends to the whole "
                    "context, which would change the model", dir, (long long)n_sliding, c->n_layer,
                    (long long)from, (long long)window, c->family->name);
            goto out;
        }
    }
    if (c->n_head_kv > c->n_head || c->n_head % c->n_head_kv != 0) {
        nm_fail(err, "%s/config.json: num_key_value_heads = %u does not divide num_attention_heads = %u", dir,
                c->n_head_kv, c->n_head);
        goto out;
    }
    if (!c->has_head_dim && c->n_embd % c->n_head != 0) {
        nm_fail(err, "%s/config.json: hidden_size %u is not a multiple of num_attention_heads %u", dir, c->n_embd,
                c->n_head);
        goto out;
    }
    if (c->head_dim % 2 != 0) {
        nm_fail(err, "%s/config.json: head dimension %u is odd; RoPE needs pairs", dir, c->head_dim);
        goto out;
    }
    if (c->n_rot == 0 || c->n_rot % 2 != 0 || c->n_rot > c->head_dim) {
        nm_fail(err, "%s/config.json: %u rotary dimensions (rotary_pct %g of head dimension %u) are not an even "
                "number from 2 to the head dimension", dir, c->n_rot, c->rotary_pct, c->head_dim);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* Sets add_<type>_token, keeping the order in which flags were first set (gguf-py's dict). */
static void set_add_flag(conv_config *c, int t, bool value) {
    int k;
    for (k = 0; k < c->add_count && c->add_type[k] != t; k++)
        ;
    c->add_type[k] = t;
    c->add_value[k] = value;
    if (k == c->add_count)
        c->add_count++;
}

/* tokenizer_config.json's <type>_token as text (a string or an object's "content"), or NULL. */
static const char *config_token(const cJSON *tc, const char *type) {
    char key[32];
    snprintf(key, sizeof key, "%s_token", type);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(tc, key);
    if (cJSON_IsObject(e))
        e = cJSON_GetObjectItemCaseSensitive(e, "content");
    return cJSON_IsString(e) && e->valuestring[0] ? e->valuestring : NULL;
}

static const char *template_special(const cJSON *item) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
    const cJSON *id = st ? cJSON_GetObjectItemCaseSensitive(st, "id") : NULL;
    return cJSON_IsString(id) && id->valuestring[0] ? id->valuestring : NULL;
}
static const char *template_sequence(const cJSON *item) {
    const cJSON *sq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
    const cJSON *id = sq ? cJSON_GetObjectItemCaseSensitive(sq, "id") : NULL;
    return cJSON_IsString(id) ? id->valuestring : NULL;
}
static bool same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* gguf.SpecialVocab's reading of tokenizer.json's post-processor: RobertaProcessing adds BOS, EOS
 * and SEP; a TemplateProcessing's single template starting (ending) with the BOS (EOS) token
 * adds it, and its pair template "A [sep|eos] [sep|eos] B" decides add_sep. (The reference also
 * renames an unexpected trailing token to EOS, moving EOS to EOT: not done here.) */
static void apply_post_processor(conv_config *c, const cJSON *tokjson, const cJSON *tc) {
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(tokjson, "post_processor");
    if (!cJSON_IsObject(pp))
        return;
    const char *bos = tc ? config_token(tc, "bos") : NULL, *eos = tc ? config_token(tc, "eos") : NULL;
    const char *cls = tc ? config_token(tc, "cls") : NULL, *sep = tc ? config_token(tc, "sep") : NULL;
    if (!bos && cls && tc)
        bos = cls;
    if (!eos && sep && tc)
        eos = sep;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
    const cJSON *first = cJSON_IsArray(list) ? list->child : pp;
    for (const cJSON *proc = first; proc; proc = cJSON_IsArray(list) ? proc->next : NULL) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(proc, "type");
        if (!cJSON_IsString(type))
            continue;
        if (!strcmp(type->valuestring, "RobertaProcessing")) {
            set_add_flag(c, CONV_SPECIAL_BOS, true);
            set_add_flag(c, CONV_SPECIAL_EOS, true);
            set_add_flag(c, CONV_SPECIAL_SEP, true);
            continue;
        }
        if (strcmp(type->valuestring, "TemplateProcessing"))
            continue;
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(proc, "single");
        const cJSON *pair = cJSON_GetObjectItemCaseSensitive(proc, "pair");
        const char *sfirst = NULL, *slast = NULL;
        int n_single = cJSON_IsArray(single) ? cJSON_GetArraySize(single) : 0;
        if (n_single > 1) {
            if ((sfirst = template_special(cJSON_GetArrayItem(single, 0)))) {
                if (!tc)
                    bos = sfirst;
                set_add_flag(c, CONV_SPECIAL_BOS, same(sfirst, bos) || same(sfirst, cls));
            }
            if ((slast = template_special(cJSON_GetArrayItem(single, n_single - 1)))) {
                if (!tc)
                    eos = slast;
                set_add_flag(c, CONV_SPECIAL_EOS, same(slast, eos));
            }
        }
        int n_pair = cJSON_IsArray(pair) ? cJSON_GetArraySize(pair) : 0;
        if (!n_pair)
            continue;
        int start = sfirst && same(template_special(cJSON_GetArrayItem(pair, 0)), sfirst) ? 1 : 0;
        int stop = slast && same(template_special(cJSON_GetArrayItem(pair, n_pair - 1)), slast) ? n_pair - 1 : n_pair;
        if (stop - start < 1)
            continue;
        const char *a = template_sequence(cJSON_GetArrayItem(pair, start));
        const char *b = template_sequence(cJSON_GetArrayItem(pair, stop - 1));
        int middle = stop - start - 2;
        if (!same(a, "A") || !same(b, "B") || middle < 1)
            continue;
        bool add_sep = false;
        const char *e1 = template_special(cJSON_GetArrayItem(pair, start + 1));
        if (e1 && (same(e1, sep) || same(e1, eos)) && !slast)
            add_sep = true;
        if (middle == 2) {
            const char *e2 = template_special(cJSON_GetArrayItem(pair, start + 2));
            if (e2 && (same(e2, sep) || same(e2, eos)))
                add_sep = true;
        }
        set_add_flag(c, CONV_SPECIAL_SEP, add_sep);
    }
}

/* tokenizer_config.json, tokenizer.json's added_tokens and post-processor, config.json's
 * *_token_id — in the order llama.cpp's SpecialVocab applies them. */
static int load_tokenizer_side(conv_config *c, const char *dir, nm_error *err) {
    bool missing;
    cJSON *added_tokens_json = NULL;
    cJSON *tokjson = NULL;
    if (file_exists(dir, "tokenizer.json")) {
        tokjson = load_json(dir, "tokenizer.json", 256u << 20, &missing, err);
        if (!tokjson)
            return -1;
        if (file_exists(dir, "tokenizer_config.json"))
            added_tokens_json = cJSON_GetObjectItemCaseSensitive(tokjson, "added_tokens");
    }
    cJSON *tc = NULL;
    if (file_exists(dir, "tokenizer_config.json")) {
        tc = load_json(dir, "tokenizer_config.json", 64u << 20, &missing, err);
        if (!tc) {
            cJSON_Delete(tokjson);
            return -1;
        }
    }
    if (tokjson)
        apply_post_processor(c, tokjson, tc);
    if (tc) {
        for (int t = 0; t < CONV_SPECIAL_COUNT; t++) {
            char key[32];
            snprintf(key, sizeof key, "add_%s_token", conv_special_names[t]);
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(tc, key);
            if (cJSON_IsBool(a))
                set_add_flag(c, t, cJSON_IsTrue(a));
            snprintf(key, sizeof key, "%s_token", conv_special_names[t]);
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(tc, key);
            const char *content = NULL;
            if (cJSON_IsString(e))
                content = e->valuestring;
            else if (cJSON_IsObject(e)) {
                const cJSON *cc = cJSON_GetObjectItemCaseSensitive(e, "content");
                if (cJSON_IsString(cc))
                    content = cc->valuestring;
            }
            if (!content || !cJSON_IsArray(added_tokens_json))
                continue;
            const cJSON *at;
            cJSON_ArrayForEach(at, added_tokens_json) {
                const cJSON *ac = cJSON_GetObjectItemCaseSensitive(at, "content");
                const cJSON *ai = cJSON_GetObjectItemCaseSensitive(at, "id");
                if (cJSON_IsString(ac) && strcmp(ac->valuestring, content) == 0) {
                    if (cJSON_IsNumber(ai) && ai->valuedouble == floor(ai->valuedouble))
                        set_special(c, t, (int64_t)ai->valuedouble);
                    break;
                }
            }
        }
        const cJSON *asp = cJSON_GetObjectItemCaseSensitive(tc, "add_prefix_space");
        if (cJSON_IsBool(asp)) {
            c->has_add_space_prefix = true;
            c->add_space_prefix = cJSON_IsTrue(asp);
        }
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(tc, "chat_template");
        if (cJSON_IsString(ct) && !(c->chat_template = strdup(ct->valuestring))) {
            cJSON_Delete(tc);
            cJSON_Delete(tokjson);
            return nm_fail(err, "out of memory");
        }
    }
    cJSON_Delete(tc);
    cJSON_Delete(tokjson);

    cJSON *cfg = load_json(dir, "config.json", 16u << 20, &missing, err);
    if (!cfg)
        return -1;
    for (int t = 0; t < CONV_SPECIAL_COUNT; t++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", conv_special_names[t]);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble))
            set_special(c, t, (int64_t)v->valuedouble);
    }
    cJSON_Delete(cfg);
    return 0;
}

static int load_meta(conv_config *c, const char *dir, nm_error *err) {
    char file[4200];
    snprintf(file, sizeof file, "%s/params.json", dir);
    bool missing;
    cJSON *j = load_json(dir, "params.json", 1u << 20, &missing, err);
    if (!j)
        return -1;
    int rc = -1;
    snprintf(c->arch, sizeof c->arch, "llama (Meta params.json)");
    c->family = &nm_arch_llama;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "use_scaled_rope"))) {
        /* Meta's Llama 3.1+ release: its RoPE factors live in Meta's code, not in params.json, and
         * its tokenizer.model is a tiktoken file */
        nm_fail(err, "%s: \"use_scaled_rope\" marks Meta's own Llama 3.1+ layout, which is not supported; convert "
                     "the Hugging Face release of the model instead",
                file);
        goto out;
    }
    if (get_u32_req(j, file, "dim", 1, &c->n_embd, err) || get_u32_req(j, file, "n_layers", 1, &c->n_layer, err) ||
        get_u32_req(j, file, "n_heads", 1, &c->n_head, err))
        goto out;
    int64_t v;
    int r = get_int(j, file, "n_kv_heads", 1, 1 << 30, &v, err);
    if (r < 0)
        goto out;
    c->n_head_kv = r == 1 ? (uint32_t)v : c->n_head;
    c->has_head_kv = true;
    r = get_int(j, file, "vocab_size", -1, 1 << 30, &v, err);
    if (r < 0)
        goto out;
    c->n_vocab = r == 1 && v > 0 ? (uint32_t)v : 0;
    double eps = 0, theta = 0;
    r = get_pos_float(j, file, "norm_eps", &eps, err);
    if (r <= 0) {
        if (r == 0)
            nm_fail(err, "%s: missing \"norm_eps\"", file);
        goto out;
    }
    c->rms_eps = (float)eps;
    r = get_pos_float(j, file, "rope_theta", &theta, err);
    if (r < 0)
        goto out;
    c->has_rope_theta = r == 1;
    c->rope_theta = (float)theta;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "moe")) ||
        cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "moe"))) {
        nm_fail(err, "%s: mixture-of-experts models are not supported (supported: dense Llama)", file);
        goto out;
    }
    c->n_ctx = conv_guess_meta_context(eps, theta, c->has_rope_theta);
    c->has_ctx = true;
    if (c->n_embd % c->n_head != 0 || c->n_head % c->n_head_kv != 0) {
        nm_fail(err, "%s: dim %u, n_heads %u and n_kv_heads %u do not divide evenly", file, c->n_embd, c->n_head,
                c->n_head_kv);
        goto out;
    }
    c->head_dim = c->n_embd / c->n_head;
    c->n_rot = c->head_dim;
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

int conv_config_load(conv_config *c, const char *dir, nm_error *err) {
    memset(c, 0, sizeof *c);
    if (!file_exists(dir, "config.json") && file_exists(dir, "params.json")) {
        c->layout = CONV_LAYOUT_META;
        if (load_meta(c, dir, err) != 0)
            return -1;
        return 0;
    }
    c->layout = CONV_LAYOUT_HF;
    if (load_hf(c, dir, err) != 0 || load_tokenizer_side(c, dir, err) != 0 ||
        load_generation_config(c, dir, err) != 0) {
        conv_config_free(c);
        return -1;
    }
    return 0;
}

void conv_config_free(conv_config *c) {
    free(c->rope_long);
    free(c->rope_short);
    c->rope_long = c->rope_short = NULL;
    free(c->sampling_sequence);
    free(c->chat_template);
    free(c->name_or_path);
    c->name_or_path = NULL;
    c->chat_template = NULL;
}
