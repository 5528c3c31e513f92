/* AVX2/FMA/F16C kernels for dot.h (built with -mavx2 -mfma -mf16c; used only when the CPU has
 * them). Float tiles are register-blocked (4 weight rows × 3 activation rows per pass); the
 * Q8_0, Q5_K and Q6_K tiles take 2 weight rows × 4 activation rows per pass (Q5_K and Q6_K on
 * weights unpacked once per tile when it has enough activation rows), Q4_0's eight rows in the
 * lanes of a register; the one-row kernels multiply one weight row with up to four activation
 * rows so a decoded weight block is reused four times. Block sums are exact integers as in the
 * reference. F32, F16, BF16 and Q4_0 keep the reference's float order exactly (bit-identical
 * results); the other types differ from it in the order of their float sums. */
#include "kernels/dot_simd.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"
#include "kernels/dot.h"
#include "kernels/dot_avx2.h"
#include "kernels/dot_lowbit.h"
#include "kernels/prefetch_ahead.h"
#include "formats/tensor.h"

/* Σ over 32 signed bytes of x·y as 8 int32 lanes (x, y in −127..127 or x in −128..127 with y ≥ −127). */
ALWAYS_INLINE __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i ax = _mm256_sign_epi8(x, x);
    const __m256i sy = _mm256_sign_epi8(y, x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}
/* Σ of unsigned x (0..63) times signed y as 8 int32 lanes. */
ALWAYS_INLINE __m256i dot_u8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* 32 4-bit values of a legacy block: bytes j hold elements j (low) and j+16 (high). */
ALWAYS_INLINE __m256i unpack_nibbles32(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0F));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F));
    return _mm256_set_m128i(hi, lo);
}

/* Bit k of the 32-bit mask → 0x10 in byte k. */
ALWAYS_INLINE __m256i bits_to_bytes(uint32_t m) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x7fbfdfeff7fbfdfeULL);
    v = _mm256_or_si256(v, bit);
    v = _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* ---------------- legacy blocks ---------------- */

ALWAYS_INLINE void k_q8_0_family(uint32_t wt, int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc,
                                 float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const size_t wbs = wt == GGML_TYPE_Q4_0 ? 18 : wt == GGML_TYPE_Q5_0 ? 22 : 34;
    for (int64_t b = 0; b < n / 32; b++, w += wbs) {
        __m256i q;
        if (wt == GGML_TYPE_Q4_0) {
            q = _mm256_sub_epi8(unpack_nibbles32(w + 2), _mm256_set1_epi8(8));
        } else if (wt == GGML_TYPE_Q5_0) {
            uint32_t qh;
            memcpy(&qh, w + 2, 4);
            q = _mm256_or_si256(unpack_nibbles32(w + 6), bits_to_bytes(qh));
            q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        } else {
            q = _mm256_loadu_si256((const __m256i *)(w + 2));
        }
        const float dw = h2f(w);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 34;
            const __m256i y = _mm256_loadu_si256((const __m256i *)(ab + 2));
            const __m256 d = _mm256_set1_ps(dw * h2f(ab));
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, y)), acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]);
}

ALWAYS_INLINE void k_q8_1_family(uint32_t wt, int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc,
                                 float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float accm[4] = {0, 0, 0, 0};
    const size_t wbs = wt == GGML_TYPE_Q4_1 ? 20 : 24;
    for (int64_t b = 0; b < n / 32; b++, w += wbs) {
        __m256i q;
        if (wt == GGML_TYPE_Q4_1) {
            q = unpack_nibbles32(w + 4);
        } else {
            uint32_t qh;
            memcpy(&qh, w + 4, 4);
            q = _mm256_or_si256(unpack_nibbles32(w + 8), bits_to_bytes(qh));
        }
        const float dw = h2f(w), mw = h2f(w + 2);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 36;
            const __m256i y = _mm256_loadu_si256((const __m256i *)(ab + 4));
            const __m256 d = _mm256_set1_ps(dw * h2f(ab));
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8(q, y)), acc[c]);
            accm[c] += mw * h2f(ab + 2);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]) + accm[c];
}

/* Q8_0 tile: two weight rows × up to four activation rows per pass (each activation block loaded
 * once for both rows, each weight block once for four activation rows). Per output the same
 * block sums, scale products and lane chains as k_q8_0_family, so the same bits: lane l adds
 * fl(dw·dy) × (its exact int32 sum) with one fused multiply-add per block. What is cheaper:
 * the scales come widened to float (the weights' once per tile, the activations' once per
 * batch in the aux row), and the products dw·dy of eight blocks take one vector multiply per
 * output, parked on the stack and broadcast from there (a load, no shuffle) when their block
 * comes; |q| of a weight block is taken once for all activation rows. */
enum { Q8_0_DB = 8 }; /* blocks whose scale products are made at once */

ALWAYS_INLINE void q8_0_pass(int64_t nb, const uint8_t *w, size_t ws, const float *dw, size_t dws, int nr,
                             const uint8_t *a, size_t as, const float *dy, size_t dys, int nc, float *out, size_t os) {
    __m256 acc[2][4];
    const __m256i ones = _mm256_set1_epi16(1);
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += Q8_0_DB) {
        const int m = nb - b0 < Q8_0_DB ? (int)(nb - b0) : Q8_0_DB;
        float d[2][4][Q8_0_DB] __attribute__((aligned(32)));
        if (m == Q8_0_DB) {
            UNROLL
            for (int r = 0; r < nr; r++) {
                const __m256 wv = _mm256_loadu_ps(dw + (size_t)r * dws + (size_t)b0);
                UNROLL
                for (int c = 0; c < nc; c++)
                    _mm256_store_ps(d[r][c], _mm256_mul_ps(wv, _mm256_loadu_ps(dy + (size_t)c * dys + (size_t)b0)));
            }
        } else {
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nc; c++)
                    for (int k = 0; k < m; k++) d[r][c][k] = dw[(size_t)r * dws + (size_t)(b0 + k)] * dy[(size_t)c * dys + (size_t)(b0 + k)];
        }
        for (int k = 0; k < m; k++) {
            const int64_t b = b0 + k;
            __m256i q[2], aq[2];
            UNROLL
            for (int r = 0; r < nr; r++) {
                q[r] = _mm256_loadu_si256((const __m256i *)(w + (size_t)r * ws + (size_t)b * 34 + 2));
                aq[r] = _mm256_sign_epi8(q[r], q[r]);
            }
            UNROLL
            for (int c = 0; c < nc; c++) {
                const __m256i y = _mm256_loadu_si256((const __m256i *)(a + (size_t)c * as + (size_t)b * 34 + 2));
                UNROLL
                for (int r = 0; r < nr; r++) {
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(y, q[r])), ones);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[r][c][k]), _mm256_cvtepi32_ps(p), acc[r][c]);
                }
            }
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = hsum8(acc[r][c]);
}

ALWAYS_INLINE void q8_0_cols(int64_t nb, const uint8_t *w, size_t ws, const float *dw, size_t dws, int nr,
                             const uint8_t *a, size_t as, const float *dy, size_t dys, int nc, float *out, size_t os) {
    switch (nc) {
    case 4: q8_0_pass(nb, w, ws, dw, dws, nr, a, as, dy, dys, 4, out, os); break;
    case 3: q8_0_pass(nb, w, ws, dw, dws, nr, a, as, dy, dys, 3, out, os); break;
    case 2: q8_0_pass(nb, w, ws, dw, dws, nr, a, as, dy, dys, 2, out, os); break;
    default: q8_0_pass(nb, w, ws, dw, dws, nr, a, as, dy, dys, 1, out, os); break;
    }
}

/* Scales of n_rows rows of Q8_0 blocks (stride bytes apart) widened into rows of nb floats. This
 * is the first touch of a tile's weights: the rows are fetched a kilobyte ahead (its loads had
 * waited on memory, 6% of a Q8_0 evaluation on the AVX2 path of a 2-core EPYC). */
static void q8_0_scales(int64_t nb, const uint8_t *p, size_t stride, int n_rows, float *dst) {
    enum { AHEAD = 1024 };
    const size_t bytes = (size_t)nb * 34;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = p + (size_t)r * stride;
        for (size_t o = 0; o < AHEAD && o < bytes; o += 64) _mm_prefetch((const char *)(row + o), _MM_HINT_T0);
        for (int64_t b = 0; b < nb; b++) {
            if ((size_t)b * 34 + AHEAD < bytes && b % 2 == 0)
                _mm_prefetch((const char *)(row + (size_t)b * 34 + AHEAD), _MM_HINT_T0);
            dst[(size_t)r * (size_t)nb + (size_t)b] = h2f(row + (size_t)b * 34);
        }
    }
}

/* aux: the activation rows' scales as floats (nm_dot_act_aux), or NULL to widen them here. */
static bool tile_q8_0(int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const uint8_t *aux,
                      size_t aux_stride, int nc, float *out, size_t os) {
    const int64_t nb = n / 32;
    float *dw = malloc((size_t)(nr * nb + (aux ? 0 : nc * nb) + 1) * sizeof(float));
    if (!dw) return false;
    q8_0_scales(nb, w, ws, nr, dw);
    const float *dy = (const float *)aux;
    size_t dys = aux_stride / sizeof(float);
    if (!aux || aux_stride % sizeof(float) != 0) {
        float *own = dw + (size_t)nr * (size_t)nb;
        if (!aux) {
            q8_0_scales(nb, a, as, nc, own);
            dy = own;
            dys = (size_t)nb;
        } else { /* never made so; keep it simple */
            free(dw);
            return false;
        }
    }
    for (int j = 0; j < nc; j += 4) {
        const int m = nc - j < 4 ? nc - j : 4;
        const uint8_t *aj = a + (size_t)j * as;
        const float *dyj = dy + (size_t)j * dys;
        for (int i = 0; i < nr; i += 2) {
            const uint8_t *wi = w + (size_t)i * ws;
            const float *dwi = dw + (size_t)i * (size_t)nb;
            float *o = out + (size_t)j * os + (size_t)i;
            if (nr - i >= 2) q8_0_cols(nb, wi, ws, dwi, (size_t)nb, 2, aj, as, dyj, dys, m, o, os);
            else q8_0_cols(nb, wi, ws, dwi, (size_t)nb, 1, aj, as, dyj, dys, m, o, os);
        }
    }
    free(dw);
    return true;
}

