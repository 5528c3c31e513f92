/* Small helpers shared by the C tests. */
#ifndef NOMOAT_TESTLIB_H
#define NOMOAT_TESTLIB_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* The whole file, NUL-terminated (so text can be parsed in place), in a malloc'd buffer; its
 * length in *size (0 on failure). NULL when it cannot be opened or read whole. */
static inline unsigned char *test_read_file(const char *path, size_t *size) {
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    *size = (size_t)n;
    return buf;
}

/* The path of rel under the fixtures ($NOMOAT_FIXTURES, else $NOMOAT_ROOT/../shared/fixtures,
 * else ../shared/fixtures), in out; whether that file exists. */
static inline bool test_fixture(char *out, size_t size, const char *rel) {
    const char *f = getenv("NOMOAT_FIXTURES"), *root = getenv("NOMOAT_ROOT");
    if (f)
        snprintf(out, size, "%s/%s", f, rel);
    else
        snprintf(out, size, "%s/../shared/fixtures/%s", root ? root : ".", rel);
    struct stat st;
    return stat(out, &st) == 0;
}

#endif
