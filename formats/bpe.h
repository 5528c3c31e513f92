/* Byte-level BPE vocabularies (Hugging Face tokenizer.json, GGUF tokenizer.ggml.model "gpt2")
 * and llama.cpp-compatible BPE tokenization.
 *
 * bpe_vocab holds what a GGUF stores (tokens, token types, merges, the pre-tokenizer name,
 * special ids) plus, when read from tokenizer.json, what the file says beyond that (added
 * tokens' flags, normalizer, pre-tokenizer regexes, post-processor, decoder). */
#ifndef NOMOAT_BPE_H
#define NOMOAT_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "formats/spm.h" /* SPM_TOKEN_* token types: llama.cpp uses one set for every vocabulary */

/* Largest token id accepted from a file: real vocabularies have at most a few 10^5 tokens;
 * ids are int32 in GGUF and llama.cpp, and gaps are filled, so the id bounds the memory. */
#define BPE_MAX_TOKENS (1u << 24)

typedef struct bpe_added_token {
    uint32_t id;
    char *content;
    uint32_t len;
    bool special, lstrip, rstrip, normalized, single_word;
} bpe_added_token;

typedef struct bpe_vocab {
    uint32_t n_tokens;
    char **tokens;       /* NUL-terminated; "[PAD<id>]" for ids tokenizer.json leaves unused */
    uint32_t *token_lens;
    int32_t *types;      /* SPM_TOKEN_NORMAL / CONTROL / USER_DEFINED / UNUSED ... */
    uint32_t n_merges;   /* merges in rank order: left and right token texts */
    char **merge_left, **merge_right;
    uint32_t *merge_left_lens, *merge_right_lens;
    char pre[64];        /* llama.cpp pre-tokenizer name ("llama-bpe", "qwen2", ...); "" unknown */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    bool add_bos, add_eos;

    /* ---- tokenizer.json only (zero / NULL for a vocabulary read from GGUF) ---- */
    uint32_t n_added;
    bpe_added_token *added;
    bool byte_fallback, ignore_merges;
    char normalizer[32];      /* "" (none), "NFC", "NFKC", ... ("Sequence" of one is unwrapped) */
    char decoder[32];         /* "ByteLevel", ... */
    uint32_t n_regex;         /* the pre-tokenizer's Split regexes, in order */
    char **regex;
    bool byte_level;          /* the pre-tokenizer ends with ByteLevel */
    bool byte_level_regex;    /* ... with use_regex (GPT-2's own split) */
    bool byte_level_prefix;   /* ... with add_prefix_space */
    int digits;               /* Digits pre-tokenizer: 0 none, 1 individual_digits, 2 runs */
    char pre_error[NM_ERROR_MAX]; /* why pre is "": names the regex and --pre */
    int32_t post_bos_id, post_eos_id; /* what the post-processor adds around a sequence, -1 none */
} bpe_vocab;

/* Reads a tokenizer.json (model type BPE). Checks: well-formed JSON of at most 1 GiB; the model
 * is BPE; vocab token texts unique and valid UTF-8, ids unique and below BPE_MAX_TOKENS; merges
 * in either form naming tokens of the vocab whose concatenation is a token too; added tokens
 * with valid ids and text. The token types are the ones llama.cpp's converter assigns
 * (added tokens: CONTROL when special or looking special, else USER_DEFINED; gaps UNUSED).
 * pre is derived from the pre-tokenizer (bpe_pre_from_json); when it is not recognised,
 * pre is "" and pre_error says why. bos/eos ids come from the post-processor. */
int bpe_vocab_load_json(bpe_vocab *v, const char *path, nm_error *err);
int bpe_vocab_load_json_memory(bpe_vocab *v, const char *data, size_t size, nm_error *err);
/* Reads tokenizer.ggml.{model = gpt2, pre, tokens, token_type, merges, *_token_id, add_*}. */
int bpe_vocab_from_gguf(bpe_vocab *v, const gguf_reader *g, nm_error *err);
void bpe_vocab_free(bpe_vocab *v);

/* Grows the vocabulary to n tokens with "[PAD<id>]" UNUSED entries (config.json vocab_size). */
int bpe_vocab_resize(bpe_vocab *v, uint32_t n, nm_error *err);

/* The llama.cpp pre-tokenizer names this encoder implements, and whether name is one. */
bool bpe_pre_supported(const char *name);
extern const char bpe_pre_names[]; /* "llama-bpe, smaug-bpe, ..." for messages */

/* ---- Tokenization as llama.cpp's BPE tokenizer does it (parse_special = false) ----
 * The pre-tokenizer is the vocabulary's pre name (or the one given to bpe_tokenizer_create);
 * unknown names are refused. User-defined tokens are matched in the text first (longest first,
 * as llama.cpp's special-token cache), then each fragment is split by the pre-tokenizer, each
 * piece mapped to GPT-2's byte alphabet and merged by rank (ignore_merges for the names llama.cpp
 * gives it: a piece that is a token stays whole). */
typedef struct bpe_tokenizer bpe_tokenizer;
bpe_tokenizer *bpe_tokenizer_create(const bpe_vocab *v, const char *pre, nm_error *err);
void bpe_tokenizer_free(bpe_tokenizer *t);
/* add_special: BOS first when the vocabulary's add_bos (and EOS last when add_eos). *ids is
 * malloc'ed; the caller frees it. */
int bpe_encode(bpe_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids, size_t *n_ids,
               nm_error *err);

#endif