/* Q4_0 in the reference order: each block's integer sum is finished (exactly) before it enters
 * the output's single chain of fused multiply-adds. */
ALWAYS_INLINE void k_q4_0(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    float acc[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / 32; b++, w += 18) {
        const __m256i q = _mm256_sub_epi8(unpack_nibbles32(w + 2), _mm256_set1_epi8(8));
        const float dw = h2f(w);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 34;
            const __m256i y = _mm256_loadu_si256((const __m256i *)(ab + 2));
            acc[c] = fmaf((float)hsum_i32(dot_i8(q, y)), dw * h2f(ab), acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = acc[c];
}

/* Q4_0 tile: eight rows in the lanes of a register (nm_dot_q4_0_pack), each lane its own
 * output's chain, up to four activation rows per pass. */
enum { Q4_0_GROUP = 8, Q4_0_PACK_BLOCK = Q4_0_GROUP * NM_Q4_0_PACK_BLOCK_PER_ROW };

ALWAYS_INLINE const nm_q8_0_block_info *info_at(const uint8_t *aux, size_t aux_stride, int c, int64_t b) {
    return (const nm_q8_0_block_info *)(aux + (size_t)c * aux_stride) + b;
}

ALWAYS_INLINE void q4_0_group(int64_t nb, const uint8_t *pw, const uint8_t *aux, size_t aux_stride, const uint8_t *a,
                              size_t as, int nc, float *out, size_t os, int nr) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++, pw += Q4_0_PACK_BLOCK) {
        __m256i dp[4];
        UNROLL
        for (int c = 0; c < nc; c++) dp[c] = _mm256_set1_epi32(info_at(aux, aux_stride, c, b)->minus_8_sum);
        UNROLL
        for (int q = 0; q < 4; q++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(pw + 32 * q));
            const __m256i lo = _mm256_and_si256(wv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m4);
            UNROLL
            for (int c = 0; c < nc; c++) {
                const uint8_t *y = a + (size_t)c * as + (size_t)b * 34 + 2;
                int32_t ylo, yhi;
                memcpy(&ylo, y + 4 * q, 4);
                memcpy(&yhi, y + 16 + 4 * q, 4);
                const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi32(ylo)),
                                                     _mm256_maddubs_epi16(hi, _mm256_set1_epi32(yhi)));
                dp[c] = _mm256_add_epi32(dp[c], _mm256_madd_epi16(p16, ones));
                NM_KEEP_IN_REGISTER(dp[c]);
            }
        }
        const __m256 dw = _mm256_loadu_ps((const float *)(pw + 128));
        UNROLL
        for (int c = 0; c < nc; c++) {
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(info_at(aux, aux_stride, c, b)->d));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp[c]), d, acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) {
        if (nr == Q4_0_GROUP) {
            _mm256_storeu_ps(out + (size_t)c * os, acc[c]);
        } else {
            float tmp[Q4_0_GROUP];
            _mm256_storeu_ps(tmp, acc[c]);
            memcpy(out + (size_t)c * os, tmp, (size_t)nr * sizeof(float));
        }
    }
}

static bool tile_q4_0(int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const uint8_t *aux,
                      size_t aux_stride, int nc, float *out, size_t os) {
    const int64_t nb = n / 32;
    if (!aux) return false;
    uint8_t *pw = malloc(nm_dot_q4_0_pack_size(n, nr, Q4_0_GROUP) + 1);
    if (!pw) return false;
    nm_dot_q4_0_pack(n, w, ws, nr, Q4_0_GROUP, pw);
    for (int g = 0; g < nr; g += Q4_0_GROUP) {
        const uint8_t *pg = pw + (size_t)(g / Q4_0_GROUP) * (size_t)nb * Q4_0_PACK_BLOCK;
        const int m = nr - g < Q4_0_GROUP ? nr - g : Q4_0_GROUP;
        int c = 0;
        for (; c + 4 <= nc; c += 4)
            q4_0_group(nb, pg, aux + (size_t)c * aux_stride, aux_stride, a + (size_t)c * as, as, 4,
                       out + (size_t)c * os + g, os, m);
        for (; c < nc; c++)
            q4_0_group(nb, pg, aux + (size_t)c * aux_stride, aux_stride, a + (size_t)c * as, as, 1,
                       out + (size_t)c * os + g, os, m);
    }
    free(pw);
    return true;
}

/* ---------------- K-quants ---------------- */

ALWAYS_INLINE void k_q45_k(bool five, int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out,
                           size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float accm[4] = {0, 0, 0, 0};
    const size_t wbs = five ? 176 : 144;
    for (int64_t b = 0; b < n / 256; b++, w += wbs) {
        const uint8_t *qs = w + (five ? 48 : 16), *qh = w + 16;
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) nm_k4_scale_min(j, w + 4, &sc[j], &mn[j]);
        __m256i q[8];
        const __m256i hb = five ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
        for (int c2 = 0; c2 < 4; c2++) {
            const __m256i bytes = _mm256_loadu_si256((const __m256i *)(qs + 32 * c2));
            q[2 * c2] = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0F));
            q[2 * c2 + 1] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi8(0x0F));
            if (five) {
                const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * c2))), b1 = _mm256_set1_epi8((char)(1 << (2 * c2 + 1)));
                const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, b0), b0), _mm256_set1_epi8(16));
                const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, b1), b1), _mm256_set1_epi8(16));
                q[2 * c2] = _mm256_or_si256(q[2 * c2], h0);
                q[2 * c2 + 1] = _mm256_or_si256(q[2 * c2 + 1], h1);
            }
        }
        const float dw = h2f(w), dminw = h2f(w + 2);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            int16_t bs[16];
            memcpy(bs, ab + 260, 32);
            __m256i sumi = _mm256_setzero_si256();
            int summ = 0;
            for (int j = 0; j < 8; j++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * j));
                const __m256i p16 = _mm256_maddubs_epi16(q[j], yv);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, _mm256_set1_epi16((short)sc[j])));
                summ += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
            }
            float dy;
            memcpy(&dy, ab, 4);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy), _mm256_cvtepi32_ps(sumi), acc[c]);
            accm[c] = fmaf(dy * dminw, (float)summ, accm[c]); /* ggml: summs += dmin·Σ, contracted */
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]) - accm[c];
}

/* Q5_K pass for few activation rows (tile_k56 below; tile_k56_packed takes the others): two
 * weight rows × up to four activation rows, each 32-element sub-block unpacked where it is used;
 * per output the same lane sums, mins sum and float chains as k_q45_k (integer sums are exact in
 * any order), so the same bits. */
ALWAYS_INLINE __m256i q5_k_sub(const uint8_t *blk, int j) {
    const __m256i bytes = _mm256_loadu_si256((const __m256i *)(blk + 48 + 32 * (j / 2)));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i lo = j & 1 ? _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4) : _mm256_and_si256(bytes, m4);
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(blk + 16));
    const __m256i bit = _mm256_set1_epi8((char)(1 << j));
    const __m256i h = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit), _mm256_set1_epi8(16));
    return _mm256_or_si256(lo, h);
}

ALWAYS_INLINE void q5_k_pass(int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nc,
                             float *out, size_t os) {
    __m256 acc[2][4];
    float accm[2][4];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) {
            acc[r][c] = _mm256_setzero_ps();
            accm[r][c] = 0.0f;
        }
    for (int64_t b = 0; b < n / 256; b++) {
        int sc[2][8], mn[2][8];
        __m256i sumi[2][4];
        UNROLL
        for (int r = 0; r < nr; r++) {
            const uint8_t *blk = w + (size_t)r * ws + (size_t)b * 176;
            for (int j = 0; j < 8; j++) nm_k4_scale_min(j, blk + 4, &sc[r][j], &mn[r][j]);
            UNROLL
            for (int c = 0; c < nc; c++) sumi[r][c] = _mm256_setzero_si256();
        }
        UNROLL
        for (int j = 0; j < 8; j++) {
            __m256i yv[4];
            UNROLL
            for (int c = 0; c < nc; c++)
                yv[c] = _mm256_loadu_si256((const __m256i *)(a + (size_t)c * as + (size_t)b * 292 + 4 + 32 * j));
            UNROLL
            for (int r = 0; r < nr; r++) {
                const __m256i q = q5_k_sub(w + (size_t)r * ws + (size_t)b * 176, j);
                const __m256i scv = _mm256_set1_epi16((short)sc[r][j]);
                UNROLL
                for (int c = 0; c < nc; c++)
                    sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(q, yv[c]), scv));
            }
        }
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
            const __m128i sub = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            float dy;
            memcpy(&dy, ab, 4);
            UNROLL
            for (int r = 0; r < nr; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)b * 176;
                const __m128i mins = _mm_setr_epi16((short)mn[r][0], (short)mn[r][1], (short)mn[r][2], (short)mn[r][3],
                                                    (short)mn[r][4], (short)mn[r][5], (short)mn[r][6], (short)mn[r][7]);
                __m128i m = _mm_madd_epi16(mins, sub);
                m = _mm_add_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
                m = _mm_add_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
                const int summ = _mm_cvtsi128_si32(m);
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(blk) * dy), _mm256_cvtepi32_ps(sumi[r][c]), acc[r][c]);
                accm[r][c] = fmaf(dy * h2f(blk + 2), (float)summ, accm[r][c]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = hsum8(acc[r][c]) - accm[r][c];
}

