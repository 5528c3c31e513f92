/* Vocabulary adjustments the reference converter makes on top of tokenizer.model for a
 * Hugging Face folder: config.json's vocab_size and added tokens (FORMATS.md §7.3, last
 * paragraph). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/spm.h"

int spm_vocab_resize(spm_vocab *v, uint32_t n, uint32_t *n_dropped, nm_error *err) {
    if (n_dropped)
        *n_dropped = 0;
    if (n == 0)
        return nm_fail(err, "vocabulary size 0 is not allowed");
    if (n > INT32_MAX)
        return nm_fail(err, "vocabulary size %u is too large", n);
    uint32_t old = v->n_tokens;
    if (n < old) {
        for (uint32_t i = n; i < old; i++)
            free(v->pieces[i]);
        if (n_dropped)
            *n_dropped = old - n;
    }
    /* shrinking realloc cannot fail in a way that loses data; growing is checked */
    char **pieces = realloc(v->pieces, (size_t)n * sizeof *pieces);
    if (pieces)
        v->pieces = pieces;
    uint32_t *lens = realloc(v->piece_lens, (size_t)n * sizeof *lens);
    if (lens)
        v->piece_lens = lens;
    float *scores = realloc(v->scores, (size_t)n * sizeof *scores);
    if (scores)
        v->scores = scores;
    int32_t *types = realloc(v->types, (size_t)n * sizeof *types);
    if (types)
        v->types = types;
    if (n < old) {
        v->n_tokens = n;
    } else if (!pieces || !lens || !scores || !types) {
        return nm_fail(err, "out of memory growing the vocabulary to %u tokens", n);
    } else {
        for (uint32_t i = old; i < n; i++) {
            char buf[32];
            int len = snprintf(buf, sizeof buf, "[PAD%u]", i);
            v->pieces[i] = strdup(buf);
            if (!v->pieces[i]) {
                v->n_tokens = i;
                return nm_fail(err, "out of memory growing the vocabulary to %u tokens", n);
            }
            v->piece_lens[i] = (uint32_t)len;
            v->scores[i] = -10000.0f;
            v->types[i] = SPM_TOKEN_UNUSED;
            v->n_tokens = i + 1;
        }
    }
    if (v->unk_id >= (int32_t)n)
        v->unk_id = -1;
    if (v->bos_id >= (int32_t)n)
        v->bos_id = -1;
    if (v->eos_id >= (int32_t)n)
        v->eos_id = -1;
    if (v->pad_id >= (int32_t)n)
        v->pad_id = -1;
    return 0;
}

static bool has_prefix(const char *t, size_t len, const char *p) {
    size_t n = strlen(p);
    return len >= n && memcmp(t, p, n) == 0;
}
static bool has_suffix(const char *t, size_t len, const char *s) {
    size_t n = strlen(s);
    return len >= n && memcmp(t + len - n, s, n) == 0;
}
static bool equals(const char *t, size_t len, const char *s) { return len == strlen(s) && memcmp(t, s, len) == 0; }

bool spm_token_looks_special(const char *t, size_t len) {
    return equals(t, len, "<pad>") || equals(t, len, "<mask>") || equals(t, len, "<2mass>") ||
           equals(t, len, "[@BOS@]") || (has_prefix(t, len, "<|") && has_suffix(t, len, "|>")) ||
           (has_prefix(t, len, "<\xef\xbd\x9c") && has_suffix(t, len, "\xef\xbd\x9c>")) ||
           (has_prefix(t, len, "<unused") && has_suffix(t, len, ">"));
}

