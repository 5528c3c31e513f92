/* Benchmark driver for scripts/bench-formats.sh (built by the script, not by `make`):
 *   bench_formats conv [MELEMS]     f32->f16, f16->f32, f32->bf16, bf16->f32, one thread,
 *                                   scalar reference and this CPU's SIMD rows, GB/s of input
 *   bench_formats st PATH           st_open + read every byte of every tensor (mmap)
 *   bench_formats gguf PATH         gguf_open + read every byte of every tensor (mmap)
 * Each line: "<what> <GB/s> <seconds> <bytes>"; the last line: peak RSS. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/tensor.h"
#include "common/cpu.h"
#include "formats/tensor_simd.h"

static volatile uint64_t sink;

/* Sum of 64-bit words: forces every page in and every byte through the CPU. */
static uint64_t touch(const void *data, size_t size) {
    const unsigned char *p = data;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 32 <= size; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        a += w[0], b += w[1], c += w[2], d += w[3];
    }
    for (; i < size; i++)
        a += p[i];
    return a + b + c + d;
}

static void report(const char *what, double secs, uint64_t bytes) {
    if (!bytes) {
        printf("%-28s %8s      %8.3f s\n", what, "-", secs);
        return;
    }
    printf("%-28s %8.2f GB/s %8.3f s %14llu bytes\n", what, secs > 0 ? bytes / secs / 1e9 : 0, secs,
           (unsigned long long)bytes);
}

typedef void (*row_fn)(const void *, void *, size_t);

static double best_of(int reps, row_fn fn, const void *src, void *dst, size_t n) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = nm_now();
        fn(src, dst, n);
        double t = nm_now() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

static int bench_conv(size_t n) {
    float *f = malloc(n * 4), *g = malloc(n * 4);
    uint16_t *h = malloc(n * 2);
    if (!f || !g || !h)
        return fprintf(stderr, "bench_formats: out of memory\n"), 1;
    uint32_t w = 1;
    for (size_t i = 0; i < n; i++) { /* normal-ish weights, no NaN */
        w = w * 1664525u + 1013904223u;
        f[i] = ((float)(w >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    nm_f32_to_f16_row_ref(f, h, n); /* fault the pages in */
    nm_f16_to_f32_row_ref(h, g, n);
    struct {
        const char *name;
        row_fn fn;
        size_t in_bytes;
        int from_f32;
    } cases[] = {
        {"f32->f16  scalar", (row_fn)nm_f32_to_f16_row_ref, 4, 1},
        {"f16->f32  scalar", (row_fn)nm_f16_to_f32_row_ref, 2, 0},
        {"f32->bf16 scalar", (row_fn)nm_f32_to_bf16_row_ref, 4, 1},
        {"bf16->f32 scalar", (row_fn)nm_bf16_to_f32_row_ref, 2, 0},
#if defined(__x86_64__)
        {"f32->f16  avx2+f16c", (row_fn)nm_f32_to_f16_row_avx2, 4, 1},
        {"f16->f32  avx2+f16c", (row_fn)nm_f16_to_f32_row_avx2, 2, 0},
        {"f32->bf16 avx2", (row_fn)nm_f32_to_bf16_row_avx2, 4, 1},
        {"bf16->f32 avx2", (row_fn)nm_bf16_to_f32_row_avx2, 2, 0},
#elif defined(__aarch64__)
        {"f32->f16  neon", (row_fn)nm_f32_to_f16_row_neon, 4, 1},
        {"f16->f32  neon", (row_fn)nm_f16_to_f32_row_neon, 2, 0},
        {"f32->bf16 neon", (row_fn)nm_f32_to_bf16_row_neon, 4, 1},
        {"bf16->f32 neon", (row_fn)nm_bf16_to_f32_row_neon, 2, 0},
#endif
        {"f32->f16  dispatched", (row_fn)nm_f32_to_f16_row, 4, 1},
        {"bf16->f32 dispatched", (row_fn)nm_bf16_to_f32_row, 2, 0},
    };
    const nm_cpu_features *cpu = nm_cpu();
    printf("# %zu elements per run, best of 3, GB/s of input; SIMD %s%s\n", n,
           cpu->avx2 && cpu->f16c ? "avx2+f16c available" : cpu->neon ? "neon available" : "unavailable",
           getenv("NOMOAT_NO_SIMD") ? " (NOMOAT_NO_SIMD set: dispatched = scalar)" : "");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
#if defined(__x86_64__)
        if (strstr(cases[c].name, "avx2") && !(__builtin_cpu_supports("avx2") && cpu->f16c) && !getenv("NOMOAT_NO_SIMD"))
            continue;
#endif
        double t = cases[c].from_f32 ? best_of(3, cases[c].fn, f, h, n) : best_of(3, cases[c].fn, h, g, n);
        report(cases[c].name, t, (uint64_t)n * cases[c].in_bytes);
    }
    sink = h[n / 2] + (uint64_t)g[n / 3];
    free(f);
    free(g);
    free(h);
    return 0;
}

static int bench_st(const char *path) {
    nm_error err = {{0}};
    double t0 = nm_now();
    st_model *m = st_open(path, &err);
    if (!m)
        return fprintf(stderr, "bench_formats: %s: %s\n", path, err.msg), 1;
    double t1 = nm_now();
    uint64_t bytes = 0, s = 0;
    for (size_t i = 0; i < st_tensor_count(m); i++) {
        const st_tensor *t = st_tensor_at(m, i);
        s += touch(t->data, t->size);
        bytes += t->size;
    }
    double t2 = nm_now();
    sink = s;
    report("safetensors open", t1 - t0, 0);
    report("safetensors read all", t2 - t0, bytes);
    st_close(m);
    return 0;
}

static int bench_gguf(const char *path) {
    nm_error err = {{0}};
    double t0 = nm_now();
    gguf_reader *g = gguf_open(path, &err);
    if (!g)
        return fprintf(stderr, "bench_formats: %s: %s\n", path, err.msg), 1;
    double t1 = nm_now();
    uint64_t bytes = 0, s = 0;
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        s += touch(t->data, t->size);
        bytes += t->size;
    }
    double t2 = nm_now();
    sink = s;
    report("gguf open", t1 - t0, 0);
    report("gguf read all", t2 - t0, bytes);
    gguf_close(g);
    return 0;
}

int main(int argc, char **argv) {
    int rc;
    if (argc >= 2 && !strcmp(argv[1], "conv"))
        rc = bench_conv((size_t)(argc > 2 ? atof(argv[2]) : 64) * 1000000);
    else if (argc == 3 && !strcmp(argv[1], "st"))
        rc = bench_st(argv[2]);
    else if (argc == 3 && !strcmp(argv[1], "gguf"))
        rc = bench_gguf(argv[2]);
    else {
        fprintf(stderr, "usage: bench_formats conv [MELEMS] | st PATH | gguf PATH\n");
        return 2;
    }
    char peak[32], anon[32];
    printf("peak RSS %s (file pages of the mapping included), anonymous now %s\n",
           nm_format_bytes(nm_peak_rss(), peak, sizeof peak), nm_format_bytes(nm_rss_anon(), anon, sizeof anon));
    return rc;
}
