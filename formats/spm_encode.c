/* llama.cpp-compatible SentencePiece (SPM) encoding, FORMATS.md §7.4.
 *
 * Text is split around user-defined tokens, each text fragment gets the dummy-prefix space
 * where llama.cpp adds one, ASCII spaces become U+2581, and the fragment is cut into UTF-8
 * characters that are merged pairwise: always the adjacent pair whose concatenation is the
 * best-scoring token (ties: the leftmost pair), until no adjacent pair forms a token. Symbols
 * that are not tokens fall back to <0xXX> byte tokens.
 *
 * Cost: one hash lookup per candidate pair and a binary heap of candidates, so O(n log n) in
 * the fragment length; candidates longer than the longest token are never looked up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parallel.h"
#include "formats/spm.h"
#include "formats/spm_internal.h"

struct spm_tokenizer {
    uint32_t n_tokens;
    char **texts; /* token texts as llama.cpp keys them (empty ones renamed "[EMPTY_<id>]") */
    uint32_t *lens;
    float *scores;
    spm_piece_map map; /* text -> id; for duplicate texts the last id wins, as in llama.cpp */
    uint32_t max_len;
    int32_t byte_ids[256]; /* <0xXX>, else the single-byte token, else -1 */
    uint32_t *user_defined; /* ids of USER_DEFINED tokens, longest text first */
    uint32_t n_user_defined;
    int32_t bos_id, eos_id;
    bool add_bos, add_eos, add_space_prefix;
    bool remove_extra_whitespaces, escape_whitespaces; /* SentencePiece normalizer (tokenizer.model) */
    /* bit (a << 8 | b): some token holds byte a followed by byte b (see encode_fragment) */
    uint8_t joins[256 * 256 / 8];
    int n_threads; /* for long fragments; <= 0: all cores */
    nm_pool *pool; /* created on first use */
};

void spm_tokenizer_free(spm_tokenizer *t) {
    if (!t)
        return;
    if (t->texts)
        for (uint32_t i = 0; i < t->n_tokens; i++)
            free(t->texts[i]);
    free(t->texts);
    free(t->lens);
    free(t->scores);
    spm_piece_map_free(&t->map);
    free(t->user_defined);
    nm_pool_destroy(t->pool);
    free(t);
}

