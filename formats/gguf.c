/* GGUF reader and streaming writer (FORMATS.md §1). See gguf.h for the contract.
 *
 * Reader: the whole header is parsed and checked (§1.6) into owned arrays before the reader is
 * returned, so every accessor afterwards works on validated data. Values that live in the file
 * (strings, numeric arrays, tensor payloads) are pointers into the mapping.
 *
 * Writer: metadata and tensor infos are kept in memory (serialised values, so a copied KV is
 * byte-identical to its source); begin_data writes the header of the first shard and tensor
 * bytes then stream through nm_outfile, padded after every tensor as llama.cpp pads them. */
#include "formats/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/outfile.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF is read in place: little-endian hosts only");

#define GGUF_MAGIC "GGUF"
#define MAX_STRING_LEN (1ull << 30) /* §1.6.4 */
#define MAX_ARRAY_COUNT (1ull << 30) /* §1.6.5 */
/* Smallest possible encodings, used to bound counts by the bytes left before allocating. */
#define MIN_KV_BYTES 13u     /* key length + empty key is refused, but 8 + 4 + 1 is a safe floor */
#define MIN_TENSOR_BYTES 24u /* name length + n_dims + type + offset */

static const struct {
    const char *name;
    size_t size;
} value_types[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = {"UINT8", 1},     [GGUF_TYPE_INT8] = {"INT8", 1},
    [GGUF_TYPE_UINT16] = {"UINT16", 2},   [GGUF_TYPE_INT16] = {"INT16", 2},
    [GGUF_TYPE_UINT32] = {"UINT32", 4},   [GGUF_TYPE_INT32] = {"INT32", 4},
    [GGUF_TYPE_FLOAT32] = {"FLOAT32", 4}, [GGUF_TYPE_BOOL] = {"BOOL", 1},
    [GGUF_TYPE_STRING] = {"STRING", 0},   [GGUF_TYPE_ARRAY] = {"ARRAY", 0},
    [GGUF_TYPE_UINT64] = {"UINT64", 8},   [GGUF_TYPE_INT64] = {"INT64", 8},
    [GGUF_TYPE_FLOAT64] = {"FLOAT64", 8},
};

const char *gguf_type_name(uint32_t type) {
    return type < GGUF_TYPE_COUNT ? value_types[type].name : "?";
}

size_t gguf_type_size(uint32_t type) {
    return type < GGUF_TYPE_COUNT ? value_types[type].size : 0;
}

static uint64_t align_up(uint64_t x, uint64_t a) {
    return (x + a - 1) & ~(a - 1); /* callers make sure this cannot overflow */
}

/* A name as it may appear in a one-line message: printable ASCII kept, other bytes as \xNN,
 * long names cut. */
#define SHOWN_MAX 200
static const char *shown(const char *name, char buf[SHOWN_MAX]) {
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)name; *c && o + 8 < SHOWN_MAX; c++) {
        if (*c >= 0x20 && *c < 0x7f)
            buf[o++] = (char)*c;
        else
            o += (size_t)snprintf(buf + o, SHOWN_MAX - o, "\\x%02x", *c);
    }
    if (o + 8 >= SHOWN_MAX)
        memcpy(buf + o, "...", 4);
    else
        buf[o] = '\0';
    return buf;
}

/* ---------------- name index (open addressing, shared by reader and writer) ---------------- */

typedef const char *(*name_of_fn)(const void *ctx, size_t i);

typedef struct name_index {
    size_t cap;     /* power of two, or 0 */
    size_t *slots;  /* entry index + 1; 0 = empty */
} name_index;

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_init(name_index *ix, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->cap = ix->slots ? cap : 0;
    return ix->slots ? 0 : -1;
}

static void index_free(name_index *ix) {
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = 0;
}

/* Returns the entry index of name, or -1. */
static int64_t index_find(const name_index *ix, const char *name, name_of_fn name_of, const void *ctx) {
    if (ix->cap == 0)
        return -1;
    for (size_t s = hash_name(name) & (ix->cap - 1);; s = (s + 1) & (ix->cap - 1)) {
        if (ix->slots[s] == 0)
            return -1;
        if (strcmp(name_of(ctx, ix->slots[s] - 1), name) == 0)
            return (int64_t)(ix->slots[s] - 1);
    }
}

/* Inserts entry i (the table must have room: init with the final count). Returns -1 if the
 * name is already present. */
static int index_insert(name_index *ix, size_t i, name_of_fn name_of, const void *ctx) {
    const char *name = name_of(ctx, i);
    for (size_t s = hash_name(name) & (ix->cap - 1);; s = (s + 1) & (ix->cap - 1)) {
        if (ix->slots[s] == 0) {
            ix->slots[s] = i + 1;
            return 0;
        }
        if (strcmp(name_of(ctx, ix->slots[s] - 1), name) == 0)
            return -1;
    }
}

/* ---------------- reader ---------------- */

typedef struct kv_entry {
    char *key;
    gguf_value value;
    const uint8_t *raw; /* the value as stored, after the type field (for verbatim copies) */
    size_t raw_len;
} kv_entry;

typedef struct gguf_file {
    const uint8_t *base;
    size_t size;
    bool mapped;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
} gguf_file;

struct gguf_reader {
    gguf_file *files;
    uint32_t n_files;
    kv_entry *kvs;
    size_t n_kvs;
    gguf_tensor_info *tensors;
    size_t n_tensors;
    name_index key_index, tensor_index;
};

/* One file's parse result before it joins the reader. */
typedef struct parsed_file {
    gguf_file file;
    kv_entry *kvs;
    size_t n_kvs;
    gguf_tensor_info *tensors;
    size_t n_tensors;
} parsed_file;

typedef struct cursor {
    const uint8_t *base;
    size_t size, pos;
    nm_error *err;
} cursor;

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return nm_fail(c->err, "file is truncated: %s needs %llu bytes at offset %zu but the file ends at %zu",
                       what, (unsigned long long)n, c->pos, c->size);
    return 0;
}

static int read_bytes(cursor *c, void *out, size_t n, const char *what) {
    if (need(c, n, what) != 0)
        return -1;
    memcpy(out, c->base + c->pos, n);
    c->pos += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *v, const char *what) {
    return read_bytes(c, v, 4, what);
}
static int read_u64(cursor *c, uint64_t *v, const char *what) {
    return read_bytes(c, v, 8, what);
}

/* A GGUF string (§1.2): length checked against 1 GiB and the bytes left. */
static int read_string(cursor *c, gguf_string *s, const char *what) {
    size_t at = c->pos;
    uint64_t len;
    if (read_u64(c, &len, what) != 0)
        return -1;
    if (len > MAX_STRING_LEN)
        return nm_fail(c->err, "%s has length %llu, more than 1 GiB (offset %zu)", what, (unsigned long long)len, at);
    if (need(c, len, what) != 0)
        return -1;
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return 0;
}

char *gguf_string_dup(const gguf_string *s) {
    char *p = malloc((size_t)s->len + 1);
    if (p) {
        memcpy(p, s->ptr, (size_t)s->len);
        p[s->len] = '\0';
    }
    return p;
}

static void free_kvs(kv_entry *kvs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kvs[i].key);
        if (kvs[i].value.type == GGUF_TYPE_ARRAY)
            free((void *)kvs[i].value.arr.strings);
    }
    free(kvs);
}

