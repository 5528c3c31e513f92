/* nomoat-quantize --optimize without importance data: second moments H of matrix inputs that the
 * weights themselves give, for the error feedback and refinement (qo_gptq_prepare) of the
 * matrices that read them. Fixed-order double arithmetic on every code path (kernels/dense.h, no
 * libm but sqrt), so plain --optimize's files stay the same on every machine.
 *
 * - token_embd.weight: a token's row is the residual stream's first value, read by layer 0's
 *   matrices through their RMSNorms, so an error d in it moves their outputs by about W (g ⊙ d):
 *   H = Σ diag(g) WᵀW diag(g) over layer 0's attn_q/k/v (attn_norm's g) and ffn_gate/up
 *   (ffn_norm's g). Used with and without calibration: no calibration pass sees the embedding as
 *   a matrix input, nor does an importance matrix.
 * - layer 0's matrices (Llama architecture), from the vocabulary's rows e (all of them up to 8192,
 *   evenly spaced beyond), each counted once: attn_q/k/v read x = g ⊙ e / rms(e) (exactly what
 *   they read in text, but for how often each token occurs); attn_output reads, for head h, a
 *   value vector W_v x of its KV head; ffn_gate/up read g ⊙ e / rms(e) with ffn_norm's g, and
 *   ffn_down silu(W_gate x) · (W_up x). The FFN's input leaves out the attention's output: in
 *   text it is mostly an average over earlier positions, common to all tokens, and adding each
 *   token's own value vector (as a context of that one token would) made the fixture's KLD worse.
 *   Deeper layers see what earlier positions wrote, which no embedding row shows (their inputs
 *   approximated the same way made the fixture's KLD worse too), so they keep the column weights. */
#ifndef NOMOAT_QUANTIZE_DATALESS_H
#define NOMOAT_QUANTIZE_DATALESS_H

#include <stdint.h>

#include "common/error.h"
#include "common/parallel.h"
#include "formats/gguf.h"

/* The upper triangle of H (n x n, malloc'd; the lower triangle is left zero) for token_embd's
 * rows of n values in *h (pool: not NULL), or *h = NULL when the model has none of the readers, or n beyond
 * 65536. Returns 0, or -1 with err set (out of memory). */
int qd_embedding_h(const gguf_reader *g, int64_t n, nm_pool *pool, double **h, nm_error *err);

/* Which of layer 0's inputs the matrix name reads: 0 .. QD_LAYER0_INPUTS - 1 (attn_q, attn_k and
 * attn_v read the same one, as do ffn_gate and ffn_up, so their H is the same), or -1 for none. */
enum { QD_LAYER0_INPUTS = 4 };
int qd_layer0_input(const char *name);

/* The same for layer 0's matrix name (blk.0.attn_q/k/v/output, ffn_gate/up/down .weight) of a
 * Llama model with rows of n values: *h = NULL when name is none of those, the architecture is
 * another, a tensor it needs is missing or of an unexpected shape, or n is beyond 8192 (n² doubles,
 * twice, for the feedback). Returns 0, or -1 with err set. */
int qd_layer0_h(const gguf_reader *g, const char *name, int64_t n, nm_pool *pool, double **h, nm_error *err);

#endif
