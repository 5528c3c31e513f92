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
    fprintf(f, "usage: nomoat-verify logits MODEL.gguf (--prompt TEXT | -f FILE) [--top N] [--exact] [-t N]\n"
               "                          [--max-tokens N] [--logprobs] [-b N] [--json] [--lora ADAPTER.gguf[:SCALE] ...]\n"
               "Prints the N most probable next tokens after TEXT (tokenized with BOS) with probabilities;\n"
               "--logprobs also gives, for every position, the log-probability of the token that follows it\n"
               "(the text's own continuation); --max-tokens keeps only the first N tokens; -b N evaluates\n"
               "the tokens in batches of N (llama.cpp's results depend on the batch size; default: one batch);\n"
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

/* log softmax(logits)[id], in double from the float logits (max subtracted first), and the
 * normalisation-free gap logits[id] - max */
static double token_logprob(const float *logits, int V, int id, double *gap) {
    float mx = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    if (gap) *gap = (double)logits[id] - (double)mx;
    return (double)logits[id] - mx - log(sum);
}

int verify_logits_main(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    long top = 10, threads = 0, max_tokens = 0, batch = 0;
    bool exact = false, json = false, logprobs = false;
    const char *loras[VERIFY_MAX_LORA];
    int n_loras = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--prompt") && i + 1 < argc) {
            prompt = argv[++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(a, "--max-tokens") && i + 1 < argc) {
            if (verify_parse_int(a, argv[++i], 1, 1 << 24, &max_tokens)) return VERIFY_EXIT_ERROR;
        } else if ((!strcmp(a, "-b") || !strcmp(a, "--batch-size")) && i + 1 < argc) {
            if (verify_parse_int(a, argv[++i], 1, 1 << 24, &batch)) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "--logprobs")) {
            logprobs = true;
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
    if (!model || !prompt == !file) {
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
    float *logits = NULL, *all = NULL;
    cand *c = NULL;
    char *text = NULL;
    size_t text_len = prompt ? strlen(prompt) : 0;
    if (file && verify_read_file(file, &text, &text_len, &err)) goto fail;
    if (verify_tokenize_text(&vm, model, file ? text : prompt, text_len, &ids, &n, &err)) goto fail;
    if (max_tokens > 0 && n > (size_t)max_tokens) n = (size_t)max_tokens;
    if (n == 0) {
        nm_fail(&err, "the prompt gives no tokens");
        goto fail;
    }
    if (n > (size_t)INT32_MAX / 2) {
        nm_fail(&err, "the prompt gives %zu tokens; use --max-tokens", n);
        goto fail;
    }
    pool = nm_pool_create((int)threads);
    ctx = pool ? vm_ctx_create(&vm.m, (int)n, pool, exact, &err) : NULL;
    /* with --logprobs every position's logits, the last row being the one ranked below */
    size_t rows = logprobs ? n : 1;
    if ((size_t)vm.m.n_vocab > SIZE_MAX / sizeof(float) / rows) {
        nm_fail(&err, "%zu positions of %d logits do not fit in memory", rows, vm.m.n_vocab);
        goto fail;
    }
    all = malloc(rows * (size_t)vm.m.n_vocab * sizeof(float));
    logits = all ? all + (rows - 1) * (size_t)vm.m.n_vocab : NULL;
    c = malloc((size_t)vm.m.n_vocab * sizeof(cand));
    if (!ctx || !logits || !c) {
        if (!err.msg[0]) nm_fail(&err, "out of memory");
        goto fail;
    }
    if (n_loras > 0 && (!(adapters = vm_adapters_load(vm.g, &vm.m, loras, n_loras, &err)) ||
                        vm_ctx_set_adapters(ctx, adapters, &err)))
        goto fail;
    /* batch by batch; logits of the positions from n - rows on land in all */
    const size_t step = batch > 0 ? (size_t)batch : n;
    for (size_t b0 = 0; b0 < n; b0 += step) {
        const size_t len = n - b0 < step ? n - b0 : step, want = n - rows;
        const size_t from = want > b0 ? want - b0 : 0; /* first token of this batch with logits */
        float *dst = from < len ? all + (b0 + from - want) * (size_t)vm.m.n_vocab : NULL;
        if (vm_eval(ctx, ids + b0, (int)len, (int)b0, (int)from, dst, &err)) goto fail;
    }
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
        if (logprobs) {
            /* "gaps": the next token's logit minus the position's largest, which needs no
             * normalisation (for comparisons with tools that normalise in float) */
            cJSON *jl = cJSON_AddArrayToObject(root, "logprobs"), *jg = cJSON_AddArrayToObject(root, "gaps");
            for (size_t i = 0; i + 1 < n; i++) {
                double gap, lp = token_logprob(all + i * (size_t)V, V, ids[i + 1], &gap);
                cJSON_AddItemToArray(jl, cJSON_CreateNumber(lp));
                cJSON_AddItemToArray(jg, cJSON_CreateNumber(gap));
            }
        }
    } else {
        printf("prompt: %zu tokens\n", n);
        if (logprobs) {
            double total = 0.0;
            printf("%6s %7s %12s\n", "pos", "next id", "log p(next)");
            for (size_t i = 0; i + 1 < n; i++) {
                double lp = token_logprob(all + i * (size_t)V, V, ids[i + 1], NULL);
                total += lp;
                printf("%6zu %7d %12.6f\n", i, ids[i + 1], lp);
            }
            if (n > 1) printf("mean log p %.6f over %zu positions\n", total / (double)(n - 1), n - 1);
        }
        printf("%4s %7s %10s  %s\n", "rank", "id", "prob", "piece");
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
    free(all);
    free(text);
    free(ids);
    vm_ctx_free(ctx);
    vm_adapters_free(adapters);
    nm_pool_destroy(pool);
    verify_model_close(&vm);
    return status;
}
