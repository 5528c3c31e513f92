/* nomoat-inspect for GGUF files (and split models, listed as one): header facts, every metadata
 * entry with its type, a tensor table (name, type, shape in GGUF order ne[0] first, bytes, file
 * offset), XXH3-64 of each tensor's bytes with --hash, and the first values of one tensor with
 * --tensor/--values (quantized types through nm_dequantize_row). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/cli.h"
#include "formats/gguf.h"
#include "formats/quants.h"
#include "formats/lora.h"
#include "arch/arch.h"
#include "inspect/inspect.h"

#define TEXT_ARRAY_ITEMS 8 /* array elements shown in the text listing */

/* ---- values of a tensor ---- */

static bool values_supported(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_F64:
    case GGML_TYPE_I8: case GGML_TYPE_I16: case GGML_TYPE_I32: case GGML_TYPE_I64:
        return true;
    default:
        return nm_dequantize_supported(type);
    }
}

static uint64_t element_count(const gguf_tensor_info *t) {
    return (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3]; /* checked at open */
}

/* The first n values of t as floats (doubles for F64/I64), into a malloc'ed array. */
static double *first_values(const gguf_tensor_info *t, uint64_t n, nm_error *err) {
    double *out = malloc((n ? n : 1) * sizeof *out);
    if (!out) {
        nm_fail(err, "out of memory for %" PRIu64 " values", n);
        return NULL;
    }
    const unsigned char *p = t->data;
    const ggml_type_info *ti = ggml_type_get(t->type);
    if (!ti->quantized) {
        for (uint64_t i = 0; i < n; i++) {
            const unsigned char *q = p + i * ti->type_size;
            switch (t->type) {
            case GGML_TYPE_F32: { float v; memcpy(&v, q, 4); out[i] = v; break; }
            case GGML_TYPE_F16: { uint16_t v; memcpy(&v, q, 2); out[i] = nm_f16_to_f32(v); break; }
            case GGML_TYPE_BF16: { uint16_t v; memcpy(&v, q, 2); out[i] = nm_bf16_to_f32(v); break; }
            case GGML_TYPE_F64: { double v; memcpy(&v, q, 8); out[i] = v; break; }
            case GGML_TYPE_I8: out[i] = (int8_t)*q; break;
            case GGML_TYPE_I16: { int16_t v; memcpy(&v, q, 2); out[i] = v; break; }
            case GGML_TYPE_I32: { int32_t v; memcpy(&v, q, 4); out[i] = v; break; }
            case GGML_TYPE_I64: { int64_t v; memcpy(&v, q, 8); out[i] = (double)v; break; }
            default: out[i] = 0;
            }
        }
        return out;
    }
    /* Quantized: dequantize whole blocks of one row at a time, only as many as needed. */
    uint64_t row_len = (uint64_t)t->ne[0], row_bytes = row_len / ti->block_size * ti->type_size;
    float *row = malloc(row_len * sizeof *row);
    if (!row) {
        free(out);
        nm_fail(err, "out of memory for a row of %" PRIu64 " values", row_len);
        return NULL;
    }
    for (uint64_t done = 0, r = 0; done < n; r++) {
        uint64_t want = n - done < row_len ? n - done : row_len;
        uint64_t blocks = (want + ti->block_size - 1) / ti->block_size;
        nm_dequantize_row(t->type, p + r * row_bytes, row, (int64_t)(blocks * ti->block_size));
        for (uint64_t k = 0; k < want; k++)
            out[done + k] = row[k];
        done += want;
    }
    free(row);
    return out;
}

/* ---- JSON ---- */

