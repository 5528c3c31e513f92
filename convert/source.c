/* One view of a checkpoint's tensors, whatever the container: safetensors (single or sharded)
 * through formats/safetensors.h, PyTorch pickles (HF pytorch_model*.bin, Meta
 * consolidated.NN.pth shards merged) through formats/torch.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/convert.h"
#include "formats/safetensors.h"
#include "formats/torch.h"

struct conv_source {
    st_model *st;
    torch_model *torch;
    conv_layout layout;
    conv_tensor *tensors;
    size_t n;
};

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* 1 safetensors, 2 pytorch .bin, 3 Meta .pth, 0 none. */
static int weights_kind(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int kind = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (n[0] == '.')
            continue;
        if (has_suffix(n, ".safetensors") || strcmp(n, "model.safetensors.index.json") == 0)
            kind = 1;
        else if (kind != 1 && ((strncmp(n, "pytorch_model", 13) == 0 && has_suffix(n, ".bin")) ||
                               strcmp(n, "pytorch_model.bin.index.json") == 0))
            kind = 2;
        else if (kind == 0 && strncmp(n, "consolidated.", 13) == 0 && has_suffix(n, ".pth"))
            kind = 3;
    }
    closedir(d);
    return kind;
}

int conv_detect_weights(const char *dir, char *what, size_t what_size) {
    static const char *names[] = {"", "safetensors", "pytorch", "meta"};
    int k = weights_kind(dir);
    if (what && what_size)
        snprintf(what, what_size, "%s", names[k]);
    return k;
}

static const conv_source *sort_ctx;
static int by_file_then_name(const void *a, const void *b) {
    const conv_tensor *x = a, *y = b;
    const st_tensor *sx = st_tensor_at(sort_ctx->st, x->backend_index);
    const st_tensor *sy = st_tensor_at(sort_ctx->st, y->backend_index);
    if (sx->file_index != sy->file_index) {
        int c = strcmp(st_file_path(sort_ctx->st, sx->file_index), st_file_path(sort_ctx->st, sy->file_index));
        if (c)
            return c;
    }
    return strcmp(x->name, y->name);
}

conv_source *conv_source_open(const char *dir, conv_layout layout, nm_error *err) {
    conv_source *s = calloc(1, sizeof *s);
    if (!s) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    s->layout = layout;
    int kind = weights_kind(dir);
    if (layout == CONV_LAYOUT_META && kind != 3) {
        nm_fail(err, "%s: params.json found but no consolidated.NN.pth weights", dir);
        goto fail;
    }
    if (layout == CONV_LAYOUT_HF && (kind == 0 || kind == 3)) {
        nm_fail(err, "%s: no weights found (expected *.safetensors or pytorch_model*.bin)", dir);
        goto fail;
    }
    if (kind == 1) {
        s->st = st_open(dir, err);
        if (!s->st)
            goto fail;
        s->n = st_tensor_count(s->st);
    } else {
        s->torch = torch_open(dir, NULL, err);
        if (!s->torch)
            goto fail;
        s->n = torch_tensor_count(s->torch);
    }
    s->tensors = calloc(s->n ? s->n : 1, sizeof *s->tensors);
    if (!s->tensors) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->n; i++) {
        conv_tensor *t = &s->tensors[i];
        t->backend_index = i;
        if (s->st) {
            const st_tensor *x = st_tensor_at(s->st, i);
            t->name = x->name;
            t->dtype = x->dtype;
            t->n_dims = x->n_dims;
            for (uint32_t d = 0; d < x->n_dims && d < CONV_MAX_DIMS; d++)
                t->shape[d] = x->shape[d];
            t->size = x->size;
            t->data = x->data;
        } else {
            const torch_tensor *x = torch_tensor_at(s->torch, i);
            t->name = x->name;
            t->dtype = x->dtype;
            t->n_dims = x->n_dims;
            for (uint32_t d = 0; d < x->n_dims && d < CONV_MAX_DIMS; d++)
                t->shape[d] = x->shape[d];
            t->size = x->size;
            t->data = x->data;
        }
    }
    if (s->st) {
        /* llama.cpp's converter walks the shards in name order, each one's tensors sorted by name */
        sort_ctx = s;
        qsort(s->tensors, s->n, sizeof *s->tensors, by_file_then_name);
        sort_ctx = NULL;
    }
    return s;
fail:
    conv_source_close(s);
    return NULL;
}

void conv_source_close(conv_source *s) {
    if (!s)
        return;
    if (s->st)
        st_close(s->st);
    if (s->torch)
        torch_close(s->torch);
    free(s->tensors);
    free(s);
}

size_t conv_source_count(const conv_source *s) { return s->n; }
const conv_tensor *conv_source_at(const conv_source *s, size_t i) { return i < s->n ? &s->tensors[i] : NULL; }

const conv_tensor *conv_source_find(const conv_source *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->tensors[i].name, name) == 0)
            return &s->tensors[i];
    return NULL;
}

int conv_source_read(const conv_source *s, const conv_tensor *t, void *dst, nm_error *err) {
    if (t->data) {
        memcpy(dst, t->data, t->size);
        return 0;
    }
    if (s->torch)
        return torch_tensor_read(s->torch, torch_tensor_at(s->torch, t->backend_index), dst, err);
    return nm_fail(err, "tensor %s: no data", t->name);
}

const char *conv_source_kind(const conv_source *s) {
    if (s->st)
        return "safetensors";
    return s->layout == CONV_LAYOUT_META ? "meta" : "pytorch";
}