ALWAYS_INLINE void q5_k_cols(int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nc,
                             float *out, size_t os) {
    switch (nc) {
    case 4: q5_k_pass(n, w, ws, nr, a, as, 4, out, os); break;
    case 3: q5_k_pass(n, w, ws, nr, a, as, 3, out, os); break;
    case 2: q5_k_pass(n, w, ws, nr, a, as, 2, out, os); break;
    default: q5_k_pass(n, w, ws, nr, a, as, 1, out, os); break;
    }
}

/* 64 4-bit values of a Q4_K block as bytes: q[j] holds sub-block j (elements 32j..32j+31). */
ALWAYS_INLINE void unpack_q4_k(const uint8_t *qs, __m256i q[8]) {
    for (int c2 = 0; c2 < 4; c2++) {
        const __m256i bytes = _mm256_loadu_si256((const __m256i *)(qs + 32 * c2));
        q[2 * c2] = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0F));
        q[2 * c2 + 1] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi8(0x0F));
    }
}

/* Q4_K in ggml_vec_dot_q4_K_q8_K's order (see dot.c): 8 lanes of scaled sums, 4 lanes of mins. */
ALWAYS_INLINE void k_q4_k(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m128 accm[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (int64_t b = 0; b < n / 256; b++, w += 144) {
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) nm_k4_scale_min(j, w + 4, &sc[j], &mn[j]);
        const __m128i mins = _mm_setr_epi16((short)mn[0], (short)mn[1], (short)mn[2], (short)mn[3], (short)mn[4],
                                            (short)mn[5], (short)mn[6], (short)mn[7]);
        __m256i q[8];
        unpack_q4_k(w + 16, q);
        const float dw = h2f(w), dminw = h2f(w + 2);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
            const __m128i pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            __m256i sumi = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * j));
                const __m256i p16 = _mm256_maddubs_epi16(q[j], yv);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, _mm256_set1_epi16((short)sc[j])));
            }
            float dy;
            memcpy(&dy, ab, 4);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dy * dw), _mm256_cvtepi32_ps(sumi), acc[c]);
            accm[c] = _mm_fmadd_ps(_mm_set1_ps(-dy * dminw), _mm_cvtepi32_ps(_mm_madd_epi16(mins, pair_sums)), accm[c]);
        }
    }
    for (int c = 0; c < nc; c++) {
        __m128 m = _mm_add_ps(accm[c], _mm_movehl_ps(accm[c], accm[c]));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        out[(size_t)c * os] = hsum8(acc[c]) + _mm_cvtss_f32(m);
    }
}

ALWAYS_INLINE void k_q6_k(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / 256; b++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *scales = (const int8_t *)(w + 192);
        __m256i q[8]; /* unsigned 0..63, element order: q[k] holds elements 32k..32k+31 */
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
            const __m256i hh = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
            const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
            q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m3));
            q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m3));
            q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m3));
            q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                           _mm256_and_si256(_mm256_srli_epi16(hh, 2), m3));
        }
        /* per 32 elements: two scales (16 elements each) as int16 pairs for madd */
        __m256i sc16[8];
        for (int k = 0; k < 8; k++) {
            const __m128i lo = _mm_set1_epi16(scales[2 * k]), hi = _mm_set1_epi16(scales[2 * k + 1]);
            sc16[k] = _mm256_set_m128i(hi, lo);
        }
        const __m256i sc_all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scales));
        const float dw = h2f(w + 208);
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            const int8_t *y = (const int8_t *)(ab + 4);
            __m256i sumi = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * k));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), sc16[k]));
            }
            /* the −32 offset from the bsums as ggml applies it: lane l loses 32·(scale·bsum) of
             * 16-element groups 2l and 2l+1 */
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
            sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(bs, sc_all), 5));
            float dy;
            memcpy(&dy, ab, 4);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dy * dw), _mm256_cvtepi32_ps(sumi), acc[c]);
        }
    }
    for (int c = 0; c < nc; c++) out[(size_t)c * os] = hsum8(acc[c]);
}

/* Q6_K pass for few activation rows (tile_k56 below; tile_k56_packed takes the others): two
 * weight rows × up to four activation rows. Each 32-element slice k is unpacked where it is used
 * (one register per row) and meets the activation rows' slice k, so the 8 per-output integer
 * accumulators stay in registers; each lane's integer sum is the one k_q6_k builds (integer adds
 * are exact in any order), and the float chain is the same. */
ALWAYS_INLINE __m256i q6_k_slice(const uint8_t *blk, int k) {
    const int h = k / 4, j = k % 4;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    const __m256i l = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32 * (j & 1)));
    const __m256i hh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
    const __m256i lo = j < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
    __m256i hi;
    switch (j) {
    case 0: hi = _mm256_slli_epi16(hh, 4); break;
    case 1: hi = _mm256_slli_epi16(hh, 2); break;
    case 2: hi = hh; break;
    default: hi = _mm256_srli_epi16(hh, 2); break;
    }
    return _mm256_or_si256(lo, _mm256_and_si256(hi, m3));
}

ALWAYS_INLINE void q6_k_pass(int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nc,
                             float *out, size_t os) {
    __m256 acc[2][4];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
        __m256i sumi[2][4];
        UNROLL
        for (int r = 0; r < nr; r++)
            UNROLL
            for (int c = 0; c < nc; c++) sumi[r][c] = _mm256_setzero_si256();
        UNROLL
        for (int k = 0; k < 8; k++) {
            __m256i yv[4];
            UNROLL
            for (int c = 0; c < nc; c++)
                yv[c] = _mm256_loadu_si256((const __m256i *)(a + (size_t)c * as + (size_t)b * 292 + 4 + 32 * k));
            UNROLL
            for (int r = 0; r < nr; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)b * 210;
                const __m256i q = q6_k_slice(blk, k);
                const int8_t *scales = (const int8_t *)(blk + 192);
                const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(scales[2 * k + 1]), _mm_set1_epi16(scales[2 * k]));
                UNROLL
                for (int c = 0; c < nc; c++) {
                    sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(q, yv[c]), sc));
                    NM_KEEP_IN_REGISTER(sumi[r][c]);
                }
            }
        }
        UNROLL
        for (int r = 0; r < nr; r++) {
            const uint8_t *blk = w + (size_t)r * ws + (size_t)b * 210;
            const __m256i sc_all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192)));
            const float dw = h2f(blk + 208);
            UNROLL
            for (int c = 0; c < nc; c++) {
                const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + 260));
                const __m256i s = _mm256_sub_epi32(sumi[r][c], _mm256_slli_epi32(_mm256_madd_epi16(bs, sc_all), 5));
                float dy;
                memcpy(&dy, ab, 4);
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dy * dw), _mm256_cvtepi32_ps(s), acc[r][c]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = hsum8(acc[r][c]);
}

ALWAYS_INLINE void q6_k_cols(int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nc,
                             float *out, size_t os) {
    switch (nc) {
    case 4: q6_k_pass(n, w, ws, nr, a, as, 4, out, os); break;
    case 3: q6_k_pass(n, w, ws, nr, a, as, 3, out, os); break;
    case 2: q6_k_pass(n, w, ws, nr, a, as, 2, out, os); break;
    default: q6_k_pass(n, w, ws, nr, a, as, 1, out, os); break;
    }
}

/* Q5_K and Q6_K tiles for many activation rows, on weights unpacked once per tile: q5_k_pass and
 * q6_k_pass unpack each 32-element slice (and Q5_K's 6-bit scales) again for every group of four
 * activation rows, which is most of their work. Per row and super-block, KP_Q5_PACK or KP_Q6_PACK
 * bytes:
 *   256:             the values as unsigned bytes, slice j (elements 32j..32j+31) at 32j;
 *   Q5_K, at KP_Q5_SC: 8 int32, slice j's scale in both 16-bit halves (a 32-bit broadcast, which is
 *                    a plain load, makes the madd operand); at KP_Q5_MN: the 8 mins as int16;
 *                    at KP_Q5_D: d and dmin as floats;
 *   Q6_K, at KP_Q6_SC: 8 × 16 int16, slice j's madd operand (the scales of its two halves of 16);
 *                    at KP_Q6_SCALL: the 16 scales as int16; at KP_Q6_D: d as a float.
 * Per output the integer lane sums and the float chains are those of k_q45_k and k_q6_k, so the
 * same bits. */
enum { KP_Q5_SC = 256, KP_Q5_MN = KP_Q5_SC + 32, KP_Q5_D = KP_Q5_MN + 16, KP_Q5_PACK = 320,
       KP_Q6_SC = 256, KP_Q6_SCALL = KP_Q6_SC + 256, KP_Q6_D = KP_Q6_SCALL + 32, KP_Q6_PACK = 576 };
/* Activation rows from which unpacking pays (64 weight rows, n = 2048, one thread on a 2-core
 * Intel Xeon: Q5_K 32 -> 41 GMAC/s at 8 rows; Q6_K 47 -> 36 at 8, 45 at 16, 54 at 32). */
