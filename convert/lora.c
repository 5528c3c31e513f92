/* nomoat-convert's adapter mode: a Hugging Face PEFT LoRA folder -> the GGUF adapter llama.cpp
 * loads with --lora, written as llama.cpp's convert_lora_to_gguf.py writes it (formats/lora.h has
 * the format). The base model (its HF folder or a GGUF) gives the architecture, the shapes to
 * check against and the head counts for the Q/K row permutation of lora_b. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/outfile.h"
#include "convert/convert.h"
#include "formats/gguf.h"
#include "formats/lora.h"
#include "formats/quants.h"

#define TOOL "nomoat-convert"

typedef struct lora_item {
    char name[GGUF_MAX_NAME + 8];
    const nm_peft_tensor *src;
    bool transpose;          /* token_embd lora_a: stored [r, n_vocab], written one row per token */
    uint32_t permute_heads;  /* lora_b of q/k: rows permuted like the base weight's */
    double fold;             /* factor folded into lora_b (1: none), see module_fold */
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[4];
    size_t size;
} lora_item;

/* ---------------- the base model ---------------- */

static int u32_kv(const gguf_reader *g, const char *key, bool required, uint32_t def, uint32_t *out, nm_error *err) {
    const gguf_value *v = gguf_get(g, key);
    *out = def;
    if (!v) return required ? nm_fail(err, "the base GGUF has no %s", key) : 0;
    if (v->type == GGUF_TYPE_UINT32) *out = v->u32;
    else if (v->type == GGUF_TYPE_INT32 && v->i32 >= 0) *out = (uint32_t)v->i32;
    else return nm_fail(err, "the base GGUF's %s has type %s, expected UINT32", key, gguf_type_name(v->type));
    return 0;
}

/* A configuration from a base GGUF's metadata and tensors, as if read from its config.json. */
static int config_from_gguf(conv_config *c, const gguf_reader *g, const char *path, nm_error *err) {
    memset(c, 0, sizeof *c);
    c->layout = CONV_LAYOUT_HF;
    if (nm_lora_is_adapter(g)) return nm_fail(err, "%s is itself an adapter; --base names the base model", path);
    const gguf_value *arch = gguf_get(g, "general.architecture");
    if (!arch || arch->type != GGUF_TYPE_STRING) return nm_fail(err, "%s has no general.architecture", path);
    if (arch->str.len != 5 || memcmp(arch->str.ptr, "llama", 5) != 0)
        return nm_fail(err, "%s: the base's architecture is '%.*s'; nomoat converts adapters for llama bases", path,
                       (int)(arch->str.len > 40 ? 40 : arch->str.len), arch->str.ptr);
    uint32_t key_len;
    if (u32_kv(g, "llama.embedding_length", true, 0, &c->n_embd, err) ||
        u32_kv(g, "llama.block_count", true, 0, &c->n_layer, err) ||
        u32_kv(g, "llama.attention.head_count", true, 0, &c->n_head, err) ||
        u32_kv(g, "llama.attention.head_count_kv", false, c->n_head, &c->n_head_kv, err) ||
        u32_kv(g, "llama.feed_forward_length", true, 0, &c->n_ff, err))
        return nm_error_prefix(err, "%s", path);
    if (c->n_head == 0 || c->n_head_kv == 0 || c->n_embd % c->n_head != 0)
        return nm_fail(err, "%s: implausible head counts (%u heads, %u KV heads, embedding %u)", path, c->n_head,
                       c->n_head_kv, c->n_embd);
    if (u32_kv(g, "llama.attention.key_length", false, c->n_embd / c->n_head, &key_len, err))
        return nm_error_prefix(err, "%s", path);
    c->head_dim = key_len;
    c->n_rot = key_len;
    c->family = &nm_arch_llama;
    const gguf_tensor_info *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return nm_fail(err, "%s has no token_embd.weight", path);
    c->n_vocab = emb->ne[1] > UINT32_MAX ? 0 : (uint32_t)emb->ne[1];
    c->tied = gguf_find_tensor(g, "output.weight") == NULL;
    return 0;
}

