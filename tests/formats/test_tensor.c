/* Type table and f32<->f16/bf16 conversions: FORMATS.md §3.0 check values; the scalar
 * references against independent libm-based oracles (every f16 and bf16 value, 10^8 f32
 * patterns); the SIMD row conversions (called directly, whatever NOMOAT_NO_SIMD says)
 * bit-identical to the references on every f16/bf16 value and on 1.3·10^8 non-NaN f32 patterns
 * across all exponents, at every tail length and alignment; NaN never becomes a number. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "formats/tensor.h"
#include "formats/tensor_simd.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_type_table(void **state) {
    (void)state;
    assert_int_equal(ggml_type_get(GGML_TYPE_Q4_K)->type_size, 144);
    assert_int_equal(ggml_type_get(GGML_TYPE_Q6_K)->type_size, 210);
    assert_int_equal(ggml_type_get(GGML_TYPE_Q8_0)->block_size, 32);
    assert_null(ggml_type_get(4));
    assert_null(ggml_type_get(31));
    assert_null(ggml_type_get(36));
    assert_null(ggml_type_get(GGML_TYPE_COUNT));
    assert_int_equal(ggml_type_from_name("q4_k"), GGML_TYPE_Q4_K);
    assert_int_equal(ggml_type_from_name("nope"), -1);
    size_t size;
    int64_t ne[4] = {256, 3, 1, 1};
    assert_int_equal(ggml_tensor_size(GGML_TYPE_Q4_K, ne, &size), 0);
    assert_int_equal(size, 3 * 144);
    ne[0] = 100;
    assert_int_equal(ggml_tensor_size(GGML_TYPE_Q4_K, ne, &size), -1);
    int64_t huge[4] = {INT64_MAX, INT64_MAX, 1, 1};
    assert_int_equal(ggml_tensor_size(GGML_TYPE_F32, huge, &size), -1);
}

static void test_f16_check_values(void **state) {
    (void)state;
    assert_int_equal(nm_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(nm_f32_to_f16(65519.99f), 0x7BFF);
    assert_int_equal(nm_f32_to_f16(65520.0f), 0x7C00);
    assert_int_equal(nm_f32_to_f16(0.1f), 0x2E66);
    assert_int_equal(nm_f32_to_f16(1.0f / 3.0f), 0x3555);
    assert_int_equal(nm_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(nm_f32_to_f16(0x1p-25f), 0x0000);
    assert_int_equal(nm_f32_to_f16(from_bits(0x33000001)), 0x0001);
    assert_int_equal(nm_f32_to_f16(from_bits(0x7F800000)), 0x7C00);
    assert_int_equal(nm_f32_to_f16(from_bits(0x7FC00000)), 0x7E00);
    assert_int_equal(nm_f32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(nm_f32_to_bf16(from_bits(0x3F808000)), 0x3F80); /* tie to even */
    assert_int_equal(nm_f32_to_bf16(from_bits(0x3F818000)), 0x3F82);
    assert_int_equal(nm_f32_to_bf16(from_bits(0x7F800001)), 0x7FC0);
    /* more edges: half subnormal/normal boundary, rounding into the exponent, overflow */
    assert_int_equal(nm_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(nm_f32_to_f16(0x1p-14f), 0x0400);
    assert_int_equal(nm_f32_to_f16(0x1.ff8p-15f), 0x03FF); /* 1023.0 * 2^-24 exactly */
    assert_int_equal(nm_f32_to_f16(0x1.ffcp-15f), 0x0400); /* 1023.5 * 2^-24: tie, to even 1024 */
    assert_int_equal(nm_f32_to_f16(0x1.ff4p-15f), 0x03FE); /* 1022.5: tie, to even 1022 */
    assert_int_equal(nm_f32_to_f16(1.0f), 0x3C00);
    assert_int_equal(nm_f32_to_f16(0x1.002p0f), 0x3C00);   /* tie, to even */
    assert_int_equal(nm_f32_to_f16(0x1.006p0f), 0x3C02);   /* tie, to even (up) */
    assert_int_equal(nm_f32_to_f16(-65520.0f), 0xFC00);
    assert_int_equal(nm_f32_to_f16(from_bits(0x7F7FFFFF)), 0x7C00);
    assert_int_equal(nm_f32_to_f16(from_bits(0x00000001)), 0x0000);
    assert_int_equal(nm_f32_to_f16(from_bits(0x80000001)), 0x8000);
    assert_int_equal(nm_f32_to_bf16(from_bits(0x3F7FFFFF)), 0x3F80);
    assert_int_equal(nm_f32_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80); /* max float rounds to Inf */
    assert_int_equal(nm_f32_to_bf16(from_bits(0xFF800000)), 0xFF80);
    assert_int_equal(nm_f32_to_bf16(from_bits(0x00008000)), 0x0000); /* subnormal tie to even */
    assert_int_equal(nm_f32_to_bf16(from_bits(0x00018000)), 0x0002);
    assert_true(nm_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(nm_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(nm_f16_to_f32(0x8400) == -0x1p-14f);
    assert_true(nm_bf16_to_f32(0x3F80) == 1.0f);
}

static void test_f16_roundtrip_all(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2), *back = malloc(65536 * 2);
    float *f = malloc(65536 * 4), *fr = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    nm_f16_to_f32_row(h, f, 65536);
    nm_f16_to_f32_row_ref(h, fr, 65536);
    assert_memory_equal(f, fr, 65536 * 4);
    for (uint32_t i = 0; i < 65536; i++) {
        if ((h[i] & 0x7FFF) > 0x7C00)
            f[i] = 0; /* NaN payloads are not compared */
    }
    nm_f32_to_f16_row(f, back, 65536);
    for (uint32_t i = 0; i < 65536; i++)
        if ((h[i] & 0x7FFF) <= 0x7C00)
            assert_int_equal(back[i], h[i]);
    free(h);
    free(back);
    free(f);
    free(fr);
}

static void test_bf16_to_f32_all(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2);
    float *a = malloc(65536 * 4), *b = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    nm_bf16_to_f32_row(h, a, 65536);
    nm_bf16_to_f32_row_ref(h, b, 65536);
    assert_memory_equal(a, b, 65536 * 4);
    free(h);
    free(a);
    free(b);
}

