/* ggml CPU operations, bit-exact (ggml_ops.h): the portable copy and the run-time dispatch. */
#include "kernels/ggml_ops.h"

#include "kernels/ggml_ops_simd.h"
#include "formats/tensor.h"
#include "common/cpu.h"

#define OPS(name) name##_ref
#define H2F(h) nm_f16_to_f32(h)
#define F2H(f) nm_f32_to_f16(f)
#include "kernels/ggml_ops_impl.h"

#if defined(__x86_64__)
#define OPS_SIMD() (nm_cpu()->avx2 && nm_cpu()->fma && nm_cpu()->f16c)
#endif

float nm_ggml_expf(float x) { return expf_lane_ref(x); }

void nm_ggml_softcap(int n, float *y, float cap) {
    const float inv = 1.0f / cap; /* ggml_scale(x, 1/cap), ggml_tanh, ggml_scale(x, cap) */
    for (int i = 0; i < n; i++) y[i] = tanhf(y[i] * inv) * cap;
}

void nm_ggml_swiglu_ref(int n, float *y, const float *x, const float *g) { swiglu_ref(n, y, x, g); }

void nm_ggml_flash_attn_ref(bool tiled, int head_dim, int n_rows, const float *q, size_t q_stride, const float *kt,
                            size_t kt_stride, const float *v, size_t v_stride, int n_kv0, float scale, float softcap,
                            float *out, size_t out_stride, float *scratch) {
    if (tiled) fa_tiled_ref(head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, softcap, out,
                            out_stride, scratch);
    else fa_rows_ref(head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, softcap, out, out_stride,
                     scratch);
}

void nm_ggml_swiglu(int n, float *y, const float *x, const float *g) {
#if defined(__x86_64__)
    if (OPS_SIMD()) {
        nm_ggml_swiglu_avx2(n, y, x, g);
        return;
    }
#endif
    swiglu_ref(n, y, x, g);
}

size_t nm_ggml_fa_scratch(int head_dim) { return 3 * (size_t)NM_GGML_FA_TILE + 2 * (size_t)head_dim + 16; }

void nm_ggml_flash_attn(bool tiled, int head_dim, int n_rows, const float *q, size_t q_stride, const float *kt,
                        size_t kt_stride, const float *v, size_t v_stride, int n_kv0, float scale, float softcap,
                        float *out, size_t out_stride, float *scratch) {
#if defined(__x86_64__)
    if (tiled && softcap == 0.0f && OPS_SIMD() && nm_cpu()->avx512f &&
        nm_ggml_fa_tiled_avx512(head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, out,
                                out_stride))
        return;
    if (OPS_SIMD()) {
        nm_ggml_flash_attn_avx2(tiled, head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, softcap,
                                out, out_stride, scratch);
        return;
    }
#endif
    nm_ggml_flash_attn_ref(tiled, head_dim, n_rows, q, q_stride, kt, kt_stride, v, v_stride, n_kv0, scale, softcap, out,
                           out_stride, scratch);
}
