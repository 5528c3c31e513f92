/* safetensors reader — FORMATS.md §9. Validates everything the reference library checks before
 * exposing a tensor; the header is parsed with cJSON after a lexical pass that catches what a
 * double-based parser cannot (non-integers, values above 2^53, control bytes, bad UTF-8). */
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull
#define ST_MAX_INTEGER (1ull << 53)
#define ST_MAX_INDEX (64u << 20) /* a model.safetensors.index.json is a few hundred KB at most */

typedef struct st_file {
    char *path;
    const unsigned char *base; /* the whole file */
    size_t size;
    void *map; /* non-NULL when we own a mapping */
    size_t map_size;
} st_file;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct st_model {
    st_file *files;
    size_t n_files;
    st_tensor *tensors; /* sorted by (file_index, offset) */
    size_t n_tensors;
    size_t *by_name; /* indices into tensors, sorted by name */
    st_meta *meta; /* of the first file */
    size_t n_meta;
};

/* Names in a header may hold any character once JSON escapes are decoded (\n, \u001b...);
 * nm_fail and nm_error_prefix keep messages one printable line. */
/* ---------------------------------------------------------------------------------------------
 * Lexical pass over the header bytes. */

/* Checks UTF-8 well-formedness (no overlongs, no surrogates, ≤ U+10FFFF); returns the offset of
 * the first bad byte or -1. */
static long utf8_bad_offset(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else
            return (long)i;
        if (n - i < len)
            return (long)i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return (long)i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
        i += len;
    }
    return -1;
}

/* Every number token in the header must be a non-negative whole number ≤ 2^53 (cJSON stores
 * numbers as doubles, which would silently round 2^53+1 or accept 1.5). Also refuses control
 * bytes other than JSON whitespace. `key` tracks the last top-level key for messages. */
