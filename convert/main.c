/* nomoat-convert: a Hugging Face or Meta Llama checkpoint folder -> one GGUF v3 file, written
 * the way llama.cpp's converter writes it (FORMATS.md §6-7), streamed tensor by tensor. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/convert.h"
#include "common/cli.h"
#include "formats/gguf.h"
#include "formats/lora.h"
#include "common/outfile.h"
#include "common/parallel.h"
#include "formats/quants.h"
#include "formats/bpe.h"
#include "formats/spm.h"
#include "formats/tensor.h"

#define TOOL "nomoat-convert"
/* Output bytes converted per parallel step, two such buffers (one converted while the other is
 * written). The output goes to the device by DMA (common/outfile.h NM_OUT_DIRECT), so there is no
 * cache to stay within: larger steps mean fewer pool hand-offs and system calls. On the 2.2 GB
 * bench (least CPU of 4 runs, two trials): 4 MB 0.62-0.73 s, 8 MB 0.53-0.58 s, 16 MB 0.51-0.53 s. */
#define CHUNK_TARGET (16u << 20)

static void usage(FILE *f) {
    fprintf(f,
            "usage: " TOOL " [options] MODEL_DIR\n"
            "\n"
            "Converts a model checkpoint to one GGUF v3 file that llama.cpp loads unchanged.\n"
            "MODEL_DIR is a Hugging Face folder (config.json, *.safetensors or pytorch_model*.bin,\n"
            "tokenizer.model or tokenizer.json) or Meta's original layout (params.json, consolidated.NN.pth,\n"
            "tokenizer.model). Families: LlamaForCausalLM, MistralForCausalLM, GPTNeoXForCausalLM,\n"
            "GPT2LMHeadModel, Qwen2ForCausalLM, Qwen3ForCausalLM, MixtralForCausalLM, Qwen3MoeForCausalLM,\n"
            "Phi3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM (each described in arch/; others are\n"
            "refused by name).\n"
            "\n"
            "options:\n"
            "  -o, --outfile OUT.gguf   output file (default: MODEL_DIR/<Name>-<size>-<TYPE>.gguf)\n"
            "      --outtype T          auto (default), f32, f16, bf16 or q8_0; auto keeps BF16 weights\n"
            "                           BF16 and makes F16/F32 weights F16; 1-D tensors stay F32\n"
            "      --split-max-size N   split the output into shards of at most N bytes (e.g. 2G, 500M)\n"
            "      --context-length N   llama.context_length (Meta's params.json lacks it: the default is\n"
            "                           llama.cpp's guess from norm_eps / rope_theta)\n"
            "      --vocab-only         write only the tokenizer and hyper-parameters\n"
            "      --pre NAME           BPE pre-tokenizer name to record (tokenizer.ggml.pre) instead of\n"
            "                           the one derived from tokenizer.json's pre_tokenizer\n"
            "      --dry-run            print the plan (tensor table, output size) and write nothing\n"
            "  -f, --force              replace an existing output file\n"
            "  -t, --threads N          worker threads (default: all cores)\n"
            "      --no-fsync           do not flush the output to disk before finishing\n"
            "      --json               print a JSON summary on stdout\n"
            "      --base BASE          MODEL_DIR is a PEFT LoRA adapter (adapter_config.json +\n"
            "                           adapter_model.safetensors/.bin) for the model BASE (its HF folder\n"
            "                           or GGUF): write the GGUF adapter llama.cpp loads with --lora\n"
            "                           (default output DIR/<Name>-<TYPE>-LoRA.gguf, default --outtype f32)\n"
            "  -q, --quiet              print nothing but errors\n"
            "  -h, --help               this help\n"
            "\n"
            "Supported: LlamaForCausalLM and MistralForCausalLM (GQA or MHA, tied or untied embeddings)\n"
            "with a SentencePiece tokenizer.model or a byte-level BPE tokenizer.json. Exit status: 0 on success, 1 on any error (no output\n"
            "file is left behind).\n"
            "\n"
            "The output is written with O_DIRECT where the file system supports it: it goes to the disk without a copy\n"
            "into the page cache, so it is not in the cache afterwards.\n");
}

typedef struct options {
    const char *dir;
    const char *outfile;
    conv_outtype outtype;
    uint64_t split_max_size;
    uint32_t context_length;
    bool has_context_length;
    bool vocab_only, dry_run, force, no_fsync, json, quiet;
    int threads;
    const char *base; /* adapter mode (convert/lora.c) */
    bool outtype_given;
    const char *pre;  /* BPE pre-tokenizer override */
} options;

