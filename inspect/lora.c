/* nomoat-inspect on LoRA adapters: a summary (rank, alpha, what they adapt) before the usual
 * listing, for GGUF adapters and for PEFT folders (formats/lora.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/lora.h"
#include "inspect/inspect.h"

/* "blk.12.attn_q.weight" -> "attn_q"; "token_embd.weight" -> "token_embd"; *layer = 12 or -1. */
static void target_kind(const char *name, char *kind, size_t size, long *layer) {
    *layer = -1;
    const char *p = name;
    if (strncmp(p, "blk.", 4) == 0) {
        char *end;
        *layer = strtol(p + 4, &end, 10);
        p = *end == '.' ? end + 1 : p;
    } else {
        /* PEFT module paths: "model.layers.3.self_attn.q_proj" */
        const char *l = strstr(p, "layers.");
        if (l) {
            char *end;
            *layer = strtol(l + 7, &end, 10);
            if (*end == '.') p = end + 1;
        }
    }
    size_t n = strlen(p);
    if (n > 7 && strcmp(p + n - 7, ".weight") == 0) n -= 7;
    if (n >= size) n = size - 1;
    memcpy(kind, p, n);
    kind[n] = '\0';
}

typedef struct summary {
    char kinds[32][48];
    int n_kinds;
    long layers_min, layers_max;
    uint32_t rank_min, rank_max;
} summary;

static void summary_add(summary *s, const char *name, uint32_t rank) {
    char kind[48];
    long layer;
    target_kind(name, kind, sizeof kind, &layer);
    int k;
    for (k = 0; k < s->n_kinds; k++)
        if (strcmp(s->kinds[k], kind) == 0) break;
    if (k == s->n_kinds && s->n_kinds < 32) snprintf(s->kinds[s->n_kinds++], sizeof s->kinds[0], "%s", kind);
    if (layer >= 0) {
        if (s->layers_min < 0 || layer < s->layers_min) s->layers_min = layer;
        if (layer > s->layers_max) s->layers_max = layer;
    }
    if (!s->rank_min || rank < s->rank_min) s->rank_min = rank;
    if (rank > s->rank_max) s->rank_max = rank;
}

static void summary_print(const summary *s, size_t n) {
    printf("  targets: %zu matrices:", n);
    for (int k = 0; k < s->n_kinds; k++) {
        printf(" ");
        inspect_print_escaped(s->kinds[k]);
    }
    if (s->layers_min >= 0) printf(" (layers %ld-%ld)", s->layers_min, s->layers_max);
    if (s->rank_min == s->rank_max) printf("; rank %u\n", s->rank_min);
    else printf("; ranks %u to %u\n", s->rank_min, s->rank_max);
}

static void summary_json(const summary *s, size_t n, cJSON *a) {
    cJSON_AddNumberToObject(a, "matrices", (double)n);
    cJSON *t = cJSON_AddArrayToObject(a, "targets");
    for (int k = 0; k < s->n_kinds; k++) cJSON_AddItemToArray(t, cJSON_CreateString(s->kinds[k]));
    cJSON_AddNumberToObject(a, "rank_min", s->rank_min);
    cJSON_AddNumberToObject(a, "rank_max", s->rank_max);
    if (s->layers_min >= 0) {
        cJSON_AddNumberToObject(a, "layer_first", (double)s->layers_min);
        cJSON_AddNumberToObject(a, "layer_last", (double)s->layers_max);
    }
}

void inspect_lora_gguf(const gguf_reader *g, const inspect_options *opts, cJSON *out) {
    nm_lora l;
    nm_error err = {{0}};
    cJSON *a = opts->json ? cJSON_AddObjectToObject(out, "adapter") : NULL;
    if (nm_lora_open(&l, g, &err)) {
        if (a) cJSON_AddStringToObject(a, "error", err.msg);
        else printf("adapter: cannot be applied: %s\n", err.msg);
        return;
    }
    summary s = {.layers_min = -1, .layers_max = -1};
    for (size_t i = 0; i < l.n_pairs; i++) summary_add(&s, l.pairs[i].target, l.pairs[i].rank);
    if (a) {
        cJSON_AddStringToObject(a, "type", "lora");
        cJSON_AddStringToObject(a, "architecture", l.arch);
        cJSON_AddNumberToObject(a, "alpha", l.alpha);
        summary_json(&s, l.n_pairs, a);
        cJSON_AddNumberToObject(a, "ignored_vectors", (double)l.n_ignored);
        cJSON *pairs = cJSON_AddArrayToObject(a, "pairs");
        for (size_t i = 0; i < l.n_pairs; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "target", l.pairs[i].target);
            cJSON_AddNumberToObject(p, "rank", l.pairs[i].rank);
            cJSON_AddNumberToObject(p, "scale", nm_lora_pair_scale(&l, &l.pairs[i], 1.0f));
            cJSON_AddStringToObject(p, "type_a", ggml_type_name(l.pairs[i].a->type));
            cJSON_AddStringToObject(p, "type_b", ggml_type_name(l.pairs[i].b->type));
            cJSON_AddItemToArray(pairs, p);
        }
    } else {
        printf("adapter: LoRA for %s, alpha %g", l.arch, (double)l.alpha);
        if (s.rank_min == s.rank_max) printf(" (scale alpha/r = %g at scale 1)", (double)nm_lora_pair_scale(&l, &l.pairs[0], 1.0f));
        printf(", %zu pairs", l.n_pairs);
        if (l.n_ignored) printf(", %zu norm vectors (not applied, as llama.cpp)", l.n_ignored);
        printf("\n");
        summary_print(&s, l.n_pairs);
    }
    nm_lora_free(&l);
}

