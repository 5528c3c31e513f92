/* Scalar reference of the LoRA merge product (lora.h). */
#include "kernels/lora.h"

#include <math.h>

#include "common/cpu.h"

bool nm_lora_delta_row_avx2(int64_t n, int r, const float *coef, const float *basis, size_t basis_stride,
                            float scale, bool tinyblas, const float *base, float *out);

bool nm_lora_uses_tinyblas(int r, int64_t m, int64_t n_cols) { return r % 8 == 0 && m % 4 == 0 && n_cols >= 2; }

static float dot_tinyblas(int r, const float *coef, const float *basis, size_t stride) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < r; k++) acc[k % 8] = fmaf(coef[k], basis[(size_t)k * stride], acc[k % 8]);
    const float s0 = acc[0] + acc[4], s1 = acc[1] + acc[5], s2 = acc[2] + acc[6], s3 = acc[3] + acc[7];
    return (s0 + s2) + (s1 + s3);
}

static float dot_vec(int r, const float *coef, const float *basis, size_t stride) {
    float acc[4][8] = {{0}};
    const int np = r & ~31;
    for (int k = 0; k < np; k++) acc[(k % 32) / 8][k % 8] = fmaf(coef[k], basis[(size_t)k * stride], acc[(k % 32) / 8][k % 8]);
    float v[8];
    for (int l = 0; l < 8; l++) v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    const float t0 = v[0] + v[4], t1 = v[1] + v[5], t2 = v[2] + v[6], t3 = v[3] + v[7];
    float s = (t0 + t1) + (t2 + t3);
    for (int k = np; k < r; k++) s += coef[k] * basis[(size_t)k * stride];
    return s;
}

void nm_lora_delta_row_ref(int64_t n, int r, const float *coef, const float *basis, size_t basis_stride,
                           float scale, bool tinyblas, const float *base, float *out) {
    for (int64_t i = 0; i < n; i++) {
        const float d = tinyblas ? dot_tinyblas(r, coef, basis + i, basis_stride) : dot_vec(r, coef, basis + i, basis_stride);
        out[i] = base[i] + d * scale;
    }
}

void nm_lora_delta_row(int64_t n, int r, const float *coef, const float *basis, size_t basis_stride, float scale,
                       bool tinyblas, const float *base, float *out) {
#if defined(__x86_64__)
    const nm_cpu_features *cpu = nm_cpu();
    if (cpu->avx2 && cpu->fma && nm_lora_delta_row_avx2(n, r, coef, basis, basis_stride, scale, tinyblas, base, out))
        return;
#endif
    nm_lora_delta_row_ref(n, r, coef, basis, basis_stride, scale, tinyblas, base, out);
}
