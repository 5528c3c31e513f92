/* GGUF reader and writer: the FORMATS.md §1.7 example byte for byte, byte-identical round trips
 * of llama.cpp's own files (tests/data and, when present, every file in
 * ../shared/fixtures/reference/), metadata replacement and removal, general.alignment, split
 * output read back as one model, and the writer's refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "common/outfile.h"
#include "tests/testlib.h"

static char scratch[256];

static int setup(void **state) {
    (void)state;
    snprintf(scratch, sizeof scratch, "%s/nomoat-gguf-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(scratch) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(scratch);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        snprintf(p, sizeof p, "%s/%s", scratch, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(scratch);
    return 0;
}

static char *path_in(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", scratch, name);
    return p[k];
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    if (d)
        closedir(d);
    return n;
}

static const char *data_dir(void) {
    static char p[512];
    const char *root = getenv("NOMOAT_ROOT");
    snprintf(p, sizeof p, "%s/tests/data/gguf", root ? root : ".");
    return p;
}

static const char *fixtures(void) {
    const char *f = getenv("NOMOAT_FIXTURES");
    return f ? f : "../shared/fixtures";
}

/* Copies every KV and tensor of src into dst (streaming tensor by tensor, in pieces). */
static int copy_gguf(const char *src, const char *dst, const gguf_writer_options *opts, nm_error *err) {
    gguf_reader *g = gguf_open(src, err);
    if (!g)
        return -1;
    gguf_writer *w = gguf_writer_create(dst, opts, err);
    if (!w) {
        gguf_close(g);
        return -1;
    }
    for (size_t i = 0; i < gguf_kv_count(g); i++)
        assert_int_equal(gguf_writer_copy_kv(w, g, i), 0);
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, err) != 0)
            goto fail;
    }
    if (gguf_writer_begin_data(w, err) != 0)
        goto fail;
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        size_t half = t->size / 2;
        if (gguf_writer_write(w, t->data, half, err) != 0 ||
            gguf_writer_write(w, (const char *)t->data + half, t->size - half, err) != 0)
            goto fail;
    }
    gguf_close(g);
    return gguf_writer_finish(w, err);
fail:
    gguf_writer_abort(w);
    gguf_close(g);
    return -1;
}

static void assert_same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *pa = test_read_file(a, &na), *pb = test_read_file(b, &nb);
    assert_non_null(pa);
    assert_non_null(pb);
    if (na != nb)
        fail_msg("%s is %zu bytes, %s is %zu", a, na, b, nb);
    for (size_t i = 0; i < na; i++)
        if (pa[i] != pb[i])
            fail_msg("%s and %s differ first at offset %zu", a, b, i);
    free(pa);
    free(pb);
}

static void roundtrip(const char *src) {
    nm_error err = {{0}};
    const char *dst = path_in("roundtrip.gguf");
    gguf_writer_options opts = {.outfile_flags = NM_OUT_NO_FSYNC};
    if (copy_gguf(src, dst, &opts, &err) != 0)
        fail_msg("%s: %s", src, err.msg);
    assert_same_file(src, dst);
    unlink(dst);
}

/* FORMATS.md §1.7, written by llama.cpp's own writer. */
static const unsigned char tiny_example[192] = {
    0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
    20, 0, 0, 0, 0, 0, 0, 0, 'g', 'e', 'n', 'e', 'r', 'a', 'l', '.', 'a', 'r', 'c', 'h', 'i', 't', 'e', 'c', 't',
    'u', 'r', 'e', 8, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 'l', 'l', 'a', 'm', 'a',
    17, 0, 0, 0, 0, 0, 0, 0, 'l', 'l', 'a', 'm', 'a', '.', 'b', 'l', 'o', 'c', 'k', '_', 'c', 'o', 'u', 'n', 't',
    4, 0, 0, 0, 1, 0, 0, 0,
    1, 0, 0, 0, 0, 0, 0, 0, 'w', 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    [0xa0] = 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40,
    0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40, 0x00, 0x00, 0xc0, 0x40,
};

