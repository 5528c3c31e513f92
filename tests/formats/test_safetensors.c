/* safetensors reader (FORMATS.md §9): every dtype and layout the format allows is read back
 * exactly; every crafted file in tests/data/hostile/st-*.safetensors (one per validation rule)
 * and every st-* file of ../shared/fixtures/hostile is refused with one line; sharded folders
 * with inconsistent indexes are refused; the wikillama fixture reads with the right tensors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "formats/safetensors.h"

/* ---- helpers ---- */

static size_t build_file(unsigned char *out, size_t cap, const char *header, const void *data, size_t data_len) {
    size_t n = strlen(header);
    assert_true(8 + n + data_len <= cap);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(out + 8, header, n);
    if (data_len)
        memcpy(out + 8 + n, data, data_len);
    return 8 + n + data_len;
}

static st_model *open_str(const char *header, const void *data, size_t data_len, unsigned char *buf, size_t cap,
                          nm_error *err) {
    size_t size = build_file(buf, cap, header, data, data_len);
    return st_open_memory(buf, size, err);
}

static void expect_refused(const char *header, const void *data, size_t data_len, const char *needle) {
    unsigned char buf[4096];
    nm_error err = {{0}};
    st_model *m = open_str(header, data, data_len, buf, sizeof buf, &err);
    if (m) {
        st_close(m);
        fail_msg("accepted: %s", header);
    }
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_null(strchr(err.msg, '\n'));
}

static const char *fixtures(void) {
    const char *f = getenv("NOMOAT_FIXTURES");
    return f ? f : "../shared/fixtures";
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = fwrite(data, 1, n, fp);
    return fclose(fp) == 0 && w == n ? 0 : -1;
}

/* ---- valid files ---- */

static void test_every_dtype(void **state) {
    (void)state;
    /* one tensor per dtype of §9, in offset order; sub-byte types with whole bytes */
    static const struct {
        const char *name;
        nm_dtype dtype;
        unsigned count, bytes;
    } dt[] = {
        {"BOOL", NM_DTYPE_BOOL, 3, 3},       {"U8", NM_DTYPE_U8, 3, 3},
        {"I8", NM_DTYPE_I8, 3, 3},           {"F8_E5M2", NM_DTYPE_F8_E5M2, 3, 3},
        {"F8_E4M3", NM_DTYPE_F8_E4M3, 3, 3}, {"F8_E8M0", NM_DTYPE_F8_E8M0, 3, 3},
        {"I16", NM_DTYPE_I16, 3, 6},         {"U16", NM_DTYPE_U16, 3, 6},
        {"F16", NM_DTYPE_F16, 3, 6},         {"BF16", NM_DTYPE_BF16, 3, 6},
        {"I32", NM_DTYPE_I32, 3, 12},        {"U32", NM_DTYPE_U32, 3, 12},
        {"F32", NM_DTYPE_F32, 3, 12},        {"I64", NM_DTYPE_I64, 3, 24},
        {"U64", NM_DTYPE_U64, 3, 24},        {"F64", NM_DTYPE_F64, 3, 24},
        {"C64", NM_DTYPE_C64, 3, 24},        {"F6_E2M3", NM_DTYPE_F6_E2M3, 4, 3},
        {"F6_E3M2", NM_DTYPE_F6_E3M2, 8, 6}, {"F4", NM_DTYPE_F4, 6, 3},
    };
    enum { N = sizeof dt / sizeof dt[0] };
    char header[4096];
    size_t hn = (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"}");
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        hn += (size_t)snprintf(header + hn, sizeof header - hn,
                               ",\"t_%s\":{\"shape\":[%u],\"dtype\":\"%s\",\"data_offsets\":[%zu,%zu]}", dt[i].name,
                               dt[i].count, dt[i].name, off, off + dt[i].bytes);
        off += dt[i].bytes;
    }
    snprintf(header + hn, sizeof header - hn, "}");
    unsigned char data[512], buf[8192];
    for (size_t i = 0; i < off; i++)
        data[i] = (unsigned char)(i * 7 + 1);
    nm_error err = {{0}};
    st_model *m = open_str(header, data, off, buf, sizeof buf, &err);
    if (!m)
        fail_msg("%s", err.msg);
    assert_int_equal(st_tensor_count(m), N);
    size_t data_start = 8 + strlen(header);
    off = 0;
    for (int i = 0; i < N; i++) {
        const st_tensor *t = st_tensor_at(m, (size_t)i);
        char want[32];
        snprintf(want, sizeof want, "t_%s", dt[i].name);
        assert_string_equal(t->name, want);
        assert_int_equal(t->dtype, dt[i].dtype);
        assert_string_equal(nm_dtype_name(t->dtype), dt[i].name);
        assert_int_equal(t->n_dims, 1);
        assert_int_equal(t->shape[0], dt[i].count);
        assert_int_equal(t->size, dt[i].bytes);
        assert_int_equal(t->offset, data_start + off);
        assert_ptr_equal(t->data, buf + data_start + off);
        assert_ptr_equal(st_find(m, want), t);
        off += dt[i].bytes;
    }
    assert_null(st_find(m, "t_F33"));
    assert_null(st_tensor_at(m, N));
    assert_int_equal(st_metadata_count(m), 2);
    const char *k, *v;
    st_metadata_at(m, 1, &k, &v);
    assert_string_equal(k, "k");
    assert_string_equal(v, "v");
    assert_int_equal(st_file_count(m), 1);
    st_close(m);
}