static int load_base(const char *base, conv_config *c, nm_error *err) {
    struct stat st;
    if (stat(base, &st) != 0) return nm_fail(err, "--base %s: %s", base, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (nm_peft_is_adapter_dir(base))
            return nm_fail(err, "--base %s is an adapter folder; it must name the base model", base);
        if (conv_config_load(c, base, err) != 0) return -1;
        if (c->family != &nm_arch_llama)
            return nm_fail(err, "--base %s is a %s model; nomoat converts adapters for Llama-family bases only", base,
                           c->arch);
        return 0;
    }
    gguf_reader *g = gguf_open(base, err);
    if (!g) return nm_error_prefix(err, "--base %s", base);
    int rc = config_from_gguf(c, g, base, err);
    gguf_close(g);
    return rc;
}

/* ---------------- the plan ---------------- */

static uint32_t out_type(conv_outtype t, int64_t ne0) {
    switch (t) {
    case CONV_OUT_F16: return GGML_TYPE_F16;
    case CONV_OUT_BF16: return GGML_TYPE_BF16;
    case CONV_OUT_Q8_0: return ne0 % 32 == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16; /* llama.cpp's fallback */
    default: return GGML_TYPE_F32;
    }
}

/* The alpha written to the file: PEFT's lora_alpha, as llama.cpp's converter writes it. With
 * rsLoRA (scaling alpha/√r) it is lora_alpha·√r, so that llama.cpp's alpha/r gives PEFT's scaling. */
static float file_alpha(const nm_peft_config *c) {
    return c->use_rslora ? (float)(c->lora_alpha * sqrt((double)c->r)) : (float)c->lora_alpha;
}

/* A module whose PEFT scaling differs from what the file's single alpha gives it (alpha_pattern,
 * or a rank_pattern rank under rsLoRA) gets the ratio folded into its lora_b. */
static double module_fold(const nm_peft_config *c, const nm_peft_module *m, float alpha) {
    if (!m->patterned && m->rank == c->r) return 1.0;
    const double llama = (double)alpha / (double)m->rank;
    const double f = m->scaling / llama;
    return f == 1.0 ? 1.0 : f;
}

