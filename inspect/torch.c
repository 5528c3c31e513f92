/* nomoat-inspect for PyTorch checkpoints (zip or legacy files, pytorch_model.bin.index.json
 * shards, Meta consolidated.NN.pth folders): container, files, and a tensor table with dtype,
 * shape (PyTorch order), bytes, storage key and whether the stored view is contiguous;
 * --hash adds XXH3-64 of each tensor's bytes as contiguous little-endian data (what the
 * converter reads), --tensor/--values print the first values of one tensor. Nothing in the
 * checkpoint is ever executed (formats/pickle.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/cli.h"
#include "formats/torch.h"
#include "inspect/inspect.h"

static int value_at(nm_dtype dt, const unsigned char *p, size_t i, double *out) {
    switch (dt) {
    case NM_DTYPE_BOOL:
    case NM_DTYPE_U8: *out = p[i]; return 0;
    case NM_DTYPE_I8: *out = (int8_t)p[i]; return 0;
    case NM_DTYPE_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); *out = v; return 0; }
    case NM_DTYPE_U16: { uint16_t v; memcpy(&v, p + 2 * i, 2); *out = v; return 0; }
    case NM_DTYPE_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); *out = v; return 0; }
    case NM_DTYPE_U32: { uint32_t v; memcpy(&v, p + 4 * i, 4); *out = v; return 0; }
    case NM_DTYPE_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); *out = (double)v; return 0; }
    case NM_DTYPE_U64: { uint64_t v; memcpy(&v, p + 8 * i, 8); *out = (double)v; return 0; }
    case NM_DTYPE_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); *out = nm_f16_to_f32(v); return 0; }
    case NM_DTYPE_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); *out = nm_bf16_to_f32(v); return 0; }
    case NM_DTYPE_F32: { float v; memcpy(&v, p + 4 * i, 4); *out = v; return 0; }
    case NM_DTYPE_F64: { double v; memcpy(&v, p + 8 * i, 8); *out = v; return 0; }
    default: return -1;
    }
}

/* The tensor's bytes as the converter sees them: in place when possible, else gathered into
 * *scratch (grown as needed). */
static const unsigned char *tensor_bytes(const torch_model *m, const torch_tensor *t, unsigned char **scratch,
                                         size_t *cap, nm_error *err) {
    if (t->data)
        return t->data;
    if (*cap < t->size) {
        unsigned char *n = realloc(*scratch, t->size);
        if (!n) {
            nm_fail(err, "out of memory reading tensor %.200s (%zu bytes)", t->name, t->size);
            return NULL;
        }
        *scratch = n;
        *cap = t->size;
    }
    if (torch_tensor_read(m, t, *scratch, err))
        return NULL;
    return *scratch;
}

/* The library prefixes messages with the file; main prefixes the argument already. */
static void drop_path_prefix(nm_error *err, const char *path) {
    size_t n = strlen(path);
    if (!strncmp(err->msg, path, n) && err->msg[n] == ':' && err->msg[n + 1] == ' ')
        memmove(err->msg, err->msg + n + 2, strlen(err->msg + n + 2) + 1);
}