typedef struct simd_rows simd_rows;
static const simd_rows *simd(void);

/* The one-pass BF16 -> F16 row: every BF16 pattern gives what the two-step reference gives
 * (NaN patterns excepted: only the flag is defined), the NaN flag is raised exactly when a NaN
 * is present, at every length and misalignment (SIMD body and scalar tail). */
static void test_bf16_to_f16_every_value(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2 + 64), *a = malloc(65536 * 2 + 64), *b = malloc(65536 * 2 + 64);
    uint32_t n = 0;
    for (uint32_t i = 0; i < 65536; i++)
        if ((i & 0x7FFF) <= 0x7F80)
            h[n++] = (uint16_t)i;
    assert_false(nm_bf16_to_f16_row(h, a, n));
    assert_false(nm_bf16_to_f16_row_ref(h, b, n));
    assert_memory_equal(a, b, n * 2);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(b[i], nm_f32_to_f16(nm_bf16_to_f32(h[i])));
    for (size_t len = 1; len <= 70; len++)
        for (size_t off = 0; off < 3; off++)
            for (size_t at = 0; at < len; at += 7) {
                uint16_t keep = h[off + at];
                h[off + at] = (uint16_t)(0x7F81 + (len & 0x7E) + 0x8000 * (at & 1)); /* a NaN */
                assert_true(nm_bf16_to_f16_row(h + off, a + off, len));
                assert_true(nm_bf16_to_f16_row_ref(h + off, b + off, len));
                h[off + at] = keep;
                assert_false(nm_bf16_to_f16_row(h + off, a + off, len));
                nm_bf16_to_f16_row_ref(h + off, b + off, len);
                assert_memory_equal(a + off, b + off, len * 2);
            }
