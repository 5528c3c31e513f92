/* AVX-512 kernels for dot.h (built with -mavx512f/bw/vl/dq/vnni; used only when the CPU has
 * all of them). Every kernel here reproduces the scalar reference's float order exactly:
 *
 * - F32/F16/BF16: two outputs share one register, lanes 0-7 holding output A's eight tinyBLAS
 *   sums and lanes 8-15 output B's; the weight tile is re-laid out once per call (in its own
 *   type, widened in registers) so that one load yields both rows' next eight elements, and
 *   each activation chunk is broadcast to both halves. Register blocking: 4 row pairs × 6 activation rows per pass, 24 accumulators.
 *   F16 on AMD cores takes the AVX2 whole-rows tile instead (nm_dot_tile_f16_avx512, below).
 * - Q4_0: sixteen rows in the lanes of a register (nm_dot_q4_0_pack), block integer sums with
 *   vpdpbusd (nibbles 0..15 unsigned × activation int8, started at −8·Σy), then one fused
 *   multiply-add per block into each lane's own chain. IQ4_NL the same way, its levels biased
 *   by 128 and each sum started at −128·Σy.
 * - Q8_0, Q5_K and Q6_K, whose order is the AVX2 tiles' (ggml_vec_dot's eight lanes per output, one
 *   fused multiply-add per block, hsum's pairing at the end): two rows per register, their lanes
 *   interleaved (lane 2l row A's lane l, 2l+1 row B's), so a block's two scale products are one
 *   64-bit broadcast and the activations' four-byte groups are spread to both rows by one permute.
 *   The lane sums are exact integers, made with VNNI: Q8_0 by vpdpbusd on the weights stored as
 *   q + 128 and started at −128·Σy per group of four (the aux row), Q5_K and Q6_K by vpmaddubsw
 *   and vpdpwssd (scale times pair of products). 4 row pairs × 6 activation rows per pass for
 *   Q8_0, 2 × 6 for Q5_K and Q6_K. Repacked Q4_K has its own file (dot_repack_avx512.c), the
 *   i-quants and the other 256-value low-bit types theirs (dot_unpacked_avx512.c). */
#include "kernels/dot_simd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"
#include "formats/tensor.h"
#include "kernels/dot_avx512.h"
#include "kernels/dot_iq.h"
#include "kernels/dot_lowbit.h"
#include "kernels/prefetch_ahead.h"

/* ---------------- F32 / F16 / BF16 ---------------- */

enum { ROW_PAIRS = 4, COLS = 6 };

/* Row pair p, chunk c of 8: rows 2p (lanes 0-7) and 2p+1 (lanes 8-15) side by side, in the
 * weights' own type (widened in registers: F16 by vcvtph2ps, BF16 by a shift, both exact), so
 * the re-layout is a copy and a pass's weights take half the cache. A missing second row (odd
 * n_rows) is zero. */
ALWAYS_INLINE void pack_rows(size_t es, int64_t chunks, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    const size_t pair_stride = (size_t)chunks * 16 * es;
    for (int r = 0; r < nr; r++) {
        const uint8_t *src = w + (size_t)r * ws;
        uint8_t *p = dst + (size_t)(r / 2) * pair_stride + (size_t)(r & 1) * 8 * es;
        for (int64_t c = 0; c < chunks; c++) memcpy(p + (size_t)c * 16 * es, src + (size_t)c * 8 * es, 8 * es);
    }
}

static void pack_pairs(size_t es, int64_t n, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t chunks = n / 8;
    const size_t pair_stride = (size_t)chunks * 16 * es;
    /* es a constant, so each copy is one vector move (a variable size had made it a loop of
       8-byte moves) */
    if (es == 4) pack_rows(4, chunks, w, ws, nr, dst);
    else pack_rows(2, chunks, w, ws, nr, dst);
    if (nr & 1) {
        uint8_t *p = dst + (size_t)(nr / 2) * pair_stride + 8 * es;
        for (int64_t c = 0; c < chunks; c++) memset(p + (size_t)c * 16 * es, 0, 8 * es);
    }
}

ALWAYS_INLINE __m512 load_pair(uint32_t wt, const uint8_t *p) {
    if (wt == GGML_TYPE_F32) return _mm512_loadu_ps(p);
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (wt == GGML_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* acc[p][c] += pairs p × columns c over chunks [c0, c1). wt, np ≤ ROW_PAIRS and nc ≤ COLS are
 * constants after inlining. Per step: 4 weight loads, 6 broadcasts, 24 FMAs. */
ALWAYS_INLINE void float_block(uint32_t wt, const uint8_t *pw, size_t pair_stride, const float *x, size_t xs, int np,
                               int nc, int64_t c0, int64_t c1, __m512 *acc) {
    const size_t es = wt == GGML_TYPE_F32 ? 4 : 2;
    __m512 a[ROW_PAIRS][COLS];
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) a[p][c] = acc[p * COLS + c];
    for (int64_t k = c0; k < c1; k++) {
        __m512 wv[ROW_PAIRS];
        UNROLL
        for (int p = 0; p < np; p++) wv[p] = load_pair(wt, pw + (size_t)p * pair_stride + (size_t)k * 16 * es);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const __m512 xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(x + (size_t)c * xs + (size_t)k * 8));
            UNROLL
            for (int p = 0; p < np; p++) a[p][c] = _mm512_fmadd_ps(wv[p], xv, a[p][c]);
        }
    }
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[p * COLS + c] = a[p][c];
}

/* Folds each half's eight sums as dot.c's tinyblas_hsum does: lane 0 gets output A, lane 8 B. */
ALWAYS_INLINE __m512 hsum_halves(__m512 v) {
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1))); /* s4[i] = acc[i] + acc[i+4] */
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));       /* s4[0]+s4[2], s4[1]+s4[3] */
    return _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));    /* t0 + t1 */
}

/* The sums of pairs p × columns c from their accumulators into out. */
ALWAYS_INLINE void float_finish(const __m512 *acc, int np, int nc, int r0, int nr, float *out, size_t os) {
    for (int p = 0; p < np; p++)
        for (int c = 0; c < nc; c++) {
            float lanes[16];
            _mm512_storeu_ps(lanes, hsum_halves(acc[p * COLS + c]));
            out[(size_t)c * os + (size_t)(r0 + 2 * p)] = lanes[0];
            if (r0 + 2 * p + 1 < nr) out[(size_t)c * os + (size_t)(r0 + 2 * p + 1)] = lanes[8];
        }
}