/* Valid UTF-8 copy (invalid sequences and NUL become U+FFFD) so the JSON document stays valid. */
static char *utf8_clean(const char *s, uint64_t len) {
    char *out = malloc((size_t)len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (uint64_t i = 0; i < len;) {
        unsigned c = p[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = c != 0 && n > 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++)
            ok = (p[i + k] & 0xC0) == 0x80;
        if (ok && n > 1) { /* overlong, surrogates, beyond U+10FFFF */
            uint32_t cp = c & (0x7F >> n);
            for (size_t k = 1; k < n; k++)
                cp = (cp << 6) | (p[i + k] & 0x3F);
            ok = !(cp < (n == 2 ? 0x80u : n == 3 ? 0x800u : 0x10000u)) && !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= 0x10FFFF;
        }
        if (ok) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* Shortest decimal that reads back as the same float (or double). */
static void shortest_float(double v, bool single, char *buf, size_t cap) {
    for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (single ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            return;
    }
}

static cJSON *number_json(double v, bool single) {
    if (!isfinite(v))
        return cJSON_CreateString(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    char buf[40];
    shortest_float(v, single, buf, sizeof buf);
    return cJSON_CreateRaw(buf);
}

static cJSON *string_json(const gguf_string *s) {
    char *clean = utf8_clean(s->ptr, s->len);
    cJSON *j = clean ? cJSON_CreateString(clean) : NULL;
    free(clean);
    return j;
}

/* One scalar element (of `type`) stored at p, as JSON. */
static cJSON *scalar_json(uint32_t type, const unsigned char *p) {
    char buf[32];
    switch (type) {
    case GGUF_TYPE_UINT8: return cJSON_CreateNumber(*p);
    case GGUF_TYPE_INT8: return cJSON_CreateNumber((int8_t)*p);
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); return cJSON_CreateNumber(v); }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); return cJSON_CreateNumber(v); }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); return cJSON_CreateNumber(v); }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); return cJSON_CreateNumber(v); }
    case GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); return number_json(v, true); }
    case GGUF_TYPE_FLOAT64: { double v; memcpy(&v, p, 8); return number_json(v, false); }
    case GGUF_TYPE_BOOL: return cJSON_CreateBool(*p != 0);
    /* 64-bit integers exactly, which a double could not hold */
    case GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); snprintf(buf, sizeof buf, "%" PRIu64, v); return cJSON_CreateRaw(buf); }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); snprintf(buf, sizeof buf, "%" PRId64, v); return cJSON_CreateRaw(buf); }
    default: return cJSON_CreateNull();
    }
}

static cJSON *value_json(const gguf_value *v) {
    if (v->type == GGUF_TYPE_STRING)
        return string_json(&v->str);
    if (v->type != GGUF_TYPE_ARRAY) {
        unsigned char raw[8];
        if (v->type == GGUF_TYPE_BOOL)
            raw[0] = v->b;
        else
            memcpy(raw, &v->u64, 8);
        return scalar_json(v->type, raw);
    }
    cJSON *arr = cJSON_CreateArray();
    size_t esize = gguf_type_size(v->arr.type);
    for (uint64_t i = 0; arr && i < v->arr.count; i++) {
        cJSON *e = v->arr.type == GGUF_TYPE_STRING ? string_json(&v->arr.strings[i])
                                                   : scalar_json(v->arr.type, (const unsigned char *)v->arr.data + i * esize);
        if (!e) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, e);
    }
    return arr;
}

/* ---- text ---- */

static void print_escaped(const char *s, uint64_t len) {
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            printf(c == '\\' ? "\\\\" : "\\x%02x", c);
        else
            putchar(c);
    }
}

static void print_scalar(uint32_t type, const unsigned char *p) {
    cJSON *j = scalar_json(type, p);
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(s ? s : "?", stdout);
    free(s);
    cJSON_Delete(j);
}

static void print_value(const gguf_value *v) {
    if (v->type == GGUF_TYPE_STRING) {
        putchar('"');
        print_escaped(v->str.ptr, v->str.len);
        putchar('"');
        return;
    }
    if (v->type != GGUF_TYPE_ARRAY) {
        unsigned char raw[8];
        if (v->type == GGUF_TYPE_BOOL)
            raw[0] = v->b;
        else
            memcpy(raw, &v->u64, 8);
        print_scalar(v->type, raw);
        return;
    }
    putchar('[');
    size_t esize = gguf_type_size(v->arr.type);
    for (uint64_t i = 0; i < v->arr.count && i < TEXT_ARRAY_ITEMS; i++) {
        if (i)
            fputs(", ", stdout);
        if (v->arr.type == GGUF_TYPE_STRING) {
            putchar('"');
            print_escaped(v->arr.strings[i].ptr, v->arr.strings[i].len);
            putchar('"');
        } else {
            print_scalar(v->arr.type, (const unsigned char *)v->arr.data + i * esize);
        }
    }
    if (v->arr.count > TEXT_ARRAY_ITEMS)
        printf(", ... %" PRIu64 " more", v->arr.count - TEXT_ARRAY_ITEMS);
    putchar(']');
}

