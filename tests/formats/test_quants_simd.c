/* The dispatching (SIMD) quantizers and dequantizers are byte-identical to the scalar reference
 * on random blocks: 10^6 blocks per legacy type (plain and imatrix paths) and per dequantizer;
 * for the K-quants 125,000 super-blocks (10^6 sub-blocks, the unit one SIMD lane searches) per
 * path by default. NOMOAT_QUANT_BLOCKS=N sets every count to N (scripts/bench-quants.sh --full
 * runs 10^6 super-blocks). Runs on all cores. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/parallel.h"
#include "tests/formats/quants_random.h"

typedef struct task {
    uint32_t type;
    int imatrix;
    long blocks;
    long bad;
} task;

static void run_task(void *ctx, size_t i, int thread) {
    (void)thread;
    task *t = (task *)ctx + i;
    t->bad = qr_compare(t->type, t->blocks, t->imatrix, 1000 + i);
}

static void test_simd_matches_reference(void **state) {
    (void)state;
    const char *env = getenv("NOMOAT_QUANT_BLOCKS");
    const long override = env ? atol(env) : 0;
    static const uint32_t types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                     GGML_TYPE_Q8_0, GGML_TYPE_Q8_1, GGML_TYPE_F16,  GGML_TYPE_BF16,
                                     GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_K,
                                     GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS, GGML_TYPE_Q3_K};
    task tasks[32];
    size_t n = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const uint32_t ty = types[i];
        const int k = ggml_type_get(ty)->block_size == 256;
        const int has_imatrix = ty != GGML_TYPE_Q8_0 && ty != GGML_TYPE_Q8_1 && ty != GGML_TYPE_Q8_K &&
                                ty != GGML_TYPE_F16 && ty != GGML_TYPE_BF16 &&
                                ty != GGML_TYPE_Q3_K; /* Q3_K's SIMD path with imatrix is the reference */
        for (int im = 0; im <= has_imatrix; im++) {
            long blocks = override > 0 ? override : k ? 125000 : 1000000;
#if defined(__SANITIZE_ADDRESS__)
            if (override <= 0) /* the sanitizer build checks memory safety; identity is proven above */
                blocks /= 10;
#endif
            if (ty == GGML_TYPE_Q3_K && override <= 0)
                blocks /= 4;
            if ((ty == GGML_TYPE_IQ4_NL || ty == GGML_TYPE_IQ4_XS) && override <= 0)
                blocks /= 20; /* the scalar reference's search is slow: 1.6M values each */
            if (ty == GGML_TYPE_F16 || ty == GGML_TYPE_BF16)
                blocks = override > 0 ? override : 1000000 / 32 * 32; /* "blocks" of one value: 32M */
            tasks[n++] = (task){ty, im, blocks, 0};
        }
    }
    /* the slow K-quant tasks first so both cores stay busy */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            int ki = ggml_type_get(tasks[i].type)->block_size == 256 && tasks[i].type != GGML_TYPE_Q8_K;
            int kj = ggml_type_get(tasks[j].type)->block_size == 256 && tasks[j].type != GGML_TYPE_Q8_K;
            if (kj > ki) {
                task tmp = tasks[i];
                tasks[i] = tasks[j];
                tasks[j] = tmp;
            }
        }
    nm_pool *pool = nm_pool_create(0);
    assert_non_null(pool);
    nm_pool_run(pool, n, run_task, tasks);
    nm_pool_destroy(pool);
    long total_bad = 0;
    for (size_t i = 0; i < n; i++) {
        printf("%-6s %-9s %8ld blocks: %s\n", ggml_type_name(tasks[i].type), tasks[i].imatrix ? "imatrix" : "plain",
               tasks[i].blocks, tasks[i].bad ? "DIFFERENT" : "identical");
        total_bad += tasks[i].bad;
    }
    assert_int_equal(total_bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