int inspect_torch(const char *path, const inspect_options *opts, cJSON *out, nm_error *err) {
    torch_open_options topts = {.state_key = opts->state_key};
    torch_model *m = torch_open(path, &topts, err);
    if (!m) {
        drop_path_prefix(err, path);
        return -1;
    }
    int rc = -1;
    unsigned char *scratch = NULL;
    size_t scratch_cap = 0;
    const torch_tensor *only = NULL;
    if (opts->tensor) {
        only = torch_find(m, opts->tensor);
        if (!only) {
            nm_fail(err, "no tensor named '%.200s'", opts->tensor);
            goto done;
        }
    }
    long want_values = opts->values > 0 ? opts->values : 0;
    if (want_values) {
        double v;
        unsigned char zero[8] = {0};
        if (!only) {
            nm_fail(err, "--values needs --tensor NAME");
            goto done;
        }
        if (value_at(only->dtype, zero, 0, &v) != 0) {
            nm_fail(err, "tensor '%.200s': printing values of dtype %s is not supported", only->name,
                    nm_dtype_name(only->dtype));
            goto done;
        }
    }
    size_t n_files = torch_file_count(m), n = torch_tensor_count(m);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += torch_tensor_at(m, i)->size;
    const char *container = torch_file_format(m, 0);

    if (opts->json) {
        cJSON_AddStringToObject(out, "file", path);
        cJSON_AddStringToObject(out, "format", "torch");
        cJSON_AddStringToObject(out, "container", container);
        cJSON *files = cJSON_AddArrayToObject(out, "files");
        for (size_t f = 0; f < n_files; f++)
            cJSON_AddItemToArray(files, cJSON_CreateString(torch_file_path(m, f)));
        cJSON *meta = cJSON_AddObjectToObject(out, "metadata");
        if (opts->state_key)
            cJSON_AddStringToObject(meta, "state_key", opts->state_key);
        cJSON_AddNumberToObject(out, "tensor_count", (double)n);
        cJSON_AddNumberToObject(out, "data_bytes", (double)total);
        cJSON *arr = cJSON_AddArrayToObject(out, "tensors");
        if (!files || !meta || !arr) {
            nm_fail(err, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const torch_tensor *t = torch_tensor_at(m, i);
            if (only && t != only)
                continue;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, o);
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "type", nm_dtype_name(t->dtype));
            cJSON *sh = cJSON_AddArrayToObject(o, "shape");
            for (uint32_t d = 0; d < t->n_dims; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
            cJSON_AddNumberToObject(o, "bytes", (double)t->size);
            cJSON_AddStringToObject(o, "storage", t->storage_key);
            cJSON_AddBoolToObject(o, "contiguous", t->contiguous);
            cJSON_AddBoolToObject(o, "in_place", t->data != NULL);
            if (n_files > 1)
                cJSON_AddStringToObject(o, "file", torch_file_path(m, t->file_index));
            const unsigned char *bytes = NULL;
            if (opts->hash || (want_values && t == only)) {
                bytes = tensor_bytes(m, t, &scratch, &scratch_cap, err);
                if (!bytes)
                    goto done;
            }
            if (opts->hash) {
                char hex[17];
                snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH3_64bits(bytes, t->size));
                cJSON_AddStringToObject(o, "xxh3", hex);
            }
            if (want_values && t == only) {
                cJSON *vals = cJSON_AddArrayToObject(o, "values");
                uint64_t cnt = inspect_element_count(t->shape, t->n_dims);
                for (uint64_t k = 0; k < cnt && k < (uint64_t)want_values; k++) {
                    double v = 0;
                    value_at(t->dtype, bytes, (size_t)k, &v);
                    cJSON_AddItemToArray(vals, isfinite(v) ? cJSON_CreateNumber(v)
                                                           : cJSON_CreateString(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"));
                }
            }
        }
        rc = 0;
        goto done;
    }

    char size_buf[32];
    printf("%s: torch checkpoint (%s), %zu tensors, %s of data in %zu file%s\n", path, container, n,
           nm_format_bytes(total, size_buf, sizeof size_buf), n_files, n_files == 1 ? "" : "s");
    if (n_files > 1)
        for (size_t f = 0; f < n_files; f++)
            printf("  file %zu: %s\n", f, torch_file_path(m, f));
    size_t name_w = 4;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(torch_tensor_at(m, i)->name);
        if ((!only || torch_tensor_at(m, i) == only) && l > name_w)
            name_w = l < 60 ? l : 60;
    }
    printf("%-*s  %-5s  %-20s  %12s  %-9s  %-10s%s%s\n", (int)name_w, "name", "type", "shape", "bytes", "storage",
           "layout", n_files > 1 ? "  file" : "", opts->hash ? "  xxh3" : "");
    for (size_t i = 0; i < n; i++) {
        const torch_tensor *t = torch_tensor_at(m, i);
        if (only && t != only)
            continue;
        char sh[200];
        inspect_shape_text(t->shape, t->n_dims, sh, sizeof sh);
        inspect_print_escaped(t->name);
        size_t l = strlen(t->name);
        printf("%*s  %-5s  %-20s  %12zu  ", (int)(l < name_w ? name_w - l : 0), "", nm_dtype_name(t->dtype), sh, t->size);
        inspect_print_escaped(t->storage_key);
        l = strlen(t->storage_key);
        printf("%*s  %-10s", (int)(l < 9 ? 9 - l : 0), "", t->contiguous ? "contiguous" : "strided");
        if (n_files > 1)
            printf("  %4u", t->file_index);
        if (opts->hash) {
            const unsigned char *bytes = tensor_bytes(m, t, &scratch, &scratch_cap, err);
            if (!bytes)
                goto done;
            printf("  %016" PRIx64, (uint64_t)XXH3_64bits(bytes, t->size));
        }
        putchar('\n');
    }
    if (want_values) {
        const unsigned char *bytes = tensor_bytes(m, only, &scratch, &scratch_cap, err);
        if (!bytes)
            goto done;
        uint64_t cnt = inspect_element_count(only->shape, only->n_dims);
        printf("values of ");
        inspect_print_escaped(only->name);
        printf(" (first %" PRIu64 " of %" PRIu64 "):\n", cnt < (uint64_t)want_values ? cnt : (uint64_t)want_values, cnt);
        for (uint64_t k = 0; k < cnt && k < (uint64_t)want_values; k++) {
            double v = 0;
            value_at(only->dtype, bytes, (size_t)k, &v);
            printf("  %.9g", v);
            if (k % 8 == 7 || k + 1 == cnt || k + 1 == (uint64_t)want_values)
                putchar('\n');
        }
    }
    rc = fflush(stdout) == 0 ? 0 : nm_fail(err, "cannot write the output");
done:
    free(scratch);
    torch_close(m);
    return rc;
}
