/* nomoat-convert end to end. Always (bundled tests/data/wikillama-bf16): metadata values, every
 * tensor checked against the safetensors source independently of the converter's code (names,
 * shapes, Q/K rows per FORMATS.md §6.3, exact BF16->F32 widening), dry-run size = real size,
 * --vocab-only, --split-max-size, default output name. With ../shared/fixtures: byte-identical
 * files to llama.cpp's convert_hf_to_gguf.py for f32/f16/bf16/q8_0, the layout pairs of the
 * fixture README converting to identical tensors, and Meta hyper-parameters (§6.1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/tensor.h"

static char scratch[256];
static char root[1024], bin[1200], fixtures[1200], bundled[1200];

static int setup(void **state) {
    (void)state;
    const char *r = getenv("NOMOAT_ROOT");
    snprintf(root, sizeof root, "%s", r ? r : ".");
    const char *b = getenv("NOMOAT_BIN");
    if (b)
        snprintf(bin, sizeof bin, "%s/nomoat-convert", b);
    else
        snprintf(bin, sizeof bin, "%s/build/nomoat-convert", root);
    const char *f = getenv("NOMOAT_FIXTURES");
    if (f)
        snprintf(fixtures, sizeof fixtures, "%s", f);
    else
        snprintf(fixtures, sizeof fixtures, "%s/../shared/fixtures", root);
    snprintf(bundled, sizeof bundled, "%s/tests/data/wikillama-bf16", root);
    snprintf(scratch, sizeof scratch, "%s/nomoat-convert-e2e-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(scratch) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static bool have_fixtures(void) {
    char p[1400];
    struct stat st;
    snprintf(p, sizeof p, "%s/reference/wikillama-f16.gguf", fixtures);
    return stat(p, &st) == 0;
}

/* Runs the converter with a shell-quoted argument string; returns its exit status. */
static int convert(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' -q %s >'%s/.out' 2>&1", bin, args, scratch);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    if (WEXITSTATUS(st) != 0) {
        char cat[600];
        snprintf(cat, sizeof cat, "cat '%s/.out'", scratch);
        if (system(cat) != 0)
            return -1;
    }
    return WEXITSTATUS(st);
}

static const char *out(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", scratch, name);
    return p[k];
}

static gguf_reader *open_gguf(const char *path) {
    nm_error err = {{0}};
    gguf_reader *g = gguf_open(path, &err);
    if (!g)
        fail_msg("%s: %s", path, err.msg);
    return g;
}

static uint32_t get_u32(const gguf_reader *g, const char *key) {
    uint32_t v = 0;
    nm_error err = {{0}};
    if (gguf_get_u32(g, key, &v, &err) != 0)
        fail_msg("%s", err.msg);
    return v;
}

static bool files_equal(const char *a, const char *b) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

/* Same tensor names (in the same order if asked), types, shapes and bytes. With f16_source,
 * F32 tensors (norms, always F32 in GGUF) need only agree once rounded to f16: one side was
 * stored in F16. */
static void assert_same_tensors_ex(const char *a, const char *b, bool same_order, bool f16_source) {
    gguf_reader *ga = open_gguf(a), *gb = open_gguf(b);
    assert_int_equal(gguf_tensor_count(ga), gguf_tensor_count(gb));
    for (size_t i = 0; i < gguf_tensor_count(ga); i++) {
        const gguf_tensor_info *x = gguf_tensor(ga, i);
        const gguf_tensor_info *y = same_order ? gguf_tensor(gb, i) : gguf_find_tensor(gb, x->name);
        if (!y)
            fail_msg("%s: tensor %s missing in %s", a, x->name, b);
        assert_string_equal(x->name, y->name);
        if (x->type != y->type || x->n_dims != y->n_dims || memcmp(x->ne, y->ne, sizeof x->ne) != 0)
            fail_msg("tensor %s: type/shape differ between %s and %s", x->name, a, b);
        if (f16_source && x->type == GGML_TYPE_F32) {
            const float *fx = x->data, *fy = y->data;
            for (size_t k = 0; k < x->size / 4; k++)
                if (nm_f32_to_f16(fx[k]) != nm_f32_to_f16(fy[k]))
                    fail_msg("tensor %s[%zu]: %g vs %g differ even at f16 precision", x->name, k, fx[k], fy[k]);
            continue;
        }
        if (x->size != y->size || memcmp(x->data, y->data, x->size) != 0)
            fail_msg("tensor %s: data differs between %s and %s", x->name, a, b);
    }
    gguf_close(ga);
    gguf_close(gb);
}

static void assert_same_tensors(const char *a, const char *b, bool same_order) {
    assert_same_tensors_ex(a, b, same_order, false);
}

/* ---------------- bundled model (always) ---------------- */