enum { KP_Q5_MIN_COLS = 8, KP_Q6_MIN_COLS = 24 };

static void k56_pack(bool five, int64_t nb, const uint8_t *w, size_t ws, int nr, uint8_t *dst) {
    const size_t block = five ? 176 : 210, pack = five ? KP_Q5_PACK : KP_Q6_PACK;
    for (int r = 0; r < nr; r++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = w + (size_t)r * ws + (size_t)b * block;
            uint8_t *p = dst + ((size_t)r * (size_t)nb + (size_t)b) * pack;
            if (five) {
                for (int j = 0; j < 8; j++) {
                    _mm256_storeu_si256((__m256i *)(p + 32 * j), q5_k_sub(blk, j));
                    int sc, mn;
                    nm_k4_scale_min(j, blk + 4, &sc, &mn);
                    const uint32_t sc2 = (uint32_t)sc * 0x10001u;
                    const int16_t mn16 = (int16_t)mn;
                    memcpy(p + KP_Q5_SC + 4 * j, &sc2, 4);
                    memcpy(p + KP_Q5_MN + 2 * j, &mn16, 2);
                }
                const float d[2] = {h2f(blk), h2f(blk + 2)};
                memcpy(p + KP_Q5_D, d, 8);
            } else {
                const int8_t *scales = (const int8_t *)(blk + 192);
                for (int j = 0; j < 8; j++) {
                    _mm256_storeu_si256((__m256i *)(p + 32 * j), q6_k_slice(blk, j));
                    const __m256i sc =
                        _mm256_set_m128i(_mm_set1_epi16(scales[2 * j + 1]), _mm_set1_epi16(scales[2 * j]));
                    _mm256_storeu_si256((__m256i *)(p + KP_Q6_SC + 32 * j), sc);
                }
                const __m256i sc_all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scales));
                _mm256_storeu_si256((__m256i *)(p + KP_Q6_SCALL), sc_all);
                const float d = h2f(blk + 208);
                memcpy(p + KP_Q6_D, &d, 4);
            }
        }
}

/* Two packed weight rows (p0, p1; p1 = p0 when nr is 1) × nc ≤ 4 activation rows. The scale
 * products and Q5_K's mins run in the lanes of one register each: lane c is (row 0, column c),
 * lane 4 + c (row 1, column c); lanes past nr × nc are computed on zeros or duplicates and
 * dropped. */
ALWAYS_INLINE void k56_packed_pass(bool five, int64_t nb, const uint8_t *p0, const uint8_t *p1, int nr,
                                   const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    const size_t pack = five ? KP_Q5_PACK : KP_Q6_PACK, doff = five ? KP_Q5_D : KP_Q6_D;
    __m256 acc[2][4];
    __m256 accm = _mm256_setzero_ps();
    UNROLL
    for (int r = 0; r < 2; r++)
        UNROLL
        for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pr[2] = {p0 + (size_t)b * pack, p1 + (size_t)b * pack};
        __m256i sumi[2][4];
        UNROLL
        for (int r = 0; r < nr; r++)
            UNROLL
            for (int c = 0; c < nc; c++) sumi[r][c] = _mm256_setzero_si256();
        UNROLL
        for (int j = 0; j < 8; j++) {
            __m256i q[2], scv[2];
            UNROLL
            for (int r = 0; r < nr; r++) {
                q[r] = _mm256_loadu_si256((const __m256i *)(pr[r] + 32 * j));
                scv[r] = five ? _mm256_castps_si256(_mm256_broadcast_ss((const float *)(pr[r] + KP_Q5_SC + 4 * j)))
                              : _mm256_loadu_si256((const __m256i *)(pr[r] + KP_Q6_SC + 32 * j));
            }
            UNROLL
            for (int c = 0; c < nc; c++) {
                const uint8_t *y = a + (size_t)c * as + (size_t)b * 292 + 4 + 32 * j;
                const __m256i yv = _mm256_loadu_si256((const __m256i *)y);
                UNROLL
                for (int r = 0; r < nr; r++) {
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], yv), scv[r]);
                    sumi[r][c] = _mm256_add_epi32(sumi[r][c], p);
                    NM_KEEP_IN_REGISTER(sumi[r][c]);
                }
            }
        }
        float dy4[4] = {0, 0, 0, 0};
        __m256i bs[4];
        UNROLL
        for (int c = 0; c < nc; c++) {
            const uint8_t *ab = a + (size_t)c * as + (size_t)b * 292;
            memcpy(&dy4[c], ab, 4);
            bs[c] = _mm256_loadu_si256((const __m256i *)(ab + 260));
        }
        const __m256 dy = _mm256_broadcast_ps((const __m128 *)dy4);
        if (five) { /* lane (r, c): the exact integer Σ mn·bsum, then ggml's dmin chain */
            const __m256i mins = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(pr[0] + KP_Q5_MN))),
                _mm_loadu_si128((const __m128i *)(pr[1] + KP_Q5_MN)), 1);
            __m256i m[4];
            UNROLL
            for (int c = 0; c < 4; c++) {
                if (c >= nc) {
                    m[c] = _mm256_setzero_si256();
                    continue;
                }
                const __m128i sub = _mm_hadd_epi16(_mm256_castsi256_si128(bs[c]), _mm256_extracti128_si256(bs[c], 1));
                m[c] = _mm256_madd_epi16(mins, _mm256_broadcastsi128_si256(sub));
            }
            const __m256i summ = _mm256_hadd_epi32(_mm256_hadd_epi32(m[0], m[1]), _mm256_hadd_epi32(m[2], m[3]));
            const __m256 dmin = _mm256_set_m128(_mm_broadcast_ss((const float *)(pr[1] + KP_Q5_D + 4)),
                                                _mm_broadcast_ss((const float *)(pr[0] + KP_Q5_D + 4)));
            accm = _mm256_fmadd_ps(_mm256_mul_ps(dy, dmin), _mm256_cvtepi32_ps(summ), accm);
        } else { /* the −32 offset as k_q6_k takes it from the bsums */
            UNROLL
            for (int r = 0; r < nr; r++) {
                const __m256i sc_all = _mm256_loadu_si256((const __m256i *)(pr[r] + KP_Q6_SCALL));
                UNROLL
                for (int c = 0; c < nc; c++)
                    sumi[r][c] = _mm256_sub_epi32(sumi[r][c], _mm256_slli_epi32(_mm256_madd_epi16(bs[c], sc_all), 5));
            }
        }
        const __m256 d = _mm256_set_m128(_mm_broadcast_ss((const float *)(pr[1] + doff)),
                                         _mm_broadcast_ss((const float *)(pr[0] + doff)));
        const __m256 dd = _mm256_mul_ps(d, dy);
        UNROLL
        for (int r = 0; r < nr; r++)
            UNROLL
            for (int c = 0; c < nc; c++)
                acc[r][c] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(dd, _mm256_set1_epi32(4 * r + c)),
                                            _mm256_cvtepi32_ps(sumi[r][c]), acc[r][c]);
    }
    float mv[8];
    _mm256_storeu_ps(mv, accm);
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = hsum8(acc[r][c]) - mv[4 * r + c];
}

ALWAYS_INLINE void k56_packed_cols(bool five, int64_t nb, const uint8_t *p0, const uint8_t *p1, int nr,
                                   const uint8_t *a, size_t as, int nc, float *out, size_t os) {
    switch (nc) {
    case 4: k56_packed_pass(five, nb, p0, p1, nr, a, as, 4, out, os); break;
    case 3: k56_packed_pass(five, nb, p0, p1, nr, a, as, 3, out, os); break;
    case 2: k56_packed_pass(five, nb, p0, p1, nr, a, as, 2, out, os); break;
    default: k56_packed_pass(five, nb, p0, p1, nr, a, as, 1, out, os); break;
    }
}

ALWAYS_INLINE bool tile_k56_packed(bool five, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a,
                                   size_t as, int nc, float *out, size_t os) {
    const int64_t nb = n / 256;
    const size_t row = (size_t)nb * (five ? KP_Q5_PACK : KP_Q6_PACK);
    uint8_t *pw = malloc((size_t)nr * row + 1);
    if (!pw) return false;
    k56_pack(five, nb, w, ws, nr, pw);
    for (int j = 0; j < nc; j += 4) {
        const int m = nc - j < 4 ? nc - j : 4;
        const uint8_t *aj = a + (size_t)j * as;
        for (int i = 0; i < nr; i += 2) {
            const uint8_t *p0 = pw + (size_t)i * row;
            float *o = out + (size_t)j * os + (size_t)i;
            if (nr - i >= 2) k56_packed_cols(five, nb, p0, p0 + row, 2, aj, as, m, o, os);
            else k56_packed_cols(five, nb, p0, p0, 1, aj, as, m, o, os);
        }
    }
    free(pw);
    return true;
}

/* Q5_K and Q6_K: the tile on weights unpacked once from enough activation rows; else the passes
 * above, activation rows outer (four of them stay in L1 while the tile's weight rows pass by). */
static void tile_k56(bool five, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nc,
                     float *out, size_t os) {
    if (nc >= (five ? KP_Q5_MIN_COLS : KP_Q6_MIN_COLS) && tile_k56_packed(five, n, w, ws, nr, a, as, nc, out, os))
        return;
    for (int j = 0; j < nc; j += 4) {
        const int m = nc - j < 4 ? nc - j : 4;
        for (int i = 0; i < nr; i += 2) {
            const uint8_t *wi = w + (size_t)i * ws, *aj = a + (size_t)j * as;
            float *o = out + (size_t)j * os + (size_t)i;
            if (nr - i >= 2) {
                if (five) q5_k_cols(n, wi, ws, 2, aj, as, m, o, os);
                else q6_k_cols(n, wi, ws, 2, aj, as, m, o, os);
            } else {
                if (five) q5_k_cols(n, wi, ws, 1, aj, as, m, o, os);
                else q6_k_cols(n, wi, ws, 1, aj, as, m, o, os);
            }
        }
    }
}

