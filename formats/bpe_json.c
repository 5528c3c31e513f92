/* Hugging Face tokenizer.json (model type BPE) -> bpe_vocab, with every field checked. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/bpe.h"
#include "formats/spm_internal.h"
#include "formats/unicode.h"

#define BPE_JSON_MAX_BYTES (1u << 30)

/* The pre-tokenizer regexes llama.cpp implements, as tokenizer.json spells them. */
static const char re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_qwen2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const re_deepseek3[3] = {
    "\\p{N}{1,3}",
    "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};
static const char re_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const char bpe_pre_names[] = "llama-bpe, smaug-bpe, dbrx, qwen2, deepseek-v3, gpt-2, smollm, starcoder";

bool bpe_pre_supported(const char *name) {
    static const char *const names[] = {"llama-bpe", "llama3", "llama-v3", "smaug-bpe", "dbrx", "qwen2",
                                        "deepseek-v3", "gpt-2", "smollm", "starcoder", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(name, names[i]))
            return true;
    return false;
}

void bpe_vocab_free(bpe_vocab *v) {
    if (!v)
        return;
    for (uint32_t i = 0; v->tokens && i < v->n_tokens; i++)
        free(v->tokens[i]);
    for (uint32_t i = 0; v->merge_left && i < v->n_merges; i++) {
        free(v->merge_left[i]);
        free(v->merge_right[i]);
    }
    for (uint32_t i = 0; v->added && i < v->n_added; i++)
        free(v->added[i].content);
    for (uint32_t i = 0; v->regex && i < v->n_regex; i++)
        free(v->regex[i]);
    free(v->tokens);
    free(v->token_lens);
    free(v->types);
    free(v->merge_left);
    free(v->merge_right);
    free(v->merge_left_lens);
    free(v->merge_right_lens);
    free(v->added);
    free(v->regex);
    memset(v, 0, sizeof *v);
}

static void vocab_init(bpe_vocab *v) {
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
    v->post_bos_id = v->post_eos_id = -1;
}

static char *dup_bytes(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

int bpe_vocab_resize(bpe_vocab *v, uint32_t n, nm_error *err) {
    if (n <= v->n_tokens)
        return 0;
    if (n > BPE_MAX_TOKENS)
        return nm_fail(err, "vocabulary size %u is too large (at most %u tokens)", n, BPE_MAX_TOKENS);
    char **tokens = realloc(v->tokens, (size_t)n * sizeof *tokens);
    if (tokens)
        v->tokens = tokens;
    uint32_t *lens = realloc(v->token_lens, (size_t)n * sizeof *lens);
    if (lens)
        v->token_lens = lens;
    int32_t *types = realloc(v->types, (size_t)n * sizeof *types);
    if (types)
        v->types = types;
    if (!tokens || !lens || !types)
        return nm_fail(err, "out of memory growing the vocabulary to %u tokens", n);
    for (uint32_t i = v->n_tokens; i < n; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "[PAD%u]", i);
        if (!(v->tokens[i] = dup_bytes(buf, (size_t)len)))
            return nm_fail(err, "out of memory growing the vocabulary to %u tokens", n);
        v->token_lens[i] = (uint32_t)len;
        v->types[i] = SPM_TOKEN_UNUSED;
        v->n_tokens = i + 1;
    }
    return 0;
}

/* A JSON string that must be valid UTF-8; what names it in messages. */
static int json_text(const cJSON *item, const char *what, const char **s, size_t *len, nm_error *err) {
    if (!cJSON_IsString(item) || !item->valuestring)
        return nm_fail(err, "%s is not a string", what);
    *s = item->valuestring;
    *len = strlen(item->valuestring);
    if (!nm_utf8_valid(*s, *len))
        return nm_fail(err, "%s is not valid UTF-8", what);
    return 0;
}

static bool json_bool(const cJSON *obj, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static int json_id(const cJSON *item, const char *what, uint32_t *id, nm_error *err) {
    if (!cJSON_IsNumber(item))
        return nm_fail(err, "%s: the id is not a number", what);
    double d = item->valuedouble;
    /* the range first: casting a double beyond int64_t's range is undefined (fuzz_bpe_json) */
    if (!(d >= 0))
        return nm_fail(err, "%s: id %.17g is not a non-negative integer", what, d);
    if (d >= BPE_MAX_TOKENS)
        return nm_fail(err, "%s: id %.17g is too large: the vocabulary would exceed %u tokens", what, d,
                       BPE_MAX_TOKENS);
    if (d != (double)(int64_t)d)
        return nm_fail(err, "%s: id %.17g is not a non-negative integer", what, d);
    *id = (uint32_t)d;
    return 0;
}

/* "type" of an object, or "" */
static const char *json_type(const cJSON *obj) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) && t->valuestring ? t->valuestring : "";
}

