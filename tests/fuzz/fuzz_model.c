/* libFuzzer target for nomoat-verify's model loader and forward pass: a GGUF file in any model
 * family (arch/) whose hyper-parameters, tensor shapes, types, biases and norms are arbitrary must
 * either be refused with one printable line or load into a model whose evaluation stays inside
 * the file and its own buffers. Loaded models that are small enough are evaluated on two tokens
 * (the first and the last id) with one thread, and a third call at a position past the context
 * must be refused. Seeds: tests/fuzz/seeds/model (tests/fuzz/make_model_seeds.py: one tiny model
 * per family).
 *   make fuzz-model FUZZ_TIME=600 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "verify/model.h"

static void one_line(const nm_error *err) {
    if (!err->msg[0])
        abort(); /* every refusal explains itself ... */
    for (const char *c = err->msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            abort(); /* ... in one printable line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); /* a private copy: ASan sees reads past the end */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    nm_error err = {{0}};
    gguf_reader *g = gguf_open_memory(buf, size, &err);
    if (!g) {
        free(buf);
        return 0; /* the GGUF reader's own target checks these refusals */
    }
    vm_model m;
    memset(&m, 0, sizeof m);
    if (vm_model_load(&m, g, &err) != 0) {
        one_line(&err);
        gguf_close(g);
        free(buf);
        return 0;
    }
    if (getenv("NOMOAT_FUZZ_VERBOSE"))
        fprintf(stderr, "loaded %s: embd %d, layers %d, heads %d/%d, head_dim %d, ff %d, vocab %d\n",
                m.family->name, m.n_embd, m.n_layer, m.n_head, m.n_head_kv, m.head_dim, m.n_ff, m.n_vocab);
    /* evaluation cost is about layers × (embd × (embd + ff)) + vocab × embd per token */
    double work = (double)m.n_layer * m.n_embd * ((double)m.n_embd + m.n_ff) + (double)m.n_vocab * m.n_embd;
    if (work <= 4e6 && m.n_vocab <= 1 << 16) {
        nm_pool *pool = nm_pool_create(1);
        vm_ctx *c = pool ? vm_ctx_create(&m, 4, pool, false, &err) : NULL;
        if (c) {
            float *logits = malloc(2 * (size_t)m.n_vocab * sizeof *logits);
            int32_t tokens[2] = {0, m.n_vocab - 1};
            if (logits) {
                if (vm_eval(c, tokens, 2, 0, 0, logits, &err) != 0)
                    one_line(&err);
                volatile float sink = logits[0] + logits[2 * (size_t)m.n_vocab - 1];
                (void)sink;
                memset(&err, 0, sizeof err);
                if (vm_eval(c, tokens, 2, 3, 0, logits, &err) == 0)
                    abort(); /* positions 3 and 4 do not fit a context of 4 */
                one_line(&err);
                free(logits);
            }
            vm_ctx_free(c);
        } else if (pool) {
            one_line(&err);
        }
        if (pool)
            nm_pool_destroy(pool);
    }
    vm_model_free(&m);
    gguf_close(g);
    free(buf);
    return 0;
}