int inspect_peft(const char *dir, const inspect_options *opts, cJSON *out, nm_error *err) {
    nm_peft *p = nm_peft_open(dir, err);
    if (!p) return -1;
    const nm_peft_config *c = nm_peft_get_config(p);
    summary s = {.layers_min = -1, .layers_max = -1};
    size_t n = nm_peft_module_count(p), n_emb = 0;
    for (size_t i = 0; i < n; i++) {
        const nm_peft_module *m = nm_peft_module_at(p, i);
        summary_add(&s, m->module, m->rank);
        n_emb += m->embedding;
    }
    int rc;
    if (opts->json) {
        cJSON *a = cJSON_AddObjectToObject(out, "adapter");
        cJSON_AddStringToObject(a, "type", "lora");
        cJSON_AddStringToObject(a, "format", "peft");
        cJSON_AddNumberToObject(a, "r", c->r);
        cJSON_AddNumberToObject(a, "lora_alpha", c->lora_alpha);
        cJSON_AddBoolToObject(a, "use_rslora", c->use_rslora);
        if (c->base_model) cJSON_AddStringToObject(a, "base_model", c->base_model);
        if (c->target_modules) cJSON_AddStringToObject(a, "target_modules", c->target_modules);
        summary_json(&s, n, a);
        cJSON_AddNumberToObject(a, "embedding_modules", (double)n_emb);
        cJSON *mods = cJSON_AddArrayToObject(a, "modules");
        for (size_t i = 0; i < n; i++) {
            const nm_peft_module *m = nm_peft_module_at(p, i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "module", m->module);
            cJSON_AddNumberToObject(o, "rank", m->rank);
            cJSON_AddNumberToObject(o, "alpha", m->alpha);
            cJSON_AddNumberToObject(o, "scaling", m->scaling);
            cJSON_AddBoolToObject(o, "embedding", m->embedding);
            cJSON_AddItemToArray(mods, o);
        }
        cJSON *w = cJSON_AddObjectToObject(out, "weights");
        rc = strcmp(nm_peft_weights_kind(p), "safetensors") == 0
                 ? inspect_safetensors(nm_peft_weights_path(p), opts, w, err)
                 : inspect_torch(nm_peft_weights_path(p), opts, w, err);
        cJSON_AddStringToObject(out, "file", dir);
        cJSON_AddStringToObject(out, "format", "peft");
    } else {
        printf("%s: PEFT LoRA adapter, r %u, lora_alpha %g%s", dir, c->r, c->lora_alpha,
               c->use_rslora ? ", rsLoRA (scaling alpha/sqrt(r))" : " (scaling alpha/r)");
        if (c->base_model) {
            printf(", for base model '");
            inspect_print_escaped(c->base_model);
            printf("'");
        }
        printf("\n");
        summary_print(&s, n);
        if (n_emb) printf("  embedding modules: %zu\n", n_emb);
        if (c->n_rank_pattern || c->n_alpha_pattern)
            printf("  rank_pattern: %zu entries, alpha_pattern: %zu entries\n", c->n_rank_pattern, c->n_alpha_pattern);
        if (nm_peft_extra_count(p)) printf("  full vectors kept: %zu\n", nm_peft_extra_count(p));
        printf("weights: ");
        fflush(stdout);
        rc = strcmp(nm_peft_weights_kind(p), "safetensors") == 0
                 ? inspect_safetensors(nm_peft_weights_path(p), opts, NULL, err)
                 : inspect_torch(nm_peft_weights_path(p), opts, NULL, err);
    }
    nm_peft_close(p);
    return rc;
}
