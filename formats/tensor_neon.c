/* NEON row conversions for arm64; bit-identical to the scalar references for non-NaN input.
 * vcvt_f16_f32 rounds to nearest-even like the reference; bf16 uses integer arithmetic. */
#include <arm_neon.h>

#include "formats/tensor.h"
#include "formats/tensor_simd.h"

void nm_f32_to_f16_row_neon(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++)
        dst[i] = nm_f32_to_f16(src[i]);
}

void nm_f16_to_f32_row_neon(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
    for (; i < n; i++)
        dst[i] = nm_f16_to_f32(src[i]);
}

void nm_f32_to_bf16_row_neon(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    const uint32x4_t bias = vdupq_n_u32(0x7FFF), one = vdupq_n_u32(1), inf = vdupq_n_u32(0x7F800000);
    for (; i + 4 <= n; i += 4) {
        uint32x4_t u = vld1q_u32((const uint32_t *)(src + i));
        uint32x4_t rounded = vshrq_n_u32(vaddq_u32(vaddq_u32(u, bias), vandq_u32(vshrq_n_u32(u, 16), one)), 16);
        uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7FFFFFFF)), inf);
        uint32x4_t nanval = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));
        vst1_u16(dst + i, vmovn_u32(vbslq_u32(nan, nanval, rounded)));
    }
    for (; i < n; i++)
        dst[i] = nm_f32_to_bf16(src[i]);
}

void nm_bf16_to_f32_row_neon(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_u32((uint32_t *)(dst + i), vshll_n_u16(vld1_u16(src + i), 16));
    for (; i < n; i++)
        dst[i] = nm_bf16_to_f32(src[i]);
}
