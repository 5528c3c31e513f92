/* The merge: a plan (which tensors change, their output types and order), then every tensor
 * streamed from the mapped inputs: unchanged ones copied, the others computed in row batches on
 * all cores (dequantize, add the delta weights and each adapter's scale·B·A in llama-export-lora's
 * arithmetic, convert or quantize) while one thread writes the previous batches. Input pages (the
 * base's and the adapters') are released after use, so memory stays at a few batches plus the
 * current tensor's adapter matrices whatever the model size. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/outfile.h"
#include "common/parallel.h"
#include "formats/quants.h"
#include "kernels/lora.h"
#include "merge/merge.h"
#include "quantize/imatrix.h"
#include "quantize/recipe.h"

/* Output bytes per batch, and batches in flight: small enough that the writer's copy into the
 * page cache reads a batch still in the CPU's cache (with 8 MB batches that copy cost 3-7 times
 * as much), enough of them that the writer's delays do not stall the computing threads. */
#define BATCH_BYTES (1u << 20)
#define N_BATCHES 4
#define COPY_BYTES (8u << 20)    /* unchanged tensors: bytes per write() straight from the input */
#define TASK_ELEMENTS 65536      /* elements per pool task */

typedef struct term {
    const nm_lora_pair *p;
    const gguf_reader *g; /* the adapter's file */
    float scale;   /* llama.cpp's: user scale · alpha / r */
    bool tinyblas; /* which summation order ggml would use (kernels/lora.h) */
} term;

typedef struct item {
    const gguf_tensor_info *src;    /* values: the base tensor (the delta's in delta mode) */
    const gguf_tensor_info *addend; /* delta mode: the base tensor added to it */
    const gguf_reader *src_g, *addend_g;
    int first_term, n_terms;
    bool merged;       /* values differ from src's */
    uint32_t in_type;  /* type of the values entering the output: F32 when merged */
    uint32_t out_type;
    uint32_t n_dims;
    bool convert;      /* out bytes are computed (otherwise src's bytes are copied) */
    const float *imatrix;
} item;

typedef struct plan {
    item *items;       /* in output order */
    size_t n;
    term *terms;
    size_t n_terms;
    const gguf_reader *kv; /* metadata source */
    const qt_ftype *ft;    /* NULL: llama-export-lora's output */
    qt_imatrix *im;
    size_t n_imatrix_used;
    uint64_t bytes_in, bytes_out;
} plan;

static void plan_free(plan *p) {
    free(p->items);
    free(p->terms);
    qt_imatrix_free(p->im);
    memset(p, 0, sizeof *p);
}

static uint32_t ggml_n_dims(const int64_t ne[4]) {
    for (int i = 3; i >= 1; i--)
        if (ne[i] > 1) return (uint32_t)i + 1;
    return 1;
}

static int by_item_name(const void *a, const void *b) {
    return strcmp(((const item *)a)->src->name, ((const item *)b)->src->name);
}

static bool vocab_tensor(const char *name) {
    return strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output.weight") == 0;
}

/* Delta mode: every delta tensor has a base tensor of the same shape (the embedding and output
 * may have more rows: tokens added by the fine-tune, kept as the delta has them), and the other
 * way round. rope_freqs.weight is copied from the delta. */
static int delta_items(const mg_inputs *in, item *items, size_t *n, nm_error *err) {
    const size_t nd = gguf_tensor_count(in->delta);
    for (size_t i = 0; i < nd; i++) {
        const gguf_tensor_info *d = gguf_tensor(in->delta, i);
        const gguf_tensor_info *b = gguf_find_tensor(in->base, d->name);
        if (!b) return nm_fail(err, "the delta has %s, which the base model does not have", d->name);
        bool same = memcmp(d->ne, b->ne, sizeof d->ne) == 0;
        bool grown = vocab_tensor(d->name) && d->ne[0] == b->ne[0] && d->ne[1] >= b->ne[1] && d->ne[2] == 1 &&
                     b->ne[2] == 1 && d->ne[3] == 1 && b->ne[3] == 1;
        if (!same && !grown)
            return nm_fail(err, "%s has shape [%lld, %lld, %lld, %lld] in the delta but [%lld, %lld, %lld, %lld] in the "
                                "base: is the delta for another model?",
                           d->name, (long long)d->ne[0], (long long)d->ne[1], (long long)d->ne[2], (long long)d->ne[3],
                           (long long)b->ne[0], (long long)b->ne[1], (long long)b->ne[2], (long long)b->ne[3]);
        if (!nm_dequantize_supported(d->type) && d->type != GGML_TYPE_F32)
            return nm_fail(err, "%s: cannot read the delta's type %s", d->name, ggml_type_name(d->type));
        if (!nm_dequantize_supported(b->type) && b->type != GGML_TYPE_F32)
            return nm_fail(err, "%s: cannot read the base's type %s", b->name, ggml_type_name(b->type));
        if (!strcmp(d->name, "rope_freqs.weight")) {
            /* Llama 3's RoPE factors come from the configuration, not training: the target's are
             * the delta folder's own (its config.json is the target's), never a sum */
            items[(*n)++] = (item){.src = d, .src_g = in->delta, .in_type = d->type};
            continue;
        }
        items[*n] = (item){.src = d, .addend = b, .src_g = in->delta, .addend_g = in->base, .merged = true,
                           .in_type = GGML_TYPE_F32};
        (*n)++;
    }
    for (size_t i = 0; i < gguf_tensor_count(in->base); i++)
        if (!gguf_find_tensor(in->delta, gguf_tensor(in->base, i)->name))
            return nm_fail(err, "the base model has %s, which the delta does not: is the delta for another model?",
                           gguf_tensor(in->base, i)->name);
    return 0;
}

