/* quantize/optimize.c: the searched blocks are never worse than llama.cpp's under the measure they
 * minimise, and clearly better overall; GPTQ's rows never have a larger output error than the
 * searched rows. Run with arguments `compare F32.gguf DEFAULT.gguf OPTIMIZED.gguf` it checks two
 * files nomoat-quantize wrote (tests/quantize/test_optimize.sh): same tensors, types, shapes,
 * offsets and file size, and per tensor an error of the optimized file no larger than the
 * default's (weights as --optimize uses them without importance data: g^2 of the RMSNorm a matrix
 * reads, else 1; token_embd's and layer 0's under the second moments of quantize/dataless.h); with `layout DEFAULT.gguf OPTIMIZED.gguf` only the first part. The AVX2 and
 * AVX-512 level kernels give the portable ones' bits (levels, errors, scans of many scales, sums,
 * IQ4_NL's levels) on blocks of every shape the search makes, including zeros, ties and
 * out-of-range scales. The types whose blocks are not searched get rows no worse under their column weights. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/parallel.h"
#include "formats/gguf.h"
#include "formats/quants.h"
#include "formats/quants_iq4.h"
#include "formats/tensor.h"
#include "quantize/dataless.h"
#include "quantize/optimize.h"
#include "quantize/optimize_levels.h"

static const uint32_t types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                 GGML_TYPE_Q8_0, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
                                 GGML_TYPE_IQ4_XS};
/* Types whose blocks are not searched: --optimize gives llama.cpp's quantizer its column weights
 * as the importance matrix and keeps the better row. */
static const uint32_t unsearched[] = {GGML_TYPE_Q2_K, GGML_TYPE_IQ4_NL};

/* Deterministic pseudo-normal values with a few outliers (weights look like this). */
static uint64_t rng = 88172645463325252ull;
static double uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(void) { return (float)(sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform())); }

static void fill(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.02f * normal() * (uniform() < 0.01 ? 8.0f : 1.0f);
}

static double row_error(uint32_t type, const float *x, const uint8_t *q, int64_t n, const float *w) {
    return qo_weighted_error(type, x, q, 1, n, w);
}

static void searched_blocks_beat_llamacpp(void **state) {
    (void)state;
    enum { ROWS = 6, N = 512 };
    float *x = malloc(ROWS * N * sizeof *x), imat[N];
    uint8_t *a = malloc(ROWS * N * 2), *b = malloc(ROWS * N * 2);
    fill(x, ROWS * N);
    for (int j = 0; j < N; j++)
        imat[j] = (float)(uniform() * uniform() * 4) + (j % 97 == 0 ? 0.0f : 0.001f); /* a few dead columns */
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const uint32_t t = types[k];
        size_t rs;
        assert_int_equal(ggml_row_size(t, N, &rs), 0);
        for (int with_im = 0; with_im < 2; with_im++) {
            const float *im = with_im ? imat : NULL;
            nm_error err;
            assert_int_equal(nm_quantize_rows(t, x, a, ROWS, N, im, &err), 0);
            assert_int_equal(qo_quantize_rows(t, x, b, ROWS, N, im, NULL, &err), 0);
            double ea = 0, eb = 0;
            for (int r = 0; r < ROWS; r++) {
                /* the measure it minimises: unweighted, or the imatrix (dead columns floored) */
                float w[N];
                double mean = 0;
                for (int j = 0; j < N; j++)
                    mean += imat[j];
                mean /= N;
                for (int j = 0; j < N; j++)
                    w[j] = !im ? 1.0f : imat[j] > (float)(1e-3 * mean) ? imat[j] : (float)(1e-3 * mean);
                const double ra = row_error(t, x + r * N, a + r * rs, N, w);
                const double rb = row_error(t, x + r * N, b + r * rs, N, w);
                assert_true(rb <= ra);
                ea += ra;
                eb += rb;
            }
            print_message("%-5s %s: error %.4g -> %.4g (%.3fx)\n", ggml_type_name(t), im ? "imatrix" : "plain  ", ea,
                          eb, eb / ea);
            assert_true(eb < 0.99 * ea); /* the search must find something llama.cpp's heuristics do not */
        }
    }
    free(x);
    free(a);
    free(b);
}

