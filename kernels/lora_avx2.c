/* AVX2 LoRA merge product (lora.h): eight consecutive outputs per register, two rows sharing each
 * load of the panel, every lane running the scalar reference's order for its own output. */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool nm_lora_delta_rows_avx2(int64_t n, int r, const float *panel, const float *coef, int n_rows, float scale,
                             bool tinyblas, const float *base, float *out, size_t stride);

/* The chain of one accumulator (elements k = first, first + step, ... below end) for two rows. */
static inline void chain2(const float *blk, int first, int end, int step, const float *c0, const float *c1,
                          __m256 *x0, __m256 *x1) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int k = first; k < end; k += step) {
        const __m256 p = _mm256_loadu_ps(blk + (size_t)k * 8);
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(c0[k]), p, a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(c1[k]), p, a1);
    }
    *x0 = a0;
    *x1 = a1;
}

/* tinyBLAS: eight chains (k mod 8), folded (s0+s4 + s2+s6) + (s1+s5 + s3+s7). */
static inline void run_tinyblas(const float *blk, int r, const float *c0, const float *c1, __m256 *d0, __m256 *d1) {
    __m256 a0, a1, b0, b1, t0, t1, u0, u1;
    chain2(blk, 0, r, 8, c0, c1, &a0, &a1);
    chain2(blk, 4, r, 8, c0, c1, &b0, &b1);
    t0 = _mm256_add_ps(a0, b0), t1 = _mm256_add_ps(a1, b1); /* s0 */
    chain2(blk, 2, r, 8, c0, c1, &a0, &a1);
    chain2(blk, 6, r, 8, c0, c1, &b0, &b1);
    t0 = _mm256_add_ps(t0, _mm256_add_ps(a0, b0)), t1 = _mm256_add_ps(t1, _mm256_add_ps(a1, b1)); /* s0 + s2 */
    chain2(blk, 1, r, 8, c0, c1, &a0, &a1);
    chain2(blk, 5, r, 8, c0, c1, &b0, &b1);
    u0 = _mm256_add_ps(a0, b0), u1 = _mm256_add_ps(a1, b1); /* s1 */
    chain2(blk, 3, r, 8, c0, c1, &a0, &a1);
    chain2(blk, 7, r, 8, c0, c1, &b0, &b1);
    u0 = _mm256_add_ps(u0, _mm256_add_ps(a0, b0)), u1 = _mm256_add_ps(u1, _mm256_add_ps(a1, b1)); /* s1 + s3 */
    *d0 = _mm256_add_ps(t0, u0);
    *d1 = _mm256_add_ps(t1, u1);
}

/* ggml_vec_dot_f32: 32 chains over the first r - r mod 32 elements (class k mod 32 = 8 v + l),
 * v[l] = (c[l] + c[16+l]) + (c[8+l] + c[24+l]), then ((v0+v4) + (v1+v5)) + ((v2+v6) + (v3+v7)),
 * then the rest one rounded product at a time. */
static inline void run_vec(const float *blk, int r, const float *c0, const float *c1, __m256 *d0, __m256 *d1) {
    const int np = r & ~31;
    __m256 v0[8], v1[8];
    for (int l = 0; l < 8; l++) {
        __m256 a0, a1, b0, b1, e0, e1, f0, f1;
        chain2(blk, l, np, 32, c0, c1, &a0, &a1);
        chain2(blk, 16 + l, np, 32, c0, c1, &b0, &b1);
        chain2(blk, 8 + l, np, 32, c0, c1, &e0, &e1);
        chain2(blk, 24 + l, np, 32, c0, c1, &f0, &f1);
        v0[l] = _mm256_add_ps(_mm256_add_ps(a0, b0), _mm256_add_ps(e0, f0));
        v1[l] = _mm256_add_ps(_mm256_add_ps(a1, b1), _mm256_add_ps(e1, f1));
    }
    __m256 s0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(v0[0], v0[4]), _mm256_add_ps(v0[1], v0[5])),
                              _mm256_add_ps(_mm256_add_ps(v0[2], v0[6]), _mm256_add_ps(v0[3], v0[7])));
    __m256 s1 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(v1[0], v1[4]), _mm256_add_ps(v1[1], v1[5])),
                              _mm256_add_ps(_mm256_add_ps(v1[2], v1[6]), _mm256_add_ps(v1[3], v1[7])));
    for (int k = np; k < r; k++) {
        const __m256 p = _mm256_loadu_ps(blk + (size_t)k * 8);
        s0 = _mm256_add_ps(s0, _mm256_mul_ps(_mm256_set1_ps(c0[k]), p));
        s1 = _mm256_add_ps(s1, _mm256_mul_ps(_mm256_set1_ps(c1[k]), p));
    }
    *d0 = s0;
    *d1 = s1;
}

