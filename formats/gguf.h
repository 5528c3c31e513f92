/* GGUF v3 (and v2) reader and streaming writer — FORMATS.md §1.
 *
 * The reader maps the file(s) and validates every count, length, type, offset and size against
 * the file before anything is exposed (§1.6); afterwards all accessors are safe. Split models
 * (`-00001-of-0000N.gguf`) open as one model: metadata from the first shard, tensors from all.
 *
 * The writer streams: metadata and tensor infos are collected in memory, then tensor data is
 * appended tensor by tensor in info order, padded as llama.cpp pads it, through nm_outfile
 * (atomic: nothing visible until gguf_writer_finish succeeds). */
#ifndef NOMOAT_GGUF_H
#define NOMOAT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/tensor.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64 /* tensor names are shorter than this */

typedef enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_value_type;

const char *gguf_type_name(uint32_t type); /* "UINT32", "STRING", ... */
size_t gguf_type_size(uint32_t type);       /* fixed-size scalars; 0 for STRING/ARRAY */

typedef struct gguf_string {
    const char *ptr; /* into the mapping: NOT NUL-terminated */
    uint64_t len;
} gguf_string;

typedef struct gguf_value {
    uint32_t type;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        bool b;
        uint64_t u64;
        int64_t i64;
        double f64;
        gguf_string str;
        struct {
            uint32_t type;              /* element type (never ARRAY in a valid file) */
            uint64_t count;
            const void *data;           /* numeric elements, little-endian, possibly unaligned */
            const gguf_string *strings; /* for STRING arrays: count entries */
        } arr;
    };
} gguf_value;

typedef struct gguf_tensor_info {
    char name[GGUF_MAX_NAME]; /* NUL-terminated */
    uint32_t n_dims;          /* as stored (1..4) */
    int64_t ne[4];            /* missing dims are 1 */
    uint32_t type;            /* ggml_type */
    uint64_t offset;          /* relative to the data section of its file */
    size_t size;              /* payload bytes */
    const void *data;         /* into the mapping */
    uint32_t file_index;      /* split shard (0 for single files) */
} gguf_tensor_info;

/* ---------------- reader ---------------- */

typedef struct gguf_reader gguf_reader;

/* Opens and validates; on error returns NULL with a message "what is wrong (where)". A path
 * matching `*-00001-of-NNNNN.gguf` opens every shard. */
gguf_reader *gguf_open(const char *path, nm_error *err);
/* "<prefix>-%05u-of-%05u.gguf" for 0-based shard of count (§1.9); malloc'ed, NULL when out of
 * memory. */
char *gguf_split_path(const char *prefix, uint32_t shard, uint32_t count);
/* Validates an in-memory buffer (fuzzing, tests). The buffer must outlive the reader. */
gguf_reader *gguf_open_memory(const void *data, size_t size, nm_error *err);
void gguf_close(gguf_reader *g);
/* Tells the kernel the mapped pages wholly inside [data - 2 MiB, data + size) are not needed for now
 * (the file is mapped read-only and private, so MADV_DONTNEED loses nothing: the pages stay in the
 * page cache and are read again if touched; the 2 MiB before the range catch pages that a fault in
 * it mapped again with their large folio), so a tool streaming through a large file keeps little
 * of it resident. A no-op for in-memory readers and for ranges outside the reader's files. */
void gguf_drop_pages(const gguf_reader *g, const void *data, size_t size);

uint32_t gguf_version(const gguf_reader *g);
uint32_t gguf_alignment(const gguf_reader *g);
uint32_t gguf_file_count(const gguf_reader *g);
uint64_t gguf_data_offset(const gguf_reader *g, uint32_t file_index); /* data-section start */
uint64_t gguf_file_size(const gguf_reader *g, uint32_t file_index);
const void *gguf_file_data(const gguf_reader *g, uint32_t file_index); /* whole mapping */

size_t gguf_kv_count(const gguf_reader *g);
const char *gguf_kv_key(const gguf_reader *g, size_t i); /* NUL-terminated copy */
const gguf_value *gguf_kv_value(const gguf_reader *g, size_t i);
/* Index of key, or -1. */
int64_t gguf_find_key(const gguf_reader *g, const char *key);
/* Value of key, or NULL when absent. */
const gguf_value *gguf_get(const gguf_reader *g, const char *key);
/* Typed getters: 0 on success; -1 (with a message naming key and types) when absent or of
 * another type. */
int gguf_get_u32(const gguf_reader *g, const char *key, uint32_t *out, nm_error *err);
int gguf_get_f32(const gguf_reader *g, const char *key, float *out, nm_error *err);
int gguf_get_bool(const gguf_reader *g, const char *key, bool *out, nm_error *err);
/* The same for optional keys: 0 with *out unchanged when the key is absent; -1 (the same message)
 * when it has another type. */
