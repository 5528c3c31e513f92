/* libFuzzer target for the zip reader and the whole zip-format checkpoint path: the central
 * directory parse and every entry's payload lookup must stay inside the buffer, and
 * torch_open_memory must refuse with a one-line message or expose tensors whose bytes can all
 * be read (views are checked against their storages).
 *   make fuzz-zip FUZZ_TIME=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/torch.h"
#include "formats/zip.h"

static void check_msg(const nm_error *err) {
    if (!err->msg[0])
        abort();
    for (const char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); /* private copy: ASan sees reads past the end */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    nm_error err = {{0}};
    nm_zip *z = nm_zip_open_memory(buf, size, &err);
    if (!z) {
        check_msg(&err);
    } else {
        unsigned sum = 0;
        for (size_t i = 0; i < nm_zip_count(z); i++) {
            const nm_zip_entry *e = nm_zip_at(z, i);
            if (nm_zip_find(z, e->name) != e)
                abort();
            const uint8_t *p;
            if (nm_zip_payload(z, e, &p, &err) == 0) {
                if (p < buf || (size_t)(p - buf) > size || e->size > size - (size_t)(p - buf))
                    abort();
                for (uint64_t k = 0; k < e->size; k++)
                    sum += p[k];
            } else {
                check_msg(&err);
            }
        }
        (void)sum;
        nm_zip_close(z);
    }
    torch_model *m = torch_open_memory(buf, size, NULL, &err);
    if (!m) {
        check_msg(&err);
    } else {
        for (size_t i = 0; i < torch_tensor_count(m); i++) {
            const torch_tensor *t = torch_tensor_at(m, i);
            if (torch_find(m, t->name) != t)
                abort();
            void *dst = malloc(t->size ? t->size : 1);
            if (dst && torch_tensor_read(m, t, dst, &err))
                abort();
            free(dst);
        }
        torch_close(m);
    }
    free(buf);
    return 0;
}
