/* nomoat-merge's inputs: GGUF files as they are; Hugging Face model folders and PEFT adapter
 * folders through nomoat-convert (run as a child process into a private folder beside the
 * output, each result unlinked as soon as it is mapped), so merge only ever reads GGUF. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "merge/merge.h"

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* nomoat-convert beside this program, else the name for a PATH search. */
static void convert_program(char *buf, size_t size) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, size, "%s/nomoat-convert", self);
            if (access(buf, X_OK) == 0) return;
        }
    }
    snprintf(buf, size, "nomoat-convert");
}

static int make_tmpdir(mg_inputs *in, const char *out_path, nm_error *err) {
    if (in->tmpdir) return 0;
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", out_path);
    const char *dir = dirname(copy);
    size_t n = strlen(dir) + 40;
    if (!(in->tmpdir = malloc(n))) return nm_fail(err, "out of memory");
    snprintf(in->tmpdir, n, "%s/.nomoat-merge.XXXXXX", dir);
    if (!mkdtemp(in->tmpdir)) {
        int e = errno;
        free(in->tmpdir);
        in->tmpdir = NULL;
        return nm_fail(err, "cannot create a scratch folder beside %s: %s", out_path, strerror(e));
    }
    return 0;
}

/* Runs nomoat-convert with argv (NULL-terminated, argv[0] ignored); its errors go to our stderr. */
static int run_convert(char **argv, const char *what, nm_error *err) {
    char prog[PATH_MAX + 32];
    convert_program(prog, sizeof prog);
    argv[0] = prog;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return nm_fail(err, "cannot start nomoat-convert for %s: %s", what, strerror(errno));
    if (pid == 0) {
        if (strchr(prog, '/')) execv(prog, argv);
        else execvp(prog, argv);
        fprintf(stderr, MG_TOOL ": cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return nm_fail(err, "waiting for nomoat-convert: %s", strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return nm_fail(err, "%s is a folder and nomoat-convert, which converts it, could not be run", what);
    return nm_fail(err, "%s: nomoat-convert failed (its message is above)", what);
}

/* Converts a folder into tmpdir/<name>.gguf, opens it and unlinks it (the mapping keeps it). */
static gguf_reader *open_converted(mg_inputs *in, const char *folder, const char *name, const char *base,
                                   const char *out_path, int threads, nm_error *err) {
    if (make_tmpdir(in, out_path, err)) return NULL;
    char out[PATH_MAX + 64], t[16];
    snprintf(out, sizeof out, "%s/%s.gguf", in->tmpdir, name);
    snprintf(t, sizeof t, "%d", threads);
    char *argv[16];
    int a = 1;
    argv[a++] = (char *)folder;
    if (base) {
        argv[a++] = "--base";
        argv[a++] = (char *)base;
    }
    argv[a++] = "--outtype";
    argv[a++] = "f32";
    argv[a++] = "--no-fsync";
    argv[a++] = "-q";
    argv[a++] = "-t";
    argv[a++] = t;
    argv[a++] = "-o";
    argv[a++] = out;
    argv[a] = NULL;
    if (run_convert(argv, folder, err)) return NULL;
    gguf_reader *g = gguf_open(out, err);
    unlink(out);
    if (!g) nm_error_prefix(err, "%s (converted)", folder);
    return g;
}

static void arch_of(const gguf_reader *g, char *buf, size_t size) {
    const gguf_value *v = gguf_get(g, "general.architecture");
    if (!v || v->type != GGUF_TYPE_STRING) {
        snprintf(buf, size, "?");
        return;
    }
    snprintf(buf, size, "%.*s", (int)(v->str.len < size ? v->str.len : size - 1), v->str.ptr);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

static int open_adapter(mg_inputs *in, mg_adapter *ad, int index, const char *base, const char *out_path, int threads,
                        nm_error *err) {
    if (nm_lora_parse_arg(ad->arg, ad->path, sizeof ad->path, &ad->scale, err)) return -1;
    if (is_dir(ad->path)) {
        if (!nm_peft_is_adapter_dir(ad->path))
            return nm_fail(err, "--lora %s is a folder without adapter_config.json (not a PEFT adapter)", ad->path);
        char name[32];
        snprintf(name, sizeof name, "adapter-%d", index);
        if (!(ad->g = open_converted(in, ad->path, name, base, out_path, threads, err))) return -1;
    } else if (!(ad->g = gguf_open(ad->path, err))) {
        return nm_error_prefix(err, "%s", ad->path);
    }
    if (nm_lora_open(&ad->lora, ad->g, err)) return nm_error_prefix(err, "%s", ad->path);
    ad->lora_open = true;
    if (ad->lora.n_ignored && !in->quiet)
        fprintf(stderr, MG_TOOL ": note: %s holds %zu norm vectors; like llama.cpp, merge applies only lora_a/lora_b pairs\n",
                ad->path, ad->lora.n_ignored);
    if (strcmp(ad->lora.arch, in->base_arch) != 0)
        return nm_fail(err, "%s is an adapter for architecture '%s', the base model's is '%s'", ad->path, ad->lora.arch,
                       in->base_arch);
    for (size_t i = 0; i < ad->lora.n_pairs; i++) {
        const nm_lora_pair *p = &ad->lora.pairs[i];
        const gguf_tensor_info *t = gguf_find_tensor(in->base, p->target);
        if (!t)
            return nm_fail(err, "%s adapts %s, which the base model does not have: is it an adapter for another model?",
                           ad->path, p->target);
        if (nm_lora_check_base(p, t->ne, err)) return nm_error_prefix(err, "%s", ad->path);
    }
    return 0;
}

int mg_inputs_open(mg_inputs *in, const char *base, const char *const *loras, int n_loras, const char *delta,
                   const char *out_path, int threads, bool quiet, nm_error *err) {
    memset(in, 0, sizeof *in);
    in->quiet = quiet;
    if (is_dir(base)) {
        if (nm_peft_is_adapter_dir(base)) {
            nm_fail(err, "%s is a LoRA adapter; the first argument is the base model (pass adapters with --lora)", base);
            goto fail;
        }
        if (!(in->base = open_converted(in, base, "base", NULL, out_path, threads, err))) goto fail;
    } else if (!(in->base = gguf_open(base, err))) {
        nm_error_prefix(err, "%s", base);
        goto fail;
    }
    if (nm_lora_is_adapter(in->base)) {
        nm_fail(err, "%s is a LoRA adapter; the first argument is the base model (pass adapters with --lora)", base);
        goto fail;
    }
    arch_of(in->base, in->base_arch, sizeof in->base_arch);
    if (n_loras > 0) {
        if (!(in->adapters = calloc((size_t)n_loras, sizeof *in->adapters))) {
            nm_fail(err, "out of memory");
            goto fail;
        }
        in->n_adapters = n_loras;
        for (int i = 0; i < n_loras; i++) {
            in->adapters[i].arg = loras[i];
            if (open_adapter(in, &in->adapters[i], i, base, out_path, threads, err)) goto fail;
        }
    }
    if (delta) {
        if (is_dir(delta)) {
            if (!(in->delta = open_converted(in, delta, "delta", NULL, out_path, threads, err))) goto fail;
        } else if (!(in->delta = gguf_open(delta, err))) {
            nm_error_prefix(err, "%s", delta);
            goto fail;
        }
        if (nm_lora_is_adapter(in->delta)) {
            nm_fail(err, "--delta %s is a LoRA adapter; pass it with --lora", delta);
            goto fail;
        }
        char arch[64];
        arch_of(in->delta, arch, sizeof arch);
        if (strcmp(arch, in->base_arch) != 0) {
            nm_fail(err, "--delta %s is for architecture '%s', the base model's is '%s'", delta, arch, in->base_arch);
            goto fail;
        }
    }
    if (in->tmpdir) {
        rmdir(in->tmpdir);
        free(in->tmpdir);
        in->tmpdir = NULL;
    }
    return 0;
fail:
    mg_inputs_close(in);
    return -1;
}

void mg_inputs_close(mg_inputs *in) {
    for (int i = 0; i < in->n_adapters; i++) {
        if (in->adapters[i].lora_open) nm_lora_free(&in->adapters[i].lora);
        if (in->adapters[i].g) gguf_close(in->adapters[i].g);
    }
    free(in->adapters);
    if (in->base) gguf_close(in->base);
    if (in->delta) gguf_close(in->delta);
    if (in->tmpdir) {
        rmdir(in->tmpdir); /* only when empty: conversions unlink their files right away */
        free(in->tmpdir);
    }
    memset(in, 0, sizeof *in);
}
