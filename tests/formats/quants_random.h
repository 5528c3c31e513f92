/* SIMD-versus-reference comparison on random blocks, shared by the cmocka test
 * (test_quants_simd.c) and the arm64 cross test run under qemu (tests/arm64/quants_arm64.c).
 * Inputs mix distributions that stress the rounding: normal, uniform, heavy tails, outliers,
 * exact ties (multiples of 1/8), values already on a quantization grid, zeros of both signs,
 * constants, one-hot blocks, tiny and large magnitudes. */
#ifndef NOMOAT_QUANTS_RANDOM_H
#define NOMOAT_QUANTS_RANDOM_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quants.h"
#include "tests/formats/quants_testlib.h"

/* Roughly normal (Irwin-Hall sum of 4 uniforms, unit variance): cheap enough for qemu. */
static inline float qr_normal(uint64_t *s) {
    return (rng_unit(s) + rng_unit(s) + rng_unit(s) + rng_unit(s) - 2.0f) * 1.7320508f;
}

/* Fills one group of n values (a block or super-block) with a randomly chosen distribution. */
static inline void qr_fill(float *x, int n, uint64_t *s) {
    const int kind = (int)(rng_next(s) % 14);
    const float scale = ldexpf(1.0f, (int)(rng_next(s) % 24) - 16); /* 2^-16 .. 2^7 */
    for (int i = 0; i < n; i++) {
        float v;
        switch (kind) {
        case 0: case 1: v = qr_normal(s) * scale; break;
        case 2: v = (rng_unit(s) - 0.5f) * scale; break;
        case 3: v = qr_normal(s) / (rng_unit(s) + 0.01f) * scale; break; /* heavy tails */
        case 4: v = (float)((int)(rng_next(s) % 33) - 16) * 0.125f * scale; break; /* ties */
        case 5: v = (float)((int)(rng_next(s) % 17) - 8); break;                    /* small integers */
        case 6: v = rng_next(s) % 3 ? 0.0f : -0.0f; break;                           /* signed zeros */
        case 7: v = scale; break; /* constant */
        case 8: v = i == (int)(rng_next(s) % (uint64_t)n) ? scale : 0.0f; break;     /* one-hot-ish */
        case 9: v = qr_normal(s) * 1e-30f; break;                                    /* tiny */
        case 10: v = qr_normal(s) * 3e3f; break;                                     /* large (f16-safe) */
        case 11: v = rng_next(s) % 5 ? qr_normal(s) * scale : 0.0f; break;          /* sparse */
        case 12: v = (float)((int)(rng_next(s) % 64) - 32) * scale / 31; break;     /* on a grid */
        default: v = -fabsf(qr_normal(s)) * scale; break;                            /* one-signed */
        }
        x[i] = v;
    }
    if (kind == 1) /* outlier */
        x[rng_next(s) % (uint64_t)n] = 40 * scale * (rng_next(s) & 1 ? 1 : -1);
    if (kind == 13 && (rng_next(s) & 1))
        for (int i = 0; i < n; i++)
            x[i] = -x[i];
}

/* Random but finite bytes for a block of `type` (the f16/f32 scales are made finite). */
static inline void qr_fill_block_bytes(uint32_t type, uint8_t *b, size_t size, uint64_t *s) {
    for (size_t i = 0; i < size; i++)
        b[i] = (uint8_t)rng_next(s);
    int f16_at[2] = {-1, -1};
    switch (type) {
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0: f16_at[0] = 0; break;
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_1:
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: f16_at[0] = 0; f16_at[1] = 2; break;
    case GGML_TYPE_Q6_K: f16_at[0] = 208; break;
    case GGML_TYPE_Q8_K: {
        float d = qr_normal(s);
        memcpy(b, &d, 4);
        break;
    }
    default: break;
    }
    for (int k = 0; k < 2; k++)
        if (f16_at[k] >= 0 && (b[f16_at[k] + 1] & 0x7C) == 0x7C)
            b[f16_at[k] + 1] &= 0xBF; /* exponent 31 -> 15: finite */
}

/* Quantizes `blocks` random blocks of `type` (32 or 256 values each) with the dispatching and
 * the reference path and compares the bytes; then dequantizes as many random blocks both ways.
 * Returns the number of mismatching chunks (0 = identical); prints the first mismatch. */
static inline long qr_compare(uint32_t type, long blocks, int with_imatrix, uint64_t seed) {
    const ggml_type_info *t = ggml_type_get(type);
    const int64_t n_per_row = t->block_size == 256 ? 1024 : 256;
    const int64_t rows_per_chunk = 64;
    const int64_t chunk_values = n_per_row * rows_per_chunk;
    size_t row_size;
    if (ggml_row_size(type, (uint64_t)n_per_row, &row_size) != 0)
        return 1;
    float *x = malloc((size_t)chunk_values * 4), *qw = malloc((size_t)n_per_row * 4);
    float *ya = malloc((size_t)chunk_values * 4), *yb = malloc((size_t)chunk_values * 4);
    uint8_t *a = malloc(row_size * rows_per_chunk), *b = malloc(row_size * rows_per_chunk);
    long bad = 0;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + type + 1;
    const long blocks_per_chunk = (long)(chunk_values / t->block_size);
    for (long done = 0; done < blocks; done += blocks_per_chunk) {
        for (int64_t g = 0; g < chunk_values; g += t->block_size)
            qr_fill(x + g, (int)t->block_size, &s);
        for (int64_t i = 0; i < n_per_row; i++)
            qw[i] = rng_next(&s) % 16 ? rng_unit(&s) * ldexpf(1.0f, (int)(rng_next(&s) % 12) - 6) : 0.0f;
        nm_error ea, eb;
        int ra = nm_quantize_rows(type, x, a, rows_per_chunk, n_per_row, with_imatrix ? qw : NULL, &ea);
        int rb = nm_quantize_rows_ref(type, x, b, rows_per_chunk, n_per_row, with_imatrix ? qw : NULL, &eb);
        if (ra != rb || (ra == 0 && memcmp(a, b, row_size * rows_per_chunk) != 0)) {
            if (!bad++) {
                size_t at = 0;
                while (ra == 0 && at < row_size * rows_per_chunk && a[at] == b[at])
                    at++;
                const size_t blk = at / t->type_size;
                fprintf(stderr, "%s%s: SIMD differs from reference (rc %d/%d) at byte %zu, block %zu; input:\n",
                        t->name, with_imatrix ? "+imatrix" : "", ra, rb, at, blk);
                for (uint32_t i = 0; i < t->block_size; i++)
                    fprintf(stderr, "%a%s", (double)x[blk * t->block_size + i], i % 8 == 7 ? "\n" : " ");
            }
        }
        /* dequantization of random (finite-scaled) bytes */
        for (int64_t r = 0; r < rows_per_chunk; r++)
            for (size_t k = 0; k < row_size; k += t->type_size)
                qr_fill_block_bytes(type, a + r * row_size + k, t->type_size, &s);
        for (int64_t r = 0; r < rows_per_chunk; r++) {
            nm_dequantize_row(type, a + r * row_size, ya + r * n_per_row, n_per_row);
            nm_dequantize_row_ref(type, a + r * row_size, yb + r * n_per_row, n_per_row);
        }
        if (memcmp(ya, yb, (size_t)chunk_values * 4) != 0 && !bad++)
            fprintf(stderr, "%s: SIMD dequantization differs from reference\n", t->name);
    }
    free(x);
    free(qw);
    free(ya);
    free(yb);
    free(a);
    free(b);
    return bad;
}

#endif
