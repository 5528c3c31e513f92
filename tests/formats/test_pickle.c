/* Restricted unpickler (FORMATS.md §8.2-8.5): Python's own pickles of a mixed value in
 * protocols 2, 4 and 5 decode to the same values; every one of the 256 opcode bytes is either
 * implemented or refused by name; GLOBALs outside the allowlist (including real gadgets) are
 * refused naming module and name; limits on MARK nesting, memory and memo indices hold; the
 * byte offset where a pickle ends is reported (the legacy format chains pickles). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "formats/pickle.h"

/* pickle.dumps({'a': (1, -2, 3.5, 'x\\u00e9', b'yz', None, True, False, [1, 2], 2**70, -129, 65535,
 *                     2**31, -2**63), 'b': OrderedDict([('k', {1, 2})])}, protocol=P) */
static const uint8_t proto2[] = {0x80,0x02,0x7d,0x71,0x00,0x28,0x58,0x01,0x00,0x00,0x00,0x61,0x71,0x01,0x28,0x4b,0x01,0x4a,0xfe,0xff,0xff,0xff,0x47,0x40,0x0c,0x00,0x00,0x00,0x00,0x00,0x00,0x58,0x03,0x00,0x00,0x00,0x78,0xc3,0xa9,0x71,0x02,0x63,0x5f,0x63,0x6f,0x64,0x65,0x63,0x73,0x0a,0x65,0x6e,0x63,0x6f,0x64,0x65,0x0a,0x71,0x03,0x58,0x02,0x00,0x00,0x00,0x79,0x7a,0x71,0x04,0x58,0x06,0x00,0x00,0x00,0x6c,0x61,0x74,0x69,0x6e,0x31,0x71,0x05,0x86,0x71,0x06,0x52,0x71,0x07,0x4e,0x88,0x89,0x5d,0x71,0x08,0x28,0x4b,0x01,0x4b,0x02,0x65,0x8a,0x09,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x40,0x4a,0x7f,0xff,0xff,0xff,0x4d,0xff,0xff,0x8a,0x05,0x00,0x00,0x00,0x80,0x00,0x8a,0x08,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x80,0x74,0x71,0x09,0x58,0x01,0x00,0x00,0x00,0x62,0x71,0x0a,0x63,0x63,0x6f,0x6c,0x6c,0x65,0x63,0x74,0x69,0x6f,0x6e,0x73,0x0a,0x4f,0x72,0x64,0x65,0x72,0x65,0x64,0x44,0x69,0x63,0x74,0x0a,0x71,0x0b,0x29,0x52,0x71,0x0c,0x58,0x01,0x00,0x00,0x00,0x6b,0x71,0x0d,0x63,0x5f,0x5f,0x62,0x75,0x69,0x6c,0x74,0x69,0x6e,0x5f,0x5f,0x0a,0x73,0x65,0x74,0x0a,0x71,0x0e,0x5d,0x71,0x0f,0x28,0x4b,0x01,0x4b,0x02,0x65,0x85,0x71,0x10,0x52,0x71,0x11,0x73,0x75,0x2e};
static const uint8_t proto4[] = {0x80,0x04,0x95,0x88,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x7d,0x94,0x28,0x8c,0x01,0x61,0x94,0x28,0x4b,0x01,0x4a,0xfe,0xff,0xff,0xff,0x47,0x40,0x0c,0x00,0x00,0x00,0x00,0x00,0x00,0x8c,0x03,0x78,0xc3,0xa9,0x94,0x43,0x02,0x79,0x7a,0x94,0x4e,0x88,0x89,0x5d,0x94,0x28,0x4b,0x01,0x4b,0x02,0x65,0x8a,0x09,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x40,0x4a,0x7f,0xff,0xff,0xff,0x4d,0xff,0xff,0x8a,0x05,0x00,0x00,0x00,0x80,0x00,0x8a,0x08,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x80,0x74,0x94,0x8c,0x01,0x62,0x94,0x8c,0x0b,0x63,0x6f,0x6c,0x6c,0x65,0x63,0x74,0x69,0x6f,0x6e,0x73,0x94,0x8c,0x0b,0x4f,0x72,0x64,0x65,0x72,0x65,0x64,0x44,0x69,0x63,0x74,0x94,0x93,0x94,0x29,0x52,0x94,0x8c,0x01,0x6b,0x94,0x8f,0x94,0x28,0x4b,0x01,0x4b,0x02,0x90,0x73,0x75,0x2e};
static const uint8_t proto5[] = {0x80,0x05,0x95,0x88,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x7d,0x94,0x28,0x8c,0x01,0x61,0x94,0x28,0x4b,0x01,0x4a,0xfe,0xff,0xff,0xff,0x47,0x40,0x0c,0x00,0x00,0x00,0x00,0x00,0x00,0x8c,0x03,0x78,0xc3,0xa9,0x94,0x43,0x02,0x79,0x7a,0x94,0x4e,0x88,0x89,0x5d,0x94,0x28,0x4b,0x01,0x4b,0x02,0x65,0x8a,0x09,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x40,0x4a,0x7f,0xff,0xff,0xff,0x4d,0xff,0xff,0x8a,0x05,0x00,0x00,0x00,0x80,0x00,0x8a,0x08,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x80,0x74,0x94,0x8c,0x01,0x62,0x94,0x8c,0x0b,0x63,0x6f,0x6c,0x6c,0x65,0x63,0x74,0x69,0x6f,0x6e,0x73,0x94,0x8c,0x0b,0x4f,0x72,0x64,0x65,0x72,0x65,0x64,0x44,0x69,0x63,0x74,0x94,0x93,0x94,0x29,0x52,0x94,0x8c,0x01,0x6b,0x94,0x8f,0x94,0x28,0x4b,0x01,0x4b,0x02,0x90,0x73,0x75,0x2e};

