/* Llama 3.1+'s RoPE scaling (config.json rope_scaling {rope_type: "llama3"}). Hugging Face
 * divides each rotary frequency by a factor that depends on its wavelength; llama.cpp keeps the
 * rotary code unchanged and reads those divisors from a tensor, rope_freqs.weight (head_dim/2
 * F32 values), that its converter computes (LlamaModel.generate_extra_tensors):
 *
 *   freq_i  = 1 / theta^(2i/d)              wavelen_i = 2*pi / freq_i
 *   wavelen < orig_ctx/high  -> 1           (high frequencies kept)
 *   wavelen > orig_ctx/low   -> factor      (low frequencies divided by factor)
 *   otherwise                -> 1 / ((1 - s)/factor + s),  s = (orig_ctx/wavelen - low)/(high - low)
 *
 * The converter evaluates this in float32 torch arithmetic, where "a / tensor" is computed as
 * reciprocal(tensor) * a; we follow that operation by operation (so the stored bits match), with
 * one exception: theta^(2i/d) is rounded correctly here (double pow, then float), while torch's
 * vectorised float pow is only accurate to 1 ulp. On the configurations Meta released (head_dim
 * 64 and 128, theta 500000, factor 8 and 32) the results are identical (tests/data/llama3 holds
 * the converter's own tensors); over a grid of 2,304 other configurations, 135 differ by one ulp
 * in one smoothed factor.
 *
 * The converter reads original_max_position_embeddings from the top level of config.json, not
 * from rope_scaling where Meta's configs put it (so it is 8192 for them, which is also Meta's
 * value); we read the same key. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "convert/convert.h"

/* A finite number > 0 (or >= 0 when zero_ok); 1 = read, 0 = absent, -1 = bad. */
static int number(const cJSON *o, const char *key, bool zero_ok, double *out, const char *file, nm_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 || (!zero_ok && v->valuedouble == 0) ||
        v->valuedouble > 3.4e38)
        return nm_fail(err, "%s: rope_scaling \"%s\" must be a positive number", file, key);
    *out = v->valuedouble;
    return 1;
}

int conv_llama3_rope_load(conv_config *c, const cJSON *j, const cJSON *rs, const char *file, nm_error *err) {
    c->rope_llama3 = true;
    c->llama3_factor = 8.0;
    c->llama3_low = 1.0;
    c->llama3_high = 4.0;
    c->llama3_orig_ctx = 8192.0;
    /* rope_theta inside the section wins over the top-level one; 10000 when neither is set */
    c->llama3_theta = c->has_rope_theta ? (double)c->rope_theta : 10000.0;
    if (number(rs, "rope_theta", false, &c->llama3_theta, file, err) < 0 ||
        number(rs, "factor", false, &c->llama3_factor, file, err) < 0 ||
        number(rs, "low_freq_factor", false, &c->llama3_low, file, err) < 0 ||
        number(rs, "high_freq_factor", false, &c->llama3_high, file, err) < 0)
        return -1;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "original_max_position_embeddings");
    if (o && !cJSON_IsNull(o)) {
        if (!cJSON_IsNumber(o) || !isfinite(o->valuedouble) || o->valuedouble < 1 || o->valuedouble > 1e12)
            return nm_fail(err, "%s: \"original_max_position_embeddings\" must be a positive number", file);
        c->llama3_orig_ctx = o->valuedouble;
    }
    if (!(c->llama3_high > c->llama3_low))
        return nm_fail(err,
                       "%s: rope_scaling (llama3) needs high_freq_factor (%g) > low_freq_factor (%g): otherwise the "
                       "smoothed band is empty or reversed",
                       file, c->llama3_high, c->llama3_low);
    if (c->head_dim < 2 || c->head_dim > 65536)
        return nm_fail(err, "%s: head dimension %u cannot carry llama3 rope factors", file, c->head_dim);
    return 0;
}

void conv_llama3_rope_factors(const conv_config *c, float *out) {
    const float two_pi = (float)(2 * M_PI);
    const float hi_wavelen = (float)(c->llama3_orig_ctx / c->llama3_high);
    const float lo_wavelen = (float)(c->llama3_orig_ctx / c->llama3_low);
    const float theta = (float)c->llama3_theta, factor = (float)c->llama3_factor;
    const float low = (float)c->llama3_low, band = (float)(c->llama3_high - c->llama3_low);
    const float orig = (float)c->llama3_orig_ctx;
    for (uint32_t i = 0; i < c->head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)c->head_dim;
        float freq = 1.0f / (float)pow((double)theta, (double)e);
        float wavelen = (1.0f / freq) * two_pi;
        if (wavelen < hi_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > lo_wavelen) {
            out[i] = factor;
        } else {
            float s = (orig * (1.0f / wavelen) - low) / band;
            out[i] = 1.0f / ((1.0f - s) / factor + s);
        }
    }
}