static int lora_items(const mg_inputs *in, plan *p, nm_error *err) {
    size_t total = 0;
    for (int a = 0; a < in->n_adapters; a++) total += in->adapters[a].lora.n_pairs;
    p->terms = calloc(total ? total : 1, sizeof *p->terms);
    if (!p->terms) return nm_fail(err, "out of memory");
    for (size_t i = 0; i < p->n; i++) {
        item *it = &p->items[i];
        it->first_term = (int)p->n_terms;
        for (int a = 0; a < in->n_adapters; a++) {
            const mg_adapter *ad = &in->adapters[a];
            const nm_lora_pair *pr = nm_lora_find(&ad->lora, it->src->name);
            if (!pr) continue;
            term *t = &p->terms[p->n_terms++];
            t->p = pr;
            t->g = ad->g;
            t->scale = nm_lora_pair_scale(&ad->lora, pr, ad->scale);
            /* export-lora: mul_mat(Aᵀ, B) has m = in, n = out; for token_embd mul_mat(B, A): m = n_embd, n = n_vocab */
            t->tinyblas = nm_lora_uses_tinyblas((int)pr->rank, it->src->ne[0], it->src->ne[1]);
        }
        it->n_terms = (int)p->n_terms - it->first_term;
        if (it->n_terms) {
            if (it->src->type != GGML_TYPE_F32 && !nm_dequantize_supported(it->src->type))
                return nm_fail(err, "%s: cannot read the base's type %s to merge into it", it->src->name,
                               ggml_type_name(it->src->type));
            it->merged = true;
            it->in_type = GGML_TYPE_F32;
        }
    }
    return 0;
}

/* What the mixture rules need from the metadata (as nomoat-quantize reads it). */
static uint32_t kv_u32(const gguf_reader *g, const char *arch, const char *suffix, uint32_t dflt) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const gguf_value *v = gguf_get(g, key);
    if (!v) return dflt;
    switch (v->type) {
    case GGUF_TYPE_UINT32: return v->u32;
    case GGUF_TYPE_INT32: return v->i32 < 0 ? dflt : (uint32_t)v->i32;
    case GGUF_TYPE_UINT16: return v->u16;
    case GGUF_TYPE_UINT64: return v->u64 > UINT32_MAX ? dflt : (uint32_t)v->u64;
    case GGUF_TYPE_ARRAY:
        if (v->arr.type != GGUF_TYPE_STRING && v->arr.count > 0) {
            int64_t x = gguf_array_i64(v, 0);
            return x < 0 || x > UINT32_MAX ? dflt : (uint32_t)x;
        }
        return dflt;
    default: return dflt;
    }
}

static void model_facts(const gguf_reader *g, const qt_tensor *t, size_t n, qt_model *m) {
    char arch[64] = "llama";
    const gguf_value *v = gguf_get(g, "general.architecture");
    if (v && v->type == GGUF_TYPE_STRING && v->str.len < sizeof arch) {
        memcpy(arch, v->str.ptr, v->str.len);
        arch[v->str.len] = '\0';
    }
    uint32_t layers_seen = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned l;
        if (sscanf(t[i].name, "blk.%u.", &l) == 1 && l < 1u << 20 && l + 1 > layers_seen) layers_seen = l + 1;
    }
    *m = (qt_model){0};
    m->falcon = strcmp(arch, "falcon") == 0;
    m->n_layer = kv_u32(g, arch, "block_count", layers_seen);
    m->n_expert = kv_u32(g, arch, "expert_count", 0);
    uint32_t n_head = kv_u32(g, arch, "attention.head_count", 0);
    uint32_t n_head_kv = kv_u32(g, arch, "attention.head_count_kv", n_head);
    m->n_gqa = n_head && n_head_kv ? n_head / n_head_kv : 0;
    m->llama_70b = strcmp(arch, "llama") == 0 && m->n_layer == 80 && n_head != n_head_kv;
}