static int parse_args(int argc, char **argv, options *o) {
    enum { O_OUTTYPE = 256, O_SPLIT, O_CTX, O_VOCAB, O_DRY, O_NOFSYNC, O_JSON, O_BASE, O_PRE };
    static const struct option longopts[] = {
        {"outfile", required_argument, NULL, 'o'}, {"outtype", required_argument, NULL, O_OUTTYPE},
        {"split-max-size", required_argument, NULL, O_SPLIT}, {"context-length", required_argument, NULL, O_CTX},
        {"vocab-only", no_argument, NULL, O_VOCAB}, {"dry-run", no_argument, NULL, O_DRY},
        {"force", no_argument, NULL, 'f'}, {"threads", required_argument, NULL, 't'},
        {"no-fsync", no_argument, NULL, O_NOFSYNC}, {"json", no_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'}, {"base", required_argument, NULL, O_BASE},
        {"pre", required_argument, NULL, O_PRE}, {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->outtype = CONV_OUT_AUTO;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":o:ft:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o': o->outfile = optarg; break;
        case O_OUTTYPE:
            o->outtype_given = true;
            if (conv_outtype_parse(optarg, &o->outtype) != 0) {
                fprintf(stderr, TOOL ": unknown --outtype '%s' (choose auto, f32, f16, bf16 or q8_0)\n", optarg);
                return -1;
            }
            break;
        case O_SPLIT:
            if (nm_parse_size(optarg, &o->split_max_size) != 0 || o->split_max_size == 0) {
                fprintf(stderr, TOOL ": --split-max-size '%s' is not a size like 2G or 500M\n", optarg);
                return -1;
            }
            break;
        case O_CTX: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || v == 0 || v > UINT32_MAX || optarg[0] == '-') {
                fprintf(stderr, TOOL ": --context-length '%s' is not a positive integer\n", optarg);
                return -1;
            }
            o->context_length = (uint32_t)v;
            o->has_context_length = true;
            break;
        }
        case O_VOCAB: o->vocab_only = true; break;
        case O_DRY: o->dry_run = true; break;
        case 'f': o->force = true; break;
        case 't':
            if (nm_parse_threads(optarg, &o->threads) != 0) {
                fprintf(stderr, TOOL ": --threads '%s' is not a thread count\n", optarg);
                return -1;
            }
            break;
        case O_NOFSYNC: o->no_fsync = true; break;
        case O_JSON: o->json = true; break;
        case O_BASE: o->base = optarg; break;
        case O_PRE:
            if (!bpe_pre_supported(optarg)) {
                fprintf(stderr, TOOL ": --pre '%s' is not a pre-tokenizer nomoat implements (one of: %s)\n", optarg,
                        bpe_pre_names);
                return -1;
            }
            o->pre = optarg;
            break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        case ':':
            fprintf(stderr, TOOL ": option %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, TOOL ": unknown option %s (see --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? TOOL ": no model folder given (see --help)\n"
                                       : TOOL ": expected one model folder, got %d arguments (see --help)\n",
                argc - optind);
        return -1;
    }
    o->dir = argv[optind];
    return 0;
}

/* ---------------- metadata (counted for --dry-run, written otherwise) ---------------- */

typedef struct kv_sink {
    gguf_writer *w; /* NULL: only count bytes */
    uint64_t bytes;
    uint64_t count;
    int failed;
} kv_sink;

static void kv_key(kv_sink *k, const char *key, uint64_t value_bytes) {
    k->bytes += 8 + strlen(key) + 4 + value_bytes;
    k->count++;
}
static void kv_u32(kv_sink *k, const char *key, uint32_t v) {
    kv_key(k, key, 4);
    if (k->w && gguf_writer_set_u32(k->w, key, v) != 0)
        k->failed = 1;
}
static void kv_i32(kv_sink *k, const char *key, int32_t v) {
    kv_key(k, key, 4);
    if (k->w && gguf_writer_set_i32(k->w, key, v) != 0)
        k->failed = 1;
}
static void kv_f32(kv_sink *k, const char *key, float v) {
    kv_key(k, key, 4);
    if (k->w && gguf_writer_set_f32(k->w, key, v) != 0)
        k->failed = 1;
}
static void kv_bool(kv_sink *k, const char *key, bool v) {
    kv_key(k, key, 1);
    if (k->w && gguf_writer_set_bool(k->w, key, v) != 0)
        k->failed = 1;
}
static void kv_str(kv_sink *k, const char *key, const char *s) {
    kv_key(k, key, 8 + strlen(s));
    if (k->w && gguf_writer_set_string(k->w, key, s, strlen(s)) != 0)
        k->failed = 1;
}

typedef struct vocab_arrays {
    uint32_t n;
    gguf_string *tokens;
    const float *scores;  /* NULL for BPE */
    const int32_t *types;
    /* BPE (tokenizer.json) only */
    const char *pre;
    uint32_t n_merges;
    gguf_string *merges;  /* "left right" */
    char *merge_text;
} vocab_arrays;

static void vocab_arrays_free(vocab_arrays *v) {
    free(v->tokens);
    free(v->merges);
    free(v->merge_text);
    memset(v, 0, sizeof *v);
}

/* The BPE vocabulary as llama.cpp's get_vocab_base + gguf.SpecialVocab build it: tokens and
 * types from tokenizer.json (gaps up to config.json's vocab_size as [PADn] UNUSED), merges as
 * "left right" strings (a space inside a part written as U+0120, as gguf-py does). */
static int build_bpe_vocab(vocab_arrays *v, bpe_vocab *bv, const conv_config *c, const char *pre, nm_error *err) {
    memset(v, 0, sizeof *v);
    if (c->n_vocab && c->n_vocab < bv->n_tokens)
        return nm_fail(err, "tokenizer.json has token ids up to %u but config.json's vocab_size is %u",
                       bv->n_tokens - 1, c->n_vocab);
    if (c->n_vocab && bpe_vocab_resize(bv, c->n_vocab, err) != 0)
        return -1;
    v->pre = pre ? pre : bv->pre;
    if (!v->pre[0])
        return nm_fail(err, "%s", bv->pre_error);
    v->n = bv->n_tokens;
    v->tokens = calloc(v->n ? v->n : 1, sizeof *v->tokens);
    v->merges = calloc(bv->n_merges ? bv->n_merges : 1, sizeof *v->merges);
    size_t bytes = 1;
    for (uint32_t i = 0; i < bv->n_merges; i++)
        bytes += 2 * ((size_t)bv->merge_left_lens[i] + bv->merge_right_lens[i]) + 1;
    v->merge_text = malloc(bytes);
    if (!v->tokens || !v->merges || !v->merge_text)
        return nm_fail(err, "out of memory building the vocabulary");
    for (uint32_t i = 0; i < v->n; i++) {
        v->tokens[i].ptr = bv->tokens[i];
        v->tokens[i].len = bv->token_lens[i];
    }
    v->types = bv->types;
    char *p = v->merge_text;
    for (uint32_t i = 0; i < bv->n_merges; i++) {
        char *start = p;
        for (int side = 0; side < 2; side++) {
            const char *s = side ? bv->merge_right[i] : bv->merge_left[i];
            uint32_t len = side ? bv->merge_right_lens[i] : bv->merge_left_lens[i];
            for (uint32_t k = 0; k < len; k++) {
                if (s[k] == ' ') {
                    *p++ = (char)0xc4; /* U+0120 */
                    *p++ = (char)0xa0;
                } else {
                    *p++ = s[k];
                }
            }
            if (!side)
                *p++ = ' ';
        }
        v->merges[i].ptr = start;
        v->merges[i].len = (uint64_t)(p - start);
    }
    v->n_merges = bv->n_merges;
    return 0;
}

/* The vocabulary exactly as llama.cpp's _create_vocab_sentencepiece builds it: the pieces of
 * tokenizer.model, resized to config.json's vocab_size ([PADn] fillers), then added_tokens.json
 * and tokenizer_config.json's added_tokens_decoder applied (formats/spm.h does each step). */
static int build_vocab(vocab_arrays *v, spm_vocab *sp, const conv_config *c, const char *dir, nm_error *err) {
    memset(v, 0, sizeof *v);
    if (c->n_vocab && c->n_vocab != sp->n_tokens && spm_vocab_resize(sp, c->n_vocab, NULL, err) != 0)
        return -1;
    if (c->layout == CONV_LAYOUT_HF && (c->family->vocab_added_special_only
                                            ? spm_vocab_apply_special_only_added_tokens(sp, dir, err)
                                            : spm_vocab_apply_hf_added_tokens(sp, dir, NULL, err)) != 0)
        return -1;
    v->n = sp->n_tokens;
    v->tokens = calloc(v->n ? v->n : 1, sizeof *v->tokens);
    if (!v->tokens)
        return nm_fail(err, "out of memory building the vocabulary");
    for (uint32_t i = 0; i < v->n; i++) {
        v->tokens[i].ptr = sp->pieces[i];
        v->tokens[i].len = sp->piece_lens[i];
    }
    v->scores = sp->scores;
    v->types = sp->types;
    return 0;
}

/* One hyper-parameter key (arch.h) as llama.cpp's converter writes it, or nothing when its
 * presence rule says so. */
static void write_hparam(kv_sink *k, const conv_config *c, const conv_plan *p, const vocab_arrays *v,
                         const nm_arch_gguf_key *g) {
    char key[128];
    if (strncmp(g->key, "general.", 8) == 0)
        snprintf(key, sizeof key, "%s", g->key);
    else
        snprintf(key, sizeof key, "%s.%s", c->family->name, g->key);
    bool given = true;
    uint32_t u = 0;
    float f = 0;
    if (g->hp == NM_HP_ROPE_SCALING) { /* TextModel.set_gguf_parameters: type, factor, YaRN's extras */
        char sub[160];
        if (c->rope_linear || c->rope_yarn) {
            snprintf(sub, sizeof sub, "%s.type", key);
            kv_str(k, sub, c->rope_yarn ? "yarn" : "linear");
            snprintf(sub, sizeof sub, "%s.factor", key);
            kv_f32(k, sub, c->rope_yarn ? c->yarn_factor : c->rope_linear_factor);
        }
        if (c->rope_yarn) {
            snprintf(sub, sizeof sub, "%s.original_context_length", key);
            kv_u32(k, sub, c->yarn_orig_ctx);
            for (int i = 0; i < 4; i++)
                if (c->yarn_opt[i].given) {
                    snprintf(sub, sizeof sub, "%s.%s", key, c->yarn_opt[i].gguf);
                    kv_f32(k, sub, c->yarn_opt[i].value);
                }
        }
        return;
    }
    switch (g->hp) {
    case NM_HP_EMBD: u = c->n_embd; break;
    case NM_HP_LAYERS: u = c->n_layer; break;
    case NM_HP_HEADS: u = c->n_head; break;
    case NM_HP_HEADS_KV: u = c->n_head_kv; given = c->has_head_kv; break;
    case NM_HP_FF: u = c->n_ff; break;
    case NM_HP_VOCAB: u = c->n_vocab ? c->n_vocab : v->n; break;
    case NM_HP_CTX: u = c->n_ctx; given = c->has_ctx; break;
    case NM_HP_HEAD_DIM: u = c->head_dim; given = c->has_head_dim; break;
    case NM_HP_ROT: u = c->n_rot; break;
    case NM_HP_ROPE_THETA: f = c->rope_theta; given = c->has_rope_theta; break;
    case NM_HP_RMS_EPS: f = c->rms_eps; break;
    case NM_HP_NORM_EPS: f = c->norm_eps; break;
    case NM_HP_PARALLEL_RESIDUAL: u = c->parallel_residual; break;
    case NM_HP_FILE_TYPE: u = p->file_type; break;
    case NM_HP_EXPERTS: u = c->n_expert; given = c->has_expert; break;
    case NM_HP_EXPERTS_USED: u = c->n_expert_used; given = c->has_expert_used; break;
    case NM_HP_EXPERT_FF: u = c->n_ff_exp; given = c->n_ff_exp != 0; break;
    case NM_HP_ORIG_CTX: u = c->n_ctx_orig; break;
    case NM_HP_ATTN_SOFTCAP: f = c->attn_softcap; break;
    case NM_HP_FINAL_SOFTCAP: f = c->final_softcap; given = f != 0.0f; break;
    case NM_HP_SLIDING_WINDOW: u = c->sliding_window; given = c->swa_pattern != 1; break;
    case NM_HP_ROPE_THETA_SWA: f = c->rope_theta_swa; given = c->has_rope_theta_swa; break;
    default: return;
    }
    if (g->only_if_given && !given)
        return;
    switch (g->kind) {
    case NM_KEY_U32: kv_u32(k, key, u); break;
    case NM_KEY_F32: kv_f32(k, key, f); break;
    case NM_KEY_BOOL: kv_bool(k, key, u != 0); break;
    }
}

/* The family's hyper-parameter keys (arch.h), in the order and with the presence rules of
 * llama.cpp's converter: its base class's keys, then its own. */
static void write_hparams(kv_sink *k, const conv_config *c, const conv_plan *p, const vocab_arrays *v) {
    for (const nm_arch_gguf_key *g = c->family->gguf_keys; g->key; g++)
        write_hparam(k, c, p, v, g);
    for (const nm_arch_gguf_key *g = c->family->gguf_keys_more; g && g->key; g++)
        write_hparam(k, c, p, v, g);
}

static void write_metadata(kv_sink *k, const conv_config *c, const conv_naming *nm, const conv_plan *p,
                           const vocab_arrays *v, bool vocab_only) {
    kv_str(k, "general.architecture", c->family->name);
    if (c->rope_longrope) { /* Phi3MiniModel adds it while preparing the tensors, before the rest */
        char key[96];
        snprintf(key, sizeof key, "%s.rope.scaling.attn_factor", c->family->name);
        kv_f32(k, key, c->rope_attn_factor);
    }
    kv_str(k, "general.type", "model");
    if (c->sampling_sequence)
        kv_str(k, "general.sampling.sequence", c->sampling_sequence);
    for (int i = 0; i < c->n_sampling; i++) {
        if (c->sampling[i].is_int)
            kv_i32(k, c->sampling[i].key, (int32_t)c->sampling[i].value);
        else
            kv_f32(k, c->sampling[i].key, (float)c->sampling[i].value);
    }
    kv_str(k, "general.name", nm->name);
    if (nm->version[0])
        kv_str(k, "general.version", nm->version);
    if (nm->organization[0])
        kv_str(k, "general.organization", nm->organization);
    if (nm->finetune[0])
        kv_str(k, "general.finetune", nm->finetune);
    if (nm->basename[0])
        kv_str(k, "general.basename", nm->basename);
    if (nm->size_label[0] && !vocab_only)
        kv_str(k, "general.size_label", nm->size_label);
    write_hparams(k, c, p, v);
    kv_u32(k, "general.quantization_version", 2);
    kv_str(k, "tokenizer.ggml.model", v->pre ? "gpt2" : "llama");
    kv_str(k, "tokenizer.ggml.pre", v->pre ? v->pre : "default");
    uint64_t tok_bytes = 4 + 8;
    for (uint32_t i = 0; i < v->n; i++)
        tok_bytes += 8 + v->tokens[i].len;
    kv_key(k, "tokenizer.ggml.tokens", tok_bytes);
    if (v->scores)
        kv_key(k, "tokenizer.ggml.scores", 12 + 4 * (uint64_t)v->n);
    kv_key(k, "tokenizer.ggml.token_type", 12 + 4 * (uint64_t)v->n);
    if (k->w) {
        if (gguf_writer_set_string_array(k->w, "tokenizer.ggml.tokens", v->tokens, v->n) != 0 ||
            (v->scores && gguf_writer_set_array(k->w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->scores, v->n) != 0) ||
            gguf_writer_set_array(k->w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types, v->n) != 0)
            k->failed = 1;
    }
    if (v->n_merges) {
        uint64_t merge_bytes = 4 + 8;
        for (uint32_t i = 0; i < v->n_merges; i++)
            merge_bytes += 8 + v->merges[i].len;
        kv_key(k, "tokenizer.ggml.merges", merge_bytes);
        if (k->w && gguf_writer_set_string_array(k->w, "tokenizer.ggml.merges", v->merges, v->n_merges) != 0)
            k->failed = 1;
    }
    for (int i = 0; i < c->n_special; i++) {
        if (c->special_id[i] >= v->n)
            continue; /* llama.cpp ignores ids outside the vocabulary */
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id",
                 c->special_type[i] == CONV_SPECIAL_UNK ? "unknown"
                 : c->special_type[i] == CONV_SPECIAL_SEP ? "seperator"
                 : c->special_type[i] == CONV_SPECIAL_PAD ? "padding"
                 : conv_special_names[c->special_type[i]]);
        kv_u32(k, key, c->special_id[i]);
    }
    for (int i = 0; i < c->add_count; i++) {
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.add_%s_token", conv_special_names[c->add_type[i]]);
        kv_bool(k, key, c->add_value[i]);
    }
    if (c->chat_template)
        kv_str(k, "tokenizer.chat_template", c->chat_template);
    if (c->has_add_space_prefix && c->family->vocab_add_space_prefix) /* after the special vocabulary */
        kv_bool(k, "tokenizer.ggml.add_space_prefix", c->add_space_prefix);
    if (c->family->vocab_no_space_prefix && !v->pre) /* Gemma2Model.set_vocab, after the special vocabulary */
        kv_bool(k, "tokenizer.ggml.add_space_prefix", false);
}

