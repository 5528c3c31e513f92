/* Pieces the nomoat-verify commands share: loading a model and turning a text into tokens the
 * way llama-perplexity does (FORMATS.md §10.1). */
#ifndef NOMOAT_VERIFY_COMMON_H
#define NOMOAT_VERIFY_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "verify/model.h"

#define VERIFY_EXIT_OK 0
#define VERIFY_EXIT_LIMITS 1
#define VERIFY_EXIT_ERROR 2

/* Prints "nomoat-verify: <msg>" on stderr. */
void verify_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

typedef struct verify_model {
    gguf_reader *g;
    vm_model m;
    int32_t bos_id; /* -1 when none */
    bool add_bos;
} verify_model;

int verify_model_open(verify_model *vm, const char *path, nm_error *err);
void verify_model_close(verify_model *vm);

/* Tokens for a run: from a text file (one trailing newline dropped, tokenized with the model's
 * vocabulary, BOS prepended when the vocabulary says so) or from a file of int32 ids
 * (tokens_path, used as is). *ids is malloc'ed. */
int verify_load_tokens(const verify_model *vm, const char *model_path, const char *text_path,
                       const char *tokens_path, int32_t **ids, size_t *n_ids, nm_error *err);

/* Tokenizes text with the model's vocabulary as llama.cpp does (BOS when the vocabulary adds it). */
int verify_tokenize_text(const verify_model *vm, const char *model_path, const char *text, size_t len,
                         int32_t **ids, size_t *n_ids, nm_error *err);

/* Reads a whole file into a malloc'ed buffer (NUL-terminated for convenience). */
int verify_read_file(const char *path, char **data, size_t *size, nm_error *err);

/* Parses integers / floats for options; prints an error and returns -1 when malformed. */
int verify_parse_int(const char *opt, const char *text, long min, long max, long *out);
int verify_parse_double(const char *opt, const char *text, double *out);

/* --lora FILE[:SCALE] arguments: at most VERIFY_MAX_LORA adapters per run (message printed). */
#define VERIFY_MAX_LORA 64
int verify_add_lora(const char **loras, int *n, const char *arg);

#endif
