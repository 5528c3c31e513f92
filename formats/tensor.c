#include "formats/tensor.h"
#include "formats/tensor_simd.h"
#include "common/cpu.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const ggml_type_info type_table[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4, false},
    [GGML_TYPE_F16] = {"F16", 1, 2, false},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18, true},
    [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20, true},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22, true},
    [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24, true},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34, true},
    [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36, true},
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84, true},
    [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110, true},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144, true},
    [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176, true},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210, true},
    [GGML_TYPE_Q8_K] = {"Q8_K", 256, 292, true},
    [GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, true},
    [GGML_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, true},
    [GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, true},
    [GGML_TYPE_IQ1_S] = {"IQ1_S", 256, 50, true},
    [GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, true},
    [GGML_TYPE_IQ3_S] = {"IQ3_S", 256, 110, true},
    [GGML_TYPE_IQ2_S] = {"IQ2_S", 256, 82, true},
    [GGML_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, true},
    [GGML_TYPE_I8] = {"I8", 1, 1, false},
    [GGML_TYPE_I16] = {"I16", 1, 2, false},
    [GGML_TYPE_I32] = {"I32", 1, 4, false},
    [GGML_TYPE_I64] = {"I64", 1, 8, false},
    [GGML_TYPE_F64] = {"F64", 1, 8, false},
    [GGML_TYPE_IQ1_M] = {"IQ1_M", 256, 56, true},
    [GGML_TYPE_BF16] = {"BF16", 1, 2, false},
    [GGML_TYPE_TQ1_0] = {"TQ1_0", 256, 54, true},
    [GGML_TYPE_TQ2_0] = {"TQ2_0", 256, 66, true},
    [GGML_TYPE_MXFP4] = {"MXFP4", 32, 17, true},
};

const ggml_type_info *ggml_type_get(uint32_t type) {
    if (type >= GGML_TYPE_COUNT || type_table[type].block_size == 0)
        return NULL;
    return &type_table[type];
}

const char *ggml_type_name(uint32_t type) {
    const ggml_type_info *t = ggml_type_get(type);
    return t ? t->name : "?";
}

int ggml_type_from_name(const char *name) {
    for (int i = 0; i < GGML_TYPE_COUNT; i++)
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0)
            return i;
    return -1;
}

int ggml_row_size(uint32_t type, uint64_t n, size_t *out) {
    const ggml_type_info *t = ggml_type_get(type);
    if (!t || n % t->block_size != 0)
        return -1;
    uint64_t blocks = n / t->block_size;
    if (blocks > SIZE_MAX)
        return -1;
    return nm_mul_size((size_t)blocks, t->type_size, out);
}

int ggml_tensor_size(uint32_t type, const int64_t ne[4], size_t *out) {
    for (int i = 0; i < 4; i++)
        if (ne[i] < 0)
            return -1;
    size_t size;
    if (ggml_row_size(type, (uint64_t)ne[0], &size) != 0)
        return -1;
    for (int i = 1; i < 4; i++) {
        if ((uint64_t)ne[i] > SIZE_MAX || nm_mul_size(size, (size_t)ne[i], &size) != 0)
            return -1;
    }
    *out = size;
    return 0;
}

static const struct {
    const char *name;
    unsigned bits;
} dtype_table[NM_DTYPE_COUNT] = {
    [NM_DTYPE_BOOL] = {"BOOL", 8}, [NM_DTYPE_U8] = {"U8", 8}, [NM_DTYPE_I8] = {"I8", 8},
    [NM_DTYPE_I16] = {"I16", 16}, [NM_DTYPE_U16] = {"U16", 16}, [NM_DTYPE_I32] = {"I32", 32},
    [NM_DTYPE_U32] = {"U32", 32}, [NM_DTYPE_I64] = {"I64", 64}, [NM_DTYPE_U64] = {"U64", 64},
    [NM_DTYPE_F16] = {"F16", 16}, [NM_DTYPE_BF16] = {"BF16", 16}, [NM_DTYPE_F32] = {"F32", 32},
    [NM_DTYPE_F64] = {"F64", 64}, [NM_DTYPE_F8_E5M2] = {"F8_E5M2", 8}, [NM_DTYPE_F8_E4M3] = {"F8_E4M3", 8},
    [NM_DTYPE_F8_E8M0] = {"F8_E8M0", 8}, [NM_DTYPE_C64] = {"C64", 64}, [NM_DTYPE_F6_E2M3] = {"F6_E2M3", 6},
    [NM_DTYPE_F6_E3M2] = {"F6_E3M2", 6}, [NM_DTYPE_F4] = {"F4", 4},
};

const char *nm_dtype_name(nm_dtype dtype) {
    return (unsigned)dtype < NM_DTYPE_COUNT && dtype_table[dtype].name ? dtype_table[dtype].name : "?";
}

nm_dtype nm_dtype_from_name(const char *name) {
    for (int i = 1; i < NM_DTYPE_COUNT; i++)
        if (strcmp(dtype_table[i].name, name) == 0)
            return (nm_dtype)i;
    return NM_DTYPE_UNKNOWN;
}

unsigned nm_dtype_bits(nm_dtype dtype) {
    return (unsigned)dtype < NM_DTYPE_COUNT ? dtype_table[dtype].bits : 0;
}

