/* verify/jacobian.h: layer 0's vector-Jacobian product against finite differences of the
 * evaluator's own layer 0 (vm_eval_layer in exact mode: f32 activations and cache), on the fixture
 * model: for directions δ, zᵀ (f(e + εδ) - f(e - εδ)) / 2ε must equal (Jᵀz)·δ. One direction
 * moves every position, the others one position each (an early one reaches the later positions
 * through attention only), also with the rotary's other forms and with biases. Also: a layer of
 * another shape is refused, and token_embd's H has a positive diagonal. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/arch.h"
#include "common/parallel.h"
#include "tests/testlib.h"
#include "verify/common.h"
#include "verify/jacobian.h"

enum { T = 24 };

static char model[1200];

static bool fixtures(void) { return test_fixture(model, sizeof model, "reference/wikillama-f32.gguf"); }

static uint64_t rng = 88172645463325252ull;
static double uniform(void) { /* (-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 4503599627370496.0 - 1.0;
}

/* zᵀ f(e + s·δ), f = the evaluator's layer 0 at positions 0 .. T-1 */
static double probe(vm_ctx *ctx, const float *e, const double *delta, double s, const double *z, size_t n) {
    nm_error err;
    float *x = vm_ctx_hidden(ctx);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)e[i] + s * delta[i]);
    assert_int_equal(vm_eval_layer(ctx, 0, T, 0, T, &err), 0);
    x = vm_ctx_hidden(ctx);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += z[i] * x[i];
    return sum;
}

/* The comparisons on model m (its layer 0 as the evaluator runs it, in exact mode). */
static void check_model(const vm_model *m, nm_pool *pool, const char *label) {
    nm_error err;
    assert_true(vm_jacobian_supported(m));
    vm_ctx *ctx = vm_ctx_create(m, T, pool, true, &err);
    assert_non_null(ctx);
    int32_t tokens[T];
    for (int t = 0; t < T; t++)
        tokens[t] = (int32_t)((t * 7919 + 13) % m->n_vocab);
    assert_int_equal(vm_eval_embed(ctx, tokens, T, 0, &err), 0);
    const size_t n = (size_t)T * (size_t)m->n_embd;
    float *e = malloc(n * sizeof *e);
    double *z = malloc(n * sizeof *z), *g = malloc(n * sizeof *g), *delta = malloc(n * sizeof *delta);
    memcpy(e, vm_ctx_hidden(ctx), n * sizeof *e);
    double rms = 0;
    for (size_t i = 0; i < n; i++)
        rms += (double)e[i] * e[i];
    rms = sqrt(rms / (double)n);
    for (size_t i = 0; i < n; i++)
        z[i] = uniform();
    assert_int_equal(vm_jacobian_vjp(m, pool, e, T, z, g, &err), 0);

    const int moved[] = {-1, 0, 5, T - 1}; /* -1: every position */
    for (size_t c = 0; c < sizeof moved / sizeof moved[0]; c++) {
        for (size_t i = 0; i < n; i++) {
            const int pos = (int)(i / (size_t)m->n_embd);
            delta[i] = moved[c] < 0 || pos == moved[c] ? rms * uniform() : 0.0;
        }
        double want = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            want += g[i] * delta[i];
            scale += fabs(g[i] * delta[i]);
        }
        const double eps = 1e-2;
        const double fd = (probe(ctx, e, delta, eps, z, n) - probe(ctx, e, delta, -eps, z, n)) / (2 * eps);
        print_message("%s, moved %d: finite differences %.9g, backward pass %.9g (terms' magnitude %.3g)\n", label,
                      moved[c], fd, want, scale);
        /* measured: within 1.1e-5 of the terms' magnitude and 1.5e-4 of the value; leaving out the
         * keys' gradient moved the first by 1.0, the wrong rotary transpose the third by 0.24 */
        assert_true(fabs(fd - want) <= 1e-3 * fabs(fd) + 2e-5 * scale);
    }

    /* H from one context: the upper triangle of g gᵀ for its own z; a positive diagonal */
    double *H = calloc((size_t)m->n_embd * (size_t)m->n_embd, sizeof *H);
    assert_int_equal(vm_jacobian_embd_h(m, pool, e, T, 7, H, &err), 0);
    for (int64_t a = 0; a < m->n_embd; a++)
        assert_true(H[a * m->n_embd + a] > 0);
    free(H);

    /* another shape: refused with a message, g untouched */
    vm_model other = *m;
    other.q_scale = 0.5f;
    assert_false(vm_jacobian_supported(&other));
    g[0] = 42;
    assert_int_equal(vm_jacobian_vjp(&other, pool, e, T, z, g, &err), -1);
    assert_true(g[0] == 42);
    assert_non_null(strstr(err.msg, "layer 0"));

    free(e);
    free(z);
    free(g);
    free(delta);
    vm_ctx_free(ctx);
}

static void vjp_matches_finite_differences(void **state) {
    (void)state;
    if (!fixtures()) {
        skip();
        return;
    }
    nm_error err;
    verify_model vm;
    assert_int_equal(verify_model_open(&vm, model, &err), 0);
    nm_pool *pool = nm_pool_create(2);
    check_model(&vm.m, pool, "fixture");
    /* the same weights with the rotary's other forms: halves paired (NeoX), a linear scale and
     * Llama 3's per-frequency factors */
    vm_model variant = vm.m;
    nm_arch family = *vm.m.family;
    family.rope = NM_ROPE_NEOX;
    variant.family = &family;
    variant.rope_freq_scale = 0.25f;
    float factors[256];
    assert_true(variant.n_rot / 2 <= 256);
    for (int i = 0; i < variant.n_rot / 2; i++)
        factors[i] = 1.0f + (float)(i % 7);
    variant.rope_freqs = factors;
    check_model(&variant, pool, "NeoX, scaled, factors");
    /* biases on every product of layer 0 but the down projection's (Qwen2 has Q/K/V's) */
    vm_model biased = vm.m;
    vm_layer *layers = malloc((size_t)vm.m.n_layer * sizeof *layers);
    memcpy(layers, vm.m.layers, (size_t)vm.m.n_layer * sizeof *layers);
    const vm_layer *L = &layers[0];
    const int64_t widths[] = {L->wq.n_out, L->wk.n_out, L->wv.n_out, L->wo.n_out, L->gate.n_out, L->up.n_out};
    float *bias[6];
    for (int i = 0; i < 6; i++) {
        bias[i] = malloc((size_t)widths[i] * sizeof *bias[i]);
        for (int64_t j = 0; j < widths[i]; j++)
            bias[i][j] = (float)(0.5 * uniform());
    }
    layers[0].bq = bias[0];
    layers[0].bk = bias[1];
    layers[0].bv = bias[2];
    layers[0].bo = bias[3];
    layers[0].gate_b = bias[4];
    layers[0].up_b = bias[5];
    biased.layers = layers;
    check_model(&biased, pool, "biases");
    for (int i = 0; i < 6; i++)
        free(bias[i]);
    free(layers);
    nm_pool_destroy(pool);
    verify_model_close(&vm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vjp_matches_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
