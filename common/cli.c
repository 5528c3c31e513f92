#include "common/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/parallel.h"

int nm_parse_size(const char *text, uint64_t *out) {
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || v < 0)
        return -1;
    double mult = 1;
    if (*end) {
        static const struct { const char *suffix; double mult; } units[] = {
            {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
            {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
            {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
            {"B", 1},
        };
        size_t i;
        for (i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcasecmp(end, units[i].suffix) == 0 && (units[i].suffix[1] != 'i' || strcmp(end, units[i].suffix) == 0))
                break;
        if (i == sizeof units / sizeof units[0])
            return -1;
        mult = units[i].mult;
    }
    double bytes = v * mult;
    if (bytes >= 18446744073709551615.0)
        return -1;
    *out = (uint64_t)bytes;
    return 0;
}

int nm_parse_threads(const char *text, int *out) {
    if (!text || !*text)
        return -1;
    if (strcmp(text, "auto") == 0) {
        *out = nm_cpu_count();
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < 0 || v > 4096)
        return -1;
    *out = v == 0 ? nm_cpu_count() : (int)v;
    return 0;
}

const char *nm_format_bytes(uint64_t bytes, char *buf, int size) {
    static const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, (size_t)size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, (size_t)size, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
    return buf;
}

double nm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void nm_progress_start(nm_progress *p, const char *label, uint64_t total_items, uint64_t total_bytes,
                       bool quiet) {
    memset(p, 0, sizeof *p);
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->label = label;
    p->total_items = total_items;
    p->total_bytes = total_bytes;
    p->start_time = nm_now();
}

static void progress_draw(nm_progress *p, double now) {
    char done[32], total[32], rate[32];
    double elapsed = now - p->start_time;
    double bps = elapsed > 0 ? (double)p->done_bytes / elapsed : 0;
    nm_format_bytes(p->done_bytes, done, sizeof done);
    nm_format_bytes(p->total_bytes, total, sizeof total);
    nm_format_bytes((uint64_t)bps, rate, sizeof rate);
    int eta = -1;
    if (bps > 0 && p->total_bytes >= p->done_bytes)
        eta = (int)((double)(p->total_bytes - p->done_bytes) / bps);
    int width = 24, filled = p->total_bytes ? (int)((double)width * (double)p->done_bytes / (double)p->total_bytes) : 0;
    if (filled > width)
        filled = width;
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    if (eta >= 0)
        fprintf(stderr, "\r\033[K%s [%s] %llu/%llu  %s/%s  %s/s  ETA %d:%02d", p->label, bar,
                (unsigned long long)p->done_items, (unsigned long long)p->total_items, done, total, rate,
                eta / 60, eta % 60);
    else
        fprintf(stderr, "\r\033[K%s [%s] %llu/%llu  %s/%s", p->label, bar, (unsigned long long)p->done_items,
                (unsigned long long)p->total_items, done, total);
    fflush(stderr);
    p->last_draw = now;
}

void nm_progress_update(nm_progress *p, uint64_t done_items, uint64_t done_bytes) {
    p->done_items = done_items;
    p->done_bytes = done_bytes;
    if (!p->enabled)
        return;
    double now = nm_now();
    if (now - p->last_draw >= 0.1 || done_items == p->total_items)
        progress_draw(p, now);
}

void nm_progress_finish(nm_progress *p) {
    if (p->enabled) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

static uint64_t status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            kb = strtoull(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

uint64_t nm_peak_rss(void) {
    return status_kb("VmHWM");
}

uint64_t nm_rss_anon(void) {
    return status_kb("RssAnon");
}