static void unsearched_types_use_the_weights(void **state) {
    (void)state;
    enum { ROWS = 6, N = 512 };
    float *x = malloc(ROWS * N * sizeof *x), wts[N];
    uint8_t *a = malloc(ROWS * N * 2), *b = malloc(ROWS * N * 2);
    fill(x, ROWS * N);
    for (int j = 0; j < N; j++)
        wts[j] = (float)(uniform() * uniform() * 4) + 0.001f;
    for (size_t k = 0; k < sizeof unsearched / sizeof unsearched[0]; k++) {
        const uint32_t t = unsearched[k];
        size_t rs;
        nm_error err;
        assert_int_equal(ggml_row_size(t, N, &rs), 0);
        assert_int_equal(nm_quantize_rows(t, x, a, ROWS, N, NULL, &err), 0);
        assert_int_equal(qo_quantize_rows(t, x, b, ROWS, N, NULL, wts, &err), 0);
        double ea = 0, eb = 0;
        for (int r = 0; r < ROWS; r++) {
            const double ra = row_error(t, x + r * N, a + r * rs, N, wts);
            const double rb = row_error(t, x + r * N, b + r * rs, N, wts);
            assert_true(rb <= ra);
            ea += ra;
            eb += rb;
        }
        print_message("%-6s weighted error %.4g -> %.4g (%.3fx)\n", ggml_type_name(t), ea, eb, eb / ea);
        assert_true(eb < 0.99 * ea);
    }
    free(x);
    free(a);
    free(b);
}

static void gptq_rows_beat_searched_rows(void **state) {
    (void)state;
    enum { ROWS = 7, N = 512 }; /* rows not a multiple of the 4-row tiles; two 256-column batches */
    /* inputs with correlated columns: x = z A, so H = A^T A (mean over z ~ N(0, 1)) */
    double *A = malloc((size_t)N * N * sizeof *A), *H = calloc((size_t)N * N, sizeof *H);
    for (int i = 0; i < N * N; i++)
        A[i] = (i / N == i % N ? 1.0 : 0.0) + 0.15 * normal();
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++)
                s += A[k * N + i] * A[k * N + j];
            H[i * N + j] = s;
        }
    double *Hc = malloc((size_t)N * N * sizeof *Hc);
    memcpy(Hc, H, (size_t)N * N * sizeof *H);
    qo_gptq G;
    assert_int_equal(qo_gptq_prepare(&G, Hc, N, NULL), 0);
    for (int i = 0; i < N; i++) /* the factor: V Vᵀ = H + D, V upper */
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++)
                s += G.v[i * N + k] * G.v[j * N + k];
            if (j < i)
                assert_true(G.v[i * N + j] == 0);
            assert_true(fabs(s - H[i * N + j] - (i == j ? G.damp[i] : 0)) <= 1e-9 * (1 + fabs(H[i * N + j])));
        }
    float *x = malloc(ROWS * N * sizeof *x), *deq = malloc(N * sizeof *deq);
    uint8_t *a = malloc(ROWS * N * 2), *b = malloc(ROWS * N * 2), *d = malloc(ROWS * N * 2);
    uint8_t *c = malloc(ROWS * N * 2);
    fill(x, ROWS * N);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const uint32_t t = types[k];
        size_t rs;
        nm_error err;
        assert_int_equal(ggml_row_size(t, N, &rs), 0);
        assert_int_equal(qo_quantize_rows(t, x, a, ROWS, N, NULL, NULL, &err), 0);
        assert_int_equal(qo_quantize_rows_gptq(t, x, b, ROWS, N, NULL, NULL, &G, &err), 0);
        assert_int_equal(nm_quantize_rows(t, x, d, ROWS, N, NULL, &err), 0);
        G.refine = false; /* the feedback alone */
        assert_int_equal(qo_quantize_rows_gptq(t, x, c, ROWS, N, NULL, NULL, &G, &err), 0);
        G.refine = true;
        double ea = 0, eb = 0, ec = 0;
        for (int r = 0; r < ROWS; r++) {
            double e2[4];
            for (int v = 0; v < 4; v++) {
                nm_dequantize_row(t, (v == 0 ? a : v == 1 ? b : v == 2 ? d : c) + r * rs, deq, N);
                double e = 0;
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < N; j++)
                        e += ((double)x[r * N + i] - deq[i]) * H[i * N + j] * ((double)x[r * N + j] - deq[j]);
                e2[v] = e;
            }
            assert_true(e2[1] <= e2[2] * (1 + 1e-9)); /* never worse than llama.cpp's row (the fallback) */
            ea += e2[0];
            eb += e2[1];
            ec += e2[3];
        }
        print_message("%-5s output error %.4g -> %.4g with GPTQ, %.4g refined (%.3fx, %.3fx)\n", ggml_type_name(t), ea,
                      ec, eb, ec / ea, eb / ea);
        assert_true(ec < 0.95 * ea);
        assert_true(eb < 0.97 * ec); /* the refinement's moves: dequantized, they lower the cost */
    }
    qo_gptq_free(&G);
    free(A);
    free(H);
    free(x);
    free(deq);
    free(a);
    free(b);
    free(c);
    free(d);
}

