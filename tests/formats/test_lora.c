/* LoRA adapters (formats/lora.h): adapter_config.json rules (what is refused and why, PEFT's
 * defaults and pattern matching, Python's duplicate-key rule), PEFT weights paired and checked
 * from in-memory safetensors, GGUF adapters validated (every rule refused with one line naming
 * the tensor), llama.cpp's scale, FILE[:SCALE] arguments. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "formats/gguf.h"
#include "formats/lora.h"
#include "tests/testlib.h"

/* ---------------- adapter_config.json ---------------- */

static int parse(const char *json, nm_peft_config *c, nm_error *err) {
    return nm_peft_config_parse(c, json, strlen(json), "adapter_config.json", err);
}

static void expect_config_refused(const char *json, const char *needle) {
    nm_peft_config c;
    nm_error err = {{0}};
    if (parse(json, &c, &err) == 0) fail_msg("accepted: %s", json);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_null(strchr(err.msg, '\n'));
}

static void test_config_accepts(void **state) {
    (void)state;
    nm_peft_config c;
    nm_error err = {{0}};
    assert_int_equal(parse("{\"peft_type\": \"LORA\", \"r\": 16, \"lora_alpha\": 32, \"use_rslora\": true,"
                           " \"target_modules\": [\"q_proj\", \"v_proj\"], \"bias\": \"none\", \"use_dora\": false,"
                           " \"modules_to_save\": null, \"base_model_name_or_path\": \"x/y\"}",
                           &c, &err),
                     0);
    assert_int_equal(c.r, 16);
    assert_true(c.lora_alpha == 32);
    assert_true(c.use_rslora);
    assert_string_equal(c.target_modules, "q_proj,v_proj");
    assert_string_equal(c.base_model, "x/y");
    nm_peft_config_free(&c);
    /* PEFT's default rank; a repeated key keeps its last value, as Python's json does */
    assert_int_equal(parse("{\"lora_alpha\": 8, \"lora_alpha\": 4, \"target_modules\": \"q_proj\"}", &c, &err), 0);
    assert_int_equal(c.r, 8);
    assert_true(c.lora_alpha == 4);
    assert_string_equal(c.target_modules, "q_proj");
    nm_peft_config_free(&c);
}

static void test_config_patterns(void **state) {
    (void)state;
    nm_peft_config c;
    nm_error err = {{0}};
    assert_int_equal(parse("{\"r\": 8, \"lora_alpha\": 16, \"rank_pattern\": {\"lm_head\": 4, \"layers.1.mlp.up_proj\": 2,"
                           " \"q_proj\": 32}, \"alpha_pattern\": {\"down_proj\": 64, \"down_proj\": 8}}",
                           &c, &err),
                     0);
    bool pat;
    assert_int_equal(nm_peft_config_rank(&c, "lm_head", &pat), 4);
    assert_true(pat);
    assert_int_equal(nm_peft_config_rank(&c, "model.layers.1.mlp.up_proj", &pat), 2);
    assert_int_equal(nm_peft_config_rank(&c, "model.layers.11.mlp.up_proj", &pat), 8); /* "layers.1." only */
    assert_false(pat);
    assert_int_equal(nm_peft_config_rank(&c, "model.layers.0.self_attn.q_proj", &pat), 32);
    assert_int_equal(nm_peft_config_rank(&c, "model.layers.0.self_attn.xq_proj", &pat), 8); /* after a '.' */
    assert_true(nm_peft_config_alpha(&c, "model.layers.3.mlp.down_proj", &pat) == 8); /* last value kept */
    assert_true(pat);
    assert_true(nm_peft_config_alpha(&c, "model.layers.3.mlp.up_proj", &pat) == 16);
    nm_peft_config_free(&c);
}

static void test_config_refusals(void **state) {
    (void)state;
    expect_config_refused("[1]", "JSON object");
    expect_config_refused("{\"r\": 8", "invalid JSON");
    expect_config_refused("{\"r\": 8}", "lora_alpha\" is missing");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 0}", "does nothing");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": \"16\"}", "finite number");
    expect_config_refused("{\"r\": 0, \"lora_alpha\": 8}", "rank-0");
    expect_config_refused("{\"r\": 2.5, \"lora_alpha\": 8}", "whole number");
    expect_config_refused("{\"r\": 100000, \"lora_alpha\": 8}", "whole number");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"peft_type\": \"LOHA\"}", "peft_type is 'LOHA'");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"use_dora\": true}", "DoRA");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"fan_in_fan_out\": true}", "Conv1D");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"bias\": \"lora_only\"}", "bias is 'lora_only'");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"lora_bias\": true}", "lora_bias");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"modules_to_save\": [\"score\"]}", "modules_to_save");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"alora_invocation_tokens\": [1, 2]}", "activated LoRA");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"use_rslora\": 1}", "true or false");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"rank_pattern\": {\"q_proj\": 0}}", "rank from 1");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"rank_pattern\": {\".*q_proj\": 4}}", "regular expression");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"alpha_pattern\": {\"q_proj\": 0}}", "non-zero");
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"alpha_pattern\": [1]}", "must be an object");
    /* control bytes in what the message quotes stay out of the one line */
    expect_config_refused("{\"r\": 8, \"lora_alpha\": 8, \"peft_type\": \"A\\nB\"}", "peft_type is 'A?B'");
}

