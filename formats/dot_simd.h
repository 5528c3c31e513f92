/* Private: SIMD siblings of the kernels in dot.h. Each returns false when it has no kernel for
 * the type (the caller then uses the scalar reference). */
#ifndef NOMOAT_DOT_SIMD_H
#define NOMOAT_DOT_SIMD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
bool nm_dot_quantize_act_avx2(uint32_t weight_type, const float *x, void *dst, int64_t n);
bool nm_dot_avx2(uint32_t weight_type, int64_t n, const void *w, const void *act, float *out);
bool nm_dot_tile_avx2(uint32_t weight_type, int64_t n, const void *w, size_t w_stride, int n_rows,
                      const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride);
/* Q4_K in the order of ggml's repacked kernels: columns [0, gemm_cols) as its gemm, the rest as
 * its gemv (dot_repack.c). */
bool nm_dot_tile_repacked_avx2(uint32_t weight_type, int gemm_cols, int64_t n, const void *w, size_t w_stride,
                               int n_rows, const void *act, size_t act_stride, int n_cols, float *out,
                               size_t out_stride);
#endif