void spm_tokenizer_set_threads(spm_tokenizer *t, int n_threads) {
    if (t->pool && nm_pool_threads(t->pool) != (n_threads > 0 ? n_threads : nm_cpu_count())) {
        nm_pool_destroy(t->pool);
        t->pool = NULL;
    }
    t->n_threads = n_threads;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

spm_tokenizer *spm_tokenizer_create(const spm_vocab *v, nm_error *err) {
    if (v->n_tokens == 0 || v->n_tokens > INT32_MAX) {
        nm_fail(err, "the vocabulary has %u tokens", v->n_tokens);
        return NULL;
    }
    spm_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    uint32_t n = v->n_tokens;
    t->texts = calloc(n, sizeof *t->texts);
    t->lens = malloc((size_t)n * sizeof *t->lens);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    if (!t->texts || !t->lens || !t->scores)
        goto oom;
    t->n_tokens = n;
    uint32_t n_user = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (v->piece_lens[i] == 0) {
            char buf[32];
            int len = snprintf(buf, sizeof buf, "[EMPTY_%u]", i);
            t->texts[i] = strdup(buf);
            t->lens[i] = (uint32_t)len;
        } else {
            t->texts[i] = malloc((size_t)v->piece_lens[i] + 1);
            if (t->texts[i]) {
                memcpy(t->texts[i], v->pieces[i], v->piece_lens[i]);
                t->texts[i][v->piece_lens[i]] = '\0';
            }
            t->lens[i] = v->piece_lens[i];
        }
        if (!t->texts[i])
            goto oom;
        t->scores[i] = v->scores[i];
        if (t->lens[i] > t->max_len)
            t->max_len = t->lens[i];
        if (v->types[i] == SPM_TOKEN_USER_DEFINED)
            n_user++;
    }
    if (spm_piece_map_init(&t->map, n, (const char *const *)t->texts, t->lens))
        goto oom;
    for (uint32_t i = 0; i < n; i++)
        spm_piece_map_put(&t->map, i);
    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char raw = (char)b;
        int32_t id = spm_piece_map_find(&t->map, name, 6);
        t->byte_ids[b] = id >= 0 ? id : spm_piece_map_find(&t->map, &raw, 1);
    }
    if (n_user) {
        /* longest first, by id among equal lengths: sort keys (UINT32_MAX - len) << 32 | id */
        uint64_t *keys = malloc((size_t)n_user * sizeof *keys);
        t->user_defined = malloc((size_t)n_user * sizeof *t->user_defined);
        if (!keys || !t->user_defined) {
            free(keys);
            goto oom;
        }
        for (uint32_t i = 0; i < n; i++)
            if (v->types[i] == SPM_TOKEN_USER_DEFINED)
                keys[t->n_user_defined++] = (uint64_t)(UINT32_MAX - t->lens[i]) << 32 | i;
        qsort(keys, n_user, sizeof *keys, cmp_u64);
        for (uint32_t i = 0; i < n_user; i++)
            t->user_defined[i] = (uint32_t)keys[i];
        free(keys);
    }
    t->bos_id = v->bos_id;
    t->eos_id = v->eos_id;
    t->add_bos = v->add_bos;
    t->add_eos = v->add_eos;
    t->add_space_prefix = v->add_dummy_prefix;
    t->remove_extra_whitespaces = v->remove_extra_whitespaces;
    t->escape_whitespaces = v->escape_whitespaces;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = (const uint8_t *)t->texts[i];
        for (uint32_t k = 1; k < t->lens[i]; k++)
            t->joins[(size_t)p[k - 1] << 5 | p[k] >> 3] |= (uint8_t)(1u << (p[k] & 7));
    }
    return t;
oom:
    spm_tokenizer_free(t);
    nm_fail(err, "out of memory building the tokenizer for %u tokens", v->n_tokens);
    return NULL;
}

/* ---------------- output buffer ---------------- */

typedef struct id_list {
    int32_t *ids;
    size_t n, cap;
} id_list;

static int push_id(id_list *l, int32_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int32_t *p = realloc(l->ids, cap * sizeof *p);
        if (!p)
            return -1;
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

/* ---------------- merging ---------------- */

typedef struct symbol {
    int32_t prev, next;
    uint32_t start, n; /* byte range in the segment; n = 0 once merged away */
} symbol;

typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;
} bigram;

/* Work buffers, reused for every segment of one spm_encode call. */
typedef struct session {
    const spm_tokenizer *t;
    const char *text;
    symbol *sym;
    size_t sym_cap;
    bigram *heap;
    size_t heap_n, heap_cap;
} session;

/* a is taken before b: higher score, then the leftmost pair */
static inline bool before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(session *s, bigram b) {
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        bigram *p = realloc(s->heap, cap * sizeof *p);
        if (!p)
            return -1;
        s->heap = p;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&b, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = b;
    return 0;
}

static bigram heap_pop(session *s) {
    bigram top = s->heap[0];
    bigram last = s->heap[--s->heap_n];
    size_t n = s->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n)
        s->heap[i] = last;
    return top;
}

static int try_add_bigram(session *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0)
        return 0;
    uint32_t size = s->sym[left].n + s->sym[right].n;
    if (size > s->t->max_len)
        return 0;
    int32_t id = spm_piece_map_find(&s->t->map, s->text + s->sym[left].start, size);
    if (id < 0)
        return 0;
    bigram b = {s->t->scores[id], left, right, size};
    return heap_push(s, b);
}

static inline size_t utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

/* Merges one segment (text[0..len), whole UTF-8 characters) and appends its ids. `base` is the
 * segment's offset in the fragment, for messages. */
