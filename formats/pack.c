#include "formats/pack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "common/cli.h"
#include "formats/gguf.h"
#include "common/outfile.h"
#include "common/parallel.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define CHUNK_RECORD_SIZE 48
#define MAX_CHUNKS (1u << 26)
#define METADATA_NAME "(metadata)"

const char *nm_pack_transform_name(unsigned transform) {
    static const char *names[] = {"raw", "bf16-split", "f16-split", "f32-split"};
    return transform < NM_PACK_TRANSFORM_COUNT ? names[transform] : "?";
}

/* ---------------- little-endian helpers ---------------- */

static void put_u16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const unsigned char *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* ---------------- transforms ---------------- */

/* Element size of a transform (the stream split works on whole elements; the rest is tail). */
static size_t transform_elem(unsigned t) {
    switch (t) {
    case NM_PACK_BF16:
    case NM_PACK_F16:
        return 2;
    case NM_PACK_F32:
        return 4;
    default:
        return 1;
    }
}

/* Size of stream 0 for a chunk of n original bytes (0 for RAW). */
size_t nm_pack_stream0_size(unsigned t, size_t n) {
    return t == NM_PACK_RAW ? 0 : n / transform_elem(t);
}

/* Splits n bytes into stream0 (s0) and stream1 (s1); s1 gets n - |s0| bytes. */
void nm_pack_split(unsigned t, const void *src_, size_t n, void *s0_, void *s1_) {
    const unsigned char *src = src_;
    unsigned char *s0 = s0_, *s1 = s1_;
    size_t elems = n / transform_elem(t), i;
    switch (t) {
    case NM_PACK_BF16:
        i = 0;
#if defined(__SSE2__)
        for (; i + 16 <= elems; i += 16) {
            const __m128i lomask = _mm_set1_epi16(0x00FF);
            __m128i a = _mm_loadu_si128((const __m128i *)(src + 2 * i));
            __m128i b = _mm_loadu_si128((const __m128i *)(src + 2 * i + 16));
            /* per element u16 x: exponent = (x >> 7) & 0xFF; sign|mantissa = ((x >> 8) & 0x80) | (x & 0x7F) */
            __m128i ea = _mm_and_si128(_mm_srli_epi16(a, 7), lomask), eb = _mm_and_si128(_mm_srli_epi16(b, 7), lomask);
            __m128i ma = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 8), _mm_set1_epi16(0x80)), _mm_and_si128(a, _mm_set1_epi16(0x7F)));
            __m128i mb = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(b, 8), _mm_set1_epi16(0x80)), _mm_and_si128(b, _mm_set1_epi16(0x7F)));
            _mm_storeu_si128((__m128i *)(s0 + i), _mm_packus_epi16(ea, eb));
            _mm_storeu_si128((__m128i *)(s1 + i), _mm_packus_epi16(ma, mb));
        }
#endif
        for (; i < elems; i++) {
            unsigned lo = src[2 * i], hi = src[2 * i + 1];
            s0[i] = (unsigned char)((hi << 1) | (lo >> 7));          /* exponent */
            s1[i] = (unsigned char)((hi & 0x80) | (lo & 0x7F));      /* sign, mantissa */
        }
        memcpy(s1 + elems, src + 2 * elems, n - 2 * elems);
        break;
    case NM_PACK_F16:
        i = 0;
#if defined(__SSE2__)
        for (; i + 16 <= elems; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + 2 * i));
            __m128i b = _mm_loadu_si128((const __m128i *)(src + 2 * i + 16));
            __m128i lomask = _mm_set1_epi16(0x00FF);
            _mm_storeu_si128((__m128i *)(s0 + i), _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
            _mm_storeu_si128((__m128i *)(s1 + i), _mm_packus_epi16(_mm_and_si128(a, lomask), _mm_and_si128(b, lomask)));
        }
#endif
        for (; i < elems; i++) {
            s0[i] = src[2 * i + 1];
            s1[i] = src[2 * i];
        }
        memcpy(s1 + elems, src + 2 * elems, n - 2 * elems);
        break;
    case NM_PACK_F32:
        for (i = 0; i < elems; i++) {
            const unsigned char *e = src + 4 * i;
            s0[i] = (unsigned char)((e[3] << 1) | (e[2] >> 7));
            s1[3 * i] = (unsigned char)((e[3] & 0x80) | (e[2] & 0x7F));
            s1[3 * i + 1] = e[1];
            s1[3 * i + 2] = e[0];
        }
        memcpy(s1 + 3 * elems, src + 4 * elems, n - 4 * elems);
        break;
    default:
        memcpy(s1, src, n);
    }
}

