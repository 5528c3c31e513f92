/* Error-minimising block quantizers for nomoat-quantize --optimize (see optimize.h).
 *
 * Every type has the same shape of search: candidate scales (and mins) around the block's range,
 * each refined by a weighted least-squares fit of the scale to the integer levels it produced,
 * rounded to what the block stores (f16, or 6/8-bit sub-block scales), the levels re-rounded for
 * the stored values, and the weighted squared error of exactly what a reader dequantizes
 * decides. Super-block types (Q3_K, Q4_K, Q5_K, Q6_K) then descend coordinate-wise: each sub-block tries
 * the integer scales (and mins) next to its own, and the super-block scales are refitted by least
 * squares to the chosen levels, while the error falls. Q8_0, whose one f16 scale per block is
 * cheap to try, tries every stored scale in a range instead (exact there: for a fixed scale the
 * nearest levels are the best).
 * The block layouts are ggml's (FORMATS.md §3, §4): written here, read back by nm_dequantize_row. */
#include "quantize/optimize.h"

#include "quantize/optimize_levels.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quants.h"
#include "formats/quants_iq4.h"
#include "kernels/dense.h"
#include "formats/tensor.h"

#define MAX_BLOCK 256

static inline float f16_round(float v) { return nm_f16_to_f32(nm_f32_to_f16(v)); }
static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = nm_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int round_level(float v) {
    if (!(v > -1e6f && v < 1e6f)) /* NaN or far out of range: the clamp decides */
        return v > 0 ? 1000000 : -1000000;
    return (int)lrintf(v);
}

/* ---- symmetric scales: x ~ d * L, L in [lo, hi] (Q4_0, Q5_0, Q8_0, Q6_K sub-blocks) ---- */

/* Error of levels chosen for scale d (stored as is); fills L (optimize_levels.h). */
static inline double sym_levels(const float *x, const float *w, int n, float d, int lo, int hi, int8_t *L) {
    return qo_levels_get()->sym_levels(x, w, n, d, lo, hi, L);
}

/* Best scale over a grid of ranges, each refitted by least squares. half: the scale is stored as
 * f16. Returns the scale; *err the weighted error; L the levels. */
static float sym_fit(const float *x, const float *w, int n, int lo, int hi, bool half, int grid, int8_t *L,
                     double *err) {
    float amax = 0;
    for (int i = 0; i < n; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (amax == 0) {
        *err = sym_levels(x, w, n, 0, lo, hi, L);
        return 0;
    }
    int8_t T[MAX_BLOCK];
    double best = sym_levels(x, w, n, 0, lo, hi, L);
    float best_d = 0;
    const float r_lo = 0.6f * (float)hi, r_hi = (float)-lo + 0.45f;
    for (int sign = -1; sign <= 1; sign += 2) {
        for (int g = 0; g < grid; g++) {
            const float r = r_lo + (r_hi - r_lo) * (float)g / (float)(grid - 1);
            float d = (float)sign * amax / r;
            sym_levels(x, w, n, d, lo, hi, T); /* T: always the levels for d */
            for (int pass = 0; pass < 2; pass++) {
                double s[2];
                qo_levels_get()->sym_sums(x, w, n, T, s);
                if (s[1] <= 0)
                    break;
                const float prev = d;
                d = (float)(s[0] / s[1]);
                if (half)
                    d = f16_round(d);
                if (d == 0 || !isfinite(d) || (pass > 0 && d == prev)) /* the same d: the same error again */
                    break;
                const double e = sym_levels(x, w, n, d, lo, hi, T);
                if (e < best) {
                    best = e;
                    best_d = d;
                    memcpy(L, T, (size_t)n);
                }
            }
        }
    }
    *err = best;
    return best_d;
}

/* Every f16 scale of either sign whose range amax / |d| lies in [r_lo, r_hi]: with the scale fixed,
 * each element's nearest level is its best, so this is the exact optimum over those stored
 * scales. Improves on *err (and L, the returned scale) only where it finds a smaller error. */
static float sym_scan_f16(const float *x, const float *w, int n, int lo, int hi, float r_lo, float r_hi, float d,
                          int8_t *L, double *err) {
    float amax = 0;
    for (int i = 0; i < n; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (amax == 0)
        return d;
    const uint16_t h0 = nm_f32_to_f16(amax / r_hi), h1 = nm_f32_to_f16(amax / r_lo);
    if (h1 >= 0x7C00) /* the range reaches f16's overflow */
        return d;
    const qo_levels *k = qo_levels_get();
    enum { CHUNK = 64 };
    float c[CHUNK];
    double e[CHUNK];
    float best_d = 0;
    double best = *err;
    for (unsigned h = h0 > 0 ? h0 : 1; h <= h1;) {
        int nc = 0;
        for (; nc + 2 <= CHUNK && h <= h1; h++) {
            c[nc++] = -nm_f16_to_f32((uint16_t)h);
            c[nc++] = nm_f16_to_f32((uint16_t)h);
        }
        k->sym_errors(x, w, n, lo, hi, c, nc, e);
        for (int j = 0; j < nc; j++)
            if (e[j] < best) {
                best = e[j];
                best_d = c[j];
            }
    }
    if (best < *err) {
        *err = k->sym_levels(x, w, n, best_d, lo, hi, L);
        d = best_d;
    }
    return d;
}

/* ---- scale and offset: x ~ d * L + m, L in [0, nmax] (Q4_1, Q5_1, K sub-blocks) ---- */

static inline double asym_levels(const float *x, const float *w, int n, float d, float m, int nmax, uint8_t *L) {
    return qo_levels_get()->asym_levels(x, w, n, d, m, nmax, L);
}

/* Least-squares d, m for fixed levels from their sums s (asym_sums'); nonpos_m: m must be <= 0 (K
 * sub-blocks store -m >= 0). Returns false when the system is degenerate. */
static bool asym_refit(const double s[5], bool nonpos_m, float *d, float *m) {
    const double sw = s[0], sx = s[1], sl = s[2], sll = s[3], sxl = s[4];
    const double det = sw * sll - sl * sl;
    if (!(det > 0) || sll <= 0)
        return false;
    double dd = (sw * sxl - sl * sx) / det, mm = (sll * sx - sl * sxl) / det;
    if (nonpos_m && mm > 0) {
        mm = 0;
        dd = sxl / sll;
    }
    *d = (float)dd;
    *m = (float)mm;
    return isfinite(*d) && isfinite(*m);
}

/* half: d and m are stored as f16 (Q4_1/Q5_1); else floats with m <= 0 (K sub-blocks). */
static void asym_fit(const float *x, const float *w, int n, int nmax, bool half, int grid, float *d_out,
                     float *m_out, uint8_t *L, double *err) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (!half && lo > 0)
        lo = 0;
    float best_d = 0, best_m = half ? f16_round(lo) : lo;
    double best = asym_levels(x, w, n, 0, best_m, nmax, L);
    if (hi == lo) {
        *d_out = best_d;
        *m_out = best_m;
        *err = best;
        return;
    }
    uint8_t T[MAX_BLOCK];
    const qo_levels *k = qo_levels_get();
    double s[5]; /* s[0], s[1] (sum w, sum w x) are the same for any levels; s[2..4]: T's */
    k->asym_sums(x, w, n, L, s);
    const float range = hi - lo;
    for (int a = 0; a < grid; a++) {
        for (int b = 0; b < grid; b++) {
            const float l0 = lo + range * 0.2f * (float)a / (float)grid;
            const float h0 = hi - range * 0.2f * (float)b / (float)grid;
            if (h0 <= l0)
                continue;
            float d = (h0 - l0) / (float)nmax, m = l0;
            k->asym_levels_sums(x, w, n, d, m, nmax, T, s + 2); /* T: always the levels for d, m */
            for (int pass = 0; pass < 2; pass++) {
                const float pd = d, pm = m;
                if (!asym_refit(s, !half, &d, &m))
                    break;
                if (half) {
                    d = f16_round(d);
                    m = f16_round(m);
                }
                if (pass > 0 && d == pd && m == pm) /* the same fit: the same error again */
                    break;
                const double e = pass == 0 ? k->asym_levels_sums(x, w, n, d, m, nmax, T, s + 2) /* refit again */
                                           : asym_levels(x, w, n, d, m, nmax, T);
                if (e < best) {
                    best = e;
                    best_d = d;
                    best_m = m;
                    memcpy(L, T, (size_t)n);
                }
            }
        }
    }
    *d_out = best_d;
    *m_out = best_m;
    *err = best;
}

/* ---- legacy 32-element blocks ---- */

static void pack_nibbles16(uint8_t *qs, const uint8_t *q) {
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 0x0F) | (q[16 + j] & 0x0F) << 4);
}

static void pack_q5(uint8_t *qh_out, uint8_t *qs, const uint8_t *q) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++)
        qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    pack_nibbles16(qs, q);
    for (int k = 0; k < 4; k++)
        qh_out[k] = (uint8_t)(qh >> (8 * k));
}

static void opt_q4_0(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    int8_t L[32];
    uint8_t q[32];
    double e;
    const float d = sym_fit(x, w, 32, -8, 7, true, 24, L, &e);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)(L[j] + 8);
    put_f16(y, d);
    pack_nibbles16(y + 2, q);
}

static void opt_q5_0(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    int8_t L[32];
    uint8_t q[32];
    double e;
    const float d = sym_fit(x, w, 32, -16, 15, true, 24, L, &e);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)(L[j] + 16);
    put_f16(y, d);
    pack_q5(y + 2, y + 6, q);
}

static void opt_q8_0(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    int8_t L[32];
    double e;
    /* every f16 scale that puts the largest value on level 110 to 128: 5% less weighted error
     * than sym_fit's grid and refits on normal values, at 0.9x its cost (with the grid too: 0.1%
     * less again at twice the cost) */
    e = sym_levels(x, w, 32, 0, -128, 127, L);
    const float d = sym_scan_f16(x, w, 32, -128, 127, 110.0f, 128.5f, 0, L, &e);
    put_f16(y, d);
    memcpy(y + 2, L, 32);
}

