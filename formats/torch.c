/* PyTorch checkpoints (FORMATS.md §8): zip and legacy files, HF shard indexes, Meta
 * model-parallel shards. Files are mapped read-only; the pickle goes through the restricted
 * unpickler (formats/pickle.h) and only its tensor views are kept. Every view is checked to lie
 * inside its storage, every storage inside its file. */
#include "formats/torch.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/pickle.h"
#include "formats/zip.h"

/* Memory for one file's pickle plus its tensor index (hostile files stay well inside 64 MiB). */
#define TORCH_MAX_OPEN_BYTES ((size_t)48 << 20)

typedef struct tfile {
    char *path;
    const uint8_t *map;
    size_t size;
    bool mapped;  /* map came from mmap (else caller memory) */
    bool legacy;
    bool big_endian;
} tfile;

/* Where one tensor's elements live: storage element `offset + Σ i_d·stride[d]`. */
typedef struct tview {
    const uint8_t *storage;
    uint64_t storage_bytes;
    uint64_t offset;
    uint64_t stride[TORCH_MAX_DIMS];
    bool big_endian;
} tview;

typedef struct tentry {
    torch_tensor pub; /* first member: torch_tensor pointers handed out are tentry pointers */
    tview view;
    struct tentry *parts; /* Meta shards merged along `axis`; NULL for a plain tensor */
    uint32_t n_parts, axis;
    char *name_buf, *key_buf;
} tentry;

struct torch_model {
    tfile *files;
    size_t n_files;
    tentry *tensors;
    size_t n_tensors, cap_tensors;
    size_t *sorted; /* indices by name */
};

/* ---------- small helpers ---------- */

/* Messages quote names taken from the file: keep them one printable line. */
static void one_line(nm_error *err) {
    if (!err)
        return;
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static unsigned dtype_size(nm_dtype dt) { return nm_dtype_bits(dt) / 8; }

static bool dtype_readable(nm_dtype dt) {
    unsigned bits = nm_dtype_bits(dt);
    return dt != NM_DTYPE_UNKNOWN && bits >= 8 && bits % 8 == 0;
}

static int add_u64(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_add_overflow(a, b, out) ? -1 : 0; }
static int mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_mul_overflow(a, b, out) ? -1 : 0; }

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *r = malloc(n);
    if (r)
        memcpy(r, s, n);
    return r;
}

static void free_entry(tentry *e) {
    free(e->name_buf);
    free(e->key_buf);
    if (e->parts) {
        for (uint32_t i = 0; i < e->n_parts; i++)
            free_entry(&e->parts[i]);
        free(e->parts);
    }
}

void torch_close(torch_model *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n_tensors; i++)
        free_entry(&m->tensors[i]);
    free(m->tensors);
    free(m->sorted);
    for (size_t i = 0; i < m->n_files; i++) {
        if (m->files[i].mapped && m->files[i].map)
            munmap((void *)m->files[i].map, m->files[i].size);
        free(m->files[i].path);
    }
    free(m->files);
    free(m);
}

static tentry *new_entry(torch_model *m, nm_error *err) {
    if (m->n_tensors == m->cap_tensors) {
        size_t cap = m->cap_tensors ? m->cap_tensors * 2 : 64;
        tentry *t = realloc(m->tensors, cap * sizeof *t);
        if (!t) {
            nm_fail(err, "out of memory");
            return NULL;
        }
        m->tensors = t;
        m->cap_tensors = cap;
    }
    tentry *e = &m->tensors[m->n_tensors++];
    memset(e, 0, sizeof *e);
    return e;
}

static tfile *add_file(torch_model *m, const char *path, nm_error *err) {
    tfile *f = realloc(m->files, (m->n_files + 1) * sizeof *f);
    if (!f) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    m->files = f;
    f = &m->files[m->n_files];
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    if (!f->path) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    m->n_files++;
    return f;
}

