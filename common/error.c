#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A message often quotes bytes from an untrusted file (a key, a string value); a control byte
 * there (a newline, an escape sequence) would split the one-line error or drive the terminal, so
 * it becomes '?'. */
static void one_line(char *msg) {
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f) *p = '?';
}

int nm_fail(nm_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        one_line(err->msg);
    }
    return -1;
}

int nm_error_prefix(nm_error *err, const char *fmt, ...) {
    if (!err)
        return -1;
    char prefix[NM_ERROR_MAX], old[NM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t n = strnlen(prefix, sizeof err->msg - 3);
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = strnlen(old, sizeof err->msg - n - 3);
    memcpy(err->msg + n + 2, old, rest);
    err->msg[n + 2 + rest] = '\0';
    one_line(err->msg);
    return -1;
}