static void test_layout_variants(void **state) {
    (void)state;
    unsigned char buf[1024], data[64] = {0};
    nm_error err = {{0}};
    /* scalar, zero-sized tensors, unpadded odd-length header, keys out of offset order, no metadata,
     * whitespace and an unknown field the reference library ignores */
    const char *h = " {\"b\": {\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]} ,"
                    "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8],\"extra\":\"x\"},"
                    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[12,12]}}";
    assert_null(open_str(h, data, 12, buf, sizeof buf, &err)); /* leading space: must begin with '{' */
    st_model *m = open_str(h + 1, data, 12, buf, sizeof buf, &err);
    if (!m)
        fail_msg("%s", err.msg);
    assert_int_equal(st_tensor_count(m), 3);
    assert_string_equal(st_tensor_at(m, 0)->name, "a");
    assert_string_equal(st_tensor_at(m, 1)->name, "b");
    assert_int_equal(st_tensor_at(m, 1)->n_dims, 0);
    assert_int_equal(st_tensor_at(m, 1)->size, 4);
    assert_string_equal(st_tensor_at(m, 2)->name, "z");
    assert_int_equal(st_tensor_at(m, 2)->size, 0);
    assert_int_equal(st_metadata_count(m), 0);
    st_close(m);
    /* empty header object and no data */
    m = open_str("{}", NULL, 0, buf, sizeof buf, &err);
    assert_non_null(m);
    assert_int_equal(st_tensor_count(m), 0);
    st_close(m);
    /* the largest whole number accepted: 2^53 (as a dimension of a zero-element tensor) */
    m = open_str("{\"a\":{\"dtype\":\"U8\",\"shape\":[9007199254740992,0],\"data_offsets\":[0,0]}}", NULL, 0, buf,
                 sizeof buf, &err);
    if (!m)
        fail_msg("%s", err.msg);
    assert_int_equal(st_tensor_at(m, 0)->shape[0], 1ull << 53);
    st_close(m);
    /* unicode names are fine */
    m = open_str("{\"\xc3\xa9t\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", data, 1, buf,
                 sizeof buf, &err);
    if (!m)
        fail_msg("%s", err.msg);
    assert_non_null(st_find(m, "\xc3\xa9t\xc3\xa9"));
    st_close(m);
}

static void test_messages_name_tensor(void **state) {
    (void)state;
    unsigned char d[64] = {0};
    expect_refused("{\"w.q\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8, "'w.q'");
    expect_refused("{\"w.q\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8, "needs 12");
    expect_refused("{\"w.k\":{\"dtype\":\"Q4\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8, "unknown dtype \"Q4\"");
    expect_refused("{\"w.k\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", d, 8, "'w.k'");
    expect_refused("{\"w.k\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", d, 8, "whole number");
    expect_refused("{\"w.k\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9007199254740993]}}", d, 8, "2^53");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   d, 12, "overlaps");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 8, "trailing");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   d, 8, "duplicate");
    expect_refused("{\"__metadata__\":{\"n\":null}}", d, 0, "not a string");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", d, 4, "after the header");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", d, 4, "not valid JSON");
}