static void opt_q4_1(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    uint8_t L[32];
    float d, m;
    double e;
    asym_fit(x, w, 32, 15, true, 7, &d, &m, L, &e);
    put_f16(y, d);
    put_f16(y + 2, m);
    pack_nibbles16(y + 4, L);
}

static void opt_q5_1(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    uint8_t L[32];
    float d, m;
    double e;
    asym_fit(x, w, 32, 31, true, 7, &d, &m, L, &e);
    put_f16(y, d);
    put_f16(y + 2, m);
    pack_q5(y + 4, y + 8, L);
}

/* The sub-blocks' stored integer scales (which 0) and mins (which 1) of the K-quants and IQ4_XS
 * (FORMATS.md §2.1, §4): how many sub-blocks of how many elements, how many integers each and
 * their stored range; 0 for the types without them. */
static int sub_scales(uint32_t type, int *len, int *np, int *lo, int *hi) {
    *np = 1, *lo = 0, *hi = 63;
    switch (type) {
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: *len = 32, *np = 2; return 8;
    case GGML_TYPE_IQ4_XS: *len = 32; return 8;
    case GGML_TYPE_Q3_K: *len = 16; return 16;
    case GGML_TYPE_Q6_K: *len = 16, *lo = -128, *hi = 127; return 16;
    default: return 0;
    }
}

static int sub_get(uint32_t type, const uint8_t *y, int j, int which) {
    switch (type) {
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: {
        const uint8_t *q = y + 4;
        if (j < 4)
            return q[j + 4 * which] & 63;
        return which ? (q[j + 4] >> 4) | (q[j] >> 6) << 4 : (q[j + 4] & 0xF) | (q[j - 4] >> 6) << 4;
    }
    case GGML_TYPE_IQ4_XS: return ((y[4 + j / 2] >> (4 * (j % 2))) & 0xF) | (((y[2] | y[3] << 8) >> (2 * j)) & 3) << 4;
    case GGML_TYPE_Q3_K: {
        const uint8_t *sc = y + 96;
        return (j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4) | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
    }
    default: return (int8_t)y[192 + j]; /* Q6_K */
    }
}

static void sub_set(uint32_t type, uint8_t *y, int j, int which, int v) {
    switch (type) {
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: {
        uint8_t *q = y + 4;
        if (j < 4)
            q[j + 4 * which] = (uint8_t)((q[j + 4 * which] & 0xC0) | v);
        else if (which) {
            q[j + 4] = (uint8_t)((q[j + 4] & 0x0F) | (v & 0xF) << 4);
            q[j] = (uint8_t)((q[j] & 0x3F) | (v >> 4) << 6);
        } else {
            q[j + 4] = (uint8_t)((q[j + 4] & 0xF0) | (v & 0xF));
            q[j - 4] = (uint8_t)((q[j - 4] & 0x3F) | (v >> 4) << 6);
        }
        break;
    }
    case GGML_TYPE_IQ4_XS: {
        uint8_t *p = y + 4 + j / 2;
        *p = (uint8_t)((*p & (0xF0 >> (4 * (j % 2)))) | (v & 0xF) << (4 * (j % 2)));
        const uint16_t h = (uint16_t)(((y[2] | y[3] << 8) & ~(3u << (2 * j))) | (unsigned)(v >> 4) << (2 * j));
        y[2] = (uint8_t)h;
        y[3] = (uint8_t)(h >> 8);
        break;
    }
    case GGML_TYPE_Q3_K: {
        uint8_t *sc = y + 96;
        if (j < 8)
            sc[j] = (uint8_t)((sc[j] & 0xF0) | (v & 0xF));
        else
            sc[j - 8] = (uint8_t)((sc[j - 8] & 0x0F) | (v & 0xF) << 4);
        uint8_t *hb = sc + 8 + j % 4;
        *hb = (uint8_t)((*hb & ~(3u << (2 * (j / 4)))) | (unsigned)(v >> 4) << (2 * (j / 4)));
        break;
    }
    default: y[192 + j] = (uint8_t)(int8_t)v; break; /* Q6_K */
    }
}

/* ---- Q4_K / Q5_K: x ~ (d*sc_j) * L - (dmin*m_j), 8 sub-blocks of 32, sc, m in 0..63 ---- */

typedef struct kblock {
    float d, dmin;
    int sc[16], m[16];
    uint8_t L[256];
} kblock;

/* Levels and error of sub-block j for integer scale sc and min m under d, dmin (as read back). */
static double k_sub_levels(const float *x, const float *w, float d, float dmin, int sc, int m, int nmax,
                           uint8_t *L) {
    const float d1 = d * (float)sc, m1 = dmin * (float)m;
    return asym_levels(x, w, 32, d1, -m1, nmax, L);
}

static double k_total(const float *x, const float *w, kblock *k, int nmax) {
    double e = 0;
    for (int j = 0; j < 8; j++)
        e += k_sub_levels(x + 32 * j, w + 32 * j, k->d, k->dmin, k->sc[j], k->m[j], nmax, k->L + 32 * j);
    return e;
}

/* Each sub-block picks the integer (sc, m) within +-r (r <= 2) of its own with the least error
 * (the first in this order on a tie: its own, then by sc and m). */
static void k_descend_subs(const float *x, const float *w, kblock *k, int nmax, int r) {
    for (int j = 0; j < 8; j++) {
        int cs[25], cm[25], nc = 0;
        cs[nc] = k->sc[j], cm[nc++] = k->m[j];
        for (int s = k->sc[j] - r; s <= k->sc[j] + r; s++)
            for (int m = k->m[j] - r; m <= k->m[j] + r; m++)
                if (s >= 0 && s <= 63 && m >= 0 && m <= 63 && !(s == k->sc[j] && m == k->m[j]))
                    cs[nc] = s, cm[nc++] = m;
        float d1[25], m1[25];
        for (int c = 0; c < nc; c++) { /* as k_sub_levels */
            d1[c] = k->d * (float)cs[c];
            m1[c] = -(k->dmin * (float)cm[c]);
        }
        double e[25];
        qo_levels_get()->asym_errors(x + 32 * j, w + 32 * j, 32, nmax, d1, m1, nc, e);
        int bc = 0;
        for (int c = 1; c < nc; c++)
            if (e[c] < e[bc])
                bc = c;
        k->sc[j] = cs[bc];
        k->m[j] = cm[bc];
    }
}

/* Least-squares d, dmin for the current integer scales and levels: x ~ d*(sc*L) - dmin*m. */
static bool k_refit_super(const float *x, const float *w, const kblock *k, float *d, float *dmin) {
    double saa = 0, sab = 0, sbb = 0, sxa = 0, sxb = 0;
    for (int i = 0; i < 256; i++) {
        const double a = (double)k->sc[i / 32] * k->L[i], b = -(double)k->m[i / 32], wi = w[i];
        saa += wi * a * a;
        sab += wi * a * b;
        sbb += wi * b * b;
        sxa += wi * x[i] * a;
        sxb += wi * x[i] * b;
    }
    const double det = saa * sbb - sab * sab;
    if (det > 0) {
        *d = f16_round((float)((sxa * sbb - sxb * sab) / det));
        *dmin = f16_round((float)((saa * sxb - sab * sxa) / det));
    } else if (saa > 0) {
        *d = f16_round((float)(sxa / saa));
        *dmin = k->dmin;
    } else {
        return false;
    }
    return isfinite(*d) && isfinite(*dmin);
}

/* Integer scales for float sub-block scales/mins under super scales d, dmin. */
static void k_set_ints(kblock *k, const float *scales, const float *mins) {
    for (int j = 0; j < 8; j++) {
        k->sc[j] = k->d > 0 ? clampi(round_level(scales[j] / k->d), 0, 63) : 0;
        k->m[j] = k->dmin > 0 ? clampi(round_level(mins[j] / k->dmin), 0, 63) : 0;
    }
}

static void k_pack(uint8_t *y, const kblock *k, int nmax) {
    put_f16(y, k->d);
    put_f16(y + 2, k->dmin);
    memset(y + 4, 0, 12);
    for (int j = 0; j < 8; j++) {
        sub_set(GGML_TYPE_Q4_K, y, j, 0, k->sc[j]); /* Q5_K's scales are laid out alike */
        sub_set(GGML_TYPE_Q4_K, y, j, 1, k->m[j]);
    }
    if (nmax == 15) {
        uint8_t *q = y + 16;
        for (int j = 0; j < 256; j += 64, q += 32)
            for (int l = 0; l < 32; l++)
                q[l] = (uint8_t)(k->L[j + l] | k->L[j + l + 32] << 4);
    } else {
        uint8_t *qh = y + 16, *ql = y + 48;
        memset(qh, 0, 32);
        for (int j = 0, shift = 0; j < 256; j += 64, ql += 32, shift += 2) {
            for (int l = 0; l < 32; l++) {
                const uint8_t l1 = k->L[j + l], l2 = k->L[j + l + 32];
                ql[l] = (uint8_t)((l1 & 0xF) | (l2 & 0xF) << 4);
                qh[l] |= (uint8_t)(((l1 >> 4) & 1) << shift | ((l2 >> 4) & 1) << (shift + 1));
            }
        }
    }
}

