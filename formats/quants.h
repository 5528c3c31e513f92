/* ggml block quantization — FORMATS.md §3–4. One scalar reference per format, byte-identical
 * to llama.cpp's reference quantizer, plus SIMD versions (quants_avx2.c, quants_neon.c) chosen at
 * run time and tested byte-identical to it. inspect, quantize, convert and verify all use these. */
#ifndef NOMOAT_QUANTS_H
#define NOMOAT_QUANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/tensor.h"

/* Types nm_quantize_rows can produce: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0. */
bool nm_quantize_supported(uint32_t type);
/* Types nm_dequantize_row can read (the above plus Q8_1, Q8_K). */
bool nm_dequantize_supported(uint32_t type);

/* Quantizes nrows rows of n_per_row floats into dst (nrows * row size bytes).
 * imatrix: NULL, or n_per_row importance weights (one per column) selecting llama.cpp's
 * imatrix search paths (FORMATS.md §3.6, §4.4). Returns 0, or -1 with a message naming the row
 * ("row 17: ...") when the type is unsupported, n_per_row is not a multiple of the block
 * size, or the data cannot be stored (NaN/Inf, a scale overflowing f16). Callers prefix the
 * tensor name. Thread-safe; callers parallelise over row ranges.
 * Also accepts the activation types Q8_1 and Q8_K (verify quantizes activations with it), which
 * nm_quantize_supported does not list because they are never stored in model files. */
int nm_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                     const float *imatrix, nm_error *err);
/* Scalar reference of the same. */
int nm_quantize_rows_ref(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                         const float *imatrix, nm_error *err);

/* Dequantizes n values (a multiple of the block size) of a row. */
void nm_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
void nm_dequantize_row_ref(uint32_t type, const void *src, float *dst, int64_t n);

/* The index of the first NaN or infinity among x[0..n), or -1 (SIMD where the CPU has it). */
int64_t nm_find_nonfinite(const float *x, int64_t n);

#endif
