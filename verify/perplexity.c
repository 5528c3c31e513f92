/* nomoat-verify perplexity: llama-perplexity's algorithm (FORMATS.md §10) on our forward pass,
 * with base-logit saving and KL-divergence against saved logits. */
#include "verify/ppl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/outfile.h"
#include "common/parallel.h"
#include "verify/common.h"
#include "verify/logitsfile.h"
#include "verify/lora.h"
#include "verify/verify.h"

typedef struct kld_acc {
    double nll, nll2, nllb, nllb2, nll_nllb, kld, kld2, dp, dp2, dp4, max_dp;
    long same_top, n;
    float *klds, *dps;
    size_t cap;
} kld_acc;

static void mean_unc(double sum, double sum2, long n, double *mean, double *unc) {
    *mean = n > 0 ? sum / (double)n : 0.0;
    *unc = 0.0;
    if (n > 10) {
        double var = sum2 / (double)n - *mean * *mean;
        if (var > 0) *unc = sqrt(var / (double)(n - 1));
    }
}

static double cov_of(double sab, double sa, double sb, long n) {
    if (n < 10) return 0.0;
    return (sab / (double)n - (sa / (double)n) * (sb / (double)n)) / (double)(n - 1);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double percentile(const float *v, long n, double f) {
    if (n <= 0) return 0.0;
    double p = f * (double)(n - 1);
    long i = (long)floor(p);
    double frac = p - (double)i;
    long j = i + 1 < n ? i + 1 : n - 1;
    return (1.0 - frac) * v[i] + frac * v[j];
}

static double median(const float *v, long n) {
    if (n <= 0) return 0.0;
    return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2 - 1] + (double)v[n / 2]);
}

/* log-sum-exp pieces of a logit row: max (float) and log Σ exp(l - max) (double sum). */
static void row_lse(const float *l, int n, float *max_out, double *log_sum) {
    float m = l[0];
    for (int i = 1; i < n; i++)
        if (l[i] > m) m = l[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)expf(l[i] - m);
    *max_out = m;
    *log_sum = log(s);
}

static int argmax(const float *l, int n) {
    int a = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[a]) a = i;
    return a;
}

static int kld_add(kld_acc *a, const float *cur, const float *base, int n_vocab, int target, nm_error *err) {
    float m, mb;
    double ls, lsb;
    row_lse(cur, n_vocab, &m, &ls);
    row_lse(base, n_vocab, &mb, &lsb);
    const double M = (double)m + ls, Mb = (double)mb + lsb;
    double kld = 0.0;
    for (int v = 0; v < n_vocab; v++) {
        const double bl = (double)base[v] - Mb;
        kld += exp(bl) * (bl - ((double)cur[v] - M));
    }
    const double nll = M - cur[target], nllb = Mb - base[target];
    const double dp = exp(-nll) - exp(-nllb);
    a->nll += nll;
    a->nll2 += nll * nll;
    a->nllb += nllb;
    a->nllb2 += nllb * nllb;
    a->nll_nllb += nll * nllb;
    a->kld += kld;
    a->kld2 += kld * kld;
    a->dp += dp;
    a->dp2 += dp * dp;
    a->dp4 += dp * dp * dp * dp;
    if (fabs(dp) > a->max_dp) a->max_dp = fabs(dp);
    if (argmax(cur, n_vocab) == argmax(base, n_vocab)) a->same_top++;
    if ((size_t)a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 4096;
        float *k2 = realloc(a->klds, nc * sizeof(float));
        if (!k2) return nm_fail(err, "out of memory");
        a->klds = k2;
        float *d2 = realloc(a->dps, nc * sizeof(float));
        if (!d2) return nm_fail(err, "out of memory");
        a->dps = d2;
        a->cap = nc;
    }
    a->klds[a->n] = (float)kld;
    a->dps[a->n] = (float)dp;
    a->n++;
    return 0;
}

