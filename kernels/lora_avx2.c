/* AVX2 LoRA merge product (lora.h): eight consecutive outputs per register, each lane running
 * the scalar reference's order for its own output. */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool nm_lora_delta_row_avx2(int64_t n, int r, const float *coef, const float *basis, size_t basis_stride,
                            float scale, bool tinyblas, const float *base, float *out);

static inline __m256 dot8_tinyblas(int r, const float *coef, const float *b, size_t stride) {
    __m256 acc[8];
    for (int l = 0; l < 8; l++) acc[l] = _mm256_setzero_ps();
    for (int k = 0; k < r; k += 8)
        for (int l = 0; l < 8; l++)
            acc[l] = _mm256_fmadd_ps(_mm256_set1_ps(coef[k + l]), _mm256_loadu_ps(b + (size_t)(k + l) * stride), acc[l]);
    const __m256 s0 = _mm256_add_ps(acc[0], acc[4]), s1 = _mm256_add_ps(acc[1], acc[5]);
    const __m256 s2 = _mm256_add_ps(acc[2], acc[6]), s3 = _mm256_add_ps(acc[3], acc[7]);
    return _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
}

static inline __m256 dot8_vec(int r, const float *coef, const float *b, size_t stride) {
    __m256 acc[32];
    const int np = r & ~31;
    for (int j = 0; j < 32; j++) acc[j] = _mm256_setzero_ps();
    for (int k = 0; k < np; k++)
        acc[k % 32] = _mm256_fmadd_ps(_mm256_set1_ps(coef[k]), _mm256_loadu_ps(b + (size_t)k * stride), acc[k % 32]);
    /* acc[8v + l] is lane l of the reference's vector v */
    __m256 v[8];
    for (int l = 0; l < 8; l++)
        v[l] = _mm256_add_ps(_mm256_add_ps(acc[l], acc[16 + l]), _mm256_add_ps(acc[8 + l], acc[24 + l]));
    const __m256 t0 = _mm256_add_ps(v[0], v[4]), t1 = _mm256_add_ps(v[1], v[5]);
    const __m256 t2 = _mm256_add_ps(v[2], v[6]), t3 = _mm256_add_ps(v[3], v[7]);
    __m256 s = _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3));
    for (int k = np; k < r; k++)
        s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(coef[k]), _mm256_loadu_ps(b + (size_t)k * stride)));
    return s;
}

bool nm_lora_delta_row_avx2(int64_t n, int r, const float *coef, const float *basis, size_t basis_stride,
                            float scale, bool tinyblas, const float *base, float *out) {
    enum { TAIL_RANK = 128 };
    if (n % 8 != 0 && r > TAIL_RANK) return false; /* a ragged tail of a very wide rank: the reference */
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 d = tinyblas ? dot8_tinyblas(r, coef, basis + i, basis_stride) : dot8_vec(r, coef, basis + i, basis_stride);
        _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(base + i), _mm256_mul_ps(d, vs)));
    }
    if (i == n) return true;
    /* the last n mod 8 outputs: the same lanes on a zero-padded copy */
    float b[8], o[8], tail[8 * TAIL_RANK];
    const int left = (int)(n - i);
    for (int k = 0; k < r; k++)
        for (int l = 0; l < 8; l++) tail[k * 8 + l] = l < left ? basis[(size_t)k * basis_stride + i + l] : 0.0f;
    for (int l = 0; l < 8; l++) b[l] = l < left ? base[i + l] : 0.0f;
    const __m256 d = tinyblas ? dot8_tinyblas(r, coef, tail, 8) : dot8_vec(r, coef, tail, 8);
    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(b), _mm256_mul_ps(d, vs)));
    for (int l = 0; l < left; l++) out[i + l] = o[l];
    return true;
}