void nm_pack_join(unsigned t, const void *s0_, const void *s1_, size_t n, void *dst_) {
    const unsigned char *s0 = s0_, *s1 = s1_;
    unsigned char *dst = dst_;
    size_t elems = n / transform_elem(t), i;
    switch (t) {
    case NM_PACK_BF16:
        i = 0;
#if defined(__SSE2__)
        for (; i + 16 <= elems; i += 16) {
            __m128i e = _mm_loadu_si128((const __m128i *)(s0 + i)), m = _mm_loadu_si128((const __m128i *)(s1 + i));
            /* byte-wise: lo = (e << 7) | (m & 0x7F), hi = (m & 0x80) | (e >> 1); 16-bit shifts + masks
             * keep bits from crossing bytes */
            __m128i lo = _mm_or_si128(_mm_and_si128(_mm_slli_epi16(e, 7), _mm_set1_epi8((char)0x80)),
                                      _mm_and_si128(m, _mm_set1_epi8(0x7F)));
            __m128i hi = _mm_or_si128(_mm_and_si128(m, _mm_set1_epi8((char)0x80)),
                                      _mm_and_si128(_mm_srli_epi16(e, 1), _mm_set1_epi8(0x7F)));
            _mm_storeu_si128((__m128i *)(dst + 2 * i), _mm_unpacklo_epi8(lo, hi));
            _mm_storeu_si128((__m128i *)(dst + 2 * i + 16), _mm_unpackhi_epi8(lo, hi));
        }
#endif
        for (; i < elems; i++) {
            dst[2 * i] = (unsigned char)((s0[i] << 7) | (s1[i] & 0x7F));
            dst[2 * i + 1] = (unsigned char)((s1[i] & 0x80) | (s0[i] >> 1));
        }
        memcpy(dst + 2 * elems, s1 + elems, n - 2 * elems);
        break;
    case NM_PACK_F16:
        i = 0;
#if defined(__SSE2__)
        for (; i + 16 <= elems; i += 16) {
            __m128i hi = _mm_loadu_si128((const __m128i *)(s0 + i)), lo = _mm_loadu_si128((const __m128i *)(s1 + i));
            _mm_storeu_si128((__m128i *)(dst + 2 * i), _mm_unpacklo_epi8(lo, hi));
            _mm_storeu_si128((__m128i *)(dst + 2 * i + 16), _mm_unpackhi_epi8(lo, hi));
        }
#endif
        for (; i < elems; i++) {
            dst[2 * i + 1] = s0[i];
            dst[2 * i] = s1[i];
        }
        memcpy(dst + 2 * elems, s1 + elems, n - 2 * elems);
        break;
    case NM_PACK_F32:
        for (i = 0; i < elems; i++) {
            unsigned char *e = dst + 4 * i;
            e[3] = (unsigned char)((s1[3 * i] & 0x80) | (s0[i] >> 1));
            e[2] = (unsigned char)((s0[i] << 7) | (s1[3 * i] & 0x7F));
            e[1] = s1[3 * i + 1];
            e[0] = s1[3 * i + 2];
        }
        memcpy(dst + 4 * elems, s1 + 3 * elems, n - 4 * elems);
        break;
    default:
        memcpy(dst, s1, n);
    }
}

/* Exponent streams are close to order-0 sources: few long matches, skewed byte histogram.
 * zstd's fast strategy with a tiny hash table and long minimum match leaves them to the
 * per-block Huffman coder, which compresses them better and faster than the level presets. */
static bool stream_is_exponent(unsigned t, int stream) {
    return stream == 0 && (t == NM_PACK_BF16 || t == NM_PACK_F32);
}

static size_t compress_stream(ZSTD_CCtx *cctx, unsigned t, int stream, int level, const void *src, size_t n,
                              void *dst, size_t cap) {
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    if (stream_is_exponent(t, stream)) {
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_strategy, ZSTD_fast);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, 7);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, 6);
    }
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setPledgedSrcSize(cctx, n);
    return ZSTD_compress2(cctx, dst, cap, src, n);
}

/* ---------------- packing ---------------- */

typedef struct chunk_plan {
    uint64_t offset;
    uint32_t size;
    unsigned transform;
    uint32_t tensor; /* index into the tensor plan */
} chunk_plan;

typedef struct tensor_plan {
    char *name;
    uint32_t type;
    uint32_t first_chunk, n_chunks;
    uint64_t size;
} tensor_plan;

typedef struct chunk_result {
    unsigned char *payload;
    size_t cap;
    size_t packed, frame0;
    uint64_t hash, packed_hash;
    int failed;
    char why[160];
} chunk_result;

typedef struct pack_job {
    const unsigned char *input;
    const chunk_plan *chunks;
    size_t first; /* window start */
    chunk_result *results;
    int level;
    ZSTD_CCtx **cctx;          /* one per thread */
    unsigned char **scratch;   /* one per thread: 2 x max chunk */
} pack_job;

static void pack_task(void *ctx, size_t task, int thread) {
    pack_job *job = ctx;
    const chunk_plan *c = &job->chunks[job->first + task];
    chunk_result *r = &job->results[task];
    const unsigned char *src = job->input + c->offset;
    r->hash = XXH3_64bits(src, c->size);
    r->failed = 0;
    size_t n0 = nm_pack_stream0_size(c->transform, c->size), n1 = c->size - n0;
    unsigned char *s0 = job->scratch[thread], *s1 = s0 + n0;
    const unsigned char *in1 = src;
    if (c->transform != NM_PACK_RAW)
        nm_pack_split(c->transform, src, c->size, s0, s1), in1 = s1;
    size_t need = ZSTD_compressBound(n0) + ZSTD_compressBound(n1);
    if (r->cap < need) {
        free(r->payload);
        r->payload = malloc(need);
        r->cap = r->payload ? need : 0;
        if (!r->payload) {
            r->failed = 1;
            snprintf(r->why, sizeof r->why, "out of memory");
            return;
        }
    }
    size_t f0 = 0;
    if (n0) {
        f0 = compress_stream(job->cctx[thread], c->transform, 0, job->level, s0, n0, r->payload, r->cap);
        if (ZSTD_isError(f0)) {
            r->failed = 1;
            snprintf(r->why, sizeof r->why, "zstd: %s", ZSTD_getErrorName(f0));
            return;
        }
    }
    size_t f1 = compress_stream(job->cctx[thread], c->transform, 1, job->level, in1, n1, r->payload + f0, r->cap - f0);
    if (ZSTD_isError(f1)) {
        r->failed = 1;
        snprintf(r->why, sizeof r->why, "zstd: %s", ZSTD_getErrorName(f1));
        return;
    }
    r->frame0 = n0 ? f0 : 0;
    r->packed = f0 + f1;
    r->packed_hash = XXH3_64bits(r->payload, r->packed);
}

