/* Atomic output files. Output is written to an unnamed file (O_TMPFILE) in the destination
 * folder, or, where the file system lacks O_TMPFILE, to a hidden temporary beside it, and made
 * visible under its name only by nm_outfile_commit. On any error, abort, SIGINT or SIGTERM no
 * partial file is left behind (after SIGKILL only the named fallback temporary can remain:
 * ".<name>.nomoat-tmp.XXXXXX" in the destination folder). */
#ifndef NOMOAT_OUTFILE_H
#define NOMOAT_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

enum {
    NM_OUT_FORCE = 1,    /* replace an existing file (otherwise an existing file is an error) */
    NM_OUT_NO_FSYNC = 2, /* skip fsync of file and folder (benchmarks, scratch work) */
    /* Write with O_DIRECT where the file system allows it (statx STATX_DIOALIGN): whole aligned
     * blocks go from memory to the device without the kernel's copy into the page cache, which
     * is most of the CPU time of streaming a large file out. For big sequential outputs that
     * are not read back at once (the output does not stay cached). Large writes whose source
     * address is congruent with the file offset modulo nm_outfile_direct_alignment() go out
     * without any copy; others pass through an aligned buffer. Silently buffered where direct
     * I/O is unavailable. */
    NM_OUT_DIRECT = 4,
};

typedef struct nm_outfile nm_outfile;

/* Starts an output for `path`. Fails early if the file exists (without NM_OUT_FORCE) or the
 * folder is not writable. */
nm_outfile *nm_outfile_create(const char *path, unsigned flags, nm_error *err);

/* Buffered sequential write (writes of 256 KB or more go straight to write()); the message names
 * the file and says e.g. "disk full". */
int nm_outfile_write(nm_outfile *out, const void *data, size_t size, nm_error *err);
/* Writes `size` zero bytes. */
int nm_outfile_write_zeros(nm_outfile *out, size_t size, nm_error *err);
/* Bytes written so far (the current offset). */
uint64_t nm_outfile_tell(const nm_outfile *out);
/* Positional write into the already written region (flushes the buffer first). */
int nm_outfile_pwrite(nm_outfile *out, const void *data, size_t size, uint64_t offset, nm_error *err);
const char *nm_outfile_path(const nm_outfile *out);
/* With NM_OUT_DIRECT in effect: the alignment (a power of two) that makes a large write's source
 * go to the device without a copy when (address - offset) is a multiple of it; otherwise 1. */
size_t nm_outfile_direct_alignment(const nm_outfile *out);

/* Flushes, fsyncs (unless NM_OUT_NO_FSYNC), links the file under its name, fsyncs the folder,
 * closes and frees `out` (also on failure, after removing the temporary). */
int nm_outfile_commit(nm_outfile *out, nm_error *err);
/* Discards the output and frees `out`. Safe with NULL. */
void nm_outfile_abort(nm_outfile *out);

/* Installs SIGINT/SIGTERM/SIGHUP handlers that remove named temporaries of outputs still open,
 * then re-raise the signal with its default action (exit status as if killed by it). Tools call
 * this once at start. */
void nm_outfile_install_signal_handlers(void);

#endif
