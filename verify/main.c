/* nomoat-verify: evaluates GGUF models — perplexity, KL divergence, imatrix, a CI gate, tensor
 * diffs and checksums, tokenization. Exit status like diff(1): 0 ok, 1 limits exceeded or
 * differences found, 2 error. */
#include <stdio.h>
#include <string.h>

#include "formats/outfile.h"
#include "verify/verify.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nomoat-verify COMMAND [options]\n"
            "commands:\n"
            "  perplexity MODEL -f TEXT   perplexity as llama-perplexity computes it (--kld, --save-logits)\n"

            "Run 'nomoat-verify COMMAND --help' for a command's options.\n"
            "Exit status: 0 ok, 1 limits exceeded or differences found, 2 error.\n");
}

int main(int argc, char **argv) {
    nm_outfile_install_signal_handlers();
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "perplexity")) return verify_perplexity_main(argc - 1, argv + 1);
    fprintf(stderr, "nomoat-verify: unknown command '%s' (see --help)\n", cmd);
    return 2;
}