static const char *hf_name_of(const char *gguf_name, char *buf, size_t size) {
    static const struct { const char *g, *h; } top[] = {
        {"token_embd.weight", "model.embed_tokens.weight"}, {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"}};
    static const struct { const char *g, *h; } layer[] = {
        {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"}, {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},   {"attn_v", "self_attn.v_proj"},          {"attn_output", "self_attn.o_proj"},
        {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},               {"ffn_down", "mlp.down_proj"}};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(gguf_name, top[i].g) == 0)
            return top[i].h;
    int l, n = 0;
    char part[64];
    if (sscanf(gguf_name, "blk.%d.%63[a-z_].weight%n", &l, part, &n) == 2 && gguf_name[n] == '\0')
        for (size_t i = 0; i < 9; i++)
            if (strcmp(part, layer[i].g) == 0) {
                snprintf(buf, size, "model.layers.%d.%s.weight", l, layer[i].h);
                return buf;
            }
    fail_msg("unexpected tensor %s", gguf_name);
    return NULL;
}

static void test_bundled_f32_against_source(void **state) {
    (void)state;
    char args[2048];
    snprintf(args, sizeof args, "'%s' --outtype f32 -o '%s'", bundled, out("b32.gguf"));
    assert_int_equal(convert(args), 0);
    gguf_reader *g = open_gguf(out("b32.gguf"));
    nm_error err = {{0}};
    st_model *m = st_open(bundled, &err);
    if (!m)
        fail_msg("%s", err.msg);
    /* metadata from config.json (dim 256, 4 layers, 8 heads, 4 KV heads, FFN 768, vocab 4096, ctx 256) */
    assert_int_equal(gguf_version(g), 3);
    char *arch = NULL;
    assert_int_equal(gguf_get_string(g, "general.architecture", &arch, &err), 0);
    assert_string_equal(arch, "llama");
    free(arch);
    assert_int_equal(get_u32(g, "general.file_type"), 0);
    assert_int_equal(get_u32(g, "general.quantization_version"), 2);
    assert_int_equal(get_u32(g, "llama.block_count"), 4);
    assert_int_equal(get_u32(g, "llama.context_length"), 256);
    assert_int_equal(get_u32(g, "llama.embedding_length"), 256);
    assert_int_equal(get_u32(g, "llama.feed_forward_length"), 768);
    assert_int_equal(get_u32(g, "llama.attention.head_count"), 8);
    assert_int_equal(get_u32(g, "llama.attention.head_count_kv"), 4);
    assert_int_equal(get_u32(g, "llama.rope.dimension_count"), 32);
    assert_int_equal(get_u32(g, "llama.vocab_size"), 4096);
    assert_int_equal(get_u32(g, "tokenizer.ggml.bos_token_id"), 1);
    assert_int_equal(get_u32(g, "tokenizer.ggml.eos_token_id"), 2);
    float eps = 0, theta = 0;
    assert_int_equal(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err), 0);
    assert_true(eps == 1e-5f);
    assert_int_equal(gguf_get_f32(g, "llama.rope.freq_base", &theta, &err), 0);
    assert_true(theta == 10000.0f);
    bool add_bos = false, add_eos = true;
    assert_int_equal(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &err), 0);
    assert_int_equal(gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, &err), 0);
    assert_true(add_bos && !add_eos);
    const gguf_value *tok = gguf_get(g, "tokenizer.ggml.tokens");
    assert_non_null(tok);
    assert_int_equal(tok->arr.count, 4096);
    assert_true(tok->arr.strings[1].len == 3 && memcmp(tok->arr.strings[1].ptr, "<s>", 3) == 0);
    const gguf_value *types = gguf_get(g, "tokenizer.ggml.token_type");
    assert_int_equal(types->arr.type, GGUF_TYPE_INT32);
    assert_int_equal(gguf_array_i64(types, 0), 2); /* <unk> */
    assert_int_equal(gguf_array_i64(types, 1), 3); /* <s> control */
    assert_int_equal(gguf_array_i64(types, 3), 6); /* <0x00> byte */
    assert_int_equal(gguf_get(g, "tokenizer.ggml.scores")->arr.type, GGUF_TYPE_FLOAT32);

    assert_int_equal(gguf_tensor_count(g), 39);
    assert_int_equal(st_tensor_count(m), 39);
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        char buf[128];
        const st_tensor *s = st_find(m, hf_name_of(t->name, buf, sizeof buf));
        assert_non_null(s);
        assert_int_equal(t->type, GGML_TYPE_F32);
        assert_int_equal(s->dtype, NM_DTYPE_BF16);
        /* shape reversed */
        assert_int_equal(t->n_dims, s->n_dims);
        assert_int_equal(t->ne[0], (int64_t)s->shape[s->n_dims - 1]);
        if (s->n_dims == 2)
            assert_int_equal(t->ne[1], (int64_t)s->shape[0]);
        uint64_t rows = s->n_dims == 2 ? s->shape[0] : 1, cols = s->shape[s->n_dims - 1];
        bool is_q = strstr(t->name, "attn_q") != NULL, is_k = strstr(t->name, "attn_k") != NULL;
        uint64_t heads = is_q ? 8 : 4, hd = rows / heads;
        const uint16_t *src = s->data;
        const float *dst = t->data;
        for (uint64_t r = 0; r < rows; r++) {
            /* HF rotate-half layout: head h, output pair (2i, 2i+1) come from rows i and i + hd/2 */
            uint64_t sr = r;
            if (is_q || is_k) {
                uint64_t h = r / hd, k = r % hd;
                sr = h * hd + (k % 2 == 0 ? k / 2 : hd / 2 + k / 2);
            }
            for (uint64_t c = 0; c < cols; c++) {
                uint32_t bits = (uint32_t)src[sr * cols + c] << 16;
                float want;
                memcpy(&want, &bits, 4);
                if (dst[r * cols + c] != want)
                    fail_msg("%s[%llu][%llu]: %g != %g", t->name, (unsigned long long)r, (unsigned long long)c,
                             dst[r * cols + c], want);
            }
        }
    }
    st_close(m);
    gguf_close(g);
}