static int read_value(cursor *c, uint32_t type, gguf_value *v, const char *key, size_t key_at) {
    char what[96];
    v->type = type;
    switch (type) {
    case GGUF_TYPE_STRING:
        snprintf(what, sizeof what, "the string value of key %.40s", key);
        return read_string(c, &v->str, what);
    case GGUF_TYPE_ARRAY: {
        size_t at = c->pos;
        uint32_t elem;
        uint64_t count;
        snprintf(what, sizeof what, "the array header of key %.40s", key);
        if (read_u32(c, &elem, what) != 0 || read_u64(c, &count, what) != 0)
            return -1;
        if (elem == GGUF_TYPE_ARRAY)
            return nm_fail(c->err, "key %s is an array of arrays, which llama.cpp refuses (offset %zu)", key, at);
        if (elem >= GGUF_TYPE_COUNT)
            return nm_fail(c->err, "key %s is an array of unknown value type %u (offset %zu)", key, elem, at);
        if (count > MAX_ARRAY_COUNT)
            return nm_fail(c->err, "key %s is an array of %llu elements, more than 2^30 (offset %zu)", key,
                           (unsigned long long)count, at);
        size_t esize = elem == GGUF_TYPE_STRING ? 8 : value_types[elem].size;
        if (count * esize > c->size - c->pos) /* count <= 2^30, esize <= 8: no overflow */
            return nm_fail(c->err, "file is truncated: key %s holds %llu elements of %s that cannot fit in the "
                           "%zu bytes left (offset %zu)", key, (unsigned long long)count, value_types[elem].name,
                           c->size - c->pos, at);
        v->arr.type = elem;
        v->arr.count = count;
        v->arr.data = c->base + c->pos;
        v->arr.strings = NULL;
        if (elem != GGUF_TYPE_STRING) {
            c->pos += (size_t)(count * esize);
            return 0;
        }
        gguf_string *strings = malloc(count ? (size_t)count * sizeof *strings : 1);
        if (!strings)
            return nm_fail(c->err, "out of memory reading key %s", key);
        v->arr.strings = strings;
        for (uint64_t i = 0; i < count; i++) {
            snprintf(what, sizeof what, "element %llu of key %.40s", (unsigned long long)i, key);
            if (read_string(c, &strings[i], what) != 0)
                return -1;
        }
        return 0;
    }
    default:
        if (type >= GGUF_TYPE_COUNT)
            return nm_fail(c->err, "key %s has unknown value type %u (offset %zu)", key, type, key_at);
        snprintf(what, sizeof what, "the %s value of key %.40s", value_types[type].name, key);
        if (need(c, value_types[type].size, what) != 0)
            return -1;
        switch (type) {
        case GGUF_TYPE_BOOL:
            v->b = c->base[c->pos] != 0;
            break;
        default:
            memcpy(&v->u64, c->base + c->pos, value_types[type].size);
        }
        c->pos += value_types[type].size;
        return 0;
    }
}

static const char *kv_name_of(const void *ctx, size_t i) {
    return ((const kv_entry *)ctx)[i].key;
}
static const char *tensor_name_of(const void *ctx, size_t i) {
    return ((const gguf_tensor_info *)ctx)[i].name;
}

static int parse_kvs(cursor *c, parsed_file *pf, uint64_t n_kv) {
    name_index ix = {0};
    pf->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *pf->kvs);
    if (!pf->kvs || index_init(&ix, (size_t)n_kv) != 0) {
        index_free(&ix);
        return nm_fail(c->err, "out of memory for %llu metadata entries", (unsigned long long)n_kv);
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        kv_entry *kv = &pf->kvs[i];
        size_t at = c->pos;
        char what[64];
        snprintf(what, sizeof what, "the key of metadata entry %llu", (unsigned long long)i);
        gguf_string key;
        uint32_t type;
        if (read_string(c, &key, what) != 0)
            goto fail;
        if (key.len == 0) {
            nm_fail(c->err, "metadata entry %llu has an empty key (offset %zu)", (unsigned long long)i, at);
            goto fail;
        }
        if (memchr(key.ptr, '\0', (size_t)key.len)) {
            nm_fail(c->err, "metadata entry %llu has a key containing a NUL byte (offset %zu)", (unsigned long long)i, at);
            goto fail;
        }
        if (!(kv->key = gguf_string_dup(&key))) {
            nm_fail(c->err, "out of memory reading metadata key at offset %zu", at);
            goto fail;
        }
        pf->n_kvs = (size_t)i + 1;
        char sk[SHOWN_MAX];
        shown(kv->key, sk);
        if (index_insert(&ix, (size_t)i, kv_name_of, pf->kvs) != 0) {
            nm_fail(c->err, "duplicate metadata key %s (entry %llu, offset %zu)", sk, (unsigned long long)i, at);
            goto fail;
        }
        if (read_u32(c, &type, "a metadata value type") != 0)
            goto fail;
        if (type >= GGUF_TYPE_COUNT) {
            nm_fail(c->err, "key %s has unknown value type %u (offset %zu)", sk, type, c->pos - 4);
            goto fail;
        }
        size_t value_at = c->pos;
        if (read_value(c, type, &kv->value, sk, at) != 0)
            goto fail;
        kv->raw = c->base + value_at;
        kv->raw_len = c->pos - value_at;
    }
    index_free(&ix);
    return 0;
fail:
    index_free(&ix);
    return -1;
}

static int parse_tensor_infos(cursor *c, parsed_file *pf, uint64_t n_tensors, uint32_t file_index) {
    pf->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *pf->tensors);
    if (!pf->tensors)
        return nm_fail(c->err, "out of memory for %llu tensor infos", (unsigned long long)n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor_info *t = &pf->tensors[i];
        size_t at = c->pos;
        char what[64];
        snprintf(what, sizeof what, "the name of tensor %llu", (unsigned long long)i);
        gguf_string name;
        if (read_string(c, &name, what) != 0)
            return -1;
        if (name.len >= GGUF_MAX_NAME)
            return nm_fail(c->err, "tensor %llu has a name of %llu bytes, the limit is %d (offset %zu)",
                           (unsigned long long)i, (unsigned long long)name.len, GGUF_MAX_NAME - 1, at);
        if (memchr(name.ptr, '\0', (size_t)name.len))
            return nm_fail(c->err, "tensor %llu has a name containing a NUL byte (offset %zu)", (unsigned long long)i, at);
        memcpy(t->name, name.ptr, (size_t)name.len);
        t->name[name.len] = '\0';
        pf->n_tensors = (size_t)i + 1;
        char tn[SHOWN_MAX];
        shown(t->name, tn);
        if (read_u32(c, &t->n_dims, "the dimension count of a tensor") != 0)
            return -1;
        if (t->n_dims > 4)
            return nm_fail(c->err, "tensor %s has %u dimensions, at most 4 are allowed (offset %zu)", tn,
                           t->n_dims, c->pos - 4);
        for (int d = 0; d < 4; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (read_bytes(c, &t->ne[d], 8, "a tensor dimension") != 0)
                return -1;
            if (t->ne[d] < 0)
                return nm_fail(c->err, "tensor %s has a negative dimension ne[%u] = %lld (offset %zu)", tn, d,
                               (long long)t->ne[d], c->pos - 8);
            if (t->ne[d] == 0)
                return nm_fail(c->err, "tensor %s has a zero-sized dimension ne[%u] (offset %zu)", tn, d, c->pos - 8);
        }
        int64_t elements = 1;
        for (int d = 0; d < 4; d++)
            if (__builtin_mul_overflow(elements, t->ne[d], &elements))
                return nm_fail(c->err, "tensor %s has more elements than fit in 64 bits (offset %zu)", tn, at);
        if (read_u32(c, &t->type, "the type of a tensor") != 0)
            return -1;
        const ggml_type_info *ti = ggml_type_get(t->type);
        if (!ti)
            return nm_fail(c->err, "tensor %s has unknown or removed type id %u (offset %zu)", tn, t->type, c->pos - 4);
        if (t->ne[0] % ti->block_size != 0)
            return nm_fail(c->err, "tensor %s: row length %lld is not a multiple of %s's block size %u (offset %zu)",
                           tn, (long long)t->ne[0], ti->name, ti->block_size, at);
        if (ggml_tensor_size(t->type, t->ne, &t->size) != 0)
            return nm_fail(c->err, "tensor %s: byte size overflows (offset %zu)", tn, at);
        if (read_u64(c, &t->offset, "the data offset of a tensor") != 0)
            return -1;
        t->file_index = file_index;
    }
    return 0;
}