/* ---------------- PEFT weights from memory ---------------- */

#define VEC UINT64_MAX
typedef struct st_entry {
    const char *name, *dtype;
    uint64_t d0, d1; /* d1 = VEC: a vector of d0 */
    float fill;      /* every value (F32 only) */
} st_entry;

/* A safetensors image of the entries (F32 filled with `fill`, others zero); *size set. */
static unsigned char *build_st(const st_entry *e, int n, size_t *size) {
    char header[8192];
    size_t h = 0, off = 0;
    h += (size_t)snprintf(header + h, sizeof header - h, "{");
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)(e[i].d0 * (e[i].d1 != VEC ? e[i].d1 : 1)), bytes = count * (strcmp(e[i].dtype, "F32") ? 2 : 4);
        if (e[i].d1 != VEC)
            h += (size_t)snprintf(header + h, sizeof header - h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu,%llu],\"data_offsets\":[%zu,%zu]}",
                                  i ? "," : "", e[i].name, e[i].dtype, (unsigned long long)e[i].d0,
                                  (unsigned long long)e[i].d1, off, off + bytes);
        else
            h += (size_t)snprintf(header + h, sizeof header - h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu],\"data_offsets\":[%zu,%zu]}",
                                  i ? "," : "", e[i].name, e[i].dtype, (unsigned long long)e[i].d0, off, off + bytes);
        off += bytes;
    }
    h += (size_t)snprintf(header + h, sizeof header - h, "}");
    while (h % 8) header[h++] = ' ';
    unsigned char *buf = calloc(1, 8 + h + off + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    size_t at = 8 + h;
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)(e[i].d0 * (e[i].d1 != VEC ? e[i].d1 : 1));
        if (!strcmp(e[i].dtype, "F32")) {
            for (size_t k = 0; k < count; k++) memcpy(buf + at + 4 * k, &e[i].fill, 4);
            at += 4 * count;
        } else {
            at += 2 * count;
        }
    }
    *size = at;
    return buf;
}

#define CFG "{\"r\": 4, \"lora_alpha\": 8}"
#define Q "base_model.model.model.layers.0.self_attn.q_proj"

static nm_peft *open_peft(const char *cfg, const st_entry *e, int n, unsigned char **buf, nm_error *err) {
    size_t size;
    *buf = build_st(e, n, &size);
    return nm_peft_open_memory(cfg, strlen(cfg), *buf, size, err);
}

static void expect_peft_refused(const char *cfg, const st_entry *e, int n, const char *needle) {
    unsigned char *buf;
    nm_error err = {{0}};
    nm_peft *p = open_peft(cfg, e, n, &buf, &err);
    if (p) fail_msg("accepted (needle '%s')", needle);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    free(buf);
}

static void test_peft_pairs(void **state) {
    (void)state;
    const st_entry e[] = {
        {Q ".lora_B.weight", "F32", 256, 4, 0.5f},
        {Q ".lora_A.weight", "F32", 4, 256, 0.25f},
        {"base_model.model.model.embed_tokens.lora_embedding_A", "BF16", 4, 4096, 0},
        {"base_model.model.model.embed_tokens.lora_embedding_B", "F16", 256, 4, 0},
        {"base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight", "F32", 2, 2, 0},
        {"base_model.model.model.layers.0.input_layernorm.weight", "F32", 256, VEC, 1},
    };
    unsigned char *buf;
    nm_error err = {{0}};
    nm_peft *p = open_peft("{\"r\": 4, \"lora_alpha\": 8, \"use_rslora\": true}", e, 6, &buf, &err);
    if (!p) fail_msg("%s", err.msg);
    assert_int_equal(nm_peft_module_count(p), 2);
    /* keys sorted, as Python's safetensors gives them: the embedding first */
    const nm_peft_module *m = nm_peft_module_at(p, 0);
    assert_string_equal(m->module, "model.embed_tokens");
    assert_true(m->embedding);
    m = nm_peft_module_at(p, 1);
    assert_string_equal(m->module, "model.layers.0.self_attn.q_proj");
    assert_false(m->embedding);
    assert_int_equal(m->rank, 4);
    assert_true(m->scaling == 8.0 / 2.0); /* rsLoRA: alpha / sqrt(r) */
    assert_int_equal(nm_peft_extra_count(p), 1);
    assert_string_equal(nm_peft_extra_at(p, 0)->name, "base_model.model.model.layers.0.input_layernorm.weight");
    float a[1024];
    assert_int_equal(nm_peft_read_f32(p, &m->a, a, &err), 0);
    assert_true(a[0] == 0.25f && a[1023] == 0.25f);
    nm_peft_close(p);
    free(buf);
}

