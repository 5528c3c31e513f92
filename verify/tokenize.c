/* nomoat-verify tokenize: text -> token ids with a GGUF's vocabulary (as llama.cpp tokenizes)
 * or straight from a SentencePiece tokenizer.model. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/cli.h"
#include "formats/gguf.h"
#include "common/outfile.h"
#include "formats/bpe.h"
#include "formats/spm.h"
#include "verify/verify.h"

static const char usage[] =
    "usage: nomoat-verify tokenize [MODEL.gguf | --tokenizer FILE] (-f TEXT | --text STR) [options]\n"
    "\n"
    "Prints the token ids of a text, on one line separated by spaces.\n"
    "\n"
    "  MODEL.gguf          tokenize with the file's tokenizer.ggml.* vocabulary, exactly as\n"
    "                      llama.cpp does (SentencePiece \"llama\" and byte-level BPE \"gpt2\"\n"
    "                      vocabularies)\n"
    "  --tokenizer FILE    a SentencePiece tokenizer.model, a Hugging Face tokenizer.json (BPE;\n"
    "                      tokenized as llama.cpp would tokenize its conversion) or a GGUF; a\n"
    "                      tokenizer.model also applies its own whitespace normalisation, as\n"
    "                      SentencePiece does\n"
    "  --pre NAME          BPE pre-tokenizer to use instead of the vocabulary's own (llama-bpe,\n"
    "                      qwen2, deepseek-v3, gpt-2, ...)\n"
    "  -f, --file TEXT     text file to tokenize ('-' for standard input)\n"
    "  --text STR          text given on the command line\n"
    "  --no-bos            do not add BOS (added by default when the vocabulary asks for it)\n"
    "  --lines             one id per line\n"
    "  --pieces            one \"id<TAB>piece\" per line\n"
    "  --count             print only the number of tokens\n"
    "  --ids-bin OUT       write the ids as little-endian int32 to OUT (nothing on stdout)\n"
    "  -o, --output OUT    write the printed output to OUT instead of stdout\n"
    "  --force             replace existing output files\n"
    "  --vocab             print the vocabulary: id, piece, score, type (one per line)\n"
    "  -t, --threads N     threads for long texts (default: all cores; ids never depend on it)\n"
    "  --timing            report tokenizer speed on stderr\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 success, 2 error.\n";

typedef struct options {
    const char *model, *tokenizer, *file, *text, *ids_bin, *output, *pre;
    bool no_bos, lines, pieces, count, force, vocab, timing;
    int threads;
} options;

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **value = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        } else if (!strcmp(a, "--tokenizer")) {
            value = &o->tokenizer;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            value = &o->file;
        } else if (!strcmp(a, "--text")) {
            value = &o->text;
        } else if (!strcmp(a, "--pre")) {
            value = &o->pre;
        } else if (!strcmp(a, "--ids-bin")) {
            value = &o->ids_bin;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            value = &o->output;
        } else if (!strcmp(a, "--no-bos")) {
            o->no_bos = true;
        } else if (!strcmp(a, "--lines")) {
            o->lines = true;
        } else if (!strcmp(a, "--pieces")) {
            o->pieces = true;
        } else if (!strcmp(a, "--count")) {
            o->count = true;
        } else if (!strcmp(a, "--force")) {
            o->force = true;
        } else if (!strcmp(a, "--vocab")) {
            o->vocab = true;
        } else if (!strcmp(a, "--timing")) {
            o->timing = true;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc || nm_parse_threads(argv[i + 1], &o->threads)) {
                fprintf(stderr, "nomoat-verify tokenize: %s needs a thread count (a positive number or 'auto')\n", a);
                return -1;
            }
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "nomoat-verify tokenize: unknown option '%s' (see --help)\n", a);
            return -1;
        } else if (!o->model) {
            o->model = a;
        } else {
            fprintf(stderr, "nomoat-verify tokenize: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        if (value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "nomoat-verify tokenize: %s needs a value\n", a);
                return -1;
            }
            *value = argv[++i];
        }
    }
    if (o->model && o->tokenizer) {
        fprintf(stderr, "nomoat-verify tokenize: give either MODEL.gguf or --tokenizer, not both\n");
        return -1;
    }
    if (!o->model && !o->tokenizer) {
        fprintf(stderr, "nomoat-verify tokenize: no vocabulary: give MODEL.gguf or --tokenizer FILE (see --help)\n");
        return -1;
    }
    if (!o->vocab && !o->file == !o->text) {
        fprintf(stderr, "nomoat-verify tokenize: give exactly one of -f TEXT and --text STR\n");
        return -1;
    }
    if (o->lines + o->pieces + o->count > 1) {
        fprintf(stderr, "nomoat-verify tokenize: --lines, --pieces and --count exclude each other\n");
        return -1;
    }
    return 0;
}

static bool is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f)
        return false;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

/* A file whose first non-blank byte is '{': a tokenizer.json. */
static bool is_json(const char *path) {
    FILE *f = fopen(path, "rb");
    int c = EOF;
    if (!f)
        return false;
    while ((c = fgetc(f)) == ' ' || c == '\t' || c == '\n' || c == '\r')
        ;
    fclose(f);
    return c == '{';
}

