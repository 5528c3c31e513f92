/* nomoat-convert's private modules: model configuration (config.c), a uniform tensor source
 * over safetensors and torch checkpoints (source.c), the conversion plan — names, shapes,
 * output types, Q/K permutation (plan.c) — and the general.* naming heuristics (naming.c). */
#ifndef NOMOAT_CONVERT_H
#define NOMOAT_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "arch/arch.h"
#include "common/error.h"
#include "formats/tensor.h"

/* ---------------- configuration (config.c) ---------------- */

typedef enum conv_layout { CONV_LAYOUT_HF = 0, CONV_LAYOUT_META = 1 } conv_layout;

/* Special-token types in the order llama.cpp's converter looks them up. */
enum { CONV_SPECIAL_BOS, CONV_SPECIAL_EOS, CONV_SPECIAL_UNK, CONV_SPECIAL_SEP, CONV_SPECIAL_PAD,
       CONV_SPECIAL_CLS, CONV_SPECIAL_MASK, CONV_SPECIAL_COUNT };
extern const char *const conv_special_names[CONV_SPECIAL_COUNT];

#define CONV_SAMPLING_MAX 11

typedef struct conv_config {
    conv_layout layout;
    char arch[96];            /* "LlamaForCausalLM"; "llama (Meta params.json)" for Meta */
    const nm_arch *family;    /* its description (arch/) */
    uint32_t n_vocab;         /* 0 when params.json says -1: taken from the tokenizer */
    uint32_t n_embd, n_layer, n_head, n_head_kv;
    uint32_t n_ff;            /* 0 until known (Meta: from the w1 tensor) */
    uint32_t head_dim;        /* explicit head_dim, else n_embd / n_head */
    bool has_head_dim;        /* config.json had "head_dim" */
    bool has_head_kv;         /* config had a KV head count (written only then) */
    uint32_t n_ctx;
    bool has_ctx;
    float rope_theta;
    bool has_rope_theta;
    float rms_eps;            /* RMSNorm families */
    float norm_eps;           /* LayerNorm families */
    uint32_t n_rot;           /* rotary dimensions per head */
    double rotary_pct;        /* partial rotary: the fraction of each head rotated */
    bool has_rotary_pct;
    bool parallel_residual;
    bool tied;                /* tie_word_embeddings */
    bool rope_linear;         /* rope_scaling {type: linear} */
    float rope_linear_factor;
    bool rope_yarn;           /* rope_scaling {rope_type: yarn}: factor, original context, optional values */
    float yarn_factor;
    uint32_t yarn_orig_ctx;
    struct conv_yarn_opt { const char *hf, *gguf; bool given; float value; } yarn_opt[4];
    bool rope_llama3;         /* rope_scaling {rope_type: llama3}: a computed rope_freqs.weight */
    double llama3_theta, llama3_factor, llama3_low, llama3_high, llama3_orig_ctx;
    bool first_dtype_known;
    uint32_t n_expert, n_expert_used; /* mixture of experts (0 otherwise) */
    bool has_expert, has_expert_used;
    uint32_t n_ff_exp;        /* an expert's FFN width when the config gives one apart (else 0: n_ff) */
    uint32_t n_ctx_orig;      /* original_max_position_embeddings (Phi-3) */
    uint32_t sliding_window;  /* 0 when null or absent */
    bool rope_longrope;       /* rope_scaling {type: longrope or su}: the factors below (longrope.c) */
    float rope_attn_factor;   /* rope.scaling.attn_factor */
    uint32_t n_rope_factors;  /* n_rot / 2 each */
    float *rope_long, *rope_short; /* malloc'ed */

    /* tokenizer side (HF: tokenizer_config.json, tokenizer.json, config.json) */
    int n_special;                       /* special ids in the order they were set */
    int special_type[CONV_SPECIAL_COUNT];
    uint32_t special_id[CONV_SPECIAL_COUNT];
    int add_count;                       /* add_<type>_token flags in the order set */
    int add_type[CONV_SPECIAL_COUNT];
    bool add_value[CONV_SPECIAL_COUNT];
    char *chat_template;                 /* malloc'ed or NULL */
    bool has_add_space_prefix;           /* tokenizer_config.json's add_prefix_space (a BOOL) */
    bool add_space_prefix;
    char *name_or_path;                  /* config.json _name_or_path, malloc'ed or NULL */

    /* generation_config.json's sampling defaults, written as general.sampling.* (gguf-py's
     * Metadata); in the order written. */
    char *sampling_sequence;             /* malloc'ed or NULL */
    int n_sampling;
    struct conv_sampling { const char *key; bool is_int; double value; } sampling[CONV_SAMPLING_MAX];

    /* Gemma 2 */
    float attn_softcap, final_softcap; /* attn_logit_softcapping, final_logit_softcapping */
    /* sliding_window: above (Phi-3 writes it too) */
    double query_scalar;               /* query_pre_attn_scalar */
    bool has_query_scalar;
    /* Gemma 3 */
    float rope_theta_swa;              /* rope_local_base_freq: the local layers' rotary base */
    bool has_rope_theta_swa;
    uint32_t swa_pattern;              /* sliding_window_pattern (0 when absent) */
} conv_config;