ALWAYS_INLINE void float_cols(uint32_t wt, const uint8_t *pw, size_t pair_stride, const float *x, size_t xs, int np,
                              int nc, int64_t c0, int64_t c1, __m512 *acc) {
    switch (nc) {
    case 6: float_block(wt, pw, pair_stride, x, xs, np, 6, c0, c1, acc); break;
    case 5: float_block(wt, pw, pair_stride, x, xs, np, 5, c0, c1, acc); break;
    case 4: float_block(wt, pw, pair_stride, x, xs, np, 4, c0, c1, acc); break;
    case 3: float_block(wt, pw, pair_stride, x, xs, np, 3, c0, c1, acc); break;
    case 2: float_block(wt, pw, pair_stride, x, xs, np, 2, c0, c1, acc); break;
    default: float_block(wt, pw, pair_stride, x, xs, np, 1, c0, c1, acc); break;
    }
}

/* Activation rows in blocks of FLOAT_CB groups of COLS, the reduction in sub-slices of FLOAT_KC
 * chunks of 8: a block's sub-slice (18 KiB) stays in L1 while each group of ROW_PAIRS pairs'
 * sub-slice of the panel (8 KiB, L2) meets all its groups of activation rows in turn; the
 * accumulators wait in acc between sub-slices (a store and reload changes no bit). With one
 * group of COLS per pass over the whole row, every weight load came from L2. */
enum { FLOAT_CB = 3, FLOAT_KC = 32 };

ALWAYS_INLINE void float_rows(uint32_t wt, const uint8_t *pw, size_t pair_stride, const float *xr, size_t xs, int64_t chunks,
                              int nr, int nc, float *out, size_t os, __m512 *acc, nm_ahead *next) {
    const int row_groups = (nr + 2 * ROW_PAIRS - 1) / (2 * ROW_PAIRS);
    for (int cb = 0; cb < nc; cb += FLOAT_CB * COLS) {
        const int nb = nc - cb < FLOAT_CB * COLS ? nc - cb : FLOAT_CB * COLS;
        const int groups = (nb + COLS - 1) / COLS;
        for (int i = 0; i < row_groups * groups * ROW_PAIRS * COLS; i++) acc[i] = _mm512_setzero_ps();
        for (int64_t k0 = 0; k0 < chunks; k0 += FLOAT_KC) {
            const int64_t k1 = chunks - k0 < FLOAT_KC ? chunks : k0 + FLOAT_KC;
            for (int g = 0; g < row_groups; g++) {
                nm_ahead_step(next);
                const int r = g * 2 * ROW_PAIRS;
                const int np = (nr - r + 1) / 2 < ROW_PAIRS ? (nr - r + 1) / 2 : ROW_PAIRS;
                const uint8_t *pr = pw + (size_t)(r / 2) * pair_stride;
                for (int j = 0; j < groups; j++) {
                    const int m = nb - j * COLS < COLS ? nb - j * COLS : COLS;
                    const float *xc = xr + (size_t)(cb + j * COLS) * xs;
                    __m512 *a = acc + (size_t)(g * groups + j) * ROW_PAIRS * COLS;
                    switch (np) {
                    case 4: float_cols(wt, pr, pair_stride, xc, xs, 4, m, k0, k1, a); break;
                    case 3: float_cols(wt, pr, pair_stride, xc, xs, 3, m, k0, k1, a); break;
                    case 2: float_cols(wt, pr, pair_stride, xc, xs, 2, m, k0, k1, a); break;
                    default: float_cols(wt, pr, pair_stride, xc, xs, 1, m, k0, k1, a); break;
                    }
                    if (k1 == chunks) float_finish(a, np, m, r, nr, out + (size_t)(cb + j * COLS) * os, os);
                }
            }
        }
    }
}

/* At most FLOAT_ROWS rows per panel: verify's tasks give float tiles of 64 rows for the AVX2
 * kernel's sake; this one keeps its panels of 32 rows in L2. */
enum { FLOAT_ROWS = 32 };

/* Activations as floats: F32's own rows, or F16/BF16's aux rows (widened once per batch); at most
 * FLOAT_ROWS weight rows (acc holds their accumulators for one block of activation rows). The
 * next tile's nr_next rows (from w_next) are fetched into L2 while this one's passes run: its
 * packing had waited on their loads (9-22% of this function's samples in an F32 evaluation on a
 * 2-core EPYC, Zen 4, depending on the period). */
static bool tile_float_rows(uint32_t wt, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *w_next,
                            int nr_next, const uint8_t *a, size_t as, const uint8_t *aux, size_t aux_stride, int nc,
                            float *out, size_t os) {
    const float *xr = (const float *)(wt == GGML_TYPE_F32 ? a : aux);
    const size_t stride = wt == GGML_TYPE_F32 ? as : aux_stride;
    if (n % 8 != 0 || !xr || stride % sizeof(float) != 0) return false; /* AVX2 handles tails */
    const size_t xs = stride / sizeof(float), es = wt == GGML_TYPE_F32 ? 4 : 2;
    const int64_t chunks = n / 8;
    const size_t pair_stride = (size_t)chunks * 16 * es, npairs = (size_t)(nr + 1) / 2;
    uint8_t *pw = malloc(npairs * pair_stride + 64);
    if (!pw) return false;
    pack_pairs(es, n, w, ws, nr, pw);
    __m512 acc[(FLOAT_ROWS / (2 * ROW_PAIRS)) * FLOAT_CB * ROW_PAIRS * COLS];
    /* float_rows' steps: one per group of rows, sub-slice and block of activation rows */
    const int64_t steps = (int64_t)((nr + 2 * ROW_PAIRS - 1) / (2 * ROW_PAIRS)) * ((chunks + FLOAT_KC - 1) / FLOAT_KC) *
                          ((nc + FLOAT_CB * COLS - 1) / (FLOAT_CB * COLS));
    nm_ahead next = nm_ahead_plan(w_next, ws, nr_next, (size_t)n * es, steps);
    if (wt == GGML_TYPE_F32) float_rows(GGML_TYPE_F32, pw, pair_stride, xr, xs, chunks, nr, nc, out, os, acc, &next);
    else if (wt == GGML_TYPE_F16)
        float_rows(GGML_TYPE_F16, pw, pair_stride, xr, xs, chunks, nr, nc, out, os, acc, &next);
    else float_rows(GGML_TYPE_BF16, pw, pair_stride, xr, xs, chunks, nr, nc, out, os, acc, &next);
    free(pw);
    return true;
}