/* Output types and order as nomoat-quantize gives them for the merged model (merged tensors F32). */
static int quantize_plan(plan *p, const mg_options *o, nm_error *err) {
    qt_tensor *qt = calloc(p->n ? p->n : 1, sizeof *qt);
    item *sorted = calloc(p->n ? p->n : 1, sizeof *sorted);
    if (!qt || !sorted) {
        free(qt);
        free(sorted);
        return nm_fail(err, "out of memory");
    }
    for (size_t i = 0; i < p->n; i++) {
        const item *it = &p->items[i];
        qt[i] = (qt_tensor){.name = it->src->name, .n_dims = it->src->n_dims, .type = it->in_type, .index = i};
        memcpy(qt[i].ne, it->src->ne, sizeof qt[i].ne);
    }
    qt_model model;
    model_facts(p->kv, qt, p->n, &model);
    qt_options qo = {.pure = o->pure, .has_imatrix = p->im != NULL, .output_type = -1, .token_embd_type = -1};
    int rc = -1;
    if (qt_plan(qt, p->n, &model, p->ft, &qo, err)) goto out;
    for (size_t i = 0; i < p->n; i++) {
        item it = p->items[qt[i].index];
        it.out_type = qt[i].new_type;
        it.n_dims = it.src->n_dims;
        it.convert = it.merged || qt[i].convert;
        if (qt[i].convert) {
            const ggml_type_info *info = ggml_type_get(it.in_type);
            if (!info) {
                nm_fail(err, "tensor %s has the unknown type %u", it.src->name, it.in_type);
                goto out;
            }
            if (info->quantized && !o->allow_requantize) {
                nm_fail(err, "tensor %s is quantized (%s) in the base and not merged: quantizing it again to %s "
                             "compounds the rounding error; start from an F32/F16/BF16 base, or pass --allow-requantize",
                        it.src->name, info->name, ggml_type_name(it.out_type));
                goto out;
            }
            if (it.in_type != GGML_TYPE_F32 && !nm_dequantize_supported(it.in_type)) {
                nm_fail(err, "tensor %s: cannot read its type %s", it.src->name, info->name);
                goto out;
            }
        }
        if (it.convert && !nm_quantize_supported(it.out_type)) {
            nm_fail(err, "tensor %s: this build cannot write %s", it.src->name, ggml_type_name(it.out_type));
            goto out;
        }
        if (p->im && it.convert && ggml_type_get(it.out_type)->quantized) {
            const qt_imatrix_entry *e = qt_imatrix_find(p->im, it.src->name);
            if (e) {
                if ((uint64_t)e->n == (uint64_t)it.src->ne[0] * (uint64_t)it.src->ne[2]) {
                    it.imatrix = e->values;
                    p->n_imatrix_used++;
                } else if (strcmp(it.src->name, "token_embd.weight") != 0) {
                    nm_fail(err, "importance matrix %s: entry %s has %zu values, the tensor needs %llu", o->imatrix,
                            it.src->name, e->n, (unsigned long long)((uint64_t)it.src->ne[0] * (uint64_t)it.src->ne[2]));
                    goto out;
                }
            }
        }
        sorted[i] = it;
    }
    memcpy(p->items, sorted, p->n * sizeof *sorted);
    rc = 0;
out:
    free(qt);
    free(sorted);
    return rc;
}

