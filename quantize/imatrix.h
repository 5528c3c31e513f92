/* Importance-matrix files as llama-imatrix writes them (FORMATS.md §5.7): the GGUF format
 * (`<name>.in_sum2` + `<name>.counts` tensors) and the legacy `.dat` format. */
#ifndef NOMOAT_QUANTIZE_IMATRIX_H
#define NOMOAT_QUANTIZE_IMATRIX_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct qt_imatrix_entry {
    char *name;     /* GGUF tensor name, e.g. "blk.0.ffn_down.weight" */
    float *values;  /* n finite importance weights (mean squared activation per column) */
    size_t n;       /* n_per_row * n_mat */
} qt_imatrix_entry;

typedef struct qt_imatrix {
    qt_imatrix_entry *entries;
    size_t n_entries;
    char *dataset;        /* first calibration dataset name, or NULL */
    uint32_t chunk_count; /* 0 when unknown */
} qt_imatrix;

/* Reads and validates the file (format detected by its magic). On error NULL with a message
 * naming the file and what is wrong. */
qt_imatrix *qt_imatrix_load(const char *path, nm_error *err);
/* The same from memory (the buffer must outlive nothing: values are copied); name is used in
 * messages. */
qt_imatrix *qt_imatrix_load_memory(const void *data, size_t size, const char *name, nm_error *err);
const qt_imatrix_entry *qt_imatrix_find(const qt_imatrix *m, const char *name);
void qt_imatrix_free(qt_imatrix *m);

#endif
