/* Replays the SentencePiece fuzz targets' seeds and every input the fuzzers once found
 * (tests/fuzz/{seeds,regress}/{spm_model,tokenizer}/) through the same checks the fuzzers make,
 * so a fixed crash stays fixed without clang or libFuzzer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define LLVMFuzzerTestOneInput fuzz_spm_model_one
#include "tests/fuzz/fuzz_spm_model.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "tests/fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput

static int replay_dir(const char *kind, const char *target, int (*fn)(const uint8_t *, size_t)) {
    const char *root = getenv("NOMOAT_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", root ? root : ".", kind, target);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int count = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        uint8_t *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        fn(buf, n); /* aborts (failing this test) on any broken invariant */
        free(buf);
        count++;
    }
    closedir(d);
    return count;
}

static void test_spm_model_inputs(void **state) {
    (void)state;
    int n = replay_dir("seeds", "spm_model", fuzz_spm_model_one) + replay_dir("regress", "spm_model", fuzz_spm_model_one);
    assert_true(n >= 3);
}

static void test_tokenizer_inputs(void **state) {
    (void)state;
    int n = replay_dir("seeds", "tokenizer", fuzz_tokenizer_one) + replay_dir("regress", "tokenizer", fuzz_tokenizer_one);
    assert_true(n >= 5);
    for (int i = 0; i < 3; i++) {
        spm_tokenizer_free(fz_tok[i]);
        spm_vocab_free(&fz_vocab[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_model_inputs),
        cmocka_unit_test(test_tokenizer_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