static unsigned transform_for_type(uint32_t type, bool raw_only) {
    if (raw_only)
        return NM_PACK_RAW;
    switch (type) {
    case GGML_TYPE_BF16:
        return NM_PACK_BF16;
    case GGML_TYPE_F16:
        return NM_PACK_F16;
    case GGML_TYPE_F32:
        return NM_PACK_F32;
    default:
        return NM_PACK_RAW;
    }
}

typedef struct plan {
    chunk_plan *chunks;
    size_t n_chunks, cap_chunks;
    tensor_plan *tensors;
    size_t n_tensors;
    bool gguf;
} plan;

static int plan_add_region(plan *p, uint64_t offset, uint64_t size, unsigned transform, uint32_t tensor,
                           size_t chunk_size, nm_error *err) {
    size_t elem = transform_elem(transform);
    size_t step = chunk_size - chunk_size % (elem * 16); /* keep element boundaries aligned */
    while (size > 0) {
        uint64_t n = size < step ? size : step;
        if (p->n_chunks == p->cap_chunks) {
            size_t cap = p->cap_chunks ? 2 * p->cap_chunks : 256;
            if (cap > MAX_CHUNKS)
                return nm_fail(err, "too many chunks: use a larger chunk size");
            chunk_plan *c = realloc(p->chunks, cap * sizeof *c);
            if (!c)
                return nm_fail(err, "out of memory");
            p->chunks = c;
            p->cap_chunks = cap;
        }
        p->chunks[p->n_chunks++] = (chunk_plan){offset, (uint32_t)n, transform, tensor};
        offset += n;
        size -= n;
    }
    return 0;
}

static void plan_free(plan *p) {
    for (size_t i = 0; i < p->n_tensors; i++)
        free(p->tensors[i].name);
    free(p->tensors);
    free(p->chunks);
}

/* Cuts the input into chunks: by tensor for a valid GGUF file, else fixed-size raw chunks. */
static int make_plan(plan *p, const char *path, const unsigned char *data, uint64_t size, const nm_pack_options *o,
                     nm_error *err) {
    size_t chunk_size = o->chunk_size ? o->chunk_size : NM_PACK_DEFAULT_CHUNK;
    nm_error gguf_err;
    gguf_reader *g = size >= 4 && memcmp(data, "GGUF", 4) == 0 ? gguf_open_memory(data, size, &gguf_err) : NULL;
    (void)path;
    /* An invalid GGUF is still packed losslessly, as plain bytes; running out of memory is not
     * a reason to silently pack worse. */
    if (!g && size >= 4 && memcmp(data, "GGUF", 4) == 0 && strstr(gguf_err.msg, "out of memory"))
        return nm_fail(err, "%s", gguf_err.msg);
    if (!g) {
        p->tensors = calloc(1, sizeof *p->tensors);
        if (!p->tensors || !(p->tensors[0].name = strdup("(file)")))
            return nm_fail(err, "out of memory");
        p->n_tensors = 1;
        p->tensors[0].type = UINT32_MAX;
        p->tensors[0].size = size;
        int rc = plan_add_region(p, 0, size, NM_PACK_RAW, 0, chunk_size, err);
        p->tensors[0].n_chunks = (uint32_t)p->n_chunks;
        return rc;
    }
    p->gguf = true;
    size_t nt = gguf_tensor_count(g);
    p->tensors = calloc(nt + 1, sizeof *p->tensors);
    if (!p->tensors) {
        gguf_close(g);
        return nm_fail(err, "out of memory");
    }
    uint64_t data_start = gguf_data_offset(g, 0);
    p->n_tensors = nt + 1;
    p->tensors[0] = (tensor_plan){strdup(METADATA_NAME), UINT32_MAX, 0, 0, data_start};
    int rc = p->tensors[0].name ? 0 : nm_fail(err, "out of memory");
    if (rc == 0 && data_start > 0)
        rc = plan_add_region(p, 0, data_start, NM_PACK_RAW, 0, chunk_size, err);
    p->tensors[0].n_chunks = (uint32_t)p->n_chunks;
    for (size_t i = 0; i < nt && rc == 0; i++) {
        const gguf_tensor_info *t = gguf_tensor(g, i);
        uint64_t start = data_start + t->offset;
        uint64_t end = i + 1 < nt ? data_start + gguf_tensor(g, i + 1)->offset : size;
        tensor_plan *tp = &p->tensors[i + 1];
        tp->name = strdup(t->name);
        tp->type = t->type;
        tp->size = t->size;
        tp->first_chunk = (uint32_t)p->n_chunks;
        if (!tp->name) {
            rc = nm_fail(err, "out of memory");
            break;
        }
        if (end < start) { /* the reader guarantees ordered offsets; be defensive anyway */
            rc = nm_fail(err, "tensor %s: data out of order", t->name);
            break;
        }
        if (end > start)
            rc = plan_add_region(p, start, end - start, transform_for_type(t->type, o->raw_only), (uint32_t)(i + 1),
                                 chunk_size, err);
        tp->n_chunks = (uint32_t)(p->n_chunks - tp->first_chunk);
    }
    gguf_close(g);
    return rc;
}

static int map_file(const char *path, const unsigned char **data, uint64_t *size, nm_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return nm_fail(err, "%s: not a regular file", path);
    }
    *size = (uint64_t)st.st_size;
    *data = NULL;
    if (*size > 0) {
        void *m = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return nm_fail(err, "%s: cannot map: %s", path, strerror(errno));
        }
        madvise(m, (size_t)*size, MADV_SEQUENTIAL);
        *data = m;
    }
    close(fd);
    return 0;
}

