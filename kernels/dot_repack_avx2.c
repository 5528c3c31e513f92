/* AVX2 sibling of dot_repack.c: Q4_K in the order of ggml's repacked gemm/gemv kernels. Eight
 * weight rows sit in the lanes of a register (each lane its own output's chains) and meet up to
 * four activation rows per pass, so each fused multiply-add below is the per-output one of the
 * reference, eight outputs at a time. */
#include "kernels/dot_simd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tensor.h"
#include "kernels/dot_avx2.h"

/* Eight weight rows interleaved, one per lane of a register, as ggml's block_q4_Kx8 does, so a
 * lane's integer sums come out of vertical instructions alone. Per group of 8 rows, per
 * super-block (QK_PACK bytes):
 *   4 pairs k × 8 chunks q × (8 rows × 4 bytes): bytes 32k+4q .. 32k+4q+3 of each row's quants
 *       (low nibbles: sub-block 2k, elements 4q..4q+3; high nibbles: sub-block 2k+1);
 *   8 sub-blocks j × 8 rows × 2 int16: the row's scale of sub-block j, twice (for madd);
 *   4 pairs k × 8 rows × 2 int16: the row's mins of sub-blocks 2k and 2k+1;
 *   8 floats d, 8 floats dmin (widened from f16, exact).
 * Rows past n_rows are zero. */
enum { QK_GROUP = 8, QK_QS = 1024, QK_SC = QK_QS, QK_MN = QK_SC + 256, QK_D = QK_MN + 128, QK_DMIN = QK_D + 32,
       QK_PACK = QK_DMIN + 32, QK_COLS = 4 };

static void pack_q4_k(int64_t nb, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    const int groups = (nr + QK_GROUP - 1) / QK_GROUP;
    for (int g = 0; g < groups; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *p = dst + ((size_t)g * (size_t)nb + (size_t)b) * QK_PACK;
            int16_t *sc16 = (int16_t *)(p + QK_SC), *mn16 = (int16_t *)(p + QK_MN);
            float *d = (float *)(p + QK_D), *dmin = (float *)(p + QK_DMIN);
            for (int r = 0; r < QK_GROUP; r++) {
                const int row = g * QK_GROUP + r;
                if (row >= nr) {
                    for (int k = 0; k < 4; k++)
                        for (int q = 0; q < 8; q++) memset(p + 256 * k + 32 * q + 4 * r, 0, 4);
                    for (int j = 0; j < 8; j++) sc16[16 * j + 2 * r] = sc16[16 * j + 2 * r + 1] = 0;
                    for (int k = 0; k < 4; k++) mn16[16 * k + 2 * r] = mn16[16 * k + 2 * r + 1] = 0;
                    d[r] = dmin[r] = 0.0f;
                    continue;
                }
                const uint8_t *blk = w + (size_t)row * ws + (size_t)b * 144;
                for (int k = 0; k < 4; k++)
                    for (int q = 0; q < 8; q++) memcpy(p + 256 * k + 32 * q + 4 * r, blk + 16 + 32 * k + 4 * q, 4);
                int sc[8], mn[8];
                for (int j = 0; j < 8; j++) nm_k4_scale_min(j, blk + 4, &sc[j], &mn[j]);
                for (int j = 0; j < 8; j++) sc16[16 * j + 2 * r] = sc16[16 * j + 2 * r + 1] = (int16_t)sc[j];
                for (int k = 0; k < 4; k++) {
                    mn16[16 * k + 2 * r] = (int16_t)mn[2 * k];
                    mn16[16 * k + 2 * r + 1] = (int16_t)mn[2 * k + 1];
                }
                d[r] = _cvtsh_ss((uint16_t)(blk[0] | (blk[1] << 8)));
                dmin[r] = _cvtsh_ss((uint16_t)(blk[2] | (blk[3] << 8)));
            }
        }
}

/* One group of 8 rows (lanes) × nc ≤ QK_COLS activation rows, all super-blocks. Per pair of
 * sub-blocks k: each 4-byte chunk of the 8 rows is unpacked once for all activation rows;
 * maddubs sums pairs of products into int16 (at most 8·2·15·127 = 30480 per sub-block: no
 * saturation), madd applies the scales; every integer sum is exact, so only the float chains
 * below carry an order: gemm's one fused multiply-add per pair k, gemv's one per super-block. */