/* The factor of any size (the data movement works in bands and tiles of 64), from H's upper
 * triangle only (the lower one holds NaN), the same on a pool of two threads as on none. */
static void gptq_factor_any_size(void **state) {
    (void)state;
    static const int sizes[] = {1, 2, 63, 64, 100, 130};
    nm_pool *pool = nm_pool_create(2);
    assert_non_null(pool);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int n = sizes[si];
        double *H = malloc((size_t)n * n * sizeof *H), *h1 = malloc((size_t)n * n * sizeof *h1);
        double *h2 = malloc((size_t)n * n * sizeof *h2);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                H[i * n + j] = j < i ? NAN : i == j ? 1.0 + 0.1 * (i % 7) : 0.3 * normal() / n;
        memcpy(h1, H, (size_t)n * n * sizeof *H);
        memcpy(h2, H, (size_t)n * n * sizeof *H);
        qo_gptq g1, g2;
        assert_int_equal(qo_gptq_prepare(&g1, h1, n, NULL), 0);
        assert_int_equal(qo_gptq_prepare(&g2, h2, n, pool), 0);
        assert_memory_equal(g1.v, g2.v, (size_t)n * n * sizeof *H);
        for (int i = 0; i < n; i++) {
            assert_memory_equal(g1.h + i * g1.ldh, g2.h + i * g2.ldh, (size_t)n * sizeof *H);
            for (int j = 0; j < n; j++) {
                const double hij = j < i ? H[j * n + i] : H[i * n + j];
                double s = 0;
                for (int k = 0; k < n; k++)
                    s += g1.v[i * n + k] * g1.v[j * n + k];
                if (j < i)
                    assert_true(g1.v[i * n + j] == 0);
                const double want = hij + (i == j ? g1.damp[i] : 0);
                assert_true(fabs(s - want) <= 1e-12 * (1 + fabs(want)));
                assert_true(g1.h[i * g1.ldh + j] == want);
            }
        }
        qo_gptq_free(&g1);
        qo_gptq_free(&g2);
        free(H);
    }
    nm_pool_destroy(pool);
}

/* ---- compare mode ---- */

