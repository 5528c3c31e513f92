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

static void OPS(swiglu)(int n, float *y, const float *x, const float *g) {
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
 * over the head dimension (f16 keys widened to f32), times scale; entries past the row's last
 * key are −inf. The running maximum M and sum S update as ggml does (rescale by expf(Mold − M)
 * when the maximum grows), the tile's exponentials come from the vector exp with their sum
 * taken per 8 lanes into a double, and the output accumulates p·v by fused multiply-adds over
 * the tile's keys in order. The result is scaled by 1/S. */
static void OPS(fa_tiled)(int hd, int n_rows, const float *q, size_t q_stride, const uint16_t *k, const uint16_t *v,
                          size_t kv_stride, int n_kv0, float scale, float *out, size_t out_stride, float *scratch) {
    enum { T = NM_GGML_FA_TILE };
    float *kt = scratch;                         /* T × hd, transposed: kt[d*T + j] */
    float *vt = kt + (size_t)T * hd;             /* T × hd */
    float *kq = vt + (size_t)T * hd;             /* T */
    float *Ms = kq + T, *Ss = Ms + NM_GGML_FA_ROWS, *acc = Ss + NM_GGML_FA_ROWS; /* rows × hd */
    for (int r = 0; r < n_rows; r++) {
        Ms[r] = -INFINITY;
        Ss[r] = 0.0f;
        for (int d = 0; d < hd; d++) acc[(size_t)r * hd + d] = 0.0f;
    }
    const int n_kv_last = n_kv0 + n_rows - 1;
    for (int ic = 0; ic < n_kv_last; ic += T) {
        const int kv_tile = n_kv_last - ic < T ? n_kv_last - ic : T;
        for (int j = 0; j < kv_tile; j++) {
            const uint16_t *kr = k + (size_t)(ic + j) * kv_stride, *vr = v + (size_t)(ic + j) * kv_stride;
            for (int d = 0; d < hd; d++) kt[(size_t)d * T + j] = H2F(kr[d]);
            for (int d = 0; d < hd; d++) vt[(size_t)j * hd + d] = H2F(vr[d]);
        }
        for (int r = 0; r < n_rows; r++) {
            const int n_kv = n_kv0 + r;
            if (ic >= n_kv) continue; /* the whole tile is masked for this row */
            const int kv = n_kv - ic < T ? n_kv - ic : T;
            const float *qr = q + (size_t)r * q_stride;
            float *ar = acc + (size_t)r * hd;
            for (int j = 0; j < T; j++) kq[j] = 0.0f;
            for (int d = 0; d < hd; d++) {
                const float qd = qr[d];
                const float *kd = kt + (size_t)d * T;
                for (int j = 0; j < kv; j++) kq[j] = fmaf(qd, kd[j], kq[j]);
            }
            float tmax = -INFINITY;
            for (int j = 0; j < kv; j++) {
                kq[j] *= scale;
                tmax = kq[j] > tmax ? kq[j] : tmax;
            }
            for (int j = kv; j < T; j++) kq[j] = -INFINITY;
            const float M = Ms[r], Mnew = fmaxf(M, tmax);
            if (Mnew > M) {
                const float ms = expf(M - Mnew);
                for (int d = 0; d < hd; d++) ar[d] *= ms;
                Ss[r] *= ms;
            }
            Ms[r] = Mnew;
            double sum = 0.0;
            for (int j = 0; j < T; j += 8) {
                float e8[8];
                for (int l = 0; l < 8; l++) e8[l] = OPS(expf_lane)(kq[j + l] - Mnew);
                for (int l = 0; l < 8; l++) kq[j + l] = e8[l];
                sum += (double)OPS(hsum8)(e8);
            }
            Ss[r] = (float)((double)Ss[r] + sum);
            /* keys past the row's last one have p = 0: fmaf(0, v, acc) would leave acc as it is */
            for (int j = 0; j < kv; j++) {
                const float p = kq[j];
                const float *vf = vt + (size_t)j * hd;
                for (int d = 0; d < hd; d++) ar[d] = fmaf(p, vf[d], ar[d]);
            }
        }
    }
    for (int r = 0; r < n_rows; r++) {
        const float inv = Ss[r] == 0.0f ? 0.0f : 1.0f / Ss[r];
        float *o = out + (size_t)r * out_stride;
        for (int d = 0; d < hd; d++) o[d] = acc[(size_t)r * hd + d] * inv;
    }
}

/* ---- one-row kernel (ggml_compute_forward_flash_attn_ext_f16_one_chunk), F16 V ----
 * q is rounded to f16; each score is ggml_vec_dot_f16 (four 8-lane fused multiply-add
 * accumulators over steps of 32, reduced (0+2)+(1+3), then the 8 lanes as hi+lo and two
 * horizontal adds; a tail past a multiple of 32 adds in double). The output accumulates in f16:
 * each step rounds fmaf(v, vs, acc) to f16; a new maximum rescales it by expf(Mold − M). */
static float OPS(dot_f16)(int n, const uint16_t *x, const uint16_t *y) {
    float sum[4][8];
    memset(sum, 0, sizeof sum);
    const int np = n & ~31;
    for (int i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++)
                sum[j][l] = fmaf(H2F(x[i + 8 * j + l]), H2F(y[i + 8 * j + l]), sum[j][l]);
    float x0[8];
    for (int l = 0; l < 8; l++) x0[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
    float t[4];
    for (int l = 0; l < 4; l++) t[l] = x0[l] + x0[l + 4];
    double s = (double)((t[0] + t[1]) + (t[2] + t[3]));
    for (int i = np; i < n; i++) s += (double)(H2F(x[i]) * H2F(y[i]));
    return (float)s;
}

static void OPS(fa_rows)(int hd, int n_rows, const float *q, size_t q_stride, const uint16_t *k, const uint16_t *v,
                         size_t kv_stride, int n_kv0, float scale, float *out, size_t out_stride, float *scratch) {
    uint16_t *qh = (uint16_t *)scratch;
    uint16_t *acc = qh + hd;
    for (int r = 0; r < n_rows; r++) {
        const float *qr = q + (size_t)r * q_stride;
        for (int d = 0; d < hd; d++) qh[d] = F2H(qr[d]);
        for (int d = 0; d < hd; d++) acc[d] = 0;
        float M = -INFINITY, S = 0.0f;
        const int n_kv = n_kv0 + r;
        for (int p = 0; p < n_kv; p++) {
            float s = OPS(dot_f16)(hd, k + (size_t)p * kv_stride, qh) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > M) {
                const float Mold = M;
                M = s;
                ms = expf(Mold - M);
                for (int d = 0; d < hd; d++) acc[d] = F2H(H2F(acc[d]) * ms);
            } else {
                vs = expf(s - M);
            }
            const uint16_t *vr = v + (size_t)p * kv_stride;
            for (int d = 0; d < hd; d++) acc[d] = F2H(fmaf(H2F(vr[d]), vs, H2F(acc[d])));
            S = S * ms + vs;
        }
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        float *o = out + (size_t)r * out_stride;
        for (int d = 0; d < hd; d++) o[d] = H2F(acc[d]) * inv;
    }
}