static int make_plan(const mg_inputs *in, const mg_options *o, plan *p, nm_error *err) {
    memset(p, 0, sizeof *p);
    const gguf_reader *src = in->delta ? in->delta : in->base;
    p->kv = src;
    p->n = gguf_tensor_count(src);
    p->items = calloc(p->n ? p->n : 1, sizeof *p->items);
    if (!p->items) return nm_fail(err, "out of memory");
    if (in->delta) {
        size_t n = 0;
        if (delta_items(in, p->items, &n, err)) return -1;
        p->n = n;
    } else {
        for (size_t i = 0; i < p->n; i++) {
            const gguf_tensor_info *t = gguf_tensor(src, i);
            p->items[i] = (item){.src = t, .src_g = src, .in_type = t->type};
        }
        if (lora_items(in, p, err)) return -1;
    }
    if (o->outtype) {
        if (!(p->ft = qt_ftype_from_name(o->outtype)) || qt_ftype_is_copy(p->ft))
            return nm_fail(err, "unknown --outtype '%s' (F32, F16, BF16, Q8_0, Q4_K_M, ... as nomoat-quantize names them)",
                           o->outtype);
        if (!nm_quantize_supported(p->ft->default_type))
            return nm_fail(err, "%s needs %s blocks, which this build cannot write", p->ft->name,
                           ggml_type_name(p->ft->default_type));
        if (o->imatrix && !(p->im = qt_imatrix_load(o->imatrix, err))) return -1;
        if (quantize_plan(p, o, err)) return -1;
    } else {
        if (o->imatrix) return nm_fail(err, "--imatrix needs a quantized --outtype");
        for (size_t i = 0; i < p->n; i++) {
            item *it = &p->items[i];
            it->n_dims = ggml_n_dims(it->src->ne);
            /* llama-export-lora: F32 when the base tensor is F32, F16 otherwise */
            it->out_type = it->merged ? (it->src->type == GGML_TYPE_F32 ? GGML_TYPE_F32 : GGML_TYPE_F16) : it->src->type;
            it->convert = it->merged;
        }
        qsort(p->items, p->n, sizeof *p->items, by_item_name); /* it writes in std::map (name) order */
    }
    for (size_t i = 0; i < p->n; i++) {
        size_t out;
        if (ggml_tensor_size(p->items[i].out_type, p->items[i].src->ne, &out))
            return nm_fail(err, "tensor %s: size overflows", p->items[i].src->name);
        p->bytes_in += p->items[i].src->size;
        p->bytes_out += out;
    }
    return 0;
}

/* ---------------- computing and writing ---------------- */

/* One term's matrices as floats for the tensor being written: the coefficient rows (one per output
 * row, r long) and the basis (r rows of the output row length) as a panel (kernels/lora.h). */
typedef struct term_data {
    const term *t;
    float *coef, *panel;
} term_data;

typedef struct writer_thread {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gguf_writer *w;
    uint8_t *buf[N_BATCHES];
    size_t len[N_BATCHES];
    bool full[N_BATCHES];
    bool stop, failed;
    nm_error err;
} writer_thread;

static void *writer_main(void *arg) {
    writer_thread *wt = arg;
    int k = 0;
    for (;;) {
        pthread_mutex_lock(&wt->mu);
        while (!wt->full[k] && !wt->stop) pthread_cond_wait(&wt->cv, &wt->mu);
        if (!wt->full[k]) {
            pthread_mutex_unlock(&wt->mu);
            return NULL;
        }
        bool failed = wt->failed;
        pthread_mutex_unlock(&wt->mu);
        nm_error e;
        int rc = failed ? 0 : gguf_writer_write(wt->w, wt->buf[k], wt->len[k], &e);
        pthread_mutex_lock(&wt->mu);
        if (rc != 0 && !wt->failed) {
            wt->failed = true;
            wt->err = e;
        }
        wt->full[k] = false;
        pthread_cond_broadcast(&wt->cv);
        pthread_mutex_unlock(&wt->mu);
        k = (k + 1) % N_BATCHES;
    }
}

static bool writer_acquire(writer_thread *wt, int k) {
    pthread_mutex_lock(&wt->mu);
    while (wt->full[k] && !wt->failed) pthread_cond_wait(&wt->cv, &wt->mu);
    bool ok = !wt->failed;
    pthread_mutex_unlock(&wt->mu);
    return ok;
}

static void writer_submit(writer_thread *wt, int k, size_t len) {
    pthread_mutex_lock(&wt->mu);
    wt->len[k] = len;
    wt->full[k] = true;
    pthread_cond_broadcast(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

typedef struct row_job {
    const item *it;
    const term_data *terms;
    int n_terms;
    int64_t ne0, row0, n_rows, rows_per_task;
    size_t src_row, add_row, out_row;
    int64_t add_rows; /* rows of the addend (delta mode: the base may have fewer) */
    uint8_t *dst;
    float **scratch;  /* per thread: 3 × ne0 floats (two rows, one addend row) */
    atomic_int failed;
    nm_error err;
} row_job;

static void row_values(const uint8_t *src, uint32_t type, int64_t n, float *dst) {
    if (type == GGML_TYPE_F32) memcpy(dst, src, (size_t)n * sizeof(float));
    else nm_dequantize_row(type, src, dst, n);
}

static void fail_row(row_job *j, const char *what, int64_t row, int64_t col, const char *detail) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&j->failed, &expected, 1)) {
        if (col >= 0)
            nm_fail(&j->err, "tensor %s, row %lld, column %lld: %s", j->it->src->name, (long long)row, (long long)col, what);
        else
            nm_fail(&j->err, "tensor %s, row %lld: cannot store it as %s (%s)", j->it->src->name, (long long)row, what,
                    detail);
    }
}

