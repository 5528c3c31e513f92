/* nomoat-quantize: llama-quantize's file types and per-tensor choices, byte-identical output,
 * streamed tensor by tensor on all cores. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cjson/cJSON.h>

#include "common/cli.h"
#include "common/error.h"
#include "formats/gguf.h"
#include "common/outfile.h"
#include "common/parallel.h"
#include "formats/quants.h"
#include "formats/tensor.h"
#include "kernels/dense.h"
#include "quantize/dataless.h"
#include "quantize/imatrix.h"
#include "quantize/optimize.h"
#include "quantize/recipe.h"
#include "verify/calibrate.h"

#define TOOL "nomoat-quantize"
#define TASK_ELEMENTS 65536              /* f32 scratch per task: 256 KiB, fits L2 */
#define BATCH_OUT_BYTES (8u << 20)       /* output buffered per pool run */
#define GPTQ_TASK_ROWS 256               /* error feedback: rows per task at most (scratch: 256 x ne0 floats) */
#define GPTQ_TASK_ROWS_MIN 64
#define QUANTIZATION_VERSION 2
#define CALIB_SEED 1                     /* --calibration-random's tokens */

typedef struct options {
    const char *in, *out, *type_name;
    const char *imatrix, *calibration;
    const char *calibration_label; /* the text, or what --calibration-random uses; NULL: no calibration */
    bool calibration_random;
    int threads, calibration_chunks;
    bool pure, leave_output, allow_requantize, dry_run, json, no_fsync, quiet, force, optimize;
    int output_type, token_embd_type;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: " TOOL " [options] IN.gguf OUT.gguf TYPE [THREADS]\n"
            "\n"
            "Quantizes a GGUF model the way llama-quantize does: the same per-tensor types, the same\n"
            "bytes. THREADS defaults to all cores. OUT.gguf appears only when complete.\n"
            "\n"
            "options:\n"
            "  --pure                     every eligible tensor gets TYPE's default type (no mixture,\n"
            "                             no fallback for rows that do not fit the block size)\n"
            "  --output-tensor-type T     type for output.weight\n"
            "  --token-embedding-type T   type for token_embd.weight\n"
            "  --leave-output-tensor      keep output.weight as it is\n"
            "  --imatrix FILE             importance matrix (GGUF from llama-imatrix, or legacy .dat)\n"
            "  --optimize                 same tensor types and file size, values closer to the input:\n"
            "                             every block's scales searched for the least (importance-\n"
            "                             weighted) squared error; without importance data, token_embd\n"
            "                             and layer 0 also carry each row's error onto later columns,\n"
            "                             from second moments the weights give; not byte-identical to\n"
            "                             llama-quantize\n"
            "  --calibration TEXT         with --optimize: run the model (the input, evaluated as\n"
            "                             nomoat-verify does) over TEXT, one layer at a time as the\n"
            "                             output reaches it; weigh each column's error by its mean\n"
            "                             squared input, as --imatrix would, and carry each row's\n"
            "                             error onto its later columns (GPTQ, from the inputs'\n"
            "                             second moments), then move single levels and scales\n"
            "                             while the expected output error falls; token_embd's error\n"
            "                             is weighed through layer 0 (a backward pass per context)\n"
            "  --calibration-random       with --optimize: the same, on random tokens of the model's\n"
            "                             vocabulary instead of a text (no data needed; seeded, so\n"
            "                             the same file every run)\n"
            "  --calibration-chunks N     contexts to evaluate (default 100; 0 = all of TEXT); each\n"
            "                             keeps its hidden state (context x embedding floats)\n"
            "  --allow-requantize         accept an already quantized input (loses quality)\n"
            "  --dry-run                  print the plan (per-tensor types and sizes), write nothing\n"
            "  --json                     print the plan or the summary as JSON on stdout\n"
            "  --no-fsync                 do not flush the output to disk (benchmarks, scratch work)\n"
            "  --force                    replace OUT.gguf if it exists\n"
            "  -q, --quiet                no progress bar, no summary\n"
            "  -h, --help                 this help\n"
            "\n"
            "TYPE (file types as llama-quantize names them):\n");
    for (const qt_ftype *ft = qt_ftype_list(); ft->name; ft++) {
        bool ok = nm_quantize_supported(ft->default_type);
        fprintf(f, "  %-8s %2u  %s%s\n", ft->name, ft->ftype, ft->note, ok ? "" : " (not in this build)");
    }
    fprintf(f, "T (tensor types):");
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++)
        if (ggml_type_get(t) && nm_quantize_supported(t))
            fprintf(f, " %s", ggml_type_name(t));
    fprintf(f, "\n");
}

static int die(const char *fmt, const char *arg) {
    fprintf(stderr, TOOL ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 1;
}

static int parse_tensor_type(const char *opt, const char *text, int *out) {
    int t = text ? ggml_type_from_name(text) : -1;
    if (t < 0 || !nm_quantize_supported((uint32_t)t)) {
        fprintf(stderr, TOOL ": %s: '%s' is not a tensor type this build can write (try F16, Q8_0, Q6_K, ...)\n", opt,
                text ? text : "");
        return -1;
    }
    *out = t;
    return 0;
}

/* Returns 0 to run, 1 for an error (message printed), 2 when --help was printed. */
static int parse_args(int argc, char **argv, options *o) {
    const char *pos[4];
    int npos = 0;
    bool options_done = false;
    *o = (options){.output_type = -1, .token_embd_type = -1, .calibration_chunks = 100};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (npos == 4)
                return die("too many arguments (%s); see --help", a);
            pos[npos++] = a;
            continue;
        }
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--") == 0)
            options_done = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 2;
        } else if (strcmp(a, "--pure") == 0)
            o->pure = true;
        else if (strcmp(a, "--optimize") == 0)
            o->optimize = true;
        else if (strcmp(a, "--calibration") == 0) {
            if (!next)
                return die("%s needs a text file", a);
            o->calibration = next;
            i++;
        } else if (strcmp(a, "--calibration-random") == 0) {
            o->calibration_random = true;
        } else if (strcmp(a, "--calibration-chunks") == 0) {
            char *end = NULL;
            long v = next ? strtol(next, &end, 10) : -1;
            if (!next || *end || end == next || v < 0 || v > 1 << 30)
                return die("--calibration-chunks needs a number of contexts (0 = all), not '%s'", next ? next : "");
            o->calibration_chunks = (int)v;
            i++;
        }
        else if (strcmp(a, "--leave-output-tensor") == 0)
            o->leave_output = true;
        else if (strcmp(a, "--allow-requantize") == 0)
            o->allow_requantize = true;
        else if (strcmp(a, "--dry-run") == 0)
            o->dry_run = true;
        else if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--no-fsync") == 0)
            o->no_fsync = true;
        else if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0)
            o->force = true;
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
            o->quiet = true;
        else if (strcmp(a, "--imatrix") == 0) {
            if (!next)
                return die("%s needs a file name", a);
            o->imatrix = next;
            i++;
        } else if (strcmp(a, "--output-tensor-type") == 0) {
            if (parse_tensor_type(a, next, &o->output_type) != 0)
                return 1;
            i++;
        } else if (strcmp(a, "--token-embedding-type") == 0) {
            if (parse_tensor_type(a, next, &o->token_embd_type) != 0)
                return 1;
            i++;
        } else
            return die("unknown option %s; see --help", a);
    }
    if (npos < 3) {
        usage(stderr);
        return 1;
    }
    if (o->calibration && o->calibration_random)
        return die("%s", "--calibration and --calibration-random both choose what to calibrate on; pass one");
    o->calibration_label = o->calibration ? o->calibration : o->calibration_random ? "random tokens" : NULL;
    if (o->calibration_label && !o->optimize)
        return die("%s belongs to --optimize (for llama-quantize's blocks, pass --imatrix)",
                   o->calibration ? "--calibration" : "--calibration-random");
    if (o->calibration_label && o->imatrix)
        return die("%s", "--calibration and --imatrix both give importance data; pass one");
    o->in = pos[0];
    o->out = pos[1];
    o->type_name = pos[2];
    o->threads = nm_cpu_count();
    if (npos == 4 && nm_parse_threads(pos[3], &o->threads) != 0)
        return die("THREADS must be a positive number or 0/auto, not '%s'", pos[3]);
    return 0;
}