/* Quotes s for a message, cut to fit (nm_fail replaces control bytes). */
static const char *clip(const char *s, char *buf, size_t cap) {
    size_t n = strlen(s);
    if (n < cap)
        return s;
    memcpy(buf, s, cap - 4);
    memcpy(buf + cap - 4, "...", 4);
    return buf;
}

static int parse_vocab(bpe_vocab *v, const cJSON *model, spm_piece_map *map, nm_error *err) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return nm_fail(err, "model.vocab is missing or not an object");
    uint32_t n = 0, max_id = 0;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        uint32_t id;
        char what[96];
        snprintf(what, sizeof what, "model.vocab entry %u", n);
        if (json_id(it, what, &id, err))
            return -1;
        if (id > max_id)
            max_id = id;
        if (++n > BPE_MAX_TOKENS)
            return nm_fail(err, "model.vocab has more than %u tokens", BPE_MAX_TOKENS);
    }
    if (n == 0)
        return nm_fail(err, "model.vocab is empty");
    if (bpe_vocab_resize(v, max_id + 1, err))
        return -1;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        v->types[i] = -1; /* not yet given */
    uint32_t k = 0;
    for (const cJSON *it = vocab->child; it; it = it->next, k++) {
        uint32_t id = (uint32_t)it->valuedouble;
        const char *s = it->string;
        size_t len = s ? strlen(s) : 0;
        char what[96];
        snprintf(what, sizeof what, "model.vocab entry %u (id %u)", k, id);
        if (!s || len == 0)
            return nm_fail(err, "%s has an empty token text", what);
        if (!nm_utf8_valid(s, len))
            return nm_fail(err, "%s: the token text is not valid UTF-8", what);
        if (v->types[id] != -1)
            return nm_fail(err, "%s: id %u is given to two tokens", what, id);
        char *copy = dup_bytes(s, len);
        if (!copy)
            return nm_fail(err, "out of memory");
        free(v->tokens[id]);
        v->tokens[id] = copy;
        v->token_lens[id] = (uint32_t)len;
        v->types[id] = SPM_TOKEN_NORMAL;
    }
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->types[i] == -1)
            v->types[i] = SPM_TOKEN_UNUSED;
    if (spm_piece_map_init(map, v->n_tokens, (const char *const *)v->tokens, v->token_lens))
        return nm_fail(err, "out of memory");
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        if (v->types[i] != SPM_TOKEN_NORMAL)
            continue;
        int32_t old = spm_piece_map_put(map, i);
        if (old >= 0) {
            char buf[80];
            return nm_fail(err, "model.vocab: token \"%s\" appears twice (ids %d and %u)",
                           clip(v->tokens[i], buf, sizeof buf), old, i);
        }
    }
    return 0;
}