static int find_local_key(const parsed_file *pf, const char *key) {
    for (size_t i = 0; i < pf->n_kvs; i++)
        if (strcmp(pf->kvs[i].key, key) == 0)
            return (int)i;
    return -1;
}

static void free_parsed(parsed_file *pf) {
    free_kvs(pf->kvs, pf->n_kvs);
    free(pf->tensors);
    pf->kvs = NULL;
    pf->tensors = NULL;
    pf->n_kvs = pf->n_tensors = 0;
}

/* Parses and validates one file image (§1.6). On failure everything allocated is freed. */
static int parse_file(const uint8_t *base, size_t size, uint32_t file_index, parsed_file *pf, nm_error *err) {
    memset(pf, 0, sizeof *pf);
    pf->file.base = base;
    pf->file.size = size;
    cursor c = {base, size, 0, err};
    if (size < 4 || memcmp(base, GGUF_MAGIC, 4) != 0)
        return nm_fail(err, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
    c.pos = 4;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (read_u32(&c, &version, "the version") != 0)
        return -1;
    if (version == 0)
        return nm_fail(err, "invalid GGUF version 0 (offset 4)");
    if ((version & 0xFFFF) == 0)
        return nm_fail(err, "GGUF file of the other byte order (version field 0x%08x; only little-endian is "
                       "supported) (offset 4)", version);
    if (version == 1)
        return nm_fail(err, "GGUF version 1 is not supported, only 2 and 3 (offset 4)");
    if (version > 3)
        return nm_fail(err, "GGUF version %u is not supported, only 2 and 3 (offset 4)", version);
    pf->file.version = version;
    if (read_u64(&c, &n_tensors, "the tensor count") != 0 || read_u64(&c, &n_kv, "the metadata count") != 0)
        return -1;
    if (n_tensors > INT64_MAX)
        return nm_fail(err, "tensor count %llu is negative as int64 (offset 8)", (unsigned long long)n_tensors);
    if (n_kv > INT64_MAX)
        return nm_fail(err, "metadata count %llu is negative as int64 (offset 16)", (unsigned long long)n_kv);
    size_t left = size - c.pos;
    if (n_tensors > left / MIN_TENSOR_BYTES)
        return nm_fail(err, "tensor count %llu cannot fit in a file of %zu bytes (offset 8)",
                       (unsigned long long)n_tensors, size);
    if (n_kv > left / MIN_KV_BYTES || n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_BYTES > left)
        return nm_fail(err, "metadata count %llu cannot fit in a file of %zu bytes (offset 16)",
                       (unsigned long long)n_kv, size);

    if (parse_kvs(&c, pf, n_kv) != 0)
        goto fail;

    uint32_t alignment = GGUF_DEFAULT_ALIGNMENT;
    int ai = find_local_key(pf, "general.alignment");
    if (ai >= 0) {
        const gguf_value *v = &pf->kvs[ai].value;
        if (v->type != GGUF_TYPE_UINT32) {
            nm_fail(err, "general.alignment is %s, it must be UINT32", gguf_type_name(v->type));
            goto fail;
        }
        if (v->u32 == 0 || (v->u32 & (v->u32 - 1)) != 0) {
            nm_fail(err, "general.alignment is %u, it must be a power of two", v->u32);
            goto fail;
        }
        alignment = v->u32;
    }
    pf->file.alignment = alignment;

    if (parse_tensor_infos(&c, pf, n_tensors, file_index) != 0)
        goto fail;
    name_index ix;
    if (index_init(&ix, pf->n_tensors) != 0) {
        nm_fail(err, "out of memory indexing tensors");
        goto fail;
    }
    for (size_t i = 0; i < pf->n_tensors; i++) {
        if (index_insert(&ix, i, tensor_name_of, pf->tensors) != 0) {
            char tn[SHOWN_MAX];
            nm_fail(err, "duplicate tensor name %s (tensor %zu)", shown(pf->tensors[i].name, tn), i);
            index_free(&ix);
            goto fail;
        }
    }
    index_free(&ix);

    uint64_t data_offset = align_up(c.pos, alignment); /* c.pos <= size < 2^63: no overflow */
    if (pf->n_tensors > 0 && data_offset > size) {
        nm_fail(err, "file is truncated: the data section should start at offset %llu but the file ends at %zu",
                (unsigned long long)data_offset, size);
        goto fail;
    }
    pf->file.data_offset = data_offset;
    uint64_t expected = 0;
    for (size_t i = 0; i < pf->n_tensors; i++) {
        gguf_tensor_info *t = &pf->tensors[i];
        char tn[SHOWN_MAX];
        shown(t->name, tn);
        if (t->offset != expected) {
            nm_fail(err, "tensor %s has data offset %llu, expected %llu (tensor data must follow tensor-info order "
                    "without gaps)", tn, (unsigned long long)t->offset, (unsigned long long)expected);
            goto fail;
        }
        uint64_t end;
        if (__builtin_add_overflow(data_offset, t->offset, &end) || __builtin_add_overflow(end, t->size, &end) ||
            end > size) {
            nm_fail(err, "file is truncated: tensor %s needs bytes up to offset %llu but the file ends at %zu",
                    tn, (unsigned long long)(data_offset + t->offset + t->size), size);
            goto fail;
        }
        t->data = base + data_offset + t->offset;
        /* end <= size, so adding the padding (< alignment <= 2^31) cannot overflow 64 bits */
        expected = align_up(t->offset + t->size, alignment);
    }
    return 0;
fail:
    free_parsed(pf);
    return -1;
}

static void unmap_file(gguf_file *f) {
    if (f->mapped && f->base)
        munmap((void *)f->base, f->size);
    f->base = NULL;
}

/* A fault on a mapped file page can map the whole (large) folio of the page cache around it, up to
 * 2 MiB, so pages before a range read may have been mapped again after they were dropped. */
#define REMAP_BEHIND_BYTES (2u << 20)

void gguf_drop_pages(const gguf_reader *g, const void *data, size_t size) {
    const uint8_t *p = data;
    for (uint32_t i = 0; g && p && i < g->n_files; i++) {
        const gguf_file *f = &g->files[i];
        if (!f->mapped || !f->base || p < f->base || size > f->size || (size_t)(p - f->base) > f->size - size)
            continue;
        long page = sysconf(_SC_PAGESIZE);
        if (page <= 0)
            page = 4096;
        const size_t before = (size_t)(p - f->base) < REMAP_BEHIND_BYTES ? (size_t)(p - f->base) : REMAP_BEHIND_BYTES;
        uintptr_t begin = ((uintptr_t)(p - before) + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
        uintptr_t end = ((uintptr_t)p + size) & ~(uintptr_t)(page - 1);
        if (end > begin)
            madvise((void *)begin, end - begin, MADV_DONTNEED);
        return;
    }
}

void gguf_close(gguf_reader *g) {
    if (!g)
        return;
    for (uint32_t i = 0; i < g->n_files; i++)
        unmap_file(&g->files[i]);
    free(g->files);
    free_kvs(g->kvs, g->n_kvs);
    free(g->tensors);
    index_free(&g->key_index);
    index_free(&g->tensor_index);
    free(g);
}

static int map_file(const char *path, gguf_file *f, nm_error *err) {
    memset(f, 0, sizeof *f);
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
    if (st.st_size == 0) {
        close(fd);
        return nm_fail(err, "not a GGUF file (empty)");
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return nm_fail(err, "cannot map %lld bytes: %s", (long long)st.st_size, strerror(e));
    f->base = p;
    f->size = (size_t)st.st_size;
    f->mapped = true;
    return 0;
}

/* Adds a parsed file to the reader: the first contributes metadata, all contribute tensors. */
static int add_parsed(gguf_reader *g, parsed_file *pf, const char *shard_name, nm_error *err) {
    gguf_file *files = realloc(g->files, (g->n_files + 1) * sizeof *files);
    if (!files)
        return nm_fail(err, "out of memory");
    g->files = files;
    g->files[g->n_files++] = pf->file;
    pf->file.base = NULL; /* now owned by g */
    if (g->n_files == 1) {
        g->kvs = pf->kvs;
        g->n_kvs = pf->n_kvs;
        g->tensors = pf->tensors;
        g->n_tensors = pf->n_tensors;
        pf->kvs = NULL;
        pf->tensors = NULL;
        pf->n_kvs = pf->n_tensors = 0;
        return 0;
    }
    size_t total;
    if (nm_add_size(g->n_tensors, pf->n_tensors, &total) != 0)
        return nm_fail(err, "%s: too many tensors", shard_name);
    gguf_tensor_info *t = realloc(g->tensors, (total ? total : 1) * sizeof *t);
    if (!t)
        return nm_fail(err, "out of memory");
    g->tensors = t;
    memcpy(g->tensors + g->n_tensors, pf->tensors, pf->n_tensors * sizeof *t);
    g->n_tensors = total;
    free_parsed(pf);
    return 0;
}

static int build_indexes(gguf_reader *g, nm_error *err) {
    char sn[SHOWN_MAX];
    if (index_init(&g->key_index, g->n_kvs) != 0 || index_init(&g->tensor_index, g->n_tensors) != 0)
        return nm_fail(err, "out of memory");
    for (size_t i = 0; i < g->n_kvs; i++)
        if (index_insert(&g->key_index, i, kv_name_of, g->kvs) != 0)
            return nm_fail(err, "duplicate metadata key %s", shown(g->kvs[i].key, sn));
    for (size_t i = 0; i < g->n_tensors; i++)
        if (index_insert(&g->tensor_index, i, tensor_name_of, g->tensors) != 0)
            return nm_fail(err, "tensor %s appears in two shards (second in shard %u)", shown(g->tensors[i].name, sn),
                           g->tensors[i].file_index + 1);
    return 0;
}

gguf_reader *gguf_open_memory(const void *data, size_t size, nm_error *err) {
    gguf_reader *g = calloc(1, sizeof *g);
    if (!g) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    parsed_file pf;
    if (size == 0 || !data) {
        nm_fail(err, "not a GGUF file (empty)");
        goto fail;
    }
    if (parse_file(data, size, 0, &pf, err) != 0)
        goto fail;
    if (add_parsed(g, &pf, "", err) != 0) {
        free_parsed(&pf);
        goto fail;
    }
    if (build_indexes(g, err) != 0)
        goto fail;
    return g;
fail:
    gguf_close(g);
    return NULL;
}

/* Optional split keys of one parsed file: -1 on a wrong type, 0 otherwise (absent = 0/1/-1). */
static int split_keys(const parsed_file *pf, const char *name, uint32_t *no, uint32_t *count, int64_t *total,
                      nm_error *err) {
    *no = 0;
    *count = 1;
    *total = -1;
    int i = find_local_key(pf, "split.no");
    if (i >= 0) {
        if (pf->kvs[i].value.type != GGUF_TYPE_UINT16)
            return nm_fail(err, "%ssplit.no is %s, it must be UINT16", name, gguf_type_name(pf->kvs[i].value.type));
        *no = pf->kvs[i].value.u16;
    }
    i = find_local_key(pf, "split.count");
    if (i >= 0) {
        if (pf->kvs[i].value.type != GGUF_TYPE_UINT16)
            return nm_fail(err, "%ssplit.count is %s, it must be UINT16", name, gguf_type_name(pf->kvs[i].value.type));
        *count = pf->kvs[i].value.u16;
    }
    i = find_local_key(pf, "split.tensors.count");
    if (i >= 0) {
        if (pf->kvs[i].value.type != GGUF_TYPE_INT32)
            return nm_fail(err, "%ssplit.tensors.count is %s, it must be INT32", name,
                           gguf_type_name(pf->kvs[i].value.type));
        *total = pf->kvs[i].value.i32;
    }
    return 0;
}

char *gguf_split_path(const char *prefix, uint32_t shard, uint32_t count) {
    size_t n = strlen(prefix) + 32;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s-%05u-of-%05u.gguf", prefix, shard + 1, count);
    return p;
}

gguf_reader *gguf_open(const char *path, nm_error *err) {
    gguf_reader *g = calloc(1, sizeof *g);
    char *prefix = NULL, *shard_path = NULL;
    parsed_file pf;
    memset(&pf, 0, sizeof pf);
    if (!g) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    gguf_file f;
    if (map_file(path, &f, err) != 0)
        goto fail;
    if (parse_file(f.base, f.size, 0, &pf, err) != 0) {
        unmap_file(&f);
        goto fail;
    }
    pf.file.mapped = true;
    uint32_t no, count;
    int64_t total;
    if (split_keys(&pf, "", &no, &count, &total, err) != 0 || add_parsed(g, &pf, path, err) != 0) {
        if (pf.file.base) {
            unmap_file(&pf.file);
        }
        free_parsed(&pf);
        goto fail;
    }
    if (count > 1) {
        if (no != 0) {
            nm_fail(err, "this is shard %u of %u of a split model; open the first shard (-00001-of-%05u.gguf)",
                    no + 1, count, count);
            goto fail;
        }
        char suffix[32];
        snprintf(suffix, sizeof suffix, "-00001-of-%05u.gguf", count);
        size_t plen = strlen(path), slen = strlen(suffix);
        if (plen < slen || strcmp(path + plen - slen, suffix) != 0) {
            nm_fail(err, "split model of %u shards, but the file name does not end in %s", count, suffix);
            goto fail;
        }
        if (!(prefix = strndup(path, plen - slen))) {
            nm_fail(err, "out of memory");
            goto fail;
        }
        for (uint32_t s = 1; s < count; s++) {
            if (!(shard_path = gguf_split_path(prefix, s, count))) {
                nm_fail(err, "out of memory");
                goto fail;
            }
            if (map_file(shard_path, &f, err) != 0) {
                nm_error_prefix(err, "shard %s", shard_path);
                goto fail;
            }
            if (parse_file(f.base, f.size, s, &pf, err) != 0) {
                unmap_file(&f);
                nm_error_prefix(err, "shard %s", shard_path);
                goto fail;
            }
            pf.file.mapped = true;
            uint32_t s_no, s_count;
            int64_t s_total;
            int rc = split_keys(&pf, "", &s_no, &s_count, &s_total, err);
            if (rc == 0 && (s_no != s || s_count != count))
                rc = nm_fail(err, "split.no/split.count say shard %u of %u, expected %u of %u", s_no + 1, s_count,
                             s + 1, count);
            if (rc == 0 && (rc = add_parsed(g, &pf, shard_path, err)) != 0)
                unmap_file(&pf.file);
            if (rc != 0) {
                if (pf.file.base)
                    unmap_file(&pf.file);
                free_parsed(&pf);
                nm_error_prefix(err, "shard %s", shard_path);
                goto fail;
            }
            free(shard_path);
            shard_path = NULL;
        }
        if (total < 0 || (uint64_t)total != g->n_tensors) {
            if (total < 0)
                nm_fail(err, "split model without split.tensors.count");
            else
                nm_fail(err, "split.tensors.count says %lld tensors but the %u shards hold %zu", (long long)total,
                        count, g->n_tensors);
            goto fail;
        }
    }
    if (build_indexes(g, err) != 0)
        goto fail;
    free(prefix);
    return g;
fail:
    free(prefix);
    free(shard_path);
    gguf_close(g);
    return NULL;
}

uint32_t gguf_version(const gguf_reader *g) {
    return g->files[0].version;
}
uint32_t gguf_alignment(const gguf_reader *g) {
    return g->files[0].alignment;
}
uint32_t gguf_file_count(const gguf_reader *g) {
    return g->n_files;
}
uint64_t gguf_data_offset(const gguf_reader *g, uint32_t file_index) {
    return file_index < g->n_files ? g->files[file_index].data_offset : 0;
}
uint64_t gguf_file_size(const gguf_reader *g, uint32_t file_index) {
    return file_index < g->n_files ? g->files[file_index].size : 0;
}
const void *gguf_file_data(const gguf_reader *g, uint32_t file_index) {
    return file_index < g->n_files ? g->files[file_index].base : NULL;
}

size_t gguf_kv_count(const gguf_reader *g) {
    return g->n_kvs;
}
const char *gguf_kv_key(const gguf_reader *g, size_t i) {
    return i < g->n_kvs ? g->kvs[i].key : NULL;
}
const gguf_value *gguf_kv_value(const gguf_reader *g, size_t i) {
    return i < g->n_kvs ? &g->kvs[i].value : NULL;
}
int64_t gguf_find_key(const gguf_reader *g, const char *key) {
    return index_find(&g->key_index, key, kv_name_of, g->kvs);
}
const gguf_value *gguf_get(const gguf_reader *g, const char *key) {
    int64_t i = gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kvs[i].value;
}

/* *out: the value, or NULL when the key is absent and optional. */
static int get_typed(const gguf_reader *g, const char *key, uint32_t type, bool optional, const gguf_value **out,
                     nm_error *err) {
    const gguf_value *v = gguf_get(g, key);
    *out = NULL;
    if (!v)
        return optional ? 0 : nm_fail(err, "metadata key %s is missing", key);
    if (v->type != type)
        return nm_fail(err, "metadata key %s is %s, expected %s", key, gguf_type_name(v->type), gguf_type_name(type));
    *out = v;
    return 0;
}

int gguf_get_u32(const gguf_reader *g, const char *key, uint32_t *out, nm_error *err) {
    const gguf_value *v;
    if (get_typed(g, key, GGUF_TYPE_UINT32, false, &v, err))
        return -1;
    *out = v->u32;
    return 0;
}
int gguf_get_u32_opt(const gguf_reader *g, const char *key, uint32_t *out, nm_error *err) {
    const gguf_value *v;
    if (get_typed(g, key, GGUF_TYPE_UINT32, true, &v, err))
        return -1;
    if (v)
        *out = v->u32;
    return 0;
}
int gguf_get_special_tokens(const gguf_reader *g, uint32_t n_vocab, gguf_special_tokens *st, nm_error *err) {
    static const char *const keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    int32_t *const id_of[4] = {&st->bos, &st->eos, &st->unk, &st->pad};
    uint32_t ids[4] = {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX}; /* absent: as past the vocabulary */
    for (int i = 0; i < 4; i++)
        if (gguf_get_u32_opt(g, keys[i], &ids[i], err))
            return -1;
    if (gguf_get_bool_opt(g, "tokenizer.ggml.add_bos_token", &st->add_bos, err) ||
        gguf_get_bool_opt(g, "tokenizer.ggml.add_eos_token", &st->add_eos, err))
        return -1;
    for (int i = 0; i < 4; i++)
        if (ids[i] < n_vocab) /* llama.cpp warns and keeps the default for an id past the vocabulary */
            *id_of[i] = (int32_t)ids[i];
    return 0;
}

int gguf_get_f32(const gguf_reader *g, const char *key, float *out, nm_error *err) {
    const gguf_value *v;
    if (get_typed(g, key, GGUF_TYPE_FLOAT32, false, &v, err))
        return -1;
    *out = v->f32;
    return 0;
}
int gguf_get_bool(const gguf_reader *g, const char *key, bool *out, nm_error *err) {
    const gguf_value *v;
    if (get_typed(g, key, GGUF_TYPE_BOOL, false, &v, err))
        return -1;
    *out = v->b;
    return 0;
}
int gguf_get_bool_opt(const gguf_reader *g, const char *key, bool *out, nm_error *err) {
    const gguf_value *v;
    if (get_typed(g, key, GGUF_TYPE_BOOL, true, &v, err))
        return -1;
    if (v)
        *out = v->b;
    return 0;
}
int gguf_get_string(const gguf_reader *g, const char *key, char **out, nm_error *err) {
    const gguf_value *v;
    if (get_typed(g, key, GGUF_TYPE_STRING, false, &v, err))
        return -1;
    if (!(*out = gguf_string_dup(&v->str)))
        return nm_fail(err, "out of memory reading %s", key);
    return 0;
}

double gguf_array_f64(const gguf_value *arr, uint64_t i) {
    if (!arr || arr->type != GGUF_TYPE_ARRAY || i >= arr->arr.count)
        return 0;
    const uint8_t *p = (const uint8_t *)arr->arr.data + i * gguf_type_size(arr->arr.type);
    switch (arr->arr.type) {
    case GGUF_TYPE_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case GGUF_TYPE_FLOAT64: {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    case GGUF_TYPE_UINT64: {
        uint64_t u;
        memcpy(&u, p, 8);
        return (double)u;
    }
    default:
        return (double)gguf_array_i64(arr, i);
    }
}

int64_t gguf_array_i64(const gguf_value *arr, uint64_t i) {
    if (!arr || arr->type != GGUF_TYPE_ARRAY || i >= arr->arr.count)
        return 0;
    const uint8_t *p = (const uint8_t *)arr->arr.data + i * gguf_type_size(arr->arr.type);
    switch (arr->arr.type) {
    case GGUF_TYPE_UINT8: return *p;
    case GGUF_TYPE_INT8: return (int8_t)*p;
    case GGUF_TYPE_BOOL: return *p != 0;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); return v > INT64_MAX ? INT64_MAX : (int64_t)v; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case GGUF_TYPE_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        return f != f ? 0 : f >= 0x1p63f ? INT64_MAX : f <= -0x1p63f ? INT64_MIN : (int64_t)f;
    }
    case GGUF_TYPE_FLOAT64: {
        double d;
        memcpy(&d, p, 8);
        return d != d ? 0 : d >= 0x1p63 ? INT64_MAX : d <= -0x1p63 ? INT64_MIN : (int64_t)d;
    }
    default: return 0;
    }
}

size_t gguf_tensor_count(const gguf_reader *g) {
    return g->n_tensors;
}
const gguf_tensor_info *gguf_tensor(const gguf_reader *g, size_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}
const gguf_tensor_info *gguf_find_tensor(const gguf_reader *g, const char *name) {
    int64_t i = index_find(&g->tensor_index, name, tensor_name_of, g->tensors);
    return i < 0 ? NULL : &g->tensors[i];
}

/* ---------------- writer ---------------- */

typedef struct writer_kv {
    char *key;
    uint32_t type;
    uint8_t *value; /* serialised as in the file, after the type field */
    size_t len;
} writer_kv;

typedef struct writer_tensor {
    char name[GGUF_MAX_NAME];
    uint32_t n_dims, type;
    int64_t ne[4];
    size_t size;
    uint64_t offset; /* within its shard's data section */
    uint32_t shard;
} writer_tensor;

struct gguf_writer {
    char *path;
    gguf_writer_options opts;
    writer_kv *kvs;
    size_t n_kvs, cap_kvs;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    name_index tensor_index;
    bool failed; /* a setter failed: message in err */
    nm_error err;
    /* after begin_data */
    bool begun;
    uint32_t alignment;
    uint32_t n_shards;
    nm_outfile *early_out; /* unsplit output, created by gguf_writer_create to fail early */
    nm_outfile **out; /* one per shard, created when its first byte is due */
    char **shard_paths;
    size_t cur;        /* tensor being written */
    size_t cur_done;   /* bytes of it written */
    uint32_t cur_shard;
    uint64_t data_start0; /* file offset of the first shard's tensor data */
    size_t direct_align;  /* the first shard's nm_outfile_direct_alignment */
};

static const char *wtensor_name_of(const void *ctx, size_t i) {
    return ((const writer_tensor *)ctx)[i].name;
}

gguf_writer *gguf_writer_create(const char *path, const gguf_writer_options *opts, nm_error *err) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        nm_fail(err, "%s: out of memory", path);
        return NULL;
    }
    if (opts)
        w->opts = *opts;
    bool splitting = w->opts.split_max_size || w->opts.split_max_tensors;
    if (!splitting && !(w->early_out = nm_outfile_create(path, w->opts.outfile_flags, err))) {
        gguf_writer_abort(w);
        return NULL;
    }
    return w;
}