static const gguf_tensor_info *norm_of(const gguf_reader *g, const char *name) {
    static const char *const reads_attn[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight"};
    static const char *const reads_ffn[] = {"ffn_gate.weight", "ffn_up.weight"};
    char buf[96];
    unsigned layer;
    int used = 0;
    if (strcmp(name, "output.weight") == 0)
        return gguf_find_tensor(g, "output_norm.weight");
    if (sscanf(name, "blk.%u.%n", &layer, &used) != 1 || used == 0)
        return NULL;
    for (int k = 0; k < 3; k++)
        if (strcmp(name + used, reads_attn[k]) == 0) {
            snprintf(buf, sizeof buf, "blk.%u.attn_norm.weight", layer);
            return gguf_find_tensor(g, buf);
        }
    for (int k = 0; k < 2; k++)
        if (strcmp(name + used, reads_ffn[k]) == 0) {
            snprintf(buf, sizeof buf, "blk.%u.ffn_norm.weight", layer);
            return gguf_find_tensor(g, buf);
        }
    return NULL;
}

/* The error of tq against tf as --optimize weighs it when it has the inputs' second moments h
 * (n x n, both triangles): Σ over rows of dᵀ h d, d the row's error. */
static double h_error(const double *h, const gguf_tensor_info *tf, const gguf_tensor_info *tq) {
    const int64_t n = tf->ne[0], rows = tf->ne[1];
    double *d = malloc((size_t)n * sizeof *d), sum = 0;
    float *deq = malloc((size_t)n * sizeof *deq);
    size_t row_size = 0;
    assert_non_null(d);
    assert_non_null(deq);
    assert_int_equal(ggml_row_size(tq->type, (uint64_t)n, &row_size), 0);
    for (int64_t r = 0; r < rows; r++) {
        nm_dequantize_row(tq->type, (const uint8_t *)tq->data + (size_t)r * row_size, deq, n);
        for (int64_t j = 0; j < n; j++)
            d[j] = (double)deq[j] - ((const float *)tf->data)[r * n + j];
        for (int64_t a = 0; a < n; a++) {
            double s = 0;
            for (int64_t b = 0; b < n; b++)
                s += h[a * n + b] * d[b];
            sum += d[a] * s;
        }
    }
    free(d);
    free(deq);
    return sum;
}

static const float *f32_data(const gguf_reader *f, const char *name, int64_t ne0, int64_t ne1) {
    const gguf_tensor_info *t = gguf_find_tensor(f, name);
    return t && t->type == GGML_TYPE_F32 && t->ne[0] == ne0 && t->ne[1] == ne1 ? t->data : NULL;
}

static void add_outer(double *h, const double *x, int64_t n) {
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++)
            h[a * n + b] += x[a] * x[b];
}

/* The second moments --optimize gives a tensor without importance data (quantize/dataless.h),
 * rebuilt here in plain loops from the F32 file, or NULL for the column weights alone:
 * token_embd: Σ diag(g) WᵀW diag(g) over layer 0's attn_q/k/v (attn_norm's g), ffn_gate/up
 * (ffn_norm's g); layer 0's matrices: their inputs over the vocabulary's rows e (all of them
 * here), x = g ⊙ e / rms(e) with attn_norm's g for attn_q/k/v, ffn_norm's for ffn_gate/up; the
 * attention output's input, head h's part W_v x of its KV head h / (heads / KV heads); ffn_down's,
 * silu(W_gate x) · (W_up x). */
