/* nomoat-verify: evaluates GGUF models — perplexity, KL divergence, imatrix, a CI gate, tensor
 * diffs and checksums, tokenization. Exit status like diff(1): 0 ok, 1 limits exceeded or
 * differences found, 2 error. */
#include <stdio.h>
#include <string.h>

#include "common/outfile.h"
#include "verify/verify.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nomoat-verify COMMAND [options]\n"
            "commands:\n"
            "  perplexity MODEL -f TEXT   perplexity as llama-perplexity computes it (--kld, --save-logits)\n"

            "  imatrix MODEL -f TEXT -o OUT.gguf\n"
            "                             importance matrix in llama-imatrix's GGUF format\n"
            "  gate --base A --model B -f TEXT --max-ppl-ratio R --max-kld K\n"
            "                             quality gate for CI: exit 1 when a limit is exceeded\n"
            "  diff A.gguf B.gguf         per-tensor RMSE, max |error|, cosine after dequantization\n"
            "  checksums FILE [--check SUMS]\n"
            "                             XXH3-64 of every tensor's data\n"
            "  logits MODEL --prompt TEXT [--top N]\n"
            "                             next-token probabilities after a prompt\n"
            "  tokenize MODEL.gguf|--tokenizer tokenizer.model|tokenizer.json ...\n"
            "                             print token ids\n"
            "perplexity, logits, gate and imatrix take --lora ADAPTER.gguf[:SCALE] (repeatable): LoRA\n"
            "adapters applied at run time as llama.cpp applies them.\n"
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
    if (!strcmp(cmd, "imatrix")) return verify_imatrix_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "gate")) return verify_gate_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "logits")) return verify_logits_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return verify_tokenize_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "diff")) return verify_diff_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "checksums")) return verify_checksums_main(argc - 1, argv + 1);
    fprintf(stderr, "nomoat-verify: unknown command '%s' (see --help)\n", cmd);
    return 2;
}
