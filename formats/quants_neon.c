/* NEON (arm64) quantization and dequantization kernels, byte-identical to the scalar reference
 * (tests/arm64/quants_arm64.c runs the comparison under qemu: `make test-arm64`).
 *
 * Exactness rules as in quants_avx2.c, plus two arm64 specifics: FMIN/FMAX order -0.0 below
 * +0.0, unlike the reference's `x < min ? x : min`, so running minima use compare-and-select;
 * and GCC contracts a*b+c into FMLA unless -ffp-contract=off (the Makefile sets it).
 * The K-quant searches run one sub-block per lane, 4 sub-blocks at a time. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "formats/quants_simd.h"
#include "formats/tensor.h"

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) {
    return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static inline int32x4_t v_nearest(float32x4_t f) {
    int32x4_t i = vreinterpretq_s32_f32(vaddq_f32(f, vdupq_n_f32(12582912.f)));
    return vsubq_s32(vandq_s32(i, vdupq_n_s32(0x007fffff)), vdupq_n_s32(0x00400000));
}

static inline float absmax32(const float32x4_t *v) {
    float32x4_t m = vabsq_f32(v[0]);
    for (int k = 1; k < 8; k++)
        m = vmaxq_f32(m, vabsq_f32(v[k]));
    return vmaxvq_f32(m);
}

static inline float signed_absmax32(const float *x, const float32x4_t *v) {
    const float amax = absmax32(v);
    if (amax == 0)
        return 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) == amax)
            return x[j];
    return 0;
}

static inline float first_zero(const float *x) {
    for (int j = 0; j < 32; j++)
        if (x[j] == 0)
            return x[j];
    return 0;
}

static inline void min_max32(const float *x, const float32x4_t *v, float *mn, float *mx) {
    float32x4_t a = v[0], b = v[0];
    for (int k = 1; k < 8; k++) {
        a = vminq_f32(a, v[k]);
        b = vmaxq_f32(b, v[k]);
    }
    *mn = vminvq_f32(a);
    *mx = vmaxvq_f32(b);
    if (*mn == 0) /* the reference keeps the first of equal zeros */
        *mn = first_zero(x);
    if (*mx == 0)
        *mx = first_zero(x);
}

static inline void load32(const float *x, float32x4_t *v) {
    for (int k = 0; k < 8; k++)
        v[k] = vld1q_f32(x + 4 * k);
}

/* byte j = q[j] | q[j+16] << 4 from 8 vectors of 4 levels (0..15). */
static inline void store_nibbles(uint8_t *dst, const int32x4_t *q) {
    uint16x8_t lo = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(vorrq_s32(q[0], vshlq_n_s32(q[4], 4)))),
                                 vmovn_u32(vreinterpretq_u32_s32(vorrq_s32(q[1], vshlq_n_s32(q[5], 4)))));
    uint16x8_t hi = vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(vorrq_s32(q[2], vshlq_n_s32(q[6], 4)))),
                                 vmovn_u32(vreinterpretq_u32_s32(vorrq_s32(q[3], vshlq_n_s32(q[7], 4)))));
    vst1q_u8(dst, vcombine_u8(vmovn_u16(lo), vmovn_u16(hi)));
}

static inline uint32_t high_bits(const int32x4_t *q) {
    static const int32_t weights[4] = {1, 2, 4, 8};
    const int32x4_t w = vld1q_s32(weights);
    uint32_t qh = 0;
    for (int k = 0; k < 8; k++) {
        int32x4_t b = vandq_s32(vshrq_n_s32(q[k], 4), vdupq_n_s32(1));
        qh |= (uint32_t)vaddvq_s32(vmulq_s32(b, w)) << (4 * k);
    }
    return qh;
}

/* ---- legacy quantizers ---- */

static void q4_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q4_0)(x, y, n, qw);
        return;
    }
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 18) {
        float32x4_t v[8];
        load32(x, v);
        const float max = signed_absmax32(x, v);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        int32x4_t q[8];
        for (int k = 0; k < 8; k++)
            q[k] = vminq_s32(vcvtq_s32_f32(vaddq_f32(vmulq_n_f32(v[k], id), vdupq_n_f32(8.5f))), vdupq_n_s32(15));
        store_nibbles(y + 2, q);
    }
}

