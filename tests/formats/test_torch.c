/* PyTorch checkpoint reader (FORMATS.md §8, §6.4) on real files:
 * - wikillama hf-pt (zip) and hf-pt-legacy equal the F32 safetensors copy rounded to F16, bit
 *   for bit, tensor by tensor; meta (2 shards, BF16) merged on the fly equals hf-bf16-sharded
 *   after the Meta->HF renaming and the q/k row permutation of §6.3; rope.freqs is dropped;
 * - every hostile file named pickle-*, tensor-*, storage-*, zip-*, legacy-* (fixtures and
 *   tests/data/torch/hostile) is refused with a reason, in a child that may not start a
 *   process (seccomp) nor grow its data segment past 64 MiB (RLIMIT_DATA), and no
 *   /tmp/nomoat-pwned-* file appears;
 * - the variants of scripts/make-torch-fixtures.py (tests/data/torch) read exactly what torch
 *   1.13 loaded (expected.json + expected.bin written by the script). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#ifdef __linux__
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#endif

#include "formats/safetensors.h"
#include "formats/tensor.h"
#include "formats/torch.h"
#include "tests/testlib.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static const char *fixtures(void) {
    const char *f = getenv("NOMOAT_FIXTURES");
    return f ? f : "../shared/fixtures";
}

static const char *root_dir(void) {
    const char *r = getenv("NOMOAT_ROOT");
    return r ? r : ".";
}

static int have_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void *read_tensor(const torch_model *m, const torch_tensor *t) {
    void *buf = malloc(t->size ? t->size : 1);
    assert_non_null(buf);
    nm_error err = {{0}};
    if (torch_tensor_read(m, t, buf, &err))
        fail_msg("%s: %s", t->name, err.msg);
    if (t->data)
        assert_memory_equal(buf, t->data, t->size);
    return buf;
}

static torch_model *open_or_fail(const char *path, const char *state_key) {
    nm_error err = {{0}};
    torch_open_options o = {.state_key = state_key};
    torch_model *m = torch_open(path, &o, &err);
    if (!m)
        fail_msg("%s: %s", path, err.msg);
    return m;
}

/* ---- wikillama: torch layouts against the safetensors copies ---- */

