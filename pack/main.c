/* nomoat-pack: lossless zstd packing of model files for distribution (formats/pack.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/cli.h"
#include "common/outfile.h"
#include "formats/pack.h"
#include "formats/tensor.h"

static const char usage[] =
    "usage: nomoat-pack [options] IN [-o OUT]        pack IN into OUT (default IN.nmz)\n"
    "       nomoat-pack -d [options] IN.nmz [-o OUT] unpack (default: IN without .nmz)\n"
    "       nomoat-pack --test IN.nmz                check every chunk and the whole-file hash\n"
    "       nomoat-pack --list IN.nmz                list tensors, sizes and ratios\n"
    "       nomoat-pack --extract TENSOR IN.nmz [-o OUT]  decode one tensor's bytes only\n"
    "\n"
    "Packs GGUF files tensor by tensor into independently decompressible, checksummed zstd\n"
    "chunks, regrouping float bytes (exponents apart from sign and mantissa) so they compress\n"
    "better; any other file is packed as plain zstd chunks. Unpacking reproduces the original\n"
    "byte for byte or fails naming the first damaged chunk, leaving no output.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     output path\n"
    "  -l, --level N         zstd level (default 3)\n"
    "  -T, --threads N       threads (default: all cores)\n"
    "      --chunk-size SIZE largest chunk of original bytes (default 4MiB)\n"
    "      --raw             no byte regrouping (plain zstd per chunk)\n"
    "  -f, --force           replace an existing output\n"
    "      --no-fsync        do not flush the output to disk (benchmarks, scratch)\n"
    "  -q, --quiet           no progress bar or summary\n"
    "      --json            print the summary as JSON on stdout\n"
    "  -h, --help            this help\n";

enum mode { MODE_PACK, MODE_UNPACK, MODE_TEST, MODE_LIST, MODE_EXTRACT };

static int fail(const char *msg) {
    fprintf(stderr, "nomoat-pack: %s\n", msg);
    return 1;
}

static char *default_output(const char *in, enum mode mode) {
    size_t n = strlen(in);
    if (mode == MODE_PACK) {
        char *out = malloc(n + 5);
        if (out)
            snprintf(out, n + 5, "%s.nmz", in);
        return out;
    }
    if (n > 4 && strcmp(in + n - 4, ".nmz") == 0)
        return strndup(in, n - 4);
    return NULL;
}

static void print_json(cJSON *root) {
    char *s = cJSON_Print(root);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(root);
}

static int list_pack(nm_pack_reader *r, const char *path, bool json) {
    size_t n = nm_pack_tensor_count(r);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "file", path);
        cJSON_AddBoolToObject(root, "gguf", nm_pack_is_gguf(r));
        cJSON_AddNumberToObject(root, "original_size", (double)nm_pack_original_size(r));
        cJSON_AddNumberToObject(root, "packed_size", (double)nm_pack_packed_size(r));
        cJSON_AddNumberToObject(root, "chunks", nm_pack_chunk_count(r));
        cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
        for (size_t i = 0; i < n; i++) {
            const nm_pack_tensor *t = nm_pack_tensor_at(r, i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "type", t->type == UINT32_MAX ? "-" : ggml_type_name(t->type));
            cJSON_AddNumberToObject(o, "bytes", (double)t->size);
            cJSON_AddNumberToObject(o, "packed", (double)t->packed_size);
            cJSON_AddNumberToObject(o, "chunks", t->n_chunks);
            cJSON_AddStringToObject(o, "transform", nm_pack_transform_name(t->transform));
            cJSON_AddItemToArray(arr, o);
        }
        print_json(root);
        return 0;
    }
    char a[32], b[32];
    printf("%s: %s, %s -> %s (%.3fx), %u chunks\n", path, nm_pack_is_gguf(r) ? "GGUF" : "file",
           nm_format_bytes(nm_pack_original_size(r), a, sizeof a), nm_format_bytes(nm_pack_packed_size(r), b, sizeof b),
           nm_pack_packed_size(r) ? (double)nm_pack_original_size(r) / (double)nm_pack_packed_size(r) : 0.0,
           nm_pack_chunk_count(r));
    printf("%-40s %-6s %12s %12s %7s %6s  %s\n", "tensor", "type", "bytes", "packed", "ratio", "chunks", "transform");
    for (size_t i = 0; i < n; i++) {
        const nm_pack_tensor *t = nm_pack_tensor_at(r, i);
        printf("%-40s %-6s %12llu %12llu %7.3f %6u  %s\n", t->name, t->type == UINT32_MAX ? "-" : ggml_type_name(t->type),
               (unsigned long long)t->size, (unsigned long long)t->packed_size,
               t->packed_size ? (double)t->original_size / (double)t->packed_size : 0.0, t->n_chunks,
               nm_pack_transform_name(t->transform));
    }
    return 0;
}

static int write_extract(const char *out_path, const void *data, size_t size, unsigned flags, nm_error *err) {
    if (!out_path) {
        if (isatty(STDOUT_FILENO))
            return nm_fail(err, "refusing to write binary tensor data to a terminal (use -o FILE or a pipe)");
        const char *p = data;
        while (size > 0) {
            ssize_t w = write(STDOUT_FILENO, p, size);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return nm_fail(err, "writing to standard output: %s", strerror(errno));
            p += w;
            size -= (size_t)w;
        }
        return 0;
    }
    nm_outfile *out = nm_outfile_create(out_path, flags, err);
    if (!out)
        return -1;
    if (nm_outfile_write(out, data, size, err) != 0) {
        nm_outfile_abort(out);
        return -1;
    }
    return nm_outfile_commit(out, err);
}

static int do_pack(const char *in, const char *out_path, const nm_pack_options *opts, bool json) {
    nm_error err = {{0}};
    nm_pack_stats st;
    double t0 = nm_now();
    if (nm_pack_file(in, out_path, opts, &st, &err) != 0) {
        fprintf(stderr, "nomoat-pack: %s\n", err.msg);
        return 1;
    }
    double secs = nm_now() - t0;
    double ratio = st.packed_size ? (double)st.original_size / (double)st.packed_size : 0;
    double mbps = secs > 0 ? (double)st.original_size / secs / 1e6 : 0;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "input", in);
        cJSON_AddStringToObject(root, "output", out_path);
        cJSON_AddBoolToObject(root, "gguf", st.gguf);
        cJSON_AddNumberToObject(root, "original_size", (double)st.original_size);
        cJSON_AddNumberToObject(root, "packed_size", (double)st.packed_size);
        cJSON_AddNumberToObject(root, "ratio", ratio);
        cJSON_AddNumberToObject(root, "seconds", secs);
        cJSON_AddNumberToObject(root, "mb_per_s", mbps);
        cJSON_AddNumberToObject(root, "level", opts->level);
        cJSON_AddNumberToObject(root, "chunks", st.n_chunks);
        cJSON_AddNumberToObject(root, "tensors", st.n_tensors);
        cJSON *tr = cJSON_AddObjectToObject(root, "transforms");
        for (unsigned t = 0; t < NM_PACK_TRANSFORM_COUNT; t++) {
            if (!st.transform_bytes[t])
                continue;
            cJSON *o = cJSON_AddObjectToObject(tr, nm_pack_transform_name(t));
            cJSON_AddNumberToObject(o, "bytes", (double)st.transform_bytes[t]);
            cJSON_AddNumberToObject(o, "packed", (double)st.transform_packed[t]);
        }
        print_json(root);
    } else if (!opts->quiet) {
        char a[32], b[32];
        fprintf(stderr, "nomoat-pack: %s -> %s: %s -> %s (%.3fx) in %.2f s, %.0f MB/s\n", in, out_path,
                nm_format_bytes(st.original_size, a, sizeof a), nm_format_bytes(st.packed_size, b, sizeof b), ratio,
                secs, mbps);
    }
    return 0;
}

static int do_read(enum mode mode, const char *in, const char *out_path, const char *extract,
                   const nm_pack_options *opts, bool json) {
    nm_error err = {{0}};
    double t0 = nm_now();
    nm_pack_reader *r = nm_pack_open(in, &err);
    if (!r) {
        fprintf(stderr, "nomoat-pack: %s: %s\n", in, err.msg);
        return 1;
    }
    int rc = 0;
    if (mode == MODE_LIST) {
        rc = list_pack(r, in, json);
    } else if (mode == MODE_EXTRACT) {
        const nm_pack_tensor *t = nm_pack_find_tensor(r, extract);
        void *data = NULL;
        if (!t) {
            fprintf(stderr, "nomoat-pack: %s: no tensor named '%s' (see --list)\n", in, extract);
            rc = 1;
        } else if (nm_pack_extract(r, t, &data, &err) != 0 ||
                   write_extract(out_path, data, (size_t)t->size, opts->outfile_flags, &err) != 0) {
            fprintf(stderr, "nomoat-pack: %s: %s\n", in, err.msg);
            rc = 1;
        }
        free(data);
    } else if (nm_unpack(r, mode == MODE_UNPACK ? out_path : NULL, opts, &err) != 0) {
        fprintf(stderr, "nomoat-pack: %s: %s\n", in, err.msg);
        rc = 1;
    } else {
        double secs = nm_now() - t0;
        double mbps = secs > 0 ? (double)nm_pack_original_size(r) / secs / 1e6 : 0;
        if (json) {
            cJSON *root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "input", in);
            if (mode == MODE_UNPACK)
                cJSON_AddStringToObject(root, "output", out_path);
            cJSON_AddBoolToObject(root, "ok", 1);
            cJSON_AddNumberToObject(root, "original_size", (double)nm_pack_original_size(r));
            cJSON_AddNumberToObject(root, "seconds", secs);
            cJSON_AddNumberToObject(root, "mb_per_s", mbps);
            print_json(root);
        } else if (!opts->quiet) {
            fprintf(stderr, "nomoat-pack: %s: %s (%u chunks, %.2f s, %.0f MB/s)\n", in,
                    mode == MODE_TEST ? "OK" : out_path, nm_pack_chunk_count(r), secs, mbps);
        }
    }
    nm_pack_close(r);
    return rc;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"decompress", no_argument, 0, 'd'}, {"output", required_argument, 0, 'o'},
        {"level", required_argument, 0, 'l'}, {"threads", required_argument, 0, 'T'},
        {"force", no_argument, 0, 'f'}, {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
        {"list", no_argument, 0, 'L'}, {"test", no_argument, 0, 't'}, {"extract", required_argument, 0, 'x'},
        {"no-fsync", no_argument, 0, 'N'}, {"json", no_argument, 0, 'J'}, {"chunk-size", required_argument, 0, 'C'},
        {"raw", no_argument, 0, 'R'}, {0, 0, 0, 0}};
    enum mode mode = MODE_PACK;
    const char *out_path = NULL, *extract = NULL;
    nm_pack_options opts = {.level = NM_PACK_DEFAULT_LEVEL};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "do:l:T:fqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': mode = MODE_UNPACK; break;
        case 'o': out_path = optarg; break;
        case 'l': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < -131072 || v > 22 || v == 0)
                return fail("-l needs a zstd level (1..19, up to 22; negative for fast modes)");
            opts.level = (int)v;
            break;
        }
        case 'T':
            if (nm_parse_threads(optarg, &opts.threads) != 0)
                return fail("-T needs a thread count");
            break;
        case 'f': opts.outfile_flags |= NM_OUT_FORCE; break;
        case 'q': opts.quiet = true; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'L': mode = MODE_LIST; break;
        case 't': mode = MODE_TEST; break;
        case 'x': mode = MODE_EXTRACT; extract = optarg; break;
        case 'N': opts.outfile_flags |= NM_OUT_NO_FSYNC; break;
        case 'J': json = true; break;
        case 'C': {
            uint64_t size;
            if (nm_parse_size(optarg, &size) != 0 || size < 4096 || size > NM_PACK_MAX_CHUNK)
                return fail("--chunk-size needs a size between 4KiB and 64MiB");
            opts.chunk_size = (size_t)size;
            break;
        }
        case 'R': opts.raw_only = true; break;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        fputs(usage, stderr);
        return 2;
    }
    const char *in = argv[optind];
    nm_outfile_install_signal_handlers();
    if (json)
        opts.quiet = true;
    char *owned_out = NULL;
    if ((mode == MODE_PACK || mode == MODE_UNPACK) && !out_path) {
        owned_out = default_output(in, mode);
        if (!owned_out) {
            fprintf(stderr, "nomoat-pack: %s: does not end in .nmz; name the output with -o\n", in);
            return 1;
        }
        out_path = owned_out;
    }
    int rc = mode == MODE_PACK ? do_pack(in, out_path, &opts, json) : do_read(mode, in, out_path, extract, &opts, json);
    free(owned_out);
    return rc;
}