/* ---------------- tensor conversion ---------------- */

typedef struct convert_job {
    const conv_item *it;
    const conv_tensor *t;   /* the source tensor of these rows (one expert's, for stacked experts) */
    uint64_t src_row0;      /* the item's row where t's rows start */
    const uint8_t *src;     /* whole source tensor */
    uint8_t *dst;           /* chunk buffer */
    uint64_t row0, n_rows;  /* output rows of this chunk */
    uint64_t rows_per_task;
    size_t out_row_size;
    float **scratch;        /* per thread: 2 × n_cols floats */
    atomic_int failed;
    nm_error err;           /* first failure (guarded by failed) */
} convert_job;

static size_t dtype_size(nm_dtype d) { return d == NM_DTYPE_F32 ? 4 : 2; }

static void job_fail(convert_job *j, const char *fmt, const char *name, uint64_t at) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&j->failed, &expected, 1))
        nm_fail(&j->err, fmt, name, (unsigned long long)at);
}

/* Index in the source tensor of element k of the source row srow (a transposed item's "row" is a
 * column of the stored [n_cols, n_rows] matrix), for messages. */
static uint64_t source_element(const conv_item *it, uint64_t srow, uint64_t k) {
    return it->transpose ? k * it->n_rows + srow : srow * it->n_cols + k;
}

