/* Layer 0's Jacobian with respect to its input, for token_embd's second moments
 * (nomoat-quantize --calibration): an error δ in the embedding row of the token at position p
 * reaches the rest of the model through layer 0's output, changed by J_p δ (the residual's
 * identity plus what attention and the FFN make of it, at every later position too). The
 * embedding's matrix for error feedback is then H = Σ_p J_pᵀ J_p over the calibration tokens,
 * sketched with one random probe z per context: H ≈ Σ_p g_p g_pᵀ, g = Jᵀ z (E[z zᵀ] = I), one
 * backward pass per context.
 *
 * The backward pass recomputes layer 0's forward in doubles from the model's weights (its
 * intermediate values: the normed inputs, queries and keys after the rotary, the attention
 * weights, the FFN's gate and up projections), at the evaluator's inputs, for the layer shape it
 * knows: RMSNorm without bias; separate Q/K/V, with or without biases (Qwen2's), without
 * per-head norms; the rotary on adjacent pairs or halves (linear scaling and Llama 3's frequency
 * factors; not longrope or YaRN); causal softmax attention scaled by 1/sqrt(head_dim) with
 * grouped keys and values; SwiGLU; sequential residual; no mixture of experts (Llama, Mistral,
 * Qwen2, and what shares their layer).
 * tests/verify/test_jacobian.c checks it against finite differences of the evaluator's own
 * layer. Memory: layer 0's largest matrix, n_head·T² attention weights and about twenty T-row
 * buffers, in doubles (TinyLlama's shape, T = 512: about 400 MB while it runs). */
#ifndef NOMOAT_VERIFY_JACOBIAN_H
#define NOMOAT_VERIFY_JACOBIAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/parallel.h"
#include "verify/model.h"

/* Whether layer 0 has the shape the backward pass knows (above). */
bool vm_jacobian_supported(const vm_model *m);

/* g = Jᵀ z for one context: e is layer 0's input (n_tokens rows of n_embd floats, positions
 * 0 .. n_tokens-1), z and g n_tokens rows of n_embd doubles (z: a weight per output element).
 * Products on pool. Returns 0, or -1 with err set (out of memory, or a layer it does not know). */
int vm_jacobian_vjp(const vm_model *m, nm_pool *pool, const float *e, int n_tokens, const double *z, double *g,
                    nm_error *err);

/* H[a][b] += Σ_p g_p[a] g_p[b] for a <= b (the upper triangle of an n_embd x n_embd matrix),
 * g = Jᵀ z for z drawn from a standard normal distribution (seeded by seed: the same sum every
 * run). Returns 0, or -1 with err set. */
int vm_jacobian_embd_h(const vm_model *m, nm_pool *pool, const float *e, int n_tokens, uint64_t seed, double *H,
                       nm_error *err);

#endif