#if defined(__x86_64__)
    if (simd()) { /* AVX2 and F16C */
        memset(a, 0, n * 2);
        assert_false(nm_bf16_to_f16_row_avx2(h, a, n));
        nm_bf16_to_f16_row_ref(h, b, n);
        assert_memory_equal(a, b, n * 2);
    }
#endif
    free(h);
    free(a);
    free(b);
}


/* ---- direct access to this CPU's SIMD rows (skip when the CPU lacks them) ---- */
struct simd_rows {
    const char *name;
    void (*f32_to_f16)(const float *, uint16_t *, size_t);
    void (*f16_to_f32)(const uint16_t *, float *, size_t);
    void (*f32_to_bf16)(const float *, uint16_t *, size_t);
    void (*bf16_to_f32)(const uint16_t *, float *, size_t);
};

static const simd_rows *simd(void) {
#if defined(__x86_64__)
    static const simd_rows r = {"avx2", nm_f32_to_f16_row_avx2, nm_f16_to_f32_row_avx2, nm_f32_to_bf16_row_avx2,
                                nm_bf16_to_f32_row_avx2};
    __builtin_cpu_init();
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (__builtin_cpu_supports("avx2") && ((c >> 29) & 1))
        return &r;
#elif defined(__aarch64__)
    static const simd_rows r = {"neon", nm_f32_to_f16_row_neon, nm_f16_to_f32_row_neon, nm_f32_to_bf16_row_neon,
                                nm_bf16_to_f32_row_neon};
    return &r;
#endif
    return NULL;
}

/* ---- independent oracles: libm rounding (nearbyint, ties to even) on exact double values ---- */

static uint16_t oracle_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    double x = fabs((double)f);
    if (isinf(x))
        return sign | 0x7C00;
    if (x < 0x1p-14) /* half subnormal grid: multiples of 2^-24 (1024 = smallest normal) */
        return sign | (uint16_t)nearbyint(x * 0x1p24);
    int k;
    frexp(x, &k); /* x = m * 2^k, m in [0.5, 1): exponent k-1, grid 2^(k-11) */
    double q = nearbyint(ldexp(x, 11 - k));
    int e = k - 1;
    if (q == 2048.0)
        q = 1024.0, e++;
    if (e + 15 >= 31)
        return sign | 0x7C00;
    return sign | (uint16_t)(((e + 15) << 10) | ((int)q - 1024));
}

static uint16_t oracle_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    double x = fabs((double)f);
    if (isinf(x))
        return sign | 0x7F80;
    if (x < 0x1p-126) /* bf16 subnormal grid 2^-133; 128 = smallest normal */
        return sign | (uint16_t)nearbyint(x * 0x1p133);
    int k;
    frexp(x, &k);
    double q = nearbyint(ldexp(x, 8 - k));
    int e = k - 1;
    if (q == 256.0)
        q = 128.0, e++;
    if (e + 127 >= 255)
        return sign | 0x7F80;
    return sign | (uint16_t)(((e + 127) << 7) | ((int)q - 128));
}

static float oracle_f16_to_f32(uint16_t h) {
    int E = (h >> 10) & 31, M = h & 1023;
    double v = E == 0 ? ldexp(M, -24) : E == 31 ? (M ? NAN : INFINITY) : ldexp(1024 + M, E - 25);
    return (float)(h & 0x8000 ? -v : v);
}

