/* Private: fetching the weights a tile will read next into L2 while it works on the ones it has.
 * A tile's weights come from the mapped file, read from memory for the first time when the tile
 * packs them; spreading prefetches of the next rows over the passes on this one took those
 * loads' waits off the copies (float panels: 14% -> 5% of an F32 evaluation on a 2-core EPYC,
 * kernels/dot_avx2.c). A prefetch never faults, so a plan may run past what is mapped. */
#ifndef NOMOAT_PREFETCH_AHEAD_H
#define NOMOAT_PREFETCH_AHEAD_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *w;         /* the first row's first byte */
    size_t ws;                /* row stride */
    int64_t row_lines;        /* 64-byte lines per row (one more when a row may start unaligned) */
    int64_t line, lines, per; /* the next line to fetch, lines in all, lines per step */
} nm_ahead;

/* Rows [0, rows) from w, bytes [0, bytes) of each, spread over `steps` calls of nm_ahead_step;
 * none when w is NULL or rows < 1. */
static inline nm_ahead nm_ahead_plan(const uint8_t *w, size_t ws, int rows, size_t bytes, int64_t steps) {
    nm_ahead p = {w, ws, (int64_t)((bytes + 63) / 64) + ((uintptr_t)w % 64 != 0 || ws % 64 != 0), 0, 0, 0};
    p.lines = rows > 0 && w ? p.row_lines * rows : 0;
    p.per = steps > 0 ? (p.lines + steps - 1) / steps : p.lines;
    return p;
}

/* The plan's next `per` lines, into L2 (prefetcht1). */
static inline void nm_ahead_step(nm_ahead *p) {
    const int64_t end = p->lines - p->line < p->per ? p->lines : p->line + p->per;
    for (; p->line < end; p->line++)
        __builtin_prefetch(p->w + (size_t)(p->line / p->row_lines) * p->ws + (size_t)(p->line % p->row_lines) * 64,
                           0, 2);
}
#endif