static writer_kv *find_wkv(gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kvs; i++)
        if (strcmp(w->kvs[i].key, key) == 0)
            return &w->kvs[i];
    return NULL;
}

/* Stores a serialised value under key: replaces in place or appends. Takes ownership of value. */
static int set_raw(gguf_writer *w, const char *key, uint32_t type, uint8_t *value, size_t len) {
    if (!key || !*key || strlen(key) > MAX_STRING_LEN) {
        free(value);
        if (!w->failed)
            nm_fail(&w->err, "metadata key %s is %s", key ? key : "(null)", key && *key ? "too long" : "empty");
        w->failed = true;
        return -1;
    }
    writer_kv *kv = find_wkv(w, key);
    if (kv) {
        free(kv->value);
        kv->type = type;
        kv->value = value;
        kv->len = len;
        return 0;
    }
    if (w->n_kvs == w->cap_kvs) {
        size_t cap = w->cap_kvs ? 2 * w->cap_kvs : 32;
        writer_kv *k = realloc(w->kvs, cap * sizeof *k);
        if (!k)
            goto oom;
        w->kvs = k;
        w->cap_kvs = cap;
    }
    char *copy = strdup(key);
    if (!copy)
        goto oom;
    w->kvs[w->n_kvs++] = (writer_kv){copy, type, value, len};
    return 0;
oom:
    free(value);
    if (!w->failed)
        nm_fail(&w->err, "out of memory setting metadata key %s", key);
    w->failed = true;
    return -1;
}