static void convert_task(void *ctx, size_t task, int thread) {
    convert_job *j = ctx;
    if (atomic_load(&j->failed))
        return;
    const conv_item *it = j->it;
    const conv_tensor *t = j->t;
    uint64_t r0 = (uint64_t)task * j->rows_per_task;
    uint64_t r1 = r0 + j->rows_per_task;
    if (r1 > j->n_rows)
        r1 = j->n_rows;
    size_t cols = (size_t)it->n_cols, es = dtype_size(t->dtype);
    float *f = j->scratch[thread];
    for (uint64_t r = r0; r < r1; r++) {
        uint64_t orow = j->row0 + r;
        uint64_t srow = conv_item_source_row(it, orow) - j->src_row0;
        const uint8_t *s = j->src + srow * cols * es;
        if (it->transpose) { /* row r of the output is column r of the [n_cols, n_rows] source */
            uint8_t *col = (uint8_t *)(f + cols);
            for (size_t k = 0; k < cols; k++)
                memcpy(col + k * es, j->src + ((uint64_t)k * it->n_rows + srow) * es, es);
            s = col;
        }
        uint8_t *d = j->dst + r * j->out_row_size;
        int64_t nan_at;
        if (t->dtype == NM_DTYPE_BF16 && it->type == GGML_TYPE_F16) { /* the common case, one pass */
            if (nm_bf16_to_f16_row((const uint16_t *)s, (uint16_t *)d, cols)) {
                job_fail(j, "tensor %s: NaN at element %llu; the checkpoint is damaged, refusing to convert", t->name,
                         source_element(it, srow, (uint64_t)nm_find_nan_bf16((const uint16_t *)s, cols)));
                return;
            }
            continue;
        }
        bool same = !it->plus_one && ((t->dtype == NM_DTYPE_F32 && it->type == GGML_TYPE_F32) ||
                    (t->dtype == NM_DTYPE_F16 && it->type == GGML_TYPE_F16) ||
                    (t->dtype == NM_DTYPE_BF16 && it->type == GGML_TYPE_BF16));
        const float *src32;
        nan_at = conv_find_nan(t->dtype, s, cols);
        if (t->dtype == NM_DTYPE_F32) {
            src32 = (const float *)s;
        } else if (same) {
            src32 = NULL;
        } else {
            if (t->dtype == NM_DTYPE_F16)
                nm_f16_to_f32_row((const uint16_t *)s, f, cols);
            else
                nm_bf16_to_f32_row((const uint16_t *)s, f, cols);
            src32 = f;
        }
        if (nan_at >= 0) {
            job_fail(j, "tensor %s: NaN at element %llu; the checkpoint is damaged, refusing to convert", t->name,
                     source_element(it, srow, (uint64_t)nan_at));
            return;
        }
        if (same) {
            memcpy(d, s, cols * es);
            continue;
        }
        if (it->plus_one) { /* the converter's data_torch + 1: in F32 (BF16 is widened first) or in F16 */
            if (src32 != f)
                memcpy(f, src32, cols * 4);
            for (size_t k = 0; k < cols; k++)
                f[k] = t->dtype == NM_DTYPE_F16 ? nm_f16_to_f32(nm_f32_to_f16(f[k] + 1.0f)) : f[k] + 1.0f;
            src32 = f;
        }
        switch (it->type) {
        case GGML_TYPE_F32: memcpy(d, src32, cols * 4); break;
        case GGML_TYPE_F16: nm_f32_to_f16_row(src32, (uint16_t *)d, cols); break;
        case GGML_TYPE_BF16: nm_f32_to_bf16_row(src32, (uint16_t *)d, cols); break;
        case GGML_TYPE_Q8_0: {
            nm_error qe;
            if (nm_quantize_rows(GGML_TYPE_Q8_0, src32, d, 1, (int64_t)cols, NULL, &qe) != 0) {
                int expected = 0;
                if (atomic_compare_exchange_strong(&j->failed, &expected, 1))
                    nm_fail(&j->err, "tensor %s, row %llu: %s", t->name, (unsigned long long)orow, qe.msg);
                return;
            }
            break;
        }
        default:
            job_fail(j, "tensor %s: unsupported output type (row %llu)", t->name, orow);
            return;
        }
    }
}

