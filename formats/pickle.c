/* Restricted unpickler (FORMATS.md §8.2-§8.5): a loop over opcodes, no recursion. Values are
 * allocated from an arena charged against a byte budget, together with the stack and memo
 * arrays, so a hostile pickle runs out of budget with a clear message instead of memory. */
#include "formats/pickle.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk;

struct pk_doc {
    chunk *chunks;
    size_t budget, spent;
    const pk_value *root;
    pk_value **storages; /* every PK_STORAGE built (malloc'd array, charged to the budget) */
    size_t n_storages, storages_cap;
    /* shared immutable singletons */
    pk_value none, true_, false_, empty_tuple;
};

typedef struct parser {
    pk_doc *doc;
    const uint8_t *d;
    size_t size, pos, op_pos;
    nm_error *err;
    pk_value **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, max_marks;
    pk_value **memo;
    size_t memo_cap, memo_set;
} parser;

/* Messages quote names taken from the file: keep them one printable line. */
static void one_line(nm_error *err) {
    if (!err)
        return;
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* ---------- memory ---------- */

static int charge(parser *p, size_t n) {
    pk_doc *doc = p->doc;
    if (n > doc->budget - doc->spent)
        return nm_fail(p->err, "pickle byte %zu: the pickle needs more than %zu MiB to unpickle "
                       "(limit reached; not a plausible checkpoint)", p->op_pos, doc->budget >> 20);
    doc->spent += n;
    return 0;
}

static void *arena_alloc(parser *p, size_t n) {
    n = (n + 15) & ~(size_t)15;
    pk_doc *doc = p->doc;
    chunk *c = doc->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 - sizeof(chunk) ? n : 65536 - sizeof(chunk);
        if (charge(p, cap + sizeof(chunk)))
            return NULL;
        c = malloc(sizeof(chunk) + cap);
        if (!c) {
            nm_fail(p->err, "out of memory while unpickling");
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *r = (char *)c->data + c->used;
    c->used += n;
    return r;
}

static size_t kind_size(pk_kind k) {
    pk_value *v = NULL;
    size_t base = offsetof(pk_value, u);
    switch (k) {
    case PK_BOOL: return base + sizeof v->u.b;
    case PK_INT: return base + sizeof v->u.i;
    case PK_FLOAT: return base + sizeof v->u.f;
    case PK_STR: case PK_BYTES: return base + sizeof v->u.str;
    case PK_TUPLE: case PK_LIST: case PK_SET: return base + sizeof v->u.seq;
    case PK_DICT: return base + sizeof v->u.dict;
    case PK_GLOBAL: return base + sizeof v->u.global;
    case PK_DTYPE: return base + sizeof v->u.dtype;
    case PK_STORAGE: return base + sizeof v->u.storage;
    case PK_TENSOR: return base + sizeof v->u.tensor;
    default: return base + sizeof(int64_t);
    }
}

static pk_value *new_value(parser *p, pk_kind kind) {
    pk_value *v = arena_alloc(p, kind_size(kind));
    if (v) {
        memset(v, 0, kind_size(kind));
        v->kind = kind;
    }
    return v;
}

static char *arena_strdup(parser *p, const void *s, size_t len) {
    if (len == SIZE_MAX) {
        nm_fail(p->err, "pickle byte %zu: string too long", p->op_pos);
        return NULL;
    }
    char *r = arena_alloc(p, len + 1);
    if (r) {
        memcpy(r, s, len);
        r[len] = '\0';
    }
    return r;
}

/* Grows a malloc'd pointer array to hold at least `need` entries, charging the budget. */
static int grow_array(parser *p, pk_value ***arr, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / sizeof(pk_value *))
            return nm_fail(p->err, "pickle byte %zu: index too large", p->op_pos);
        ncap *= 2;
    }
    if (charge(p, (ncap - *cap) * sizeof(pk_value *)))
        return -1;
    pk_value **n = realloc(*arr, ncap * sizeof *n);
    if (!n)
        return nm_fail(p->err, "out of memory while unpickling");
    memset(n + *cap, 0, (ncap - *cap) * sizeof *n);
    *arr = n;
    *cap = ncap;
    return 0;
}

/* Containers grow inside the arena: the old block is abandoned (at most doubling the cost). */
static int seq_reserve(parser *p, pk_value ***items, size_t *cap, size_t n, size_t need) {
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    if (ncap < need)
        ncap = need;
    if (ncap > SIZE_MAX / sizeof(pk_value *))
        return nm_fail(p->err, "pickle byte %zu: container too large", p->op_pos);
    pk_value **a = arena_alloc(p, ncap * sizeof *a);
    if (!a)
        return -1;
    if (n)
        memcpy(a, *items, n * sizeof *a);
    *items = a;
    *cap = ncap;
    return 0;
}

#define PK_MEMO_SLACK 4096

/* ---------- stack ---------- */

static int push(parser *p, pk_value *v) {
    if (!v)
        return -1;
    if (grow_array(p, &p->stack, &p->stack_cap, p->sp + 1))
        return -1;
    p->stack[p->sp++] = v;
    return 0;
}

static size_t stack_floor(const parser *p) {
    return p->n_marks ? p->marks[p->n_marks - 1] : 0;
}