int gguf_get_u32_opt(const gguf_reader *g, const char *key, uint32_t *out, nm_error *err);
int gguf_get_bool_opt(const gguf_reader *g, const char *key, bool *out, nm_error *err);
/* A vocabulary's special tokens as llama.cpp reads them from tokenizer.ggml.{bos,eos,unknown,
 * padding}_token_id and add_{bos,eos}_token: an id that is absent or not below n_vocab leaves the
 * caller's default in place; an absent flag likewise. -1 (message) for a key of another type. */
typedef struct gguf_special_tokens {
    int32_t bos, eos, unk, pad;
    bool add_bos, add_eos;
} gguf_special_tokens;
int gguf_get_special_tokens(const gguf_reader *g, uint32_t n_vocab, gguf_special_tokens *st, nm_error *err);
/* Copies a STRING value into a malloc'ed NUL-terminated string. */
int gguf_get_string(const gguf_reader *g, const char *key, char **out, nm_error *err);
/* A malloc'ed NUL-terminated copy of a string (a value, an array element); NULL when out of memory. */
char *gguf_string_dup(const gguf_string *s);

/* Numeric array element i converted to double / int64 (any numeric element type). */
double gguf_array_f64(const gguf_value *arr, uint64_t i);
int64_t gguf_array_i64(const gguf_value *arr, uint64_t i);

size_t gguf_tensor_count(const gguf_reader *g);
const gguf_tensor_info *gguf_tensor(const gguf_reader *g, size_t i);
const gguf_tensor_info *gguf_find_tensor(const gguf_reader *g, const char *name);

/* ---------------- writer ---------------- */

typedef struct gguf_writer gguf_writer;

typedef struct gguf_writer_options {
    unsigned outfile_flags;     /* NM_OUT_FORCE, NM_OUT_NO_FSYNC, NM_OUT_DIRECT (common/outfile.h) */
    uint64_t split_max_size;    /* 0 = no size limit; else shards of at most about this many bytes */
    uint32_t split_max_tensors; /* 0 = no tensor-count limit */
} gguf_writer_options;

/* `path` names the output; with splitting it becomes <prefix>-00001-of-0000N.gguf where
 * prefix is path without ".gguf". opts may be NULL. */
gguf_writer *gguf_writer_create(const char *path, const gguf_writer_options *opts, nm_error *err);

/* Metadata, in insertion order. Setting an existing key replaces its value in place. */
int gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v);
int gguf_writer_set_string(gguf_writer *w, const char *key, const char *s, uint64_t len);
/* Numeric array: count elements of elem_type, little-endian, back to back. */
int gguf_writer_set_array(gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                          uint64_t count);
int gguf_writer_set_string_array(gguf_writer *w, const char *key, const gguf_string *strings,
                                 uint64_t count);
/* Copies reader KV i (key, type, value) verbatim. */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_reader *g, size_t i);
/* Removes key if present (a later set appends it at the end). */
void gguf_writer_remove_key(gguf_writer *w, const char *key);
/* The setters return -1 only when out of memory or the key is empty/invalid; the message
 * is kept and reported by gguf_writer_begin_data / finish. */

/* Declares the next tensor (data must then come in this order). */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t ne[4], nm_error *err);
/* Writes header(s), metadata and tensor infos; after this only tensor data may follow. */
int gguf_writer_begin_data(gguf_writer *w, nm_error *err);
/* Appends bytes of the current tensor; may be called several times per tensor. Padding and
 * moving to the next tensor (and shard) happen when a tensor's size is complete. */
int gguf_writer_write(gguf_writer *w, const void *data, size_t size, nm_error *err);
/* A tensor whose bytes come after those of the tensors that follow it: gguf_writer_reserve,
 * called where its data is due, writes it as zeros (and its padding) and moves on; later
 * gguf_writer_fill writes its bytes in place, up to the finish. */
typedef struct gguf_reserved {
    uint32_t shard;
    uint64_t offset; /* in the shard's file */
    size_t size;
} gguf_reserved;
int gguf_writer_reserve(gguf_writer *w, gguf_reserved *r, nm_error *err);
/* Writes size bytes at byte `at` of the reserved tensor. */
int gguf_writer_fill(gguf_writer *w, const gguf_reserved *r, uint64_t at, const void *data, size_t size,
                     nm_error *err);
/* Checks every tensor was written in full, flushes and publishes the file(s). Frees w. */
int gguf_writer_finish(gguf_writer *w, nm_error *err);
/* Discards everything written; frees w. Safe with NULL. */
void gguf_writer_abort(gguf_writer *w);
/* After begin_data: the output's direct-I/O alignment (nm_outfile_direct_alignment; 1 when
 * buffered) and where byte `byte` of tensor `tensor` falls in its file modulo it. Data passed to
 * gguf_writer_write from an address with that remainder goes to the device without a copy.
 * The phase is 0 (unknown) for tensors in shards after the first. Reads only what begin_data
 * fixed, so another thread may ask while the writer runs. */
size_t gguf_writer_direct_alignment(const gguf_writer *w);
size_t gguf_writer_data_phase(const gguf_writer *w, size_t tensor, uint64_t byte);
/* Number of shards the writer will produce (valid after begin_data). */
uint32_t gguf_writer_shard_count(const gguf_writer *w);

#endif