static void compare_f16_with_f32_st(const char *torch_path, const char *st_path) {
    torch_model *m = open_or_fail(torch_path, NULL);
    nm_error err = {{0}};
    st_model *s = st_open(st_path, &err);
    if (!s)
        fail_msg("%s: %s", st_path, err.msg);
    assert_int_equal(torch_tensor_count(m), st_tensor_count(s));
    size_t elements = 0;
    for (size_t i = 0; i < torch_tensor_count(m); i++) {
        const torch_tensor *t = torch_tensor_at(m, i);
        const st_tensor *r = st_find(s, t->name);
        if (!r)
            fail_msg("%s: tensor %s not in the safetensors copy", torch_path, t->name);
        assert_int_equal(t->dtype, NM_DTYPE_F16);
        assert_int_equal(r->dtype, NM_DTYPE_F32);
        assert_int_equal(t->n_dims, r->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            assert_int_equal(t->shape[d], r->shape[d]);
        assert_int_equal(t->size * 2, r->size);
        assert_true(t->contiguous);
        uint16_t *h = read_tensor(m, t);
        size_t n = t->size / 2;
        uint16_t *want = malloc(n * 2 + 2);
        assert_non_null(want);
        nm_f32_to_f16_row_ref(r->data, want, n);
        for (size_t k = 0; k < n; k++)
            if (h[k] != want[k])
                fail_msg("%s %s[%zu]: %04x, safetensors gives %04x", torch_path, t->name, k, h[k], want[k]);
        elements += n;
        free(h);
        free(want);
    }
    assert_true(elements > 5000000); /* the whole 5.2M-parameter model was compared */
    st_close(s);
    torch_close(m);
}

static void test_wikillama_hf_pt(void **state) {
    (void)state;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/wikillama/hf-pt", fixtures());
    snprintf(b, sizeof b, "%s/wikillama/hf/model.safetensors", fixtures());
    if (!have_dir(a)) {
        printf("SKIPPED: no ../shared/fixtures/wikillama\n");
        skip();
    }
    compare_f16_with_f32_st(a, b);
    /* the file itself (not the folder) opens the same */
    snprintf(a, sizeof a, "%s/wikillama/hf-pt/pytorch_model.bin", fixtures());
    torch_model *m = open_or_fail(a, NULL);
    assert_int_equal(torch_file_count(m), 1);
    assert_string_equal(torch_file_format(m, 0), "zip");
    const torch_tensor *t = torch_find(m, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_non_null(t->data); /* contiguous little-endian: used in place */
    assert_int_equal(t->shape[0], 4096);
    assert_int_equal(t->shape[1], 256);
    torch_close(m);
}

static void test_wikillama_hf_pt_legacy(void **state) {
    (void)state;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/wikillama/hf-pt-legacy", fixtures());
    snprintf(b, sizeof b, "%s/wikillama/hf/model.safetensors", fixtures());
    if (!have_dir(a)) {
        printf("SKIPPED: no ../shared/fixtures/wikillama\n");
        skip();
    }
    compare_f16_with_f32_st(a, b);
    torch_model *m = open_or_fail(a, NULL);
    assert_string_equal(torch_file_format(m, 0), "legacy");
    torch_close(m);
}

/* Meta name -> HF name, and the number of heads whose rows §6.3 permutes (0: none). */
static int meta_to_hf(const char *meta, char *hf, size_t cap, int *heads) {
    static const struct { const char *meta, *hf; int heads; } map[] = {
        {"attention.wq.weight", "self_attn.q_proj.weight", 8}, {"attention.wk.weight", "self_attn.k_proj.weight", 4},
        {"attention.wv.weight", "self_attn.v_proj.weight", 0}, {"attention.wo.weight", "self_attn.o_proj.weight", 0},
        {"feed_forward.w1.weight", "mlp.gate_proj.weight", 0}, {"feed_forward.w2.weight", "mlp.down_proj.weight", 0},
        {"feed_forward.w3.weight", "mlp.up_proj.weight", 0},   {"attention_norm.weight", "input_layernorm.weight", 0},
        {"ffn_norm.weight", "post_attention_layernorm.weight", 0},
    };
    *heads = 0;
    if (!strcmp(meta, "tok_embeddings.weight"))
        return snprintf(hf, cap, "model.embed_tokens.weight"), 0;
    if (!strcmp(meta, "norm.weight"))
        return snprintf(hf, cap, "model.norm.weight"), 0;
    if (!strcmp(meta, "output.weight"))
        return snprintf(hf, cap, "lm_head.weight"), 0;
    int layer, at = 0;
    if (sscanf(meta, "layers.%d.%n", &layer, &at) != 1 || !at)
        return -1;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        if (!strcmp(meta + at, map[i].meta)) {
            *heads = map[i].heads;
            snprintf(hf, cap, "model.layers.%d.%s", layer, map[i].hf);
            return 0;
        }
    }
    return -1;
}

static void test_wikillama_meta(void **state) {
    (void)state;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/wikillama/meta", fixtures());
    snprintf(b, sizeof b, "%s/wikillama/hf-bf16-sharded", fixtures());
    if (!have_dir(a)) {
        printf("SKIPPED: no ../shared/fixtures/wikillama\n");
        skip();
    }
    torch_model *m = open_or_fail(a, NULL);
    nm_error err = {{0}};
    st_model *s = st_open(b, &err);
    if (!s)
        fail_msg("%s: %s", b, err.msg);
    assert_int_equal(torch_file_count(m), 2);
    assert_null(torch_find(m, "rope.freqs"));
    assert_int_equal(torch_tensor_count(m), st_tensor_count(s));
    size_t elements = 0, permuted = 0;
    for (size_t i = 0; i < torch_tensor_count(m); i++) {
        const torch_tensor *t = torch_tensor_at(m, i);
        char hf[256];
        int heads;
        if (meta_to_hf(t->name, hf, sizeof hf, &heads))
            fail_msg("unexpected Meta tensor %s", t->name);
        const st_tensor *r = st_find(s, hf);
        if (!r)
            fail_msg("%s (%s) missing from hf-bf16-sharded", hf, t->name);
        assert_int_equal(t->dtype, NM_DTYPE_BF16);
        assert_int_equal(r->dtype, NM_DTYPE_BF16);
        assert_int_equal(t->n_dims, r->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            assert_int_equal(t->shape[d], r->shape[d]);
        assert_int_equal(t->size, r->size);
        const uint8_t *got = read_tensor(m, t), *want = r->data;
        if (heads) {
            size_t rows = t->shape[0], row = t->size / rows, hd = rows / (size_t)heads;
            for (size_t h = 0; h < (size_t)heads; h++)
                for (size_t k = 0; k < hd / 2; k++)
                    for (size_t j = 0; j < 2; j++) {
                        size_t out = h * hd + 2 * k + j, in = h * hd + j * (hd / 2) + k;
                        if (memcmp(got + out * row, want + in * row, row))
                            fail_msg("%s row %zu differs from %s row %zu", t->name, out, hf, in);
                    }
            permuted++;
        } else if (memcmp(got, want, t->size)) {
            fail_msg("%s differs from %s", t->name, hf);
        }
        elements += t->size / 2;
        free((void *)got);
    }
    assert_int_equal(permuted, 8);
    assert_true(elements > 5000000);
    st_close(s);
    torch_close(m);
}

/* ---- variants made by scripts/make-torch-fixtures.py, checked against torch's own loading ---- */

/* Opens one variant and compares every tensor with expected.json/.bin; returns the model. */
static torch_model *check_variant(const char *name) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/tests/data/torch/%s", root_dir(), name);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    size_t jn, bn;
    char *json = (char *)test_read_file(path, &jn);
    if (!json)
        fail_msg("%s missing (run scripts/make-torch-fixtures.py)", path);
    snprintf(path, sizeof path, "%s/expected.bin", dir);
    char *blob = (char *)test_read_file(path, &bn);
    assert_non_null(blob);
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    const cJSON *ckpt = cJSON_GetObjectItem(doc, "path"), *key = cJSON_GetObjectItem(doc, "state_key");
    snprintf(path, sizeof path, "%s/%s", dir, ckpt->valuestring);
    torch_model *m = open_or_fail(path, key ? key->valuestring : NULL);
    const cJSON *tensors = cJSON_GetObjectItem(doc, "tensors"), *e;
    assert_int_equal(torch_tensor_count(m), (size_t)cJSON_GetArraySize(tensors));
    size_t i = 0;
    cJSON_ArrayForEach(e, tensors) {
        const char *tn = cJSON_GetObjectItem(e, "name")->valuestring;
        const torch_tensor *t = torch_tensor_at(m, i++);
        if (strcmp(t->name, tn))
            fail_msg("%s: tensor %zu is %s, torch has %s", name, i - 1, t->name, tn);
        assert_string_equal(nm_dtype_name(t->dtype), cJSON_GetObjectItem(e, "dtype")->valuestring);
        const cJSON *shape = cJSON_GetObjectItem(e, "shape");
        assert_int_equal(t->n_dims, (uint32_t)cJSON_GetArraySize(shape));
        for (uint32_t d = 0; d < t->n_dims; d++)
            assert_int_equal(t->shape[d], (uint64_t)cJSON_GetArrayItem(shape, (int)d)->valuedouble);
        if (t->contiguous != cJSON_IsTrue(cJSON_GetObjectItem(e, "contiguous")))
            fail_msg("%s: %s contiguous=%d, torch says the opposite", name, tn, t->contiguous);
        size_t off = (size_t)cJSON_GetObjectItem(e, "offset")->valuedouble;
        size_t bytes = (size_t)cJSON_GetObjectItem(e, "bytes")->valuedouble;
        assert_int_equal(t->size, bytes);
        assert_true(off + bytes <= bn);
        uint8_t *got = read_tensor(m, t);
        if (memcmp(got, blob + off, bytes))
            fail_msg("%s: values of %s differ from torch's", name, tn);
        free(got);
        assert_ptr_equal(torch_find(m, tn), t);
    }
    cJSON_Delete(doc);
    free(json);
    free(blob);
    return m;
}

static void test_protocols(void **state) {
    (void)state;
    torch_close(check_variant("proto4"));
    torch_close(check_variant("proto5"));
}

static void test_views_and_shared(void **state) {
    (void)state;
    torch_model *m = check_variant("views");
    const torch_tensor *a = torch_find(m, "tok_embeddings.weight"), *b = torch_find(m, "output.weight");
    assert_string_equal(a->storage_key, b->storage_key); /* tied weights share one storage */
    assert_ptr_equal(a->data, b->data);
    assert_null(torch_find(m, "transposed")->data);     /* non-contiguous: materialised on read */
    assert_false(torch_find(m, "transposed")->contiguous);
    assert_non_null(torch_find(m, "narrowed")->data);  /* contiguous slice at an offset: in place */
    assert_int_equal(torch_find(m, "scalar_view")->n_dims, 0);
    torch_close(m);
    m = check_variant("legacy");
    assert_string_equal(torch_file_format(m, 0), "legacy");
    torch_close(m);
    torch_close(check_variant("legacy-proto2"));
}

static void test_zip64_and_big_endian(void **state) {
    (void)state;
    torch_close(check_variant("zip64"));
    torch_model *m = check_variant("bigendian");
    assert_null(torch_find(m, "embed.weight")->data); /* swapped on read, not usable in place */
    assert_non_null(torch_find(m, "small")->data);    /* one-byte elements have no byte order */
    torch_close(m);
}

static void test_nested_sharded_meta(void **state) {
    (void)state;
    torch_close(check_variant("nested"));
    torch_close(check_variant("nested-key"));
    torch_model *m = check_variant("sharded");
    assert_int_equal(torch_file_count(m), 2);
    torch_close(m);
    m = check_variant("meta");
    assert_int_equal(torch_file_count(m), 2);
    assert_null(torch_find(m, "rope.freqs"));
    torch_close(m);
    /* the same shards without their index: all pytorch_model-*-of-*.bin are read in name order */
    char tmpl[] = "/tmp/nomoat-test-shards.XXXXXX", src[4096], dst[4200];
    assert_non_null(mkdtemp(tmpl));
    static const char *const shard[] = {"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/tests/data/torch/sharded/%s", root_dir(), shard[i]);
        snprintf(dst, sizeof dst, "%s/%s", tmpl, shard[i]);
        assert_int_equal(symlink(src, dst), 0);
    }
    torch_model *indexed = check_variant("sharded"), *bare = open_or_fail(tmpl, NULL);
    assert_int_equal(torch_tensor_count(bare), torch_tensor_count(indexed));
    for (size_t i = 0; i < torch_tensor_count(bare); i++) {
        const torch_tensor *a = torch_tensor_at(bare, i), *b = torch_tensor_at(indexed, i);
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->size, b->size);
        uint8_t *x = read_tensor(bare, a), *y = read_tensor(indexed, b);
        assert_memory_equal(x, y, a->size);
        free(x);
        free(y);
    }
    torch_close(bare);
    torch_close(indexed);
    for (int i = 0; i < 2; i++) {
        snprintf(dst, sizeof dst, "%s/%s", tmpl, shard[i]);
        unlink(dst);
    }
    rmdir(tmpl);
    /* a wrong --state-key is refused with the keys that exist */
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/torch/nested/model.pt", root_dir());
    nm_error err = {{0}};
    torch_open_options o = {.state_key = "nope"};
    assert_null(torch_open(path, &o, &err));
    assert_non_null(strstr(err.msg, "model, optimizer, model_args"));
    o.state_key = "model_args";
    assert_null(torch_open(path, &o, &err));
    assert_non_null(strstr(err.msg, "not a state dict"));
}