/* Looks up a merge part in the model's vocabulary (not added tokens, as tokenizers checks). */
static int merge_part(const bpe_vocab *v, const spm_piece_map *map, const char *s, size_t len, uint32_t i,
                      nm_error *err) {
    int32_t id = spm_piece_map_find(map, s, len);
    if (id < 0 || v->types[id] != SPM_TOKEN_NORMAL) {
        char buf[80], tmp[80];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(len < 79 ? len : 79), s);
        return nm_fail(err, "model.merges[%u] names \"%s\", which is not in model.vocab", i,
                       clip(tmp, buf, sizeof buf));
    }
    return 0;
}

static int parse_merges(bpe_vocab *v, const cJSON *model, const spm_piece_map *map, nm_error *err) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!merges)
        return 0; /* a BPE model may have no merges: every token is then a byte or whole word */
    if (!cJSON_IsArray(merges))
        return nm_fail(err, "model.merges is not an array");
    int count = cJSON_GetArraySize(merges);
    if (count < 0 || (uint32_t)count > 4 * BPE_MAX_TOKENS)
        return nm_fail(err, "model.merges has too many entries");
    uint32_t n = (uint32_t)count;
    v->merge_left = calloc(n ? n : 1, sizeof *v->merge_left);
    v->merge_right = calloc(n ? n : 1, sizeof *v->merge_right);
    v->merge_left_lens = calloc(n ? n : 1, sizeof *v->merge_left_lens);
    v->merge_right_lens = calloc(n ? n : 1, sizeof *v->merge_right_lens);
    if (!v->merge_left || !v->merge_right || !v->merge_left_lens || !v->merge_right_lens)
        return nm_fail(err, "out of memory");
    char *joined = NULL;
    size_t joined_cap = 0;
    uint32_t i = 0;
    int rc = 0;
    for (const cJSON *it = merges->child; it; it = it->next, i++) {
        const char *a, *b;
        size_t alen, blen;
        char what[64];
        snprintf(what, sizeof what, "model.merges[%u]", i);
        if (cJSON_IsString(it)) {
            const char *s;
            size_t len;
            if ((rc = json_text(it, what, &s, &len, err)))
                break;
            const char *sp = memchr(s, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
                char buf[80];
                rc = nm_fail(err, "%s \"%s\" is not two tokens separated by one space", what, clip(s, buf, sizeof buf));
                break;
            }
            a = s, alen = (size_t)(sp - s), b = sp + 1, blen = len - alen - 1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2) {
            if ((rc = json_text(it->child, what, &a, &alen, err)) ||
                (rc = json_text(it->child->next, what, &b, &blen, err)))
                break;
        } else {
            rc = nm_fail(err, "%s is neither a string \"a b\" nor a pair [\"a\", \"b\"]", what);
            break;
        }
        if ((rc = merge_part(v, map, a, alen, i, err)) || (rc = merge_part(v, map, b, blen, i, err)))
            break;
        if (alen + blen + 1 > joined_cap) {
            joined_cap = 2 * (alen + blen + 1);
            char *p = realloc(joined, joined_cap);
            if (!p) {
                rc = nm_fail(err, "out of memory");
                break;
            }
            joined = p;
        }
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        int32_t id = spm_piece_map_find(map, joined, alen + blen);
        if (id < 0 || v->types[id] != SPM_TOKEN_NORMAL) {
            char buf[80];
            joined[alen + blen] = '\0';
            rc = nm_fail(err, "%s makes \"%s\", which is not in model.vocab", what, clip(joined, buf, sizeof buf));
            break;
        }
        if (!(v->merge_left[i] = dup_bytes(a, alen)) || !(v->merge_right[i] = dup_bytes(b, blen))) {
            v->n_merges = i + 1;
            rc = nm_fail(err, "out of memory");
            break;
        }
        v->merge_left_lens[i] = (uint32_t)alen;
        v->merge_right_lens[i] = (uint32_t)blen;
        v->n_merges = i + 1;
    }
    free(joined);
    return rc;
}

