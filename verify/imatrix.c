/* nomoat-verify imatrix: an importance matrix as llama-imatrix computes and writes it (FORMATS.md
 * §5.7): for every blk.* weight, the sum over all evaluated tokens of the squared activations
 * entering it (per input column) and the number of tokens, in llama-imatrix's GGUF format. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "formats/gguf.h"
#include "common/parallel.h"
#include "kernels/dense.h"
#include "verify/calibrate.h"
#include "verify/common.h"
#include "verify/jacobian.h"
#include "verify/lora.h"
#include "verify/verify.h"

typedef struct im_entry {
    const vm_weight *w;
    double *sum2;
    double count;
    double *gram; /* calibration with Gram matrices: sum of x x^T (upper triangle), or NULL */
    int gram_of;  /* index of the entry whose Gram matrix this weight's input shares */
    int layer;    /* blk.N's N; -1 for an adapter's matrices */
} im_entry;

typedef struct im_state {
    im_entry *e;
    int n;
    nm_pool *pool; /* the evaluator's, idle while the observer runs: the Gram updates use it */
    bool oom;      /* a Gram update could not get its scratch */
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
        if (g && s->e[i].gram_of == i) /* q/k/v and gate/up read the same input: once */
            if (nm_syrk_upper_f32(g, w->n_in, x, w->n_in, n_tokens, w->n_in, 1.0, s->pool) != 0)
                s->oom = true;
        return;
    }
}

/* One entry per blk.* matrix (up to 8 per layer: the family's), plus the adapters' (llama-imatrix
 * collects every blk.* matrix product, adapters' too). Matrices reading the same input share one
 * Gram matrix (gram_of), allocated only while the streamed pass runs their layer. Returns -1 when
 * out of memory. */