static void test_tiny_example_write(void **state) {
    (void)state;
    nm_error err = {{0}};
    const char *p = path_in("tiny.gguf");
    gguf_writer *w = gguf_writer_create(p, NULL, &err);
    assert_non_null(w);
    assert_int_equal(gguf_writer_set_string(w, "general.architecture", "llama", 5), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.block_count", 7), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.block_count", 1), 0); /* replaced in place */
    int64_t ne[4] = {3, 2, 1, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "w", GGML_TYPE_F32, 2, ne, &err), 0);
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    assert_int_equal(gguf_writer_shard_count(w), 1);
    float v[6] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(gguf_writer_write(w, v, sizeof v, &err), 0);
    assert_int_equal(gguf_writer_finish(w, &err), 0);
    size_t n;
    unsigned char *got = test_read_file(p, &n);
    assert_int_equal(n, sizeof tiny_example);
    assert_memory_equal(got, tiny_example, n);
    free(got);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_tiny_example_read(void **state) {
    (void)state;
    nm_error err = {{0}};
    gguf_reader *g = gguf_open_memory(tiny_example, sizeof tiny_example, &err);
    assert_non_null(g);
    assert_int_equal(gguf_version(g), 3);
    assert_int_equal(gguf_alignment(g), 32);
    assert_int_equal(gguf_data_offset(g, 0), 0xa0);
    assert_int_equal(gguf_kv_count(g), 2);
    assert_string_equal(gguf_kv_key(g, 1), "llama.block_count");
    assert_int_equal(gguf_find_key(g, "llama.block_count"), 1);
    assert_int_equal(gguf_find_key(g, "nope"), -1);
    assert_null(gguf_get(g, "nope"));
    uint32_t u;
    assert_int_equal(gguf_get_u32(g, "llama.block_count", &u, &err), 0);
    assert_int_equal(u, 1);
    float f;
    assert_int_equal(gguf_get_f32(g, "llama.block_count", &f, &err), -1);
    assert_non_null(strstr(err.msg, "UINT32"));
    assert_int_equal(gguf_get_u32(g, "missing.key", &u, &err), -1);
    assert_non_null(strstr(err.msg, "missing.key"));
    char *s;
    assert_int_equal(gguf_get_string(g, "general.architecture", &s, &err), 0);
    assert_string_equal(s, "llama");
    free(s);
    assert_int_equal(gguf_tensor_count(g), 1);
    const gguf_tensor_info *t = gguf_find_tensor(g, "w");
    assert_non_null(t);
    assert_null(gguf_find_tensor(g, "x"));
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 3);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->size, 24);
    assert_ptr_equal(t->data, tiny_example + 0xa0);
    gguf_close(g);
    /* every shorter prefix is refused (the last tensor's padding is optional, §1.5 step 5) */
    for (size_t n = 0; n < 0xa0 + 24; n++) {
        g = gguf_open_memory(tiny_example, n, &err);
        if (g)
            fail_msg("a %zu-byte prefix was accepted", n);
    }
    g = gguf_open_memory(tiny_example, 0xa0 + 24, &err);
    assert_non_null(g);
    gguf_close(g);
}

static void test_roundtrip_data(void **state) {
    (void)state;
    const char *names[] = {"vectors-f32.gguf", "vectors-q8_0.gguf", "vectors-q4_k_s.gguf"};
    char p[600];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", data_dir(), names[i]);
        roundtrip(p);
    }
}

/* Every .gguf llama.cpp made in the reference folder, including wikillama-f16.gguf. */
static void test_roundtrip_reference(void **state) {
    (void)state;
    const char *subdirs[] = {"reference", "reference/quant-vectors"};
    char dir[600], p[1200];
    int done = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(dir, sizeof dir, "%s/%s", fixtures(), subdirs[k]);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 5, ".gguf") != 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            roundtrip(p);
            done++;
        }
        closedir(d);
    }
    if (done == 0) {
        printf("SKIPPED: round trip of ../shared/fixtures/reference (not on this machine)\n");
        skip();
    }
    assert_true(done >= 20);
}