/* ---- hostile files ---- */

#ifdef __x86_64__
static void forbid_processes(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execve, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execveat, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fork, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_vfork, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof *filter, .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
        _exit(3);
}
#else
static void forbid_processes(void) {}
#endif

static long status_kb(const char *field) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = atol(line + n + 1);
    if (fp)
        fclose(fp);
    return v;
}

typedef struct child_report {
    int opened;
    long rss_anon_kb;
    char msg[NM_ERROR_MAX];
} child_report;

/* Opens `path` in a child that cannot start processes and whose data segment is capped at
 * 64 MiB; returns its exit status (or -signal) and what it saw. */
static int open_in_child(const char *path, child_report *rep) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
#ifndef UNDER_ASAN
        struct rlimit rl = {64ul << 20, 64ul << 20};
        setrlimit(RLIMIT_DATA, &rl);
#endif
        forbid_processes();
        child_report r = {0};
        nm_error err = {{0}};
        torch_model *m = torch_open(path, NULL, &err);
        if (m) {
            r.opened = 1;
            for (size_t i = 0; i < torch_tensor_count(m); i++) {
                const torch_tensor *t = torch_tensor_at(m, i);
                void *buf = malloc(t->size ? t->size : 1);
                if (buf)
                    torch_tensor_read(m, t, buf, &err);
                free(buf);
            }
        } else {
            memcpy(r.msg, err.msg, sizeof r.msg);
        }
        r.rss_anon_kb = status_kb("RssAnon");
        torch_close(m);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? (m ? 0 : 1) : 4);
    }
    close(fds[1]);
    memset(rep, 0, sizeof *rep);
    ssize_t got = read(fds[0], rep, sizeof *rep);
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        return -WTERMSIG(st);
    if (got != (ssize_t)sizeof *rep)
        return 100 + WEXITSTATUS(st);
    return WEXITSTATUS(st);
}