static int alloc_entries(const verify_model *vm, const vm_adapters *adapters, bool head, im_state *st) {
    const int n_lora_w = (int)vm_adapters_weight_count(adapters);
    st->n = 0;
    st->e = calloc((size_t)(vm->m.n_layer * 8 + n_lora_w) + 2, sizeof *st->e);
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
            e->layer = l;
            if (!(e->sum2 = calloc((size_t)ws[k]->n_in, sizeof(double)))) return -1;
            st->n++;
        }
    }
    for (int k = 0; k < n_lora_w; k++) {
        const vm_weight *w = vm_adapters_weight(adapters, (size_t)k);
        if (strncmp(w->name, "blk.", 4) != 0) continue;
        im_entry *e = &st->e[st->n++];
        e->w = w;
        e->gram_of = st->n - 1;
        e->layer = -1;
        if (!(e->sum2 = calloc((size_t)w->n_in, sizeof(double)))) return -1;
    }
    if (head && strcmp(vm->m.output.name, "output.weight") == 0) { /* not when tied to the embedding */
        im_entry *e = &st->e[st->n++];
        e->w = &vm->m.output;
        e->gram_of = st->n - 1;
        e->layer = vm->m.n_layer;
        if (!(e->sum2 = calloc((size_t)e->w->n_in, sizeof(double)))) return -1;
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

/* Whether the entries include output.weight's (the last, layer = the number of layers). */
static bool has_head(const verify_model *vm, const im_state *st) {
    return st->n > 0 && st->e[st->n - 1].layer == vm->m.n_layer;
}

/* Chunk k of the text's tokens, BOS first when the model adds one. */
static void chunk_batch(const verify_model *vm, const int32_t *ids, int k, int n_ctx, int32_t *batch) {
    memcpy(batch, ids + (size_t)k * (size_t)n_ctx, (size_t)n_ctx * sizeof *batch);
    if (vm->add_bos) batch[0] = vm->bos_id;
}

static int refuse_experts(const vm_model *m, nm_error *err) {
    if (!m->n_expert) return 0;
    return nm_fail(err, "importance data for a mixture of experts (one matrix per expert) is not supported yet");
}

/* Evaluates n_chunk chunks of n_ctx tokens (chunk_batch), collecting the squared inputs of every
 * entry. */
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
    if (refuse_experts(&vm->m, err)) goto done;
    if (!(ctx = vm_ctx_create(&vm->m, n_ctx, pool, false, err))) goto done;
    if (adapters && vm_ctx_set_adapters(ctx, adapters, err)) goto done;
    vm_ctx_set_observer(ctx, observe, st);
    nm_progress prog;
    nm_progress_start(&prog, "imatrix", (uint64_t)n_chunk, 0, quiet);
    for (int k = 0; k < n_chunk; k++) {
        chunk_batch(vm, ids, k, n_ctx, batch);
        const float *x = NULL;
        if (vm_eval(ctx, batch, n_ctx, 0, n_ctx, NULL, err) ||
            (has_head(vm, st) && !(x = vm_eval_head_input(ctx, n_ctx, err)))) {
            nm_progress_finish(&prog);
            goto done;
        }
        if (x)
            observe(st, &vm->m.output, x, n_ctx);
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

/* ---- the streamed pass: one layer at a time over every chunk ---- */

struct verify_calib {
    verify_model vm;
    bool vm_open, quiet, gram, head_done;
    int n_ctx, n_chunk, next_layer;
    int32_t *ids;
    float *hidden; /* the residual stream of every chunk after the layers run so far */
    nm_pool *pool;
    vm_ctx *ctx;
    im_state st;
    verify_calib_weight *weights;
};

void verify_calib_close(verify_calib *vc) {
    if (!vc)
        return;
    vm_ctx_free(vc->ctx);
    nm_pool_destroy(vc->pool);
    free_entries(&vc->st);
    free(vc->weights);
    free(vc->hidden);
    free(vc->ids);
    if (vc->vm_open)
        verify_model_close(&vc->vm);
    free(vc);
}

/* Takes an opened model and its text's tokens (owned from here on, whatever the result) and
 * embeds n_chunk contexts of n_ctx tokens. */
static verify_calib *calib_adopt(verify_model *vm, int32_t *ids, int n_ctx, int n_chunk, int threads, bool quiet,
                                 bool gram, bool head, nm_error *err) {
    verify_calib *vc = calloc(1, sizeof *vc);
    if (!vc) {
        nm_fail(err, "out of memory");
        verify_model_close(vm);
        free(ids);
        return NULL;
    }
    *vc = (verify_calib){.vm = *vm, .vm_open = true, .quiet = quiet, .gram = gram, .n_ctx = n_ctx,
                         .n_chunk = n_chunk, .ids = ids};
    const vm_model *m = &vc->vm.m;
    if (refuse_experts(m, err))
        goto fail;
    const size_t rows = (size_t)vc->n_chunk * (size_t)n_ctx, E = (size_t)m->n_embd;
    if (rows > SIZE_MAX / sizeof(float) / E || !(vc->hidden = malloc(rows * E * sizeof(float)))) {
        nm_fail(err, "out of memory for the residual streams of %d contexts of %d tokens (%zu MiB); pass fewer "
                "calibration chunks", vc->n_chunk, n_ctx, rows / 1024 * E * sizeof(float) / 1024);
        goto fail;
    }
    if (alloc_entries(&vc->vm, NULL, head, &vc->st) ||
        !(vc->weights = calloc((size_t)vc->st.n + 1, sizeof *vc->weights)) || !(vc->pool = nm_pool_create(threads))) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < vc->st.n; i++)
        vc->weights[i] = (verify_calib_weight){vc->st.e[i].w->name, vc->st.e[i].w->n_in, vc->st.e[i].layer};
    vc->st.pool = vc->pool;
    if (!(vc->ctx = vm_ctx_create(m, n_ctx, vc->pool, false, err)))
        goto fail;
    vm_ctx_set_observer(vc->ctx, observe, &vc->st);
    int32_t *batch = malloc((size_t)n_ctx * sizeof *batch);
    if (!batch) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    for (int k = 0; k < vc->n_chunk; k++) {
        chunk_batch(&vc->vm, vc->ids, k, n_ctx, batch);
        if (vm_eval_embed(vc->ctx, batch, n_ctx, 0, err)) {
            free(batch);
            goto fail;
        }
        memcpy(vc->hidden + (size_t)k * (size_t)n_ctx * E, vm_ctx_hidden(vc->ctx), (size_t)n_ctx * E * sizeof(float));
    }
    free(batch);
    return vc;
fail:
    verify_calib_close(vc);
    return NULL;
}

verify_calib *verify_calib_open(const char *model_path, const char *text_path, const char *tokens_path, int n_ctx,
                                int max_chunks, int threads, bool quiet, bool gram, bool head, nm_error *err) {
    verify_model vm;
    if (verify_model_open(&vm, model_path, err))
        return NULL;
    if (n_ctx <= 0)
        n_ctx = vm.m.n_ctx_train > 0 && vm.m.n_ctx_train < 512 ? vm.m.n_ctx_train : 512;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (verify_load_tokens(&vm, model_path, text_path, tokens_path, &ids, &n_ids, err)) {
        verify_model_close(&vm);
        return NULL;
    }
    int n_chunk = (int)(n_ids / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunk)
        n_chunk = max_chunks;
    if (n_chunk < 1) {
        nm_fail(err, "%s gives %zu tokens; calibration needs at least one context of %d", tokens_path ? tokens_path : text_path,
                n_ids, n_ctx);
        free(ids);
        verify_model_close(&vm);
        return NULL;
    }
    return calib_adopt(&vm, ids, n_ctx, n_chunk, threads, quiet, gram, head, err);
}

verify_calib *verify_calib_open_random(const char *model_path, int n_ctx, int n_chunks, uint64_t seed, int threads,
                                       bool quiet, bool gram, bool head, nm_error *err) {
    verify_model vm;
    if (verify_model_open(&vm, model_path, err))
        return NULL;
    if (n_ctx <= 0)
        n_ctx = vm.m.n_ctx_train > 0 && vm.m.n_ctx_train < 512 ? vm.m.n_ctx_train : 512;
    const int32_t n_vocab = vm.m.n_vocab;
    /* the tokens text can produce: type 1 (normal) when the vocabulary has types, else all but
     * its special tokens */
    const gguf_value *types = gguf_get(vm.g, "tokenizer.ggml.token_type");
    if (types && (types->type != GGUF_TYPE_ARRAY || types->arr.count != (uint64_t)n_vocab ||
                  types->arr.type == GGUF_TYPE_STRING))
        types = NULL;
    gguf_special_tokens sp = {-1, -1, -1, -1, false, false};
    nm_error ignored;
    gguf_get_special_tokens(vm.g, (uint32_t)n_vocab, &sp, &ignored);
    int32_t *pool = malloc((size_t)n_vocab * sizeof *pool);
    const size_t n_ids = (size_t)n_chunks * (size_t)n_ctx;
    int32_t *ids = n_chunks > 0 && n_ids / (size_t)n_chunks == (size_t)n_ctx ? malloc(n_ids * sizeof *ids) : NULL;
    if (!pool || !ids) {
        free(pool);
        free(ids);
        verify_model_close(&vm);
        nm_fail(err, "out of memory for %d contexts of %d random tokens", n_chunks, n_ctx);
        return NULL;
    }
    int32_t n_pool = 0;
    for (int32_t t = 0; t < n_vocab; t++)
        if (types ? gguf_array_i64(types, (uint64_t)t) == 1 : t != sp.bos && t != sp.eos && t != sp.unk && t != sp.pad)
            pool[n_pool++] = t;
    if (n_pool == 0) {
        free(pool);
        free(ids);
        verify_model_close(&vm);
        nm_fail(err, "the vocabulary has no ordinary tokens to draw random text from");
        return NULL;
    }
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1; /* xorshift64* */
    for (size_t i = 0; i < n_ids; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        ids[i] = pool[((x * 0x2545F4914F6CDD1Dull) >> 32) % (uint64_t)n_pool];
    }
    free(pool);
    return calib_adopt(&vm, ids, n_ctx, n_chunks, threads, quiet, gram, head, err);
}

size_t verify_calib_weight_count(const verify_calib *vc) { return (size_t)vc->st.n; }
const verify_calib_weight *verify_calib_weight_at(const verify_calib *vc, size_t i) { return &vc->weights[i]; }
int verify_calib_chunks(const verify_calib *vc) { return vc->n_chunk; }

/* The Gram matrices of layer l's entries (l = the number of layers: the head's), shared by the
 * entries reading one input. */
static int alloc_grams(verify_calib *vc, int l, nm_error *err) {
    im_state *st = &vc->st;
    for (int i = 0; i < st->n && vc->gram; i++) {
        im_entry *e = &st->e[i];
        if (e->layer != l)
            continue;
        if (e->gram_of != i) {
            e->gram = st->e[e->gram_of].gram;
        } else if (!(e->gram = calloc((size_t)e->w->n_in * (size_t)e->w->n_in, sizeof(double)))) {
            return nm_fail(err, "out of memory for the second moments of %s's input (%lld x %lld doubles)", e->w->name,
                           (long long)e->w->n_in, (long long)e->w->n_in);
        }
    }
    return 0;
}

static void free_grams(verify_calib *vc, int l) {
    for (int i = 0; i < vc->st.n; i++)
        if (vc->st.e[i].layer == l) {
            if (vc->st.e[i].gram_of == i)
                free(vc->st.e[i].gram);
            vc->st.e[i].gram = NULL;
        }
}

/* Layer l's weights unmapped from the pass (read again from the page cache if touched). */
static void drop_layer_pages(verify_calib *vc, int l) {
    for (int i = 0; i < vc->st.n; i++)
        if (vc->st.e[i].layer == l)
            gguf_drop_pages(vc->vm.g, vc->st.e[i].w->data, vc->st.e[i].w->row_size * (size_t)vc->st.e[i].w->n_out);
}

/* Layer l's entries' means (and second moments) to emit. */
static int emit_layer(verify_calib *vc, int l, verify_calibrate_fn emit, void *user, nm_error *err) {
    im_state *st = &vc->st;
    if (st->oom)
        return nm_fail(err, "out of memory");
    for (int i = 0; i < st->n; i++) {
        im_entry *e = &st->e[i];
        if (e->layer != l)
            continue;
        const int64_t n = e->w->n_in;
        float *mean = malloc((size_t)n * sizeof(float));
        if (!mean)
            return nm_fail(err, "out of memory");
        for (int64_t j = 0; j < n; j++)
            mean[j] = (float)(e->sum2[j] / e->count);
        double *g = e->gram;
        if (g && e->gram_of == i) /* the mean, both triangles (shared entries follow their owner), */
            for (int64_t a0 = 0; a0 < n; a0 += 64)          /* 64 x 64 at a time: a column at a time */
                for (int64_t b0 = a0; b0 < n; b0 += 64)     /* missed the caches on every element */
                    for (int64_t a = a0; a < a0 + 64 && a < n; a++)
                        for (int64_t b = b0 > a ? b0 : a; b < b0 + 64 && b < n; b++)
                            g[a * n + b] = g[b * n + a] = g[a * n + b] / e->count;
        const bool shared = g && e->gram_of != i;
        const int erc = emit(user, e->w->name, mean, n, g, shared, vc->n_chunk, vc->n_ctx, err);
        free(mean);
        if (erc)
            return -1;
    }
    return 0;
}

/* Layer l over every chunk, its entries' sums collected; then their means emitted. l = the number
 * of layers: the output head's input (the residual stream, normed) after the last layer. */
static int run_layer(verify_calib *vc, int l, verify_calibrate_fn emit, void *user, nm_error *err) {
    im_state *st = &vc->st;
    int rc = -1;
    if (alloc_grams(vc, l, err))
        goto done;
    const size_t E = (size_t)vc->vm.m.n_embd, chunk = (size_t)vc->n_ctx * E;
    const bool head = l == vc->vm.m.n_layer;
    char label[48];
    if (head)
        snprintf(label, sizeof label, "calibrating the output");
    else
        snprintf(label, sizeof label, "calibrating layer %d/%d", l + 1, vc->vm.m.n_layer);
    nm_progress prog;
    nm_progress_start(&prog, label, (uint64_t)vc->n_chunk, 0, vc->quiet);
    for (int k = 0; k < vc->n_chunk; k++) {
        float *h = vc->hidden + (size_t)k * chunk;
        memcpy(vm_ctx_hidden(vc->ctx), h, chunk * sizeof(float));
        if (head) {
            const float *x = vm_eval_head_input(vc->ctx, vc->n_ctx, err);
            if (!x) {
                nm_progress_finish(&prog);
                goto done;
            }
            observe(st, &vc->vm.m.output, x, vc->n_ctx);
        } else {
            if (vm_eval_layer(vc->ctx, l, vc->n_ctx, 0, vc->n_ctx, err)) {
                nm_progress_finish(&prog);
                goto done;
            }
            memcpy(h, vm_ctx_hidden(vc->ctx), chunk * sizeof(float));
        }
        nm_progress_update(&prog, (uint64_t)k + 1, 0);
    }
    nm_progress_finish(&prog);
    if (!head) /* the layer's weights are read for the last time */
        drop_layer_pages(vc, l);
    rc = emit_layer(vc, l, emit, user, err);
done:
    free_grams(vc, l);
    return rc;
}

/* The head's statistics while layers are still to run (a file may store output.weight first):
 * the remaining layers run ahead on copies of the residual streams, AHEAD_GROUP chunks at a
 * time (statistics off; each layer's pages dropped after each group, so resident memory stays
 * near one layer's weights), up to the head's input. The streamed state is not touched: the
 * layers run again, with statistics, in their turn. */
enum { AHEAD_GROUP = 8 };

static int run_head_ahead(verify_calib *vc, verify_calibrate_fn emit, void *user, nm_error *err) {
    const vm_model *m = &vc->vm.m;
    const size_t chunk = (size_t)vc->n_ctx * (size_t)m->n_embd;
    int rc = -1;
    float *buf = malloc((size_t)AHEAD_GROUP * chunk * sizeof *buf);
    if (!buf) {
        nm_fail(err, "out of memory");
        goto done;
    }
    if (alloc_grams(vc, m->n_layer, err))
        goto done;
    vm_ctx_set_observer(vc->ctx, NULL, NULL);
    nm_progress prog;
    nm_progress_start(&prog, "calibrating the output (a pass ahead)", (uint64_t)vc->n_chunk, 0, vc->quiet);
    for (int g0 = 0; g0 < vc->n_chunk; g0 += AHEAD_GROUP) {
        const int ng = vc->n_chunk - g0 < AHEAD_GROUP ? vc->n_chunk - g0 : AHEAD_GROUP;
        memcpy(buf, vc->hidden + (size_t)g0 * chunk, (size_t)ng * chunk * sizeof *buf);
        for (int l = vc->next_layer; l < m->n_layer; l++) {
            for (int k = 0; k < ng; k++) {
                memcpy(vm_ctx_hidden(vc->ctx), buf + (size_t)k * chunk, chunk * sizeof *buf);
                if (vm_eval_layer(vc->ctx, l, vc->n_ctx, 0, 0, err))
                    goto stop;
                memcpy(buf + (size_t)k * chunk, vm_ctx_hidden(vc->ctx), chunk * sizeof *buf);
            }
            drop_layer_pages(vc, l);
        }
        for (int k = 0; k < ng; k++) {
            memcpy(vm_ctx_hidden(vc->ctx), buf + (size_t)k * chunk, chunk * sizeof *buf);
            const float *x = vm_eval_head_input(vc->ctx, vc->n_ctx, err);
            if (!x)
                goto stop;
            observe(&vc->st, &m->output, x, vc->n_ctx);
        }
        nm_progress_update(&prog, (uint64_t)(g0 + ng), 0);
    }
    rc = 0;
stop:
    nm_progress_finish(&prog);
    vm_ctx_set_observer(vc->ctx, observe, &vc->st);
    if (rc == 0)
        rc = emit_layer(vc, m->n_layer, emit, user, err);
    vc->head_done = true;
done:
    free_grams(vc, m->n_layer);
    free(buf);
    return rc;
}

int verify_calib_embedding_h(verify_calib *vc, double *H, int64_t n, nm_error *err) {
    const vm_model *m = &vc->vm.m;
    if (n != m->n_embd || !vm_jacobian_supported(m))
        return 1;
    int32_t *batch = malloc((size_t)vc->n_ctx * sizeof *batch);
    if (!batch)
        return nm_fail(err, "out of memory for a context of %d tokens", vc->n_ctx);
    int rc = 0;
    nm_progress prog;
    nm_progress_start(&prog, "token_embd through layer 0", (uint64_t)vc->n_chunk, 0, vc->quiet);
    for (int k = 0; k < vc->n_chunk && rc == 0; k++) {
        chunk_batch(&vc->vm, vc->ids, k, vc->n_ctx, batch);
        rc = vm_eval_embed(vc->ctx, batch, vc->n_ctx, 0, err) ||
             vm_jacobian_embd_h(m, vc->pool, vm_ctx_hidden(vc->ctx), vc->n_ctx, (uint64_t)k + 1, H, err)
                 ? -1
                 : 0;
        nm_progress_update(&prog, (uint64_t)k + 1, 0);
    }
    nm_progress_finish(&prog);
    free(batch);
    return rc;
}

int verify_calib_run_to(verify_calib *vc, int layer, verify_calibrate_fn emit, void *user, nm_error *err) {
    const int n = vc->vm.m.n_layer, last = has_head(&vc->vm, &vc->st) ? n : n - 1;
    if (layer == n && last == n && vc->next_layer < n && !vc->head_done) /* the head alone, now */
        return run_head_ahead(vc, emit, user, err);
    if (layer > last)
        layer = last;
    for (; vc->next_layer <= layer; vc->next_layer++)
        if (!(vc->next_layer == vc->vm.m.n_layer && vc->head_done) && run_layer(vc, vc->next_layer, emit, user, err))
            return -1;
    return 0;
}

static int ignore_weight(void *user, const char *name, const float *mean_sq, int64_t n_in, const double *gram,
                         bool gram_shared, int n_chunks, int n_ctx, nm_error *err) {
    return 0;
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
            "      --streamed     run one layer at a time over every chunk, as nomoat-quantize --calibration\n"
            "                     does (same result; holds every chunk's hidden state; no --lora)\n"
            "      --process-output  also collect output.weight's inputs (as llama-imatrix --process-output;\n"
            "                     none when the output is tied to the embedding)\n"
            "Writes llama-imatrix's GGUF format, accepted by nomoat-quantize --imatrix and llama-quantize.\n");
}