static inline float get_f16(const uint8_t *p) { return nm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* Coordinate descent from k's integer scales; returns the error (k->L up to date). */
static double k_descend(const float *x, const float *w, kblock *k, int nmax) {
    double cur = k_total(x, w, k, nmax);
    for (int iter = 0; iter < 6; iter++) {
        const double before = cur;
        k_descend_subs(x, w, k, nmax, iter == 0 ? 2 : 1);
        cur = k_total(x, w, k, nmax); /* levels for the new integer scales */
        kblock trial = *k;
        if (k_refit_super(x, w, k, &trial.d, &trial.dmin)) {
            const double e2 = k_total(x, w, &trial, nmax);
            if (e2 < cur) {
                *k = trial;
                cur = e2;
            }
        }
        if (!(cur < before))
            break;
    }
    return cur;
}

/* From llama.cpp's scales and from a few super-scale choices (the largest sub-block scale on
 * level 63, or a little lower), coordinate descent; the least error wins (the first on a tie).
 * With quick, only the start of least error descends: for the error feedback, whose
 * refinement moves every sub-block's integers afterwards. On the fixture (bench-optimize.sh,
 * --calibration, 5 refinement passes) Q4_K_M's KLD ratio was 0.799 against 0.800 from all four
 * starts, Q5_K_M's 0.791 against 0.784, Q3_K_M's 0.814 against 0.815, within what any
 * perturbation of the refinement moves them (see REFINE_PASSES), for a quarter of the descents.
 * This and five passes instead of eight took the TinyLlama-shaped calibrated Q4_K_M from 770 s
 * to 646 s. Quick also fits each sub-block's float scale on a 3 x 3 grid of ranges, not 6 x 6
 * (they only seed the starts): KLD ratio, 6 x 6 against 3 x 3, --calibration Q4_K_M 0.787/0.788,
 * Q5_K_M 0.779/0.790, Q3_K_M 0.790/0.789; --calibration-random Q4_K_M 0.811/0.804, Q5_K_M
 * 0.777/0.778, Q3_K_M 0.771/0.771; with 8 and 16 calibration contexts Q4_K_M 0.973/0.976 and
 * 0.862/0.862, Q5_K_M 0.945/0.940 and 0.846/0.840: no direction beyond the refinement's noise,
 * for 13% less CPU (the 2-layer TinyLlama's calibrated Q4_K_M with the AVX2 kernels, 218 -> 189
 * s). */
static void opt_qk(const float *x, const float *w, const uint8_t *seed, uint8_t *y, int nmax, bool quick) {
    float scales[8], mins[8];
    kblock start[4];
    double e;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float m;
        asym_fit(x + 32 * j, w + 32 * j, 32, nmax, false, quick ? 3 : 6, &scales[j], &m, start[0].L + 32 * j, &e);
        mins[j] = -m;
        max_scale = scales[j] > max_scale ? scales[j] : max_scale;
        max_min = mins[j] > max_min ? mins[j] : max_min;
    }
    int ns = 0;
    kblock *k = &start[0];
    k->d = get_f16(seed);
    k->dmin = get_f16(seed + 2);
    for (int j = 0; j < 8; j++) {
        k->sc[j] = sub_get(GGML_TYPE_Q4_K, seed, j, 0); /* Q5_K's scales are laid out alike */
        k->m[j] = sub_get(GGML_TYPE_Q4_K, seed, j, 1);
    }
    if (isfinite(k->d) && isfinite(k->dmin))
        ns++;
    static const float top[] = {63.0f, 61.5f, 60.0f};
    for (size_t t = 0; t < sizeof top / sizeof top[0]; t++, ns++) {
        start[ns].d = f16_round(max_scale / top[t]);
        start[ns].dmin = f16_round(max_min / top[t]);
        k_set_ints(&start[ns], scales, mins);
    }
    int first = 0;
    if (quick) {
        double least = DBL_MAX;
        for (int s = 0; s < ns; s++) {
            const double e0 = k_total(x, w, &start[s], nmax);
            if (e0 < least) {
                least = e0;
                first = s;
            }
        }
    }
    kblock best = start[first];
    double best_e = DBL_MAX;
    for (int s = first; s < (quick ? first + 1 : ns); s++) {
        const double cur = k_descend(x, w, &start[s], nmax);
        if (cur < best_e) {
            best_e = cur;
            best = start[s];
        }
    }
    k_total(x, w, &best, nmax);
    k_pack(y, &best, nmax);
}

/* ---- Q6_K and Q3_K: x ~ (d*sc_j) * L, 16 sub-blocks of 16 with signed integer scales ----
 * Q6_K: sc in -128..127, L in -32..31; Q3_K: sc in -32..31, L in -4..3. */

typedef struct sbblock {
    float d;
    int sc[16];
    int8_t L[256];
} sbblock;

typedef struct sb_spec {
    int lo, hi;       /* levels */
    int sc_lo, sc_hi; /* sub-block scales */
    float top[3];     /* the largest sub-block scale's first integer scales */
    int block_bytes;
    void (*pack)(uint8_t *y, const sbblock *k);
} sb_spec;

static double sb_sub(const sb_spec *sp, const float *x, const float *w, float d, int sc, int8_t *L) {
    return sym_levels(x, w, 16, d * (float)sc, sp->lo, sp->hi, L);
}

static double sb_total(const sb_spec *sp, const float *x, const float *w, sbblock *k) {
    double e = 0;
    for (int j = 0; j < 16; j++)
        e += sb_sub(sp, x + 16 * j, w + 16 * j, k->d, k->sc[j], k->L + 16 * j);
    return e;
}

static void q6_pack(uint8_t *y, const sbblock *k) {
    uint8_t *ql = y, *qh = y + 128;
    for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = (uint8_t)(k->L[j + l] + 32), q2 = (uint8_t)(k->L[j + l + 32] + 32);
            const uint8_t q3 = (uint8_t)(k->L[j + l + 64] + 32), q4 = (uint8_t)(k->L[j + l + 96] + 32);
            ql[l] = (uint8_t)((q1 & 0xF) | (q3 & 0xF) << 4);
            ql[l + 32] = (uint8_t)((q2 & 0xF) | (q4 & 0xF) << 4);
            qh[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
        }
    }
    for (int j = 0; j < 16; j++)
        sub_set(GGML_TYPE_Q6_K, y, j, 0, k->sc[j]);
    put_f16(y + 208, k->d);
}

/* Q3_K (FORMATS.md §2.1): hmask[32] (bit k of byte l: the high bit of element 32k + l), qs[64]
 * (low 2 bits; byte 32h + l holds elements 128h + l, +32, +64, +96 at bits 0, 2, 4, 6),
 * scales[12] (sixteen 6-bit scales + 32: low nibbles in bytes 0-7, high 2 bits in 8-11), f16 d. */
static void q3_pack(uint8_t *y, const sbblock *k) {
    uint8_t *hmask = y, *qs = y + 32;
    memset(y, 0, 108);
    for (int i = 0; i < 256; i++) {
        const int q = k->L[i] + 4;
        hmask[i % 32] |= (uint8_t)((q >> 2) << (i / 32));
        qs[32 * (i / 128) + i % 32] |= (uint8_t)((q & 3) << (2 * ((i % 128) / 32)));
    }
    for (int j = 0; j < 16; j++)
        sub_set(GGML_TYPE_Q3_K, y, j, 0, k->sc[j] + 32);
    put_f16(y + 108, k->d);
}

static const sb_spec q6_spec = {-32, 31, -128, 127, {-128.0f, 127.0f, -124.0f}, 210, q6_pack};
static const sb_spec q3_spec = {-4, 3, -32, 31, {-32.0f, 31.0f, -31.0f}, 110, q3_pack};

/* From a few super-scale choices (the largest sub-block scale on the first integer scales of
 * sp->top), each sub-block's integer scale and the super-scale descended in turn; the least error
 * wins. With quick (the error feedback's search, as in opt_qk), only the start of least error
 * descends: on the fixture (--calibration) Q6_K's KLD ratio was 0.817 and Q3_K_M's 0.822, with
 * the other changes of 2026-12-05's evening, against 0.825 and 0.814 from all three starts
 * before them: within the refinement's noise (REFINE_PASSES), for a third of the descents. */
static void opt_sb(const sb_spec *sp, const float *x, const float *w, uint8_t *y, bool quick) {
    enum { STARTS = sizeof sp->top / sizeof sp->top[0] };
    float scales[16];
    sbblock k, best, start[STARTS];
    double e, best_e = DBL_MAX, start_e[STARTS];
    float max_scale = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = sym_fit(x + 16 * j, w + 16 * j, 16, sp->lo, sp->hi, false, 12, k.L + 16 * j, &e);
        if (fabsf(scales[j]) > fabsf(max_scale))
            max_scale = scales[j];
    }
    if (max_scale == 0) {
        memset(y, 0, (size_t)sp->block_bytes);
        return;
    }
    int first = -1;
    for (int t = 0; t < STARTS; t++) {
        sbblock *st = &start[t];
        st->d = f16_round(max_scale / sp->top[t]);
        start_e[t] = DBL_MAX;
        if (st->d == 0)
            continue;
        for (int j = 0; j < 16; j++)
            st->sc[j] = clampi(round_level(scales[j] / st->d), sp->sc_lo, sp->sc_hi);
        start_e[t] = sb_total(sp, x, w, st);
        if (first < 0 || start_e[t] < start_e[first])
            first = t;
    }
    for (int t = 0; t < STARTS; t++) {
        if (start_e[t] == DBL_MAX || (quick && t != first))
            continue;
        k = start[t];
        double cur = start_e[t];
        for (int iter = 0; iter < 4; iter++) {
            for (int j = 0; j < 16; j++) { /* the scale within +-2 of its own with the least error */
                int sc[5], nc = 0;
                float dc[5];
                sc[nc++] = k.sc[j];
                for (int s = k.sc[j] - 2; s <= k.sc[j] + 2; s++)
                    if (s >= sp->sc_lo && s <= sp->sc_hi && s != k.sc[j])
                        sc[nc++] = s;
                for (int c = 0; c < nc; c++)
                    dc[c] = k.d * (float)sc[c]; /* as sb_sub */
                double ec[5];
                qo_levels_get()->sym_errors(x + 16 * j, w + 16 * j, 16, sp->lo, sp->hi, dc, nc, ec);
                int bc = 0;
                for (int c = 1; c < nc; c++)
                    if (ec[c] < ec[bc])
                        bc = c;
                k.sc[j] = sc[bc];
            }
            cur = sb_total(sp, x, w, &k);
            double sxa = 0, saa = 0;
            for (int i = 0; i < 256; i++) {
                const double a = (double)k.sc[i / 16] * k.L[i];
                sxa += (double)w[i] * x[i] * a;
                saa += (double)w[i] * a * a;
            }
            if (saa > 0) {
                sbblock trial = k;
                trial.d = f16_round((float)(sxa / saa));
                if (trial.d != 0 && isfinite(trial.d)) {
                    const double e2 = sb_total(sp, x, w, &trial);
                    if (e2 < cur) {
                        k = trial;
                        cur = e2;
                    } else {
                        sb_total(sp, x, w, &k);
                    }
                }
            }
        }
        if (cur < best_e) {
            best_e = cur;
            best = k;
        }
    }
    if (best_e == DBL_MAX) {
        memset(y, 0, (size_t)sp->block_bytes);
        return;
    }
    sb_total(sp, x, w, &best);
    sp->pack(y, &best);
}