static pk_value *pop(parser *p) {
    if (p->sp <= stack_floor(p)) {
        nm_fail(p->err, "pickle byte %zu: stack underflow", p->op_pos);
        return NULL;
    }
    return p->stack[--p->sp];
}

static pk_value *top(parser *p) {
    if (p->sp <= stack_floor(p)) {
        nm_fail(p->err, "pickle byte %zu: stack underflow", p->op_pos);
        return NULL;
    }
    return p->stack[p->sp - 1];
}

/* Pops the items above the innermost mark: *items points into the stack (valid until the
 * next push), the mark is removed. */
static int pop_mark(parser *p, pk_value ***items, size_t *n) {
    if (!p->n_marks)
        return nm_fail(p->err, "pickle byte %zu: no MARK to pop to", p->op_pos);
    size_t m = p->marks[--p->n_marks];
    *items = p->stack + m;
    *n = p->sp - m;
    p->sp = m;
    return 0;
}

/* ---------- input ---------- */

static int need(parser *p, size_t n) {
    if (n > p->size - p->pos)
        return nm_fail(p->err, "pickle byte %zu: truncated (needs %zu more bytes, %zu left)", p->op_pos, n,
                       p->size - p->pos);
    return 0;
}
static uint64_t le(const uint8_t *b, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* ---------- the allowlist ---------- */

typedef struct global_def {
    const char *module, *name;
    pk_global id;
    nm_dtype dtype;
    unsigned elsize;
} global_def;

static const global_def allowed[] = {
    {"collections", "OrderedDict", PKG_ORDERED_DICT, 0, 0},
    {"collections", "Counter", PKG_COUNTER, 0, 0},
    {"torch._utils", "_rebuild_tensor", PKG_REBUILD_TENSOR, 0, 0},
    {"torch._utils", "_rebuild_tensor_v2", PKG_REBUILD_TENSOR_V2, 0, 0},
    {"torch._utils", "_rebuild_tensor_v3", PKG_REBUILD_TENSOR_V3, 0, 0},
    {"torch._utils", "_rebuild_parameter", PKG_REBUILD_PARAMETER, 0, 0},
    {"torch._utils", "_rebuild_parameter_with_state", PKG_REBUILD_PARAMETER_WITH_STATE, 0, 0},
    {"torch._tensor", "_rebuild_from_type_v2", PKG_REBUILD_FROM_TYPE_V2, 0, 0},
    {"torch.nn.parameter", "Parameter", PKG_PARAMETER, 0, 0},
    {"torch", "Tensor", PKG_TENSOR_CLASS, 0, 0},
    {"torch", "Size", PKG_SIZE, 0, 0},
    {"torch", "device", PKG_DEVICE, 0, 0},
    {"torch.serialization", "_get_layout", PKG_GET_LAYOUT, 0, 0},
    {"_codecs", "encode", PKG_CODECS_ENCODE, 0, 0},
    {"builtins", "bytearray", PKG_BYTEARRAY, 0, 0},
    {"builtins", "set", PKG_SET, 0, 0},
    {"builtins", "complex", PKG_COMPLEX, 0, 0},
    /* protocol 2 spells builtins the Python 2 way (pickle's fix_imports) */
    {"__builtin__", "bytearray", PKG_BYTEARRAY, 0, 0},
    {"__builtin__", "set", PKG_SET, 0, 0},
    {"__builtin__", "complex", PKG_COMPLEX, 0, 0},
    {"torch", "DoubleStorage", PKG_STORAGE_CLASS, NM_DTYPE_F64, 8},
    {"torch", "FloatStorage", PKG_STORAGE_CLASS, NM_DTYPE_F32, 4},
    {"torch", "HalfStorage", PKG_STORAGE_CLASS, NM_DTYPE_F16, 2},
    {"torch", "BFloat16Storage", PKG_STORAGE_CLASS, NM_DTYPE_BF16, 2},
    {"torch", "LongStorage", PKG_STORAGE_CLASS, NM_DTYPE_I64, 8},
    {"torch", "IntStorage", PKG_STORAGE_CLASS, NM_DTYPE_I32, 4},
    {"torch", "ShortStorage", PKG_STORAGE_CLASS, NM_DTYPE_I16, 2},
    {"torch", "CharStorage", PKG_STORAGE_CLASS, NM_DTYPE_I8, 1},
    {"torch", "ByteStorage", PKG_STORAGE_CLASS, NM_DTYPE_U8, 1},
    {"torch", "BoolStorage", PKG_STORAGE_CLASS, NM_DTYPE_BOOL, 1},
    {"torch", "ComplexFloatStorage", PKG_STORAGE_CLASS, NM_DTYPE_C64, 8},
    {"torch", "ComplexDoubleStorage", PKG_STORAGE_CLASS, NM_DTYPE_UNKNOWN, 16},
    {"torch", "QInt8Storage", PKG_STORAGE_CLASS, NM_DTYPE_UNKNOWN, 1},
    {"torch", "QUInt8Storage", PKG_STORAGE_CLASS, NM_DTYPE_UNKNOWN, 1},
    {"torch", "QInt32Storage", PKG_STORAGE_CLASS, NM_DTYPE_UNKNOWN, 4},
    {"torch", "QUInt4x2Storage", PKG_STORAGE_CLASS, NM_DTYPE_UNKNOWN, 1},
    {"torch", "QUInt2x4Storage", PKG_STORAGE_CLASS, NM_DTYPE_UNKNOWN, 1},
    {"torch", "UntypedStorage", PKG_STORAGE_CLASS, NM_DTYPE_U8, 1},
    {"torch", "float32", PKG_DTYPE_OBJECT, NM_DTYPE_F32, 4},
    {"torch", "float", PKG_DTYPE_OBJECT, NM_DTYPE_F32, 4},
    {"torch", "float64", PKG_DTYPE_OBJECT, NM_DTYPE_F64, 8},
    {"torch", "double", PKG_DTYPE_OBJECT, NM_DTYPE_F64, 8},
    {"torch", "float16", PKG_DTYPE_OBJECT, NM_DTYPE_F16, 2},
    {"torch", "half", PKG_DTYPE_OBJECT, NM_DTYPE_F16, 2},
    {"torch", "bfloat16", PKG_DTYPE_OBJECT, NM_DTYPE_BF16, 2},
    {"torch", "int64", PKG_DTYPE_OBJECT, NM_DTYPE_I64, 8},
    {"torch", "long", PKG_DTYPE_OBJECT, NM_DTYPE_I64, 8},
    {"torch", "int32", PKG_DTYPE_OBJECT, NM_DTYPE_I32, 4},
    {"torch", "int", PKG_DTYPE_OBJECT, NM_DTYPE_I32, 4},
    {"torch", "int16", PKG_DTYPE_OBJECT, NM_DTYPE_I16, 2},
    {"torch", "short", PKG_DTYPE_OBJECT, NM_DTYPE_I16, 2},
    {"torch", "int8", PKG_DTYPE_OBJECT, NM_DTYPE_I8, 1},
    {"torch", "uint8", PKG_DTYPE_OBJECT, NM_DTYPE_U8, 1},
    {"torch", "uint16", PKG_DTYPE_OBJECT, NM_DTYPE_U16, 2},
    {"torch", "uint32", PKG_DTYPE_OBJECT, NM_DTYPE_U32, 4},
    {"torch", "uint64", PKG_DTYPE_OBJECT, NM_DTYPE_U64, 8},
    {"torch", "bool", PKG_DTYPE_OBJECT, NM_DTYPE_BOOL, 1},
    {"torch", "complex64", PKG_DTYPE_OBJECT, NM_DTYPE_C64, 8},
    {"torch", "cfloat", PKG_DTYPE_OBJECT, NM_DTYPE_C64, 8},
    {"torch", "float8_e5m2", PKG_DTYPE_OBJECT, NM_DTYPE_F8_E5M2, 1},
    {"torch", "float8_e4m3fn", PKG_DTYPE_OBJECT, NM_DTYPE_F8_E4M3, 1},
};

static void print_escaped(char *out, size_t cap, const uint8_t *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f)
            out[o++] = (char)s[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", s[i]);
    }
    if (n && o + 5 >= cap && o + 3 < cap)
        out[o++] = '.', out[o++] = '.', out[o++] = '.';
    out[o] = '\0';
}