static void test_peft_refusals(void **state) {
    (void)state;
    const float nan = NAN, inf = INFINITY;
    st_entry e[2] = {{Q ".lora_A.weight", "F32", 4, 256, 0}, {Q ".lora_B.weight", "F32", 256, 4, 0}};
    expect_peft_refused(CFG, e, 1, "no lora_B");
    expect_peft_refused(CFG, e + 1, 1, "no lora_A");
    e[1].d1 = 3;
    expect_peft_refused("{\"r\": 3, \"lora_alpha\": 8}", e, 2, "ranks differ");
    e[1].d1 = 4;
    expect_peft_refused("{\"r\": 8, \"lora_alpha\": 8}", e, 2, "has rank 4 but adapter_config.json says r = 8");
    expect_peft_refused("{\"r\": 8, \"lora_alpha\": 8, \"rank_pattern\": {\"q_proj\": 2}}", e, 2, "(from rank_pattern)");
    st_entry z[2] = {{Q ".lora_A.weight", "F32", 0, 256, 0}, {Q ".lora_B.weight", "F32", 256, 0, 0}};
    expect_peft_refused(CFG, z, 2, "rank 0");
    st_entry d[3] = {e[0], e[1], {Q ".lora_magnitude_vector", "F32", 256, VEC, 1}};
    expect_peft_refused(CFG, d, 3, "DoRA");
    st_entry b[3] = {e[0], e[1], {Q ".lora_B.bias", "F32", 256, VEC, 0}};
    expect_peft_refused(CFG, b, 3, "unexpected suffix");
    st_entry nm[3] = {e[0], e[1], {Q ".lora_A.default.weight", "F32", 4, 256, 0}};
    expect_peft_refused(CFG, nm, 3, "unexpected suffix");
    st_entry full[3] = {e[0], e[1], {"base_model.model.lm_head.weight", "F32", 16, 256, 0}};
    expect_peft_refused(CFG, full, 3, "full embedding or LM-head");
    st_entry odd[3] = {e[0], e[1], {"base_model.model.model.layers.0.mlp.experts", "F32", 2, 2, 0}};
    expect_peft_refused(CFG, odd, 3, "not a lora_A or lora_B");
    st_entry vec[2] = {{Q ".lora_A.weight", "F32", 4, VEC, 0}, e[1]};
    expect_peft_refused(CFG, vec, 2, "dimensions");
    st_entry i8[2] = {{Q ".lora_A.weight", "I16", 4, 256, 0}, e[1]};
    expect_peft_refused(CFG, i8, 2, "dtype I16");
    st_entry mixed[2] = {{Q ".lora_A.weight", "F32", 4, 256, 0}, {Q ".lora_embedding_B", "F32", 256, 4, 0}};
    expect_peft_refused(CFG, mixed, 2, "both linear and embedding");
    st_entry norm2d[3] = {e[0], e[1], {"base_model.model.model.norm.weight", "F32", 2, 2, 0}};
    expect_peft_refused(CFG, norm2d, 3, "must be a vector");
    expect_peft_refused(CFG, e, 0, "no lora_A/lora_B weights");
    /* values: NaN and infinities are named with their place */
    for (int k = 0; k < 2; k++) {
        st_entry v[2] = {e[0], e[1]};
        v[1].fill = k ? inf : nan;
        unsigned char *buf;
        nm_error err = {{0}};
        nm_peft *p = open_peft(CFG, v, 2, &buf, &err);
        assert_non_null(p);
        float out[1024];
        const nm_peft_module *m = nm_peft_module_at(p, 0);
        assert_int_equal(nm_peft_read_f32(p, &m->b, out, &err), -1);
        assert_non_null(strstr(err.msg, k ? "infinite value at row 0, column 0" : "NaN at row 0, column 0"));
        nm_peft_close(p);
        free(buf);
    }
}