static void opt_q6_k(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    opt_sb(&q6_spec, x, w, y, false);
}
static void opt_q3_k(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    opt_sb(&q3_spec, x, w, y, false);
}
static void opt_q6_k_quick(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    opt_sb(&q6_spec, x, w, y, true);
}
static void opt_q3_k_quick(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    opt_sb(&q3_spec, x, w, y, true);
}

/* ---- IQ4_XS: x ~ (d*(ls-32)) * v[L], 8 sub-blocks of 32, v the 16 levels of nm_iq4nl_values,
 * ls a 6-bit sub-block scale (FORMATS.md §3). llama.cpp searches each sub-block's scale, then
 * fixes d from the largest and rounds the others to it; here d itself is searched too (scaled
 * from the largest sub-block scale and refitted by least squares) and each sub-block tries the
 * integer scales around its own best. ---- */

/* nm_iq4nl_values as floats, for the level kernels. */
static float iq4_levels[16];
static pthread_once_t iq4_once = PTHREAD_ONCE_INIT;
static void iq4_levels_init(void) {
    for (int k = 0; k < 16; k++)
        iq4_levels[k] = (float)nm_iq4nl_values[k];
}

/* Σ w (x − fl(dl·v[L]))² over 32 values, each L the level nearest x/dl (optimize_levels.h). */
static inline double iq4_sub(const float *x, const float *w, float dl, uint8_t *L) {
    return qo_levels_get()->nl_levels(x, w, 32, dl, iq4_levels, L);
}

/* The best real scale of one sub-block: trial scales that put its largest |x| on the levels
 * around ±127, each refitted by least squares for the levels it chose. */
static float iq4_sub_fit(const float *x, const float *w) {
    float amax = 0;
    for (int i = 0; i < 32; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (amax == 0)
        return 0;
    uint8_t L[32];
    double best = DBL_MAX;
    float best_d = 0;
    for (int sign = -1; sign <= 1; sign += 2) {
        for (int c = 0; c <= 40; c += 2) {
            const float dl = (float)sign * amax / (100.0f + (float)c);
            double e = iq4_sub(x, w, dl, L);
            if (e < best) {
                best = e;
                best_d = dl;
            }
            double sxv = 0, svv = 0;
            for (int i = 0; i < 32; i++) {
                sxv += (double)w[i] * x[i] * nm_iq4nl_values[L[i]];
                svv += (double)w[i] * nm_iq4nl_values[L[i]] * nm_iq4nl_values[L[i]];
            }
            if (svv > 0) {
                const float d2 = (float)(sxv / svv);
                e = iq4_sub(x, w, d2, L);
                if (e < best) {
                    best = e;
                    best_d = d2;
                }
            }
        }
    }
    return best_d;
}

typedef struct iq4block {
    float d;
    int ls[8]; /* -32..31 */
    uint8_t L[256];
} iq4block;

static double iq4_total(const float *x, const float *w, iq4block *k) {
    double e = 0;
    for (int j = 0; j < 8; j++)
        e += iq4_sub(x + 32 * j, w + 32 * j, k->d * (float)k->ls[j], k->L + 32 * j);
    return e;
}

/* Each sub-block's integer scale: the best of those within r of where it is. */
static void iq4_descend(const float *x, const float *w, iq4block *k, int r) {
    uint8_t T[32];
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j, *wj = w + 32 * j;
        double bj = iq4_sub(xj, wj, k->d * (float)k->ls[j], T);
        int bs = k->ls[j];
        for (int s = k->ls[j] - r; s <= k->ls[j] + r; s++) {
            if (s < -32 || s > 31 || s == k->ls[j])
                continue;
            const double e = iq4_sub(xj, wj, k->d * (float)s, T);
            if (e < bj) {
                bj = e;
                bs = s;
            }
        }
        k->ls[j] = bs;
    }
}

static void iq4_pack(uint8_t *y, const iq4block *k) {
    memset(y, 0, 136);
    put_f16(y, k->d);
    for (int j = 0; j < 8; j++) {
        sub_set(GGML_TYPE_IQ4_XS, y, j, 0, k->ls[j] + 32);
        for (int i = 0; i < 16; i++)
            y[8 + 16 * j + i] = (uint8_t)(k->L[32 * j + i] | k->L[32 * j + i + 16] << 4);
    }
}

static void opt_iq4_xs(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    (void)seed;
    pthread_once(&iq4_once, iq4_levels_init);
    float scales[8], max_scale = 0;
    for (int j = 0; j < 8; j++) {
        scales[j] = iq4_sub_fit(x + 32 * j, w + 32 * j);
        if (fabsf(scales[j]) > fabsf(max_scale))
            max_scale = scales[j];
    }
    if (max_scale == 0) {
        memset(y, 0, 136);
        return;
    }
    iq4block k, best;
    double best_e = DBL_MAX;
    static const float tops[] = {-32.0f, -31.5f, -31.0f, -30.0f, -29.0f, -28.0f, 31.0f, 30.0f};
    for (size_t t = 0; t < sizeof tops / sizeof tops[0]; t++) {
        k.d = f16_round(max_scale / tops[t]);
        if (k.d == 0 || !isfinite(k.d))
            continue;
        for (int j = 0; j < 8; j++)
            k.ls[j] = clampi(round_level(scales[j] / k.d), -32, 31);
        double cur = DBL_MAX;
        for (int iter = 0; iter < 3; iter++) {
            iq4_descend(x, w, &k, 1);
            cur = iq4_total(x, w, &k);
            double sxa = 0, saa = 0;
            for (int i = 0; i < 256; i++) {
                const double a = (double)k.ls[i / 32] * nm_iq4nl_values[k.L[i]];
                sxa += (double)w[i] * x[i] * a;
                saa += (double)w[i] * a * a;
            }
            if (!(saa > 0))
                break;
            iq4block trial = k;
            trial.d = f16_round((float)(sxa / saa));
            if (trial.d == 0 || !isfinite(trial.d))
                break;
            const double e2 = iq4_total(x, w, &trial);
            if (!(e2 < cur))
                break;
            k = trial;
            cur = e2;
        }
        if (cur < best_e) {
            best_e = cur;
            best = k;
        }
    }
    if (best_e == DBL_MAX) {
        memset(y, 0, 136);
        return;
    }
    iq4_total(x, w, &best);
    iq4_pack(y, &best);
}

/* ---- rows ---- */

/* seed: llama.cpp's block for the same values (a starting point for the super-block types). */
typedef void (*opt_block_fn)(const float *x, const float *w, const uint8_t *seed, uint8_t *y);
static void opt_q4_k(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    opt_qk(x, w, seed, y, 15, false);
}
static void opt_q5_k(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    opt_qk(x, w, seed, y, 31, false);
}
static void opt_q4_k_quick(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    opt_qk(x, w, seed, y, 15, true);
}
static void opt_q5_k_quick(const float *x, const float *w, const uint8_t *seed, uint8_t *y) {
    opt_qk(x, w, seed, y, 31, true);
}

/* quick: the search for the error feedback, whose refinement follows (see opt_qk). */
static opt_block_fn block_fn(uint32_t type, bool quick) {
    switch (type) {
    case GGML_TYPE_Q4_0: return opt_q4_0;
    case GGML_TYPE_Q4_1: return opt_q4_1;
    case GGML_TYPE_Q5_0: return opt_q5_0;
    case GGML_TYPE_Q5_1: return opt_q5_1;
    case GGML_TYPE_Q8_0: return opt_q8_0;
    case GGML_TYPE_Q4_K: return quick ? opt_q4_k_quick : opt_q4_k;
    case GGML_TYPE_Q5_K: return quick ? opt_q5_k_quick : opt_q5_k;
    case GGML_TYPE_Q6_K: return quick ? opt_q6_k_quick : opt_q6_k;
    case GGML_TYPE_Q3_K: return quick ? opt_q3_k_quick : opt_q3_k;
    case GGML_TYPE_IQ4_XS: return opt_iq4_xs;
    default: return NULL;
    }
}

bool qo_supported(uint32_t type) { return block_fn(type, false) != NULL; }

static double block_error(uint32_t type, const float *x, const float *w, const uint8_t *blk, int n) {
    float q[MAX_BLOCK];
    nm_dequantize_row(type, blk, q, n);
    double e = 0;
    for (int i = 0; i < n; i++) {
        const double diff = (double)x[i] - q[i];
        e += (double)w[i] * diff * diff;
    }
    return e;
}

/* Weights for the search: the imatrix as given, with columns it never saw (0) weighted by a small
 * fraction of the row's mean so their levels still follow the values. */
static void row_weights(const float *imatrix, int64_t n, float *w) {
    if (!imatrix) {
        for (int64_t i = 0; i < n; i++)
            w[i] = 1;
        return;
    }
    double mean = 0;
    for (int64_t i = 0; i < n; i++)
        mean += imatrix[i];
    mean /= (double)n;
    const float floor_w = mean > 0 ? (float)(1e-3 * mean) : 1;
    for (int64_t i = 0; i < n; i++)
        w[i] = imatrix[i] > floor_w ? imatrix[i] : floor_w;
}

/* For the types whose blocks are not searched (the i-quants, Q2_K): llama.cpp's own quantizer
 * given the column weights (dead columns floored, as the searches weigh them) as its importance
 * matrix, which its scale searches weigh errors by; each row keeps whichever of that and the
 * unweighted row (already in dst) has the smaller weighted error. */
static int rows_weighted_alternative(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                                     const float *weights, nm_error *err) {
    size_t row_size;
    if (ggml_row_size(type, (uint64_t)n_per_row, &row_size) != 0)
        return nm_fail(err, "row too large");
    uint8_t *alt = malloc((size_t)nrows * row_size);
    float *w = malloc((size_t)n_per_row * sizeof *w);
    int rc = 0;
    if (!alt || !w) {
        rc = nm_fail(err, "out of memory");
        goto done;
    }
    row_weights(weights, n_per_row, w);
    if ((rc = nm_quantize_rows(type, src, alt, nrows, n_per_row, w, err)) != 0)
        goto done;
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        uint8_t *y = (uint8_t *)dst + (size_t)r * row_size, *a = alt + (size_t)r * row_size;
        if (qo_weighted_error(type, x, a, 1, n_per_row, w) < qo_weighted_error(type, x, y, 1, n_per_row, w))
            memcpy(y, a, row_size);
    }
