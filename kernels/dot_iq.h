/* Private to kernels/: the lattice i-quants (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M)
 * times Q8_K activations, in the order of ggml's AVX2 kernels (ggml-cpu/arch/x86/quants.c,
 * ggml_vec_dot_iq*_q8_K), which llama.cpp uses for every such product on x86-64 (these types are
 * neither repacked nor given to tinyBLAS).
 *
 * Those kernels all work alike: per 256-value block they sum integer products of the signed grid
 * values, the integer sub-block multipliers (2s+1) and the activations into 8 int32 lanes, lane l
 * holding the values at positions 4l..4l+3 of every 32 (exact, so any order gives the same
 * integers); then acc[l] = fma(d_w * d_act, (float)lane[l], acc[l]) per block, and at the end a
 * fixed horizontal sum ((a4+a0)+(a6+a2)) + ((a5+a1)+(a7+a3)) times a power of two. IQ1_S adds a
 * scalar fma accumulator of the delta term, IQ1_M a second set of lanes for it.
 *
 * The kernels here unpack each weight block once into that integer form (nm_iq_unpacked) and
 * reuse it for every activation row of a tile. */
#ifndef NOMOAT_DOT_IQ_H
#define NOMOAT_DOT_IQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A 256-value block as the AVX2 kernels multiply it. The low-bit K-quants and ternary types take
 * the same form (nm_lowbit_unpack, dot_lowbit.h): their lanes are built the same way, Q2_K with
 * its mins first, TQ1_0/TQ2_0 with q in 0..2 and the activations' group sums taken off. */
typedef struct nm_iq_unpacked {
    int8_t q[256];   /* signed grid values (Q2_K 0..3, Q3_K -4..3, IQ4_XS levels, TQ 0..2) */
    int8_t ds[32];   /* IQ1_S/IQ1_M: sign of the delta of each group of 8 (+1 or -1) */
    int16_t sc[16];  /* integer multiplier of each 16 values */
    int16_t mins[16]; /* what each of the activations' 16-value sums is multiplied by: Q2_K's mins,
                         IQ1_S's delta sign × multiplier */
    float d;         /* the block's scale */
    float dmin;      /* Q2_K: the mins' scale */
} nm_iq_unpacked;

bool nm_dot_iq_type(uint32_t wt);

/* One weight row · one Q8_K activation row (reference); false when wt is not a lattice i-quant. */
bool nm_dot_iq_ref(uint32_t wt, int64_t n, const void *w, const void *act, float *out);

/* Tile: out[j*out_stride + i] = dot(weight row i, activation row j); simd selects the AVX2 tile
 * (same bits). False when wt is not a lattice i-quant. */
bool nm_dot_tile_iq(uint32_t wt, bool simd, int64_t n, const void *w, size_t w_stride, int n_rows,
                    const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride);

/* The block as ggml's kernel multiplies it; returns the power of two its result is scaled by. */
float nm_iq_unpack(uint32_t wt, const uint8_t *x, nm_iq_unpacked *u);

/* Any type of that form (nm_lowbit_unpack or nm_iq_unpack); returns the power of two. */
float nm_unpack_block(uint32_t wt, const uint8_t *x, nm_iq_unpacked *u);

/* Lane sums of one unpacked block with one Q8_K block's values y: lane[l] as above; with
 * `delta`, also the delta lanes dlane[l] (Σ sc·ds·y). */
void nm_iq_lanes_ref(const nm_iq_unpacked *u, const int8_t *y, bool delta, int32_t *lane, int32_t *dlane);

/* The types of that form, as X(name, ggml type), for the tiles' per-type copies. */
#define NM_UNPACKED_TYPES(X)                                                                            \
    X(iq2_xxs, GGML_TYPE_IQ2_XXS) X(iq2_xs, GGML_TYPE_IQ2_XS) X(iq2_s, GGML_TYPE_IQ2_S)                \
    X(iq3_xxs, GGML_TYPE_IQ3_XXS) X(iq3_s, GGML_TYPE_IQ3_S) X(iq1_s, GGML_TYPE_IQ1_S)                  \
    X(iq1_m, GGML_TYPE_IQ1_M) X(q2_k, GGML_TYPE_Q2_K) X(q3_k, GGML_TYPE_Q3_K) X(iq4_xs, GGML_TYPE_IQ4_XS) \
    X(tq1_0, GGML_TYPE_TQ1_0) X(tq2_0, GGML_TYPE_TQ2_0)

/* AVX2 tile of every type with that form (dot_unpacked_avx2.c): the lattice i-quants, Q2_K, Q3_K,
 * IQ4_XS, TQ1_0 and TQ2_0, in the reference's order; false for other types or when memory ran
 * out. */
bool nm_dot_tile_unpacked_avx2(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                               size_t act_stride, int n_cols, float *out, size_t out_stride);
/* The same with AVX-512 + VNNI (dot_unpacked_avx512.c), the same bits. */
bool nm_dot_tile_unpacked_avx512(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                                 size_t act_stride, int n_cols, float *out, size_t out_stride);

#endif