/* One of the two vocabulary kinds. */
typedef struct vocab {
    bool is_bpe;
    spm_vocab spm;
    bpe_vocab bpe;
} vocab;

static uint32_t vocab_size(const vocab *v) { return v->is_bpe ? v->bpe.n_tokens : v->spm.n_tokens; }
static const char *vocab_piece(const vocab *v, uint32_t i, uint32_t *len) {
    *len = v->is_bpe ? v->bpe.token_lens[i] : v->spm.piece_lens[i];
    return v->is_bpe ? v->bpe.tokens[i] : v->spm.pieces[i];
}

static int load_vocab(const options *o, vocab *vv, nm_error *err) {
    const char *path = o->model ? o->model : o->tokenizer;
    spm_vocab *v = &vv->spm;
    memset(vv, 0, sizeof *vv);
    if (is_gguf(path)) {
        gguf_reader *g = gguf_open(path, err);
        if (!g)
            return -1;
        const gguf_value *model = gguf_get(g, "tokenizer.ggml.model");
        vv->is_bpe = model && model->type == GGUF_TYPE_STRING && model->str.len == 4 &&
                     memcmp(model->str.ptr, "gpt2", 4) == 0;
        int rc = vv->is_bpe ? bpe_vocab_from_gguf(&vv->bpe, g, err) : spm_vocab_from_gguf(v, g, err);
        gguf_close(g);
        if (rc)
            nm_error_prefix(err, "%s", path);
        return rc;
    }
    if (o->tokenizer && is_json(path)) {
        vv->is_bpe = true;
        return bpe_vocab_load_json(&vv->bpe, path, err);
    }
    if (o->model) {
        /* a positional argument must be a GGUF: say so rather than "bad protobuf" */
        FILE *f = fopen(path, "rb");
        if (!f)
            return nm_fail(err, "%s: cannot open: %s", path, strerror(errno));
        fclose(f);
        return nm_fail(err, "%s: not a GGUF file (use --tokenizer for a tokenizer.model)", path);
    }
    return spm_vocab_load(v, path, err);
}

/* Whole file (or stdin) into memory. */
static int read_text(const char *path, char **out, size_t *len, nm_error *err) {
    bool is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return nm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (!is_stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return nm_fail(err, "%s: is a directory", path);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            if (!is_stdin)
                fclose(f);
            return nm_fail(err, "%s: out of memory", path);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *p = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!p)
            free(buf);
        buf = p;
        cap *= 2;
    }
    int bad = ferror(f);
    if (!is_stdin)
        fclose(f);
    if (bad) {
        free(buf);
        return nm_fail(err, "%s: read error", path);
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Output: stdout, or an atomic file with -o. */
typedef struct sink {
    FILE *fp;
    nm_outfile *file;
    char buf[1 << 16];
    size_t n;
    bool failed;
    nm_error err;
} sink;

static void sink_flush(sink *s) {
    if (s->failed || s->n == 0) {
        s->n = 0;
        return;
    }
    if (s->file) {
        if (nm_outfile_write(s->file, s->buf, s->n, &s->err))
            s->failed = true;
    } else if (fwrite(s->buf, 1, s->n, s->fp) != s->n) {
        nm_fail(&s->err, "writing standard output: %s", strerror(errno));
        s->failed = true;
    }
    s->n = 0;
}

static void sink_write(sink *s, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        if (s->n == sizeof s->buf)
            sink_flush(s);
        size_t k = sizeof s->buf - s->n < len ? sizeof s->buf - s->n : len;
        memcpy(s->buf + s->n, p, k);
        s->n += k;
        p += k;
        len -= k;
    }
}

static void sink_printf(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sink_printf(sink *s, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sink_write(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Piece text with control bytes escaped so that every line stays one line. */
static void sink_piece(sink *s, const char *p, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            sink_printf(s, "\\x%02x", c);
        else
            sink_write(s, &p[i], 1);
    }
}

/* CPU time of the whole process (all threads), seconds. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_ids_bin(const char *path, const int32_t *ids, size_t n, bool force, nm_error *err) {
    nm_outfile *out = nm_outfile_create(path, force ? NM_OUT_FORCE : 0, err);
    if (!out)
        return -1;
    for (size_t i = 0; i < n; i++) { /* int32 little-endian whatever the host */
        uint32_t u = (uint32_t)ids[i];
        uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        if (nm_outfile_write(out, b, 4, err)) {
            nm_outfile_abort(out);
            return -1;
        }
    }
    return nm_outfile_commit(out, err);
}