static pk_value *resolve_global(parser *p, const uint8_t *mod, size_t mlen, const uint8_t *name, size_t nlen) {
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
        const global_def *g = &allowed[i];
        if (strlen(g->module) == mlen && strlen(g->name) == nlen && !memcmp(g->module, mod, mlen) &&
            !memcmp(g->name, name, nlen)) {
            if (g->id == PKG_DTYPE_OBJECT) {
                pk_value *v = new_value(p, PK_DTYPE);
                if (v)
                    v->u.dtype = g->dtype;
                return v;
            }
            pk_value *v = new_value(p, PK_GLOBAL);
            if (v) {
                v->u.global.id = g->id;
                v->u.global.module = g->module;
                v->u.global.name = g->name;
                v->u.global.dtype = g->dtype;
                v->u.global.elsize = g->elsize;
            }
            return v;
        }
    }
    char m[96], n[96];
    print_escaped(m, sizeof m, mod, mlen);
    print_escaped(n, sizeof n, name, nlen);
    nm_fail(p->err, "pickle byte %zu: refusing GLOBAL %s.%s: not a data-building torch global "
            "(a pickle that imports it could run code)", p->op_pos, m, n);
    return NULL;
}

/* ---------- REDUCE and friends ---------- */

static const char *gname(const pk_value *g, char *buf, size_t cap) {
    if (g->kind == PK_GLOBAL)
        snprintf(buf, cap, "%s.%s", g->u.global.module, g->u.global.name);
    else
        snprintf(buf, cap, "a %s", pk_kind_name(g->kind));
    return buf;
}

static int get_uint(const pk_value *v, uint64_t *out) {
    if (v->kind == PK_INT && v->u.i >= 0) {
        *out = (uint64_t)v->u.i;
        return 0;
    }
    if (v->kind == PK_BOOL) {
        *out = v->u.b;
        return 0;
    }
    return -1;
}

