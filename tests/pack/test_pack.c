/* nomoat-pack container: round trips, per-tensor extraction, damage detection. Self-contained:
 * builds its GGUF inputs with the writer, so it runs without ../shared. */
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
#include "common/outfile.h"
#include "formats/pack.h"
#include "tests/testlib.h"

static char dir[256];

static void path_in(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", dir, name);
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

static uint32_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* A GGUF with float tensors of several types and awkward sizes, plus a quantized-looking one. */
static void make_gguf(const char *path) {
    nm_error err;
    gguf_writer *w = gguf_writer_create(path, &(gguf_writer_options){.outfile_flags = NM_OUT_NO_FSYNC | NM_OUT_FORCE}, &err);
    assert_non_null(w);
    gguf_writer_set_string(w, "general.architecture", "llama", 5);
    gguf_writer_set_u32(w, "llama.block_count", 1);
    struct { const char *name; uint32_t type; int64_t ne0, ne1; } ts[] = {
        {"a.f32", GGML_TYPE_F32, 3001, 3}, {"b.f16", GGML_TYPE_F16, 4097, 2}, {"c.bf16", GGML_TYPE_BF16, 2049, 5},
        {"d.q8_0", GGML_TYPE_Q8_0, 256, 40}, {"e.one", GGML_TYPE_F32, 1, 1},
    };
    size_t n = sizeof ts / sizeof ts[0];
    for (size_t i = 0; i < n; i++) {
        int64_t ne[4] = {ts[i].ne0, ts[i].ne1, 1, 1};
        assert_int_equal(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, 2, ne, &err), 0);
    }
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    for (size_t i = 0; i < n; i++) {
        int64_t ne[4] = {ts[i].ne0, ts[i].ne1, 1, 1};
        size_t size;
        assert_int_equal(ggml_tensor_size(ts[i].type, ne, &size), 0);
        unsigned char *buf = malloc(size);
        if (ts[i].type == GGML_TYPE_F32) {
            for (size_t k = 0; k < size / 4; k++) {
                float v = ((float)(rng() % 20001) - 10000.0f) * 1e-4f;
                memcpy(buf + 4 * k, &v, 4);
            }
        } else if (ts[i].type == GGML_TYPE_F16 || ts[i].type == GGML_TYPE_BF16) {
            for (size_t k = 0; k < size / 2; k++) {
                float v = ((float)(rng() % 20001) - 10000.0f) * 1e-4f;
                uint16_t h = ts[i].type == GGML_TYPE_F16 ? nm_f32_to_f16(v) : nm_f32_to_bf16(v);
                memcpy(buf + 2 * k, &h, 2);
            }
        } else {
            for (size_t k = 0; k < size; k++)
                buf[k] = (unsigned char)rng();
        }
        assert_int_equal(gguf_writer_write(w, buf, size, &err), 0);
        free(buf);
    }
    assert_int_equal(gguf_writer_finish(w, &err), 0);
}

static void roundtrip(const char *in, size_t chunk, int threads, bool raw, bool expect_gguf) {
    char packed[300], out[300];
    path_in(packed, sizeof packed, "rt.nmz");
    path_in(out, sizeof out, "rt.out");
    unlink(packed);
    unlink(out);
    nm_error err;
    nm_pack_options o = {.level = 3, .threads = threads, .chunk_size = chunk, .outfile_flags = NM_OUT_NO_FSYNC,
                         .quiet = true, .raw_only = raw};
    nm_pack_stats st;
    if (nm_pack_file(in, packed, &o, &st, &err) != 0)
        fail_msg("pack: %s", err.msg);
    assert_int_equal(st.gguf, expect_gguf);
    nm_pack_reader *r = nm_pack_open(packed, &err);
    if (!r)
        fail_msg("open: %s", err.msg);
    if (nm_unpack(r, out, &o, &err) != 0)
        fail_msg("unpack: %s", err.msg);
    nm_pack_close(r);
    size_t a_size, b_size;
    unsigned char *a = test_read_file(in, &a_size), *b = test_read_file(out, &b_size);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a_size, b_size);
    assert_memory_equal(a, b, a_size);
    free(a);
    free(b);
}

static void test_roundtrip_gguf(void **state) {
    (void)state;
    char in[300];
    path_in(in, sizeof in, "model.gguf");
    make_gguf(in);
    roundtrip(in, 0, 2, false, true);
    roundtrip(in, 4096, 2, false, true); /* many chunks per tensor */
    roundtrip(in, 4096, 1, false, true);
    roundtrip(in, 4096, 2, true, true);
}

static void test_roundtrip_plain_files(void **state) {
    (void)state;
    char in[300];
    path_in(in, sizeof in, "plain.bin");
    for (size_t size = 0; size < 20000; size = size * 3 + 1) {
        unsigned char *buf = malloc(size + 1);
        for (size_t k = 0; k < size; k++)
            buf[k] = (unsigned char)(k % 7 == 0 ? rng() : 'a' + k % 5);
        write_file(in, buf, size);
        free(buf);
        if (size == 0)
            continue; /* an empty file is covered below */
        roundtrip(in, 4096, 2, false, false);
    }
    write_file(in, "", 0);
    roundtrip(in, 0, 2, false, false);
    write_file(in, "GGUF this is not", 16); /* GGUF magic but invalid: packed as plain bytes */
    roundtrip(in, 0, 2, false, false);
}