static int merge_segment(session *s, const char *text, size_t len, size_t base, id_list *out, nm_error *err) {
    const spm_tokenizer *t = s->t;
    s->text = text;
    s->heap_n = 0;
    int32_t count = 0;
    for (size_t off = 0; off < len;) {
        size_t n = utf8_len((uint8_t)text[off]);
        if (n > len - off)
            n = len - off;
        s->sym[count].start = (uint32_t)off;
        s->sym[count].n = (uint32_t)n;
        s->sym[count].prev = count - 1;
        off += n;
        s->sym[count].next = off == len ? -1 : count + 1;
        count++;
    }
    for (int32_t i = 1; i < count; i++)
        if (try_add_bigram(s, i - 1, i))
            goto oom;
    while (s->heap_n) {
        bigram b = heap_pop(s);
        symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* stale: one side was merged since this pair was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = b.left;
        if (try_add_bigram(s, l->prev, b.left) || try_add_bigram(s, b.left, l->next))
            goto oom;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const symbol *sym = &s->sym[i];
        int32_t id = spm_piece_map_find(&t->map, text + sym->start, sym->n);
        if (id >= 0) {
            if (push_id(out, id))
                goto oom;
            continue;
        }
        for (uint32_t k = 0; k < sym->n; k++) {
            uint8_t byte = (uint8_t)text[sym->start + k];
            if (t->byte_ids[byte] < 0)
                return nm_fail(err, "byte 0x%02X (offset %zu of the escaped text) has no token: neither <0x%02X> nor "
                               "the byte itself is in the vocabulary", byte, base + sym->start + k, byte);
            if (push_id(out, t->byte_ids[byte]))
                goto oom;
        }
    }
    return 0;
oom:
    return nm_fail(err, "out of memory tokenizing %zu bytes", len);
}

/* ---------------- segment cache ----------------
 * Natural text repeats its words: the ids of each segment merged so far are remembered (per
 * spm_encode call) and reused, so most segments cost one hash lookup. */

#define SEG_CACHE_MAX_KEY 128
#define SEG_CACHE_MAX_ENTRIES (1u << 20)

typedef struct seg_entry {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, ids_n;
} seg_entry;

typedef struct seg_cache {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t mask;
    seg_entry *entries;
    uint32_t n, cap;
    char *keys;
    size_t keys_n, keys_cap;
    int32_t *ids;
    size_t ids_n, ids_cap;
} seg_cache;

static void seg_cache_free(seg_cache *c) {
    free(c->slots);
    free(c->entries);
    free(c->keys);
    free(c->ids);
}