/* ---------------- GGUF adapters ---------------- */

typedef struct gt {
    const char *name;
    uint32_t type;
    int64_t ne0, ne1;
    float fill;
} gt;

/* Writes a GGUF with the given metadata and tensors to a temporary file and opens it. */
static gguf_reader *build_gguf(const char *general_type, const char *adapter_type, int alpha_kind, const gt *t, int n,
                               bool alora, char *path) {
    strcpy(path, "/tmp/nomoat-test-lora-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    nm_error err = {{0}};
    gguf_writer_options o = {.outfile_flags = 1 | 2};
    gguf_writer *w = gguf_writer_create(path, &o, &err);
    assert_non_null(w);
    gguf_writer_set_string(w, "general.architecture", "llama", 5);
    if (general_type) gguf_writer_set_string(w, "general.type", general_type, strlen(general_type));
    if (adapter_type) gguf_writer_set_string(w, "adapter.type", adapter_type, strlen(adapter_type));
    if (alpha_kind == 1) gguf_writer_set_f32(w, "adapter.lora.alpha", 16.0f);
    if (alpha_kind == 2) gguf_writer_set_u32(w, "adapter.lora.alpha", 16);
    if (alora) {
        uint32_t toks[2] = {1, 2};
        gguf_writer_set_array(w, "adapter.alora.invocation_tokens", GGUF_TYPE_UINT32, toks, 2);
    }
    for (int i = 0; i < n; i++) {
        const int64_t ne[4] = {t[i].ne0, t[i].ne1, 1, 1};
        assert_int_equal(gguf_writer_add_tensor(w, t[i].name, t[i].type, 2, ne, &err), 0);
    }
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)(t[i].ne0 * t[i].ne1);
        void *buf = calloc(count, 4);
        if (t[i].type == GGML_TYPE_F32)
            for (size_t k = 0; k < count; k++) ((float *)buf)[k] = t[i].fill;
        assert_int_equal(gguf_writer_write(w, buf, count * (t[i].type == GGML_TYPE_F32 ? 4 : 2), &err), 0);
        free(buf);
    }
    if (gguf_writer_finish(w, &err)) fail_msg("%s", err.msg);
    gguf_reader *g = gguf_open(path, &err);
    assert_non_null(g);
    return g;
}

static void expect_gguf(const char *gtype, const char *atype, int alpha_kind, const gt *t, int n, bool alora,
                        const char *needle) {
    char path[64];
    gguf_reader *g = build_gguf(gtype, atype, alpha_kind, t, n, alora, path);
    nm_lora l;
    nm_error err = {{0}};
    int rc = nm_lora_open(&l, g, &err);
    if (!needle) {
        if (rc) fail_msg("refused: %s", err.msg);
        nm_lora_free(&l);
    } else {
        if (rc == 0) fail_msg("accepted (needle '%s')", needle);
        if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    }
    gguf_close(g);
    unlink(path);
}

