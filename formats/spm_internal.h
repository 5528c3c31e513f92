/* Private to formats/spm*.c: an open-addressing hash from piece text to id. */
#ifndef NOMOAT_SPM_INTERNAL_H
#define NOMOAT_SPM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct spm_piece_map {
    uint32_t *slots; /* id + 1; 0 = empty */
    uint32_t *hashes; /* low 32 bits of the hash of slots[i]'s text, to skip most memcmp */
    size_t mask;
    const char *const *texts;
    const uint32_t *lens;
} spm_piece_map;

static inline uint64_t spm_hash_bytes(const void *data, size_t len) { return XXH3_64bits(data, len); }
/* Sized for n entries (load factor <= 1/2). texts/lens are borrowed. -1 when out of memory. */
int spm_piece_map_init(spm_piece_map *m, size_t n, const char *const *texts, const uint32_t *lens);
void spm_piece_map_free(spm_piece_map *m);
/* Id of the entry with that text, or -1. Inline: the tokenizer's hot path. */
static inline int32_t spm_piece_map_find(const spm_piece_map *m, const char *text, size_t len) {
    uint64_t h = spm_hash_bytes(text, len);
    uint32_t tag = (uint32_t)h;
    for (size_t i = (size_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t s = m->slots[i];
        if (!s)
            return -1;
        if (m->hashes[i] == tag && m->lens[s - 1] == len && memcmp(m->texts[s - 1], text, len) == 0)
            return (int32_t)(s - 1);
    }
}
/* Inserts id (whose text is texts[id]); if an entry with the same text exists it is replaced
 * and its id returned, else -1. */
int32_t spm_piece_map_put(spm_piece_map *m, uint32_t id);

#endif
