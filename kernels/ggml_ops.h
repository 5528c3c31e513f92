/* Element-wise and attention operations computed exactly as ggml's x86-64 CPU backend (AVX2
 * build, the configuration llama.cpp's reference figures were made with) computes them, bit for
 * bit: SwiGLU with ggml's vectorised exp approximation, and flash attention over an F16 K/V
 * cache (the tiled kernel ggml uses for batches of at least NM_GGML_FA_TILE query rows, the
 * one-row-at-a-time kernel below that). Matching the rounding of these steps matters because the
 * next matrix product rounds its activations to 8 bits: a last-bit difference here can flip an
 * activation quantum and change the model's output visibly (FORMATS.md §3.5).
 *
 * Scalar code with explicit fmaf (ggml_ops.c), AVX2/FMA (ggml_ops_avx2.c) and AVX-512
 * (ggml_ops_avx512.c, the tiled attention kernel) versions, chosen at run time; all give
 * identical results. */
#ifndef NOMOAT_GGML_OPS_H
#define NOMOAT_GGML_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { NM_GGML_FA_TILE = 64 };

/* ggml_v_expf (AVX2): exp(x) to within 1.5 ulp, as ggml's vector kernels compute it. */
float nm_ggml_expf(float x);

/* y[i] = silu(x[i]) * g[i] for one row of n, as ggml_vec_swiglu_f32 (groups of 8 through the
 * vector exp, the tail through libm expf). */
void nm_ggml_swiglu(int n, float *y, const float *x, const float *g);

/* Causal flash attention for n_rows consecutive query rows of one head over an F16 K/V cache,
 * given the cache widened to f32 (exact: every f16 value is a float): key p's element d at
 * kt[d * kt_stride + p] (transposed), value p's element d at v[p * v_stride + d]. Row r sees keys
 * 0 .. n_kv0 + r - 1. q rows are q_stride floats apart, outputs out_stride. tiled selects ggml's
 * tiled kernel (query batch >= NM_GGML_FA_TILE) over its one-row kernel. The kernels read keys
 * in whole tiles: kt's rows must hold n_kv rounded up to NM_GGML_FA_TILE readable floats (what
 * lies past the last key is ignored). scratch: nm_ggml_fa_scratch(head_dim) floats. softcap: 0, or the
 * logit soft cap c of ggml_flash_attn_ext (Gemma 2): each score s·scale becomes tanhf(s·scale)·c, so
 * pass scale already divided by c, as ggml does. */
size_t nm_ggml_fa_scratch(int head_dim);
void nm_ggml_flash_attn(bool tiled, int head_dim, int n_rows, const float *q, size_t q_stride, const float *kt,
                        size_t kt_stride, const float *v, size_t v_stride, int n_kv0, float scale, float softcap,
                        float *out, size_t out_stride, float *scratch);

/* ggml_norm of one row of n (LayerNorm without weight or bias: y = (x - mean) / sqrt(var + eps))
 * with ggml's AVX2 summation order (ggml_norm_gelu.c). */
void nm_ggml_layer_norm(int n, const float *x, float eps, float *y);

/* y[i] = GELU(x[i]) as ggml_vec_gelu_f32 computes it: through a half-precision table of the tanh
 * approximation (built on first use), exact 0 / x beyond ±10. */
void nm_ggml_gelu(int n, float *y, const float *x);
/* The tanh approximation itself in float (exact mode). */
float nm_gelu_tanh(float x);
/* y[i] = GELU(x[i]) · g[i] as ggml_vec_geglu_f32 computes it (the table of nm_ggml_gelu; 0 at or
 * below -10, x·g at or above 10): ggml_geglu_split, Gemma's gated FFN with x the gate. */
void nm_ggml_geglu(int n, float *y, const float *x, const float *g);
/* Soft-capping of a row in place, as llama.cpp's graph does it for Gemma 2's output logits:
 * ggml_scale by 1/cap (the reciprocal rounded to float), ggml_tanh (libm's tanhf), ggml_scale by
 * cap. */
void nm_ggml_softcap(int n, float *y, float cap);

/* The portable copies (tests check the AVX2 and AVX-512 builds against them, bit for bit). */
void nm_ggml_swiglu_ref(int n, float *y, const float *x, const float *g);
void nm_ggml_flash_attn_ref(bool tiled, int head_dim, int n_rows, const float *q, size_t q_stride, const float *kt,
                            size_t kt_stride, const float *v, size_t v_stride, int n_kv0, float scale, float softcap,
                            float *out, size_t out_stride, float *scratch);

#endif