static void test_extract(void **state) {
    (void)state;
    char in[300], packed[300];
    path_in(in, sizeof in, "model.gguf");
    path_in(packed, sizeof packed, "x.nmz");
    make_gguf(in);
    nm_error err;
    nm_pack_options o = {.chunk_size = 4096, .outfile_flags = NM_OUT_NO_FSYNC | NM_OUT_FORCE, .quiet = true};
    assert_int_equal(nm_pack_file(in, packed, &o, NULL, &err), 0);
    gguf_reader *g = gguf_open(in, &err);
    assert_non_null(g);
    nm_pack_reader *r = nm_pack_open(packed, &err);
    assert_non_null(r);
    assert_int_equal(nm_pack_tensor_count(r), gguf_tensor_count(g) + 1);
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        const nm_pack_tensor *pt = nm_pack_find_tensor(r, t->name);
        assert_non_null(pt);
        assert_int_equal(pt->size, t->size);
        assert_int_equal(pt->type, t->type);
        void *data;
        assert_int_equal(nm_pack_extract(r, pt, &data, &err), 0);
        assert_memory_equal(data, t->data, t->size);
        free(data);
    }
    nm_pack_close(r);
    gguf_close(g);
}

/* Every single flipped byte in the payload region is detected and named; the header and index
 * are protected too. */
static void test_damage_detected(void **state) {
    (void)state;
    char in[300], packed[300], out[300];
    path_in(in, sizeof in, "model.gguf");
    path_in(packed, sizeof packed, "d.nmz");
    path_in(out, sizeof out, "d.out");
    make_gguf(in);
    nm_error err;
    nm_pack_options o = {.chunk_size = 4096, .outfile_flags = NM_OUT_NO_FSYNC | NM_OUT_FORCE, .quiet = true};
    assert_int_equal(nm_pack_file(in, packed, &o, NULL, &err), 0);
    size_t size;
    unsigned char *orig = test_read_file(packed, &size);
    assert_non_null(orig);
    unsigned char *copy = malloc(size);
    for (size_t pos = 0; pos < size; pos += 1 + pos / 50) {
        memcpy(copy, orig, size);
        copy[pos] ^= 0x10;
        nm_pack_reader *r = nm_pack_open_memory(copy, size, &err);
        if (!r)
            continue; /* header or index damage: refused at open */
        unlink(out);
        int rc = nm_unpack(r, out, &o, &err);
        nm_pack_close(r);
        if (rc == 0)
            fail_msg("flipped byte at %zu not detected", pos);
        if (pos >= NM_PACK_HEADER_SIZE && !strstr(err.msg, "chunk") && !strstr(err.msg, "whole-file"))
            fail_msg("flip at %zu: message does not name the chunk: %s", pos, err.msg);
        assert_int_equal(access(out, F_OK), -1); /* no output left */
    }
    /* truncations are refused at open */
    for (size_t cut = 0; cut < size; cut += 1 + cut / 10) {
        nm_pack_reader *r = nm_pack_open_memory(orig, cut, &err);
        assert_null(r);
    }
    free(copy);
    free(orig);
}

/* The stream layouts are part of the format: check them against their definitions in pack.h
 * for every 16-bit value (the SIMD paths must agree with the scalar ones bit for bit). */
static void test_transform_layouts(void **state) {
    (void)state;
    enum { N = 65536 + 7 };
    uint16_t *src = malloc(N * 2);
    unsigned char *s0 = malloc(N * 2), *s1 = malloc(N * 2), *back = malloc(N * 2);
    for (uint32_t i = 0; i < N; i++)
        src[i] = (uint16_t)(i * 40503u);
    size_t n = N * 2 - 1; /* odd: one tail byte */
    assert_int_equal(nm_pack_stream0_size(NM_PACK_BF16, n), N - 1);
    nm_pack_split(NM_PACK_BF16, src, n, s0, s1);
    for (uint32_t i = 0; i < N - 1; i++) {
        assert_int_equal(s0[i], (src[i] >> 7) & 0xFF);
        assert_int_equal(s1[i], ((src[i] >> 8) & 0x80) | (src[i] & 0x7F));
    }
    assert_int_equal(s1[N - 1], ((unsigned char *)src)[n - 1]);
    nm_pack_join(NM_PACK_BF16, s0, s1, n, back);
    assert_memory_equal(back, src, n);
    nm_pack_split(NM_PACK_F16, src, n, s0, s1);
    for (uint32_t i = 0; i < N - 1; i++) {
        assert_int_equal(s0[i], src[i] >> 8);
        assert_int_equal(s1[i], src[i] & 0xFF);
    }
    nm_pack_join(NM_PACK_F16, s0, s1, n, back);
    assert_memory_equal(back, src, n);
    size_t n32 = (N / 2 - 1) * 4 + 3; /* within the N * 2 source bytes */
    nm_pack_split(NM_PACK_F32, src, n32, s0, s1);
    const unsigned char *b = (const unsigned char *)src;
    for (uint32_t i = 0; i < N / 2 - 1; i++) {
        uint32_t x = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        assert_int_equal(s0[i], (x >> 23) & 0xFF);
        assert_int_equal(s1[3 * i], ((x >> 24) & 0x80) | ((x >> 16) & 0x7F));
        assert_int_equal(s1[3 * i + 1], (x >> 8) & 0xFF);
        assert_int_equal(s1[3 * i + 2], x & 0xFF);
    }
    nm_pack_join(NM_PACK_F32, s0, s1, n32, back);
    assert_memory_equal(back, src, n32);
    free(src);
    free(s0);
    free(s1);
    free(back);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s/nomoat-pack-test.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transform_layouts),
        cmocka_unit_test(test_roundtrip_gguf),
        cmocka_unit_test(test_roundtrip_plain_files),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_damage_detected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