/* ---------------- float types ---------------- */

ALWAYS_INLINE __m256 load8(uint32_t wt, const uint8_t *p) {
    if (wt == GGML_TYPE_F32) return _mm256_loadu_ps((const float *)p);
    if (wt == GGML_TYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

ALWAYS_INLINE float load1(uint32_t wt, const uint8_t *p) {
    uint16_t h;
    if (wt == GGML_TYPE_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    memcpy(&h, p, 2);
    return wt == GGML_TYPE_F16 ? _cvtsh_ss(h) : nm_bf16_to_f32(h);
}

/* tinyBLAS order (dot.c): one 8-lane accumulator per output, then hsum, then the tail. */
ALWAYS_INLINE void k_float(uint32_t wt, int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out,
                           size_t os) {
    const size_t es = wt == GGML_TYPE_F32 ? 4 : 2;
    __m256 acc[4];
    for (int c = 0; c < 4; c++) acc[c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 w0 = load8(wt, w + (size_t)i * es);
        UNROLL
        for (int c = 0; c < nc; c++)
            acc[c] = _mm256_fmadd_ps(w0, load8(wt, a + (size_t)c * as + (size_t)i * es), acc[c]);
    }
    for (int c = 0; c < nc; c++) {
        float s = hsum8(acc[c]);
        const uint8_t *ar = a + (size_t)c * as;
        for (int64_t k = i; k < n; k++) s += load1(wt, w + (size_t)k * es) * load1(wt, ar + (size_t)k * es);
        out[(size_t)c * os] = s;
    }
}

/* Float weights against activations as floats (F32's own rows, or F16/BF16's aux rows, widened
 * once per batch: f32 holds them exactly). Register blocking: FR weight rows × FC activation rows
 * per pass, FR·FC accumulators (one per output, each in the tinyBLAS order of dot.c: element k
 * to lane k mod 8, one fused multiply-add), FC activation registers, one weight register.
 * Rows go in chunks of at most FROWS, and the reduction in slices [k0, k1) whose weights, copied
 * as floats (F16/BF16 widened once there, see float_pack) into panels of FR rows interleaved
 * eight elements at a time (rows past the chunk are zeros, their outputs dropped), fit FPANEL
 * bytes: a pass then reads one sequential stream of weights from L2 instead of FR rows whose
 * strides (often a multiple of 4 KiB) put every load of a step in the same L1 set. Every
 * activation row is read once per chunk of rows (FROWS / 2 rows when their whole length fits one
 * panel, else FROWS, whatever the row length: streaming the activations from L3 is what costs
 * most when fewer rows share them). When a row needs several slices, activation rows go in as
 * few blocks of at most FTB groups of FC as there must be, the block's accumulators waiting in a
 * buffer between slices, and the panel is copied again per block (FTB = 48 against 16: F32 on a
 * 2-core EPYC 72.0 against 69.3 tok/s, six interleaved rounds, the prefetch below in both). While
 * the passes over a panel run, the weights of the next one are fetched into L2 (nm_ahead_plan).
 * Within a slice, the activation rows go in sub-blocks of
 * FCB groups of FC, and the reduction in sub-slices of FK elements: a sub-block's FK elements
 * (18 KiB) stay in L1 while each group of FR rows' FK elements of the panel (8 KiB) comes from L2
 * once and meets all FCB groups of activation rows from L1 (with one group of FC per pass over
 * the panel, as before, every panel load came from L2: 5-9% of the tile's rate on a 2-core Intel
 * Xeon). A store and reload of an accumulator changes no bit. gcc -O2 must be told to unroll
 * the blocking loops for the accumulators to live in registers.
 * On AMD cores F16, and F32 on some, take another schedule, tile_rows below. */

enum { FR = 4, FC = 3, FK = 512, FCB = 3, FROWS = 64, FTB = 48 };
/* Panel bytes per slice, floats whatever the weight type (on the stack: a buffer from malloc of
 * this size is mapped and faulted in afresh by every tile); they stay in L2 while the activation
 * rows pass. */
#ifndef FPANEL
#define FPANEL (256 * 1024)
#endif

/* Elements [k0, k1) of nr weight rows × nc activation rows, added to acc (row r's outputs at
 * r·FC; from_zero: stored there, the sums starting from zero), in the element type pt (F32
 * floats, or F16 halves widened in the loop). Weight row r's eight elements from k lie at
 * w + r·wr + (k - k0) / 8·wk bytes: a panel's (wr eight floats, wk FR times that) or the rows where
 * they lie (wr the row stride, wk eight elements); activation row c's at x + c·xs + k elements. */
ALWAYS_INLINE void float_slice(uint32_t pt, const uint8_t *w, size_t wr, size_t wk, int nr, const uint8_t *x,
                               size_t xs, int nc, int64_t k0, int64_t k1, bool from_zero, __m256 *acc) {
    const size_t es = pt == GGML_TYPE_F32 ? 4 : 2;
    __m256 a[FR][FC];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) a[r][c] = from_zero ? _mm256_setzero_ps() : acc[r * FC + c];
    const uint8_t *p = w;
    for (int64_t k = k0; k < k1; k += 8, p += wk) {
        __m256 xv[FC];
        UNROLL
        for (int c = 0; c < nc; c++) xv[c] = load8(pt, x + (size_t)c * xs + (size_t)k * es);
        UNROLL
        for (int r = 0; r < nr; r++) {
            const __m256 wv = load8(pt, p + (size_t)r * wr);
            UNROLL
            for (int c = 0; c < nc; c++) a[r][c] = _mm256_fmadd_ps(wv, xv[c], a[r][c]);
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int c = 0; c < nc; c++) acc[r * FC + c] = a[r][c];
}

/* float_cols' steps (nm_ahead_step calls) for nc activation rows over elements [k0, k1). */
static int64_t cols_steps(int groups, int64_t k0, int64_t k1, int nc) {
    return (int64_t)((nc + FCB * FC - 1) / (FCB * FC)) * ((k1 - k0 + FK - 1) / FK) * groups;
}

/* Elements [k0, k1) of nc activation rows (at most FCB groups of FC) against the panels of
 * `groups` groups of FR rows (each panel (k1 - k0)·FR elements); acc holds, per group of FC
 * activation rows, groups·FR·FC vectors. One step of `next` per group and sub-slice. */
ALWAYS_INLINE void float_cols(const float *pw, int groups, int64_t k0, int64_t k1, const float *x, size_t xs, int nc,
                              __m256 *acc, nm_ahead *next) {
    const size_t panel = (size_t)(k1 - k0) * FR, per_cols = (size_t)groups * FR * FC;
    const size_t xb = xs * sizeof(float), wr = 8 * sizeof(float), wk = FR * wr; /* float_slice's strides */
    for (int64_t f0 = k0; f0 < k1; f0 += FK) {
        const int64_t f1 = k1 - f0 < FK ? k1 : f0 + FK;
        const float *pf = pw + (size_t)(f0 - k0) * FR;
        for (int g = 0; g < groups; g++) {
            nm_ahead_step(next);
            const uint8_t *pb = (const uint8_t *)(pf + (size_t)g * panel);
            for (int j = 0; j < nc; j += FC) {
                const uint8_t *xj = (const uint8_t *)(x + (size_t)j * xs);
                __m256 *ag = acc + (size_t)(j / FC) * per_cols + (size_t)g * FR * FC;
                switch (nc - j < FC ? nc - j : FC) {
                case 3: float_slice(GGML_TYPE_F32, pb, wr, wk, FR, xj, xb, 3, f0, f1, false, ag); break;
                case 2: float_slice(GGML_TYPE_F32, pb, wr, wk, FR, xj, xb, 2, f0, f1, false, ag); break;
                default: float_slice(GGML_TYPE_F32, pb, wr, wk, FR, xj, xb, 1, f0, f1, false, ag); break;
                }
            }
        }
    }
}

/* The panels float_cols reads for elements [k0, k1): per group of FR rows, per 8 elements, each
 * row's 8 in turn, as floats (F16 and BF16 widened here, once per panel: exact, so the products
 * are the same, and the passes over the panel run the F32 loop, whose every operation but the
 * loads is a fused multiply-add: widening in the loop took a shift or conversion per weight
 * vector on the multiply-add ports, 14% (F16) and 21% (BF16) of a tile's rate on a 2-core Intel
 * Xeon). wt a constant: the copies inline. */
ALWAYS_INLINE void float_pack(uint32_t wt, int64_t k0, int64_t k1, const uint8_t *w, size_t ws, int nr, float *pw) {
    const size_t es = wt == GGML_TYPE_F32 ? 4 : 2;
    const int groups = (nr + FR - 1) / FR;
    for (int g = 0; g < groups; g++) {
        float *o = pw + (size_t)g * (size_t)(k1 - k0) * FR;
        const uint8_t *src[FR];
        for (int r = 0; r < FR; r++) {
            const int row = g * FR + r;
            src[r] = row < nr ? w + (size_t)row * ws + (size_t)k0 * es : NULL;
        }
        for (int64_t k = 0; k < k1 - k0; k += 8, o += FR * 8)
            for (int r = 0; r < FR; r++)
                _mm256_store_ps(o + (size_t)r * 8, src[r] ? load8(wt, src[r] + (size_t)k * es) : _mm256_setzero_ps());
    }
}

/* The sums of FC (or fewer) activation rows × nr weight rows: the accumulators' lanes, then the
 * elements past the last multiple of 8. */
ALWAYS_INLINE void float_finish(uint32_t wt, int64_t n, const uint8_t *w, size_t ws, int nr, const float *x,
                                size_t xs, int nc, const __m256 *acc, float *out, size_t os) {
    const size_t es = wt == GGML_TYPE_F32 ? 4 : 2;
    const int64_t n8 = n / 8 * 8;
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        for (int c = 0; c < nc; c++) {
            float s = hsum8(acc[(r / FR) * FR * FC + (r % FR) * FC + c]);
            for (int64_t k = n8; k < n; k++) s += load1(wt, wr + (size_t)k * es) * x[(size_t)c * xs + (size_t)k];
            out[(size_t)c * os + (size_t)r] = s;
        }
    }
}

/* One chunk of nr <= FROWS weight rows against nc activation rows; the next chunk's nr_next rows
 * (from w_next) are fetched ahead while the last panel's passes run. */
ALWAYS_INLINE void float_chunk(uint32_t wt, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *w_next,
                               int nr_next, const float *x, size_t xs, int nc, float *out, size_t os, float *pw,
                               __m256 *acc) {
    const size_t es = wt == GGML_TYPE_F32 ? 4 : 2;
    const int64_t n8 = n / 8 * 8;
    const int groups = (nr + FR - 1) / FR;
    const size_t per_cols = (size_t)groups * FR * FC; /* accumulators per FC activation rows */
    /* slices: as few as fit FPANEL, of near-equal lengths (multiples of 8) */
    const int64_t kmax = (int64_t)((size_t)FPANEL / ((size_t)groups * FR * sizeof(float))) / 8 * 8;
    const int64_t n_slices = n8 <= kmax ? 1 : (n8 + kmax - 1) / kmax;
    const int64_t kc = (n8 / 8 + n_slices - 1) / n_slices * 8;
    nm_ahead next = {0};
    if (n_slices == 1) {
        float_pack(wt, 0, n8, w, ws, nr, pw);
        next = nm_ahead_plan(w_next, ws, nr_next, (size_t)n8 * es, cols_steps(groups, 0, n8, nc));
    }
    /* activation rows per block: with several slices, as few blocks of at most FTB groups of FC as
     * there must be, of near-equal sizes (each block copies the panels again) */
    const int n_blocks = (nc + FTB * FC - 1) / (FTB * FC);
    const int block = n_slices == 1 ? FCB * FC : ((nc + FC - 1) / FC + n_blocks - 1) / n_blocks * FC;
    for (int j0 = 0; j0 < nc; j0 += block) {
        const int jn = nc - j0 < block ? nc - j0 : block;
        for (int i = 0; i < (jn + FC - 1) / FC * (int)per_cols; i++) acc[i] = _mm256_setzero_ps();
        for (int64_t k0 = 0; k0 < n8; k0 += kc) {
            const int64_t k1 = n8 - k0 < kc ? n8 : k0 + kc;
            if (n_slices > 1) {
                float_pack(wt, k0, k1, w, ws, nr, pw);
                /* the next panel: this block's next slice, the next block's first, or the next chunk's */
                const int64_t steps = cols_steps(groups, k0, k1, jn);
                const bool same_rows = j0 + block < nc;
                if (k1 < n8)
                    next = nm_ahead_plan(w + (size_t)k1 * es, ws, nr,
                                         (size_t)((n8 - k1 < kc ? n8 : k1 + kc) - k1) * es, steps);
                else
                    next = nm_ahead_plan(same_rows ? w : w_next, ws, same_rows ? nr : nr_next, (size_t)kc * es,
                                         steps);
            }
            for (int j = 0; j < jn; j += FCB * FC) {
                const int m = jn - j < FCB * FC ? jn - j : FCB * FC;
                float_cols(pw, groups, k0, k1, x + (size_t)(j0 + j) * xs, xs, m, acc + (size_t)(j / FC) * per_cols,
                           &next);
            }
        }
        for (int j = 0; j < jn; j += FC) {
            const int m = jn - j < FC ? jn - j : FC;
            float_finish(wt, n, w, ws, nr, x + (size_t)(j0 + j) * xs, xs, m, acc + (size_t)(j / FC) * per_cols,
                         out + (size_t)(j0 + j) * os, os);
        }
    }
}

/* F16 on AMD cores (nm_cpu()->amd), and F32 on those with an L2 under 1 MiB: whole rows, no panel. A pass
 * multiplies FR weight rows by FC activation rows over all n8 elements, reading each row where it lies (F16: as
 * halves, the weights' and the activation rows themselves, F16's activation type, widened with vcvtph2ps in the
 * loop); the same products, in the same order, as float_slice's, so the same bits (F16's aux floats serve only the
 * tails, in float_finish). Activation rows go in blocks of RCB; each block meets every group of FR weight rows,
 * which stay in L1 or L2 while the block's rows stream from L2. On Zen 4 the conversions run beside the
 * multiply-adds, and the panel copies (which this schedule drops) were what cost most: one thread of a 2-core EPYC
 * ran the tile at 50-53 GMAC/s against 50 for float panels at n = 2048, and at 47-50 against 38-45 at n = 5632,
 * whose rows need several slices and a panel copied again per block of activation rows (both threads busy, 1024
 * rows × 512 activation rows; RCB of 48 or 96 ran the same). F32 on this schedule was slower than its panels there
 * (38 against 43 at n = 2048), but not on Zen 3 (likely because its L2 of 512 KiB holds a 256 KiB panel beside the
 * streaming activation rows less well): its F32 evaluation ran 4% faster on whole rows (1.013-1.098 in eight of
 * nine interleaved rounds, 0.906 in the ninth). Intel keeps the panels: its conversions take a multiply-add port
 * (14% of a tile's rate there). */
enum { RCB = 72 };

/* The pass that runs most, four weight rows by three activation rows (pt: F32 floats or F16 halves), as a function
 * of its own per type (rows_4x3_f16, rows_4x3_f32): inlined into tile_rows, the loop kept its row offsets on the
 * stack (five reloads per step beside its seven loads and twelve multiply-adds); here each row is a base pointer
 * with one shared offset. The same operations per accumulator, so the same bits. One thread of a 2-core EPYC ran
 * the tile at 53.0-53.9 GMAC/s against 50.8-50.9 (n = 2048, 512 × 216 rows), and the AVX2 F16 evaluation at 96.6
 * against 94.1 tok/s (mean of six interleaved rounds, faster in each). */
ALWAYS_INLINE void rows_4x3(uint32_t pt, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, int64_t n8,
                            __m256 *acc) {
    const size_t es = pt == GGML_TYPE_F32 ? 4 : 2;
    const uint8_t *w0 = w, *w1 = w + ws, *w2 = w + 2 * ws, *w3 = w + 3 * ws;
    const uint8_t *a0 = a, *a1 = a + as, *a2 = a + 2 * as;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    const size_t end = (size_t)n8 * es;
    for (size_t o = 0; o < end; o += 8 * es) {
        const __m256 x0 = load8(pt, a0 + o), x1 = load8(pt, a1 + o), x2 = load8(pt, a2 + o);
        __m256 v = load8(pt, w0 + o);
        c00 = _mm256_fmadd_ps(v, x0, c00), c01 = _mm256_fmadd_ps(v, x1, c01), c02 = _mm256_fmadd_ps(v, x2, c02);
        v = load8(pt, w1 + o);
        c10 = _mm256_fmadd_ps(v, x0, c10), c11 = _mm256_fmadd_ps(v, x1, c11), c12 = _mm256_fmadd_ps(v, x2, c12);
        v = load8(pt, w2 + o);
        c20 = _mm256_fmadd_ps(v, x0, c20), c21 = _mm256_fmadd_ps(v, x1, c21), c22 = _mm256_fmadd_ps(v, x2, c22);
        v = load8(pt, w3 + o);
        c30 = _mm256_fmadd_ps(v, x0, c30), c31 = _mm256_fmadd_ps(v, x1, c31), c32 = _mm256_fmadd_ps(v, x2, c32);
    }
    acc[0] = c00, acc[1] = c01, acc[2] = c02, acc[3] = c10, acc[4] = c11, acc[5] = c12;
    acc[6] = c20, acc[7] = c21, acc[8] = c22, acc[9] = c30, acc[10] = c31, acc[11] = c32;
}
__attribute__((noinline)) static void rows_4x3_f16(const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                                                   int64_t n8, __m256 *acc) {
    rows_4x3(GGML_TYPE_F16, w, ws, a, as, n8, acc);
}
__attribute__((noinline)) static void rows_4x3_f32(const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                                                   int64_t n8, __m256 *acc) {
    rows_4x3(GGML_TYPE_F32, w, ws, a, as, n8, acc);
}

/* One pass: the accumulators from zero (in registers: zeroing them in memory took a rep stosq per
 * pass, 1.5% of an F16 evaluation), through rows_4x3_f16/_f32 or float_slice over the whole rows. */
ALWAYS_INLINE void rows_cols(uint32_t pt, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nc,
                             int64_t n8, __m256 *acc) {
    if (nr == 4 && nc == 3 && FR == 4 && FC == 3) {
        if (pt == GGML_TYPE_F32) rows_4x3_f32(w, ws, a, as, n8, acc);
        else rows_4x3_f16(w, ws, a, as, n8, acc);
        return;
    }
    const size_t wk = pt == GGML_TYPE_F32 ? 32 : 16; /* eight elements */
    switch (nc) {
    case 3: float_slice(pt, w, ws, wk, nr, a, as, 3, 0, n8, true, acc); break;
    case 2: float_slice(pt, w, ws, wk, nr, a, as, 2, 0, n8, true, acc); break;
    default: float_slice(pt, w, ws, wk, nr, a, as, 1, 0, n8, true, acc); break;
    }
}

ALWAYS_INLINE void tile_rows(uint32_t pt, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as,
                             const float *x, size_t xs, int nc, float *out, size_t os) {
    const int64_t n8 = n / 8 * 8;
    __m256 acc[FR * FC];
    for (int j0 = 0; j0 < nc; j0 += RCB) {
        const int j1 = nc - j0 < RCB ? nc : j0 + RCB;
        for (int i = 0; i < nr; i += FR) {
            const int rows = nr - i < FR ? nr - i : FR;
            const uint8_t *wi = w + (size_t)i * ws;
            for (int j = j0; j < j1; j += FC) {
                const int m = j1 - j < FC ? j1 - j : FC;
                const uint8_t *aj = a + (size_t)j * as;
                switch (rows) {
                case 4: rows_cols(pt, wi, ws, 4, aj, as, m, n8, acc); break;
                case 3: rows_cols(pt, wi, ws, 3, aj, as, m, n8, acc); break;
                case 2: rows_cols(pt, wi, ws, 2, aj, as, m, n8, acc); break;
                default: rows_cols(pt, wi, ws, 1, aj, as, m, n8, acc); break;
                }
                float_finish(pt, n, wi, ws, rows, x + (size_t)j * xs, xs, m, acc, out + (size_t)j * os + i,
                             os);
            }
        }
    }
}

/* whole_rows: F32 and F16 on tile_rows, else on the panels (BF16 always) */
static bool tile_float(uint32_t wt, bool whole_rows, int64_t n, const uint8_t *w, size_t ws, int nr, const uint8_t *a,
                       size_t as, const uint8_t *aux, size_t aux_stride, int nc, float *out, size_t os) {
    const float *x = (const float *)(wt == GGML_TYPE_F32 ? a : aux);
    const size_t stride = wt == GGML_TYPE_F32 ? as : aux_stride;
    if (!x || stride % sizeof(float) != 0 || nr < 1) return false;
    const size_t xs = stride / sizeof(float);
    if (whole_rows && wt != GGML_TYPE_BF16) { /* the type a constant in each, for the inlined loops */
        if (wt == GGML_TYPE_F32) tile_rows(GGML_TYPE_F32, n, w, ws, nr, a, as, x, xs, nc, out, os);
        else tile_rows(GGML_TYPE_F16, n, w, ws, nr, a, as, x, xs, nc, out, os);
        return true;
    }
    float pw[FPANEL / sizeof(float)] __attribute__((aligned(64)));
    __m256 acc[FTB * FROWS * FC];
    /* FROWS / 2 rows per chunk when their whole rows fit the panel: one slice, and a shorter panel
     * to pass over; FROWS when the rows need several slices anyway */
    const int step = (size_t)(n / 8 * 8) * (FROWS / 2) * sizeof(float) <= FPANEL ? FROWS / 2 : FROWS;
    for (int i = 0; i < nr; i += step) {
        const int rows = nr - i < step ? nr - i : step, next = nr - i - rows < step ? nr - i - rows : step;
        const uint8_t *wi = w + (size_t)i * ws, *wn = next > 0 ? wi + (size_t)rows * ws : NULL;
        if (wt == GGML_TYPE_F32)
            float_chunk(GGML_TYPE_F32, n, wi, ws, rows, wn, next, x, xs, nc, out + i, os, pw, acc);
        else if (wt == GGML_TYPE_F16)
            float_chunk(GGML_TYPE_F16, n, wi, ws, rows, wn, next, x, xs, nc, out + i, os, pw, acc);
        else float_chunk(GGML_TYPE_BF16, n, wi, ws, rows, wn, next, x, xs, nc, out + i, os, pw, acc);
    }
    return true;
}

/* whole rows where tile_rows measured faster: F16 on AMD cores, F32 on AMD cores with an L2 under
 * 1 MiB (Zen 3 and before; Zen 4's 1 MiB keeps the panels faster) */
static bool float_whole_rows(uint32_t wt) {
    const nm_cpu_features *cpu = nm_cpu();
    return cpu->amd && (wt == GGML_TYPE_F16 || (wt == GGML_TYPE_F32 && cpu->l2_kib > 0 && cpu->l2_kib < 1024));
}

bool nm_dot_tile_float_avx2(uint32_t weight_type, bool whole_rows, int64_t n, const void *w, size_t w_stride,
                            int n_rows, const void *act, size_t act_stride, const void *aux, size_t aux_stride,
                            int n_cols, float *out, size_t out_stride) {
    if (weight_type != GGML_TYPE_F32 && weight_type != GGML_TYPE_F16 && weight_type != GGML_TYPE_BF16) return false;
    return tile_float(weight_type, whole_rows, n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out,
                      out_stride);
}

/* ---------------- vectors × matrix (attention) ---------------- */

/* Eight columns per register; a pass covers up to 4 x rows × 2 registers (8 independent
 * chains, each m load shared by the x rows); each lane adds its rounded products in row
 * order, as the reference does. Columns past a multiple of 8 go through a padded copy. */
ALWAYS_INLINE void columns_pass(int64_t n, const float *x, size_t xs, int nx, const float *m, size_t ms, int nv,
                                float *out, size_t os) {
    __m256 acc[4][2];
    for (int r = 0; r < nx; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i++) {
        const float *row = m + (size_t)i * ms;
        __m256 mv[2];
        for (int v = 0; v < nv; v++) mv[v] = _mm256_loadu_ps(row + 8 * v);
        for (int r = 0; r < nx; r++) {
            const __m256 xi = _mm256_broadcast_ss(x + (size_t)r * xs + i);
            for (int v = 0; v < nv; v++) acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_mul_ps(xi, mv[v]));
        }
    }
    for (int r = 0; r < nx; r++)
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(out + (size_t)r * os + 8 * v, acc[r][v]);
}

ALWAYS_INLINE void columns_rows(int64_t n, const float *x, size_t xs, int nx, const float *m, size_t ms, int nv,
                                float *out, size_t os) {
    switch (nx) {
    case 4: columns_pass(n, x, xs, 4, m, ms, nv, out, os); break;
    case 3: columns_pass(n, x, xs, 3, m, ms, nv, out, os); break;
    case 2: columns_pass(n, x, xs, 2, m, ms, nv, out, os); break;
    default: columns_pass(n, x, xs, 1, m, ms, nv, out, os); break;
    }
}

void nm_dot_f32_columns_avx2(int64_t n, const float *x, size_t x_stride, int n_x, const float *m, size_t m_stride,
                             int64_t n_cols, float *out, size_t out_stride) {
    for (int r0 = 0; r0 < n_x; r0 += 4) {
        const int nx = n_x - r0 < 4 ? n_x - r0 : 4;
        const float *xr = x + (size_t)r0 * x_stride;
        float *o = out + (size_t)r0 * out_stride;
        int64_t j = 0;
        for (; j + 16 <= n_cols; j += 16) columns_rows(n, xr, x_stride, nx, m + j, m_stride, 2, o + j, out_stride);
        for (; j + 8 <= n_cols; j += 8) columns_rows(n, xr, x_stride, nx, m + j, m_stride, 1, o + j, out_stride);
        for (int r = 0; r < nx && j < n_cols; r++) { /* the last columns, scalar in the same order */
            float *orow = o + (size_t)r * out_stride;
            for (int64_t jj = j; jj < n_cols; jj++) orow[jj] = 0.0f;
            for (int64_t i = 0; i < n; i++) {
                const float xi = xr[(size_t)r * x_stride + (size_t)i], *row = m + (size_t)i * m_stride;
                for (int64_t jj = j; jj < n_cols; jj++) orow[jj] += xi * row[jj];
            }
        }
    }
}

/* ---------------- dispatch ---------------- */

ALWAYS_INLINE void kernel(uint32_t wt, int64_t n, const uint8_t *w, const uint8_t *a, size_t as, int nc, float *out,
                          size_t os) {
    switch (wt) {
    case GGML_TYPE_Q4_0: k_q4_0(n, w, a, as, nc, out, os); break;
    case GGML_TYPE_Q5_0: k_q8_0_family(GGML_TYPE_Q5_0, n, w, a, as, nc, out, os); break;
    case GGML_TYPE_Q8_0: k_q8_0_family(GGML_TYPE_Q8_0, n, w, a, as, nc, out, os); break;
    case GGML_TYPE_Q4_1: k_q8_1_family(GGML_TYPE_Q4_1, n, w, a, as, nc, out, os); break;
    case GGML_TYPE_Q5_1: k_q8_1_family(GGML_TYPE_Q5_1, n, w, a, as, nc, out, os); break;
    case GGML_TYPE_Q4_K: k_q4_k(n, w, a, as, nc, out, os); break;
    case GGML_TYPE_Q5_K: k_q45_k(true, n, w, a, as, nc, out, os); break;
    case GGML_TYPE_Q6_K: k_q6_k(n, w, a, as, nc, out, os); break;
    case GGML_TYPE_F32: k_float(GGML_TYPE_F32, n, w, a, as, nc, out, os); break;
    case GGML_TYPE_F16: k_float(GGML_TYPE_F16, n, w, a, as, nc, out, os); break;
    case GGML_TYPE_BF16: k_float(GGML_TYPE_BF16, n, w, a, as, nc, out, os); break;
    default: break;
    }
}

static bool have_kernel(uint32_t wt) {
    switch (wt) {
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K: case GGML_TYPE_F32: case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        return true;
    default:
        return false;
    }
}

/* Q8_0 / Q8_1 as the reference quantizes them (dot.c): the lane-wise max keeps `a > m ? a : m`
 * (NaN skipped), and max is exact in any order; cvtps rounds half to even like nearbyintf; the
 * int8 keeps the low byte of the int32 as the reference's cast does. */
static void quantize_q8_0_or_1(const float *x, uint8_t *dst, int64_t n, bool with_sum) {
    const size_t bs = with_sum ? 36 : 34;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        uint8_t *out = dst + (size_t)b * bs;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(_mm256_and_ps(v[k], abs_mask), m);
        }
        float lanes[8], amax = 0.0f;
        _mm256_storeu_ps(lanes, m);
        for (int l = 0; l < 8; l++) amax = lanes[l] > amax ? lanes[l] : amax;
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_and_si256(_mm256_cvtps_epi32(_mm256_mul_ps(v[k], idv)), _mm256_set1_epi32(0xFF));
        /* pack 32 bytes (values 0..255 after the mask) back into element order */
        const __m256i w01 = _mm256_packus_epi32(q[0], q[1]), w23 = _mm256_packus_epi32(q[2], q[3]);
        __m256i bytes = _mm256_packus_epi16(w01, w23);
        bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(out + (with_sum ? 4 : 2)), bytes);
        const uint16_t dh = nm_f32_to_f16(d);
        memcpy(out, &dh, 2);
        if (with_sum) {
            const __m256i sb = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(bytes));
            const __m256i sb2 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(bytes, 1));
            const int sum = hsum_i32(_mm256_madd_epi16(_mm256_add_epi16(sb, sb2), _mm256_set1_epi16(1)));
            const uint16_t sh = nm_f32_to_f16(d * (float)sum);
            memcpy(out + 2, &sh, 2);
        }
    }
}

