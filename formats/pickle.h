/* Restricted unpickler for PyTorch checkpoints — FORMATS.md §8.2, §8.3, §8.5.
 *
 * Never executes anything: it implements only the data-building opcodes of §8.2 (plus FRAME,
 * SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINUNICODE8/BINBYTES8 of protocols 4-5) and resolves
 * GLOBAL only for an allowlist of torch/collections names whose effect it reimplements (building
 * dicts, tuples, storages and tensor views). Any other opcode or GLOBAL is refused, naming it,
 * before anything is built from it. Memory is bounded: all values live in one arena with a byte
 * budget (stack, memo and containers included), MARK nesting is limited, and every length is
 * checked against the remaining input. No recursion depends on the input. */
#ifndef NOMOAT_PICKLE_H
#define NOMOAT_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/tensor.h"

#define PK_MAX_DIMS 8

typedef enum pk_kind {
    PK_NONE, PK_BOOL, PK_INT, PK_BIGINT /* wider than 64 bits: value not kept */, PK_FLOAT,
    PK_STR, PK_BYTES, PK_TUPLE, PK_LIST, PK_SET, PK_DICT,
    PK_GLOBAL,  /* an allowlisted callable or class (u.global) */
    PK_DTYPE,   /* torch.float16, ... (u.dtype) */
    PK_STORAGE, /* result of a persistent id (u.storage) */
    PK_TENSOR,  /* result of a tensor rebuild function (u.tensor) */
    PK_OPAQUE,  /* allowlisted data we do not interpret (torch.device, layouts, complex) */
} pk_kind;

typedef enum pk_global {
    PKG_ORDERED_DICT, PKG_COUNTER, PKG_REBUILD_TENSOR, PKG_REBUILD_TENSOR_V2, PKG_REBUILD_TENSOR_V3,
    PKG_REBUILD_PARAMETER, PKG_REBUILD_PARAMETER_WITH_STATE, PKG_REBUILD_FROM_TYPE_V2,
    PKG_PARAMETER, PKG_TENSOR_CLASS, PKG_SIZE, PKG_DEVICE, PKG_GET_LAYOUT, PKG_CODECS_ENCODE,
    PKG_BYTEARRAY, PKG_SET, PKG_COMPLEX, PKG_STORAGE_CLASS, PKG_DTYPE_OBJECT,
} pk_global;

typedef struct pk_value pk_value;

typedef struct pk_storage {
    nm_dtype dtype;        /* NM_DTYPE_UNKNOWN for storage classes nomoat cannot read */
    unsigned elsize;       /* bytes per element of the storage class (1 for UntypedStorage) */
    const char *class_name;/* "HalfStorage", ... */
    const char *key;       /* "0", "1", ... (zip) or an object id (legacy) */
    uint64_t numel;        /* elements of the storage class */
    /* Legacy files only (view_metadata of §8.4): this storage is elements
     * [view_offset, view_offset + view_numel) of the storage `key`. */
    bool is_view;
    uint64_t view_offset, view_numel;
} pk_storage;

typedef struct pk_tensor {
    const pk_value *storage; /* PK_STORAGE */
    nm_dtype dtype;          /* the storage's dtype, or _rebuild_tensor_v3's explicit one */
    uint64_t offset;         /* in elements of dtype */
    uint32_t n_dims;
    uint64_t shape[PK_MAX_DIMS];
    uint64_t stride[PK_MAX_DIMS];
} pk_tensor;

struct pk_value {
    pk_kind kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct { const char *s; size_t len; } str; /* PK_STR (UTF-8) and PK_BYTES; NUL-terminated */
        struct { pk_value **items; size_t n, cap; } seq; /* tuple, list, set */
        struct { pk_value **kv; size_t n, cap; } dict;   /* kv[2i] = key, kv[2i+1] = value */
        struct { pk_global id; const char *module, *name; nm_dtype dtype; unsigned elsize; } global;
        nm_dtype dtype;
        pk_storage storage;
        pk_tensor tensor;
    } u;
};

typedef struct pk_options {
    size_t max_bytes;  /* memory budget for values, stack and memo; 0 = PK_DEFAULT_MAX_BYTES */
    size_t max_marks;  /* MARK nesting; 0 = PK_DEFAULT_MAX_MARKS */
} pk_options;

#define PK_DEFAULT_MAX_BYTES ((size_t)40 << 20)
#define PK_DEFAULT_MAX_MARKS 1000

typedef struct pk_doc pk_doc;

/* Unpickles one pickle from data[0..size) (it may be followed by other bytes: *consumed says
 * where STOP was). On failure the message says what and at which byte offset. */
pk_doc *pk_parse(const void *data, size_t size, const pk_options *opts, size_t *consumed, nm_error *err);
const pk_value *pk_root(const pk_doc *doc);
void pk_free(pk_doc *doc);

/* Every storage the pickle's persistent ids named, in order of appearance (the legacy format
 * needs them to know the element size of each raw storage that follows the pickles). */
size_t pk_storage_count(const pk_doc *doc);
const pk_storage *pk_storage_at(const pk_doc *doc, size_t i);

/* Bytes of the memory budget the document uses (callers that build more from it can keep the
 * total bounded). */
size_t pk_memory_used(const pk_doc *doc);

/* Helpers for walking results. */
const char *pk_kind_name(pk_kind kind);
/* Value stored under string key `key` in a dict, or NULL. */
const pk_value *pk_dict_get(const pk_value *dict, const char *key);

#endif