static bool tile_float(uint32_t wt, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as,
                       const uint8_t *aux, size_t aux_stride, int nc, float *out, size_t os) {
    for (int r = 0; r < nr; r += FLOAT_ROWS) {
        const int rows = nr - r < FLOAT_ROWS ? nr - r : FLOAT_ROWS;
        const int next = nr - r - rows < FLOAT_ROWS ? nr - r - rows : FLOAT_ROWS;
        const uint8_t *wr = w + (size_t)r * ws;
        if (!tile_float_rows(wt, n, wr, ws, rows, next > 0 ? wr + (size_t)rows * ws : NULL, next, a, as, aux,
                             aux_stride, nc, out + r, os))
            return false;
    }
    return true;
}

/* ---------------- Q4_0 and IQ4_NL ---------------- */

/* Sixteen rows in the lanes of a register, each lane its own output's chain (ggml's repacked
 * order for both: one fused multiply-add per block). Q4_0's nibbles go into vpdpbusd unsigned with
 * each block sum started at −8·Σy (the aux row); IQ4_NL's levels are stored as level + 128 (1..241)
 * with each sum started at −128·Σy: the same exact integers. Packed by nm_dot_q4_0_pack and
 * nm_iq4_nl_pack_avx2 (nm_iq4_nl_pack's layout), 16 rows to a group. */
enum { G16 = 16, G16_COLS = 6, Q4_0_PACK_BLOCK = G16 * NM_Q4_0_PACK_BLOCK_PER_ROW, NL_PACK = G16 * (32 + 4) };

ALWAYS_INLINE const nm_q8_0_block_info *info_at(const uint8_t *aux, size_t aux_stride, int c, int64_t b) {
    return (const nm_q8_0_block_info *)(aux + (size_t)c * aux_stride) + b;
}

/* −128 × the sum of a Q8_0 block's 32 values */
ALWAYS_INLINE int32_t minus_128_sum(const uint8_t *qs) {
    const __m256i y = _mm256_loadu_si256((const __m256i *)qs);
    const __m256i s8 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), y), _mm256_set1_epi16(1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return -128 * _mm_cvtsi128_si32(s);
}

/* ng groups of 16 rows (1 or 2) × nc activation rows (≤ G16_COLS), all blocks; nl: IQ4_NL. */
ALWAYS_INLINE void g16_micro(bool nl, int64_t nb, const uint8_t *pw, size_t group_stride, const uint8_t *aux,
                             size_t aux_stride, const uint8_t *a, size_t as, int ng, int nc, float *out, size_t os,
                             int nr) {
    const size_t block = nl ? NL_PACK : Q4_0_PACK_BLOCK, d_at = nl ? 512 : 256;
    __m512 acc[2][G16_COLS];
    UNROLL
    for (int g = 0; g < ng; g++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[g][c] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        __m512i dp[2][G16_COLS];
        UNROLL
        for (int c = 0; c < nc; c++) {
            const __m512i start = _mm512_set1_epi32(nl ? minus_128_sum(a + (size_t)c * as + (size_t)b * 34 + 2)
                                                       : info_at(aux, aux_stride, c, b)->minus_8_sum);
            UNROLL
            for (int g = 0; g < ng; g++) dp[g][c] = start;
        }
        UNROLL
        for (int q = 0; q < 4; q++) {
            __m512i lo[2], hi[2];
            UNROLL
            for (int g = 0; g < ng; g++) {
                const uint8_t *pg = pw + (size_t)g * group_stride + (size_t)b * block;
                if (nl) {
                    lo[g] = _mm512_loadu_si512(pg + 128 * q);
                    hi[g] = _mm512_loadu_si512(pg + 128 * q + 64);
                } else {
                    const __m512i wv = _mm512_loadu_si512(pg + 64 * q);
                    lo[g] = _mm512_and_si512(wv, m4);
                    hi[g] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m4);
                }
            }
            UNROLL
            for (int c = 0; c < nc; c++) {
                const uint8_t *y = a + (size_t)c * as + (size_t)b * 34 + 2;
                int32_t ylo, yhi;
                memcpy(&ylo, y + 4 * q, 4);
                memcpy(&yhi, y + 16 + 4 * q, 4);
                const __m512i vlo = _mm512_set1_epi32(ylo), vhi = _mm512_set1_epi32(yhi);
                UNROLL
                for (int g = 0; g < ng; g++) {
                    dp[g][c] = _mm512_dpbusd_epi32(dp[g][c], lo[g], vlo);
                    dp[g][c] = _mm512_dpbusd_epi32(dp[g][c], hi[g], vhi);
                }
            }
        }
        UNROLL
        for (int g = 0; g < ng; g++) {
            const __m512 dw = _mm512_loadu_ps((const float *)(pw + (size_t)g * group_stride + (size_t)b * block + d_at));
            UNROLL
            for (int c = 0; c < nc; c++) {
                const uint8_t *ab = a + (size_t)c * as + (size_t)b * 34;
                const float dy = nl ? _cvtsh_ss((uint16_t)(ab[0] | (ab[1] << 8))) : info_at(aux, aux_stride, c, b)->d;
                acc[g][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp[g][c]), _mm512_mul_ps(dw, _mm512_set1_ps(dy)), acc[g][c]);
            }
        }
    }
    UNROLL
    for (int g = 0; g < ng; g++) {
        const int m = nr - 16 * g < 16 ? nr - 16 * g : 16;
        const __mmask16 keep = (__mmask16)((1u << m) - 1u);
        UNROLL
        for (int c = 0; c < nc; c++) _mm512_mask_storeu_ps(out + (size_t)c * os + (size_t)(16 * g), keep, acc[g][c]);
    }
}