static void test_metadata_edits(void **state) {
    (void)state;
    nm_error err = {{0}};
    const char *p = path_in("edits.gguf");
    gguf_writer *w = gguf_writer_create(p, NULL, &err);
    assert_non_null(w);
    gguf_writer_set_u32(w, "a", 1);
    gguf_writer_set_string(w, "b", "bee", 3);
    gguf_writer_set_f32(w, "c", 0.5f);
    gguf_writer_set_string(w, "b", "replaced", 8); /* same position, new type allowed */
    gguf_writer_remove_key(w, "a");
    gguf_writer_set_u32(w, "a", 2); /* re-added at the end */
    gguf_writer_remove_key(w, "does.not.exist");
    int32_t arr[3] = {-1, 0, 7};
    gguf_writer_set_array(w, "arr", GGUF_TYPE_INT32, arr, 3);
    gguf_string strs[2] = {{"x", 1}, {"", 0}};
    gguf_writer_set_string_array(w, "strs", strs, 2);
    gguf_writer_set_bool(w, "flag", true);
    gguf_writer_set_u64(w, "u64", UINT64_MAX);
    gguf_writer_set_i8(w, "i8", -5);
    gguf_writer_set_f64(w, "f64", 2.25);
    gguf_writer_set_u32(w, "general.alignment", 64);
    int64_t ne[4] = {5, 1, 1, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "t0", GGML_TYPE_F32, 1, ne, &err), 0);
    ne[0] = 64;
    assert_int_equal(gguf_writer_add_tensor(w, "t1", GGML_TYPE_Q8_0, 1, ne, &err), 0);
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    unsigned char bytes[100];
    memset(bytes, 0xAB, sizeof bytes);
    assert_int_equal(gguf_writer_write(w, bytes, 20 + 68 + 1, &err), -1); /* more than declared */
    gguf_writer_abort(w);
    assert_int_equal(count_entries(scratch), 0);

    w = gguf_writer_create(p, NULL, &err);
    gguf_writer_set_u32(w, "a", 1);
    gguf_writer_set_string(w, "b", "bee", 3);
    gguf_writer_set_f32(w, "c", 0.5f);
    gguf_writer_set_string(w, "b", "replaced", 8);
    gguf_writer_remove_key(w, "a");
    gguf_writer_set_u32(w, "a", 2);
    gguf_writer_set_array(w, "arr", GGUF_TYPE_INT32, arr, 3);
    gguf_writer_set_string_array(w, "strs", strs, 2);
    gguf_writer_set_bool(w, "flag", true);
    gguf_writer_set_u32(w, "general.alignment", 64);
    ne[0] = 5;
    gguf_writer_add_tensor(w, "t0", GGML_TYPE_F32, 1, ne, &err);
    ne[0] = 64;
    gguf_writer_add_tensor(w, "t1", GGML_TYPE_Q8_0, 1, ne, &err);
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    assert_int_equal(gguf_writer_write(w, bytes, 20, &err), 0);
    assert_int_equal(gguf_writer_finish(w, &err), -1); /* t1 missing */
    assert_non_null(strstr(err.msg, "t1"));
    assert_int_equal(count_entries(scratch), 0);

    w = gguf_writer_create(p, NULL, &err);
    gguf_writer_set_string(w, "b", "replaced", 8);
    gguf_writer_set_f32(w, "c", 0.5f);
    gguf_writer_set_u32(w, "a", 2);
    gguf_writer_set_array(w, "arr", GGUF_TYPE_INT32, arr, 3);
    gguf_writer_set_string_array(w, "strs", strs, 2);
    gguf_writer_set_bool(w, "flag", true);
    gguf_writer_set_u32(w, "general.alignment", 64);
    ne[0] = 5;
    gguf_writer_add_tensor(w, "t0", GGML_TYPE_F32, 1, ne, &err);
    ne[0] = 64;
    gguf_writer_add_tensor(w, "t1", GGML_TYPE_Q8_0, 1, ne, &err);
    int64_t scalar[4] = {1, 1, 1, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "t2", GGML_TYPE_F32, 0, scalar, &err), 0); /* n_dims 0 kept */
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    assert_int_equal(gguf_writer_write(w, bytes, 20, &err), 0);
    assert_int_equal(gguf_writer_write(w, bytes, 68, &err), 0);
    assert_int_equal(gguf_writer_write(w, bytes, 4, &err), 0);
    assert_int_equal(gguf_writer_finish(w, &err), 0);

    gguf_reader *g = gguf_open(p, &err);
    assert_non_null(g);
    assert_int_equal(gguf_kv_count(g), 7);
    assert_string_equal(gguf_kv_key(g, 0), "b");
    assert_string_equal(gguf_kv_key(g, 1), "c");
    assert_string_equal(gguf_kv_key(g, 2), "a");
    const gguf_value *v = gguf_get(g, "arr");
    assert_int_equal(v->arr.type, GGUF_TYPE_INT32);
    assert_int_equal(gguf_array_i64(v, 0), -1);
    assert_int_equal(gguf_array_i64(v, 2), 7);
    assert_true(gguf_array_f64(v, 2) == 7.0);
    assert_int_equal(gguf_array_i64(v, 3), 0); /* out of range */
    v = gguf_get(g, "strs");
    assert_int_equal(v->arr.count, 2);
    assert_int_equal(v->arr.strings[0].len, 1);
    assert_memory_equal(v->arr.strings[0].ptr, "x", 1);
    assert_int_equal(v->arr.strings[1].len, 0);
    bool b;
    assert_int_equal(gguf_get_bool(g, "flag", &b, &err), 0);
    assert_true(b);
    assert_int_equal(gguf_alignment(g), 64);
    assert_int_equal(gguf_data_offset(g, 0) % 64, 0);
    assert_int_equal(gguf_tensor(g, 1)->offset, 64);
    assert_int_equal(gguf_tensor(g, 2)->n_dims, 0);
    assert_int_equal(gguf_tensor(g, 2)->size, 4);
    assert_int_equal(gguf_tensor(g, 2)->offset, 64 + 128);
    assert_int_equal(gguf_file_size(g, 0), gguf_data_offset(g, 0) + 64 + 128 + 64);
    gguf_close(g);
}

