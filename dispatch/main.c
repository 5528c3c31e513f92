/* nomoat: runs `nomoat <tool> ...` as `nomoat-<tool> ...`, looking first beside this binary
 * (so an uninstalled build folder works), then on PATH. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/version.h"

static const struct {
    const char *name, *what;
} tools[] = {
    {"convert", "Hugging Face / Meta checkpoints -> GGUF"},
    {"quantize", "GGUF -> block-quantized GGUF (llama-quantize compatible)"},
    {"verify", "tokenize, perplexity, KL-divergence, imatrix, quality gate, diff, checksums"},
    {"inspect", "metadata and tensors of GGUF, safetensors and torch files"},
    {"pack", "lossless zstd packing for distribution"},
    {"merge", "LoRA adapters or delta weights + base -> merged GGUF (llama-export-lora compatible)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: nomoat <tool> [args...]   (nomoat <tool> --help for its options)\n\ntools:\n");
    for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++)
        fprintf(f, "  %-9s %s\n", tools[i].name, tools[i].what);
    fprintf(f, "\n  nomoat --version   print the version\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nomoat %s\n", NOMOAT_VERSION);
        return 0;
    }
    size_t i;
    for (i = 0; i < sizeof tools / sizeof tools[0]; i++)
        if (strcmp(argv[1], tools[i].name) == 0)
            break;
    if (i == sizeof tools / sizeof tools[0]) {
        fprintf(stderr, "nomoat: unknown tool '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    char program[64];
    snprintf(program, sizeof program, "nomoat-%s", tools[i].name);
    argv[1] = program;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash && (size_t)(slash - self) + 1 + strlen(program) < sizeof self) {
            strcpy(slash + 1, program);
            if (access(self, X_OK) == 0)
                execv(self, argv + 1);
        }
    }
    execvp(program, argv + 1);
    fprintf(stderr, "nomoat: cannot run %s: %s\n", program, strerror(errno));
    return 127;
}