static void unmap_file(const unsigned char *data, uint64_t size) {
    if (data)
        munmap((void *)data, (size_t)size);
}

static int write_index(nm_outfile *out, const plan *p, const chunk_plan *chunks, const uint64_t *packed_off,
                       const uint32_t *packed_size, const uint32_t *frame0, const uint64_t *hashes,
                       const uint64_t *packed_hashes,
                       uint64_t *index_hash, uint64_t *index_size, nm_error *err) {
    size_t size = 8 + p->n_chunks * CHUNK_RECORD_SIZE;
    for (size_t i = 0; i < p->n_tensors; i++)
        size += 2 + strlen(p->tensors[i].name) + 20;
    unsigned char *buf = calloc(1, size);
    if (!buf)
        return nm_fail(err, "out of memory");
    unsigned char *q = buf;
    put_u32(q, (uint32_t)p->n_chunks);
    put_u32(q + 4, (uint32_t)p->n_tensors);
    q += 8;
    for (size_t i = 0; i < p->n_chunks; i++, q += CHUNK_RECORD_SIZE) {
        put_u64(q, chunks[i].offset);
        put_u32(q + 8, chunks[i].size);
        put_u32(q + 12, frame0[i]);
        put_u64(q + 16, packed_off[i]);
        put_u32(q + 24, packed_size[i]);
        q[28] = (unsigned char)chunks[i].transform;
        put_u64(q + 32, hashes[i]);
        put_u64(q + 40, packed_hashes[i]);
    }
    for (size_t i = 0; i < p->n_tensors; i++) {
        size_t n = strlen(p->tensors[i].name);
        put_u16(q, (uint16_t)n);
        memcpy(q + 2, p->tensors[i].name, n);
        q += 2 + n;
        put_u32(q, p->tensors[i].type);
        put_u32(q + 4, p->tensors[i].first_chunk);
        put_u32(q + 8, p->tensors[i].n_chunks);
        put_u64(q + 12, p->tensors[i].size);
        q += 20;
    }
    *index_hash = XXH3_64bits(buf, size);
    *index_size = size;
    int rc = nm_outfile_write(out, buf, size, err);
    free(buf);
    return rc;
}

int nm_pack_file(const char *in, const char *out_path, const nm_pack_options *opts, nm_pack_stats *stats,
                 nm_error *err) {
    nm_pack_options o = opts ? *opts : (nm_pack_options){0};
    if (o.level == 0)
        o.level = NM_PACK_DEFAULT_LEVEL;
    if (o.chunk_size == 0)
        o.chunk_size = NM_PACK_DEFAULT_CHUNK;
    if (o.chunk_size < 4096 || o.chunk_size > NM_PACK_MAX_CHUNK)
        return nm_fail(err, "chunk size must be between 4 KiB and 64 MiB");
    if (o.level < ZSTD_minCLevel() || o.level > ZSTD_maxCLevel())
        return nm_fail(err, "compression level %d is outside zstd's range %d..%d", o.level, ZSTD_minCLevel(),
                       ZSTD_maxCLevel());
    const unsigned char *data;
    uint64_t size;
    if (map_file(in, &data, &size, err) != 0)
        return -1;
    plan p = {0};
    nm_pool *pool = NULL;
    nm_outfile *out = NULL;
    chunk_result *results = NULL;
    ZSTD_CCtx **cctx = NULL;
    unsigned char **scratch = NULL;
    uint64_t *packed_off = NULL, *hashes = NULL, *packed_hashes = NULL;
    uint32_t *packed_size = NULL, *frame0 = NULL;
    int threads = 0, rc = -1;
    XXH3_state_t *whole = XXH3_createState();
    if (!whole) {
        nm_fail(err, "out of memory");
        goto done;
    }
    if (make_plan(&p, in, data, size, &o, err) != 0)
        goto done;
    pool = nm_pool_create(o.threads);
    if (!pool) {
        nm_fail(err, "out of memory");
        goto done;
    }
    threads = nm_pool_threads(pool);
    size_t window = (size_t)threads * 2;
    results = calloc(window, sizeof *results);
    cctx = calloc((size_t)threads, sizeof *cctx);
    scratch = calloc((size_t)threads, sizeof *scratch);
    packed_off = calloc(p.n_chunks, sizeof *packed_off);
    hashes = calloc(p.n_chunks, sizeof *hashes);
    packed_hashes = calloc(p.n_chunks, sizeof *packed_hashes);
    packed_size = calloc(p.n_chunks, sizeof *packed_size);
    frame0 = calloc(p.n_chunks, sizeof *frame0);
    if (!results || !cctx || !scratch || !packed_off || !hashes || !packed_hashes || !packed_size || !frame0) {
        nm_fail(err, "out of memory");
        goto done;
    }
    for (int t = 0; t < threads; t++) {
        cctx[t] = ZSTD_createCCtx();
        scratch[t] = malloc(o.chunk_size + 16);
        if (!cctx[t] || !scratch[t]) {
            nm_fail(err, "out of memory");
            goto done;
        }
    }
    out = nm_outfile_create(out_path, o.outfile_flags, err);
    if (!out)
        goto done;
    unsigned char header[NM_PACK_HEADER_SIZE] = {0};
    if (nm_outfile_write(out, header, sizeof header, err) != 0)
        goto done;
    XXH3_128bits_reset(whole);
    nm_progress progress;
    nm_progress_start(&progress, "pack", p.n_chunks, size, o.quiet);
    pack_job job = {data, p.chunks, 0, results, o.level, cctx, scratch};
    if (stats)
        memset(stats, 0, sizeof *stats);
    uint64_t done_bytes = 0;
    for (size_t first = 0; first < p.n_chunks; first += window) {
        size_t n = p.n_chunks - first < window ? p.n_chunks - first : window;
        job.first = first;
        nm_pool_run(pool, n, pack_task, &job);
        for (size_t k = 0; k < n; k++) {
            size_t i = first + k;
            chunk_result *r = &results[k];
            if (r->failed) {
                nm_fail(err, "%s: chunk %zu: %s", in, i, r->why);
                goto done;
            }
            packed_off[i] = nm_outfile_tell(out);
            packed_size[i] = (uint32_t)r->packed;
            frame0[i] = (uint32_t)r->frame0;
            hashes[i] = r->hash;
            packed_hashes[i] = r->packed_hash;
            XXH3_128bits_update(whole, data + p.chunks[i].offset, p.chunks[i].size);
            if (nm_outfile_write(out, r->payload, r->packed, err) != 0)
                goto done;
            if (stats) {
                stats->transform_bytes[p.chunks[i].transform] += p.chunks[i].size;
                stats->transform_packed[p.chunks[i].transform] += r->packed;
            }
            done_bytes += p.chunks[i].size;
        }
        nm_progress_update(&progress, first + n, done_bytes);
    }
    nm_progress_finish(&progress);
    uint64_t index_offset = nm_outfile_tell(out), index_hash = 0, index_size = 0;
    if (write_index(out, &p, p.chunks, packed_off, packed_size, frame0, hashes, packed_hashes, &index_hash, &index_size, err) != 0)
        goto done;
    memcpy(header, NM_PACK_MAGIC, 8);
    put_u32(header + 8, 1);
    put_u32(header + 12, p.gguf ? 1 : 0);
    put_u64(header + 16, size);
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(whole));
    memcpy(header + 24, canon.digest, 16);
    put_u64(header + 40, index_offset);
    put_u64(header + 48, index_size);
    put_u64(header + 56, index_hash);
    if (nm_outfile_pwrite(out, header, sizeof header, 0, err) != 0)
        goto done;
    if (stats) {
        stats->original_size = size;
        stats->packed_size = nm_outfile_tell(out);
        stats->n_chunks = (uint32_t)p.n_chunks;
        stats->n_tensors = p.gguf ? (uint32_t)(p.n_tensors - 1) : 0;
        stats->gguf = p.gguf;
    }
    rc = nm_outfile_commit(out, err);
    out = NULL;
