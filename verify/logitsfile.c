#include "verify/logitsfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "common/outfile.h"

#define MAGIC "NMLOGIT1"
#define HEADER_SIZE 36

uint64_t logits_token_hash(const int32_t *ids, size_t n) {
    XXH3_state_t *s = XXH3_createState();
    if (!s) return 0;
    XXH3_64bits_reset(s);
    for (size_t i = 0; i < n; i++) {
        uint8_t b[4] = {(uint8_t)ids[i], (uint8_t)(ids[i] >> 8), (uint8_t)(ids[i] >> 16), (uint8_t)((uint32_t)ids[i] >> 24)};
        XXH3_64bits_update(s, b, 4);
    }
    uint64_t h = XXH3_64bits_digest(s);
    XXH3_freeState(s);
    return h;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

struct logits_writer {
    nm_outfile *out;
    ZSTD_CCtx *cz;
    uint32_t n_vocab;
    uint8_t *shuf, *zbuf;
    size_t zcap;
};

void logits_writer_abort(logits_writer *w) {
    if (!w) return;
    nm_outfile_abort(w->out);
    ZSTD_freeCCtx(w->cz);
    free(w->shuf);
    free(w->zbuf);
    free(w);
}

logits_writer *logits_writer_create(const char *path, const logits_header *h, int n_threads, nm_error *err) {
    logits_writer *w = calloc(1, sizeof *w);
    if (!w) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    w->n_vocab = h->n_vocab;
    w->out = nm_outfile_create(path, NM_OUT_FORCE, err);
    if (!w->out) goto fail;
    w->cz = ZSTD_createCCtx();
    w->zcap = ZSTD_CStreamOutSize();
    w->shuf = malloc((size_t)h->n_vocab * 4);
    w->zbuf = malloc(w->zcap);
    if (!w->cz || !w->shuf || !w->zbuf) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    ZSTD_CCtx_setParameter(w->cz, ZSTD_c_compressionLevel, 3);
    if (n_threads > 1) ZSTD_CCtx_setParameter(w->cz, ZSTD_c_nbWorkers, n_threads); /* ignored without MT */
    uint8_t hdr[HEADER_SIZE];
    memcpy(hdr, MAGIC, 8);
    put32(hdr + 8, 1);
    put32(hdr + 12, h->n_ctx);
    put32(hdr + 16, h->n_vocab);
    put32(hdr + 20, h->n_chunk);
    put32(hdr + 24, h->first);
    put32(hdr + 28, (uint32_t)h->token_hash);
    put32(hdr + 32, (uint32_t)(h->token_hash >> 32));
    if (nm_outfile_write(w->out, hdr, sizeof hdr, err)) goto fail;
    return w;
fail:
    logits_writer_abort(w);
    return NULL;
}

static int compress_some(logits_writer *w, const void *src, size_t n, ZSTD_EndDirective mode, nm_error *err) {
    ZSTD_inBuffer in = {src, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zbuf, w->zcap, 0};
        size_t rem = ZSTD_compressStream2(w->cz, &out, &in, mode);
        if (ZSTD_isError(rem)) return nm_fail(err, "zstd: %s", ZSTD_getErrorName(rem));
        if (out.pos && nm_outfile_write(w->out, w->zbuf, out.pos, err)) return -1;
        if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size) return 0;
    }
}

int logits_writer_put(logits_writer *w, const float *logits, nm_error *err) {
    const size_t n = w->n_vocab;
    const uint8_t *b = (const uint8_t *)logits;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) w->shuf[(size_t)k * n + i] = b[4 * i + (size_t)k];
    return compress_some(w, w->shuf, n * 4, ZSTD_e_continue, err);
}

int logits_writer_finish(logits_writer *w, nm_error *err) {
    if (compress_some(w, NULL, 0, ZSTD_e_end, err)) {
        logits_writer_abort(w);
        return -1;
    }
    int rc = nm_outfile_commit(w->out, err);
    w->out = NULL;
    logits_writer_abort(w);
    return rc;
}

struct logits_reader {
    FILE *f;
    const char *path;
    ZSTD_DCtx *dz;
    uint32_t n_vocab;
    uint8_t *inbuf, *shuf;
    size_t incap;
    ZSTD_inBuffer in;
};

void logits_reader_close(logits_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    ZSTD_freeDCtx(r->dz);
    free(r->inbuf);
    free(r->shuf);
    free(r);
}

logits_reader *logits_reader_open(const char *path, logits_header *h, nm_error *err) {
    logits_reader *r = calloc(1, sizeof *r);
    if (!r) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f) {
        nm_fail(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    uint8_t hdr[HEADER_SIZE];
    if (fread(hdr, 1, sizeof hdr, r->f) != sizeof hdr || memcmp(hdr, MAGIC, 8) != 0) {
        nm_fail(err, "%s is not a nomoat logits file (saved with --save-logits)", path);
        goto fail;
    }
    if (get32(hdr + 8) != 1) {
        nm_fail(err, "%s: logits file version %u is not supported", path, get32(hdr + 8));
        goto fail;
    }
    h->n_ctx = get32(hdr + 12);
    h->n_vocab = get32(hdr + 16);
    h->n_chunk = get32(hdr + 20);
    h->first = get32(hdr + 24);
    h->token_hash = (uint64_t)get32(hdr + 28) | ((uint64_t)get32(hdr + 32) << 32);
    if (h->n_ctx < 4 || h->n_ctx > 1 << 20 || h->n_vocab < 1 || h->n_vocab > 1 << 24 || h->n_chunk < 1 ||
        h->n_chunk > 1 << 24 || h->first >= h->n_ctx - 1) {
        nm_fail(err, "%s: implausible header (n_ctx %u, n_vocab %u, chunks %u)", path, h->n_ctx, h->n_vocab, h->n_chunk);
        goto fail;
    }
    r->n_vocab = h->n_vocab;
    r->dz = ZSTD_createDCtx();
    r->incap = ZSTD_DStreamInSize();
    r->inbuf = malloc(r->incap);
    r->shuf = malloc((size_t)h->n_vocab * 4);
    if (!r->dz || !r->inbuf || !r->shuf) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    r->in = (ZSTD_inBuffer){r->inbuf, 0, 0};
    return r;
fail:
    logits_reader_close(r);
    return NULL;
}

int logits_reader_get(logits_reader *r, float *logits, nm_error *err) {
    const size_t n = r->n_vocab;
    ZSTD_outBuffer out = {r->shuf, n * 4, 0};
    while (out.pos < out.size) {
        if (r->in.pos == r->in.size) {
            size_t got = fread(r->inbuf, 1, r->incap, r->f);
            if (got == 0) return nm_fail(err, "%s: truncated (fewer logits than its header says)", r->path);
            r->in.size = got;
            r->in.pos = 0;
        }
        size_t rc = ZSTD_decompressStream(r->dz, &out, &r->in);
        if (ZSTD_isError(rc)) return nm_fail(err, "%s: corrupt data (%s)", r->path, ZSTD_getErrorName(rc));
    }
    uint8_t *b = (uint8_t *)logits;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) b[4 * i + (size_t)k] = r->shuf[(size_t)k * n + i];
    return 0;
}