static double *dataless_h(const gguf_reader *f, const char *name, int64_t n) {
    static const char *const readers[][2] = {{"blk.0.attn_q.weight", "blk.0.attn_norm.weight"},
                                             {"blk.0.attn_k.weight", "blk.0.attn_norm.weight"},
                                             {"blk.0.attn_v.weight", "blk.0.attn_norm.weight"},
                                             {"blk.0.ffn_gate.weight", "blk.0.ffn_norm.weight"},
                                             {"blk.0.ffn_up.weight", "blk.0.ffn_norm.weight"}};
    const gguf_tensor_info *emb = gguf_find_tensor(f, "token_embd.weight");
    const int64_t d = emb->ne[0], vocab = emb->ne[1];
    double *h = calloc((size_t)(n * n), sizeof *h), *x = malloc((size_t)(n > d ? n : d) * 4 * sizeof *x);
    assert_non_null(h);
    assert_non_null(x);
    if (strcmp(name, "token_embd.weight") == 0) {
        for (int k = 0; k < 5; k++) {
            const gguf_tensor_info *wt = gguf_find_tensor(f, readers[k][0]);
            const float *w = f32_data(f, readers[k][0], d, wt ? wt->ne[1] : 0), *g = f32_data(f, readers[k][1], d, 1);
            assert_true(w && g);
            for (int64_t i = 0; i < wt->ne[1]; i++) {
                for (int64_t j = 0; j < d; j++)
                    x[j] = (double)w[i * d + j] * g[j];
                add_outer(h, x, d);
            }
        }
        free(x);
        return h;
    }
    const gguf_value *hv = gguf_get(f, "llama.attention.head_count"), *kvv = gguf_get(f, "llama.attention.head_count_kv");
    const gguf_value *epsv = gguf_get(f, "llama.attention.layer_norm_rms_epsilon");
    assert_true(hv && kvv && epsv);
    const int64_t heads = hv->u32, kv_heads = kvv->u32;
    const gguf_tensor_info *vt = gguf_find_tensor(f, "blk.0.attn_v.weight"), *gt = gguf_find_tensor(f, "blk.0.ffn_gate.weight");
    const int64_t kv = vt->ne[1], ff = gt->ne[1], head_dim = kv / kv_heads;
    const float *wv = f32_data(f, "blk.0.attn_v.weight", d, kv), *wg = f32_data(f, "blk.0.ffn_gate.weight", d, ff);
    const float *wu = f32_data(f, "blk.0.ffn_up.weight", d, ff), *e = f32_data(f, "token_embd.weight", d, vocab);
    int which = -1; /* 0 attention input, 1 attention output's, 2 FFN input, 3 ffn_down's */
    for (int k = 0; k < 5; k++)
        if (strcmp(name, readers[k][0]) == 0)
            which = k < 3 ? 0 : 2;
    which = strcmp(name, "blk.0.attn_output.weight") == 0 ? 1 : strcmp(name, "blk.0.ffn_down.weight") == 0 ? 3 : which;
    if (which < 0) {
        free(h);
        free(x);
        return NULL;
    }
    const float *g = f32_data(f, which < 2 ? "blk.0.attn_norm.weight" : "blk.0.ffn_norm.weight", d, 1);
    assert_true(wv && wg && wu && e && g && vocab <= 8192);
    double *a = malloc((size_t)d * sizeof *a);
    assert_non_null(a);
    for (int64_t t = 0; t < vocab; t++) {
        double ss = 0;
        for (int64_t j = 0; j < d; j++)
            ss += (double)e[t * d + j] * e[t * d + j];
        for (int64_t j = 0; j < d; j++)
            a[j] = e[t * d + j] / sqrt(ss / (double)d + epsv->f32) * g[j];
        if (which == 0 || which == 2)
            memcpy(x, a, (size_t)d * sizeof *x);
        else if (which == 1)
            for (int64_t c = 0; c < n; c++) {
                const int64_t row = (c / head_dim) / (heads / kv_heads) * head_dim + c % head_dim;
                double v = 0;
                for (int64_t j = 0; j < d; j++)
                    v += (double)wv[row * d + j] * a[j];
                x[c] = v;
            }
        else
            for (int64_t i = 0; i < ff; i++) {
                double p = 0, q = 0;
                for (int64_t j = 0; j < d; j++) {
                    p += (double)wg[i * d + j] * a[j];
                    q += (double)wu[i * d + j] * a[j];
                }
                x[i] = p / (1 + exp(-p)) * q;
            }
        add_outer(h, x, n);
    }
    free(a);
    free(x);
    return h;
}

