/* nomoat-merge's private modules: the inputs (inputs.c: GGUF files, or Hugging Face / PEFT folders
 * converted by nomoat-convert first) and the merge itself (merge.c: the plan, then tensors
 * streamed row batch by row batch through the pool into the atomic GGUF writer). */
#ifndef NOMOAT_MERGE_H
#define NOMOAT_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "formats/lora.h"

#define MG_TOOL "nomoat-merge"

typedef struct mg_adapter {
    const char *arg;      /* as given: FILE[:SCALE] */
    char path[4096];
    float scale;
    gguf_reader *g;
    nm_lora lora;
    bool lora_open;
} mg_adapter;

typedef struct mg_inputs {
    gguf_reader *base;
    char base_arch[64];
    mg_adapter *adapters;
    int n_adapters;
    gguf_reader *delta;
    char *tmpdir; /* conversions of folders, removed by mg_inputs_close (files unlinked once mapped) */
    bool quiet;
} mg_inputs;

/* Opens BASE (GGUF or HF folder), every --lora (GGUF adapter or PEFT folder, converted against
 * BASE) and --delta (GGUF or HF folder); checks adapters against the base (architecture, every
 * pair's target present with matching shapes). Folders are converted to F32 GGUF files next to
 * out_path by the nomoat-convert beside this program (or on PATH). */
int mg_inputs_open(mg_inputs *in, const char *base, const char *const *loras, int n_loras, const char *delta,
                   const char *out_path, int threads, bool quiet, nm_error *err);
void mg_inputs_close(mg_inputs *in);

typedef struct mg_options {
    const char *out;
    const char *outtype;  /* NULL: llama-export-lora's output; else a nomoat-quantize type name */
    const char *imatrix;
    bool pure, allow_requantize, force, no_fsync, dry_run, json, quiet;
    int threads;
} mg_options;

typedef struct mg_stats {
    size_t n_tensors, n_merged;
    uint64_t bytes_in, bytes_out;
    double seconds;
    uint64_t peak_anon;
} mg_stats;

/* Plans and writes the merged model; -1 with err set (nothing written). */
int mg_run(const mg_inputs *in, const mg_options *o, mg_stats *st, nm_error *err);

#endif
