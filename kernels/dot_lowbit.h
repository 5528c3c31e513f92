/* Private to kernels/: the low-bit weight types' scalar dot products (dot_lowbit.c) and their
 * AVX2 siblings (dot_lowbit_avx2.c), in ggml's AVX2 summation order. */
#ifndef NOMOAT_DOT_LOWBIT_H
#define NOMOAT_DOT_LOWBIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One weight row · one activation row of n elements; false when wt is not a low-bit type. */
bool nm_dot_lowbit_ref(uint32_t wt, int64_t n, const void *w, const void *act, float *out);

/* Q3_K's 6-bit multiplier j (0..15) of the 12 scale bytes at sc, as a signed integer. */
static inline int nm_q3_k_scale(const uint8_t *sc, int j) {
    const int v = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (v | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

/* Q2_K, Q3_K, IQ4_XS, TQ1_0 or TQ2_0 block x in the AVX2 kernels' form (dot_iq.h's
 * nm_iq_unpacked); false for other types. */
struct nm_iq_unpacked;
bool nm_lowbit_unpack(uint32_t wt, const uint8_t *x, struct nm_iq_unpacked *u);

/* IQ4_NL rows in the SIMD tiles' form, stated portably (the tests hold nm_iq4_nl_pack_avx2, which
 * the tiles pack with, to it): per group of `group` rows and block, 4 chunks q × (the rows' levels
 * of elements 4q..4q+3, row after row, then those of 16+4q..16+4q+3), each level plus `bias`; then
 * the rows' d as floats. Rows past n_rows read as nibbles 0 with d 0. nm_iq4_nl_pack_size is the
 * bytes per group and block. */
size_t nm_iq4_nl_pack_size(int group);
void nm_iq4_nl_pack(int64_t nb, const uint8_t *w, size_t w_stride, int n_rows, int group, int bias, uint8_t *dst);
/* The same bytes, the levels looked up sixteen at a time (AVX2 builds; the AVX2 and AVX-512 tiles
 * pack with it: element by element the packing was 7% of an IQ4_NL evaluation). */
void nm_iq4_nl_pack_avx2(int64_t nb, const uint8_t *w, size_t w_stride, int n_rows, int group, int bias,
                         uint8_t *dst);

/* AVX2: out[j*out_stride + i] = dot(weight row i, activation row j); false when wt has no kernel. */
bool nm_dot_tile_lowbit_avx2(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                             size_t act_stride, int n_cols, float *out, size_t out_stride);

#endif
