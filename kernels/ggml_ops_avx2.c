/* AVX2/FMA/F16C versions of ggml_ops.h: ggml's vector exp as eight lanes, SwiGLU and the tiled
 * flash-attention kernel with intrinsics (three query rows per pass where the head size is a
 * multiple of 32; each lane keeps the portable code's order: fused
 * multiply-add chains in the same sequence), the one-row kernel as the portable code built with
 * these flags. Same results as ggml_ops.c, bit for bit (tests/kernels/test_ggml_ops.c). */
#include <immintrin.h>

#include "kernels/ggml_ops.h"
#include "kernels/ggml_ops_simd.h"

#define OPS(name) name##_avx2
#define H2F(h) _cvtsh_ss(h)
#define F2H(f) ((uint16_t)_cvtss_sh((f), _MM_FROUND_TO_NEAREST_INT))
#include "kernels/ggml_ops_impl.h"

/* expf_lane for eight lanes (ggml_v_expf). */
static inline __m256 v_expf(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 plain = _mm256_fmadd_ps(j, k, k);
    if (!_mm256_movemask_ps(c)) return plain;
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 d = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 big = _mm256_blendv_ps(plain, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1), c);
    return _mm256_blendv_ps(big, _mm256_mul_ps(s1, s1), d);
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void nm_ggml_swiglu_avx2(int n, float *y, const float *x, const float *g) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        const __m256 e = v_expf(_mm256_sub_ps(_mm256_setzero_ps(), xv));
        const __m256 silu = _mm256_div_ps(xv, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(g + i)));
    }
    for (; i < n; i++) y[i] = (x[i] / (1.0f + expf(-x[i]))) * g[i];
}

/* fa_tiled_ref with the key lanes, exponentials and output lanes eight at a time. */
static void fa_tiled_simd(int hd, int n_rows, const float *q, size_t q_stride, const float *kt, size_t kt_stride,
                          const float *v, size_t v_stride, int n_kv0, float scale, float softcap, float *out,
                          size_t out_stride, float *scratch) {
    enum { T = NM_GGML_FA_TILE, NB = T / 8, VREGS = 16 };
    float *kq = scratch;
    const int hd8 = hd & ~7;
    for (int r = 0; r < n_rows; r++) {
        const float *qr = q + (size_t)r * q_stride;
        float *acc = out + (size_t)r * out_stride;
        const int n_kv = n_kv0 + r;
        float M = -INFINITY, S = 0.0f;
        for (int d = 0; d < hd; d++) acc[d] = 0.0f;
        for (int ic = 0; ic < n_kv; ic += T) {
            const int kv = n_kv - ic < T ? n_kv - ic : T;
            const int nb = (kv + 7) / 8; /* blocks of 8 keys; lanes past kv are discarded below */
            __m256 s[NB];
            for (int b = 0; b < NB; b++) s[b] = _mm256_setzero_ps();
            const float *kc = kt + ic;
            if (nb == NB) {
                for (int d = 0; d < hd; d++) {
                    const __m256 qd = _mm256_set1_ps(qr[d]);
                    const float *kd = kc + (size_t)d * kt_stride;
                    for (int b = 0; b < NB; b++) s[b] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kd + 8 * b), s[b]);
                }
            } else {
                for (int d = 0; d < hd; d++) {
                    const __m256 qd = _mm256_set1_ps(qr[d]);
                    const float *kd = kc + (size_t)d * kt_stride;
                    for (int b = 0; b < nb; b++) s[b] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kd + 8 * b), s[b]);
                }
            }
            const __m256 vs = _mm256_set1_ps(scale);
            for (int b = 0; b < NB; b++) _mm256_storeu_ps(kq + 8 * b, _mm256_mul_ps(s[b], vs));
            if (softcap != 0.0f)
                for (int j = 0; j < kv; j++) kq[j] = tanhf(kq[j]) * softcap;
            float tmax = -INFINITY;
            for (int j = 0; j < kv; j++) tmax = kq[j] > tmax ? kq[j] : tmax;
            for (int j = kv; j < T; j++) kq[j] = -INFINITY;
            const float Mnew = fmaxf(M, tmax);
            if (Mnew > M) {
                const float ms = expf(M - Mnew);
                for (int d = 0; d < hd; d++) acc[d] *= ms;
                S *= ms;
            }
            M = Mnew;
            double sum = 0.0;
            const __m256 vm = _mm256_set1_ps(M);
            for (int b = 0; b < NB; b++) {
                const __m256 e = v_expf(_mm256_sub_ps(_mm256_loadu_ps(kq + 8 * b), vm));
                _mm256_storeu_ps(kq + 8 * b, e);
                sum += (double)hsum(e);
            }
            S = (float)((double)S + sum);
            if (hd8 == hd && hd <= 8 * VREGS) { /* the output row stays in registers over the tile */
                __m256 a[VREGS];
                const int nv = hd / 8;
                for (int i = 0; i < nv; i++) a[i] = _mm256_loadu_ps(acc + 8 * i);
                for (int j = 0; j < kv; j++) {
                    const __m256 p = _mm256_set1_ps(kq[j]);
                    const float *vr = v + (size_t)(ic + j) * v_stride;
                    for (int i = 0; i < nv; i++) a[i] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + 8 * i), a[i]);
                }
                for (int i = 0; i < nv; i++) _mm256_storeu_ps(acc + 8 * i, a[i]);
            } else {
                for (int j = 0; j < kv; j++) {
                    const __m256 p = _mm256_set1_ps(kq[j]);
                    const float *vr = v + (size_t)(ic + j) * v_stride;
                    int d = 0;
                    for (; d < hd8; d += 8)
                        _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + d), _mm256_loadu_ps(acc + d)));
                    for (; d < hd; d++) acc[d] = fmaf(kq[j], vr[d], acc[d]);
                }
            }
        }
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        for (int d = 0; d < hd; d++) acc[d] *= inv;
    }
}