static int replace_token(spm_vocab *v, uint32_t id, const char *text, size_t len, float score, int32_t type,
                         nm_error *err) {
    if (len > UINT32_MAX - 1)
        return nm_fail(err, "added token %u is too long", id);
    char *copy = malloc(len + 1);
    if (!copy)
        return nm_fail(err, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(v->pieces[id]);
    v->pieces[id] = copy;
    v->piece_lens[id] = (uint32_t)len;
    v->scores[id] = score;
    v->types[id] = type;
    return 0;
}

int spm_vocab_set_added_token(spm_vocab *v, uint32_t id, const char *text, size_t len, nm_error *err) {
    if (id >= v->n_tokens)
        return 1;
    return replace_token(v, id, text, len, -1000.0f, SPM_TOKEN_USER_DEFINED, err);
}

int spm_vocab_set_decoder_token(spm_vocab *v, uint32_t id, const char *text, size_t len, bool special,
                                nm_error *err) {
    if (id >= v->n_tokens)
        return 1;
    if (special || spm_token_looks_special(text, len))
        return replace_token(v, id, text, len, -1000.0f, SPM_TOKEN_CONTROL, err);
    /* user-defined tokens are matched in raw text, so their U+2581 become plain spaces */
    char *norm = malloc(len + 1);
    if (!norm)
        return nm_fail(err, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (i + 3 <= len && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
            norm[o++] = ' ';
            i += 3;
        } else {
            norm[o++] = text[i++];
        }
    }
    int rc = replace_token(v, id, norm, o, -1000.0f, SPM_TOKEN_USER_DEFINED, err);
    free(norm);
    return rc;
}

/* Reads a small JSON file; *json = NULL when the file does not exist. */
static int read_json(const char *path, cJSON **json, nm_error *err) {
    *json = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return nm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) {
        fclose(f);
        return nm_fail(err, "%s: not a regular file of at most 64 MB", path);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return nm_fail(err, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    if (got != size) {
        free(buf);
        return nm_fail(err, "%s: read error", path);
    }
    buf[size] = '\0';
    *json = cJSON_ParseWithLength(buf, size);
    if (!*json) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= buf && at <= buf + size ? (size_t)(at - buf) : 0;
        free(buf);
        return nm_fail(err, "%s: invalid JSON near byte %zu", path, off);
    }
    free(buf);
    return 0;
}

/* A JSON number that is an exact non-negative integer below 2^32. */
static int json_token_id(const cJSON *item, uint32_t *id) {
    if (!cJSON_IsNumber(item))
        return -1;
    double d = item->valuedouble;
    if (!(d >= 0 && d < 4294967296.0) || d != (double)(uint64_t)d)
        return -1;
    *id = (uint32_t)d;
    return 0;
}

/* Python's int() of a decimal key (surrounding whitespace allowed). */
static int parse_id_key(const char *s, uint32_t *id) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    if (*s == '+')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s++ - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    if (*s)
        return -1;
    *id = (uint32_t)v;
    return 0;
}

/* Python truthiness of token_data.get("special"). */
static bool json_truthy(const cJSON *item) {
    if (!item || cJSON_IsNull(item) || cJSON_IsFalse(item))
        return false;
    if (cJSON_IsNumber(item))
        return item->valuedouble != 0;
    if (cJSON_IsString(item))
        return item->valuestring[0] != '\0';
    if (cJSON_IsArray(item) || cJSON_IsObject(item))
        return item->child != NULL;
    return true;
}

/* One added token of tokenizer_config.json's added_tokens_decoder or tokenizer.json's added_tokens:
 * as _create_vocab_sentencepiece takes it (out-of-range ids ignored), or as Phi3MiniModel.set_vocab
 * does (special_only: CONTROL only when marked special, else USER_DEFINED with the text as it is;
 * an id beyond the vocabulary stops that converter, so it is refused). */