/* ---- model facts for the mixture rules ---- */

static uint32_t kv_u32(const gguf_reader *g, const char *arch, const char *suffix, uint32_t dflt) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const gguf_value *v = gguf_get(g, key);
    if (!v)
        return dflt;
    switch (v->type) {
    case GGUF_TYPE_UINT32: return v->u32;
    case GGUF_TYPE_INT32: return v->i32 < 0 ? dflt : (uint32_t)v->i32;
    case GGUF_TYPE_UINT16: return v->u16;
    case GGUF_TYPE_UINT64: return v->u64 > UINT32_MAX ? dflt : (uint32_t)v->u64;
    case GGUF_TYPE_ARRAY: /* per-layer head counts: use the first layer's */
        if (v->arr.type != GGUF_TYPE_STRING && v->arr.count > 0) {
            int64_t x = gguf_array_i64(v, 0);
            return x < 0 || x > UINT32_MAX ? dflt : (uint32_t)x;
        }
        return dflt;
    default: return dflt;
    }
}

static void model_facts(const gguf_reader *g, const qt_tensor *t, size_t n, qt_model *m) {
    char arch[64] = "llama";
    const gguf_value *v = gguf_get(g, "general.architecture");
    if (v && v->type == GGUF_TYPE_STRING && v->str.len < sizeof arch) {
        memcpy(arch, v->str.ptr, v->str.len);
        arch[v->str.len] = '\0';
    }
    uint32_t layers_seen = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned l;
        if (sscanf(t[i].name, "blk.%u.", &l) == 1 && l < 1u << 20 && l + 1 > layers_seen)
            layers_seen = l + 1;
    }
    *m = (qt_model){0};
    m->falcon = strcmp(arch, "falcon") == 0;
    m->n_layer = kv_u32(g, arch, "block_count", layers_seen);
    m->n_expert = kv_u32(g, arch, "expert_count", 0);
    uint32_t n_head = kv_u32(g, arch, "attention.head_count", 0);
    uint32_t n_head_kv = kv_u32(g, arch, "attention.head_count_kv", n_head);
    m->n_gqa = n_head && n_head_kv ? n_head / n_head_kv : 0;
    m->llama_70b = strcmp(arch, "llama") == 0 && m->n_layer == 80 && n_head != n_head_kv;
}

/* ---- the quantization of one tensor, in batches of rows over the pool ---- */

typedef struct tensor_job {
    const char *name;
    uint32_t in_type, out_type;
    int64_t ne0, ne1, ne2; /* row length, rows per matrix, matrices per imatrix slice cycle */
    size_t in_row, out_row;
    const unsigned char *src;
    unsigned char *dst; /* batch buffer */
    int64_t row0, batch_rows, rows_per_task;
    const float *imatrix; /* ne0 * ne2 weights, or NULL */
    const float *weights; /* --optimize: ne0 * ne2 error weights, or NULL (imatrix or none) */
    const qo_gptq *gptq;  /* --calibration: the factor of the inputs' second moments, or NULL */
    float **scratch;      /* per thread, rows_per_task * ne0 floats */
    bool optimize;
    atomic_bool failed;
    pthread_mutex_t lock;
    int64_t err_row;
    nm_error err;
    struct run_state *rs; /* the previous batch to write as task 0 (see write_converted) */
    bool write_first;
} tensor_job;

static void record_error(tensor_job *j, int64_t row, const nm_error *e) {
    pthread_mutex_lock(&j->lock);
    if (!atomic_load(&j->failed) || row < j->err_row) {
        j->err_row = row;
        j->err = *e;
    }
    atomic_store(&j->failed, true);
    pthread_mutex_unlock(&j->lock);
}

/* Rows [r, r + n) of the tensor as f32 (a view into the mapping or converted into buf). */
static const float *rows_as_f32(const tensor_job *j, int64_t r, int64_t n, float *buf) {
    const unsigned char *p = j->src + (size_t)r * j->in_row;
    size_t ne0 = (size_t)j->ne0;
    if (j->in_type == GGML_TYPE_F32 && ((uintptr_t)p & 3) == 0)
        return (const float *)p;
    for (int64_t k = 0; k < n; k++, p += j->in_row) {
        float *d = buf + (size_t)k * ne0;
        if (j->in_type == GGML_TYPE_F32) memcpy(d, p, ne0 * sizeof(float));
        else nm_dequantize_row(j->in_type, p, d, j->ne0); /* F16/BF16 at any alignment too */
    }
    return buf;
}

/* The kernel reports rows relative to the call ("row 3: ..."); drop that, we name the row. */
static const char *strip_row_prefix(const char *msg) {
    if (strncmp(msg, "row ", 4) == 0) {
        const char *p = msg + 4;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p[0] == ':' && p[1] == ' ')
            return p + 2;
    }
    return msg;
}

static int flush_pending(struct run_state *rs, nm_error *err);

static int quantize_some(const tensor_job *j, const float *f, void *d, int64_t n, const float *imat,
                         const float *wts, nm_error *e) {
    if (j->optimize && j->gptq)
        return qo_quantize_rows_gptq(j->out_type, f, d, n, j->ne0, imat, wts, j->gptq, e);
    if (j->optimize)
        return qo_quantize_rows(j->out_type, f, d, n, j->ne0, imat, wts, e);
    return nm_quantize_rows(j->out_type, f, d, n, j->ne0, imat, e);
}