static int compare(const char *f32_path, const char *def_path, const char *opt_path) {
    nm_error err;
    gguf_reader *f = gguf_open(f32_path, &err), *d = gguf_open(def_path, &err), *o = gguf_open(opt_path, &err);
    const bool layout_only = strcmp(f32_path, def_path) == 0; /* `layout A B`: types, shapes, size */
    if (!f || !d || !o) {
        fprintf(stderr, "compare: %s\n", err.msg);
        return 2;
    }
    int bad = 0;
    size_t n_better = 0, n_quant = 0;
    if (gguf_file_size(d, 0) != gguf_file_size(o, 0)) {
        printf("file sizes differ: %llu vs %llu\n", (unsigned long long)gguf_file_size(d, 0),
               (unsigned long long)gguf_file_size(o, 0));
        bad = 1;
    }
    if (gguf_tensor_count(d) != gguf_tensor_count(o) || gguf_tensor_count(d) != gguf_tensor_count(f)) {
        printf("tensor counts differ\n");
        return 1;
    }
    for (size_t i = 0; i < gguf_tensor_count(d); i++) {
        const gguf_tensor_info *td = gguf_tensor(d, i), *to = gguf_tensor(o, i);
        const gguf_tensor_info *tf = gguf_find_tensor(f, td->name);
        if (strcmp(td->name, to->name) != 0 || td->type != to->type || td->offset != to->offset ||
            td->size != to->size || memcmp(td->ne, to->ne, sizeof td->ne) != 0 || !tf ||
            (!layout_only && tf->type != GGML_TYPE_F32)) {
            printf("%s: name, type, shape or offset differ\n", td->name);
            bad = 1;
            continue;
        }
        if (!ggml_type_get(td->type)->quantized || layout_only)
            continue;
        const int64_t n = td->ne[0], rows = td->ne[1] * td->ne[2] * td->ne[3];
        float *w = malloc((size_t)n * sizeof *w);
        const gguf_tensor_info *norm = norm_of(f, td->name);
        double mean = 0;
        for (int64_t j = 0; j < n; j++) {
            w[j] = norm ? ((const float *)norm->data)[j] * ((const float *)norm->data)[j] : 1.0f;
            mean += w[j];
        }
        mean /= (double)n;
        for (int64_t j = 0; j < n; j++)
            w[j] = w[j] > (float)(1e-3 * mean) ? w[j] : (float)(1e-3 * mean);
        double ed = qo_weighted_error(td->type, tf->data, td->data, rows, n, w);
        double eo = qo_weighted_error(to->type, tf->data, to->data, rows, n, w);
        free(w);
        double *h = layout_only || td->ne[2] != 1 ? NULL : dataless_h(f, td->name, n);
        const bool moments = h != NULL;
        if (h) {
            ed = h_error(h, tf, td);
            eo = h_error(h, tf, to);
            free(h);
        }
        n_quant++;
        n_better += eo < ed;
        printf("%-28s %-5s error %.6g -> %.6g (%.3fx)%s\n", td->name, ggml_type_name(td->type), ed, eo, eo / ed,
               moments ? " (second moments)" : norm ? " (norm-weighted)" : "");
        if (!(eo <= ed * (1 + 1e-12))) {
            printf("  ^ larger than the default's\n");
            bad = 1;
        }
    }
    printf("%zu of %zu quantized tensors closer to the input\n", n_better, n_quant);
    if (n_better == 0 && !layout_only)
        bad = 1;
    gguf_close(f);
    gguf_close(d);
    gguf_close(o);
    return bad;
}

/* One trial of each kernel on the same input through both implementations: same levels, same
 * bits of every double. */