done:
    nm_outfile_abort(out);
    if (results)
        for (size_t k = 0; k < (size_t)threads * 2; k++)
            free(results[k].payload);
    for (int t = 0; cctx && t < threads; t++)
        ZSTD_freeCCtx(cctx[t]);
    for (int t = 0; scratch && t < threads; t++)
        free(scratch[t]);
    free(results);
    free(cctx);
    free(scratch);
    free(packed_off);
    free(hashes);
    free(packed_hashes);
    free(packed_size);
    free(frame0);
    nm_pool_destroy(pool);
    XXH3_freeState(whole);
    plan_free(&p);
    unmap_file(data, size);
    return rc;
}

/* ---------------- reading ---------------- */

typedef struct chunk_rec {
    uint64_t offset;
    uint32_t size, frame0;
    uint64_t packed_offset;
    uint32_t packed_size;
    unsigned transform;
    uint64_t hash, packed_hash;
    uint32_t tensor;
} chunk_rec;

struct nm_pack_reader {
    const unsigned char *data;
    uint64_t size;
    bool mapped;
    char *path; /* for messages */
    uint64_t original_size;
    bool gguf;
    unsigned char whole_hash[16];
    chunk_rec *chunks;
    uint32_t n_chunks;
    nm_pack_tensor *tensors;
    size_t n_tensors;
    char *names; /* storage for tensor names */
};

