#include "common/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define OUT_BUFFER_SIZE (4u << 20)
#define UNBUFFERED_WRITE_MIN (256u << 10)
#define MAX_NAMED_TEMPS 256
/* Direct mode: writes at least this large whose source is congruent with the file offset go
 * from the caller's memory to the device; smaller ones are cheaper to copy into the buffer. */
#define DIRECT_MIN_WRITE (64u << 10)
#define DIRECT_MAX_ALIGN (64u << 10)

struct nm_outfile {
    int fd;
    unsigned flags;
    char *path;      /* final name */
    char *temp_path; /* named temporary (fallback), or NULL with O_TMPFILE */
    int temp_slot;   /* index in the signal-cleanup registry, or -1 */
    unsigned char *buf;
    size_t buf_used;
    uint64_t offset; /* bytes handed to write() so far; direct mode: file offset of buf[0] */
    /* Direct mode (NM_OUT_DIRECT granted): everything is written with pwrite/pwritev at
     * explicit offsets in whole blocks of `align` bytes; the partial block at the end stays in
     * the buffer (and is written zero-padded when the disk must be up to date, then rewritten
     * whole later); commit truncates the padding away. `odirect` says whether the descriptor
     * has O_DIRECT (cleared for good if the file system refuses a direct write). */
    size_t align; /* 0: plain buffered mode */
    bool odirect;
};

/* Registry of named temporaries for the signal handler (the only global mutable state besides
 * the CPU table; slots are claimed with atomics so the handler never sees a torn entry). */
static char *volatile named_temps[MAX_NAMED_TEMPS];