static void quantize_task(void *ctx, size_t task, int thread) {
    tensor_job *j = ctx;
    if (j->write_first) {
        if (task == 0) { /* one thread writes the previous batch while the others quantize */
            flush_pending(j->rs, NULL);
            return;
        }
        task--;
    }
    if (atomic_load_explicit(&j->failed, memory_order_relaxed))
        return;
    int64_t begin = j->row0 + (int64_t)task * j->rows_per_task;
    int64_t end = begin + j->rows_per_task;
    if (end > j->row0 + j->batch_rows)
        end = j->row0 + j->batch_rows;
    for (int64_t r = begin; r < end;) {
        int64_t matrix = r / j->ne1;
        int64_t stop = (matrix + 1) * j->ne1 < end ? (matrix + 1) * j->ne1 : end;
        const float *imat = j->imatrix ? j->imatrix + (size_t)(matrix % j->ne2) * (size_t)j->ne0 : NULL;
        const float *f = rows_as_f32(j, r, stop - r, j->scratch[thread]);
        unsigned char *d = j->dst + (size_t)(r - j->row0) * j->out_row;
        nm_error e;
        const float *wts = j->weights ? j->weights + (size_t)(matrix % j->ne2) * (size_t)j->ne0 : NULL;
        if (quantize_some(j, f, d, stop - r, imat, wts, &e) != 0) {
            /* find the first row that cannot be stored, to name it */
            for (int64_t k = 0; k < stop - r; k++) {
                if (quantize_some(j, f + (size_t)k * (size_t)j->ne0, d, 1, imat, wts, &e) != 0) {
                    record_error(j, r + k, &e);
                    return;
                }
            }
            record_error(j, r, &e);
            return;
        }
        r = stop;
    }
}

/* Drops input pages already used from this process (they stay in the page cache), so resident
 * memory stays near one batch instead of growing to the whole mapped model. */
static void release_input(const void *data, size_t size) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    uintptr_t begin = ((uintptr_t)data + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)data + size) & ~(uintptr_t)(page - 1);
    if (end > begin)
        madvise((void *)begin, end - begin, MADV_DONTNEED);
}

/* Output goes through two batch buffers: while the pool quantizes batch k into one, one of its
 * threads writes batch k-1 from the other (the writer is only ever called by one thread). */
typedef struct run_state {
    nm_pool *pool;
    gguf_writer *w;
    float **scratch;
    unsigned char *buf[2];
    size_t cap[2];
    int cur;                /* buffer the next batch goes into */
    size_t pending_size;    /* bytes of buf[cur ^ 1] still to write, 0 if none */
    int write_rc;           /* result of the last overlapped write */
    const gguf_reserved *fill; /* batches go into this reserved tensor, fill_at bytes in; NULL: append */
    uint64_t fill_at;
    qo_gptq layer0[QD_LAYER0_INPUTS]; /* plain --optimize: the factor of each of layer 0's inputs,
                                       * kept while a later tensor reads that input */
    nm_error write_err;
    nm_progress progress;
    uint64_t done_bytes, done_items;
} run_state;

/* Writes the pending batch; err NULL: keep the failure in rs for the caller to report. */
static int flush_pending(run_state *rs, nm_error *err) {
    if (rs->pending_size == 0)
        return 0;
    nm_error *e = err ? err : &rs->write_err;
    int rc = rs->fill ? gguf_writer_fill(rs->w, rs->fill, rs->fill_at, rs->buf[rs->cur ^ 1], rs->pending_size, e)
                      : gguf_writer_write(rs->w, rs->buf[rs->cur ^ 1], rs->pending_size, e);
    if (rs->fill)
        rs->fill_at += rs->pending_size;
    rs->pending_size = 0;
    if (!err)
        rs->write_rc = rc;
    return rc;
}

static int write_converted(run_state *rs, const gguf_tensor_info *in, const qt_tensor *t, const float *imatrix,
                           bool optimize, const float *weights, const qo_gptq *gptq, nm_error *err) {
    tensor_job j = {
        .optimize = optimize, .weights = weights,
        .name = t->name, .in_type = in->type, .out_type = t->new_type,
        .ne0 = in->ne[0], .ne1 = in->ne[1], .ne2 = in->ne[2],
        .src = in->data, .imatrix = imatrix, .scratch = rs->scratch, .rs = rs,
    };
    int64_t nrows = in->ne[1] * in->ne[2] * in->ne[3];
    if (ggml_row_size(in->type, (uint64_t)j.ne0, &j.in_row) != 0 ||
        ggml_row_size(t->new_type, (uint64_t)j.ne0, &j.out_row) != 0)
        return nm_fail(err, "tensor %s: rows of %lld values do not fit %s", t->name, (long long)j.ne0,
                       ggml_type_name(t->new_type));
    if (nrows == 0 || j.ne0 == 0)
        return 0;
    if (optimize && gptq && in->ne[2] == 1 && qo_supported(t->new_type))
        j.gptq = gptq;
    j.rows_per_task = TASK_ELEMENTS / j.ne0 > 0 ? TASK_ELEMENTS / j.ne0 : 1;
    if (j.gptq) { /* rows that share each pass over the factor and H: as many as keep every thread busy */
        const int64_t share = nrows / nm_pool_threads(rs->pool);
        j.rows_per_task = share < GPTQ_TASK_ROWS_MIN ? GPTQ_TASK_ROWS_MIN
                          : share > GPTQ_TASK_ROWS   ? GPTQ_TASK_ROWS
                                                     : share;
    }
    int64_t batch_rows = (int64_t)(BATCH_OUT_BYTES / j.out_row);
    int64_t min_batch = j.rows_per_task * nm_pool_threads(rs->pool);
    if (batch_rows < min_batch)
        batch_rows = min_batch;
    batch_rows -= batch_rows % j.rows_per_task;
    size_t need = (size_t)batch_rows * j.out_row;
    pthread_mutex_init(&j.lock, NULL);
    atomic_init(&j.failed, false);
    int rc = 0;
    for (int64_t r = 0; r < nrows; r += batch_rows) {
        j.row0 = r;
        j.batch_rows = nrows - r < batch_rows ? nrows - r : batch_rows;
        if (need > rs->cap[rs->cur]) { /* never the pending buffer: that is buf[cur ^ 1] */
            free(rs->buf[rs->cur]);
            rs->buf[rs->cur] = malloc(need);
            rs->cap[rs->cur] = rs->buf[rs->cur] ? need : 0;
            if (!rs->buf[rs->cur]) {
                rc = nm_fail(err, "out of memory (%zu bytes for tensor %s)", need, t->name);
                break;
            }
        }
        j.dst = rs->buf[rs->cur];
        j.write_first = rs->pending_size > 0;
        size_t tasks = (size_t)((j.batch_rows + j.rows_per_task - 1) / j.rows_per_task);
        nm_pool_run(rs->pool, tasks + (j.write_first ? 1 : 0), quantize_task, &j);
        if (j.write_first && rs->write_rc != 0) {
            *err = rs->write_err;
            rc = -1;
            break;
        }
        if (atomic_load(&j.failed)) {
            rc = nm_fail(err, "tensor %s, row %lld: %s", t->name, (long long)j.err_row,
                         strip_row_prefix(j.err.msg));
            break;
        }
        release_input(j.src + (size_t)r * j.in_row, (size_t)j.batch_rows * j.in_row);
        rs->pending_size = (size_t)j.batch_rows * j.out_row;
        rs->cur ^= 1;
        rs->done_bytes += (uint64_t)j.batch_rows * j.in_row;
        nm_progress_update(&rs->progress, rs->done_items, rs->done_bytes);
    }
    pthread_mutex_destroy(&j.lock);
    return rc;
}

