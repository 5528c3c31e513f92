/* SentencePiece ModelProto parser (FORMATS.md §7.3) and vocabulary helpers.
 *
 * The protobuf is read with a bounded cursor: every varint, length and nested message is
 * checked against the bytes that remain, so no input can make the parser read outside it.
 * After parsing, the model is checked the way SentencePiece checks it when loading (what the
 * reference converter relies on): non-empty unique pieces, exactly one <unk>, well-formed byte
 * pieces, all 256 of them when byte_fallback is set. */
#include "formats/spm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/spm_internal.h"

/* ---------------- piece map ---------------- */

int spm_piece_map_init(spm_piece_map *m, size_t n, const char *const *texts, const uint32_t *lens) {
    size_t cap = 16;
    while (cap < 2 * n + 2) {
        if (cap > SIZE_MAX / 4)
            return -1;
        cap *= 2;
    }
    m->slots = calloc(cap, sizeof *m->slots);
    m->hashes = calloc(cap, sizeof *m->hashes);
    if (!m->slots || !m->hashes) {
        free(m->slots);
        free(m->hashes);
        m->slots = m->hashes = NULL;
        return -1;
    }
    m->mask = cap - 1;
    m->texts = texts;
    m->lens = lens;
    return 0;
}

void spm_piece_map_free(spm_piece_map *m) {
    free(m->slots);
    free(m->hashes);
    m->slots = m->hashes = NULL;
}

