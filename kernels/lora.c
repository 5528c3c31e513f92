/* Scalar reference of the LoRA merge product (lora.h). */
#include "kernels/lora.h"

#include <math.h>

#include "common/cpu.h"
#include "formats/tensor.h"

bool nm_lora_delta_rows_avx2(int64_t n, int r, const float *panel, const float *coef, int n_rows, float scale,
                             bool tinyblas, const float *base, float *out, size_t stride);

bool nm_lora_uses_tinyblas(int r, int64_t m, int64_t n_cols) { return r % 8 == 0 && m % 4 == 0 && n_cols >= 2; }

size_t nm_lora_panel_floats(int64_t n, int r) { return (size_t)((n + 7) / 8) * (size_t)r * 8; }

void nm_lora_panel(int64_t n, int r, const float *basis, size_t stride, float *panel) {
    for (int64_t i0 = 0; i0 < n; i0 += 8)
        for (int k = 0; k < r; k++)
            for (int l = 0; l < 8; l++)
                panel[(size_t)(i0 / 8) * (size_t)r * 8 + (size_t)k * 8 + (size_t)l] =
                    i0 + l < n ? basis[(size_t)k * stride + (size_t)(i0 + l)] : 0.0f;
}

/* basis[k][i] read from the panel */
static inline float at(const float *panel, int r, int k, int64_t i) {
    return panel[(size_t)(i / 8) * (size_t)r * 8 + (size_t)k * 8 + (size_t)(i % 8)];
}

static float dot_tinyblas(int r, const float *coef, const float *panel, int64_t i) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < r; k++) acc[k % 8] = fmaf(coef[k], at(panel, r, k, i), acc[k % 8]);
    const float s0 = acc[0] + acc[4], s1 = acc[1] + acc[5], s2 = acc[2] + acc[6], s3 = acc[3] + acc[7];
    return (s0 + s2) + (s1 + s3);
}

static float dot_vec(int r, const float *coef, const float *panel, int64_t i) {
    float acc[4][8] = {{0}};
    const int np = r & ~31;
    for (int k = 0; k < np; k++) acc[(k % 32) / 8][k % 8] = fmaf(coef[k], at(panel, r, k, i), acc[(k % 32) / 8][k % 8]);
    float v[8];
    for (int l = 0; l < 8; l++) v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    const float t0 = v[0] + v[4], t1 = v[1] + v[5], t2 = v[2] + v[6], t3 = v[3] + v[7];
    float s = (t0 + t1) + (t2 + t3);
    for (int k = np; k < r; k++) s += coef[k] * at(panel, r, k, i);
    return s;
}

static float widen(uint32_t type, const void *p, int64_t i) {
    switch (type) {
    case GGML_TYPE_F16: return nm_f16_to_f32(((const uint16_t *)p)[i]);
    case GGML_TYPE_BF16: return nm_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

float nm_ggml_vec_dot(uint32_t type, int64_t n, const void *x, const void *y) {
    float acc[4][8] = {{0}};
    const int64_t np = n & ~(int64_t)31;
    for (int64_t k = 0; k < np; k++) {
        float *a = &acc[(k % 32) / 8][k % 8];
        const float p = widen(type, x, k), q = widen(type, y, k);
        *a = type == GGML_TYPE_BF16 ? p * q + *a : fmaf(p, q, *a);
    }
    float reduced;
    if (type == GGML_TYPE_BF16) {
        float v[8];
        for (int l = 0; l < 8; l++) v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        const float g0 = v[4] + v[0], g1 = v[5] + v[1], g2 = v[6] + v[2], g3 = v[7] + v[3];
        reduced = (g0 + g2) + (g1 + g3);
    } else {
        float v[8];
        for (int l = 0; l < 8; l++) v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        const float t0 = v[0] + v[4], t1 = v[1] + v[5], t2 = v[2] + v[6], t3 = v[3] + v[7];
        reduced = (t0 + t1) + (t2 + t3);
    }
    if (type == GGML_TYPE_F32) {
        float s = reduced;
        for (int64_t k = np; k < n; k++) s += widen(type, x, k) * widen(type, y, k);
        return s;
    }
    double s = reduced;
    for (int64_t k = np; k < n; k++) s += (double)(widen(type, x, k) * widen(type, y, k));
    return (float)s;
}

void nm_lora_delta_rows_ref(int64_t n, int r, const float *panel, const float *coef, int n_rows, float scale,
                            bool tinyblas, const float *base, float *out, size_t stride) {
    for (int j = 0; j < n_rows; j++) {
        const float *c = coef + (size_t)j * (size_t)r, *b = base + (size_t)j * stride;
        float *o = out + (size_t)j * stride;
        for (int64_t i = 0; i < n; i++) {
            const float d = tinyblas ? dot_tinyblas(r, c, panel, i) : dot_vec(r, c, panel, i);
            o[i] = b[i] + d * scale;
        }
    }
}

void nm_lora_delta_rows(int64_t n, int r, const float *panel, const float *coef, int n_rows, float scale,
                        bool tinyblas, const float *base, float *out, size_t stride) {
#if defined(__x86_64__)
    const nm_cpu_features *cpu = nm_cpu();
    if (cpu->avx2 && cpu->fma && nm_lora_delta_rows_avx2(n, r, panel, coef, n_rows, scale, tinyblas, base, out, stride))
        return;
#endif
    nm_lora_delta_rows_ref(n, r, panel, coef, n_rows, scale, tinyblas, base, out, stride);
}
