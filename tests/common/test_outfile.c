/* Atomic outputs (common/outfile.c) and the GGUF writer on top of them: nothing is visible
 * before commit, an existing file is never replaced without NM_OUT_FORCE (also when it appears
 * while writing), abort and every error leave nothing, and SIGINT/SIGTERM in the middle of a
 * write leave nothing either -- both with O_TMPFILE and with the named-temporary fallback,
 * which this test forces by making open(O_TMPFILE) fail as on a file system without it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "common/outfile.h"

/* The library's open() resolves to this definition in the test binary: with no_tmpfile set it
 * refuses O_TMPFILE the way file systems without support do. */
static int no_tmpfile;
int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (no_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static char scratch[256];

static void empty_scratch(void) {
    DIR *d = opendir(scratch);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", scratch, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
}

static int setup(void **state) {
    (void)state;
    snprintf(scratch, sizeof scratch, "%s/nomoat-outfile-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(scratch) ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    empty_scratch();
    rmdir(scratch);
    no_tmpfile = 0;
    return 0;
}

/* Names in the scratch folder, sorted, joined by spaces ("" when empty). */
static const char *listing(void) {
    static char buf[2048];
    char names[32][256];
    int n = 0;
    DIR *d = opendir(scratch);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 32)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        strcat(buf, i ? " " : "");
        strcat(buf, names[i]);
    }
    return buf;
}

static char *in_scratch(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", scratch, name);
    return p[k];
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void assert_content(const char *path, const char *text) {
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, text);
}

static void basic_commit_and_abort(bool named) {
    no_tmpfile = named;
    nm_error err = {{0}};
    const char *p = in_scratch("out.bin");
    nm_outfile *o = nm_outfile_create(p, 0, &err);
    assert_non_null(o);
    assert_int_equal(nm_outfile_write(o, "hello ", 6, &err), 0);
    assert_int_equal(nm_outfile_write_zeros(o, 3, &err), 0);
    assert_int_equal(nm_outfile_tell(o), 9);
    assert_int_equal(nm_outfile_pwrite(o, "wor", 3, 6, &err), 0);
    assert_int_equal(nm_outfile_pwrite(o, "xx", 2, 8, &err), -1); /* beyond what was written */
    assert_int_equal(nm_outfile_write(o, "ld", 2, &err), 0);
    assert_string_equal(nm_outfile_path(o), p);
    /* not visible under its name before commit; the fallback is a hidden temporary beside it */
    if (named)
        assert_int_equal(strncmp(listing(), ".out.bin.nomoat-tmp.", 20), 0);
    else
        assert_string_equal(listing(), "");
    assert_int_equal(nm_outfile_commit(o, &err), 0);
    assert_string_equal(listing(), "out.bin");
    assert_content(p, "hello world");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    mode_t um = umask(0);
    umask(um);
    assert_int_equal(st.st_mode & 0777, 0644 & ~um);

    /* an existing file: refused without FORCE, untouched by an aborted FORCE, replaced by a
     * committed one */
    assert_null(nm_outfile_create(p, 0, &err));
    assert_non_null(strstr(err.msg, "already exists"));
    o = nm_outfile_create(p, NM_OUT_FORCE, &err);
    assert_non_null(o);
    nm_outfile_write(o, "new", 3, &err);
    nm_outfile_abort(o);
    assert_string_equal(listing(), "out.bin");
    assert_content(p, "hello world");
    o = nm_outfile_create(p, NM_OUT_FORCE | NM_OUT_NO_FSYNC, &err);
    nm_outfile_write(o, "new", 3, &err);
    assert_int_equal(nm_outfile_commit(o, &err), 0);
    assert_string_equal(listing(), "out.bin");
    assert_content(p, "new");

    /* a file that appears while writing is not replaced: commit fails and leaves nothing */
    const char *q = in_scratch("race.bin");
    o = nm_outfile_create(q, 0, &err);
    assert_non_null(o);
    nm_outfile_write(o, "mine", 4, &err);
    write_text(q, "theirs");
    assert_int_equal(nm_outfile_commit(o, &err), -1);
    assert_non_null(strstr(err.msg, "already exists"));
    assert_string_equal(listing(), "out.bin race.bin");
    assert_content(q, "theirs");

    nm_outfile_abort(NULL);
    assert_null(nm_outfile_create(in_scratch("no-such-folder/x.bin"), 0, &err));
    assert_non_null(strstr(err.msg, "no-such-folder"));
    assert_string_equal(listing(), "out.bin race.bin");
}

