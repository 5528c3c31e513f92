/* AVX2 tile of the types whose 256-value blocks the kernels take in one unpacked form
 * (dot_iq.h's nm_iq_unpacked): the lattice i-quants (nm_iq_unpack), Q2_K, Q3_K, IQ4_XS, TQ1_0 and
 * TQ2_0 (nm_lowbit_unpack). The same integers and float steps as their references (dot_iq.c,
 * dot_lowbit.c), 32 values per step as ggml's kernels take them: |q| times the activation with
 * q's sign, pairs summed to 16 bits, times the 16-value multiplier summed to 32 bits, so lane l
 * holds values 4l..4l+3 of every 32 (exact: no pair can pass 2·127·127); each block's eight lanes
 * go into the output's eight float chains with one fused multiply-add, Q2_K's mins lanes first,
 * TQ's activation group sums taken off the lanes before.
 *
 * Eight weight rows are unpacked once into the loop's form, then meet the activation rows four
 * at a time, so a weight block's loads and |q| serve four outputs and the accumulators stay in
 * registers. Unpacking per product instead, as ggml does, cost IQ2_XXS six times the time.
 * TQ1_0 and TQ2_0 take two weight rows per pass (tq_cols): their step is a load, one
 * vpmaddubsw and one add per output, so with one row the loads outnumber the multiplies, which a
 * core loading two vectors a cycle feels (one thread of a 2-core EPYC, Zen 4: 70 -> 80 GMAC/s).
 * Q2_K's levels are stored times their multiplier (at most 45): two steps' pairs add up in 16 bits
 * and widen once, a third fewer multiplies. Q2_K, Q3_K and TQ2_0 unpack straight from their
 * blocks with vector shifts (prepare_q2_k, prepare_q3_k, prepare_tq2_0); the generic unpacking
 * had taken a sixth of a Q2_K evaluation (perf, 2 threads, TinyLlama-shaped Q2_K mix: 17% -> 1.3%
 * of the samples). */
#include "kernels/dot_iq.h"
#include "kernels/dot_simd.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tensor.h"
#include "kernels/dot_avx2.h"
#include "kernels/dot_lowbit.h"

enum { Q8K_SIZE = 292, ROWS = 8, COLS = 4 };

/* One block as the loop reads it. */
typedef struct iq_block {
    int8_t q[256];     /* the values as nm_iq_unpacked holds them */
    int8_t ds[256];    /* IQ1_M: the delta sign of each element's group of 8 (+1 or -1) */
    int16_t sc[8][16]; /* 32-value step c: multiplier 2c in the low eight, 2c+1 in the high eight */
    int16_t m1[16];    /* nm_iq_unpacked's mins (Q2_K, IQ1_S) */
    float d, dmin;
    float pad[6];
} iq_block;

/* Q2_K and Q3_K straight from their blocks, 32 values a step (nm_lowbit_unpack's scalar loops and
 * the copies after them were a sixth of a Q2_K evaluation's time): element 128h + 32s + l is bits
 * 2s..2s+1 of qs[32h + l], Q3_K's less 4 unless bit 4h + s of hmask[l] is set. The same values. */
ALWAYS_INLINE __m256i low2_step(const uint8_t *qs, int h, int s) {
    return _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(qs + 32 * h)), 2 * s), _mm256_set1_epi8(3));
}

static void prepare_q2_k(const uint8_t *x, iq_block *b) {
    const __m256i even = _mm256_set1_epi16(0xFF);
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++) { /* level (0..3) times its 4-bit multiplier: at most 45, a byte */
            const int g = 8 * h + 2 * s; /* the step's two 16-value groups */
            const __m256i q = low2_step(x + 16, h, s),
                          m = _mm256_set_m128i(_mm_set1_epi16(x[g + 1] & 0xF), _mm_set1_epi16(x[g] & 0xF));
            const __m256i lo = _mm256_mullo_epi16(_mm256_and_si256(q, even), m),
                          hi = _mm256_mullo_epi16(_mm256_srli_epi16(q, 8), m);
            _mm256_storeu_si256((__m256i *)(b->q + 128 * h + 32 * s), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 8)));
        }
    for (int j = 0; j < 16; j++) b->m1[j] = (int16_t)(x[j] >> 4);
    b->d = h2f(x + 80);
    b->dmin = h2f(x + 82);
}