/* Every crafted file in tests/data/hostile/st-*.safetensors is refused with one line. */
static int refuse_folder(const char *dir, const char *prefix, int *count) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, strlen(prefix)) || n < 12 || strcmp(de->d_name + n - 12, ".safetensors"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        nm_error err = {{0}};
        st_model *m = st_open(path, &err);
        if (m) {
            st_close(m);
            closedir(d);
            fail_msg("%s accepted", path);
        }
        if (!err.msg[0] || strchr(err.msg, '\n')) {
            closedir(d);
            fail_msg("%s: bad message '%s'", path, err.msg);
        }
        print_message("refused %s: %s\n", de->d_name, err.msg);
        (*count)++;
    }
    closedir(d);
    return 0;
}

static void test_own_hostile_files(void **state) {
    (void)state;
    const char *root = getenv("NOMOAT_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/hostile", root ? root : ".");
    int count = 0;
    assert_int_equal(refuse_folder(dir, "st-", &count), 0);
    assert_true(count >= 40);
}

static void test_fixture_hostile_files(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/hostile", fixtures());
    int count = 0;
    if (access(dir, R_OK) != 0)
        skip();
    assert_int_equal(refuse_folder(dir, "st-", &count), 0);
    assert_true(count >= 4);
}

/* ---- sharded folders ---- */

static void make_shard(const char *dir, const char *name, const char *tensors_json, size_t data_len) {
    unsigned char buf[2048], data[256] = {0};
    size_t n = build_file(buf, sizeof buf, tensors_json, data, data_len);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(write_file(path, buf, n), 0);
}

static void write_index(const char *dir, const char *json) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    assert_int_equal(write_file(path, json, strlen(json)), 0);
}

static void expect_dir_refused(const char *dir, const char *needle) {
    nm_error err = {{0}};
    st_model *m = st_open(dir, &err);
    if (m) {
        st_close(m);
        fail_msg("sharded folder accepted (expected '%s')", needle);
    }
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_null(strchr(err.msg, '\n'));
}