done:
    free(alt);
    free(w);
    return rc;
}

int qo_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                     const float *imatrix, const float *weights, nm_error *err) {
    /* llama.cpp's blocks first: they validate the input and are the ones to beat */
    if (nm_quantize_rows(type, src, dst, nrows, n_per_row, imatrix, err) != 0)
        return -1;
    opt_block_fn fn = block_fn(type, false);
    if (!fn)
        return imatrix || !weights ? 0 : rows_weighted_alternative(type, src, dst, nrows, n_per_row, weights, err);
    const ggml_type_info *t = ggml_type_get(type);
    const int bs = (int)t->block_size;
    size_t row_size;
    if (ggml_row_size(type, (uint64_t)n_per_row, &row_size) != 0)
        return nm_fail(err, "row too large");
    float *w = malloc((size_t)n_per_row * sizeof *w);
    if (!w)
        return nm_fail(err, "out of memory");
    row_weights(weights ? weights : imatrix, n_per_row, w);
    uint8_t cand[MAX_BLOCK + 64];
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        uint8_t *y = (uint8_t *)dst + (size_t)r * row_size;
        for (int64_t b = 0; b < n_per_row / bs; b++) {
            const float *xb = x + b * bs, *wb = w + b * bs;
            uint8_t *yb = y + (size_t)b * t->type_size;
            fn(xb, wb, yb, cand);
            const double e_new = block_error(type, xb, wb, cand, bs);
            const double e_old = block_error(type, xb, wb, yb, bs);
            if (e_new < e_old) /* false for NaN (an overflowing scale): keep llama.cpp's */
                memcpy(yb, cand, t->type_size);
        }
    }
    free(w);
    return 0;
}

double qo_weighted_error(uint32_t type, const float *src, const void *q, int64_t nrows, int64_t n_per_row,
                         const float *weights) {
    size_t row_size;
    if (ggml_row_size(type, (uint64_t)n_per_row, &row_size) != 0)
        return NAN;
    float *deq = malloc((size_t)n_per_row * sizeof *deq);
    if (!deq)
        return NAN;
    double e = 0;
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        nm_dequantize_row(type, (const uint8_t *)q + (size_t)r * row_size, deq, n_per_row);
        for (int64_t i = 0; i < n_per_row; i++) {
            const double diff = (double)x[i] - deq[i];
            e += (weights ? weights[i] : 1.0) * diff * diff;
        }
    }
    free(deq);
    return e;
}

/* ---- error feedback across columns (GPTQ) ----
 * With H the mean of x x^T over the calibration tokens, a row's quantization costs
 * (w - q)^T H (w - q) in expected squared output error. Quantizing columns in order and moving
 * each one's error onto the columns not yet quantized minimises that cost greedily (Frantar et
 * al., "GPTQ", 2022). GPTQ moves them through the Cholesky factor of H^-1; the same moves come
 * from the factor V of H = V V^T taken in reversed index order (below), with no inverse. Each
 * block's scales are searched as above on the block's values once the earlier blocks' errors
 * have been folded in; then its elements are rounded one by one to that block's grid. */

/* Writes stored level q of element i of a block (the layouts of FORMATS.md §3, §4). */
static void set_level(uint32_t type, uint8_t *y, int i, int q) {
    switch (type) {
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1: {
        uint8_t *qs = y + (type == GGML_TYPE_Q4_0 ? 2 : 4);
        if (i < 16) qs[i] = (uint8_t)((qs[i] & 0xF0) | q);
        else qs[i - 16] = (uint8_t)((qs[i - 16] & 0x0F) | q << 4);
        break;
    }
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q5_1: {
        uint8_t *qh = y + (type == GGML_TYPE_Q5_0 ? 2 : 4), *qs = qh + 4;
        if (i < 16) qs[i] = (uint8_t)((qs[i] & 0xF0) | (q & 0xF));
        else qs[i - 16] = (uint8_t)((qs[i - 16] & 0x0F) | (q & 0xF) << 4);
        qh[i / 8] = (uint8_t)((qh[i / 8] & ~(1u << (i % 8))) | ((q >> 4) & 1) << (i % 8));
        break;
    }
    case GGML_TYPE_Q8_0: y[2 + i] = (uint8_t)(int8_t)q; break;
    case GGML_TYPE_Q4_K: {
        uint8_t *p = y + 16 + 32 * (i / 64) + i % 32;
        *p = i % 64 < 32 ? (uint8_t)((*p & 0xF0) | q) : (uint8_t)((*p & 0x0F) | q << 4);
        break;
    }
    case GGML_TYPE_Q5_K: {
        uint8_t *p = y + 48 + 32 * (i / 64) + i % 32, *h = y + 16 + i % 32;
        *p = i % 64 < 32 ? (uint8_t)((*p & 0xF0) | (q & 0xF)) : (uint8_t)((*p & 0x0F) | (q & 0xF) << 4);
        const int bit = 2 * (i / 64) + (i % 64 >= 32);
        *h = (uint8_t)((*h & ~(1u << bit)) | ((q >> 4) & 1) << bit);
        break;
    }
    case GGML_TYPE_Q3_K: {
        uint8_t *h = y + i % 32, *p = y + 32 + 32 * (i / 128) + i % 32;
        const int bit = i / 32, shift = 2 * ((i % 128) / 32);
        *h = (uint8_t)((*h & ~(1u << bit)) | ((q >> 2) & 1) << bit);
        *p = (uint8_t)((*p & ~(3u << shift)) | (q & 3) << shift);
        break;
    }
    case GGML_TYPE_Q6_K: {
        const int half = i / 128, r = i % 128, l = r % 32, quarter = r / 32;
        uint8_t *ql = y + 64 * half + l + (quarter & 1) * 32, *qh = y + 128 + 32 * half + l;
        *ql = quarter < 2 ? (uint8_t)((*ql & 0xF0) | (q & 0xF)) : (uint8_t)((*ql & 0x0F) | (q & 0xF) << 4);
        *qh = (uint8_t)((*qh & ~(3u << (2 * quarter))) | ((q >> 4) & 3) << (2 * quarter));
        break;
    }
    default: break;
    }
}

static void level_range(uint32_t type, int *lo, int *hi) {
    *lo = 0;
    switch (type) {
    case GGML_TYPE_Q8_0: *lo = -128; *hi = 127; break;
    case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q5_K: *hi = 31; break;
    case GGML_TYPE_Q6_K: *hi = 63; break;
    case GGML_TYPE_Q3_K: *hi = 7; break;
    default: *hi = 15; break;
    }
}

void qo_gptq_free(qo_gptq *g) {
    free(g->v);
    free(g->damp);
    free(g->h);
    g->v = g->damp = g->h = NULL;
}

/* The data movement around the factorisation, a band of PREP_ROWS rows per task on the pool: on
 * FFN-down's 5632 x 5632 it took longer than the factorisation itself when it ran on one thread
 * in element order (the anti-transpose walking columns). */
enum { PREP_ROWS = 64 };
typedef enum prep_step { PREP_FULL, PREP_REVERSE, PREP_ANTI, PREP_ZERO } prep_step;
typedef struct prep_job {
    double *h, *full; /* n x n; n x ldh */
    int64_t n, ldh;
    prep_step step;
} prep_job;

static void prep_task(void *ctx, size_t task, int thread) {
    (void)thread;
    const prep_job *j = ctx;
    double *h = j->h, *full = j->full;
    const int64_t n = j->n, ldh = j->ldh, i0 = (int64_t)task * PREP_ROWS, i1 = n - i0 < PREP_ROWS ? n : i0 + PREP_ROWS;
    switch (j->step) {
    case PREP_FULL: /* full = h's upper triangle mirrored, the lower part a 64 x 64 tile at a time */
        for (int64_t i = i0; i < i1; i++)
            memcpy(full + i * ldh + i, h + i * n + i, (size_t)(n - i) * sizeof *h);
        for (int64_t c0 = 0; c0 < i1; c0 += PREP_ROWS)
            for (int64_t i = i0; i < i1; i++)
                for (int64_t c = c0; c < c0 + PREP_ROWS && c < i; c++)
                    full[i * ldh + c] = h[c * n + i];
        break;
    case PREP_REVERSE: /* h = P full P: row i is row n-1-i reversed */
        for (int64_t i = i0; i < i1; i++) {
            const double *src = full + (n - 1 - i) * ldh + (n - 1);
            double *dst = h + i * n;
            for (int64_t c = 0; c < n; c++)
                dst[c] = src[-c];
        }
        break;
    case PREP_ANTI: /* h[i][j] <-> h[n-1-j][n-1-i] on the upper triangle (j >= i): with c = n-1-j,
                     * the transpose of m[i][c] = h[i][n-1-c] on i + c <= n-1, tiles (I, C >= I) */
        for (int64_t c0 = i0; c0 < n - i0; c0 += PREP_ROWS)
            for (int64_t i = i0; i < i1; i++)
                for (int64_t c = c0 > i + 1 ? c0 : i + 1; c < c0 + PREP_ROWS && c < n && i + c <= n - 1; c++) {
                    double *a = h + i * n + (n - 1 - c), *b = h + c * n + (n - 1 - i);
                    const double t = *a;
                    *a = *b;
                    *b = t;
                }
        break;
    case PREP_ZERO:
        for (int64_t i = i0; i < i1; i++)
            memset(h + i * n, 0, (size_t)i * sizeof *h);
        break;
    }
}

static void prep_run(prep_job *j, prep_step step, nm_pool *pool) {
    const size_t tasks = (size_t)((j->n + PREP_ROWS - 1) / PREP_ROWS);
    j->step = step;
    if (pool)
        nm_pool_run(pool, tasks, prep_task, j);
    else
        for (size_t t = 0; t < tasks; t++)
            prep_task(j, t, 0);
}