static int oom_setter(gguf_writer *w, const char *key) {
    if (!w->failed)
        nm_fail(&w->err, "out of memory setting metadata key %s", key ? key : "(null)");
    w->failed = true;
    return -1;
}

static int set_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v) {
    size_t n = value_types[type].size;
    uint8_t *p = malloc(n);
    if (!p)
        return oom_setter(w, key);
    memcpy(p, v, n);
    return set_raw(w, key, type, p, n);
}

int gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v) { return set_scalar(w, key, GGUF_TYPE_UINT8, &v); }
int gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v) { return set_scalar(w, key, GGUF_TYPE_INT8, &v); }
int gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, GGUF_TYPE_UINT16, &v); }
int gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v) { return set_scalar(w, key, GGUF_TYPE_INT16, &v); }
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { return set_scalar(w, key, GGUF_TYPE_UINT32, &v); }
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, GGUF_TYPE_INT32, &v); }
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { return set_scalar(w, key, GGUF_TYPE_FLOAT32, &v); }
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, GGUF_TYPE_UINT64, &v); }
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v) { return set_scalar(w, key, GGUF_TYPE_INT64, &v); }
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v) { return set_scalar(w, key, GGUF_TYPE_FLOAT64, &v); }
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

static void put_u64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}

int gguf_writer_set_string(gguf_writer *w, const char *key, const char *s, uint64_t len) {
    if (len > MAX_STRING_LEN) {
        if (!w->failed)
            nm_fail(&w->err, "metadata key %s: string of %llu bytes is longer than 1 GiB", key, (unsigned long long)len);
        w->failed = true;
        return -1;
    }
    uint8_t *p = malloc(8 + (size_t)len);
    if (!p)
        return oom_setter(w, key);
    put_u64(p, len);
    if (len)
        memcpy(p + 8, s, (size_t)len);
    return set_raw(w, key, GGUF_TYPE_STRING, p, 8 + (size_t)len);
}

