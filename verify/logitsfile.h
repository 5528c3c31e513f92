/* Saved base logits for KL-divergence runs (nomoat's own format, not llama.cpp's uint16 one):
 *
 *   magic "NMLOGIT1" | u32 version (1) | u32 n_ctx | u32 n_vocab | u32 n_chunk | u32 first
 *   | u64 XXH3-64 of the evaluated token stream (n_chunk·n_ctx int32 LE ids, as tokenized)
 *   | zstd frame: per chunk, per scored position (n_ctx − 1 − first of them), n_vocab f32 logits,
 *     each record byte-plane shuffled (all byte 0s, then all byte 1s, ...) to compress better.
 *
 * A KLD run re-tokenizes its text and refuses a file whose hash or shape differs. */
#ifndef NOMOAT_VERIFY_LOGITSFILE_H
#define NOMOAT_VERIFY_LOGITSFILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct logits_header {
    uint32_t n_ctx, n_vocab, n_chunk, first;
    uint64_t token_hash;
} logits_header;

uint64_t logits_token_hash(const int32_t *ids, size_t n);

typedef struct logits_writer logits_writer;
logits_writer *logits_writer_create(const char *path, const logits_header *h, int n_threads, nm_error *err);
/* Appends one position's n_vocab logits. */
int logits_writer_put(logits_writer *w, const float *logits, nm_error *err);
int logits_writer_finish(logits_writer *w, nm_error *err); /* publishes the file; frees w */
void logits_writer_abort(logits_writer *w);

typedef struct logits_reader logits_reader;
logits_reader *logits_reader_open(const char *path, logits_header *h, nm_error *err);
/* Reads the next position's n_vocab logits. */
int logits_reader_get(logits_reader *r, float *logits, nm_error *err);
void logits_reader_close(logits_reader *r);

#endif