static void kld_finish(kld_acc *a, kld_summary *s) {
    const long n = a->n;
    double mq, uq, mb, ub;
    mean_unc(a->nll, a->nll2, n, &mq, &uq);
    mean_unc(a->nllb, a->nllb2, n, &mb, &ub);
    const double cov = cov_of(a->nll_nllb, a->nll, a->nllb, n);
    const double pq = exp(mq), pb = exp(mb);
    s->ppl_base = pb;
    s->ppl_base_err = pb * ub;
    s->cor = (uq > 0 && ub > 0) ? cov / (uq * ub) : 0.0;
    s->ln_ratio = mq - mb;
    double v = uq * uq + ub * ub - 2 * cov;
    s->ln_ratio_err = v > 0 ? sqrt(v) : 0.0;
    s->ppl_ratio = exp(s->ln_ratio);
    s->ppl_ratio_err = s->ppl_ratio * s->ln_ratio_err;
    s->ppl_diff = pq - pb;
    v = pq * pq * uq * uq + pb * pb * ub * ub - 2 * pq * pb * cov;
    s->ppl_diff_err = v > 0 ? sqrt(v) : 0.0;
    mean_unc(a->kld, a->kld2, n, &s->kld_mean, &s->kld_mean_err);
    mean_unc(a->dp, a->dp2, n, &s->dp_mean, &s->dp_mean_err);
    double m2, u2;
    mean_unc(a->dp2, a->dp4, n, &m2, &u2);
    s->rms_dp = sqrt(m2 > 0 ? m2 : 0);
    s->rms_dp_err = s->rms_dp > 0 ? 0.5 / s->rms_dp * u2 : 0.0;
    const double p = n > 0 ? (double)a->same_top / (double)n : 0.0;
    s->same_top = p;
    s->same_top_err = n > 1 ? sqrt(p * (1 - p) / (double)(n - 1)) : 0.0;
    qsort(a->klds, (size_t)n, sizeof(float), cmp_float);
    qsort(a->dps, (size_t)n, sizeof(float), cmp_float);
    const float *k = a->klds, *d = a->dps;
    s->kld_max = n ? k[n - 1] : 0;
    s->kld_999 = percentile(k, n, 0.999);
    s->kld_99 = percentile(k, n, 0.99);
    s->kld_95 = percentile(k, n, 0.95);
    s->kld_90 = percentile(k, n, 0.90);
    s->kld_median = median(k, n);
    s->kld_10 = percentile(k, n, 0.10);
    s->kld_5 = percentile(k, n, 0.05);
    s->kld_1 = percentile(k, n, 0.01);
    s->kld_01 = percentile(k, n, 0.001);
    s->kld_min = n ? k[0] : 0;
    s->dp_max = n ? d[n - 1] : 0;
    s->dp_999 = percentile(d, n, 0.999);
    s->dp_99 = percentile(d, n, 0.99);
    s->dp_95 = percentile(d, n, 0.95);
    s->dp_90 = percentile(d, n, 0.90);
    s->dp_75 = percentile(d, n, 0.75);
    s->dp_median = median(d, n);
    s->dp_25 = percentile(d, n, 0.25);
    s->dp_10 = percentile(d, n, 0.10);
    s->dp_5 = percentile(d, n, 0.05);
    s->dp_1 = percentile(d, n, 0.01);
    s->dp_01 = percentile(d, n, 0.001);
    s->dp_min = n ? d[0] : 0;
}

