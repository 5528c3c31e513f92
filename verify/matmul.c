/* Matrix products of the forward pass (model_impl.h): the batch's activations are quantized once
 * to the type ggml pairs with the weight type, then tiles of rows × tokens run over the pool. */
#include <string.h>

#include "formats/quants.h"
#include "kernels/dot.h"
#include "verify/model_impl.h"

typedef struct matmul_job {
    vm_ctx *c;
    const vm_weight *w;
    const float *x;
    float *y;
    int n_tokens;
    size_t act_row, aux_row;
    int rows, row_blocks, tok_blocks; /* rows per task */
} matmul_job;

static void quantize_task(void *ctx, size_t t, int thread) {
    (void)thread;
    matmul_job *j = ctx;
    uint8_t *act = j->c->act + t * j->act_row;
    nm_dot_quantize_act(j->w->type, j->x + t * (size_t)j->w->n_in, act, j->w->n_in);
    if (j->aux_row) nm_dot_act_aux(j->w->type, j->w->n_in, act, j->c->aux + t * j->aux_row);
}

static void matmul_task(void *ctx, size_t task, int thread) {
    matmul_job *j = ctx;
    const vm_weight *w = j->w;
    const int rb = (int)(task % (size_t)j->row_blocks), tb = (int)(task / (size_t)j->row_blocks);
    const int64_t r0 = (int64_t)rb * j->rows;
    const int nr = (int)(w->n_out - r0 < j->rows ? w->n_out - r0 : j->rows);
    const int t0 = tb * TOK_BLOCK;
    const int nt = j->n_tokens - t0 < TOK_BLOCK ? j->n_tokens - t0 : TOK_BLOCK;
    if (!j->c->exact && nm_dot_float_vec_order(w->type, w->n_in, w->n_out)) {
        for (int t = t0; t < t0 + nt; t++)
            for (int i = 0; i < nr; i++)
                j->y[(size_t)t * w->n_out + r0 + i] = nm_dot_float_vec(
                    w->type, w->n_in, w->data + (size_t)(r0 + i) * w->row_size, j->c->act + (size_t)t * j->act_row);
        return;
    }
    if (j->c->exact) {
        float *wf = j->c->wscratch + (size_t)thread * j->c->wscratch_per_thread;
        for (int i = 0; i < nr; i++)
            nm_dequantize_row(w->type, w->data + (size_t)(r0 + i) * w->row_size, wf + (size_t)i * w->n_in, w->n_in);
        nm_dot_tile(GGML_TYPE_F32, w->n_in, wf, (size_t)w->n_in * sizeof(float), nr, j->x + (size_t)t0 * w->n_in,
                    (size_t)w->n_in * sizeof(float), nt, j->y + (size_t)t0 * w->n_out + r0, (size_t)w->n_out);
    } else {
        if (w->type == GGML_TYPE_Q4_K) { /* rounding depends on where the tile sits (dot.h) */
            const nm_dot_place at = {.weight_rows = w->n_out, .first_act_row = t0, .batch_rows = j->n_tokens};
            nm_dot_tile_at(w->type, &at, w->n_in, w->data + (size_t)r0 * w->row_size, w->row_size, nr,
                           j->c->act + (size_t)t0 * j->act_row, j->act_row, nt, j->y + (size_t)t0 * w->n_out + r0,
                           (size_t)w->n_out);
        } else {
            nm_dot_tile_aux(w->type, w->n_in, w->data + (size_t)r0 * w->row_size, w->row_size, nr,
                            j->c->act + (size_t)t0 * j->act_row, j->act_row,
                            j->aux_row ? j->c->aux + (size_t)t0 * j->aux_row : NULL, j->aux_row, nt,
                            j->y + (size_t)t0 * w->n_out + r0, (size_t)w->n_out);
        }
    }
}

/* Rows per task: FLOAT_ROW_BLOCK for float weights in the default mode (their SIMD tiles share
 * each pass over the activations among more rows when the rows are long: kernels/dot_avx2.c),
 * else ROW_BLOCK (exact mode's scratch holds ROW_BLOCK dequantized rows). */
static int task_rows(const vm_ctx *c, const vm_weight *w) {
    const bool is_float = w->type == GGML_TYPE_F32 || w->type == GGML_TYPE_F16 || w->type == GGML_TYPE_BF16;
    return !c->exact && is_float ? FLOAT_ROW_BLOCK : ROW_BLOCK;
}

/* y[t][0..n_out) = W · x[t] for n_tokens rows of x. */
void vm_matmul(vm_ctx *c, const vm_weight *w, const float *x, int n_tokens, float *y) {
    if (c->observe && strncmp(w->name, "blk.", 4) == 0) c->observe(c->observe_user, w, x, n_tokens);
    matmul_job j = {.c = c, .w = w, .x = x, .y = y, .n_tokens = n_tokens};
    j.rows = task_rows(c, w);
    j.row_blocks = (int)((w->n_out + j.rows - 1) / j.rows);
    j.tok_blocks = (n_tokens + TOK_BLOCK - 1) / TOK_BLOCK;
    if (!c->exact) {
        j.act_row = nm_dot_act_row_size(w->type, w->n_in);
        j.aux_row = nm_dot_act_aux_row_size(w->type, w->n_in);
        nm_pool_run(c->pool, (size_t)n_tokens, quantize_task, &j);
    }
    nm_pool_run(c->pool, (size_t)j.row_blocks * (size_t)j.tok_blocks, matmul_task, &j);
    if (c->lora) vm_lora_apply(c, w, x, n_tokens, y);
}