static void shape_text(const gguf_tensor_info *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

static uint64_t file_offset(const gguf_reader *g, const gguf_tensor_info *t) {
    return gguf_data_offset(g, t->file_index) + t->offset;
}

/* The model family nomoat knows for this file's general.architecture, or NULL; a mixture of
 * experts (an <arch>.expert_count key) is the family of that name that has experts, when one has. */
static const nm_arch *family_of(const gguf_reader *g) {
    const gguf_value *a = gguf_get(g, "general.architecture");
    if (!a || a->type != GGUF_TYPE_STRING || a->str.len > 64)
        return NULL;
    char key[96];
    snprintf(key, sizeof key, "%.*s.expert_count", (int)a->str.len, a->str.ptr);
    const nm_arch *moe = gguf_get(g, key) ? nm_arch_by_name_experts(a->str.ptr, a->str.len, true) : NULL;
    return moe ? moe : nm_arch_by_name(a->str.ptr, a->str.len);
}

int inspect_gguf(const char *path, const inspect_options *opts, cJSON *out, nm_error *err) {
    gguf_reader *g = gguf_open(path, err);
    if (!g)
        return -1;
    int rc = -1;
    double *values = NULL;
    const gguf_tensor_info *only = NULL;
    if (opts->tensor && !(only = gguf_find_tensor(g, opts->tensor))) {
        nm_fail(err, "no tensor named '%.200s'", opts->tensor);
        goto done;
    }
    uint64_t n_values = 0;
    if (opts->values > 0) {
        if (!only) {
            nm_fail(err, "--values needs --tensor NAME");
            goto done;
        }
        if (!values_supported(only->type)) {
            nm_fail(err, "tensor '%.200s': values of type %s cannot be decoded yet", only->name,
                    ggml_type_name(only->type));
            goto done;
        }
        n_values = element_count(only) < (uint64_t)opts->values ? element_count(only) : (uint64_t)opts->values;
        if (!(values = first_values(only, n_values, err)))
            goto done;
    }
    size_t n_tensors = gguf_tensor_count(g), n_kv = gguf_kv_count(g);
    uint32_t n_files = gguf_file_count(g);
    uint64_t data_bytes = 0;
    for (size_t i = 0; i < n_tensors; i++)
        data_bytes += gguf_tensor(g, i)->size;

    if (opts->json) {
        cJSON_AddStringToObject(out, "file", path);
        cJSON_AddStringToObject(out, "format", "gguf");
        cJSON_AddNumberToObject(out, "version", gguf_version(g));
        cJSON_AddNumberToObject(out, "alignment", gguf_alignment(g));
        cJSON_AddNumberToObject(out, "tensor_count", (double)n_tensors);
        cJSON_AddNumberToObject(out, "data_bytes", (double)data_bytes);
        cJSON *files = cJSON_AddArrayToObject(out, "files");
        for (uint32_t f = 0; f < n_files; f++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(files, o);
            cJSON_AddNumberToObject(o, "size", (double)gguf_file_size(g, f));
            cJSON_AddNumberToObject(o, "data_offset", (double)gguf_data_offset(g, f));
        }
        cJSON *meta = cJSON_AddObjectToObject(out, "metadata");
        cJSON *types = cJSON_AddObjectToObject(out, "metadata_types");
        for (size_t i = 0; i < n_kv; i++) {
            const gguf_value *v = gguf_kv_value(g, i);
            cJSON *j = value_json(v);
            if (!j) {
                nm_fail(err, "out of memory");
                goto done;
            }
            char *key = utf8_clean(gguf_kv_key(g, i), strlen(gguf_kv_key(g, i)));
            if (!key) {
                cJSON_Delete(j);
                nm_fail(err, "out of memory");
                goto done;
            }
            cJSON_AddItemToObject(meta, key, j);
            char tname[32];
            if (v->type == GGUF_TYPE_ARRAY)
                snprintf(tname, sizeof tname, "ARRAY[%s]", gguf_type_name(v->arr.type));
            else
                snprintf(tname, sizeof tname, "%s", gguf_type_name(v->type));
            cJSON_AddStringToObject(types, key, tname);
            free(key);
        }
        if (nm_lora_is_adapter(g) && !only) inspect_lora_gguf(g, opts, out);
        const nm_arch *family = family_of(g);
        if (family && !only) {
            char blocks[512];
            nm_arch_describe(family, blocks, sizeof blocks);
            cJSON *fam = cJSON_AddObjectToObject(out, "family");
            cJSON_AddStringToObject(fam, "architecture", family->name);
            cJSON_AddStringToObject(fam, "blocks", blocks);
        }
        cJSON *arr = cJSON_AddArrayToObject(out, "tensors");
        for (size_t i = 0; i < n_tensors; i++) {
            const gguf_tensor_info *t = gguf_tensor(g, i);
            if (only && t != only)
                continue;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, o);
            char *name = utf8_clean(t->name, strlen(t->name));
            cJSON_AddStringToObject(o, "name", name ? name : "?");
            free(name);
            cJSON_AddStringToObject(o, "type", ggml_type_name(t->type));
            cJSON *sh = cJSON_AddArrayToObject(o, "shape");
            for (uint32_t d = 0; d < t->n_dims; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddNumberToObject(o, "bytes", (double)t->size);
            cJSON_AddNumberToObject(o, "offset", (double)file_offset(g, t));
            if (n_files > 1)
                cJSON_AddNumberToObject(o, "shard", t->file_index);
            if (opts->hash) {
                char hex[17];
                snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH3_64bits(t->data, t->size));
                cJSON_AddStringToObject(o, "xxh3", hex);
            }
            if (values && t == only) {
                cJSON *vals = cJSON_AddArrayToObject(o, "values");
                for (uint64_t k = 0; k < n_values; k++)
                    cJSON_AddItemToArray(vals, number_json(values[k], t->type != GGML_TYPE_F64 && t->type != GGML_TYPE_I64));
            }
        }
        rc = 0;
        goto done;
    }

    char size_buf[32], data_buf[32];
    uint64_t total_size = 0;
    for (uint32_t f = 0; f < n_files; f++)
        total_size += gguf_file_size(g, f);
    printf("%s: GGUF v%u, %s, %zu metadata entries, %zu tensors (%s of data), alignment %u", path, gguf_version(g),
           nm_format_bytes(total_size, size_buf, sizeof size_buf), n_kv, n_tensors,
           nm_format_bytes(data_bytes, data_buf, sizeof data_buf), gguf_alignment(g));
    if (n_files > 1)
        printf(", %u shards", n_files);
    putchar('\n');
    const nm_arch *family = family_of(g);
    if (family && !only && !nm_lora_is_adapter(g)) {
        char blocks[512];
        nm_arch_describe(family, blocks, sizeof blocks);
        printf("model: %s (%s)\n", family->name, blocks);
    }
    if (n_kv && !only) {
        size_t key_w = 0;
        for (size_t i = 0; i < n_kv; i++) {
            size_t l = strlen(gguf_kv_key(g, i));
            key_w = l > key_w ? (l < 48 ? l : 48) : key_w;
        }
        printf("metadata:\n");
        for (size_t i = 0; i < n_kv; i++) {
            const char *key = gguf_kv_key(g, i);
            const gguf_value *v = gguf_kv_value(g, i);
            char tname[40];
            if (v->type == GGUF_TYPE_ARRAY)
                snprintf(tname, sizeof tname, "%s[%" PRIu64 "]", gguf_type_name(v->arr.type), v->arr.count);
            else
                snprintf(tname, sizeof tname, "%s", gguf_type_name(v->type));
            printf("  ");
            print_escaped(key, strlen(key));
            size_t l = strlen(key);
            printf("%*s  %-14s  ", (int)(l < key_w ? key_w - l : 0), "", tname);
            print_value(v);
            putchar('\n');
        }
    }
    if (nm_lora_is_adapter(g) && !only) inspect_lora_gguf(g, opts, NULL);
    size_t name_w = 4;
    for (size_t i = 0; i < n_tensors; i++) {
        size_t l = strlen(gguf_tensor(g, i)->name);
        if ((!only || gguf_tensor(g, i) == only) && l > name_w)
            name_w = l;
    }
    printf("%-*s  %-7s  %-20s  %12s  %12s%s%s\n", (int)name_w, "name", "type", "shape", "bytes", "offset",
           n_files > 1 ? "  shard" : "", opts->hash ? "  xxh3" : "");
    for (size_t i = 0; i < n_tensors; i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        if (only && t != only)
            continue;
        char sh[200];
        shape_text(t, sh, sizeof sh);
        size_t l = strlen(t->name);
        print_escaped(t->name, l);
        printf("%*s  %-7s  %-20s  %12zu  %12" PRIu64, (int)(l < name_w ? name_w - l : 0), "", ggml_type_name(t->type),
               sh, t->size, file_offset(g, t));
        if (n_files > 1)
            printf("  %5u", t->file_index + 1);
        if (opts->hash)
            printf("  %016" PRIx64, (uint64_t)XXH3_64bits(t->data, t->size));
        putchar('\n');
    }
    if (values) {
        printf("values of ");
        print_escaped(only->name, strlen(only->name));
        printf(" (first %" PRIu64 " of %" PRIu64 "):\n", n_values, element_count(only));
        for (uint64_t k = 0; k < n_values; k++) {
            printf("  %.9g", values[k]);
            if (k % 8 == 7 || k + 1 == n_values)
                putchar('\n');
        }
    }
    rc = fflush(stdout) == 0 ? 0 : nm_fail(err, "cannot write the output");
done:
    free(values);
    gguf_close(g);
    return rc;
}
