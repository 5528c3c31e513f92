/* nomoat error reporting: every fallible call fills a caller-owned nm_error with one
 * sentence a user understands (what file, what offset or tensor, what was expected)
 * and returns -1 (or NULL). Tools print it as "nomoat-TOOL: <msg>" and exit non-zero. */
#ifndef NOMOAT_ERROR_H
#define NOMOAT_ERROR_H

#include <stddef.h>

#define NM_ERROR_MAX 512

typedef struct nm_error {
    char msg[NM_ERROR_MAX];
} nm_error;

/* Formats the message into err (if non-NULL) and returns -1, so `return nm_fail(...)` reads well. */
int nm_fail(nm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (e.g. the file name), returns -1. */
int nm_error_prefix(nm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked size arithmetic: return 0 and store the result, or -1 on overflow. */
static inline int nm_mul_size(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
static inline int nm_add_size(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

#endif
