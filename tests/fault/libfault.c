/* Fault injection for the tools' tests (LD_PRELOAD). NOMOAT_FAULT="FUNC:N" makes the N-th call
 * (1-based) of FUNC fail the way the system would: write/pwrite/pwritev -> ENOSPC (disk full),
 * fsync -> EIO, rename/link/linkat -> EACCES, open -> EMFILE, mmap -> ENOMEM, malloc/calloc/realloc
 * -> NULL. NOMOAT_FAULT_REPORT=FILE appends "FUNC COUNT" lines at exit so a test knows how many
 * call sites a run has and can sample them. Built without sanitizers; under ASan the test
 * preloads the ASan runtime first and leaves malloc alone. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { F_WRITE, F_PWRITE, F_PWRITEV, F_FSYNC, F_RENAME, F_LINK, F_LINKAT, F_OPEN, F_MMAP, F_MALLOC, F_CALLOC, F_REALLOC, F_COUNT };
static const char *names[F_COUNT] = {"write", "pwrite", "pwritev", "fsync", "rename", "link", "linkat",
                                     "open", "mmap", "malloc", "calloc", "realloc"};
static unsigned long counts[F_COUNT];
static int target = -1;
static unsigned long target_n;
static int ready;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

__attribute__((constructor)) static void fault_init(void) {
    const char *spec = getenv("NOMOAT_FAULT");
    if (spec) {
        const char *colon = strchr(spec, ':');
        for (int i = 0; colon && i < F_COUNT; i++)
            if (strlen(names[i]) == (size_t)(colon - spec) && strncmp(spec, names[i], (size_t)(colon - spec)) == 0) {
                target = i;
                target_n = strtoul(colon + 1, NULL, 10);
            }
    }
    ready = 1;
}

/* Counts a call and says whether this one must fail. */
static int hit(int f) {
    if (!ready)
        return 0;
    unsigned long n = __atomic_add_fetch(&counts[f], 1, __ATOMIC_RELAXED);
    return f == target && n == target_n;
}

#define NEXT(type, name, args) ((type(*) args)dlsym(RTLD_NEXT, name))

ssize_t write(int fd, const void *buf, size_t n) {
    if (fd > 2 && hit(F_WRITE)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(ssize_t, "write", (int, const void *, size_t))(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    if (hit(F_PWRITE)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(ssize_t, "pwrite", (int, const void *, size_t, off_t))(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off) {
    if (hit(F_PWRITEV)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(ssize_t, "pwritev", (int, const struct iovec *, int, off_t))(fd, iov, n, off);
}
ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off) __attribute__((alias("pwritev")));

int fsync(int fd) {
    if (hit(F_FSYNC)) {
        errno = EIO;
        return -1;
    }
    return NEXT(int, "fsync", (int))(fd);
}

int rename(const char *a, const char *b) {
    if (hit(F_RENAME)) {
        errno = EACCES;
        return -1;
    }
    return NEXT(int, "rename", (const char *, const char *))(a, b);
}

int link(const char *a, const char *b) {
    if (hit(F_LINK)) {
        errno = EACCES;
        return -1;
    }
    return NEXT(int, "link", (const char *, const char *))(a, b);
}

int linkat(int d1, const char *a, int d2, const char *b, int flags) {
    if (hit(F_LINKAT)) {
        errno = EACCES;
        return -1;
    }
    return NEXT(int, "linkat", (int, const char *, int, const char *, int))(d1, a, d2, b, flags);
}

int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (hit(F_OPEN)) {
        errno = EMFILE;
        return -1;
    }
    return NEXT(int, "open", (const char *, int, ...))(path, flags, mode);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (fd >= 0 && hit(F_MMAP)) { /* file mappings only: anonymous ones belong to allocators */
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return NEXT(void *, "mmap", (void *, size_t, int, int, int, off_t))(addr, len, prot, flags, fd, off);
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) __attribute__((alias("mmap")));

#ifndef FAULT_NO_MALLOC
void *malloc(size_t n) {
    if (hit(F_MALLOC))
        return errno = ENOMEM, NULL;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    if (hit(F_CALLOC))
        return errno = ENOMEM, NULL;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    if (hit(F_REALLOC))
        return errno = ENOMEM, NULL;
    return __libc_realloc(p, n);
}
#endif

__attribute__((destructor)) static void fault_report(void) {
    const char *path = getenv("NOMOAT_FAULT_REPORT");
    if (!path)
        return;
    ready = 0; /* the calls below must not count */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    for (int i = 0; i < F_COUNT; i++)
        dprintf(fd, "%s %lu\n", names[i], counts[i]);
    close(fd);
}

