/* Attention of the forward pass (model_impl.h): flash attention over the F16 cache as llama.cpp's
 * CPU backend runs it (default mode), or plain softmax attention in f32 (exact mode). */
#include <math.h>
#include <string.h>

#include "formats/tensor.h"
#include "kernels/dot.h"
#include "kernels/ggml_ops.h"
#include "verify/model_impl.h"

typedef struct attn_job {
    vm_ctx *c;
    int layer, n_tokens, pos0, tok_blocks;
} attn_job;

/* One task: the query heads that share a KV head, for a block of tokens. */
static void attn_task(void *ctx, size_t task, int thread) {
    attn_job *j = ctx;
    vm_ctx *c = j->c;
    const vm_model *m = c->m;
    const int hd = m->head_dim, kvw = m->n_head_kv * hd, group = m->n_head / m->n_head_kv;
    const int kvh = (int)(task / (size_t)j->tok_blocks), tb = (int)(task % (size_t)j->tok_blocks);
    const int t0 = tb * ATT_TOK_BLOCK;
    const int t1 = t0 + ATT_TOK_BLOCK < j->n_tokens ? t0 + ATT_TOK_BLOCK : j->n_tokens;
    /* Q scaled already after the rotary (Phi-3, Gemma 2: m->q_scale); scores soft-capped (Gemma 2):
     * ggml passes scale / cap */
    const float cap = m->attn_softcap;
    const float scale = (m->family->q_scaled_first || m->q_scale != 0.0f ? 1.0f : 1.0f / sqrtf((float)hd)) /
                        (cap != 0.0f ? cap : 1.0f);
    if (!c->exact) { /* flash attention over the f16 cache, as llama.cpp's CPU backend runs it */
        float *fs = c->wscratch + (size_t)thread * c->wscratch_per_thread;
        const size_t qs = (size_t)m->n_head * hd;
        for (int g = 0; g < group; g++) {
            const size_t h = (size_t)kvh * group + (size_t)g;
            nm_ggml_flash_attn(j->n_tokens >= NM_GGML_FA_TILE, hd, t1 - t0, c->q + (size_t)t0 * qs + h * hd, qs,
                               c->kt + (size_t)kvh * hd * c->kt_stride, c->kt_stride, c->vf + (size_t)kvh * hd,
                               (size_t)kvw, j->pos0 + t0 + 1, scale, cap, c->att + (size_t)t0 * qs + h * hd, qs, fs);
        }
        return;
    }
    /* per thread: group rows of scores (n_ctx apart), then group rows of output sums */
    float *scores = c->wscratch + (size_t)thread * c->wscratch_per_thread;
    float *acc = scores + (size_t)group * c->n_ctx;
    const float *kt = c->kt + (size_t)kvh * hd * c->kt_stride; /* this head's keys, [i][p] */
    const float *vf = (c->exact ? (const float *)c->vcache[j->layer] : c->vf) + (size_t)kvh * hd; /* [p][i] */
    for (int t = t0; t < t1; t++) {
        const int n_kv = j->pos0 + t + 1;
        const float *q = c->q + ((size_t)t * m->n_head + (size_t)kvh * group) * hd; /* the group's queries */
        /* scores[g][p] = Σ_i q[g][i]·k[p][i], summed in increasing i */
        nm_dot_f32_columns(hd, q, (size_t)hd, group, kt, c->kt_stride, n_kv, scores, (size_t)c->n_ctx);
        double sums[1024];
        for (int g = 0; g < group; g++) {
            float *s = scores + (size_t)g * c->n_ctx;
            float mx = -INFINITY;
            for (int p = 0; p < n_kv; p++) {
                s[p] = s[p] * scale;
                if (cap != 0.0f) s[p] = cap * tanhf(s[p]);
                if (s[p] > mx) mx = s[p];
            }
            double sum = 0.0;
            for (int p = 0; p < n_kv; p++) {
                s[p] = expf(s[p] - mx);
                sum += (double)s[p];
            }
            sums[g] = sum;
        }
        /* acc[g][i] = Σ_p s[g][p]·v[p][i], summed in increasing p */
        nm_dot_f32_columns(n_kv, scores, (size_t)c->n_ctx, group, vf, (size_t)kvw, hd, acc, (size_t)hd);
        for (int g = 0; g < group; g++) {
            const float inv = 1.0f / (float)sums[g];
            const float *a = acc + (size_t)g * hd;
            float *o = c->att + ((size_t)t * m->n_head + (size_t)kvh * group + g) * hd;
            for (int i = 0; i < hd; i++) o[i] = a[i] * inv;
        }
    }
}

/* The keys of positions [0, n) as floats transposed per head (kt[(kvh·head_dim + i)·kt_stride + p],
 * so a query's scores are one vector × matrix product), and, from the f16 cache, the values
 * widened in place order (vf[p·KV + j]). Widening f16 is exact: the attention sums see the
 * same numbers as before. */
static void attn_widen_cache(vm_ctx *c, int layer, int n) {
    const int KV = c->m->n_head_kv * c->m->head_dim;
    float *row = c->wscratch; /* KV <= the widest row; runs outside the pool's tasks */
    for (int p = 0; p < n; p++) {
        const float *kr;
        if (c->exact) {
            kr = (const float *)c->kcache[layer] + (size_t)p * KV;
        } else {
            nm_f16_to_f32_row((const uint16_t *)c->kcache[layer] + (size_t)p * KV, row, (size_t)KV);
            kr = row;
        }
        for (int i = 0; i < KV; i++) c->kt[(size_t)i * c->kt_stride + p] = kr[i];
    }
    if (!c->exact)
        nm_f16_to_f32_row((const uint16_t *)c->vcache[layer], c->vf, (size_t)n * KV);
}

void vm_attention(vm_ctx *c, int layer, int n_tokens, int pos0) {
    attn_widen_cache(c, layer, pos0 + n_tokens);
    attn_job aj = {.c = c, .layer = layer, .n_tokens = n_tokens, .pos0 = pos0,
                   .tok_blocks = (n_tokens + ATT_TOK_BLOCK - 1) / ATT_TOK_BLOCK};
    nm_pool_run(c->pool, (size_t)c->m->n_head_kv * (size_t)aj.tok_blocks, attn_task, &aj);
}
