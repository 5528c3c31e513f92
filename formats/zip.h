/* Read-only ZIP directory for PyTorch checkpoints — FORMATS.md §8.1.
 *
 * Works on a buffer the caller keeps alive (usually a read-only mapping of the file). Reads the
 * end-of-central-directory record (ZIP64 where present), lists the entries, and finds an entry's
 * payload through its local header. Only stored (method 0) payloads can be used; a compressed
 * entry is refused by name when it is asked for. Every offset and size is checked against the
 * buffer before use. */
#ifndef NOMOAT_ZIP_H
#define NOMOAT_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct nm_zip_entry {
    const char *name;      /* NUL-terminated copy of the central-directory name */
    uint16_t method;       /* 0 = stored */
    uint64_t comp_size;
    uint64_t size;         /* uncompressed size */
    uint64_t local_offset; /* offset of the local file header */
} nm_zip_entry;

typedef struct nm_zip nm_zip;

/* Parses the central directory of `data` (size bytes; must outlive the nm_zip). */
nm_zip *nm_zip_open_memory(const void *data, size_t size, nm_error *err);
void nm_zip_close(nm_zip *z);

size_t nm_zip_count(const nm_zip *z);
const nm_zip_entry *nm_zip_at(const nm_zip *z, size_t i); /* central-directory order */
const nm_zip_entry *nm_zip_find(const nm_zip *z, const char *name);

/* Where the entry's bytes start in the buffer (via its local header). Fails for a compressed
 * entry (naming it), a bad local header, or a payload that does not fit in the buffer. */
int nm_zip_payload(const nm_zip *z, const nm_zip_entry *e, const uint8_t **data, nm_error *err);

#endif