int32_t spm_piece_map_put(spm_piece_map *m, uint32_t id) {
    const char *text = m->texts[id];
    size_t len = m->lens[id];
    uint64_t h = spm_hash_bytes(text, len);
    uint32_t tag = (uint32_t)h;
    for (size_t i = (size_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t s = m->slots[i];
        if (!s) {
            m->slots[i] = id + 1;
            m->hashes[i] = tag;
            return -1;
        }
        if (m->hashes[i] == tag && m->lens[s - 1] == len && memcmp(m->texts[s - 1], text, len) == 0) {
            m->slots[i] = id + 1;
            return (int32_t)(s - 1);
        }
    }
}

/* ---------------- protobuf wire format ---------------- */

typedef struct pb_cursor {
    const uint8_t *p, *end, *base;
} pb_cursor;

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

static size_t pb_offset(const pb_cursor *c) { return (size_t)(c->p - c->base); }

static int pb_varint(pb_cursor *c, uint64_t *out, nm_error *err) {
    uint64_t v = 0;
    size_t start = pb_offset(c);
    for (int i = 0; i < 10; i++) {
        if (c->p >= c->end)
            return nm_fail(err, "truncated varint at offset %zu", start);
        uint8_t b = *c->p++;
        if (i == 9 && b > 1)
            return nm_fail(err, "varint longer than 64 bits at offset %zu", start);
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return nm_fail(err, "varint longer than 10 bytes at offset %zu", start);
}

static int pb_key(pb_cursor *c, uint32_t *field, uint32_t *wire, nm_error *err) {
    size_t at = pb_offset(c);
    uint64_t k;
    if (pb_varint(c, &k, err))
        return -1;
    *wire = (uint32_t)(k & 7);
    uint64_t f = k >> 3;
    if (f == 0 || f > 0x1fffffff)
        return nm_fail(err, "invalid protobuf field number %llu at offset %zu", (unsigned long long)f, at);
    *field = (uint32_t)f;
    return 0;
}

/* Sub-cursor over a length-delimited payload. */
static int pb_bytes(pb_cursor *c, pb_cursor *sub, nm_error *err) {
    size_t at = pb_offset(c);
    uint64_t len;
    if (pb_varint(c, &len, err))
        return -1;
    if (len > (uint64_t)(c->end - c->p))
        return nm_fail(err, "length %llu at offset %zu runs past the end of its message (%zu bytes left; truncated file?)",
                       (unsigned long long)len, at, (size_t)(c->end - c->p));
    sub->base = c->base;
    sub->p = c->p;
    sub->end = c->p + len;
    c->p += len;
    return 0;
}

static int pb_fixed32(pb_cursor *c, uint32_t *out, nm_error *err) {
    if (c->end - c->p < 4)
        return nm_fail(err, "truncated 4-byte field at offset %zu", pb_offset(c));
    *out = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 | (uint32_t)c->p[3] << 24;
    c->p += 4;
    return 0;
}

static int pb_skip(pb_cursor *c, uint32_t wire, uint32_t field, nm_error *err) {
    uint64_t v;
    uint32_t u;
    pb_cursor sub;
    switch (wire) {
    case PB_VARINT: return pb_varint(c, &v, err);
    case PB_I64:
        if (c->end - c->p < 8)
            return nm_fail(err, "truncated 8-byte field at offset %zu", pb_offset(c));
        c->p += 8;
        return 0;
    case PB_LEN: return pb_bytes(c, &sub, err);
    case PB_I32: return pb_fixed32(c, &u, err);
    default:
        return nm_fail(err, "unsupported protobuf wire type %u (field %u) at offset %zu", wire, field,
                       pb_offset(c));
    }
}

/* ---------------- ModelProto ---------------- */

typedef struct sp_piece {
    const uint8_t *text;
    size_t len;
    float score;
    int32_t type; /* SentencePiece's enum: 1 normal .. 6 byte */
} sp_piece;

typedef struct sp_specs {
    int32_t model_type, unk_id, bos_id, eos_id, pad_id;
    bool byte_fallback, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
} sp_specs;

static int parse_piece(pb_cursor *c, sp_piece *out, size_t index, nm_error *err) {
    out->text = NULL;
    out->len = 0;
    out->score = 0.0f;
    out->type = 1;
    while (c->p < c->end) {
        uint32_t field, wire;
        if (pb_key(c, &field, &wire, err))
            goto fail;
        if (field == 1 && wire == PB_LEN) {
            pb_cursor s;
            if (pb_bytes(c, &s, err))
                goto fail;
            out->text = s.p;
            out->len = (size_t)(s.end - s.p);
        } else if (field == 2 && wire == PB_I32) {
            uint32_t bits;
            if (pb_fixed32(c, &bits, err))
                goto fail;
            memcpy(&out->score, &bits, 4);
        } else if (field == 3 && wire == PB_VARINT) {
            uint64_t v;
            if (pb_varint(c, &v, err))
                goto fail;
            /* proto2: an enum value outside the enum leaves the default (NORMAL) */
            if (v >= 1 && v <= 6)
                out->type = (int32_t)v;
        } else if (pb_skip(c, wire, field, err)) {
            goto fail;
        }
    }
    return 0;
fail:
    return nm_error_prefix(err, "piece %zu", index);
}

static int parse_trainer_spec(pb_cursor *c, sp_specs *s, nm_error *err) {
    while (c->p < c->end) {
        uint32_t field, wire;
        uint64_t v;
        if (pb_key(c, &field, &wire, err))
            goto fail;
        if (wire == PB_VARINT && (field == 3 || field == 35 || (field >= 40 && field <= 43))) {
            if (pb_varint(c, &v, err))
                goto fail;
            int32_t i32 = (int32_t)(uint32_t)v; /* protobuf int32: low 32 bits */
            switch (field) {
            case 3:
                if (v >= 1 && v <= 4)
                    s->model_type = i32;
                break;
            case 35: s->byte_fallback = v != 0; break;
            case 40: s->unk_id = i32; break;
            case 41: s->bos_id = i32; break;
            case 42: s->eos_id = i32; break;
            case 43: s->pad_id = i32; break;
            }
        } else if (pb_skip(c, wire, field, err)) {
            goto fail;
        }
    }
    return 0;
fail:
    return nm_error_prefix(err, "trainer_spec");
}

static int parse_normalizer_spec(pb_cursor *c, sp_specs *s, nm_error *err) {
    while (c->p < c->end) {
        uint32_t field, wire;
        uint64_t v;
        if (pb_key(c, &field, &wire, err))
            goto fail;
        if (wire == PB_VARINT && field >= 3 && field <= 5) {
            if (pb_varint(c, &v, err))
                goto fail;
            if (field == 3)
                s->add_dummy_prefix = v != 0;
            else if (field == 4)
                s->remove_extra_whitespaces = v != 0;
            else
                s->escape_whitespaces = v != 0;
        } else if (pb_skip(c, wire, field, err)) {
            goto fail;
        }
    }
    return 0;
fail:
    return nm_error_prefix(err, "normalizer_spec");
}

static int32_t map_sp_type(int32_t sp_type) {
    switch (sp_type) {
    case 2: return SPM_TOKEN_UNKNOWN;
    case 3: return SPM_TOKEN_CONTROL;
    case 5: return SPM_TOKEN_UNUSED;
    case 6: return SPM_TOKEN_BYTE;
    default: return SPM_TOKEN_NORMAL; /* normal and user-defined, as the reference converter does */
    }
}

/* "<0xXX>" with uppercase hex, as SentencePiece writes byte pieces; -1 otherwise. */
static int byte_piece_value(const uint8_t *t, size_t len) {
    if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int d;
        if (t[i] >= '0' && t[i] <= '9')
            d = t[i] - '0';
        else if (t[i] >= 'A' && t[i] <= 'F')
            d = t[i] - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void print_piece(char *buf, size_t size, const uint8_t *t, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        if (t[i] >= 0x20 && t[i] < 0x7f && t[i] != '\'') {
            buf[o++] = (char)t[i];
        } else {
            snprintf(buf + o, size - o, "\\x%02x", t[i]);
            o += 4;
        }
    }
    buf[o] = '\0';
}

/* SentencePiece's own load-time checks (ModelInterface::InitializePieces). */
static int check_pieces(const sp_piece *pieces, size_t n, const sp_specs *specs, nm_error *err) {
    if (n == 0)
        return nm_fail(err, "the model has no pieces");
    if (n > INT32_MAX)
        return nm_fail(err, "too many pieces (%zu)", n);
    const char **texts = malloc(n * sizeof *texts);
    uint32_t *lens = malloc(n * sizeof *lens);
    spm_piece_map normal = {0}, reserved = {0};
    int rc = -1;
    if (!texts || !lens)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        texts[i] = (const char *)pieces[i].text;
        lens[i] = (uint32_t)pieces[i].len;
    }
    if (spm_piece_map_init(&normal, n, texts, lens) || spm_piece_map_init(&reserved, n, texts, lens))
        goto oom;
    int64_t unk = -1;
    bool bytes_found[256] = {false};
    char shown[64];
    for (size_t i = 0; i < n; i++) {
        const sp_piece *p = &pieces[i];
        if (p->len == 0) {
            nm_fail(err, "piece %zu is empty", i);
            goto out;
        }
        if (p->len > UINT32_MAX) {
            nm_fail(err, "piece %zu is too long (%zu bytes)", i, p->len);
            goto out;
        }
        /* normal, user-defined and unused pieces share one namespace, the others another */
        bool is_normal = p->type == 1 || p->type == 4 || p->type == 5;
        if (spm_piece_map_put(is_normal ? &normal : &reserved, (uint32_t)i) >= 0) {
            print_piece(shown, sizeof shown, p->text, p->len);
            nm_fail(err, "piece %zu '%s' is already defined", i, shown);
            goto out;
        }
        if (p->type == 2) {
            if (unk >= 0) {
                nm_fail(err, "pieces %lld and %zu are both <unk> (type unknown)", (long long)unk, i);
                goto out;
            }
            unk = (int64_t)i;
        }
        if (p->type == 6) {
            print_piece(shown, sizeof shown, p->text, p->len);
            if (!specs->byte_fallback) {
                nm_fail(err, "byte piece %zu '%s' found although byte_fallback is false", i, shown);
                goto out;
            }
            int b = byte_piece_value(p->text, p->len);
            if (b < 0) {
                nm_fail(err, "byte piece %zu '%s' is not of the form <0xXX>", i, shown);
                goto out;
            }
            bytes_found[b] = true;
        }
    }
    if (unk < 0) {
        nm_fail(err, "no piece has type unknown (<unk>)");
        goto out;
    }
    if (specs->byte_fallback) {
        for (int b = 0; b < 256; b++) {
            if (!bytes_found[b]) {
                nm_fail(err, "byte_fallback is set but byte piece <0x%02X> is missing", b);
                goto out;
            }
        }
    }
    rc = 0;
    goto out;
oom:
    nm_fail(err, "out of memory checking %zu pieces", n);
out:
    spm_piece_map_free(&normal);
    spm_piece_map_free(&reserved);
    free(texts);
    free(lens);
    return rc;
}

static int32_t id_or_none(int32_t id, uint32_t n) { return id >= 0 && (uint32_t)id < n ? id : -1; }

int spm_vocab_load_memory(spm_vocab *v, const void *data, size_t size, nm_error *err) {
    memset(v, 0, sizeof *v);
    pb_cursor c = {data, (const uint8_t *)data + size, data};
    sp_specs specs = {
        .model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1, .byte_fallback = false,
        .add_dummy_prefix = true, .remove_extra_whitespaces = true, .escape_whitespaces = true,
    };
    sp_piece *pieces = NULL;
    size_t n = 0, cap = 0;
    if (size == 0)
        return nm_fail(err, "empty file: not a SentencePiece model");
    while (c.p < c.end) {
        uint32_t field, wire;
        pb_cursor sub;
        if (pb_key(&c, &field, &wire, err))
            goto fail;
        if (wire == PB_LEN && field >= 1 && field <= 3) {
            if (pb_bytes(&c, &sub, err))
                goto fail;
            if (field == 1) {
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 1024;
                    sp_piece *np = realloc(pieces, ncap * sizeof *np);
                    if (!np) {
                        nm_fail(err, "out of memory reading %zu pieces", n);
                        goto fail;
                    }
                    pieces = np;
                    cap = ncap;
                }
                if (parse_piece(&sub, &pieces[n], n, err))
                    goto fail;
                n++;
            } else if (field == 2) {
                if (parse_trainer_spec(&sub, &specs, err))
                    goto fail;
            } else if (parse_normalizer_spec(&sub, &specs, err)) {
                goto fail;
            }
        } else if (pb_skip(&c, wire, field, err)) {
            goto fail;
        }
    }
    if (check_pieces(pieces, n, &specs, err))
        goto fail;

    v->pieces = calloc(n, sizeof *v->pieces);
    v->piece_lens = malloc(n * sizeof *v->piece_lens);
    v->scores = malloc(n * sizeof *v->scores);
    v->types = malloc(n * sizeof *v->types);
    if (!v->pieces || !v->piece_lens || !v->scores || !v->types)
        goto oom;
    v->n_tokens = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        v->pieces[i] = malloc(pieces[i].len + 1);
        if (!v->pieces[i])
            goto oom;
        memcpy(v->pieces[i], pieces[i].text, pieces[i].len);
        v->pieces[i][pieces[i].len] = '\0';
        v->piece_lens[i] = (uint32_t)pieces[i].len;
        v->scores[i] = pieces[i].score;
        v->types[i] = map_sp_type(pieces[i].type);
    }
    v->model_type = specs.model_type;
    v->add_dummy_prefix = specs.add_dummy_prefix;
    v->remove_extra_whitespaces = specs.remove_extra_whitespaces;
    v->escape_whitespaces = specs.escape_whitespaces;
    v->byte_fallback = specs.byte_fallback;
    v->unk_id = id_or_none(specs.unk_id, v->n_tokens);
    v->bos_id = id_or_none(specs.bos_id, v->n_tokens);
    v->eos_id = id_or_none(specs.eos_id, v->n_tokens);
    v->pad_id = id_or_none(specs.pad_id, v->n_tokens);
    v->add_bos = true; /* llama.cpp's defaults for an SPM vocabulary */
    v->add_eos = false;
    free(pieces);
    return 0;