static void test_f16_to_f32_every_value(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2);
    float *ref = malloc(65536 * 4), *vec = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    nm_f16_to_f32_row_ref(h, ref, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        float o = oracle_f16_to_f32(h[i]);
        if (isnan(o)) {
            uint32_t u;
            memcpy(&u, &ref[i], 4);
            /* NaN stays NaN with its sign and payload (made quiet, as F16C/NEON do) */
            assert_true(isnan(ref[i]));
            assert_int_equal(u, ((uint32_t)(h[i] & 0x8000) << 16) | 0x7FC00000u | ((uint32_t)(h[i] & 0x3FF) << 13));
        } else if (memcmp(&o, &ref[i], 4) != 0)
            fail_msg("f16 %04x: reference %a, oracle %a", h[i], ref[i], o);
        assert_true(nm_f16_to_f32(h[i]) == ref[i] || isnan(ref[i]));
    }
    const simd_rows *s = simd();
    if (s) {
        s->f16_to_f32(h, vec, 65536);
        assert_memory_equal(vec, ref, 65536 * 4); /* NaN payloads included */
    }
    free(h);
    free(ref);
    free(vec);
    if (!s)
        skip();
}

static void test_bf16_to_f32_every_value(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2);
    float *ref = malloc(65536 * 4), *vec = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    nm_bf16_to_f32_row_ref(h, ref, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t u;
        memcpy(&u, &ref[i], 4);
        assert_int_equal(u, i << 16);
        /* and back: every bf16 value converts to itself (NaN included: quiet bit already set or added) */
        uint16_t back = nm_f32_to_bf16(ref[i]);
        if ((i & 0x7FFF) > 0x7F80)
            assert_int_equal(back, i | 0x40);
        else
            assert_int_equal(back, i);
    }
    const simd_rows *s = simd();
    if (s) {
        s->bf16_to_f32(h, vec, 65536);
        assert_memory_equal(vec, ref, 65536 * 4);
        uint16_t *b = malloc(65536 * 2), *r = malloc(65536 * 2);
        s->f32_to_bf16(ref, b, 65536);
        nm_f32_to_bf16_row_ref(ref, r, 65536);
        assert_memory_equal(b, r, 65536 * 2);
        free(b);
        free(r);
    }
    free(h);
    free(ref);
    free(vec);
    if (!s)
        skip();
}

/* 10^8 f32 patterns (odd stride through all 2^32, NaN mapped to Inf so only non-NaN inputs
 * are compared): scalar references equal the libm oracles on one pattern in 4, and the SIMD
 * rows equal the scalar references on all of them; then 3·10^7 random patterns concentrated on
 * the f16 range (exponents 2^-26..2^17) and 2.3·10^6 patterns at, just below and just above a
 * rounding tie at every bit position of every exponent, all checked against the oracles too. */
static uint32_t mix32(uint32_t x) { /* a bijective hash (murmur3's finaliser) */
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    return x ^ (x >> 16);
}