ALWAYS_INLINE void g16_cols(bool nl, int64_t nb, const uint8_t *pw, size_t group_stride, const uint8_t *aux,
                            size_t aux_stride, const uint8_t *a, size_t as, int ng, int nc, float *out, size_t os,
                            int nr) {
    switch (nc) {
    case 6: g16_micro(nl, nb, pw, group_stride, aux, aux_stride, a, as, ng, 6, out, os, nr); break;
    case 5: g16_micro(nl, nb, pw, group_stride, aux, aux_stride, a, as, ng, 5, out, os, nr); break;
    case 4: g16_micro(nl, nb, pw, group_stride, aux, aux_stride, a, as, ng, 4, out, os, nr); break;
    case 3: g16_micro(nl, nb, pw, group_stride, aux, aux_stride, a, as, ng, 3, out, os, nr); break;
    case 2: g16_micro(nl, nb, pw, group_stride, aux, aux_stride, a, as, ng, 2, out, os, nr); break;
    default: g16_micro(nl, nb, pw, group_stride, aux, aux_stride, a, as, ng, 1, out, os, nr); break;
    }
}

/* Q4_0 needs its aux rows (the activations' scales and −8·Σy); IQ4_NL makes its own. */
ALWAYS_INLINE bool tile_g16(bool nl, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as,
                            const uint8_t *aux, size_t aux_stride, int nc, float *out, size_t os) {
    const int64_t nb = n / 32;
    if (!nl && !aux) return false;
    const size_t group_stride = (size_t)nb * (nl ? NL_PACK : Q4_0_PACK_BLOCK);
    uint8_t *pw = malloc((size_t)(nr + G16 - 1) / G16 * group_stride + 64);
    if (!pw) return false;
    if (nl) nm_iq4_nl_pack_avx2(nb, w, ws, nr, G16, 128, pw);
    else nm_dot_q4_0_pack(n, w, ws, nr, G16, pw);
    for (int r = 0; r < nr; r += 2 * G16) {
        const int ng = nr - r > G16 ? 2 : 1;
        const uint8_t *pg = pw + (size_t)(r / G16) * group_stride;
        for (int c = 0; c < nc; c += G16_COLS) {
            const int m = nc - c < G16_COLS ? nc - c : G16_COLS;
            const uint8_t *xc = nl ? NULL : aux + (size_t)c * aux_stride, *ac = a + (size_t)c * as;
            float *oc = out + (size_t)c * os + r;
            if (ng == 2) g16_cols(nl, nb, pg, group_stride, xc, aux_stride, ac, as, 2, m, oc, os, nr - r);
            else g16_cols(nl, nb, pg, group_stride, xc, aux_stride, ac, as, 1, m, oc, os, nr - r);
        }
    }
    free(pw);
    return true;
}

/* ---------------- Q8_0 ---------------- */

/* Two weight rows per register, the AVX2 tile's two chains of eight lanes interleaved: lane 2l
 * holds row A's lane l, lane 2l+1 row B's. A row pair's block is 64 bytes, A's and B's quants
 * 4l..4l+3 side by side for each l, each stored as the unsigned byte q + 128 for vpdpbusd, which
 * starts from the activation block's −128·Σy per group of four (aux) and so ends at the exact
 * Σ q·y the AVX2 tile takes. With the rows interleaved, the scale products of a block are one
 * pair of floats (A's, B's): made eight blocks at a time by one multiply, parked on the stack and
 * broadcast from there as one 64-bit load. The pair's scales (two floats per block) follow all its
 * blocks. A missing row B is zero. */
enum { Q8_0_PAIRS = 4, Q8_0_COLS = 6, Q8_0_PAIR_BLOCK = 64, Q8_0_DB = 8 };

static size_t q8_0_pair_stride(int64_t nb) { return (size_t)nb * (Q8_0_PAIR_BLOCK + 2 * sizeof(float)); }

static void q8_0_pack(int64_t nb, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    const size_t stride = q8_0_pair_stride(nb);
    const __m512i interleave = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int r = 0; r < nr; r += 2) {
        uint8_t *q = dst + (size_t)(r / 2) * stride;
        float *d = (float *)(q + (size_t)nb * Q8_0_PAIR_BLOCK);
        const uint8_t *ra = w + (size_t)r * ws, *rb = r + 1 < nr ? ra + ws : NULL;
        for (int64_t b = 0; b < nb; b++, q += Q8_0_PAIR_BLOCK) {
            const uint8_t *ba = ra + (size_t)b * 34, *bb = rb ? rb + (size_t)b * 34 : NULL;
            const __m256i qa = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(ba + 2)), flip);
            const __m256i qb = bb ? _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(bb + 2)), flip)
                                  : _mm256_setzero_si256();
            _mm512_storeu_si512(q, _mm512_permutex2var_epi32(_mm512_castsi256_si512(qa), interleave,
                                                             _mm512_castsi256_si512(qb)));
            uint16_t h;
            memcpy(&h, ba, 2);
            d[2 * b] = _cvtsh_ss(h);
            if (bb) memcpy(&h, bb, 2);
            d[2 * b + 1] = bb ? _cvtsh_ss(h) : 0.0f;
        }
    }
}

/* np row pairs × nc activation rows, all blocks. Per pair, block and activation row: one
 * vpdpbusd, one conversion, one fused multiply-add; per activation row and block, its quants and
 * start values spread to both rows' lanes (one permute each). */