/* Rows two at a time: the merge kernel shares each load of an adapter's panel between them. */
static void row_task(void *ctx, size_t task, int thread) {
    row_job *j = ctx;
    if (atomic_load_explicit(&j->failed, memory_order_relaxed)) return;
    const item *it = j->it;
    const int64_t r0 = (int64_t)task * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->n_rows ? r0 + j->rows_per_task : j->n_rows;
    const size_t ne0 = (size_t)j->ne0;
    float *f = j->scratch[thread], *g = f + 2 * ne0;
    for (int64_t k = r0; k < r1; k += 2) {
        const int nr = r1 - k >= 2 ? 2 : 1;
        const int64_t row = j->row0 + k;
        for (int q = 0; q < nr; q++) {
            float *fq = f + (size_t)q * ne0;
            row_values((const uint8_t *)it->src->data + (size_t)(row + q) * j->src_row, it->src->type, j->ne0, fq);
            if (it->addend && row + q < j->add_rows) { /* target = delta + base */
                row_values((const uint8_t *)it->addend->data + (size_t)(row + q) * j->add_row, it->addend->type, j->ne0, g);
                for (size_t i = 0; i < ne0; i++) fq[i] = fq[i] + g[i];
            }
        }
        for (int t = 0; t < j->n_terms; t++) {
            const term_data *td = &j->terms[t];
            const int r = (int)td->t->p->rank;
            nm_lora_delta_rows(j->ne0, r, td->panel, td->coef + (size_t)row * (size_t)r, nr, td->t->scale,
                               td->t->tinyblas, f, f, ne0);
        }
        for (int q = 0; q < nr; q++) {
            const float *fq = f + (size_t)q * ne0;
            const int64_t bad = nm_find_nonfinite(fq, j->ne0);
            if (bad >= 0) {
                fail_row(j, "the merged value is not finite", row + q, bad, NULL);
                return;
            }
            uint8_t *d = j->dst + (size_t)(k + q) * j->out_row;
            switch (it->out_type) {
            case GGML_TYPE_F32: memcpy(d, fq, ne0 * sizeof(float)); break;
            case GGML_TYPE_F16: nm_f32_to_f16_row(fq, (uint16_t *)d, ne0); break;
            case GGML_TYPE_BF16: nm_f32_to_bf16_row(fq, (uint16_t *)d, ne0); break;
            default: {
                nm_error e;
                if (nm_quantize_rows(it->out_type, fq, d, 1, j->ne0, it->imatrix, &e) != 0) {
                    fail_row(j, ggml_type_name(it->out_type), row + q, -1, e.msg);
                    return;
                }
            }
            }
        }
    }
}

static void free_terms(term_data *td, int n) {
    for (int i = 0; i < n; i++) {
        free(td[i].coef);
        free(td[i].panel);
    }
    free(td);
}

/* Dequantizes rows × cols of a GGUF tensor into a new float array (transposed when asked). */
static float *tensor_floats(const gguf_tensor_info *t, bool transpose, nm_error *err) {
    const int64_t cols = t->ne[0], rows = t->ne[1];
    size_t row;
    float *out = malloc((size_t)(rows * cols) * sizeof(float));
    float *tmp = transpose ? malloc((size_t)cols * sizeof(float)) : NULL;
    if (!out || (transpose && !tmp) || ggml_row_size(t->type, (uint64_t)cols, &row)) {
        free(out);
        free(tmp);
        nm_fail(err, "out of memory for the adapter tensor %s", t->name);
        return NULL;
    }
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *s = (const uint8_t *)t->data + (size_t)r * row;
        if (!transpose) {
            row_values(s, t->type, cols, out + (size_t)(r * cols));
            continue;
        }
        row_values(s, t->type, cols, tmp);
        for (int64_t c = 0; c < cols; c++) out[(size_t)(c * rows + r)] = tmp[c];
    }
    free(tmp);
    return out;
}

