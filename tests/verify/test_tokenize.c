/* `nomoat-verify tokenize` through verify_tokenize_main: SentencePiece's ids for the Llama 2
 * slice in every output format, GGUF vocabularies, and every usage or input error giving
 * exit status 2 and leaving no output file behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "verify/verify.h"

#define DATA "tests/data/tokenizer/"

static char scratch[64];

static int setup(void **state) {
    (void)state;
    strcpy(scratch, "/tmp/nomoat-tokenize.XXXXXX");
    return mkdtemp(scratch) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static int run(const char *first, ...) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = "tokenize";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    return verify_tokenize_main(argc, argv);
}

static char *path_in(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", scratch, name);
    return buf[k];
}

static void *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *size = (size_t)n;
    return buf;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static char *fixture(const char *rel) {
    static char buf[512];
    const char *root = getenv("NOMOAT_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared/fixtures", rel);
    return exists(buf) ? buf : NULL;
}

static void test_formats(void **state) {
    (void)state;
    size_t n_want_bytes, size;
    int32_t *want = read_all(DATA "wikitext2-slice-llama2.ids", &n_want_bytes);
    size_t n_want = n_want_bytes / 4;

    /* binary ids: byte-identical to SentencePiece's */
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "-f", DATA "wikitext2-slice-llama2.txt",
                         "--ids-bin", path_in("ids.bin"), NULL), 0);
    char *bin = read_all(path_in("ids.bin"), &size);
    assert_int_equal(size, n_want_bytes);
    assert_memory_equal(bin, want, size);
    free(bin);

    /* default text: one line, space separated */
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "-f", DATA "wikitext2-slice-llama2.txt", "-o",
                         path_in("ids.txt"), NULL), 0);
    char *txt = read_all(path_in("ids.txt"), &size);
    assert_true(size > 0 && txt[size - 1] == '\n');
    assert_null(memchr(txt, '\n', size - 1));
    char *p = txt;
    for (size_t i = 0; i < n_want; i++) {
        char *end;
        long id = strtol(p, &end, 10);
        assert_true(end != p);
        assert_int_equal(id, want[i]);
        p = end;
    }
    assert_string_equal(p, "\n");
    free(txt);

    /* --lines, --count, --no-bos */
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "-f", DATA "wikitext2-slice-llama2.txt",
                         "--lines", "--no-bos", "-o", path_in("lines.txt"), NULL), 0);
    txt = read_all(path_in("lines.txt"), &size);
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += txt[i] == '\n';
    assert_int_equal(lines, n_want - 1);
    assert_int_equal(atoi(txt), want[1]);
    free(txt);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "-f", DATA "wikitext2-slice-llama2.txt",
                         "--count", "-o", path_in("count.txt"), NULL), 0);
    txt = read_all(path_in("count.txt"), &size);
    assert_int_equal(strtoul(txt, NULL, 10), n_want);
    free(txt);
    free(want);
}

static void test_text_and_pieces(void **state) {
    (void)state;
    size_t size;
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--text", "Hello world\n", "--pieces", "-o",
                         path_in("pieces.txt"), NULL), 0);
    char *txt = read_all(path_in("pieces.txt"), &size);
    /* SentencePiece: [1, 15043, 3186, 13]; the newline piece is printed escaped */
    assert_string_equal(txt, "1\t<s>\n15043\t\xe2\x96\x81Hello\n3186\t\xe2\x96\x81world\n13\t<0x0A>\n");
    free(txt);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--text", "", "-o", path_in("empty.txt"), NULL),
                     0);
    txt = read_all(path_in("empty.txt"), &size);
    assert_string_equal(txt, "1\n");
    free(txt);
    assert_int_equal(run("--tokenizer", DATA "wikillama-tokenizer.model", "--vocab", "-o", path_in("vocab.txt"), NULL),
                     0);
    txt = read_all(path_in("vocab.txt"), &size);
    assert_true(strncmp(txt, "0\t<unk>\t0\tunknown\n1\t<s>\t0\tcontrol\n", 33) == 0);
    assert_non_null(strstr(txt, "\n260\the\t-1\tnormal\n"));
    free(txt);
}

static void test_gguf(void **state) {
    (void)state;
    const char *model = fixture("reference/wikillama-q4_0.gguf");
    if (!model) {
        printf("SKIPPED: GGUF vocabulary (no ../shared/fixtures)\n");
        skip();
    }
    char gguf_model[512];
    snprintf(gguf_model, sizeof gguf_model, "%s", model);
    size_t a_size, b_size;
    /* the same GGUF through the positional argument and --tokenizer */
    assert_int_equal(run(gguf_model, "--text", "The  game  ", "-o", path_in("a.txt"), NULL), 0);
    assert_int_equal(run("--tokenizer", gguf_model, "--text", "The  game  ", "-o", path_in("b.txt"), NULL), 0);
    char *a = read_all(path_in("a.txt"), &a_size), *b = read_all(path_in("b.txt"), &b_size);
    assert_string_equal(a, b);
    /* llama.cpp keeps every space (tokenizer.model's SentencePiece rules would drop them) */
    assert_int_equal(run("--tokenizer", DATA "wikillama-tokenizer.model", "--text", "The  game  ", "-o",
                         path_in("c.txt"), NULL), 0);
    char *c = read_all(path_in("c.txt"), &b_size);
    assert_string_not_equal(a, c);
    free(a);
    free(b);
    free(c);
    const char *no_tok = fixture("reference/quant-vectors/input-f32.gguf");
    if (no_tok) {
        char path[512];
        snprintf(path, sizeof path, "%s", no_tok);
        assert_int_equal(run(path, "--text", "x", NULL), 2);
    }
}

static void test_errors(void **state) {
    (void)state;
    assert_int_equal(run("--help", NULL), 0);
    assert_int_equal(run(NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--text", "a", "-f", "x", NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--bogus", NULL), 2);
    assert_int_equal(run("--tokenizer", NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--text", "a", "--count", "--lines", NULL), 2);
    assert_int_equal(run("a.gguf", "--tokenizer", DATA "llama2-tokenizer.model", "--text", "a", NULL), 2);
    /* a tokenizer.model given where a GGUF is expected, a text file as tokenizer, missing files */
    assert_int_equal(run(DATA "llama2-tokenizer.model", "--text", "a", NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "wikitext2-slice-llama2.txt", "--text", "a", NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "nope.model", "--text", "a", NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "-f", DATA "nope.txt", NULL), 2);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "-f", DATA, NULL), 2);
    /* outputs: never overwritten without --force; nothing left behind on failure */
    FILE *f = fopen(path_in("keep.txt"), "w");
    fputs("precious\n", f);
    fclose(f);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--text", "a", "-o", path_in("keep.txt"), NULL),
                     2);
    size_t size;
    char *txt = read_all(path_in("keep.txt"), &size);
    assert_string_equal(txt, "precious\n");
    free(txt);
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--text", "a", "-o", path_in("keep.txt"),
                         "--force", NULL), 0);
    txt = read_all(path_in("keep.txt"), &size);
    assert_string_equal(txt, "1 263\n");
    free(txt);
    assert_int_equal(run("--tokenizer", DATA "nope.model", "--text", "a", "-o", path_in("never.txt"), NULL), 2);
    assert_false(exists(path_in("never.txt")));
    assert_int_equal(run("--tokenizer", DATA "llama2-tokenizer.model", "--text", "a", "--ids-bin",
                         path_in("no/such/dir.bin"), NULL), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_text_and_pieces),
        cmocka_unit_test(test_gguf),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