static const seg_entry *seg_cache_find(const seg_cache *c, const char *key, size_t len, uint64_t h) {
    if (!c->slots)
        return NULL;
    for (size_t i = (size_t)h & c->mask;; i = (i + 1) & c->mask) {
        uint32_t s = c->slots[i];
        if (!s)
            return NULL;
        const seg_entry *e = &c->entries[s - 1];
        if (e->hash == h && e->key_len == len && memcmp(c->keys + e->key_off, key, len) == 0)
            return e;
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 1024;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, cap2 * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = cap2;
    return 0;
}

/* Remembers key -> ids; a full cache or a failed allocation just stops caching. */
static void seg_cache_put(seg_cache *c, const char *key, size_t len, uint64_t h, const int32_t *ids, size_t n) {
    if (c->n >= SEG_CACHE_MAX_ENTRIES)
        return;
    if (!c->slots || (size_t)(c->n + 1) * 2 > c->mask + 1) {
        size_t size = c->slots ? (c->mask + 1) * 2 : 4096;
        uint32_t *slots = calloc(size, sizeof *slots);
        if (!slots)
            return;
        for (uint32_t k = 0; k < c->n; k++) {
            size_t i = (size_t)c->entries[k].hash & (size - 1);
            while (slots[i])
                i = (i + 1) & (size - 1);
            slots[i] = k + 1;
        }
        free(c->slots);
        c->slots = slots;
        c->mask = size - 1;
    }
    size_t ecap = c->cap;
    if (grow((void **)&c->entries, &ecap, (size_t)c->n + 1, sizeof *c->entries) ||
        grow((void **)&c->keys, &c->keys_cap, c->keys_n + len, 1) ||
        grow((void **)&c->ids, &c->ids_cap, c->ids_n + n, sizeof *c->ids))
        return;
    c->cap = (uint32_t)ecap;
    seg_entry *e = &c->entries[c->n];
    e->hash = h;
    e->key_off = (uint32_t)c->keys_n;
    e->key_len = (uint32_t)len;
    e->ids_off = (uint32_t)c->ids_n;
    e->ids_n = (uint32_t)n;
    memcpy(c->keys + c->keys_n, key, len);
    c->keys_n += len;
    memcpy(c->ids + c->ids_n, ids, n * sizeof *ids);
    c->ids_n += n;
    size_t i = (size_t)h & c->mask;
    while (c->slots[i])
        i = (i + 1) & c->mask;
    c->slots[i] = ++c->n;
}

static int encode_segment(session *s, seg_cache *cache, const char *text, size_t len, size_t base, id_list *out,
                          nm_error *err) {
    if (len > SEG_CACHE_MAX_KEY)
        return merge_segment(s, text, len, base, out, err);
    uint64_t h = spm_hash_bytes(text, len);
    const seg_entry *e = seg_cache_find(cache, text, len, h);
    if (e) {
        for (uint32_t k = 0; k < e->ids_n; k++)
            if (push_id(out, cache->ids[e->ids_off + k]))
                return nm_fail(err, "out of memory tokenizing %zu bytes", len);
        return 0;
    }
    size_t first = out->n;
    if (merge_segment(s, text, len, base, out, err))
        return -1;
    seg_cache_put(cache, text, len, h, out->ids + first, out->n - first);
    return 0;
}

/* Tokenizes one escaped fragment. Where no vocabulary token contains the last byte of one
 * character followed by the first byte of the next, no merge can ever cross between them, and
 * merging each side alone gives exactly the same result (the merge order within a side is
 * unchanged): so the fragment is cut there, which keeps every heap small (about a word). */
static inline bool is_barrier(const spm_tokenizer *t, uint8_t a, uint8_t b) {
    return !(t->joins[(size_t)a << 5 | b >> 3] & (1u << (b & 7)));
}

static int encode_fragment(session *s, seg_cache *cache, const char *text, size_t len, size_t base, id_list *out,
                           nm_error *err) {
    if (len == 0)
        return 0;
    if (len > s->sym_cap) {
        symbol *p = realloc(s->sym, len * sizeof *p);
        if (!p)
            return nm_fail(err, "out of memory tokenizing %zu bytes", len);
        s->sym = p;
        s->sym_cap = len;
    }
    const uint8_t *u = (const uint8_t *)text;
    size_t seg = 0;
    for (size_t off = utf8_len(u[0]); off < len; off += utf8_len(u[off])) {
        if (is_barrier(s->t, u[off - 1], u[off])) {
            if (encode_segment(s, cache, text + seg, off - seg, base + seg, out, err))
                return -1;
            seg = off;
        }
    }
    return encode_segment(s, cache, text + seg, len - seg, base + seg, out, err);
}

/* ---------------- long fragments on several threads ----------------
 * A fragment is cut at barriers (see above) into one part per thread; each part is merged on
 * its own with its own work buffers and cache, and the ids are concatenated in order. */

#define SPM_PARALLEL_MIN ((size_t)256 << 10)
#define SPM_MAX_PARTS 64

typedef struct part_job {
    const spm_tokenizer *t;
    const char *text;
    size_t cuts[SPM_MAX_PARTS + 1];
    id_list outs[SPM_MAX_PARTS];
    nm_error errs[SPM_MAX_PARTS];
    int rcs[SPM_MAX_PARTS];
} part_job;

static void run_part(void *ctx, size_t task, int thread) {
    (void)thread;
    part_job *j = ctx;
    session s = {.t = j->t};
    seg_cache c = {0};
    j->rcs[task] = encode_fragment(&s, &c, j->text + j->cuts[task], j->cuts[task + 1] - j->cuts[task], j->cuts[task],
                                   &j->outs[task], &j->errs[task]);
    free(s.sym);
    free(s.heap);
    seg_cache_free(&c);
}

static int encode_fragment_parallel(spm_tokenizer *t, session *s, seg_cache *cache, const char *text, size_t len,
                                    id_list *out, nm_error *err) {
    int threads = t->n_threads > 0 ? t->n_threads : nm_cpu_count();
    if (threads > SPM_MAX_PARTS)
        threads = SPM_MAX_PARTS;
    if (threads < 2 || len < SPM_PARALLEL_MIN)
        return encode_fragment(s, cache, text, len, 0, out, err);
    if (!t->pool && !(t->pool = nm_pool_create(threads)))
        return encode_fragment(s, cache, text, len, 0, out, err);
    part_job *j = calloc(1, sizeof *j);
    if (!j)
        return nm_fail(err, "out of memory tokenizing %zu bytes", len);
    j->t = t;
    j->text = text;
    /* cut points: the first barrier at or after each k/threads of the text, found by walking
     * the characters exactly as the symbol split does */
    const uint8_t *u = (const uint8_t *)text;
    size_t parts = 1, target = len / (size_t)threads;
    for (size_t off = utf8_len(u[0]); off < len && parts < (size_t)threads; off += utf8_len(u[off])) {
        if (off >= target && is_barrier(t, u[off - 1], u[off])) {
            j->cuts[parts++] = off;
            target = len / (size_t)threads * parts;
        }
    }
    j->cuts[parts] = len;
    nm_pool_run(t->pool, parts, run_part, j);
    int rc = 0;
    for (size_t k = 0; k < parts; k++) {
        if (rc == 0 && j->rcs[k]) {
            *err = j->errs[k];
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < j->outs[k].n; i++)
            if (push_id(out, j->outs[k].ids[i]))
                rc = nm_fail(err, "out of memory tokenizing %zu bytes", len);
        free(j->outs[k].ids);
    }
    free(j);
    return rc;
}

/* Escapes a raw fragment into buf: ' ' -> U+2581 (when escaping), the dummy prefix when asked.
 * With SentencePiece's remove_extra_whitespaces (tokenizer.model vocabularies only), leading
 * and trailing spaces are dropped and runs of spaces become one, as its normalizer does. */
static int escape_text(const spm_tokenizer *t, const char *raw, size_t len, bool prefix, char **buf, size_t *cap,
                       size_t *out_len) {
    size_t need = 3 * (len + 1);
    if (need > *cap) {
        char *p = realloc(*buf, need);
        if (!p)
            return -1;
        *buf = p;
        *cap = need;
    }
    static const char space[] = "\xe2\x96\x81";
    const char *ws = t->escape_whitespaces ? space : " ";
    size_t ws_len = t->escape_whitespaces ? 3 : 1;
    char *o = *buf;
    size_t n = 0, i = 0;
    if (t->remove_extra_whitespaces) {
        while (i < len && raw[i] == ' ')
            i++;
        if (i == len) {
            *out_len = 0;
            return 0;
        }
    }
    if (prefix) {
        memcpy(o, ws, ws_len);
        n = ws_len;
    }
    bool prev_space = true;
    for (; i < len; i++) {
        if (raw[i] == ' ') {
            if (t->remove_extra_whitespaces && prev_space)
                continue;
            memcpy(o + n, ws, ws_len);
            n += ws_len;
            prev_space = true;
        } else {
            o[n++] = raw[i];
            prev_space = false;
        }
    }
    if (t->remove_extra_whitespaces)
        while (n >= ws_len && memcmp(o + n - ws_len, ws, ws_len) == 0)
            n -= ws_len;
    *out_len = n;
    return 0;
}

/* ---------------- user-defined token partitioning ---------------- */

typedef struct fragment {
    size_t offset, length; /* raw text range, when id < 0 */
    int32_t id;            /* a user-defined token */
} fragment;

typedef struct frag_list {
    fragment *f;
    size_t n, cap;
} frag_list;

static int frag_push(frag_list *l, fragment f) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        fragment *p = realloc(l->f, cap * sizeof *p);
        if (!p)
            return -1;
        l->f = p;
        l->cap = cap;
    }
    l->f[l->n++] = f;
    return 0;
}