static void prepare_q3_k(const uint8_t *x, iq_block *b) {
    const __m256i hm = _mm256_loadu_si256((const __m256i *)x), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++) {
            const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + s), one);
            const __m256i q = _mm256_add_epi8(_mm256_sub_epi8(low2_step(x + 32, h, s), four), _mm256_slli_epi16(hb, 2));
            _mm256_storeu_si256((__m256i *)(b->q + 128 * h + 32 * s), q);
        }
    for (int c = 0; c < 8; c++)
        for (int k = 0; k < 2; k++) {
            const int16_t m = (int16_t)nm_q3_k_scale(x + 96, 2 * c + k);
            for (int l = 0; l < 8; l++) b->sc[c][8 * k + l] = m;
        }
    memset(b->m1, 0, sizeof b->m1);
    b->d = h2f(x + 108);
    b->dmin = 0.0f;
}

/* TQ2_0 the same way: element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l] (nm_lowbit_unpack's
 * loop had taken 13.6% of a TQ2_0 evaluation, 5.7% once it went 32 values at a time). */
static void prepare_tq2_0(const uint8_t *x, iq_block *b) {
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++) _mm256_storeu_si256((__m256i *)(b->q + 128 * h + 32 * s), low2_step(x, h, s));
    memset(b->m1, 0, sizeof b->m1);
    b->d = h2f(x + 64);
    b->dmin = 0.0f;
}

static float prepare(uint32_t wt, const uint8_t *x, iq_block *b) {
    if (wt == GGML_TYPE_Q2_K) {
        prepare_q2_k(x, b);
        return 1.0f;
    }
    if (wt == GGML_TYPE_TQ2_0) {
        prepare_tq2_0(x, b);
        return 1.0f;
    }
    if (wt == GGML_TYPE_Q3_K) {
        prepare_q3_k(x, b);
        return 1.0f;
    }
    nm_iq_unpacked u;
    const float factor = nm_unpack_block(wt, x, &u);
    memcpy(b->q, u.q, sizeof b->q);
    if (wt != GGML_TYPE_TQ1_0 && wt != GGML_TYPE_TQ2_0) /* TQ's loop takes no multipliers */
        for (int c = 0; c < 8; c++)
            for (int l = 0; l < 16; l++) b->sc[c][l] = u.sc[2 * c + l / 8];
    if (wt == GGML_TYPE_IQ1_M)
        for (int e = 0; e < 256; e++) b->ds[e] = u.ds[e / 8];
    memcpy(b->m1, u.mins, sizeof b->m1);
    b->d = u.d;
    b->dmin = u.dmin;
    return factor;
}

/* One prepared row × nc activation rows, all blocks (TQ goes to tq_cols). */
ALWAYS_INLINE void row_cols(uint32_t wt, const iq_block *blk, int64_t nb, float factor, const uint8_t *a, size_t as,
                            int nc, float *out, size_t os) {
    const bool iq1m = wt == GGML_TYPE_IQ1_M, iq1s = wt == GGML_TYPE_IQ1_S, q2k = wt == GGML_TYPE_Q2_K;
    __m256 acc[COLS], dacc[COLS];
    float acc1[COLS];
    UNROLL
    for (int j = 0; j < nc; j++) {
        acc[j] = dacc[j] = _mm256_setzero_ps();
        acc1[j] = 0.0f;
    }
    const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        const iq_block *u = blk + b;
        __m256i sum[COLS], dsum[COLS];
        UNROLL
        for (int j = 0; j < nc; j++) sum[j] = dsum[j] = _mm256_setzero_si256();
        if (q2k) { /* q·multiplier 0..45 against |y| <= 127: a step's pairs are at most 11430, two
                      steps' sums fit 16 bits; widened every other step */
            UNROLL
            for (int c = 0; c < 8; c += 2) {
                const __m256i q0 = _mm256_loadu_si256((const __m256i *)(u->q + 32 * c)),
                              q1 = _mm256_loadu_si256((const __m256i *)(u->q + 32 * c + 32));
                UNROLL
                for (int j = 0; j < nc; j++) {
                    const uint8_t *y = a + (size_t)j * as + (size_t)b * Q8K_SIZE + 4 + 32 * c;
                    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)y)),
                                                       _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(y + 32))));
                    sum[j] = _mm256_add_epi32(sum[j], _mm256_madd_epi16(p, ones16));
                    NM_KEEP_IN_REGISTER(sum[j]);
                }
            }
        }
        if (!q2k) {
            UNROLL
            for (int c = 0; c < 8; c++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(u->q + 32 * c));
                const __m256i aq = _mm256_sign_epi8(q, q);
                const __m256i sc = _mm256_loadu_si256((const __m256i *)u->sc[c]);
                UNROLL
                for (int j = 0; j < nc; j++) {
                    const __m256i y = _mm256_loadu_si256((const __m256i *)(a + (size_t)j * as + (size_t)b * Q8K_SIZE + 4 + 32 * c));
                    const __m256i ys = _mm256_sign_epi8(y, q);
                    sum[j] = _mm256_add_epi32(sum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(aq, ys), sc));
                    NM_KEEP_IN_REGISTER(sum[j]);
                    if (iq1m) {
                        const __m256i s = _mm256_loadu_si256((const __m256i *)(u->ds + 32 * c));
                        dsum[j] = _mm256_add_epi32(dsum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_sign_epi8(y, s)), sc));
                        NM_KEEP_IN_REGISTER(dsum[j]);
                    }
                }
            }
        }
        UNROLL
        for (int j = 0; j < nc; j++) {
            const uint8_t *ab = a + (size_t)j * as + (size_t)b * Q8K_SIZE;
            float yd;
            memcpy(&yd, ab, 4);
            const float d = u->d * yd;
            if (q2k) {
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
                const __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)u->m1), bs);
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(-yd * u->dmin), _mm256_cvtepi32_ps(pm), acc[j]);
            }
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sum[j]), acc[j]);
            if (iq1m) dacc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dsum[j]), dacc[j]);
            if (iq1s) {
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
                const int s1 = hsum_i32(_mm256_madd_epi16(bs, _mm256_loadu_si256((const __m256i *)u->m1)));
                acc1[j] = __builtin_fmaf(d, (float)s1, acc1[j]);
            }
        }
    }
    UNROLL
    for (int j = 0; j < nc; j++) {
        float r;
        if (iq1s) r = hsum8(acc[j]) + 0.125f * acc1[j];
        else if (iq1m) r = hsum8(acc[j]) + 0.125f * hsum8(dacc[j]);
        else r = factor * hsum8(acc[j]);
        out[(size_t)j * os] = r;
    }
}

