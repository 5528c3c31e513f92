/* The calibration pass for other tools (nomoat-quantize --calibration): the evaluator's own
 * forward pass over a text, streamed one layer at a time over every chunk, collecting for every
 * blk.* weight the mean squared activation entering each of its input columns (what nomoat-verify
 * imatrix sums, to the same bits: imatrix --streamed runs this pass) and, optionally, the second
 * moments of those inputs for GPTQ-style error feedback. */
#ifndef NOMOAT_VERIFY_CALIBRATE_H
#define NOMOAT_VERIFY_CALIBRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Called once per weight, after its layer has run over every chunk, in the model's order: its
 * GGUF name, n_in mean squared activations and, when asked for, gram: the n_in x n_in mean of
 * x xᵀ over the tokens. Weights that read the same input (q/k/v, gate/up) get the same matrix;
 * gram_shared says it is the previous weight's. The buffers are valid only during the call.
 * Return 0, or -1 with err set to stop. */
typedef int (*verify_calibrate_fn)(void *user, const char *name, const float *mean_sq, int64_t n_in,
                                   const double *gram, bool gram_shared, int n_chunks, int n_ctx, nm_error *err);

typedef struct verify_calib verify_calib;

typedef struct verify_calib_weight {
    const char *name; /* valid while the pass is open */
    int64_t n_in;
    int layer;        /* blk.N's N; the number of layers for output.weight */
} verify_calib_weight;

/* Opens the model, tokenizes text_path (or reads token ids from tokens_path) with its vocabulary
 * and embeds up to max_chunks (<= 0: all) contexts of n_ctx tokens (<= 0: the model's training
 * context, at most 512), to run on threads threads (0: all cores) with a progress bar per layer
 * unless quiet. gram: also collect the second moments. head: also report output.weight (when the
 * model has one, not tied to the embedding), whose input is the residual stream after the last
 * layer with the output norm applied, as one more step after the last layer. Memory: the mapped
 * model, the residual stream of every calibration token (chunks x n_ctx x n_embd floats), one
 * context's KV cache and scratch, n_in doubles per weight and, with gram, while one layer runs,
 * n_in^2 doubles per distinct input of that layer. NULL with err set on failure. */
verify_calib *verify_calib_open(const char *model_path, const char *text_path, const char *tokens_path, int n_ctx,
                                int max_chunks, int threads, bool quiet, bool gram, bool head, nm_error *err);
/* The same on synthetic text: n_chunks contexts of token ids drawn uniformly from the vocabulary's
 * ordinary tokens (type 1; without token types, all but its special tokens) by a generator seeded
 * with seed, so the same ids every run. A model's response to random tokens still shows which of
 * its inputs are large and how they correlate, with no data at hand. */
verify_calib *verify_calib_open_random(const char *model_path, int n_ctx, int n_chunks, uint64_t seed, int threads,
                                       bool quiet, bool gram, bool head, nm_error *err);
/* The weights the pass reports, in the model's order (the order emit sees them). */
size_t verify_calib_weight_count(const verify_calib *vc);
const verify_calib_weight *verify_calib_weight_at(const verify_calib *vc, size_t i);
int verify_calib_chunks(const verify_calib *vc);
/* Runs the layers not yet run up to and including layer (in order; beyond the last: all, and the
 * head when it was asked for), each over every chunk, calling emit for each weight of each.
 * layer = the number of layers asks for the head's statistics: when layers are still to run,
 * they come from one more forward pass of every chunk, ahead of the layers, which then run
 * as before. Memory of a layer's statistics is released once they are emitted. Returns 0, or -1
 * with err set. */
int verify_calib_run_to(verify_calib *vc, int layer, verify_calibrate_fn emit, void *user, nm_error *err);
/* token_embd's second moments through layer 0's Jacobian (verify/jacobian.h): H (n x n, n the
 * model's n_embd, upper triangle) += Σ g_p g_pᵀ over every calibration token, g = Jᵀ z for one
 * random z per context (seeded by the context's number: the same sum every run), each context
 * embedded again (whatever layer the pass has reached). A progress bar unless quiet. Returns 0;
 * 1 when layer 0 is not of the shape the backward pass knows or n is not n_embd (H untouched);
 * -1 with err set. */
int verify_calib_embedding_h(verify_calib *vc, double *H, int64_t n, nm_error *err);
void verify_calib_close(verify_calib *vc);

#endif
