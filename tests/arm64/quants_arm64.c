/* arm64 cross test, run under qemu-user by `make test-arm64`: the NEON kernels are byte-identical
 * to the scalar reference, and both reproduce llama.cpp's quant-vectors (and the FORMATS.md §4.8
 * imatrix self-checks) on arm64 too. Plain C (no cmocka for arm64); exit status 0 = all passed.
 * Usage: quants_arm64 DATA_DIR [LEGACY_BLOCKS [K_SUPERBLOCKS]] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"
#include "formats/quants.h"
#include "tests/formats/quants_random.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                            \
    do {                                                                                            \
        checks++;                                                                                   \
        if (!(cond)) {                                                                              \
            failures++;                                                                             \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                                  \
        }                                                                                           \
    } while (0)

typedef int (*quantize_fn)(uint32_t, const float *, void *, int64_t, int64_t, const float *, nm_error *);

static void check_vectors(const char *dir, const char *file, uint32_t type) {
    char path[4096];
    qv_file in, ref;
    snprintf(path, sizeof path, "%s/input-f32.gguf", dir);
    if (qv_load(path, &in) != 0) {
        CHECK(0, "cannot read %s", path);
        return;
    }
    snprintf(path, sizeof path, "%s/%s.gguf", dir, file);
    if (qv_load(path, &ref) != 0) {
        CHECK(0, "cannot read %s", path);
        free(in.buf);
        return;
    }
    for (size_t i = 0; i < ref.n_tensors; i++) {
        const qv_tensor *r = &ref.t[i], *src = qv_find(&in, r->name);
        CHECK(src && r->type == type, "%s %s: tensor missing or of another type", file, r->name);
        if (!src || r->type != type)
            continue;
        const int64_t n = r->ne[0], rows = r->ne[1];
        size_t row_size;
        ggml_row_size(type, (uint64_t)n, &row_size);
        float *x = malloc((size_t)(n * rows) * 4), *ya = malloc((size_t)n * 4), *yb = malloc((size_t)n * 4);
        uint8_t *out = malloc(row_size * (size_t)rows);
        memcpy(x, src->data, (size_t)(n * rows) * 4);
        const quantize_fn fns[2] = {nm_quantize_rows_ref, nm_quantize_rows};
        for (int k = 0; k < 2; k++) {
            nm_error err;
            int rc = fns[k](type, x, out, rows, n, NULL, &err);
            CHECK(rc == 0 && memcmp(out, r->data, row_size * (size_t)rows) == 0, "%s %s: %s output differs",
                  file, r->name, k ? "NEON" : "reference");
        }
        int same = 1;
        for (int64_t row = 0; row < rows; row++) {
            nm_dequantize_row(type, r->data + row * (int64_t)row_size, ya, n);
            nm_dequantize_row_ref(type, r->data + row * (int64_t)row_size, yb, n);
            same &= memcmp(ya, yb, (size_t)n * 4) == 0;
        }
        CHECK(same, "%s %s: NEON dequantization differs", file, r->name);
        free(x);
        free(ya);
        free(yb);
        free(out);
    }
    free(in.buf);
    free(ref.buf);
}

/* FORMATS.md §4.8: the imatrix paths, which the quant-vectors do not cover. */
static void check_self_vectors(void) {
    static const struct {
        uint32_t type;
        int imatrix;
        size_t size;
        uint32_t hash;
    } cases[] = {
        {GGML_TYPE_Q4_K, 0, 144, 0xf6319947u}, {GGML_TYPE_Q5_K, 0, 176, 0xeb8058deu},
        {GGML_TYPE_Q6_K, 0, 210, 0xd308644cu}, {GGML_TYPE_Q4_K, 1, 144, 0xe1099304u},
        {GGML_TYPE_Q5_K, 1, 176, 0x1d1a6265u}, {GGML_TYPE_Q6_K, 1, 210, 0x94fd56f0u},
        {GGML_TYPE_Q8_K, 0, 292, 0x06ebb5edu},
    };
    float x[256], qw[256];
    for (int i = 0; i < 256; i++) {
        x[i] = (float)(((37 * i) % 64) - 32) * (float)(1 + i / 32) / 64;
        qw[i] = 0.5f * (float)(1 + i % 4);
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t out[292];
        nm_error err;
        for (int k = 0; k < 2; k++) {
            int rc = (k ? nm_quantize_rows : nm_quantize_rows_ref)(cases[c].type, x, out, 1, 256,
                                                                   cases[c].imatrix ? qw : NULL, &err);
            CHECK(rc == 0 && fnv1a(out, cases[c].size) == cases[c].hash, "§4.8 %s%s (%s): hash %08x",
                  ggml_type_name(cases[c].type), cases[c].imatrix ? "+imatrix" : "", k ? "NEON" : "reference",
                  fnv1a(out, cases[c].size));
        }
    }
}