/* Splits every text fragment around each occurrence of each user-defined token, longest
 * tokens first, leftmost non-overlapping occurrences (llama.cpp's tokenizer_st_partition). */
static int partition(const spm_tokenizer *t, const char *text, size_t len, frag_list *frags) {
    fragment whole = {0, len, -1};
    if (frag_push(frags, whole))
        return -1;
    for (uint32_t k = 0; k < t->n_user_defined; k++) {
        uint32_t id = t->user_defined[k];
        const char *tok = t->texts[id];
        size_t tok_len = t->lens[id];
        frag_list next = {0};
        for (size_t i = 0; i < frags->n; i++) {
            fragment f = frags->f[i];
            if (f.id >= 0 || f.length < tok_len) {
                if (frag_push(&next, f))
                    goto oom;
                continue;
            }
            size_t pos = f.offset, end = f.offset + f.length;
            for (;;) {
                const char *hit = memmem(text + pos, end - pos, tok, tok_len);
                if (!hit)
                    break;
                size_t at = (size_t)(hit - text);
                if (at > pos) {
                    fragment left = {pos, at - pos, -1};
                    if (frag_push(&next, left))
                        goto oom;
                }
                fragment special = {0, 0, (int32_t)id};
                if (frag_push(&next, special))
                    goto oom;
                pos = at + tok_len;
            }
            if (pos < end) {
                fragment rest = {pos, end - pos, -1};
                if (frag_push(&next, rest))
                    goto oom;
            }
        }
        free(frags->f);
        *frags = next;
        continue;
    oom:
        free(next.f);
        return -1;
    }
    return 0;
}