/* H + D = V Vᵀ with V upper: the Cholesky factor of H + D with its index order reversed
 * (P (H + D) P = Rᵀ R, V = P Rᵀ P, P the reversal), so no inverse is needed. */
int qo_gptq_prepare(qo_gptq *g, double *h, int64_t n, nm_pool *pool) {
    *g = (qo_gptq){.n = n, .v = h, .refine = true};
    double mean_diag = 0;
    for (int64_t i = 0; i < n; i++)
        mean_diag += h[i * n + i];
    mean_diag /= (double)n;
    if (!(mean_diag > 0) || !isfinite(mean_diag)) {
        qo_gptq_free(g);
        return 1;
    }
    g->ldh = n + 8;
    if (!(g->damp = malloc((size_t)n * sizeof *g->damp)) || !(g->h = malloc((size_t)(n * g->ldh) * sizeof *g->h))) {
        qo_gptq_free(g);
        return -1;
    }
    /* 10% of the mean diagonal: on the fixture's held-out text (bench-optimize.sh) Q4_0's KLD with
     * calibration was 0.814x llama-quantize --imatrix's at 0.1%, 0.809x at 1%, 0.800x at 10%,
     * 0.803x at 20%, 0.813x at 40%, 0.827x at 100%; Q4_K_M's 0.880x at 1%, 0.860x at 10%. Dead
     * columns get 1x the mean more, so their weights still move. */
    for (int64_t i = 0; i < n; i++) {
        g->damp[i] = 0.1 * mean_diag + (h[i * n + i] > 0 ? 0 : mean_diag);
        h[i * n + i] += g->damp[i];
    }
    prep_job j = {.h = h, .full = g->h, .n = n, .ldh = g->ldh};
    prep_run(&j, PREP_FULL, pool);    /* H + D in full for the refinement */
    prep_run(&j, PREP_REVERSE, pool); /* P (H + D) P */
    const int rc = nm_cholesky_upper(h, n, pool);
    if (rc != 0) {
        qo_gptq_free(g);
        return rc;
    }
    prep_run(&j, PREP_ANTI, pool); /* V[i][j] = R[n-1-j][n-1-i]: R's upper triangle becomes V's */
    prep_run(&j, PREP_ZERO, pool);
    return 0;
}

/* Element i of an IQ4_XS block set to the level nearest t for its sub-block's scale; returns
 * the value it now dequantizes to. */
static float iq4_round(uint8_t *y, int i, float t) {
    pthread_once(&iq4_once, iq4_levels_init);
    const int j = i / 32, ls = sub_get(GGML_TYPE_IQ4_XS, y, j, 0);
    const float dl = get_f16(y) * (float)(ls - 32);
    const float x[8] = {t}, w[8] = {0}; /* the kernel's smallest block; only element 0 matters */
    uint8_t L[8];
    qo_levels_ref()->nl_levels(x, w, 8, dl, iq4_levels, L);
    const uint8_t q = L[0];
    uint8_t *p = y + 8 + 16 * j + i % 16;
    *p = i % 32 < 16 ? (uint8_t)((*p & 0xF0) | q) : (uint8_t)((*p & 0x0F) | q << 4);
    return dl * iq4_levels[q];
}

static const uint32_t grid_types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                       GGML_TYPE_Q8_0, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                                       GGML_TYPE_Q6_K};
enum { GRID_TYPES = sizeof grid_types / sizeof *grid_types };
/* Per type of grid_types, the bits set_level writes and the block bytes with every level 1, so
 * a grid is two masked copies, not 2 x block size set_level calls (which were 5% of a run). */
static uint8_t level_mask[GRID_TYPES][MAX_BLOCK + 64], level_one[GRID_TYPES][MAX_BLOCK + 64];
static pthread_once_t level_bits_once = PTHREAD_ONCE_INIT;
static void level_bits_init(void) {
    for (int k = 0; k < GRID_TYPES; k++) {
        const int bs = (int)ggml_type_get(grid_types[k])->block_size;
        int lo, hi;
        level_range(grid_types[k], &lo, &hi);
        for (int i = 0; i < bs; i++) {
            set_level(grid_types[k], level_mask[k], i, lo < 0 ? -1 : hi); /* every stored bit */
            set_level(grid_types[k], level_one[k], i, 1);
        }
    }
}

/* Each element's grid in a block whose scales are set: value(q) = v0 + q * (v1 - v0). Not for
 * IQ4_XS, whose levels are not evenly spaced (grid_round rounds it to its sub-block's own). */
static void grid_of(uint32_t type, const uint8_t *blk, float *v0, float *v1) {
    const ggml_type_info *t = ggml_type_get(type);
    const int bs = (int)t->block_size;
    int k = 0;
    while (k < GRID_TYPES && grid_types[k] != type)
        k++;
    if (k == GRID_TYPES)
        return;
    pthread_once(&level_bits_once, level_bits_init);
    uint8_t probe[MAX_BLOCK + 64];
    for (size_t b = 0; b < t->type_size; b++)
        probe[b] = (uint8_t)(blk[b] & ~level_mask[k][b]);
    nm_dequantize_row(type, probe, v0, bs);
    for (size_t b = 0; b < t->type_size; b++)
        probe[b] |= level_one[k][b];
    nm_dequantize_row(type, probe, v1, bs);
}

/* Element i of the block set to the level nearest value tv (levels lo .. hi on the grid v0, v1);
 * returns the value it now has. */
static double grid_round(uint32_t type, uint8_t *blk, int i, double tv, const float *v0, const float *v1, int lo,
                         int hi) {
    if (type == GGML_TYPE_IQ4_XS)
        return iq4_round(blk, i, (float)tv);
    const float step = v1[i] - v0[i];
    const int q = step != 0 ? clampi(round_level((float)((tv - v0[i]) / step)), lo, hi) : 0;
    set_level(type, blk, i, q);
    return (double)v0[i] + (double)q * step;
}

enum { GPTQ_COLS = 256 }; /* columns per lazy update: a multiple of every block size */

/* ---- refinement after the error feedback ----
 * GPTQ visits each column once, with the scales its block chose before the block's own errors
 * were known. Afterwards the cost δᵀ(H + D)δ can still fall by moving one element's level, one
 * block's f16 scales or one sub-block's integer scale and min, everything else fixed: coordinate
 * descent, as QuantEase (Behdin et al., 2023) does for the levels. With grad = (H + D)δ kept up
 * to date, the best level of element c is the one nearest its value plus grad_c / H_cc, and the
 * best scales solve a 1x1 or 2x2 system (the dequantized values are linear in each of them),
 * rounded to what the format stores, with the neighbours tried. Every move lowers the cost or is
 * not made. Passes over the row repeat until one moves nothing (at most REFINE_PASSES): about 3%
 * of the levels move in the first, fewer after, so each move updates grad on its own
 * (nm_daxpy_many). On the fixture (bench-optimize.sh, --calibration) it took Q4_K_M's KLD ratio
 * against llama-quantize --imatrix from 0.859 to 0.816 (0.832 with one pass, 0.811 with two),
 * Q6_K's from 0.861 to 0.833, Q4_0's from 0.798 to 0.767. */

/* The elements that share one scale search: a block of 32 (its f16 scales) or a sub-block (its
 * integer scale and min). k and a depend on the levels only, so they are kept until one of the
 * unit's values moves. */
typedef struct refine_unit {
    float k[2][32]; /* the values' change per unit of each parameter */
    double a[2][2]; /* kᵀ(H + D)k on the unit's elements */
    bool valid;
} refine_unit;

/* One block of one row being refined: its moves change δ and the block's own entries of grad at
 * once; the rest of grad follows when the block is done for every row (refine_rows). */
typedef struct refine_blk {
    uint32_t type;
    const ggml_type_info *t;
    int bs;
    const double *h; /* H + D */
    int64_t ldh;     /* its rows' distance */
    int64_t n, b0;   /* the row's length, the block's first column */
    double *delta;   /* the row's δ */
    double *grad;    /* the row's (H + D)δ */
    double *ndv;     /* minus the block's value changes not yet in grad outside the block */
    refine_unit *units; /* the row's, ulen elements each */
    int ulen;
} refine_blk;

/* Elements i0 .. i0 + len - 1 of the block move by chg (their values; δ by -chg). */
static void refine_move(const refine_blk *rb, int i0, int len, const double *chg) {
    for (int i = 0; i < len; i++) {
        if (chg[i] == 0)
            continue;
        const int64_t c = rb->b0 + i0 + i;
        const double *hr = rb->h + c * rb->ldh + rb->b0;
        rb->delta[c] -= chg[i];
        rb->ndv[i0 + i] -= chg[i];
        rb->units[c / rb->ulen].valid = false;
        nm_dsub_scaled(rb->bs, chg[i], hr, rb->grad + rb->b0);
    }
}

/* The block's levels, each the nearest to its value + grad_c / H_cc. Returns the number moved. */
static int refine_levels(const refine_blk *rb, uint8_t *blk, const float *x) {
    const uint32_t type = rb->type;
    const int bs = rb->bs;
    float v0[MAX_BLOCK], v1[MAX_BLOCK];
    int lo, hi, moved = 0;
    level_range(type, &lo, &hi);
    if (type != GGML_TYPE_IQ4_XS)
        grid_of(type, blk, v0, v1);
    for (int i = 0; i < bs; i++) {
        const int64_t c = rb->b0 + i;
        const double qv = (double)x[c] - rb->delta[c], tv = qv + rb->grad[c] / rb->h[c * rb->ldh + c];
        const double nv = grid_round(type, blk, i, tv, v0, v1, lo, hi);
        if (nv != qv) {
            const double chg = nv - qv;
            refine_move(rb, i, 1, &chg);
            moved++;
        }
    }
    return moved;
}

/* The best change s of the np parameters of the unit at elements i0 .. i0 + len - 1 of the block
 * (u->k filled): the cost changes by -2 s·b + sᵀ A s. Fills A (once per levels) and b; false when
 * A is singular. */
