/* nomoat-merge: a base model plus LoRA adapters (stacked in order, each with its scale) or delta
 * weights -> one GGUF model, as llama-export-lora writes it or straight to any type nomoat-quantize
 * knows, streamed tensor by tensor on all cores. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/outfile.h"
#include "merge/merge.h"
#include "quantize/recipe.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: " MG_TOOL " BASE -o OUT.gguf --lora ADAPTER[:SCALE] [--lora ADAPTER[:SCALE] ...] [options]\n"
            "       " MG_TOOL " BASE -o OUT.gguf --delta DELTA [options]\n"
            "\n"
            "Merges LoRA adapters into a model (W + scale * alpha/r * B A for every adapted weight; several\n"
            "adapters are added in the order given), or adds delta weights (Vicuna v0 / StableVicuna style:\n"
            "target = base + delta). BASE is a GGUF model or a Hugging Face model folder; an ADAPTER is a\n"
            "GGUF adapter (convert_lora_to_gguf.py, nomoat-convert --base) or a PEFT folder; DELTA is a GGUF\n"
            "or a Hugging Face folder of the same shapes (its embedding/output may have extra token rows).\n"
            "Folders are converted first by nomoat-convert (F32, into a scratch folder beside OUT). Tensors\n"
            "stream from the inputs to OUT on all cores; OUT appears only when complete.\n"
            "\n"
            "options:\n"
            "  -o, --outfile OUT.gguf   the merged model (required)\n"
            "      --lora A[:SCALE]     an adapter and its scale (default 1); repeatable\n"
            "      --delta DELTA        delta weights instead of adapters\n"
            "      --outtype T          default: llama-export-lora's file (changed tensors F32 when the base\n"
            "                           tensor is F32, else F16; the others copied; tensors in name order;\n"
            "                           general.file_type 1). T = F32, F16, BF16 or a quantization type of\n"
            "                           nomoat-quantize (Q8_0, Q4_K_M, ...): the file nomoat-quantize makes\n"
            "                           from the merged model, in one pass\n"
            "      --imatrix FILE       importance matrix for a quantized --outtype\n"
            "      --pure               no quantization mixture (as nomoat-quantize --pure)\n"
            "      --allow-requantize   accept quantized base tensors that need a new type\n"
            "      --dry-run            print the plan, write nothing\n"
            "      --json               print a JSON summary on stdout\n"
            "  -t, --threads N          worker threads (default: all cores)\n"
            "  -f, --force              replace OUT if it exists\n"
            "      --no-fsync           do not flush OUT to disk\n"
            "  -q, --quiet              no progress, no summary\n"
            "  -h, --help               this help\n"
            "\n"
            "Exit status: 0 on success, 1 on any error (nothing written).\n");
}

static int die(const char *msg, const char *arg) {
    fprintf(stderr, MG_TOOL ": ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\n");
    return 1;
}

int main(int argc, char **argv) {
    nm_outfile_install_signal_handlers();
    mg_options o = {.threads = 0};
    const char *base = NULL, *delta = NULL;
    const char **loras = calloc((size_t)argc, sizeof *loras);
    int n_loras = 0;
    if (!loras) return die("%s", "out of memory");
    int status = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        const bool takes = !strcmp(a, "-o") || !strcmp(a, "--outfile") || !strcmp(a, "--lora") || !strcmp(a, "--delta") ||
                           !strcmp(a, "--outtype") || !strcmp(a, "--imatrix") || !strcmp(a, "-t") ||
                           !strcmp(a, "--threads");
        if (takes && !next) {
            status = die("%s needs a value (see --help)", a);
            goto done;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            status = 0;
            goto done;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--outfile")) {
            o.out = argv[++i];
        } else if (!strcmp(a, "--lora")) {
            loras[n_loras++] = argv[++i];
        } else if (!strcmp(a, "--delta")) {
            if (delta) {
                status = die("%s", "only one --delta");
                goto done;
            }
            delta = argv[++i];
        } else if (!strcmp(a, "--outtype")) {
            o.outtype = argv[++i];
        } else if (!strcmp(a, "--imatrix")) {
            o.imatrix = argv[++i];
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (nm_parse_threads(argv[++i], &o.threads)) {
                status = die("--threads '%s' is not a thread count", argv[i]);
                goto done;
            }
        } else if (!strcmp(a, "--pure")) {
            o.pure = true;
        } else if (!strcmp(a, "--allow-requantize")) {
            o.allow_requantize = true;
        } else if (!strcmp(a, "--dry-run")) {
            o.dry_run = true;
        } else if (!strcmp(a, "--json")) {
            o.json = true;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--force")) {
            o.force = true;
        } else if (!strcmp(a, "--no-fsync")) {
            o.no_fsync = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.quiet = true;
        } else if (a[0] == '-' && a[1]) {
            status = die("unknown option %s (see --help)", a);
            goto done;
        } else if (!base) {
            base = a;
        } else {
            status = die("unexpected argument %s: give one BASE (adapters with --lora)", a);
            goto done;
        }
    }
    if (!base || !o.out) {
        usage(stderr);
        goto done;
    }
    if (!n_loras && !delta) {
        status = die("%s", "nothing to merge: give --lora ADAPTER (repeatable) or --delta DELTA");
        goto done;
    }
    if (n_loras && delta) {
        status = die("%s", "--lora and --delta cannot be combined: add the delta first, then merge adapters into the result");
        goto done;
    }
    if (o.outtype) {
        const qt_ftype *ft = qt_ftype_from_name(o.outtype);
        if (!ft || qt_ftype_is_copy(ft)) {
            fprintf(stderr, MG_TOOL ": unknown --outtype '%s'; one of:", o.outtype);
            for (const qt_ftype *f = qt_ftype_list(); f->name; f++)
                if (!qt_ftype_is_copy(f)) fprintf(stderr, " %s", f->name);
            fprintf(stderr, "\n");
            goto done;
        }
    }
    if (!o.dry_run && !o.force && access(o.out, F_OK) == 0) {
        status = die("%s exists; pass --force to replace it", o.out);
        goto done;
    }
    nm_error err = {{0}};
    mg_inputs in;
    if (mg_inputs_open(&in, base, loras, n_loras, delta, o.out, o.threads, o.quiet, &err)) {
        fprintf(stderr, MG_TOOL ": %s\n", err.msg);
        goto done;
    }
    mg_stats st;
    int rc = mg_run(&in, &o, &st, &err);
    if (rc) {
        fprintf(stderr, MG_TOOL ": %s\n", err.msg);
    } else if (!o.dry_run) {
        const double mbs = st.seconds > 0 ? (double)st.bytes_in / st.seconds / 1e6 : 0;
        if (o.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "output", o.out);
            cJSON_AddStringToObject(j, "outtype", o.outtype ? o.outtype : "export");
            cJSON_AddNumberToObject(j, "adapters", n_loras);
            cJSON_AddBoolToObject(j, "delta", delta != NULL);
            cJSON_AddNumberToObject(j, "tensors", (double)st.n_tensors);
            cJSON_AddNumberToObject(j, "merged_tensors", (double)st.n_merged);
            cJSON_AddNumberToObject(j, "bytes_in", (double)st.bytes_in);
            cJSON_AddNumberToObject(j, "bytes_out", (double)st.bytes_out);
            cJSON_AddNumberToObject(j, "seconds", st.seconds);
            cJSON_AddNumberToObject(j, "mb_per_s", mbs);
            cJSON_AddNumberToObject(j, "peak_anon_bytes", (double)st.peak_anon);
            cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)nm_peak_rss());
            char *text = cJSON_PrintUnformatted(j);
            if (text) puts(text);
            free(text);
            cJSON_Delete(j);
        } else if (!o.quiet) {
            char a[32], b[32];
            fprintf(stderr, MG_TOOL ": wrote %s: %zu tensors (%zu merged), %s -> %s, %.2f s (%.0f MB/s)\n", o.out,
                    st.n_tensors, st.n_merged, nm_format_bytes(st.bytes_in, a, sizeof a),
                    nm_format_bytes(st.bytes_out, b, sizeof b), st.seconds, mbs);
        }
        status = 0;
    } else {
        status = 0;
    }
    mg_inputs_close(&in);
done:
    free(loras);
    return status;
}