/* Reads dir/config.json (HF) or dir/params.json (Meta) plus the tokenizer json files.
 * Errors name the file and the key. */
int conv_config_load(conv_config *c, const char *dir, nm_error *err);
/* The special-token ids after dropping those >= n_vocab (what the converter writes). */
void conv_config_free(conv_config *c);
/* rope_scaling {rope_type: llama3} (llama3_rope.c): reads the section rs of config.json j into c
 * with the converter's defaults; -1 with a message naming file for a value out of range. */
int conv_llama3_rope_load(conv_config *c, const cJSON *j, const cJSON *rs, const char *file, nm_error *err);
/* The head_dim/2 frequency divisors llama.cpp's converter stores as rope_freqs.weight. */
void conv_llama3_rope_factors(const conv_config *c, float *out);
/* rope_scaling {type: longrope or su} (longrope.c): reads the section rs of config.json into c as
 * Phi3MiniModel does (attn_factor from the context lengths, long_factor and short_factor of
 * n_rot/2 numbers each); -1 with a message naming file otherwise. */
int conv_longrope_load(conv_config *c, const cJSON *rs, const char *file, nm_error *err);

/* Meta's missing context length, guessed as llama.cpp's converter does (FORMATS.md §6.1). */
uint32_t conv_guess_meta_context(double norm_eps, double rope_theta, bool have_theta);

/* ---------------- tensor source (source.c) ---------------- */

#define CONV_MAX_DIMS 8

typedef struct conv_tensor {
    const char *name;
    nm_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[CONV_MAX_DIMS]; /* PyTorch order */
    size_t size;                   /* bytes, contiguous */
    const void *data;              /* in place (mapping), or NULL: conv_source_read */
    size_t backend_index;
} conv_tensor;

typedef struct conv_source conv_source;

/* Opens the weights of dir: *.safetensors (with index), pytorch_model*.bin (with index), or
 * Meta consolidated.NN.pth. Tensors come in the order llama.cpp's converter writes them. */
conv_source *conv_source_open(const char *dir, conv_layout layout, nm_error *err);
void conv_source_close(conv_source *s);
size_t conv_source_count(const conv_source *s);
const conv_tensor *conv_source_at(const conv_source *s, size_t i);
const conv_tensor *conv_source_find(const conv_source *s, const char *name);
/* Copies the tensor's bytes (contiguous, little-endian) into dst. */
int conv_source_read(const conv_source *s, const conv_tensor *t, void *dst, nm_error *err);
const char *conv_source_kind(const conv_source *s); /* "safetensors", "pytorch", "meta" */
/* Finds which weights files a folder holds; 0 if none. */
int conv_detect_weights(const char *dir, char *what, size_t what_size);

/* ---------------- plan (plan.c) ---------------- */

typedef enum conv_outtype {
    CONV_OUT_AUTO = -1, CONV_OUT_F32 = 0, CONV_OUT_F16 = 1, CONV_OUT_BF16 = 2, CONV_OUT_Q8_0 = 3,
} conv_outtype;

typedef struct conv_item {
    char name[64];             /* GGUF name */
    const conv_tensor *src;
    uint32_t type;             /* ggml type written */
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t n_rows, n_cols;   /* as converted: rows of ne[0] elements */
    uint32_t permute_heads;    /* 0, or H for the §6.3 row permutation */
    uint32_t qkv_heads;        /* 0, or H: fused QKV rows stored head by head, written [Q | K | V] */
    bool transpose;            /* stored [n_cols, n_rows] (a Conv1D weight): row r is column r */
    size_t out_size;
    char hf_name[96];          /* sort key (HF spelling) */
    const conv_tensor *const *experts; /* stacked experts (NM_XF_STACK_EXPERTS): n_experts tensors of
                                        * n_rows / n_experts rows each, in expert order; src = the first */
    uint32_t n_experts;
    bool plus_one;             /* a norm weight stored as w - 1: written as w (NM_XF_PLUS_ONE) */
} conv_item;

typedef struct conv_plan {
    conv_item *items;
    size_t n_items;
    conv_outtype outtype;      /* resolved (never AUTO) */
    uint32_t file_type;        /* llama_ftype */
    uint64_t total_params;
    size_t largest_out, largest_src;
    uint64_t total_out;        /* tensor bytes, unpadded */
    conv_tensor rope_freqs;    /* computed, not read: llama3 rope factors (src of its item) */
    float *rope_factors;
    const conv_tensor **expert_srcs; /* per layer, stacked tensor and expert: the checkpoint's tensor */
    uint32_t n_expert;         /* experts per layer of a mixture of experts, else 0 */
    uint64_t expert_params;    /* gguf-py's count for the size label: each stacked tensor's elements / experts */
    uint64_t stacked_params;   /* all elements of the stacked tensors */
    conv_tensor rope_long, rope_short; /* from config.json: longrope factors (src of their items) */
} conv_plan;

const char *conv_outtype_name(conv_outtype t);   /* "f32", ... */
int conv_outtype_parse(const char *s, conv_outtype *out);
/* Maps names, checks every tensor's presence, dtype and shape against the config (filling
 * n_ff for Meta), chooses types and orders the items. */
