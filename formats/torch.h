/* PyTorch checkpoints read without running pickles — FORMATS.md §8.
 *
 * torch_open accepts: a single checkpoint file (zip format, torch >= 1.6, or the legacy
 * non-zip format; .bin/.pth/.pt/.ckpt), a Hugging Face folder or pytorch_model.bin.index.json
 * (sharded), or a Meta folder of consolidated.NN.pth model-parallel shards (merged into whole
 * tensors on the fly, FORMATS.md §6.4; non-weight entries like rope.freqs dropped).
 * Nested training checkpoints ({"model": state_dict, "optimizer": ...}) are searched for the
 * state dict (opts->state_key chooses). The unpickler allows only data-building opcodes and an
 * allowlist of GLOBALs (formats/pickle.h); anything else is refused before anything is built. */
#ifndef NOMOAT_TORCH_H
#define NOMOAT_TORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/tensor.h"

#define TORCH_MAX_DIMS 8

typedef struct torch_tensor {
    const char *name;       /* state-dict key, NUL-terminated */
    nm_dtype dtype;         /* from the storage class */
    uint32_t n_dims;
    uint64_t shape[TORCH_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] is the contiguous one */
    size_t size;            /* bytes of the tensor as contiguous little-endian data */
    /* Non-NULL when the bytes can be used in place (contiguous, little-endian, one shard):
     * `size` bytes in the mapping. NULL means torch_tensor_read must materialise them. */
    const void *data;
    bool contiguous;        /* the stored view is C-contiguous */
    const char *storage_key; /* "0", "1", ... (first shard's, for merged tensors) */
    uint32_t file_index;
} torch_tensor;

typedef struct torch_open_options {
    const char *state_key; /* NULL: find the state dict automatically */
} torch_open_options;

typedef struct torch_model torch_model;

torch_model *torch_open(const char *path, const torch_open_options *opts, nm_error *err);
void torch_close(torch_model *m);

size_t torch_tensor_count(const torch_model *m);
const torch_tensor *torch_tensor_at(const torch_model *m, size_t i);
const torch_tensor *torch_find(const torch_model *m, const char *name);

/* Writes the tensor's `size` bytes, contiguous and little-endian, to dst (copies from the
 * mapping, gathers strided views, byte-swaps big-endian storages, concatenates Meta shards).
 * Thread-safe for distinct tensors. */
int torch_tensor_read(const torch_model *m, const torch_tensor *t, void *dst, nm_error *err);

/* Files the model was read from (for messages and listings). */
size_t torch_file_count(const torch_model *m);
const char *torch_file_path(const torch_model *m, size_t i);
/* "zip" or "legacy": the container of file i. */
const char *torch_file_format(const torch_model *m, size_t i);

/* One checkpoint file held in memory (fuzzing, tests); the buffer must outlive the model. */
torch_model *torch_open_memory(const void *data, size_t size, const torch_open_options *opts, nm_error *err);

#endif