static bool refine_solve(const refine_blk *rb, int i0, int len, int np, refine_unit *u, double b[2], double s[2]) {
    const int64_t c0 = rb->b0 + i0;
    double (*a)[2] = u->a;
    if (!u->valid) {
        double hk[2][32]; /* (H + D) k[q] on the elements */
        for (int i = 0; i < len; i++) {
            const double *hr = rb->h + (c0 + i) * rb->ldh + c0;
            for (int q = 0; q < np; q++) {
                double sum = 0;
                for (int j = 0; j < len; j++)
                    sum += hr[j] * u->k[q][j];
                hk[q][i] = sum;
            }
        }
        for (int p = 0; p < np; p++)
            for (int q = 0; q < np; q++) {
                a[p][q] = 0;
                for (int i = 0; i < len; i++)
                    a[p][q] += u->k[p][i] * hk[q][i];
            }
        u->valid = true;
    }
    for (int p = 0; p < np; p++) {
        b[p] = 0;
        for (int i = 0; i < len; i++)
            b[p] += u->k[p][i] * rb->grad[c0 + i];
    }
    if (np == 1) {
        s[0] = b[0] / a[0][0];
        return a[0][0] > 0;
    }
    const double det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    s[0] = (b[0] * a[1][1] - b[1] * a[0][1]) / det;
    s[1] = (a[0][0] * b[1] - a[1][0] * b[0]) / det;
    return det > 0 && a[0][0] > 0 && isfinite(s[0]) && isfinite(s[1]);
}

static double refine_cost(int np, const double a[2][2], const double b[2], const double ds[2]) {
    double cost = 0;
    for (int p = 0; p < np; p++) {
        cost -= 2 * ds[p] * b[p];
        for (int q = 0; q < np; q++)
            cost += ds[p] * a[p][q] * ds[q];
    }
    return cost;
}

/* Moves elements i0 .. i0 + len - 1 by the change of their dequantized values from before (the
 * block's values before its new parameters were set). */
static void refine_commit(const refine_blk *rb, const uint8_t *blk, const float *before, int i0, int len) {
    float now[MAX_BLOCK];
    double chg[MAX_BLOCK];
    nm_dequantize_row(rb->type, blk, now, rb->bs);
    for (int i = 0; i < len; i++)
        chg[i] = (double)now[i0 + i] - before[i0 + i];
    refine_move(rb, i0, len, chg);
}

/* The f16 scale (and min) of a block of 32 (Q4_0 .. Q8_0: d at byte 0, Q4_1's and Q5_1's m at
 * byte 2): the least-squares optimum for its levels, rounded to f16 with its neighbours tried.
 * Returns 1 when they moved. Not for the super-blocks of 256: with their 256 x 256 quadratic
 * forms (then computed in every pass) a calibrated Q4_K_M of a 2-layer TinyLlama took 598 s
 * instead of 244 s, for a KLD ratio on the fixture of 0.796 instead of 0.800. */
static int refine_scales(const refine_blk *rb, uint8_t *blk) {
    const int bs = rb->bs;
    const int off[2] = {0, 2}, np = rb->type == GGML_TYPE_Q4_1 || rb->type == GGML_TYPE_Q5_1 ? 2 : 1;
    refine_unit *u = &rb->units[rb->b0 / bs];
    double b[2], s[2], th[2];
    for (int p = 0; p < np; p++) {
        th[p] = get_f16(blk + off[p]);
        if (u->valid)
            continue;
        uint8_t probe[MAX_BLOCK + 64]; /* the values per unit of scale p */
        memcpy(probe, blk, rb->t->type_size);
        for (int q = 0; q < np; q++)
            put_f16(probe + off[q], p == q ? 1.0f : 0.0f);
        nm_dequantize_row(rb->type, probe, u->k[p], bs);
    }
    if (!refine_solve(rb, 0, bs, np, u, b, s))
        return 0;
    const double (*a)[2] = (const double (*)[2])u->a;
    uint16_t base[2] = {0, 0}, best[2];
    for (int p = 0; p < np; p++)
        base[p] = nm_f32_to_f16((float)(th[p] + s[p]));
    double best_cost = 0;
    bool found = false;
    const int r = np == 1 ? 2 : 1;
    for (int o0 = -r; o0 <= r; o0++)
        for (int o1 = -r; o1 <= (np == 2 ? r : -r); o1++) {
            const uint16_t c[2] = {(uint16_t)(base[0] + o0), (uint16_t)(base[1] + o1)};
            double ds[2] = {0, 0};
            bool fin = true;
            for (int p = 0; p < np; p++) {
                const float v = nm_f16_to_f32(c[p]);
                fin = fin && isfinite(v);
                ds[p] = (double)v - th[p];
            }
            const double cost = fin ? refine_cost(np, a, b, ds) : 0;
            if (cost < best_cost) {
                best_cost = cost;
                best[0] = c[0], best[1] = c[1];
                found = true;
            }
        }
    if (!found)
        return 0;
    float cur[MAX_BLOCK];
    nm_dequantize_row(rb->type, blk, cur, bs);
    for (int p = 0; p < np; p++) {
        blk[off[p]] = (uint8_t)(best[p] & 0xFF);
        blk[off[p] + 1] = (uint8_t)(best[p] >> 8);
    }
    refine_commit(rb, blk, cur, 0, bs);
    return 1;
}

/* Each sub-block's integer scale (and min): the least-squares optimum for its levels, rounded,
 * with its integer neighbours tried. A sub-block's values depend on its own integers only, so
 * the values per unit of each integer come from one probe of the block for all its sub-blocks,
 * and the values before any move are those of the block as it came. Returns the number moved. */
static int refine_subscales(const refine_blk *rb, uint8_t *blk) {
    const uint32_t type = rb->type;
    int len, np, lo, hi, moved = 0;
    const int ns = sub_scales(type, &len, &np, &lo, &hi), bs = rb->bs;
    if (!ns)
        return 0;
    refine_unit *units = &rb->units[rb->b0 / len];
    int raw[16][2] = {{0}};
    bool stale = false;
    for (int j = 0; j < ns; j++) {
        stale = stale || !units[j].valid;
        for (int p = 0; p < np; p++)
            raw[j][p] = sub_get(type, blk, j, p);
    }
    float cur[MAX_BLOCK]; /* read only when a probe or a move needs it */
    if (stale)
        nm_dequantize_row(type, blk, cur, bs);
    for (int p = 0; p < np && stale; p++) {
        float probed[MAX_BLOCK]; /* each sub-block's values with integer p one step on */
        uint8_t probe[MAX_BLOCK + 64];
        memcpy(probe, blk, rb->t->type_size);
        for (int j = 0; j < ns; j++)
            sub_set(type, probe, j, p, raw[j][p] + (raw[j][p] < hi ? 1 : -1));
        nm_dequantize_row(type, probe, probed, bs);
        for (int j = 0; j < ns; j++) {
            const float step = raw[j][p] < hi ? 1.0f : -1.0f;
            if (!units[j].valid)
                for (int i = 0; i < len; i++)
                    units[j].k[p][i] = (probed[j * len + i] - cur[j * len + i]) * step;
        }
    }
    for (int j = 0; j < ns; j++) {
        refine_unit *u = &units[j];
        double b[2], s[2];
        if (!refine_solve(rb, j * len, len, np, u, b, s))
            continue;
        const double (*a)[2] = (const double (*)[2])u->a;
        int base[2] = {0, 0}, best[2] = {raw[j][0], raw[j][1]};
        for (int p = 0; p < np; p++)
            base[p] = (int)lround(fmax(fmin(s[p], 1e6), -1e6));
        double best_cost = 0;
        for (int o0 = -1; o0 <= 1; o0++)
            for (int o1 = -1; o1 <= (np == 2 ? 1 : -1); o1++) {
                const double ds[2] = {base[0] + o0, np == 2 ? base[1] + o1 : 0};
                bool in = true;
                for (int p = 0; p < np; p++)
                    in = in && raw[j][p] + ds[p] >= lo && raw[j][p] + ds[p] <= hi;
                const double cost = in ? refine_cost(np, a, b, ds) : 0;
                if (cost < best_cost) {
                    best_cost = cost;
                    best[0] = raw[j][0] + (int)ds[0], best[1] = raw[j][1] + (int)ds[1];
                }
            }
        if (best[0] == raw[j][0] && best[1] == raw[j][1])
            continue;
        if (!stale && !moved) /* the values before any move */
            nm_dequantize_row(type, blk, cur, bs);
        for (int p = 0; p < np; p++)
            sub_set(type, blk, j, p, best[p]);
        refine_commit(rb, blk, cur, j * len, len);
        moved++;
    }
    return moved;
}

/* Passes at most. On a 2-layer TinyLlama (Q4_K_M, --calibration-random) the passes after the
 * fifth made 9% of the moves (0.92 M of 9.75 M) in 22% of the refinement's time; on the fixture
 * (--calibration, KLD ratio) five against eight gave 0.7996 against 0.7997 for Q4_K_M, 0.839
 * against 0.830 for Q8_0 and within 0.003 for the eight other types. The refinement's path is
 * chaotic: computing the starting gradient as V (Vᵀδ) instead of (H + D)δ, the same to 1e-14,
 * first moved Q4_K_M's ratio from 0.799 to 0.817 (with the Q6_K/Q3_K search from one start and
 * the embedding's factor made from all of its H, 0.803); differences of 0.01 between variants
 * are noise. */
enum { REFINE_PASSES = 5 };
enum { REFINE_PANEL = 256 }; /* a multiple of 8, so every element is updated as in one nm_daxpy */

/* Refines rows (R blocks rows, δ delta and grad = (H + D)δ, R x n each) in passes over the blocks
 * until a pass moves nothing: every row's moves in one block, each updating grad on the block's
 * own columns at once, then the rest of grad from the moved elements' rows of H + D (the rows of
 * a task share them in cache). ndv, keep: R x bs scratch. Returns -1 when out of memory. */