static int pack_parse(nm_pack_reader *r, nm_error *err) {
    const unsigned char *d = r->data;
    if (r->size < NM_PACK_HEADER_SIZE || memcmp(d, NM_PACK_MAGIC, 8) != 0)
        return nm_fail(err, "not a nomoat pack file (bad magic)");
    if (get_u32(d + 8) != 1)
        return nm_fail(err, "unsupported pack version %u (this nomoat reads version 1)", get_u32(d + 8));
    if (get_u32(d + 12) & ~1u)
        return nm_fail(err, "unknown flags 0x%x in the header: damaged, or made by a newer nomoat", get_u32(d + 12));
    r->gguf = get_u32(d + 12) & 1;
    r->original_size = get_u64(d + 16);
    memcpy(r->whole_hash, d + 24, 16);
    uint64_t index_offset = get_u64(d + 40), index_size = get_u64(d + 48), index_hash = get_u64(d + 56);
    if (index_offset < NM_PACK_HEADER_SIZE || index_offset > r->size || index_size > r->size - index_offset)
        return nm_fail(err, "index (offset %llu, %llu bytes) lies outside the file (%llu bytes): truncated?",
                       (unsigned long long)index_offset, (unsigned long long)index_size,
                       (unsigned long long)r->size);
    if (index_offset + index_size != r->size)
        return nm_fail(err, "%llu unexpected bytes after the index",
                       (unsigned long long)(r->size - index_offset - index_size));
    const unsigned char *ix = d + index_offset;
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* let the fuzzer reach the parser behind it */
    if (XXH3_64bits(ix, (size_t)index_size) != index_hash)
        return nm_fail(err, "index checksum mismatch (offset %llu): the file is damaged",
                       (unsigned long long)index_offset);
#else
    (void)index_hash;
#endif
    if (index_size < 8)
        return nm_fail(err, "index too short");
    uint32_t n_chunks = get_u32(ix), n_tensors = get_u32(ix + 4);
    if ((uint64_t)n_chunks * CHUNK_RECORD_SIZE > index_size - 8)
        return nm_fail(err, "index claims %u chunks but holds room for fewer", n_chunks);
    if ((uint64_t)n_tensors * 22 > index_size - 8 - (uint64_t)n_chunks * CHUNK_RECORD_SIZE)
        return nm_fail(err, "index claims %u tensors but holds room for fewer", n_tensors);
    r->chunks = calloc(n_chunks ? n_chunks : 1, sizeof *r->chunks);
    r->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *r->tensors);
    r->names = malloc((size_t)index_size + n_tensors + 1);
    if (!r->chunks || !r->tensors || !r->names)
        return nm_fail(err, "out of memory");
    r->n_chunks = n_chunks;
    uint64_t expect_offset = 0, expect_packed = NM_PACK_HEADER_SIZE;
    const unsigned char *q = ix + 8;
    for (uint32_t i = 0; i < n_chunks; i++, q += CHUNK_RECORD_SIZE) {
        chunk_rec *c = &r->chunks[i];
        c->offset = get_u64(q);
        c->size = get_u32(q + 8);
        c->frame0 = get_u32(q + 12);
        c->packed_offset = get_u64(q + 16);
        c->packed_size = get_u32(q + 24);
        c->transform = q[28];
        c->hash = get_u64(q + 32);
        c->packed_hash = get_u64(q + 40);
        c->tensor = UINT32_MAX;
        if (q[29] | q[30] | q[31])
            return nm_fail(err, "chunk %u: reserved bytes are not zero", i);
        if (c->offset != expect_offset)
            return nm_fail(err, "chunk %u starts at original offset %llu, expected %llu", i,
                           (unsigned long long)c->offset, (unsigned long long)expect_offset);
        if (c->size == 0 || c->size > NM_PACK_MAX_CHUNK)
            return nm_fail(err, "chunk %u has an invalid size %u", i, c->size);
        if (c->transform >= NM_PACK_TRANSFORM_COUNT)
            return nm_fail(err, "chunk %u uses unknown transform %u", i, c->transform);
        if (c->packed_offset != expect_packed || c->packed_size > index_offset - c->packed_offset)
            return nm_fail(err, "chunk %u: packed bytes (offset %llu, %u bytes) out of place", i,
                           (unsigned long long)c->packed_offset, c->packed_size);
        if (c->frame0 > c->packed_size || (c->transform == NM_PACK_RAW) != (c->frame0 == 0))
            return nm_fail(err, "chunk %u: invalid frame layout", i);
        expect_offset += c->size;
        expect_packed += c->packed_size;
    }
    if (expect_offset != r->original_size)
        return nm_fail(err, "chunks cover %llu bytes but the original has %llu", (unsigned long long)expect_offset,
                       (unsigned long long)r->original_size);
    if (expect_packed != index_offset)
        return nm_fail(err, "%llu unaccounted bytes before the index", (unsigned long long)(index_offset - expect_packed));
    const unsigned char *end = ix + index_size;
    char *names = r->names;
    for (uint32_t i = 0; i < n_tensors; i++) {
        if (end - q < 2)
            return nm_fail(err, "tensor record %u truncated", i);
        uint16_t len = get_u16(q);
        if ((size_t)(end - q) < 2u + len + 20u)
            return nm_fail(err, "tensor record %u truncated", i);
        nm_pack_tensor *t = &r->tensors[i];
        memcpy(names, q + 2, len);
        names[len] = '\0';
        if (memchr(names, '\0', len))
            return nm_fail(err, "tensor record %u: name contains a NUL byte", i);
        t->name = names;
        names += len + 1;
        q += 2 + len;
        t->type = get_u32(q);
        t->first_chunk = get_u32(q + 4);
        t->n_chunks = get_u32(q + 8);
        t->size = get_u64(q + 12);
        q += 20;
        if (t->first_chunk > n_chunks || t->n_chunks > n_chunks - t->first_chunk)
            return nm_fail(err, "tensor %s: chunk range %u+%u outside %u chunks", t->name, t->first_chunk,
                           t->n_chunks, n_chunks);
        for (uint32_t k = 0; k < t->n_chunks; k++) {
            chunk_rec *c = &r->chunks[t->first_chunk + k];
            if (c->tensor != UINT32_MAX)
                return nm_fail(err, "tensor %s: chunk %u already belongs to another tensor", t->name,
                               t->first_chunk + k);
            c->tensor = i;
            t->packed_size += c->packed_size;
            t->original_size += c->size;
        }
        if (t->size > t->original_size)
            return nm_fail(err, "tensor %s: size %llu exceeds its chunks' %llu bytes", t->name,
                           (unsigned long long)t->size, (unsigned long long)t->original_size);
        t->transform = t->n_chunks ? r->chunks[t->first_chunk].transform : NM_PACK_RAW;
    }
    if (q != end)
        return nm_fail(err, "%zu unexpected bytes at the end of the index", (size_t)(end - q));
    r->n_tensors = n_tensors;
    return 0;
}

static nm_pack_reader *pack_open(const unsigned char *data, uint64_t size, bool mapped, const char *path,
                                 nm_error *err) {
    nm_pack_reader *r = calloc(1, sizeof *r);
    if (!r) {
        nm_fail(err, "out of memory");
        if (mapped)
            unmap_file(data, size);
        return NULL;
    }
    r->data = data;
    r->size = size;
    r->mapped = mapped;
    r->path = strdup(path ? path : "(memory)");
    if (!r->path) {
        nm_fail(err, "out of memory");
        nm_pack_close(r);
        return NULL;
    }
    if (pack_parse(r, err) != 0) {
        nm_pack_close(r);
        return NULL;
    }
    return r;
}