ALWAYS_INLINE void q8_0_micro(int64_t nb, const uint8_t *pw, size_t pair_stride, const uint8_t *a, size_t as,
                              const uint8_t *aux, size_t aux_stride, int np, int nc, int r0, int nr, float *out,
                              size_t os) {
    __m512 acc[Q8_0_PAIRS][Q8_0_COLS];
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[p][c] = _mm512_setzero_ps();
    const __m512i dup = nm_avx512_dup_pairs();
    const float *dwp = (const float *)(pw + (size_t)nb * Q8_0_PAIR_BLOCK);
    const size_t dw_stride = pair_stride / sizeof(float);
    for (int64_t b0 = 0; b0 < nb; b0 += Q8_0_DB) {
        const int m = nb - b0 < Q8_0_DB ? (int)(nb - b0) : Q8_0_DB;
        const __mmask8 m8 = (__mmask8)((1u << m) - 1u);
        const __mmask16 m16 = (__mmask16)((1u << (2 * m)) - 1u);
        double d[Q8_0_PAIRS][Q8_0_COLS][Q8_0_DB] __attribute__((aligned(64))); /* (A, B) float pairs */
        __m512 dw[Q8_0_PAIRS];
        UNROLL
        for (int p = 0; p < np; p++) dw[p] = _mm512_maskz_loadu_ps(m16, dwp + (size_t)p * dw_stride + 2 * b0);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const float *dy = (const float *)(aux + (size_t)c * aux_stride) + b0;
            const __m512 dyv = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, dy)));
            UNROLL
            for (int p = 0; p < np; p++) _mm512_store_ps((float *)d[p][c], _mm512_mul_ps(dw[p], dyv));
        }
        for (int k = 0; k < m; k++) {
            const int64_t b = b0 + k;
            __m512i wv[Q8_0_PAIRS];
            UNROLL
            for (int p = 0; p < np; p++)
                wv[p] = _mm512_loadu_si512(pw + (size_t)p * pair_stride + (size_t)b * Q8_0_PAIR_BLOCK);
            UNROLL
            for (int c = 0; c < nc; c++) {
                const __m256i yq = _mm256_loadu_si256((const __m256i *)(a + (size_t)c * as + (size_t)b * 34 + 2));
                const __m256i sums = _mm256_loadu_si256(
                    (const __m256i *)(aux + (size_t)c * aux_stride + (size_t)nb * sizeof(float)) + b);
                const __m512i y = _mm512_permutexvar_epi32(dup, _mm512_castsi256_si512(yq));
                const __m512i start = _mm512_permutexvar_epi32(dup, _mm512_castsi256_si512(sums));
                UNROLL
                for (int p = 0; p < np; p++) {
                    const __m512i s = _mm512_dpbusd_epi32(start, wv[p], y);
                    const __m512 dv = _mm512_castpd_ps(_mm512_set1_pd(d[p][c][k]));
                    acc[p][c] = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(s), acc[p][c]);
                }
            }
        }
    }
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) {
            const __mmask16 rows = r0 + 2 * p + 1 < nr ? 3 : 1;
            _mm512_mask_storeu_ps(out + (size_t)c * os + (size_t)(r0 + 2 * p), rows, nm_avx512_hsum_pairs(acc[p][c]));
        }
}

ALWAYS_INLINE void q8_0_cols(int64_t nb, const uint8_t *pw, size_t pair_stride, const uint8_t *a, size_t as,
                             const uint8_t *aux, size_t aux_stride, int np, int nc, int r0, int nr, float *out,
                             size_t os) {
    switch (nc) {
    case 6: q8_0_micro(nb, pw, pair_stride, a, as, aux, aux_stride, np, 6, r0, nr, out, os); break;
    case 5: q8_0_micro(nb, pw, pair_stride, a, as, aux, aux_stride, np, 5, r0, nr, out, os); break;
    case 4: q8_0_micro(nb, pw, pair_stride, a, as, aux, aux_stride, np, 4, r0, nr, out, os); break;
    case 3: q8_0_micro(nb, pw, pair_stride, a, as, aux, aux_stride, np, 3, r0, nr, out, os); break;
    case 2: q8_0_micro(nb, pw, pair_stride, a, as, aux, aux_stride, np, 2, r0, nr, out, os); break;
    default: q8_0_micro(nb, pw, pair_stride, a, as, aux, aux_stride, np, 1, r0, nr, out, os); break;
    }
}

/* Columns outer, as for the float tile: a group of activation rows stays in L1 while the packed
 * row pairs (L2) pass by it. */
static bool tile_q8_0(int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const uint8_t *aux,
                      size_t aux_stride, int nc, float *out, size_t os) {
    const int64_t nb = n / 32;
    if (!aux || aux_stride % sizeof(float) != 0) return false;
    const size_t pair_stride = q8_0_pair_stride(nb);
    uint8_t *pw = malloc((size_t)(nr + 1) / 2 * pair_stride + 64);
    if (!pw) return false;
    q8_0_pack(nb, w, ws, nr, pw);
    for (int c = 0; c < nc; c += Q8_0_COLS) {
        const int m = nc - c < Q8_0_COLS ? nc - c : Q8_0_COLS;
        const uint8_t *ac = a + (size_t)c * as, *xc = aux + (size_t)c * aux_stride;
        float *oc = out + (size_t)c * os;
        for (int r = 0; r < nr; r += 2 * Q8_0_PAIRS) {
            const int np = (nr - r + 1) / 2 < Q8_0_PAIRS ? (nr - r + 1) / 2 : Q8_0_PAIRS;
            const uint8_t *pr = pw + (size_t)(r / 2) * pair_stride;
            switch (np) {
            case 4: q8_0_cols(nb, pr, pair_stride, ac, as, xc, aux_stride, 4, m, r, nr, oc, os); break;
            case 3: q8_0_cols(nb, pr, pair_stride, ac, as, xc, aux_stride, 3, m, r, nr, oc, os); break;
            case 2: q8_0_cols(nb, pr, pair_stride, ac, as, xc, aux_stride, 2, m, r, nr, oc, os); break;
            default: q8_0_cols(nb, pr, pair_stride, ac, as, xc, aux_stride, 1, m, r, nr, oc, os); break;
            }
        }
    }
    free(pw);
    return true;
}

/* ---------------- Q6_K ---------------- */

/* The AVX2 tile's lanes (k_q6_k: lane l sums scale × q × y over bytes 4l..4l+3 of every 32-element
 * slice, less 32 × (scale × bsum) of its 16-element groups 2l and 2l+1, then one fused
 * multiply-add per super-block), two rows interleaved as for Q8_0. Per pair and super-block
 * (Q6_PAIR_BLOCK bytes):
 *   8 slices k × 64 bytes: the rows' 6-bit quants 32k+4l..32k+4l+3 (unsigned 0..63), A's and B's
 *       side by side for each l;
 *   8 slices k × 16 int16 pairs: lane 2l+h gets row h's scale of its 16 elements, twice;
 *   16 int16 pairs: lane 2l+h gets row h's scales 2l and 2l+1 (for the bsum offset);
 *   2 floats: the rows' d.
 * vpmaddubsw makes int16 pairs of products (at most 2·63·127: no saturation) and vpdpwssd scales
 * and adds them into the lane's int32: the same exact integer the AVX2 tile gets. */
