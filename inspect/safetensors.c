/* nomoat-inspect for safetensors files and sharded Hugging Face folders: metadata, a tensor
 * table (name, dtype, shape in PyTorch order, bytes, file offset), XXH3-64 hashes of each
 * tensor's bytes with --hash, and the first values of one tensor with --tensor/--values. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/cli.h"
#include "formats/safetensors.h"
#include "inspect/inspect.h"

/* Decodes element i of t as a double; -1 when the dtype has no scalar float reading here. */
static int value_at(const st_tensor *t, size_t i, double *out) {
    const unsigned char *p = t->data;
    switch (t->dtype) {
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
    case NM_DTYPE_F8_E5M2: *out = nm_f16_to_f32((uint16_t)(p[i] << 8)); return 0; /* the top byte of an f16 */
    case NM_DTYPE_F8_E4M3: {
        /* OCP E4M3FN: bias 7, no infinities, S.1111.111 is NaN */
        unsigned e = (p[i] >> 3) & 15, m = p[i] & 7;
        double v = (e == 15 && m == 7) ? NAN : e ? ldexp(1.0 + m / 8.0, (int)e - 7) : ldexp(m / 8.0, -6);
        *out = p[i] & 0x80 ? -v : v;
        return 0;
    }
    case NM_DTYPE_F8_E8M0: *out = p[i] == 0xFF ? NAN : ldexp(1.0, p[i] - 127); return 0;
    case NM_DTYPE_F4: {
        /* E2M1, two per byte, element 0 in the low nibble */
        static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
        unsigned nib = (p[i / 2] >> (4 * (i & 1))) & 15;
        *out = nib & 8 ? -mag[nib & 7] : mag[nib & 7];
        return 0;
    }
    default: return -1;
    }
}

/* Element i as text: integers exactly (64-bit ones too); floats as the shortest decimal that
 * reads back as exactly the value (exact, for JSON; and F64 always) or with 9 significant
 * digits (text tables: enough to identify a float); "nan"/"inf"/"-inf" for non-finite values.
 * Returns 1 when the text is a JSON number, 0 when it must be quoted, -1 if unsupported. */