static uint64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void test_bundled_auto_dry_run_split_vocab(void **state) {
    (void)state;
    char args[2048], cmd[4096];
    /* auto keeps BF16; the dry-run's size is the real size */
    snprintf(args, sizeof args, "'%s' -o '%s'", bundled, out("auto.gguf"));
    assert_int_equal(convert(args), 0);
    gguf_reader *g = open_gguf(out("auto.gguf"));
    assert_int_equal(get_u32(g, "general.file_type"), 32);
    assert_int_equal(gguf_find_tensor(g, "blk.0.attn_q.weight")->type, GGML_TYPE_BF16);
    assert_int_equal(gguf_find_tensor(g, "blk.0.attn_norm.weight")->type, GGML_TYPE_F32);
    gguf_close(g);
    snprintf(cmd, sizeof cmd, "'%s' --dry-run --json '%s' -o '%s' > '%s'", bin, bundled, out("never.gguf"),
             out("dry.json"));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(file_size(out("never.gguf")), 0); /* nothing written */
    FILE *f = fopen(out("dry.json"), "r");
    char line[1024] = {0};
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    const char *b = strstr(line, "\"bytes\": ");
    assert_non_null(b);
    assert_int_equal(strtoull(b + 9, NULL, 10), file_size(out("auto.gguf")));

    /* split into shards of at most 3 MB: same tensors, first shard holds the metadata */
    snprintf(args, sizeof args, "'%s' --split-max-size 3M -o '%s'", bundled, out("split.gguf"));
    assert_int_equal(convert(args), 0);
    assert_true(file_size(out("split-00001-of-00004.gguf")) > 0);
    assert_true(file_size(out("split-00004-of-00004.gguf")) > 0);
    assert_same_tensors(out("auto.gguf"), out("split-00001-of-00004.gguf"), true);

    /* --vocab-only: tokenizer and hyper-parameters, no tensors */
    snprintf(args, sizeof args, "'%s' --vocab-only -o '%s'", bundled, out("vocab.gguf"));
    assert_int_equal(convert(args), 0);
    g = open_gguf(out("vocab.gguf"));
    assert_int_equal(gguf_tensor_count(g), 0);
    assert_int_equal(get_u32(g, "llama.block_count"), 4);
    assert_int_equal(gguf_get(g, "tokenizer.ggml.tokens")->arr.count, 4096);
    gguf_close(g);

    /* default name inside the model folder, as llama.cpp names it: <Name>-<size>-<TYPE>.gguf */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/mymodel' && cp '%s'/* '%s/mymodel/'", scratch, bundled, scratch);
    assert_int_equal(system(cmd), 0);
    snprintf(args, sizeof args, "'%s/mymodel' --outtype q8_0", scratch);
    assert_int_equal(convert(args), 0);
    assert_true(file_size(out("mymodel/Mymodel-5.2M-Q8_0.gguf")) > 0);
    /* never overwrites without --force */
    assert_int_equal(convert(args), 1);
    snprintf(args, sizeof args, "'%s/mymodel' --outtype q8_0 --force", scratch);
    assert_int_equal(convert(args), 0);
}

/* ---------------- against llama.cpp's converter (fixtures) ---------------- */