static int parse_added(bpe_vocab *v, const cJSON *root, nm_error *err) {
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!added || cJSON_IsNull(added))
        return 0;
    if (!cJSON_IsArray(added))
        return nm_fail(err, "added_tokens is not an array");
    int count = cJSON_GetArraySize(added);
    if (count < 0 || (uint32_t)count > BPE_MAX_TOKENS)
        return nm_fail(err, "added_tokens has too many entries");
    v->added = calloc(count ? (size_t)count : 1, sizeof *v->added);
    if (!v->added)
        return nm_fail(err, "out of memory");
    uint32_t i = 0, max_id = 0;
    for (const cJSON *it = added->child; it; it = it->next, i++) {
        char what[64];
        snprintf(what, sizeof what, "added_tokens[%u]", i);
        if (!cJSON_IsObject(it))
            return nm_fail(err, "%s is not an object", what);
        bpe_added_token *a = &v->added[i];
        const char *s;
        size_t len;
        if (json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), what, &a->id, err))
            return -1;
        strncat(what, ".content", sizeof what - strlen(what) - 1);
        if (json_text(cJSON_GetObjectItemCaseSensitive(it, "content"), what, &s, &len, err))
            return -1;
        if (len == 0)
            return nm_fail(err, "%s is empty", what);
        for (uint32_t j = 0; j < i; j++)
            if (v->added[j].id == a->id)
                return nm_fail(err, "added_tokens[%u] and added_tokens[%u] both have id %u", j, i, a->id);
        if (!(a->content = dup_bytes(s, len)))
            return nm_fail(err, "out of memory");
        a->len = (uint32_t)len;
        a->special = json_bool(it, "special");
        a->lstrip = json_bool(it, "lstrip");
        a->rstrip = json_bool(it, "rstrip");
        a->normalized = json_bool(it, "normalized");
        a->single_word = json_bool(it, "single_word");
        v->n_added = i + 1;
        if (a->id > max_id)
            max_id = a->id;
    }
    if (v->n_added && bpe_vocab_resize(v, max_id + 1, err))
        return -1;
    /* llama.cpp's converter: an added token replaces the text at its id; CONTROL when special or
     * when it looks special, USER_DEFINED otherwise (with U+2581 as a plain space) */
    for (uint32_t k = 0; k < v->n_added; k++) {
        bpe_added_token *a = &v->added[k];
        bool control = a->special || spm_token_looks_special(a->content, a->len);
        char *text = dup_bytes(a->content, a->len);
        if (!text)
            return nm_fail(err, "out of memory");
        size_t o = a->len;
        if (!control) {
            o = 0;
            for (size_t j = 0; j < a->len;) {
                if (j + 3 <= a->len && memcmp(a->content + j, "\xe2\x96\x81", 3) == 0) {
                    text[o++] = ' ';
                    j += 3;
                } else {
                    text[o++] = a->content[j++];
                }
            }
            text[o] = '\0';
        }
        free(v->tokens[a->id]);
        v->tokens[a->id] = text;
        v->token_lens[a->id] = (uint32_t)o;
        v->types[a->id] = control ? SPM_TOKEN_CONTROL : SPM_TOKEN_USER_DEFINED;
    }
    return 0;
}

static void copy_name(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src); }

static int parse_normalizer(bpe_vocab *v, const cJSON *root, nm_error *err) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!n || cJSON_IsNull(n))
        return 0;
    if (!cJSON_IsObject(n))
        return nm_fail(err, "normalizer is not an object");
    const char *type = json_type(n);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        int count = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
        if (count == 0)
            return 0;
        if (count == 1 && cJSON_IsObject(list->child))
            type = json_type(list->child);
    }
    copy_name(v->normalizer, sizeof v->normalizer, type[0] ? type : "unknown");
    return 0;
}

static int add_regex(bpe_vocab *v, const char *re, nm_error *err) {
    char **p = realloc(v->regex, (v->n_regex + 1) * sizeof *p);
    if (!p)
        return nm_fail(err, "out of memory");
    v->regex = p;
    if (!(v->regex[v->n_regex] = strdup(re)))
        return nm_fail(err, "out of memory");
    v->n_regex++;
    return 0;
}

