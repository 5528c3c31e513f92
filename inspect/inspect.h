/* nomoat-inspect: one lister per file format, each in its own file (gguf.c, safetensors.c,
 * torch.c). main.c detects the format and calls the lister. */
#ifndef NOMOAT_INSPECT_H
#define NOMOAT_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/error.h"

typedef struct inspect_options {
    bool json;          /* --json */
    bool hash;          /* --hash: XXH3-64 of each tensor's bytes */
    const char *tensor; /* --tensor NAME: only this tensor */
    long values;        /* --values N: print the first N values as floats (with --tensor) */
    const char *state_key; /* --state-key KEY for nested torch checkpoints */
} inspect_options;

/* Each lister either prints text to stdout, or (opts->json) fills `out` (a cJSON object) with
 *   {"file": PATH, "format": "gguf"|"safetensors"|"torch", "metadata": {KEY: VALUE...},
 *    "tensors": [{"name", "type", "shape": [ne0, ne1, ...] (GGUF order for gguf, PyTorch
 *                 order otherwise), "bytes", "offset", "xxh3" (hex, with --hash), ...}]}
 * Returns 0, or -1 with err set ("what is wrong (where)"; main prefixes the file name). */
int inspect_gguf(const char *path, const inspect_options *opts, cJSON *out, nm_error *err);
int inspect_safetensors(const char *path, const inspect_options *opts, cJSON *out, nm_error *err);
int inspect_torch(const char *path, const inspect_options *opts, cJSON *out, nm_error *err);

/* inspect/lora.c: LoRA adapters. A GGUF adapter gets a summary (rank, alpha, targets) after its
 * metadata ("adapter" in JSON); a PEFT folder (adapter_config.json) its summary, then the listing
 * of its weights file ("weights" in JSON). */
#include "formats/gguf.h"
void inspect_lora_gguf(const gguf_reader *g, const inspect_options *opts, cJSON *out);
int inspect_peft(const char *dir, const inspect_options *opts, cJSON *out, nm_error *err);

/* inspect/common.c: shared by the safetensors and torch listers. */
uint64_t inspect_element_count(const uint64_t *shape, uint32_t n_dims);
/* Prints a name with control bytes escaped (\xNN), so a table row stays one line. */
void inspect_print_escaped(const char *s);
/* "[d0, d1, ...]" into buf. */
void inspect_shape_text(const uint64_t *shape, uint32_t n_dims, char *buf, size_t cap);

#endif