static int map_file(tfile *f, nm_error *err) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nm_fail(err, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return nm_fail(err, "%s: cannot stat: %s", f->path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return nm_fail(err, "%s: not a regular file", f->path);
    }
    if (st.st_size == 0) {
        close(fd);
        return nm_fail(err, "%s: empty file", f->path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return nm_fail(err, "%s: cannot map: %s", f->path, strerror(e));
    f->map = p;
    f->size = (size_t)st.st_size;
    f->mapped = true;
    return 0;
}

/* ---------- finding the state dict ---------- */

static bool dict_has_tensor(const pk_value *d) {
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (d->u.dict.kv[2 * i]->kind == PK_STR && d->u.dict.kv[2 * i + 1]->kind == PK_TENSOR)
            return true;
    return false;
}

static void list_keys(const pk_value *d, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; d->kind == PK_DICT && i < d->u.dict.n && o + 8 < cap; i++) {
        const pk_value *k = d->u.dict.kv[2 * i];
        int n = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", k->kind == PK_STR ? k->u.str.s : "(non-string)");
        if (n < 0 || (size_t)n >= cap - o) {
            if (cap > 4)
                memcpy(buf + cap - 4, "...", 4);
            return;
        }
        o += (size_t)n;
    }
}

#define SEARCH_DEPTH 4
#define SEARCH_NODES 100000

static const pk_value *find_state_dict(const pk_value *root, const char *state_key, nm_error *err) {
    char keys[200];
    if (state_key && *state_key) {
        const pk_value *v = root;
        const char *p = state_key;
        while (*p) {
            const char *slash = strchr(p, '/');
            size_t n = slash ? (size_t)(slash - p) : strlen(p);
            char part[256];
            if (n >= sizeof part || v->kind != PK_DICT) {
                nm_fail(err, "state key \"%s\" not found", state_key);
                return NULL;
            }
            memcpy(part, p, n);
            part[n] = '\0';
            const pk_value *next = pk_dict_get(v, part);
            if (!next) {
                list_keys(v, keys, sizeof keys);
                nm_fail(err, "state key \"%s\" not found (keys here: %s)", state_key, keys);
                return NULL;
            }
            v = next;
            p += n;
            if (*p == '/')
                p++;
        }
        if (v->kind != PK_DICT || !dict_has_tensor(v)) {
            nm_fail(err, "state key \"%s\" holds %s without tensors, not a state dict", state_key,
                    pk_kind_name(v->kind));
            return NULL;
        }
        return v;
    }
    if (root->kind == PK_TENSOR) {
        nm_fail(err, "the checkpoint holds a single tensor, not a state dict");
        return NULL;
    }
    if (root->kind != PK_DICT) {
        nm_fail(err, "the checkpoint holds %s, not a state dict", pk_kind_name(root->kind));
        return NULL;
    }
    if (dict_has_tensor(root))
        return root;
    /* Breadth-first over nested dicts: the shallowest dict of named tensors wins; among
     * several at that depth, one under a conventional key. Depth and node count are bounded
     * (values can be shared or even cyclic). */
    static const char *const preferred[] = {"state_dict", "model_state_dict", "model", "module", "ema", "net"};
    const pk_value **level = malloc(sizeof *level), **next = NULL;
    const char **level_key = malloc(sizeof *level_key), **next_key = NULL;
    size_t n_level = 1, visited = 0;
    const pk_value *found = NULL;
    if (!level || !level_key) {
        free(level);
        free(level_key);
        nm_fail(err, "out of memory");
        return NULL;
    }
    level[0] = root;
    level_key[0] = "";
    for (int depth = 0; depth < SEARCH_DEPTH && n_level && !found; depth++) {
        size_t n_next = 0, cap_next = 0;
        const pk_value *cand = NULL;
        const char *cand_key = NULL;
        int cand_rank = 1000, n_cand = 0;
        char names[200] = "";
        for (size_t i = 0; i < n_level; i++) {
            const pk_value *d = level[i];
            for (size_t j = 0; j < d->u.dict.n && visited < SEARCH_NODES; j++, visited++) {
                const pk_value *k = d->u.dict.kv[2 * j], *v = d->u.dict.kv[2 * j + 1];
                if (k->kind != PK_STR || v->kind != PK_DICT)
                    continue;
                if (dict_has_tensor(v)) {
                    int rank = 999;
                    for (size_t r = 0; r < sizeof preferred / sizeof *preferred; r++)
                        if (!strcmp(k->u.str.s, preferred[r]))
                            rank = (int)r;
                    size_t l = strlen(names);
                    if (l + 4 < sizeof names)
                        snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", k->u.str.s);
                    n_cand++;
                    if (rank < cand_rank || !cand) {
                        cand = v;
                        cand_key = k->u.str.s;
                        cand_rank = rank;
                    }
                    continue;
                }
                if (n_next == cap_next) {
                    cap_next = cap_next ? cap_next * 2 : 16;
                    const pk_value **nn = realloc(next, cap_next * sizeof *nn);
                    const char **nk = realloc(next_key, cap_next * sizeof *nk);
                    if (nn)
                        next = nn;
                    if (nk)
                        next_key = nk;
                    if (!nn || !nk) {
                        nm_fail(err, "out of memory");
                        goto out;
                    }
                }
                next[n_next] = v;
                next_key[n_next++] = k->u.str.s;
            }
        }
        if (n_cand > 1 && cand_rank == 999) {
            nm_fail(err, "several dicts of tensors (%s); choose one with --state-key", names);
            goto out;
        }
        if (cand) {
            found = cand;
            (void)cand_key;
            break;
        }
        const pk_value **tl = level;
        const char **tk = level_key;
        level = next;
        level_key = next_key;
        next = tl;
        next_key = tk;
        n_level = n_next;
    }
    if (!found) {
        list_keys(root, keys, sizeof keys);
        nm_fail(err, "no state dict (a dict of named tensors) in the checkpoint (top-level keys: %s)", keys);
    }
out:
    free(level);
    free(level_key);
    free(next);
    free(next_key);
    return found;
}

/* ---------- one checkpoint file ---------- */

typedef struct storage_ref {
    const char *key;
    const uint8_t *data;
    uint64_t bytes;
    nm_dtype dtype;
    unsigned elsize;
} storage_ref;

typedef struct file_ctx {
    tfile *f;
    nm_zip *zip;
    const char *prefix; /* zip: "<prefix>/" */
    size_t prefix_len;
    storage_ref *refs;  /* legacy: every storage of the file; zip: resolved on demand */
    size_t n_refs, cap_refs;
} file_ctx;

static int find_ref(file_ctx *c, const char *key, const pk_storage *st, storage_ref **out, nm_error *err) {
    for (size_t i = 0; i < c->n_refs; i++) {
        if (!strcmp(c->refs[i].key, key)) {
            *out = &c->refs[i];
            return 0;
        }
    }
    if (!c->zip)
        return nm_fail(err, "storage %s is not among the file's stored storages", key);
    char name[512];
    if ((size_t)snprintf(name, sizeof name, "%.*sdata/%s", (int)c->prefix_len, c->prefix, key) >= sizeof name)
        return nm_fail(err, "storage key %s too long", key);
    const nm_zip_entry *e = nm_zip_find(c->zip, name);
    if (!e)
        return nm_fail(err, "storage %s: no zip entry %s", key, name);
    const uint8_t *data;
    if (nm_zip_payload(c->zip, e, &data, err))
        return -1;
    if (c->n_refs == c->cap_refs) {
        size_t cap = c->cap_refs ? c->cap_refs * 2 : 64;
        storage_ref *r = realloc(c->refs, cap * sizeof *r);
        if (!r)
            return nm_fail(err, "out of memory");
        c->refs = r;
        c->cap_refs = cap;
    }
    storage_ref *r = &c->refs[c->n_refs++];
    r->key = key;
    r->data = data;
    r->bytes = e->size;
    r->dtype = st->dtype;
    r->elsize = st->elsize;
    *out = r;
    return 0;
}

static bool is_c_contiguous(const uint64_t *shape, const uint64_t *stride, uint32_t nd) {
    uint64_t expect = 1;
    for (uint32_t d = nd; d-- > 0;) {
        if (shape[d] != 1 && stride[d] != expect)
            return false;
        expect *= shape[d]; /* product of validated dims: fits (checked by the caller) */
    }
    return true;
}

/* Turns a rebuilt tensor of the pickle into a checked view of its storage. */
static int make_tensor(file_ctx *c, tentry *e, const char *name, const pk_tensor *t, uint32_t file_index, nm_error *err) {
    const pk_storage *st = &t->storage->u.storage;
    if (!dtype_readable(t->dtype) || st->dtype == NM_DTYPE_UNKNOWN)
        return nm_fail(err, "tensor %s: storage class torch.%s is not supported", name, st->class_name);
    if (t->n_dims > TORCH_MAX_DIMS)
        return nm_fail(err, "tensor %s: %u dimensions", name, t->n_dims);
    storage_ref *ref = NULL;
    if (find_ref(c, st->key, st, &ref, err))
        return nm_error_prefix(err, "tensor %s", name);
    if (ref->elsize != st->elsize || ref->dtype != st->dtype)
        return nm_fail(err, "tensor %s: storage %s is used with two different storage classes", name, st->key);
    /* Bytes this persistent id claims, then the slice (legacy views) it designates. */
    uint64_t claim, base_off = 0, avail;
    if (mul_u64(st->numel, st->elsize, &claim) || claim > ref->bytes)
        return nm_fail(err, "tensor %s: storage %s declares %llu elements of %u bytes but holds only %llu bytes", name,
                       st->key, (unsigned long long)st->numel, st->elsize, (unsigned long long)ref->bytes);
    avail = claim;
    if (st->is_view) {
        uint64_t end;
        if (add_u64(st->view_offset, st->view_numel, &end) || end > st->numel)
            return nm_fail(err, "tensor %s: storage view %llu+%llu lies outside storage %s (%llu elements)", name,
                           (unsigned long long)st->view_offset, (unsigned long long)st->view_numel, st->key,
                           (unsigned long long)st->numel);
        base_off = st->view_offset * st->elsize;
        avail = st->view_numel * st->elsize;
    }
    unsigned es = dtype_size(t->dtype);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        if (mul_u64(numel, t->shape[d], &numel))
            return nm_fail(err, "tensor %s: element count overflows", name);
    uint64_t bytes;
    if (mul_u64(numel, es, &bytes) || bytes > SIZE_MAX)
        return nm_fail(err, "tensor %s: size overflows", name);
    if (numel > 0) {
        uint64_t last = t->offset, span;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (mul_u64(t->shape[d] - 1, t->stride[d], &span) || add_u64(last, span, &last))
                return nm_fail(err, "tensor %s: view offsets overflow", name);
        }
        uint64_t end;
        if (add_u64(last, 1, &end) || mul_u64(end, es, &end) || end > avail)
            return nm_fail(err, "tensor %s: view (offset %llu, shape and strides reaching element %llu) lies outside "
                           "its storage %s of %llu bytes", name, (unsigned long long)t->offset,
                           (unsigned long long)last, st->key, (unsigned long long)avail);
    }
    e->name_buf = xstrdup(name);
    e->key_buf = xstrdup(st->key);
    if (!e->name_buf || !e->key_buf)
        return nm_fail(err, "out of memory");
    torch_tensor *p = &e->pub;
    p->name = e->name_buf;
    p->storage_key = e->key_buf;
    p->dtype = t->dtype;
    p->n_dims = t->n_dims;
    memcpy(p->shape, t->shape, sizeof t->shape[0] * t->n_dims);
    p->size = (size_t)bytes;
    p->contiguous = is_c_contiguous(t->shape, t->stride, t->n_dims);
    p->file_index = file_index;
    e->view.storage = ref->data + base_off;
    e->view.storage_bytes = avail;
    e->view.offset = t->offset;
    memcpy(e->view.stride, t->stride, sizeof t->stride[0] * t->n_dims);
    e->view.big_endian = c->f->big_endian && es > 1;
    if (bytes == 0)
        p->data = e->view.storage;
    else
        p->data = p->contiguous && !e->view.big_endian ? e->view.storage + t->offset * es : NULL;
    return 0;
}

