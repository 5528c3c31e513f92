/* AVX-512 (+VNNI) sibling of dot_repack_avx2.c: Q4_K in the order of ggml's repacked gemm kernel,
 * sixteen weight rows in the lanes of a register (each lane its own output's two chains).
 *
 * Per pair of sub-blocks k the reference takes the exact integer sc(2k)·s(2k) + sc(2k+1)·s(2k+1)
 * (s a sub-block's Σ q·y) into one fused multiply-add. Here vpdpbusd sums each sub-block's
 * nibbles × activation bytes into int32 lanes (exact), and the scales are applied in float:
 * |s| ≤ 32·15·128 and sc ≤ 63 keep both products and their sum below 2^24, so the multiply and
 * the fused multiply-add that combine them are exact and give the integer's float (a zero may
 * come out as −0, which a chain that starts at +0 adds without a trace). The mins take vpmaddwd
 * as in the AVX2 kernel. gemv's one sum per super-block can pass 2^24, so its columns go to the
 * AVX2 kernel. */
#include "kernels/dot_simd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tensor.h"
#include "kernels/dot_avx512.h"

/* Sixteen rows interleaved, one per lane. Per group of 16 rows, per super-block (QX_PACK bytes):
 *   4 pairs k × 8 chunks q × 2 × (16 rows × 4 bytes): the low nibbles of bytes 32k+4q .. 32k+4q+3
 *       of each row's quants (sub-block 2k, elements 4q..4q+3), then the high nibbles (2k+1);
 *   8 sub-blocks j × 16 floats: each row's scale of sub-block j;
 *   4 pairs k × 16 rows × 2 int16: the row's mins of sub-blocks 2k and 2k+1;
 *   16 floats d, 16 floats dmin (widened from f16, exact).
 * Rows past n_rows are zero. */
enum { QX_GROUP = 16, QX_QS = 4096, QX_SC = QX_QS, QX_MN = QX_SC + 512, QX_D = QX_MN + 256, QX_DMIN = QX_D + 64,
       QX_PACK = QX_DMIN + 64, QX_COLS = 4 };

static void pack_q4_k(int64_t nb, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    const int groups = (nr + QX_GROUP - 1) / QX_GROUP;
    for (int g = 0; g < groups; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *p = dst + ((size_t)g * (size_t)nb + (size_t)b) * QX_PACK;
            float *sc = (float *)(p + QX_SC), *d = (float *)(p + QX_D), *dmin = (float *)(p + QX_DMIN);
            int16_t *mn16 = (int16_t *)(p + QX_MN);
            for (int r = 0; r < QX_GROUP; r++) {
                const int row = g * QX_GROUP + r;
                if (row >= nr) {
                    for (int c = 0; c < 64; c++) memset(p + 64 * c + 4 * r, 0, 4);
                    for (int j = 0; j < 8; j++) sc[16 * j + r] = 0.0f;
                    for (int k = 0; k < 4; k++) mn16[32 * k + 2 * r] = mn16[32 * k + 2 * r + 1] = 0;
                    d[r] = dmin[r] = 0.0f;
                    continue;
                }
                const uint8_t *blk = w + (size_t)row * ws + (size_t)b * 144;
                for (int k = 0; k < 4; k++)
                    for (int q = 0; q < 8; q++)
                        for (int e = 0; e < 4; e++) {
                            const uint8_t v = blk[16 + 32 * k + 4 * q + e];
                            p[128 * (8 * k + q) + 4 * r + e] = v & 0x0F;
                            p[128 * (8 * k + q) + 64 + 4 * r + e] = v >> 4;
                        }
                int s[8], m[8];
                for (int j = 0; j < 8; j++) nm_k4_scale_min(j, blk + 4, &s[j], &m[j]);
                for (int j = 0; j < 8; j++) sc[16 * j + r] = (float)s[j];
                for (int k = 0; k < 4; k++) {
                    mn16[32 * k + 2 * r] = (int16_t)m[2 * k];
                    mn16[32 * k + 2 * r + 1] = (int16_t)m[2 * k + 1];
                }
                d[r] = _cvtsh_ss((uint16_t)(blk[0] | (blk[1] << 8)));
                dmin[r] = _cvtsh_ss((uint16_t)(blk[2] | (blk[3] << 8)));
            }
        }
}

/* One group of 16 rows (lanes) × nc ≤ QX_COLS activation rows, all super-blocks, gemm's order:
 * per pair k one fused multiply-add into the scaled chain and one into the mins' chain. */