static pk_value *build_tensor(parser *p, const pk_value *fn, pk_value **a, size_t n) {
    char buf[96];
    pk_global id = fn->u.global.id;
    size_t min = id == PKG_REBUILD_TENSOR ? 4 : id == PKG_REBUILD_TENSOR_V2 ? 6 : 7;
    if (n < min || n > min + 1) {
        nm_fail(p->err, "pickle byte %zu: %s called with %zu arguments", p->op_pos, gname(fn, buf, sizeof buf), n);
        return NULL;
    }
    if (a[0]->kind != PK_STORAGE) {
        nm_fail(p->err, "pickle byte %zu: %s: first argument is %s, not a storage", p->op_pos,
                gname(fn, buf, sizeof buf), pk_kind_name(a[0]->kind));
        return NULL;
    }
    pk_value *t = new_value(p, PK_TENSOR);
    if (!t)
        return NULL;
    t->u.tensor.storage = a[0];
    t->u.tensor.dtype = a[0]->u.storage.dtype;
    if (id == PKG_REBUILD_TENSOR_V3) {
        if (a[6]->kind != PK_DTYPE) {
            nm_fail(p->err, "pickle byte %zu: _rebuild_tensor_v3: dtype argument is %s", p->op_pos,
                    pk_kind_name(a[6]->kind));
            return NULL;
        }
        t->u.tensor.dtype = a[6]->u.dtype;
    }
    if (get_uint(a[1], &t->u.tensor.offset)) {
        nm_fail(p->err, "pickle byte %zu: tensor storage offset is not a non-negative integer", p->op_pos);
        return NULL;
    }
    if (a[2]->kind != PK_TUPLE || a[3]->kind != PK_TUPLE || a[2]->u.seq.n != a[3]->u.seq.n) {
        nm_fail(p->err, "pickle byte %zu: tensor size and stride must be tuples of the same length", p->op_pos);
        return NULL;
    }
    if (a[2]->u.seq.n > PK_MAX_DIMS) {
        nm_fail(p->err, "pickle byte %zu: tensor has %zu dimensions (at most %d supported)", p->op_pos,
                a[2]->u.seq.n, PK_MAX_DIMS);
        return NULL;
    }
    t->u.tensor.n_dims = (uint32_t)a[2]->u.seq.n;
    for (size_t d = 0; d < a[2]->u.seq.n; d++) {
        if (get_uint(a[2]->u.seq.items[d], &t->u.tensor.shape[d]) ||
            get_uint(a[3]->u.seq.items[d], &t->u.tensor.stride[d])) {
            nm_fail(p->err, "pickle byte %zu: tensor size or stride %zu is not a non-negative integer", p->op_pos, d);
            return NULL;
        }
    }
    return t;
}

static pk_value *call(parser *p, const pk_value *fn, pk_value **a, size_t n);

static pk_value *latin1_bytes(parser *p, const pk_value *s) {
    /* _codecs.encode(text, 'latin1'): code points < 256 -> bytes */
    const uint8_t *in = (const uint8_t *)s->u.str.s;
    size_t len = s->u.str.len, o = 0;
    char *out = arena_alloc(p, len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        if (in[i] < 0x80) {
            out[o++] = (char)in[i++];
        } else if ((in[i] & 0xe0) == 0xc0 && i + 1 < len && (in[i + 1] & 0xc0) == 0x80 && in[i] <= 0xc3 &&
                   in[i] >= 0xc2) {
            out[o++] = (char)(((in[i] & 0x1f) << 6) | (in[i + 1] & 0x3f));
            i += 2;
        } else {
            nm_fail(p->err, "pickle byte %zu: _codecs.encode: text is not latin-1", p->op_pos);
            return NULL;
        }
    }
    out[o] = '\0';
    pk_value *v = new_value(p, PK_BYTES);
    if (v) {
        v->u.str.s = out;
        v->u.str.len = o;
    }
    return v;
}