/* Q5_K (below) shares the blocking: 2 row pairs × 6 activation rows per pass, columns outer. */
enum { K56_PAIRS = 2, K56_COLS = 6 };
enum { Q6_SC = 512, Q6_SCALL = 1024, Q6_D = 1088, Q6_PAIR_BLOCK = 1096 };

static void q6_k_pack(int64_t nb, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    for (int r = 0; r < (nr + 1) / 2 * 2; r++) {
        const int h = r & 1;
        const uint8_t *row = r < nr ? w + (size_t)r * ws : NULL;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *p = dst + ((size_t)(r / 2) * (size_t)nb + (size_t)b) * Q6_PAIR_BLOCK;
            int16_t *sc = (int16_t *)(p + Q6_SC), *scall = (int16_t *)(p + Q6_SCALL);
            float *d = (float *)(p + Q6_D);
            if (!row) {
                for (int k = 0; k < 8; k++)
                    for (int l = 0; l < 8; l++) {
                        memset(p + 64 * k + 8 * l + 4 * h, 0, 4);
                        sc[32 * k + 4 * l + 2 * h] = sc[32 * k + 4 * l + 2 * h + 1] = 0;
                    }
                for (int l = 0; l < 8; l++) scall[4 * l + 2 * h] = scall[4 * l + 2 * h + 1] = 0;
                d[h] = 0.0f;
                continue;
            }
            const uint8_t *blk = row + (size_t)b * 210, *ql = blk, *qh = blk + 128;
            const int8_t *s = (const int8_t *)(blk + 192);
            uint8_t q[256];
            for (int half = 0; half < 2; half++)
                for (int l = 0; l < 32; l++) {
                    const uint8_t L0 = ql[64 * half + l], L1 = ql[64 * half + 32 + l], H = qh[32 * half + l];
                    q[128 * half + l] = (uint8_t)((L0 & 0xF) | ((H & 3) << 4));
                    q[128 * half + 32 + l] = (uint8_t)((L1 & 0xF) | (((H >> 2) & 3) << 4));
                    q[128 * half + 64 + l] = (uint8_t)((L0 >> 4) | (((H >> 4) & 3) << 4));
                    q[128 * half + 96 + l] = (uint8_t)((L1 >> 4) | (((H >> 6) & 3) << 4));
                }
            for (int k = 0; k < 8; k++)
                for (int l = 0; l < 8; l++) {
                    memcpy(p + 64 * k + 8 * l + 4 * h, q + 32 * k + 4 * l, 4);
                    sc[32 * k + 4 * l + 2 * h] = sc[32 * k + 4 * l + 2 * h + 1] = s[2 * k + (l >= 4)];
                }
            for (int l = 0; l < 8; l++) {
                scall[4 * l + 2 * h] = s[2 * l];
                scall[4 * l + 2 * h + 1] = s[2 * l + 1];
            }
            d[h] = _cvtsh_ss((uint16_t)(blk[208] | (blk[209] << 8)));
        }
    }
}

/* ---------------- Q5_K ---------------- */

/* The AVX2 tile's order (q5_k_pass: lane l sums scale × q × y over bytes 4l..4l+3 of every
 * 32-element sub-block, one fused multiply-add per super-block; the mins' integer sum in its own
 * scalar fused chain; hsum less that chain at the end), two rows interleaved as for Q6_K. Per pair
 * and super-block (Q5_PAIR_BLOCK bytes):
 *   8 sub-blocks k × 64 bytes: the rows' 5-bit quants 32k+4l..32k+4l+3 (0..31), A's and B's side
 *       by side for each l;
 *   8 × 4 int16: A's scale of sub-block k twice, then B's twice (one 64-bit broadcast per k);
 *   16 int16 pairs: lane 2l+h gets row h's min of sub-block l, twice (times the activations'
 *       pair of 16-element sums);
 *   4 floats: the rows' d, then their dmin.
 * The mins' sums of each row are folded into lanes 0 and 1 (exact integers) and both chains run
 * in every lane; only lanes 0 and 1 are stored. */
enum { Q5_SC = 512, Q5_MIN = 576, Q5_D = 640, Q5_PAIR_BLOCK = 656 };

static void q5_k_pack(int64_t nb, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    for (int r = 0; r < (nr + 1) / 2 * 2; r++) {
        const int h = r & 1;
        const uint8_t *row = r < nr ? w + (size_t)r * ws : NULL;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *p = dst + ((size_t)(r / 2) * (size_t)nb + (size_t)b) * Q5_PAIR_BLOCK;
            int16_t *sc = (int16_t *)(p + Q5_SC), *mn = (int16_t *)(p + Q5_MIN);
            float *d = (float *)(p + Q5_D);
            if (!row) {
                for (int k = 0; k < 8; k++) {
                    for (int l = 0; l < 8; l++) memset(p + 64 * k + 8 * l + 4 * h, 0, 4);
                    sc[4 * k + 2 * h] = sc[4 * k + 2 * h + 1] = 0;
                    mn[4 * k + 2 * h] = mn[4 * k + 2 * h + 1] = 0;
                }
                d[h] = d[2 + h] = 0.0f;
                continue;
            }
            const uint8_t *blk = row + (size_t)b * 176, *qh = blk + 16;
            for (int k = 0; k < 8; k++) {
                const uint8_t *qs = blk + 48 + 32 * (k / 2);
                uint8_t q[32];
                for (int i = 0; i < 32; i++)
                    q[i] = (uint8_t)((k & 1 ? qs[i] >> 4 : qs[i] & 0xF) | ((qh[i] >> k) & 1) << 4);
                for (int l = 0; l < 8; l++) memcpy(p + 64 * k + 8 * l + 4 * h, q + 4 * l, 4);
                int s, m;
                nm_k4_scale_min(k, blk + 4, &s, &m);
                sc[4 * k + 2 * h] = sc[4 * k + 2 * h + 1] = (int16_t)s;
                mn[4 * k + 2 * h] = mn[4 * k + 2 * h + 1] = (int16_t)m;
            }
            d[h] = _cvtsh_ss((uint16_t)(blk[0] | (blk[1] << 8)));
            d[2 + h] = _cvtsh_ss((uint16_t)(blk[2] | (blk[3] << 8)));
        }
    }
}

