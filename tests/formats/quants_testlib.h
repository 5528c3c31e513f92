/* Shared helpers for the quants tests: a minimal reader for the trusted GGUF test vectors in
 * tests/data/quant-vectors (our own copies of llama.cpp's output), FNV-1a and a PRNG. Kept
 * header-only so the arm64 cross test can use it without the rest of the library. */
#ifndef NOMOAT_QUANTS_TESTLIB_H
#define NOMOAT_QUANTS_TESTLIB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct qv_tensor {
    char name[64];
    int64_t ne[4];
    uint32_t type;
    const uint8_t *data;
} qv_tensor;

typedef struct qv_file {
    uint8_t *buf;
    size_t size;
    size_t n_tensors;
    qv_tensor t[64];
} qv_file;

static inline int qv_rd(const qv_file *f, size_t *o, void *dst, size_t n) {
    if (*o > f->size || f->size - *o < n)
        return -1;
    memcpy(dst, f->buf + *o, n);
    *o += n;
    return 0;
}

static inline int qv_skip_string(const qv_file *f, size_t *o) {
    uint64_t n;
    if (qv_rd(f, o, &n, 8) || n > f->size - *o)
        return -1;
    *o += n;
    return 0;
}

static inline int qv_skip_value(const qv_file *f, size_t *o, uint32_t type) {
    static const size_t sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8)
        return qv_skip_string(f, o);
    if (type == 9) {
        uint32_t et;
        uint64_t n;
        if (qv_rd(f, o, &et, 4) || qv_rd(f, o, &n, 8) || et == 9 || et > 12)
            return -1;
        for (uint64_t i = 0; i < n; i++)
            if (qv_skip_value(f, o, et))
                return -1;
        return 0;
    }
    if (type > 12)
        return -1;
    if (f->size - *o < sizes[type])
        return -1;
    *o += sizes[type];
    return 0;
}

/* Loads path (GGUF v3, alignment 32, at most 64 tensors). Returns 0 or -1. */
static inline int qv_load(const char *path, qv_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = malloc((size_t)sz);
    f->size = (size_t)sz;
    if (!f->buf || fread(f->buf, 1, f->size, fp) != f->size) {
        fclose(fp);
        free(f->buf);
        return -1;
    }
    fclose(fp);
    size_t o = 4;
    uint32_t version;
    uint64_t nt, nkv;
    if (memcmp(f->buf, "GGUF", 4) || qv_rd(f, &o, &version, 4) || qv_rd(f, &o, &nt, 8) ||
        qv_rd(f, &o, &nkv, 8) || nt > 64)
        goto bad;
    for (uint64_t i = 0; i < nkv; i++) {
        uint32_t type;
        if (qv_skip_string(f, &o) || qv_rd(f, &o, &type, 4) || qv_skip_value(f, &o, type))
            goto bad;
    }
    uint64_t offsets[64];
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t len;
        uint32_t nd;
        qv_tensor *t = &f->t[i];
        if (qv_rd(f, &o, &len, 8) || len >= sizeof t->name || qv_rd(f, &o, t->name, len) ||
            qv_rd(f, &o, &nd, 4) || nd > 4)
            goto bad;
        for (int d = 0; d < 4; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++)
            if (qv_rd(f, &o, &t->ne[d], 8))
                goto bad;
        if (qv_rd(f, &o, &t->type, 4) || qv_rd(f, &o, &offsets[i], 8))
            goto bad;
    }
    size_t data = (o + 31) / 32 * 32;
    for (uint64_t i = 0; i < nt; i++) {
        if (offsets[i] > f->size - data)
            goto bad;
        f->t[i].data = f->buf + data + offsets[i];
    }
    f->n_tensors = nt;
    return 0;
bad:
    free(f->buf);
    f->buf = NULL;
    return -1;
}

static inline const qv_tensor *qv_find(const qv_file *f, const char *name) {
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

static inline uint32_t fnv1a(const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

/* xorshift64*: deterministic test data. */
static inline uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static inline float rng_unit(uint64_t *s) { /* [0, 1) */
    return (float)(rng_next(s) >> 40) * 0x1p-24f;
}

#endif
