/* The forward pass of a model family (arch/arch.h) over a mapped GGUF file (FORMATS.md §6),
 * evaluating batches of tokens the way llama.cpp's CPU backend does (default) or in plain f32
 * (exact mode). */
#ifndef NOMOAT_VERIFY_MODEL_H
#define NOMOAT_VERIFY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/arch.h"
#include "common/error.h"
#include "formats/gguf.h"
#include "common/parallel.h"

typedef struct vm_weight {
    const char *name; /* points into the reader's tensor info */
    uint32_t type;
    int64_t n_in, n_out; /* ne[0] (row length), ne[1] (rows) */
    size_t row_size;
    const uint8_t *data;
} vm_weight;

/* One layer's tensors; those the family lacks are zero (data NULL). Biases and LayerNorm shifts
 * are widened to float at load (vm_model.vectors). wqkv: a fused projection, [Q | K | V] rows. */
typedef struct vm_layer {
    vm_weight attn_norm, wq, wk, wv, wqkv, wo, ffn_norm, gate, up, down;
    const float *attn_norm_b, *bq, *bk, *bv, *bqkv, *bo, *ffn_norm_b, *gate_b, *up_b, *down_b;
    const float *q_norm, *k_norm; /* per-head RMSNorm weights (head_dim each), or NULL */
    /* a mixture of experts (instead of gate/up/down): the router, and each expert's matrices
     * stacked (n_out rows per expert; expert e's rows start at data + e·n_out·row_size) */
    vm_weight gate_inp, gate_exps, up_exps, down_exps;
    vm_weight attn_post_norm, ffn_post_norm; /* norms of the attention and FFN outputs (Gemma 2), or none */
} vm_layer;

typedef struct vm_model {
    const nm_arch *family; /* the forward pass's blocks (arch/arch.h) */
    bool parallel_residual;
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_rot, n_ff, n_vocab, n_ctx_train;
    float rope_base, rope_freq_scale, norm_eps;
    vm_weight tok_embd, output_norm, output;
    vm_weight pos_embd;      /* learned position embeddings (n_ctx_train rows), or none */
    const float *output_norm_b;
    float *vectors;          /* the float copies the *_b pointers point into */
    const float *rope_freqs; /* rope_freqs.weight (llama3 scaling): n_rot/2 divisors, or NULL */
    vm_layer *layers;
    int n_expert, n_expert_used; /* a mixture of experts (<arch>.expert_count, expert_used_count), else 0 */
    int n_ff_exp;                /* an expert's FFN width (expert_feed_forward_length, else n_ff) */
    /* longrope (Phi-3's long-context variants): rope_factors_long/short.weight, n_rot/2 divisors
     * each (NULL without them), the long ones for contexts beyond n_ctx_orig (as llama.cpp
     * compares them: the context rounded up to a multiple of 256); every rotary cosine
     * and sine is multiplied by rope_attn_factor (rope.scaling.attn_factor, 1 by default) */
    const float *rope_long, *rope_short;
    int n_ctx_orig;
    float rope_attn_factor;
    /* YaRN (rope.scaling.type yarn, Qwen's long-context setting): each rotary angle mixes the
     * interpolated (× rope_freq_scale) and the original angle by a ramp over the dimensions
     * between yarn_corr[0] and yarn_corr[1], and every cosine and sine is multiplied by
     * rope_attn_factor × (1 + 0.1 ln(1 / rope_freq_scale)); yarn_ext 0 without YaRN */
    float yarn_ext, yarn_corr[2];
    /* Gemma 2 */
    float embd_scale;        /* the embedding rows are multiplied by this (sqrt(n_embd)), or 1 */
    float q_scale;           /* queries multiplied by this after the rotary (the scores then by 1), or 0 */
    float attn_softcap, final_softcap; /* soft caps (cap·tanh(x/cap)), or 0 */
    int n_swa;               /* sliding window of the local layers (contexts beyond it are refused), or 0 */
    /* Gemma 3: with a window, layer il is local when il % swa_period < swa_period - 1 and then
     * rotates with rope_base_swa and no rope scaling (swa_period 0: every layer as the global ones) */
    int swa_period;
    float rope_base_swa;
} vm_model;

/* Reads hyper-parameters and tensors; every shape and type is checked. The reader must outlive
 * the model. */
int vm_model_load(vm_model *m, const gguf_reader *g, nm_error *err);
void vm_model_free(vm_model *m);

/* Activation observer (imatrix): called for every matrix product of a blk.* weight with the f32
 * activations (n_tokens rows of w->n_in) before any activation quantization. Called from one
 * thread at a time. */
typedef void (*vm_observe_fn)(void *user, const vm_weight *w, const float *x, int n_tokens);

typedef struct vm_ctx vm_ctx;

/* A context holds the KV cache for up to n_ctx positions and scratch for batches of up to n_ctx
 * tokens. exact = f32 activations and cache with dequantized weights. */
vm_ctx *vm_ctx_create(const vm_model *m, int n_ctx, nm_pool *pool, bool exact, nm_error *err);
void vm_ctx_free(vm_ctx *c);
void vm_ctx_set_observer(vm_ctx *c, vm_observe_fn fn, void *user);

/* Evaluates tokens at positions pos0 .. pos0+n_tokens-1 (positions before pos0 must have been
 * evaluated by earlier calls since the cache was last cleared with pos0 = 0). Writes logits for
 * the batch's tokens from logits_from on: logits[(t - logits_from) * n_vocab + v]. */
int vm_eval(vm_ctx *c, const int32_t *tokens, int n_tokens, int pos0, int logits_from, float *logits,
            nm_error *err);

/* The same pass in steps, for a caller that runs one layer over many batches (the calibration
 * pass, imatrix.c): vm_eval is vm_eval_embed, then vm_eval_layer for layers 0 .. n_layer-1 (rows
 * from logits_from on feed the last layer's FFN, all of them with an observer), then the output
 * head. Between steps the batch's residual stream is vm_ctx_hidden(c): n_tokens rows of n_embd
 * floats, which the caller may save and restore. */
int vm_eval_embed(vm_ctx *c, const int32_t *tokens, int n_tokens, int pos0, nm_error *err);
int vm_eval_layer(vm_ctx *c, int layer, int n_tokens, int pos0, int logits_from, nm_error *err);
float *vm_ctx_hidden(vm_ctx *c);
/* The output head's input for the batch's residual stream (the output norm applied to all
 * n_tokens rows), as the head's matrix product reads it; valid until the next step. NULL with err
 * set when out of memory. */
const float *vm_eval_head_input(vm_ctx *c, int n_tokens, nm_error *err);

#endif