int spm_encode(spm_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids, size_t *n_ids,
               nm_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len > (size_t)INT32_MAX / 3 - 2)
        return nm_fail(err, "text of %zu bytes is too long to tokenize at once (limit 700 MB)", len);
    id_list out = {0};
    frag_list frags = {0};
    char *buf = NULL;
    size_t cap = 0;
    session sess = {.t = t};
    seg_cache cache = {0};
    if (add_special && t->add_bos) {
        if (t->bos_id < 0) {
            nm_fail(err, "the vocabulary asks for BOS but has no BOS token");
            goto fail;
        }
        if (push_id(&out, t->bos_id))
            goto oom;
    }
    if (len > 0 && partition(t, text, len, &frags))
        goto oom;
    bool prev_special = true; /* the first fragment gets the dummy prefix too */
    for (size_t i = 0; i < frags.n; i++) {
        const fragment *f = &frags.f[i];
        if (f->id >= 0) {
            if (push_id(&out, f->id))
                goto oom;
            prev_special = true;
            continue;
        }
        size_t n;
        if (escape_text(t, text + f->offset, f->length, t->add_space_prefix && prev_special, &buf, &cap, &n))
            goto oom;
        if (encode_fragment_parallel(t, &sess, &cache, buf, n, &out, err))
            goto fail;
        prev_special = false;
    }
    if (add_special && t->add_eos) {
        if (t->eos_id < 0) {
            nm_fail(err, "the vocabulary asks for EOS but has no EOS token");
            goto fail;
        }
        if (push_id(&out, t->eos_id))
            goto oom;
    }
    free(frags.f);
    free(buf);
    free(sess.sym);
    free(sess.heap);
    seg_cache_free(&cache);
    if (!out.ids) { /* empty result: still hand back a valid allocation */
        out.ids = malloc(sizeof *out.ids);
        if (!out.ids)
            goto oom;
    }
    *ids = out.ids;
    *n_ids = out.n;
    return 0;
oom:
    nm_fail(err, "out of memory tokenizing %zu bytes", len);
fail:
    free(out.ids);
    free(frags.f);
    free(buf);
    free(sess.sym);
    free(sess.heap);
    seg_cache_free(&cache);
    return -1;
}