/* Words the refusal of each known hostile file must contain (files added later only need a
 * non-empty reason that is not a resource failure). */
static const struct { const char *file, *reason; } reasons[] = {
    {"pickle-os-system.pt", "GLOBAL posix.system"},
    {"pickle-builtins-eval.pt", "GLOBAL builtins.eval"},
    {"pickle-nested-call.pt", "GLOBAL os.system"},
    {"pickle-deep-mark.pt", "MARK"},
    {"pickle-bad-memo.pt", "memo"},
    {"pickle-truncated.pt", "truncated"},
    {"tensor-view-out-of-bounds.pt", "outside its storage"},
    {"zip-truncated.pt", "end-of-central-directory"},
    /* tests/data/torch/hostile */
    {"pickle-exec-stack-global.pt", "GLOBAL builtins.exec"},
    {"pickle-rebuild-from-type-gadget.pt", "not a tensor rebuild function"},
    {"pickle-inst-opcode.pt", "opcode 0x69"},
    {"pickle-obj-opcode.pt", "GLOBAL os.system"},
    {"pickle-newobj-ex.pt", "opcode 0x92"},
    {"pickle-newobj-class.pt", "NEWOBJ of torch.FloatStorage"},
    {"pickle-call-storage-class.pt", "not callable"},
    {"pickle-memo-huge-index.pt", "memo index"},
    {"pickle-string-len-huge.pt", "runs past the end"},
    {"pickle-memory-bomb.pt", "MiB to unpickle"},
    {"tensor-many-names.pt", "MiB to index"},
    {"storage-missing-entry.pt", "no zip entry"},
    {"storage-numel-exceeds-entry.pt", "holds only"},
    {"storage-quantized-class.pt", "QInt8Storage is not supported"},
    {"tensor-offset-out-of-bounds.pt", "outside its storage"},
    {"tensor-stride-out-of-bounds.pt", "outside its storage"},
    {"tensor-duplicate-name.pt", "appears twice"},
    {"zip-compressed-pickle.pt", "compressed"},
    {"zip-compressed-storage.pt", "compressed"},
    {"zip-duplicate-entry.pt", "appears twice"},
    {"zip-zip64-bad-locator.pt", "zip64"},
    {"legacy-os-system.pt", "GLOBAL os.system"},
    {"legacy-count-huge.pt", "run past the end"},
    {"legacy-bad-protocol.pt", "protocol version"},
};

