/* Run-time LoRA adapters for the forward pass (lora.h). */
#include "verify/lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/lora.h"
#include "formats/quants.h"
#include "kernels/dot.h"
#include "kernels/lora.h"
#include "verify/model_impl.h"

typedef struct lora_term {
    vm_weight a, b;  /* b is always a matrix product; a too, except for token_embd (rows gathered) */
    float scale;     /* user scale · alpha / r */
    int rank;
} lora_term;

typedef struct lora_entry {
    const vm_weight *target; /* the model's weight (a pointer into vm_model) */
    lora_term *terms;        /* in adapter order */
    int n_terms;
} lora_entry;

typedef struct adapter_file {
    char path[4096];
    float scale;
    gguf_reader *g;
    nm_lora lora;
    bool lora_open;
} adapter_file;

struct vm_adapters {
    adapter_file *files;
    int n_files;
    lora_entry *entries;
    int n_entries;
    const vm_weight **weights; /* every term's a and b */
    size_t n_weights;
    int max_rank;
    int64_t max_out;
};

struct vm_lora_state {
    const vm_adapters *a;
    float *t, *u; /* A x (n_ctx × r) and B (A x) (n_ctx × widest output) */
};

/* ---------------- loading ---------------- */

static const vm_weight *model_weight(const vm_model *m, const char *name, bool embedding) {
    if (embedding) return strcmp(name, m->tok_embd.name) == 0 ? &m->tok_embd : NULL;
    if (m->output.name && strcmp(name, m->output.name) == 0 && m->output.data != m->tok_embd.data) return &m->output;
    for (int l = 0; l < m->n_layer; l++) {
        const vm_layer *L = &m->layers[l];
        const vm_weight *w[] = {&L->wq, &L->wk, &L->wv, &L->wqkv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            if (w[i]->name && strcmp(name, w[i]->name) == 0) return w[i];
    }
    return NULL;
}

static int as_weight(const gguf_tensor_info *t, bool matmul, vm_weight *w, nm_error *err) {
    if (matmul ? !nm_dot_supported(t->type) : !nm_dequantize_supported(t->type))
        return nm_fail(err, "tensor %s has type %s, which nomoat-verify cannot evaluate", t->name, ggml_type_name(t->type));
    size_t rs;
    if (ggml_row_size(t->type, (uint64_t)t->ne[0], &rs))
        return nm_fail(err, "tensor %s: rows of %lld are not whole %s blocks", t->name, (long long)t->ne[0],
                       ggml_type_name(t->type));
    *w = (vm_weight){.name = t->name, .type = t->type, .n_in = t->ne[0], .n_out = t->ne[1], .row_size = rs,
                     .data = t->data};
    return 0;
}

static lora_entry *entry_for(vm_adapters *a, const vm_weight *target) {
    for (int i = 0; i < a->n_entries; i++)
        if (a->entries[i].target == target) return &a->entries[i];
    lora_entry *e = &a->entries[a->n_entries++];
    e->target = target;
    return e;
}

static int open_file(vm_adapters *a, adapter_file *f, const gguf_reader *g, const vm_model *m, nm_error *err) {
    struct stat st;
    if (stat(f->path, &st) == 0 && S_ISDIR(st.st_mode))
        return nm_fail(err, "--lora %s is a folder; convert a PEFT adapter first: nomoat-convert %s --base MODEL", f->path,
                       f->path);
    if (!(f->g = gguf_open(f->path, err))) return nm_error_prefix(err, "%s", f->path);
    if (nm_lora_open(&f->lora, f->g, err)) return nm_error_prefix(err, "%s", f->path);
    f->lora_open = true;
    const gguf_value *arch = gguf_get(g, "general.architecture");
    if (!arch || arch->type != GGUF_TYPE_STRING || arch->str.len != strlen(f->lora.arch) ||
        memcmp(arch->str.ptr, f->lora.arch, arch->str.len) != 0)
        return nm_fail(err, "%s is an adapter for architecture '%s', not the model's", f->path, f->lora.arch);
    for (size_t i = 0; i < f->lora.n_pairs; i++) {
        const nm_lora_pair *p = &f->lora.pairs[i];
        const gguf_tensor_info *bt = gguf_find_tensor(g, p->target);
        const vm_weight *target = model_weight(m, p->target, p->embedding);
        if (!bt || !target)
            return nm_fail(err, "%s adapts %s, which the model does not have: is it an adapter for another model?",
                           f->path, p->target);
        if (nm_lora_check_base(p, bt->ne, err)) return nm_error_prefix(err, "%s", f->path);
        lora_entry *e = entry_for(a, target);
        lora_term *nt = realloc(e->terms, (size_t)(e->n_terms + 1) * sizeof *nt);
        if (!nt) return nm_fail(err, "out of memory");
        e->terms = nt;
        lora_term *t = &e->terms[e->n_terms++];
        memset(t, 0, sizeof *t);
        t->rank = (int)p->rank;
        t->scale = nm_lora_pair_scale(&f->lora, p, f->scale);
        if (as_weight(p->a, !p->embedding, &t->a, err) || as_weight(p->b, true, &t->b, err))
            return nm_error_prefix(err, "%s", f->path);
        if (t->rank > a->max_rank) a->max_rank = t->rank;
        if (t->b.n_out > a->max_out) a->max_out = t->b.n_out;
    }
    return 0;
}

vm_adapters *vm_adapters_load(const gguf_reader *g, const vm_model *m, const char *const *args, int n, nm_error *err) {
    vm_adapters *a = calloc(1, sizeof *a);
    if (!a || !(a->files = calloc((size_t)(n > 0 ? n : 1), sizeof *a->files))) {
        free(a);
        nm_fail(err, "out of memory");
        return NULL;
    }
    a->n_files = n;
    size_t max_entries = 0;
    for (int i = 0; i < n; i++) {
        adapter_file *f = &a->files[i];
        if (nm_lora_parse_arg(args[i], f->path, sizeof f->path, &f->scale, err)) goto fail;
    }
    max_entries = (size_t)m->n_layer * 7 + 2;
    if (!(a->entries = calloc(max_entries, sizeof *a->entries))) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if (open_file(a, &a->files[i], g, m, err)) goto fail;
    size_t n_terms = 0;
    for (int i = 0; i < a->n_entries; i++) n_terms += (size_t)a->entries[i].n_terms;
    if (!(a->weights = calloc(2 * n_terms + 1, sizeof *a->weights))) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < a->n_entries; i++)
        for (int k = 0; k < a->entries[i].n_terms; k++) {
            a->weights[a->n_weights++] = &a->entries[i].terms[k].a;
            a->weights[a->n_weights++] = &a->entries[i].terms[k].b;
        }
    return a;
fail:
    vm_adapters_free(a);
    return NULL;
}