static pk_value *call(parser *p, const pk_value *fn, pk_value **a, size_t n) {
    char buf[96];
    if (fn->kind != PK_GLOBAL) {
        nm_fail(p->err, "pickle byte %zu: cannot call %s", p->op_pos, gname(fn, buf, sizeof buf));
        return NULL;
    }
    switch (fn->u.global.id) {
    case PKG_ORDERED_DICT:
    case PKG_COUNTER:
        if (n == 0)
            return new_value(p, PK_DICT);
        break;
    case PKG_REBUILD_TENSOR:
    case PKG_REBUILD_TENSOR_V2:
    case PKG_REBUILD_TENSOR_V3:
        return build_tensor(p, fn, a, n);
    case PKG_REBUILD_PARAMETER:
    case PKG_REBUILD_PARAMETER_WITH_STATE:
    case PKG_PARAMETER:
        if (n >= 1 && n <= 4 && a[0]->kind == PK_TENSOR)
            return a[0];
        break;
    case PKG_REBUILD_FROM_TYPE_V2:
        /* (func, new_type, args, state): only tensor rebuild functions may be func. */
        if (n == 4 && a[0]->kind == PK_GLOBAL && a[2]->kind == PK_TUPLE &&
            (a[0]->u.global.id == PKG_REBUILD_TENSOR || a[0]->u.global.id == PKG_REBUILD_TENSOR_V2 ||
             a[0]->u.global.id == PKG_REBUILD_TENSOR_V3 || a[0]->u.global.id == PKG_REBUILD_PARAMETER ||
             a[0]->u.global.id == PKG_REBUILD_PARAMETER_WITH_STATE))
            return call(p, a[0], a[2]->u.seq.items, a[2]->u.seq.n);
        if (n == 4 && a[0]->kind == PK_GLOBAL) {
            nm_fail(p->err, "pickle byte %zu: _rebuild_from_type_v2 asked to call %s, which is not a tensor "
                    "rebuild function", p->op_pos, gname(a[0], buf, sizeof buf));
            return NULL;
        }
        break;
    case PKG_SIZE:
        if (n == 1 && a[0]->kind == PK_TUPLE)
            return a[0];
        break;
    case PKG_DEVICE:
        if (n >= 1 && n <= 2 && (a[0]->kind == PK_STR || a[0]->kind == PK_INT))
            return new_value(p, PK_OPAQUE);
        break;
    case PKG_GET_LAYOUT:
        if (n == 1 && a[0]->kind == PK_STR)
            return new_value(p, PK_OPAQUE);
        break;
    case PKG_CODECS_ENCODE:
        if (n == 2 && a[0]->kind == PK_STR && a[1]->kind == PK_STR &&
            (!strcmp(a[1]->u.str.s, "latin1") || !strcmp(a[1]->u.str.s, "latin-1")))
            return latin1_bytes(p, a[0]);
        break;
    case PKG_BYTEARRAY:
        if (n == 0) {
            pk_value *v = new_value(p, PK_BYTES);
            if (v)
                v->u.str.s = "";
            return v;
        }
        if (n == 1 && a[0]->kind == PK_BYTES)
            return a[0];
        break;
    case PKG_SET:
        if (n == 0)
            return new_value(p, PK_SET);
        if (n == 1 && (a[0]->kind == PK_LIST || a[0]->kind == PK_TUPLE)) {
            pk_value *s = new_value(p, PK_SET);
            if (s) {
                s->u.seq.items = a[0]->u.seq.items;
                s->u.seq.n = s->u.seq.cap = a[0]->u.seq.n;
            }
            return s;
        }
        break;
    case PKG_COMPLEX:
        if (n <= 2)
            return new_value(p, PK_OPAQUE);
        break;
    default:
        nm_fail(p->err, "pickle byte %zu: %s is not callable in a checkpoint", p->op_pos, gname(fn, buf, sizeof buf));
        return NULL;
    }
    nm_fail(p->err, "pickle byte %zu: %s called with unexpected arguments (%zu)", p->op_pos,
            gname(fn, buf, sizeof buf), n);
    return NULL;
}

/* ('storage', class, key, location, numel[, view_metadata]) -> PK_STORAGE */
static pk_value *persistent_load(parser *p, const pk_value *pid) {
    if (pid->kind != PK_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6) {
        nm_fail(p->err, "pickle byte %zu: persistent id is not a ('storage', class, key, location, numel) tuple",
                p->op_pos);
        return NULL;
    }
    pk_value **a = pid->u.seq.items;
    if (a[0]->kind != PK_STR || strcmp(a[0]->u.str.s, "storage") != 0) {
        nm_fail(p->err, "pickle byte %zu: persistent id of an unknown kind (only 'storage' is used by torch)", p->op_pos);
        return NULL;
    }
    if (a[1]->kind != PK_GLOBAL || a[1]->u.global.id != PKG_STORAGE_CLASS) {
        char buf[96];
        nm_fail(p->err, "pickle byte %zu: persistent id names %s, not a torch storage class", p->op_pos,
                gname(a[1], buf, sizeof buf));
        return NULL;
    }
    if (a[2]->kind != PK_STR || a[2]->u.str.len == 0 || a[2]->u.str.len > 64 || a[3]->kind != PK_STR) {
        nm_fail(p->err, "pickle byte %zu: storage key or location is not a short string", p->op_pos);
        return NULL;
    }
    pk_value *s = new_value(p, PK_STORAGE);
    if (!s)
        return NULL;
    pk_storage *st = &s->u.storage;
    st->dtype = a[1]->u.global.dtype;
    st->elsize = a[1]->u.global.elsize;
    st->class_name = a[1]->u.global.name;
    st->key = a[2]->u.str.s;
    if (get_uint(a[4], &st->numel)) {
        nm_fail(p->err, "pickle byte %zu: storage %s: element count is not a non-negative integer", p->op_pos, st->key);
        return NULL;
    }
    if (pid->u.seq.n == 6 && a[5]->kind != PK_NONE) {
        const pk_value *vm = a[5];
        if (vm->kind != PK_TUPLE || vm->u.seq.n != 3 || vm->u.seq.items[0]->kind != PK_STR ||
            get_uint(vm->u.seq.items[1], &st->view_offset) || get_uint(vm->u.seq.items[2], &st->view_numel)) {
            nm_fail(p->err, "pickle byte %zu: storage %s: malformed view metadata", p->op_pos, st->key);
            return NULL;
        }
        st->is_view = true;
    }
    if (grow_array(p, &p->doc->storages, &p->doc->storages_cap, p->doc->n_storages + 1))
        return NULL;
    p->doc->storages[p->doc->n_storages++] = s;
    return s;
}

/* ---------- main loop ---------- */

static int read_line(parser *p, const uint8_t **s, size_t *len) {
    const uint8_t *start = p->d + p->pos;
    size_t left = p->size - p->pos;
    size_t max = left < 256 ? left : 256;
    const uint8_t *nl = memchr(start, '\n', max);
    if (!nl)
        return nm_fail(p->err, "pickle byte %zu: GLOBAL name not terminated by a newline within 256 bytes", p->op_pos);
    *s = start;
    *len = (size_t)(nl - start);
    p->pos += *len + 1;
    return 0;
}

