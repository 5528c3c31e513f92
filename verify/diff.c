/* nomoat-verify diff / checksums: compare two GGUF files tensor by tensor after dequantization,
 * and XXH3-64 checksums of every tensor's stored bytes. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "formats/gguf.h"
#include "formats/quants.h"
#include "formats/tensor.h"
#include "verify/common.h"
#include "verify/verify.h"

typedef struct tensor_cmp {
    double sq, max_abs, dot, na, nb;
    int64_t n;
} tensor_cmp;

static int compare_tensor(const gguf_tensor_info *a, const gguf_tensor_info *b, tensor_cmp *c, nm_error *err) {
    memset(c, 0, sizeof *c);
    if (!nm_dequantize_supported(a->type) || !nm_dequantize_supported(b->type))
        return nm_fail(err, "tensor %s: cannot dequantize %s", a->name,
                       ggml_type_name(nm_dequantize_supported(a->type) ? b->type : a->type));
    const int64_t row = a->ne[0];
    const int64_t rows = a->ne[1] * a->ne[2] * a->ne[3];
    size_t rsa, rsb;
    if (ggml_row_size(a->type, (uint64_t)row, &rsa) || ggml_row_size(b->type, (uint64_t)row, &rsb))
        return nm_fail(err, "tensor %s: bad row size", a->name);
    float *fa = malloc((size_t)row * sizeof(float)), *fb = malloc((size_t)row * sizeof(float));
    if (!fa || !fb) {
        free(fa);
        free(fb);
        return nm_fail(err, "out of memory");
    }
    for (int64_t r = 0; r < rows; r++) {
        nm_dequantize_row(a->type, (const uint8_t *)a->data + (size_t)r * rsa, fa, row);
        nm_dequantize_row(b->type, (const uint8_t *)b->data + (size_t)r * rsb, fb, row);
        for (int64_t i = 0; i < row; i++) {
            const double x = fa[i], y = fb[i], d = x - y;
            c->sq += d * d;
            if (fabs(d) > c->max_abs || d != d) c->max_abs = d != d ? INFINITY : fabs(d);
            c->dot += x * y;
            c->na += x * x;
            c->nb += y * y;
        }
    }
    c->n = row * rows;
    free(fa);
    free(fb);
    return 0;
}

static bool same_shape(const gguf_tensor_info *a, const gguf_tensor_info *b) {
    for (int d = 0; d < 4; d++)
        if (a->ne[d] != b->ne[d]) return false;
    return true;
}

static void diff_usage(FILE *f) {
    fprintf(f, "usage: nomoat-verify diff A.gguf B.gguf [--json FILE] [-q]\n"
               "Per-tensor RMSE, max |error| and cosine similarity after dequantization.\n"
               "Exit 0 when every tensor holds the same values, 1 when any differs or is missing, 2 on error.\n");
}

int verify_diff_main(int argc, char **argv) {
    const char *pa = NULL, *pb = NULL, *json = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            diff_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json = argv[++i];
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            verify_error("diff: unknown option %s", argv[i]);
            return VERIFY_EXIT_ERROR;
        } else if (!pa) {
            pa = argv[i];
        } else if (!pb) {
            pb = argv[i];
        } else {
            verify_error("diff: unexpected argument %s", argv[i]);
            return VERIFY_EXIT_ERROR;
        }
    }
    if (!pa || !pb) {
        diff_usage(stderr);
        return VERIFY_EXIT_ERROR;
    }
    nm_error err = {{0}};
    gguf_reader *a = gguf_open(pa, &err), *b = NULL;
    if (!a || !(b = gguf_open(pb, &err))) {
        verify_error("%s", err.msg);
        gguf_close(a);
        return VERIFY_EXIT_ERROR;
    }
    int status = VERIFY_EXIT_OK;
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "tensors");
    if (!quiet) printf("%-32s %-6s %-6s %12s %12s %10s\n", "tensor", "A", "B", "RMSE", "max|err|", "cosine");
    long n_diff = 0, n_same = 0, n_missing = 0;
    for (size_t i = 0; i < gguf_tensor_count(a); i++) {
        const gguf_tensor_info *ta = gguf_tensor(a, i), *tb = gguf_find_tensor(b, ta->name);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ta->name);
        cJSON_AddStringToObject(o, "type_a", ggml_type_name(ta->type));
        cJSON_AddItemToArray(arr, o);
        if (!tb) {
            if (!quiet) printf("%-32s %-6s %-6s only in A\n", ta->name, ggml_type_name(ta->type), "-");
            cJSON_AddStringToObject(o, "status", "only in A");
            n_missing++;
            continue;
        }
        cJSON_AddStringToObject(o, "type_b", ggml_type_name(tb->type));
        if (!same_shape(ta, tb)) {
            if (!quiet) printf("%-32s %-6s %-6s shapes differ\n", ta->name, ggml_type_name(ta->type), ggml_type_name(tb->type));
            cJSON_AddStringToObject(o, "status", "shapes differ");
            n_diff++;
            continue;
        }
        tensor_cmp c;
        if (compare_tensor(ta, tb, &c, &err)) {
            verify_error("%s", err.msg);
            status = VERIFY_EXIT_ERROR;
            break;
        }
        const double rmse = sqrt(c.sq / (double)c.n);
        const double cosv = (c.na > 0 && c.nb > 0) ? c.dot / sqrt(c.na * c.nb) : (c.na == c.nb ? 1.0 : 0.0);
        const bool same = c.sq == 0.0 && c.max_abs == 0.0;
        if (same) n_same++;
        else n_diff++;
        if (!quiet)
            printf("%-32s %-6s %-6s %12.4e %12.4e %10.6f%s\n", ta->name, ggml_type_name(ta->type),
                   ggml_type_name(tb->type), rmse, c.max_abs, cosv, same ? "" : "  *");
        cJSON_AddStringToObject(o, "status", same ? "same" : "differs");
        cJSON_AddNumberToObject(o, "rmse", rmse);
        cJSON_AddNumberToObject(o, "max_abs_err", c.max_abs);
        cJSON_AddNumberToObject(o, "cosine", cosv);
    }
    if (status != VERIFY_EXIT_ERROR) {
        for (size_t i = 0; i < gguf_tensor_count(b); i++) {
            const gguf_tensor_info *tb = gguf_tensor(b, i);
            if (gguf_find_tensor(a, tb->name)) continue;
            if (!quiet) printf("%-32s %-6s %-6s only in B\n", tb->name, "-", ggml_type_name(tb->type));
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", tb->name);
            cJSON_AddStringToObject(o, "status", "only in B");
            cJSON_AddItemToArray(arr, o);
            n_missing++;
        }
        if (!quiet)
            printf("%ld tensors identical, %ld differ, %ld in only one file\n", n_same, n_diff, n_missing);
        status = (n_diff || n_missing) ? VERIFY_EXIT_LIMITS : VERIFY_EXIT_OK;
        cJSON_AddNumberToObject(root, "identical", (double)n_same);
        cJSON_AddNumberToObject(root, "different", (double)n_diff);
        cJSON_AddNumberToObject(root, "only_in_one", (double)n_missing);
        if (json) {
            char *s = cJSON_Print(root);
            FILE *f = s ? fopen(json, "w") : NULL;
            if (!f || fputs(s, f) < 0 || fclose(f) != 0) {
                verify_error("%s: cannot write", json);
                status = VERIFY_EXIT_ERROR;
            }
            free(s);
        }
    }
    cJSON_Delete(root);
    gguf_close(a);
    gguf_close(b);
    return status;
}

/* ---------------- checksums ---------------- */

