/* Byte-level BPE tokenization as llama.cpp does it (llm_tokenizer_bpe, unicode_regex_split).
 *
 * Order of operations, for a text and parse_special = false:
 *   1. user-defined tokens (type USER_DEFINED) are cut out of the text first, longest first;
 *   2. each remaining fragment is decoded to code points (invalid bytes -> U+FFFD) and split
 *      by the pre-tokenizer: llama.cpp's hand-written splitters for the GPT-2, Llama 3 and
 *      Qwen 2 regexes, and for the regexes it gives to std::regex (DeepSeek V3, StarCoder's
 *      digits) the same matching on its "collapsed" text, where every non-ASCII code point
 *      stands for its category (so \p{P} and \p{S} mean llama.cpp's ASCII lists, and non-ASCII
 *      letters never match [A-Za-z]); the lists are those of the llama.cpp node-llama-cpp 3.21.1
 *      ships, whose \p{S} has '~' (the llama.cpp revision the fixtures were made with lacks it);
 *   3. each piece is re-encoded to UTF-8, its bytes mapped to GPT-2's printable alphabet, and
 *      merged pair by pair, lowest rank first (leftmost among equal ranks); with ignore_merges
 *      a piece that is a token stays whole;
 *   4. a merged symbol that is not a token becomes the tokens of its single bytes, where such
 *      tokens exist (others are dropped, as llama.cpp drops them).
 * Every string in a merge is interned (tokens keep their ids, other strings get ids above the
 * vocabulary), so a merge is a lookup of an id pair. */
#include <stdlib.h>
#include <string.h>

#include "formats/bpe.h"
#include "formats/spm_internal.h"
#include "formats/unicode.h"

enum { PRE_GPT2, PRE_LLAMA3, PRE_QWEN2, PRE_DEEPSEEK3, PRE_STARCODER };

typedef struct merge_slot {
    uint64_t key; /* (left id << 32 | right id) + 1; 0 = empty */
    uint32_t rank;
    int32_t result;
} merge_slot;

struct bpe_tokenizer {
    int pre;
    bool ignore_merges;
    uint32_t n_tokens;
    /* interned strings: tokens, then merge parts and results that are not tokens */
    uint32_t n_strings;
    char **texts;
    uint32_t *lens;
    char *arena;
    spm_piece_map map;
    merge_slot *merges;
    size_t merge_mask;
    int32_t byte_sym[256];       /* interned id of byte b's GPT-2 character, -1 none */
    char byte_char[256][2];      /* that character's UTF-8 */
    uint8_t byte_char_len[256];
    int32_t single_byte_token[256]; /* token whose text is the one byte b, -1 none */
    uint32_t n_user;             /* user-defined tokens, longest first */
    int32_t *user_ids;
    int32_t bos_id, eos_id;
    bool add_bos, add_eos;
};

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * for U+0100.. in byte order. */
static uint32_t gpt2_byte_cp(unsigned b) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae))
        return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae)))
            n++;
    return 256 + n;
}

void bpe_tokenizer_free(bpe_tokenizer *t) {
    if (!t)
        return;
    spm_piece_map_free(&t->map);
    for (uint32_t i = t->n_tokens; i < t->n_strings; i++)
        free(t->texts[i]);
    free(t->texts);
    free(t->lens);
    free(t->arena);
    free(t->merges);
    free(t->user_ids);
    free(t);
}

/* Id of s, adding it when new; -1 when out of memory. */
static int32_t intern(bpe_tokenizer *t, const char *s, size_t len) {
    int32_t id = spm_piece_map_find(&t->map, s, len);
    if (id >= 0)
        return id;
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    uint32_t n = t->n_strings++;
    t->texts[n] = copy;
    t->lens[n] = (uint32_t)len;
    spm_piece_map_put(&t->map, n);
    return (int32_t)n;
}

static inline uint64_t merge_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key;
}