void vm_adapters_free(vm_adapters *a) {
    if (!a) return;
    for (int i = 0; i < a->n_entries; i++) free(a->entries[i].terms);
    free(a->entries);
    for (int i = 0; i < a->n_files; i++) {
        if (a->files[i].lora_open) nm_lora_free(&a->files[i].lora);
        if (a->files[i].g) gguf_close(a->files[i].g);
    }
    free(a->files);
    free(a->weights);
    free(a);
}

size_t vm_adapters_weight_count(const vm_adapters *a) { return a ? a->n_weights : 0; }
const vm_weight *vm_adapters_weight(const vm_adapters *a, size_t i) { return i < a->n_weights ? a->weights[i] : NULL; }

void vm_adapters_print(const vm_adapters *a, FILE *f) {
    for (int i = 0; i < a->n_files; i++) {
        const adapter_file *af = &a->files[i];
        fprintf(f, "adapter %s: %zu pairs, rank %u, alpha %g, scale %g\n", af->path, af->lora.n_pairs,
                af->lora.n_pairs ? af->lora.pairs[0].rank : 0, (double)af->lora.alpha, (double)af->scale);
    }
}

/* ---------------- the hooks ---------------- */

void vm_lora_state_free(struct vm_lora_state *s) {
    if (!s) return;
    free(s->t);
    free(s->u);
    free(s);
}

