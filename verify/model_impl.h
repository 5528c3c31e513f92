/* Private to the evaluator: the context's buffers, and the matrix-product and attention drivers
 * the forward pass (model.c) calls. */
#ifndef NOMOAT_VERIFY_MODEL_IMPL_H
#define NOMOAT_VERIFY_MODEL_IMPL_H

#include "verify/model.h"

struct vm_ctx {
    const vm_model *m;
    nm_pool *pool;
    bool exact;
    int n_ctx, n_threads;
    void **kcache, **vcache; /* per layer: n_ctx × (n_head_kv·head_dim), f16 or f32 */
    float *x, *xn, *q, *k, *v, *att, *fa, *fb, *out;
    float *qkv;             /* a fused projection's output (families with attn_qkv), or NULL */
    float *attn_out;        /* the attention branch kept for a parallel residual, or NULL */
    float *kt, *vf;         /* one layer's cached keys transposed, values widened (attn_widen_cache) */
    size_t kt_stride;       /* n_ctx rounded up to a whole key tile: kernels may read a tile's tail */
    uint8_t *act;           /* quantized activations of one batch */
    uint8_t *aux;           /* their aux rows (nm_dot_act_aux), when the weight type has them */
    float *wscratch;        /* per thread: exact mode's dequantized weight rows, attention scores */
    size_t wscratch_per_thread;
    float *norm_w[3];       /* scratch for non-F32 norm weights */
    vm_observe_fn observe;
    void *observe_user;
    struct vm_lora_state *lora; /* run-time adapters (lora.c), or NULL */
    float *router;          /* a mixture of experts: the router's scores, n_expert per token */
    float *moe_scratch;     /* per thread: moe.c's buffers for one token */
    size_t moe_scratch_per_thread; /* floats */
    float *gate_up;         /* a fused gate/up projection's output (2 × n_ff per token), or NULL */
    const float *rope_freqs; /* the rotary divisors this context runs with (llama3's, or longrope's
                              * short or long ones by the context size), or NULL */
};

/* Work split: matrix products in tiles of ROW_BLOCK weight rows (FLOAT_ROW_BLOCK for F32, F16 and
 * BF16 weights in the default mode: matmul.c) × TOK_BLOCK tokens; attention in tasks of one KV
 * head × ATT_TOK_BLOCK query tokens. */
enum { ROW_BLOCK = 32, FLOAT_ROW_BLOCK = 64, TOK_BLOCK = 512, ATT_TOK_BLOCK = 16 };

/* y[t][0..n_out) = W · x[t] for n_tokens rows of x, over the pool (matmul.c). */
void vm_matmul(vm_ctx *c, const vm_weight *w, const float *x, int n_tokens, float *y);

/* Attention of layer `layer` for the batch's n_tokens queries at positions pos0.. (c->q) over the
 * cache holding positions 0 .. pos0+n_tokens-1, into c->att (attention.c). */
void vm_attention(vm_ctx *c, int layer, int n_tokens, int pos0);

/* A mixture of experts' FFN (moe.c) for the n_tokens normed rows of c->xn into c->out, as
 * llama.cpp's build_moe_ffn computes it (softmax router, top n_expert_used, weights renormalised,
 * SwiGLU experts, weighted outputs summed in slot order). vm_moe_scratch: the floats
 * moe_scratch_per_thread must hold. */
void vm_moe_ffn(vm_ctx *c, const vm_layer *L, int n_tokens);
size_t vm_moe_scratch(const vm_model *m);

/* Run-time LoRA adapters (lora.c): after W·x, y += scale·B(A x) for every adapter of W; after the
 * embedding, the token_embd adapters' rows. Both return at once for weights without adapters. */
void vm_lora_apply(vm_ctx *c, const vm_weight *w, const float *x, int n_tokens, float *y);
void vm_lora_embed(vm_ctx *c, const int32_t *tokens, int n_tokens);
void vm_lora_state_free(struct vm_lora_state *s);

#endif