typedef struct run_stats {
    uint64_t bytes_written;
    uint64_t peak_anon;
    double seconds;
    uint32_t shards;
} run_stats;

static void sample_memory(run_stats *st) {
    uint64_t a = nm_rss_anon();
    if (a > st->peak_anon)
        st->peak_anon = a;
}

/* Output side of the pipeline: one thread writes chunk k while the pool converts chunk k+1
 * (two buffers), so conversion and the write() copies into the page cache overlap. */
typedef struct writer_thread {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gguf_writer *w;
    uint8_t *buf[2];  /* allocations */
    uint8_t *data[2]; /* where the chunk in each starts (placed for direct output) */
    size_t len[2];
    bool full[2];
    bool stop, failed;
    nm_error err;
} writer_thread;

static void *writer_main(void *arg) {
    writer_thread *wt = arg;
    int k = 0;
    for (;;) {
        pthread_mutex_lock(&wt->mu);
        while (!wt->full[k] && !wt->stop)
            pthread_cond_wait(&wt->cv, &wt->mu);
        if (!wt->full[k]) { /* stop requested and nothing left */
            pthread_mutex_unlock(&wt->mu);
            return NULL;
        }
        bool failed = wt->failed;
        pthread_mutex_unlock(&wt->mu);
        nm_error e;
        int rc = failed ? 0 : gguf_writer_write(wt->w, wt->data[k], wt->len[k], &e);
        pthread_mutex_lock(&wt->mu);
        if (rc != 0 && !wt->failed) {
            wt->failed = true;
            wt->err = e;
        }
        wt->full[k] = false;
        pthread_cond_broadcast(&wt->cv);
        pthread_mutex_unlock(&wt->mu);
        k ^= 1;
    }
}

/* Waits until buffer k is free; false if the writer failed. */
static bool writer_acquire(writer_thread *wt, int k) {
    pthread_mutex_lock(&wt->mu);
    while (wt->full[k] && !wt->failed)
        pthread_cond_wait(&wt->cv, &wt->mu);
    bool ok = !wt->failed;
    pthread_mutex_unlock(&wt->mu);
    return ok;
}

static void writer_submit(writer_thread *wt, int k, size_t len) {
    pthread_mutex_lock(&wt->mu);
    wt->len[k] = len;
    wt->full[k] = true;
    pthread_cond_broadcast(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

/* Drops a mapped input tensor's pages from this process once it is converted (they stay in the
 * page cache), so resident memory stays near one tensor instead of growing to the whole
 * checkpoint. Only whole pages inside the tensor: its neighbours' edges stay mapped. */
static void release_input(const void *data, size_t size) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    uintptr_t begin = ((uintptr_t)data + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)data + size) & ~(uintptr_t)(page - 1);
    if (end > begin)
        madvise((void *)begin, end - begin, MADV_DONTNEED);
}