static void q5_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q5_0)(x, y, n, qw);
        return;
    }
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 22) {
        float32x4_t v[8];
        load32(x, v);
        const float max = signed_absmax32(x, v);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        int32x4_t q[8], lo[8];
        for (int k = 0; k < 8; k++) {
            q[k] = vminq_s32(vcvtq_s32_f32(vaddq_f32(vmulq_n_f32(v[k], id), vdupq_n_f32(16.5f))), vdupq_n_s32(31));
            lo[k] = vandq_s32(q[k], vdupq_n_s32(15));
        }
        uint32_t qh = high_bits(q);
        memcpy(y + 2, &qh, 4);
        store_nibbles(y + 6, lo);
    }
}

static void q4_1_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q4_1)(x, y, n, qw);
        return;
    }
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 20) {
        float32x4_t v[8];
        load32(x, v);
        float min, max;
        min_max32(x, v, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        put_f16(y + 2, min);
        int32x4_t q[8];
        for (int k = 0; k < 8; k++)
            q[k] = vminq_s32(vcvtq_s32_f32(vaddq_f32(vmulq_n_f32(vsubq_f32(v[k], vdupq_n_f32(min)), id),
                                                     vdupq_n_f32(0.5f))),
                             vdupq_n_s32(15));
        store_nibbles(y + 4, q);
    }
}

static void q5_1_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) {
        nm_quants_ref_quantizer(GGML_TYPE_Q5_1)(x, y, n, qw);
        return;
    }
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 24) {
        float32x4_t v[8];
        load32(x, v);
        float min, max;
        min_max32(x, v, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        put_f16(y + 2, min);
        int32x4_t q[8], lo[8];
        for (int k = 0; k < 8; k++) {
            q[k] = vandq_s32(vcvtq_s32_f32(vaddq_f32(vmulq_n_f32(vsubq_f32(v[k], vdupq_n_f32(min)), id),
                                                     vdupq_n_f32(0.5f))),
                             vdupq_n_s32(0xFF));
            lo[k] = vandq_s32(q[k], vdupq_n_s32(15));
        }
        uint32_t qh = high_bits(q);
        memcpy(y + 4, &qh, 4);
        store_nibbles(y + 8, lo);
    }
}

static void q8_0_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 34) {
        float32x4_t v[8];
        load32(x, v);
        const float amax = absmax32(v);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int k = 0; k < 8; k += 2) {
            /* vrndaq = roundf: nearest, ties away from zero */
            int32x4_t a = vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(v[k], id)));
            int32x4_t c = vcvtq_s32_f32(vrndaq_f32(vmulq_n_f32(v[k + 1], id)));
            int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(c));
            vst1_s8((int8_t *)(y + 2 + 4 * k), vmovn_s16(h));
        }
    }
}

/* ---- K-quant searches, one sub-block per lane (4 lanes) ---- */

static inline float32x4_t sel(uint32x4_t m, float32x4_t a, float32x4_t b) {
    return vbslq_f32(m, a, b);
}