static unsigned char *file_bytes(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A tensor reserved where its data is due and filled after the ones that follow it (in two
 * parts) gives the file written in order, byte for byte; reserving mid-tensor and filling outside
 * the reservation are refused. */
static void test_reserve_fill(void **state) {
    (void)state;
    nm_error err = {{0}};
    unsigned char t0[20], t1[68], t2[4];
    for (size_t i = 0; i < sizeof t0; i++)
        t0[i] = (unsigned char)(i + 1);
    memset(t1, 0x5A, sizeof t1);
    memset(t2, 0xC3, sizeof t2);
    for (int reserved = 0; reserved < 2; reserved++) {
        gguf_writer *w = gguf_writer_create(path_in(reserved ? "reserved.gguf" : "ordered.gguf"), NULL, &err);
        assert_non_null(w);
        int64_t ne[4] = {5, 1, 1, 1};
        gguf_writer_add_tensor(w, "t0", GGML_TYPE_F32, 1, ne, &err);
        ne[0] = 64;
        gguf_writer_add_tensor(w, "t1", GGML_TYPE_Q8_0, 1, ne, &err);
        ne[0] = 1;
        gguf_writer_add_tensor(w, "t2", GGML_TYPE_F32, 1, ne, &err);
        assert_int_equal(gguf_writer_begin_data(w, &err), 0);
        if (reserved) {
            gguf_reserved r;
            assert_int_equal(gguf_writer_reserve(w, &r, &err), 0);
            assert_int_equal(r.size, sizeof t0);
            assert_int_equal(gguf_writer_write(w, t1, 10, &err), 0);
            assert_int_equal(gguf_writer_reserve(w, &(gguf_reserved){0}, &err), -1); /* mid-tensor */
            assert_int_equal(gguf_writer_write(w, t1 + 10, sizeof t1 - 10, &err), 0);
            assert_int_equal(gguf_writer_write(w, t2, sizeof t2, &err), 0);
            assert_int_equal(gguf_writer_fill(w, &r, 12, t0, 9, &err), -1); /* past its end */
            assert_int_equal(gguf_writer_fill(w, &r, 12, t0 + 12, 8, &err), 0);
            assert_int_equal(gguf_writer_fill(w, &r, 0, t0, 12, &err), 0);
        } else {
            assert_int_equal(gguf_writer_write(w, t0, sizeof t0, &err), 0);
            assert_int_equal(gguf_writer_write(w, t1, sizeof t1, &err), 0);
            assert_int_equal(gguf_writer_write(w, t2, sizeof t2, &err), 0);
        }
        assert_int_equal(gguf_writer_finish(w, &err), 0);
    }
    size_t na, nb;
    unsigned char *a = file_bytes(path_in("ordered.gguf"), &na), *b = file_bytes(path_in("reserved.gguf"), &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
}

static void test_writer_refusals(void **state) {
    (void)state;
    nm_error err = {{0}};
    const char *p = path_in("exists.gguf");
    FILE *f = fopen(p, "w");
    fputs("precious", f);
    fclose(f);
    assert_null(gguf_writer_create(p, NULL, &err));
    assert_non_null(strstr(err.msg, "exists"));

    /* NM_OUT_FORCE replaces it, but only once the output is complete */
    gguf_writer_options opts = {.outfile_flags = NM_OUT_FORCE};
    gguf_writer *w = gguf_writer_create(p, &opts, &err);
    assert_non_null(w);
    int64_t ne[4] = {3, 1, 1, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, ne, &err), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, ne, &err), -1); /* duplicate */
    ne[0] = 33;
    assert_int_equal(gguf_writer_add_tensor(w, "q", GGML_TYPE_Q8_0, 1, ne, &err), -1); /* not a block multiple */
    ne[0] = 0;
    assert_int_equal(gguf_writer_add_tensor(w, "z", GGML_TYPE_F32, 1, ne, &err), -1);
    ne[0] = 2;
    ne[2] = 4;
    assert_int_equal(gguf_writer_add_tensor(w, "b", GGML_TYPE_F32, 2, ne, &err), -1); /* ne[2] beyond n_dims */
    ne[2] = 1;
    assert_int_equal(gguf_writer_add_tensor(w, "a_name_that_is_far_too_long_for_ggml_which_holds_63_characters_x",
                                            GGML_TYPE_F32, 1, ne, &err), -1);
    assert_int_equal(gguf_writer_add_tensor(w, "bad", 4, 1, ne, &err), -1);
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    gguf_writer_abort(w);
    size_t n;
    unsigned char *c = test_read_file(p, &n);
    assert_int_equal(n, 8);
    free(c);

    w = gguf_writer_create(path_in("bad-key.gguf"), NULL, &err);
    assert_int_equal(gguf_writer_set_u32(w, "", 1), -1);
    assert_int_equal(gguf_writer_begin_data(w, &err), -1);
    assert_non_null(strstr(err.msg, "empty"));
    gguf_writer_abort(w);

    w = gguf_writer_create(path_in("bad-align.gguf"), NULL, &err);
    gguf_writer_set_u32(w, "general.alignment", 48);
    assert_int_equal(gguf_writer_begin_data(w, &err), -1);
    gguf_writer_abort(w);
    w = gguf_writer_create(path_in("bad-align.gguf"), NULL, &err);
    gguf_writer_set_u64(w, "general.alignment", 64);
    assert_int_equal(gguf_writer_finish(w, &err), -1);
    assert_int_equal(count_entries(scratch), 1); /* only exists.gguf */

    assert_null(gguf_writer_create("/nonexistent-folder/x.gguf", NULL, &err));
}

