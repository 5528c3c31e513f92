/* Layer 0's vector-Jacobian product (verify/jacobian.h): its forward pass in doubles, keeping
 * what the backward pass needs, then the backward pass. The matrix products run through
 * kernels/dense.h on the pool, one weight matrix dequantized to doubles at a time; attention
 * runs one group of heads sharing a key/value head per task. */
#include "verify/jacobian.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "formats/quants.h"
#include "kernels/dense.h"

bool vm_jacobian_supported(const vm_model *m) {
    if (m->n_layer < 1 || !m->family || m->n_head_kv < 1 || m->n_head % m->n_head_kv != 0)
        return false;
    const nm_arch *f = m->family;
    const vm_layer *L = &m->layers[0];
    const bool family = f->norm == NM_NORM_RMS && f->rope != NM_ROPE_NONE && f->ffn == NM_FFN_SWIGLU &&
                        !f->q_scaled_first && !f->ffn_up_gated && !m->parallel_residual && m->n_expert == 0;
    const bool hparams = m->q_scale == 0.0f && m->attn_softcap == 0.0f && m->embd_scale == 1.0f && m->n_swa == 0 &&
                         !m->pos_embd.data && !m->rope_long && !m->rope_short &&
                         m->yarn_ext == 0.0f && m->rope_attn_factor == 1.0f && m->n_rot % 2 == 0 &&
                         m->n_rot <= m->head_dim;
    const bool tensors = L->attn_norm.data && L->wq.data && L->wk.data && L->wv.data && L->wo.data &&
                         L->ffn_norm.data && L->gate.data && L->up.data && L->down.data && !L->wqkv.data;
    const bool extras = L->attn_norm_b || L->ffn_norm_b || L->q_norm || L->k_norm || L->attn_post_norm.data ||
                        L->ffn_post_norm.data;
    if (!family || !hparams || !tensors || extras)
        return false;
    const int64_t d = m->n_embd, nq = (int64_t)m->n_head * m->head_dim, kvd = (int64_t)m->n_head_kv * m->head_dim,
                  F = L->gate.n_out;
    return L->wq.n_in == d && L->wq.n_out == nq && L->wk.n_in == d && L->wk.n_out == kvd && L->wv.n_in == d &&
           L->wv.n_out == kvd && L->wo.n_in == nq && L->wo.n_out == d && L->gate.n_in == d && L->up.n_in == d &&
           L->up.n_out == F && L->down.n_in == F && L->down.n_out == d && L->attn_norm.n_in == d &&
           L->ffn_norm.n_in == d;
}

/* One context's values. Rows are tokens; q/dq hold n_head·head_dim per token, k/v/dk/dv
 * n_head_kv·head_dim. */
typedef struct jb {
    const vm_model *m;
    nm_pool *pool;
    int T, n_threads;
    int64_t d, nq, kvd, F;
    double *w;             /* the weight matrix of the current product, rows of n_in */
    float *wrow;           /* per thread: one row being dequantized */
    double *xt, *yt;       /* the forward products' transposed input and output */
    double *att_scratch;   /* per thread: T attention gradients */
    double *ga, *gf;       /* the norms' weights */
    double *xa, *ra, *q, *k, *v, *A, *o, *h0, *xf, *rf, *G, *U;
    double *dm, *dxf, *dh0, *dob, *dq, *dk, *dv, *dxa;
    size_t widest;         /* the longest row of any of the layer's matrices */
} jb;

/* ---- products ---- */

enum { DEQ_ROWS = 16 };

typedef struct deq_job {
    jb *b;
    const vm_weight *w;
} deq_job;

static void deq_task(void *ctx, size_t task, int thread) {
    const deq_job *j = ctx;
    const vm_weight *w = j->w;
    float *row = j->b->wrow + (size_t)thread * j->b->widest;
    const int64_t r1 = (int64_t)(task + 1) * DEQ_ROWS < w->n_out ? (int64_t)(task + 1) * DEQ_ROWS : w->n_out;
    for (int64_t r = (int64_t)task * DEQ_ROWS; r < r1; r++) {
        nm_dequantize_row(w->type, w->data + (size_t)r * w->row_size, row, w->n_in);
        double *dst = j->b->w + (size_t)r * (size_t)w->n_in;
        for (int64_t c = 0; c < w->n_in; c++)
            dst[c] = row[c];
    }
}

static void load(jb *b, const vm_weight *w) {
    deq_job j = {b, w};
    nm_pool_run(b->pool, (size_t)((w->n_out + DEQ_ROWS - 1) / DEQ_ROWS), deq_task, &j);
}