static void test_tmpfile(void **state) {
    (void)state;
    basic_commit_and_abort(false);
}

static void test_named_fallback(void **state) {
    (void)state;
    basic_commit_and_abort(true);
    empty_scratch();
    mode_t old = umask(077); /* the fallback honours the umask like O_TMPFILE does */
    basic_commit_and_abort(true);
    empty_scratch();
    no_tmpfile = 0;
    basic_commit_and_abort(false);
    umask(old);
}

/* NM_OUT_DIRECT: a mix of small writes, large writes from addresses congruent with their file
 * offset (sent without a copy) and not, zeros, and positional patches both of bytes already on
 * disk and of bytes still buffered, gives exactly the bytes of the same calls buffered, with
 * both kinds of temporary and with and without fsync. */
static void direct_matches_buffered(bool named, unsigned extra) {
    empty_scratch();
    no_tmpfile = named;
    enum { BIG = 3 << 20 };
    unsigned char *src = NULL;
    assert_int_equal(posix_memalign((void **)&src, 1 << 16, BIG + (1 << 16)), 0);
    for (size_t i = 0; i < BIG + (1 << 16); i++)
        src[i] = (unsigned char)(i * 2654435761u >> 13);
    nm_error err = {{0}};
    const char *paths[2] = {in_scratch("direct.bin"), in_scratch("plain.bin")};
    size_t align = 1;
    for (int k = 0; k < 2; k++) {
        nm_outfile *o = nm_outfile_create(paths[k], (k == 0 ? NM_OUT_DIRECT : 0) | extra, &err);
        assert_non_null(o);
        if (k == 0)
            align = nm_outfile_direct_alignment(o);
        else
            assert_int_equal(nm_outfile_direct_alignment(o), 1);
        assert_int_equal(nm_outfile_write(o, src, 24, &err), 0);
        assert_int_equal(nm_outfile_write_zeros(o, 8, &err), 0);
        for (int round = 0; round < 3; round++) {
            uint64_t pos = nm_outfile_tell(o);
            /* congruent (when direct), then a large write that is not, then small pieces */
            const unsigned char *c = src + ((pos + (uint64_t)round * 32) & 0xFFFF);
            assert_int_equal(nm_outfile_write(o, c, (size_t)BIG - 1000 * (size_t)round, &err), 0);
            assert_int_equal(nm_outfile_write(o, src + 3, 200000 + (size_t)round, &err), 0);
            for (int i = 0; i < 50; i++)
                assert_int_equal(nm_outfile_write(o, src + i, 1000 + (size_t)i, &err), 0);
            assert_int_equal(nm_outfile_write_zeros(o, 13, &err), 0);
        }
        uint64_t end = nm_outfile_tell(o);
        assert_int_equal(nm_outfile_pwrite(o, "HEADER", 6, 2, &err), 0);      /* on disk */
        assert_int_equal(nm_outfile_pwrite(o, "tail!", 5, end - 7, &err), 0); /* still buffered */
        assert_int_equal(nm_outfile_pwrite(o, "x", 1, end, &err), -1);
        assert_int_equal(nm_outfile_write(o, "after", 5, &err), 0);
        assert_int_equal(nm_outfile_commit(o, &err), 0);
    }
    FILE *f[2] = {fopen(paths[0], "rb"), fopen(paths[1], "rb")};
    assert_non_null(f[0]);
    assert_non_null(f[1]);
    size_t total = 0;
    for (;;) {
        static unsigned char a[1 << 16], b[1 << 16];
        size_t na = fread(a, 1, sizeof a, f[0]), nb = fread(b, 1, sizeof b, f[1]);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        total += na;
        if (na == 0)
            break;
    }
    assert_true(total > 3 * (size_t)BIG);
    fclose(f[0]);
    fclose(f[1]);
    free(src);
    print_message("    direct output (%s%s): alignment %zu, %zu bytes identical\n", named ? "named temporary" : "O_TMPFILE",
                  extra & NM_OUT_NO_FSYNC ? ", no fsync" : "", align, total);
}

static void test_direct(void **state) {
    (void)state;
    direct_matches_buffered(false, 0);
    direct_matches_buffered(true, 0);
    direct_matches_buffered(false, NM_OUT_NO_FSYNC | NM_OUT_FORCE);
}

/* A child starts writing (a plain output, or a GGUF split into shards, all open at once), says
 * so through a pipe and waits; the parent kills it with sig. Nothing may remain. */
