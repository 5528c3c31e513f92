/* AVX-512 + VNNI sibling of dot_unpacked_avx2.c (the lattice i-quants, Q2_K, Q3_K, IQ4_XS, TQ1_0,
 * TQ2_0): the same exact integer lanes and float steps, so the AVX2 tile's bits. Two weight rows
 * share a register, their lanes interleaved as in the Q5_K and Q6_K tiles (lane 2l row A's lane
 * l, 2l+1 row B's): one permute spreads an activation step's four-byte groups to both rows, q's
 * signs go onto the activations by a masked subtraction (AVX-512 has no vpsignb), vpmaddubsw makes
 * the pairs (|q| <= 62 against |y| <= 127: no saturation) and vpdpwssd scales and adds them.
 * TQ1_0 and TQ2_0 (q 0..2, every multiplier 1) and Q2_K (its levels 0..3 stored times their 4-bit
 * multiplier, at most 45) go straight into vpdpbusd, each four-byte group's products added to its
 * 32-bit lane: the integers the AVX2 tile widens from 16-bit pairs, with one instruction where
 * vpmaddubsw and a 16-bit add (or vpdpwssd) took two (one thread of a 2-core EPYC, Zen 4, 64 rows ×
 * 512 activation rows, n = 2048: TQ2_0 97 -> 118 GMAC/s).
 * Per row pair and block (UP_BLOCK bytes):
 *   8 steps c × 64 bytes: |q| of values 32c+4l..32c+4l+3, A's and B's side by side for each l;
 *   8 steps × 64 bytes: the int16 pairs' multipliers (lane 2l+h: row h's multiplier of its 16);
 *   8 steps × 64 bits: which of those bytes have q < 0;
 *   8 steps × 64 bits: IQ1_M, which have a negative delta;
 *   16 int16 pairs: lane 2l+h gets row h's two Q2_K mins (IQ1_S: delta × multiplier) of the
 *       activations' 16-value sums 2l and 2l+1;
 *   4 floats: the rows' d, then their dmin. */
#include "kernels/dot_iq.h"
#include "kernels/dot_simd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tensor.h"
#include "kernels/dot_avx512.h"

enum { UP_SC = 512, UP_NEG = 1024, UP_DNEG = 1088, UP_M = 1152, UP_D = 1216, UP_BLOCK = 1280, UP_PAIRS = 2, UP_COLS = 4 };

/* Row A's dwords l in the even dwords, B's in the odd ones. */
ALWAYS_INLINE __m512i interleave_rows(const int8_t *a, const int8_t *b) {
    const __m512i idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutex2var_epi32(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)), idx,
                                     _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b)));
}

static float pack_pair(uint32_t wt, const uint8_t *rows[2], uint8_t *p) {
    float factor = 1.0f;
    nm_iq_unpacked u[2];
    static const nm_iq_unpacked none; /* a missing row B: zeros */
    int8_t dsx[2][256];
    for (int h = 0; h < 2; h++) {
        if (!rows[h]) {
            u[h] = none;
        } else {
            factor = nm_unpack_block(wt, rows[h], &u[h]);
            if (wt == GGML_TYPE_Q2_K) /* level (0..3) times its 4-bit multiplier: at most 45 */
                for (int e = 0; e < 256; e++) u[h].q[e] = (int8_t)(u[h].q[e] * u[h].sc[e / 16]);
        }
        if (wt == GGML_TYPE_IQ1_M)
            for (int e = 0; e < 256; e++) dsx[h][e] = rows[h] ? u[h].ds[e / 8] : 1;
    }
    int16_t *m = (int16_t *)(p + UP_M);
    for (int c = 0; c < 8; c++) {
        const __m512i q = interleave_rows(u[0].q + 32 * c, u[1].q + 32 * c);
        _mm512_storeu_si512(p + 64 * c, _mm512_abs_epi8(q));
        const uint64_t neg = _mm512_movepi8_mask(q);
        memcpy(p + UP_NEG + 8 * c, &neg, 8);
        uint64_t dneg = 0;
        if (wt == GGML_TYPE_IQ1_M) dneg = _mm512_movepi8_mask(interleave_rows(dsx[0] + 32 * c, dsx[1] + 32 * c));
        memcpy(p + UP_DNEG + 8 * c, &dneg, 8);
        /* lanes 2l+h: row h's multiplier of values 32c+4l..: 2c for l < 4, 2c+1 after, twice */
        int64_t half[2];
        for (int k = 0; k < 2; k++) {
            const uint16_t sa = (uint16_t)u[0].sc[2 * c + k], sb = (uint16_t)u[1].sc[2 * c + k];
            half[k] = (int64_t)((uint64_t)sa | (uint64_t)sa << 16 | (uint64_t)sb << 32 | (uint64_t)sb << 48);
        }
        _mm512_storeu_si512(p + UP_SC + 64 * c, _mm512_inserti64x4(_mm512_set1_epi64(half[0]), _mm256_set1_epi64x(half[1]), 1));
    }
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 16; g++) { /* the activations' 16-value sum g meets lane 2(g/2)+h */
            m[2 * (2 * (g / 2) + h) + g % 2] = u[h].mins[g];
        }
    float *d = (float *)(p + UP_D);
    d[0] = u[0].d;
    d[1] = u[1].d;
    d[2] = u[0].dmin;
    d[3] = u[1].dmin;
    memset(p + UP_D + 16, 0, UP_BLOCK - UP_D - 16);
    return factor;
}

