/* The calibration pass nomoat-verify imatrix runs, for other tools (nomoat-quantize
 * --calibration): the evaluator's own forward pass over a text, collecting for every blk.*
 * weight the mean squared activation entering each of its input columns. Memory: the mapped
 * model, one context's KV cache and scratch, n_in doubles per weight and, with Gram matrices,
 * n_in^2 doubles per distinct input (q/k/v share one, gate/up one). */
#ifndef NOMOAT_VERIFY_CALIBRATE_H
#define NOMOAT_VERIFY_CALIBRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Called once per weight after the pass, in the model's order: its GGUF name, n_in mean squared
 * activations and, when asked for, gram: the n_in x n_in mean of x x^T over the tokens (shared by
 * the weights that read the same input). The buffers are valid only during the call. Return 0,
 * or -1 with err set to stop. */
typedef int (*verify_calibrate_fn)(void *user, const char *name, const float *mean_sq, int64_t n_in,
                                   const double *gram, int n_chunks, int n_ctx, nm_error *err);

/* Tokenizes text_path with the model's vocabulary and evaluates up to max_chunks (<= 0: all)
 * contexts of n_ctx tokens (<= 0: the model's training context, at most 512) on threads threads
 * (0: all cores), with a progress bar unless quiet. */
int verify_calibrate(const char *model_path, const char *text_path, int n_ctx, int max_chunks, int threads,
                     bool quiet, bool gram, verify_calibrate_fn emit, void *user, nm_error *err);

#endif