static int push_string(parser *p, pk_kind kind, size_t len_bytes) {
    if (need(p, len_bytes))
        return -1;
    uint64_t len = le(p->d + p->pos, (unsigned)len_bytes);
    if (len_bytes == 4 && kind == PK_STR && p->d[p->op_pos] == 'T' && (len & 0x80000000u))
        return nm_fail(p->err, "pickle byte %zu: negative string length", p->op_pos);
    p->pos += len_bytes;
    if (len > p->size - p->pos)
        return nm_fail(p->err, "pickle byte %zu: string of %llu bytes runs past the end of the pickle (%zu left)",
                       p->op_pos, (unsigned long long)len, p->size - p->pos);
    pk_value *v = new_value(p, kind);
    if (!v)
        return -1;
    char *s = arena_strdup(p, p->d + p->pos, (size_t)len);
    if (!s)
        return -1;
    v->u.str.s = s;
    v->u.str.len = (size_t)len;
    p->pos += (size_t)len;
    return push(p, v);
}

static int push_int(parser *p, int64_t i) {
    pk_value *v = new_value(p, PK_INT);
    if (!v)
        return -1;
    v->u.i = i;
    return push(p, v);
}

static int push_long(parser *p, size_t len_bytes) {
    if (need(p, len_bytes))
        return -1;
    uint64_t n = le(p->d + p->pos, (unsigned)len_bytes);
    p->pos += len_bytes;
    if (n > p->size - p->pos)
        return nm_fail(p->err, "pickle byte %zu: integer of %llu bytes runs past the end", p->op_pos,
                       (unsigned long long)n);
    const uint8_t *b = p->d + p->pos;
    p->pos += (size_t)n;
    if (n > 8) {
        pk_value *v = new_value(p, PK_BIGINT);
        return v ? push(p, v) : -1;
    }
    uint64_t u = le(b, (unsigned)n);
    if (n > 0 && n < 8 && (b[n - 1] & 0x80))
        u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    return push_int(p, (int64_t)u);
}

static int memo_put(parser *p, uint64_t idx) {
    pk_value *v = top(p);
    if (!v)
        return -1;
    /* Python's pickler numbers memo entries 0, 1, 2, ... as it writes them; a hostile pickle
     * that jumps far ahead would only make the dense memo array large. */
    if (idx > p->memo_set + PK_MEMO_SLACK)
        return nm_fail(p->err, "pickle byte %zu: memo index %llu jumps ahead of the %zu entries written so far",
                       p->op_pos, (unsigned long long)idx, p->memo_set);
    if (grow_array(p, &p->memo, &p->memo_cap, (size_t)idx + 1))
        return -1;
    if (!p->memo[idx])
        p->memo_set++;
    p->memo[idx] = v;
    return 0;
}

static int memo_get(parser *p, uint64_t idx) {
    if (idx >= p->memo_cap || !p->memo[idx])
        return nm_fail(p->err, "pickle byte %zu: memo slot %llu read before it was written", p->op_pos,
                       (unsigned long long)idx);
    return push(p, p->memo[idx]);
}

static pk_value *new_seq(parser *p, pk_kind kind, pk_value **items, size_t n) {
    pk_value *v = new_value(p, kind);
    if (!v)
        return NULL;
    if (n) {
        if (n > SIZE_MAX / sizeof *items || !(v->u.seq.items = arena_alloc(p, n * sizeof *items)))
            return NULL;
        v->u.seq.cap = n;
        memcpy(v->u.seq.items, items, n * sizeof *items);
        v->u.seq.n = n;
    }
    return v;
}

static int dict_add(parser *p, pk_value *dict, pk_value **kv, size_t n_pairs) {
    if (dict->kind != PK_DICT)
        return nm_fail(p->err, "pickle byte %zu: SETITEM on %s, not a dict", p->op_pos, pk_kind_name(dict->kind));
    if (n_pairs == 0)
        return 0;
    size_t have = dict->u.dict.n * 2;
    if (seq_reserve(p, &dict->u.dict.kv, &dict->u.dict.cap, have, have + n_pairs * 2))
        return -1;
    memcpy(dict->u.dict.kv + have, kv, n_pairs * 2 * sizeof *kv);
    dict->u.dict.n += n_pairs;
    return 0;
}

static int seq_add(parser *p, pk_value *seq, pk_kind want, pk_value **items, size_t n) {
    if (seq->kind != want)
        return nm_fail(p->err, "pickle byte %zu: adding items to %s, not a %s", p->op_pos, pk_kind_name(seq->kind),
                       pk_kind_name(want));
    if (n == 0)
        return 0;
    if (seq_reserve(p, &seq->u.seq.items, &seq->u.seq.cap, seq->u.seq.n, seq->u.seq.n + n))
        return -1;
    memcpy(seq->u.seq.items + seq->u.seq.n, items, n * sizeof *items);
    seq->u.seq.n += n;
    return 0;
}

