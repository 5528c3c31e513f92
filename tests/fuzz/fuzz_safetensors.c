/* libFuzzer target for the safetensors reader: st_open_memory on arbitrary bytes must either
 * refuse with a one-line message or expose tensors that lie wholly inside the buffer.
 *   make fuzz-safetensors FUZZ_TIME=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy so ASan catches any read past the end */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    nm_error err = {{0}};
    st_model *m = st_open_memory(buf, size, &err);
    if (!m) {
        if (!err.msg[0] || strchr(err.msg, '\n'))
            abort(); /* every refusal explains itself in one line */
        free(buf);
        return 0;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < st_tensor_count(m); i++) {
        const st_tensor *t = st_tensor_at(m, i);
        if ((const uint8_t *)t->data < buf || t->offset > size || t->size > size - t->offset)
            abort();
        if (st_find(m, t->name) != t)
            abort();
        const uint8_t *p = t->data;
        for (size_t k = 0; k < t->size; k++)
            sum += p[k];
    }
    for (size_t i = 0; i < st_metadata_count(m); i++) {
        const char *k, *v;
        st_metadata_at(m, i, &k, &v);
        sum += (unsigned)strlen(k) + (unsigned)strlen(v);
    }
    st_close(m);
    free(buf);
    return (int)(sum & 0);
}
