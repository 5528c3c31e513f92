/* nomoat-verify imatrix: an importance matrix as llama-imatrix computes and writes it (FORMATS.md
 * §5.7): for every blk.* weight, the sum over all evaluated tokens of the squared activations
 * entering it (per input column) and the number of tokens, in llama-imatrix's GGUF format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "formats/gguf.h"
#include "common/parallel.h"
#include "verify/calibrate.h"
#include "verify/common.h"
#include "verify/lora.h"
#include "verify/verify.h"

typedef struct im_entry {
    const vm_weight *w;
    double *sum2;
    double count;
    double *gram; /* calibration with Gram matrices: sum of x x^T (upper triangle), or NULL */
    int gram_of;  /* index of the entry whose Gram matrix this weight's input shares */
} im_entry;

typedef struct im_state {
    im_entry *e;
    int n;
} im_state;

static void observe(void *user, const vm_weight *w, const float *x, int n_tokens) {
    im_state *s = user;
    for (int i = 0; i < s->n; i++) {
        if (s->e[i].w != w) continue;
        double *acc = s->e[i].sum2;
        for (int t = 0; t < n_tokens; t++) {
            const float *row = x + (size_t)t * (size_t)w->n_in;
            for (int64_t j = 0; j < w->n_in; j++) acc[j] += (double)(row[j] * row[j]);
        }
        s->e[i].count += n_tokens;
        double *g = s->e[i].gram;
        if (g && s->e[i].gram_of == i) { /* q/k/v and gate/up read the same input: once */
            const int64_t n = w->n_in;
            int t = 0;
            for (; t + 4 <= n_tokens; t += 4) { /* four tokens per pass over the matrix: a quarter of the traffic */
                const float *r0 = x + (size_t)t * (size_t)n, *r1 = r0 + n, *r2 = r1 + n, *r3 = r2 + n;
                for (int64_t a = 0; a < n; a++) {
                    const double x0 = r0[a], x1 = r1[a], x2 = r2[a], x3 = r3[a];
                    double *ga = g + (size_t)a * (size_t)n;
                    for (int64_t b = a; b < n; b++)
                        ga[b] += x0 * r0[b] + x1 * r1[b] + x2 * r2[b] + x3 * r3[b];
                }
            }
            for (; t < n_tokens; t++) {
                const float *row = x + (size_t)t * (size_t)n;
                for (int64_t a = 0; a < n; a++) {
                    const double xa = row[a];
                    double *ga = g + (size_t)a * (size_t)n;
                    for (int64_t b = a; b < n; b++) ga[b] += xa * row[b];
                }
            }
        }
        return;
    }
}

/* One entry per blk.* matrix (up to 8 per layer: the family's), plus the adapters' (llama-imatrix
 * collects every blk.* matrix product, adapters' too). Matrices reading the same input share its
 * Gram matrix. Returns -1 when out of memory. */
static int alloc_entries(const verify_model *vm, const vm_adapters *adapters, im_state *st, bool gram) {
    const int n_lora_w = (int)vm_adapters_weight_count(adapters);
    st->n = 0;
    st->e = calloc((size_t)(vm->m.n_layer * 8 + n_lora_w) + 1, sizeof *st->e);
    if (!st->e) return -1;
    for (int l = 0; l < vm->m.n_layer; l++) {
        const vm_layer *L = &vm->m.layers[l];
        const vm_weight *ws[8] = {&L->wq, &L->wk, &L->wv, &L->wqkv, &L->wo, &L->gate, &L->up, &L->down};
        static const int input[8] = {0, 0, 0, 0, 1, 2, 2, 3}; /* the attention's, wo's, the FFN's, down's */
        int first[4] = {-1, -1, -1, -1};
        for (int k = 0; k < 8; k++) {
            if (!ws[k]->data) continue;
            im_entry *e = &st->e[st->n];
            const bool owner = first[input[k]] < 0;
            if (owner) first[input[k]] = st->n;
            e->w = ws[k];
            e->gram_of = first[input[k]];
            if (!(e->sum2 = calloc((size_t)ws[k]->n_in, sizeof(double)))) return -1;
            if (gram && owner && !(e->gram = calloc((size_t)ws[k]->n_in * (size_t)ws[k]->n_in, sizeof(double))))
                return -1;
            if (!owner) e->gram = st->e[e->gram_of].gram;
            st->n++;
        }
    }
    for (int k = 0; k < n_lora_w; k++) {
        const vm_weight *w = vm_adapters_weight(adapters, (size_t)k);
        if (strncmp(w->name, "blk.", 4) != 0) continue;
        im_entry *e = &st->e[st->n++];
        e->w = w;
        e->gram_of = st->n - 1;
        if (!(e->sum2 = calloc((size_t)w->n_in, sizeof(double)))) return -1;
    }
    return 0;
}

static void free_entries(im_state *st) {
    if (st->e)
        for (int i = 0; i < st->n; i++) {
            free(st->e[i].sum2);
            if (st->e[i].gram_of == i) free(st->e[i].gram);
        }
    free(st->e);
    st->e = NULL;
}