/* ---- plan ---- */

typedef struct plan {
    qt_tensor *t;
    size_t n;
    const float **imatrix; /* per planned tensor (same order), or NULL entries */
    float **weights;       /* --optimize: error weights per planned tensor (owned), or NULL entries */
    size_t n_imatrix_used;
    uint64_t in_bytes, out_bytes, n_elements;
    size_t n_converted;
} plan;

static void plan_free(plan *p) {
    if (p->weights)
        for (size_t i = 0; i < p->n; i++)
            free(p->weights[i]);
    free(p->weights);
    free(p->t);
    free(p->imatrix);
}

/* --optimize without importance data: the matrices that read an RMSNorm's output see inputs
 * whose column j is scaled by that norm's weight g_j, so an error in column j costs about g_j^2
 * times as much. NULL (plain squared error) for the others. */
static int norm_weights(const gguf_reader *g, const gguf_tensor_info *ti, float **out, nm_error *err) {
    static const struct {
        const char *suffix, *norm;
    } readers[] = {{"attn_q.weight", "attn_norm.weight"}, {"attn_k.weight", "attn_norm.weight"},
                   {"attn_v.weight", "attn_norm.weight"}, {"ffn_gate.weight", "ffn_norm.weight"},
                   {"ffn_up.weight", "ffn_norm.weight"}};
    char name[GGUF_MAX_NAME + 32];
    *out = NULL;
    if (ti->ne[2] != 1 || ti->ne[3] != 1)
        return 0;
    if (strcmp(ti->name, "output.weight") == 0) {
        snprintf(name, sizeof name, "output_norm.weight");
    } else {
        unsigned layer;
        int used = 0;
        if (sscanf(ti->name, "blk.%u.%n", &layer, &used) != 1 || used == 0)
            return 0;
        size_t k = 0;
        while (k < sizeof readers / sizeof readers[0] && strcmp(ti->name + used, readers[k].suffix) != 0)
            k++;
        if (k == sizeof readers / sizeof readers[0])
            return 0;
        snprintf(name, sizeof name, "blk.%u.%s", layer, readers[k].norm);
    }
    const gguf_tensor_info *norm = NULL;
    for (size_t i = 0; i < gguf_tensor_count(g) && !norm; i++)
        if (strcmp(gguf_tensor(g, i)->name, name) == 0)
            norm = gguf_tensor(g, i);
    if (!norm || norm->ne[0] != ti->ne[0] || norm->ne[1] != 1 || norm->ne[2] != 1 || norm->ne[3] != 1 ||
        (norm->type != GGML_TYPE_F32 && norm->type != GGML_TYPE_F16 && norm->type != GGML_TYPE_BF16))
        return 0;
    float *w = malloc((size_t)ti->ne[0] * sizeof *w);
    if (!w)
        return nm_fail(err, "out of memory");
    nm_dequantize_row(norm->type, norm->data, w, ti->ne[0]);
    for (int64_t j = 0; j < ti->ne[0]; j++) {
        if (!isfinite(w[j])) { /* the norm itself is broken: weigh evenly */
            free(w);
            return 0;
        }
        w[j] = w[j] * w[j];
    }
    *out = w;
    return 0;
}

static int make_plan(const gguf_reader *g, const qt_ftype *ft, const options *o, const qt_imatrix *im, plan *p,
                     nm_error *err) {
    memset(p, 0, sizeof *p);
    p->n = gguf_tensor_count(g);
    p->t = calloc(p->n ? p->n : 1, sizeof *p->t);
    p->imatrix = calloc(p->n ? p->n : 1, sizeof *p->imatrix);
    p->weights = calloc(p->n ? p->n : 1, sizeof *p->weights);
    if (!p->t || !p->imatrix || !p->weights)
        return nm_fail(err, "out of memory");
    for (size_t i = 0; i < p->n; i++) {
        const gguf_tensor_info *ti = gguf_tensor(g, i);
        p->t[i] = (qt_tensor){.name = ti->name, .n_dims = ti->n_dims, .type = ti->type, .index = i};
        memcpy(p->t[i].ne, ti->ne, sizeof ti->ne);
    }
    qt_model model;
    model_facts(g, p->t, p->n, &model);
    qt_options qo = {.pure = o->pure, .leave_output = o->leave_output, .has_imatrix = im != NULL,
                     .output_type = o->output_type, .token_embd_type = o->token_embd_type,
                     .only_copy = qt_ftype_is_copy(ft)};
    if (qt_plan(p->t, p->n, &model, ft, &qo, err) != 0)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        const qt_tensor *t = &p->t[i];
        const gguf_tensor_info *ti = gguf_tensor(g, t->index);
        uint64_t nel = (uint64_t)ti->ne[0] * (uint64_t)ti->ne[1] * (uint64_t)ti->ne[2] * (uint64_t)ti->ne[3];
        size_t out_size = ti->size;
        p->n_elements += nel;
        p->in_bytes += ti->size;
        if (t->convert) {
            const ggml_type_info *in_info = ggml_type_get(t->type);
            if (!in_info)
                return nm_fail(err, "tensor %s has the unknown type %u", t->name, t->type);
            if (in_info->quantized && !o->allow_requantize)
                return nm_fail(err,
                               "tensor %s is already quantized (%s): quantizing it again to %s compounds the rounding "
                               "error; start from the F32/F16/BF16 model, or pass --allow-requantize",
                               t->name, in_info->name, ggml_type_name(t->new_type));
            if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16 && t->type != GGML_TYPE_BF16 &&
                !nm_dequantize_supported(t->type))
                return nm_fail(err, "tensor %s: cannot read its type %s to requantize it", t->name, in_info->name);
            if (!nm_quantize_supported(t->new_type))
                return nm_fail(err, "tensor %s: this build cannot write %s", t->name, ggml_type_name(t->new_type));
            if (ggml_tensor_size(t->new_type, ti->ne, &out_size) != 0)
                return nm_fail(err, "tensor %s: size overflow", t->name);
            p->n_converted++;
            const bool needs_imatrix = qt_tensor_requires_imatrix(t->name, t->new_type, ft->ftype);
            if (needs_imatrix && !im)
                return nm_fail(err, "%s needs an importance matrix (--imatrix FILE) for tensor %s (%s): without one "
                               "the result is garbage, so llama-quantize refuses it too",
                               ft->name, t->name, ggml_type_name(t->new_type));
            if (im && ggml_type_get(t->new_type)->quantized) {
                const qt_imatrix_entry *e = qt_imatrix_find(im, t->name);
                if (e) {
                    if ((uint64_t)e->n == (uint64_t)ti->ne[0] * (uint64_t)ti->ne[2]) {
                        p->imatrix[i] = e->values;
                        p->n_imatrix_used++;
                    } else if (strcmp(t->name, "token_embd.weight") != 0) {
                        return nm_fail(err,
                                       "importance matrix %s: entry %s has %zu values, the tensor needs %llu "
                                       "(ne[0] x ne[2]); was it computed for another model?",
                                       o->imatrix, t->name, e->n, (unsigned long long)((uint64_t)ti->ne[0] * (uint64_t)ti->ne[2]));
                    }
                }
            }
            if (needs_imatrix && !p->imatrix[i])
                return nm_fail(err, "importance matrix %s has no usable entry for tensor %s, which %s (%s) needs",
                               o->imatrix, t->name, ft->name, ggml_type_name(t->new_type));
        }
        if (o->optimize && t->convert && !p->imatrix[i] && ggml_type_get(t->new_type)->quantized &&
            norm_weights(g, ti, &p->weights[i], err) != 0)
            return -1;
        p->out_bytes += out_size;
    }
    return 0;
}