static int add_item(lora_item *items, size_t *n, const char *name, const char *suffix, const nm_peft_tensor *src,
                    int64_t ne0, int64_t ne1, conv_outtype outtype, nm_error *err) {
    lora_item *it = &items[(*n)++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s%s", name, suffix);
    if (strlen(it->name) >= GGUF_MAX_NAME) return nm_fail(err, "tensor name %s is too long for GGUF", it->name);
    it->src = src;
    it->fold = 1.0;
    it->n_dims = ne1 > 1 || suffix[0] ? 2 : 1;
    it->ne[0] = ne0;
    it->ne[1] = ne1;
    it->ne[2] = it->ne[3] = 1;
    it->type = it->n_dims == 1 ? GGML_TYPE_F32 : out_type(outtype, ne0);
    if (ggml_tensor_size(it->type, it->ne, &it->size)) return nm_fail(err, "tensor %s: size overflows", it->name);
    return 0;
}

static int build_plan(const nm_peft *p, const conv_config *c, conv_outtype outtype, float alpha, lora_item **out,
                      size_t *n_out, int64_t *total_params, nm_error *err) {
    const size_t nm = nm_peft_module_count(p), ne = nm_peft_extra_count(p);
    lora_item *items = calloc(2 * nm + ne + 1, sizeof *items);
    if (!items) return nm_fail(err, "out of memory");
    size_t n = 0;
    int64_t params = 0;
    char hf[512];
    conv_target t;
    /* mergekit's norm vectors come first, as in llama.cpp's output */
    for (size_t i = 0; i < ne; i++) {
        const nm_peft_tensor *x = nm_peft_extra_at(p, i);
        const char *name = strncmp(x->name, "base_model.model.", 17) == 0 ? x->name + 17 : x->name;
        if (conv_hf_target(c, name, &t, err)) goto fail;
        if (t.ne1 != 1 || (int64_t)x->cols != t.ne0) {
            nm_fail(err, "tensor %s has %llu values; the base's %s has %lld", x->name, (unsigned long long)x->cols,
                    t.name, (long long)t.ne0);
            goto fail;
        }
        if (add_item(items, &n, t.name, "", x, t.ne0, 1, outtype, err)) goto fail;
        params += t.ne0;
    }
    const nm_peft_config *cfg = nm_peft_get_config(p);
    for (size_t i = 0; i < nm; i++) {
        const nm_peft_module *m = nm_peft_module_at(p, i);
        snprintf(hf, sizeof hf, "%s.weight", m->module);
        if (conv_hf_target(c, hf, &t, err)) {
            nm_error_prefix(err, "adapter module %s", m->module);
            goto fail;
        }
        if (t.ne1 == 1) {
            nm_fail(err, "adapter module %s adapts %s, a vector; LoRA adapts matrices", m->module, t.name);
            goto fail;
        }
        const int64_t r = m->rank;
        if (m->embedding) {
            /* A [r, n_vocab], B [n_embd, r]; the embedding is ne {n_embd, n_vocab} */
            if ((int64_t)m->a.cols != t.ne1 || (int64_t)m->b.rows != t.ne0) {
                nm_fail(err, "adapter module %s is for an embedding of %llu tokens x %llu, the base's %s is %lld x %lld: "
                             "is the adapter for another model?",
                        m->module, (unsigned long long)m->a.cols, (unsigned long long)m->b.rows, t.name,
                        (long long)t.ne1, (long long)t.ne0);
                goto fail;
            }
            if (add_item(items, &n, t.name, ".lora_a", &m->a, r, t.ne1, outtype, err)) goto fail;
            items[n - 1].transpose = true;
        } else {
            if ((int64_t)m->a.cols != t.ne0 || (int64_t)m->b.rows != t.ne1) {
                nm_fail(err, "adapter module %s is for a [%llu, %llu] matrix, the base's %s is [%lld, %lld]: is the "
                             "adapter for another model?",
                        m->module, (unsigned long long)m->b.rows, (unsigned long long)m->a.cols, t.name,
                        (long long)t.ne1, (long long)t.ne0);
                goto fail;
            }
            if (add_item(items, &n, t.name, ".lora_a", &m->a, t.ne0, r, outtype, err)) goto fail;
        }
        if (add_item(items, &n, t.name, ".lora_b", &m->b, r, m->embedding ? t.ne0 : t.ne1, outtype, err)) goto fail;
        items[n - 1].permute_heads = t.permute_heads;
        items[n - 1].fold = module_fold(cfg, m, alpha);
        params += t.ne0 * t.ne1;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(items[i].name, items[j].name) == 0) {
                nm_fail(err, "two adapter weights map to %s", items[i].name);
                goto fail;
            }
    *out = items;
    *n_out = n;
    *total_params = params;
    return 0;
fail:
    free(items);
    return -1;
}

/* ---------------- writing ---------------- */

/* The item's values in output order (rows of ne[0]) as floats. */
static int item_values(const nm_peft *p, const lora_item *it, float *src, float *dst, nm_error *err) {
    const nm_peft_tensor *t = it->src;
    if (nm_peft_read_f32(p, t, src, err)) return -1;
    const uint64_t rows = t->rows, cols = t->cols;
    if (it->transpose) {
        for (uint64_t r = 0; r < rows; r++)
            for (uint64_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
    } else if (it->permute_heads) {
        for (uint64_t r = 0; r < rows; r++)
            memcpy(dst + r * cols, src + conv_permuted_row(r, rows, it->permute_heads) * cols, cols * sizeof(float));
    } else {
        memcpy(dst, src, rows * cols * sizeof(float));
    }
    if (it->fold != 1.0)
        for (uint64_t i = 0; i < rows * cols; i++) dst[i] = (float)((double)dst[i] * it->fold);
    return 0;
}

static int write_item(gguf_writer *w, const nm_peft *p, const lora_item *it, void *buf, float *a, float *b,
                      nm_error *err) {
    if (item_values(p, it, a, b, err)) return nm_error_prefix(err, "%s", nm_peft_weights_path(p));
    const size_t n = (size_t)(it->ne[0] * it->ne[1]);
    const void *data = buf;
    switch (it->type) {
    case GGML_TYPE_F32: data = b; break;
    case GGML_TYPE_F16: nm_f32_to_f16_row(b, buf, n); break;
    case GGML_TYPE_BF16: nm_f32_to_bf16_row(b, buf, n); break;
    default:
        if (nm_quantize_rows(it->type, b, buf, it->ne[1], it->ne[0], NULL, err))
            return nm_error_prefix(err, "tensor %s", it->name);
    }
    return gguf_writer_write(w, data, it->size, err);
}

static void default_path(const char *dir, const conv_naming *nm, conv_outtype t, char *buf, size_t size) {
    char fname[600];
    static const char *upper[] = {"F32", "F16", "BF16", "Q8_0"};
    conv_default_filename(nm, upper[t], false, fname, sizeof fname);
    size_t len = strlen(fname);
    if (len > 5) fname[len - 5] = '\0'; /* ".gguf" */
    snprintf(buf, size, "%s/%s-LoRA.gguf", dir, fname);
}

int conv_lora_main(const conv_lora_options *o) {
    nm_error err = {{0}};
    conv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    nm_peft *p = NULL;
    lora_item *items = NULL;
    size_t n = 0;
    gguf_writer *w = NULL;
    void *buf = NULL;
    float *fa = NULL, *fb = NULL;
    int status = 1;
    double t0 = nm_now();
    char path[PATH_MAX + 700];

    if (!o->base) {
        nm_fail(&err, "%s is a LoRA adapter; name its base model with --base (the base's Hugging Face folder or GGUF)",
                o->dir);
        goto fail;
    }
    if (!nm_peft_is_adapter_dir(o->dir)) {
        nm_fail(&err, "--base is for adapters, but %s has no adapter_config.json", o->dir);
        goto fail;
    }
    if (!(p = nm_peft_open(o->dir, &err))) goto fail;
    if (load_base(o->base, &cfg, &err)) goto fail;
    const nm_peft_config *pc = nm_peft_get_config(p);
    conv_outtype outtype = o->outtype;
    if (outtype == CONV_OUT_AUTO) { /* llama.cpp's "auto": the first tensor's 16-bit type */
        const nm_peft_module *m0 = nm_peft_module_at(p, 0);
        outtype = m0->a.dtype == NM_DTYPE_BF16 ? CONV_OUT_BF16 : CONV_OUT_F16;
    }
    const float alpha = file_alpha(pc);
    int64_t params = 0;
    if (build_plan(p, &cfg, outtype, alpha, &items, &n, &params, &err)) goto fail;

    char absdir[PATH_MAX];
    const char *dir_name = o->dir;
    if (realpath(o->dir, absdir)) {
        dir_name = strrchr(absdir, '/');
        dir_name = dir_name && dir_name[1] ? dir_name + 1 : absdir;
    }
    conv_naming naming;
    conv_naming_build_adapter(&naming, dir_name, params);
    if (o->outfile) snprintf(path, sizeof path, "%s", o->outfile);
    else default_path(o->dir, &naming, outtype, path, sizeof path);

    size_t folded = 0;
    for (size_t i = 0; i < n; i++) folded += items[i].fold != 1.0;
    if (o->dry_run) {
        printf("adapter: %s (%s, %zu modules, r = %u, lora_alpha = %g%s)\n", o->dir, nm_peft_weights_kind(p),
               nm_peft_module_count(p), pc->r, pc->lora_alpha, pc->use_rslora ? ", rsLoRA" : "");
        printf("base: %s\noutput: %s (%s, adapter.lora.alpha = %.9g)\n", o->base, path, conv_outtype_name(outtype),
               (double)alpha);
        printf("%-34s %-13s %-14s %s\n", "tensor", "type", "shape", "source");
        for (size_t i = 0; i < n; i++)
            printf("%-34s %-13s {%lld, %lld}%*s %s%s%s\n", items[i].name, ggml_type_name(items[i].type),
                   (long long)items[i].ne[0], (long long)items[i].ne[1], 2, "", items[i].src->name,
                   items[i].permute_heads ? "  (rows permuted)" : items[i].transpose ? "  (transposed)" : "",
                   items[i].fold != 1.0 ? "  (scaling folded in)" : "");
        status = 0;
        goto done;
    }
    if (!o->quiet && pc->use_rslora)
        fprintf(stderr, TOOL ": rsLoRA: adapter.lora.alpha is written as lora_alpha * sqrt(r) = %.9g, so that "
                        "llama.cpp's alpha/r scaling equals PEFT's alpha/sqrt(r)\n",
                (double)alpha);
    if (!o->quiet && folded)
        fprintf(stderr, TOOL ": %zu module%s scaled differently (rank_pattern/alpha_pattern): the ratio to "
                        "alpha/r is folded into their lora_b\n",
                folded, folded == 1 ? "" : "s");

    gguf_writer_options wo = {.outfile_flags = (o->force ? NM_OUT_FORCE : 0u) | (o->no_fsync ? NM_OUT_NO_FSYNC : 0u)};
    if (!(w = gguf_writer_create(path, &wo, &err))) goto fail;
    gguf_writer_set_string(w, "general.architecture", "llama", 5);
    gguf_writer_set_string(w, "general.type", "adapter", 7);
    gguf_writer_set_string(w, "adapter.type", "lora", 4);
    gguf_writer_set_string(w, "general.name", naming.name, strlen(naming.name));
    if (naming.version[0]) gguf_writer_set_string(w, "general.version", naming.version, strlen(naming.version));
    if (naming.organization[0])
        gguf_writer_set_string(w, "general.organization", naming.organization, strlen(naming.organization));
    if (naming.finetune[0]) gguf_writer_set_string(w, "general.finetune", naming.finetune, strlen(naming.finetune));
    if (naming.basename[0]) gguf_writer_set_string(w, "general.basename", naming.basename, strlen(naming.basename));
    if (naming.size_label[0])
        gguf_writer_set_string(w, "general.size_label", naming.size_label, strlen(naming.size_label));
    gguf_writer_set_f32(w, "adapter.lora.alpha", alpha);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    size_t largest = 0, largest_src = 0;
    for (size_t i = 0; i < n; i++) {
        if (gguf_writer_add_tensor(w, items[i].name, items[i].type, items[i].n_dims, items[i].ne, &err)) goto fail;
        if (items[i].size > largest) largest = items[i].size;
        size_t s = (size_t)(items[i].src->rows * items[i].src->cols);
        if (s > largest_src) largest_src = s;
    }
    if (gguf_writer_begin_data(w, &err)) goto fail;
    buf = malloc(largest ? largest : 1);
    fa = malloc((largest_src ? largest_src : 1) * sizeof(float));
    fb = malloc((largest_src ? largest_src : 1) * sizeof(float));
    if (!buf || !fa || !fb) {
        nm_fail(&err, "out of memory");
        goto fail;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (write_item(w, p, &items[i], buf, fa, fb, &err)) goto fail;
        bytes += items[i].size;
    }
    gguf_writer *fw = w;
    w = NULL;
    if (gguf_writer_finish(fw, &err)) goto fail;
    double secs = nm_now() - t0;
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", path);
        cJSON_AddStringToObject(j, "outtype", conv_outtype_name(outtype));
        cJSON_AddNumberToObject(j, "tensors", (double)n);
        cJSON_AddNumberToObject(j, "modules", (double)nm_peft_module_count(p));
        cJSON_AddNumberToObject(j, "rank", pc->r);
        cJSON_AddNumberToObject(j, "lora_alpha", pc->lora_alpha);
        cJSON_AddNumberToObject(j, "adapter_lora_alpha", alpha);
        cJSON_AddBoolToObject(j, "rslora", pc->use_rslora);
        cJSON_AddNumberToObject(j, "folded_modules", (double)folded);
        cJSON_AddNumberToObject(j, "bytes", (double)bytes);
        cJSON_AddNumberToObject(j, "seconds", secs);
        char *text = cJSON_PrintUnformatted(j);
        if (text) puts(text);
        free(text);
        cJSON_Delete(j);
    } else if (!o->quiet) {
        char sz[32];
        printf("%s: wrote %s (LoRA adapter, %zu modules, rank %u, %s, %s) in %.2f s\n", TOOL, path,
               nm_peft_module_count(p), pc->r, conv_outtype_name(outtype), nm_format_bytes(bytes, sz, sizeof sz), secs);
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, TOOL ": %s\n", err.msg);
    status = 1;
done:
    gguf_writer_abort(w);
    free(buf);
    free(fa);
    free(fb);
    free(items);
    nm_peft_close(p);
    conv_config_free(&cfg);
    fflush(stdout);
    return status;
}