/* np row pairs × nc activation rows, all blocks; WT is a constant in each copy below. */
ALWAYS_INLINE void up_micro(uint32_t wt, int64_t nb, const uint8_t *pw, size_t pair_stride, float factor,
                            const uint8_t *a, size_t as, int np, int nc, int r0, int nr, float *out, size_t os) {
    const bool iq1m = wt == GGML_TYPE_IQ1_M, iq1s = wt == GGML_TYPE_IQ1_S, q2k = wt == GGML_TYPE_Q2_K,
               tq = wt == GGML_TYPE_TQ1_0 || wt == GGML_TYPE_TQ2_0;
    __m512 acc[UP_PAIRS][UP_COLS], dacc[UP_PAIRS][UP_COLS], acc1[UP_PAIRS][UP_COLS];
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[p][c] = dacc[p][c] = acc1[p][c] = _mm512_setzero_ps();
    const __m512i zero = _mm512_setzero_si512(), ones8 = _mm512_set1_epi8(1),
                  ones16 = _mm512_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        __m512i sum[UP_PAIRS][UP_COLS], dsum[UP_PAIRS][UP_COLS];
        UNROLL
        for (int p = 0; p < np; p++)
            UNROLL
            for (int c = 0; c < nc; c++) sum[p][c] = dsum[p][c] = zero;
        UNROLL
        for (int k = 0; k < 8; k++) {
            __m512i y[UP_COLS];
            UNROLL
            for (int c = 0; c < nc; c++)
                y[c] = nm_avx512_pair_bytes(a + (size_t)c * as + (size_t)b * 292 + 4 + 32 * k);
            UNROLL
            for (int p = 0; p < np; p++) {
                const uint8_t *pb = pw + (size_t)p * pair_stride + (size_t)b * UP_BLOCK;
                const __m512i aq = _mm512_loadu_si512(pb + 64 * k), sc = _mm512_loadu_si512(pb + UP_SC + 64 * k);
                __mmask64 neg, dneg = 0;
                memcpy(&neg, pb + UP_NEG + 8 * k, 8);
                if (iq1m) memcpy(&dneg, pb + UP_DNEG + 8 * k, 8);
                UNROLL
                for (int c = 0; c < nc; c++) {
                    if (tq || q2k) { /* q 0..2 with multipliers 1, or Q2_K's q·multiplier 0..45: vpdpbusd
                                        adds each four-byte group's products straight into its 32-bit lane
                                        (the AVX2 tile's pairs, widened) */
                        sum[p][c] = _mm512_dpbusd_epi32(sum[p][c], aq, y[c]);
                        continue;
                    }
                    const __m512i ys = _mm512_mask_sub_epi8(y[c], neg, zero, y[c]);
                    sum[p][c] = _mm512_dpwssd_epi32(sum[p][c], _mm512_maddubs_epi16(aq, ys), sc);
                    if (iq1m) {
                        const __m512i yd = _mm512_mask_sub_epi8(y[c], dneg, zero, y[c]);
                        dsum[p][c] = _mm512_dpwssd_epi32(dsum[p][c], _mm512_maddubs_epi16(ones8, yd), sc);
                    }
                }
            }
        }
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            float yd;
            memcpy(&yd, ab, 4);
            const __m512i bs = nm_avx512_pair_bytes(ab + 260);
            UNROLL
            for (int p = 0; p < np; p++) {
                const uint8_t *pb = pw + (size_t)p * pair_stride + (size_t)b * UP_BLOCK;
                const __m512 d = _mm512_mul_ps(nm_avx512_pair_floats(pb + UP_D), _mm512_set1_ps(yd));
                if (q2k) {
                    const __m512i pm = _mm512_madd_epi16(bs, _mm512_loadu_si512(pb + UP_M));
                    const __m512 dm = _mm512_mul_ps(_mm512_set1_ps(-yd), nm_avx512_pair_floats(pb + UP_D + 8));
                    acc[p][c] = _mm512_fmadd_ps(dm, _mm512_cvtepi32_ps(pm), acc[p][c]);
                }
                if (tq) sum[p][c] = _mm512_sub_epi32(sum[p][c], _mm512_madd_epi16(bs, ones16));
                acc[p][c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sum[p][c]), acc[p][c]);
                if (iq1m) dacc[p][c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dsum[p][c]), dacc[p][c]);
                if (iq1s) {
                    const __m512i s1 = nm_avx512_fold_pairs(_mm512_madd_epi16(bs, _mm512_loadu_si512(pb + UP_M)));
                    acc1[p][c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s1), acc1[p][c]);
                }
            }
        }
    }
    const __m512 eighth = _mm512_set1_ps(0.125f), fv = _mm512_set1_ps(factor);
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) {
            __m512 r = nm_avx512_hsum_pairs(acc[p][c]);
            if (iq1s) r = _mm512_add_ps(r, _mm512_mul_ps(eighth, acc1[p][c]));
            else if (iq1m) r = _mm512_add_ps(r, _mm512_mul_ps(eighth, nm_avx512_hsum_pairs(dacc[p][c])));
            else r = _mm512_mul_ps(fv, r);
            const __mmask16 rows = r0 + 2 * p + 1 < nr ? 3 : 1;
            _mm512_mask_storeu_ps(out + (size_t)c * os + (size_t)(r0 + 2 * p), rows, r);
        }
}

