/* LoRA adapters in the two forms nomoat reads.
 *
 * GGUF adapters, as llama.cpp loads them with --lora (convert_lora_to_gguf.py writes them):
 * general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (FLOAT32; absent = 0, which
 * llama.cpp reads as "scale by the user's scale alone"), general.architecture naming the base's
 * architecture, and per adapted base tensor W (ne {in, out}) a pair
 *     <W's name>.lora_a  ne {in, r}      <W's name>.lora_b  ne {r, out}
 * applied as W x + scale · alpha / r · B (A x). token_embd.weight is the exception: its lora_a is
 * ne {r, n_vocab} (one row per token, gathered like the embedding) and lora_b ne {r, n_embd}.
 * Vectors named *_norm.weight (mergekit-extract-lora writes them) are ignored, as llama.cpp does.
 *
 * Hugging Face PEFT folders: adapter_config.json plus adapter_model.safetensors (or
 * adapter_model.bin, read by the restricted unpickler: nothing in it is executed). Keys are
 * base_model.model.<module>.lora_A.weight ([r, in]) / .lora_B.weight ([out, r]), and for
 * embeddings <module>.lora_embedding_A ([r, n_vocab]) / .lora_embedding_B ([n_embd, r]).
 * PEFT's own scaling is lora_alpha / r (lora_alpha / sqrt(r) with use_rslora), per module after
 * rank_pattern / alpha_pattern. What nomoat cannot represent is refused by name: DoRA, trained
 * biases, modules_to_save, other PEFT methods, activated LoRA, Conv1D (fan_in_fan_out). */
#ifndef NOMOAT_LORA_H
#define NOMOAT_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "formats/tensor.h"

/* ---------------- GGUF adapters ---------------- */

typedef struct nm_lora_pair {
    char target[GGUF_MAX_NAME];    /* the base tensor it adapts: "blk.0.attn_q.weight" */
    const gguf_tensor_info *a, *b; /* .lora_a, .lora_b */
    uint32_t rank;                 /* b->ne[0] (llama.cpp's r) */
    bool embedding;                /* token_embd.weight: lora_a holds one row per token */
} nm_lora_pair;

typedef struct nm_lora {
    const gguf_reader *g;  /* not owned */
    char arch[64];         /* general.architecture */
    float alpha;           /* adapter.lora.alpha, 0 when absent */
    nm_lora_pair *pairs;   /* in the file's order of first appearance */
    size_t n_pairs;
    size_t n_ignored;      /* *_norm.weight vectors (not applied, as in llama.cpp) */
} nm_lora;

/* Checks that g is a LoRA adapter as llama.cpp loads it and pairs its tensors: every tensor a
 * .lora_a/.lora_b of 2 dimensions (or a norm vector), both halves present with the same rank
 * (>= 1), of a type nomoat can dequantize, every value finite. Errors name the tensor. */
int nm_lora_open(nm_lora *l, const gguf_reader *g, nm_error *err);
void nm_lora_free(nm_lora *l);
/* True when the GGUF says it is an adapter (general.type = "adapter"). */
bool nm_lora_is_adapter(const gguf_reader *g);
const nm_lora_pair *nm_lora_find(const nm_lora *l, const char *target);
/* llama.cpp's scale for a pair: user_scale · alpha / rank in float, or user_scale when alpha = 0. */
float nm_lora_pair_scale(const nm_lora *l, const nm_lora_pair *p, float user_scale);
/* Checks a pair against its base tensor's ne (the shapes llama.cpp requires). */
int nm_lora_check_base(const nm_lora_pair *p, const int64_t base_ne[4], nm_error *err);
/* Parses "FILE[:SCALE]" (llama.cpp's --lora-scaled spelling): SCALE is the text after the last
 * ':' when it is a finite number, else the whole argument is the file and the scale is 1. The
 * path is copied into path (at most path_size bytes). */
int nm_lora_parse_arg(const char *arg, char *path, size_t path_size, float *scale, nm_error *err);

/* ---------------- PEFT folders ---------------- */

typedef struct nm_peft_pattern {
    char *key;    /* a module name or a suffix of one ("q_proj", "model.layers.0.mlp.up_proj") */
    double value;
} nm_peft_pattern;