/* TQ1_0 and TQ2_0, nr (1 or 2) prepared rows × nc activation rows: q in 0..2 and every multiplier
 * 1, so the pairs add up in 16 bits (at most 8·2·2·127) and widen once per block, less the
 * activations' 16-value sums. With two rows each activation load serves both (with one, a step's
 * loads outnumber its multiplies on cores that load two vectors a cycle). */
ALWAYS_INLINE void tq_cols(const iq_block *blk0, const iq_block *blk1, int nr, int64_t nb, float factor,
                           const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    const iq_block *rows[2] = {blk0, blk1};
    __m256 acc[2][COLS];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int j = 0; j < nc; j++) acc[r][j] = _mm256_setzero_ps();
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        __m256i s16[2][COLS];
        UNROLL
        for (int r = 0; r < nr; r++)
            UNROLL
            for (int j = 0; j < nc; j++) s16[r][j] = _mm256_setzero_si256();
        UNROLL
        for (int c = 0; c < 8; c++) {
            __m256i q[2];
            UNROLL
            for (int r = 0; r < nr; r++) q[r] = _mm256_loadu_si256((const __m256i *)(rows[r][b].q + 32 * c));
            UNROLL
            for (int j = 0; j < nc; j++) {
                const __m256i y = _mm256_loadu_si256((const __m256i *)(a + (size_t)j * as + (size_t)b * Q8K_SIZE + 4 + 32 * c));
                UNROLL
                for (int r = 0; r < nr; r++) {
                    s16[r][j] = _mm256_add_epi16(s16[r][j], _mm256_maddubs_epi16(q[r], y));
                    NM_KEEP_IN_REGISTER(s16[r][j]);
                }
            }
        }
        UNROLL
        for (int j = 0; j < nc; j++) {
            const uint8_t *ab = a + (size_t)j * as + (size_t)b * Q8K_SIZE;
            float yd;
            memcpy(&yd, ab, 4);
            const __m256i ysum = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(ab + 260)), ones16);
            UNROLL
            for (int r = 0; r < nr; r++) {
                const __m256i sum = _mm256_sub_epi32(_mm256_madd_epi16(s16[r][j], ones16), ysum);
                acc[r][j] = _mm256_fmadd_ps(_mm256_set1_ps(rows[r][b].d * yd), _mm256_cvtepi32_ps(sum), acc[r][j]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int j = 0; j < nc; j++) out[(size_t)j * os + (size_t)r] = factor * hsum8(acc[r][j]);
}