oom:
    nm_fail(err, "out of memory copying %zu pieces", n);
    free(pieces);
    spm_vocab_free(v);
    return -1;
fail:
    nm_error_prefix(err, "not a valid SentencePiece model");
    free(pieces);
    spm_vocab_free(v);
    return -1;
}

/* A SentencePiece model of this size would be absurd; refusing early keeps a wrong path
 * (a checkpoint given as --tokenizer) from being read into memory. */
#define SPM_MAX_FILE ((size_t)1 << 30)

int spm_vocab_load(spm_vocab *v, const char *path, nm_error *err) {
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "rb");
    if (!f)
        return nm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return nm_fail(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SPM_MAX_FILE) {
        fclose(f);
        return nm_fail(err, "%s: %llu bytes is too large for a SentencePiece model (limit 1 GiB)", path,
                       (unsigned long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return nm_fail(err, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int read_error = ferror(f);
    fclose(f);
    if (got != size || read_error) {
        free(buf);
        return nm_fail(err, "%s: read error (got %zu of %zu bytes)", path, got, size);
    }
    int rc = spm_vocab_load_memory(v, buf, size, err);
    free(buf);
    if (rc)
        nm_error_prefix(err, "%s", path);
    return rc;
}

void spm_vocab_free(spm_vocab *v) {
    if (!v)
        return;
    if (v->pieces)
        for (uint32_t i = 0; i < v->n_tokens; i++)
            free(v->pieces[i]);
    free(v->pieces);
    free(v->piece_lens);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}
