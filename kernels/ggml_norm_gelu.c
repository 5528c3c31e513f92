/* ggml's LayerNorm and GELU as its x86-64 CPU backend (AVX2 build) computes them (ggml_ops.h). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "formats/tensor.h"
#include "kernels/ggml_ops.h"

/* ggml_norm: the mean from a double sum of the row in order, rounded to float; the centred
 * squares summed 8 at a time, each group reduced as AVX2's halving tree (lanes i and i+4, then
 * pairs 0+2 and 1+3, then the two) in float and added to a double, the tail one by one; the
 * variance is that sum / n in double, rounded to float. */
void nm_ggml_layer_norm(int n, const float *x, float eps, float *y) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)x[i];
    const float mean = (float)s / (float)n;
    double sum = 0.0;
    int i = 0;
    for (; i + 7 < n; i += 8) {
        float sq[8];
        for (int k = 0; k < 8; k++) {
            y[i + k] = x[i + k] - mean;
            sq[k] = y[i + k] * y[i + k];
        }
        const float a0 = sq[0] + sq[4], a1 = sq[1] + sq[5], a2 = sq[2] + sq[6], a3 = sq[3] + sq[7];
        sum += (double)((a0 + a2) + (a1 + a3));
    }
    for (; i < n; i++) {
        y[i] = x[i] - mean;
        sum += (double)(y[i] * y[i]);
    }
    const float variance = (float)(sum / n);
    const float scale = 1.0f / sqrtf(variance + eps);
    for (int k = 0; k < n; k++) y[k] *= scale;
}

/* ggml_gelu_f32 (tanh approximation) as ggml's build compiles it: the inner 1 + a·x·x contracted
 * into one fused multiply-add. */
static float gelu_tanh(float x) {
    const float a = 0.044715f, sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * fmaf(a * x, x, 1.0f)));
}

static uint16_t gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_table_init(void) {
    for (uint32_t h = 0; h < 1u << 16; h++) gelu_table[h] = nm_f32_to_f16(gelu_tanh(nm_f16_to_f32((uint16_t)h)));
}

/* ggml_vec_gelu_f32 with GGML_GELU_FP16: 0 at or below -10, x at or above 10, otherwise the
 * half-precision table of the tanh approximation looked up at x rounded to half precision. */
void nm_ggml_gelu(int n, float *y, const float *x) {
    pthread_once(&gelu_once, gelu_table_init);
    for (int i = 0; i < n; i++) {
        const float v = x[i];
        if (v <= -10.0f)
            y[i] = 0.0f;
        else if (v >= 10.0f)
            y[i] = v;
        else
            y[i] = nm_f16_to_f32(gelu_table[nm_f32_to_f16(v)]);
    }
}

float nm_gelu_tanh(float x) { return gelu_tanh(x); }

/* ggml_vec_geglu_f32 with GGML_GELU_FP16: nm_ggml_gelu's branches, each times the gate's partner. */
void nm_ggml_geglu(int n, float *y, const float *x, const float *g) {
    pthread_once(&gelu_once, gelu_table_init);
    for (int i = 0; i < n; i++) {
        const float v = x[i];
        if (v <= -10.0f)
            y[i] = 0.0f;
        else if (v >= 10.0f)
            y[i] = v * g[i];
        else
            y[i] = nm_f16_to_f32(gelu_table[nm_f32_to_f16(v)]) * g[i];
    }
}
