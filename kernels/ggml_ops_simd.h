/* Private: the AVX2/FMA/F16C build of ggml_ops_impl.h (ggml_ops_avx2.c). */
#ifndef NOMOAT_GGML_OPS_SIMD_H
#define NOMOAT_GGML_OPS_SIMD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
void nm_ggml_swiglu_avx2(int n, float *y, const float *x, const float *g);
void nm_ggml_flash_attn_avx2(bool tiled, int head_dim, int n_rows, const float *q, size_t q_stride, const float *kt,
                             size_t kt_stride, const float *v, size_t v_stride, int n_kv0, float scale, float softcap,
                             float *out, size_t out_stride, float *scratch);
/* The tiled kernel on AVX-512 (ggml_ops_avx512.c); false when the head size does not suit it. */
bool nm_ggml_fa_tiled_avx512(int head_dim, int n_rows, const float *q, size_t q_stride, const float *kt,
                             size_t kt_stride, const float *v, size_t v_stride, int n_kv0, float scale, float *out,
                             size_t out_stride);
#endif