static void print_kld_summary(FILE *out, const ppl_result *r) {
    const kld_summary *s = &r->kld;
    fprintf(out, "\n====== Perplexity statistics ======\n");
    fprintf(out, "Mean PPL(Q)                   : %10.6f ± %10.6f\n", r->ppl, r->ppl_err);
    fprintf(out, "Mean PPL(base)                : %10.6f ± %10.6f\n", s->ppl_base, s->ppl_base_err);
    fprintf(out, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * s->cor);
    fprintf(out, "Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", s->ln_ratio, s->ln_ratio_err);
    fprintf(out, "Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", s->ppl_ratio, s->ppl_ratio_err);
    fprintf(out, "Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", s->ppl_diff, s->ppl_diff_err);
    fprintf(out, "\n====== KL divergence statistics ======\n");
    fprintf(out, "Mean    KLD: %10.6f ± %10.6f\n", s->kld_mean, s->kld_mean_err);
    fprintf(out, "Maximum KLD: %10.6f\n", s->kld_max);
    fprintf(out, "99.9%%   KLD: %10.6f\n", s->kld_999);
    fprintf(out, "99.0%%   KLD: %10.6f\n", s->kld_99);
    fprintf(out, "95.0%%   KLD: %10.6f\n", s->kld_95);
    fprintf(out, "90.0%%   KLD: %10.6f\n", s->kld_90);
    fprintf(out, "Median  KLD: %10.6f\n", s->kld_median);
    fprintf(out, "10.0%%   KLD: %10.6f\n", s->kld_10);
    fprintf(out, " 5.0%%   KLD: %10.6f\n", s->kld_5);
    fprintf(out, " 1.0%%   KLD: %10.6f\n", s->kld_1);
    fprintf(out, " 0.1%%   KLD: %10.6f\n", s->kld_01);
    fprintf(out, "Minimum KLD: %10.6f\n", s->kld_min);
    fprintf(out, "\n====== Token probability statistics ======\n");
    fprintf(out, "Mean    Δp: %6.3f ± %5.3f %%\n", 100 * s->dp_mean, 100 * s->dp_mean_err);
    fprintf(out, "Maximum Δp: %6.3f%%\n", 100 * s->dp_max);
    fprintf(out, "99.9%%   Δp: %6.3f%%\n", 100 * s->dp_999);
    fprintf(out, "99.0%%   Δp: %6.3f%%\n", 100 * s->dp_99);
    fprintf(out, "95.0%%   Δp: %6.3f%%\n", 100 * s->dp_95);
    fprintf(out, "90.0%%   Δp: %6.3f%%\n", 100 * s->dp_90);
    fprintf(out, "75.0%%   Δp: %6.3f%%\n", 100 * s->dp_75);
    fprintf(out, "Median  Δp: %6.3f%%\n", 100 * s->dp_median);
    fprintf(out, "25.0%%   Δp: %6.3f%%\n", 100 * s->dp_25);
    fprintf(out, "10.0%%   Δp: %6.3f%%\n", 100 * s->dp_10);
    fprintf(out, " 5.0%%   Δp: %6.3f%%\n", 100 * s->dp_5);
    fprintf(out, " 1.0%%   Δp: %6.3f%%\n", 100 * s->dp_1);
    fprintf(out, " 0.1%%   Δp: %6.3f%%\n", 100 * s->dp_01);
    fprintf(out, "Minimum Δp: %6.3f%%\n", 100 * s->dp_min);
    fprintf(out, "RMS Δp    : %6.3f ± %5.3f %%\n", 100 * s->rms_dp, 100 * s->rms_dp_err);
    fprintf(out, "Same top p: %6.3f ± %5.3f %%\n", 100 * s->same_top, 100 * s->same_top_err);
}