static void v_make_qkx(const float32x4_t *X, const float32x4_t *W, int nmax, float rmin, float rdelta, int nstep,
                       int degenerate_le, int32x4_t *L, float32x4_t *scale_out, float32x4_t *the_min_out) {
    const float32x4_t zero = vdupq_n_f32(0);
    const int32x4_t izero = vdupq_n_s32(0), inmax = vdupq_n_s32(nmax);
    float32x4_t mn = X[0], mx = X[0], sum_w = W[0], sum_x = vmulq_f32(W[0], X[0]);
    for (int i = 1; i < 32; i++) {
        mn = sel(vcltq_f32(X[i], mn), X[i], mn);
        mx = sel(vcgtq_f32(X[i], mx), X[i], mx);
        sum_w = vaddq_f32(sum_w, W[i]);
        sum_x = vaddq_f32(sum_x, vmulq_f32(W[i], X[i]));
    }
    mn = sel(vcgtq_f32(mn, zero), zero, mn);
    const uint32x4_t degenerate = degenerate_le ? vcleq_f32(mx, mn) : vceqq_f32(mx, mn);
    const float32x4_t iscale = vdivq_f32(vdupq_n_f32((float)nmax), vsubq_f32(mx, mn));
    float32x4_t scale = vdivq_f32(vdupq_n_f32(1.0f), iscale);
    float32x4_t best = zero;
    for (int i = 0; i < 32; i++) {
        int32x4_t l = vminq_s32(vmaxq_s32(v_nearest(vmulq_f32(iscale, vsubq_f32(X[i], mn))), izero), inmax);
        L[i] = l;
        float32x4_t diff = vsubq_f32(vaddq_f32(vmulq_f32(scale, vcvtq_f32_s32(l)), mn), X[i]);
        best = vaddq_f32(best, vmulq_f32(W[i], vmulq_f32(diff, diff)));
    }
    for (int is = 0; is <= nstep; is++) {
        const float num = rmin + rdelta * (float)is + (float)nmax;
        const float32x4_t isc = vdivq_f32(vdupq_n_f32(num), vsubq_f32(mx, mn));
        float32x4_t sum_l = zero, sum_l2 = zero, sum_xl = zero;
        int32x4_t Laux[32];
        for (int i = 0; i < 32; i++) {
            int32x4_t l = vminq_s32(vmaxq_s32(v_nearest(vmulq_f32(isc, vsubq_f32(X[i], mn))), izero), inmax);
            Laux[i] = l;
            const float32x4_t fl = vcvtq_f32_s32(l);
            const float32x4_t wl = vmulq_f32(W[i], fl);
            sum_l = vaddq_f32(sum_l, wl);
            sum_l2 = vaddq_f32(sum_l2, vmulq_f32(wl, fl));
            sum_xl = vaddq_f32(sum_xl, vmulq_f32(wl, X[i]));
        }
        const float32x4_t D = vsubq_f32(vmulq_f32(sum_w, sum_l2), vmulq_f32(sum_l, sum_l));
        uint32x4_t ok = vbicq_u32(vcgtq_f32(D, zero), degenerate);
        if (!vmaxvq_u32(ok))
            continue;
        float32x4_t this_scale = vdivq_f32(vsubq_f32(vmulq_f32(sum_w, sum_xl), vmulq_f32(sum_x, sum_l)), D);
        float32x4_t this_min = vdivq_f32(vsubq_f32(vmulq_f32(sum_l2, sum_x), vmulq_f32(sum_l, sum_xl)), D);
        const uint32x4_t pos = vcgtq_f32(this_min, zero);
        if (vmaxvq_u32(pos)) {
            this_min = sel(pos, zero, this_min);
            this_scale = sel(pos, vdivq_f32(sum_xl, sum_l2), this_scale);
        }
        float32x4_t cur = zero;
        for (int i = 0; i < 32; i++) {
            float32x4_t diff = vsubq_f32(vaddq_f32(vmulq_f32(this_scale, vcvtq_f32_s32(Laux[i])), this_min), X[i]);
            cur = vaddq_f32(cur, vmulq_f32(W[i], vmulq_f32(diff, diff)));
        }
        ok = vandq_u32(ok, vcltq_f32(cur, best));
        if (!vmaxvq_u32(ok))
            continue;
        for (int i = 0; i < 32; i++)
            L[i] = vbslq_s32(ok, Laux[i], L[i]);
        best = sel(ok, cur, best);
        scale = sel(ok, this_scale, scale);
        mn = sel(ok, this_min, mn);
    }
    if (vmaxvq_u32(degenerate)) {
        for (int i = 0; i < 32; i++)
            L[i] = vbslq_s32(degenerate, izero, L[i]);
        scale = sel(degenerate, zero, scale);
    }
    *scale_out = scale;
    *the_min_out = vnegq_f32(mn);
}