static pk_doc *parse_ok(const void *data, size_t size) {
    nm_error err = {{0}};
    size_t used = 0;
    pk_doc *d = pk_parse(data, size, NULL, &used, &err);
    if (!d)
        fail_msg("refused: %s", err.msg);
    assert_int_equal(used, size);
    return d;
}

static void refused(const void *data, size_t size, const pk_options *o, const char *needle) {
    nm_error err = {{0}};
    pk_doc *d = pk_parse(data, size, o, NULL, &err);
    if (d) {
        pk_free(d);
        fail_msg("accepted a pickle that should be refused (%s)", needle);
    }
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void check_value(const pk_value *root) {
    assert_int_equal(root->kind, PK_DICT);
    const pk_value *a = pk_dict_get(root, "a");
    assert_non_null(a);
    assert_int_equal(a->kind, PK_TUPLE);
    assert_int_equal(a->u.seq.n, 14);
    pk_value **it = a->u.seq.items;
    assert_int_equal(it[0]->kind, PK_INT);
    assert_int_equal(it[0]->u.i, 1);
    assert_int_equal(it[1]->u.i, -2);
    assert_int_equal(it[2]->kind, PK_FLOAT);
    assert_true(it[2]->u.f == 3.5);
    assert_int_equal(it[3]->kind, PK_STR);
    assert_string_equal(it[3]->u.str.s, "x\xc3\xa9");
    assert_int_equal(it[4]->kind, PK_BYTES); /* protocol 2: _codecs.encode('yz', 'latin1') */
    assert_int_equal(it[4]->u.str.len, 2);
    assert_memory_equal(it[4]->u.str.s, "yz", 2);
    assert_int_equal(it[5]->kind, PK_NONE);
    assert_true(it[6]->kind == PK_BOOL && it[6]->u.b);
    assert_true(it[7]->kind == PK_BOOL && !it[7]->u.b);
    assert_int_equal(it[8]->kind, PK_LIST);
    assert_int_equal(it[8]->u.seq.n, 2);
    assert_int_equal(it[8]->u.seq.items[1]->u.i, 2);
    assert_int_equal(it[9]->kind, PK_BIGINT);
    assert_int_equal(it[10]->u.i, -129);
    assert_int_equal(it[11]->u.i, 65535);
    assert_int_equal(it[12]->u.i, 2147483648LL);
    assert_true(it[13]->u.i == INT64_MIN);
    const pk_value *b = pk_dict_get(root, "b");
    assert_non_null(b);
    assert_int_equal(b->kind, PK_DICT); /* OrderedDict() then SETITEMS */
    const pk_value *k = pk_dict_get(b, "k");
    assert_non_null(k);
    assert_int_equal(k->kind, PK_SET);
    assert_int_equal(k->u.seq.n, 2);
    assert_null(pk_dict_get(root, "c"));
}

static void test_python_pickles(void **state) {
    (void)state;
    const struct { const uint8_t *d; size_t n; } p[] = {{proto2, sizeof proto2}, {proto4, sizeof proto4}, {proto5, sizeof proto5}};
    for (size_t i = 0; i < 3; i++) {
        pk_doc *d = parse_ok(p[i].d, p[i].n);
        check_value(pk_root(d));
        pk_free(d);
    }
}

static void test_every_opcode(void **state) {
    (void)state;
    static const char implemented[] = "\x80\x95\x63\x93\x28\x29\x85\x86\x87\x74\x7d\x5d\x8f\x73\x75\x61\x65\x90\x52"
                                      "\x62\x81\x51\x4a\x4b\x4d\x8a\x8b\x47\x58\x8c\x8d\x54\x55\x42\x43\x8e\x4e\x88"
                                      "\x89\x71\x72\x94\x68\x6a\x2e";
    size_t n_refused = 0;
    for (int op = 0; op < 256; op++) {
        uint8_t buf[3] = {0x80, 0x02, (uint8_t)op};
        nm_error err = {{0}};
        pk_doc *d = pk_parse(buf, sizeof buf, NULL, NULL, &err);
        char needle[32];
        snprintf(needle, sizeof needle, "opcode 0x%02x", op);
        int is_impl = op != 0 && memchr(implemented, op, sizeof implemented - 1) != NULL;
        if (is_impl) {
            if (strstr(err.msg, needle))
                fail_msg("implemented opcode 0x%02x refused as unknown: %s", op, err.msg);
        } else {
            assert_null(d);
            if (!strstr(err.msg, needle))
                fail_msg("opcode 0x%02x: '%s'", op, err.msg);
            n_refused++;
        }
        pk_free(d);
    }
    assert_int_equal(n_refused, 256 - (sizeof implemented - 1));
}

static void test_globals(void **state) {
    (void)state;
    static const char *const bad[] = {"os\nsystem", "posix\nsystem", "builtins\neval", "builtins\nexec",
                                      "__builtin__\neval", "builtins\ngetattr", "subprocess\nPopen",
                                      "torch\nload", "torch.storage\n_load_from_bytes", "pickle\nloads",
                                      "numpy.core.multiarray\n_reconstruct", "torch._utils\n_rebuild_device_tensor_from_numpy",
                                      "collections\ndefaultdict", "torch\nFloatStorag", "torch.\nFloatStorage"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char buf[128], needle[128];
        int n = snprintf(buf, sizeof buf, "\x80\x02" "c%s\n)R.", bad[i]);
        snprintf(needle, sizeof needle, "GLOBAL %s", bad[i]);
        *strchr(needle, '\n') = '.';
        refused(buf, (size_t)n, NULL, needle);
    }
    /* STACK_GLOBAL goes through the same allowlist */
    static const uint8_t sg[] = "\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R.";
    refused(sg, sizeof sg - 1, NULL, "GLOBAL os.system");
    /* control characters in a refused name are escaped, the message stays one line */
    static const uint8_t nl[] = "\x80\x02" "cos\x01x\nsys\x1btem\n.";
    nm_error err = {{0}};
    assert_null(pk_parse(nl, sizeof nl - 1, NULL, NULL, &err));
    assert_non_null(strstr(err.msg, "os\\x01x.sys\\x1btem"));
    /* allowlisted but not callable, or called with the wrong arguments */
    refused("\x80\x02" "ctorch\nFloatStorage\n)R.", 26, NULL, "torch.FloatStorage is not callable");
    refused("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", 32, NULL, "unexpected arguments");
    refused("\x80\x02" "c_codecs\nencode\nX\x01\x00\x00\x00" "aX\x04\x00\x00\x00utf8\x86R.", 41, NULL, "_codecs.encode");
}

static void test_limits(void **state) {
    (void)state;
    uint8_t deep[2100];
    deep[0] = 0x80, deep[1] = 2;
    memset(deep + 2, '(', sizeof deep - 2);
    refused(deep, sizeof deep, NULL, "nested MARKs");
    pk_options few = {.max_marks = 3};
    refused("\x80\x02((((N.", 8, &few, "more than 3 nested MARKs");
    static uint8_t many[200000];
    many[0] = 0x80, many[1] = 2;
    memset(many + 2, ']', sizeof many - 3);
    many[sizeof many - 1] = '.';
    pk_options small = {.max_bytes = 1u << 20};
    refused(many, sizeof many, &small, "needs more than 1 MiB");
    pk_doc *d = pk_parse(many, sizeof many, NULL, NULL, NULL); /* within the default budget */
    assert_non_null(d);
    pk_free(d);
    refused("\x80\x02h\x05.", 5, NULL, "memo slot 5 read before it was written");
    refused("\x80\x02Nr\xff\xff\xff\x7f.", 9, NULL, "memo index");
    refused("\x80\x02Nr\x00\x20\x00\x00.", 9, NULL, "jumps ahead of the 0 entries");
    pk_doc *sparse = pk_parse("\x80\x02Nr\x00\x10\x00\x00j\x00\x10\x00\x00.", 14, NULL, NULL, NULL); /* within slack */
    assert_non_null(sparse);
    pk_free(sparse);
    refused("\x80\x02X\xff\xff\xff\x7f" "abc.", 11, NULL, "runs past the end");
    refused("\x80\x02\x8a\x09\x01\x02.", 7, NULL, "runs past the end");
    refused("\x80\x06N.", 4, NULL, "protocol 6");
    refused("\x80\x02N", 3, NULL, "truncated");
    refused("", 0, NULL, "empty");
    refused("\x80\x02" "(N" "s.", 5, NULL, "stack underflow"); /* the mark hides what is below */
    refused("\x80\x02" "N(N" "ta.", 7, NULL, "not a list");
}

static void test_cycles_and_chaining(void **state) {
    (void)state;
    /* a list that contains itself decodes (no walk recurses into it) */
    pk_doc *d = parse_ok("\x80\x02]q\x00h\x00" "a.", 9);
    const pk_value *l = pk_root(d);
    assert_int_equal(l->kind, PK_LIST);
    assert_ptr_equal(l->u.seq.items[0], l);
    pk_free(d);
    /* pickles chain: consumed says where the first one ended */
    static const uint8_t two[] = "\x80\x02K\x07.\x80\x02K\x08.";
    size_t used = 0;
    d = pk_parse(two, sizeof two - 1, NULL, &used, NULL);
    assert_non_null(d);
    assert_int_equal(used, 5);
    assert_int_equal(pk_root(d)->u.i, 7);
    pk_free(d);
    d = pk_parse(two + used, sizeof two - 1 - used, NULL, &used, NULL);
    assert_int_equal(pk_root(d)->u.i, 8);
    pk_free(d);
}

static void test_storage_and_tensor(void **state) {
    (void)state;
    /* _rebuild_tensor_v2(('storage', HalfStorage, '0', 'cpu', 6), 1, (2, 2), (1, 2), False, OrderedDict()) */
    static const uint8_t t[] = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n"
                               "((X\x07\x00\x00\x00storage" "ctorch\nHalfStorage\n" "X\x01\x00\x00\x00" "0"
                               "X\x03\x00\x00\x00" "cpu" "K\x06tQ" "K\x01" "K\x02K\x02\x86" "K\x01K\x02\x86"
                               "\x89" "ccollections\nOrderedDict\n)R" "tR.";
    pk_doc *d = parse_ok(t, sizeof t - 1);
    const pk_value *v = pk_root(d);
    assert_int_equal(v->kind, PK_TENSOR);
    assert_int_equal(v->u.tensor.dtype, NM_DTYPE_F16);
    assert_int_equal(v->u.tensor.offset, 1);
    assert_int_equal(v->u.tensor.n_dims, 2);
    assert_int_equal(v->u.tensor.stride[1], 2);
    assert_int_equal(pk_storage_count(d), 1);
    const pk_storage *s = pk_storage_at(d, 0);
    assert_string_equal(s->key, "0");
    assert_string_equal(s->class_name, "HalfStorage");
    assert_int_equal(s->numel, 6);
    assert_int_equal(s->elsize, 2);
    pk_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_pickles),   cmocka_unit_test(test_every_opcode),
        cmocka_unit_test(test_globals),          cmocka_unit_test(test_limits),
        cmocka_unit_test(test_cycles_and_chaining), cmocka_unit_test(test_storage_and_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
