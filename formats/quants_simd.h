/* Private to the quants module: the row-kernel signatures shared by the scalar reference
 * (quants.c) and its SIMD siblings (quants_avx2.c, quants_neon.c), plus the scalar helpers the
 * SIMD files fall back to for tails and rare branches. */
#ifndef NOMOAT_QUANTS_SIMD_H
#define NOMOAT_QUANTS_SIMD_H

#include <stdint.h>

/* Quantizes one row of n floats (n a multiple of the block size) into y. qw: NULL or the n
 * importance weights of the row's columns. Inputs are finite (checked by the caller). */
typedef void (*nm_qrow_fn)(const float *x, uint8_t *y, int64_t n, const float *qw);
/* Dequantizes n values (a multiple of the block size). */
typedef void (*nm_dqrow_fn)(const uint8_t *x, float *y, int64_t n);

/* Scalar reference kernels by ggml type (NULL when unsupported). */
nm_qrow_fn nm_quants_ref_quantizer(uint32_t type);
nm_dqrow_fn nm_quants_ref_dequantizer(uint32_t type);

/* SIMD kernels for this CPU (NULL: use the reference for that type). */
nm_qrow_fn nm_quants_avx2_quantizer(uint32_t type);
nm_dqrow_fn nm_quants_avx2_dequantizer(uint32_t type);
nm_qrow_fn nm_quants_neon_quantizer(uint32_t type);
nm_dqrow_fn nm_quants_neon_dequantizer(uint32_t type);
/* Index of the first NaN or Inf among n floats, or -1. */
int64_t nm_find_nonfinite_avx2(const float *x, int64_t n);
int64_t nm_find_nonfinite_neon(const float *x, int64_t n);

/* Scalar building blocks (quants.c, quants_k.c), exactly as in FORMATS.md §4.3. */
static inline int nm_nearest_int(float f) {
    /* llama.cpp's nearest_int: add 1.5*2^23 and read the mantissa (ties to even for |f| <= 2^22) */
    union { float f; int32_t i; } u;
    u.f = f + 12582912.f;
    return (u.i & 0x007fffff) - 0x00400000;
}
/* The weighted scale/min search of the K-quants with mins (llama.cpp's make_qkx2_quants /
 * make_qkx3_quants): levels 0..nmax for n values, weights w, nstep + 1 trial scales from
 * rmin + nmax (step rdelta); returns the scale, *the_min = -min. flags: */
enum {
    NM_QKX_DEGENERATE_LE = 1, /* make_qkx3: all levels 0 when max <= min (make_qkx2: max == min) */
    NM_QKX_MAD = 2,           /* error = w * |difference| (make_qkx2's use_mad, Q2_K), else w * difference^2 */
};
float nm_make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                   uint8_t *Laux, float rmin, float rdelta, int nstep, int flags);
float nm_make_qp(int n, int nmax, const float *x, uint8_t *L, const float *qw);
float nm_make_qx(int n, int nmax, const float *x, int8_t *L, const float *qw);

/* The K-quant per-super-block stages after the sub-block searches (shared with SIMD kernels). */
void nm_q4k_finish_path_a(const float *x, uint8_t *y, const float *scales, const float *mins,
                          uint8_t *L, int nmax);
void nm_q4k_finish_path_b(const float *x, uint8_t *y, const float *scales, const float *mins,
                          const float *sw, uint8_t *L, int nmax);
void nm_q6k_finish(const float *x, uint8_t *y, const float *scales, int8_t *L);
/* The scale stages alone (SIMD kernels then re-quantize and pack themselves): d, dmin and the
 * packed 6-bit scales of a Q4_K/Q5_K block; d and the int8 scales of a Q6_K block (returns 0
 * when the block is all zero and already written). */
void nm_qk_set_scales_a(uint8_t *y, const float *scales, const float *mins);
void nm_qk_set_scales_b(uint8_t *y, const float *scales, const float *mins, const float *sw);
int nm_q6k_set_scales(uint8_t *y, const float *scales);

/* IQ4_NL / IQ4_XS (quants_iq4.c), sb = 32 or 256: the weights of a (super-)block (x^2, or
 * qw·sqrt(sigma2 + x^2) with importance weights), and, given each 32-block's searched scale,
 * the stored scale(s) and the nibbles. */
void nm_iq4_weights(int sb, const float *x, const float *qw, float *weight);
/* Q3_K (quants_k_low.c): after make_q3_quants per 16-element sub-block (scales, L as 0..7),
 * the rest of the reference block quantizer; nm_q3_k_row_avx2 runs those searches eight at once. */
void nm_q3k_finish(const float *x, uint8_t *y, const float *scales, int8_t *L);
/* Its first stage alone: the 16 scales to 6 bits and d (bytes 96..109). */
void nm_q3k_set_scales(uint8_t *y, const float *scales);
void nm_q3_k_row_avx2(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_q3_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
/* Q2_K (quants_k_low.c): after the make_qkx2 (mean absolute deviation) searches, the rest of
 * the reference block quantizer; nm_q2_k_row_avx2 runs the searches eight at once. */
void nm_q2k_finish(const float *x, uint8_t *y, const float *scales, const float *mins, uint8_t *L);
void nm_q2_k_row_avx2(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_q2_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq4_nl_row_avx2(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq4_xs_row_avx2(const float *x, uint8_t *y, int64_t n, const float *qw);
void nm_iq4_finish(int sb, const float *x, const float *scales, uint8_t *d_out, uint8_t *q4, uint8_t *scales_h,
                   uint8_t *scales_l);

#endif
