/* GGUF reader on hostile input: every crafted file of tests/data/hostile/MANIFEST-gguf.txt (one
 * per FORMATS.md §1.6 rule) is refused for the reason it was made for, in one printable line;
 * every gguf-* file in ../shared/fixtures/hostile/ is refused; the fuzzer's seeds open; and every
 * input the fuzzer once crashed on (tests/fuzz/regress/gguf/) is replayed through
 * gguf_open_memory and, when accepted, through every accessor. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tests/testlib.h"

static const char *root(void) {
    const char *r = getenv("NOMOAT_ROOT");
    return r ? r : ".";
}

static void assert_one_line(const char *file, const char *msg) {
    if (!msg[0])
        fail_msg("%s: refused without a message", file);
    for (const char *c = msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            fail_msg("%s: message holds control byte 0x%02x: %s", file, (unsigned char)*c, msg);
}

static void test_crafted(void **state) {
    (void)state;
    char manifest[600];
    snprintf(manifest, sizeof manifest, "%s/tests/data/hostile/MANIFEST-gguf.txt", root());
    FILE *f = fopen(manifest, "r");
    assert_non_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *name = strtok(line, "\t"), *expect = strtok(NULL, "\t");
        assert_non_null(expect);
        char path[1200];
        snprintf(path, sizeof path, "%s/tests/data/hostile/%s", root(), name);
        size_t size;
        unsigned char *buf = test_read_file(path, &size);
        assert_non_null(buf);
        nm_error err = {{0}};
        gguf_reader *g = gguf_open_memory(buf, size, &err);
        if (g)
            fail_msg("%s was accepted", name);
        assert_one_line(name, err.msg);
        if (!strstr(err.msg, expect))
            fail_msg("%s: refused as \"%s\", expected a message containing \"%s\"", name, err.msg, expect);
        memset(&err, 0, sizeof err);
        g = gguf_open(path, &err); /* the mmap path says the same */
        if (g)
            fail_msg("%s was accepted by gguf_open", name);
        if (!strstr(err.msg, expect))
            fail_msg("%s: gguf_open said \"%s\", expected \"%s\"", name, err.msg, expect);
        free(buf);
        n++;
    }
    fclose(f);
    assert_true(n >= 40);
    printf("%d crafted files refused for their reason\n", n);
}

static void test_fixture_hostile(void **state) {
    (void)state;
    const char *fx = getenv("NOMOAT_FIXTURES");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/hostile", fx ? fx : "../shared/fixtures");
    DIR *d = opendir(dir);
    if (!d) {
        printf("SKIPPED: ../shared/fixtures/hostile is not on this machine\n");
        skip();
    }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "gguf-", 5) != 0)
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        nm_error err = {{0}};
        gguf_reader *g = gguf_open(path, &err);
        if (g)
            fail_msg("%s was accepted", e->d_name);
        assert_one_line(e->d_name, err.msg);
        n++;
    }
    closedir(d);
    assert_true(n >= 3);
}

static void walk(gguf_reader *g) {
    unsigned sum = 0;
    for (size_t i = 0; i < gguf_kv_count(g); i++) {
        const gguf_value *v = gguf_kv_value(g, i);
        assert_int_equal(gguf_find_key(g, gguf_kv_key(g, i)), i);
        if (v->type == GGUF_TYPE_ARRAY)
            for (uint64_t k = 0; k < v->arr.count; k++)
                sum += v->arr.type == GGUF_TYPE_STRING ? (unsigned)v->arr.strings[k].len
                                                       : (unsigned)gguf_array_i64(v, k);
    }
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        assert_ptr_equal(gguf_find_tensor(g, t->name), t);
        sum += ((const unsigned char *)t->data)[t->size - 1];
    }
    (void)sum;
}

static int replay_dir(const char *sub, bool must_open) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s", root(), sub);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t size;
        unsigned char *buf = test_read_file(path, &size);
        assert_non_null(buf);
        nm_error err = {{0}};
        gguf_reader *g = gguf_open_memory(buf, size, &err);
        if (g) {
            walk(g);
            gguf_close(g);
        } else {
            if (must_open)
                fail_msg("seed %s refused: %s", e->d_name, err.msg);
            assert_one_line(e->d_name, err.msg);
        }
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void test_fuzz_seeds_open(void **state) {
    (void)state;
    assert_true(replay_dir("seeds/gguf", true) >= 5);
}

static void test_fuzz_regressions(void **state) {
    (void)state;
    int n = replay_dir("regress/gguf", false);
    printf("%d fuzzer regression inputs replayed\n", n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted),
        cmocka_unit_test(test_fixture_hostile),
        cmocka_unit_test(test_fuzz_seeds_open),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