static void qk_block(const float *x, uint8_t *y, const float *qw, int nmax) {
    float scales[8], mins[8], sw[8];
    uint8_t L[256];
    float sig2 = 0;
    if (qw) {
        float sum_x2 = 0;
        for (int l = 0; l < 256; l++)
            sum_x2 += x[l] * x[l];
        sig2 = 2 * sum_x2 / 256;
    }
    for (int g = 0; g < 2; g++) {
        float32x4_t X[32], W[32], vscale, vmin;
        int32x4_t Lv[32];
        for (int i = 0; i < 32; i++) {
            float t[4];
            for (int j = 0; j < 4; j++)
                t[j] = x[32 * (4 * g + j) + i];
            X[i] = vld1q_f32(t);
        }
        if (!qw) {
            float32x4_t sum_x2 = vdupq_n_f32(0);
            for (int i = 0; i < 32; i++)
                sum_x2 = vaddq_f32(sum_x2, vmulq_f32(X[i], X[i]));
            const float32x4_t av_x = vsqrtq_f32(vdivq_f32(sum_x2, vdupq_n_f32(32.f)));
            for (int i = 0; i < 32; i++)
                W[i] = vaddq_f32(av_x, vabsq_f32(X[i]));
            v_make_qkx(X, W, nmax, nmax == 15 ? -1.f : -0.5f, 0.1f, nmax == 15 ? 20 : 15, 0, Lv, &vscale, &vmin);
        } else {
            float32x4_t sumw = vdupq_n_f32(0);
            for (int i = 0; i < 32; i++) {
                float t[4];
                for (int j = 0; j < 4; j++)
                    t[j] = qw[32 * (4 * g + j) + i];
                W[i] = vmulq_f32(vld1q_f32(t), vsqrtq_f32(vaddq_f32(vdupq_n_f32(sig2), vmulq_f32(X[i], X[i]))));
                sumw = vaddq_f32(sumw, W[i]);
            }
            vst1q_f32(sw + 4 * g, sumw);
            v_make_qkx(X, W, nmax, -0.9f, 0.05f, 36, 1, Lv, &vscale, &vmin);
        }
        vst1q_f32(scales + 4 * g, vscale);
        vst1q_f32(mins + 4 * g, vmin);
        for (int i = 0; i < 32; i++) {
            int32_t lanes[4];
            vst1q_s32(lanes, Lv[i]);
            for (int j = 0; j < 4; j++)
                L[32 * (4 * g + j) + i] = (uint8_t)lanes[j];
        }
    }
    if (qw)
        nm_q4k_finish_path_b(x, y, scales, mins, sw, L, nmax);
    else
        nm_q4k_finish_path_a(x, y, scales, mins, L, nmax);
}

static void q4_k_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++)
        qk_block(x + 256 * b, y + 144 * b, qw ? qw + 256 * b : NULL, 15);
}
static void q5_k_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++)
        qk_block(x + 256 * b, y + 176 * b, qw ? qw + 256 * b : NULL, 31);
}

/* make_qx (rmse_type 1, nmax 32) over 4 sub-blocks of 16. */
static void v_make_qx16(const float32x4_t *X, const float32x4_t *QW, int32x4_t *L, float32x4_t *scale_out) {
    const int nmax = 32;
    const float32x4_t zero = vdupq_n_f32(0);
    const int32x4_t lo = vdupq_n_s32(-nmax), hi = vdupq_n_s32(nmax - 1), off = vdupq_n_s32(nmax);
    float32x4_t amax = zero, max = zero, W[16];
    for (int i = 0; i < 16; i++) {
        const float32x4_t ax = vabsq_f32(X[i]);
        const uint32x4_t gt = vcgtq_f32(ax, amax);
        amax = sel(gt, ax, amax);
        max = sel(gt, X[i], max);
        W[i] = QW ? QW[i] : vmulq_f32(X[i], X[i]);
    }
    const uint32x4_t tiny = vcltq_f32(amax, vdupq_n_f32(1e-15f));
    float32x4_t iscale = vdivq_f32(vdupq_n_f32((float)-nmax), max);
    float32x4_t sumlx = zero, suml2 = zero;
    for (int i = 0; i < 16; i++) {
        int32x4_t l = vminq_s32(vmaxq_s32(v_nearest(vmulq_f32(iscale, X[i])), lo), hi);
        L[i] = vaddq_s32(l, off);
        const float32x4_t fl = vcvtq_f32_s32(l);
        sumlx = vaddq_f32(sumlx, vmulq_f32(vmulq_f32(W[i], X[i]), fl));
        suml2 = vaddq_f32(suml2, vmulq_f32(vmulq_f32(W[i], fl), fl));
    }
    float32x4_t scale = sel(vceqq_f32(suml2, zero), zero, vdivq_f32(sumlx, suml2));
    float32x4_t best = vmulq_f32(scale, sumlx);
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        const float num = -((float)nmax + 0.1f * (float)is);
        iscale = vdivq_f32(vdupq_n_f32(num), max);
        int32x4_t Lt[16];
        sumlx = suml2 = zero;
        for (int i = 0; i < 16; i++) {
            int32x4_t l = vminq_s32(vmaxq_s32(v_nearest(vmulq_f32(iscale, X[i])), lo), hi);
            Lt[i] = l;
            const float32x4_t fl = vcvtq_f32_s32(l);
            sumlx = vaddq_f32(sumlx, vmulq_f32(vmulq_f32(W[i], X[i]), fl));
            suml2 = vaddq_f32(suml2, vmulq_f32(vmulq_f32(W[i], fl), fl));
        }
        const uint32x4_t ok =
            vandq_u32(vcgtq_f32(suml2, zero), vcgtq_f32(vmulq_f32(sumlx, sumlx), vmulq_f32(best, suml2)));
        if (!vmaxvq_u32(ok))
            continue;
        for (int i = 0; i < 16; i++)
            L[i] = vbslq_s32(ok, vaddq_s32(Lt[i], off), L[i]);
        scale = sel(ok, vdivq_f32(sumlx, suml2), scale);
        best = sel(ok, vmulq_f32(scale, sumlx), best);
    }
    if (vmaxvq_u32(tiny)) {
        for (int i = 0; i < 16; i++)
            L[i] = vbslq_s32(tiny, vdupq_n_s32(0), L[i]);
        scale = sel(tiny, zero, scale);
    }
    *scale_out = scale;
}

