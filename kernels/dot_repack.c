/* Scalar reference of ggml's kernels for repacked weights (nm_dot_tile_at in dot.h).
 *
 * On x86-64 with AVX2 ggml repacks Q4_K tensors of a multiple of 8 rows (block_q4_Kx8) and
 * multiplies them with ggml_gemm_q4_K_8x8_q8_K (4 activation rows at a time) or
 * ggml_gemv_q4_K_8x8_q8_K (one row), both in ggml-cpu/arch/x86/repack.cpp. Per output they
 * keep two float accumulators, one for the scaled quants and one for the mins, each fed by
 * fused multiply-adds of an exact integer sum times (weight d or dmin) × (activation d), and
 * return their difference:
 *   gemv: one integer sum per super-block (all 8 sub-blocks);
 *   gemm: one per pair of sub-blocks (2k, 2k+1), so four per super-block.
 * The activation rows that go through gemm are quantized by ggml_quantize_mat_q8_K_4x8, which can
 * only differ from the one-row quantizer in the sign it gives d when +max and −max both occur;
 * that flips the signs of d, the quants and the bsums together and leaves every product equal. */
#include "kernels/dot.h"

#include <math.h>
#include <string.h>

#include "kernels/dot_simd.h"
#include "formats/tensor.h"
#include "common/cpu.h"

static bool is_repacked(uint32_t wt, int64_t weight_rows) { return wt == GGML_TYPE_Q4_K && weight_rows % 8 == 0; }

/* Activation rows [first_act_row, first_act_row + n_cols) that ggml runs through its gemm. */
static int gemm_cols(const nm_dot_place *at, int n_cols) {
    const int64_t gemm_end = at->batch_rows / 4 * 4;
    if (at->first_act_row >= gemm_end) return 0;
    return gemm_end - at->first_act_row < n_cols ? (int)(gemm_end - at->first_act_row) : n_cols;
}

static inline float f16(const uint8_t *p) { return nm_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static float dot_q4_k_repacked(int64_t n, const uint8_t *w, const uint8_t *a, bool gemm) {
    float acc = 0.0f, accm = 0.0f;
    for (int64_t b = 0; b < n / 256; b++, w += 144, a += 292) {
        const uint8_t *qs = w + 16;
        const int8_t *y = (const int8_t *)(a + 4);
        int16_t bsums[16];
        memcpy(bsums, a + 260, sizeof bsums); /* little-endian host */
        int sums[4] = {0}, mins[4] = {0};     /* per pair of sub-blocks */
        for (int j = 0; j < 8; j++) {
            int sc, m, s = 0;
            nm_k4_scale_min(j, w + 4, &sc, &m);
            for (int l = 0; l < 32; l++) {
                const int q = j & 1 ? qs[32 * (j / 2) + l] >> 4 : qs[32 * (j / 2) + l] & 0x0F;
                s += q * y[32 * j + l];
            }
            sums[j / 2] += sc * s;
            mins[j / 2] += m * (bsums[2 * j] + bsums[2 * j + 1]);
        }
        float dy;
        memcpy(&dy, a, 4);
        const float d = f16(w) * dy, dmin = f16(w + 2) * dy;
        if (gemm) {
            for (int k = 0; k < 4; k++) {
                acc = fmaf((float)sums[k], d, acc);
                accm = fmaf((float)mins[k], dmin, accm);
            }
        } else {
            acc = fmaf((float)(sums[0] + sums[1] + sums[2] + sums[3]), d, acc);
            accm = fmaf((float)(mins[0] + mins[1] + mins[2] + mins[3]), dmin, accm);
        }
    }
    return acc - accm;
}

void nm_dot_tile_at_ref(uint32_t wt, const nm_dot_place *at, int64_t n, const void *w, size_t w_stride, int n_rows,
                        const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (!is_repacked(wt, at->weight_rows)) {
        nm_dot_tile_ref(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
        return;
    }
    const int g = gemm_cols(at, n_cols);
    for (int j = 0; j < n_cols; j++)
        for (int i = 0; i < n_rows; i++)
            out[(size_t)j * out_stride + (size_t)i] =
                dot_q4_k_repacked(n, (const uint8_t *)w + (size_t)i * w_stride,
                                  (const uint8_t *)act + (size_t)j * act_stride, j < g);
}

void nm_dot_tile_at(uint32_t wt, const nm_dot_place *at, int64_t n, const void *w, size_t w_stride, int n_rows,
                    const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (!is_repacked(wt, at->weight_rows)) {
        nm_dot_tile(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
        return;
    }
#if defined(__x86_64__)
    const nm_cpu_features *cpu = nm_cpu();
    if (cpu->avx2 && cpu->fma && cpu->f16c && cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512dq &&
        cpu->avx512vnni &&
        nm_dot_tile_repacked_avx512(wt, gemm_cols(at, n_cols), n, w, w_stride, n_rows, act, act_stride, n_cols, out,
                                    out_stride))
        return;
    if (cpu->avx2 && cpu->fma && cpu->f16c &&
        nm_dot_tile_repacked_avx2(wt, gemm_cols(at, n_cols), n, w, w_stride, n_rows, act, act_stride, n_cols, out,
                                  out_stride))
        return;
#endif
    nm_dot_tile_at_ref(wt, at, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
}