int gguf_writer_set_array(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t count) {
    if (elem_type >= GGUF_TYPE_COUNT || value_types[elem_type].size == 0 || count > MAX_ARRAY_COUNT) {
        if (!w->failed)
            nm_fail(&w->err, "metadata key %s: cannot write an array of %llu %s elements", key ? key : "(null)",
                    (unsigned long long)count, gguf_type_name(elem_type));
        w->failed = true;
        return -1;
    }
    size_t bytes = (size_t)count * value_types[elem_type].size;
    uint8_t *p = malloc(12 + bytes);
    if (!p)
        return oom_setter(w, key);
    memcpy(p, &elem_type, 4);
    put_u64(p + 4, count);
    if (bytes)
        memcpy(p + 12, data, bytes);
    return set_raw(w, key, GGUF_TYPE_ARRAY, p, 12 + bytes);
}

int gguf_writer_set_string_array(gguf_writer *w, const char *key, const gguf_string *strings, uint64_t count) {
    size_t bytes = 12;
    bool bad = count > MAX_ARRAY_COUNT;
    for (uint64_t i = 0; !bad && i < count; i++)
        bad = strings[i].len > MAX_STRING_LEN || nm_add_size(bytes, 8 + (size_t)strings[i].len, &bytes) != 0;
    if (bad) {
        if (!w->failed)
            nm_fail(&w->err, "metadata key %s: string array too large", key ? key : "(null)");
        w->failed = true;
        return -1;
    }
    uint8_t *p = malloc(bytes);
    if (!p)
        return oom_setter(w, key);
    uint32_t t = GGUF_TYPE_STRING;
    memcpy(p, &t, 4);
    put_u64(p + 4, count);
    size_t pos = 12;
    for (uint64_t i = 0; i < count; i++) {
        put_u64(p + pos, strings[i].len);
        if (strings[i].len)
            memcpy(p + pos + 8, strings[i].ptr, (size_t)strings[i].len);
        pos += 8 + (size_t)strings[i].len;
    }
    return set_raw(w, key, GGUF_TYPE_ARRAY, p, bytes);
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_reader *g, size_t i) {
    if (i >= g->n_kvs) {
        if (!w->failed)
            nm_fail(&w->err, "copy of metadata entry %zu: the source has only %zu", i, g->n_kvs);
        w->failed = true;
        return -1;
    }
    const kv_entry *kv = &g->kvs[i];
    uint8_t *p = malloc(kv->raw_len ? kv->raw_len : 1);
    if (!p)
        return oom_setter(w, kv->key);
    memcpy(p, kv->raw, kv->raw_len);
    return set_raw(w, kv->key, kv->value.type, p, kv->raw_len);
}