int ppl_run(const ppl_options *o, ppl_result *r, nm_error *err) {
    memset(r, 0, sizeof *r);
    verify_model vm;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    nm_pool *pool = NULL;
    vm_ctx *ctx = NULL;
    float *logits = NULL, *base = NULL;
    logits_writer *lw = NULL;
    logits_reader *lr = NULL;
    kld_acc ka;
    memset(&ka, 0, sizeof ka);
    vm_adapters *adapters = NULL;
    int rc = -1;
    if (verify_model_open(&vm, o->model, err)) return -1;
    if (verify_load_tokens(&vm, o->model, o->text, o->tokens, &ids, &n_ids, err)) goto done;
    const int n_vocab = vm.m.n_vocab;
    int n_ctx = o->n_ctx > 0 ? o->n_ctx : 512;
    logits_header bh;
    if (o->kld_base) {
        lr = logits_reader_open(o->kld_base, &bh, err);
        if (!lr) goto done;
        if (o->n_ctx > 0 && (uint32_t)o->n_ctx != bh.n_ctx) {
            nm_fail(err, "%s was saved with -c %u, not %d", o->kld_base, bh.n_ctx, o->n_ctx);
            goto done;
        }
        n_ctx = (int)bh.n_ctx;
        if (bh.n_vocab != (uint32_t)n_vocab) {
            nm_fail(err, "%s holds logits over %u tokens but %s has a vocabulary of %d", o->kld_base, bh.n_vocab,
                    o->model, n_vocab);
            goto done;
        }
    }
    if (n_ctx < 4) {
        nm_fail(err, "context size %d is too small", n_ctx);
        goto done;
    }
    if (n_ids < 2 * (size_t)n_ctx) {
        nm_fail(err, "%s gives %zu tokens; perplexity needs at least 2 × %d (two contexts)",
                o->tokens ? o->tokens : o->text, n_ids, n_ctx);
        goto done;
    }
    int n_chunk = (int)(n_ids / (size_t)n_ctx);
    if (o->n_chunks >= 0 && o->n_chunks < n_chunk) n_chunk = o->n_chunks;
    if (n_chunk < 1) {
        nm_fail(err, "no chunks to evaluate");
        goto done;
    }
    const int first = n_ctx / 2;
    if (lr) {
        if (bh.n_chunk > (uint32_t)(n_ids / (size_t)n_ctx) ||
            logits_token_hash(ids, (size_t)bh.n_chunk * n_ctx) != bh.token_hash) {
            nm_fail(err, "%s was saved from a different text or tokenization (token hash differs)", o->kld_base);
            goto done;
        }
        if (o->n_chunks >= 0 && (uint32_t)o->n_chunks < bh.n_chunk) {
            n_chunk = o->n_chunks;
        } else {
            n_chunk = (int)bh.n_chunk;
        }
    }
    pool = nm_pool_create(o->n_threads);
    if (!pool) {
        nm_fail(err, "out of memory");
        goto done;
    }
    ctx = vm_ctx_create(&vm.m, n_ctx, pool, o->exact, err);
    if (!ctx) goto done;
    if (o->n_loras > 0) {
        if (!(adapters = vm_adapters_load(vm.g, &vm.m, o->loras, o->n_loras, err)) ||
            vm_ctx_set_adapters(ctx, adapters, err))
            goto done;
    }
    logits = malloc((size_t)(n_ctx - first) * (size_t)n_vocab * sizeof(float));
    base = malloc((size_t)n_vocab * sizeof(float));
    int32_t *batch = malloc((size_t)n_ctx * sizeof(int32_t));
    if (!logits || !base || !batch) {
        free(batch);
        nm_fail(err, "out of memory");
        goto done;
    }
    if (o->save_logits) {
        logits_header h = {.n_ctx = (uint32_t)n_ctx, .n_vocab = (uint32_t)n_vocab, .n_chunk = (uint32_t)n_chunk,
                           .first = (uint32_t)first,
                           .token_hash = logits_token_hash(ids, (size_t)n_chunk * n_ctx)};
        lw = logits_writer_create(o->save_logits, &h, nm_pool_threads(pool), err);
        if (!lw) {
            free(batch);
            goto done;
        }
    }
    FILE *out = o->out;
    if (out) {
        fprintf(out, "perplexity: %d chunks, n_ctx=%d, %d threads%s\n", n_chunk, n_ctx, nm_pool_threads(pool),
                o->exact ? ", exact f32 arithmetic" : "");
        if (adapters) vm_adapters_print(adapters, out);
        if (lr)
            fprintf(out, "\nchunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p\n");
        fflush(out);
    }
    nm_progress prog;
    nm_progress_start(&prog, "perplexity", (uint64_t)n_chunk, 0, !o->progress);
    double nll = 0.0, nll2 = 0.0;
    long count = 0;
    const double t0 = nm_now();
    for (int k = 0; k < n_chunk; k++) {
        memcpy(batch, ids + (size_t)k * n_ctx, (size_t)n_ctx * sizeof(int32_t));
        if (vm.add_bos) batch[0] = vm.bos_id;
        if (vm_eval(ctx, batch, n_ctx, 0, first, logits, err)) {
            free(batch);
            goto done;
        }
        for (int p = first; p < n_ctx - 1; p++) {
            const float *row = logits + (size_t)(p - first) * n_vocab;
            const int target = ids[(size_t)k * n_ctx + p + 1];
            float m;
            double ls;
            row_lse(row, n_vocab, &m, &ls);
            const double logp = (double)(row[target] - m) - ls;
            nll -= logp;
            nll2 += logp * logp;
            count++;
            if (lw && logits_writer_put(lw, row, err)) {
                free(batch);
                goto done;
            }
            if (lr) {
                if (logits_reader_get(lr, base, err) || kld_add(&ka, row, base, n_vocab, target, err)) {
                    free(batch);
                    goto done;
                }
            }
        }
        if (out) {
            if (lr) {
                double mq, uq, mk, uk, mb, ub, m2, u2;
                mean_unc(ka.nll, ka.nll2, ka.n, &mq, &uq);
                mean_unc(ka.nllb, ka.nllb2, ka.n, &mb, &ub);
                mean_unc(ka.kld, ka.kld2, ka.n, &mk, &uk);
                mean_unc(ka.dp2, ka.dp4, ka.n, &m2, &u2);
                const double cov = cov_of(ka.nll_nllb, ka.nll, ka.nllb, ka.n);
                double lv = uq * uq + ub * ub - 2 * cov;
                const double rms = sqrt(m2 > 0 ? m2 : 0), p = (double)ka.same_top / (double)ka.n;
                fprintf(out, "%4d  %10.4f ± %9.4f  %10.5f ± %10.5f  %10.5f ± %10.5f  %6.3f ± %6.3f %%  %6.3f ± %6.3f %%\n",
                        k + 1, exp(mq), exp(mq) * uq, mq - mb, lv > 0 ? sqrt(lv) : 0.0, mk, uk, 100 * rms,
                        rms > 0 ? 100 * 0.5 / rms * u2 : 0.0, 100 * p, 100 * sqrt(p * (1 - p) / (double)(ka.n - 1)));
            } else {
                fprintf(out, "[%d]%.4f,", k + 1, exp(nll / (double)count));
            }
            fflush(out);
        }
        nm_progress_update(&prog, (uint64_t)k + 1, 0);
    }
    nm_progress_finish(&prog);
    free(batch);
    r->seconds = nm_now() - t0;
    const double mean = nll / (double)count;
    double var = nll2 / (double)count - mean * mean;
    r->ppl = exp(mean);
    r->ppl_err = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * r->ppl : 0.0;
    r->n_chunks = n_chunk;
    r->n_ctx = n_ctx;
    r->n_tokens = (long)n_chunk * n_ctx;
    r->n_scored = count;
    r->tokens_per_s = r->seconds > 0 ? (double)r->n_tokens / r->seconds : 0.0;
    if (lw) {
        int frc = logits_writer_finish(lw, err);
        lw = NULL;
        if (frc) goto done;
    }
    if (lr) {
        r->has_kld = true;
        kld_finish(&ka, &r->kld);
    }
    if (out) {
        fprintf(out, "\n");
        if (r->has_kld) print_kld_summary(out, r);
        fprintf(out, "\nFinal estimate: PPL = %.4f +/- %.5f\n", r->ppl, r->ppl_err);
        fprintf(out, "%ld tokens in %.2f s (%.1f tokens/s)\n", r->n_tokens, r->seconds, r->tokens_per_s);
        fflush(out);
    }
    rc = 0;
done:
    logits_writer_abort(lw);
    logits_reader_close(lr);
    free(ka.klds);
    free(ka.dps);
    free(logits);
    free(base);
    vm_ctx_free(ctx);
    vm_adapters_free(adapters);
    nm_pool_destroy(pool);
    free(ids);
    verify_model_close(&vm);
    return rc;
}