static void test_f32_patterns(void **state) {
    (void)state;
    enum { CHUNK = 1 << 16 };
    const simd_rows *s = simd();
    float *src = malloc(CHUNK * 4);
    uint16_t *a = malloc(CHUNK * 2), *b = malloc(CHUNK * 2);
    uint32_t u = 0x12345;
    uint64_t compared = 0, oracled = 0;
    uint64_t counter = 0;
    for (int phase = 0; phase < 3; phase++) {
        const uint64_t total = phase == 0 ? 100000000ull : phase == 1 ? 30000000ull : 256ull * 2 * 23 * 64 * 3;
        for (uint64_t done = 0; done < total; done += CHUNK) {
            for (int i = 0; i < CHUNK; i++) {
                uint32_t v, w = mix32((uint32_t)++counter);
                if (phase == 0) {
                    u += 42949673u; /* odd stride: walks all 2^32 patterns, evenly */
                    v = u ^ (w & 0x1FFFu); /* decorrelate the rounding bits from the exponent */
                } else if (phase == 1) {
                    v = (w & 0x807FFFFFu) | ((101u + mix32(w) % 44u) << 23); /* exponents 2^-26..2^17 */
                } else {
                    /* every rounding boundary: for each exponent, sign and bit position k, the
                     * patterns just below, at and just above a tie at bit k-1 */
                    uint64_t j = done + (uint64_t)i;
                    uint32_t delta = (uint32_t)(j % 3), k = 1 + (uint32_t)(j / 3 / 64 % 23);
                    uint32_t E = (uint32_t)(j / 3 / 64 / 23 % 256), sign = (uint32_t)(j / 3 / 64 / 23 / 256 % 2);
                    uint32_t m = (w << k) & 0x7FFFFFu;
                    m = (m & ~((1u << k) - 1)) | (1u << (k - 1));
                    m = (m + delta - 1) & 0x7FFFFFu;
                    v = sign << 31 | E << 23 | m;
                }
                if ((v & 0x7FFFFFFF) > 0x7F800000)
                    v &= 0xFF800000u;
                memcpy(&src[i], &v, 4);
            }
            nm_f32_to_f16_row_ref(src, b, CHUNK);
            for (int i = phase ? 0 : (int)(done / CHUNK % 4); i < CHUNK; i += phase ? 1 : 4, oracled++)
                if (b[i] != oracle_f32_to_f16(src[i]))
                    fail_msg("f32 %a -> f16: reference %04x, oracle %04x", src[i], b[i], oracle_f32_to_f16(src[i]));
            if (s) {
                s->f32_to_f16(src, a, CHUNK);
                assert_memory_equal(a, b, CHUNK * 2);
            }
            nm_f32_to_bf16_row_ref(src, b, CHUNK);
            for (int i = phase ? 0 : (int)(done / CHUNK % 4); i < CHUNK; i += phase ? 1 : 4)
                if (b[i] != oracle_f32_to_bf16(src[i]))
                    fail_msg("f32 %a -> bf16: reference %04x, oracle %04x", src[i], b[i], oracle_f32_to_bf16(src[i]));
            if (s) {
                s->f32_to_bf16(src, a, CHUNK);
                assert_memory_equal(a, b, CHUNK * 2);
                compared += CHUNK;
            }
        }
    }
    print_message("%llu f32 patterns SIMD = scalar, %llu scalar = oracle\n", (unsigned long long)compared,
                  (unsigned long long)oracled);
    assert_true(oracled >= 50000000ull);
    free(src);
    free(a);
    free(b);
    if (!s)
        skip();
    assert_true(compared >= 100000000ull);
}

/* Every tail length and misalignment the SIMD loops can meet, with special values mixed in. */
static void test_simd_tails_and_alignment(void **state) {
    (void)state;
    const simd_rows *s = simd();
    if (!s)
        skip();
    static const uint32_t special[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x477FF000, 0x477FEFFF,
                                       0x33000000, 0x33000001, 0x38800000, 0x387FC000, 0x3F808000, 0x7F7FFFFF,
                                       0x00000001, 0x807FFFFF, 0x3DCCCCCD, 0xC7800000};
    enum { MAX = 80 };
    float src[MAX + 4];
    uint16_t h[MAX + 4], ha[MAX + 4], hb[MAX + 4];
    float fa[MAX + 4], fb[MAX + 4];
    uint32_t w = 12345;
    for (int i = 0; i < MAX + 4; i++) {
        w = w * 1103515245u + 12345u;
        uint32_t v = i % 3 == 0 ? special[(w >> 8) % 16] : w;
        if ((v & 0x7FFFFFFF) > 0x7F800000)
            v ^= 0x00400000 | (v & 0x007FFFFF); /* NaN -> Inf */
        memcpy(&src[i], &v, 4);
        h[i] = (uint16_t)(w >> 16);
    }
    for (int off = 0; off < 4; off++)
        for (size_t n = 0; n <= MAX; n++) {
            memset(ha, 0xAB, sizeof ha);
            memset(hb, 0xAB, sizeof hb);
            s->f32_to_f16(src + off, ha + off, n);
            nm_f32_to_f16_row_ref(src + off, hb + off, n);
            assert_memory_equal(ha, hb, sizeof ha); /* also: nothing written past n */
            s->f32_to_bf16(src + off, ha + off, n);
            nm_f32_to_bf16_row_ref(src + off, hb + off, n);
            assert_memory_equal(ha, hb, sizeof ha);
            memset(fa, 0xAB, sizeof fa);
            memset(fb, 0xAB, sizeof fb);
            s->f16_to_f32(h + off, fa + off, n);
            nm_f16_to_f32_row_ref(h + off, fb + off, n);
            assert_memory_equal(fa, fb, sizeof fa);
            s->bf16_to_f32(h + off, fa + off, n);
            nm_bf16_to_f32_row_ref(h + off, fb + off, n);
            assert_memory_equal(fa, fb, sizeof fa);
        }
}

