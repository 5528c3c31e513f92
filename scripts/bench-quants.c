/* Single-thread kernel throughput of the block quantizers: for each type, quantize and
 * dequantize a buffer of normally distributed floats with the scalar reference and with the
 * dispatching (SIMD) path, and print GB/s of f32 data (4 bytes per value) for each.
 * Built and run by scripts/bench-quants.sh. Usage: bench-quants [MB] [TYPE...] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "formats/quants.h"

static double now(void) {
    struct timespec ts;
    /* CPU time of this thread: stable on a shared machine; the kernels never block */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t state = 88172645463325252ull;
static double unit(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return ((double)(state >> 11) + 0.5) * 0x1p-53;
}

int main(int argc, char **argv) {
    double mb = argc > 1 ? atof(argv[1]) : 64;
    const int64_t n_per_row = 4096;
    int64_t rows = (int64_t)(mb * 1e6 / 4 / (double)n_per_row);
    if (rows < 1)
        rows = 1;
    const int64_t n = rows * n_per_row;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *qw = malloc((size_t)n_per_row * 4);
    uint8_t *q = malloc((size_t)n * 4);
    if (!x || !y || !qw || !q)
        return 1;
    for (int64_t i = 0; i < n; i++) /* Box-Muller normal values, like trained weights */
        x[i] = (float)(0.02 * sqrt(-2 * log(unit())) * cos(6.283185307179586 * unit()));
    for (int64_t i = 0; i < n_per_row; i++)
        qw[i] = (float)(0.1 + unit());
    static const char *all[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K",
                                "Q8_K", "F16", "BF16", NULL};
    const char **types = argc > 2 ? (const char **)argv + 2 : all;
    printf("%-10s %12s %12s %12s %12s   (one thread, GB/s of f32 per CPU-second, best of 3, %.0f MB)\n", "type", "quant ref",
           "quant simd", "dequant ref", "dequant simd", (double)n * 4 / 1e6);
    for (int t = 0; types[t] && (argc > 2 ? t < argc - 2 : 1); t++) {
        int imatrix = 0;
        char name[32];
        snprintf(name, sizeof name, "%s", types[t]);
        char *plus = strchr(name, '+');
        if (plus) { /* "Q4_K+imatrix" */
            *plus = 0;
            imatrix = 1;
        }
        int type = ggml_type_from_name(name);
        if (type < 0) {
            fprintf(stderr, "bench-quants: unknown type %s\n", name);
            return 1;
        }
        double gbs[4] = {0, 0, 0, 0};
        size_t row_size;
        ggml_row_size(type, n_per_row, &row_size);
        for (int rep = 0; rep < 3; rep++) { /* best of three */
            for (int k = 0; k < 2; k++) {
                nm_error err;
                double t0 = now();
                int rc = k ? nm_quantize_rows(type, x, q, rows, n_per_row, imatrix ? qw : NULL, &err)
                           : nm_quantize_rows_ref(type, x, q, rows, n_per_row, imatrix ? qw : NULL, &err);
                double t1 = now();
                if (rc) {
                    fprintf(stderr, "bench-quants: %s\n", err.msg);
                    return 1;
                }
                double g = (double)n * 4 / (t1 - t0) / 1e9;
                gbs[k] = g > gbs[k] ? g : gbs[k];
                t0 = now();
                for (int64_t r = 0; r < rows; r++) {
                    if (k)
                        nm_dequantize_row(type, q + r * row_size, y + r * n_per_row, n_per_row);
                    else
                        nm_dequantize_row_ref(type, q + r * row_size, y + r * n_per_row, n_per_row);
                }
                t1 = now();
                g = (double)n * 4 / (t1 - t0) / 1e9;
                gbs[2 + k] = g > gbs[2 + k] ? g : gbs[2 + k];
            }
        }
        printf("%-12s %10.3f %12.3f %12.3f %12.3f   x%.1f\n", types[t], gbs[0], gbs[1], gbs[2], gbs[3], gbs[1] / gbs[0]);
        fflush(stdout);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS %.1f MB\n", (double)ru.ru_maxrss / 1024);
    free(x);
    free(y);
    free(qw);
    free(q);
    return 0;
}