static int lex_header(const unsigned char *h, size_t n, nm_error *err) {
    int depth = 0;
    char key[96] = "";
    size_t i = 0;
    while (i < n) {
        unsigned c = h[i];
        if (c == '"') {
            size_t start = ++i;
            while (i < n && h[i] != '"') {
                if (h[i] < 0x20)
                    return nm_fail(err, "control byte 0x%02x inside a string of the header (header offset %zu)", h[i], i);
                /* C strings cannot hold U+0000: names would silently be cut short */
                if (h[i] == '\\' && n - i >= 6 && !memcmp(h + i + 1, "u0000", 5))
                    return nm_fail(err, "escaped NUL character (\\u0000) in a string of the header (header offset %zu)", i);
                i += h[i] == '\\' ? 2 : 1;
            }
            if (i >= n)
                return nm_fail(err, "header ends inside a string");
            size_t len = i - start;
            i++;
            size_t j = i;
            while (j < n && (h[j] == ' ' || h[j] == '\t' || h[j] == '\n' || h[j] == '\r'))
                j++;
            if (depth == 1 && j < n && h[j] == ':') {
                if (len >= sizeof key)
                    len = sizeof key - 4, memcpy(key + len, "...", 4);
                else
                    key[len] = '\0';
                memcpy(key, h + start, len);
            }
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            bool whole = true;
            uint64_t v = 0;
            bool big = false;
            while (i < n && (h[i] == '-' || h[i] == '+' || h[i] == '.' || h[i] == 'e' || h[i] == 'E' ||
                             (h[i] >= '0' && h[i] <= '9'))) {
                if (h[i] >= '0' && h[i] <= '9') {
                    if (v > (ST_MAX_INTEGER - (unsigned)(h[i] - '0')) / 10)
                        big = true;
                    else
                        v = v * 10 + (unsigned)(h[i] - '0');
                } else
                    whole = false;
                i++;
            }
            int tlen = (int)(i - start > 40 ? 40 : i - start);
            const char *where = key[0] ? key : "(top level)";
            if (h[start] == '-')
                return nm_fail(err, "negative number %.*s in the header (tensor '%s')", tlen, (const char *)h + start, where);
            if (!whole)
                return nm_fail(err, "number %.*s in the header is not a whole number (tensor '%s')", tlen,
                               (const char *)h + start, where);
            if (big || v > ST_MAX_INTEGER)
                return nm_fail(err, "number %.*s in the header exceeds 2^53 (tensor '%s')", tlen, (const char *)h + start,
                               where);
            continue;
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return nm_fail(err, "control byte 0x%02x in the header (header offset %zu)", c, i);
        i++;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * One file: header validation and tensor table. */

typedef struct parsed_file {
    st_tensor *tensors;
    size_t n;
    st_meta *meta;
    size_t n_meta;
} parsed_file;

static void free_parsed(parsed_file *p) {
    for (size_t i = 0; i < p->n; i++)
        free((char *)p->tensors[i].name);
    free(p->tensors);
    for (size_t i = 0; i < p->n_meta; i++) {
        free(p->meta[i].key);
        free(p->meta[i].value);
    }
    free(p->meta);
    memset(p, 0, sizeof *p);
}

static int whole_number(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j))
        return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > (double)ST_MAX_INTEGER || d != (double)(uint64_t)d)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_offset(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return 0;
}

static int cmp_name_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void format_shape(const st_tensor *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %llu" : "%llu", (unsigned long long)t->shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

/* Parses one tensor entry into t (name owned by caller on success). Offsets are stored relative
 * to the data buffer in t->offset / t->size for now (begin, end - begin). */
static int parse_entry(const cJSON *e, st_tensor *t, uint64_t *end_out, nm_error *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return nm_fail(err, "tensor '%s': entry is not a JSON object", name);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype")          ? &dtype
                             : !strcmp(f->string, "shape")        ? &shape
                             : !strcmp(f->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot)
            continue; /* unknown fields are ignored, as by the reference library */
        if (*slot)
            return nm_fail(err, "tensor '%s': duplicate field \"%s\"", name, f->string);
        *slot = f;
    }
    if (!dtype || !shape || !offs)
        return nm_fail(err, "tensor '%s': missing \"%s\"", name, !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dtype))
        return nm_fail(err, "tensor '%s': dtype is not a string", name);
    t->dtype = nm_dtype_from_name(dtype->valuestring);
    if (t->dtype == NM_DTYPE_UNKNOWN)
        return nm_fail(err, "tensor '%s': unknown dtype \"%.32s\"", name, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return nm_fail(err, "tensor '%s': shape is not an array", name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS)
        return nm_fail(err, "tensor '%s': %d dimensions (at most %d supported)", name, nd, ST_MAX_DIMS);
    t->n_dims = (uint32_t)nd;
    uint64_t elements = 1;
    int d = 0;
    for (const cJSON *x = shape->child; x; x = x->next, d++) {
        if (whole_number(x, &t->shape[d]) != 0)
            return nm_fail(err, "tensor '%s': shape[%d] is not a non-negative whole number ≤ 2^53", name, d);
        if (__builtin_mul_overflow(elements, t->shape[d], &elements))
            return nm_fail(err, "tensor '%s': element count overflows", name);
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return nm_fail(err, "tensor '%s': data_offsets is not an array of two numbers", name);
    uint64_t begin, end;
    if (whole_number(offs->child, &begin) != 0 || whole_number(offs->child->next, &end) != 0)
        return nm_fail(err, "tensor '%s': data_offsets are not non-negative whole numbers ≤ 2^53", name);
    if (end < begin)
        return nm_fail(err, "tensor '%s': data_offsets [%llu, %llu] end before they begin", name,
                       (unsigned long long)begin, (unsigned long long)end);
    uint64_t bits;
    if (__builtin_mul_overflow(elements, (uint64_t)nm_dtype_bits(t->dtype), &bits))
        return nm_fail(err, "tensor '%s': byte size overflows", name);
    char sh[160];
    format_shape(t, sh, sizeof sh);
    if (bits % 8 != 0)
        return nm_fail(err, "tensor '%s': shape %s of %s is not a whole number of bytes", name, sh, nm_dtype_name(t->dtype));
    if (end - begin != bits / 8)
        return nm_fail(err, "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu", name,
                       (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin), sh,
                       nm_dtype_name(t->dtype), (unsigned long long)(bits / 8));
    if (end - begin > SIZE_MAX)
        return nm_fail(err, "tensor '%s': too large for this machine", name);
    t->offset = begin;
    t->size = (size_t)(end - begin);
    *end_out = end;
    return 0;
}

static int parse_header(const unsigned char *buf, size_t size, uint32_t file_index, parsed_file *out, nm_error *err) {
    memset(out, 0, sizeof *out);
    if (size < 8)
        return nm_fail(err, "file is %zu bytes, shorter than the 8-byte header length", size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    if (n > ST_MAX_HEADER)
        return nm_fail(err, "header length %llu exceeds the 100,000,000-byte limit", (unsigned long long)n);
    if (n > size - 8)
        return nm_fail(err, "header length %llu runs past the end of the file (%zu bytes)", (unsigned long long)n, size);
    const unsigned char *h = buf + 8;
    if (n == 0 || h[0] != '{')
        return nm_fail(err, "header does not begin with '{' (not a safetensors file?)");
    long bad = utf8_bad_offset(h, (size_t)n);
    if (bad >= 0)
        return nm_fail(err, "header is not valid UTF-8 (header offset %ld)", bad);
    if (lex_header(h, (size_t)n, err) != 0)
        return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)h, (size_t)n, &end, false);
    if (!root) {
        size_t at = end && (const unsigned char *)end >= h ? (size_t)((const unsigned char *)end - h) : 0;
        return nm_fail(err, "header is not valid JSON (near header offset %zu)", at);
    }
    for (const char *p = end; p < (const char *)h + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return nm_fail(err, "unexpected bytes after the header's JSON object (header offset %zu)",
                           (size_t)((const unsigned char *)p - h));
        }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        nm_fail(err, "header is not a JSON object");
        goto done;
    }
    size_t count = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        count++;
    out->tensors = calloc(count ? count : 1, sizeof *out->tensors);
    if (!out->tensors) {
        nm_fail(err, "out of memory for %zu tensors", count);
        goto done;
    }
    bool seen_meta = false;
    uint64_t data_len = size - 8 - n;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (seen_meta) {
                nm_fail(err, "duplicate key \"__metadata__\"");
                goto done;
            }
            seen_meta = true;
            if (!cJSON_IsObject(e)) {
                nm_fail(err, "__metadata__ is not a JSON object");
                goto done;
            }
            size_t nm = 0;
            for (const cJSON *m = e->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    nm_fail(err, "__metadata__ value of \"%.64s\" is not a string", m->string);
                    goto done;
                }
                nm++;
            }
            out->meta = calloc(nm ? nm : 1, sizeof *out->meta);
            if (!out->meta) {
                nm_fail(err, "out of memory");
                goto done;
            }
            for (const cJSON *m = e->child; m; m = m->next) {
                st_meta *sm = &out->meta[out->n_meta++];
                sm->key = strdup(m->string);
                sm->value = strdup(m->valuestring);
                if (!sm->key || !sm->value) {
                    nm_fail(err, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        st_tensor *t = &out->tensors[out->n];
        uint64_t tend = 0;
        if (parse_entry(e, t, &tend, err) != 0)
            goto done;
        if (tend > data_len) {
            nm_fail(err, "tensor '%s': data_offsets end %llu is beyond the %llu-byte data buffer", e->string,
                    (unsigned long long)tend, (unsigned long long)data_len);
            goto done;
        }
        t->name = strdup(e->string);
        if (!t->name) {
            nm_fail(err, "out of memory");
            goto done;
        }
        t->file_index = file_index;
        out->n++;
    }
    /* duplicate names: cJSON keeps both */
    {
        const char **names = malloc((out->n ? out->n : 1) * sizeof *names);
        if (!names) {
            nm_fail(err, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < out->n; i++)
            names[i] = out->tensors[i].name;
        qsort(names, out->n, sizeof *names, cmp_name_str);
        for (size_t i = 1; i < out->n; i++)
            if (!strcmp(names[i - 1], names[i])) {
                nm_fail(err, "duplicate tensor name '%s' in the header", names[i]);
                free(names);
                goto done;
            }
        free(names);
    }
    qsort(out->tensors, out->n, sizeof *out->tensors, cmp_offset);
    uint64_t expect = 0;
    for (size_t i = 0; i < out->n; i++) {
        st_tensor *t = &out->tensors[i];
        if (t->offset != expect) {
            if (t->offset < expect)
                nm_fail(err, "tensor '%s': data_offsets begin %llu overlaps the previous tensor '%s' (which ends at %llu)",
                        t->name, (unsigned long long)t->offset, out->tensors[i - 1].name, (unsigned long long)expect);
            else
                nm_fail(err, "tensor '%s': data_offsets begin %llu leaves a gap (expected %llu)", t->name,
                        (unsigned long long)t->offset, (unsigned long long)expect);
            goto done;
        }
        expect = t->offset + t->size;
    }
    if (expect != data_len) {
        nm_fail(err, "%llu trailing bytes after the last tensor (data buffer is %llu bytes, tensors cover %llu)",
                (unsigned long long)(data_len - expect), (unsigned long long)data_len, (unsigned long long)expect);
        goto done;
    }
    for (size_t i = 0; i < out->n; i++) {
        st_tensor *t = &out->tensors[i];
        t->offset += 8 + n;
        t->data = buf + t->offset;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc != 0)
        free_parsed(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Model assembly. */

static int cmp_by_name_idx(const void *a, const void *b, void *ctx) {
    const st_tensor *t = ctx;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

static int build_model(st_model *m, parsed_file *parts, size_t n_parts, nm_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n_parts; i++)
        total += parts[i].n;
    m->tensors = calloc(total ? total : 1, sizeof *m->tensors);
    m->by_name = calloc(total ? total : 1, sizeof *m->by_name);
    if (!m->tensors || !m->by_name)
        return nm_fail(err, "out of memory for %zu tensors", total);
    for (size_t i = 0; i < n_parts; i++) {
        memcpy(m->tensors + m->n_tensors, parts[i].tensors, parts[i].n * sizeof *m->tensors);
        m->n_tensors += parts[i].n;
        free(parts[i].tensors); /* names now owned by m */
        parts[i].tensors = NULL;
        parts[i].n = 0;
    }
    if (n_parts) {
        m->meta = parts[0].meta;
        m->n_meta = parts[0].n_meta;
        parts[0].meta = NULL;
        parts[0].n_meta = 0;
    }
    for (size_t i = 1; i < n_parts; i++)
        free_parsed(&parts[i]); /* other shards' __metadata__ */
    for (size_t i = 0; i < m->n_tensors; i++)
        m->by_name[i] = i;
    qsort_r(m->by_name, m->n_tensors, sizeof *m->by_name, cmp_by_name_idx, m->tensors);
    for (size_t i = 1; i < m->n_tensors; i++) {
        const st_tensor *a = &m->tensors[m->by_name[i - 1]], *b = &m->tensors[m->by_name[i]];
        if (!strcmp(a->name, b->name))
            return nm_fail(err, "tensor '%s' appears in two shards (%s and %s)", a->name,
                           m->files[a->file_index].path, m->files[b->file_index].path);
    }
    return 0;
}

void st_close(st_model *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n_tensors; i++)
        free((char *)m->tensors[i].name);
    free(m->tensors);
    free(m->by_name);
    for (size_t i = 0; i < m->n_meta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].value);
    }
    free(m->meta);
    for (size_t i = 0; i < m->n_files; i++) {
        if (m->files[i].map)
            munmap(m->files[i].map, m->files[i].map_size);
        free(m->files[i].path);
    }
    free(m->files);
    free(m);
}

st_model *st_open_memory(const void *data, size_t size, nm_error *err) {
    st_model *m = calloc(1, sizeof *m);
    parsed_file p = {0};
    if (!m || !(m->files = calloc(1, sizeof *m->files)) || !(m->files[0].path = strdup("<memory>"))) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    m->n_files = 1;
    m->files[0].base = data;
    m->files[0].size = size;
    if (parse_header(data, size, 0, &p, err) != 0)
        goto fail;
    if (build_model(m, &p, 1, err) != 0)
        goto fail;
    return m;
fail:
    free_parsed(&p);
    st_close(m);
    return NULL;
}

/* Maps `path` into f. */
static int map_file(const char *path, st_file *f, nm_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nm_fail(err, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return nm_fail(err, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return nm_fail(err, "not a regular file");
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return nm_fail(err, "file too large for this machine");
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        return nm_fail(err, "file is %zu bytes, shorter than the 8-byte header length", f->size);
    }
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return nm_fail(err, "cannot map: %s", strerror(e));
    f->map = p;
    f->map_size = f->size;
    f->base = p;
    return 0;
}

static st_model *open_single(const char *path, nm_error *err) {
    st_model *m = calloc(1, sizeof *m);
    parsed_file p = {0};
    if (!m || !(m->files = calloc(1, sizeof *m->files)) || !(m->files[0].path = strdup(path))) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    m->n_files = 1;
    if (map_file(path, &m->files[0], err) != 0)
        goto fail;
    if (parse_header(m->files[0].base, m->files[0].size, 0, &p, err) != 0)
        goto fail;
    if (build_model(m, &p, 1, err) != 0)
        goto fail;
    return m;
fail:
    free_parsed(&p);
    st_close(m);
    return NULL;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s)
        return NULL;
    memcpy(s, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/')
        s[k++] = '/';
    memcpy(s + k, name, b + 1);
    return s;
}

static char *read_small_file(const char *path, size_t max, size_t *len, nm_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nm_fail(err, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= max) {
                nm_fail(err, "larger than %zu bytes, not an index", max);
                free(buf);
                buf = NULL;
                break;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                nm_fail(err, "out of memory");
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0) {
            if (ferror(fp)) {
                nm_fail(err, "read error");
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (!buf && n == 0 && err && !err->msg[0])
        nm_fail(err, "out of memory");
    fclose(fp);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static bool safe_shard_name(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static st_model *open_index(const char *index_path, nm_error *err) {
    st_model *m = NULL;
    parsed_file *parts = NULL;
    char **shards = NULL;
    size_t n_shards = 0;
    cJSON *root = NULL;
    char *dir = NULL;
    size_t len = 0;
    char *text = read_small_file(index_path, ST_MAX_INDEX, &len, err);
    if (!text) {
        nm_error_prefix(err, "%s", index_path);
        return NULL;
    }
    const char *slash = strrchr(index_path, '/');
    dir = slash ? strndup(index_path, (size_t)(slash - index_path + 1)) : strdup("");
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!dir) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    if (!root || !cJSON_IsObject(root)) {
        nm_fail(err, "%s: not a JSON object", index_path);
        goto fail;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        nm_fail(err, "%s: no \"weight_map\" object", index_path);
        goto fail;
    }
    size_t n_keys = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !safe_shard_name(e->valuestring)) {
            nm_fail(err, "%s: weight_map entry '%.200s' is not a plain file name in the index's folder", index_path,
                    e->string);
            goto fail;
        }
        n_keys++;
    }
    /* distinct shard names, sorted */
    shards = calloc(n_keys ? n_keys : 1, sizeof *shards);
    if (!shards) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    for (const cJSON *e = wm->child; e; e = e->next)
        shards[n_shards++] = e->valuestring;
    qsort(shards, n_shards, sizeof *shards, cmp_name_str);
    size_t u = 0;
    for (size_t i = 0; i < n_shards; i++)
        if (u == 0 || strcmp(shards[u - 1], shards[i]))
            shards[u++] = shards[i];
    n_shards = u;
    if (n_shards == 0) {
        nm_fail(err, "%s: weight_map is empty", index_path);
        goto fail;
    }
    m = calloc(1, sizeof *m);
    parts = calloc(n_shards, sizeof *parts);
    if (!m || !parts || !(m->files = calloc(n_shards, sizeof *m->files))) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    for (size_t s = 0; s < n_shards; s++) {
        st_file *f = &m->files[s];
        if (!(f->path = path_join(dir, shards[s]))) {
            nm_fail(err, "out of memory");
            goto fail;
        }
        m->n_files++;
        if (map_file(f->path, f, err) != 0 || parse_header(f->base, f->size, (uint32_t)s, &parts[s], err) != 0) {
            nm_error_prefix(err, "%s", f->path);
            goto fail;
        }
        /* every tensor of the shard must be mapped to it by the index */
        for (size_t i = 0; i < parts[s].n; i++) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(wm, parts[s].tensors[i].name);
            if (!e) {
                nm_fail(err, "%s: tensor '%s' is not listed in %s", f->path, parts[s].tensors[i].name, index_path);
                goto fail;
            }
            if (strcmp(e->valuestring, shards[s])) {
                nm_fail(err, "%s: tensor '%s' is mapped to %s by the index", f->path, parts[s].tensors[i].name,
                        e->valuestring);
                goto fail;
            }
        }
    }
    if (build_model(m, parts, n_shards, err) != 0)
        goto fail;
    /* every index key must be found (duplicate keys in weight_map also land here) */
    if (m->n_tensors != n_keys) {
        for (const cJSON *e = wm->child; e; e = e->next)
            if (!st_find(m, e->string)) {
                nm_fail(err, "%s: tensor '%s' is listed in the index but missing from %s", index_path, e->string,
                        e->valuestring);
                goto fail;
            }
        nm_fail(err, "%s: weight_map lists %zu entries for %zu tensors (duplicate keys?)", index_path, n_keys,
                m->n_tensors);
        goto fail;
    }
    free(parts);
    free(shards);
    free(dir);
    cJSON_Delete(root);
    return m;
fail:
    if (parts)
        for (size_t s = 0; s < n_shards; s++)
            free_parsed(&parts[s]);
    free(parts);
    free(shards);
    free(dir);
    cJSON_Delete(root);
    st_close(m);
    return NULL;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static bool is_regular(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

st_model *st_open(const char *path, nm_error *err) {
    struct stat st;
    if (stat(path, &st) != 0)
        return nm_fail(err, "cannot open: %s", strerror(errno)), NULL;
    if (!S_ISDIR(st.st_mode))
        return ends_with(path, ".json") ? open_index(path, err) : open_single(path, err);
    static const char *const candidates[] = {"model.safetensors.index.json", "model.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        char *p = path_join(path, candidates[i]);
        if (!p)
            return nm_fail(err, "out of memory"), NULL;
        if (is_regular(p)) {
            st_model *m = i == 0 ? open_index(p, err) : open_single(p, err);
            if (!m && i == 1)
                nm_error_prefix(err, "%s", candidates[i]);
            free(p);
            return m;
        }
        free(p);
    }
    /* otherwise: a folder with exactly one .safetensors file, or exactly one *.safetensors.index.json */
    DIR *d = opendir(path);
    if (!d)
        return nm_fail(err, "cannot open folder: %s", strerror(errno)), NULL;
    char *one_st = NULL, *one_idx = NULL;
    int n_st = 0, n_idx = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (ends_with(de->d_name, ".safetensors") && n_st++ == 0)
            one_st = strdup(de->d_name);
        else if (ends_with(de->d_name, ".safetensors.index.json") && n_idx++ == 0)
            one_idx = strdup(de->d_name);
    }
    closedir(d);
    st_model *m = NULL;
    const char *pick = n_idx == 1 ? one_idx : (n_idx == 0 && n_st == 1) ? one_st : NULL;
    if (!pick) {
        if (n_idx + n_st == 0)
            nm_fail(err, "no .safetensors file in the folder");
        else
            nm_fail(err, "%d .safetensors files and no model.safetensors.index.json saying how they fit together",
                    n_st);
    } else {
        char *p = path_join(path, pick);
        if (!p)
            nm_fail(err, "out of memory");
        else {
            m = pick == one_idx ? open_index(p, err) : open_single(p, err);
            if (!m && pick == one_st)
                nm_error_prefix(err, "%s", pick);
        }
        free(p);
    }
    free(one_st);
    free(one_idx);
    return m;
}

/* ---------------------------------------------------------------------------------------------
 * Accessors. */

size_t st_tensor_count(const st_model *m) {
    return m->n_tensors;
}

const st_tensor *st_tensor_at(const st_model *m, size_t i) {
    return i < m->n_tensors ? &m->tensors[i] : NULL;
}

const st_tensor *st_find(const st_model *m, const char *name) {
    size_t lo = 0, hi = m->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->tensors[m->by_name[mid]].name, name);
        if (c == 0)
            return &m->tensors[m->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t st_file_count(const st_model *m) {
    return m->n_files;
}

const char *st_file_path(const st_model *m, size_t i) {
    return i < m->n_files ? m->files[i].path : NULL;
}

size_t st_metadata_count(const st_model *m) {
    return m->n_meta;
}

void st_metadata_at(const st_model *m, size_t i, const char **key, const char **value) {
    if (i >= m->n_meta) {
        *key = *value = NULL;
        return;
    }
    *key = m->meta[i].key;
    *value = m->meta[i].value;
}