/* Sets pre_error once (the first problem wins), with control bytes made '?' like nm_fail. */
static void set_pre_error(bpe_vocab *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_pre_error(bpe_vocab *v, const char *fmt, ...) {
    if (v->pre_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->pre_error, sizeof v->pre_error, fmt, ap);
    va_end(ap);
    for (char *p = v->pre_error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* One pre-tokenizer step; a message in v->pre_error (not a failure) for what nomoat cannot map. */
static int parse_pre_step(bpe_vocab *v, const cJSON *p, int depth, nm_error *err) {
    if (!cJSON_IsObject(p))
        return nm_fail(err, "pre_tokenizer: a step is not an object");
    const char *type = json_type(p);
    if (!strcmp(type, "Sequence") && depth == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return nm_fail(err, "pre_tokenizer: Sequence has no pretokenizers array");
        for (const cJSON *it = list->child; it; it = it->next)
            if (parse_pre_step(v, it, depth + 1, err))
                return -1;
        return 0;
    }
    if (v->byte_level && !v->pre_error[0])
        set_pre_error(v, "pre_tokenizer: a %s step after ByteLevel is not supported",
                 type);
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
        const char *s;
        size_t len;
        if (!re) {
            if (!v->pre_error[0])
                set_pre_error(v, "pre_tokenizer: a Split by a plain string is not supported");
            return 0;
        }
        if (json_text(re, "pre_tokenizer Split pattern", &s, &len, err))
            return -1;
        const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (!v->pre_error[0] && (json_bool(p, "invert") || !cJSON_IsString(behavior) ||
                                 strcmp(behavior->valuestring, "Isolated")))
            set_pre_error(v,
                     "pre_tokenizer: only Split steps with behavior Isolated and invert false are supported");
        return add_regex(v, s, err);
    }
    if (!strcmp(type, "ByteLevel")) {
        v->byte_level = true;
        v->byte_level_regex = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "use_regex"));
        v->byte_level_prefix = json_bool(p, "add_prefix_space");
        return 0;
    }
    if (!strcmp(type, "Digits")) {
        v->digits = json_bool(p, "individual_digits") ? 1 : 2;
        if (v->n_regex && !v->pre_error[0])
            set_pre_error(v, "pre_tokenizer: a Digits step after a Split is not supported");
        return 0;
    }
    if (!v->pre_error[0])
        set_pre_error(v, "pre_tokenizer type '%s' is not supported", type[0] ? type : "?");
    return 0;
}

/* llama.cpp's name for the pre-tokenizer, from the regexes and steps; see bpe.h. */
static void derive_pre(bpe_vocab *v, bool post_adds_bos) {
    if (v->pre_error[0])
        return;
    const char *name = NULL;
    if (!v->byte_level) {
        set_pre_error(v, "pre_tokenizer has no ByteLevel step: not a byte-level BPE");
        return;
    }
    if (v->byte_level_prefix) {
        set_pre_error(v, "pre_tokenizer ByteLevel with add_prefix_space is not supported");
        return;
    }
    if (v->n_regex == 1 && !v->byte_level_regex && !v->digits && !strcmp(v->regex[0], re_llama3))
        name = post_adds_bos ? "llama-bpe" : "smaug-bpe"; /* as llama.cpp's converter tells them apart */
    else if (v->n_regex == 1 && !v->byte_level_regex && !v->digits && !strcmp(v->regex[0], re_qwen2))
        name = "qwen2";
    else if (v->n_regex == 3 && !v->byte_level_regex && !v->digits && !strcmp(v->regex[0], re_deepseek3[0]) &&
             !strcmp(v->regex[1], re_deepseek3[1]) && !strcmp(v->regex[2], re_deepseek3[2]))
        name = "deepseek-v3";
    else if (v->n_regex == 0 && v->byte_level_regex && !v->digits)
        name = "gpt-2";
    else if (v->n_regex == 1 && !v->byte_level_regex && !v->digits && !strcmp(v->regex[0], re_gpt2))
        name = "gpt-2";
    else if (v->n_regex == 0 && v->byte_level_regex && v->digits == 1)
        name = "smollm";
    if (name) {
        copy_name(v->pre, sizeof v->pre, name);
        return;
    }
    char buf[200];
    const char *re = v->n_regex ? clip(v->regex[v->n_regex - 1], buf, sizeof buf) : "(none)";
    set_pre_error(v,
             "pre-tokenizer regex \"%s\" is not one nomoat knows (give --pre NAME, one of: %s)", re, bpe_pre_names);
}

