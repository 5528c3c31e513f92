/* Small helpers shared by the tools' command lines: progress bar, sizes, thread counts. */
#ifndef NOMOAT_CLI_H
#define NOMOAT_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* "2G", "500M", "1.5G", "4096" (bytes; K/M/G/T are powers of 1000 like llama.cpp's
 * --split-max-size, KiB/MiB/GiB powers of 1024). Returns -1 on a malformed size. */
int nm_parse_size(const char *text, uint64_t *out);
/* A thread count: positive integer, or 0/"auto" for all cores. Returns -1 when malformed. */
int nm_parse_threads(const char *text, int *out);
/* "1.23 GB" style, into buf; returns buf. */
const char *nm_format_bytes(uint64_t bytes, char *buf, int size);

/* Progress on stderr, only when stderr is a TTY and not quiet: "label  i/N  1.2/3.4 GB
 * 850 MB/s  ETA 0:03". Redrawn at most 10 times a second. */
typedef struct nm_progress {
    bool enabled;
    const char *label;
    uint64_t total_items, total_bytes;
    uint64_t done_items, done_bytes;
    double start_time, last_draw;
} nm_progress;

void nm_progress_start(nm_progress *p, const char *label, uint64_t total_items, uint64_t total_bytes,
                       bool quiet);
void nm_progress_update(nm_progress *p, uint64_t done_items, uint64_t done_bytes);
void nm_progress_finish(nm_progress *p); /* clears the line */

double nm_now(void); /* monotonic seconds */
/* Peak resident set size of this process in bytes (VmHWM), and peak anonymous memory if known
 * (RssAnon is not tracked as a peak by Linux; tools sample it with nm_rss_anon). */
uint64_t nm_peak_rss(void);
uint64_t nm_rss_anon(void);

#endif