ALWAYS_INLINE void q4_k_group(bool gemm, int64_t nb, const uint8_t *pw, const uint8_t *a, size_t as, int nc,
                              float *out, size_t os, int nr) {
    __m256 acc[QK_COLS], accm[QK_COLS];
    for (int c = 0; c < QK_COLS; c++) acc[c] = accm[c] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = pw + (size_t)b * QK_PACK;
        const __m256 dw = _mm256_loadu_ps((const float *)(p + QK_D)), mw = _mm256_loadu_ps((const float *)(p + QK_DMIN));
        __m256 d[QK_COLS], dmin[QK_COLS];
        __m128i sub[QK_COLS];
        __m256i tot[QK_COLS], totm[QK_COLS];
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            float dy;
            memcpy(&dy, ab, 4);
            d[c] = _mm256_mul_ps(dw, _mm256_set1_ps(dy));
            dmin[c] = _mm256_mul_ps(mw, _mm256_set1_ps(dy));
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
            sub[c] = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1)); /* per sub-block */
            tot[c] = totm[c] = _mm256_setzero_si256();
        }
        for (int k = 0; k < 4; k++) {
            __m256i slo[QK_COLS], shi[QK_COLS];
            UNROLL
            for (int c = 0; c < nc; c++) slo[c] = shi[c] = _mm256_setzero_si256();
            /* unrolled, with the sums held in registers (NM_KEEP_IN_REGISTER). One thread on a
             * 2-core Intel Xeon: 73 GMAC/s rolled without the hold (as it was), 77-79 with the
             * hold alone, 84-88 with both */
            UNROLL
            for (int q = 0; q < 8; q++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(p + 256 * k + 32 * q));
                const __m256i lo = _mm256_and_si256(wv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m4);
                UNROLL
                for (int c = 0; c < nc; c++) {
                    const uint8_t *y = a + (size_t)c * as + (size_t)b * 292 + 4 + 64 * k + 4 * q;
                    int32_t ylo, yhi;
                    memcpy(&ylo, y, 4);
                    memcpy(&yhi, y + 32, 4);
                    slo[c] = _mm256_add_epi16(slo[c], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(ylo)));
                    shi[c] = _mm256_add_epi16(shi[c], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(yhi)));
                    NM_KEEP_IN_REGISTER(slo[c]);
                    NM_KEEP_IN_REGISTER(shi[c]);
                }
            }
            const __m256i sc0 = _mm256_loadu_si256((const __m256i *)(p + QK_SC + 64 * k));
            const __m256i sc1 = _mm256_loadu_si256((const __m256i *)(p + QK_SC + 64 * k + 32));
            const __m256i mn = _mm256_loadu_si256((const __m256i *)(p + QK_MN + 32 * k));
            UNROLL
            for (int c = 0; c < nc; c++) {
                const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(slo[c], sc0), _mm256_madd_epi16(shi[c], sc1));
                int32_t pair;
                switch (k) { /* sub-block sums 2k and 2k+1 as one int32 */
                case 0: pair = _mm_extract_epi32(sub[c], 0); break;
                case 1: pair = _mm_extract_epi32(sub[c], 1); break;
                case 2: pair = _mm_extract_epi32(sub[c], 2); break;
                default: pair = _mm_extract_epi32(sub[c], 3); break;
                }
                const __m256i m = _mm256_madd_epi16(mn, _mm256_set1_epi32(pair));
                if (gemm) {
                    acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d[c], acc[c]);
                    accm[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dmin[c], accm[c]);
                } else {
                    tot[c] = _mm256_add_epi32(tot[c], s);
                    totm[c] = _mm256_add_epi32(totm[c], m);
                }
            }
        }
        if (!gemm) {
            UNROLL
            for (int c = 0; c < nc; c++) {
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot[c]), d[c], acc[c]);
                accm[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(totm[c]), dmin[c], accm[c]);
            }
        }
    }
    for (int c = 0; c < nc; c++) {
        float r[QK_GROUP];
        _mm256_storeu_ps(r, _mm256_sub_ps(acc[c], accm[c]));
        memcpy(out + (size_t)c * os, r, (size_t)(nr < QK_GROUP ? nr : QK_GROUP) * sizeof(float));
    }
}

/* Columns [j0, j1): a group of QK_COLS activation rows stays in L1 while the packed rows pass. */
static void q4_k_columns(bool gemm, int64_t nb, const uint8_t *pw, int nr, const uint8_t *a, size_t as, int j0, int j1,
                         float *out, size_t os) {
    const int groups = (nr + QK_GROUP - 1) / QK_GROUP;
    for (int j = j0; j < j1; j += QK_COLS) {
        const int m = j1 - j < QK_COLS ? j1 - j : QK_COLS;
        const uint8_t *aj = a + (size_t)j * as;
        for (int g = 0; g < groups; g++) {
            const uint8_t *pg = pw + (size_t)g * (size_t)nb * QK_PACK;
            float *o = out + (size_t)j * os + (size_t)g * QK_GROUP;
            const int rows = nr - g * QK_GROUP;
            if (gemm) {
                switch (m) {
                case 4: q4_k_group(true, nb, pg, aj, as, 4, o, os, rows); break;
                case 3: q4_k_group(true, nb, pg, aj, as, 3, o, os, rows); break;
                case 2: q4_k_group(true, nb, pg, aj, as, 2, o, os, rows); break;
                default: q4_k_group(true, nb, pg, aj, as, 1, o, os, rows); break;
                }
            } else {
                switch (m) {
                case 4: q4_k_group(false, nb, pg, aj, as, 4, o, os, rows); break;
                case 3: q4_k_group(false, nb, pg, aj, as, 3, o, os, rows); break;
                case 2: q4_k_group(false, nb, pg, aj, as, 2, o, os, rows); break;
                default: q4_k_group(false, nb, pg, aj, as, 1, o, os, rows); break;
                }
            }
        }
    }
}

bool nm_dot_tile_repacked_avx2(uint32_t wt, int gemm_cols, int64_t n, const void *w, size_t w_stride, int n_rows,
                               const void *act, size_t act_stride, int n_cols, float *out, size_t out_stride) {
    if (wt != GGML_TYPE_Q4_K || n_rows < 1) return false;
    const int64_t nb = n / 256;
    const size_t groups = (size_t)(n_rows + QK_GROUP - 1) / QK_GROUP;
    uint8_t *pw = malloc(groups * (size_t)nb * QK_PACK + 1);
    if (!pw) return false;
    pack_q4_k(nb, w, w_stride, n_rows, pw);
    q4_k_columns(true, nb, pw, n_rows, act, act_stride, 0, gemm_cols, out, out_stride);
    q4_k_columns(false, nb, pw, n_rows, act, act_stride, gemm_cols, n_cols, out, out_stride);
    free(pw);
    return true;
}
