/* safetensors reader — FORMATS.md §9. A single file, or a sharded folder through
 * model.safetensors.index.json. Files are mapped; every rule of the reference library is
 * checked at open (header size, JSON schema, contiguous non-overlapping offsets, byte sizes,
 * no trailing bytes, whole-number offsets and dims ≤ 2^53). */
#ifndef NOMOAT_SAFETENSORS_H
#define NOMOAT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/tensor.h"

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    const char *name;  /* NUL-terminated */
    nm_dtype dtype;
    uint32_t n_dims;   /* 0 = scalar */
    uint64_t shape[ST_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] is contiguous */
    const void *data;  /* into the mapping */
    size_t size;       /* bytes */
    uint64_t offset;   /* file offset of the data */
    uint32_t file_index;
} st_tensor;

typedef struct st_model st_model;

/* path: a .safetensors file, a model.safetensors.index.json, or a folder holding either (or a
 * folder with exactly one .safetensors file). Errors are one line "what is wrong (tensor 'X')"
 * without repeating `path` (callers prefix it); problems inside a shard are prefixed with the
 * shard's path. Tensors are ordered by (shard, data offset): reading them in order is sequential. */
st_model *st_open(const char *path, nm_error *err);
/* Validates an in-memory single-file buffer (fuzzing, tests); the buffer must outlive it. */
st_model *st_open_memory(const void *data, size_t size, nm_error *err);
void st_close(st_model *m);

size_t st_tensor_count(const st_model *m);
const st_tensor *st_tensor_at(const st_model *m, size_t i); /* in file order */
const st_tensor *st_find(const st_model *m, const char *name);

size_t st_file_count(const st_model *m);
const char *st_file_path(const st_model *m, size_t i);
/* __metadata__ entries of the first file. */
size_t st_metadata_count(const st_model *m);
void st_metadata_at(const st_model *m, size_t i, const char **key, const char **value);

#endif