typedef struct gemm_job {
    double *c;
    const double *a, *bm;
    int64_t ldc, lda, ldb, n_r, k_len, m, rows; /* rows: per task */
} gemm_job;

static void gemm_task(void *ctx, size_t task, int thread) {
    (void)thread;
    const gemm_job *j = ctx;
    const int64_t r0 = (int64_t)task * j->rows, nr = j->n_r - r0 < j->rows ? j->n_r - r0 : j->rows;
    nm_gemm_acc(j->c + r0 * j->ldc, j->ldc, j->a + r0 * j->lda, j->lda, j->bm, j->ldb, nr, j->k_len, j->m, false);
}

/* c (n_r x m) += a (n_r x k_len) · bm (k_len x m), rows of c split over the pool in two tasks per
 * thread: nm_gemm_acc copies bm into column strips on every call, so every task copies all of it
 * (with 32-row tasks, a third of the pass's time went there). Which rows a task takes does not
 * change a sum. */
static void gemm(const jb *b, double *c, int64_t ldc, const double *a, int64_t lda, const double *bm, int64_t ldb,
                 int64_t n_r, int64_t k_len, int64_t m) {
    const int64_t tasks = 2 * (int64_t)b->n_threads, rows = ((n_r + tasks - 1) / tasks + 7) / 8 * 8;
    gemm_job j = {c, a, bm, ldc, lda, ldb, n_r, k_len, m, rows};
    nm_pool_run(b->pool, (size_t)((n_r + rows - 1) / rows), gemm_task, &j);
}

static void transpose(const double *x, int64_t rows, int64_t cols, double *y) {
    for (int64_t r0 = 0; r0 < rows; r0 += 32)
        for (int64_t c = 0; c < cols; c++)
            for (int64_t r = r0; r < r0 + 32 && r < rows; r++)
                y[c * rows + r] = x[r * cols + c];
}

/* y (T x n_out) = x (T x n_in) · Wᵀ, as yᵀ = W xᵀ. */
static void forward(jb *b, const vm_weight *w, const double *x, double *y) {
    load(b, w);
    transpose(x, b->T, w->n_in, b->xt);
    memset(b->yt, 0, (size_t)w->n_out * (size_t)b->T * sizeof *b->yt);
    gemm(b, b->yt, b->T, b->w, w->n_in, b->xt, b->T, w->n_out, w->n_in, b->T);
    transpose(b->yt, w->n_out, b->T, y);
}

/* y's rows += b (n values), when there is a bias: it enters the forward pass only. */
static void add_bias(const jb *b, double *y, const float *bias, int64_t n) {
    for (int t = 0; bias && t < b->T; t++)
        for (int64_t j = 0; j < n; j++)
            y[(size_t)t * (size_t)n + j] += bias[j];
}

/* dx (T x n_in) += dy (T x n_out) · W. */
static void backward(jb *b, const vm_weight *w, const double *dy, double *dx) {
    load(b, w);
    gemm(b, dx, w->n_in, dy, w->n_out, b->w, w->n_in, b->T, w->n_out, w->n_in);
}

/* ---- element-wise steps ---- */

/* y = x · r · g per row, r = 1 / sqrt(mean(x²) + eps) kept in r. */
static void rms_forward(const jb *b, const double *x, const double *g, double *y, double *r) {
    for (int t = 0; t < b->T; t++) {
        const double *xr = x + (size_t)t * b->d;
        double ss = 0;
        for (int64_t j = 0; j < b->d; j++)
            ss += xr[j] * xr[j];
        r[t] = 1 / sqrt(ss / (double)b->d + b->m->norm_eps);
        for (int64_t j = 0; j < b->d; j++)
            y[(size_t)t * b->d + j] = xr[j] * r[t] * g[j];
    }
}

/* dx += the gradient through that norm of dy: r g dy - r³/d · x · Σ g dy x. */
static void rms_backward(const jb *b, const double *x, const double *g, const double *r, const double *dy,
                         double *dx) {
    for (int t = 0; t < b->T; t++) {
        const double *xr = x + (size_t)t * b->d, *dyr = dy + (size_t)t * b->d;
        double s = 0;
        for (int64_t j = 0; j < b->d; j++)
            s += g[j] * dyr[j] * xr[j];
        const double c = r[t] * r[t] * r[t] / (double)b->d * s;
        for (int64_t j = 0; j < b->d; j++)
            dx[(size_t)t * b->d + j] += r[t] * g[j] * dyr[j] - c * xr[j];
    }
}