/* ---- scalar conversions, FORMATS.md §3.0 ---- */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t nm_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t E = (u >> 23) & 0xFF, M = u & 0x7FFFFF;
    if (E == 255)
        return sign | (M ? 0x7E00 : 0x7C00);
    int e = (int)E - 127;
    if (e > 15)
        return sign | 0x7C00;
    if (e >= -14) {
        uint32_t h = ((uint32_t)(e + 15) << 10) | (M >> 13);
        uint32_t r = M & 0x1FFF;
        h += (r > 0x1000) | ((r == 0x1000) & h); /* branch-free: the bit is random in real data */
        return sign | (uint16_t)h; /* a carry into the exponent gives the right result, up to Inf */
    }
    /* Half subnormal: round |x| * 2^24 to nearest even. The shift is exact, so do it on the
     * integer mantissa: value = (M | implicit) * 2^(e-23), scaled by 2^24 -> shift right by -(e+1). */
    if (E == 0)
        return sign; /* float subnormals and zero are far below 2^-25 */
    uint32_t mant = M | 0x800000;
    int shift = -(e + 1); /* e <= -15 -> shift >= 14 */
    if (shift > 24)
        return sign;
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return sign | (uint16_t)q;
}

float nm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t E = (h >> 10) & 0x1F, M = h & 0x3FF;
    if (E == 0x1F) /* Inf, or NaN made quiet as F16C and NEON do */
        return bits_f32(sign | 0x7F800000 | (M << 13) | (M ? 0x400000u : 0));
    if (E == 0) {
        if (M == 0)
            return bits_f32(sign);
        /* subnormal: M * 2^-24, exact in float */
        float v = (float)M * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((E + 112) << 23) | (M << 13));
}

uint16_t nm_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFF) > 0x7F800000)
        return (uint16_t)((u >> 16) | 0x0040);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

float nm_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

void nm_f32_to_f16_row_ref(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = nm_f32_to_f16(src[i]);
}
void nm_f16_to_f32_row_ref(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = nm_f16_to_f32(src[i]);
}
void nm_f32_to_bf16_row_ref(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = nm_f32_to_bf16(src[i]);
}
void nm_bf16_to_f32_row_ref(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = nm_bf16_to_f32(src[i]);
}

bool nm_bf16_to_f16_row_ref(const uint16_t *src, uint16_t *dst, size_t n) {
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        any |= (src[i] & 0x7FFF) > 0x7F80;
        dst[i] = nm_f32_to_f16(nm_bf16_to_f32(src[i]));
    }
    return any;
}

int64_t nm_find_nan_f32(const float *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((f32_bits(src[i]) & 0x7FFFFFFF) > 0x7F800000)
            return (int64_t)i;
    return -1;
}
int64_t nm_find_nan_f16(const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((src[i] & 0x7FFF) > 0x7C00)
            return (int64_t)i;
    return -1;
}
int64_t nm_find_nan_bf16(const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((src[i] & 0x7FFF) > 0x7F80)
            return (int64_t)i;
    return -1;
}

/* Row conversions dispatch to the SIMD sibling for this CPU (tensor_avx2.c, tensor_neon.c). */
#if defined(__x86_64__)
#define SIMD_OK() (nm_cpu()->avx2 && nm_cpu()->f16c)
#define SIMD_F32_TO_F16 nm_f32_to_f16_row_avx2
#define SIMD_F16_TO_F32 nm_f16_to_f32_row_avx2
#define SIMD_F32_TO_BF16 nm_f32_to_bf16_row_avx2
#define SIMD_BF16_TO_F32 nm_bf16_to_f32_row_avx2
#elif defined(__aarch64__)
#define SIMD_OK() (nm_cpu()->neon)
#define SIMD_F32_TO_F16 nm_f32_to_f16_row_neon
#define SIMD_F16_TO_F32 nm_f16_to_f32_row_neon
#define SIMD_F32_TO_BF16 nm_f32_to_bf16_row_neon
#define SIMD_BF16_TO_F32 nm_bf16_to_f32_row_neon
#else
#define SIMD_OK() 0
#define SIMD_F32_TO_F16 nm_f32_to_f16_row_ref
#define SIMD_F16_TO_F32 nm_f16_to_f32_row_ref
#define SIMD_F32_TO_BF16 nm_f32_to_bf16_row_ref
#define SIMD_BF16_TO_F32 nm_bf16_to_f32_row_ref
#endif

void nm_f32_to_f16_row(const float *src, uint16_t *dst, size_t n) {
    if (SIMD_OK())
        SIMD_F32_TO_F16(src, dst, n);
    else
        nm_f32_to_f16_row_ref(src, dst, n);
}
void nm_f16_to_f32_row(const uint16_t *src, float *dst, size_t n) {
    if (SIMD_OK())
        SIMD_F16_TO_F32(src, dst, n);
    else
        nm_f16_to_f32_row_ref(src, dst, n);
}
void nm_f32_to_bf16_row(const float *src, uint16_t *dst, size_t n) {
    if (SIMD_OK())
        SIMD_F32_TO_BF16(src, dst, n);
    else
        nm_f32_to_bf16_row_ref(src, dst, n);
}
void nm_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n) {
    if (SIMD_OK())
        SIMD_BF16_TO_F32(src, dst, n);
    else
        nm_bf16_to_f32_row_ref(src, dst, n);
}

bool nm_bf16_to_f16_row(const uint16_t *src, uint16_t *dst, size_t n) {
#if defined(__x86_64__)
    if (SIMD_OK())
        return nm_bf16_to_f16_row_avx2(src, dst, n);
#endif
    if (!SIMD_OK())
        return nm_bf16_to_f16_row_ref(src, dst, n);
    /* other SIMD: the two row conversions through a small F32 block */
    float f[256];
    bool any = false;
    for (size_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? n - i : 256;
        any |= nm_find_nan_bf16(src + i, k) >= 0;
        SIMD_BF16_TO_F32(src + i, f, k);
        SIMD_F32_TO_F16(f, dst + i, k);
    }
    return any;
}