static void test_gguf_adapter(void **state) {
    (void)state;
    const gt ok[] = {
        {"blk.0.attn_q.weight.lora_a", GGML_TYPE_F32, 256, 8, 1}, {"blk.0.attn_q.weight.lora_b", GGML_TYPE_F16, 8, 256, 0},
        {"token_embd.weight.lora_a", GGML_TYPE_F32, 4, 4096, 0}, {"token_embd.weight.lora_b", GGML_TYPE_F32, 4, 256, 0},
        {"blk.0.attn_norm.weight", GGML_TYPE_F32, 256, 1, 1},
    };
    char path[64];
    gguf_reader *g = build_gguf("adapter", "lora", 1, ok, 5, false, path);
    nm_lora l;
    nm_error err = {{0}};
    if (nm_lora_open(&l, g, &err)) fail_msg("%s", err.msg);
    assert_int_equal(l.n_pairs, 2);
    assert_int_equal(l.n_ignored, 1);
    assert_string_equal(l.arch, "llama");
    const nm_lora_pair *q = nm_lora_find(&l, "blk.0.attn_q.weight"), *e = nm_lora_find(&l, "token_embd.weight");
    assert_non_null(q);
    assert_non_null(e);
    assert_int_equal(q->rank, 8);
    assert_false(q->embedding);
    assert_true(e->embedding);
    assert_int_equal(e->rank, 4);
    assert_true(nm_lora_pair_scale(&l, q, 0.5f) == 1.0f); /* 0.5 · 16 / 8 */
    const int64_t good[4] = {256, 256, 1, 1}, bad[4] = {256, 512, 1, 1}, emb[4] = {256, 4096, 1, 1};
    assert_int_equal(nm_lora_check_base(q, good, &err), 0);
    assert_int_equal(nm_lora_check_base(q, bad, &err), -1);
    assert_non_null(strstr(err.msg, "another model"));
    assert_int_equal(nm_lora_check_base(e, emb, &err), 0);
    assert_int_equal(nm_lora_check_base(e, good, &err), -1);
    nm_lora_free(&l);
    gguf_close(g);
    unlink(path);

    expect_gguf("adapter", "lora", 0, ok, 2, false, NULL); /* no alpha: 0, llama.cpp's "scale only" */
    expect_gguf("model", "lora", 1, ok, 2, false, "general.type is 'model'");
    expect_gguf(NULL, "lora", 1, ok, 2, false, "general.type is absent");
    expect_gguf("adapter", "control_vector", 1, ok, 2, false, "adapter.type is 'control_vector'");
    expect_gguf("adapter", "lora", 2, ok, 2, false, "adapter.lora.alpha has type UINT32");
    expect_gguf("adapter", "lora", 1, ok, 2, true, "activated LoRA");
    expect_gguf("adapter", "lora", 1, ok, 1, false, "blk.0.attn_q.weight.lora_b is missing");
    expect_gguf("adapter", "lora", 1, ok + 1, 1, false, "blk.0.attn_q.weight.lora_a is missing");
    expect_gguf("adapter", "lora", 1, ok, 0, false, "no lora_a/lora_b pairs");
    const gt rank[] = {{"x.lora_a", GGML_TYPE_F32, 16, 8, 0}, {"x.lora_b", GGML_TYPE_F32, 4, 16, 0}};
    expect_gguf("adapter", "lora", 1, rank, 2, false, "lora_a has rank 8 but lora_b has rank 4");
    const gt odd[] = {ok[0], ok[1], {"blk.0.attn_q.weight", GGML_TYPE_F32, 4, 4, 0}};
    expect_gguf("adapter", "lora", 1, odd, 3, false, "neither a .lora_a nor a .lora_b");
    const gt nan[] = {{"x.lora_a", GGML_TYPE_F32, 16, 8, NAN}, {"x.lora_b", GGML_TYPE_F32, 8, 16, 0}};
    expect_gguf("adapter", "lora", 1, nan, 2, false, "x.lora_a: NaN at row 0, column 0");
    const gt inf[] = {{"x.lora_a", GGML_TYPE_F32, 16, 8, 0}, {"x.lora_b", GGML_TYPE_F32, 8, 16, -INFINITY}};
    expect_gguf("adapter", "lora", 1, inf, 2, false, "x.lora_b: infinite value");
}

static void test_parse_arg(void **state) {
    (void)state;
    char p[64];
    float s;
    nm_error err = {{0}};
    assert_int_equal(nm_lora_parse_arg("a.gguf", p, sizeof p, &s, &err), 0);
    assert_string_equal(p, "a.gguf");
    assert_true(s == 1.0f);
    assert_int_equal(nm_lora_parse_arg("dir:x/a.gguf:0.5", p, sizeof p, &s, &err), 0);
    assert_string_equal(p, "dir:x/a.gguf");
    assert_true(s == 0.5f);
    assert_int_equal(nm_lora_parse_arg("a.gguf:-2e0", p, sizeof p, &s, &err), 0);
    assert_true(s == -2.0f);
    assert_int_equal(nm_lora_parse_arg("a.gguf:half", p, sizeof p, &s, &err), 0); /* not a number: a name */
    assert_string_equal(p, "a.gguf:half");
    assert_int_equal(nm_lora_parse_arg("a.gguf:nan", p, sizeof p, &s, &err), 0);
    assert_string_equal(p, "a.gguf:nan");
    assert_int_equal(nm_lora_parse_arg(":0.5", p, sizeof p, &s, &err), -1);
    assert_int_equal(nm_lora_parse_arg("a-very-long-name-that-does-not-fit-in-the-buffer-given.gguf:1", p, 16, &s, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_accepts),  cmocka_unit_test(test_config_patterns),
        cmocka_unit_test(test_config_refusals), cmocka_unit_test(test_peft_pairs),
        cmocka_unit_test(test_peft_refusals),   cmocka_unit_test(test_gguf_adapter),
        cmocka_unit_test(test_parse_arg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
