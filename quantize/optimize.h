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
#include "common/parallel.h"

/* Types qo_quantize_rows searches (others: it falls back to nm_quantize_rows). */
bool qo_supported(uint32_t type);

/* Same contract as nm_quantize_rows (formats/quants.h); imatrix selects llama.cpp's block as
 * nm_quantize_rows does (the one to beat). weights: NULL (then imatrix, or 1 without one) or
 * n_per_row column weights for the error, ideally the mean squared input activation of each
 * column, which makes the error the expected squared error of the matrix product. */
int qo_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                     const float *imatrix, const float *weights, nm_error *err);

/* Error feedback across columns (GPTQ) for a matrix whose inputs have the n x n second-moment
 * matrix h (mean x xᵀ over calibration tokens). qo_gptq_prepare takes h (malloc'd; from then
 * on owned by g, whatever the result; only its upper triangle is read) and factors it in place:
 * h + D = V Vᵀ with V upper and D a small damping of the diagonal. Returns 0; 1 when h is
 * unusable (no feedback: g is empty); -1 when out of memory. The factorisation and the data
 * movement around it run on pool (may be NULL).
 * qo_quantize_rows_gptq quantizes each row with the error feedback (each block's scales searched
 * as qo_quantize_rows does, on the values the earlier columns' errors have moved), and keeps it
 * where its (w - q)ᵀ h (w - q) is smaller than llama.cpp's block's (nm_quantize_rows). */
typedef struct qo_gptq {
    int64_t n;
    double *v;    /* n x n, zero below the diagonal; NULL: no feedback */
    double *damp; /* D's diagonal */
    double *h;    /* H + D, both triangles, rows ldh apart */
    int64_t ldh;  /* n and 8 more: rows 2^k bytes apart share the caches' sets, and the
                   * refinement reads up to 256 of them at once */
    bool refine;  /* coordinate descent after the feedback (qo_gptq_prepare sets it) */
} qo_gptq;
int qo_gptq_prepare(qo_gptq *g, double *h, int64_t n, nm_pool *pool);
void qo_gptq_free(qo_gptq *g);
int qo_quantize_rows_gptq(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                          const float *imatrix, const float *weights, const qo_gptq *g, nm_error *err);

/* Sum over the rows of sum_j w_j (x_ij - q_ij)^2 with q the dequantized blocks (w = 1 when
 * weights is NULL): the measure qo_quantize_rows minimises. */
double qo_weighted_error(uint32_t type, const float *src, const void *q, int64_t nrows, int64_t n_per_row,
                         const float *weights);

#endif