static int refine_rows(uint32_t type, uint8_t *rows, size_t row_size, const float *src, int64_t R, int64_t n,
                       const double *h, int64_t ldh, double *delta, double *grad, const bool *ok, double *ndv,
                       double *keep) {
    const ggml_type_info *t = ggml_type_get(type);
    const int bs = (int)t->block_size;
    int len, np, lo, hi;
    const int ulen = sub_scales(type, &len, &np, &lo, &hi) ? len : bs;
    refine_unit *units = calloc((size_t)(R * (n / ulen)), sizeof *units);
    int *moved_at = malloc((size_t)(R * bs) * sizeof *moved_at), *moved_n = malloc((size_t)R * sizeof *moved_n);
    const double *rows_at[MAX_BLOCK];
    if (!units || !moved_at || !moved_n) {
        free(units); free(moved_at); free(moved_n);
        return -1;
    }
    for (int pass = 0; pass < REFINE_PASSES; pass++) {
        int64_t moved = 0;
        for (int64_t b0 = 0; b0 < n; b0 += bs) {
            int64_t block_moved = 0;
            memset(ndv, 0, (size_t)(R * bs) * sizeof *ndv);
            for (int64_t r = 0; r < R; r++) {
                if (!ok[r])
                    continue;
                const refine_blk rb = {type,          t,           bs, h, ldh, n, b0, delta + r * n, grad + r * n,
                                       ndv + r * bs, units + r * (n / ulen), ulen};
                uint8_t *blk = rows + (size_t)r * row_size + (size_t)(b0 / bs) * t->type_size;
                block_moved += refine_levels(&rb, blk, src + r * n);
                if (bs <= 32) /* see refine_scales */
                    block_moved += refine_scales(&rb, blk);
                block_moved += refine_subscales(&rb, blk);
            }
            if (!block_moved)
                continue;
            moved += block_moved;
            for (int64_t r = 0; r < R; r++) /* the block's own columns are current already */
                memcpy(keep + r * bs, grad + r * n + b0, (size_t)bs * sizeof *keep);
            /* moves are few (13% of the values change in a first pass, from 3% of the levels
             * and the scales): one row of H + D for each, in panels of columns that keep the
             * block's rows of it in cache across the rows */
            for (int64_t r = 0; r < R; r++) {
                int k = 0;
                for (int i = 0; i < bs; i++)
                    if (ndv[r * bs + i] != 0)
                        ndv[r * bs + k] = ndv[r * bs + i], moved_at[r * bs + k++] = i;
                moved_n[r] = k;
            }
            for (int64_t c0 = 0; c0 < n; c0 += REFINE_PANEL) {
                const int64_t nc = n - c0 < REFINE_PANEL ? n - c0 : REFINE_PANEL;
                for (int64_t r = 0; r < R; r++) {
                    for (int k = 0; k < moved_n[r]; k++)
                        rows_at[k] = h + (b0 + moved_at[r * bs + k]) * ldh + c0;
                    nm_daxpy_many(nc, moved_n[r], ndv + r * bs, rows_at, grad + r * n + c0);
                }
            }
            for (int64_t r = 0; r < R; r++)
                memcpy(grad + r * n + b0, keep + r * bs, (size_t)bs * sizeof *keep);
        }
        if (!moved)
            break;
    }
    free(units); free(moved_at); free(moved_n);
    return 0;
}

/* With H + D = V Vᵀ (V upper) the cost of a row's error δ = w - q is δᵀ(H + D)δ = |Vᵀδ|², and
 * quantizing column c after the earlier ones, the best target is wv_c = w_c + Σ_{k<c} V_kc δ_k /
 * V_cc; its term of the cost is (V_cc (wv_c - q_c))². The sums over earlier columns are one
 * product per GPTQ_COLS columns (nm_gemm_acc) plus running updates inside them. */
int qo_quantize_rows_gptq(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                          const float *imatrix, const float *weights, const qo_gptq *g, nm_error *err) {
    opt_block_fn fn = block_fn(type, g && g->refine);
    if (!fn || !g || !g->v || g->n != n_per_row || nrows < 1)
        return qo_quantize_rows(type, src, dst, nrows, n_per_row, imatrix, weights, err);
    /* llama.cpp's blocks first: the fallback for any row GPTQ does not improve (searching them as
     * well doubled the cost and was almost never kept) */
    if (nm_quantize_rows(type, src, dst, nrows, n_per_row, imatrix, err) != 0)
        return -1;
    const ggml_type_info *t = ggml_type_get(type);
    const int bs = (int)t->block_size;
    size_t row_size;
    if (ggml_row_size(type, (uint64_t)n_per_row, &row_size) != 0)
        return nm_fail(err, "row too large");
    const int64_t n = n_per_row, R = nrows;
    const double *v = g->v;
    /* acc: R x GPTQ_COLS for the feedback, then R x bs twice for the refinement's scratch */
    double *delta = malloc((size_t)(R * n) * sizeof *delta), *acc = malloc((size_t)(2 * R * GPTQ_COLS) * sizeof *acc);
    double *e_new = calloc((size_t)R, sizeof *e_new), *proj = calloc((size_t)(R * n), sizeof *proj);
    double *u = g->refine ? calloc((size_t)(R * n), sizeof *u) : NULL; /* Vᵀδ per row, for the refinement */
    float *w = malloc((size_t)n * sizeof *w), *deq = malloc((size_t)n * sizeof *deq);
    uint8_t *rows = malloc((size_t)R * row_size);
    bool *ok = malloc((size_t)R * sizeof *ok);
    int rc = 0;
    if (!delta || !acc || !e_new || !proj || !w || !deq || !rows || !ok || (g->refine && !u)) {
        rc = nm_fail(err, "out of memory");
        goto done;
    }
    row_weights(weights ? weights : imatrix, n, w);
    int lo, hi;
    level_range(type, &lo, &hi);
    for (int64_t r = 0; r < R; r++)
        ok[r] = true;
    for (int64_t c0 = 0; c0 < n; c0 += GPTQ_COLS) {
        const int64_t c1 = n - c0 < GPTQ_COLS ? n : c0 + GPTQ_COLS, nc = c1 - c0;
        memset(acc, 0, (size_t)(R * nc) * sizeof *acc);
        if (c0 > 0) /* acc[r][j] = Σ_{k<c0} δ[r][k] V[k][c0+j] */
            nm_gemm_acc(acc, nc, delta, n, v + c0, n, R, c0, nc, false);
        for (int64_t b0 = c0; b0 < c1; b0 += bs) {
            for (int64_t r = 0; r < R; r++) {
                if (!ok[r])
                    continue;
                const float *x = src + r * n;
                double *ar = acc + r * nc, *dr = delta + r * n;
                float xb[MAX_BLOCK], v0[MAX_BLOCK], v1[MAX_BLOCK];
                uint8_t seed[MAX_BLOCK + 64];
                uint8_t *blk = rows + (size_t)r * row_size + (size_t)(b0 / bs) * t->type_size;
                for (int i = 0; i < bs; i++)
                    xb[i] = (float)(x[b0 + i] + ar[b0 - c0 + i] / v[(b0 + i) * n + b0 + i]);
                nm_error e2;
                if (nm_quantize_rows(type, xb, seed, 1, bs, NULL, &e2) != 0) {
                    ok[r] = false;
                    continue;
                }
                fn(xb, w + b0, seed, blk);
                const bool nl = type == GGML_TYPE_IQ4_XS;
                if (!nl)
                    grid_of(type, blk, v0, v1);
                for (int i = 0; i < bs; i++) {
                    const int64_t c = b0 + i;
                    const double vcc = v[c * n + c], wv = x[c] + ar[c - c0] / vcc;
                    const double qv = grid_round(type, blk, i, wv, v0, v1, lo, hi);
                    if (nl)
                        v0[i] = v1[i] = (float)qv; /* for the finiteness check below */
                    const double e = vcc * (wv - qv); /* (Vᵀδ)_c */
                    dr[c] = x[c] - qv;
                    if (u)
                        u[r * n + c] = e;
                    e_new[r] += e * e - g->damp[c] * dr[c] * dr[c]; /* the cost under H itself */
                    if (c + 1 < c1)
                        nm_daxpy(c1 - c - 1, dr[c], v + c * n + c + 1, ar + (c + 1 - c0));
                }
                for (int i = 0; i < bs; i++)
                    ok[r] = ok[r] && isfinite(v0[i]) && isfinite(v1[i]);
            }
        }
    }
    if (g->refine) {
        nm_gemm_acc_upper_t(proj, n, u, n, v, n, R, n); /* grad = (H + D)δ = V (Vᵀδ) per row */
        if (refine_rows(type, rows, row_size, src, R, n, g->h, g->ldh, delta, proj, ok, acc, acc + R * bs) != 0) {
            rc = nm_fail(err, "out of memory");
            goto done;
        }
        for (int64_t r = 0; r < R; r++) {
            const double *dr = delta + r * n, *gr = proj + r * n;
            double cost = 0;
            for (int64_t i = 0; i < n; i++)
                cost += dr[i] * gr[i] - g->damp[i] * dr[i] * dr[i];
            e_new[r] = cost;
        }
        memset(proj, 0, (size_t)(R * n) * sizeof *proj);
    }
    /* llama.cpp's rows' cost, |Vᵀδ|² - δᵀDδ, from one more product (delta now takes their δ) */
    for (int64_t r = 0; r < R; r++) {
        nm_dequantize_row(type, (const uint8_t *)dst + (size_t)r * row_size, deq, n);
        for (int64_t i = 0; i < n; i++)
            delta[r * n + i] = (double)src[r * n + i] - deq[i];
    }
    nm_gemm_acc(proj, n, delta, n, v, n, R, n, n, true);
    for (int64_t r = 0; r < R; r++) {
        double e_old = 0;
        for (int64_t i = 0; i < n; i++)
            e_old += proj[r * n + i] * proj[r * n + i] - g->damp[i] * delta[r * n + i] * delta[r * n + i];
        uint8_t *y = (uint8_t *)dst + (size_t)r * row_size;
        if (ok[r] && e_new[r] < e_old)
            memcpy(y, rows + (size_t)r * row_size, row_size);
        else if (!ok[r] && (rc = qo_quantize_rows(type, src + r * n, y, 1, n, imatrix, weights, err)) != 0)
            break;
    }
done:
    free(proj); free(u); free(delta); free(acc); free(e_new); free(w); free(deq); free(rows); free(ok);
    return rc;
}
