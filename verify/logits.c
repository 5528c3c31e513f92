/* nomoat-verify logits: the next-token distribution after a prompt (top N tokens with their
 * probabilities), for spot checks against other llama.cpp-based runtimes. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parallel.h"
#include "verify/common.h"
#include "verify/lora.h"
#include "verify/verify.h"

static void usage(FILE *f) {
    fprintf(f, "usage: nomoat-verify logits MODEL.gguf --prompt TEXT [--top N] [--exact] [-t N] [--json]\n"
               "                                     [--lora ADAPTER.gguf[:SCALE] ...]\n"
               "Prints the N most probable next tokens after TEXT (tokenized with BOS) with probabilities;\n"
               "--lora applies LoRA adapters at run time as llama.cpp does (repeatable, stacked in order).\n");
}

typedef struct cand {
    int id;
    float logit;
} cand;

static int by_logit(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

int verify_logits_main(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL;
    long top = 10, threads = 0;
    bool exact = false, json = false;
    const char *loras[VERIFY_MAX_LORA];
    int n_loras = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--prompt") && i + 1 < argc) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--top") && i + 1 < argc) {
            if (verify_parse_int(a, argv[++i], 1, 1 << 24, &top)) return VERIFY_EXIT_ERROR;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && i + 1 < argc) {
            if (verify_parse_int(a, argv[++i], 0, 1024, &threads)) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "--lora") && i + 1 < argc) {
            if (verify_add_lora(loras, &n_loras, argv[++i])) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "--exact")) {
            exact = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            verify_error("logits: unknown option or missing value: %s", a);
            return VERIFY_EXIT_ERROR;
        } else if (!model) {
            model = a;
        } else {
            verify_error("logits: unexpected argument %s", a);
            return VERIFY_EXIT_ERROR;
        }
    }
    if (!model || !prompt) {
        usage(stderr);
        return VERIFY_EXIT_ERROR;
    }
    nm_error err = {{0}};
    verify_model vm;
    if (verify_model_open(&vm, model, &err)) {
        verify_error("%s", err.msg);
        return VERIFY_EXIT_ERROR;
    }
    int status = VERIFY_EXIT_ERROR;
    int32_t *ids = NULL;
    size_t n = 0;
    nm_pool *pool = NULL;
    vm_ctx *ctx = NULL;
    vm_adapters *adapters = NULL;
    float *logits = NULL;
    cand *c = NULL;
    if (verify_tokenize_text(&vm, model, prompt, strlen(prompt), &ids, &n, &err)) goto fail;
    if (n == 0) {
        nm_fail(&err, "the prompt gives no tokens");
        goto fail;
    }
    pool = nm_pool_create((int)threads);
    ctx = pool ? vm_ctx_create(&vm.m, (int)n, pool, exact, &err) : NULL;
    logits = malloc((size_t)vm.m.n_vocab * sizeof(float));
    c = malloc((size_t)vm.m.n_vocab * sizeof(cand));
    if (!ctx || !logits || !c) {
        if (!err.msg[0]) nm_fail(&err, "out of memory");
        goto fail;
    }
    if (n_loras > 0 && (!(adapters = vm_adapters_load(vm.g, &vm.m, loras, n_loras, &err)) ||
                        vm_ctx_set_adapters(ctx, adapters, &err)))
        goto fail;
    if (vm_eval(ctx, ids, (int)n, 0, (int)n - 1, logits, &err)) goto fail;
    const int V = vm.m.n_vocab;
    float mx = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    for (int v = 0; v < V; v++) c[v] = (cand){v, logits[v]};
    qsort(c, (size_t)V, sizeof *c, by_logit);
    if (top > V) top = V;
    const gguf_value *toks = gguf_get(vm.g, "tokenizer.ggml.tokens");
    cJSON *root = json ? cJSON_CreateObject() : NULL, *jt = NULL, *jtop = NULL;
    if (json) {
        jt = cJSON_AddArrayToObject(root, "tokens");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(jt, cJSON_CreateNumber(ids[i]));
        jtop = cJSON_AddArrayToObject(root, "top");
    } else {
        printf("prompt: %zu tokens\n%4s %7s %10s  %s\n", n, "rank", "id", "prob", "piece");
    }
    for (long r = 0; r < top; r++) {
        const double p = exp((double)c[r].logit - mx) / sum;
        char piece[64] = "?";
        if (toks && toks->type == GGUF_TYPE_ARRAY && toks->arr.type == GGUF_TYPE_STRING &&
            (uint64_t)c[r].id < toks->arr.count) {
            const gguf_string *s = &toks->arr.strings[c[r].id];
            snprintf(piece, sizeof piece, "%.*s", (int)(s->len > 60 ? 60 : s->len), s->ptr);
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "id", c[r].id);
            cJSON_AddNumberToObject(o, "p", p);
            cJSON_AddNumberToObject(o, "logit", c[r].logit);
            cJSON_AddStringToObject(o, "piece", piece);
            cJSON_AddItemToArray(jtop, o);
        } else {
            printf("%4ld %7d %10.6f  %s\n", r + 1, c[r].id, p, piece);
        }
    }
    if (json) {
        char *s = cJSON_Print(root);
        if (s) puts(s);
        free(s);
        cJSON_Delete(root);
    }
    status = VERIFY_EXIT_OK;
fail:
    if (status) verify_error("%s", err.msg);
    free(c);
    free(logits);
    free(ids);
    vm_ctx_free(ctx);
    vm_adapters_free(adapters);
    nm_pool_destroy(pool);
    verify_model_close(&vm);
    return status;
}