static void same_bits(const qo_levels *a, const qo_levels *b, const float *x, const float *w, int n, float d,
                      float m, int lo, int hi) {
    int8_t la[32], lb[32];
    uint8_t ua[32], ub[32];
    const double ea = a->sym_levels(x, w, n, d, lo, hi, la), eb = b->sym_levels(x, w, n, d, lo, hi, lb);
    assert_memory_equal(&ea, &eb, sizeof ea);
    assert_memory_equal(la, lb, (size_t)n);
    const int nmax = hi - lo;
    const double fa = a->asym_levels(x, w, n, d, m, nmax, ua), fb = b->asym_levels(x, w, n, d, m, nmax, ub);
    assert_memory_equal(&fa, &fb, sizeof fa);
    assert_memory_equal(ua, ub, (size_t)n);
    const float ds[4] = {d, -d, 0, 2 * d};
    double ra[4], rb[4];
    a->sym_errors(x, w, n, lo, hi, ds, 4, ra);
    b->sym_errors(x, w, n, lo, hi, ds, 4, rb);
    assert_memory_equal(ra, rb, sizeof ra);
    assert_memory_equal(&ra[0], &ea, sizeof ea); /* the scan's errors are sym_levels' */
    double sa[5], sb[5];
    double ta[3], tb[3], full[5];
    uint8_t u0[32];
    memcpy(u0, ua, (size_t)n); /* asym_levels' levels */
    const double ga = a->asym_levels_sums(x, w, n, d, m, nmax, ua, ta);
    const double gb = b->asym_levels_sums(x, w, n, d, m, nmax, ub, tb);
    assert_memory_equal(&ga, &fa, sizeof fa); /* asym_levels' error and levels */
    assert_memory_equal(&gb, &fa, sizeof fa);
    assert_memory_equal(ua, u0, (size_t)n);
    assert_memory_equal(ub, u0, (size_t)n);
    a->asym_sums(x, w, n, ua, full); /* and asym_sums' last three sums */
    assert_memory_equal(ta, full + 2, sizeof ta);
    assert_memory_equal(tb, full + 2, sizeof tb);
    const float ms[4] = {m, m, -m, 0};
    a->asym_errors(x, w, n, nmax, ds, ms, 4, ra);
    b->asym_errors(x, w, n, nmax, ds, ms, 4, rb);
    assert_memory_equal(ra, rb, sizeof ra);
    assert_memory_equal(&ra[0], &fa, sizeof fa); /* asym_levels' errors */
    a->sym_sums(x, w, n, la, sa);
    b->sym_sums(x, w, n, la, sb);
    assert_memory_equal(sa, sb, 2 * sizeof sa[0]);
    a->asym_sums(x, w, n, ua, sa);
    b->asym_sums(x, w, n, ua, sb);
    assert_memory_equal(sa, sb, sizeof sa);
    float v[16];
    for (int k = 0; k < 16; k++)
        v[k] = (float)nm_iq4nl_values[k];
    const double na = a->nl_levels(x, w, n, d, v, ua), nb = b->nl_levels(x, w, n, d, v, ub);
    assert_memory_equal(&na, &nb, sizeof na);
    assert_memory_equal(ua, ub, (size_t)n);
    if (isfinite(1.0f / d) && d != 0) /* each level is a nearest one, for the values as stored */
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 16; k++)
                assert_true(fabsf(x[i] - d * v[ua[i]]) <= fabsf(x[i] - d * v[k]));
}

static void simd_levels_match(const qo_levels *ref, const qo_levels *simd) {
    static const int ranges[][2] = {{-8, 7}, {-16, 15}, {-128, 127}, {-32, 31}, {0, 15}, {0, 31}, {0, 63}};
    float x[32], w[32];
    for (int trial = 0; trial < 200000; trial++) {
        const int n = trial % 3 == 0 ? 16 : 32, kind = trial % 7;
        fill(x, n);
        for (int i = 0; i < n; i++)
            w[i] = kind == 0 ? 1.0f : (float)(uniform() * 3);
        if (kind == 1) /* exact ties: values on half-steps of the scale */
            for (int i = 0; i < n; i++)
                x[i] = 0.01f * (float)((int)(uniform() * 40) - 20) * 0.5f;
        if (kind == 2)
            x[trial % n] = 0;
        float amax = 0;
        for (int i = 0; i < n; i++)
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const int *r = ranges[trial % 7];
        float d = amax / (float)(r[1] > 0 ? r[1] : 1) * (float)(0.5 + uniform());
        if (kind == 1)
            d = 0.01f;
        if (kind == 3) { /* no scale; one so small the quotients leave the range; a subnormal one
                          * whose reciprocal is infinite (0 x inf: NaN quotients) */
            d = trial % 3 == 0 ? 0.0f : trial % 3 == 1 ? 1e-30f : 1e-45f;
            x[trial % n] = 0;
        }
        if (kind == 4)
            d = -d;
        const float m = kind == 5 ? 0.0f : -amax * (float)uniform();
        same_bits(ref, simd, x, w, n, d, m, r[0], r[1]);
    }
}