typedef struct nm_peft_config {
    uint32_t r;                  /* default rank */
    double lora_alpha;
    bool use_rslora;
    char *base_model;            /* base_model_name_or_path, or NULL */
    char *target_modules;        /* as given: names joined by ",", or the regular expression */
    nm_peft_pattern *rank_pattern, *alpha_pattern;
    size_t n_rank_pattern, n_alpha_pattern;
} nm_peft_config;

/* Parses adapter_config.json text (name is used in messages). Refuses what cannot be converted
 * to llama.cpp's adapter format, naming the key: peft_type other than LORA, use_dora,
 * fan_in_fan_out, bias other than "none", lora_bias, modules_to_save, activated LoRA
 * (alora_invocation_tokens / invocation_string), a rank below 1, a missing or non-finite
 * lora_alpha, rank_pattern/alpha_pattern keys that are regular expressions. */
int nm_peft_config_parse(nm_peft_config *c, const char *json, size_t len, const char *name, nm_error *err);
void nm_peft_config_free(nm_peft_config *c);
/* Rank and alpha PEFT uses for a module ("model.layers.0.self_attn.q_proj"): the first
 * rank_pattern / alpha_pattern key equal to the module name or to a suffix of it after a '.'. */
uint32_t nm_peft_config_rank(const nm_peft_config *c, const char *module, bool *from_pattern);
double nm_peft_config_alpha(const nm_peft_config *c, const char *module, bool *from_pattern);

/* A tensor of the adapter's weights file (safetensors or torch). */
typedef struct nm_peft_tensor {
    const char *name; /* the key as stored */
    nm_dtype dtype;   /* F32, F16 or BF16 */
    uint64_t rows, cols; /* 2-D shape [rows, cols]; vectors: rows = 1 */
    size_t index;     /* in the weights file */
} nm_peft_tensor;

typedef struct nm_peft_module {
    char *module;            /* key without "base_model.model." and the lora suffix */
    bool embedding;          /* lora_embedding_A/B */
    nm_peft_tensor a, b;     /* a: [r, in] (embedding: [r, n_vocab]); b: [out, r] (embedding: [n_embd, r]) */
    uint32_t rank;
    double alpha;            /* after alpha_pattern */
    double scaling;          /* PEFT's: alpha / rank, or alpha / sqrt(rank) with rsLoRA */
    bool patterned;          /* rank or alpha came from a pattern */
} nm_peft_module;

typedef struct nm_peft nm_peft;

/* Opens dir/adapter_config.json and dir/adapter_model.safetensors (or .bin), pairs every
 * lora_A with its lora_B and checks shapes, dtypes and ranks against the configuration.
 * Order of modules and extra vectors: llama.cpp's converter order (the weights file's keys in
 * sorted order for safetensors, in pickle order for .bin; by first appearance of a module). */
nm_peft *nm_peft_open(const char *dir, nm_error *err);
/* The same from in-memory adapter_config.json text and a safetensors image (fuzzing, tests). */
nm_peft *nm_peft_open_memory(const char *config, size_t config_len, const void *safetensors, size_t st_len,
                             nm_error *err);
void nm_peft_close(nm_peft *p);
const nm_peft_config *nm_peft_get_config(const nm_peft *p);
size_t nm_peft_module_count(const nm_peft *p);
const nm_peft_module *nm_peft_module_at(const nm_peft *p, size_t i);
/* Full-size vectors kept beside the pairs (mergekit's *_layernorm / *.norm weights), in order;
 * they come before every pair in llama.cpp's output. */
size_t nm_peft_extra_count(const nm_peft *p);
const nm_peft_tensor *nm_peft_extra_at(const nm_peft *p, size_t i);
/* "safetensors" or "pytorch", and the weights file's path. */
const char *nm_peft_weights_kind(const nm_peft *p);
const char *nm_peft_weights_path(const nm_peft *p);
/* Reads a tensor as rows × cols floats (widened exactly from F16/BF16); refuses NaN or
 * infinite values, naming the tensor and the element. */
int nm_peft_read_f32(const nm_peft *p, const nm_peft_tensor *t, float *dst, nm_error *err);
/* True when dir holds an adapter_config.json. */
bool nm_peft_is_adapter_dir(const char *dir);

#endif