/* Split output: shard names, split keys, metadata only in the first shard, read back as one. */
static void test_split(void **state) {
    (void)state;
    nm_error err = {{0}};
    char src[600];
    snprintf(src, sizeof src, "%s/vectors-q8_0.gguf", data_dir());
    gguf_reader *orig = gguf_open(src, &err);
    assert_non_null(orig);
    size_t nt = gguf_tensor_count(orig);
    assert_true(nt >= 3);

    gguf_writer_options opts = {.outfile_flags = NM_OUT_NO_FSYNC, .split_max_tensors = 2};
    assert_int_equal(copy_gguf(src, path_in("split.gguf"), &opts, &err), 0);
    uint32_t shards = (uint32_t)((nt + 1) / 2);
    assert_int_equal(count_entries(scratch), shards);
    char *first = gguf_split_path(path_in("split"), 0, shards);
    gguf_reader *g = gguf_open(first, &err);
    if (!g)
        fail_msg("%s", err.msg);
    assert_int_equal(gguf_file_count(g), shards);
    assert_int_equal(gguf_tensor_count(g), nt);
    for (size_t i = 0; i < nt; i++) {
        const gguf_tensor_info *a = gguf_tensor(orig, i), *b = gguf_find_tensor(g, a->name);
        assert_non_null(b);
        assert_int_equal(b->file_index, i / 2);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->size, b->size);
        assert_memory_equal(a->data, b->data, a->size);
    }
    /* every original key first, in order, then the split keys */
    assert_int_equal(gguf_kv_count(g), gguf_kv_count(orig) + 3);
    for (size_t i = 0; i < gguf_kv_count(orig); i++)
        assert_string_equal(gguf_kv_key(g, i), gguf_kv_key(orig, i));
    assert_int_equal(gguf_get(g, "split.count")->u16, shards);
    assert_int_equal(gguf_get(g, "split.tensors.count")->i32, (int32_t)nt);
    gguf_close(g);

    /* later shards hold only the split keys, with their own split.no */
    char *second = gguf_split_path(path_in("split"), 1, shards);
    size_t n;
    unsigned char *buf = test_read_file(second, &n);
    g = gguf_open_memory(buf, n, &err);
    assert_non_null(g);
    assert_int_equal(gguf_kv_count(g), 3);
    assert_int_equal(gguf_get(g, "split.no")->u16, 1);
    gguf_close(g);
    free(buf);

    /* opening a later shard is refused with a hint; a missing shard is an error */
    assert_null(gguf_open(second, &err));
    assert_non_null(strstr(err.msg, "first shard"));
    unlink(second);
    assert_null(gguf_open(first, &err));
    assert_non_null(strstr(err.msg, "00002"));

    /* re-splitting a split model into one file drops the split keys: identical to the source */
    for (uint32_t s = 0; s < shards; s++) {
        char *sp = gguf_split_path(path_in("split"), s, shards);
        unlink(sp);
        free(sp);
    }
    assert_int_equal(copy_gguf(src, path_in("split.gguf"), &opts, &err), 0);
    gguf_writer_options one = {.outfile_flags = NM_OUT_NO_FSYNC};
    assert_int_equal(copy_gguf(first, path_in("joined.gguf"), &one, &err), 0);
    assert_same_file(src, path_in("joined.gguf"));

    /* existing shard names are refused before anything is written */
    assert_int_equal(copy_gguf(src, path_in("split.gguf"), &opts, &err), -1);
    assert_non_null(strstr(err.msg, "exists"));
    assert_int_equal(count_entries(scratch), shards + 1);

    /* size limit: each shard's data stays within it unless a single tensor is larger */
    uint64_t limit = 0;
    for (size_t i = 0; i < nt; i++)
        limit = gguf_tensor(orig, i)->size > limit ? gguf_tensor(orig, i)->size : limit;
    limit = (limit + 31) / 32 * 32 * 2;
    gguf_writer_options by_size = {.outfile_flags = NM_OUT_NO_FSYNC, .split_max_size = limit};
    assert_int_equal(copy_gguf(src, path_in("bysize.gguf"), &by_size, &err), 0);
    int total = count_entries(scratch) - (int)shards - 1;
    assert_true(total >= 2);
    char *bs = gguf_split_path(path_in("bysize"), 0, (uint32_t)total);
    g = gguf_open(bs, &err);
    if (!g)
        fail_msg("%s", err.msg);
    assert_int_equal(gguf_tensor_count(g), nt);
    for (uint32_t s = 0; s < gguf_file_count(g); s++)
        assert_true(gguf_file_size(g, s) - gguf_data_offset(g, s) <= limit);
    gguf_close(g);
    free(bs);
    free(first);
    free(second);
    gguf_close(orig);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tiny_example_write, setup, teardown),
        cmocka_unit_test(test_tiny_example_read),
        cmocka_unit_test_setup_teardown(test_roundtrip_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_edits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_fill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
