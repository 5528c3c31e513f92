/* Activation quantization and dot/matrix kernels for evaluating models the way ggml's CPU
 * backend does (FORMATS.md §3.5, §4.6). Each weight type is multiplied with activations in the
 * type ggml uses for it ("vec_dot type"): F32 for F32, F16 for F16, BF16 for BF16, Q8_0 for
 * Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1 and Q8_K for the other K-quants, IQ4_XS and
 * TQ1_0/TQ2_0 (dot_lowbit.c has the low-bit ones). Block products are exact integer sums scaled
 * in float, as in ggml.
 *
 * Every SIMD kernel sums in the order of the ggml AVX2 kernel llama.cpp uses for its type, so
 * results are llama.cpp's bit for bit: F32, F16 and BF16 in llamafile tinyBLAS's order, Q4_0 and
 * Q4_K in the order of ggml's repacked (8-row interleaved) matrix products (Q4_K's depends on where
 * a tile sits: nm_dot_tile_at), the others in their ggml_vec_dot_* lane order. The scalar
 * reference has the same order for F32/F16/BF16/Q4_0/Q4_K/Q6_K and the low-bit types (IQ4_NL
 * in ggml's repacked order, like Q4_0) (tests compare them byte for byte); for Q4_1, Q5_0, Q5_1, Q8_0 and Q5_K it sums sequentially, equal up to float rounding.
 *
 * Scalar reference here (dot.c); AVX2 (dot_avx2.c) and AVX-512 (dot_avx512.c) versions are
 * chosen at run time and tested against it. */
#ifndef NOMOAT_DOT_H
#define NOMOAT_DOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Weight types the kernels can multiply. */
bool nm_dot_supported(uint32_t weight_type);
/* The activation type ggml pairs with a weight type (GGML_TYPE_*), or -1 when unsupported. */
int nm_dot_act_type(uint32_t weight_type);
/* Bytes one row of n activations takes in the activation type of weight_type. */
size_t nm_dot_act_row_size(uint32_t weight_type, int64_t n);

/* Converts n floats (a multiple of the weight type's block size) into the activation type for
 * weight_type, as ggml's CPU backend does on x86-64 (round-to-nearest-even for Q8_0/Q8_1,
 * the reference Q8_K quantizer). */
void nm_dot_quantize_act(uint32_t weight_type, const float *x, void *dst, int64_t n);
void nm_dot_quantize_act_ref(uint32_t weight_type, const float *x, void *dst, int64_t n);

/* Dot product of one weight row and one activation row of n elements. */
float nm_dot(uint32_t weight_type, int64_t n, const void *w, const void *act);
float nm_dot_ref(uint32_t weight_type, int64_t n, const void *w, const void *act);

/* Matrix product tile: out[j*out_stride + i] = dot(w row i, act row j) for i < n_rows,
 * j < n_cols. w_stride / act_stride are the row strides in bytes. */
void nm_dot_tile(uint32_t weight_type, int64_t n, const void *w, size_t w_stride, int n_rows,
                 const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride);
void nm_dot_tile_ref(uint32_t weight_type, int64_t n, const void *w, size_t w_stride, int n_rows,
                     const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride);

/* Where a tile sits in a whole matrix product, for the kernels whose rounding depends on it. */
typedef struct nm_dot_place {
    int64_t weight_rows;   /* rows of the whole weight tensor */
    int64_t first_act_row; /* the tile's first activation row within its batch */
    int64_t batch_rows;    /* activation rows in the batch */
} nm_dot_place;

/* As nm_dot_tile, rounding as ggml's x86-64 CPU backend does for the tile at that place. ggml
 * repacks Q4_K tensors whose row count is a multiple of 8 into 8-row interleaved blocks
 * (ggml_repack_get_optimal_repack_type) and multiplies the first floor(batch_rows / 4) * 4
 * activation rows of a batch with its 4-row gemm kernel, the others with its one-row gemv kernel
 * (forward_mul_mat_one_chunk); the two accumulate in float at different points, and both differ
 * from the vec_dot order nm_dot_tile follows. Other types go to nm_dot_tile. */
void nm_dot_tile_at(uint32_t weight_type, const nm_dot_place *place, int64_t n, const void *w, size_t w_stride,
                    int n_rows, const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride);
void nm_dot_tile_at_ref(uint32_t weight_type, const nm_dot_place *place, int64_t n, const void *w,
                        size_t w_stride, int n_rows, const void *act, size_t act_stride, int n_cols, float *out,
                        size_t out_stride);

/* Vectors times a matrix in a plain sequential order, for attention: out[r][j] = Σ_i x[r][i]·m[i][j]
 * for r < n_x, j < n_cols, each sum taken in increasing i from 0.0f as ((0 + x0·m0j) + x1·m1j) + ...,
 * every product rounded before it is added (no fused multiply-add). Rows of x, m and out are
 * x_stride, m_stride and out_stride floats apart. SIMD versions compute many (r, j) at once, each
 * lane keeping this order; several x rows share each load of m. */
void nm_dot_f32_columns(int64_t n, const float *x, size_t x_stride, int n_x, const float *m, size_t m_stride,
                        int64_t n_cols, float *out, size_t out_stride);
void nm_dot_f32_columns_ref(int64_t n, const float *x, size_t x_stride, int n_x, const float *m, size_t m_stride,
                            int64_t n_cols, float *out, size_t out_stride);

/* Side data some SIMD kernels read beside the activations, derived from them exactly: the
 * values widened to float for F16/BF16; each Q8_0 block's scale as float and −8·Σq for Q4_0;
 * each Q8_0 block's scale as float, then −128·Σq over each group of 4 quants, for Q8_0 weights.
 * Built once per batch, it spares every tile of a matrix product from rebuilding it.
 * nm_dot_act_aux_row_size is 0 for types without it (a multiple of 4 otherwise). */
size_t nm_dot_act_aux_row_size(uint32_t weight_type, int64_t n);
void nm_dot_act_aux(uint32_t weight_type, int64_t n, const void *act, void *aux);
/* nm_dot_tile given the activation rows' aux rows (aux_stride bytes apart; may be NULL when the
 * aux row size is 0). Same results as nm_dot_tile. */
void nm_dot_tile_aux(uint32_t weight_type, int64_t n, const void *w, size_t w_stride, int n_rows,
                     const void *act, size_t act_stride, const void *aux, size_t aux_stride, int n_cols,
                     float *out, size_t out_stride);

/* ggml tries tinyBLAS for F32, F16 and BF16 matrices and falls back to its own row-by-row dot
 * products (ggml_vec_dot_f32 / _f16 / _bf16) when tinyBLAS declines: on x86-64 when the weight's row count is not a
 * multiple of 4 or its row length not a multiple of 8 (a 50,257-token output layer, say). */
bool nm_dot_float_vec_order(uint32_t weight_type, int64_t n_in, int64_t n_out);
/* One output in ggml_vec_dot's AVX2 order: 32 running sums (element e to sum e mod 32 within each
 * step of 32, one fused multiply-add each), folded as ggml's reduction does (BF16's function folds
 * the last four lanes in its own order); the tail one product at a time (F32: fused into a float
 * sum; F16, BF16: rounded products added in double). */
float nm_dot_float_vec(uint32_t weight_type, int64_t n, const void *w, const void *a);
/* The portable copy (the AVX2 kernel is tested against it bit for bit). */
float nm_dot_float_vec_ref(uint32_t weight_type, int64_t n, const void *w, const void *a);

#endif