static int format_value(const st_tensor *t, size_t i, bool exact, char *buf, size_t cap) {
    const unsigned char *p = t->data;
    if (t->dtype == NM_DTYPE_I64) {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        snprintf(buf, cap, "%" PRId64, v);
        return 1;
    }
    if (t->dtype == NM_DTYPE_U64) {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        snprintf(buf, cap, "%" PRIu64, v);
        return 1;
    }
    double v;
    if (value_at(t, i, &v) != 0)
        return -1;
    if (!isfinite(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return 0;
    }
    switch (t->dtype) {
    case NM_DTYPE_BOOL: case NM_DTYPE_U8: case NM_DTYPE_I8: case NM_DTYPE_I16:
    case NM_DTYPE_U16: case NM_DTYPE_I32: case NM_DTYPE_U32:
        snprintf(buf, cap, "%lld", (long long)v); /* exact in a double */
        return 1;
    default:
        break;
    }
    if (exact || t->dtype == NM_DTYPE_F64) {
        /* the shortest decimal that reads back as exactly this double */
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(buf, cap, "%.*g", digits, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        return 1;
    }
    snprintf(buf, cap, "%.9g", v); /* text: enough digits to identify the float */
    return 1;
}

/* JSON integers beyond 15 digits: cJSON would print them through a double with %1.15g. */
static cJSON *json_u64(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

int inspect_safetensors(const char *path, const inspect_options *opts, cJSON *out, nm_error *err) {
    st_model *m = st_open(path, err);
    if (!m)
        return -1;
    int rc = -1;
    const st_tensor *only = NULL;
    if (opts->tensor) {
        only = st_find(m, opts->tensor);
        if (!only) {
            nm_fail(err, "no tensor named '%.200s'", opts->tensor);
            goto done;
        }
    }
    long want_values = opts->values > 0 ? opts->values : 0;
    if (want_values) {
        if (!only) {
            nm_fail(err, "--values needs --tensor NAME");
            goto done;
        }
        char probe[40];
        if (inspect_element_count(only->shape, only->n_dims) > 0 && format_value(only, 0, true, probe, sizeof probe) < 0) {
            nm_fail(err, "tensor '%.200s': printing values of dtype %s is not supported", only->name,
                    nm_dtype_name(only->dtype));
            goto done;
        }
    }
    size_t n_files = st_file_count(m), n = st_tensor_count(m);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += st_tensor_at(m, i)->size;

    if (opts->json) {
        cJSON_AddStringToObject(out, "file", path);
        cJSON_AddStringToObject(out, "format", "safetensors");
        cJSON *files = cJSON_AddArrayToObject(out, "files");
        for (size_t f = 0; f < n_files; f++)
            cJSON_AddItemToArray(files, cJSON_CreateString(st_file_path(m, f)));
        cJSON *meta = cJSON_AddObjectToObject(out, "metadata");
        for (size_t i = 0; i < st_metadata_count(m); i++) {
            const char *k, *v;
            st_metadata_at(m, i, &k, &v);
            cJSON_AddStringToObject(meta, k, v);
        }
        cJSON_AddNumberToObject(out, "tensor_count", (double)n);
        cJSON_AddItemToObject(out, "data_bytes", json_u64(total));
        cJSON *arr = cJSON_AddArrayToObject(out, "tensors");
        if (!files || !meta || !arr) {
            nm_fail(err, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const st_tensor *t = st_tensor_at(m, i);
            if (only && t != only)
                continue;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, o);
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "type", nm_dtype_name(t->dtype));
            cJSON *sh = cJSON_AddArrayToObject(o, "shape");
            for (uint32_t d = 0; d < t->n_dims; d++)
                cJSON_AddItemToArray(sh, json_u64(t->shape[d]));
            cJSON_AddItemToObject(o, "bytes", json_u64(t->size));
            cJSON_AddItemToObject(o, "offset", json_u64(t->offset));
            if (n_files > 1)
                cJSON_AddStringToObject(o, "file", st_file_path(m, t->file_index));
            if (opts->hash) {
                char hex[17];
                snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH3_64bits(t->data, t->size));
                cJSON_AddStringToObject(o, "xxh3", hex);
            }
            if (want_values) {
                cJSON *vals = cJSON_AddArrayToObject(o, "values");
                uint64_t cnt = inspect_element_count(t->shape, t->n_dims);
                for (uint64_t k = 0; k < cnt && k < (uint64_t)want_values; k++) {
                    char buf[40];
                    /* JSON has no NaN/Inf: those print as strings */
                    int num = format_value(t, (size_t)k, true, buf, sizeof buf);
                    cJSON_AddItemToArray(vals, num == 1 ? cJSON_CreateRaw(buf) : cJSON_CreateString(buf));
                }
            }
        }
        rc = 0;
        goto done;
    }

    char size_buf[32];
    printf("%s: safetensors, %zu tensors, %s of data in %zu file%s\n", path, n,
           nm_format_bytes(total, size_buf, sizeof size_buf), n_files, n_files == 1 ? "" : "s");
    if (n_files > 1)
        for (size_t f = 0; f < n_files; f++)
            printf("  file %zu: %s\n", f, st_file_path(m, f));
    if (st_metadata_count(m)) {
        printf("metadata:\n");
        for (size_t i = 0; i < st_metadata_count(m); i++) {
            const char *k, *v;
            st_metadata_at(m, i, &k, &v);
            printf("  ");
            inspect_print_escaped(k);
            printf(" = ");
            inspect_print_escaped(v);
            putchar('\n');
        }
    }
    size_t name_w = 4;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(st_tensor_at(m, i)->name);
        if ((!only || st_tensor_at(m, i) == only) && l > name_w)
            name_w = l < 60 ? l : 60;
    }
    printf("%-*s  %-7s  %-20s  %12s  %12s%s%s\n", (int)name_w, "name", "type", "shape", "bytes", "offset",
           n_files > 1 ? "  file" : "", opts->hash ? "  xxh3" : "");
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_tensor_at(m, i);
        if (only && t != only)
            continue;
        char sh[200];
        inspect_shape_text(t->shape, t->n_dims, sh, sizeof sh);
        inspect_print_escaped(t->name);
        size_t l = strlen(t->name);
        printf("%*s  %-7s  %-20s  %12zu  %12" PRIu64, (int)(l < name_w ? name_w - l : 0), "", nm_dtype_name(t->dtype), sh,
               t->size, t->offset);
        if (n_files > 1)
            printf("  %4u", t->file_index);
        if (opts->hash)
            printf("  %016" PRIx64, (uint64_t)XXH3_64bits(t->data, t->size));
        putchar('\n');
    }
    if (want_values) {
        uint64_t cnt = inspect_element_count(only->shape, only->n_dims);
        printf("values of ");
        inspect_print_escaped(only->name);
        printf(" (first %" PRIu64 " of %" PRIu64 "):\n", cnt < (uint64_t)want_values ? cnt : (uint64_t)want_values, cnt);
        for (uint64_t k = 0; k < cnt && k < (uint64_t)want_values; k++) {
            char buf[40];
            format_value(only, (size_t)k, false, buf, sizeof buf);
            printf("  %s", buf);
            if (k % 8 == 7 || k + 1 == cnt || k + 1 == (uint64_t)want_values)
                putchar('\n');
        }
    }
    rc = fflush(stdout) == 0 ? 0 : nm_fail(err, "cannot write the output");
done:
    st_close(m);
    return rc;
}