static int hostile_prefix(const char *name) {
    static const char *const prefixes[] = {"pickle-", "tensor-", "storage-", "zip-", "legacy-"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return 1;
    return 0;
}

static int pwned_files(void) {
    glob_t g;
    int n = glob("/tmp/nomoat-pwned-*", 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    globfree(&g);
    return n;
}

static size_t check_hostile_dir(const char *dir, size_t *known) {
    DIR *dh = opendir(dir);
    if (!dh)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (!hostile_prefix(de->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        child_report r;
        int rc = open_in_child(path, &r);
        if (rc < 0)
            fail_msg("%s: child killed by signal %d (a forbidden process start is SIGSYS)", de->d_name, -rc);
        if (rc != 1)
            fail_msg("%s: exit %d, expected a refusal (exit 1)%s", de->d_name, rc, r.opened ? "; it was accepted" : "");
        if (!r.msg[0] || strstr(r.msg, "out of memory") || strchr(r.msg, '\n'))
            fail_msg("%s: refusal without a one-line reason: '%s'", de->d_name, r.msg);
        for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
            if (!strcmp(reasons[i].file, de->d_name)) {
                if (!strstr(r.msg, reasons[i].reason))
                    fail_msg("%s: message '%s' does not name the reason '%s'", de->d_name, r.msg, reasons[i].reason);
                (*known)++;
            }
        }
#ifndef UNDER_ASAN /* ASan's shadow and quarantine are anonymous memory too */
        if (r.rss_anon_kb > 64 * 1024)
            fail_msg("%s: RssAnon %ld kB after the refusal", de->d_name, r.rss_anon_kb);
#endif
        printf("refused %s (RssAnon %ld kB): %s\n", de->d_name, r.rss_anon_kb, r.msg);
        n++;
    }
    closedir(dh);
    return n;
}

/* The sandbox itself must bite, or the hostile test proves nothing. */
static void test_sandbox_bites(void **state) {
    (void)state;
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        forbid_processes();
        execl("/bin/true", "true", (char *)NULL);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
#ifdef __x86_64__
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
#endif
#ifndef UNDER_ASAN
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {64ul << 20, 64ul << 20};
        setrlimit(RLIMIT_DATA, &rl);
        void *p = malloc(80ul << 20);
        _exit(p ? 0 : 7);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 7);
#endif
}

static void test_hostile(void **state) {
    (void)state;
    int pwned_before = pwned_files();
    size_t known = 0, n = 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/torch/hostile", root_dir());
    size_t ours = check_hostile_dir(dir, &known);
    assert_true(ours >= 40);
    snprintf(dir, sizeof dir, "%s/hostile", fixtures());
    if (have_dir(dir)) {
        n = check_hostile_dir(dir, &known);
        assert_true(n >= 8);
        assert_int_equal(known, sizeof reasons / sizeof *reasons);
    } else {
        assert_true(ours >= 40);
        printf("SKIPPED: no ../shared/fixtures/hostile (only tests/data/torch/hostile checked)\n");
    }
    printf("%zu fixture and %zu crafted hostile files refused\n", n, ours);
    assert_int_equal(pwned_files(), pwned_before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wikillama_hf_pt),
        cmocka_unit_test(test_wikillama_hf_pt_legacy),
        cmocka_unit_test(test_wikillama_meta),
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_views_and_shared),
        cmocka_unit_test(test_zip64_and_big_endian),
        cmocka_unit_test(test_nested_sharded_meta),
        cmocka_unit_test(test_sandbox_bites),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