typedef struct task {
    uint32_t type;
    int imatrix;
    long blocks, bad;
} task;
static task tasks[32];
static int n_tasks, next_task;
static pthread_mutex_t task_lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&task_lock);
        int i = next_task++;
        pthread_mutex_unlock(&task_lock);
        if (i >= n_tasks)
            return NULL;
        tasks[i].bad = qr_compare(tasks[i].type, tasks[i].blocks, tasks[i].imatrix, 2000 + (uint64_t)i);
        printf("  done %s%s\n", ggml_type_name(tasks[i].type), tasks[i].imatrix ? "+imatrix" : "");
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: quants_arm64 DATA_DIR [LEGACY_BLOCKS [K_SUPERBLOCKS]]\n");
        return 2;
    }
    const long legacy_blocks = argc > 2 ? atol(argv[2]) : 1000000;
    const long k_blocks = argc > 3 ? atol(argv[3]) : 20000;
    printf("NEON in use: %s\n", nm_cpu()->neon ? "yes" : "NO (NOMOAT_NO_SIMD set?)");
    CHECK(nm_cpu()->neon || getenv("NOMOAT_NO_SIMD"), "NEON not detected");
    static const struct {
        const char *file;
        uint32_t type;
    } vectors[] = {{"Q4_0", GGML_TYPE_Q4_0}, {"Q4_1", GGML_TYPE_Q4_1}, {"Q5_0", GGML_TYPE_Q5_0},
                   {"Q5_1", GGML_TYPE_Q5_1}, {"Q8_0", GGML_TYPE_Q8_0}, {"Q4_K_S", GGML_TYPE_Q4_K},
                   {"Q5_K_S", GGML_TYPE_Q5_K}, {"Q6_K", GGML_TYPE_Q6_K},  {"Q2_K", GGML_TYPE_Q2_K},
                   {"Q3_K", GGML_TYPE_Q3_K},     {"IQ4_NL", GGML_TYPE_IQ4_NL}, {"IQ4_XS", GGML_TYPE_IQ4_XS},
                   {"TQ1_0", GGML_TYPE_TQ1_0},   {"TQ2_0", GGML_TYPE_TQ2_0}};
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
        check_vectors(argv[1], vectors[i].file, vectors[i].type);
    check_self_vectors();
    printf("quant-vectors and §4.8 self-checks: %d checks, %d failed\n", checks, failures);
    /* random blocks: every (type, path) task on two threads (qemu-user runs them in parallel) */
    static const uint32_t types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q4_0,
                                     GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
                                     GGML_TYPE_Q8_1, GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_K};
    n_tasks = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const int k = ggml_type_get(types[i])->block_size == 256;
        const int has_imatrix = types[i] != GGML_TYPE_Q8_0 && types[i] != GGML_TYPE_Q8_1 &&
                                types[i] != GGML_TYPE_Q8_K && types[i] != GGML_TYPE_F16 && types[i] != GGML_TYPE_BF16;
        for (int im = 0; im <= has_imatrix; im++)
            tasks[n_tasks++] = (task){types[i], im, k ? k_blocks : legacy_blocks, 0};
    }
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, worker, NULL);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    for (int i = 0; i < n_tasks; i++) {
        CHECK(tasks[i].bad == 0, "%s%s: NEON differs from reference on random blocks", ggml_type_name(tasks[i].type),
              tasks[i].imatrix ? "+imatrix" : "");
        printf("%-6s %-8s %8ld random blocks: %s\n", ggml_type_name(tasks[i].type), tasks[i].imatrix ? "imatrix" : "plain",
               tasks[i].blocks, tasks[i].bad ? "DIFFERENT" : "identical");
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