static int apply_one(spm_vocab *v, uint32_t id, const cJSON *e, bool special_only, const char *path,
                     uint32_t *n_ignored, nm_error *err) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsString(content))
        return nm_fail(err, "%s: added token %u has no string \"content\"", path, id);
    bool special = json_truthy(cJSON_GetObjectItemCaseSensitive(e, "special"));
    const char *text = content->valuestring;
    int rc;
    if (!special_only) {
        rc = spm_vocab_set_decoder_token(v, id, text, strlen(text), special, err);
    } else if (id >= v->n_tokens) {
        return nm_fail(err, "%s: added token %u (\"%.64s\") is beyond the vocabulary of %u tokens", path, id, text,
                       v->n_tokens);
    } else {
        rc = replace_token(v, id, text, strlen(text), -1000.0f, special ? SPM_TOKEN_CONTROL : SPM_TOKEN_USER_DEFINED,
                           err);
    }
    if (rc < 0)
        return nm_error_prefix(err, "%s", path);
    if (rc == 1 && n_ignored)
        (*n_ignored)++;
    return 0;
}

static int apply_added_tokens(spm_vocab *v, const char *dir, bool special_only, uint32_t *n_ignored, nm_error *err) {
    if (n_ignored)
        *n_ignored = 0;
    char path[4096];
    cJSON *json;
    int rc;

    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    if (read_json(path, &json, err))
        return -1;
    if (json) {
        if (!cJSON_IsObject(json)) {
            cJSON_Delete(json);
            return nm_fail(err, "%s: expected an object of \"token\": id", path);
        }
        for (cJSON *e = json->child; e; e = e->next) {
            uint32_t id;
            if (json_token_id(e, &id)) {
                nm_fail(err, "%s: token \"%.64s\" has no valid integer id", path, e->string);
                cJSON_Delete(json);
                return -1;
            }
            rc = spm_vocab_set_added_token(v, id, e->string, strlen(e->string), err);
            if (rc < 0) {
                cJSON_Delete(json);
                return nm_error_prefix(err, "%s", path);
            }
            if (rc == 1 && n_ignored)
                (*n_ignored)++;
        }
        cJSON_Delete(json);
    }

    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (read_json(path, &json, err))
        return -1;
    if (json) {
        const cJSON *dec = cJSON_IsObject(json) ? cJSON_GetObjectItemCaseSensitive(json, "added_tokens_decoder") : NULL;
        if (dec && !cJSON_IsObject(dec)) {
            cJSON_Delete(json);
            return nm_fail(err, "%s: added_tokens_decoder is not an object", path);
        }
        for (const cJSON *e = dec ? dec->child : NULL; e; e = e->next) {
            uint32_t id;
            if (parse_id_key(e->string, &id)) {
                nm_fail(err, "%s: added_tokens_decoder key \"%.32s\" is not a token id", path, e->string);
                cJSON_Delete(json);
                return -1;
            }
            if (apply_one(v, id, e, special_only, path, n_ignored, err) != 0) {
                cJSON_Delete(json);
                return -1;
            }
        }
        cJSON_Delete(json);
    }
    if (!special_only)
        return 0;

    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (read_json(path, &json, err))
        return -1;
    if (!json)
        return 0;
    const cJSON *list = cJSON_IsObject(json) ? cJSON_GetObjectItemCaseSensitive(json, "added_tokens") : NULL;
    if (list && !cJSON_IsArray(list)) {
        cJSON_Delete(json);
        return nm_fail(err, "%s: added_tokens is not a list", path);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        uint32_t id;
        if (json_token_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id)) {
            nm_fail(err, "%s: an added token has no valid integer \"id\"", path);
            cJSON_Delete(json);
            return -1;
        }
        if (apply_one(v, id, e, true, path, n_ignored, err) != 0) {
            cJSON_Delete(json);
            return -1;
        }
    }
    cJSON_Delete(json);
    return 0;
}

int spm_vocab_apply_hf_added_tokens(spm_vocab *v, const char *dir, uint32_t *n_ignored, nm_error *err) {
    return apply_added_tokens(v, dir, false, n_ignored, err);
}

int spm_vocab_apply_special_only_added_tokens(spm_vocab *v, const char *dir, nm_error *err) {
    return apply_added_tokens(v, dir, true, NULL, err);
}
