/* nomoat-verify gate: the CI quality gate. Evaluates a base model (saving its logits) and a
 * candidate on the same text, then fails (exit 1) when the candidate's perplexity ratio or mean
 * KL divergence exceeds the given limits. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/outfile.h"
#include "verify/common.h"
#include "verify/ppl.h"
#include "verify/verify.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nomoat-verify gate --base A.gguf --model B.gguf -f TEXT --max-ppl-ratio R --max-kld K [options]\n"
            "  -c, --ctx-size N     context size (default 512)\n"
            "      --chunks K       evaluate at most K chunks (default all)\n"
            "  -t, --threads N      threads (default all cores)\n"
            "      --exact          f32 activations and KV cache, dequantized weights\n"
            "      --json FILE      write the report as JSON\n"
            "      --lora F[:S]     apply a GGUF LoRA adapter to the --model run (repeatable); without\n"
            "                       --model the model is the base itself: gate an adapter against its base\n"
            "Exit status: 0 within limits, 1 a limit exceeded, 2 error.\n");
}

int verify_gate_main(int argc, char **argv) {
    ppl_options o = {.n_ctx = 512, .n_chunks = -1, .n_threads = 0, .out = NULL, .progress = isatty(2)};
    const char *base = NULL, *model = NULL, *json = NULL;
    const char *loras[VERIFY_MAX_LORA];
    int n_loras = 0;
    double max_ratio = NAN, max_kld = NAN;
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--exact")) {
            o.exact = true;
            continue;
        }
        if (a[0] != '-') {
            verify_error("gate: unexpected argument %s (see --help)", a);
            return VERIFY_EXIT_ERROR;
        }
        if (!has) {
            verify_error("gate: %s needs a value (see --help)", a);
            return VERIFY_EXIT_ERROR;
        }
        const char *val = argv[++i];
        if (!strcmp(a, "--base")) base = val;
        else if (!strcmp(a, "--model")) model = val;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) o.text = val;
        else if (!strcmp(a, "--tokens")) o.tokens = val;
        else if (!strcmp(a, "--json")) json = val;
        else if (!strcmp(a, "--lora")) {
            if (verify_add_lora(loras, &n_loras, val)) return VERIFY_EXIT_ERROR;
        }
        else if (!strcmp(a, "--max-ppl-ratio")) {
            if (verify_parse_double(a, val, &max_ratio)) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "--max-kld")) {
            if (verify_parse_double(a, val, &max_kld)) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (verify_parse_int(a, val, 4, 1 << 20, &v)) return VERIFY_EXIT_ERROR;
            o.n_ctx = (int)v;
        } else if (!strcmp(a, "--chunks")) {
            if (verify_parse_int(a, val, -1, 1 << 30, &v)) return VERIFY_EXIT_ERROR;
            o.n_chunks = (int)v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (verify_parse_int(a, val, 0, 1024, &v)) return VERIFY_EXIT_ERROR;
            o.n_threads = (int)v;
        } else {
            verify_error("gate: unknown option %s (see --help)", a);
            return VERIFY_EXIT_ERROR;
        }
    }
    if (!model && n_loras > 0) model = base;
    if (!base || !model || (!o.text && !o.tokens)) {
        usage(stderr);
        return VERIFY_EXIT_ERROR;
    }
    if (isnan(max_ratio) && isnan(max_kld)) {
        verify_error("gate: give --max-ppl-ratio and/or --max-kld");
        return VERIFY_EXIT_ERROR;
    }
    char tmp[4096];
    const char *dir = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/nomoat-gate-%ld.logits", dir && *dir ? dir : "/tmp", (long)getpid());
    nm_error err = {{0}};
    ppl_result rb, rm;
    o.model = base;
    o.save_logits = tmp;
    if (ppl_run(&o, &rb, &err)) {
        unlink(tmp);
        verify_error("base: %s", err.msg);
        return VERIFY_EXIT_ERROR;
    }
    o.model = model;
    o.save_logits = NULL;
    o.kld_base = tmp;
    o.loras = loras;
    o.n_loras = n_loras;
    const int rc = ppl_run(&o, &rm, &err);
    unlink(tmp);
    if (rc) {
        verify_error("model: %s", err.msg);
        return VERIFY_EXIT_ERROR;
    }
    const double ratio = rm.ppl / rb.ppl;
    const bool ratio_ok = isnan(max_ratio) || ratio <= max_ratio;
    const bool kld_ok = isnan(max_kld) || rm.kld.kld_mean <= max_kld;
    printf("%-22s %-28s %-28s\n", "", "base", "model");
    printf("%-22s %-28s %-28s\n", "file", base, model);
    for (int k = 0; k < n_loras; k++) printf("%-22s %-28s %-28s\n", k ? "" : "+ adapters", "", loras[k]);
    printf("%-22s %12.4f ± %-13.4f %12.4f ± %-13.4f\n", "perplexity", rb.ppl, rb.ppl_err, rm.ppl, rm.ppl_err);
    printf("%-22s %-28s %12.6f", "PPL ratio", "", ratio);
    if (!isnan(max_ratio)) printf("  (limit %.6g)  %s", max_ratio, ratio_ok ? "ok" : "EXCEEDED");
    printf("\n%-22s %-28s %12.6f ± %.6f", "mean KLD", "", rm.kld.kld_mean, rm.kld.kld_mean_err);
    if (!isnan(max_kld)) printf("  (limit %.6g)  %s", max_kld, kld_ok ? "ok" : "EXCEEDED");
    printf("\n%-22s %-28s %12.6f\n", "99% KLD", "", rm.kld.kld_99);
    printf("%-22s %-28s %11.3f %%\n", "RMS Δp", "", 100 * rm.kld.rms_dp);
    printf("%-22s %-28s %11.3f %%\n", "same top token", "", 100 * rm.kld.same_top);
    printf("%-22s %d chunks × %d tokens\n", "evaluated", rm.n_chunks, rm.n_ctx);
    printf("result: %s\n", ratio_ok && kld_ok ? "PASS" : "FAIL");
    if (json) {
        cJSON *root = cJSON_CreateObject(), *jb = cJSON_CreateObject(), *jm = cJSON_CreateObject(),
              *lim = cJSON_CreateObject();
        cJSON_AddStringToObject(jb, "model", base);
        ppl_result_to_json(&rb, jb);
        cJSON_AddStringToObject(jm, "model", model);
        if (n_loras > 0) {
            cJSON *jl = cJSON_AddArrayToObject(jm, "lora");
            for (int k = 0; k < n_loras; k++) cJSON_AddItemToArray(jl, cJSON_CreateString(loras[k]));
        }
        ppl_result_to_json(&rm, jm);
        cJSON_AddItemToObject(root, "base", jb);
        cJSON_AddItemToObject(root, "model", jm);
        cJSON_AddNumberToObject(root, "ppl_ratio", ratio);
        cJSON_AddNumberToObject(root, "kld_mean", rm.kld.kld_mean);
        if (!isnan(max_ratio)) cJSON_AddNumberToObject(lim, "max_ppl_ratio", max_ratio);
        if (!isnan(max_kld)) cJSON_AddNumberToObject(lim, "max_kld", max_kld);
        cJSON_AddItemToObject(root, "limits", lim);
        cJSON_AddBoolToObject(root, "ppl_ratio_ok", ratio_ok);
        cJSON_AddBoolToObject(root, "kld_ok", kld_ok);
        cJSON_AddBoolToObject(root, "pass", ratio_ok && kld_ok);
        char *s = cJSON_Print(root);
        cJSON_Delete(root);
        nm_outfile *f = s ? nm_outfile_create(json, NM_OUT_FORCE, &err) : NULL;
        int wrc = -1;
        if (f && !nm_outfile_write(f, s, strlen(s), &err) && !nm_outfile_write(f, "\n", 1, &err)) {
            wrc = nm_outfile_commit(f, &err);
            f = NULL;
        }
        nm_outfile_abort(f);
        free(s);
        if (wrc) {
            verify_error("%s", err.msg[0] ? err.msg : "out of memory");
            return VERIFY_EXIT_ERROR;
        }
    }
    return ratio_ok && kld_ok ? VERIFY_EXIT_OK : VERIFY_EXIT_LIMITS;
}