/* The rotary on n_heads heads per token at positions 0 .., by +θ (sign 1) or back by -θ (-1, the
 * transpose of the rotation): pairs (i, i + 1) or, NeoX, (i/2, i/2 + n_rot/2); θ = freq_scale ·
 * position / factor · base^(-i/n_rot), the factor rope_freqs' (Llama 3's scaling) or 1. */
static void rope(const jb *b, double *x, int64_t n_heads, int sign) {
    const vm_model *m = b->m;
    const int hd = m->head_dim, nr = m->n_rot, half = m->family->rope == NM_ROPE_NEOX ? nr / 2 : 1;
    for (int t = 0; t < b->T; t++)
        for (int i = 0; i < nr; i += 2) {
            const double factor = m->rope_freqs ? (double)m->rope_freqs[i / 2] : 1.0;
            const double th = (double)m->rope_freq_scale * t / factor * pow((double)m->rope_base, -(double)i / nr);
            const double c = cos(th), s = sign * sin(th);
            const int at = half == 1 ? i : i / 2;
            for (int64_t h = 0; h < n_heads; h++) {
                double *p = x + ((size_t)t * n_heads + h) * hd;
                const double x0 = p[at], x1 = p[at + half];
                p[at] = x0 * c - x1 * s;
                p[at + half] = x0 * s + x1 * c;
            }
        }
}

/* ---- attention: task = one key/value head and the query heads that share it ---- */

static void attn_forward_task(void *ctx, size_t hk, int thread) {
    (void)thread;
    jb *b = ctx;
    const vm_model *m = b->m;
    const int64_t hd = m->head_dim, nq = b->nq, kvd = b->kvd, group = m->n_head / m->n_head_kv, T = b->T;
    const double sc = 1 / sqrt((double)hd);
    for (int64_t h = (int64_t)hk * group; h < ((int64_t)hk + 1) * group; h++)
        for (int64_t t = 0; t < T; t++) {
            double *a = b->A + ((size_t)h * T + t) * T, mx = -INFINITY, s = 0;
            const double *qt = b->q + t * nq + h * hd;
            for (int64_t u = 0; u <= t; u++) {
                const double *ku = b->k + u * kvd + (int64_t)hk * hd;
                double dot = 0;
                for (int64_t c = 0; c < hd; c++)
                    dot += qt[c] * ku[c];
                a[u] = dot * sc;
                mx = a[u] > mx ? a[u] : mx;
            }
            for (int64_t u = 0; u <= t; u++)
                s += a[u] = exp(a[u] - mx);
            double *ot = b->o + t * nq + h * hd;
            memset(ot, 0, (size_t)hd * sizeof *ot);
            for (int64_t u = 0; u <= t; u++) {
                a[u] /= s;
                const double *vu = b->v + u * kvd + (int64_t)hk * hd;
                for (int64_t c = 0; c < hd; c++)
                    ot[c] += a[u] * vu[c];
            }
        }
}

static void attn_backward_task(void *ctx, size_t hk, int thread) {
    jb *b = ctx;
    const vm_model *m = b->m;
    const int64_t hd = m->head_dim, nq = b->nq, kvd = b->kvd, group = m->n_head / m->n_head_kv, T = b->T;
    const double sc = 1 / sqrt((double)hd);
    double *da = b->att_scratch + (size_t)thread * (size_t)T;
    for (int64_t h = (int64_t)hk * group; h < ((int64_t)hk + 1) * group; h++)
        for (int64_t t = 0; t < T; t++) {
            const double *a = b->A + ((size_t)h * T + t) * T, *dot = b->dob + t * nq + h * hd;
            const double *qt = b->q + t * nq + h * hd;
            double *dqt = b->dq + t * nq + h * hd, sum = 0;
            for (int64_t u = 0; u <= t; u++) {
                const double *vu = b->v + u * kvd + (int64_t)hk * hd;
                double *dvu = b->dv + u * kvd + (int64_t)hk * hd, s = 0;
                for (int64_t c = 0; c < hd; c++) {
                    s += dot[c] * vu[c];
                    dvu[c] += a[u] * dot[c];
                }
                da[u] = s;
                sum += a[u] * s;
            }
            for (int64_t u = 0; u <= t; u++) {
                const double ds = a[u] * (da[u] - sum) * sc;
                const double *ku = b->k + u * kvd + (int64_t)hk * hd;
                double *dku = b->dk + u * kvd + (int64_t)hk * hd;
                for (int64_t c = 0; c < hd; c++) {
                    dqt[c] += ds * ku[c];
                    dku[c] += ds * qt[c];
                }
            }
        }
}

/* ---- the pass ---- */

