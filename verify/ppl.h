/* Perplexity and KL-divergence runs exactly as llama-perplexity computes them (FORMATS.md §10). */
#ifndef NOMOAT_VERIFY_PPL_H
#define NOMOAT_VERIFY_PPL_H

#include <stdbool.h>
#include <stdio.h>

#include "common/error.h"

typedef struct ppl_options {
    const char *model, *text, *tokens; /* text or tokens (int32 ids) */
    int n_ctx;                         /* default 512 */
    int n_chunks;                      /* < 0: all */
    int n_threads;                     /* <= 0: all cores */
    bool exact;
    const char *save_logits; /* write base logits */
    const char *kld_base;    /* compare against saved logits */
    const char *const *loras; /* run-time adapters, "FILE[:SCALE]" (verify/lora.h) */
    int n_loras;
    FILE *out;               /* running values and the summary (NULL: silent) */
    bool progress;
} ppl_options;

typedef struct kld_summary {
    double ppl_base, ppl_base_err, ln_ratio, ln_ratio_err, ppl_ratio, ppl_ratio_err, ppl_diff, ppl_diff_err, cor;
    double kld_mean, kld_mean_err, kld_max, kld_999, kld_99, kld_95, kld_90, kld_median, kld_10, kld_5, kld_1,
        kld_01, kld_min;
    double dp_mean, dp_mean_err, dp_max, dp_999, dp_99, dp_95, dp_90, dp_75, dp_median, dp_25, dp_10, dp_5, dp_1,
        dp_01, dp_min;
    double rms_dp, rms_dp_err, same_top, same_top_err; /* fractions, not percent */
} kld_summary;

typedef struct ppl_result {
    double ppl, ppl_err;
    long n_tokens;  /* tokens evaluated (n_chunks · n_ctx) */
    long n_scored;  /* tokens scored */
    int n_chunks, n_ctx;
    double seconds, tokens_per_s;
    bool has_kld;
    kld_summary kld;
} ppl_result;

/* Runs the whole evaluation; returns 0, or -1 with err set (bad input, I/O). */
int ppl_run(const ppl_options *o, ppl_result *r, nm_error *err);

/* Writes the --json report (atomic). */
int ppl_write_json(const char *path, const ppl_result *r, const char *model, nm_error *err);
/* Adds the result's fields to a cJSON object (void * to keep cJSON out of this header). */
void ppl_result_to_json(const ppl_result *r, void *cjson_object);

#endif
