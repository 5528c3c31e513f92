/* nomoat-pack container (".nmz"): lossless, checksummed, seekable per tensor.
 *
 * The original file is cut into contiguous chunks that cover it exactly: the GGUF header and
 * metadata region, then each tensor's bytes (with the padding up to the next tensor) cut into
 * chunks of at most `chunk_size` bytes. Each chunk is stored as one or two independent zstd
 * frames after a reversible per-type transform that regroups bytes so they compress better:
 *
 *   transform     frame 0                                 frame 1
 *   RAW (0)       all bytes                               -
 *   BF16 (1)      exponent byte of each element            sign+7 mantissa bits, then tail bytes
 *   F16 (2)       high byte of each element                low byte of each element, then tail
 *   F32 (3)       exponent byte of each element            sign|mantissa[22:16], mantissa[15:8],
 *                                                          mantissa[7:0] per element, then tail
 * ("tail" = the bytes after the last whole element, e.g. padding of odd length.) Exponent
 * streams are compressed with parameters tuned for near-order-0 data (fast strategy, short
 * hash, long minimum match) that beat zstd's level presets on them; the rest uses the level.
 *
 * File layout (all integers little-endian):
 *   0   header (64 bytes)
 *         0  magic "NMZPACK1"
 *         8  u32 version (1)
 *        12  u32 flags (bit 0: the original is a GGUF file split by tensor)
 *        16  u64 original size
 *        24  16 bytes XXH3-128 of the whole original (canonical big-endian form)
 *        40  u64 index offset
 *        48  u64 index size
 *        56  u64 XXH3-64 of the index bytes
 *   64  chunk payloads, in chunk order
 *   index:
 *         u32 chunk count, u32 tensor count
 *         chunk records (48 bytes each):
 *           u64 original offset, u32 original size, u32 size of frame 0 (0 when one frame),
 *           u64 packed offset, u32 packed size (all frames), u8 transform, 3 bytes zero,
 *           u64 XXH3-64 of the chunk's original bytes, u64 XXH3-64 of its packed bytes
 *         tensor records: u16 name length, name bytes, u32 ggml type, u32 first chunk,
 *           u32 chunk count, u64 tensor bytes (without padding)
 * Chunks cover [0, original size) in order without gaps; packed ranges lie in order between
 * the header and the index. Unpacking checks every chunk's packed and original hashes (so any
 * damaged byte is found, even one zstd would decode to the same output) and the whole-file
 * XXH3-128; flags other than bit 0 must be zero. */
#ifndef NOMOAT_PACK_H
#define NOMOAT_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define NM_PACK_MAGIC "NMZPACK1"
#define NM_PACK_HEADER_SIZE 64
#define NM_PACK_DEFAULT_LEVEL 3
#define NM_PACK_DEFAULT_CHUNK (4u << 20)
#define NM_PACK_MAX_CHUNK (64u << 20)

enum nm_pack_transform {
    NM_PACK_RAW = 0,
    NM_PACK_BF16 = 1,
    NM_PACK_F16 = 2,
    NM_PACK_F32 = 3,
    NM_PACK_TRANSFORM_COUNT
};

const char *nm_pack_transform_name(unsigned transform);

/* The transforms themselves (exposed for tests and other tools): split n original bytes into
 * stream 0 (nm_pack_stream0_size bytes) and stream 1 (the rest), and join them back. */
size_t nm_pack_stream0_size(unsigned transform, size_t n);
void nm_pack_split(unsigned transform, const void *src, size_t n, void *s0, void *s1);
void nm_pack_join(unsigned transform, const void *s0, const void *s1, size_t n, void *dst);

typedef struct nm_pack_options {
    int level;             /* zstd level (default 3) */
    int threads;           /* <= 0: all cores */
    size_t chunk_size;     /* 0: NM_PACK_DEFAULT_CHUNK */
    unsigned outfile_flags; /* NM_OUT_FORCE, NM_OUT_NO_FSYNC */
    bool quiet;            /* no progress bar */
    bool raw_only;         /* disable transforms (measurements) */
} nm_pack_options;

typedef struct nm_pack_stats {
    uint64_t original_size, packed_size;
    uint32_t n_chunks, n_tensors;
    bool gguf;
    uint64_t transform_bytes[NM_PACK_TRANSFORM_COUNT];  /* original bytes per transform */
    uint64_t transform_packed[NM_PACK_TRANSFORM_COUNT]; /* packed bytes per transform */
} nm_pack_stats;

/* Packs `in` (any file; GGUF files are split by tensor) into `out`. */
int nm_pack_file(const char *in, const char *out, const nm_pack_options *opts, nm_pack_stats *stats,
                 nm_error *err);

/* A validated packed file, for listing, testing, unpacking and extracting. */
typedef struct nm_pack_reader nm_pack_reader;

typedef struct nm_pack_tensor {
    const char *name; /* NUL-terminated */
    uint32_t type;    /* ggml type (or UINT32_MAX for the metadata region) */
    uint32_t first_chunk, n_chunks;
    uint64_t size;        /* tensor bytes without padding */
    uint64_t packed_size; /* sum of its chunks' packed sizes */
    uint64_t original_size; /* sum of its chunks' original sizes (with padding) */
    unsigned transform;   /* of its first chunk */
} nm_pack_tensor;

nm_pack_reader *nm_pack_open(const char *path, nm_error *err);
nm_pack_reader *nm_pack_open_memory(const void *data, size_t size, nm_error *err);
void nm_pack_close(nm_pack_reader *r);
uint64_t nm_pack_original_size(const nm_pack_reader *r);
uint64_t nm_pack_packed_size(const nm_pack_reader *r);
uint32_t nm_pack_chunk_count(const nm_pack_reader *r);
bool nm_pack_is_gguf(const nm_pack_reader *r);
size_t nm_pack_tensor_count(const nm_pack_reader *r);
const nm_pack_tensor *nm_pack_tensor_at(const nm_pack_reader *r, size_t i);
const nm_pack_tensor *nm_pack_find_tensor(const nm_pack_reader *r, const char *name);

/* Decodes everything, checking each chunk and the whole-file hash; writes the original to
 * `out` (atomically) or, with out == NULL, only checks (--test). The first bad chunk is named. */
int nm_unpack(nm_pack_reader *r, const char *out, const nm_pack_options *opts, nm_error *err);
/* Decodes one tensor's chunks only (checking their hashes) into a malloc'ed buffer of
 * t->size bytes. */
int nm_pack_extract(nm_pack_reader *r, const nm_pack_tensor *t, void **data, nm_error *err);

#endif
