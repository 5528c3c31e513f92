/* libFuzzer target for the GGUF reader: gguf_open_memory on arbitrary bytes must either refuse
 * with a one-line message or expose a model whose every accessor stays inside the buffer.
 *   make fuzz-gguf FUZZ_TIME=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"

static const uint8_t *lo, *hi;

static void inside(const void *p, uint64_t n) {
    const uint8_t *q = p;
    if (n && (q < lo || q > hi || n > (uint64_t)(hi - q)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy so ASan catches any read past the end */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    lo = buf;
    hi = buf + size;
    nm_error err = {{0}};
    gguf_reader *g = gguf_open_memory(buf, size, &err);
    if (!g) {
        if (!err.msg[0])
            abort(); /* every refusal explains itself ... */
        for (const char *c = err.msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                abort(); /* ... in one printable line */
        free(buf);
        return 0;
    }
    unsigned sum = gguf_version(g) + gguf_alignment(g) + gguf_file_count(g);
    if (gguf_data_offset(g, 0) > gguf_file_size(g, 0) && gguf_tensor_count(g) > 0)
        abort();
    if (gguf_file_data(g, 0) != buf || gguf_file_data(g, 1) != NULL)
        abort();
    for (size_t i = 0; i < gguf_kv_count(g); i++) {
        const char *key = gguf_kv_key(g, i);
        const gguf_value *v = gguf_kv_value(g, i);
        if (!key || !v || !*key || gguf_find_key(g, key) != (int64_t)i || gguf_get(g, key) != v)
            abort();
        sum += (unsigned)strlen(key) + (unsigned)gguf_type_size(v->type) + (unsigned)strlen(gguf_type_name(v->type));
        uint32_t u;
        float f;
        bool b;
        char *s = NULL;
        nm_error e2;
        sum += (unsigned)gguf_get_u32(g, key, &u, &e2) + (unsigned)gguf_get_f32(g, key, &f, &e2) +
               (unsigned)gguf_get_bool(g, key, &b, &e2);
        if (gguf_get_string(g, key, &s, &e2) == 0) {
            inside(v->str.ptr, v->str.len);
            sum += (unsigned)strlen(s);
            free(s);
        }
        if (v->type == GGUF_TYPE_ARRAY) {
            if (v->arr.type == GGUF_TYPE_ARRAY || v->arr.type >= GGUF_TYPE_COUNT)
                abort();
            if (v->arr.type == GGUF_TYPE_STRING) {
                for (uint64_t k = 0; k < v->arr.count; k++) {
                    inside(v->arr.strings[k].ptr, v->arr.strings[k].len);
                    if (v->arr.strings[k].len)
                        sum += (unsigned char)v->arr.strings[k].ptr[v->arr.strings[k].len - 1];
                }
            } else {
                inside(v->arr.data, v->arr.count * gguf_type_size(v->arr.type));
                for (uint64_t k = 0; k <= v->arr.count; k++) {
                    double d = gguf_array_f64(v, k);
                    sum += (unsigned)gguf_array_i64(v, k) + (d != d ? 1u : d > 0 ? 2u : 3u);
                }
            }
        }
    }
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        size_t size2;
        if (gguf_find_tensor(g, t->name) != t || strlen(t->name) >= GGUF_MAX_NAME || t->n_dims > 4 ||
            ggml_tensor_size(t->type, t->ne, &size2) != 0 || size2 != t->size)
            abort();
        if ((const uint8_t *)t->data != buf + gguf_data_offset(g, 0) + t->offset)
            abort();
        inside(t->data, t->size);
        const uint8_t *p = t->data;
        sum += p[0] + p[t->size - 1];
    }
    if (gguf_tensor(g, gguf_tensor_count(g)) != NULL || gguf_kv_key(g, gguf_kv_count(g)) != NULL)
        abort();
    gguf_close(g);
    free(buf);
    return (int)(sum & 0);
}