static void q6_k_row(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        const float *qb = qw ? qw + 256 * b : NULL;
        float scales[16];
        int8_t L[256];
        for (int g = 0; g < 4; g++) {
            float32x4_t X[16], QW[16], vscale;
            int32x4_t Lv[16];
            for (int i = 0; i < 16; i++) {
                float t[4], u[4];
                for (int j = 0; j < 4; j++) {
                    t[j] = xb[16 * (4 * g + j) + i];
                    u[j] = qb ? qb[16 * (4 * g + j) + i] : 0;
                }
                X[i] = vld1q_f32(t);
                QW[i] = vld1q_f32(u);
            }
            v_make_qx16(X, qb ? QW : NULL, Lv, &vscale);
            vst1q_f32(scales + 4 * g, vscale);
            for (int i = 0; i < 16; i++) {
                int32_t lanes[4];
                vst1q_s32(lanes, Lv[i]);
                for (int j = 0; j < 4; j++)
                    L[16 * (4 * g + j) + i] = (int8_t)lanes[j];
            }
        }
        nm_q6k_finish(xb, y + 210 * b, scales, L);
    }
}

/* ---- dequantization ---- */

/* 8 bytes -> two int32x4 (low nibble, high nibble, or the whole byte with shift < 0). */
static inline void u8x8_to_s32(const uint8_t *p, int shift, int32x4_t *a, int32x4_t *b) {
    uint8x8_t v = vld1_u8(p);
    if (shift == 0)
        v = vand_u8(v, vdup_n_u8(15));
    else if (shift == 4)
        v = vshr_n_u8(v, 4);
    uint16x8_t w = vmovl_u8(v);
    *a = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w)));
    *b = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(w)));
}

static void dq_q4_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 18, y += 32) {
        const float d = get_f16(x);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++) {
                int32x4_t a, c;
                u8x8_to_s32(x + 2 + 8 * k, 4 * h, &a, &c);
                vst1q_f32(y + 16 * h + 8 * k, vmulq_n_f32(vcvtq_f32_s32(vsubq_s32(a, vdupq_n_s32(8))), d));
                vst1q_f32(y + 16 * h + 8 * k + 4, vmulq_n_f32(vcvtq_f32_s32(vsubq_s32(c, vdupq_n_s32(8))), d));
            }
    }
}

static void dq_q4_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 20, y += 32) {
        const float d = get_f16(x);
        const float32x4_t m = vdupq_n_f32(get_f16(x + 2));
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++) {
                int32x4_t a, c;
                u8x8_to_s32(x + 4 + 8 * k, 4 * h, &a, &c);
                vst1q_f32(y + 16 * h + 8 * k, vaddq_f32(vmulq_n_f32(vcvtq_f32_s32(a), d), m));
                vst1q_f32(y + 16 * h + 8 * k + 4, vaddq_f32(vmulq_n_f32(vcvtq_f32_s32(c), d), m));
            }
    }
}

static inline int32x4_t qh4(uint32_t qh, int j) {
    static const int32_t sh[4] = {0, -1, -2, -3};
    int32x4_t s = vaddq_s32(vld1q_s32(sh), vdupq_n_s32(-j)); /* shift right by j..j+3 */
    uint32x4_t v = vshlq_u32(vdupq_n_u32(qh), s);
    return vreinterpretq_s32_u32(vshlq_n_u32(vandq_u32(v, vdupq_n_u32(1)), 4));
}