static void shape_text(const int64_t ne[4], uint32_t n_dims, char *buf, size_t size) {
    int k = snprintf(buf, size, "%lld", (long long)ne[0]);
    for (uint32_t d = 1; d < n_dims && d < 4 && k > 0 && (size_t)k < size; d++)
        k += snprintf(buf + k, size - (size_t)k, " x %lld", (long long)ne[d]);
}

static double bpw(uint64_t bytes, uint64_t elements) { return elements ? 8.0 * (double)bytes / (double)elements : 0; }

static cJSON *plan_json(const gguf_reader *g, const plan *p, const qt_ftype *ft, const options *o) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "input", o->in);
    cJSON_AddStringToObject(root, "output", o->out);
    cJSON_AddStringToObject(root, "type", ft->name);
    cJSON_AddNumberToObject(root, "file_type", ft->ftype);
    cJSON_AddBoolToObject(root, "pure", o->pure);
    if (o->imatrix)
        cJSON_AddStringToObject(root, "imatrix", o->imatrix);
    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    for (size_t i = 0; i < p->n; i++) {
        const qt_tensor *t = &p->t[i];
        const gguf_tensor_info *ti = gguf_tensor(g, t->index);
        size_t out_size = ti->size;
        if (t->convert)
            ggml_tensor_size(t->new_type, ti->ne, &out_size);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", t->name);
        cJSON *shape = cJSON_AddArrayToObject(x, "shape");
        for (uint32_t d = 0; d < ti->n_dims && d < 4; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ti->ne[d]));
        cJSON_AddStringToObject(x, "type_in", ggml_type_name(t->type));
        cJSON_AddStringToObject(x, "type_out", ggml_type_name(t->new_type));
        cJSON_AddBoolToObject(x, "converted", t->convert);
        cJSON_AddBoolToObject(x, "fallback", t->fallback);
        cJSON_AddBoolToObject(x, "imatrix", p->imatrix[i] != NULL);
        cJSON_AddNumberToObject(x, "bytes_in", (double)ti->size);
        cJSON_AddNumberToObject(x, "bytes_out", (double)out_size);
        cJSON_AddItemToArray(arr, x);
    }
    cJSON_AddNumberToObject(root, "tensor_count", (double)p->n);
    cJSON_AddNumberToObject(root, "converted_count", (double)p->n_converted);
    cJSON_AddNumberToObject(root, "bytes_in", (double)p->in_bytes);
    cJSON_AddNumberToObject(root, "bytes_out", (double)p->out_bytes);
    cJSON_AddNumberToObject(root, "bpw_out", bpw(p->out_bytes, p->n_elements));
    return root;
}

static void print_plan(const gguf_reader *g, const plan *p, const qt_ftype *ft, const options *o) {
    char a[32], b[32], shape[96];
    printf("%s -> %s as %s (general.file_type %u)%s\n", o->in, o->out, ft->name, ft->ftype, o->pure ? ", pure" : "");
    printf("%5s  %-34s %-18s %-5s    %-5s %10s %10s\n", "#", "tensor", "shape", "in", "out", "in size", "out size");
    for (size_t i = 0; i < p->n; i++) {
        const qt_tensor *t = &p->t[i];
        const gguf_tensor_info *ti = gguf_tensor(g, t->index);
        size_t out_size = ti->size;
        if (t->convert)
            ggml_tensor_size(t->new_type, ti->ne, &out_size);
        shape_text(ti->ne, ti->n_dims, shape, sizeof shape);
        printf("%5zu  %-34s %-18s %-5s %s %-5s %10s %10s%s%s\n", i + 1, t->name, shape, ggml_type_name(t->type),
               t->convert ? "->" : "  ", ggml_type_name(t->new_type), nm_format_bytes(ti->size, a, sizeof a),
               nm_format_bytes(out_size, b, sizeof b), t->fallback ? "  (fallback)" : "",
               p->imatrix[i] ? "  (imatrix)" : "");
    }
    printf("total: %zu tensors, %zu converted; %s -> %s (%.2f bits per weight)\n", p->n, p->n_converted,
           nm_format_bytes(p->in_bytes, a, sizeof a), nm_format_bytes(p->out_bytes, b, sizeof b),
           bpw(p->out_bytes, p->n_elements));
}

/* --calibration: the importance data comes from the evaluator's pass over the text, streamed a
 * layer at a time (verify/calibrate.h) as the output reaches each layer's tensors: the mean
 * squared inputs fill the importance entries the plan points to, and the second moments of each
 * distinct input become the GPTQ factor its matrices share, released once they are written. */
typedef struct calib_input {
    qo_gptq g;
    double *h; /* as emitted, until factored into g */
    int64_t n;
    int refs;  /* matrices reading it not yet written */
} calib_input;

typedef struct calib_stream {
    verify_calib *vc;
    qt_imatrix *im;
    size_t n;
    calib_input **in;  /* per weight of the pass (verify_calib_weight_at), or NULL */
    bool *written;     /* per weight: its tensor is behind us */
    calib_input *last; /* the previous emitted weight's input */
    nm_pool *pool;     /* the output's, for the factorisations */
} calib_stream;

static ptrdiff_t calib_find(const calib_stream *cs, const char *name) {
    for (size_t i = 0; cs && i < cs->n; i++)
        if (strcmp(verify_calib_weight_at(cs->vc, i)->name, name) == 0)
            return (ptrdiff_t)i;
    return -1;
}

static void calib_input_unref(calib_input *in) {
    if (in && --in->refs == 0) {
        qo_gptq_free(&in->g);
        free(in->h);
        free(in);
    }
}

