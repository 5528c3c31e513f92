/* libFuzzer target for the restricted unpickler: pk_parse on arbitrary bytes must refuse with a
 * one-line message or return a value tree; the same bytes are also fed to torch_open_memory as
 * the object pickle of a legacy checkpoint (followed by whatever they hold as key list and raw
 * storages), which exercises the state-dict search and tensor view checks.
 *   make fuzz-pickle FUZZ_TIME=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pickle.h"
#include "formats/torch.h"

static void check_msg(const nm_error *err) {
    if (!err->msg[0])
        abort();
    for (const char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            abort(); /* one printable line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t legacy_head[] = {
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, /* magic */
        0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e,                                                     /* 1001 */
        0x80, 0x02, 0x7d, 0x2e,                                                                 /* {} */
    };
    uint8_t *buf = malloc(sizeof legacy_head + size + 1);
    if (!buf)
        return 0;
    memcpy(buf, legacy_head, sizeof legacy_head);
    memcpy(buf + sizeof legacy_head, data, size);
    const uint8_t *pkl = buf + sizeof legacy_head;

    nm_error err = {{0}};
    pk_options opts = {.max_bytes = 16u << 20};
    size_t used = 0;
    pk_doc *doc = pk_parse(pkl, size, &opts, &used, &err);
    if (!doc) {
        check_msg(&err);
    } else {
        if (used > size || !pk_root(doc))
            abort();
        for (size_t i = 0; i < pk_storage_count(doc); i++)
            if (!pk_storage_at(doc, i)->key)
                abort();
        pk_free(doc);
    }

    torch_model *m = torch_open_memory(buf, sizeof legacy_head + size, NULL, &err);
    if (!m) {
        check_msg(&err);
    } else {
        for (size_t i = 0; i < torch_tensor_count(m); i++) {
            const torch_tensor *t = torch_tensor_at(m, i);
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