/* Q5_K (five) or Q6_K: np row pairs × nc activation rows, all super-blocks. The lanes are built
 * alike; Q5_K's multipliers are one 64-bit broadcast per step and its mins run in their own
 * chain, Q6_K's offset of 32 × (multiplier × group sum) comes off each block's lanes. */
ALWAYS_INLINE void k56_micro(bool five, int64_t nb, const uint8_t *pw, size_t pair_stride, const uint8_t *a, size_t as,
                             int np, int nc, int r0, int nr, float *out, size_t os) {
    const size_t block = five ? Q5_PAIR_BLOCK : Q6_PAIR_BLOCK;
    __m512 acc[K56_PAIRS][K56_COLS], accm[K56_PAIRS][K56_COLS];
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[p][c] = accm[p][c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i sumi[K56_PAIRS][K56_COLS];
        UNROLL
        for (int p = 0; p < np; p++)
            UNROLL
            for (int c = 0; c < nc; c++) sumi[p][c] = _mm512_setzero_si512();
        UNROLL
        for (int k = 0; k < 8; k++) {
            __m512i y[K56_COLS];
            UNROLL
            for (int c = 0; c < nc; c++)
                y[c] = nm_avx512_pair_bytes(a + (size_t)c * as + (size_t)b * 292 + 4 + 32 * k);
            UNROLL
            for (int p = 0; p < np; p++) {
                const uint8_t *pb = pw + (size_t)p * pair_stride + (size_t)b * block;
                __m512i sc;
                if (five) {
                    int64_t scp;
                    memcpy(&scp, pb + Q5_SC + 8 * k, 8);
                    sc = _mm512_set1_epi64(scp);
                } else {
                    sc = _mm512_loadu_si512(pb + Q6_SC + 64 * k);
                }
                const __m512i q = _mm512_loadu_si512(pb + 64 * k);
                UNROLL
                for (int c = 0; c < nc; c++) sumi[p][c] = _mm512_dpwssd_epi32(sumi[p][c], _mm512_maddubs_epi16(q, y[c]), sc);
            }
        }
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const __m512i bs = nm_avx512_pair_bytes(ab + 260);
            float dy;
            memcpy(&dy, ab, 4);
            const __m512 vdy = _mm512_set1_ps(dy);
            UNROLL
            for (int p = 0; p < np; p++) {
                const uint8_t *pb = pw + (size_t)p * pair_stride + (size_t)b * block;
                if (five) {
                    /* row A's mins sum into lane 0, row B's into lane 1 */
                    const __m512i m = nm_avx512_fold_pairs(_mm512_madd_epi16(bs, _mm512_loadu_si512(pb + Q5_MIN)));
                    const __m512 dd = nm_avx512_pair_floats(pb + Q5_D), dm = nm_avx512_pair_floats(pb + Q5_D + 8);
                    acc[p][c] = _mm512_fmadd_ps(_mm512_mul_ps(dd, vdy), _mm512_cvtepi32_ps(sumi[p][c]), acc[p][c]);
                    accm[p][c] = _mm512_fmadd_ps(_mm512_mul_ps(vdy, dm), _mm512_cvtepi32_ps(m), accm[p][c]);
                } else {
                    const __m512i off = _mm512_slli_epi32(_mm512_madd_epi16(bs, _mm512_loadu_si512(pb + Q6_SCALL)), 5);
                    const __m512 d = _mm512_mul_ps(vdy, nm_avx512_pair_floats(pb + Q6_D));
                    acc[p][c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(sumi[p][c], off)), acc[p][c]);
                }
            }
        }
    }
    UNROLL
    for (int p = 0; p < np; p++)
        UNROLL
        for (int c = 0; c < nc; c++) {
            const __mmask16 rows = r0 + 2 * p + 1 < nr ? 3 : 1;
            const __m512 h = nm_avx512_hsum_pairs(acc[p][c]);
            _mm512_mask_storeu_ps(out + (size_t)c * os + (size_t)(r0 + 2 * p), rows, five ? _mm512_sub_ps(h, accm[p][c]) : h);
        }
}

/* Q5_K and Q6_K: the columns-outer tile over register blocks of K56_PAIRS × K56_COLS. */
ALWAYS_INLINE void k56_cols(bool five, int64_t nb, const uint8_t *pw, size_t pair_stride, const uint8_t *a, size_t as,
                            int np, int nc, int r0, int nr, float *out, size_t os) {
    switch (nc) {
    case 6: k56_micro(five, nb, pw, pair_stride, a, as, np, 6, r0, nr, out, os); break;
    case 5: k56_micro(five, nb, pw, pair_stride, a, as, np, 5, r0, nr, out, os); break;
    case 4: k56_micro(five, nb, pw, pair_stride, a, as, np, 4, r0, nr, out, os); break;
    case 3: k56_micro(five, nb, pw, pair_stride, a, as, np, 3, r0, nr, out, os); break;
    case 2: k56_micro(five, nb, pw, pair_stride, a, as, np, 2, r0, nr, out, os); break;
    default: k56_micro(five, nb, pw, pair_stride, a, as, np, 1, r0, nr, out, os); break;
    }
}

ALWAYS_INLINE bool tile_k56(bool five, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as,
                            int nc, float *out, size_t os) {
    const int64_t nb = n / 256;
    const size_t pair_stride = (size_t)nb * (five ? Q5_PAIR_BLOCK : Q6_PAIR_BLOCK);
    uint8_t *pw = malloc((size_t)(nr + 1) / 2 * pair_stride + 64);
    if (!pw) return false;
    if (five) q5_k_pack(nb, w, ws, nr, pw);
    else q6_k_pack(nb, w, ws, nr, pw);
    for (int c = 0; c < nc; c += K56_COLS) {
        const int m = nc - c < K56_COLS ? nc - c : K56_COLS;
        const uint8_t *ac = a + (size_t)c * as;
        float *oc = out + (size_t)c * os;
        for (int r = 0; r < nr; r += 2 * K56_PAIRS) {
            const int np = (nr - r + 1) / 2 < K56_PAIRS ? (nr - r + 1) / 2 : K56_PAIRS;
            const uint8_t *pr = pw + (size_t)(r / 2) * pair_stride;
            if (np == 2) k56_cols(five, nb, pr, pair_stride, ac, as, 2, m, r, nr, oc, os);
            else k56_cols(five, nb, pr, pair_stride, ac, as, 1, m, r, nr, oc, os);
        }
    }
    free(pw);
    return true;
}