static term_data *load_terms(const plan *p, const item *it, nm_error *err) {
    term_data *td = calloc((size_t)(it->n_terms ? it->n_terms : 1), sizeof *td);
    if (!td) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < it->n_terms; i++) {
        const term *t = &p->terms[it->first_term + i];
        td[i].t = t;
        /* linear: coef = B (out rows of r), basis = A (r rows of in); token_embd: coef = A (a row of
         * r per token), basis = Bᵀ (r rows of n_embd) */
        const gguf_tensor_info *c = t->p->embedding ? t->p->a : t->p->b;
        const int64_t n = it->src->ne[0];
        td[i].coef = tensor_floats(c, false, err);
        float *basis = tensor_floats(t->p->embedding ? t->p->b : t->p->a, t->p->embedding, err);
        gguf_drop_pages(t->g, t->p->a->data, t->p->a->size); /* read once: as floats from here on */
        gguf_drop_pages(t->g, t->p->b->data, t->p->b->size);
        td[i].panel = basis ? malloc(nm_lora_panel_floats(n, (int)t->p->rank) * sizeof(float)) : NULL;
        if (td[i].panel) nm_lora_panel(n, (int)t->p->rank, basis, (size_t)n, td[i].panel);
        else if (basis) nm_fail(err, "out of memory for the adapter of %s", it->src->name);
        free(basis);
        if (!td[i].coef || !td[i].panel) {
            free_terms(td, i + 1);
            return NULL;
        }
    }
    return td;
}

typedef struct run {
    nm_pool *pool;
    writer_thread wt;
    bool writer_started;
    pthread_t tid;
    float **scratch;
    int k; /* buffer the next batch goes into */
    nm_progress progress;
    uint64_t done_bytes;
    size_t done_items;
    mg_stats *st;
} run;

static void sample_memory(mg_stats *st) {
    uint64_t a = nm_rss_anon();
    if (a > st->peak_anon) st->peak_anon = a;
}

/* Unchanged tensors go from the mapping straight to the writer, once the writer thread is idle
 * (both batch buffers free), with no copy through a buffer. */
static int write_copy(run *r, const item *it, nm_error *err) {
    for (int k = 0; k < N_BATCHES; k++)
        if (!writer_acquire(&r->wt, k)) return -1;
    const uint8_t *data = it->src->data;
    for (size_t off = 0; off < it->src->size; off += COPY_BYTES) {
        size_t n = it->src->size - off < COPY_BYTES ? it->src->size - off : COPY_BYTES;
        if (gguf_writer_write(r->wt.w, data + off, n, err) != 0) return -1;
        gguf_drop_pages(it->src_g, data + off, n);
        r->done_bytes += n;
        nm_progress_update(&r->progress, r->done_items, r->done_bytes);
    }
    return 0;
}

static int write_computed(run *r, const plan *p, const item *it, nm_error *err) {
    const int64_t ne0 = it->src->ne[0], rows = it->src->ne[1] * it->src->ne[2] * it->src->ne[3];
    row_job j = {.it = it, .ne0 = ne0, .n_terms = it->n_terms, .scratch = r->scratch};
    atomic_init(&j.failed, 0);
    if (ggml_row_size(it->src->type, (uint64_t)ne0, &j.src_row) || ggml_row_size(it->out_type, (uint64_t)ne0, &j.out_row))
        return nm_fail(err, "tensor %s: rows of %lld values do not fit %s", it->src->name, (long long)ne0,
                       ggml_type_name(it->out_type));
    if (it->addend) {
        if (ggml_row_size(it->addend->type, (uint64_t)ne0, &j.add_row))
            return nm_fail(err, "tensor %s: bad base rows", it->src->name);
        j.add_rows = it->addend->ne[1] * it->addend->ne[2] * it->addend->ne[3];
    }
    term_data *td = NULL;
    if (it->n_terms && !(td = load_terms(p, it, err))) return -1;
    j.terms = td;
    j.rows_per_task = TASK_ELEMENTS / ne0 > 2 ? TASK_ELEMENTS / ne0 : 2;
    j.rows_per_task += j.rows_per_task % 2; /* whole row pairs */
    int64_t batch = (int64_t)(BATCH_BYTES / j.out_row);
    if (batch < j.rows_per_task) batch = j.rows_per_task;
    batch -= batch % j.rows_per_task;
    int rc = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += batch) {
        j.row0 = r0;
        j.n_rows = rows - r0 < batch ? rows - r0 : batch;
        if (!writer_acquire(&r->wt, r->k)) {
            rc = -1;
            break;
        }
        j.dst = r->wt.buf[r->k];
        size_t tasks = (size_t)((j.n_rows + j.rows_per_task - 1) / j.rows_per_task);
        nm_pool_run(r->pool, tasks, row_task, &j);
        if (atomic_load(&j.failed)) {
            *err = j.err;
            rc = -1;
            break;
        }
        writer_submit(&r->wt, r->k, (size_t)j.n_rows * j.out_row);
        r->k = (r->k + 1) % N_BATCHES;
        gguf_drop_pages(it->src_g, (const uint8_t *)it->src->data + (size_t)r0 * j.src_row, (size_t)j.n_rows * j.src_row);
        if (it->addend && r0 < j.add_rows) {
            const int64_t n = j.add_rows - r0 < j.n_rows ? j.add_rows - r0 : j.n_rows;
            gguf_drop_pages(it->addend_g, (const uint8_t *)it->addend->data + (size_t)r0 * j.add_row, (size_t)n * j.add_row);
        }
        r->done_bytes += (uint64_t)j.n_rows * j.src_row;
        nm_progress_update(&r->progress, r->done_items, r->done_bytes);
    }
    sample_memory(r->st);
    free_terms(td, it->n_terms);
    return rc;
}