static const char *type_name(int32_t t) {
    static const char *names[] = {"undefined", "normal", "unknown", "control", "user-defined", "unused", "byte"};
    return t >= 0 && t <= 6 ? names[t] : "invalid";
}

int verify_tokenize_main(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc > 0 ? 0 : 2;
    nm_outfile_install_signal_handlers();
    nm_error err;
    vocab vv;
    spm_vocab *v = &vv.spm;
    spm_tokenizer *t = NULL;
    bpe_tokenizer *bt = NULL;
    char *text = NULL;
    size_t text_len = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int status = 2;
    sink out = {.fp = stdout};
    bool vocab_loaded = false;

    if (load_vocab(&o, &vv, &err))
        goto fail;
    if (o.pre && !vv.is_bpe) {
        nm_fail(&err, "--pre applies to BPE vocabularies only");
        goto fail;
    }
    vocab_loaded = true;
    if (o.output && !(out.file = nm_outfile_create(o.output, o.force ? NM_OUT_FORCE : 0, &err)))
        goto fail;
    if (o.vocab) {
        for (uint32_t i = 0; i < vocab_size(&vv); i++) {
            uint32_t len;
            const char *piece = vocab_piece(&vv, i, &len);
            sink_printf(&out, "%u\t", i);
            sink_piece(&out, piece, len);
            sink_printf(&out, "\t%.9g\t%s\n", vv.is_bpe ? 0.0 : (double)v->scores[i],
                        type_name(vv.is_bpe ? vv.bpe.types[i] : v->types[i]));
        }
    } else {
        if (o.file ? read_text(o.file, &text, &text_len, &err) : 0)
            goto fail;
        const char *input = o.file ? text : o.text;
        if (!o.file)
            text_len = strlen(o.text);
        if (vv.is_bpe ? !(bt = bpe_tokenizer_create(&vv.bpe, o.pre, &err)) : !(t = spm_tokenizer_create(v, &err)))
            goto fail;
        if (t)
            spm_tokenizer_set_threads(t, o.threads);
        double t0 = nm_now(), c0 = cpu_seconds();
        if (bt ? bpe_encode(bt, input, text_len, true, &ids, &n_ids, &err)
               : spm_encode(t, input, text_len, true, &ids, &n_ids, &err)) {
            nm_error_prefix(&err, "%s", o.file ? o.file : "--text");
            goto fail;
        }
        double secs = nm_now() - t0, cpu = cpu_seconds() - c0;
        size_t first = 0;
        bool add_bos = vv.is_bpe ? vv.bpe.add_bos : v->add_bos;
        int32_t bos_id = vv.is_bpe ? vv.bpe.bos_id : v->bos_id;
        if (o.no_bos && add_bos && n_ids > 0 && ids[0] == bos_id)
            first = 1;
        if (o.timing)
            fprintf(stderr,
                    "nomoat-verify tokenize: %zu bytes -> %zu tokens in %.4f s wall (%.1f MB/s), %.4f s CPU "
                    "(%.1f MB/s per CPU second)\n",
                    text_len, n_ids - first, secs, secs > 0 ? (double)text_len / 1e6 / secs : 0.0, cpu,
                    cpu > 0 ? (double)text_len / 1e6 / cpu : 0.0);
        if (o.ids_bin && write_ids_bin(o.ids_bin, ids + first, n_ids - first, o.force, &err))
            goto fail;
        if (o.count) {
            sink_printf(&out, "%zu\n", n_ids - first);
        } else if (o.pieces) {
            for (size_t i = first; i < n_ids; i++) {
                sink_printf(&out, "%d\t", ids[i]);
                uint32_t len;
                const char *piece = vocab_piece(&vv, (uint32_t)ids[i], &len);
                sink_piece(&out, piece, len);
                sink_write(&out, "\n", 1);
            }
        } else if (!o.ids_bin || o.output) {
            for (size_t i = first; i < n_ids; i++)
                sink_printf(&out, i + 1 < n_ids ? (o.lines ? "%d\n" : "%d ") : "%d", ids[i]);
            sink_write(&out, "\n", 1);
        }
    }
    sink_flush(&out);
    if (out.failed) {
        err = out.err;
        goto fail;
    }
    if (out.file) {
        nm_outfile *f = out.file;
        out.file = NULL;
        if (nm_outfile_commit(f, &err))
            goto fail;
    } else if (fflush(stdout) != 0) {
        nm_fail(&err, "writing standard output: %s", strerror(errno));
        goto fail;
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "nomoat-verify tokenize: %s\n", err.msg);
done:
    nm_outfile_abort(out.file);
    free(ids);
    free(text);
    spm_tokenizer_free(t);
    bpe_tokenizer_free(bt);
    if (vocab_loaded) {
        if (vv.is_bpe)
            bpe_vocab_free(&vv.bpe);
        else
            spm_vocab_free(v);
    }
    return status;
}