static void dq_q5_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 22, y += 32) {
        const float d = get_f16(x);
        uint32_t qh;
        memcpy(&qh, x + 2, 4);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++) {
                int32x4_t a, c;
                u8x8_to_s32(x + 6 + 8 * k, 4 * h, &a, &c);
                a = vsubq_s32(vorrq_s32(a, qh4(qh, 16 * h + 8 * k)), vdupq_n_s32(16));
                c = vsubq_s32(vorrq_s32(c, qh4(qh, 16 * h + 8 * k + 4)), vdupq_n_s32(16));
                vst1q_f32(y + 16 * h + 8 * k, vmulq_n_f32(vcvtq_f32_s32(a), d));
                vst1q_f32(y + 16 * h + 8 * k + 4, vmulq_n_f32(vcvtq_f32_s32(c), d));
            }
    }
}

static void dq_q5_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 24, y += 32) {
        const float d = get_f16(x);
        const float32x4_t m = vdupq_n_f32(get_f16(x + 2));
        uint32_t qh;
        memcpy(&qh, x + 4, 4);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++) {
                int32x4_t a, c;
                u8x8_to_s32(x + 8 + 8 * k, 4 * h, &a, &c);
                a = vorrq_s32(a, qh4(qh, 16 * h + 8 * k));
                c = vorrq_s32(c, qh4(qh, 16 * h + 8 * k + 4));
                vst1q_f32(y + 16 * h + 8 * k, vaddq_f32(vmulq_n_f32(vcvtq_f32_s32(a), d), m));
                vst1q_f32(y + 16 * h + 8 * k + 4, vaddq_f32(vmulq_n_f32(vcvtq_f32_s32(c), d), m));
            }
    }
}

static inline void i8x8_store(const uint8_t *p, float d, float *y) {
    int16x8_t w = vmovl_s8(vld1_s8((const int8_t *)p));
    float32x4_t a = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), b = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
    const float32x4_t vd = vdupq_n_f32(d);
    vst1q_f32(y, vmulq_f32(a, vd));
    vst1q_f32(y + 4, vmulq_f32(b, vd));
}

static void dq_q8_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 34, y += 32) {
        const float d = get_f16(x);
        for (int k = 0; k < 4; k++)
            i8x8_store(x + 2 + 8 * k, d, y + 8 * k);
    }
}

static void dq_q8_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 36, y += 32) {
        const float d = get_f16(x);
        for (int k = 0; k < 4; k++)
            i8x8_store(x + 4 + 8 * k, d, y + 8 * k);
    }
}

static void dq_q8_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 292, y += 256) {
        float d;
        memcpy(&d, x, 4);
        for (int k = 0; k < 32; k++)
            i8x8_store(x + 4 + 8 * k, d, y + 8 * k);
    }
}

static inline void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dq_q4_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 144) {
        const float d = get_f16(x), min = get_f16(x + 2);
        const uint8_t *q = x + 16;
        for (int c = 0; c < 4; c++, q += 32) {
            for (int h = 0; h < 2; h++, y += 32) {
                int sc, m;
                scale_min_k4(2 * c + h, x + 4, &sc, &m);
                const float32x4_t d1 = vdupq_n_f32(d * (float)sc), m1 = vdupq_n_f32(min * (float)m);
                for (int k = 0; k < 4; k++) {
                    int32x4_t a, e;
                    u8x8_to_s32(q + 8 * k, 4 * h, &a, &e);
                    vst1q_f32(y + 8 * k, vsubq_f32(vmulq_f32(d1, vcvtq_f32_s32(a)), m1));
                    vst1q_f32(y + 8 * k + 4, vsubq_f32(vmulq_f32(d1, vcvtq_f32_s32(e)), m1));
                }
            }
        }
    }
}