/* Q8_K as the reference quantizes it (dot.c, ggml's quantize_row_q8_K_ref): amax by the
 * lane-wise `a > m ? a : m` (NaN skipped; max is exact in any order), max = the first element
 * whose magnitude is amax, then per element the same two roundings as nearest_int (the product,
 * then + 1.5·2^23, its low 23 bits less 2^22), the clamp at 127 and the int8 cast's low byte
 * (an iscale that overflows, for a block of denormals, makes values far below -128). */
static void quantize_q8_k(const float *x, uint8_t *dst, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256i low23 = _mm256_set1_epi32(0x007FFFFF), bias = _mm256_set1_epi32(0x00400000),
                  top = _mm256_set1_epi32(127), byte = _mm256_set1_epi32(0xFF),
                  order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + b * 256;
        uint8_t *out = dst + (size_t)b * 292;
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xb + 8 * k), abs_mask), m);
        float lanes[8], amax = 0.0f;
        _mm256_storeu_ps(lanes, m);
        for (int l = 0; l < 8; l++) amax = lanes[l] > amax ? lanes[l] : amax;
        if (amax == 0.0f) {
            memset(out, 0, 292);
            continue;
        }
        float max = 0.0f;
        const __m256 am = _mm256_set1_ps(amax);
        for (int k = 0; k < 32; k++) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(xb + 8 * k), abs_mask), am, _CMP_EQ_OQ));
            if (hit) {
                max = xb[8 * k + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        int8_t *qs = (int8_t *)(out + 4);
        for (int k = 0; k < 8; k++) {
            __m256i q[4];
            for (int i = 0; i < 4; i++) {
                const __m256 v = _mm256_add_ps(_mm256_mul_ps(is, _mm256_loadu_ps(xb + 32 * k + 8 * i)), magic);
                q[i] = _mm256_min_epi32(_mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), low23), bias), top);
                q[i] = _mm256_and_si256(q[i], byte);
            }
            const __m256i bytes = _mm256_permutevar8x32_epi32(
                _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]), _mm256_packus_epi32(q[2], q[3])), order);
            _mm256_storeu_si256((__m256i *)(qs + 32 * k), bytes);
            /* the two 16-element sums of these 32 */
            const __m256i s16 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(bytes)), _mm256_set1_epi16(1));
            const __m256i t16 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(bytes, 1)), _mm256_set1_epi16(1));
            const int16_t s0 = (int16_t)hsum_i32(s16), s1 = (int16_t)hsum_i32(t16);
            memcpy(out + 260 + 4 * k, &s0, 2);
            memcpy(out + 262 + 4 * k, &s1, 2);
        }
        const float d = 1.0f / iscale;
        memcpy(out, &d, 4);
    }
}

