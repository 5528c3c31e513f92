/* Unicode code point classes for byte-level BPE pre-tokenizers (formats/bpe*.c).
 *
 * The classes are the general categories the pre-tokenizer regexes name (\p{L}, \p{N}, \p{M},
 * \p{P}, \p{S}) plus White_Space (\s), from the table scripts/gen-unicode-flags.py generates
 * (formats/unicode_flags.c, the same Unicode version as llama.cpp's tables). UTF-8 is decoded
 * as llama.cpp's tokenizer decodes it (unicode_cpts_from_utf8): a byte that does not start a
 * well-formed sequence becomes U+FFFD and decoding resumes at the next byte; overlong forms and
 * surrogates are accepted as they come. */
#ifndef NOMOAT_UNICODE_H
#define NOMOAT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    NM_UCAT_UNASSIGNED = 0,
    NM_UCAT_LETTER = 1,
    NM_UCAT_NUMBER = 2,
    NM_UCAT_MARK = 3,
    NM_UCAT_PUNCTUATION = 4,
    NM_UCAT_SYMBOL = 5,
    NM_UCAT_SEPARATOR = 6,
    NM_UCAT_CONTROL = 7,
    NM_UCAT_CLASS_MASK = 7,
    NM_UCAT_WHITESPACE = 8,
};

typedef struct nm_unicode_range {
    uint32_t first;
    uint8_t flags;
} nm_unicode_range;

extern const nm_unicode_range nm_unicode_ranges[];
extern const unsigned nm_unicode_range_count;

/* Class | NM_UCAT_WHITESPACE of a code point; code points above U+10FFFF are unassigned. */
uint8_t nm_unicode_flags_slow(uint32_t cp);
static inline uint8_t nm_unicode_flags(uint32_t cp) {
    /* ASCII inline: the common case in every text */
    static const uint8_t ascii[128] = {
        7, 7, 7, 7, 7, 7, 7, 7, 7, 15, 15, 15, 15, 15, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        14, 4, 4, 4, 5, 4, 4, 4, 4, 4, 4, 5, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 5, 5, 5, 4,
        4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 5, 4,
        5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 5, 4, 5, 7,
    };
    return cp < 128 ? ascii[cp] : nm_unicode_flags_slow(cp);
}

/* Decodes one code point at text[*pos] (pos < len) the way llama.cpp does and advances *pos. */
uint32_t nm_utf8_decode(const char *text, size_t len, size_t *pos);
/* Encodes cp (<= 0x1FFFFF) into out (4 bytes); returns the length. */
size_t nm_utf8_encode(uint32_t cp, char *out);
/* 1 when s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or values > U+10FFFF). */
int nm_utf8_valid(const char *s, size_t len);

#endif
