/* libFuzzer target for nomoat-quantize's importance-matrix readers (GGUF and legacy .dat):
 * arbitrary bytes must be refused with a one-line message or give entries whose every value
 * is finite and not negative.
 *   make fuzz-imatrix FUZZ_TIME=600
 * The reader is private to quantize/, so it is compiled into this target directly. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quantize/imatrix.c"
#include "quantize/recipe.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); /* a private copy so ASan sees reads past the end */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    nm_error err = {{0}};
    qt_imatrix *m = qt_imatrix_load_memory(buf, size, "fuzz", &err);
    if (!m) {
        if (!err.msg[0] || strchr(err.msg, '\n'))
            abort();
        free(buf);
        return 0;
    }
    if (m->n_entries == 0)
        abort();
    for (size_t i = 0; i < m->n_entries; i++) {
        const qt_imatrix_entry *e = &m->entries[i];
        if (!e->name || qt_imatrix_find(m, e->name) == NULL)
            abort();
        for (size_t k = 0; k < e->n; k++)
            if (!isfinite(e->values[k]) || e->values[k] < 0)
                abort();
    }
    qt_imatrix_free(m);
    free(buf);
    return 0;
}