static int step(parser *p, int *stop) {
    p->op_pos = p->pos;
    if (need(p, 1))
        return -1;
    uint8_t op = p->d[p->pos++];
    pk_value **items = NULL, *a, *b, *c;
    size_t n = 0;
    switch (op) {
    case 0x80: /* PROTO */
        if (need(p, 1))
            return -1;
        if (p->d[p->pos] < 2 || p->d[p->pos] > 5)
            return nm_fail(p->err, "pickle byte %zu: pickle protocol %u is not supported (2 to 5 are)", p->op_pos,
                           p->d[p->pos]);
        p->pos++;
        return 0;
    case 0x95: /* FRAME */
        if (need(p, 8))
            return -1;
        if (le(p->d + p->pos, 8) > p->size - p->pos - 8)
            return nm_fail(p->err, "pickle byte %zu: FRAME longer than the rest of the pickle", p->op_pos);
        p->pos += 8;
        return 0;
    case 'c': { /* GLOBAL */
        const uint8_t *m, *nm;
        size_t ml, nl;
        if (read_line(p, &m, &ml) || read_line(p, &nm, &nl))
            return -1;
        return push(p, resolve_global(p, m, ml, nm, nl));
    }
    case 0x93: /* STACK_GLOBAL */
        if (!(b = pop(p)) || !(a = pop(p)))
            return -1;
        if (a->kind != PK_STR || b->kind != PK_STR)
            return nm_fail(p->err, "pickle byte %zu: STACK_GLOBAL needs two strings", p->op_pos);
        return push(p, resolve_global(p, (const uint8_t *)a->u.str.s, a->u.str.len, (const uint8_t *)b->u.str.s,
                                      b->u.str.len));
    case '(': /* MARK */
        if (p->n_marks >= p->max_marks)
            return nm_fail(p->err, "pickle byte %zu: more than %zu nested MARKs (not a plausible checkpoint)",
                           p->op_pos, p->max_marks);
        p->marks[p->n_marks++] = p->sp;
        return 0;
    case ')':
        return push(p, &p->doc->empty_tuple);
    case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
        n = (size_t)(op - 0x84);
        if (p->sp < stack_floor(p) + n)
            return nm_fail(p->err, "pickle byte %zu: stack underflow", p->op_pos);
        p->sp -= n;
        return push(p, new_seq(p, PK_TUPLE, p->stack + p->sp, n));
    case 't': /* TUPLE */
        if (pop_mark(p, &items, &n))
            return -1;
        return push(p, n ? new_seq(p, PK_TUPLE, items, n) : &p->doc->empty_tuple);
    case '}':
        return push(p, new_value(p, PK_DICT));
    case ']':
        return push(p, new_value(p, PK_LIST));
    case 0x8f:
        return push(p, new_value(p, PK_SET));
    case 's': /* SETITEM */
        if (!(b = pop(p)) || !(a = pop(p)) || !(c = top(p)))
            return -1;
        {
            pk_value *kv[2] = {a, b};
            return dict_add(p, c, kv, 1);
        }
    case 'u': /* SETITEMS */
        if (pop_mark(p, &items, &n))
            return -1;
        if (n % 2)
            return nm_fail(p->err, "pickle byte %zu: SETITEMS with an odd number of items", p->op_pos);
        if (!(c = top(p)))
            return -1;
        return dict_add(p, c, items, n / 2);
    case 'a': /* APPEND */
        if (!(a = pop(p)) || !(c = top(p)))
            return -1;
        return seq_add(p, c, PK_LIST, &a, 1);
    case 'e': /* APPENDS */
        if (pop_mark(p, &items, &n) || !(c = top(p)))
            return -1;
        return seq_add(p, c, PK_LIST, items, n);
    case 0x90: /* ADDITEMS */
        if (pop_mark(p, &items, &n) || !(c = top(p)))
            return -1;
        return seq_add(p, c, PK_SET, items, n);
    case 'R': /* REDUCE */
        if (!(b = pop(p)) || !(a = pop(p)))
            return -1;
        if (b->kind != PK_TUPLE)
            return nm_fail(p->err, "pickle byte %zu: REDUCE arguments are %s, not a tuple", p->op_pos,
                           pk_kind_name(b->kind));
        return push(p, call(p, a, b->u.seq.items, b->u.seq.n));
    case 0x81: /* NEWOBJ */
        if (!(b = pop(p)) || !(a = pop(p)))
            return -1;
        if (a->kind == PK_GLOBAL && (a->u.global.id == PKG_ORDERED_DICT || a->u.global.id == PKG_COUNTER) &&
            b->kind == PK_TUPLE && b->u.seq.n == 0)
            return push(p, new_value(p, PK_DICT));
        {
            char buf[96];
            return nm_fail(p->err, "pickle byte %zu: NEWOBJ of %s is not allowed", p->op_pos, gname(a, buf, sizeof buf));
        }
    case 'b': /* BUILD: the state (e.g. a state dict's _metadata) is not needed; never applied */
        if (!pop(p) || !top(p))
            return -1;
        return 0;
    case 'Q': /* BINPERSID */
        if (!(a = pop(p)))
            return -1;
        return push(p, persistent_load(p, a));
    case 'J':
        if (need(p, 4))
            return -1;
        p->pos += 4;
        return push_int(p, (int32_t)(uint32_t)le(p->d + p->pos - 4, 4));
    case 'K':
        if (need(p, 1))
            return -1;
        p->pos += 1;
        return push_int(p, p->d[p->pos - 1]);
    case 'M':
        if (need(p, 2))
            return -1;
        p->pos += 2;
        return push_int(p, (int64_t)le(p->d + p->pos - 2, 2));
    case 0x8a:
        return push_long(p, 1);
    case 0x8b:
        return push_long(p, 4);
    case 'G': {
        if (need(p, 8))
            return -1;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | p->d[p->pos + i];
        p->pos += 8;
        pk_value *v = new_value(p, PK_FLOAT);
        if (!v)
            return -1;
        memcpy(&v->u.f, &u, 8);
        return push(p, v);
    }
    case 'X':
        return push_string(p, PK_STR, 4);
    case 0x8c:
        return push_string(p, PK_STR, 1);
    case 0x8d:
        return push_string(p, PK_STR, 8);
    case 'T':
        return push_string(p, PK_STR, 4);
    case 'U':
        return push_string(p, PK_STR, 1);
    case 'B':
        return push_string(p, PK_BYTES, 4);
    case 'C':
        return push_string(p, PK_BYTES, 1);
    case 0x8e:
        return push_string(p, PK_BYTES, 8);
    case 'N':
        return push(p, &p->doc->none);
    case 0x88:
        return push(p, &p->doc->true_);
    case 0x89:
        return push(p, &p->doc->false_);
    case 'q':
        if (need(p, 1))
            return -1;
        p->pos += 1;
        return memo_put(p, p->d[p->pos - 1]);
    case 'r':
        if (need(p, 4))
            return -1;
        p->pos += 4;
        return memo_put(p, le(p->d + p->pos - 4, 4));
    case 0x94:
        return memo_put(p, p->memo_set);
    case 'h':
        if (need(p, 1))
            return -1;
        p->pos += 1;
        return memo_get(p, p->d[p->pos - 1]);
    case 'j':
        if (need(p, 4))
            return -1;
        p->pos += 4;
        return memo_get(p, le(p->d + p->pos - 4, 4));
    case '.': /* STOP */
        if (!(a = top(p)))
            return -1;
        p->doc->root = a;
        *stop = 1;
        return 0;
    default: {
        char shown[8];
        if (op >= 0x20 && op < 0x7f)
            snprintf(shown, sizeof shown, " '%c'", op);
        else
            shown[0] = '\0';
        return nm_fail(p->err, "pickle byte %zu: opcode 0x%02x%s is not allowed in a checkpoint (only "
                       "data-building opcodes are)", p->op_pos, op, shown);
    }
    }
}

