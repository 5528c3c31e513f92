/* Scalar reference K-quants: Q4_K, Q5_K, Q6_K and the Q8_K activation format (FORMATS.md §4).
 * The helper searches follow §4.3 to the letter, operand order included: `w*l*x` is (w*l)*x. */
#include "formats/quants_simd.h"
#include "formats/tensor.h"

#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float get_f16(const uint8_t *p) {
    return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* make_qkx2 (flags 0; Q2_K: NM_QKX_MAD) and make_qkx3 with weights (NM_QKX_DEGENERATE_LE). */
float nm_make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                   uint8_t *Laux, float rmin, float rdelta, int nstep, int flags) {
    const bool mad = flags & NM_QKX_MAD;
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if ((flags & NM_QKX_DEGENERATE_LE) ? max <= min : max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        int l = nm_nearest_int(iscale * (x[i] - min));
        l = l < 0 ? 0 : l > nmax ? nmax : l;
        L[i] = (uint8_t)l;
        float diff = scale * (float)L[i] + min - x[i];
        diff = mad ? fabsf(diff) : diff * diff;
        best += w[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nm_nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            const float fl = (float)l;
            sum_l += w[i] * fl;
            sum_l2 += w[i] * fl * fl;
            sum_xl += w[i] * fl * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = mad ? fabsf(diff) : diff * diff;
                cur += w[i] * diff;
            }
            if (cur < best) {
                memcpy(L, Laux, (size_t)n);
                best = cur;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

float nm_make_qp(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++)
        max = max > x[i] ? max : x[i];
    if (max < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)nm_nearest_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * (float)L[i];
        best += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0)
            continue;
        float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = nm_nearest_int(iscale_is * x[i]);
            l = l < nmax ? l : nmax;
            float diff = x[i] - scale_is * (float)l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best) {
            best = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nm_nearest_int(iscale * x[i]);
        l = l < nmax ? l : nmax;
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * (float)l;
        suml2 += qw[i] * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = nm_nearest_int(x[i] * sl2 / slx);
                new_l = new_l < nmax ? new_l : nmax;
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* make_qx_quants with rmse_type 1: weights qw, or x^2 when qw is NULL. */
float nm_make_qx(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nm_nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nm_nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nm_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ---- Q4_K / Q5_K (§4.4) ---- */

static void pack_scales(uint8_t *sc, const uint8_t *ls, const uint8_t *lm) {
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static inline void get_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Steps 6-7: re-quantize against the stored scales, then pack (Q4_K when nmax = 15, else Q5_K). */
static void qk_requant_pack(const float *x, uint8_t *y, uint8_t *L, int nmax) {
    const float d_all = get_f16(y), dmin_all = get_f16(y + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        get_scale_min(j, y + 4, &sc, &m);
        const float d = d_all * (float)sc;
        if (!d)
            continue;
        const float dm = dmin_all * (float)m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nm_nearest_int((x[32 * j + ii] + dm) / d);
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            L[32 * j + ii] = (uint8_t)l;
        }
    }
    if (nmax == 15) {
        uint8_t *q = y + 16;
        for (int j = 0; j < 256; j += 64, q += 32)
            for (int l = 0; l < 32; l++)
                q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    } else {
        uint8_t *qh = y + 16, *ql = y + 48;
        memset(qh, 0, 32);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < 256; n += 64, ql += 32) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | l2 << 4);
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

void nm_qk_set_scales_a(uint8_t *y, const float *scales, const float *mins) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        uint8_t a = (uint8_t)nm_nearest_int(inv_scale * scales[j]);
        uint8_t b = (uint8_t)nm_nearest_int(inv_min * mins[j]);
        ls[j] = a < 63 ? a : 63;
        lm[j] = b < 63 ? b : 63;
    }
    pack_scales(y + 4, ls, lm);
    put_f16(y, max_scale / 63.f);
    put_f16(y + 2, max_min / 63.f);
}

void nm_qk_set_scales_b(uint8_t *y, const float *scales, const float *mins, const float *sw) {
    uint8_t ls[8], lm[8];
    const float d_block = nm_make_qp(8, 63, scales, ls, sw);
    const float m_block = nm_make_qp(8, 63, mins, lm, sw);
    for (int j = 0; j < 8; j++) {
        ls[j] = ls[j] < 63 ? ls[j] : 63;
        lm[j] = lm[j] < 63 ? lm[j] : 63;
    }
    pack_scales(y + 4, ls, lm);
    put_f16(y, d_block);
    put_f16(y + 2, m_block);
}

void nm_q4k_finish_path_a(const float *x, uint8_t *y, const float *scales, const float *mins,
                          uint8_t *L, int nmax) {
    nm_qk_set_scales_a(y, scales, mins);
    qk_requant_pack(x, y, L, nmax);
}

void nm_q4k_finish_path_b(const float *x, uint8_t *y, const float *scales, const float *mins,
                          const float *sw, uint8_t *L, int nmax) {
    nm_qk_set_scales_b(y, scales, mins, sw);
    qk_requant_pack(x, y, L, nmax);
}

static void qk_block_a(const float *x, uint8_t *y, int nmax) {
    uint8_t L[256], Laux[32];
    float w[32], scales[8], mins[8];
    const float rmin = nmax == 15 ? -1.f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xj[l] * xj[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xj[l]);
        scales[j] = nm_make_qkx2(32, nmax, xj, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
    }
    nm_q4k_finish_path_a(x, y, scales, mins, L, nmax);
}

static void qk_block_b(const float *x, uint8_t *y, const float *qw, int nmax) {
    uint8_t L[256], Laux[32];
    float w[32], scales[8], mins[8], sw[8];
    float sum_x2 = 0;
    for (int l = 0; l < 256; l++)
        sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / 256;
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        for (int l = 0; l < 32; l++)
            w[l] = qw[32 * j + l] * sqrtf(sigma2 + xj[l] * xj[l]);
        float sumw = 0;
        for (int l = 0; l < 32; l++)
            sumw += w[l];
        sw[j] = sumw;
        scales[j] = nm_make_qkx2(32, nmax, xj, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, NM_QKX_DEGENERATE_LE);
    }
    nm_q4k_finish_path_b(x, y, scales, mins, sw, L, nmax);
}