void gguf_writer_remove_key(gguf_writer *w, const char *key) {
    writer_kv *kv = find_wkv(w, key);
    if (!kv)
        return;
    size_t i = (size_t)(kv - w->kvs);
    free(kv->key);
    free(kv->value);
    memmove(&w->kvs[i], &w->kvs[i + 1], (w->n_kvs - i - 1) * sizeof *kv);
    w->n_kvs--;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t ne[4],
                           nm_error *err) {
    char sn_buf[SHOWN_MAX];
    const char *sn = shown(name, sn_buf);
    if (w->begun)
        return nm_fail(err, "%s: tensor %s declared after the data was started", w->path, sn);
    size_t len = strlen(name);
    if (len >= GGUF_MAX_NAME)
        return nm_fail(err, "%s: tensor name %s is %zu bytes long, the limit is %d", w->path, sn, len,
                       GGUF_MAX_NAME - 1);
    if (n_dims > 4) /* 0 is what some writers store for a single value; readers take it as 1 */
        return nm_fail(err, "%s: tensor %s: %u dimensions, at most 4 are allowed", w->path, sn, n_dims);
    writer_tensor t;
    memset(&t, 0, sizeof t);
    memcpy(t.name, name, len + 1);
    t.n_dims = n_dims;
    t.type = type;
    for (uint32_t d = 0; d < 4; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (d >= n_dims && ne[d] != 1)
            return nm_fail(err, "%s: tensor %s: ne[%u] = %lld lies beyond its %u dimensions", w->path, sn, d,
                           (long long)ne[d], n_dims);
        if (t.ne[d] <= 0)
            return nm_fail(err, "%s: tensor %s: dimension ne[%u] = %lld must be positive", w->path, sn, d,
                           (long long)t.ne[d]);
    }
    const ggml_type_info *ti = ggml_type_get(type);
    if (!ti)
        return nm_fail(err, "%s: tensor %s: unknown type id %u", w->path, sn, type);
    if (t.ne[0] % ti->block_size != 0)
        return nm_fail(err, "%s: tensor %s: row length %lld is not a multiple of %s's block size %u", w->path, sn,
                       (long long)t.ne[0], ti->name, ti->block_size);
    int64_t elements = 1;
    for (int d = 0; d < 4; d++)
        if (__builtin_mul_overflow(elements, t.ne[d], &elements))
            return nm_fail(err, "%s: tensor %s: too many elements", w->path, sn);
    if (ggml_tensor_size(type, t.ne, &t.size) != 0 || t.size > SIZE_MAX / 2)
        return nm_fail(err, "%s: tensor %s: byte size overflows", w->path, sn);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        writer_tensor *nt = realloc(w->tensors, cap * sizeof *nt);
        if (!nt)
            return nm_fail(err, "%s: out of memory", w->path);
        w->tensors = nt;
        w->cap_tensors = cap;
        name_index ix;
        if (index_init(&ix, cap) != 0)
            return nm_fail(err, "%s: out of memory", w->path);
        for (size_t i = 0; i < w->n_tensors; i++)
            index_insert(&ix, i, wtensor_name_of, w->tensors);
        index_free(&w->tensor_index);
        w->tensor_index = ix;
    }
    if (index_find(&w->tensor_index, t.name, wtensor_name_of, w->tensors) >= 0)
        return nm_fail(err, "%s: tensor %s is declared twice", w->path, sn);
    w->tensors[w->n_tensors] = t;
    index_insert(&w->tensor_index, w->n_tensors, wtensor_name_of, w->tensors);
    w->n_tensors++;
    return 0;
}

uint32_t gguf_writer_shard_count(const gguf_writer *w) {
    return w->n_shards;
}

/* Serialises and writes shard s's header and the padding up to its data section. */
static int write_header(gguf_writer *w, uint32_t s, nm_error *err) {
    nm_outfile *out = w->out[s];
    uint64_t n_tensors = 0;
    for (size_t i = 0; i < w->n_tensors; i++)
        n_tensors += w->tensors[i].shard == s;
    /* Metadata: all of it in the first shard; later shards carry only the split keys. */
    static const char *const split_keys_names[] = {"split.no", "split.count", "split.tensors.count"};
    uint64_t n_kv = 0;
    for (size_t i = 0; i < w->n_kvs; i++) {
        bool is_split = false;
        for (int k = 0; k < 3; k++)
            is_split |= strcmp(w->kvs[i].key, split_keys_names[k]) == 0;
        if (s == 0 || is_split)
            n_kv++;
    }
    uint8_t head[24];
    memcpy(head, GGUF_MAGIC, 4);
    uint32_t version = 3;
    memcpy(head + 4, &version, 4);
    put_u64(head + 8, n_tensors);
    put_u64(head + 16, n_kv);
    if (nm_outfile_write(out, head, sizeof head, err) != 0)
        return -1;
    for (size_t i = 0; i < w->n_kvs; i++) {
        const writer_kv *kv = &w->kvs[i];
        bool is_split = false;
        for (int k = 0; k < 3; k++)
            is_split |= strcmp(kv->key, split_keys_names[k]) == 0;
        if (s != 0 && !is_split)
            continue;
        uint8_t len[8];
        put_u64(len, strlen(kv->key));
        uint32_t type = kv->type;
        uint8_t tbuf[4];
        memcpy(tbuf, &type, 4);
        uint8_t *value = kv->value;
        uint8_t shard_no[2];
        if (s != 0 && strcmp(kv->key, "split.no") == 0) { /* the stored value is the first shard's */
            uint16_t no = (uint16_t)s;
            memcpy(shard_no, &no, 2);
            value = shard_no;
        }
        if (nm_outfile_write(out, len, 8, err) != 0 || nm_outfile_write(out, kv->key, strlen(kv->key), err) != 0 ||
            nm_outfile_write(out, tbuf, 4, err) != 0 || nm_outfile_write(out, value, kv->len, err) != 0)
            return -1;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        if (t->shard != s)
            continue;
        uint8_t buf[8 + GGUF_MAX_NAME + 4 + 32 + 4 + 8];
        size_t n = 0, len = strlen(t->name);
        put_u64(buf, len);
        memcpy(buf + 8, t->name, len);
        n = 8 + len;
        memcpy(buf + n, &t->n_dims, 4);
        n += 4;
        for (uint32_t d = 0; d < t->n_dims; d++, n += 8)
            memcpy(buf + n, &t->ne[d], 8);
        memcpy(buf + n, &t->type, 4);
        n += 4;
        put_u64(buf + n, t->offset);
        n += 8;
        if (nm_outfile_write(out, buf, n, err) != 0)
            return -1;
    }
    uint64_t pos = nm_outfile_tell(out);
    return nm_outfile_write_zeros(out, (size_t)(align_up(pos, w->alignment) - pos), err);
}

static int open_shard(gguf_writer *w, uint32_t s, nm_error *err) {
    if (s == 0 && w->early_out) {
        w->out[0] = w->early_out;
        w->early_out = NULL;
    } else if (!(w->out[s] = nm_outfile_create(w->shard_paths[s], w->opts.outfile_flags, err))) {
        return -1;
    }
    return write_header(w, s, err);
}