static int calib_emit(void *user, const char *name, const float *mean_sq, int64_t n_in, const double *gram,
                      bool gram_shared, int n_chunks, int n_ctx, nm_error *err) {
    calib_stream *cs = user;
    const ptrdiff_t k = calib_find(cs, name);
    const qt_imatrix_entry *e = qt_imatrix_find(cs->im, name);
    if (k < 0 || !e || e->n != (size_t)n_in)
        return nm_fail(err, "the calibration pass reported %s, which it did not announce", name);
    memcpy(e->values, mean_sq, (size_t)n_in * sizeof(float));
    if (!gram)
        return 0;
    if (!gram_shared)
        cs->last = NULL;
    if (cs->written[k]) /* its tensor went out before its layer ran (it is not quantized) */
        return 0;
    if (!cs->last) {
        calib_input *in = calloc(1, sizeof *in);
        if (!in || !(in->h = malloc((size_t)n_in * (size_t)n_in * sizeof(double)))) {
            free(in);
            return nm_fail(err, "out of memory for the second moments of %s's input", name);
        }
        memcpy(in->h, gram, (size_t)n_in * (size_t)n_in * sizeof(double));
        in->n = n_in;
        cs->last = in;
    }
    cs->in[k] = cs->last;
    cs->last->refs++;
    return 0;
}

/* The factor for tensor name (NULL: none), running the pass up to its layer first. */
static int calib_factor(calib_stream *cs, const char *name, const qo_gptq **out, nm_error *err) {
    *out = NULL;
    const ptrdiff_t k = calib_find(cs, name);
    if (k < 0)
        return 0;
    cs->last = NULL;
    if (verify_calib_run_to(cs->vc, verify_calib_weight_at(cs->vc, (size_t)k)->layer, calib_emit, cs, err) != 0)
        return -1;
    calib_input *in = cs->in[k];
    if (!in)
        return 0;
    if (in->h) {
        double *h = in->h;
        in->h = NULL;
        if (qo_gptq_prepare(&in->g, h, in->n, cs->pool) < 0)
            return nm_fail(err, "out of memory factoring the second moments of %s's input", name);
    }
    *out = in->g.v ? &in->g : NULL;
    return 0;
}

/* token_embd's H with calibration: its readers' (h, from qd_embedding_h) and layer 0's Jacobian over
 * the calibration contexts (verify_calib_embedding_h), each scaled to a trace of 1, added. The
 * Jacobian's sketch (one probe per context) is noisy with few contexts; the readers' H, made from
 * the weights alone, steadies it. On the fixture (Q4_K_M, KLD against llama-quantize --imatrix):
 * readers' H 0.803, the Jacobian's alone 0.809 with 10 contexts and 0.783 with 100, both 0.793
 * with 10. h is left as it is when layer 0's shape is not one the backward pass knows. */
static int calib_embedding_h(calib_stream *cs, double *h, int64_t n, nm_error *err) {
    double *hj = calloc((size_t)n * (size_t)n, sizeof *hj);
    if (!hj)
        return nm_fail(err, "out of memory for token_embd's second moments");
    const int rc = verify_calib_embedding_h(cs->vc, hj, n, err);
    double tr = 0, tj = 0;
    for (int64_t a = 0; rc == 0 && a < n; a++) {
        tr += h[a * n + a];
        tj += hj[a * n + a];
    }
    if (rc == 0 && tr > 0 && tj > 0)
        for (int64_t a = 0; a < n; a++)
            for (int64_t b = a; b < n; b++)
                h[a * n + b] = h[a * n + b] / tr + hj[a * n + b] / tj;
    free(hj);
    return rc < 0 ? -1 : 0;
}

/* Whether plan tensor i is the output head's matrix while layers' tensors follow it (a file may
 * store output.weight first): its statistics would then need a whole forward pass ahead of the
 * streamed one (verify_calib_run_to; 23.5 s of 2 threads for 4 contexts of 512 on the
 * TinyLlama-shaped model). Such a tensor is written last, into the place reserved for it. */
static bool calib_defer(const calib_stream *cs, const plan *p, size_t i) {
    const ptrdiff_t k = calib_find(cs, p->t[i].name);
    if (k < 0)
        return false;
    const int head = verify_calib_weight_at(cs->vc, (size_t)k)->layer; /* the last weight's is the largest */
    if (head != verify_calib_weight_at(cs->vc, verify_calib_weight_count(cs->vc) - 1)->layer)
        return false;
    for (size_t j = i + 1; j < p->n; j++) {
        const ptrdiff_t kj = calib_find(cs, p->t[j].name);
        if (p->t[j].convert && kj >= 0 && verify_calib_weight_at(cs->vc, (size_t)kj)->layer < head)
            return true;
    }
    return false;
}

static void calib_done_with(calib_stream *cs, const char *name) {
    const ptrdiff_t k = calib_find(cs, name);
    if (k < 0)
        return;
    cs->written[k] = true;
    calib_input_unref(cs->in[k]);
    cs->in[k] = NULL;
}

static void calib_stream_close(calib_stream *cs) {
    for (size_t i = 0; cs->in && i < cs->n; i++)
        calib_input_unref(cs->in[i]);
    free(cs->in);
    free(cs->written);
    verify_calib_close(cs->vc);
    *cs = (calib_stream){0};
}

/* Opens the pass and announces its importance entries (zero until their layer has run), so that
 * the plan can point at them. */
static qt_imatrix *calib_stream_open(const options *o, calib_stream *cs, nm_error *err) {
    qt_imatrix *im = calloc(1, sizeof *im);
    if (!im || !(im->dataset = strdup(o->calibration_label))) {
        free(im);
        nm_fail(err, "out of memory");
        return NULL;
    }
    /* gram: the second moments for GPTQ; head: output.weight's too */
    if (o->calibration_random)
        cs->vc = verify_calib_open_random(o->in, 0, o->calibration_chunks ? o->calibration_chunks : 100, CALIB_SEED,
                                          o->threads, o->quiet, true, true, err);
    else
        cs->vc = verify_calib_open(o->in, o->calibration, NULL, 0, o->calibration_chunks, o->threads, o->quiet, true,
                                   true, err);
    if (!cs->vc)
        goto fail;
    cs->n = verify_calib_weight_count(cs->vc);
    cs->im = im;
    im->chunk_count = (uint32_t)verify_calib_chunks(cs->vc);
    cs->in = calloc(cs->n + 1, sizeof *cs->in);
    cs->written = calloc(cs->n + 1, sizeof *cs->written);
    im->entries = calloc(cs->n + 1, sizeof *im->entries);
    if (!cs->in || !cs->written || !im->entries)
        goto oom;
    for (size_t i = 0; i < cs->n; i++) {
        const verify_calib_weight *w = verify_calib_weight_at(cs->vc, i);
        qt_imatrix_entry *e = &im->entries[im->n_entries];
        e->name = strdup(w->name);
        e->values = calloc((size_t)w->n_in, sizeof(float));
        e->n = (size_t)w->n_in;
        im->n_entries++;
        if (!e->name || !e->values)
            goto oom;
    }
    return im;
oom:
    nm_fail(err, "out of memory");
fail:
    qt_imatrix_free(im);
    calib_stream_close(cs);
    return NULL;
}

/* ---- output ---- */

static bool dropped_key(const char *key) {
    return strncmp(key, "split.", 6) == 0 || strcmp(key, "general.quantization_version") == 0 ||
           strcmp(key, "general.file_type") == 0;
}