static int write_tensors(gguf_writer *w, const conv_plan *p, const conv_source *s, nm_pool *pool, bool quiet,
                         run_stats *st, nm_error *err) {
    int threads = nm_pool_threads(pool);
    size_t max_cols = 1, chunk_cap = 1;
    for (size_t i = 0; i < p->n_items; i++) {
        const conv_item *it = &p->items[i];
        size_t out_row = it->out_size / it->n_rows;
        uint64_t rows = CHUNK_TARGET / (out_row ? out_row : 1);
        rows = rows < 1 ? 1 : rows > it->n_rows ? it->n_rows : rows;
        if ((size_t)rows * out_row > chunk_cap)
            chunk_cap = (size_t)rows * out_row;
        if (it->n_cols > max_cols)
            max_cols = (size_t)it->n_cols;
    }
    nm_progress prog;
    nm_progress_start(&prog, "converting", p->n_items, p->total_out, quiet);
    writer_thread wt;
    memset(&wt, 0, sizeof wt);
    wt.w = w;
    pthread_mutex_init(&wt.mu, NULL);
    pthread_cond_init(&wt.cv, NULL);
    bool writer_started = false;
    float **scratch = calloc((size_t)threads, sizeof *scratch);
    uint8_t *owned_src = NULL;
    size_t owned_cap = 0;
    int rc = -1;
    /* Each chunk starts at the offset that makes its address congruent with its place in the
     * file modulo the output's direct-I/O alignment, so it goes to the device without a copy
     * (common/outfile.h); 2 MB aligned buffers get transparent huge pages where allowed, which
     * makes pinning them for the device cheap. */
    size_t align = gguf_writer_direct_alignment(w), buf_size = chunk_cap + align;
    if (!scratch)
        goto oom;
    for (int b = 0; b < 2; b++) {
        void *m = NULL;
        if (posix_memalign(&m, 2u << 20, buf_size) != 0)
            goto oom;
        madvise(m, buf_size, MADV_HUGEPAGE);
        wt.buf[b] = m;
    }
    for (int i = 0; i < threads; i++)
        if (!(scratch[i] = malloc(2 * max_cols * sizeof(float)))) /* + a gathered column (transposed items) */
            goto oom;
    pthread_t tid;
    if (pthread_create(&tid, NULL, writer_main, &wt) != 0) {
        nm_fail(err, "cannot start the writer thread");
        goto out;
    }
    writer_started = true;
    uint64_t done = 0;
    int k = 0;
    for (size_t i = 0; i < p->n_items; i++) {
        const conv_item *it = &p->items[i];
        /* stacked experts: one source tensor after the other, each giving n_rows / n_experts rows */
        const uint32_t parts = it->n_experts ? it->n_experts : 1;
        const uint64_t part_rows = it->n_rows / parts;
        for (uint32_t e = 0; e < parts; e++) {
            const conv_tensor *t = it->n_experts ? it->experts[e] : it->src;
            const uint8_t *src = t->data;
            if (!src) {
                if (t->size > owned_cap) {
                    free(owned_src);
                    owned_cap = t->size;
                    if (!(owned_src = malloc(owned_cap)))
                        goto oom;
                }
                if (conv_source_read(s, t, owned_src, err) != 0)
                    goto out;
                src = owned_src;
            }
            size_t out_row = it->out_size / it->n_rows;
            uint64_t rows_per_chunk = CHUNK_TARGET / (out_row ? out_row : 1);
            rows_per_chunk = rows_per_chunk < 1 ? 1 : rows_per_chunk > part_rows ? part_rows : rows_per_chunk;
            const uint64_t begin = (uint64_t)e * part_rows, end = begin + part_rows;
            convert_job job = {.it = it, .t = t, .src_row0 = begin, .src = src, .out_row_size = out_row,
                               .scratch = scratch};
            atomic_init(&job.failed, 0);
            for (uint64_t r = begin; r < end; r += rows_per_chunk) {
                if (!writer_acquire(&wt, k))
                    goto out;
                job.dst = wt.data[k] = wt.buf[k] + gguf_writer_data_phase(w, i, r * out_row);
                job.row0 = r;
                job.n_rows = end - r < rows_per_chunk ? end - r : rows_per_chunk;
                uint64_t tasks = (uint64_t)threads * 4;
                if (tasks > job.n_rows)
                    tasks = job.n_rows;
                job.rows_per_task = (job.n_rows + tasks - 1) / tasks;
                tasks = (job.n_rows + job.rows_per_task - 1) / job.rows_per_task;
                nm_pool_run(pool, (size_t)tasks, convert_task, &job);
                if (atomic_load(&job.failed)) {
                    *err = job.err;
                    goto out;
                }
                size_t bytes = (size_t)job.n_rows * out_row;
                writer_submit(&wt, k, bytes);
                k ^= 1;
                done += bytes;
                st->bytes_written += bytes;
                nm_progress_update(&prog, i, done);
            }
            sample_memory(st);
            if (t->data)
                release_input(t->data, t->size);
        }
        nm_progress_update(&prog, i + 1, done);
    }
    rc = 0;
    goto out;
oom:
    nm_fail(err, "out of memory");
out:
    if (writer_started) {
        pthread_mutex_lock(&wt.mu);
        wt.stop = true;
        if (rc != 0)
            wt.failed = true; /* drop whatever is queued */
        pthread_cond_broadcast(&wt.cv);
        pthread_mutex_unlock(&wt.mu);
        pthread_join(tid, NULL);
        if (wt.err.msg[0]) { /* a write error (disk full) is the cause of everything after it */
            *err = wt.err;
            rc = -1;
        }
    }
    sample_memory(st);
    nm_progress_finish(&prog);
    pthread_mutex_destroy(&wt.mu);
    pthread_cond_destroy(&wt.cv);
    if (scratch)
        for (int i = 0; i < threads; i++)
            free(scratch[i]);
    free(scratch);
    free(wt.buf[0]);
    free(wt.buf[1]);
    free(owned_src);
    return rc;
}

/* ---------------- main ---------------- */