pk_doc *pk_parse(const void *data, size_t size, const pk_options *opts, size_t *consumed, nm_error *err) {
    pk_doc *doc = calloc(1, sizeof *doc);
    if (!doc) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    doc->budget = opts && opts->max_bytes ? opts->max_bytes : PK_DEFAULT_MAX_BYTES;
    doc->none.kind = PK_NONE;
    doc->true_.kind = PK_BOOL;
    doc->true_.u.b = true;
    doc->false_.kind = PK_BOOL;
    doc->empty_tuple.kind = PK_TUPLE;
    parser p = {.doc = doc, .d = data, .size = size, .err = err};
    p.max_marks = opts && opts->max_marks ? opts->max_marks : PK_DEFAULT_MAX_MARKS;
    p.marks = malloc(p.max_marks * sizeof *p.marks);
    int stop = 0, rc = 0;
    if (!p.marks)
        rc = nm_fail(err, "out of memory");
    if (!rc && size == 0)
        rc = nm_fail(err, "empty pickle");
    if (!rc)
        rc = grow_array(&p, &p.stack, &p.stack_cap, 64); /* never NULL: pop_mark points into it */
    while (!rc && !stop)
        rc = step(&p, &stop);
    free(p.marks);
    free(p.stack);
    free(p.memo);
    if (rc) {
        one_line(err);
        pk_free(doc);
        return NULL;
    }
    if (consumed)
        *consumed = p.pos;
    return doc;
}

const pk_value *pk_root(const pk_doc *doc) { return doc->root; }

size_t pk_storage_count(const pk_doc *doc) { return doc->n_storages; }

size_t pk_memory_used(const pk_doc *doc) { return doc->spent; }

const pk_storage *pk_storage_at(const pk_doc *doc, size_t i) {
    return i < doc->n_storages ? &doc->storages[i]->u.storage : NULL;
}

void pk_free(pk_doc *doc) {
    if (!doc)
        return;
    for (chunk *c = doc->chunks; c;) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc->storages);
    free(doc);
}

const char *pk_kind_name(pk_kind kind) {
    static const char *const names[] = {"None", "bool", "int", "big int", "float", "str", "bytes", "tuple",
                                        "list", "set", "dict", "global", "dtype", "storage", "tensor", "object"};
    return (unsigned)kind < sizeof names / sizeof *names ? names[kind] : "?";
}

const pk_value *pk_dict_get(const pk_value *dict, const char *key) {
    if (!dict || dict->kind != PK_DICT)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < dict->u.dict.n; i++) {
        const pk_value *k = dict->u.dict.kv[2 * i];
        if (k->kind == PK_STR && k->u.str.len == len && !memcmp(k->u.str.s, key, len))
            return dict->u.dict.kv[2 * i + 1];
    }
    return NULL;
}