static void test_sharded(void **state) {
    (void)state;
    char dir[] = "/tmp/nomoat-st-test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    make_shard(dir, "m-1.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
               12);
    make_shard(dir, "m-2.safetensors", "{\"c\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[0,6]}}", 6);
    /* good */
    write_index(dir, "{\"metadata\":{\"total_size\":18},\"weight_map\":{\"c\":\"m-2.safetensors\","
                     "\"a\":\"m-1.safetensors\",\"b\":\"m-1.safetensors\"}}");
    nm_error err = {{0}};
    char idx[1100];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    const char *paths[] = {dir, idx};
    for (int p = 0; p < 2; p++) {
        st_model *m = st_open(paths[p], &err);
        if (!m)
            fail_msg("%s", err.msg);
        assert_int_equal(st_tensor_count(m), 3);
        assert_int_equal(st_file_count(m), 2);
        assert_string_equal(st_tensor_at(m, 2)->name, "c");
        assert_int_equal(st_tensor_at(m, 2)->file_index, 1);
        assert_non_null(strstr(st_file_path(m, 1), "m-2.safetensors"));
        assert_int_equal(st_find(m, "c")->shape[1], 3);
        st_close(m);
    }
    /* index lists a tensor no shard has */
    write_index(dir, "{\"weight_map\":{\"c\":\"m-2.safetensors\",\"a\":\"m-1.safetensors\","
                     "\"b\":\"m-1.safetensors\",\"d\":\"m-2.safetensors\"}}");
    expect_dir_refused(dir, "'d' is listed in the index but missing");
    /* a shard holds a tensor the index does not list */
    write_index(dir, "{\"weight_map\":{\"c\":\"m-2.safetensors\",\"a\":\"m-1.safetensors\"}}");
    expect_dir_refused(dir, "'b' is not listed");
    /* index maps a tensor to the wrong shard */
    write_index(dir, "{\"weight_map\":{\"c\":\"m-1.safetensors\",\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}");
    expect_dir_refused(dir, "mapped to");
    /* shard outside the folder */
    write_index(dir, "{\"weight_map\":{\"a\":\"../m-1.safetensors\"}}");
    expect_dir_refused(dir, "plain file name");
    /* missing shard file */
    write_index(dir, "{\"weight_map\":{\"a\":\"m-3.safetensors\"}}");
    expect_dir_refused(dir, "m-3.safetensors: cannot open");
    /* duplicate key in weight_map */
    write_index(dir, "{\"weight_map\":{\"c\":\"m-2.safetensors\",\"a\":\"m-1.safetensors\","
                     "\"b\":\"m-1.safetensors\",\"a\":\"m-1.safetensors\"}}");
    expect_dir_refused(dir, "duplicate");
    /* no weight_map; not JSON */
    write_index(dir, "{\"metadata\":{}}");
    expect_dir_refused(dir, "weight_map");
    write_index(dir, "{\"weight_map\":");
    expect_dir_refused(dir, "not a JSON object");
    /* a hostile shard is reported with the shard's name */
    write_index(dir, "{\"weight_map\":{\"c\":\"m-2.safetensors\",\"a\":\"m-1.safetensors\",\"b\":\"m-1.safetensors\"}}");
    make_shard(dir, "m-2.safetensors", "{\"c\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[0,8]}}", 8);
    expect_dir_refused(dir, "m-2.safetensors: tensor 'c'");
    /* a tensor present in two shards */
    make_shard(dir, "m-2.safetensors", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[0,6]}}", 6);
    expect_dir_refused(dir, "'a'");
    /* folder without an index and with two .safetensors files: ambiguous */
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    unlink(p);
    expect_dir_refused(dir, "2 .safetensors files");
    /* only one .safetensors file: used */
    snprintf(p, sizeof p, "%s/m-2.safetensors", dir);
    unlink(p);
    st_model *m = st_open(dir, &err);
    if (!m)
        fail_msg("%s", err.msg);
    assert_int_equal(st_tensor_count(m), 2);
    st_close(m);
    snprintf(p, sizeof p, "%s/m-1.safetensors", dir);
    unlink(p);
    expect_dir_refused(dir, "no .safetensors");
    rmdir(dir);
}


/* Inputs the fuzzer once found troublesome (tests/fuzz/regress/safetensors/): each must be
 * refused with one printable line, or opened with every tensor inside the buffer. */
static void test_fuzz_regressions(void **state) {
    (void)state;
    const char *root = getenv("NOMOAT_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/safetensors", root ? root : ".");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int count = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        unsigned char *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, fp);
        fclose(fp);
        nm_error err = {{0}};
        st_model *m = st_open_memory(buf, n, &err);
        if (m) {
            for (size_t i = 0; i < st_tensor_count(m); i++) {
                const st_tensor *t = st_tensor_at(m, i);
                assert_true(t->offset <= n && t->size <= n - t->offset);
            }
            st_close(m);
        } else {
            assert_true(err.msg[0] != '\0');
            for (const char *p = err.msg; *p; p++)
                if ((unsigned char)*p < 0x20)
                    fail_msg("%s: control byte in message '%s'", de->d_name, err.msg);
        }
        free(buf);
        count++;
    }
    closedir(d);
    assert_true(count >= 1);
}

/* ---- the wikillama fixture ---- */