void nm_q4_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++) {
        if (qw)
            qk_block_b(x + 256 * b, y + 144 * b, qw + 256 * b, 15);
        else
            qk_block_a(x + 256 * b, y + 144 * b, 15);
    }
}

void nm_q5_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++) {
        if (qw)
            qk_block_b(x + 256 * b, y + 176 * b, qw + 256 * b, 31);
        else
            qk_block_a(x + 256 * b, y + 176 * b, 31);
    }
}

/* ---- Q6_K (§4.5) ---- */

int nm_q6k_set_scales(uint8_t *y, const float *scales) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ib++) {
        const float abs_scale = fabsf(scales[ib]);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scales[ib];
        }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
        memset(y, 0, 210);
        return 0;
    }
    const float iscale = -128.f / max_scale;
    put_f16(y + 208, 1 / iscale);
    int8_t *sc = (int8_t *)(y + 192);
    for (int ib = 0; ib < 16; ib++) {
        int v = nm_nearest_int(iscale * scales[ib]);
        sc[ib] = (int8_t)(v < 127 ? v : 127);
    }
    return 1;
}

void nm_q6k_finish(const float *x, uint8_t *y, const float *scales, int8_t *L) {
    if (!nm_q6k_set_scales(y, scales))
        return;
    const int8_t *sc = (const int8_t *)(y + 192);
    const float d_all = get_f16(y + 208);
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (float)sc[j];
        if (!d)
            continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = nm_nearest_int(x[16 * j + ii] / d);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            L[16 * j + ii] = (int8_t)(l + 32);
        }
    }
    uint8_t *ql = y, *qh = y + 128;
    for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = (uint8_t)L[j + l] & 0xF, q2 = (uint8_t)L[j + l + 32] & 0xF;
            const uint8_t q3 = (uint8_t)L[j + l + 64] & 0xF, q4 = (uint8_t)L[j + l + 96] & 0xF;
            ql[l] = (uint8_t)(q1 | q3 << 4);
            ql[l + 32] = (uint8_t)(q2 | q4 << 4);
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                              ((L[j + l + 96] >> 4) << 6));
        }
    }
}

void nm_q6_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        int8_t L[256];
        float scales[16];
        for (int ib = 0; ib < 16; ib++)
            scales[ib] = nm_make_qx(16, 32, xb + 16 * ib, L + 16 * ib, qw ? qw + 256 * b + 16 * ib : NULL);
        nm_q6k_finish(xb, y + 210 * b, scales, L);
    }
}

/* ---- Q8_K (§4.6) ---- */

void nm_q8_k_row_ref(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    for (int64_t b = 0; b < n / 256; b++, x += 256, y += 292) {
        float max = 0, amax = 0;
        for (int j = 0; j < 256; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        int8_t *qs = (int8_t *)(y + 4);
        if (!amax) {
            memset(y, 0, 292);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; j++) {
            int v = nm_nearest_int(iscale * x[j]);
            qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++)
                sum += qs[16 * j + ii];
            y[260 + 2 * j] = (uint8_t)(sum & 0xFF);
            y[261 + 2 * j] = (uint8_t)((unsigned)sum >> 8);
        }
        const float d = 1 / iscale;
        memcpy(y, &d, 4);
    }
}

/* ---- dequantization (§4.7) ---- */

void nm_dq_q4_k_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 144) {
        const float d = get_f16(x), min = get_f16(x + 2);
        const uint8_t *q = x + 16;
        for (int j = 0; j < 256; j += 64, q += 32) {
            uint8_t sc, m;
            get_scale_min(j / 32, x + 4, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            get_scale_min(j / 32 + 1, x + 4, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void nm_dq_q5_k_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 176) {
        const float d = get_f16(x), min = get_f16(x + 2);
        const uint8_t *qh = x + 16, *ql = x + 48;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64, ql += 32) {
            uint8_t sc, m;
            get_scale_min(j / 32, x + 4, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            get_scale_min(j / 32 + 1, x + 4, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

void nm_dq_q6_k_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 210) {
        const float d = get_f16(x + 208);
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        for (int h = 0; h < 256; h += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = (int)((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = (int)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = (int)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = (int)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void nm_dq_q8_k_ref(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 292, y += 256) {
        float d;
        memcpy(&d, x, 4);
        for (int j = 0; j < 256; j++)
            y[j] = d * (float)(int8_t)x[4 + j];
    }
}