static bool dropped_key(const char *key) {
    return strncmp(key, "split.", 6) == 0 || strcmp(key, "general.quantization_version") == 0 ||
           strcmp(key, "general.file_type") == 0;
}

static int write_metadata(gguf_writer *w, const plan *p, const mg_options *o) {
    const gguf_reader *g = p->kv;
    if (!p->ft) { /* llama-export-lora: the base's metadata, general.file_type moved to the end as 1 */
        for (size_t i = 0; i < gguf_kv_count(g); i++)
            if (strncmp(gguf_kv_key(g, i), "split.", 6) != 0) gguf_writer_copy_kv(w, g, i);
        gguf_writer_remove_key(w, "general.file_type");
        return gguf_writer_set_u32(w, "general.file_type", 1);
    }
    for (size_t i = 0; i < gguf_kv_count(g); i++)
        if (!dropped_key(gguf_kv_key(g, i))) gguf_writer_copy_kv(w, g, i);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, "general.file_type", p->ft->ftype);
    if (p->im) {
        gguf_writer_set_string(w, "quantize.imatrix.file", o->imatrix, strlen(o->imatrix));
        if (p->im->dataset && p->im->dataset[0])
            gguf_writer_set_string(w, "quantize.imatrix.dataset", p->im->dataset, strlen(p->im->dataset));
        gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)p->im->n_entries);
        if (p->im->chunk_count > 0) gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", p->im->chunk_count);
    }
    return 0;
}

static void print_plan(const plan *p, const mg_options *o) {
    char a[32];
    printf("%s (%s)\n", o->out, p->ft ? p->ft->name : "as llama-export-lora writes it");
    printf("%5s  %-32s %-5s    %-5s %10s  %s\n", "#", "tensor", "in", "out", "size", "merged");
    for (size_t i = 0; i < p->n; i++) {
        const item *it = &p->items[i];
        size_t out = 0;
        ggml_tensor_size(it->out_type, it->src->ne, &out);
        printf("%5zu  %-32s %-5s %s %-5s %10s  %s", i + 1, it->src->name, ggml_type_name(it->src->type),
               it->convert ? "->" : "  ", ggml_type_name(it->out_type), nm_format_bytes(out, a, sizeof a),
               it->addend ? "delta" : it->n_terms ? "" : "-");
        for (int t = 0; t < it->n_terms; t++)
            printf("%sr%u x %g", t ? ", " : "", p->terms[it->first_term + t].p->rank,
                   (double)p->terms[it->first_term + t].scale);
        printf("\n");
    }
}

