/* Private: SIMD siblings of the kernels in dot.h. Each returns false when it has no kernel for
 * the type or shape (the caller then uses the next level down: AVX-512, AVX2, scalar). */
#ifndef NOMOAT_DOT_SIMD_H
#define NOMOAT_DOT_SIMD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* An integer vector accumulator stays in its register through this point. Without it gcc
 * (tree reassociation) may turn a tile's chains of integer adds into a tree: it computes all of
 * a block's products first, spilling them to the stack, and adds them afterwards. The sums are
 * exact either way; the spills cost up to a third of the Q5_K tile's rate. */
#define NM_KEEP_IN_REGISTER(v) __asm__("" : "+x"(v))

/* Q4_K/Q5_K: sub-block j's 6-bit scale and min from a super-block's 12 packed bytes q (FORMATS.md
 * §4.1: j < 4 in the low 6 bits of bytes j and j+4; the others split across byte j+4's nibbles and
 * the top 2 bits of bytes j-4 and j). */
static inline void nm_k4_scale_min(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

bool nm_dot_quantize_act_avx2(uint32_t weight_type, const float *x, void *dst, int64_t n);
bool nm_dot_avx2(uint32_t weight_type, int64_t n, const void *w, const void *act, float *out);
void nm_dot_f32_columns_avx2(int64_t n, const float *x, size_t x_stride, int n_x, const float *m, size_t m_stride,
                             int64_t n_cols, float *out, size_t out_stride);
void nm_dot_f32_columns_avx512(int64_t n, const float *x, size_t x_stride, int n_x, const float *m,
                               size_t m_stride, int64_t n_cols, float *out, size_t out_stride);
/* Tiles take the activations' aux rows (dot.h: nm_dot_act_aux), required when the type has them. */
bool nm_dot_tile_avx2(uint32_t weight_type, int64_t n, const void *w, size_t w_stride, int n_rows,
                      const void *act, size_t act_stride, const void *aux, size_t aux_stride, int n_cols,
                      float *out, size_t out_stride);
bool nm_dot_tile_avx512(uint32_t weight_type, int64_t n, const void *w, size_t w_stride, int n_rows,
                        const void *act, size_t act_stride, const void *aux, size_t aux_stride, int n_cols,
                        float *out, size_t out_stride);
/* nm_dot_tile_avx2 for F32, F16 or BF16 weights in either of its two schedules (the same bits):
 * whole rows read where they lie, F16's halves (weights and activations) widened in the loop
 * (whole_rows, F32 and F16 only: what it runs for F16 on AMD cores and for F32 on AMD cores with
 * an L2 under 1 MiB), or the weights widened into float panels once and the activations read as
 * floats (elsewhere, and BF16 always). For the tests, and for nm_dot_tile_f16_avx512's whole rows.
 * False for other types. */
bool nm_dot_tile_float_avx2(uint32_t weight_type, bool whole_rows, int64_t n, const void *w, size_t w_stride,
                            int n_rows, const void *act, size_t act_stride, const void *aux, size_t aux_stride,
                            int n_cols, float *out, size_t out_stride);
/* nm_dot_tile_avx512 for F16 weights in either of its schedules (the same bits): the AVX2 whole-rows
 * tile above (whole_rows: what it runs on AMD cores), or its own paired-rows tile (elsewhere). For
 * the tests. */
bool nm_dot_tile_f16_avx512(bool whole_rows, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                            size_t act_stride, const void *aux, size_t aux_stride, int n_cols, float *out,
                            size_t out_stride);

/* Q4_0 rows interleaved for kernels that put `group` rows (8 or 16) in the lanes of one
 * register, each lane running its own output's chain (dot.c's reference order). Per group of
 * rows, per block, in that order:
 *   4 × (group × 4 bytes): chunk q holds bytes 4q..4q+3 of each row's 16 nibble bytes (low
 *                          nibbles: elements 4q..4q+3, high nibbles: elements 16+4q..16+4q+3);
 *   group floats:          each row's scale widened from f16.
 * Rows past n_rows are zero (scale 0). */
enum { NM_Q4_0_PACK_BLOCK_PER_ROW = 20 }; /* bytes per row per block */
size_t nm_dot_q4_0_pack_size(int64_t n, int n_rows, int group);
void nm_dot_q4_0_pack(int64_t n, const uint8_t *w, size_t w_stride, int n_rows, int group, uint8_t *dst);

/* Q4_0's aux row (nm_dot_act_aux): per Q8_0 activation block, the scale widened to float and
 * −8 × the sum of the 32 quants (a Q4_0 block's integer sum is Σ nibble·y − 8·Σ y). */
typedef struct nm_q8_0_block_info {
    float d;
    int32_t minus_8_sum;
} nm_q8_0_block_info;
/* Q8_0's aux row (nm_dot_act_aux): the n/32 block scales widened to float, then per block eight
 * int32, −128 × the sum of quants 4g..4g+3 (a weight q read as the unsigned byte q + 128 gives
 * Σ (q + 128)·y − 128·Σ y = Σ q·y over each group of four). */
enum { NM_Q8_0_GROUP_SUMS_PER_BLOCK = 8 * sizeof(int32_t) }; /* bytes */
/* Q4_K in the order of ggml's repacked kernels: columns [0, gemm_cols) as its gemm, the rest as
 * its gemv (dot_repack.c). */
bool nm_dot_tile_repacked_avx2(uint32_t weight_type, int gemm_cols, int64_t n, const void *w, size_t w_stride,
                               int n_rows, const void *act, size_t act_stride, int n_cols, float *out,
                               size_t out_stride);
/* The same for gemm's columns with AVX-512 + VNNI (dot_repack_avx512.c); gemv's go to the AVX2 one. */
bool nm_dot_tile_repacked_avx512(uint32_t weight_type, int gemm_cols, int64_t n, const void *w, size_t w_stride,
                                 int n_rows, const void *act, size_t act_stride, int n_cols, float *out,
                                 size_t out_stride);
/* nm_dot_float_vec's AVX2 kernel: false for other types. */
bool nm_dot_float_vec_avx2(uint32_t weight_type, int64_t n, const void *w, const void *a, float *out);
#endif
