/* Replays every input the pickle and zip fuzzers found (tests/fuzz/regress/{pickle,zip}) and
 * their seeds through the same entry points the fuzzers use: each must be handled without a
 * crash, a sanitizer report (under `make test SAN=1`) or a multi-line message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <cmocka.h>

#define LLVMFuzzerTestOneInput fuzz_pickle_one
#define check_msg check_msg_pickle
#include "tests/fuzz/fuzz_pickle.c"
#undef LLVMFuzzerTestOneInput
#undef check_msg
#define LLVMFuzzerTestOneInput fuzz_zip_one
#define check_msg check_msg_zip
#include "tests/fuzz/fuzz_zip.c"
#undef LLVMFuzzerTestOneInput
#undef check_msg

static size_t replay(const char *sub, int (*one)(const uint8_t *, size_t)) {
    const char *root = getenv("NOMOAT_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s", root ? root : ".", sub);
    DIR *dh = opendir(dir);
    if (!dh)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        fseek(fp, 0, SEEK_END);
        long len = ftell(fp);
        rewind(fp);
        uint8_t *buf = malloc((size_t)len + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
        fclose(fp);
        one(buf, (size_t)len);
        free(buf);
        n++;
    }
    closedir(dh);
    return n;
}

static void test_pickle_inputs(void **state) {
    (void)state;
    size_t n = replay("regress/pickle", fuzz_pickle_one) + replay("seeds/pickle", fuzz_pickle_one);
    printf("replayed %zu pickle inputs\n", n);
    assert_true(n >= 10);
}

static void test_zip_inputs(void **state) {
    (void)state;
    size_t n = replay("regress/zip", fuzz_zip_one) + replay("seeds/zip", fuzz_zip_one);
    printf("replayed %zu zip inputs\n", n);
    assert_true(n >= 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pickle_inputs),
        cmocka_unit_test(test_zip_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