/* fa_tiled_simd for FA_R query rows at a time (head sizes a multiple of 32): each key vector
 * loaded serves every row of the group, as in the AVX-512 kernel. With sixteen registers the
 * scores go in two halves of the tile (FA_R rows × 4 blocks of 8 keys) and the value sums in
 * quarters of 32 of the head (FA_R rows × 4 registers). Every (row, key) score and (row, element)
 * sum is the same fused multiply-add chain as fa_tiled_simd's, in the same order; a row's keys
 * past its own last have p = 0 and leave its sums as they are. */
enum { FA_R = 3 };
#if defined(__clang__)
#define UNROLL_OPS
#else
#define UNROLL_OPS _Pragma("GCC unroll 8")
#endif

static void fa_group(int hd, int nr, const float *q, size_t q_stride, const float *kt, size_t kt_stride,
                                const float *v, size_t v_stride, int n_kv0, float scale, float *out,
                                size_t out_stride, float *kq /* FA_R × T */) {
    enum { T = NM_GGML_FA_TILE, NB = T / 8, HB = 4 };
    float M[FA_R], S[FA_R];
    for (int i = 0; i < nr; i++) {
        M[i] = -INFINITY;
        S[i] = 0.0f;
        for (int d = 0; d < hd; d++) out[(size_t)i * out_stride + (size_t)d] = 0.0f;
    }
    const int n_kv_max = n_kv0 + nr - 1; /* the group's last row sees the most keys */
    for (int ic = 0; ic < n_kv_max; ic += T) {
        int kv[FA_R], kvmax = 0;
        for (int i = 0; i < nr; i++) {
            const int n_kv = n_kv0 + i;
            kv[i] = n_kv - ic < 0 ? 0 : (n_kv - ic < T ? n_kv - ic : T);
            if (kv[i] > kvmax) kvmax = kv[i];
        }
        const float *kc = kt + ic;
        const __m256 vs = _mm256_set1_ps(scale);
        for (int b0 = 0; b0 < NB && 8 * b0 < kvmax; b0 += HB) {
            __m256 s[FA_R][HB];
            UNROLL_OPS
            for (int i = 0; i < FA_R; i++)
                UNROLL_OPS
                for (int b = 0; b < HB; b++) s[i][b] = _mm256_setzero_ps();
            for (int d = 0; d < hd; d++) {
                const float *kd = kc + (size_t)d * kt_stride + 8 * b0;
                __m256 qd[FA_R];
                UNROLL_OPS
                for (int i = 0; i < FA_R; i++) qd[i] = _mm256_set1_ps(q[(size_t)(i < nr ? i : 0) * q_stride + (size_t)d]);
                UNROLL_OPS
                for (int b = 0; b < HB; b++) {
                    const __m256 kb = _mm256_loadu_ps(kd + 8 * b);
                    UNROLL_OPS
                    for (int i = 0; i < FA_R; i++) s[i][b] = _mm256_fmadd_ps(qd[i], kb, s[i][b]);
                }
            }
            for (int i = 0; i < nr; i++)
                for (int b = 0; b < HB; b++) _mm256_storeu_ps(kq + i * T + 8 * (b0 + b), _mm256_mul_ps(s[i][b], vs));
        }
        for (int i = 0; i < nr; i++) {
            float *row = kq + i * T, *o = out + (size_t)i * out_stride;
            if (kv[i] == 0) { /* the whole tile is masked for this row: it adds nothing */
                memset(row, 0, T * sizeof(float));
                continue;
            }
            float tmax = -INFINITY;
            for (int j = 0; j < kv[i]; j++) tmax = row[j] > tmax ? row[j] : tmax;
            for (int j = kv[i]; j < T; j++) row[j] = -INFINITY;
            const float Mnew = fmaxf(M[i], tmax);
            if (Mnew > M[i]) {
                const float ms = expf(M[i] - Mnew);
                for (int d = 0; d < hd; d++) o[d] *= ms;
                S[i] *= ms;
            }
            M[i] = Mnew;
            double sum = 0.0;
            const __m256 vm = _mm256_set1_ps(Mnew);
            for (int b = 0; b < NB; b++) {
                const __m256 e = v_expf(_mm256_sub_ps(_mm256_loadu_ps(row + 8 * b), vm));
                _mm256_storeu_ps(row + 8 * b, e);
                sum += (double)hsum(e);
            }
            S[i] = (float)((double)S[i] + sum);
        }
        for (int w0 = 0; w0 < hd; w0 += 8 * HB) {
            __m256 a[FA_R][HB];
            UNROLL_OPS
            for (int i = 0; i < FA_R; i++)
                UNROLL_OPS
                for (int w = 0; w < HB; w++)
                    a[i][w] = i < nr ? _mm256_loadu_ps(out + (size_t)i * out_stride + (size_t)(w0 + 8 * w)) : _mm256_setzero_ps();
            for (int j = 0; j < kvmax; j++) {
                const float *vr = v + (size_t)(ic + j) * v_stride + w0;
                __m256 p[FA_R];
                UNROLL_OPS
                for (int i = 0; i < FA_R; i++) p[i] = _mm256_set1_ps(kq[(i < nr ? i : 0) * T + j]);
                UNROLL_OPS
                for (int w = 0; w < HB; w++) {
                    const __m256 vv = _mm256_loadu_ps(vr + 8 * w);
                    UNROLL_OPS
                    for (int i = 0; i < FA_R; i++) a[i][w] = _mm256_fmadd_ps(p[i], vv, a[i][w]);
                }
            }
            for (int i = 0; i < nr; i++)
                for (int w = 0; w < HB; w++) _mm256_storeu_ps(out + (size_t)i * out_stride + (size_t)(w0 + 8 * w), a[i][w]);
        }
    }
    for (int i = 0; i < nr; i++) {
        const float inv = S[i] == 0.0f ? 0.0f : 1.0f / S[i];
        for (int d = 0; d < hd; d++) out[(size_t)i * out_stride + (size_t)d] *= inv;
    }
}