int mg_run(const mg_inputs *in, const mg_options *o, mg_stats *st, nm_error *err) {
    double t0 = nm_now();
    plan p;
    memset(st, 0, sizeof *st);
    if (make_plan(in, o, &p, err)) {
        plan_free(&p);
        return -1;
    }
    st->n_tensors = p.n;
    for (size_t i = 0; i < p.n; i++) st->n_merged += p.items[i].merged;
    st->bytes_in = p.bytes_in;
    st->bytes_out = p.bytes_out;
    if (o->dry_run) {
        print_plan(&p, o);
        plan_free(&p);
        return 0;
    }
    gguf_writer_options wo = {.outfile_flags = (o->force ? NM_OUT_FORCE : 0u) | (o->no_fsync ? NM_OUT_NO_FSYNC : 0u) |
                                               NM_OUT_DIRECT};
    gguf_writer *w = gguf_writer_create(o->out, &wo, err);
    if (!w) {
        plan_free(&p);
        return -1;
    }
    run r;
    memset(&r, 0, sizeof r);
    r.st = st;
    int rc = -1;
    if (write_metadata(w, &p, o)) {
        nm_fail(err, "out of memory preparing metadata");
        goto out;
    }
    int64_t widest = 1;
    for (size_t i = 0; i < p.n; i++) {
        if (gguf_writer_add_tensor(w, p.items[i].src->name, p.items[i].out_type, p.items[i].n_dims, p.items[i].src->ne,
                                   err))
            goto out;
        if (p.items[i].convert && p.items[i].src->ne[0] > widest) widest = p.items[i].src->ne[0];
    }
    if (gguf_writer_begin_data(w, err)) goto out;
    if (!(r.pool = nm_pool_create(o->threads))) {
        nm_fail(err, "out of memory creating threads");
        goto out;
    }
    const int nt = nm_pool_threads(r.pool);
    size_t cap = BATCH_BYTES;
    for (size_t i = 0; i < p.n; i++) { /* a batch holds at least one task's rows */
        size_t row;
        if (p.items[i].convert && !ggml_row_size(p.items[i].out_type, (uint64_t)p.items[i].src->ne[0], &row)) {
            int64_t per_task = TASK_ELEMENTS / p.items[i].src->ne[0] > 2 ? TASK_ELEMENTS / p.items[i].src->ne[0] : 2;
            per_task += per_task % 2;
            if ((size_t)per_task * row > cap) cap = (size_t)per_task * row;
        }
    }
    r.scratch = calloc((size_t)nt, sizeof *r.scratch);
    r.wt.w = w;
    pthread_mutex_init(&r.wt.mu, NULL);
    pthread_cond_init(&r.wt.cv, NULL);
    if (!r.scratch) {
        nm_fail(err, "out of memory");
        goto out;
    }
    for (int k = 0; k < N_BATCHES; k++)
        if (!(r.wt.buf[k] = malloc(cap))) {
            nm_fail(err, "out of memory");
            goto out;
        }
    for (int k = 0; k < nt; k++)
        if (!(r.scratch[k] = malloc(3 * (size_t)widest * sizeof(float)))) {
            nm_fail(err, "out of memory");
            goto out;
        }
    if (pthread_create(&r.tid, NULL, writer_main, &r.wt) != 0) {
        nm_fail(err, "cannot start the writer thread");
        goto out;
    }
    r.writer_started = true;
    nm_progress_start(&r.progress, "merging", p.n, p.bytes_in, o->quiet || o->json);
    for (size_t i = 0; i < p.n; i++) {
        const item *it = &p.items[i];
        if ((it->convert ? write_computed(&r, &p, it, err) : write_copy(&r, it, err)) != 0) goto out;
        r.done_items = i + 1;
        nm_progress_update(&r.progress, r.done_items, r.done_bytes);
    }
    rc = 0;
out:
    if (r.writer_started) {
        pthread_mutex_lock(&r.wt.mu);
        r.wt.stop = true;
        if (rc != 0) r.wt.failed = true;
        pthread_cond_broadcast(&r.wt.cv);
        pthread_mutex_unlock(&r.wt.mu);
        pthread_join(r.tid, NULL);
        if (r.wt.err.msg[0]) { /* a write error (disk full) explains everything after it */
            *err = r.wt.err;
            rc = -1;
        }
    }
    nm_progress_finish(&r.progress);
    sample_memory(st);
    if (rc == 0) {
        rc = gguf_writer_finish(w, err);
        w = NULL;
    }
    gguf_writer_abort(w);
    if (r.scratch)
        for (int k = 0; k < nm_pool_threads(r.pool); k++) free(r.scratch[k]);
    free(r.scratch);
    for (int k = 0; k < N_BATCHES; k++) free(r.wt.buf[k]);
    if (r.wt.w) {
        pthread_mutex_destroy(&r.wt.mu);
        pthread_cond_destroy(&r.wt.cv);
    }
    nm_pool_destroy(r.pool);
    if (rc == 0 && p.im && !o->quiet)
        fprintf(stderr, MG_TOOL ": importance data for %zu tensors\n", p.n_imatrix_used);
    plan_free(&p);
    st->seconds = nm_now() - t0;
    return rc;
}
