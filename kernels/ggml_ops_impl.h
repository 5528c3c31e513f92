/* Private: the bodies of ggml_ops.h, included twice with OPS(name) giving each copy its own
 * suffix (ggml_ops.c: portable; ggml_ops_avx2.c: built with -mavx2 -mfma -mf16c so fmaf is one
 * instruction and the independent per-lane loops vectorise). -ffp-contract=off keeps every
 * rounding where it is written. */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t OPS(bits)(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float OPS(from_bits)(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* One lane of ggml_v_expf: n = round(x·log2 e), reduced argument b = x − n·ln 2 in two steps, a
 * degree-5 polynomial, and the scale 2^n put into the exponent (with the over/underflow path for
 * |n| > 126). fnmadd(a, b, c) = fmaf(−a, b, c). */
static inline float OPS(expf_lane)(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = OPS(bits)(z) << 23;
    const float k = OPS(from_bits)(e + OPS(bits)(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = OPS(from_bits)(g + 0x7f000000u);
    const float s2 = OPS(from_bits)(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

static inline void OPS(swiglu)(int n, float *y, const float *x, const float *g) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            const float xv = x[i + l];
            y[i + l] = (xv / (1.0f + OPS(expf_lane)(0.0f - xv))) * g[i + l];
        }
    for (; i < n; i++) y[i] = (x[i] / (1.0f + expf(-x[i]))) * g[i];
}

/* ggml's 8-lane horizontal sum: (hi + lo), then pairs (0,2)(1,3), then the two. */
static inline float OPS(hsum8)(const float *v) {
    const float t0 = v[4] + v[0], t1 = v[5] + v[1], t2 = v[6] + v[2], t3 = v[7] + v[3];
    return (t0 + t2) + (t1 + t3);
}

/* ---- tiled kernel (ggml_compute_forward_flash_attn_ext_tiled) ----
 * Per query row and per tile of NM_GGML_FA_TILE keys: scores by one fused multiply-add chain
 * over the head dimension, times scale (then, with a soft cap c, tanhf(s)·c: ggml divides the scale by
 * c beforehand); entries past the row's last key are −inf. The running
 * maximum M and sum S update as ggml does (rescale by expf(Mold − M) when the maximum grows), the
 * tile's exponentials come from the vector exp with their sum taken per 8 lanes into a double,
 * and the output accumulates p·v by fused multiply-adds over the tile's keys in order (keys past
 * the row's last one have p = 0 and would leave it unchanged). The result is scaled by 1/S. */
static inline void OPS(fa_tiled)(int hd, int n_rows, const float *q, size_t q_stride, const float *kt, size_t kt_stride,
                          const float *v, size_t v_stride, int n_kv0, float scale, float softcap, float *out,
                          size_t out_stride, float *scratch) {
    enum { T = NM_GGML_FA_TILE };
    float *kq = scratch;
    for (int r = 0; r < n_rows; r++) {
        const float *qr = q + (size_t)r * q_stride;
        float *acc = out + (size_t)r * out_stride;
        const int n_kv = n_kv0 + r;
        float M = -INFINITY, S = 0.0f;
        for (int d = 0; d < hd; d++) acc[d] = 0.0f;
        for (int ic = 0; ic < n_kv; ic += T) {
            const int kv = n_kv - ic < T ? n_kv - ic : T;
            float tmax = -INFINITY;
            for (int j = 0; j < kv; j++) {
                float s = 0.0f;
                for (int d = 0; d < hd; d++) s = fmaf(qr[d], kt[(size_t)d * kt_stride + (size_t)(ic + j)], s);
                kq[j] = s * scale;
                if (softcap != 0.0f) kq[j] = tanhf(kq[j]) * softcap;
                tmax = kq[j] > tmax ? kq[j] : tmax;
            }
            for (int j = kv; j < T; j++) kq[j] = -INFINITY;
            const float Mnew = fmaxf(M, tmax);
            if (Mnew > M) {
                const float ms = expf(M - Mnew);
                for (int d = 0; d < hd; d++) acc[d] *= ms;
                S *= ms;
            }
            M = Mnew;
            double sum = 0.0;
            for (int j = 0; j < T; j += 8) {
                float e8[8];
                for (int l = 0; l < 8; l++) e8[l] = OPS(expf_lane)(kq[j + l] - M);
                for (int l = 0; l < 8; l++) kq[j + l] = e8[l];
                sum += (double)OPS(hsum8)(e8);
            }
            S = (float)((double)S + sum);
            for (int j = 0; j < kv; j++) {
                const float p = kq[j];
                const float *vr = v + (size_t)(ic + j) * v_stride;
                for (int d = 0; d < hd; d++) acc[d] = fmaf(p, vr[d], acc[d]);
            }
        }
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        for (int d = 0; d < hd; d++) acc[d] *= inv;
    }
}

/* ---- one-row kernel (ggml_compute_forward_flash_attn_ext_f16_one_chunk), F16 V ----
 * q is rounded to f16; each score is ggml_vec_dot_f16 (four 8-lane fused multiply-add
 * accumulators over steps of 32, reduced (0+2)+(1+3), then the 8 lanes as hi+lo and two
 * horizontal adds; a tail past a multiple of 32 adds in double). The output accumulates in f16:
 * each step rounds fmaf(v, vs, acc) to f16; a new maximum rescales it by expf(Mold − M). */
static inline float OPS(dot_f16)(int n, const float *k, size_t k_stride, const float *qh) {
    float sum[4][8];
    memset(sum, 0, sizeof sum);
    const int np = n & ~31;
    for (int i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++)
                sum[j][l] = fmaf(k[(size_t)(i + 8 * j + l) * k_stride], qh[i + 8 * j + l], sum[j][l]);
    float x0[8];
    for (int l = 0; l < 8; l++) x0[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
    float t[4];
    for (int l = 0; l < 4; l++) t[l] = x0[l] + x0[l + 4];
    double s = (double)((t[0] + t[1]) + (t[2] + t[3]));
    for (int i = np; i < n; i++) s += (double)(k[(size_t)i * k_stride] * qh[i]);
    return (float)s;
}

static inline void OPS(fa_rows)(int hd, int n_rows, const float *q, size_t q_stride, const float *kt, size_t kt_stride,
                         const float *v, size_t v_stride, int n_kv0, float scale, float softcap, float *out,
                         size_t out_stride, float *scratch) {
    float *qh = scratch;
    uint16_t *acc = (uint16_t *)(scratch + hd);
    for (int r = 0; r < n_rows; r++) {
        const float *qr = q + (size_t)r * q_stride;
        for (int d = 0; d < hd; d++) qh[d] = H2F(F2H(qr[d]));
        for (int d = 0; d < hd; d++) acc[d] = 0;
        float M = -INFINITY, S = 0.0f;
        const int n_kv = n_kv0 + r;
        for (int p = 0; p < n_kv; p++) {
            float s = OPS(dot_f16)(hd, kt + p, kt_stride, qh) * scale;
            if (softcap != 0.0f) s = softcap * tanhf(s);
            float ms = 1.0f, vs = 1.0f;
            if (s > M) {
                const float Mold = M;
                M = s;
                ms = expf(Mold - M);
                for (int d = 0; d < hd; d++) acc[d] = F2H(H2F(acc[d]) * ms);
            } else {
                vs = expf(s - M);
            }
            const float *vr = v + (size_t)p * v_stride;
            for (int d = 0; d < hd; d++) acc[d] = F2H(fmaf(vr[d], vs, H2F(acc[d])));
            S = S * ms + vs;
        }
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        float *o = out + (size_t)r * out_stride;
        for (int d = 0; d < hd; d++) o[d] = H2F(acc[d]) * inv;
    }
}