/* Evaluates n_chunk chunks of n_ctx tokens (BOS first when the model adds one), collecting the
 * squared inputs of every entry. */
static int eval_chunks(const verify_model *vm, const int32_t *ids, int n_ctx, int n_chunk, int threads,
                       vm_adapters *adapters, im_state *st, bool quiet, nm_error *err) {
    int rc = -1;
    int32_t *batch = malloc((size_t)n_ctx * sizeof(int32_t));
    nm_pool *pool = nm_pool_create(threads);
    vm_ctx *ctx = NULL;
    if (!batch || !pool) {
        nm_fail(err, "out of memory");
        goto done;
    }
    if (vm->m.n_expert) {
        nm_fail(err, "importance data for a mixture of experts (one matrix per expert) is not supported yet");
        goto done;
    }
    if (!(ctx = vm_ctx_create(&vm->m, n_ctx, pool, false, err))) goto done;
    if (adapters && vm_ctx_set_adapters(ctx, adapters, err)) goto done;
    vm_ctx_set_observer(ctx, observe, st);
    nm_progress prog;
    nm_progress_start(&prog, "imatrix", (uint64_t)n_chunk, 0, quiet);
    for (int k = 0; k < n_chunk; k++) {
        memcpy(batch, ids + (size_t)k * n_ctx, (size_t)n_ctx * sizeof(int32_t));
        if (vm->add_bos) batch[0] = vm->bos_id;
        if (vm_eval(ctx, batch, n_ctx, 0, n_ctx, NULL, err)) {
            nm_progress_finish(&prog);
            goto done;
        }
        nm_progress_update(&prog, (uint64_t)k + 1, 0);
    }
    nm_progress_finish(&prog);
    rc = 0;
done:
    vm_ctx_free(ctx);
    nm_pool_destroy(pool);
    free(batch);
    return rc;
}

int verify_calibrate(const char *model_path, const char *text_path, int n_ctx, int max_chunks, int threads,
                     bool quiet, bool gram, verify_calibrate_fn emit, void *user, nm_error *err) {
    verify_model vm;
    if (verify_model_open(&vm, model_path, err)) return -1;
    int rc = -1;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    im_state st = {0};
    if (n_ctx <= 0) n_ctx = vm.m.n_ctx_train > 0 && vm.m.n_ctx_train < 512 ? vm.m.n_ctx_train : 512;
    if (verify_load_tokens(&vm, model_path, text_path, NULL, &ids, &n_ids, err)) goto done;
    int n_chunk = (int)(n_ids / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunk) n_chunk = max_chunks;
    if (n_chunk < 1) {
        nm_fail(err, "%s gives %zu tokens; calibration needs at least one context of %d", text_path, n_ids, n_ctx);
        goto done;
    }
    if (alloc_entries(&vm, NULL, &st, gram)) {
        nm_fail(err, "out of memory");
        goto done;
    }
    if (eval_chunks(&vm, ids, n_ctx, n_chunk, threads, NULL, &st, quiet, err)) goto done;
    rc = 0;
    for (int i = 0; i < st.n && rc == 0; i++) {
        const int64_t n = st.e[i].w->n_in;
        float *mean = malloc((size_t)n * sizeof(float));
        if (!mean) {
            rc = nm_fail(err, "out of memory");
            break;
        }
        for (int64_t j = 0; j < n; j++) mean[j] = (float)(st.e[i].sum2[j] / st.e[i].count);
        double *g = st.e[i].gram;
        if (g && st.e[i].gram_of == i) { /* the mean, both triangles (shared entries follow their owner) */
            for (int64_t a = 0; a < n; a++)
                for (int64_t b = a; b < n; b++) g[a * n + b] = g[b * n + a] = g[a * n + b] / st.e[i].count;
        }
        rc = emit(user, st.e[i].w->name, mean, n, g, n_chunk, n_ctx, err);
        free(mean);
    }
done:
    free_entries(&st);
    free(ids);
    verify_model_close(&vm);
    return rc;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const im_entry *)a)->w->name, ((const im_entry *)b)->w->name);
}