static void jb_free(jb *b) {
    double **d[] = {&b->w, &b->xt, &b->yt, &b->att_scratch, &b->ga, &b->gf, &b->xa, &b->ra, &b->q, &b->k, &b->v,
                    &b->A, &b->o, &b->h0, &b->xf, &b->rf, &b->G, &b->U, &b->dm, &b->dxf, &b->dh0, &b->dob, &b->dq,
                    &b->dk, &b->dv, &b->dxa};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        free(*d[i]);
        *d[i] = NULL;
    }
    free(b->wrow);
    b->wrow = NULL;
}

static int jb_alloc(jb *b, const vm_model *m, nm_pool *pool, int T, nm_error *err) {
    const vm_layer *L = &m->layers[0];
    *b = (jb){.m = m, .pool = pool, .T = T, .n_threads = nm_pool_threads(pool), .d = m->n_embd,
              .nq = L->wq.n_out, .kvd = L->wk.n_out, .F = L->gate.n_out};
    const size_t t = (size_t)T, d = (size_t)b->d, nq = (size_t)b->nq, kvd = (size_t)b->kvd, F = (size_t)b->F;
    size_t widest = d > F ? d : F, most = 0;
    widest = widest > nq ? widest : nq;
    b->widest = widest;
    const vm_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        most = (size_t)(ws[i]->n_in * ws[i]->n_out) > most ? (size_t)(ws[i]->n_in * ws[i]->n_out) : most;
    const struct {
        double **p;
        size_t n;
    } want[] = {{&b->w, most}, {&b->xt, widest * t}, {&b->yt, widest * t}, {&b->att_scratch, t * b->n_threads},
                {&b->ga, d}, {&b->gf, d}, {&b->xa, t * d}, {&b->ra, t}, {&b->q, t * nq}, {&b->k, t * kvd},
                {&b->v, t * kvd}, {&b->A, (size_t)m->n_head * t * t}, {&b->o, t * nq}, {&b->h0, t * d},
                {&b->xf, t * d}, {&b->rf, t}, {&b->G, t * F}, {&b->U, t * F}, {&b->dm, t * F}, {&b->dxf, t * d},
                {&b->dh0, t * d}, {&b->dob, t * nq}, {&b->dq, t * nq}, {&b->dk, t * kvd}, {&b->dv, t * kvd},
                {&b->dxa, t * d}};
    bool ok = true;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ok = (*want[i].p = malloc(want[i].n * sizeof(double))) != NULL && ok;
    b->wrow = malloc(widest * (size_t)b->n_threads * sizeof *b->wrow);
    if (!ok || !b->wrow) {
        jb_free(b);
        return nm_fail(err, "out of memory for layer 0's backward pass (%d tokens)", T);
    }
    float *row = b->wrow; /* the norms' weights, widened */
    nm_dequantize_row(L->attn_norm.type, L->attn_norm.data, row, b->d);
    for (size_t j = 0; j < d; j++)
        b->ga[j] = row[j];
    nm_dequantize_row(L->ffn_norm.type, L->ffn_norm.data, row, b->d);
    for (size_t j = 0; j < d; j++)
        b->gf[j] = row[j];
    return 0;
}

static void layer_forward(jb *b, const float *e32, double *e) {
    const vm_layer *L = &b->m->layers[0];
    const size_t td = (size_t)b->T * (size_t)b->d;
    for (size_t i = 0; i < td; i++)
        e[i] = e32[i];
    rms_forward(b, e, b->ga, b->xa, b->ra);
    forward(b, &L->wq, b->xa, b->q);
    forward(b, &L->wk, b->xa, b->k);
    forward(b, &L->wv, b->xa, b->v);
    add_bias(b, b->q, L->bq, b->nq);
    add_bias(b, b->k, L->bk, b->kvd);
    add_bias(b, b->v, L->bv, b->kvd);
    rope(b, b->q, b->m->n_head, 1);
    rope(b, b->k, b->m->n_head_kv, 1);
    nm_pool_run(b->pool, (size_t)b->m->n_head_kv, attn_forward_task, b);
    forward(b, &L->wo, b->o, b->h0);
    add_bias(b, b->h0, L->bo, b->d);
    for (size_t i = 0; i < td; i++)
        b->h0[i] += e[i];
    rms_forward(b, b->h0, b->gf, b->xf, b->rf);
    forward(b, &L->gate, b->xf, b->G);
    forward(b, &L->up, b->xf, b->U);
    add_bias(b, b->G, L->gate_b, b->F);
    add_bias(b, b->U, L->up_b, b->F);
}

