/* AVX-512 version of the tiled flash-attention kernel of ggml_ops.h: sixteen key lanes per
 * register and four query rows per pass sharing every key and value load. Each lane still runs
 * the portable code's chain (ggml_ops_impl.h), so the results are the same bit for bit; the
 * exponentials are ggml's vector exp on sixteen lanes, summed per eight lanes as ggml does. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/ggml_ops.h"
#include "kernels/ggml_ops_simd.h"

static inline __m512 v_expf16(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __m512i e = _mm512_slli_epi32(_mm512_castps_si512(z), 23);
    const __m512 k = _mm512_castsi512_ps(_mm512_add_epi32(e, _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    const __m512 an = _mm512_abs_ps(n);
    const __mmask16 c = _mm512_cmp_ps_mask(an, _mm512_set1_ps(126.0f), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_mul_ps(_mm512_set1_ps(0x1.ffffecp-1f), b));
    const __m512 plain = _mm512_fmadd_ps(j, k, k);
    if (!c) return plain;
    const __mmask16 le = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
    const __m512i g = _mm512_maskz_mov_epi32(le, _mm512_set1_epi32((int)0x82000000u));
    const __m512 s1 = _mm512_castsi512_ps(_mm512_add_epi32(g, _mm512_set1_epi32(0x7f000000)));
    const __m512 s2 = _mm512_castsi512_ps(_mm512_sub_epi32(e, g));
    const __mmask16 d = _mm512_cmp_ps_mask(an, _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __m512 big = _mm512_mask_blend_ps(c, plain, _mm512_mul_ps(_mm512_fmadd_ps(s2, j, s2), s1));
    return _mm512_mask_blend_ps(d, big, _mm512_mul_ps(s1, s1));
}

/* ggml's 8-lane sum of one half: (hi + lo), then pairs */
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

enum { T = NM_GGML_FA_TILE, NB = T / 16, R = 4, VMAX = 8 };

bool nm_ggml_fa_tiled_avx512(int hd, int n_rows, const float *q, size_t q_stride, const float *kt, size_t kt_stride,
                             const float *v, size_t v_stride, int n_kv0, float scale, float *out, size_t out_stride) {
    if (hd % 16 || hd > 16 * VMAX) return false;
    const int nv = hd / 16;
    float kq[R][T];
    for (int r = 0; r < n_rows; r++) memset(out + (size_t)r * out_stride, 0, (size_t)hd * sizeof(float));
    for (int r0 = 0; r0 < n_rows; r0 += R) {
        const int nr = n_rows - r0 < R ? n_rows - r0 : R;
        float M[R], S[R];
        for (int i = 0; i < R; i++) {
            M[i] = -INFINITY;
            S[i] = 0.0f;
        }
        const int n_kv_max = n_kv0 + r0 + nr - 1; /* the group's last row sees the most keys */
        for (int ic = 0; ic < n_kv_max; ic += T) {
            /* scores: sixteen keys per lane group, one fused multiply-add chain per (row, key) */
            __m512 s[R][NB];
            for (int i = 0; i < R; i++)
                for (int b = 0; b < NB; b++) s[i][b] = _mm512_setzero_ps();
            const float *kc = kt + ic;
            for (int d = 0; d < hd; d++) {
                const float *kd = kc + (size_t)d * kt_stride;
                __m512 kv4[NB];
                for (int b = 0; b < NB; b++) kv4[b] = _mm512_loadu_ps(kd + 16 * b);
                for (int i = 0; i < nr; i++) {
                    const __m512 qd = _mm512_set1_ps(q[(size_t)(r0 + i) * q_stride + (size_t)d]);
                    for (int b = 0; b < NB; b++) s[i][b] = _mm512_fmadd_ps(qd, kv4[b], s[i][b]);
                }
            }
            int kv[R], kvmax = 0;
            for (int i = 0; i < nr; i++) {
                const int n_kv = n_kv0 + r0 + i;
                kv[i] = n_kv - ic < 0 ? 0 : (n_kv - ic < T ? n_kv - ic : T);
                if (kv[i] > kvmax) kvmax = kv[i];
                float *row = kq[i];
                for (int b = 0; b < NB; b++) _mm512_storeu_ps(row + 16 * b, _mm512_mul_ps(s[i][b], _mm512_set1_ps(scale)));
                if (kv[i] == 0) { /* the whole tile is masked for this row: it adds nothing */
                    memset(row, 0, sizeof kq[i]);
                    continue;
                }
                float tmax = -INFINITY;
                for (int j = 0; j < kv[i]; j++) tmax = row[j] > tmax ? row[j] : tmax;
                for (int j = kv[i]; j < T; j++) row[j] = -INFINITY;
                const float Mnew = fmaxf(M[i], tmax);
                if (Mnew > M[i]) {
                    const float ms = expf(M[i] - Mnew);
                    float *o = out + (size_t)(r0 + i) * out_stride;
                    for (int dd = 0; dd < hd; dd++) o[dd] *= ms;
                    S[i] *= ms;
                }
                M[i] = Mnew;
                double sum = 0.0;
                const __m512 vm = _mm512_set1_ps(Mnew);
                for (int b = 0; b < NB; b++) {
                    const __m512 ex = v_expf16(_mm512_sub_ps(_mm512_loadu_ps(row + 16 * b), vm));
                    _mm512_storeu_ps(row + 16 * b, ex);
                    sum += (double)hsum8(_mm512_castps512_ps256(ex));
                    sum += (double)hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(ex), 1)));
                }
                S[i] = (float)((double)S[i] + sum);
            }
            /* values: p·v by fused multiply-adds over the tile's keys in order; a row's keys past
             * its own last have p = 0 and leave its sums as they are */
            __m512 a[R][VMAX];
            for (int i = 0; i < nr; i++)
                for (int w = 0; w < nv; w++) a[i][w] = _mm512_loadu_ps(out + (size_t)(r0 + i) * out_stride + 16 * w);
            for (int jj = 0; jj < kvmax; jj++) {
                const float *vr = v + (size_t)(ic + jj) * v_stride;
                for (int w = 0; w < nv; w++) {
                    const __m512 vv = _mm512_loadu_ps(vr + 16 * w);
                    for (int i = 0; i < nr; i++) a[i][w] = _mm512_fmadd_ps(_mm512_set1_ps(kq[i][jj]), vv, a[i][w]);
                }
            }
            for (int i = 0; i < nr; i++)
                for (int w = 0; w < nv; w++) _mm512_storeu_ps(out + (size_t)(r0 + i) * out_stride + 16 * w, a[i][w]);
        }
        for (int i = 0; i < nr; i++) {
            const float inv = S[i] == 0.0f ? 0.0f : 1.0f / S[i];
            float *o = out + (size_t)(r0 + i) * out_stride;
            for (int dd = 0; dd < hd; dd++) o[dd] *= inv;
        }
    }
    return true;
}