static int register_temp(char *path) {
    for (int i = 0; i < MAX_NAMED_TEMPS; i++) {
        char *expected = NULL;
        if (__atomic_compare_exchange_n(&named_temps[i], &expected, path, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return i;
    }
    return -1;
}

static void unregister_temp(int slot) {
    if (slot >= 0)
        __atomic_store_n(&named_temps[slot], NULL, __ATOMIC_SEQ_CST);
}

static void cleanup_on_signal(int sig) {
    for (int i = 0; i < MAX_NAMED_TEMPS; i++) {
        char *p = __atomic_load_n(&named_temps[i], __ATOMIC_SEQ_CST);
        if (p)
            unlink(p);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void nm_outfile_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cleanup_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* The process umask without changing it (umask() can only be read by setting it, which would
 * race with other threads creating files): Linux reports it in /proc/self/status. */
static mode_t current_umask(void) {
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    unsigned mask = 022;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &mask) == 1)
            break;
    if (f)
        fclose(f);
    return (mode_t)mask;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Turns on direct mode when the file system states its direct-I/O alignment and accepts
 * O_DIRECT on this descriptor; otherwise the output stays buffered. */
static void setup_direct(nm_outfile *out) {
#ifdef STATX_DIOALIGN
    struct statx sx;
    if (statx(out->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 || !(sx.stx_mask & STATX_DIOALIGN) ||
        sx.stx_dio_offset_align == 0 || sx.stx_dio_mem_align == 0)
        return;
    size_t a = (size_t)sysconf(_SC_PAGESIZE);
    if (a < 4096)
        a = 4096;
    if (sx.stx_dio_offset_align > a)
        a = sx.stx_dio_offset_align;
    if (sx.stx_dio_mem_align > a)
        a = sx.stx_dio_mem_align;
    if ((a & (a - 1)) != 0 || a > DIRECT_MAX_ALIGN)
        return;
    int fl = fcntl(out->fd, F_GETFL);
    if (fl < 0 || fcntl(out->fd, F_SETFL, fl | O_DIRECT) != 0)
        return;
    out->align = a;
    out->odirect = true;
#else
    (void)out;
#endif
}

/* The descriptor without O_DIRECT, for good (a refused direct write, a positional patch). */
static void drop_odirect(nm_outfile *out) {
    int fl = fcntl(out->fd, F_GETFL);
    if (fl >= 0)
        fcntl(out->fd, F_SETFL, fl & ~O_DIRECT);
    out->odirect = false;
}

static int errno_fail(nm_error *err, const char *what, const char *path, int e) {
    if (e == ENOSPC)
        return nm_fail(err, "%s: disk full while writing (%s)", path, what);
    if (e == EDQUOT)
        return nm_fail(err, "%s: disk quota exceeded while writing (%s)", path, what);
    return nm_fail(err, "%s: %s failed: %s", path, what, strerror(e));
}

nm_outfile *nm_outfile_create(const char *path, unsigned flags, nm_error *err) {
    struct stat st;
    if (!(flags & NM_OUT_FORCE) && lstat(path, &st) == 0) {
        nm_fail(err, "%s: already exists (use --force to replace it)", path);
        return NULL;
    }
    nm_outfile *out = calloc(1, sizeof *out);
    char *dir = dir_of(path);
    if (!out || !dir || !(out->path = strdup(path))) {
        nm_fail(err, "%s: out of memory", path);
        goto fail;
    }
    out->flags = flags;
    out->temp_slot = -1;
    out->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (out->fd < 0 && (errno == EACCES || errno == EROFS || errno == ENOENT || errno == EPERM)) {
        nm_fail(err, "%s: cannot write into folder %s: %s", path, dir, strerror(errno));
        goto fail;
    }
    if (out->fd < 0) { /* file system without O_TMPFILE: a hidden named temporary */
        size_t n = strlen(dir) + strlen(base_of(path)) + 32;
        out->temp_path = malloc(n);
        if (!out->temp_path) {
            nm_fail(err, "%s: out of memory", path);
            goto fail;
        }
        snprintf(out->temp_path, n, "%s/.%s.nomoat-tmp.XXXXXX", dir, base_of(path));
        out->temp_slot = register_temp(out->temp_path);
        out->fd = mkostemp(out->temp_path, O_CLOEXEC);
        if (out->fd < 0) {
            nm_fail(err, "%s: cannot create a temporary file in %s: %s", path, dir, strerror(errno));
            goto fail;
        }
        /* mkostemp uses 0600; published files get 0644 minus the umask, as with O_TMPFILE */
        fchmod(out->fd, 0644 & ~current_umask());
    }
    if (flags & NM_OUT_DIRECT)
        setup_direct(out);
    if (out->align) {
        void *b = NULL;
        /* 2 MB aligned: transparent huge pages where allowed, fewer pages for the kernel to pin */
        if (posix_memalign(&b, 2u << 20, OUT_BUFFER_SIZE) == 0) {
            madvise(b, OUT_BUFFER_SIZE, MADV_HUGEPAGE);
            out->buf = b;
        }
    } else {
        out->buf = malloc(OUT_BUFFER_SIZE);
    }
    if (!out->buf) {
        nm_fail(err, "%s: out of memory", path);
        goto fail;
    }
    free(dir);
    return out;
fail:
    free(dir);
    if (out) {
        unregister_temp(out->temp_slot);
        if (out->fd > 0)
            close(out->fd);
        free(out->temp_path);
        free(out->path);
        free(out->buf);
        free(out);
    }
    return NULL;
}

static int write_all(nm_outfile *out, const void *data, size_t size, nm_error *err) {
    const unsigned char *p = data;
    while (size > 0) {
        size_t chunk = size > (1u << 30) ? (1u << 30) : size;
        ssize_t w = write(out->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno_fail(err, "write", out->path, errno);
        }
        if (w == 0)
            return nm_fail(err, "%s: write made no progress", out->path);
        p += w;
        size -= (size_t)w;
        out->offset += (uint64_t)w;
    }
    return 0;
}

/* Direct mode: writes iov[0..n) (whole blocks) at `offset`. A file system that refuses the
 * direct write (EINVAL) gets the same bytes buffered, and no more direct writes. */
static int pwritev_all(nm_outfile *out, struct iovec *iov, int n, uint64_t offset, nm_error *err) {
    while (n > 0) {
        ssize_t w = pwritev(out->fd, iov, n, (off_t)offset);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EINVAL && out->odirect) {
                drop_odirect(out);
                continue;
            }
            return errno_fail(err, "write", out->path, errno);
        }
        if (w == 0)
            return nm_fail(err, "%s: write made no progress", out->path);
        offset += (uint64_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (unsigned char *)iov->iov_base + left;
            iov->iov_len -= left;
            /* a short direct write that left an unaligned remainder: finish it buffered */
            if (out->odirect && (((uintptr_t)iov->iov_base | offset | iov->iov_len) & (out->align - 1)))
                drop_odirect(out);
        }
    }
    return 0;
}

/* Direct mode: writes the buffer's whole blocks (all: also the partial last block, zero-padded,
 * so the file holds every byte written so far) and keeps the partial block in the buffer. */
static int flush_direct(nm_outfile *out, bool all, nm_error *err) {
    size_t n = out->buf_used, full = n & ~(out->align - 1);
    size_t len = all ? (n + out->align - 1) & ~(out->align - 1) : full;
    if (len == 0)
        return 0;
    memset(out->buf + n, 0, len - n);
    struct iovec iov = {out->buf, len};
    if (pwritev_all(out, &iov, 1, out->offset, err) != 0)
        return -1;
    memmove(out->buf, out->buf + full, n - full);
    out->offset += full;
    out->buf_used = n - full;
    return 0;
}

/* Direct mode write: through the buffer, or, for a large source congruent with the file offset,
 * the buffer's blocks plus the source's aligned middle in one pwritev straight from the
 * caller's memory, the unaligned end kept in the buffer. */
static int write_direct(nm_outfile *out, const unsigned char *p, size_t size, nm_error *err) {
    size_t a = out->align;
    uint64_t pos = out->offset + out->buf_used;
    if (size >= DIRECT_MIN_WRITE && (((uintptr_t)p - (uintptr_t)pos) & (a - 1)) == 0) {
        size_t head = (size_t)((a - (pos & (a - 1))) & (a - 1));
        if (out->buf_used + head > OUT_BUFFER_SIZE && flush_direct(out, false, err) != 0)
            return -1;
        memcpy(out->buf + out->buf_used, p, head);
        out->buf_used += head;
        size_t mid = (size - head) & ~(a - 1);
        struct iovec iov[2] = {{out->buf, out->buf_used}, {(void *)(p + head), mid}};
        int n = out->buf_used ? 2 : 1;
        if (pwritev_all(out, out->buf_used ? iov : iov + 1, n, out->offset, err) != 0)
            return -1;
        out->offset += out->buf_used + mid;
        out->buf_used = 0;
        p += head + mid;
        size -= head + mid;
    }
    while (size > 0) {
        size_t room = OUT_BUFFER_SIZE - out->buf_used, n = size < room ? size : room;
        memcpy(out->buf + out->buf_used, p, n);
        out->buf_used += n;
        p += n;
        size -= n;
        if (out->buf_used == OUT_BUFFER_SIZE && flush_direct(out, false, err) != 0)
            return -1;
    }
    return 0;
}

static int flush_buffer(nm_outfile *out, nm_error *err) {
    if (out->align)
        return flush_direct(out, true, err);
    if (out->buf_used == 0)
        return 0;
    size_t n = out->buf_used;
    out->buf_used = 0;
    return write_all(out, out->buf, n, err);
}

int nm_outfile_write(nm_outfile *out, const void *data, size_t size, nm_error *err) {
    if (out->align)
        return write_direct(out, data, size, err);
    if (size >= UNBUFFERED_WRITE_MIN) { /* large enough for its own write(): no copy through the buffer */
        if (flush_buffer(out, err) != 0)
            return -1;
        return write_all(out, data, size, err);
    }
    if (out->buf_used + size > OUT_BUFFER_SIZE && flush_buffer(out, err) != 0)
        return -1;
    memcpy(out->buf + out->buf_used, data, size);
    out->buf_used += size;
    return 0;
}

int nm_outfile_write_zeros(nm_outfile *out, size_t size, nm_error *err) {
    static const unsigned char zeros[4096];
    while (size > 0) {
        size_t n = size < sizeof zeros ? size : sizeof zeros;
        if (nm_outfile_write(out, zeros, n, err) != 0)
            return -1;
        size -= n;
    }
    return 0;
}

size_t nm_outfile_direct_alignment(const nm_outfile *out) {
    return out->align ? out->align : 1;
}

uint64_t nm_outfile_tell(const nm_outfile *out) {
    return out->offset + out->buf_used;
}

const char *nm_outfile_path(const nm_outfile *out) {
    return out->path;
}

int nm_outfile_pwrite(nm_outfile *out, const void *data, size_t size, uint64_t offset, nm_error *err) {
    if (out->align) {
        uint64_t end = out->offset + out->buf_used;
        if (offset > end || size > end - offset)
            return nm_fail(err, "%s: positional write outside the written region", out->path);
        /* the part still in the buffer is patched there; the part on disk is rewritten
         * buffered (an unaligned patch), the blocks after it keep going out direct */
        const unsigned char *p = data;
        if (offset + size > out->offset) {
            uint64_t from = offset > out->offset ? offset : out->offset;
            memcpy(out->buf + (from - out->offset), p + (from - offset), (size_t)(offset + size - from));
            size = (size_t)(from - offset);
        }
        if (size == 0)
            return 0;
        bool was = out->odirect;
        if (was)
            drop_odirect(out);
        int rc = 0;
        while (size > 0 && rc == 0) {
            ssize_t w = pwrite(out->fd, p, size, (off_t)offset);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                rc = errno_fail(err, "write", out->path, errno);
            else if (w == 0)
                rc = nm_fail(err, "%s: write made no progress", out->path);
            else {
                p += w;
                size -= (size_t)w;
                offset += (uint64_t)w;
            }
        }
        if (was) {
            int fl = fcntl(out->fd, F_GETFL);
            if (fl >= 0 && fcntl(out->fd, F_SETFL, fl | O_DIRECT) == 0)
                out->odirect = true;
        }
        return rc;
    }
    if (flush_buffer(out, err) != 0)
        return -1;
    if (offset > out->offset || size > out->offset - offset)
        return nm_fail(err, "%s: positional write outside the written region", out->path);
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t w = pwrite(out->fd, p, size, (off_t)offset);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno_fail(err, "write", out->path, errno);
        }
        if (w == 0)
            return nm_fail(err, "%s: write made no progress", out->path);
        p += w;
        size -= (size_t)w;
        offset += (uint64_t)w;
    }
    return 0;
}