static void avx2_levels_match_portable(void **state) {
    (void)state;
    if (!qo_levels_avx2()) {
        skip(); /* no AVX2 on this machine or architecture: only the portable kernels run */
        return;
    }
    simd_levels_match(qo_levels_ref(), qo_levels_avx2());
}

static void avx512_levels_match_portable(void **state) {
    (void)state;
    if (!qo_levels_avx512()) {
        skip(); /* no AVX-512 here (or NOMOAT_NO_AVX512 set) */
        return;
    }
    simd_levels_match(qo_levels_ref(), qo_levels_avx512());
}

/* `moments F32.gguf`: quantize/dataless.c's second moments for token_embd and each of layer 0's
 * matrices against dataless_h's plain loops (upper triangles, relative to the largest diagonal
 * entry: 1e-10, 1e-6 for token_embd, whose rows are scaled in floats); the names it does not
 * cover get none. */
static int moments(const char *f32_path) {
    static const char *const names[] = {"token_embd.weight",     "blk.0.attn_q.weight",   "blk.0.attn_k.weight",
                                        "blk.0.attn_v.weight",   "blk.0.attn_output.weight", "blk.0.ffn_gate.weight",
                                        "blk.0.ffn_up.weight",   "blk.0.ffn_down.weight", "blk.1.ffn_up.weight",
                                        "output.weight"};
    nm_error err;
    gguf_reader *f = gguf_open(f32_path, &err);
    nm_pool *pool = nm_pool_create(2);
    if (!f || !pool) {
        fprintf(stderr, "moments: %s\n", f ? "out of memory" : err.msg);
        return 2;
    }
    int bad = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const gguf_tensor_info *t = gguf_find_tensor(f, names[k]);
        const int64_t n = t->ne[0];
        double *got = NULL, *want = k < 8 ? dataless_h(f, names[k], n) : NULL;
        const int rc = k == 0 ? qd_embedding_h(f, n, pool, &got, &err) : qd_layer0_h(f, names[k], n, pool, &got, &err);
        if (rc != 0 || !got != !want) {
            printf("%s: %s\n", names[k], rc ? err.msg : got ? "moments where none belong" : "no moments");
            bad = 1;
        } else if (got) {
            double scale = 0, worst = 0;
            for (int64_t a = 0; a < n; a++)
                scale = fabs(want[a * n + a]) > scale ? fabs(want[a * n + a]) : scale;
            for (int64_t a = 0; a < n; a++)
                for (int64_t b = a; b < n; b++)
                    worst = fmax(worst, fabs(got[a * n + b] - want[a * n + b]) / scale);
            printf("%-26s n %5lld: largest difference %.3g of the largest diagonal entry\n", names[k], (long long)n, worst);
            bad |= !(worst <= (k == 0 ? 1e-6 : 1e-10)); /* token_embd's rows are scaled by g in floats */
        }
        free(got);
        free(want);
    }
    nm_pool_destroy(pool);
    gguf_close(f);
    return bad;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "moments") == 0)
        return moments(argv[2]);
    if (argc == 5 && strcmp(argv[1], "compare") == 0)
        return compare(argv[2], argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "layout") == 0)
        return compare(argv[2], argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(searched_blocks_beat_llamacpp),
        cmocka_unit_test(unsearched_types_use_the_weights),
        cmocka_unit_test(gptq_rows_beat_searched_rows),
        cmocka_unit_test(gptq_factor_any_size),
        cmocka_unit_test(avx2_levels_match_portable),
        cmocka_unit_test(avx512_levels_match_portable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