int conv_plan_build(conv_plan *p, conv_config *c, const conv_source *s, conv_outtype outtype,
                    nm_error *err);
void conv_plan_free(conv_plan *p);
/* Source row feeding output row r of a §6.3-permuted matrix of n_rows rows and H heads. */
static inline uint64_t conv_permuted_row(uint64_t r, uint64_t n_rows, uint32_t heads) {
    uint64_t hd = n_rows / heads, half = hd / 2;
    uint64_t h = r / hd, k = r % hd;
    return h * hd + (k & 1) * half + (k >> 1);
}

/* Source row of fused-QKV output row r (n_rows = 3 × H heads × head_dim): GGUF holds all query
 * rows, then all key rows, then all value rows; the checkpoint holds [q_h | k_h | v_h] per head. */
static inline uint64_t conv_qkv_row(uint64_t r, uint64_t n_rows, uint32_t heads) {
    uint64_t part_rows = n_rows / 3, hd = part_rows / heads;
    uint64_t part = r / part_rows, within = r % part_rows;
    return (within / hd) * 3 * hd + part * hd + within % hd;
}
/* Source row of an item's output row r. */
static inline uint64_t conv_item_source_row(const conv_item *it, uint64_t r) {
    if (it->permute_heads) return conv_permuted_row(r, it->n_rows, it->permute_heads);
    if (it->qkv_heads) return conv_qkv_row(r, it->n_rows, it->qkv_heads);
    return r;
}

/* One Hugging Face weight's place in the GGUF file: the single question LoRA conversion asks
 * about the architecture (meant to be answered by arch/ descriptions once they exist). */
typedef struct conv_target {
    char name[64];          /* "blk.0.attn_q.weight" */
    int64_t ne0, ne1;       /* its GGUF shape (row length, rows; ne1 = 1 for vectors) */
    uint32_t permute_heads; /* 0, or H when its rows are permuted as FORMATS.md §6.3 says */
} conv_target;
/* Maps hf_name ("model.layers.0.self_attn.q_proj.weight") of a Llama model with configuration c;
 * -1 with a message when it is no weight of such a model (or lm_head of a tied model). */
int conv_hf_target(const conv_config *c, const char *hf_name, conv_target *t, nm_error *err);

/* ---------------- NaN check (nancheck.c) ---------------- */

/* Index of the first NaN among n elements of dtype (F32, F16, BF16), or -1; same answers as
 * formats/tensor.h's nm_find_nan_*, several times faster when there is none. */
int64_t conv_find_nan(nm_dtype dtype, const void *src, size_t n);

/* ---------------- naming (naming.c) ---------------- */

typedef struct conv_naming {
    char name[256];       /* general.name */
    char organization[256];
    char basename[256];   /* "" when none */
    char finetune[256];
    char version[128];
    char size_label[64];
} conv_naming;

/* llama.cpp's gguf-py heuristics (Metadata.apply_metadata_heuristic) on config.json's
 * _name_or_path (NULL if none), then the model folder's name, then the parameter count. */
void conv_naming_build(conv_naming *n, const char *name_or_path, const char *dir_name, uint64_t total_params);
/* The same for a mixture of n_expert experts: the fallback size label is gguf-py's
 * "<n_expert>x<size of label_params>", label_params = the shared tensors' elements plus one
 * expert's share of each stacked tensor. */
void conv_naming_build_experts(conv_naming *n, const char *name_or_path, const char *dir_name, uint64_t total_params,
                               uint32_t n_expert, uint64_t label_params);
/* The same for a LoRA adapter named after its folder: gguf-py treats an adapter's parameter count
 * (the elements of the matrices it adapts) as negative, which changes the size-label rule and
 * makes "lora" in the name a type rather than a fine-tune; no size label from the count. */
void conv_naming_build_adapter(conv_naming *n, const char *dir_name, int64_t adapted_params);
/* "5.2M", "1.1B" (gguf-py's model_weight_count_rounded_notation, 2 digits). */
void conv_size_label(uint64_t params, char *buf, size_t size);
/* Default output file name: <Name>[-<size>][-<finetune>][-<version>]-<TYPE>.gguf */
void conv_default_filename(const conv_naming *n, const char *type_upper, bool vocab_only, char *buf,
                           size_t size);
/* id_to_title: "wikillama-bf16" -> "Wikillama Bf16". */
void conv_id_to_title(const char *id, char *buf, size_t size);

/* ---------------- LoRA adapters (lora.c) ---------------- */

typedef struct conv_lora_options {
    const char *dir;      /* the PEFT folder */
    const char *base;     /* the base's HF folder or GGUF */
    const char *outfile;  /* NULL: DIR/<Name>-<TYPE>-LoRA.gguf */
    conv_outtype outtype; /* AUTO: the first tensor's 16-bit type */
    bool force, no_fsync, dry_run, json, quiet;
} conv_lora_options;

/* Converts the adapter; returns the exit status (messages printed). */
int conv_lora_main(const conv_lora_options *o);

#endif
