/* nomoat-quantize --optimize: quantizers that spend more compute than llama.cpp's to write the
 * same ggml block types closer to the original values. Each block is searched for the scales
 * (and mins) that minimise the weighted squared reconstruction error; llama.cpp's own block is
 * computed too and kept whenever it is at least as good, so no block (hence no tensor) is ever
 * worse than the default output by that measure. */
#ifndef NOMOAT_QUANTIZE_OPTIMIZE_H
#define NOMOAT_QUANTIZE_OPTIMIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Types qo_quantize_rows searches (others: it falls back to nm_quantize_rows). */
bool qo_supported(uint32_t type);

/* Same contract as nm_quantize_rows (formats/quants.h); imatrix selects llama.cpp's block as
 * nm_quantize_rows does (the one to beat). weights: NULL (then imatrix, or 1 without one) or
 * n_per_row column weights for the error, ideally the mean squared input activation of each
 * column, which makes the error the expected squared error of the matrix product. */
int qo_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                     const float *imatrix, const float *weights, nm_error *err);

/* Error feedback across columns (GPTQ) for a matrix whose inputs have the n_per_row x n_per_row
 * second-moment matrix h (mean x x^T over calibration tokens): u = qo_gptq_factor(h, n) (free()
 * it; NULL when h is unusable). Each row is quantized both as qo_quantize_rows does and with the
 * error feedback; the one with the smaller (w - q)^T h (w - q) is kept. */
double *qo_gptq_factor(const double *h, int64_t n);
int qo_quantize_rows_gptq(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                          const float *imatrix, const float *weights, const double *h, const double *u,
                          nm_error *err);

/* Sum over the rows of sum_j w_j (x_ij - q_ij)^2 with q the dequantized blocks (w = 1 when
 * weights is NULL): the measure qo_quantize_rows minimises. */
double qo_weighted_error(uint32_t type, const float *src, const void *q, int64_t nrows, int64_t n_per_row,
                         const float *weights);

#endif
