/* libFuzzer target: the pack container reader (header, index, chunk decoding). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nm_error err;
    nm_pack_reader *r = nm_pack_open_memory(data, size, &err);
    if (!r)
        return 0;
    nm_pack_options o = {.threads = 1, .quiet = true};
    nm_unpack(r, NULL, &o, &err);
    for (size_t i = 0; i < nm_pack_tensor_count(r) && i < 4; i++) {
        void *out = NULL;
        if (nm_pack_extract(r, nm_pack_tensor_at(r, i), &out, &err) == 0)
            free(out);
    }
    nm_pack_close(r);
    return 0;
}
