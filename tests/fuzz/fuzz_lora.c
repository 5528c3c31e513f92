/* libFuzzer target for the LoRA parsers (formats/lora.h). The first byte picks what the rest is:
 *   0: a GGUF file, checked as an adapter (nm_lora_open) and its pairs against made-up bases;
 *   1: adapter_config.json text, a NUL byte, then an adapter_model.safetensors image
 *      (nm_peft_open_memory, then every module and vector read as floats);
 *   else: adapter_config.json text alone (nm_peft_config_parse, patterns looked up).
 * Every refusal must be one line; nothing may read outside the input.
 *   make fuzz-lora FUZZ_TIME=600 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/lora.h"

static void one_line(const nm_error *err) {
    if (!err->msg[0] || strchr(err->msg, '\n')) abort();
}

static void gguf_case(const uint8_t *data, size_t size) {
    nm_error err = {{0}};
    gguf_reader *g = gguf_open_memory(data, size, &err);
    if (!g) return;
    nm_lora l;
    if (nm_lora_open(&l, g, &err) == 0) {
        for (size_t i = 0; i < l.n_pairs; i++) {
            const nm_lora_pair *p = &l.pairs[i];
            if (nm_lora_find(&l, p->target) != p || p->rank < 1) abort();
            (void)nm_lora_pair_scale(&l, p, 0.5f);
            int64_t ne[4] = {p->a->ne[0], p->b->ne[1], 1, 1};
            (void)nm_lora_check_base(p, ne, &err);
        }
        nm_lora_free(&l);
    } else {
        one_line(&err);
    }
    gguf_close(g);
}

static void peft_case(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul) return;
    const size_t cfg_len = (size_t)(nul - data);
    const size_t st_len = size - cfg_len - 1;
    uint8_t *st = malloc(st_len ? st_len : 1); /* a private copy so ASan sees reads past its end */
    if (!st) return;
    memcpy(st, nul + 1, st_len);
    nm_error err = {{0}};
    nm_peft *p = nm_peft_open_memory((const char *)data, cfg_len, st, st_len, &err);
    if (!p) {
        one_line(&err);
        free(st);
        return;
    }
    for (size_t i = 0; i < nm_peft_module_count(p); i++) {
        const nm_peft_module *m = nm_peft_module_at(p, i);
        if (m->rank < 1 || m->a.rows != m->rank || m->b.cols != m->rank) abort();
        const nm_peft_tensor *t[2] = {&m->a, &m->b};
        for (int k = 0; k < 2; k++) {
            float *f = malloc((size_t)(t[k]->rows * t[k]->cols) * sizeof(float) + 1);
            if (f && nm_peft_read_f32(p, t[k], f, &err)) one_line(&err);
            free(f);
        }
    }
    for (size_t i = 0; i < nm_peft_extra_count(p); i++) {
        const nm_peft_tensor *t = nm_peft_extra_at(p, i);
        float *f = malloc((size_t)t->cols * sizeof(float) + 1);
        if (f && nm_peft_read_f32(p, t, f, &err)) one_line(&err);
        free(f);
    }
    nm_peft_close(p);
    free(st);
}

static void config_case(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);
    if (!text) return;
    memcpy(text, data, size);
    nm_peft_config c;
    nm_error err = {{0}};
    if (nm_peft_config_parse(&c, text, size, "adapter_config.json", &err) == 0) {
        bool pat;
        (void)nm_peft_config_rank(&c, "model.layers.0.self_attn.q_proj", &pat);
        (void)nm_peft_config_alpha(&c, "lm_head", &pat);
        if (c.r < 1) abort();
        nm_peft_config_free(&c);
    } else {
        one_line(&err);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data, size);
    switch (buf[0]) {
    case 0: gguf_case(buf + 1, size - 1); break;
    case 1: peft_case(buf + 1, size - 1); break;
    default: config_case(buf + 1, size - 1); break;
    }
    free(buf);
    return 0;
}