/* NaN policy: no conversion path turns a NaN into a number (every NaN class: quiet, signalling,
 * payload only in the low bits that f16/bf16 drop, either sign). */
static void test_nan_stays_nan(void **state) {
    (void)state;
    const simd_rows *s = simd();
    enum { N = 4096 };
    float *src = malloc(N * 4);
    uint16_t *h = malloc(N * 2);
    uint32_t w = 7;
    for (int i = 0; i < N; i++) {
        w = w * 1664525u + 1013904223u;
        uint32_t payload = i < 64 ? (1u << (i % 23)) : (w & 0x7FFFFF);
        if (!payload)
            payload = 1;
        uint32_t v = (w & 0x80000000u) | 0x7F800000u | payload;
        memcpy(&src[i], &v, 4);
    }
    for (int path = 0; path < 4; path++) {
        if (path >= 2 && !s)
            break;
        if (path == 0)
            nm_f32_to_f16_row_ref(src, h, N);
        else if (path == 1)
            nm_f32_to_bf16_row_ref(src, h, N);
        else if (path == 2)
            s->f32_to_f16(src, h, N);
        else
            s->f32_to_bf16(src, h, N);
        for (int i = 0; i < N; i++) {
            uint16_t lim = path % 2 == 0 ? 0x7C00 : 0x7F80;
            if ((h[i] & 0x7FFF) <= lim)
                fail_msg("path %d: NaN %a became %04x", path, src[i], h[i]);
        }
        assert_int_equal(path % 2 == 0 ? nm_find_nan_f16(h, N) : nm_find_nan_bf16(h, N), 0);
    }
    assert_int_equal(nm_find_nan_f32(src, N), 0);
    free(src);
    free(h);
}

static void test_nan_finders(void **state) {
    (void)state;
    float x[5] = {1, 2, 3, 4, 5};
    assert_int_equal(nm_find_nan_f32(x, 5), -1);
    x[3] = from_bits(0x7FC00001);
    assert_int_equal(nm_find_nan_f32(x, 5), 3);
    uint16_t h[3] = {0x3C00, 0x7C00, 0x7C01};
    assert_int_equal(nm_find_nan_f16(h, 3), 2);
    uint16_t bh[3] = {0x3F80, 0x7F80, 0xFFC0};
    assert_int_equal(nm_find_nan_bf16(bh, 3), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_f16_check_values),
        cmocka_unit_test(test_f16_roundtrip_all),
        cmocka_unit_test(test_bf16_to_f32_all),
        cmocka_unit_test(test_bf16_to_f16_every_value),
        cmocka_unit_test(test_nan_finders),
        cmocka_unit_test(test_f16_to_f32_every_value),
        cmocka_unit_test(test_bf16_to_f32_every_value),
        cmocka_unit_test(test_f32_patterns),
        cmocka_unit_test(test_simd_tails_and_alignment),
        cmocka_unit_test(test_nan_stays_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