/* One prepared row, or (TQ) two when blk1 is given, × nc activation rows in groups of COLS. */
ALWAYS_INLINE void cols_pass(uint32_t wt, const iq_block *blk, const iq_block *blk1, int64_t nb, float factor,
                             const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    if (wt != GGML_TYPE_TQ1_0 && wt != GGML_TYPE_TQ2_0) row_cols(wt, blk, nb, factor, a, as, nc, out, os);
    else if (blk1) tq_cols(blk, blk1, 2, nb, factor, a, as, nc, out, os);
    else tq_cols(blk, blk, 1, nb, factor, a, as, nc, out, os);
}

ALWAYS_INLINE void row_tile(uint32_t wt, const iq_block *blk, const iq_block *blk1, int64_t nb, float factor,
                            const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    int j = 0;
    for (; j + COLS <= nc; j += COLS) cols_pass(wt, blk, blk1, nb, factor, a + (size_t)j * as, as, COLS, out + (size_t)j * os, os);
    switch (nc - j) {
    case 3: cols_pass(wt, blk, blk1, nb, factor, a + (size_t)j * as, as, 3, out + (size_t)j * os, os); break;
    case 2: cols_pass(wt, blk, blk1, nb, factor, a + (size_t)j * as, as, 2, out + (size_t)j * os, os); break;
    case 1: cols_pass(wt, blk, blk1, nb, factor, a + (size_t)j * as, as, 1, out + (size_t)j * os, os); break;
    default: break;
    }
}

/* Columns in groups of COLS_L1 (their activation blocks stay in cache) over up to ROWS prepared
 * rows; one specialised copy per type keeps the type's branches out of the loop. */
enum { COLS_L1 = 16 };

#define TYPE_TILE(name, WT)                                                                                          \
    static void name(const iq_block *prep, int nr, int64_t nb, float factor, const uint8_t *a, size_t as, int nc,  \
                     float *out, size_t os) {                                                                       \
        for (int j0 = 0; j0 < nc; j0 += COLS_L1) {                                                                  \
            const int m = nc - j0 < COLS_L1 ? nc - j0 : COLS_L1;                                                    \
            int i = 0;                                                                                              \
            if (WT == GGML_TYPE_TQ1_0 || WT == GGML_TYPE_TQ2_0)                                                     \
                for (; i + 2 <= nr; i += 2)                                                                         \
                    row_tile(WT, prep + (size_t)i * (size_t)nb, prep + (size_t)(i + 1) * (size_t)nb, nb, factor,   \
                             a + (size_t)j0 * as, as, m, out + (size_t)j0 * os + (size_t)i, os);                    \
            for (; i < nr; i++)                                                                                     \
                row_tile(WT, prep + (size_t)i * (size_t)nb, NULL, nb, factor, a + (size_t)j0 * as, as, m,         \
                         out + (size_t)j0 * os + (size_t)i, os);                                                    \
        }                                                                                                           \
    }
#define TILE_OF(name, WT) TYPE_TILE(tile_##name, WT)
NM_UNPACKED_TYPES(TILE_OF)
#undef TILE_OF
#undef TYPE_TILE

bool nm_dot_tile_unpacked_avx2(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                         size_t act_stride, int n_cols, float *out, size_t out_stride) {
    void (*tile)(const iq_block *, int, int64_t, float, const uint8_t *, size_t, int, float *, size_t);
    switch (wt) {
#define CASE_OF(name, WT) case WT: tile = tile_##name; break;
        NM_UNPACKED_TYPES(CASE_OF)
#undef CASE_OF
    default: return false;
    }
    const size_t bs = ggml_type_get(wt)->type_size;
    const int64_t nb = n / 256;
    iq_block *prep = aligned_alloc(32, (size_t)ROWS * (size_t)(nb > 0 ? nb : 1) * sizeof(iq_block));
    if (!prep) return false;
    for (int i0 = 0; i0 < n_rows; i0 += ROWS) {
        const int nr = n_rows - i0 < ROWS ? n_rows - i0 : ROWS;
        float factor = 1.0f;
        for (int i = 0; i < nr; i++)
            for (int64_t b = 0; b < nb; b++)
                factor = prepare(wt, (const uint8_t *)w + (size_t)(i0 + i) * w_stride + (size_t)b * bs,
                                 prep + (size_t)i * (size_t)nb + (size_t)b);
        tile(prep, nr, nb, factor, act, act_stride, n_cols, out + (size_t)i0, out_stride);
    }
    free(prep);
    return true;
}
