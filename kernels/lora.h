/* The LoRA merge product as llama-export-lora computes it on ggml's x86-64 CPU backend: for each
 * merged row, delta[i] = Σ_k coef[k] · basis[k][i] (a dot product of length r per output), then
 * out[i] = base[i] + delta[i] · scale, all in float.
 *
 * llama-export-lora forms delta with ggml_mul_mat in F32 (A transposed against B; for
 * token_embd, B against the rows of A), which on an AVX2 machine runs llamafile's tinyBLAS when
 * r is a multiple of 8 and the product's row count m a multiple of 4: eight running sums of fused
 * multiply-adds (element k into sum k mod 8) folded as (s0+s4 + s2+s6) + (s1+s5 + s3+s7).
 * Otherwise it runs ggml_vec_dot_f32: four times eight running sums over the first r - r mod 32
 * elements (element k into vector (k mod 32) / 8, lane k mod 8), the vectors folded
 * (v0+v2) + (v1+v3) lane-wise, then the lanes as ((l0+l4) + (l1+l5)) + ((l2+l6) + (l3+l7)), then
 * the remaining elements added one rounded product at a time.
 *
 * Scalar reference here (lora.c); an AVX2 version (lora_avx2.c) computes eight outputs per
 * instruction for two rows at once (sharing each load of the basis), each lane in this order, and
 * is tested bit-identical to it. */
#ifndef NOMOAT_KERNELS_LORA_H
#define NOMOAT_KERNELS_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The basis rearranged for the product: for each run of 8 outputs, the r basis values of each
 * output back to back (panel[(i / 8) * r * 8 + k * 8 + i % 8] = basis[k * stride + i]), the last
 * run padded with zeros, so that a run of outputs reads one contiguous block. */
size_t nm_lora_panel_floats(int64_t n, int r);
void nm_lora_panel(int64_t n, int r, const float *basis, size_t stride, float *panel);

/* For each of n_rows rows j: out_j[i] = base_j[i] + (Σ_k coef_j[k] · basis[k][i]) · scale for
 * i < n, basis given as a panel, coef_j = coef + j * r, base_j / out_j = base / out + j * stride;
 * tinyblas selects the order (see above). out may equal base. */
void nm_lora_delta_rows(int64_t n, int r, const float *panel, const float *coef, int n_rows, float scale,
                        bool tinyblas, const float *base, float *out, size_t stride);
void nm_lora_delta_rows_ref(int64_t n, int r, const float *panel, const float *coef, int n_rows, float scale,
                            bool tinyblas, const float *base, float *out, size_t stride);

/* ggml_vec_dot_f32 / _f16 / _bf16 as ggml's AVX2 build sums one row (type F32, F16 or BF16; x a
 * weight row, y the activations already in that type): what ggml falls back to when tinyBLAS
 * declines a product (nm_lora_uses_tinyblas false). F32 and F16: four times eight running sums
 * of fused multiply-adds over the first n - n mod 32 elements, folded as above, then the rest
 * one rounded product at a time, in float for F32 and in double for F16 (rounded to float at
 * the end). BF16: the same four sums with separate multiply and add, folded (s0+s2) + (s1+s3)
 * lane-wise and the lanes as tinyBLAS folds them, the rest in double. Scalar only: LoRA's
 * products that take this path are small. */
float nm_ggml_vec_dot(uint32_t type, int64_t n, const void *x, const void *y);

/* Whether ggml multiplies with tinyBLAS: r a multiple of 8, m (the rows of the product's first
 * operand) a multiple of 4, and at least two columns. */
bool nm_lora_uses_tinyblas(int r, int64_t m, int64_t n_cols);

#endif