static inline const merge_slot *merge_find(const bpe_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    for (size_t i = merge_hash(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const merge_slot *s = &t->merges[i];
        if (s->key == key)
            return s;
        if (!s->key)
            return NULL;
    }
}

static int pre_from_name(const char *name) {
    static const struct {
        const char *name;
        int pre;
    } names[] = {
        {"llama-bpe", PRE_LLAMA3}, {"llama3", PRE_LLAMA3},    {"llama-v3", PRE_LLAMA3},
        {"smaug-bpe", PRE_LLAMA3}, {"dbrx", PRE_LLAMA3},      {"qwen2", PRE_QWEN2},
        {"deepseek-v3", PRE_DEEPSEEK3}, {"gpt-2", PRE_GPT2},  {"smollm", PRE_STARCODER},
        {"starcoder", PRE_STARCODER},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i].name))
            return names[i].pre;
    return -1;
}

static int compare_user_len(const void *a, const void *b, void *texts_lens) {
    const uint32_t *lens = texts_lens;
    uint32_t la = lens[*(const int32_t *)a], lb = lens[*(const int32_t *)b];
    if (la != lb)
        return la > lb ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

bpe_tokenizer *bpe_tokenizer_create(const bpe_vocab *v, const char *pre, nm_error *err) {
    const char *name = pre && pre[0] ? pre : v->pre;
    int kind = pre_from_name(name);
    if (kind < 0) {
        if (!name[0] && v->pre_error[0])
            nm_fail(err, "%s", v->pre_error);
        else
            nm_fail(err, "BPE pre-tokenizer '%s' is not supported (supported: %s)", name[0] ? name : "(none)",
                    bpe_pre_names);
        return NULL;
    }
    if (v->n_tokens == 0 || v->n_tokens > BPE_MAX_TOKENS) {
        nm_fail(err, "the vocabulary has %u tokens", v->n_tokens);
        return NULL;
    }
    bpe_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    t->pre = kind;
    /* llama.cpp sets ignore_merges by pre-tokenizer name, not from the file */
    t->ignore_merges = kind == PRE_LLAMA3 && strcmp(name, "smaug-bpe") && strcmp(name, "dbrx");
    t->n_tokens = v->n_tokens;
    t->bos_id = v->bos_id;
    t->eos_id = v->eos_id;
    t->add_bos = v->add_bos && v->bos_id >= 0;
    t->add_eos = v->add_eos && v->eos_id >= 0;
    size_t cap = (size_t)v->n_tokens + 3 * (size_t)v->n_merges + 256, bytes = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        bytes += (size_t)v->token_lens[i] + 1;
    t->texts = calloc(cap, sizeof *t->texts);
    t->lens = calloc(cap, sizeof *t->lens);
    t->arena = malloc(bytes ? bytes : 1);
    if (!t->texts || !t->lens || !t->arena || spm_piece_map_init(&t->map, cap, (const char *const *)t->texts, t->lens))
        goto oom;
    char *p = t->arena;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        memcpy(p, v->tokens[i], v->token_lens[i]);
        p[v->token_lens[i]] = '\0';
        t->texts[i] = p;
        t->lens[i] = v->token_lens[i];
        p += v->token_lens[i] + 1;
        spm_piece_map_put(&t->map, i); /* a repeated text means its last id, as in llama.cpp */
    }
    t->n_strings = v->n_tokens;

    size_t mcap = 16;
    while (mcap < 2 * (size_t)v->n_merges + 2)
        mcap *= 2;
    t->merges = calloc(mcap, sizeof *t->merges);
    if (!t->merges)
        goto oom;
    t->merge_mask = mcap - 1;
    char *joined = NULL;
    size_t joined_cap = 0;
    for (uint32_t i = 0; i < v->n_merges; i++) {
        size_t ll = v->merge_left_lens[i], rl = v->merge_right_lens[i];
        if (ll + rl > joined_cap) {
            joined_cap = 2 * (ll + rl);
            char *q = realloc(joined, joined_cap);
            if (!q) {
                free(joined);
                goto oom;
            }
            joined = q;
        }
        memcpy(joined, v->merge_left[i], ll);
        memcpy(joined + ll, v->merge_right[i], rl);
        int32_t l = intern(t, v->merge_left[i], ll), r = intern(t, v->merge_right[i], rl);
        int32_t m = intern(t, joined, ll + rl);
        if (l < 0 || r < 0 || m < 0) {
            free(joined);
            goto oom;
        }
        uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
        for (size_t k = merge_hash(key) & t->merge_mask;; k = (k + 1) & t->merge_mask) {
            merge_slot *s = &t->merges[k];
            if (s->key == key)
                break; /* the first rank of a repeated pair stays (llama.cpp's emplace) */
            if (!s->key) {
                s->key = key;
                s->rank = i;
                s->result = m;
                break;
            }
        }
    }
    free(joined);
    for (unsigned b = 0; b < 256; b++) {
        char one = (char)b;
        t->byte_char_len[b] = (uint8_t)nm_utf8_encode(gpt2_byte_cp(b), t->byte_char[b]);
        t->byte_sym[b] = spm_piece_map_find(&t->map, t->byte_char[b], t->byte_char_len[b]);
        int32_t id = spm_piece_map_find(&t->map, &one, 1);
        t->single_byte_token[b] = id >= 0 && (uint32_t)id < t->n_tokens ? id : -1;
    }
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->types[i] == SPM_TOKEN_USER_DEFINED && v->token_lens[i] > 0)
            t->n_user++;
    t->user_ids = malloc((t->n_user ? t->n_user : 1) * sizeof *t->user_ids);
    if (!t->user_ids)
        goto oom;
    t->n_user = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->types[i] == SPM_TOKEN_USER_DEFINED && v->token_lens[i] > 0)
            t->user_ids[t->n_user++] = (int32_t)i;
    qsort_r(t->user_ids, t->n_user, sizeof *t->user_ids, compare_user_len, t->lens);
    return t;