static void dq_q5_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 176) {
        const float d = get_f16(x), min = get_f16(x + 2);
        const uint8_t *qh = x + 16, *ql = x + 48;
        for (int c = 0; c < 4; c++, ql += 32) {
            for (int h = 0; h < 2; h++, y += 32) {
                int sc, m;
                scale_min_k4(2 * c + h, x + 4, &sc, &m);
                const float32x4_t d1 = vdupq_n_f32(d * (float)sc), m1 = vdupq_n_f32(min * (float)m);
                const int32x4_t bit = vdupq_n_s32(1 << (2 * c + h));
                for (int k = 0; k < 4; k++) {
                    int32x4_t a, e, ha, he;
                    u8x8_to_s32(ql + 8 * k, 4 * h, &a, &e);
                    u8x8_to_s32(qh + 8 * k, -1, &ha, &he);
                    a = vaddq_s32(a, vandq_s32(vreinterpretq_s32_u32(vtstq_s32(ha, bit)), vdupq_n_s32(16)));
                    e = vaddq_s32(e, vandq_s32(vreinterpretq_s32_u32(vtstq_s32(he, bit)), vdupq_n_s32(16)));
                    vst1q_f32(y + 8 * k, vsubq_f32(vmulq_f32(d1, vcvtq_f32_s32(a)), m1));
                    vst1q_f32(y + 8 * k + 4, vsubq_f32(vmulq_f32(d1, vcvtq_f32_s32(e)), m1));
                }
            }
        }
    }
}

static void dq_q6_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 210) {
        const float d = get_f16(x + 208);
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l += 4) {
                const int is = l / 16;
                int32_t h[4], a[4], c[4];
                for (int t = 0; t < 4; t++) {
                    h[t] = qh[l + t];
                    a[t] = ql[l + t];
                    c[t] = ql[l + 32 + t];
                }
                const int32x4_t H = vld1q_s32(h), A = vld1q_s32(a), C = vld1q_s32(c);
                const int32x4_t three = vdupq_n_s32(3), f = vdupq_n_s32(15), off = vdupq_n_s32(32);
                const int32x4_t q[4] = {
                    vsubq_s32(vorrq_s32(vandq_s32(A, f), vshlq_n_s32(vandq_s32(H, three), 4)), off),
                    vsubq_s32(vorrq_s32(vandq_s32(C, f), vshlq_n_s32(vandq_s32(vshrq_n_s32(H, 2), three), 4)), off),
                    vsubq_s32(vorrq_s32(vshrq_n_s32(A, 4), vshlq_n_s32(vandq_s32(vshrq_n_s32(H, 4), three), 4)), off),
                    vsubq_s32(vorrq_s32(vshrq_n_s32(C, 4), vshlq_n_s32(vandq_s32(vshrq_n_s32(H, 6), three), 4)), off),
                };
                for (int r = 0; r < 4; r++)
                    vst1q_f32(y + 32 * r + l, vmulq_f32(vdupq_n_f32(d * (float)sc[is + 2 * r]), vcvtq_f32_s32(q[r])));
            }
        }
    }
}

/* ---- dispatch tables ---- */

int64_t nm_find_nonfinite_neon(const float *x, int64_t n) {
    const uint32x4_t expmask = vdupq_n_u32(0x7F800000);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint32x4_t any = vdupq_n_u32(0);
        for (int k = 0; k < 4; k++)
            any = vorrq_u32(any, vceqq_u32(vandq_u32(vld1q_u32((const uint32_t *)(x + i + 4 * k)), expmask), expmask));
        if (vmaxvq_u32(any))
            break;
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7F800000u) == 0x7F800000u)
            return i;
    }
    return -1;
}

nm_qrow_fn nm_quants_neon_quantizer(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q4_0: return q4_0_row;
    case GGML_TYPE_Q4_1: return q4_1_row;
    case GGML_TYPE_Q5_0: return q5_0_row;
    case GGML_TYPE_Q5_1: return q5_1_row;
    case GGML_TYPE_Q8_0: return q8_0_row;
    case GGML_TYPE_Q4_K: return q4_k_row;
    case GGML_TYPE_Q5_K: return q5_k_row;
    case GGML_TYPE_Q6_K: return q6_k_row;
    default: return NULL;
    }
}

nm_dqrow_fn nm_quants_neon_dequantizer(uint32_t type) {
    switch (type) {
    case GGML_TYPE_Q4_0: return dq_q4_0;
    case GGML_TYPE_Q4_1: return dq_q4_1;
    case GGML_TYPE_Q5_0: return dq_q5_0;
    case GGML_TYPE_Q5_1: return dq_q5_1;
    case GGML_TYPE_Q8_0: return dq_q8_0;
    case GGML_TYPE_Q8_1: return dq_q8_1;
    case GGML_TYPE_Q4_K: return dq_q4_k;
    case GGML_TYPE_Q5_K: return dq_q5_k;
    case GGML_TYPE_Q6_K: return dq_q6_k;
    case GGML_TYPE_Q8_K: return dq_q8_k;
    default: return NULL;
    }
}