static void free_outfile(nm_outfile *out) {
    if (out->fd >= 0)
        close(out->fd);
    if (out->temp_path) {
        unlink(out->temp_path);
        unregister_temp(out->temp_slot);
        free(out->temp_path);
    }
    free(out->path);
    free(out->buf);
    free(out);
}

static int fsync_dir_of(const char *path, nm_error *err) {
    char *dir = dir_of(path);
    if (!dir)
        return nm_fail(err, "%s: out of memory", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0)
        rc = nm_fail(err, "%s: cannot flush folder %s: %s", path, dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

int nm_outfile_commit(nm_outfile *out, nm_error *err) {
    int rc = -1;
    if (flush_buffer(out, err) != 0)
        goto done;
    if (out->align) { /* the last block went out zero-padded */
        uint64_t size = out->offset + out->buf_used;
        if (ftruncate(out->fd, (off_t)size) != 0) {
            errno_fail(err, "truncate", out->path, errno);
            goto done;
        }
    }
    if (!(out->flags & NM_OUT_NO_FSYNC) && fsync(out->fd) != 0) {
        errno_fail(err, "fsync", out->path, errno);
        goto done;
    }
    if (out->temp_path) {
        if (!(out->flags & NM_OUT_FORCE)) {
            /* link() refuses to replace an existing name, unlike rename() */
            if (link(out->temp_path, out->path) != 0) {
                if (errno == EEXIST)
                    nm_fail(err, "%s: already exists (use --force to replace it)", out->path);
                else
                    errno_fail(err, "link", out->path, errno);
                goto done;
            }
        } else if (rename(out->temp_path, out->path) != 0) {
            errno_fail(err, "rename", out->path, errno);
            goto done;
        } else {
            unregister_temp(out->temp_slot);
            free(out->temp_path);
            out->temp_path = NULL;
        }
    } else {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", out->fd);
        if (!(out->flags & NM_OUT_FORCE)) {
            if (linkat(AT_FDCWD, proc, AT_FDCWD, out->path, AT_SYMLINK_FOLLOW) != 0) {
                if (errno == EEXIST)
                    nm_fail(err, "%s: already exists (use --force to replace it)", out->path);
                else
                    errno_fail(err, "link", out->path, errno);
                goto done;
            }
        } else {
            /* link under a temporary name, then rename over the old file atomically */
            size_t n = strlen(out->path) + 32;
            char *tmp = malloc(n);
            if (!tmp) {
                nm_fail(err, "%s: out of memory", out->path);
                goto done;
            }
            int slot = -1, linked = -1;
            for (int attempt = 0; attempt < 100 && linked != 0; attempt++) {
                snprintf(tmp, n, "%s.nomoat-tmp.%d.%d", out->path, (int)getpid(), attempt);
                unregister_temp(slot);
                slot = register_temp(tmp);
                linked = linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW);
                if (linked != 0 && errno != EEXIST)
                    break;
            }
            if (linked != 0) {
                errno_fail(err, "link", out->path, errno);
                unregister_temp(slot);
                free(tmp);
                goto done;
            }
            if (rename(tmp, out->path) != 0) {
                errno_fail(err, "rename", out->path, errno);
                unlink(tmp);
                unregister_temp(slot);
                free(tmp);
                goto done;
            }
            unregister_temp(slot);
            free(tmp);
        }
    }
    /* The name is in place but its folder entry may not be durable. A new name is taken back
     * rather than reporting failure with a file left behind; a replaced file (--force) is kept,
     * complete and flushed, because the old one is already gone and removing both loses data. */
    if (!(out->flags & NM_OUT_NO_FSYNC) && fsync_dir_of(out->path, err) != 0) {
        if (!(out->flags & NM_OUT_FORCE))
            unlink(out->path);
        else
            nm_error_prefix(err, "%s is complete but its folder could not be flushed", out->path);
        goto done;
    }
    rc = 0;
done:
    if (rc == 0 && out->temp_path) { /* linked: the temporary name is no longer needed */
        unlink(out->temp_path);
        unregister_temp(out->temp_slot);
        free(out->temp_path);
        out->temp_path = NULL;
    }
    free_outfile(out);
    return rc;
}

void nm_outfile_abort(nm_outfile *out) {
    if (out)
        free_outfile(out);
}