oom:
    bpe_tokenizer_free(t);
    nm_fail(err, "out of memory building the BPE tokenizer (%u tokens, %u merges)", v->n_tokens, v->n_merges);
    return NULL;
}

/* ---------------- growable buffers ---------------- */

typedef struct ids_out {
    int32_t *ids;
    size_t n, cap;
    bool failed;
} ids_out;

static void push_id(ids_out *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 1024;
        int32_t *p = realloc(o->ids, cap * sizeof *p);
        if (!p) {
            o->failed = true;
            return;
        }
        o->ids = p;
        o->cap = cap;
    }
    o->ids[o->n++] = id;
}

typedef struct pieces {
    size_t *end; /* piece k is [end[k-1], end[k]) in code points (end[-1] = the range start) */
    size_t n, cap;
    bool failed;
} pieces;

static inline void piece_add(pieces *p, size_t end) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        size_t *q = realloc(p->end, cap * sizeof *q);
        if (!q) {
            p->failed = true;
            return;
        }
        p->end = q;
        p->cap = cap;
    }
    p->end[p->n++] = end;
}

/* ---------------- pre-tokenizers ---------------- */

#define OUT 0x80u /* flags of a position outside the range being split */

typedef struct span {
    const uint32_t *cp;
    const uint8_t *fl;
    size_t begin, end;
} span;