int vm_ctx_set_adapters(vm_ctx *c, const vm_adapters *a, nm_error *err) {
    vm_lora_state_free(c->lora);
    c->lora = NULL;
    if (!a) return 0;
    struct vm_lora_state *s = calloc(1, sizeof *s);
    if (!s) return nm_fail(err, "out of memory");
    s->a = a;
    s->t = malloc((size_t)c->n_ctx * (size_t)(a->max_rank > 0 ? a->max_rank : 1) * sizeof(float));
    s->u = malloc((size_t)c->n_ctx * (size_t)(a->max_out > 0 ? a->max_out : 1) * sizeof(float));
    if (!s->t || !s->u) {
        vm_lora_state_free(s);
        return nm_fail(err, "out of memory for the adapters' scratch");
    }
    c->lora = s;
    return 0;
}

static const lora_entry *find_entry(const vm_adapters *a, const vm_weight *w) {
    for (int i = 0; i < a->n_entries; i++)
        if (a->entries[i].target == w) return &a->entries[i];
    return NULL;
}

/* A product of an adapter matrix. ggml gives F32/F16/BF16 products to tinyBLAS (the order the
 * evaluator's kernels follow) only when rows are whole 8-element steps, the matrix has a multiple
 * of 4 rows and there are at least 2 tokens; otherwise it runs ggml_vec_dot_* row by row, which
 * sums differently. Adapters meet that with ranks that are not multiples of 8 (lora_b) or 4
 * (lora_a), so those products take ggml's other order here. */
static void adapter_matmul(vm_ctx *c, const vm_weight *w, const float *x, int n_tokens, float *y) {
    const bool float_type = w->type == GGML_TYPE_F32 || w->type == GGML_TYPE_F16 || w->type == GGML_TYPE_BF16;
    const bool tinyblas = w->n_in % 8 == 0 && w->n_out % 4 == 0 && n_tokens >= 2;
    if (c->exact || !float_type || tinyblas) {
        vm_matmul(c, w, x, n_tokens, y);
        return;
    }
    if (c->observe && strncmp(w->name, "blk.", 4) == 0) c->observe(c->observe_user, w, x, n_tokens);
    uint16_t *act = (uint16_t *)c->act; /* one token's activations in the weight's type */
    for (int t = 0; t < n_tokens; t++) {
        const float *xr = x + (size_t)t * (size_t)w->n_in;
        const void *a = xr;
        if (w->type == GGML_TYPE_F16) nm_f32_to_f16_row(xr, act, (size_t)w->n_in), a = act;
        if (w->type == GGML_TYPE_BF16) nm_f32_to_bf16_row(xr, act, (size_t)w->n_in), a = act;
        for (int64_t o = 0; o < w->n_out; o++)
            y[(size_t)t * (size_t)w->n_out + (size_t)o] = nm_ggml_vec_dot(w->type, w->n_in, w->data + (size_t)o * w->row_size, a);
    }
}

/* y += (B u) · scale over n_tokens rows, as ggml_scale then ggml_add. */
static void add_scaled(float *y, const float *u, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) y[i] = y[i] + u[i] * scale;
}

void vm_lora_apply(vm_ctx *c, const vm_weight *w, const float *x, int n_tokens, float *y) {
    const lora_entry *e = find_entry(c->lora->a, w);
    if (!e || w == &c->m->tok_embd) return;
    for (int k = e->n_terms - 1; k >= 0; k--) { /* last adapter first, as llama.cpp (lora.h) */
        const lora_term *t = &e->terms[k];
        adapter_matmul(c, &t->a, x, n_tokens, c->lora->t);
        adapter_matmul(c, &t->b, c->lora->t, n_tokens, c->lora->u);
        add_scaled(y, c->lora->u, (size_t)n_tokens * (size_t)w->n_out, t->scale);
    }
}

void vm_lora_embed(vm_ctx *c, const int32_t *tokens, int n_tokens) {
    const lora_entry *e = find_entry(c->lora->a, &c->m->tok_embd);
    if (!e) return;
    for (int k = e->n_terms - 1; k >= 0; k--) {
        const lora_term *t = &e->terms[k];
        for (int i = 0; i < n_tokens; i++) /* ggml_get_rows of lora_a: one row of r per token */
            nm_dequantize_row(t->a.type, t->a.data + (size_t)tokens[i] * t->a.row_size, c->lora->t + (size_t)i * t->rank,
                              t->rank);
        adapter_matmul(c, &t->b, c->lora->t, n_tokens, c->lora->u);
        add_scaled(c->x, c->lora->u, (size_t)n_tokens * (size_t)c->m->n_embd, t->scale);
    }
}