static void test_reference_byte_identical(void **state) {
    (void)state;
    if (!have_fixtures()) {
        printf("SKIPPED: reference GGUFs (no ../shared/fixtures on this machine)\n");
        skip();
    }
    const char *types[] = {"f32", "f16", "bf16", "q8_0"};
    for (int i = 0; i < 4; i++) {
        char args[2048], ref[1400], name[64];
        snprintf(name, sizeof name, "ref-%s.gguf", types[i]);
        snprintf(args, sizeof args, "'%s/wikillama/hf' --outtype %s -o '%s'", fixtures, types[i], out(name));
        assert_int_equal(convert(args), 0);
        snprintf(ref, sizeof ref, "%s/reference/wikillama-%s%s.gguf", fixtures, i == 3 ? "convert-" : "", types[i]);
        /* tensors first (clear message), then the whole file: metadata and general.* included */
        assert_same_tensors(out(name), ref, true);
        if (!files_equal(out(name), ref))
            fail_msg("%s: tensors match but the file differs from %s (metadata)", types[i], ref);
    }
}

static void test_layout_pairs(void **state) {
    (void)state;
    if (!have_fixtures()) {
        printf("SKIPPED: layout pairs (no ../shared/fixtures on this machine)\n");
        skip();
    }
    char args[2048];
    /* meta (BF16, q/k not permuted, 2 model-parallel shards) == hf-bf16-sharded */
    snprintf(args, sizeof args, "'%s/wikillama/meta' -o '%s'", fixtures, out("meta.gguf"));
    assert_int_equal(convert(args), 0);
    snprintf(args, sizeof args, "'%s/wikillama/hf-bf16-sharded' -o '%s'", fixtures, out("sharded.gguf"));
    assert_int_equal(convert(args), 0);
    assert_same_tensors(out("meta.gguf"), out("sharded.gguf"), false);
    /* hf-pt, hf-pt-legacy and hf at f16; hf-pt and hf-pt-legacy at f32 too. The norms stay F32 in
     * GGUF, so hf's (stored F32) can only agree with hf-pt's (stored F16) at f16 precision. */
    const char *layouts[] = {"hf-pt", "hf-pt-legacy", "hf"};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-f16.gguf", layouts[i]);
        snprintf(args, sizeof args, "'%s/wikillama/%s' --outtype f16 -o '%s'", fixtures, layouts[i], out(name));
        assert_int_equal(convert(args), 0);
    }
    assert_same_tensors(out("hf-pt-f16.gguf"), out("hf-pt-legacy-f16.gguf"), true);
    /* hf stores F32: its F16 matrices match exactly; its F32 norms match at f16 precision */
    assert_same_tensors_ex(out("hf-pt-f16.gguf"), out("hf-f16.gguf"), false, true);
    snprintf(args, sizeof args, "'%s/wikillama/hf-pt' --outtype f32 -o '%s'", fixtures, out("pt32.gguf"));
    assert_int_equal(convert(args), 0);
    snprintf(args, sizeof args, "'%s/wikillama/hf-pt-legacy' --outtype f32 -o '%s'", fixtures, out("ptl32.gguf"));
    assert_int_equal(convert(args), 0);
    assert_same_tensors(out("pt32.gguf"), out("ptl32.gguf"), true);
}

static void test_meta_hyperparameters(void **state) {
    (void)state;
    if (!have_fixtures()) {
        printf("SKIPPED: meta hyper-parameters (no ../shared/fixtures on this machine)\n");
        skip();
    }
    char args[2048];
    snprintf(args, sizeof args, "'%s/wikillama/meta' --vocab-only -o '%s'", fixtures, out("mv.gguf"));
    assert_int_equal(convert(args), 0);
    gguf_reader *g = open_gguf(out("mv.gguf"));
    /* params.json: dim 256, 4 layers, 8 heads, 4 KV heads, vocab 4096, norm_eps 1e-5 -> Llama 2's 4096 */
    assert_int_equal(get_u32(g, "llama.context_length"), 4096);
    assert_int_equal(get_u32(g, "llama.embedding_length"), 256);
    assert_int_equal(get_u32(g, "llama.feed_forward_length"), 768); /* rows of layers.0.feed_forward.w1 */
    assert_int_equal(get_u32(g, "llama.attention.head_count"), 8);
    assert_int_equal(get_u32(g, "llama.attention.head_count_kv"), 4);
    assert_int_equal(get_u32(g, "llama.rope.dimension_count"), 32);
    gguf_close(g);
    snprintf(args, sizeof args, "'%s/wikillama/meta' --vocab-only --context-length 1234 -o '%s'", fixtures,
             out("mv2.gguf"));
    assert_int_equal(convert(args), 0);
    g = open_gguf(out("mv2.gguf"));
    assert_int_equal(get_u32(g, "llama.context_length"), 1234);
    gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bundled_f32_against_source), cmocka_unit_test(test_bundled_auto_dry_run_split_vocab),
        cmocka_unit_test(test_reference_byte_identical),   cmocka_unit_test(test_layout_pairs),
        cmocka_unit_test(test_meta_hyperparameters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