/* Looks up a post-processor's special token by text in the vocabulary. */
static int32_t post_token(const cJSON *special_tokens, const char *name, const spm_piece_map *map) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(special_tokens, name);
    const cJSON *ids = st ? cJSON_GetObjectItemCaseSensitive(st, "ids") : NULL;
    if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) == 1 && cJSON_IsNumber(ids->child) &&
        ids->child->valuedouble >= 0 && ids->child->valuedouble < BPE_MAX_TOKENS)
        return (int32_t)ids->child->valuedouble;
    (void)map;
    return -1;
}

static void parse_post(bpe_vocab *v, const cJSON *p, const spm_piece_map *map) {
    if (!cJSON_IsObject(p))
        return;
    const char *type = json_type(p);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors");
        if (cJSON_IsArray(list))
            for (const cJSON *it = list->child; it; it = it->next)
                parse_post(v, it, map);
    } else if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single) || !single->child)
            return;
        const cJSON *last = single->child;
        while (last->next)
            last = last->next;
        const cJSON *first_st = cJSON_GetObjectItemCaseSensitive(single->child, "SpecialToken");
        const cJSON *last_st = cJSON_GetObjectItemCaseSensitive(last, "SpecialToken");
        const cJSON *fid = first_st ? cJSON_GetObjectItemCaseSensitive(first_st, "id") : NULL;
        const cJSON *lid = last_st ? cJSON_GetObjectItemCaseSensitive(last_st, "id") : NULL;
        if (cJSON_IsString(fid))
            v->post_bos_id = post_token(specials, fid->valuestring, map);
        if (cJSON_IsString(lid) && last != single->child)
            v->post_eos_id = post_token(specials, lid->valuestring, map);
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        if (cJSON_IsArray(cls) && cJSON_GetArraySize(cls) == 2 && cJSON_IsNumber(cls->child->next) &&
            cls->child->next->valuedouble >= 0 && cls->child->next->valuedouble < BPE_MAX_TOKENS)
            v->post_bos_id = (int32_t)cls->child->next->valuedouble;
        if (cJSON_IsArray(sep) && cJSON_GetArraySize(sep) == 2 && cJSON_IsNumber(sep->child->next) &&
            sep->child->next->valuedouble >= 0 && sep->child->next->valuedouble < BPE_MAX_TOKENS)
            v->post_eos_id = (int32_t)sep->child->next->valuedouble;
    }
}