static void fa_tiled_groups(int hd, int n_rows, const float *q, size_t q_stride, const float *kt, size_t kt_stride,
                            const float *v, size_t v_stride, int n_kv0, float scale, float *out, size_t out_stride,
                            float *kq) {
    for (int r0 = 0; r0 < n_rows; r0 += FA_R) {
        const int nr = n_rows - r0 < FA_R ? n_rows - r0 : FA_R;
        fa_group(hd, nr, q + (size_t)r0 * q_stride, q_stride, kt, kt_stride, v, v_stride, n_kv0 + r0, scale,
                 out + (size_t)r0 * out_stride, out_stride, kq);
    }
}

void nm_ggml_flash_attn_avx2(bool tiled, int head_dim, int n_rows, const float *q, size_t q_stride, const float *kt,
                             size_t kt_stride, const float *v, size_t v_stride, int n_kv0, float scale, float softcap,
                             float *out, size_t out_stride, float *scratch) {
    if (tiled && head_dim % 32 == 0 && softcap == 0.0f) /* three rows at a time (no soft-capping there) */
        fa_tiled_groups(head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, out, out_stride,
                        scratch);
    else if (tiled)
        fa_tiled_simd(head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, softcap, out,
                      out_stride, scratch);
    else fa_rows_avx2(head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, softcap, out, out_stride,
                      scratch);
}
