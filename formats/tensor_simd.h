/* Private: SIMD siblings of the row conversions in tensor.h (only the current arch's exist). */
#ifndef NOMOAT_TENSOR_SIMD_H
#define NOMOAT_TENSOR_SIMD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
void nm_f32_to_f16_row_avx2(const float *src, uint16_t *dst, size_t n);
void nm_f16_to_f32_row_avx2(const uint16_t *src, float *dst, size_t n);
void nm_f32_to_bf16_row_avx2(const float *src, uint16_t *dst, size_t n);
void nm_bf16_to_f32_row_avx2(const uint16_t *src, float *dst, size_t n);
bool nm_bf16_to_f16_row_avx2(const uint16_t *src, uint16_t *dst, size_t n);
void nm_f32_to_f16_row_neon(const float *src, uint16_t *dst, size_t n);
void nm_f16_to_f32_row_neon(const uint16_t *src, float *dst, size_t n);
void nm_f32_to_bf16_row_neon(const float *src, uint16_t *dst, size_t n);
void nm_bf16_to_f32_row_neon(const uint16_t *src, float *dst, size_t n);
#endif