/* COPY keeps the input's general.file_type; without one, llama.cpp's guess from the most common
 * tensor type, flagged 1024 ("guessed"). */
static uint32_t copied_file_type(const gguf_reader *g) {
    const gguf_value *v = gguf_get(g, "general.file_type");
    if (v && v->type == GGUF_TYPE_UINT32)
        return v->u32;
    static const struct {
        uint32_t type, ftype;
    } guess[] = {{GGML_TYPE_F32, 0}, {GGML_TYPE_F16, 1}, {GGML_TYPE_BF16, 32}, {GGML_TYPE_Q4_0, 2},
                 {GGML_TYPE_Q4_1, 3}, {GGML_TYPE_Q5_0, 8}, {GGML_TYPE_Q5_1, 9}, {GGML_TYPE_Q8_0, 7},
                 {GGML_TYPE_Q2_K, 10}, {GGML_TYPE_Q3_K, 12}, {GGML_TYPE_Q4_K, 15}, {GGML_TYPE_Q5_K, 17},
                 {GGML_TYPE_Q6_K, 18}};
    size_t counts[GGML_TYPE_COUNT] = {0}, best = 0;
    uint32_t best_type = GGML_TYPE_F32;
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        uint32_t t = gguf_tensor(g, i)->type;
        if (t < GGML_TYPE_COUNT && ++counts[t] > best) {
            best = counts[t];
            best_type = t;
        }
    }
    for (size_t i = 0; i < sizeof guess / sizeof guess[0]; i++)
        if (guess[i].type == best_type)
            return guess[i].ftype | 1024;
    return 0 | 1024;
}

/* Quantizes plan tensor i and writes it (appended, or into rs->fill). */
static int convert_tensor(run_state *rs, const gguf_reader *g, const plan *p, size_t i, const options *o,
                          calib_stream *cs, nm_error *err) {
    const qt_tensor *t = &p->t[i];
    const gguf_tensor_info *ti = gguf_tensor(g, t->index);
    const qo_gptq *gptq = NULL;
    if (cs && calib_factor(cs, t->name, &gptq, err) != 0) {
        nm_error_prefix(err, "calibration on %s", o->calibration_label);
        return -1;
    }
    /* token_embd's weighting by its readers, and without importance data layer 0's inputs over
     * the vocabulary (quantize/dataless.h), each input's factor made once for all its readers */
    qo_gptq own = {0}, *f = &own;
    const int input = !cs && !p->imatrix[i] ? qd_layer0_input(t->name) : -1;
    if (input >= 0)
        f = &rs->layer0[input];
    const bool eligible = o->optimize && ti->ne[2] == 1 && qo_supported(t->new_type);
    const bool embedding = strcmp(t->name, "token_embd.weight") == 0;
    if (eligible && !f->v && (embedding || input >= 0)) {
        double *h = NULL;
        if ((embedding ? qd_embedding_h(g, ti->ne[0], rs->pool, &h, err)
                       : qd_layer0_h(g, t->name, ti->ne[0], rs->pool, &h, err)) != 0)
            return -1;
        if (h && embedding && cs && calib_embedding_h(cs, h, ti->ne[0], err) != 0) {
            free(h);
            nm_error_prefix(err, "calibration on %s", o->calibration_label);
            return -1;
        }
        if (h && qo_gptq_prepare(f, h, ti->ne[0], rs->pool) < 0) {
            qo_gptq_free(f);
            return nm_fail(err, "out of memory factoring the second moments of %s's inputs", t->name);
        }
    }
    if (eligible && f->v && f->n == ti->ne[0]) /* a reader of another width (a malformed file) gets none */
        gptq = f;
    const int wrc = write_converted(rs, ti, t, p->imatrix[i], o->optimize, p->weights[i], gptq, err);
    bool later = false; /* another tensor still to come reads the same input */
    for (size_t j = i + 1; input >= 0 && j < p->n && !later; j++)
        later = p->t[j].convert && qd_layer0_input(p->t[j].name) == input;
    if (!later)
        qo_gptq_free(f);
    return wrc;
}

static int write_output(const gguf_reader *g, const plan *p, const qt_ftype *ft, const options *o,
                        const qt_imatrix *im, calib_stream *cs, nm_error *err) {
    gguf_writer_options wo = {.outfile_flags = (o->force ? NM_OUT_FORCE : 0) | (o->no_fsync ? NM_OUT_NO_FSYNC : 0)};
    gguf_writer *w = gguf_writer_create(o->out, &wo, err);
    if (!w)
        return -1;
    run_state rs = {.w = w};
    int rc = -1;

    for (size_t i = 0; i < gguf_kv_count(g); i++)
        if (!dropped_key(gguf_kv_key(g, i)))
            gguf_writer_copy_kv(w, g, i);
    gguf_writer_set_u32(w, "general.quantization_version", QUANTIZATION_VERSION);
    gguf_writer_set_u32(w, "general.file_type", qt_ftype_is_copy(ft) ? copied_file_type(g) : ft->ftype);
    if (im && o->imatrix) { /* --calibration writes none: the file keeps the default mix's size */
        gguf_writer_set_string(w, "quantize.imatrix.file", o->imatrix, strlen(o->imatrix));
        if (im->dataset && im->dataset[0])
            gguf_writer_set_string(w, "quantize.imatrix.dataset", im->dataset, strlen(im->dataset));
        gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)im->n_entries);
        if (im->chunk_count > 0)
            gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", im->chunk_count);
    }
    for (size_t i = 0; i < p->n; i++) {
        const gguf_tensor_info *ti = gguf_tensor(g, p->t[i].index);
        if (gguf_writer_add_tensor(w, ti->name, p->t[i].new_type, ti->n_dims, ti->ne, err) != 0)
            goto out;
    }
    if (gguf_writer_begin_data(w, err) != 0)
        goto out;

    rs.pool = nm_pool_create(o->threads);
    if (!rs.pool) {
        nm_fail(err, "out of memory creating %d threads", o->threads);
        goto out;
    }
    int nt = nm_pool_threads(rs.pool);
    int64_t max_scratch = TASK_ELEMENTS;
    for (size_t i = 0; i < p->n; i++) /* --optimize: any tensor may get the error feedback's tasks */
        if (p->t[i].convert && p->t[i].ne[0] * (o->optimize ? GPTQ_TASK_ROWS : 1) > max_scratch)
            max_scratch = p->t[i].ne[0] * (o->optimize ? GPTQ_TASK_ROWS : 1);
    if (cs)
        cs->pool = rs.pool;
    rs.scratch = calloc((size_t)nt, sizeof *rs.scratch);
    if (!rs.scratch) {
        nm_fail(err, "out of memory");
        goto out;
    }
    for (int k = 0; k < nt; k++)
        if (!(rs.scratch[k] = malloc((size_t)max_scratch * sizeof(float)))) {
            nm_fail(err, "out of memory (%lld floats of scratch)", (long long)max_scratch);
            goto out;
        }

    nm_progress_start(&rs.progress, "quantizing", p->n, p->in_bytes, o->quiet);
    gguf_reserved head;
    size_t deferred = p->n; /* the tensor written last, into its reserved place; p->n: none */
    for (size_t i = 0; i < p->n; i++) {
        const qt_tensor *t = &p->t[i];
        const gguf_tensor_info *ti = gguf_tensor(g, t->index);
        if (t->convert && deferred == p->n && calib_defer(cs, p, i)) {
            if (flush_pending(&rs, err) != 0 || gguf_writer_reserve(w, &head, err) != 0)
                goto out;
            deferred = i;
            continue;
        }
        if (t->convert) {
            if (convert_tensor(&rs, g, p, i, o, cs, err) != 0)
                goto out;
        } else {
            const unsigned char *data = ti->data;
            if (flush_pending(&rs, err) != 0)
                goto out;
            for (size_t off = 0; off < ti->size; off += BATCH_OUT_BYTES) {
                size_t n = ti->size - off < BATCH_OUT_BYTES ? ti->size - off : BATCH_OUT_BYTES;
                if (gguf_writer_write(w, data + off, n, err) != 0)
                    goto out;
                release_input(data + off, n);
                rs.done_bytes += n;
                nm_progress_update(&rs.progress, rs.done_items, rs.done_bytes);
            }
        }
        if (cs)
            calib_done_with(cs, t->name);
        rs.done_items = i + 1;
        nm_progress_update(&rs.progress, rs.done_items, rs.done_bytes);
    }
    if (flush_pending(&rs, err) != 0)
        goto out;
    if (deferred < p->n) {
        rs.fill = &head;
        if (convert_tensor(&rs, g, p, deferred, o, cs, err) != 0 || flush_pending(&rs, err) != 0)
            goto out;
        calib_done_with(cs, p->t[deferred].name);
        if (rs.fill_at != head.size) {
            nm_fail(err, "tensor %s: %llu of its %zu bytes written", p->t[deferred].name,
                    (unsigned long long)rs.fill_at, head.size);
            goto out;
        }
    }
    nm_progress_finish(&rs.progress);
    rc = gguf_writer_finish(w, err);
    w = NULL;
