/* Importance-matrix readers (FORMATS.md §5.7). Every count and length in the file is checked
 * before use; values must be finite because they weight the quantizers' error searches. */
#include "quantize/imatrix.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/tensor.h"
#include "quantize/recipe.h"

#define MAX_NAME 1024

void qt_imatrix_free(qt_imatrix *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n_entries; i++) {
        free(m->entries[i].name);
        free(m->entries[i].values);
    }
    free(m->entries);
    free(m->dataset);
    free(m);
}

const qt_imatrix_entry *qt_imatrix_find(const qt_imatrix *m, const char *name) {
    for (size_t i = 0; i < m->n_entries; i++)
        if (strcmp(m->entries[i].name, name) == 0)
            return &m->entries[i];
    return NULL;
}

static qt_imatrix_entry *add_entry(qt_imatrix *m, size_t *cap, const char *name, size_t name_len, size_t n) {
    if (m->n_entries == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        qt_imatrix_entry *e = realloc(m->entries, c * sizeof *e);
        if (!e)
            return NULL;
        m->entries = e;
        *cap = c;
    }
    qt_imatrix_entry *e = &m->entries[m->n_entries];
    e->name = malloc(name_len + 1);
    e->values = malloc((n ? n : 1) * sizeof(float));
    if (!e->name || !e->values) {
        free(e->name);
        free(e->values);
        return NULL;
    }
    memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    e->n = n;
    m->n_entries++;
    return e;
}

static float load_f32(const void *p) {
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

static bool has_suffix(const char *s, size_t n, const char *suffix, size_t *stem) {
    size_t m = strlen(suffix);
    if (n < m || memcmp(s + n - m, suffix, m) != 0)
        return false;
    *stem = n - m;
    return true;
}

static uint64_t tensor_elements(const gguf_tensor_info *t) {
    return (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
}

/* Takes ownership of g. */
static qt_imatrix *load_gguf(gguf_reader *g, const char *path, nm_error *err) {
    qt_imatrix *m = calloc(1, sizeof *m);
    size_t cap = 0;
    if (!m)
        goto oom;

    const gguf_value *v = gguf_get(g, "general.type");
    if (v && (v->type != GGUF_TYPE_STRING || v->str.len != 7 || memcmp(v->str.ptr, "imatrix", 7) != 0)) {
        nm_fail(err, "%s: not an importance matrix (general.type is not \"imatrix\")", path);
        goto fail;
    }
    v = gguf_get(g, "imatrix.datasets");
    if (v && v->type == GGUF_TYPE_ARRAY && v->arr.type == GGUF_TYPE_STRING && v->arr.count > 0) {
        const gguf_string *s = &v->arr.strings[0];
        if (s->len > 1u << 20) {
            nm_fail(err, "%s: imatrix.datasets[0] is implausibly long (%llu bytes)", path,
                    (unsigned long long)s->len);
            goto fail;
        }
        m->dataset = strndup(s->ptr, (size_t)s->len);
        if (!m->dataset)
            goto oom;
    }
    v = gguf_get(g, "imatrix.chunk_count");
    if (v) {
        if (v->type != GGUF_TYPE_UINT32) {
            nm_fail(err, "%s: imatrix.chunk_count is %s, expected UINT32", path, gguf_type_name(v->type));
            goto fail;
        }
        m->chunk_count = v->u32;
    }

    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        size_t len = strlen(t->name), stem;
        if (has_suffix(t->name, len, ".counts", &stem)) {
            char want[GGUF_MAX_NAME + 16];
            snprintf(want, sizeof want, "%.*s.in_sum2", (int)stem, t->name);
            if (!gguf_find_tensor(g, want)) {
                nm_fail(err, "%s: tensor %s has no matching %s", path, t->name, want);
                goto fail;
            }
            continue;
        }
        if (!has_suffix(t->name, len, ".in_sum2", &stem))
            continue;
        char counts_name[GGUF_MAX_NAME + 16];
        snprintf(counts_name, sizeof counts_name, "%.*s.counts", (int)stem, t->name);
        const gguf_tensor_info *c = gguf_find_tensor(g, counts_name);
        if (!c) {
            nm_fail(err, "%s: tensor %s has no matching %s", path, t->name, counts_name);
            goto fail;
        }
        if (t->type != GGML_TYPE_F32 || c->type != GGML_TYPE_F32) {
            nm_fail(err, "%s: %s and %s must be F32 (they are %s and %s)", path, t->name, c->name,
                    ggml_type_name(t->type), ggml_type_name(c->type));
            goto fail;
        }
        uint64_t n_per_row = (uint64_t)t->ne[0];
        uint64_t n_total = tensor_elements(t);
        uint64_t n_mat = n_per_row ? n_total / n_per_row : 0;
        if (n_per_row == 0 || tensor_elements(c) != n_mat) {
            nm_fail(err, "%s: %s holds %llu counts for %llu matrices of %s", path, c->name,
                    (unsigned long long)tensor_elements(c), (unsigned long long)n_mat, t->name);
            goto fail;
        }
        /* the reader guarantees data of size = elements * 4 within the file */
        qt_imatrix_entry *e = add_entry(m, &cap, t->name, stem, (size_t)n_total);
        if (!e)
            goto oom;
        const unsigned char *sums = t->data, *counts = c->data;
        for (uint64_t j = 0; j < n_mat; j++) {
            float count = load_f32(counts + 4 * j);
            if (!isfinite(count) || count < 0) {
                nm_fail(err, "%s: %s[%llu] = %g is not a valid count", path, c->name, (unsigned long long)j,
                        (double)count);
                goto fail;
            }
            for (uint64_t k = 0; k < n_per_row; k++) {
                uint64_t idx = j * n_per_row + k;
                float value = count > 0 ? load_f32(sums + 4 * idx) / count : 1.0f;
                if (!isfinite(value) || value < 0) {
                    nm_fail(err, "%s: %s[%llu] gives the non-finite or negative weight %g", path, t->name,
                            (unsigned long long)idx, (double)value);
                    goto fail;
                }
                e->values[idx] = value;
            }
        }
    }
    if (m->n_entries == 0) {
        nm_fail(err, "%s: no importance-matrix entries (no *.in_sum2 tensors)", path);
        goto fail;
    }
    gguf_close(g);
    return m;
oom:
    nm_fail(err, "%s: out of memory reading the importance matrix", path);
fail:
    qt_imatrix_free(m);
    gguf_close(g);
    return NULL;
}

/* ---- legacy .dat ---- */

typedef struct cursor {
    const unsigned char *p, *end;
} cursor;

static int read_i32(cursor *c, int32_t *out) {
    if (c->end - c->p < 4)
        return -1;
    memcpy(out, c->p, 4);
    c->p += 4;
    return 0;
}

static qt_imatrix *load_dat(const char *path, const unsigned char *buf, size_t size, nm_error *err) {
    qt_imatrix *m = calloc(1, sizeof *m);
    size_t cap = 0;
    cursor c = {buf, buf + size};
    int32_t n_entries;
    if (!m)
        goto oom;
    if (read_i32(&c, &n_entries) != 0 || n_entries < 1) {
        nm_fail(err, "%s: not an importance matrix (neither GGUF nor a legacy .dat with a positive entry count)", path);
        goto fail;
    }
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t name_len, ncall, nval;
        size_t off = (size_t)(c.p - buf);
        if (read_i32(&c, &name_len) != 0 || name_len < 1 || name_len > MAX_NAME || c.end - c.p < name_len) {
            nm_fail(err, "%s: entry %d at offset %zu: bad or truncated name", path, i, off);
            goto fail;
        }
        const char *name = (const char *)c.p;
        c.p += name_len;
        if (read_i32(&c, &ncall) != 0 || read_i32(&c, &nval) != 0 || nval < 1 || ncall < 0 ||
            (size_t)(c.end - c.p) / 4 < (size_t)nval) {
            nm_fail(err, "%s: entry %d (%.*s): bad call/value count or truncated values", path, i, (int)name_len, name);
            goto fail;
        }
        qt_imatrix_entry *e = add_entry(m, &cap, name, (size_t)name_len, (size_t)nval);
        if (!e)
            goto oom;
        for (int32_t k = 0; k < nval; k++) {
            float value = load_f32(c.p + 4 * (size_t)k);
            if (ncall > 0)
                value /= (float)ncall;
            if (!isfinite(value) || value < 0) {
                nm_fail(err, "%s: entry %s value %d is %g (must be finite and not negative)", path, e->name, k,
                        (double)value);
                goto fail;
            }
            e->values[k] = value;
        }
        c.p += 4 * (size_t)nval;
    }
    if (c.p < c.end) { /* optional trailer: last chunk, dataset name */
        int32_t last_chunk, len;
        if (read_i32(&c, &last_chunk) != 0 || last_chunk < 0 || read_i32(&c, &len) != 0 || len < 0 ||
            c.end - c.p < len) {
            nm_fail(err, "%s: malformed trailer after the last entry", path);
            goto fail;
        }
        m->chunk_count = (uint32_t)last_chunk;
        if (len > 0 && !(m->dataset = strndup((const char *)c.p, (size_t)len)))
            goto oom;
    }
    return m;
oom:
    nm_fail(err, "%s: out of memory reading the importance matrix", path);
fail:
    qt_imatrix_free(m);
    return NULL;
}

