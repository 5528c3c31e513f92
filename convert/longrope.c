/* Phi-3's long-context rotary (config.json rope_scaling {type: "longrope" or "su", long_factor,
 * short_factor}), read as llama.cpp's converter reads it (Phi3MiniModel.generate_extra_tensors):
 * the two lists of n_rot/2 per-frequency divisors become the F32 tensors rope_factors_long.weight
 * and rope_factors_short.weight (each list element, a JSON number, rounded once to float), and
 *
 *   scale = max_position_embeddings / original_max_position_embeddings
 *   attn_factor = sqrt(1 + ln(scale) / ln(original_max_position_embeddings))   (1 when scale <= 1)
 *
 * computed in double and written as the F32 key rope.scaling.attn_factor. No rope.scaling.type key
 * is written (the class does not call the base class's set_gguf_parameters). llama.cpp then runs
 * the short factors while the context is at most the original length, the long ones beyond it,
 * and multiplies every rotary cosine and sine by attn_factor either way. The converter's other
 * rope_scaling kind for this class, yarn, is refused here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convert/convert.h"

/* One factor list of n JSON numbers into a new float array; -1 with a message otherwise. */
static int factor_list(const cJSON *rs, const char *key, uint32_t n, float **out, const char *file, nm_error *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!a || cJSON_IsNull(a))
        return nm_fail(err, "%s: rope_scaling has no \"%s\" (a longrope section needs long_factor and short_factor)",
                       file, key);
    if (!cJSON_IsArray(a))
        return nm_fail(err, "%s: rope_scaling \"%s\" must be a list of numbers", file, key);
    int size = cJSON_GetArraySize(a);
    if ((uint32_t)size != n)
        return nm_fail(err, "%s: rope_scaling \"%s\" has %d numbers; %u (the rotary dimensions / 2) are needed", file,
                       key, size, n);
    if (!(*out = malloc((n ? n : 1) * sizeof(float))))
        return nm_fail(err, "out of memory");
    uint32_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.4e38)
            return nm_fail(err, "%s: rope_scaling \"%s\" element %u is not a finite number", file, key, i);
        (*out)[i++] = (float)v->valuedouble;
    }
    return 0;
}

int conv_longrope_load(conv_config *c, const cJSON *rs, const char *file, nm_error *err) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!t)
        t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(t) || !t->valuestring[0])
        return nm_fail(err, "%s: rope_scaling has no \"type\" (longrope)", file);
    if (strcasecmp(t->valuestring, "longrope") != 0 && strcasecmp(t->valuestring, "su") != 0)
        return nm_fail(err, "%s: rope_scaling type \"%s\" is not supported for %s (supported: longrope, su)", file,
                       t->valuestring, c->arch);
    if (c->n_ctx_orig == 0)
        return nm_fail(err, "%s: missing \"original_max_position_embeddings\"", file);
    const uint32_t n = c->n_rot / 2;
    if (factor_list(rs, "long_factor", n, &c->rope_long, file, err) != 0 ||
        factor_list(rs, "short_factor", n, &c->rope_short, file, err) != 0)
        return -1;
    c->n_rope_factors = n;
    const double scale = (double)c->n_ctx / (double)c->n_ctx_orig;
    if (scale > 1.0 && c->n_ctx_orig < 2)
        return nm_fail(err, "%s: original_max_position_embeddings must be at least 2 for a longrope section", file);
    c->rope_attn_factor = scale > 1.0 ? (float)sqrt(1.0 + log(scale) / log((double)c->n_ctx_orig)) : 1.0f;
    c->rope_longrope = true;
    return 0;
}