static void check_llama_shapes(const st_model *m, nm_dtype dtype) {
    /* FIXTURE README: dim 256, 4 layers, 8 heads, 4 KV heads, FFN 768, vocab 4096, untied output */
    assert_int_equal(st_tensor_count(m), 4 * 9 + 3);
    static const struct {
        const char *name;
        uint64_t d0, d1; /* d1 = 0: 1-D */
    } want[] = {
        {"self_attn.q_proj.weight", 256, 256}, {"self_attn.k_proj.weight", 128, 256},
        {"self_attn.v_proj.weight", 128, 256}, {"self_attn.o_proj.weight", 256, 256},
        {"mlp.gate_proj.weight", 768, 256},    {"mlp.up_proj.weight", 768, 256},
        {"mlp.down_proj.weight", 256, 768},    {"input_layernorm.weight", 256, 0},
        {"post_attention_layernorm.weight", 256, 0},
    };
    size_t total = 0;
    for (int l = 0; l < 4; l++)
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, want[k].name);
            const st_tensor *t = st_find(m, name);
            if (!t)
                fail_msg("missing %s", name);
            assert_int_equal(t->dtype, dtype);
            assert_int_equal(t->n_dims, want[k].d1 ? 2 : 1);
            assert_int_equal(t->shape[0], want[k].d0);
            if (want[k].d1)
                assert_int_equal(t->shape[1], want[k].d1);
        }
    const char *big[] = {"model.embed_tokens.weight", "lm_head.weight"};
    for (int i = 0; i < 2; i++) {
        const st_tensor *t = st_find(m, big[i]);
        assert_non_null(t);
        assert_int_equal(t->n_dims, 2);
        assert_int_equal(t->shape[0], 4096);
        assert_int_equal(t->shape[1], 256);
    }
    assert_int_equal(st_find(m, "model.norm.weight")->shape[0], 256);
    for (size_t i = 0; i < st_tensor_count(m); i++)
        total += st_tensor_at(m, i)->size;
    /* 5.2M parameters (README), 4 bytes or 2 each */
    size_t params = 2 * 4096 * 256 + 256 + 4 * (2 * 256 * 256 + 2 * 128 * 256 + 3 * 768 * 256 + 2 * 256);
    assert_int_equal(total, params * (dtype == NM_DTYPE_F32 ? 4 : 2));
}

static void test_fixture_wikillama(void **state) {
    (void)state;
    char hf[1024], sh[1024], file[1100];
    snprintf(hf, sizeof hf, "%s/wikillama/hf", fixtures());
    snprintf(sh, sizeof sh, "%s/wikillama/hf-bf16-sharded", fixtures());
    snprintf(file, sizeof file, "%s/model.safetensors", hf);
    if (access(file, R_OK) != 0)
        skip();
    nm_error err = {{0}};
    st_model *a = st_open(hf, &err);
    if (!a)
        fail_msg("%s", err.msg);
    check_llama_shapes(a, NM_DTYPE_F32);
    st_model *a2 = st_open(file, &err);
    assert_non_null(a2);
    assert_int_equal(st_tensor_count(a2), st_tensor_count(a));
    for (size_t i = 0; i < st_tensor_count(a); i++)
        assert_string_equal(st_tensor_at(a, i)->name, st_tensor_at(a2, i)->name);
    st_close(a2);
    st_model *b = st_open(sh, &err);
    if (!b)
        fail_msg("%s", err.msg);
    check_llama_shapes(b, NM_DTYPE_BF16);
    assert_int_equal(st_file_count(b), 2);
    /* same weights: every BF16 value is the round-to-nearest-even of the F32 one */
    for (size_t i = 0; i < st_tensor_count(b); i++) {
        const st_tensor *tb = st_tensor_at(b, i), *ta = st_find(a, tb->name);
        assert_non_null(ta);
        size_t n = tb->size / 2;
        assert_int_equal(ta->size, n * 4);
        const uint16_t *hb = tb->data;
        const float *fa = ta->data;
        for (size_t k = 0; k < n; k++)
            if (hb[k] != nm_f32_to_bf16(fa[k]))
                fail_msg("%s[%zu]: bf16 %04x, f32 rounds to %04x", tb->name, k, hb[k], nm_f32_to_bf16(fa[k]));
    }
    st_close(b);
    st_close(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_dtype),
        cmocka_unit_test(test_layout_variants),
        cmocka_unit_test(test_messages_name_tensor),
        cmocka_unit_test(test_own_hostile_files),
        cmocka_unit_test(test_fixture_hostile_files),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_fixture_wikillama),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