static inline unsigned fl_at(const span *s, size_t i) { return i < s->end ? s->fl[i] : OUT; }
static inline uint32_t cp_at(const span *s, size_t i) { return i < s->end ? s->cp[i] : 0xffffffffu; }
static inline bool is_letter(unsigned f) { return (f & (OUT | NM_UCAT_CLASS_MASK)) == NM_UCAT_LETTER; }
static inline bool is_number(unsigned f) { return (f & (OUT | NM_UCAT_CLASS_MASK)) == NM_UCAT_NUMBER; }
static inline bool is_space(unsigned f) { return (f & (OUT | NM_UCAT_WHITESPACE)) == NM_UCAT_WHITESPACE; }
static inline bool is_other(unsigned f) { return !(f & OUT) && !is_space(f) && !is_letter(f) && !is_number(f); }
static inline uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Length of a contraction 's 't 're 've 'm 'll 'd at pos (case-insensitive or not), else 0. */
static size_t contraction(const span *s, size_t pos, bool any_case) {
    if (s->cp[pos] != '\'' || pos + 1 >= s->end)
        return 0;
    uint32_t a = s->cp[pos + 1], b = pos + 2 < s->end ? s->cp[pos + 2] : 0;
    if (any_case)
        a = ascii_lower(a), b = ascii_lower(b);
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (pos + 2 < s->end && ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')))
        return 3;
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(const span *s, pieces *out) {
    size_t pos = s->begin;
    while (pos < s->end) {
        uint32_t c = s->cp[pos];
        size_t k = contraction(s, pos, false);
        if (k) {
            pos += k;
            piece_add(out, pos);
            continue;
        }
        unsigned f2 = c == ' ' ? fl_at(s, pos + 1) : s->fl[pos];
        if (is_letter(f2) || is_number(f2) || is_other(f2)) {
            bool (*same)(unsigned) = is_letter(f2) ? is_letter : is_number(f2) ? is_number : is_other;
            pos += c == ' ';
            while (same(fl_at(s, pos)))
                pos++;
            piece_add(out, pos);
            continue;
        }
        size_t nws = 0;
        while (is_space(fl_at(s, pos + nws)))
            nws++;
        if (nws > 1 && pos + nws < s->end)
            pos += nws - 1;
        else
            pos += nws ? nws : 1;
        piece_add(out, pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+   (Qwen 2: \p{N} instead of \p{N}{1,3}) */
static void split_llama3(const span *s, pieces *out, size_t max_digits) {
    size_t pos = s->begin;
    while (pos < s->end) {
        uint32_t c = s->cp[pos];
        unsigned f = s->fl[pos];
        size_t k = contraction(s, pos, true);
        if (k) {
            pos += k;
            piece_add(out, pos);
            continue;
        }
        if (c != '\r' && c != '\n' && !is_number(f) && (is_letter(f) || is_letter(fl_at(s, pos + 1)))) {
            pos++;
            while (is_letter(fl_at(s, pos)))
                pos++;
            piece_add(out, pos);
            continue;
        }
        if (is_number(f)) {
            size_t run = 0;
            while (is_number(fl_at(s, pos)) && run < max_digits)
                pos++, run++;
            piece_add(out, pos);
            continue;
        }
        unsigned f2 = c == ' ' ? fl_at(s, pos + 1) : f;
        if (!is_space(f2) && !is_letter(f2) && !is_number(f2)) {
            pos += c == ' ';
            while (is_other(fl_at(s, pos)))
                pos++;
            while (cp_at(s, pos) == '\r' || cp_at(s, pos) == '\n')
                pos++;
            piece_add(out, pos);
            continue;
        }
        size_t nws = 0, last_newline = 0;
        while (is_space(fl_at(s, pos + nws))) {
            uint32_t w = s->cp[pos + nws];
            if (w == '\r' || w == '\n')
                last_newline = pos + nws + 1;
            nws++;
        }
        if (last_newline)
            pos = last_newline;
        else if (nws > 1 && pos + nws < s->end)
            pos += nws - 1;
        else
            pos += nws ? nws : 1;
        piece_add(out, pos);
    }
}

/* The classes of llama.cpp's collapsed text (see the top of this file). */
static inline bool c_letter(uint32_t c, unsigned f) {
    return c < 128 ? ((c | 32) >= 'a' && (c | 32) <= 'z') : (!(f & NM_UCAT_WHITESPACE) && is_letter(f));
}
static inline bool c_number(uint32_t c, unsigned f) {
    return c < 128 ? (c >= '0' && c <= '9') : (!(f & NM_UCAT_WHITESPACE) && is_number(f));
}
static inline bool c_punct(uint32_t c, unsigned f) {
    if (c < 128)
        return (c >= 0x21 && c <= 0x23) || (c >= 0x25 && c <= 0x2a) || (c >= 0x2c && c <= 0x2f) || c == 0x3a ||
               c == 0x3b || c == 0x3f || c == 0x40 || (c >= 0x5b && c <= 0x5d) || c == 0x5f || c == 0x7b || c == 0x7d;
    return !(f & NM_UCAT_WHITESPACE) && (f & NM_UCAT_CLASS_MASK) == NM_UCAT_PUNCTUATION;
}
static inline bool c_symbol(uint32_t c, unsigned f) {
    if (c < 128)
        return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' || c == '|' ||
               c == '~';
    return !(f & NM_UCAT_WHITESPACE) && (f & NM_UCAT_CLASS_MASK) == NM_UCAT_SYMBOL;
}
static inline bool c_mark(uint32_t c, unsigned f) {
    return c >= 128 && !(f & NM_UCAT_WHITESPACE) && (f & NM_UCAT_CLASS_MASK) == NM_UCAT_MARK;
}
static inline bool c_space(unsigned f) { return (f & NM_UCAT_WHITESPACE) != 0; }

/* A regex matcher: length of the match at pos (0 = none). */
typedef size_t (*match_fn)(const span *s, size_t pos);

/* Runs a matcher as std::regex_iterator does: leftmost matches, the text between them (if any)
 * one piece of its own. */
static void split_matches(const span *s, pieces *out, match_fn match) {
    size_t gap = s->begin;
    for (size_t pos = s->begin; pos < s->end;) {
        size_t n = match(s, pos);
        if (!n) {
            pos++;
            continue;
        }
        if (pos > gap)
            piece_add(out, pos);
        pos += n;
        piece_add(out, pos);
        gap = pos;
    }
    if (s->end > gap)
        piece_add(out, s->end);
}

/* \p{N}{1,3} */
static size_t match_digits3(const span *s, size_t pos) {
    size_t n = 0;
    while (n < 3 && pos + n < s->end && c_number(s->cp[pos + n], s->fl[pos + n]))
        n++;
    return n;
}
/* \p{N} */
static size_t match_digit(const span *s, size_t pos) { return c_number(s->cp[pos], s->fl[pos]) ? 1 : 0; }
/* [一-龥぀-ゟ゠-ヿ]+ */
static size_t match_cjk(const span *s, size_t pos) {
    size_t n = 0;
    for (; pos + n < s->end; n++) {
        uint32_t c = s->cp[pos + n];
        if (!((c >= 0x4e00 && c <= 0x9fa5) || (c >= 0x3040 && c <= 0x30ff)))
            break;
    }
    return n;
}
/* [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
 * ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t match_deepseek3(const span *s, size_t pos) {
    const uint32_t *cp = s->cp;
    const uint8_t *fl = s->fl;
    size_t end = s->end;
    uint32_t c = cp[pos];
    if (c >= 0x21 && c <= 0x7e && !((c | 32) >= 'a' && (c | 32) <= 'z') && !(c >= '0' && c <= '9')) {
        size_t n = 1;
        while (pos + n < end && cp[pos + n] < 128 && ((cp[pos + n] | 32) >= 'a' && (cp[pos + n] | 32) <= 'z'))
            n++;
        if (n > 1)
            return n;
    }
#define LM(i) (c_letter(cp[i], fl[i]) || c_mark(cp[i], fl[i]))
#define PS(i) (c_punct(cp[i], fl[i]) || c_symbol(cp[i], fl[i]))
    bool lead = c != '\r' && c != '\n' && !c_letter(c, fl[pos]) && !c_punct(c, fl[pos]) && !c_symbol(c, fl[pos]);
    if (lead && pos + 1 < end && LM(pos + 1)) {
        size_t n = 2;
        while (pos + n < end && LM(pos + n))
            n++;
        return n;
    }
    if (LM(pos)) {
        size_t n = 1;
        while (pos + n < end && LM(pos + n))
            n++;
        return n;
    }
    size_t start = pos + (c == ' ' && pos + 1 < end && PS(pos + 1));
    if (start < end && PS(start)) {
        size_t q = start + 1;
        while (q < end && PS(q))
            q++;
        while (q < end && (cp[q] == '\r' || cp[q] == '\n'))
            q++;
        return q - pos;
    }
#undef LM
#undef PS
    size_t nws = 0, last_newline = 0;
    while (pos + nws < end && c_space(fl[pos + nws])) {
        if (cp[pos + nws] == '\r' || cp[pos + nws] == '\n')
            last_newline = nws + 1;
        nws++;
    }
    if (last_newline)
        return last_newline;
    if (nws > 1 && pos + nws < end)
        return nws - 1;
    return nws;
}

typedef struct work {
    uint32_t *cp;
    uint8_t *fl;
    size_t cap;
    pieces a, b;
    char *word;
    size_t word_cap;
    struct sym {
        int32_t id;
        uint32_t start, len;
        int32_t prev, next;
    } *syms;
    size_t syms_cap;
    struct bigram {
        uint32_t rank;
        int32_t left, right, lid, rid;
    } *heap;
    size_t heap_cap;
} work;

/* Splits cp[0, n) into pieces (in w->a) with the tokenizer's pre-tokenizer. */
static int pre_tokenize(const bpe_tokenizer *t, work *w, size_t n) {
    span s = {w->cp, w->fl, 0, n};
    w->a.n = w->b.n = 0;
    switch (t->pre) {
    case PRE_GPT2:
        split_gpt2(&s, &w->a);
        break;
    case PRE_LLAMA3:
        split_llama3(&s, &w->a, 3);
        break;
    case PRE_QWEN2:
        split_llama3(&s, &w->a, 1);
        break;
    case PRE_STARCODER:
        split_matches(&s, &w->b, match_digit);
        for (size_t k = 0, begin = 0; k < w->b.n; begin = w->b.end[k++]) {
            span p = {w->cp, w->fl, begin, w->b.end[k]};
            split_gpt2(&p, &w->a);
        }
        break;
    case PRE_DEEPSEEK3: {
        split_matches(&s, &w->a, match_digits3);
        pieces *from = &w->a, *to = &w->b;
        match_fn next[2] = {match_cjk, match_deepseek3};
        for (int stage = 0; stage < 2; stage++) {
            to->n = 0;
            for (size_t k = 0, begin = 0; k < from->n; begin = from->end[k++]) {
                span p = {w->cp, w->fl, begin, from->end[k]};
                split_matches(&p, to, next[stage]);
            }
            pieces *tmp = from;
            from = to;
            to = tmp;
        }
        if (from != &w->a) {
            pieces tmp = w->a;
            w->a = w->b;
            w->b = tmp;
        }
        break;
    }
    }
    return w->a.failed || w->b.failed ? -1 : 0;
}

/* ---------------- BPE merging ---------------- */

static inline bool bigram_less(const struct bigram *a, const struct bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(work *w, size_t *n, struct bigram g) {
    if (*n == w->heap_cap) {
        size_t cap = w->heap_cap ? 2 * w->heap_cap : 64;
        struct bigram *p = realloc(w->heap, cap * sizeof *p);
        if (!p)
            return -1;
        w->heap = p;
        w->heap_cap = cap;
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_less(&g, &w->heap[parent]))
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = g;
    return 0;
}

static struct bigram heap_pop(work *w, size_t *n) {
    struct bigram top = w->heap[0], last = w->heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && bigram_less(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!bigram_less(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (*n)
        w->heap[i] = last;
    return top;
}

static int try_bigram(const bpe_tokenizer *t, work *w, size_t *n_heap, int32_t left, int32_t right) {
    if (left < 0 || right < 0)
        return 0;
    int32_t lid = w->syms[left].id, rid = w->syms[right].id;
    if (lid < 0 || rid < 0)
        return 0;
    const merge_slot *m = merge_find(t, lid, rid);
    if (!m)
        return 0;
    struct bigram g = {m->rank, left, right, lid, rid};
    return heap_push(w, n_heap, g);
}

/* Tokenizes one piece already in GPT-2's alphabet (w->word, len bytes, made of nsym symbols). */
static int bpe_word(const bpe_tokenizer *t, work *w, size_t len, size_t nsym, ids_out *out) {
    if (t->ignore_merges) {
        int32_t id = spm_piece_map_find(&t->map, w->word, len);
        if (id >= 0 && (uint32_t)id < t->n_tokens) {
            push_id(out, id);
            return 0;
        }
    }
    size_t n_heap = 0;
    for (size_t i = 1; i < nsym; i++)
        if (try_bigram(t, w, &n_heap, (int32_t)i - 1, (int32_t)i))
            return -1;
    while (n_heap) {
        struct bigram g = heap_pop(w, &n_heap);
        struct sym *l = &w->syms[g.left], *r = &w->syms[g.right];
        if (l->len == 0 || r->len == 0 || l->id != g.lid || r->id != g.rid || l->next != g.right)
            continue; /* outdated */
        l->id = merge_find(t, g.lid, g.rid)->result;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = g.left;
        if (try_bigram(t, w, &n_heap, l->prev, g.left) || try_bigram(t, w, &n_heap, g.left, l->next))
            return -1;
    }
    for (int32_t i = 0; i >= 0; i = w->syms[i].next) {
        const struct sym *sy = &w->syms[i];
        if (sy->id >= 0 && (uint32_t)sy->id < t->n_tokens) {
            push_id(out, sy->id);
            continue;
        }
        for (uint32_t k = 0; k < sy->len; k++) { /* not a token: its bytes' own tokens */
            int32_t id = t->single_byte_token[(unsigned char)w->word[sy->start + k]];
            if (id >= 0)
                push_id(out, id);
        }
    }
    return out->failed ? -1 : 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Tokenizes a fragment of raw text (no user-defined tokens in it). */
static int encode_fragment(const bpe_tokenizer *t, work *w, const char *text, size_t len, ids_out *out) {
    if (len > w->cap) {
        free(w->cp);
        free(w->fl);
        w->cp = malloc(len * sizeof *w->cp);
        w->fl = malloc(len);
        w->cap = len;
        if (!w->cp || !w->fl) {
            w->cap = 0;
            return -1;
        }
    }
    size_t n = 0;
    for (size_t pos = 0; pos < len;) {
        uint32_t c = nm_utf8_decode(text, len, &pos);
        w->cp[n] = c;
        w->fl[n++] = nm_unicode_flags(c);
    }
    if (pre_tokenize(t, w, n))
        return -1;
    for (size_t k = 0, begin = 0; k < w->a.n; begin = w->a.end[k++]) {
        size_t end = w->a.end[k], nbytes = 0, nsym = 0;
        if (grow((void **)&w->word, &w->word_cap, 8 * (end - begin), 1) ||
            grow((void **)&w->syms, &w->syms_cap, 4 * (end - begin), sizeof *w->syms))
            return -1;
        for (size_t i = begin; i < end; i++) {
            char utf8[4];
            size_t m = nm_utf8_encode(w->cp[i], utf8);
            for (size_t j = 0; j < m; j++) {
                unsigned b = (unsigned char)utf8[j];
                struct sym *sy = &w->syms[nsym];
                sy->id = t->byte_sym[b];
                sy->start = (uint32_t)nbytes;
                sy->len = t->byte_char_len[b];
                sy->prev = (int32_t)nsym - 1;
                sy->next = (int32_t)nsym + 1;
                memcpy(w->word + nbytes, t->byte_char[b], t->byte_char_len[b]);
                nbytes += t->byte_char_len[b];
                nsym++;
            }
        }
        if (!nsym)
            continue;
        w->syms[nsym - 1].next = -1;
        if (bpe_word(t, w, nbytes, nsym, out))
            return -1;
    }
    return 0;
}

int bpe_encode(bpe_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids, size_t *n_ids,
               nm_error *err) {
    *ids = NULL;
    *n_ids = 0;
    ids_out out = {0};
    work w = {0};
    /* fragments: [start, end) of raw text, or a user-defined token (end = -1 - id) */
    typedef struct frag {
        size_t start;
        int64_t end;
    } frag;
    frag *frags = malloc(sizeof *frags);
    size_t n_frags = 1, frags_cap = 1;
    int rc = -1;
    if (!frags)
        goto done;
    frags[0] = (frag){0, (int64_t)len};
    for (uint32_t u = 0; u < t->n_user; u++) {
        int32_t id = t->user_ids[u];
        const char *tok = t->texts[id];
        size_t tlen = t->lens[id];
        for (size_t f = 0; f < n_frags; f++) {
            if (frags[f].end < 0)
                continue;
            const char *hay = text + frags[f].start;
            size_t hlen = (size_t)frags[f].end - frags[f].start;
            const char *hit = memmem(hay, hlen, tok, tlen);
            if (!hit)
                continue;
            /* [start, hit) token [hit + tlen, end): replace f by up to three fragments */
            if (n_frags + 2 > frags_cap) {
                frags_cap = 2 * frags_cap + 2;
                frag *p = realloc(frags, frags_cap * sizeof *p);
                if (!p)
                    goto done;
                frags = p;
            }
            size_t hit_at = (size_t)(hit - text), after = hit_at + tlen;
            frag right = {after, frags[f].end};
            frag left = {frags[f].start, (int64_t)hit_at};
            size_t k = f;
            frag repl[3];
            size_t nr = 0;
            if (hit_at > left.start)
                repl[nr++] = left;
            repl[nr++] = (frag){0, -1 - (int64_t)id};
            if ((int64_t)after < right.end)
                repl[nr++] = right;
            memmove(&frags[k + nr], &frags[k + 1], (n_frags - k - 1) * sizeof *frags);
            memcpy(&frags[k], repl, nr * sizeof *repl);
            n_frags += nr - 1;
            f = k + nr - 2; /* continue with the right part (the loop's f++ reaches it) */
        }
    }
    if (add_special && t->add_bos)
        push_id(&out, t->bos_id);
    for (size_t f = 0; f < n_frags; f++) {
        if (frags[f].end < 0) {
            push_id(&out, (int32_t)(-1 - frags[f].end));
        } else if (encode_fragment(t, &w, text + frags[f].start, (size_t)frags[f].end - frags[f].start, &out)) {
            goto done;
        }
    }
    if (add_special && t->add_eos)
        push_id(&out, t->eos_id);
    if (out.failed)
        goto done;
    *ids = out.ids;
    *n_ids = out.n;
    out.ids = NULL;
    rc = 0;
done:
    if (rc)
        nm_fail(err, "out of memory tokenizing %zu bytes", len);
    free(out.ids);
    free(frags);
    free(w.cp);
    free(w.fl);
    free(w.a.end);
    free(w.b.end);
    free(w.word);
    free(w.syms);
    free(w.heap);
    return rc;
}