static void killed_mid_write(int sig, bool named, bool gguf_split) {
    empty_scratch();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        no_tmpfile = named;
        nm_outfile_install_signal_handlers();
        nm_error err;
        if (gguf_split) {
            gguf_writer_options opts = {.split_max_tensors = 1};
            gguf_writer *w = gguf_writer_create(in_scratch("model.gguf"), &opts, &err);
            int64_t ne[4] = {64, 1, 1, 1};
            float data[64] = {0};
            if (!w || gguf_writer_set_string(w, "general.architecture", "llama", 5) != 0 ||
                gguf_writer_add_tensor(w, "a", GGML_TYPE_F32, 1, ne, &err) != 0 ||
                gguf_writer_add_tensor(w, "b", GGML_TYPE_F32, 1, ne, &err) != 0 ||
                gguf_writer_add_tensor(w, "c", GGML_TYPE_F32, 1, ne, &err) != 0 ||
                gguf_writer_begin_data(w, &err) != 0 || gguf_writer_write(w, data, sizeof data, &err) != 0 ||
                gguf_writer_write(w, data, sizeof data, &err) != 0)
                _exit(3);
        } else {
            nm_outfile *o = nm_outfile_create(in_scratch("out.bin"), 0, &err);
            static char big[1 << 20];
            if (!o || nm_outfile_write(o, big, sizeof big, &err) != 0 || nm_outfile_write(o, big, sizeof big, &err) != 0)
                _exit(3);
        }
        if (write(fds[1], "r", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    close(fds[1]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    if (named) /* the temporaries really exist before the signal */
        assert_true(strlen(listing()) > 0);
    kill(pid, sig);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), sig);
    if (strcmp(listing(), "") != 0)
        fail_msg("after signal %d (%s, %s) the folder holds: %s", sig, named ? "named temporaries" : "O_TMPFILE",
                 gguf_split ? "GGUF shards" : "plain output", listing());
}

static void test_signals(void **state) {
    (void)state;
    int sigs[2] = {SIGINT, SIGTERM};
    for (int s = 0; s < 2; s++)
        for (int named = 0; named < 2; named++)
            for (int split = 0; split < 2; split++)
                killed_mid_write(sigs[s], named, split);
}

/* GGUF writer error paths with the named fallback: nothing is left behind. */
static void test_gguf_writer_named_errors(void **state) {
    (void)state;
    no_tmpfile = 1;
    nm_error err = {{0}};
    gguf_writer_options opts = {.split_max_tensors = 1, .outfile_flags = NM_OUT_NO_FSYNC};
    gguf_writer *w = gguf_writer_create(in_scratch("m.gguf"), &opts, &err);
    int64_t ne[4] = {4, 1, 1, 1};
    float data[4] = {1, 2, 3, 4};
    gguf_writer_add_tensor(w, "a", GGML_TYPE_F32, 1, ne, &err);
    gguf_writer_add_tensor(w, "b", GGML_TYPE_F32, 1, ne, &err);
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    assert_int_equal(gguf_writer_shard_count(w), 2);
    assert_int_equal(gguf_writer_write(w, data, sizeof data, &err), 0);
    assert_int_equal(gguf_writer_write(w, data, 8, &err), 0);
    assert_true(strlen(listing()) > 0); /* both shards' temporaries exist */
    assert_int_equal(gguf_writer_finish(w, &err), -1); /* b is incomplete */
    assert_string_equal(listing(), "");

    /* a shard name taken in the meantime: the whole set is withdrawn, the intruder kept */
    w = gguf_writer_create(in_scratch("m.gguf"), &opts, &err);
    gguf_writer_add_tensor(w, "a", GGML_TYPE_F32, 1, ne, &err);
    gguf_writer_add_tensor(w, "b", GGML_TYPE_F32, 1, ne, &err);
    assert_int_equal(gguf_writer_begin_data(w, &err), 0);
    gguf_writer_write(w, data, sizeof data, &err);
    gguf_writer_write(w, data, sizeof data, &err);
    write_text(in_scratch("m-00002-of-00002.gguf"), "theirs");
    assert_int_equal(gguf_writer_finish(w, &err), -1);
    assert_non_null(strstr(err.msg, "already exists"));
    assert_string_equal(listing(), "m-00002-of-00002.gguf");
    assert_content(in_scratch("m-00002-of-00002.gguf"), "theirs");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tmpfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gguf_writer_named_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