static int write_imatrix(const char *path, im_state *s, const char *dataset, int n_chunk, int n_ctx, nm_error *err) {
    qsort(s->e, (size_t)s->n, sizeof *s->e, by_name);
    gguf_writer *w = gguf_writer_create(path, NULL, err);
    if (!w) return -1;
    gguf_string ds = {dataset, strlen(dataset)};
    gguf_writer_set_string(w, "general.type", "imatrix", 7);
    gguf_writer_set_string_array(w, "imatrix.datasets", &ds, 1);
    gguf_writer_set_u32(w, "imatrix.chunk_count", (uint32_t)n_chunk);
    gguf_writer_set_u32(w, "imatrix.chunk_size", (uint32_t)n_ctx);
    char name[GGUF_MAX_NAME + 16];
    for (int i = 0; i < s->n; i++) {
        const int64_t ne_sum[4] = {s->e[i].w->n_in, 1, 1, 1}, ne_cnt[4] = {1, 1, 1, 1};
        snprintf(name, sizeof name, "%s.in_sum2", s->e[i].w->name);
        if (gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 1, ne_sum, err)) goto fail;
        snprintf(name, sizeof name, "%s.counts", s->e[i].w->name);
        if (gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 1, ne_cnt, err)) goto fail;
    }
    if (gguf_writer_begin_data(w, err)) goto fail;
    for (int i = 0; i < s->n; i++) {
        const int64_t n = s->e[i].w->n_in;
        float *v = malloc((size_t)n * sizeof(float));
        if (!v) {
            nm_fail(err, "out of memory");
            goto fail;
        }
        for (int64_t j = 0; j < n; j++) v[j] = (float)s->e[i].sum2[j];
        const float c = (float)s->e[i].count;
        int rc = gguf_writer_write(w, v, (size_t)n * sizeof(float), err);
        free(v);
        if (rc || gguf_writer_write(w, &c, sizeof c, err)) goto fail;
    }
    return gguf_writer_finish(w, err);
fail:
    gguf_writer_abort(w);
    return -1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: nomoat-verify imatrix MODEL.gguf (-f TEXT | --tokens IDS) -o OUT.gguf [options]\n"
            "  -c, --ctx-size N   context size (default 512)\n"
            "      --chunks K     evaluate at most K chunks (default all)\n"
            "  -t, --threads N    threads (default all cores)\n"
            "  -q, --quiet        no progress\n"
            "      --lora F[:S]   apply a GGUF LoRA adapter at run time (repeatable); as llama-imatrix --lora,\n"
            "                     the adapters' lora_a/lora_b inputs are collected too\n"
            "Writes llama-imatrix's GGUF format, accepted by nomoat-quantize --imatrix and llama-quantize.\n");
}

int verify_imatrix_main(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *tokens = NULL, *out = NULL;
    long n_ctx = 512, n_chunks = -1, threads = 0;
    bool quiet = false;
    const char *loras[VERIFY_MAX_LORA];
    int n_loras = 0;
    vm_adapters *adapters = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if (a[0] == '-' && a[1] && !has) {
            verify_error("imatrix: %s needs a value (see --help)", a);
            return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            text = argv[++i];
        } else if (!strcmp(a, "--tokens")) {
            tokens = argv[++i];
        } else if (!strcmp(a, "--lora")) {
            if (verify_add_lora(loras, &n_loras, argv[++i])) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = argv[++i];
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (verify_parse_int(a, argv[++i], 4, 1 << 20, &n_ctx)) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "--chunks")) {
            if (verify_parse_int(a, argv[++i], -1, 1 << 30, &n_chunks)) return VERIFY_EXIT_ERROR;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (verify_parse_int(a, argv[++i], 0, 1024, &threads)) return VERIFY_EXIT_ERROR;
        } else if (a[0] == '-' && a[1]) {
            verify_error("imatrix: unknown option %s (see --help)", a);
            return VERIFY_EXIT_ERROR;
        } else if (!model) {
            model = a;
        } else {
            verify_error("imatrix: unexpected argument %s", a);
            return VERIFY_EXIT_ERROR;
        }
    }
    if (!model || (!text && !tokens) || !out) {
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
    size_t n_ids = 0;
    im_state st = {0};
    if (verify_load_tokens(&vm, model, text, tokens, &ids, &n_ids, &err)) goto done;
    if (n_ids < 2 * (size_t)n_ctx) {
        nm_fail(&err, "%s gives %zu tokens; imatrix needs at least 2 × %ld (two contexts)", tokens ? tokens : text,
                n_ids, n_ctx);
        goto done;
    }
    int n_chunk = (int)(n_ids / (size_t)n_ctx);
    if (n_chunks >= 0 && n_chunks < n_chunk) n_chunk = (int)n_chunks;
    if (n_chunk < 1) {
        nm_fail(&err, "no chunks to evaluate");
        goto done;
    }
    if (n_loras > 0 && !(adapters = vm_adapters_load(vm.g, &vm.m, loras, n_loras, &err))) goto done;
    if (alloc_entries(&vm, adapters, &st, false)) goto oom;
    const double t0 = nm_now();
    if (eval_chunks(&vm, ids, (int)n_ctx, n_chunk, (int)threads, adapters, &st, quiet || !isatty(2), &err)) goto done;
    if (write_imatrix(out, &st, tokens ? tokens : text, n_chunk, (int)n_ctx, &err)) goto done;
    if (!quiet)
        fprintf(stderr, "nomoat-verify: imatrix: %d chunks × %ld tokens, %d tensors, %.1f s → %s\n", n_chunk, n_ctx,
                st.n, nm_now() - t0, out);
    status = VERIFY_EXIT_OK;
    goto done;
oom:
    nm_fail(&err, "out of memory");
done:
    if (status) verify_error("%s", err.msg);
    free_entries(&st);
    free(ids);
    vm_adapters_free(adapters);
    verify_model_close(&vm);
    return status;
}
