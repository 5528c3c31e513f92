/* ggml_ops_impl.h built with -mavx2 -mfma -mf16c: fmaf becomes one instruction, f16 conversions
 * use F16C (round to nearest even, as ggml), and the per-lane loops vectorise. Same results as
 * the portable copy in ggml_ops.c. */
#include <immintrin.h>

#include "formats/ggml_ops.h"
#include "formats/ggml_ops_simd.h"

#define OPS(name) name##_avx2
#define H2F(h) _cvtsh_ss(h)
#define F2H(f) ((uint16_t)_cvtss_sh((f), _MM_FROUND_TO_NEAREST_INT))
#include "formats/ggml_ops_impl.h"

void nm_ggml_swiglu_avx2(int n, float *y, const float *x, const float *g) { swiglu_avx2(n, y, x, g); }

void nm_ggml_flash_attn_avx2(bool tiled, int head_dim, int n_rows, const float *q, size_t q_stride, const uint16_t *k,
                             const uint16_t *v, size_t kv_stride, int n_kv0, float scale, float *out,
                             size_t out_stride, float *scratch) {
    if (tiled) fa_tiled_avx2(head_dim, n_rows, q, q_stride, k, v, kv_stride, n_kv0, scale, out, out_stride, scratch);
    else fa_rows_avx2(head_dim, n_rows, q, q_stride, k, v, kv_stride, n_kv0, scale, out, out_stride, scratch);
}