nm_pack_reader *nm_pack_open(const char *path, nm_error *err) {
    const unsigned char *data;
    uint64_t size;
    if (map_file(path, &data, &size, err) != 0)
        return NULL;
    return pack_open(data, size, true, path, err);
}

nm_pack_reader *nm_pack_open_memory(const void *data, size_t size, nm_error *err) {
    return pack_open(data, size, false, NULL, err);
}

void nm_pack_close(nm_pack_reader *r) {
    if (!r)
        return;
    if (r->mapped)
        unmap_file(r->data, r->size);
    free(r->chunks);
    free(r->tensors);
    free(r->names);
    free(r->path);
    free(r);
}

uint64_t nm_pack_original_size(const nm_pack_reader *r) { return r->original_size; }
uint64_t nm_pack_packed_size(const nm_pack_reader *r) { return r->size; }
uint32_t nm_pack_chunk_count(const nm_pack_reader *r) { return r->n_chunks; }
bool nm_pack_is_gguf(const nm_pack_reader *r) { return r->gguf; }
size_t nm_pack_tensor_count(const nm_pack_reader *r) { return r->n_tensors; }
const nm_pack_tensor *nm_pack_tensor_at(const nm_pack_reader *r, size_t i) {
    return i < r->n_tensors ? &r->tensors[i] : NULL;
}
const nm_pack_tensor *nm_pack_find_tensor(const nm_pack_reader *r, const char *name) {
    for (size_t i = 0; i < r->n_tensors; i++)
        if (strcmp(r->tensors[i].name, name) == 0)
            return &r->tensors[i];
    return NULL;
}

static void describe_chunk(const nm_pack_reader *r, uint32_t i, char *buf, size_t size) {
    const chunk_rec *c = &r->chunks[i];
    const char *tensor = c->tensor != UINT32_MAX ? r->tensors[c->tensor].name : "?";
    snprintf(buf, size, "chunk %u (tensor %s, original bytes %llu..%llu, packed at %llu)", i, tensor,
             (unsigned long long)c->offset, (unsigned long long)(c->offset + c->size),
             (unsigned long long)c->packed_offset);
}