static qt_imatrix *load_path(const char *path, nm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nm_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        fclose(f);
        gguf_reader *g = gguf_open(path, err);
        if (!g) {
            nm_error_prefix(err, "%s", path);
            return NULL;
        }
        return load_gguf(g, path, err);
    }
    /* legacy files are small (a few MB even for 70B models): read whole, bounded */
    const long limit = 1L << 30;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        nm_fail(err, "%s: cannot seek: %s", path, strerror(errno));
        return NULL;
    }
    long size = ftell(f);
    if (size < 0 || size > limit) {
        fclose(f);
        nm_fail(err, "%s: not an importance matrix (size %ld)", path, size);
        return NULL;
    }
    unsigned char *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        nm_fail(err, "%s: out of memory", path);
        return NULL;
    }
    rewind(f);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        nm_fail(err, "%s: read error", path);
        return NULL;
    }
    fclose(f);
    qt_imatrix *m = load_dat(path, buf, (size_t)size, err);
    free(buf);
    return m;
}

static qt_imatrix *load_memory(const void *data, size_t size, const char *name, nm_error *err) {
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        gguf_reader *g = gguf_open_memory(data, size, err);
        if (!g) {
            nm_error_prefix(err, "%s", name);
            return NULL;
        }
        return load_gguf(g, name, err);
    }
    return load_dat(name, data, size, err);
}

qt_imatrix *qt_imatrix_load(const char *path, nm_error *err) {
    qt_imatrix *m = load_path(path, err);
    if (!m && err)
        qt_message_escape(err);
    return m;
}

qt_imatrix *qt_imatrix_load_memory(const void *data, size_t size, const char *name, nm_error *err) {
    qt_imatrix *m = load_memory(data, size, name, err);
    if (!m && err)
        qt_message_escape(err);
    return m;
}