/* g = Jᵀ z through the FFN (with its residual), then attention (with its residual). */
static void layer_backward(jb *b, const double *e, const double *z, double *g) {
    const vm_layer *L = &b->m->layers[0];
    const size_t td = (size_t)b->T * (size_t)b->d, tf = (size_t)b->T * (size_t)b->F;
    memset(b->dm, 0, tf * sizeof *b->dm);
    backward(b, &L->down, z, b->dm);
    for (size_t i = 0; i < tf; i++) { /* m = silu(G) · U; G and U become their gradients */
        const double a = b->G[i], sg = 1 / (1 + exp(-a)), silu = a * sg, dsilu = sg * (1 + a * (1 - sg));
        b->G[i] = b->dm[i] * b->U[i] * dsilu;
        b->U[i] = b->dm[i] * silu;
    }
    memset(b->dxf, 0, td * sizeof *b->dxf);
    backward(b, &L->gate, b->G, b->dxf);
    backward(b, &L->up, b->U, b->dxf);
    memcpy(b->dh0, z, td * sizeof *b->dh0);
    rms_backward(b, b->h0, b->gf, b->rf, b->dxf, b->dh0);
    memset(b->dob, 0, (size_t)b->T * (size_t)b->nq * sizeof *b->dob);
    backward(b, &L->wo, b->dh0, b->dob);
    memset(b->dq, 0, (size_t)b->T * (size_t)b->nq * sizeof *b->dq);
    memset(b->dk, 0, (size_t)b->T * (size_t)b->kvd * sizeof *b->dk);
    memset(b->dv, 0, (size_t)b->T * (size_t)b->kvd * sizeof *b->dv);
    nm_pool_run(b->pool, (size_t)b->m->n_head_kv, attn_backward_task, b);
    rope(b, b->dq, b->m->n_head, -1);
    rope(b, b->dk, b->m->n_head_kv, -1);
    memset(b->dxa, 0, td * sizeof *b->dxa);
    backward(b, &L->wq, b->dq, b->dxa);
    backward(b, &L->wk, b->dk, b->dxa);
    backward(b, &L->wv, b->dv, b->dxa);
    memcpy(g, b->dh0, td * sizeof *g);
    rms_backward(b, e, b->ga, b->ra, b->dxa, g);
}

int vm_jacobian_vjp(const vm_model *m, nm_pool *pool, const float *e32, int n_tokens, const double *z, double *g,
                    nm_error *err) {
    if (!vm_jacobian_supported(m))
        return nm_fail(err, "layer 0 is not of a shape the backward pass knows");
    if (n_tokens < 1)
        return nm_fail(err, "no tokens for layer 0's backward pass");
    jb b;
    if (jb_alloc(&b, m, pool, n_tokens, err))
        return -1;
    double *e = malloc((size_t)n_tokens * (size_t)b.d * sizeof *e);
    if (!e) {
        jb_free(&b);
        return nm_fail(err, "out of memory for layer 0's backward pass (%d tokens)", n_tokens);
    }
    layer_forward(&b, e32, e);
    layer_backward(&b, e, z, g);
    free(e);
    jb_free(&b);
    return 0;
}

/* xorshift64, and a standard normal by Box-Muller */
static double normal(uint64_t *s) {
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        u[i] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
    }
    return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

int vm_jacobian_embd_h(const vm_model *m, nm_pool *pool, const float *e, int n_tokens, uint64_t seed, double *H,
                       nm_error *err) {
    const size_t n = (size_t)n_tokens * (size_t)m->n_embd;
    double *z = malloc(n * sizeof *z), *g = malloc(n * sizeof *g);
    int rc = -1;
    if (!z || !g) {
        nm_fail(err, "out of memory for layer 0's backward pass (%d tokens)", n_tokens);
        goto done;
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull; /* splitmix64's finaliser: nearby seeds, unrelated streams */
    s = (s ^ (s >> 30)) * 0xBF58476D1CE4E5B9ull;
    s = (s ^ (s >> 27)) * 0x94D049BB133111EBull;
    s ^= s >> 31;
    s = s ? s : 1; /* xorshift's one forbidden state */
    for (size_t i = 0; i < n; i++)
        z[i] = normal(&s);
    if (vm_jacobian_vjp(m, pool, e, n_tokens, z, g, err))
        goto done;
    if (nm_syrk_upper_f64(H, m->n_embd, g, m->n_embd, n_tokens, m->n_embd, 1.0, pool)) {
        nm_fail(err, "out of memory for token_embd's second moments");
        goto done;
    }
    rc = 0;
done:
    free(z);
    free(g);
    return rc;
}