bool nm_dot_quantize_act_avx2(uint32_t weight_type, const float *x, void *dst, int64_t n) {
    switch (nm_dot_act_type(weight_type)) { /* by the activation type: IQ4_NL's Q8_0 had gone to the scalar code */
    case GGML_TYPE_Q8_0: quantize_q8_0_or_1(x, dst, n, false); return true;
    case GGML_TYPE_Q8_1: quantize_q8_0_or_1(x, dst, n, true); return true;
    case GGML_TYPE_Q8_K: quantize_q8_k(x, dst, n); return true;
    default: return false;
    }
}

bool nm_dot_avx2(uint32_t weight_type, int64_t n, const void *w, const void *act, float *out) {
    if (!have_kernel(weight_type)) return nm_dot_tile_lowbit_avx2(weight_type, n, w, 0, 1, act, 0, 1, out, 0);
    kernel(weight_type, n, w, act, 0, 1, out, 0);
    return true;
}

bool nm_dot_tile_avx2(uint32_t wt, int64_t n, const void *w, size_t w_stride, int n_rows, const void *act,
                      size_t act_stride, const void *aux, size_t aux_stride, int n_cols, float *out,
                      size_t out_stride) {
    if (!have_kernel(wt))
        return nm_dot_tile_lowbit_avx2(wt, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
    if (wt == GGML_TYPE_Q4_0 &&
        tile_q4_0(n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out, out_stride))
        return true;
    if (wt == GGML_TYPE_Q8_0 &&
        tile_q8_0(n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out, out_stride))
        return true;
    if (wt == GGML_TYPE_Q5_K || wt == GGML_TYPE_Q6_K) {
        tile_k56(wt == GGML_TYPE_Q5_K, n, w, w_stride, n_rows, act, act_stride, n_cols, out, out_stride);
        return true;
    }
    if ((wt == GGML_TYPE_F32 || wt == GGML_TYPE_F16 || wt == GGML_TYPE_BF16) &&
        tile_float(wt, float_whole_rows(wt), n, w, w_stride, n_rows, act, act_stride, aux, aux_stride, n_cols, out,
                   out_stride))
        return true;
    const uint8_t *wb = w, *ab = act;
    for (int i = 0; i < n_rows; i++) {
        const uint8_t *wr = wb + (size_t)i * w_stride;
        int j = 0;
        for (; j + 4 <= n_cols; j += 4)
            kernel(wt, n, wr, ab + (size_t)j * act_stride, act_stride, 4, out + (size_t)j * out_stride + i, out_stride);
        for (; j < n_cols; j++)
            kernel(wt, n, wr, ab + (size_t)j * act_stride, act_stride, 1, out + (size_t)j * out_stride + i, out_stride);
    }
    return true;
}

/* ggml_vec_dot_f32 / _f16's AVX2 order (dot.h: nm_dot_float_vec): four vectors of eight sums over
 * steps of 32 elements, folded 0+2, 1+3, then those two, then across the lanes. */
bool nm_dot_float_vec_avx2(uint32_t weight_type, int64_t n, const void *w, const void *a, float *out) {
    if (weight_type != GGML_TYPE_F32 && weight_type != GGML_TYPE_F16 && weight_type != GGML_TYPE_BF16) return false;
    const bool f16 = weight_type == GGML_TYPE_F16, bf16 = weight_type == GGML_TYPE_BF16;
    const float *wf = w, *af = a;
    const uint16_t *wh = w, *ah = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++) {
            const __m256 x = f16 || bf16 ? load8(weight_type, (const uint8_t *)(wh + i + 8 * j)) : _mm256_loadu_ps(wf + i + 8 * j);
            const __m256 y = f16 || bf16 ? load8(weight_type, (const uint8_t *)(ah + i + 8 * j)) : _mm256_loadu_ps(af + i + 8 * j);
            acc[j] = _mm256_fmadd_ps(x, y, acc[j]);
        }
    const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    float r;
    if (bf16) { /* ggml_vec_dot_bf16: lanes 0+2 and 1+3, then the two */
        const __m128 g = _mm_add_ps(t0, _mm_movehl_ps(t0, t0));
        r = _mm_cvtss_f32(_mm_add_ss(g, _mm_movehdup_ps(g)));
    } else {
        const __m128 t1 = _mm_hadd_ps(t0, t0);
        r = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
    }
    if (!f16 && !bf16) {
        float sum = r;
        for (int64_t i = np; i < n; i++) sum = fmaf(wf[i], af[i], sum);
        *out = sum;
        return true;
    }
    double sum = r;
    for (int64_t i = np; i < n; i++)
        sum += f16 ? (double)(nm_f16_to_f32(wh[i]) * nm_f16_to_f32(ah[i]))
                   : (double)(nm_bf16_to_f32(wh[i]) * nm_bf16_to_f32(ah[i]));
    *out = (float)sum;
    return true;
}