ALWAYS_INLINE void up_cols(uint32_t wt, int64_t nb, const uint8_t *pw, size_t pair_stride, float factor,
                           const uint8_t *a, size_t as, int np, int nc, int r0, int nr, float *out, size_t os) {
    switch (nc) {
    case 4: up_micro(wt, nb, pw, pair_stride, factor, a, as, np, 4, r0, nr, out, os); break;
    case 3: up_micro(wt, nb, pw, pair_stride, factor, a, as, np, 3, r0, nr, out, os); break;
    case 2: up_micro(wt, nb, pw, pair_stride, factor, a, as, np, 2, r0, nr, out, os); break;
    default: up_micro(wt, nb, pw, pair_stride, factor, a, as, np, 1, r0, nr, out, os); break;
    }
}

/* Columns outer: a group of activation rows stays in L1 while the packed row pairs pass. */
#define TYPE_TILE(name, WT)                                                                                        \
    static void name(int64_t nb, const uint8_t *pw, size_t pair_stride, float factor, int nr, const uint8_t *a,  \
                     size_t as, int nc, float *out, size_t os) {                                                  \
        for (int c = 0; c < nc; c += UP_COLS) {                                                                   \
            const int m = nc - c < UP_COLS ? nc - c : UP_COLS;                                                    \
            for (int r = 0; r < nr; r += 2 * UP_PAIRS) {                                                          \
                const int np = (nr - r + 1) / 2 < UP_PAIRS ? (nr - r + 1) / 2 : UP_PAIRS;                         \
                const uint8_t *pr = pw + (size_t)(r / 2) * pair_stride;                                           \
                if (np == 2) up_cols(WT, nb, pr, pair_stride, factor, a + (size_t)c * as, as, 2, m, r, nr,        \
                                     out + (size_t)c * os, os);                                                   \
                else up_cols(WT, nb, pr, pair_stride, factor, a + (size_t)c * as, as, 1, m, r, nr,                \
                             out + (size_t)c * os, os);                                                           \
            }                                                                                                     \
        }                                                                                                         \
    }
#define TILE_OF(name, WT) TYPE_TILE(tile_##name, WT)
NM_UNPACKED_TYPES(TILE_OF)
#undef TILE_OF
#undef TYPE_TILE

bool nm_dot_tile_unpacked_avx512(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                                 size_t act_stride, int n_cols, float *out, size_t out_stride) {
    void (*tile)(int64_t, const uint8_t *, size_t, float, int, const uint8_t *, size_t, int, float *, size_t);
    switch (wt) {
#define CASE_OF(name, WT) case WT: tile = tile_##name; break;
        NM_UNPACKED_TYPES(CASE_OF)
#undef CASE_OF
    default: return false;
    }
    if (n_rows < 1 || n_cols < 1) return false;
    const size_t bs = ggml_type_get(wt)->type_size;
    const int64_t nb = n / 256;
    const size_t pair_stride = (size_t)nb * UP_BLOCK, pairs = (size_t)(n_rows + 1) / 2;
    uint8_t *pw = malloc(pairs * pair_stride + 64);
    if (!pw) return false;
    float factor = 1.0f;
    for (size_t p = 0; p < pairs; p++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *rows[2];
            for (int h = 0; h < 2; h++) {
                const size_t r = 2 * p + (size_t)h;
                rows[h] = r < (size_t)n_rows ? (const uint8_t *)w + r * w_stride + (size_t)b * bs : NULL;
            }
            factor = pack_pair(wt, rows, pw + p * pair_stride + (size_t)b * UP_BLOCK);
        }
    tile(nb, pw, pair_stride, factor, n_rows, act, act_stride, n_cols, out, out_stride);
    free(pw);
    return true;
}
