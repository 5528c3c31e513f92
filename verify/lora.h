/* LoRA adapters applied at run time, as llama.cpp's graph applies them (build_lora_mm): for each
 * adapted weight W, y = W x, then for each adapter y = y + (B (A x)) · s with s = scale · alpha / r,
 * every product a matrix product of its own in the weight's type; for token_embd, the rows of A
 * picked by the tokens are multiplied by B and added to the embedding.
 * Order: llama.cpp keeps a context's adapters in an unordered_map keyed by address, which
 * libstdc++ visits in reverse insertion order (always for two adapters; for more, unless two
 * addresses share a hash bucket), so the last adapter given is added first. We add them in that
 * order: with two adapters llama-perplexity's figures are reproduced digit for digit (measured;
 * in the given order they differ in the 5th digit). The sum is the same up to rounding.
 * The forward pass calls the two hooks below (matmul.c after each product, model.c after the
 * embedding); everything else stays here. */
#ifndef NOMOAT_VERIFY_LORA_H
#define NOMOAT_VERIFY_LORA_H

#include <stddef.h>
#include <stdio.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "verify/model.h"

typedef struct vm_adapters vm_adapters;

/* Opens each "FILE[:SCALE]" (a GGUF adapter) for the model (g, m): its architecture must be the
 * model's, every pair must adapt a weight the model multiplies, with matching shapes. */
vm_adapters *vm_adapters_load(const gguf_reader *g, const vm_model *m, const char *const *args, int n, nm_error *err);
void vm_adapters_free(vm_adapters *a);
/* Applies the adapters in every later evaluation with c (scratch for c's context size). */
int vm_ctx_set_adapters(vm_ctx *c, const vm_adapters *a, nm_error *err);
/* The adapters' lora_a / lora_b matrices as weights (llama-imatrix collects their inputs too). */
size_t vm_adapters_weight_count(const vm_adapters *a);
const vm_weight *vm_adapters_weight(const vm_adapters *a, size_t i);
/* One line per adapter ("FILE: N pairs, rank R, alpha A, scale S") for reports. */
void vm_adapters_print(const vm_adapters *a, FILE *f);

#endif