int verify_imatrix_main(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *tokens = NULL, *out = NULL;
    long n_ctx = 512, n_chunks = -1, threads = 0;
    bool quiet = false, streamed = false, process_output = false;
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
        } else if (!strcmp(a, "--streamed")) {
            streamed = true;
        } else if (!strcmp(a, "--process-output")) {
            process_output = true;
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
    if (streamed && n_loras > 0) {
        verify_error("imatrix: --streamed runs the model without adapters; drop --lora or --streamed");
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
    bool vm_given = false; /* to the streamed pass, which closes it */
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
    const double t0 = nm_now();
    int n_written;
    if (streamed) { /* the pass takes the model and tokens already loaded */
        verify_calib *vc = calib_adopt(&vm, ids, (int)n_ctx, n_chunk, (int)threads, quiet || !isatty(2), false,
                                       process_output, &err);
        vm_given = true;
        ids = NULL;
        const int rc = !vc || verify_calib_run_to(vc, INT_MAX, ignore_weight, NULL, &err) ||
                       write_imatrix(out, &vc->st, tokens ? tokens : text, n_chunk, (int)n_ctx, &err);
        n_written = vc ? vc->st.n : 0;
        verify_calib_close(vc);
        if (rc) goto done;
    } else {
        if (alloc_entries(&vm, adapters, process_output, &st)) goto oom;
        if (eval_chunks(&vm, ids, (int)n_ctx, n_chunk, (int)threads, adapters, &st, quiet || !isatty(2), &err)) goto done;
        if (write_imatrix(out, &st, tokens ? tokens : text, n_chunk, (int)n_ctx, &err)) goto done;
        n_written = st.n;
    }
    if (!quiet)
        fprintf(stderr, "nomoat-verify: imatrix: %d chunks × %ld tokens, %d tensors, %.1f s → %s\n", n_chunk, n_ctx,
                n_written, nm_now() - t0, out);
    status = VERIFY_EXIT_OK;
    goto done;
oom:
    nm_fail(&err, "out of memory");
done:
    if (status) verify_error("%s", err.msg);
    free_entries(&st);
    free(ids);
    vm_adapters_free(adapters);
    if (!vm_given) verify_model_close(&vm);
    return status;
}