/* ---------------- vectors × matrix (attention) ---------------- */

/* Sixteen columns per register; a pass covers up to 8 x rows × 2 registers (16 independent
 * chains, each m load shared by the x rows; the last register masked). Each lane adds its
 * rounded products in row order, as the reference does. */
ALWAYS_INLINE void columns_pass(int64_t n, const float *x, size_t xs, int nx, const float *m, size_t ms, int nv,
                                __mmask16 last, float *out, size_t os) {
    __m512 acc[8][2];
    UNROLL
    for (int r = 0; r < nx; r++)
        UNROLL
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i++) {
        const float *row = m + (size_t)i * ms;
        __m512 mv[2];
        UNROLL
        for (int v = 0; v < nv; v++)
            mv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, row + 16 * v) : _mm512_loadu_ps(row + 16 * v);
        UNROLL
        for (int r = 0; r < nx; r++) {
            const __m512 xi = _mm512_set1_ps(x[(size_t)r * xs + (size_t)i]);
            UNROLL
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_add_ps(acc[r][v], _mm512_mul_ps(xi, mv[v]));
        }
    }
    UNROLL
    for (int r = 0; r < nx; r++)
        UNROLL
        for (int v = 0; v < nv; v++) {
            float *o = out + (size_t)r * os + 16 * v;
            if (v == nv - 1) _mm512_mask_storeu_ps(o, last, acc[r][v]);
            else _mm512_storeu_ps(o, acc[r][v]);
        }
}

ALWAYS_INLINE void columns_rows(int64_t n, const float *x, size_t xs, int nx, const float *m, size_t ms, int nv,
                                __mmask16 last, float *out, size_t os) {
    switch (nx) {
    case 8: columns_pass(n, x, xs, 8, m, ms, nv, last, out, os); break;
    case 7: columns_pass(n, x, xs, 7, m, ms, nv, last, out, os); break;
    case 6: columns_pass(n, x, xs, 6, m, ms, nv, last, out, os); break;
    case 5: columns_pass(n, x, xs, 5, m, ms, nv, last, out, os); break;
    case 4: columns_pass(n, x, xs, 4, m, ms, nv, last, out, os); break;
    case 3: columns_pass(n, x, xs, 3, m, ms, nv, last, out, os); break;
    case 2: columns_pass(n, x, xs, 2, m, ms, nv, last, out, os); break;
    default: columns_pass(n, x, xs, 1, m, ms, nv, last, out, os); break;
    }
}

void nm_dot_f32_columns_avx512(int64_t n, const float *x, size_t x_stride, int n_x, const float *m,
                               size_t m_stride, int64_t n_cols, float *out, size_t out_stride) {
    for (int r0 = 0; r0 < n_x; r0 += 8) {
        const int nx = n_x - r0 < 8 ? n_x - r0 : 8;
        const float *xr = x + (size_t)r0 * x_stride;
        float *o = out + (size_t)r0 * out_stride;
        for (int64_t j = 0; j < n_cols; j += 32) {
            const int64_t left = n_cols - j;
            if (left >= 32) {
                columns_rows(n, xr, x_stride, nx, m + j, m_stride, 2, 0xFFFF, o + j, out_stride);
            } else {
                const __mmask16 last = (__mmask16)(left % 16 ? (1u << (left % 16)) - 1u : 0xFFFFu);
                if (left > 16) columns_rows(n, xr, x_stride, nx, m + j, m_stride, 2, last, o + j, out_stride);
                else columns_rows(n, xr, x_stride, nx, m + j, m_stride, 1, last, o + j, out_stride);
            }
        }
    }
}

/* ---------------- dispatch ---------------- */

/* F16 on AMD cores takes the AVX2 whole-rows tile (dot_avx2.c's tile_rows; the same bits): on a
 * 2-core EPYC (Zen 4), where a 512-bit multiply-add does the work of two 256-bit ones, one thread
 * ran it at 54-56 GMAC/s against 51-52 for the tile here (n = 2048 and 5632), and the F16
 * evaluation at 92.8 against 86.5 tok/s (mean of four interleaved rounds, llama.cpp's native
 * build 85.6). */
bool nm_dot_tile_f16_avx512(bool whole_rows, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                            size_t act_stride, const void *aux, size_t aux_stride, int n_cols, float *out,
                            size_t out_stride) {
    if (whole_rows)
        return nm_dot_tile_float_avx2(GGML_TYPE_F16, true, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride,
                                      n_cols, out, out_stride);
    return tile_float(GGML_TYPE_F16, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out,
                      out_stride);
}

bool nm_dot_tile_avx512(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                        size_t act_stride, const void *aux, size_t aux_stride, int n_cols, float *out,
                        size_t out_stride) {
    if (n_rows < 1 || n_cols < 1) return false;
    switch (wt) {
    case GGML_TYPE_F16:
        return nm_dot_tile_f16_avx512(nm_cpu()->amd, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols,
                                      out, out_stride);
    case GGML_TYPE_F32: case GGML_TYPE_BF16:
        return tile_float(wt, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out, out_stride);
    case GGML_TYPE_Q4_0:
        return tile_g16(false, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out, out_stride);
    case GGML_TYPE_Q8_0:
        return tile_q8_0(n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out, out_stride);
    case GGML_TYPE_IQ4_NL:
        return tile_g16(true, n, w, w_stride, n_rows, act, act_stride, NULL, 0, n_cols, out, out_stride);
    case GGML_TYPE_Q5_K:
        return tile_k56(true, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
    case GGML_TYPE_Q6_K:
        return tile_k56(false, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
    default: /* the i-quants and the other 256-value low-bit types */
        return nm_dot_tile_unpacked_avx512(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
    }
}
