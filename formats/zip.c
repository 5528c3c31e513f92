/* ZIP central directory reader (FORMATS.md §8.1). Everything read from the buffer is
 * untrusted: each record is bounds-checked before a field is read, sizes are 64-bit and every
 * sum is overflow-checked. */
#include "formats/zip.h"

#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_ZIP64_EOCD 0x06064b50u
#define SIG_ZIP64_LOCATOR 0x07064b50u
#define EOCD_SIZE 22
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30

struct nm_zip {
    const uint8_t *data;
    size_t size;
    nm_zip_entry *entries; /* central-directory order */
    size_t count;
    size_t *sorted;        /* indices sorted by name, for nm_zip_find */
    char *names;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Messages quote names taken from the file: keep them one printable line. */
static void one_line(nm_error *err) {
    if (!err)
        return;
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* True when [off, off+len) lies inside the buffer. */
static int in_range(size_t size, uint64_t off, uint64_t len) {
    return off <= size && len <= size - off;
}

static int cmp_name(const void *a, const void *b, void *ctx) {
    const nm_zip *z = ctx;
    return strcmp(z->entries[*(const size_t *)a].name, z->entries[*(const size_t *)b].name);
}

static int find_eocd(const uint8_t *d, size_t size, size_t *eocd, nm_error *err) {
    if (size < EOCD_SIZE)
        return nm_fail(err, "not a zip archive: %zu bytes is too small for an end-of-central-directory record", size);
    size_t lowest = size - EOCD_SIZE > 0xffff ? size - EOCD_SIZE - 0xffff : 0;
    for (size_t off = size - EOCD_SIZE + 1; off-- > lowest;) {
        if (rd32(d + off) != SIG_EOCD)
            continue;
        if (off + EOCD_SIZE + rd16(d + off + 20) > size)
            continue; /* comment would run past the end: not the real record */
        *eocd = off;
        return 0;
    }
    return nm_fail(err, "no zip end-of-central-directory record (truncated or not a zip archive)");
}

/* ZIP64 extended information: u64 values for the saturated fields, in the fixed order
 * uncompressed size, compressed size, local header offset. */
static int read_zip64_extra(const uint8_t *extra, size_t len, nm_zip_entry *e, uint32_t usize32,
                            uint32_t csize32, uint32_t off32, nm_error *err) {
    size_t p = 0;
    while (p + 4 <= len) {
        uint16_t id = rd16(extra + p), n = rd16(extra + p + 2);
        if (n > len - p - 4)
            return nm_fail(err, "zip entry %s: extra field runs past its record", e->name);
        if (id == 0x0001) {
            const uint8_t *v = extra + p + 4;
            size_t left = n;
            if (usize32 == 0xffffffffu) {
                if (left < 8) goto short_zip64;
                e->size = rd64(v), v += 8, left -= 8;
            }
            if (csize32 == 0xffffffffu) {
                if (left < 8) goto short_zip64;
                e->comp_size = rd64(v), v += 8, left -= 8;
            }
            if (off32 == 0xffffffffu) {
                if (left < 8) goto short_zip64;
                e->local_offset = rd64(v);
            }
            return 0;
        }
        p += 4 + (size_t)n;
    }
    if (usize32 == 0xffffffffu || csize32 == 0xffffffffu || off32 == 0xffffffffu)
        return nm_fail(err, "zip entry %s: saturated size or offset without a ZIP64 extra field", e->name);
    return 0;
short_zip64:
    return nm_fail(err, "zip entry %s: ZIP64 extra field too short", e->name);
}

nm_zip *nm_zip_open_memory(const void *data, size_t size, nm_error *err) {
    const uint8_t *d = data;
    size_t eocd = 0;
    if (find_eocd(d, size, &eocd, err))
        return NULL;
    uint64_t total = rd16(d + eocd + 10);
    uint64_t cd_size = rd32(d + eocd + 12), cd_offset = rd32(d + eocd + 16);
    int have_locator = eocd >= 20 && rd32(d + eocd - 20) == SIG_ZIP64_LOCATOR;
    if (have_locator) {
        uint64_t z64 = rd64(d + eocd - 20 + 8);
        if (!in_range(size, z64, 56) || z64 > eocd - 20 || rd32(d + z64) != SIG_ZIP64_EOCD) {
            nm_fail(err, "zip64 end-of-central-directory record missing or out of range (offset %llu)",
                    (unsigned long long)z64);
            return NULL;
        }
        total = rd64(d + z64 + 32);
        cd_size = rd64(d + z64 + 40);
        cd_offset = rd64(d + z64 + 48);
    } else if (total == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
        nm_fail(err, "zip end record is saturated but there is no ZIP64 locator");
        return NULL;
    }
    if (!in_range(size, cd_offset, cd_size)) {
        nm_fail(err, "zip central directory (offset %llu, %llu bytes) lies outside the %zu-byte file",
                (unsigned long long)cd_offset, (unsigned long long)cd_size, size);
        return NULL;
    }
    if (total > cd_size / CENTRAL_SIZE) {
        nm_fail(err, "zip claims %llu entries but its central directory has room for %llu",
                (unsigned long long)total, (unsigned long long)(cd_size / CENTRAL_SIZE));
        return NULL;
    }
    nm_zip *z = calloc(1, sizeof *z);
    if (!z) {
        nm_fail(err, "out of memory");
        return NULL;
    }
    z->data = d;
    z->size = size;
    z->count = (size_t)total;
    z->entries = calloc(z->count ? z->count : 1, sizeof *z->entries);
    z->sorted = calloc(z->count ? z->count : 1, sizeof *z->sorted);
    z->names = malloc(cd_size + 1); /* names fit in the directory, plus NULs replacing headers */
    size_t names_used = 0;
    if (!z->entries || !z->sorted || !z->names) {
        nm_fail(err, "out of memory");
        goto fail;
    }
    const uint8_t *cd = d + cd_offset;
    size_t pos = 0;
    for (size_t i = 0; i < z->count; i++) {
        if (cd_size - pos < CENTRAL_SIZE || rd32(cd + pos) != SIG_CENTRAL) {
            nm_fail(err, "zip central directory entry %zu is missing or damaged (offset %llu)", i,
                    (unsigned long long)(cd_offset + pos));
            goto fail;
        }
        const uint8_t *c = cd + pos;
        size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (cd_size - pos - CENTRAL_SIZE < nlen + xlen + clen) {
            nm_fail(err, "zip central directory entry %zu runs past the directory", i);
            goto fail;
        }
        nm_zip_entry *e = &z->entries[i];
        if (memchr(c + CENTRAL_SIZE, 0, nlen)) {
            nm_fail(err, "zip central directory entry %zu has a NUL byte in its name", i);
            goto fail;
        }
        e->name = z->names + names_used;
        memcpy(z->names + names_used, c + CENTRAL_SIZE, nlen);
        z->names[names_used + nlen] = '\0';
        names_used += nlen + 1; /* nlen + 1 <= CENTRAL_SIZE + nlen: never exceeds cd_size + 1 */
        if (rd16(c + 8) & 1) {
            nm_fail(err, "zip entry %s is encrypted", e->name);
            goto fail;
        }
        e->method = rd16(c + 10);
        uint32_t csize32 = rd32(c + 20), usize32 = rd32(c + 24), off32 = rd32(c + 42);
        e->comp_size = csize32;
        e->size = usize32;
        e->local_offset = off32;
        if (read_zip64_extra(c + CENTRAL_SIZE + nlen, xlen, e, usize32, csize32, off32, err))
            goto fail;
        z->sorted[i] = i;
        pos += CENTRAL_SIZE + nlen + xlen + clen;
    }
    qsort_r(z->sorted, z->count, sizeof *z->sorted, cmp_name, z);
    for (size_t i = 1; i < z->count; i++) {
        if (strcmp(z->entries[z->sorted[i - 1]].name, z->entries[z->sorted[i]].name) == 0) {
            nm_fail(err, "zip entry %s appears twice", z->entries[z->sorted[i]].name);
            goto fail;
        }
    }
    return z;
fail:
    one_line(err);
    nm_zip_close(z);
    return NULL;
}

void nm_zip_close(nm_zip *z) {
    if (!z)
        return;
    free(z->entries);
    free(z->sorted);
    free(z->names);
    free(z);
}

size_t nm_zip_count(const nm_zip *z) { return z->count; }

const nm_zip_entry *nm_zip_at(const nm_zip *z, size_t i) {
    return i < z->count ? &z->entries[i] : NULL;
}

const nm_zip_entry *nm_zip_find(const nm_zip *z, const char *name) {
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const nm_zip_entry *e = &z->entries[z->sorted[mid]];
        int c = strcmp(e->name, name);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int payload(const nm_zip *z, const nm_zip_entry *e, const uint8_t **out, nm_error *err) {
    if (e->method != 0)
        return nm_fail(err, "zip entry %s is compressed (method %u); torch checkpoints store entries "
                       "uncompressed, so this file was not written by torch.save", e->name, e->method);
    if (e->comp_size != e->size)
        return nm_fail(err, "zip entry %s is stored but its sizes differ (%llu vs %llu)", e->name,
                       (unsigned long long)e->comp_size, (unsigned long long)e->size);
    if (!in_range(z->size, e->local_offset, LOCAL_SIZE) || rd32(z->data + e->local_offset) != SIG_LOCAL)
        return nm_fail(err, "zip entry %s: no local header at offset %llu", e->name,
                       (unsigned long long)e->local_offset);
    const uint8_t *l = z->data + e->local_offset;
    if (rd16(l + 8) != e->method)
        return nm_fail(err, "zip entry %s: local header says method %u, directory says %u", e->name,
                       rd16(l + 8), e->method);
    uint64_t start = e->local_offset + LOCAL_SIZE + rd16(l + 26) + rd16(l + 28);
    if (!in_range(z->size, start, e->size))
        return nm_fail(err, "zip entry %s: %llu bytes at offset %llu run past the end of the %zu-byte file",
                       e->name, (unsigned long long)e->size, (unsigned long long)start, z->size);
    *out = z->data + start;
    return 0;
}

int nm_zip_payload(const nm_zip *z, const nm_zip_entry *e, const uint8_t **data, nm_error *err) {
    if (payload(z, e, data, err) == 0)
        return 0;
    one_line(err);
    return -1;
}