static int parse_root(bpe_vocab *v, const cJSON *root, nm_error *err) {
    if (!cJSON_IsObject(root))
        return nm_fail(err, "not a tokenizer.json: the top level is not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return nm_fail(err, "not a tokenizer.json: no \"model\" object");
    const char *type = json_type(model);
    if (!type[0] && cJSON_GetObjectItemCaseSensitive(model, "merges"))
        type = "BPE"; /* files from before tokenizers 0.11 name no type */
    if (strcmp(type, "BPE")) {
        char buf[64];
        return nm_fail(err, "model type '%s' is not supported (only BPE)", type[0] ? clip(type, buf, sizeof buf) : "?");
    }
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    if ((cJSON_IsString(prefix) && prefix->valuestring[0]) || (cJSON_IsString(suffix) && suffix->valuestring[0]))
        return nm_fail(err, "BPE with a continuing_subword_prefix or end_of_word_suffix is not supported");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0)
        return nm_fail(err, "BPE dropout is not supported");
    v->byte_fallback = json_bool(model, "byte_fallback");
    v->ignore_merges = json_bool(model, "ignore_merges");

    spm_piece_map map = {0};
    int rc = parse_vocab(v, model, &map, err);
    if (!rc)
        rc = parse_merges(v, model, &map, err);
    if (!rc)
        rc = parse_added(v, root, err);
    if (!rc)
        rc = parse_normalizer(v, root, err);
    if (!rc) {
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
        if (!pre || cJSON_IsNull(pre))
            set_pre_error(v, "tokenizer.json has no pre_tokenizer");
        else
            rc = parse_pre_step(v, pre, 0, err);
    }
    if (!rc) {
        parse_post(v, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), &map);
        if (v->post_bos_id >= (int32_t)v->n_tokens)
            v->post_bos_id = -1;
        if (v->post_eos_id >= (int32_t)v->n_tokens)
            v->post_eos_id = -1;
        derive_pre(v, v->post_bos_id >= 0);
        v->bos_id = v->post_bos_id;
        v->add_bos = v->post_bos_id >= 0;
        v->eos_id = v->post_eos_id;
        v->add_eos = v->post_eos_id >= 0;
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
        if (cJSON_IsObject(dec))
            copy_name(v->decoder, sizeof v->decoder, json_type(dec));
    }
    spm_piece_map_free(&map);
    return rc;
}

/* True when the text ends inside a string or an open object/array (or holds nothing): the
 * usual damage of an interrupted download, worth its own message. */
static bool json_ends_early(const char *data, size_t size) {
    long depth = 0;
    bool in_string = false, escape = false, any = false;
    for (size_t i = 0; i < size; i++) {
        char c = data[i];
        if (in_string) {
            if (escape)
                escape = false;
            else if (c == '\\')
                escape = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"')
            in_string = true;
        else if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && depth > 0)
            depth--;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            any = true;
    }
    return in_string || depth > 0 || !any;
}

int bpe_vocab_load_json_memory(bpe_vocab *v, const char *data, size_t size, nm_error *err) {
    vocab_init(v);
    if (size > BPE_JSON_MAX_BYTES)
        return nm_fail(err, "tokenizer.json is larger than 1 GiB");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, size, &end, false);
    if (root && end) { /* only white space may follow the value */
        for (const char *p = end; p < data + size; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                cJSON_Delete(root);
                root = NULL;
                end = p;
                break;
            }
    }
    if (!root) {
        size_t at = end && end >= data && end <= data + size ? (size_t)(end - data) : 0;
        const char *what = json_ends_early(data, size) ? "truncated" : "not valid JSON";
        return nm_fail(err, "tokenizer.json is %s (at byte %zu of %zu)", what, at, size);
    }
    int rc = parse_root(v, root, err);
    cJSON_Delete(root);
    if (rc)
        bpe_vocab_free(v);
    return rc;
}

int bpe_vocab_load_json(bpe_vocab *v, const char *path, nm_error *err) {
    vocab_init(v);
    FILE *f = fopen(path, "rb");
    if (!f)
        return nm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return nm_fail(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > BPE_JSON_MAX_BYTES) {
        fclose(f);
        return nm_fail(err, "%s: larger than 1 GiB: not a tokenizer.json", path);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return nm_fail(err, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != size) {
        free(buf);
        return nm_fail(err, "%s: read error", path);
    }
    int rc = bpe_vocab_load_json_memory(v, buf, size, err);
    free(buf);
    if (rc)
        nm_error_prefix(err, "%s", path);
    return rc;
}
