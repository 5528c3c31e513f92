/* Helpers shared by the listers whose tensors carry PyTorch-order shapes (safetensors, torch). */
#include <inttypes.h>
#include <stdio.h>

#include "inspect/inspect.h"

uint64_t inspect_element_count(const uint64_t *shape, uint32_t n_dims) {
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        n *= shape[d]; /* validated by the readers at open: no overflow */
    return n;
}

void inspect_print_escaped(const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

void inspect_shape_text(const uint64_t *shape, uint32_t n_dims, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %" PRIu64 : "%" PRIu64, shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}