/* The rows with r known to the compiler (R > 0: common ranks, chains fully unrolled; the same
 * operations in the same order) or not (R = 0). */
static inline __attribute__((always_inline)) void delta_rows(const int R, int64_t n, int r, const float *panel,
                                                             const float *coef, int n_rows, float scale, bool tinyblas,
                                                             const float *base, float *out, size_t stride) {
    if (R > 0) r = R;
    const __m256 vs = _mm256_set1_ps(scale);
    for (int j = 0; j < n_rows; j += 2) {
        const bool pair = j + 1 < n_rows;
        const float *c0 = coef + (size_t)j * (size_t)r, *c1 = pair ? c0 + r : c0;
        const float *b0 = base + (size_t)j * stride, *b1 = pair ? b0 + stride : b0;
        float *o0 = out + (size_t)j * stride, *o1 = pair ? o0 + stride : o0;
        for (int64_t i = 0; i < n; i += 8) {
            const float *blk = panel + (size_t)(i / 8) * (size_t)r * 8;
            __m256 d0, d1;
            if (tinyblas) run_tinyblas(blk, r, c0, c1, &d0, &d1);
            else run_vec(blk, r, c0, c1, &d0, &d1);
            if (i + 8 <= n) {
                const __m256 x0 = _mm256_add_ps(_mm256_loadu_ps(b0 + i), _mm256_mul_ps(d0, vs));
                const __m256 x1 = _mm256_add_ps(_mm256_loadu_ps(b1 + i), _mm256_mul_ps(d1, vs));
                _mm256_storeu_ps(o0 + i, x0);
                if (pair) _mm256_storeu_ps(o1 + i, x1);
                continue;
            }
            /* the last n mod 8 outputs: the same lanes on padded copies */
            float t0[8] = {0}, t1[8] = {0};
            const int left = (int)(n - i);
            for (int l = 0; l < left; l++) t0[l] = b0[i + l], t1[l] = b1[i + l];
            _mm256_storeu_ps(t0, _mm256_add_ps(_mm256_loadu_ps(t0), _mm256_mul_ps(d0, vs)));
            _mm256_storeu_ps(t1, _mm256_add_ps(_mm256_loadu_ps(t1), _mm256_mul_ps(d1, vs)));
            for (int l = 0; l < left; l++) {
                o0[i + l] = t0[l];
                if (pair) o1[i + l] = t1[l];
            }
        }
    }
}

bool nm_lora_delta_rows_avx2(int64_t n, int r, const float *panel, const float *coef, int n_rows, float scale,
                             bool tinyblas, const float *base, float *out, size_t stride) {
    switch (tinyblas ? r : 0) {
    case 8: delta_rows(8, n, r, panel, coef, n_rows, scale, true, base, out, stride); break;
    case 16: delta_rows(16, n, r, panel, coef, n_rows, scale, true, base, out, stride); break;
    case 32: delta_rows(32, n, r, panel, coef, n_rows, scale, true, base, out, stride); break;
    case 64: delta_rows(64, n, r, panel, coef, n_rows, scale, true, base, out, stride); break;
    default: delta_rows(0, n, r, panel, coef, n_rows, scale, tinyblas, base, out, stride);
    }
    return true;
}