static void sums_usage(FILE *f) {
    fprintf(f, "usage: nomoat-verify checksums FILE.gguf [--check SUMS]\n"
               "Prints one line per tensor: XXH3-64 of its stored bytes (16 hex digits), two spaces, name.\n"
               "--check SUMS compares against such a list: exit 1 on any mismatch or missing tensor.\n");
}

int verify_checksums_main(int argc, char **argv) {
    const char *path = NULL, *check = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            sums_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--check") && i + 1 < argc) {
            check = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            verify_error("checksums: unknown option %s", argv[i]);
            return VERIFY_EXIT_ERROR;
        } else if (!path) {
            path = argv[i];
        } else {
            verify_error("checksums: unexpected argument %s", argv[i]);
            return VERIFY_EXIT_ERROR;
        }
    }
    if (!path) {
        sums_usage(stderr);
        return VERIFY_EXIT_ERROR;
    }
    nm_error err = {{0}};
    gguf_reader *g = gguf_open(path, &err);
    if (!g) {
        verify_error("%s", err.msg);
        return VERIFY_EXIT_ERROR;
    }
    const size_t n = gguf_tensor_count(g);
    if (!check) {
        for (size_t i = 0; i < n; i++) {
            const gguf_tensor_info *t = gguf_tensor(g, i);
            printf("%016llx  %s\n", (unsigned long long)XXH3_64bits(t->data, t->size), t->name);
        }
        gguf_close(g);
        return VERIFY_EXIT_OK;
    }
    char *text;
    size_t len;
    if (verify_read_file(check, &text, &len, &err)) {
        verify_error("%s", err.msg);
        gguf_close(g);
        return VERIFY_EXIT_ERROR;
    }
    bool *seen = calloc(n ? n : 1, 1);
    int status = VERIFY_EXIT_OK;
    long bad = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (!*line) continue;
        unsigned long long want;
        char name[GGUF_MAX_NAME + 1];
        int used = 0;
        if (sscanf(line, "%16llx  %64s%n", &want, name, &used) != 2 || strlen(line) < 18 || line[16] != ' ') {
            verify_error("%s:%ld: expected 'HASH  NAME'", check, lineno);
            status = VERIFY_EXIT_ERROR;
            break;
        }
        const gguf_tensor_info *t = gguf_find_tensor(g, name);
        if (!t) {
            printf("%s: MISSING\n", name);
            bad++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            if (gguf_tensor(g, k) == t) seen[k] = true;
        const bool ok = XXH3_64bits(t->data, t->size) == want;
        printf("%s: %s\n", name, ok ? "OK" : "FAILED");
        if (!ok) bad++;
    }
    if (status == VERIFY_EXIT_OK) {
        for (size_t i = 0; i < n; i++)
            if (!seen[i]) {
                printf("%s: NOT IN LIST\n", gguf_tensor(g, i)->name);
                bad++;
            }
        if (bad) fprintf(stderr, "nomoat-verify: %ld of %zu tensors do not match %s\n", bad, n, check);
        status = bad ? VERIFY_EXIT_LIMITS : VERIFY_EXIT_OK;
    }
    free(seen);
    free(text);
    gguf_close(g);
    return status;
}