static const char *outtype_upper(conv_outtype t) {
    switch (t) {
    case CONV_OUT_F32: return "F32";
    case CONV_OUT_F16: return "F16";
    case CONV_OUT_BF16: return "BF16";
    case CONV_OUT_Q8_0: return "Q8_0";
    default: return "AUTO";
    }
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void print_plan(const conv_plan *p, bool vocab_only) {
    printf("%-28s %-48s %-13s %-16s %12s\n", "tensor", "source", "type", "shape", "bytes");
    if (vocab_only) {
        printf("(--vocab-only: no tensors)\n");
        return;
    }
    for (size_t i = 0; i < p->n_items; i++) {
        const conv_item *it = &p->items[i];
        char types[32], shape[48];
        snprintf(types, sizeof types, "%s->%s", nm_dtype_name(it->src->dtype), ggml_type_name(it->type));
        if (it->n_dims == 1)
            snprintf(shape, sizeof shape, "{%lld}", (long long)it->ne[0]);
        else if (it->n_dims == 2)
            snprintf(shape, sizeof shape, "{%lld, %lld}", (long long)it->ne[0], (long long)it->ne[1]);
        else
            snprintf(shape, sizeof shape, "{%lld, %lld, %lld}", (long long)it->ne[0], (long long)it->ne[1],
                     (long long)it->ne[2]);
        printf("%-28s %-48s %-13s %-16s %12zu%s\n", it->name, it->src->name, types, shape, it->out_size,
               it->permute_heads ? "  (q/k rows permuted)" : it->qkv_heads ? "  (qkv rows regrouped)"
               : it->n_experts ? "  (experts stacked)" : "");
    }
}

/* Test hook: NOMOAT_CONVERT_TEST_SIGNAL=N raises SIGINT after N tensors, so tests can check
 * that an interrupted run leaves nothing behind without racing a timer. */
static long test_signal_after(void) {
    const char *e = getenv("NOMOAT_CONVERT_TEST_SIGNAL");
    return e && *e ? strtol(e, NULL, 10) : -1;
}

int main(int argc, char **argv) {
    nm_outfile_install_signal_handlers();
    options o;
    if (parse_args(argc, argv, &o) != 0)
        return 1;
    if (o.base || nm_peft_is_adapter_dir(o.dir)) {
        if (o.split_max_size || o.vocab_only || o.has_context_length) {
            fprintf(stderr, TOOL ": --split-max-size, --vocab-only and --context-length do not apply to adapters\n");
            return 1;
        }
        conv_lora_options lo = {.dir = o.dir, .base = o.base, .outfile = o.outfile, .force = o.force,
                                .no_fsync = o.no_fsync, .dry_run = o.dry_run, .json = o.json, .quiet = o.quiet,
                                .outtype = o.outtype_given ? o.outtype : CONV_OUT_F32};
        return conv_lora_main(&lo);
    }
    double t0 = nm_now();
    nm_error err = {{0}};
    conv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    spm_vocab sp;
    memset(&sp, 0, sizeof sp);
    bool sp_loaded = false;
    bpe_vocab bv;
    memset(&bv, 0, sizeof bv);
    bool bv_loaded = false;
    conv_source *src = NULL;
    conv_plan plan;
    memset(&plan, 0, sizeof plan);
    vocab_arrays voc;
    memset(&voc, 0, sizeof voc);
    gguf_writer *w = NULL;
    nm_pool *pool = NULL;
    int status = 1;
    char path[PATH_MAX + 256];

    struct stat dst;
    if (stat(o.dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        nm_fail(&err, "%s: %s", o.dir, errno && !S_ISREG(dst.st_mode) ? strerror(errno) : "not a folder");
        if (stat(o.dir, &dst) == 0 && !S_ISDIR(dst.st_mode))
            nm_fail(&err, "%s is not a folder: give the model folder that holds config.json or params.json", o.dir);
        goto fail;
    }
    if (conv_config_load(&cfg, o.dir, &err) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/tokenizer.model", o.dir);
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof path, "%s/tokenizer.json", o.dir);
        if (access(path, F_OK) != 0) {
            nm_fail(&err, "%s has no tokenizer.model (SentencePiece) nor tokenizer.json (BPE)", o.dir);
            goto fail;
        }
        if (cfg.family->vocab_no_space_prefix) { /* Gemma: the converter's set_vocab reads tokenizer.model */
            nm_fail(&err, "%s has no tokenizer.model: a %s folder's vocabulary is read from SentencePiece's "
                    "tokenizer.model (tokenizer.json alone is not supported)", o.dir, cfg.arch);
            goto fail;
        }
        if (bpe_vocab_load_json(&bv, path, &err) != 0)
            goto fail;
        bv_loaded = true;
        if (!o.pre && !bv.pre[0]) {
            nm_fail(&err, "%s: %s", path, bv.pre_error);
            goto fail;
        }
    } else if (o.pre) {
        nm_fail(&err, "--pre applies to BPE tokenizers (tokenizer.json); %s has a SentencePiece tokenizer.model", o.dir);
        goto fail;
    } else if (spm_vocab_load(&sp, path, &err) != 0) {
        goto fail;
    } else {
        sp_loaded = true;
    }
    if (sp_loaded && sp.n_tokens == 0) {
        nm_fail(&err, "%s: the vocabulary is empty", path);
        goto fail;
    }
    if (!(src = conv_source_open(o.dir, cfg.layout, &err)))
        goto fail;
    if (cfg.layout == CONV_LAYOUT_META && cfg.n_vocab == 0 && !conv_source_find(src, "tok_embeddings.weight"))
        cfg.n_vocab = sp.n_tokens;
    if (bv_loaded && cfg.n_vocab == 0)
        cfg.n_vocab = bv.n_tokens;
    if (conv_plan_build(&plan, &cfg, src, o.outtype, &err) != 0)
        goto fail;
    if (o.has_context_length) {
        cfg.n_ctx = o.context_length;
        cfg.has_ctx = true;
    }
    if (bv_loaded ? build_bpe_vocab(&voc, &bv, &cfg, o.pre, &err) != 0 : build_vocab(&voc, &sp, &cfg, o.dir, &err) != 0)
        goto fail;

    /* names and the output path */
    char absdir[PATH_MAX];
    const char *base = o.dir;
    if (realpath(o.dir, absdir)) {
        base = strrchr(absdir, '/');
        base = base && base[1] ? base + 1 : absdir;
    }
    conv_naming naming;
    if (plan.n_expert)
        conv_naming_build_experts(&naming, cfg.name_or_path, base, o.vocab_only ? 0 : plan.total_params, plan.n_expert,
                                  plan.total_params - plan.stacked_params + plan.expert_params);
    else
        conv_naming_build(&naming, cfg.name_or_path, base, o.vocab_only ? 0 : plan.total_params);
    if (o.outfile) {
        snprintf(path, sizeof path, "%s", o.outfile);
    } else {
        char fname[512];
        conv_default_filename(&naming, outtype_upper(plan.outtype), o.vocab_only, fname, sizeof fname);
        snprintf(path, sizeof path, "%s/%s", o.dir, fname);
    }

    kv_sink count = {0};
    write_metadata(&count, &cfg, &naming, &plan, &voc, o.vocab_only);
    uint64_t header = 24 + count.bytes; /* magic, version, counts, then the KVs */
    uint64_t data = 0;
    if (!o.vocab_only)
        for (size_t i = 0; i < plan.n_items; i++) {
            header += 8 + strlen(plan.items[i].name) + 4 + 8 * plan.items[i].n_dims + 4 + 8;
            data += align_up(plan.items[i].out_size, GGUF_DEFAULT_ALIGNMENT);
        }
    uint64_t est_size = align_up(header, GGUF_DEFAULT_ALIGNMENT) + data;

    if (o.dry_run) {
        if (!o.json) {
            printf("model: %s (%s, %s weights)\n", o.dir, cfg.arch, conv_source_kind(src));
            printf("output: %s (%s, %s)\n", path, outtype_upper(plan.outtype), naming.name);
            print_plan(&plan, o.vocab_only);
            char sz[32];
            printf("%zu tensors, %llu parameters, output size %llu bytes (%s)%s\n",
                   o.vocab_only ? (size_t)0 : plan.n_items, (unsigned long long)plan.total_params,
                   (unsigned long long)est_size, nm_format_bytes(est_size, sz, sizeof sz),
                   o.split_max_size ? " before splitting" : "");
        } else {
            printf("{\"dry_run\": true, \"output\": ");
            json_string(stdout, path);
            printf(", \"outtype\": \"%s\", \"tensors\": %zu, \"parameters\": %llu, \"bytes\": %llu, "
                   "\"largest_tensor_bytes\": %zu, \"largest_source_tensor_bytes\": %zu}\n",
                   conv_outtype_name(plan.outtype), o.vocab_only ? (size_t)0 : plan.n_items,
                   (unsigned long long)plan.total_params, (unsigned long long)est_size, plan.largest_out,
                   plan.largest_src);
        }
        status = 0;
        goto done;
    }

    if (!o.outfile && access(o.dir, W_OK) != 0) {
        nm_fail(&err, "cannot write into the model folder %s (%s); choose an output file with -o OUT.gguf", o.dir,
                strerror(errno));
        goto fail;
    }
    /* direct output: the kernel's copy of every byte into the page cache was most of the CPU */
    gguf_writer_options wo = {.outfile_flags = (o.force ? NM_OUT_FORCE : 0u) | (o.no_fsync ? NM_OUT_NO_FSYNC : 0u) |
                                               NM_OUT_DIRECT,
                              .split_max_size = o.split_max_size};
    if (!(w = gguf_writer_create(path, &wo, &err))) {
        if (!o.outfile && strstr(err.msg, "ermission"))
            nm_error_prefix(&err, "choose another output file with -o");
        goto fail;
    }
    kv_sink sink = {.w = w};
    write_metadata(&sink, &cfg, &naming, &plan, &voc, o.vocab_only);
    if (sink.failed) {
        nm_fail(&err, "out of memory while preparing metadata");
        goto fail;
    }
    if (!o.vocab_only)
        for (size_t i = 0; i < plan.n_items; i++)
            if (gguf_writer_add_tensor(w, plan.items[i].name, plan.items[i].type, plan.items[i].n_dims,
                                       plan.items[i].ne, &err) != 0)
                goto fail;
    if (gguf_writer_begin_data(w, &err) != 0)
        goto fail;
    run_stats stats = {0};
    if (!o.vocab_only) {
        if (!(pool = nm_pool_create(o.threads))) {
            nm_fail(&err, "out of memory creating threads");
            goto fail;
        }
        long sig_after = test_signal_after();
        if (sig_after >= 0 && (size_t)sig_after < plan.n_items) {
            /* write sig_after tensors, then behave as if the user pressed Ctrl-C */
            conv_plan part = plan;
            part.n_items = (size_t)sig_after;
            if (write_tensors(w, &part, src, pool, true, &stats, &err) != 0)
                goto fail;
            raise(SIGINT);
        }
        if (write_tensors(w, &plan, src, pool, o.quiet || o.json, &stats, &err) != 0)
            goto fail;
    }
    stats.shards = gguf_writer_shard_count(w);
    gguf_writer *fw = w;
    w = NULL;
    if (gguf_writer_finish(fw, &err) != 0)
        goto fail;
    stats.seconds = nm_now() - t0;
    sample_memory(&stats);
    uint64_t out_bytes = 0;
    if (stats.shards <= 1) {
        struct stat ost;
        if (stat(path, &ost) == 0)
            out_bytes = (uint64_t)ost.st_size;
    } else {
        out_bytes = est_size; /* sum of shards differs slightly by their own headers */
    }
    double mbs = stats.seconds > 0 ? (double)stats.bytes_written / stats.seconds / 1e6 : 0;
    if (o.json) {
        printf("{\"output\": ");
        json_string(stdout, path);
        printf(", \"outtype\": \"%s\", \"file_type\": %u, \"tensors\": %zu, \"parameters\": %llu, \"bytes\": %llu, "
               "\"shards\": %u, \"seconds\": %.3f, \"mb_per_s\": %.1f, \"peak_anon_bytes\": %llu, "
               "\"peak_rss_bytes\": %llu, \"largest_tensor_bytes\": %zu, \"threads\": %d}\n",
               conv_outtype_name(plan.outtype), plan.file_type, o.vocab_only ? (size_t)0 : plan.n_items,
               (unsigned long long)plan.total_params, (unsigned long long)out_bytes, stats.shards ? stats.shards : 1,
               stats.seconds, mbs, (unsigned long long)stats.peak_anon, (unsigned long long)nm_peak_rss(),
               plan.largest_out > plan.largest_src ? plan.largest_out : plan.largest_src,
               pool ? nm_pool_threads(pool) : 0);
    } else if (!o.quiet) {
        char sz[32];
        printf("%s: wrote %s%s (%zu tensors, %s, %s) in %.2f s, %.0f MB/s\n", TOOL, path,
               stats.shards > 1 ? " (split)" : "", o.vocab_only ? (size_t)0 : plan.n_items,
               nm_format_bytes(out_bytes ? out_bytes : est_size, sz, sizeof sz), outtype_upper(plan.outtype),
               stats.seconds, mbs);
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, TOOL ": %s\n", err.msg);
    status = 1;
done:
    gguf_writer_abort(w);
    nm_pool_destroy(pool);
    vocab_arrays_free(&voc);
    conv_plan_free(&plan);
    conv_source_close(src);
    if (sp_loaded)
        spm_vocab_free(&sp);
    if (bv_loaded)
        bpe_vocab_free(&bv);
    conv_config_free(&cfg);
    fflush(stdout);
    return status;
}