int gguf_writer_begin_data(gguf_writer *w, nm_error *err) {
    if (w->failed)
        return nm_fail(err, "%s: %s", w->path, w->err.msg);
    if (w->begun)
        return nm_fail(err, "%s: gguf_writer_begin_data called twice", w->path);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    writer_kv *a = find_wkv(w, "general.alignment");
    if (a) {
        uint32_t v = 0;
        if (a->type == GGUF_TYPE_UINT32)
            memcpy(&v, a->value, 4);
        if (a->type != GGUF_TYPE_UINT32 || v == 0 || (v & (v - 1)) != 0 || v > (1u << 30))
            return nm_fail(err, "%s: general.alignment must be a UINT32 power of two", w->path);
        w->alignment = v;
    }
    /* Shard plan, the way gguf-split cuts: a new shard starts before a tensor when the current
     * one already holds tensors and would grow past the size or count limit. */
    uint32_t shard = 0;
    uint64_t shard_tensors = 0, offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        uint64_t padded = align_up(t->size, w->alignment);
        if (shard_tensors > 0 &&
            ((w->opts.split_max_size && (offset + padded < offset || offset + padded > w->opts.split_max_size)) ||
             (w->opts.split_max_tensors && shard_tensors >= w->opts.split_max_tensors))) {
            shard++;
            shard_tensors = offset = 0;
        }
        t->shard = shard;
        t->offset = offset;
        if (__builtin_add_overflow(offset, padded, &offset))
            return nm_fail(err, "%s: tensor data larger than 2^64 bytes", w->path);
        shard_tensors++;
    }
    w->n_shards = shard + 1;
    if (w->n_shards > 1 && (w->n_shards > UINT16_MAX || w->n_tensors > INT32_MAX))
        return nm_fail(err, "%s: %u shards or %zu tensors are more than GGUF split keys can count", w->path,
                       w->n_shards, w->n_tensors);
    /* Split keys: set in place when copied from a split source, appended otherwise; a single
     * output carries none (like llama-quantize without --keep-split). */
    if (w->n_shards > 1) {
        gguf_writer_set_u16(w, "split.no", 0);
        gguf_writer_set_u16(w, "split.count", (uint16_t)w->n_shards);
        gguf_writer_set_i32(w, "split.tensors.count", (int32_t)w->n_tensors);
    } else {
        gguf_writer_remove_key(w, "split.no");
        gguf_writer_remove_key(w, "split.count");
        gguf_writer_remove_key(w, "split.tensors.count");
    }
    if (w->failed)
        return nm_fail(err, "%s: %s", w->path, w->err.msg);
    w->out = calloc(w->n_shards, sizeof *w->out);
    w->shard_paths = calloc(w->n_shards, sizeof *w->shard_paths);
    if (!w->out || !w->shard_paths)
        return nm_fail(err, "%s: out of memory", w->path);
    if (w->n_shards == 1) {
        if (!(w->shard_paths[0] = strdup(w->path)))
            return nm_fail(err, "%s: out of memory", w->path);
    } else {
        size_t len = strlen(w->path);
        char *prefix = strndup(w->path, len >= 5 && strcmp(w->path + len - 5, ".gguf") == 0 ? len - 5 : len);
        if (!prefix)
            return nm_fail(err, "%s: out of memory", w->path);
        for (uint32_t s = 0; s < w->n_shards; s++) {
            if (!(w->shard_paths[s] = gguf_split_path(prefix, s, w->n_shards))) {
                free(prefix);
                return nm_fail(err, "%s: out of memory", w->path);
            }
        }
        free(prefix);
        /* Refuse before writing anything when a shard name is taken. */
        struct stat st;
        for (uint32_t s = 0; s < w->n_shards; s++)
            if (!(w->opts.outfile_flags & NM_OUT_FORCE) && lstat(w->shard_paths[s], &st) == 0)
                return nm_fail(err, "%s: already exists (use --force to replace it)", w->shard_paths[s]);
    }
    w->begun = true;
    w->cur = w->cur_done = 0;
    w->cur_shard = 0;
    if (open_shard(w, 0, err) != 0)
        return -1;
    w->data_start0 = nm_outfile_tell(w->out[0]);
    w->direct_align = nm_outfile_direct_alignment(w->out[0]);
    return 0;
}

size_t gguf_writer_direct_alignment(const gguf_writer *w) {
    return w->begun && w->direct_align ? w->direct_align : 1;
}

size_t gguf_writer_data_phase(const gguf_writer *w, size_t tensor, uint64_t byte) {
    if (!w->begun || tensor >= w->n_tensors || w->tensors[tensor].shard != 0 || w->direct_align <= 1)
        return 0;
    return (size_t)((w->data_start0 + w->tensors[tensor].offset + byte) & (w->direct_align - 1));
}

/* Pads the finished tensor and moves on, opening the next shard when the next tensor is in it. */
static int next_tensor(gguf_writer *w, nm_error *err) {
    const writer_tensor *t = &w->tensors[w->cur];
    nm_outfile *out = w->out[t->shard];
    if (nm_outfile_write_zeros(out, (size_t)(align_up(t->size, w->alignment) - t->size), err) != 0)
        return -1;
    w->cur++;
    w->cur_done = 0;
    if (w->cur < w->n_tensors && w->tensors[w->cur].shard != w->cur_shard) {
        w->cur_shard = w->tensors[w->cur].shard;
        return open_shard(w, w->cur_shard, err);
    }
    return 0;
}

int gguf_writer_write(gguf_writer *w, const void *data, size_t size, nm_error *err) {
    if (!w->begun)
        return nm_fail(err, "%s: tensor data written before gguf_writer_begin_data", w->path);
    const uint8_t *p = data;
    while (size > 0) {
        if (w->cur >= w->n_tensors)
            return nm_fail(err, "%s: %zu bytes of tensor data more than the declared tensors hold", w->path, size);
        const writer_tensor *t = &w->tensors[w->cur];
        size_t n = t->size - w->cur_done;
        if (n > size)
            n = size;
        if (nm_outfile_write(w->out[t->shard], p, n, err) != 0)
            return -1;
        p += n;
        size -= n;
        w->cur_done += n;
        if (w->cur_done == t->size && next_tensor(w, err) != 0)
            return -1;
    }
    return 0;
}

int gguf_writer_reserve(gguf_writer *w, gguf_reserved *r, nm_error *err) {
    if (!w->begun || w->cur >= w->n_tensors || w->cur_done != 0)
        return nm_fail(err, "%s: a tensor reserved where none begins", w->path);
    const writer_tensor *t = &w->tensors[w->cur];
    nm_outfile *out = w->out[t->shard];
    *r = (gguf_reserved){.shard = t->shard, .offset = nm_outfile_tell(out), .size = t->size};
    if (nm_outfile_write_zeros(out, t->size, err) != 0)
        return -1;
    w->cur_done = t->size;
    return next_tensor(w, err);
}

int gguf_writer_fill(gguf_writer *w, const gguf_reserved *r, uint64_t at, const void *data, size_t size,
                     nm_error *err) {
    if (!w->begun || r->shard >= w->n_shards || !w->out[r->shard] || at > r->size || size > r->size - at)
        return nm_fail(err, "%s: %zu bytes at %llu outside the reserved tensor", w->path, size,
                       (unsigned long long)at);
    return nm_outfile_pwrite(w->out[r->shard], data, size, r->offset + at, err);
}

static void free_writer(gguf_writer *w, bool discard) {
    for (size_t i = 0; i < w->n_kvs; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].value);
    }
    free(w->kvs);
    free(w->tensors);
    index_free(&w->tensor_index);
    nm_outfile_abort(w->early_out);
    for (uint32_t s = 0; w->out && s < w->n_shards; s++)
        if (discard)
            nm_outfile_abort(w->out[s]);
    for (uint32_t s = 0; w->shard_paths && s < w->n_shards; s++)
        free(w->shard_paths[s]);
    free(w->out);
    free(w->shard_paths);
    free(w->path);
    free(w);
}

int gguf_writer_finish(gguf_writer *w, nm_error *err) {
    if (!w->begun && gguf_writer_begin_data(w, err) != 0) {
        gguf_writer_abort(w);
        return -1;
    }
    if (w->cur < w->n_tensors) {
        nm_fail(err, "%s: tensor %s received %zu of its %zu bytes; the output is incomplete", w->path,
                w->tensors[w->cur].name, w->cur_done, w->tensors[w->cur].size);
        gguf_writer_abort(w);
        return -1;
    }
    for (uint32_t s = 0; s < w->n_shards; s++) {
        nm_outfile *out = w->out[s];
        w->out[s] = NULL;
        if (nm_outfile_commit(out, err) != 0) {
            /* keep the set all-or-nothing: withdraw the shards already published */
            for (uint32_t k = 0; k < s; k++)
                unlink(w->shard_paths[k]);
            free_writer(w, true);
            return -1;
        }
    }
    free_writer(w, false);
    return 0;
}

void gguf_writer_abort(gguf_writer *w) {
    if (w)
        free_writer(w, true);
}
