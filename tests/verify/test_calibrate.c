/* verify/calibrate.h: the streamed calibration pass's output head (head = true). Asking for the
 * head's statistics before the layers have run (nomoat-quantize --calibration reaches
 * output.weight first when a file stores it first) takes one more forward pass ahead of the
 * layers (in groups of chunks); its statistics, and every layer's run afterwards, must be exactly
 * those of the pass run in order (layers, then the head), whether asked for before any layer or
 * after one. The second moments' diagonal is the mean squared input.
 * Values against llama-imatrix --process-output: tests/verify/test_imatrix.sh. */
#include <limits.h>
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

#include "tests/testlib.h"
#include "verify/calibrate.h"

enum { MAX_SEEN = 64 };

typedef struct seen {
    char name[96];
    int64_t n;
    float *mean;
    double *gram; /* n x n, or NULL when shared with the previous weight */
} seen;

typedef struct record {
    seen s[MAX_SEEN];
    int n;
} record;

static int keep(void *user, const char *name, const float *mean_sq, int64_t n_in, const double *gram, bool gram_shared,
                int n_chunks, int n_ctx, nm_error *err) {
    (void)n_chunks;
    (void)n_ctx;
    (void)err;
    record *r = user;
    assert_true(r->n < MAX_SEEN);
    seen *s = &r->s[r->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->n = n_in;
    s->mean = malloc((size_t)n_in * sizeof *s->mean);
    memcpy(s->mean, mean_sq, (size_t)n_in * sizeof *s->mean);
    s->gram = NULL;
    if (gram && !gram_shared) {
        s->gram = malloc((size_t)(n_in * n_in) * sizeof *s->gram);
        memcpy(s->gram, gram, (size_t)(n_in * n_in) * sizeof *s->gram);
    }
    return 0;
}

static void release(record *r) {
    for (int i = 0; i < r->n; i++) {
        free(r->s[i].mean);
        free(r->s[i].gram);
    }
}

static const seen *find(const record *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->s[i].name, name) == 0)
            return &r->s[i];
    return NULL;
}

static char model[1200], text[1200];

static bool fixtures(void) {
    const bool m = test_fixture(model, sizeof model, "reference/wikillama-f32.gguf");
    return test_fixture(text, sizeof text, "text/wikillama-train.txt") && m;
}

static verify_calib *open_pass(void) {
    nm_error err;
    /* 10 contexts: the pass ahead runs them in groups of 8 */
    verify_calib *vc = verify_calib_open(model, text, NULL, 256, 10, 2, true, true, true, &err);
    if (!vc)
        fail_msg("%s", err.msg);
    return vc;
}

/* The head asked for after `before` layers have run, then one more layer, then the rest. */
static void run_head_ahead(record *r, int before, size_t *nw, int *n_layer) {
    nm_error err;
    verify_calib *a = open_pass();
    *nw = verify_calib_weight_count(a);
    const verify_calib_weight *head = verify_calib_weight_at(a, *nw - 1);
    assert_string_equal(head->name, "output.weight");
    *n_layer = head->layer;
    assert_true(*n_layer > before + 1);
    if (before > 0)
        assert_int_equal(verify_calib_run_to(a, before - 1, keep, r, &err), 0);
    const int n0 = r->n;
    assert_int_equal(verify_calib_run_to(a, *n_layer, keep, r, &err), 0);
    assert_int_equal(r->n, n0 + 1);
    assert_string_equal(r->s[n0].name, "output.weight");
    assert_int_equal(verify_calib_run_to(a, before, keep, r, &err), 0);
    assert_int_equal(verify_calib_run_to(a, INT_MAX, keep, r, &err), 0);
    verify_calib_close(a);
}

static void check_same(const record *ahead, const record *last) {
    for (int i = 0; i < last->n; i++) {
        const seen *x = &last->s[i], *y = find(ahead, x->name);
        assert_non_null(y);
        assert_int_equal(x->n, y->n);
        assert_memory_equal(x->mean, y->mean, (size_t)x->n * sizeof *x->mean);
        assert_true((x->gram == NULL) == (y->gram == NULL));
        if (x->gram)
            assert_memory_equal(x->gram, y->gram, (size_t)(x->n * x->n) * sizeof *x->gram);
    }
}

static void head_ahead_matches_head_last(void **state) {
    (void)state;
    if (!fixtures()) {
        skip();
        return;
    }
    nm_error err;
    record ahead = {0}, ahead1 = {0}, last = {0};
    size_t nw;
    int n_layer;
    run_head_ahead(&ahead, 0, &nw, &n_layer);  /* output.weight stored first */
    run_head_ahead(&ahead1, 1, &nw, &n_layer); /* ... or after a layer */
    verify_calib *b = open_pass();
    assert_int_equal(verify_calib_run_to(b, INT_MAX, keep, &last, &err), 0);
    verify_calib_close(b);
    assert_int_equal(ahead.n, (int)nw);
    assert_int_equal(ahead1.n, (int)nw);
    assert_int_equal(last.n, (int)nw);
    assert_string_equal(last.s[nw - 1].name, "output.weight");
    check_same(&ahead, &last);
    check_same(&ahead1, &last);
    const seen *h = find(&last, "output.weight");
    assert_non_null(h->gram);
    for (int64_t j = 0; j < h->n; j++) /* E[x_j x_j] is the mean squared input */
        assert_true(fabs(h->gram[j * h->n + j] - h->mean[j]) <= 1e-5 * h->mean[j] + 1e-12);
    release(&ahead);
    release(&ahead1);
    release(&last);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(head_ahead_matches_head_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