static int cmp_entry_name(const void *a, const void *b, void *ctx) {
    const torch_model *m = ctx;
    return strcmp(m->tensors[*(const size_t *)a].pub.name, m->tensors[*(const size_t *)b].pub.name);
}

/* Sorts the name index; refuses duplicate names (a pickled dict never has them). */
static int build_index(torch_model *m, nm_error *err) {
    free(m->sorted);
    m->sorted = malloc((m->n_tensors ? m->n_tensors : 1) * sizeof *m->sorted);
    if (!m->sorted)
        return nm_fail(err, "out of memory");
    for (size_t i = 0; i < m->n_tensors; i++)
        m->sorted[i] = i;
    qsort_r(m->sorted, m->n_tensors, sizeof *m->sorted, cmp_entry_name, m);
    for (size_t i = 1; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[m->sorted[i]].pub.name, m->tensors[m->sorted[i - 1]].pub.name))
            return nm_fail(err, "tensor %s appears twice", m->tensors[m->sorted[i]].pub.name);
    return 0;
}

static const uint8_t LEGACY_MAGIC[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                       0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

static int open_zip_pickle(file_ctx *c, const uint8_t **pkl, size_t *pkl_size, nm_error *err) {
    tfile *f = c->f;
    c->zip = nm_zip_open_memory(f->map, f->size, err);
    if (!c->zip)
        return -1;
    const nm_zip_entry *pe = NULL;
    for (size_t i = 0; i < nm_zip_count(c->zip); i++) {
        const nm_zip_entry *e = nm_zip_at(c->zip, i);
        size_t n = strlen(e->name);
        const char *slash = strchr(e->name, '/');
        if (n > 9 && !strcmp(e->name + n - 9, "/data.pkl") && slash == e->name + n - 9) {
            if (pe)
                return nm_fail(err, "two pickles in the archive (%s and %s)", pe->name, e->name);
            pe = e;
        }
    }
    if (!pe)
        return nm_fail(err, "zip archive without a <folder>/data.pkl entry: not a torch checkpoint");
    c->prefix = pe->name;
    c->prefix_len = strlen(pe->name) - 8; /* keep the slash */
    char name[512];
    snprintf(name, sizeof name, "%.*sbyteorder", (int)c->prefix_len, c->prefix);
    const nm_zip_entry *bo = nm_zip_find(c->zip, name);
    if (bo) {
        const uint8_t *d;
        if (nm_zip_payload(c->zip, bo, &d, err))
            return -1;
        size_t n = (size_t)bo->size;
        while (n && isspace(d[n - 1]))
            n--;
        if (n == 6 && !memcmp(d, "little", 6))
            f->big_endian = false;
        else if (n == 3 && !memcmp(d, "big", 3))
            f->big_endian = true;
        else
            return nm_fail(err, "%s holds neither \"little\" nor \"big\"", name);
    }
    snprintf(name, sizeof name, "%.*sversion", (int)c->prefix_len, c->prefix);
    const nm_zip_entry *ve = nm_zip_find(c->zip, name);
    if (ve) {
        const uint8_t *d;
        if (nm_zip_payload(c->zip, ve, &d, err))
            return -1;
        size_t n = (size_t)ve->size, i = 0;
        unsigned long v = 0;
        while (i < n && i < 8 && isdigit(d[i]))
            v = v * 10 + (unsigned long)(d[i++] - '0');
        if (i == 0 || v == 0 || v > 100)
            return nm_fail(err, "%s is not a format version number", name);
    }
    if (nm_zip_payload(c->zip, pe, pkl, err))
        return -1;
    *pkl_size = (size_t)pe->size;
    return 0;
}

/* Legacy (§8.4): magic, protocol, sys_info, object pickle, key list, raw storages. */
static int parse_legacy(file_ctx *c, const pk_options *po, pk_doc **obj, nm_error *err) {
    tfile *f = c->f;
    size_t pos = sizeof LEGACY_MAGIC, used;
    pk_doc *d = pk_parse(f->map + pos, f->size - pos, po, &used, err);
    if (!d)
        return nm_error_prefix(err, "legacy protocol-version pickle");
    const pk_value *v = pk_root(d);
    bool ok = v->kind == PK_INT && v->u.i == 1001;
    pk_free(d);
    if (!ok)
        return nm_fail(err, "legacy checkpoint with an unknown protocol version (1001 expected)");
    pos += used;
    d = pk_parse(f->map + pos, f->size - pos, po, &used, err);
    if (!d)
        return nm_error_prefix(err, "legacy sys_info pickle");
    v = pk_root(d);
    ok = v->kind == PK_DICT;
    pk_free(d);
    if (!ok)
        return nm_fail(err, "legacy checkpoint: sys_info is not a dict");
    pos += used;
    *obj = pk_parse(f->map + pos, f->size - pos, po, &used, err);
    if (!*obj)
        return -1;
    pos += used;
    d = pk_parse(f->map + pos, f->size - pos, po, &used, err);
    if (!d)
        return nm_error_prefix(err, "legacy storage key list");
    pos += used;
    const pk_value *keys = pk_root(d);
    int rc = 0;
    if (keys->kind != PK_LIST) {
        rc = nm_fail(err, "legacy storage key list is %s, not a list", pk_kind_name(keys->kind));
        goto out;
    }
    c->refs = calloc(keys->u.seq.n ? keys->u.seq.n : 1, sizeof *c->refs);
    if (!c->refs) {
        rc = nm_fail(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < keys->u.seq.n; i++) {
        const pk_value *k = keys->u.seq.items[i];
        if (k->kind != PK_STR) {
            rc = nm_fail(err, "legacy storage key %zu is not a string", i);
            goto out;
        }
        const pk_storage *st = NULL;
        for (size_t j = 0; j < pk_storage_count(*obj); j++) {
            const pk_storage *s = pk_storage_at(*obj, j);
            if (!strcmp(s->key, k->u.str.s)) {
                if (st && (st->elsize != s->elsize || st->dtype != s->dtype)) {
                    rc = nm_fail(err, "legacy storage %s is used with two storage classes", s->key);
                    goto out;
                }
                st = s;
            }
        }
        if (!st) {
            rc = nm_fail(err, "legacy storage %s is listed but never used by the pickle", k->u.str.s);
            goto out;
        }
        if (f->size - pos < 8) {
            rc = nm_fail(err, "legacy storage %s: file ends before its element count (offset %zu)", st->key, pos);
            goto out;
        }
        uint64_t count = 0, bytes;
        for (int b = 0; b < 8; b++)
            count |= (uint64_t)f->map[pos + b] << (8 * b);
        pos += 8;
        if (mul_u64(count, st->elsize, &bytes) || bytes > f->size - pos) {
            rc = nm_fail(err, "legacy storage %s: %llu elements of %u bytes run past the end of the file (offset %zu)",
                         st->key, (unsigned long long)count, st->elsize, pos);
            goto out;
        }
        /* keys point into *obj's arena, which outlives c->refs */
        c->refs[c->n_refs++] = (storage_ref){st->key, f->map + pos, bytes, st->dtype, st->elsize};
        pos += (size_t)bytes;
    }
out:
    pk_free(d);
    if (rc) {
        pk_free(*obj);
        *obj = NULL;
    }
    return rc;
}

/* Reads one checkpoint file's state dict into m's tensor list. */
static int load_file(torch_model *m, size_t file_index, const torch_open_options *opts, bool drop_rope, nm_error *err) {
    tfile *f = &m->files[file_index];
    file_ctx c = {.f = f};
    pk_options po = {0};
    pk_doc *doc = NULL;
    int rc = -1;
    if (f->size >= 4 && !memcmp(f->map, "PK\x03\x04", 4)) {
        const uint8_t *pkl = NULL;
        size_t pkl_size = 0, used;
        if (open_zip_pickle(&c, &pkl, &pkl_size, err))
            goto out;
        doc = pk_parse(pkl, pkl_size, &po, &used, err);
        if (!doc) {
            nm_error_prefix(err, "data.pkl");
            goto out;
        }
    } else if (f->size >= sizeof LEGACY_MAGIC && !memcmp(f->map, LEGACY_MAGIC, sizeof LEGACY_MAGIC)) {
        f->legacy = true;
        if (parse_legacy(&c, &po, &doc, err))
            goto out;
    } else if (f->size >= 4 && !memcmp(f->map, "PK", 2)) {
        nm_fail(err, "zip archive that does not start with a local file header");
        goto out;
    } else {
        nm_fail(err, "not a PyTorch checkpoint (neither a zip archive nor the legacy pickle format)");
        goto out;
    }
    const pk_value *sd = find_state_dict(pk_root(doc), opts ? opts->state_key : NULL, err);
    if (!sd)
        goto out;
    /* The entries built below count against the same memory bound as the pickle: a hostile
     * pickle can name one memoized tensor under very many keys. */
    size_t n_entries = 0, need = pk_memory_used(doc);
    for (size_t i = 0; i < sd->u.dict.n; i++) {
        const pk_value *k = sd->u.dict.kv[2 * i], *v = sd->u.dict.kv[2 * i + 1];
        if (k->kind == PK_STR && v->kind == PK_TENSOR) {
            n_entries++;
            need += sizeof(tentry) + k->u.str.len + strlen(v->u.tensor.storage->u.storage.key) + 2 * 32;
        }
    }
    if (need > TORCH_MAX_OPEN_BYTES) {
        nm_fail(err, "the state dict (%zu tensors) needs more than %zu MiB to index; not a plausible checkpoint",
                n_entries, (size_t)TORCH_MAX_OPEN_BYTES >> 20);
        goto out;
    }
    if (m->n_tensors + n_entries > m->cap_tensors) {
        tentry *t = realloc(m->tensors, (m->n_tensors + n_entries) * sizeof *t);
        if (!t) {
            nm_fail(err, "out of memory");
            goto out;
        }
        m->tensors = t;
        m->cap_tensors = m->n_tensors + n_entries;
    }
    for (size_t i = 0; i < sd->u.dict.n; i++) {
        const pk_value *k = sd->u.dict.kv[2 * i], *v = sd->u.dict.kv[2 * i + 1];
        if (k->kind != PK_STR || v->kind != PK_TENSOR)
            continue; /* non-tensor entries of a state dict are not weights */
        if (strlen(k->u.str.s) != k->u.str.len) {
            nm_fail(err, "tensor name with a NUL byte");
            goto out;
        }
        if (drop_rope && !strcmp(k->u.str.s, "rope.freqs"))
            continue;
        tentry *e = new_entry(m, err);
        if (!e)
            goto out;
        if (make_tensor(&c, e, k->u.str.s, &v->u.tensor, (uint32_t)file_index, err)) {
            free_entry(e);
            m->n_tensors--;
            goto out;
        }
    }
    rc = 0;
out:
    pk_free(doc);
    nm_zip_close(c.zip);
    free(c.refs);
    if (rc)
        nm_error_prefix(err, "%s", f->path);
    return rc;
}

/* ---------- layouts ---------- */

static torch_model *new_model(nm_error *err) {
    torch_model *m = calloc(1, sizeof *m);
    if (!m)
        nm_fail(err, "out of memory");
    return m;
}

static int open_single(torch_model *m, const char *path, const torch_open_options *opts, bool drop_rope, nm_error *err) {
    tfile *f = add_file(m, path, err);
    if (!f || map_file(f, err))
        return -1;
    return load_file(m, m->n_files - 1, opts, drop_rope, err);
}

static const tentry *find_entry(const torch_model *m, const char *name) {
    size_t lo = 0, hi = m->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->tensors[m->sorted[mid]].pub.name, name);
        if (c == 0)
            return &m->tensors[m->sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *r = malloc(a + b + 2);
    if (r) {
        memcpy(r, dir, a);
        r[a] = '/';
        memcpy(r + a + 1, name, b + 1);
    }
    return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* pytorch_model.bin.index.json: {"weight_map": {tensor: file}}; every listed tensor must be
 * found in its file and every file's tensors must be listed. */
static int open_index(torch_model *m, const char *index_path, const torch_open_options *opts, nm_error *err) {
    FILE *fp = fopen(index_path, "rb");
    if (!fp)
        return nm_fail(err, "%s: cannot open: %s", index_path, strerror(errno));
    char *text = NULL;
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        len = ftell(fp);
    if (len < 0 || len > (64L << 20)) {
        fclose(fp);
        return nm_fail(err, "%s: unreadable or larger than 64 MiB", index_path);
    }
    rewind(fp);
    text = malloc((size_t)len + 1);
    if (!text || fread(text, 1, (size_t)len, fp) != (size_t)len) {
        fclose(fp);
        free(text);
        return nm_fail(err, "%s: cannot read", index_path);
    }
    fclose(fp);
    text[len] = '\0';
    cJSON *json = cJSON_ParseWithLength(text, (size_t)len);
    free(text);
    const cJSON *wm = json ? cJSON_GetObjectItemCaseSensitive(json, "weight_map") : NULL;
    int rc = -1;
    char **files = NULL, *dir = NULL;
    size_t n_files = 0;
    if (!cJSON_IsObject(wm)) {
        nm_fail(err, "%s: not JSON with a \"weight_map\" object", index_path);
        goto out;
    }
    size_t n_map = (size_t)cJSON_GetArraySize(wm);
    files = calloc(n_map ? n_map : 1, sizeof *files);
    dir = dir_of(index_path);
    if (!files || !dir) {
        nm_fail(err, "out of memory");
        goto out;
    }
    for (const cJSON *it = wm->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->string || !*it->valuestring || strchr(it->valuestring, '/') ||
            !strcmp(it->valuestring, "..") || !strcmp(it->valuestring, ".")) {
            nm_fail(err, "%s: weight_map entry %s is not a plain file name", index_path, it->string ? it->string : "?");
            goto out;
        }
        files[n_files++] = it->valuestring;
    }
    qsort(files, n_files, sizeof *files, cmp_str);
    size_t uniq = 0;
    for (size_t i = 0; i < n_files; i++)
        if (!uniq || strcmp(files[uniq - 1], files[i]))
            files[uniq++] = files[i];
    for (size_t i = 0; i < uniq; i++) {
        char *p = join(dir, files[i]);
        if (!p) {
            nm_fail(err, "out of memory");
            goto out;
        }
        size_t first = m->n_tensors;
        int r = open_single(m, p, opts, false, err);
        free(p);
        if (r)
            goto out;
        for (size_t t = first; t < m->n_tensors; t++) {
            const cJSON *where = cJSON_GetObjectItemCaseSensitive(wm, m->tensors[t].pub.name);
            if (!where || strcmp(where->valuestring, files[i])) {
                nm_fail(err, "%s: tensor %s of %s is not listed for that file in the index", index_path,
                        m->tensors[t].pub.name, files[i]);
                goto out;
            }
        }
    }
    if (build_index(m, err))
        goto out;
    for (const cJSON *it = wm->child; it; it = it->next) {
        if (!find_entry(m, it->string)) {
            nm_fail(err, "%s: tensor %s is listed in the index but missing from %s", index_path, it->string,
                    it->valuestring);
            goto out;
        }
    }
    rc = 0;
out:
    free(files);
    free(dir);
    cJSON_Delete(json);
    return rc;
}

/* Meta model-parallel split axis (FORMATS.md §6.4). */
static uint32_t meta_axis(const char *name) {
    size_t n = strlen(name);
#define ENDS(s) (n >= sizeof(s) - 1 && !strcmp(name + n - (sizeof(s) - 1), s))
    if (!strcmp(name, "tok_embeddings.weight") || ENDS(".attention.wo.weight") || ENDS(".feed_forward.w2.weight"))
        return 1;
#undef ENDS
    return 0;
}

static int open_meta(torch_model *m, const char *dir, char **shards, size_t n_shards, const torch_open_options *opts,
                     nm_error *err) {
    /* Each shard loaded into its own model, then merged entry by entry into m. */
    torch_model **part = calloc(n_shards, sizeof *part);
    int rc = -1;
    if (!part)
        return nm_fail(err, "out of memory");
    for (size_t s = 0; s < n_shards; s++) {
        char *p = join(dir, shards[s]);
        part[s] = new_model(err);
        if (!p || !part[s]) {
            free(p);
            nm_fail(err, "out of memory");
            goto out;
        }
        int r = open_single(part[s], p, opts, true, err);
        free(p);
        if (r || build_index(part[s], err))
            goto out;
    }
    /* m takes over the shards' files (mappings) so the views stay valid. */
    for (size_t s = 0; s < n_shards; s++) {
        tfile *f = realloc(m->files, (m->n_files + 1) * sizeof *f);
        if (!f) {
            nm_fail(err, "out of memory");
            goto out;
        }
        m->files = f;
        m->files[m->n_files++] = part[s]->files[0];
        part[s]->n_files = 0;
    }
    for (size_t s = 1; s < n_shards; s++) {
        if (part[s]->n_tensors != part[0]->n_tensors) {
            nm_fail(err, "%s has %zu tensors but %s has %zu", shards[s], part[s]->n_tensors, shards[0],
                    part[0]->n_tensors);
            goto out;
        }
    }
    for (size_t i = 0; i < part[0]->n_tensors; i++) {
        tentry *t0 = &part[0]->tensors[i];
        const char *name = t0->pub.name;
        tentry *e = new_entry(m, err);
        if (!e)
            goto out;
        e->parts = calloc(n_shards, sizeof *e->parts);
        e->name_buf = xstrdup(name);
        e->key_buf = xstrdup(t0->pub.storage_key);
        if (!e->parts || !e->name_buf || !e->key_buf) {
            nm_fail(err, "out of memory");
            goto out;
        }
        e->n_parts = (uint32_t)n_shards;
        e->pub = t0->pub;
        e->pub.name = e->name_buf;
        e->pub.storage_key = e->key_buf;
        uint32_t nd = t0->pub.n_dims;
        e->pub.data = n_shards == 1 || nd < 2 ? t0->pub.data : NULL;
        e->axis = meta_axis(name);
        if (nd > 2) {
            nm_fail(err, "tensor %s has %u dimensions; Meta shards hold only 1-D and 2-D tensors", name, nd);
            goto out;
        }
        bool replicated = nd < 2;
        uint64_t total = 0;
        for (size_t s = 0; s < n_shards; s++) {
            const tentry *ts = find_entry(part[s], name);
            if (!ts) {
                nm_fail(err, "tensor %s is in %s but not in %s", name, shards[0], shards[s]);
                goto out;
            }
            if (ts->pub.dtype != t0->pub.dtype || ts->pub.n_dims != nd) {
                nm_fail(err, "tensor %s differs in type or rank between %s and %s", name, shards[0], shards[s]);
                goto out;
            }
            for (uint32_t d = 0; d < nd; d++) {
                if ((replicated || d != e->axis) && ts->pub.shape[d] != t0->pub.shape[d]) {
                    nm_fail(err, "tensor %s: shard %s has shape dim %u = %llu, shard %s %llu", name, shards[s], d,
                            (unsigned long long)ts->pub.shape[d], shards[0], (unsigned long long)t0->pub.shape[d]);
                    goto out;
                }
            }
            /* move ownership of the shard entry's strings into the part */
            e->parts[s] = *ts;
            e->parts[s].pub.file_index = (uint32_t)s;
            ((tentry *)ts)->name_buf = NULL;
            ((tentry *)ts)->key_buf = NULL;
            if (!replicated && add_u64(total, ts->pub.shape[e->axis], &total)) {
                nm_fail(err, "tensor %s: merged shape overflows", name);
                goto out;
            }
        }
        if (!replicated) {
            e->pub.shape[e->axis] = total;
            uint64_t bytes = 0;
            for (size_t s = 0; s < n_shards; s++)
                bytes += e->parts[s].pub.size; /* each fits; sum bounded by the mapped files */
            e->pub.size = (size_t)bytes;
            e->pub.contiguous = true;
            for (size_t s = 0; s < n_shards; s++)
                e->pub.contiguous = e->pub.contiguous && e->parts[s].pub.contiguous;
        }
    }
    rc = 0;
out:
    for (size_t s = 0; s < n_shards; s++)
        torch_close(part[s]);
    free(part);
    return rc;
}

static bool is_consolidated(const char *name, unsigned *num) {
    /* consolidated.NN.pth */
    if (strncmp(name, "consolidated.", 13))
        return false;
    const char *p = name + 13;
    unsigned v = 0;
    int digits = 0;
    while (isdigit((unsigned char)*p) && digits < 4)
        v = v * 10 + (unsigned)(*p++ - '0'), digits++;
    if (!digits || strcmp(p, ".pth"))
        return false;
    *num = v;
    return true;
}

static int open_dir(torch_model *m, const char *dir, const torch_open_options *opts, nm_error *err) {
    char *p = join(dir, "pytorch_model.bin.index.json");
    if (!p)
        return nm_fail(err, "out of memory");
    if (access(p, F_OK) == 0) {
        int r = open_index(m, p, opts, err);
        free(p);
        return r;
    }
    free(p);
    DIR *dh = opendir(dir);
    if (!dh)
        return nm_fail(err, "%s: cannot open folder: %s", dir, strerror(errno));
    char **shards = NULL, *single = NULL, **hf = NULL;
    size_t n_shards = 0, n_ckpt = 0, n_hf = 0;
    int rc = -1;
    struct dirent *de;
    while ((de = readdir(dh))) {
        unsigned num;
        const char *n = de->d_name;
        size_t l = strlen(n);
        if (!strncmp(n, "pytorch_model-", 14) && strstr(n, "-of-") && l > 4 && !strcmp(n + l - 4, ".bin")) {
            /* HF shards without their index: read them all, in name order */
            char **s = realloc(hf, (n_hf + 1) * sizeof *s);
            if (!s)
                goto nomem;
            hf = s;
            if (!(hf[n_hf] = xstrdup(n)))
                goto nomem;
            n_hf++;
        } else if (is_consolidated(n, &num)) {
            char **s = realloc(shards, (n_shards + 1) * sizeof *s);
            if (!s)
                goto nomem;
            shards = s;
            if (!(shards[n_shards] = xstrdup(n)))
                goto nomem;
            n_shards++;
        } else if (!strcmp(n, "pytorch_model.bin") ||
                   (l > 4 && (!strcmp(n + l - 4, ".pth") || !strcmp(n + l - 4, ".bin") || !strcmp(n + l - 5, ".ckpt") ||
                              !strcmp(n + l - 3, ".pt")))) {
            if (!strcmp(n, "pytorch_model.bin") || !single) {
                free(single);
                if (!(single = xstrdup(n)))
                    goto nomem;
            }
            n_ckpt++;
        }
    }
    closedir(dh);
    dh = NULL;
    if (n_shards) {
        qsort(shards, n_shards, sizeof *shards, cmp_str);
        for (size_t i = 0; i < n_shards; i++) {
            unsigned num;
            is_consolidated(shards[i], &num);
            if (num != i) {
                nm_fail(err, "%s: Meta shards are not numbered 00..%02zu (found %s)", dir, n_shards - 1, shards[i]);
                goto out;
            }
        }
        rc = open_meta(m, dir, shards, n_shards, opts, err);
    } else if (n_hf && !(single && !strcmp(single, "pytorch_model.bin"))) {
        qsort(hf, n_hf, sizeof *hf, cmp_str);
        rc = 0;
        for (size_t i = 0; i < n_hf && !rc; i++) {
            char *fp = join(dir, hf[i]);
            if (!fp)
                goto nomem;
            rc = open_single(m, fp, opts, false, err);
            free(fp);
        }
    } else if (single && (n_ckpt == 1 || !strcmp(single, "pytorch_model.bin"))) {
        char *fp = join(dir, single);
        if (!fp)
            goto nomem;
        rc = open_single(m, fp, opts, false, err);
        free(fp);
    } else if (n_ckpt > 1) {
        nm_fail(err, "%s: several checkpoint files and no pytorch_model.bin.index.json; name one", dir);
    } else {
        nm_fail(err, "%s: no PyTorch checkpoint in this folder", dir);
    }
    goto out;
nomem:
    nm_fail(err, "out of memory");
out:
    if (dh)
        closedir(dh);
    for (size_t i = 0; i < n_shards; i++)
        free(shards[i]);
    free(shards);
    for (size_t i = 0; i < n_hf; i++)
        free(hf[i]);
    free(hf);
    free(single);
    return rc;
}

torch_model *torch_open(const char *path, const torch_open_options *opts, nm_error *err) {
    torch_model *m = new_model(err);
    if (!m)
        return NULL;
    struct stat st;
    int rc;
    size_t l = strlen(path);
    if (stat(path, &st) != 0) {
        rc = nm_fail(err, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        rc = open_dir(m, path, opts, err);
    } else if (l >= 11 && !strcmp(path + l - 11, ".index.json")) {
        rc = open_index(m, path, opts, err);
    } else {
        rc = open_single(m, path, opts, false, err);
    }
    if (!rc && !m->sorted && build_index(m, err))
        rc = nm_error_prefix(err, "%s", path);
    if (!rc && m->n_tensors == 0)
        rc = nm_fail(err, "%s: the checkpoint holds no tensors", path);
    if (rc) {
        one_line(err);
        torch_close(m);
        return NULL;
    }
    return m;
}

torch_model *torch_open_memory(const void *data, size_t size, const torch_open_options *opts, nm_error *err) {
    torch_model *m = new_model(err);
    if (!m)
        return NULL;
    tfile *f = add_file(m, "(memory)", err);
    int rc = -1;
    if (f) {
        f->map = data;
        f->size = size;
        rc = load_file(m, 0, opts, false, err);
    }
    if (!rc)
        rc = build_index(m, err);
    if (rc) {
        one_line(err);
        torch_close(m);
        return NULL;
    }
    return m;
}

size_t torch_tensor_count(const torch_model *m) { return m->n_tensors; }

const torch_tensor *torch_tensor_at(const torch_model *m, size_t i) {
    return i < m->n_tensors ? &m->tensors[i].pub : NULL;
}

const torch_tensor *torch_find(const torch_model *m, const char *name) {
    const tentry *e = find_entry(m, name);
    return e ? &e->pub : NULL;
}

size_t torch_file_count(const torch_model *m) { return m->n_files; }

const char *torch_file_path(const torch_model *m, size_t i) { return i < m->n_files ? m->files[i].path : NULL; }

const char *torch_file_format(const torch_model *m, size_t i) {
    return i < m->n_files ? (m->files[i].legacy ? "legacy" : "zip") : NULL;
}

/* ---------- reading ---------- */

static inline void copy_elem(uint8_t *dst, const uint8_t *src, unsigned es) {
    switch (es) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es);
    }
}

/* Copies a strided view into dst laid out with strides dstride (elements). */
static void gather(const tview *v, const uint64_t *shape, uint32_t nd, unsigned es, uint8_t *dst, const uint64_t *dstride) {
    for (uint32_t d = 0; d < nd; d++)
        if (shape[d] == 0)
            return;
    if (nd == 0) {
        copy_elem(dst, v->storage + v->offset * es, es);
        return;
    }
    uint64_t idx[TORCH_MAX_DIMS] = {0};
    uint32_t inner = nd - 1;
    uint64_t n = shape[inner], ss = v->stride[inner], ds = dstride[inner];
    for (;;) {
        uint64_t so = v->offset, dof = 0;
        for (uint32_t d = 0; d < inner; d++) {
            so += idx[d] * v->stride[d];
            dof += idx[d] * dstride[d];
        }
        const uint8_t *s = v->storage + so * es;
        uint8_t *o = dst + dof * es;
        if (ss == 1 && ds == 1) {
            memcpy(o, s, n * es);
        } else {
            for (uint64_t i = 0; i < n; i++)
                copy_elem(o + i * ds * es, s + i * ss * es, es);
        }
        uint32_t d = inner;
        while (d > 0) {
            d--;
            if (++idx[d] < shape[d])
                break;
            idx[d] = 0;
            if (d == 0)
                return;
        }
        if (inner == 0)
            return;
    }
}

static void swap_bytes(uint8_t *p, size_t bytes, unsigned unit) {
    for (size_t i = 0; i + unit <= bytes; i += unit)
        for (unsigned a = 0, b = unit - 1; a < b; a++, b--) {
            uint8_t t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}

static void read_entry(const tentry *e, uint8_t *dst, const uint64_t *dstride) {
    gather(&e->view, e->pub.shape, e->pub.n_dims, dtype_size(e->pub.dtype), dst, dstride);
}

int torch_tensor_read(const torch_model *m, const torch_tensor *t, void *dst, nm_error *err) {
    const tentry *e = (const tentry *)t;
    if (e < m->tensors || e >= m->tensors + m->n_tensors)
        return nm_fail(err, "torch_tensor_read: tensor does not belong to this model");
    if (t->data) {
        memcpy(dst, t->data, t->size);
        return 0;
    }
    unsigned es = dtype_size(t->dtype);
    uint64_t dstride[TORCH_MAX_DIMS];
    uint64_t s = 1;
    for (uint32_t d = t->n_dims; d-- > 0;) {
        dstride[d] = s;
        s *= t->shape[d];
    }
    bool big = false;
    if (!e->parts) {
        read_entry(e, dst, dstride);
        big = e->view.big_endian;
    } else if (e->n_parts == 1 || t->n_dims < 2) {
        read_entry(&e->parts[0], dst, dstride);
        big = e->parts[0].view.big_endian;
    } else {
        uint64_t at = 0;
        for (uint32_t p = 0; p < e->n_parts; p++) {
            const tentry *part = &e->parts[p];
            read_entry(part, (uint8_t *)dst + at * dstride[e->axis] * es, dstride);
            at += part->pub.shape[e->axis];
            big = big || part->view.big_endian;
        }
    }
    if (big)
        swap_bytes(dst, t->size, t->dtype == NM_DTYPE_C64 ? es / 2 : es);
    return 0;
}