ALWAYS_INLINE void q4_k_group(int64_t nb, const uint8_t *pw, const uint8_t *a, size_t as, int nc, float *out,
                              size_t os, int nr) {
    __m512 acc[QX_COLS], accm[QX_COLS];
    UNROLL
    for (int c = 0; c < nc; c++) acc[c] = accm[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = pw + (size_t)b * QX_PACK;
        const __m512 dw = _mm512_loadu_ps(p + QX_D), mw = _mm512_loadu_ps(p + QX_DMIN);
        __m512 d[QX_COLS], dmin[QX_COLS];
        int32_t pairs[QX_COLS][4]; /* sub-block sums of y 2k and 2k+1 as two int16 */
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            float dy;
            memcpy(&dy, ab, 4);
            d[c] = _mm512_mul_ps(dw, _mm512_set1_ps(dy));
            dmin[c] = _mm512_mul_ps(mw, _mm512_set1_ps(dy));
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
            _mm_storeu_si128((__m128i *)pairs[c], _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)));
        }
        for (int k = 0; k < 4; k++) {
            __m512i slo[QX_COLS], shi[QX_COLS];
            UNROLL
            for (int c = 0; c < nc; c++) slo[c] = shi[c] = _mm512_setzero_si512();
            UNROLL
            for (int q = 0; q < 8; q++) {
                const __m512i lo = _mm512_loadu_si512(p + 128 * (8 * k + q)), hi = _mm512_loadu_si512(p + 128 * (8 * k + q) + 64);
                UNROLL
                for (int c = 0; c < nc; c++) {
                    const uint8_t *y = a + (size_t)c * as + (size_t)b * 292 + 4 + 64 * k + 4 * q;
                    int32_t ylo, yhi;
                    memcpy(&ylo, y, 4);
                    memcpy(&yhi, y + 32, 4);
                    slo[c] = _mm512_dpbusd_epi32(slo[c], lo, _mm512_set1_epi32(ylo));
                    shi[c] = _mm512_dpbusd_epi32(shi[c], hi, _mm512_set1_epi32(yhi));
                }
            }
            const __m512 sc0 = _mm512_loadu_ps(p + QX_SC + 128 * k), sc1 = _mm512_loadu_ps(p + QX_SC + 128 * k + 64);
            const __m512i mn = _mm512_loadu_si512(p + QX_MN + 64 * k);
            UNROLL
            for (int c = 0; c < nc; c++) {
                const __m512 s = _mm512_fmadd_ps(sc0, _mm512_cvtepi32_ps(slo[c]), _mm512_mul_ps(sc1, _mm512_cvtepi32_ps(shi[c])));
                const __m512i m = _mm512_madd_epi16(mn, _mm512_set1_epi32(pairs[c][k]));
                acc[c] = _mm512_fmadd_ps(s, d[c], acc[c]);
                accm[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), dmin[c], accm[c]);
            }
        }
    }
    const __mmask16 keep = (__mmask16)(nr < QX_GROUP ? (1u << nr) - 1u : 0xFFFFu);
    UNROLL
    for (int c = 0; c < nc; c++) _mm512_mask_storeu_ps(out + (size_t)c * os, keep, _mm512_sub_ps(acc[c], accm[c]));
}

bool nm_dot_tile_repacked_avx512(uint32_t wt, int gemm_cols, int64_t n, const void *w, size_t w_stride, int n_rows,
                                 const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (wt != GGML_TYPE_Q4_K || n_rows < 1) return false;
    const int64_t nb = n / 256;
    const int groups = (n_rows + QX_GROUP - 1) / QX_GROUP;
    if (gemm_cols > 0) {
        uint8_t *pw = malloc((size_t)groups * (size_t)nb * QX_PACK + 64);
        if (!pw) return false;
        pack_q4_k(nb, w, w_stride, n_rows, pw);
        const uint8_t *a = act;
        for (int j = 0; j < gemm_cols; j += QX_COLS) {
            const int m = gemm_cols - j < QX_COLS ? gemm_cols - j : QX_COLS;
            const uint8_t *aj = a + (size_t)j * act_stride;
            for (int g = 0; g < groups; g++) {
                const uint8_t *pg = pw + (size_t)g * (size_t)nb * QX_PACK;
                float *o = out + (size_t)j * out_stride + (size_t)g * QX_GROUP;
                const int rows = n_rows - g * QX_GROUP;
                switch (m) {
                case 4: q4_k_group(nb, pg, aj, act_stride, 4, o, out_stride, rows); break;
                case 3: q4_k_group(nb, pg, aj, act_stride, 3, o, out_stride, rows); break;
                case 2: q4_k_group(nb, pg, aj, act_stride, 2, o, out_stride, rows); break;
                default: q4_k_group(nb, pg, aj, act_stride, 1, o, out_stride, rows); break;
                }
            }
        }
        free(pw);
    }
    if (gemm_cols < n_cols &&
        !nm_dot_tile_repacked_avx2(wt, 0, n, w, w_stride, n_rows, (const uint8_t *)act + (size_t)gemm_cols * act_stride,
                                   act_stride, n_cols - gemm_cols, out + (size_t)gemm_cols * out_stride, out_stride))
        return false; /* only when out of memory: the caller's scalar reference redoes the whole tile */
    return true;
}