out:
    if (rc != 0)
        nm_progress_finish(&rs.progress);
    gguf_writer_abort(w);
    for (int k = 0; k < QD_LAYER0_INPUTS; k++)
        qo_gptq_free(&rs.layer0[k]);
    if (rs.scratch)
        for (int k = 0; k < nm_pool_threads(rs.pool); k++)
            free(rs.scratch[k]);
    free(rs.scratch);
    free(rs.buf[0]);
    free(rs.buf[1]);
    if (rs.pool)
        nm_pool_destroy(rs.pool);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    int prc = parse_args(argc, argv, &o);
    if (prc)
        return prc == 2 ? 0 : 1;
    nm_outfile_install_signal_handlers();
#ifdef __GLIBC__
    /* --calibration allocates and frees tens to hundreds of MB per task and per matrix: kept in
     * the heap (no mappings, no trimming) instead of mapped, zeroed and unmapped each time, whose
     * page faults and TLB shootdowns across the threads had been 4% of the calibrated
     * TinyLlama-shaped Q4_K_M's CPU time. On a 2-layer one: system time 6.4 -> 2.3 s, minor
     * faults 935 k -> 285 k, peak RSS 927 -> 998 MB, same bytes. */
    if (o.calibration_label) {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, INT_MAX);
    }
#endif

    const qt_ftype *ft = qt_ftype_from_name(o.type_name);
    if (!ft) {
        fprintf(stderr, TOOL ": unknown type '%s'; one of:", o.type_name);
        for (const qt_ftype *f = qt_ftype_list(); f->name; f++)
            fprintf(stderr, " %s", f->name);
        fprintf(stderr, "\n");
        return 1;
    }
    if (!nm_quantize_supported(ft->default_type)) {
        fprintf(stderr, TOOL ": %s needs %s blocks, which this build cannot write yet\n", ft->name,
                ggml_type_name(ft->default_type));
        return 1;
    }
    if (!o.dry_run && !o.force && access(o.out, F_OK) == 0) {
        fprintf(stderr, TOOL ": %s exists; pass --force to replace it\n", o.out);
        return 1;
    }

    double t0 = nm_now();
    nm_error err = {{0}};
    int status = 1;
    qt_imatrix *im = NULL;
    calib_stream calib = {0};
    plan p = {0};
    gguf_reader *g = gguf_open(o.in, &err);
    if (!g) {
        nm_error_prefix(&err, "%s", o.in);
        goto fail;
    }
    if (o.imatrix && !(im = qt_imatrix_load(o.imatrix, &err)))
        goto fail;
    if (o.calibration_label && !o.dry_run && !(im = calib_stream_open(&o, &calib, &err))) {
        nm_error_prefix(&err, "calibration on %s", o.calibration_label);
        goto fail;
    }
    if (make_plan(g, ft, &o, im, &p, &err) != 0) {
        nm_error_prefix(&err, "%s", o.in);
        goto fail;
    }
    if (o.dry_run) {
        if (o.json) {
            cJSON *j = plan_json(g, &p, ft, &o);
            char *s = cJSON_Print(j);
            if (s)
                puts(s);
            free(s);
            cJSON_Delete(j);
        } else {
            print_plan(g, &p, ft, &o);
        }
        status = 0;
        goto done;
    }
    if (write_output(g, &p, ft, &o, im, calib.vc ? &calib : NULL, &err) != 0)
        goto fail;
    double secs = nm_now() - t0;
    if (o.json) {
        cJSON *j = plan_json(g, &p, ft, &o);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "threads", o.threads);
        cJSON_AddNumberToObject(j, "imatrix_tensors", (double)p.n_imatrix_used);
        char *s = cJSON_Print(j);
        if (s)
            puts(s);
        free(s);
        cJSON_Delete(j);
    }
    if (!o.quiet) {
        char a[32], b[32];
        fprintf(stderr, TOOL ": wrote %s: %s, %zu tensors (%zu converted%s), %s -> %s (%.2f bpw), %.2f s, %d threads\n",
                o.out, ft->name, p.n, p.n_converted, im ? ", imatrix" : "", nm_format_bytes(p.in_bytes, a, sizeof a),
                nm_format_bytes(p.out_bytes, b, sizeof b), bpw(p.out_bytes, p.n_elements), secs, o.threads);
        if (im && p.n_imatrix_used < p.n_converted)
            fprintf(stderr, TOOL ": note: %zu of %zu converted tensors had no importance data (output.weight and "
                            "token_embd.weight usually have none)\n",
                    p.n_converted - p.n_imatrix_used, p.n_converted);
    }
    status = 0;
    goto done;
fail:
    qt_message_escape(&err);
    fprintf(stderr, TOOL ": %s\n", err.msg);
done:
    plan_free(&p);
    qt_imatrix_free(im);
    calib_stream_close(&calib);
    if (g)
        gguf_close(g);
    return status;
}