void ppl_result_to_json(const ppl_result *r, void *obj) {
    cJSON *o = obj;
    cJSON_AddNumberToObject(o, "ppl", r->ppl);
    cJSON_AddNumberToObject(o, "ppl_err", r->ppl_err);
    cJSON_AddNumberToObject(o, "n_tokens", (double)r->n_tokens);
    cJSON_AddNumberToObject(o, "n_scored", (double)r->n_scored);
    cJSON_AddNumberToObject(o, "n_chunks", r->n_chunks);
    cJSON_AddNumberToObject(o, "n_ctx", r->n_ctx);
    cJSON_AddNumberToObject(o, "tokens_per_s", r->tokens_per_s);
    if (r->has_kld) {
        const kld_summary *s = &r->kld;
        cJSON_AddNumberToObject(o, "ppl_base", s->ppl_base);
        cJSON_AddNumberToObject(o, "ppl_ratio", s->ppl_ratio);
        cJSON_AddNumberToObject(o, "kld_mean", s->kld_mean);
        cJSON_AddNumberToObject(o, "kld_mean_err", s->kld_mean_err);
        cJSON_AddNumberToObject(o, "kld_max", s->kld_max);
        cJSON_AddNumberToObject(o, "kld_99", s->kld_99);
        cJSON_AddNumberToObject(o, "kld_median", s->kld_median);
        cJSON_AddNumberToObject(o, "rms_dp_pct", 100 * s->rms_dp);
        cJSON_AddNumberToObject(o, "rms_dp_pct_err", 100 * s->rms_dp_err);
        cJSON_AddNumberToObject(o, "same_top_p_pct", 100 * s->same_top);
        cJSON_AddNumberToObject(o, "same_top_p_pct_err", 100 * s->same_top_err);
    }
}