/* Decodes chunk i into dst (c->size bytes) using scratch (c->size bytes); 0 or -1 with why. */
static int decode_chunk(const nm_pack_reader *r, uint32_t i, ZSTD_DCtx *dctx, unsigned char *dst,
                        unsigned char *scratch, char *why, size_t why_size) {
    const chunk_rec *c = &r->chunks[i];
    const unsigned char *src = r->data + c->packed_offset;
    size_t n0 = nm_pack_stream0_size(c->transform, c->size), n1 = c->size - n0;
    unsigned char *s0 = scratch, *s1 = c->transform == NM_PACK_RAW ? dst : scratch + n0;
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if (XXH3_64bits(src, c->packed_size) != c->packed_hash) {
        snprintf(why, why_size, "packed bytes damaged (checksum mismatch)");
        return -1;
    }
#endif
    if (n0) {
        size_t got = ZSTD_decompressDCtx(dctx, s0, n0, src, c->frame0);
        if (ZSTD_isError(got) || got != n0) {
            snprintf(why, why_size, "corrupt data (%s)", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
            return -1;
        }
    }
    size_t got = ZSTD_decompressDCtx(dctx, s1, n1, src + c->frame0, c->packed_size - c->frame0);
    if (ZSTD_isError(got) || got != n1) {
        snprintf(why, why_size, "corrupt data (%s)", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
        return -1;
    }
    if (c->transform != NM_PACK_RAW)
        nm_pack_join(c->transform, s0, s1, c->size, dst);
    if (XXH3_64bits(dst, c->size) != c->hash) {
        snprintf(why, why_size, "checksum mismatch");
        return -1;
    }
    return 0;
}

/* Unpacking is pipelined: while the workers decode window k+1 into one set of buffers, one
 * task writes window k (in order, feeding the whole-file hash) from the other set. */
typedef struct unpack_job {
    const nm_pack_reader *r;
    uint32_t decode_first;    /* first chunk of the window being decoded */
    size_t decode_count;
    unsigned char **decode_buffers;
    int *decode_failed;
    char (*decode_why)[128];
    uint32_t write_first;     /* first chunk of the window being written */
    size_t write_count;       /* 0: nothing to write this round */
    unsigned char **write_buffers;
    nm_outfile *out;
    XXH3_state_t *whole;
    int write_failed;
    nm_error write_err;
    unsigned char **scratch;  /* per thread */
    ZSTD_DCtx **dctx;         /* per thread */
} unpack_job;

static void unpack_task(void *ctx, size_t task, int thread) {
    unpack_job *job = ctx;
    if (job->write_count > 0) {
        if (task == 0) {
            for (size_t k = 0; k < job->write_count && !job->write_failed; k++) {
                uint32_t size = job->r->chunks[job->write_first + k].size;
                XXH3_128bits_update(job->whole, job->write_buffers[k], size);
                if (job->out && nm_outfile_write(job->out, job->write_buffers[k], size, &job->write_err) != 0)
                    job->write_failed = 1;
            }
            return;
        }
        task--;
    }
    uint32_t i = job->decode_first + (uint32_t)task;
    job->decode_failed[task] = decode_chunk(job->r, i, job->dctx[thread], job->decode_buffers[task],
                                            job->scratch[thread], job->decode_why[task], sizeof job->decode_why[task]);
}

int nm_unpack(nm_pack_reader *r, const char *out_path, const nm_pack_options *opts, nm_error *err) {
    nm_pack_options o = opts ? *opts : (nm_pack_options){0};
    nm_pool *pool = nm_pool_create(o.threads);
    if (!pool)
        return nm_fail(err, "out of memory");
    int threads = nm_pool_threads(pool), rc = -1;
    size_t window = (size_t)threads * 2;
    uint32_t max_chunk = 1;
    for (uint32_t i = 0; i < r->n_chunks; i++)
        if (r->chunks[i].size > max_chunk)
            max_chunk = r->chunks[i].size;
    unsigned char **buffers[2] = {calloc(window, sizeof(unsigned char *)), calloc(window, sizeof(unsigned char *))};
    unsigned char **scratch = calloc((size_t)threads, sizeof *scratch);
    ZSTD_DCtx **dctx = calloc((size_t)threads, sizeof *dctx);
    int *failed = calloc(window, sizeof *failed);
    char(*why)[128] = calloc(window, sizeof *why);
    XXH3_state_t *whole = XXH3_createState();
    nm_outfile *out = NULL;
    nm_progress progress;
    nm_progress_start(&progress, out_path ? "unpack" : "test", r->n_chunks, r->original_size, o.quiet);
    if (!buffers[0] || !buffers[1] || !scratch || !dctx || !failed || !why || !whole) {
        nm_fail(err, "out of memory");
        goto done;
    }
    for (int b = 0; b < 2; b++)
        for (size_t k = 0; k < window; k++)
            if (!(buffers[b][k] = malloc(max_chunk))) {
                nm_fail(err, "out of memory");
                goto done;
            }
    for (int t = 0; t < threads; t++)
        if (!(scratch[t] = malloc(max_chunk)) || !(dctx[t] = ZSTD_createDCtx())) {
            nm_fail(err, "out of memory");
            goto done;
        }
    if (out_path && !(out = nm_outfile_create(out_path, o.outfile_flags, err)))
        goto done;
    XXH3_128bits_reset(whole);
    unpack_job job = {.r = r, .out = out, .whole = whole, .scratch = scratch, .dctx = dctx,
                      .decode_failed = failed, .decode_why = why};
    uint64_t done_bytes = 0;
    int current = 0;
    /* round j decodes window j and writes window j-1 */
    for (uint32_t first = 0;; first += (uint32_t)window) {
        size_t n = first < r->n_chunks ? (r->n_chunks - first < window ? r->n_chunks - first : window) : 0;
        job.decode_first = first;
        job.decode_count = n;
        job.decode_buffers = buffers[current];
        if (job.write_count == 0 && n == 0)
            break;
        nm_pool_run(pool, n + (job.write_count > 0), unpack_task, &job);
        if (job.write_failed) {
            *err = job.write_err;
            goto done;
        }
        if (job.write_count > 0) {
            for (size_t k = 0; k < job.write_count; k++)
                done_bytes += r->chunks[job.write_first + k].size;
            nm_progress_update(&progress, job.write_first + job.write_count, done_bytes);
        }
        for (size_t k = 0; k < n; k++)
            if (failed[k]) {
                char where[256];
                describe_chunk(r, first + (uint32_t)k, where, sizeof where);
                nm_fail(err, "%s: %s", where, why[k]);
                goto done;
            }
        job.write_first = first;
        job.write_count = n;
        job.write_buffers = buffers[current];
        current ^= 1;
    }
    nm_progress_finish(&progress);
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(whole));
    if (memcmp(canon.digest, r->whole_hash, 16) != 0) {
        nm_fail(err, "whole-file checksum mismatch (every chunk was intact: the header is damaged)");
        goto done;
    }
    rc = out ? nm_outfile_commit(out, err) : 0;
    out = NULL;
done:
    nm_progress_finish(&progress);
    nm_outfile_abort(out);
    for (int b = 0; b < 2; b++)
        for (size_t k = 0; buffers[b] && k < window; k++)
            free(buffers[b][k]);
    for (int t = 0; t < threads; t++) {
        if (scratch)
            free(scratch[t]);
        if (dctx)
            ZSTD_freeDCtx(dctx[t]);
    }
    free(buffers[0]);
    free(buffers[1]);
    free(scratch);
    free(dctx);
    free(failed);
    free(why);
    XXH3_freeState(whole);
    nm_pool_destroy(pool);
    return rc;
}

int nm_pack_extract(nm_pack_reader *r, const nm_pack_tensor *t, void **data, nm_error *err) {
    *data = NULL;
    unsigned char *buf = malloc(t->original_size ? t->original_size : 1);
    unsigned char *scratch = NULL;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint32_t max_chunk = 1;
    for (uint32_t k = 0; k < t->n_chunks; k++)
        if (r->chunks[t->first_chunk + k].size > max_chunk)
            max_chunk = r->chunks[t->first_chunk + k].size;
    scratch = malloc(max_chunk);
    if (!buf || !scratch || !dctx) {
        free(buf);
        free(scratch);
        ZSTD_freeDCtx(dctx);
        return nm_fail(err, "out of memory");
    }
    uint64_t pos = 0;
    for (uint32_t k = 0; k < t->n_chunks; k++) {
        uint32_t i = t->first_chunk + k;
        char why[128];
        if (decode_chunk(r, i, dctx, buf + pos, scratch, why, sizeof why) != 0) {
            char where[256];
            describe_chunk(r, i, where, sizeof where);
            free(buf);
            free(scratch);
            ZSTD_freeDCtx(dctx);
            return nm_fail(err, "%s: %s", where, why);
        }
        pos += r->chunks[i].size;
    }
    free(scratch);
    ZSTD_freeDCtx(dctx);
    *data = buf;
    return 0;
}
