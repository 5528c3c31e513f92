/* Fast "does this row hold a NaN" for the converter's hot loop: a branch-free OR of lane
 * compares over 16-byte vectors (GCC/clang vector extensions, compiled for the baseline ISA),
 * then formats/tensor.h's scalar search only when something was found. On the 2.2 GB
 * benchmark model the scalar search alone cost more CPU than the conversions. */
#include <string.h>

#include "convert/convert.h"

typedef int16_t v8i16 __attribute__((vector_size(16)));
typedef int32_t v4i32 __attribute__((vector_size(16)));

/* NaN iff (bits & 0x7FFF) > limit (0x7C00 for f16, 0x7F80 for bf16); masked values are
 * non-negative as int16, so a signed compare (SSE2 pcmpgtw) is exact. */
static bool any_nan16(const uint16_t *src, size_t n, int16_t limit) {
    const v8i16 mask = {0x7FFF, 0x7FFF, 0x7FFF, 0x7FFF, 0x7FFF, 0x7FFF, 0x7FFF, 0x7FFF};
    const v8i16 lim = {limit, limit, limit, limit, limit, limit, limit, limit};
    v8i16 acc0 = {0}, acc1 = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v8i16 a, b;
        memcpy(&a, src + i, sizeof a);
        memcpy(&b, src + i + 8, sizeof b);
        acc0 |= (v8i16)((a & mask) > lim);
        acc1 |= (v8i16)((b & mask) > lim);
    }
    acc0 |= acc1;
    int any = 0;
    for (int k = 0; k < 8; k++)
        any |= acc0[k];
    for (; i < n; i++)
        any |= (int16_t)(src[i] & 0x7FFF) > limit;
    return any != 0;
}

static bool any_nan32(const float *src, size_t n) {
    const v4i32 mask = {0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF};
    const v4i32 lim = {0x7F800000, 0x7F800000, 0x7F800000, 0x7F800000};
    v4i32 acc0 = {0}, acc1 = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v4i32 a, b;
        memcpy(&a, src + i, sizeof a);
        memcpy(&b, src + i + 4, sizeof b);
        acc0 |= (v4i32)((a & mask) > lim);
        acc1 |= (v4i32)((b & mask) > lim);
    }
    acc0 |= acc1;
    int any = 0;
    for (int k = 0; k < 4; k++)
        any |= acc0[k];
    for (; i < n; i++) {
        int32_t b;
        memcpy(&b, src + i, 4);
        any |= (b & 0x7FFFFFFF) > 0x7F800000;
    }
    return any != 0;
}

int64_t conv_find_nan(nm_dtype dtype, const void *src, size_t n) {
    switch (dtype) {
    case NM_DTYPE_F32: return any_nan32(src, n) ? nm_find_nan_f32(src, n) : -1;
    case NM_DTYPE_F16: return any_nan16(src, n, 0x7C00) ? nm_find_nan_f16(src, n) : -1;
    case NM_DTYPE_BF16: return any_nan16(src, n, 0x7F80) ? nm_find_nan_bf16(src, n) : -1;
    default: return -1;
    }
}
