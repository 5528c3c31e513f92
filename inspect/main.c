/* nomoat-inspect: lists what a model file holds. Detects the format from the file's first
 * bytes (or a folder's contents) and hands it to that format's lister (inspect/<format>.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/version.h"
#include "formats/lora.h"
#include "inspect/inspect.h"

static void usage(FILE *f) {
    fputs("usage: nomoat-inspect [OPTIONS] FILE...\n"
          "\n"
          "Lists the metadata and tensors (name, type, shape, bytes, file offset) of GGUF files,\n"
          "split GGUF models (give the -00001-of-0000N.gguf file), safetensors files and sharded\n"
          "safetensors folders, and PyTorch checkpoints (zip or legacy .bin/.pth/.pt, Hugging Face\n"
          "and Meta folders; pickles are never run). The format is recognised from the contents.\n"
          "LoRA adapters (GGUF, or PEFT folders with adapter_config.json) get a summary first: rank,\n"
          "alpha and the tensors they adapt.\n"
          "\n"
          "  --json            print JSON instead of text: one object per file, an array of them\n"
          "                    when several files are given\n"
          "  --hash            add an XXH3-64 hash of each tensor's bytes\n"
          "  --tensor NAME     list only this tensor\n"
          "  --values N        with --tensor: print its first N values as floats (quantized\n"
          "                    types are dequantized)\n"
          "  --state-key KEY   nested PyTorch checkpoints: the entry holding the state dict\n"
          "  -h, --help        this text\n"
          "  --version         print the version\n"
          "\n"
          "GGUF shapes are listed in GGUF order (ne[0], the row length, first); safetensors and\n"
          "PyTorch shapes in PyTorch order. Exit status: 0 when every file was listed, 1 when a\n"
          "file could not be read (one line on stderr per file), 2 on a usage error.\n",
          f);
}

typedef enum { FMT_UNKNOWN, FMT_GGUF, FMT_SAFETENSORS, FMT_TORCH, FMT_PEFT } file_format;

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A folder is listed by what it holds: safetensors shards or PyTorch checkpoints. */
static file_format folder_format(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return FMT_UNKNOWN;
    file_format f = FMT_UNKNOWN;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (has_suffix(e->d_name, ".safetensors") || strcmp(e->d_name, "model.safetensors.index.json") == 0) {
            f = FMT_SAFETENSORS;
            break;
        }
        if (has_suffix(e->d_name, ".pth") || has_suffix(e->d_name, ".bin") || has_suffix(e->d_name, ".pt"))
            f = FMT_TORCH;
    }
    closedir(d);
    return f;
}

static file_format detect(const char *path, nm_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        nm_fail(err, "cannot open: %s", strerror(errno));
        return FMT_UNKNOWN;
    }
    if (S_ISDIR(st.st_mode)) {
        if (nm_peft_is_adapter_dir(path))
            return FMT_PEFT;
        file_format f = folder_format(path);
        if (f == FMT_UNKNOWN)
            nm_fail(err, "folder holds no safetensors or PyTorch checkpoint files");
        return f;
    }
    if (has_suffix(path, ".safetensors.index.json"))
        return FMT_SAFETENSORS;
    if (has_suffix(path, ".bin.index.json"))
        return FMT_TORCH;
    unsigned char head[16] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nm_fail(err, "cannot open: %s", strerror(errno));
        return FMT_UNKNOWN;
    }
    ssize_t n = read(fd, head, sizeof head);
    int e = errno;
    close(fd);
    if (n < 0) {
        nm_fail(err, "cannot read: %s", strerror(e));
        return FMT_UNKNOWN;
    }
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0)
        return FMT_GGUF;
    if (n >= 4 && memcmp(head, "PK", 2) == 0 && ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6)))
        return FMT_TORCH; /* zip: torch >= 1.6 */
    if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
        return FMT_TORCH; /* a pickle: torch's legacy format */
    if (has_suffix(path, ".safetensors") || (n >= 9 && head[8] == '{'))
        return FMT_SAFETENSORS;
    if (has_suffix(path, ".gguf"))
        return FMT_GGUF; /* let the GGUF reader say what is wrong with it */
    if (has_suffix(path, ".pth") || has_suffix(path, ".pt") || has_suffix(path, ".bin"))
        return FMT_TORCH;
    nm_fail(err, "not a recognised model file (neither GGUF, safetensors nor a PyTorch checkpoint)");
    return FMT_UNKNOWN;
}

static int inspect_one(const char *path, const inspect_options *opts, cJSON *out, nm_error *err) {
    switch (detect(path, err)) {
    case FMT_GGUF:
        return inspect_gguf(path, opts, out, err);
    case FMT_SAFETENSORS:
        return inspect_safetensors(path, opts, out, err);
    case FMT_TORCH:
        return inspect_torch(path, opts, out, err);
    case FMT_PEFT:
        return inspect_peft(path, opts, out, err);
    default:
        return -1;
    }
}

int main(int argc, char **argv) {
    inspect_options opts = {0};
    enum { OPT_JSON = 256, OPT_HASH, OPT_TENSOR, OPT_VALUES, OPT_STATE_KEY, OPT_VERSION };
    static const struct option long_opts[] = {
        {"json", no_argument, NULL, OPT_JSON},          {"hash", no_argument, NULL, OPT_HASH},
        {"tensor", required_argument, NULL, OPT_TENSOR}, {"values", required_argument, NULL, OPT_VALUES},
        {"state-key", required_argument, NULL, OPT_STATE_KEY}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},    {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: opts.json = true; break;
        case OPT_HASH: opts.hash = true; break;
        case OPT_TENSOR: opts.tensor = optarg; break;
        case OPT_STATE_KEY: opts.state_key = optarg; break;
        case OPT_VALUES: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0) {
                fprintf(stderr, "nomoat-inspect: --values wants a count, not '%s'\n", optarg);
                return 2;
            }
            opts.values = v;
            break;
        }
        case OPT_VERSION: printf("nomoat-inspect %s\n", NOMOAT_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (opts.values > 0 && !opts.tensor) {
        fprintf(stderr, "nomoat-inspect: --values needs --tensor NAME\n");
        return 2;
    }
    int n_files = argc - optind, status = 0;
    cJSON *all = opts.json && n_files > 1 ? cJSON_CreateArray() : NULL;
    for (int i = optind; i < argc; i++) {
        nm_error err = {{0}};
        cJSON *obj = opts.json ? cJSON_CreateObject() : NULL;
        if ((opts.json && !obj) || inspect_one(argv[i], &opts, obj, &err) != 0) {
            fflush(stdout);
            fprintf(stderr, "nomoat-inspect: %s: %s\n", argv[i], err.msg[0] ? err.msg : "out of memory");
            cJSON_Delete(obj);
            status = 1;
            continue;
        }
        if (!opts.json)
            continue;
        if (all) {
            cJSON_AddItemToArray(all, obj);
            continue;
        }
        char *text = cJSON_Print(obj);
        cJSON_Delete(obj);
        if (!text || puts(text) == EOF) {
            fprintf(stderr, "nomoat-inspect: %s: cannot write the output\n", argv[i]);
            status = 1;
        }
        free(text);
    }
    if (all) {
        char *text = cJSON_Print(all);
        if (!text || puts(text) == EOF) {
            fprintf(stderr, "nomoat-inspect: cannot write the output\n");
            status = 1;
        }
        free(text);
        cJSON_Delete(all);
    }
    if (fflush(stdout) != 0 && status == 0) {
        fprintf(stderr, "nomoat-inspect: cannot write the output\n");
        status = 1;
    }
    return status;
}