int ppl_write_json(const char *path, const ppl_result *r, const char *model, nm_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return nm_fail(err, "out of memory");
    cJSON_AddStringToObject(o, "model", model);
    ppl_result_to_json(r, o);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return nm_fail(err, "out of memory");
    nm_outfile *f = nm_outfile_create(path, NM_OUT_FORCE, err);
    int rc = -1;
    if (f && nm_outfile_write(f, s, strlen(s), err) == 0 && nm_outfile_write(f, "\n", 1, err) == 0) {
        rc = nm_outfile_commit(f, err);
        f = NULL;
    }
    nm_outfile_abort(f);
    free(s);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: nomoat-verify perplexity MODEL.gguf (-f TEXT | --tokens IDS) [options]\n"
            "  -f, --file TEXT        text to score (one trailing newline is dropped)\n"
            "      --tokens IDS       score int32 little-endian token ids instead of a text\n"
            "  -c, --ctx-size N       context size (default 512)\n"
            "      --chunks K         evaluate at most K chunks (default all)\n"
            "  -t, --threads N        threads (default all cores)\n"
            "      --exact            f32 activations and KV cache, dequantized weights\n"
            "      --save-logits BASE save this model's logits for later --kld runs\n"
            "      --kld BASE         compare with logits saved by --save-logits (KL divergence)\n"
            "      --json FILE        write the results as JSON\n"
            "      --lora FILE[:SCALE] apply a GGUF LoRA adapter at run time (scale default 1), as\n"
            "                         llama-perplexity --lora / --lora-scaled does; repeatable (stacked)\n"
            "  -q, --quiet            no running values\n");
}

int verify_perplexity_main(int argc, char **argv) {
    ppl_options o = {.n_ctx = 0, .n_chunks = -1, .n_threads = 0, .out = stdout, .progress = isatty(2)};
    const char *json = NULL;
    const char *loras[VERIFY_MAX_LORA];
    o.loras = loras;
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
#define NEED()                                                   \
    if (!has) {                                                  \
        verify_error("perplexity: %s needs a value", a);         \
        return VERIFY_EXIT_ERROR;                                \
    }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            NEED();
            o.text = argv[++i];
        } else if (!strcmp(a, "--tokens")) {
            NEED();
            o.tokens = argv[++i];
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            NEED();
            if (verify_parse_int(a, argv[++i], 4, 1 << 20, &v)) return VERIFY_EXIT_ERROR;
            o.n_ctx = (int)v;
        } else if (!strcmp(a, "--chunks")) {
            NEED();
            if (verify_parse_int(a, argv[++i], -1, 1 << 30, &v)) return VERIFY_EXIT_ERROR;
            o.n_chunks = (int)v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED();
            if (verify_parse_int(a, argv[++i], 0, 1024, &v)) return VERIFY_EXIT_ERROR;
            o.n_threads = (int)v;
        } else if (!strcmp(a, "--exact")) {
            o.exact = true;
        } else if (!strcmp(a, "--save-logits")) {
            NEED();
            o.save_logits = argv[++i];
        } else if (!strcmp(a, "--kld")) {
            NEED();
            o.kld_base = argv[++i];
        } else if (!strcmp(a, "--json")) {
            NEED();
            json = argv[++i];
        } else if (!strcmp(a, "--lora")) {
            NEED();
            if (verify_add_lora(loras, &o.n_loras, argv[++i])) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.out = NULL;
        } else if (a[0] == '-' && a[1]) {
            verify_error("perplexity: unknown option %s (see --help)", a);
            return VERIFY_EXIT_ERROR;
        } else if (!o.model) {
            o.model = a;
        } else {
            verify_error("perplexity: unexpected argument %s", a);
            return VERIFY_EXIT_ERROR;
        }
#undef NEED
    }
    if (!o.model || (!o.text && !o.tokens)) {
        usage(stderr);
        return VERIFY_EXIT_ERROR;
    }
    if (o.save_logits && o.kld_base) {
        verify_error("perplexity: --save-logits and --kld cannot be combined");
        return VERIFY_EXIT_ERROR;
    }
    nm_error err = {{0}};
    ppl_result r;
    if (ppl_run(&o, &r, &err)) {
        verify_error("%s", err.msg);
        return VERIFY_EXIT_ERROR;
    }
    if (json && ppl_write_json(json, &r, o.model, &err)) {
        verify_error("%s", err.msg);
        return VERIFY_EXIT_ERROR;
    }
    return VERIFY_EXIT_OK;
}
