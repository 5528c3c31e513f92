/* inspect_torch: the --json listing of every variant in tests/data/torch (and wikillama hf-pt
 * when the fixtures are there) names the tensors torch loaded, with their dtype, shape, byte
 * count, storage key and contiguity, and --hash gives XXH3-64 of exactly the bytes torch
 * loaded (expected.bin); --tensor/--values decode the first values; refusals keep the reason
 * and drop the duplicated file prefix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <xxhash.h>

#include "inspect/inspect.h"
#include "tests/testlib.h"

static const char *root_dir(void) {
    const char *r = getenv("NOMOAT_ROOT");
    return r ? r : ".";
}

static void check_listing(const char *variant) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/tests/data/torch/%s", root_dir(), variant);
    size_t jn, bn;
    snprintf(path, sizeof path, "%s/expected.json", dir);
    char *json = (char *)test_read_file(path, &jn);
    assert_non_null(json);
    snprintf(path, sizeof path, "%s/expected.bin", dir);
    char *blob = (char *)test_read_file(path, &bn);
    assert_non_null(blob);
    cJSON *want = cJSON_Parse(json);
    const cJSON *key = cJSON_GetObjectItem(want, "state_key");
    snprintf(path, sizeof path, "%s/%s", dir, cJSON_GetObjectItem(want, "path")->valuestring);
    inspect_options o = {.json = true, .hash = true, .state_key = key ? key->valuestring : NULL};
    cJSON *got = cJSON_CreateObject();
    nm_error err = {{0}};
    if (inspect_torch(path, &o, got, &err))
        fail_msg("%s: %s", variant, err.msg);
    assert_string_equal(cJSON_GetObjectItem(got, "format")->valuestring, "torch");
    const cJSON *wt = cJSON_GetObjectItem(want, "tensors"), *gt = cJSON_GetObjectItem(got, "tensors");
    assert_int_equal(cJSON_GetArraySize(wt), cJSON_GetArraySize(gt));
    assert_int_equal((int)cJSON_GetObjectItem(got, "tensor_count")->valuedouble, cJSON_GetArraySize(wt));
    for (int i = 0; i < cJSON_GetArraySize(wt); i++) {
        const cJSON *w = cJSON_GetArrayItem(wt, i), *g = cJSON_GetArrayItem(gt, i);
        assert_string_equal(cJSON_GetObjectItem(g, "name")->valuestring, cJSON_GetObjectItem(w, "name")->valuestring);
        assert_string_equal(cJSON_GetObjectItem(g, "type")->valuestring, cJSON_GetObjectItem(w, "dtype")->valuestring);
        assert_true(cJSON_Compare(cJSON_GetObjectItem(g, "shape"), cJSON_GetObjectItem(w, "shape"), 1));
        assert_true(cJSON_Compare(cJSON_GetObjectItem(g, "contiguous"), cJSON_GetObjectItem(w, "contiguous"), 1));
        size_t off = (size_t)cJSON_GetObjectItem(w, "offset")->valuedouble;
        size_t bytes = (size_t)cJSON_GetObjectItem(w, "bytes")->valuedouble;
        assert_int_equal((size_t)cJSON_GetObjectItem(g, "bytes")->valuedouble, bytes);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(g, "storage")));
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH3_64bits(blob + off, bytes));
        assert_string_equal(cJSON_GetObjectItem(g, "xxh3")->valuestring, hex);
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    free(json);
    free(blob);
}

static void test_variants(void **state) {
    (void)state;
    static const char *const v[] = {"proto4", "proto5", "views", "legacy", "legacy-proto2", "zip64", "bigendian",
                                    "nested", "nested-key", "sharded", "meta"};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        check_listing(v[i]);
}

static void test_values_and_errors(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/torch/views/model.pt", root_dir());
    inspect_options o = {.json = true, .tensor = "transposed", .values = 3};
    cJSON *got = cJSON_CreateObject();
    nm_error err = {{0}};
    assert_int_equal(inspect_torch(path, &o, got, &err), 0);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "tensors"), 0);
    assert_string_equal(cJSON_GetObjectItem(t, "name")->valuestring, "transposed");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(t, "contiguous")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "values")), 3);
    cJSON_Delete(got);
    /* the values are those of expected.bin at that tensor's offset */
    size_t n;
    char jp[4200];
    snprintf(jp, sizeof jp, "%s/tests/data/torch/views/expected.json", root_dir());
    char *json = (char *)test_read_file(jp, &n);
    assert_non_null(json);
    cJSON *want = cJSON_Parse(json);
    snprintf(jp, sizeof jp, "%s/tests/data/torch/views/expected.bin", root_dir());
    char *blob = (char *)test_read_file(jp, &n);
    assert_non_null(blob);
    const cJSON *e;
    size_t off = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(want, "tensors"))
        if (!strcmp(cJSON_GetObjectItem(e, "name")->valuestring, "transposed"))
            off = (size_t)cJSON_GetObjectItem(e, "offset")->valuedouble;
    got = cJSON_CreateObject();
    assert_int_equal(inspect_torch(path, &o, got, &err), 0);
    const cJSON *vals = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(got, "tensors"), 0), "values");
    for (int i = 0; i < 3; i++) {
        float f;
        memcpy(&f, blob + off + 4 * (size_t)i, 4);
        assert_true(cJSON_GetArrayItem(vals, i)->valuedouble == (double)f);
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    free(json);
    free(blob);

    o = (inspect_options){.tensor = "nope"};
    assert_int_equal(inspect_torch(path, &o, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no tensor named 'nope'"));
    snprintf(path, sizeof path, "%s/tests/data/torch/hostile/pickle-exec-stack-global.pt", root_dir());
    o = (inspect_options){0};
    assert_int_equal(inspect_torch(path, &o, NULL, &err), -1);
    assert_true(!strncmp(err.msg, "data.pkl: ", 10)); /* no duplicated file name */
    assert_non_null(strstr(err.msg, "GLOBAL builtins.exec"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_values_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
