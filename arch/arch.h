/* Model families as descriptions (STYLE.md, "Model families as descriptions"). One file per
 * family (arch/llama.c, arch/gptneox.c, ...) says, as data:
 *   - which Hugging Face classes it covers and which config.json keys it reads,
 *   - the GGUF metadata keys llama.cpp's converter writes for it, in its order,
 *   - its tensors: Hugging Face name -> GGUF name, with the row transform on the way,
 *   - its forward pass as a choice among a few blocks (norm, rotary, FFN, residual order).
 * nomoat-convert, nomoat-quantize, nomoat-verify and nomoat-inspect read the same description.
 * llama-quantize's per-tensor rules go by GGUF tensor names (quantize/recipe.c), so a family
 * that needs no exception to them lists none. */
#ifndef NOMOAT_ARCH_H
#define NOMOAT_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a tensor is to the forward pass; the GGUF name follows from it (nm_role_gguf_name). */
typedef enum nm_role {
    NM_ROLE_TOKEN_EMBD, NM_ROLE_OUTPUT_NORM, NM_ROLE_OUTPUT, NM_ROLE_POS_EMBD, /* whole-model tensors */
    NM_ROLE_ATTN_NORM, NM_ROLE_ATTN_Q, NM_ROLE_ATTN_K, NM_ROLE_ATTN_V,    /* per layer: blk.N.* */
    NM_ROLE_ATTN_QKV, NM_ROLE_ATTN_OUT, NM_ROLE_FFN_NORM, NM_ROLE_FFN_GATE, NM_ROLE_FFN_UP,
    NM_ROLE_FFN_DOWN, NM_ROLE_ATTN_Q_NORM, NM_ROLE_ATTN_K_NORM, /* per-head RMSNorm of q and k (Qwen3) */
    NM_ROLE_FFN_GATE_INP,    /* mixture of experts: the router, one row of scores per expert */
    NM_ROLE_FFN_GATE_EXPS, NM_ROLE_FFN_DOWN_EXPS, NM_ROLE_FFN_UP_EXPS, /* every expert's FFN matrix, stacked */
    NM_ROLE_ATTN_POST_NORM, NM_ROLE_FFN_POST_NORM, /* norms of the attention and FFN outputs before the
                                                    * residual add (Gemma 2) */
    NM_ROLE_COUNT
} nm_role;
#define NM_ROLE_FIRST_LAYER NM_ROLE_ATTN_NORM

/* "token_embd", "attn_qkv", ...: llama.cpp's names, the same in every family. */
const char *nm_role_gguf_name(nm_role r);

/* How a checkpoint's rows become the GGUF tensor's rows. */
typedef enum nm_transform {
    NM_XF_NONE,
    NM_XF_ROTARY_Q,  /* Hugging Face's rotate-half Q rows to ggml's adjacent pairs, per query head */
    NM_XF_ROTARY_K,  /* the same per KV head (FORMATS.md §6.3) */
    NM_XF_QKV_HEADS, /* fused QKV stored head by head as [q_h | k_h | v_h] to [all Q | all K | all V] */
    NM_XF_TRANSPOSE, /* a Conv1D weight stored [in, out]: GGUF rows are its columns (GPT-2) */
    NM_XF_STACK_EXPERTS, /* one checkpoint tensor per expert ("*" in its name stands for the expert's
                          * number): stacked, expert 0 first, into one 3-D GGUF tensor */
    NM_XF_PLUS_ONE,  /* a norm weight stored as w - 1 (Gemma): the converter adds 1, in the checkpoint's
                      * precision for F16 and F32, in F32 for BF16 (it widens BF16 first) */
} nm_transform;

/* A tensor's bias: absent, required beside the weight, or allowed. */
typedef enum nm_bias { NM_BIAS_NONE, NM_BIAS_REQUIRED, NM_BIAS_OPTIONAL } nm_bias;

typedef struct nm_arch_tensor {
    nm_role role;
    const char *hf;          /* per layer: the name after "<layer prefix>N." without ".weight";
                              * whole-model: the full name without ".weight" */
    const char *meta;        /* the same in Meta's consolidated.*.pth layout, or NULL */
    nm_transform transform;
    nm_bias bias;
} nm_arch_tensor;

/* Hyper-parameters, as config.json gives them and the GGUF keys take them. */
typedef enum nm_hparam {
    NM_HP_EMBD, NM_HP_LAYERS, NM_HP_HEADS, NM_HP_HEADS_KV, NM_HP_FF, NM_HP_VOCAB, NM_HP_CTX,
    NM_HP_HEAD_DIM,          /* key_length and value_length (explicit head_dim) */
    NM_HP_ROT,               /* rotary dimensions: head_dim, or head_dim × a partial-rotary fraction */
    NM_HP_ROPE_THETA, NM_HP_RMS_EPS, NM_HP_NORM_EPS, NM_HP_PARALLEL_RESIDUAL,
    NM_HP_ROTARY_PCT,        /* config.json only: the partial-rotary fraction */
    NM_HP_FILE_TYPE,         /* GGUF only: general.file_type, where the converter writes it */
    NM_HP_ROPE_SCALING,      /* GGUF only: the rope.scaling.* keys of a linear or YaRN rope_scaling, where
                              * TextModel writes them (type, factor, then YaRN's original context
                              * length and the optional yarn_* values) */
    NM_HP_EXPERTS,           /* mixture of experts: experts per layer */
    NM_HP_EXPERTS_USED,      /* experts each token is routed to (top k) */
    NM_HP_EXPERT_FF,         /* an expert's FFN width when it is not NM_HP_FF (Qwen3MoE) */
    NM_HP_NORM_TOPK,         /* config.json only: whether the chosen experts' weights are renormalised
                              * (llama.cpp always does: false is refused) */
    NM_HP_ORIG_CTX,          /* original_max_position_embeddings: the context the rotary was trained for */
    NM_HP_SLIDING_WINDOW,    /* sliding_window (0 when null or absent) */
    NM_HP_ATTN_SOFTCAP,      /* attn_logit_softcapping: attention scores become cap·tanh(s/cap) */
    NM_HP_FINAL_SOFTCAP,     /* final_logit_softcapping: the same on the output logits */
    NM_HP_QUERY_SCALAR,      /* config.json only: query_pre_attn_scalar (queries scaled by its -1/2 power) */
    NM_HP_ROPE_THETA_SWA,    /* the local (sliding-window) layers' rotary base: rope.freq_base_swa (Gemma 3's
                              * rope_local_base_freq) */
    NM_HP_SWA_PATTERN,       /* config.json only: sliding_window_pattern (every Nth layer global; 1: none
                              * slides), checked against the family's swa_period */
    NM_HP_COUNT
} nm_hparam;

typedef enum nm_key_kind { NM_KEY_U32, NM_KEY_F32, NM_KEY_BOOL } nm_key_kind;

typedef struct nm_arch_hf_key {
    nm_hparam hp;
    const char *key;         /* config.json key */
    bool required;
} nm_arch_hf_key;

typedef struct nm_arch_gguf_key {
    nm_hparam hp;
    const char *key;         /* after "<arch>.", or a full "general.*" key */
    nm_key_kind kind;
    bool only_if_given;      /* written only when config.json had the value */
} nm_arch_gguf_key;

typedef enum nm_norm_kind { NM_NORM_RMS, NM_NORM_LAYER } nm_norm_kind;       /* LayerNorm: with bias */
typedef enum nm_rope_kind { NM_ROPE_NORMAL, NM_ROPE_NEOX, NM_ROPE_NONE } nm_rope_kind; /* adjacent pairs /
                                                        * split halves / none (learned position embeddings) */
typedef enum nm_ffn_kind { NM_FFN_SWIGLU, NM_FFN_GELU, NM_FFN_GEGLU } nm_ffn_kind; /* gated SiLU / plain GELU /
                                                        * gated GELU (tanh approximation; Gemma) */
typedef enum nm_residual { NM_RESIDUAL_SEQUENTIAL, NM_RESIDUAL_PARALLEL } nm_residual;

typedef struct nm_arch {
    const char *name;                 /* general.architecture */
    const char *const *hf_classes;    /* config.json "architectures", NULL-terminated */
    const char *hf_layer_prefix;      /* "model.layers." */
    const char *hf_optional_prefix;   /* a prefix some checkpoints put before every name ("transformer."
                                       * in GPT-2 files saved by transformers), or NULL */
    const char *meta_layer_prefix;    /* "layers." (Meta's layout), or NULL */
    const char *const *hf_ignored;    /* name suffixes the converter drops, NULL-terminated */
    const char *const *hf_refused_variants; /* lowercase names of variants the converter writes as another
                                       * kind of model (Qwen3's rerankers), NULL-terminated, or NULL: a
                                       * folder is one when its name, config.json's _name_or_path or
                                       * model_type contains one, or its README.md has the heading
                                       * "# <name>" (as convert_hf_to_gguf.py decides); refused */
    const nm_arch_tensor *tensors;
    size_t n_tensors;
    const nm_arch_hf_key *hf_keys;    /* terminated by key == NULL */
    const nm_arch_gguf_key *gguf_keys;/* in the converter's order; terminated by key == NULL */
    const nm_arch_gguf_key *gguf_keys_more; /* a subclass's keys after those, or NULL */
    /* the forward pass */
    nm_norm_kind norm;
    nm_rope_kind rope;
    nm_ffn_kind ffn;
    nm_residual residual;             /* the default; NM_HP_PARALLEL_RESIDUAL may say otherwise */
    bool tie_by_absence;              /* no output tensor: the token embedding is used */
    bool tied_by_default;             /* tied when config.json has no tie_word_embeddings */
    uint32_t ff_per_embd;             /* the converter writes feed_forward_length = this × embedding
                                       * length (GPT-2: 4), or 0: the config's value */
    bool hf_rope_scaling;             /* reads Llama's rope_scaling kinds (linear, llama3); other
                                       * families refuse a rope_scaling section */
    bool hf_rope_yarn;                /* reads rope_scaling {rope_type: yarn} as TextModel writes it (Qwen's
                                       * long-context setting) */
    bool hf_rope_llama3;              /* with hf_rope_scaling: LlamaModel's llama3 kind too (a computed
                                       * rope_freqs.weight); a class without it refuses llama3 (Gemma 3) */
    bool vocab_add_space_prefix;      /* writes tokenizer.ggml.add_space_prefix from tokenizer_config.json's
                                       * add_prefix_space (LlamaModel.set_vocab) */
    const nm_arch_hf_key *hf_keys_more; /* a subclass's config keys after hf_keys, or NULL */
    bool experts;                     /* a mixture of experts: NM_HP_EXPERTS experts per layer, the FFN
                                       * replaced by a router and stacked expert tensors (a GGUF file is
                                       * this family when its general.architecture matches and
                                       * <arch>.expert_count is present) */
    bool ffn_up_gated;                /* ffn_up holds the gate's n_ff rows, then the up rows (2 × n_ff:
                                       * Phi-3's gate_up_proj); SwiGLU runs on its two halves */
    bool q_scaled_first;              /* Q is multiplied by 1/sqrt(head_dim) after the rotary and the
                                       * attention scores are not scaled again (Phi-3's graph) */
    bool hf_longrope;                 /* reads rope_scaling {type: longrope or su} (Phi-3's long-context
                                       * variants): rope_factors_long/short.weight and rope.scaling.attn_factor */
    bool vocab_added_special_only;    /* added tokens as Phi3MiniModel.set_vocab reads them: added_tokens.json,
                                       * tokenizer_config.json's added_tokens_decoder, then tokenizer.json's
                                       * added_tokens; control only when marked special, text kept as is */
    /* Gemma's blocks */
    bool vocab_no_space_prefix;       /* writes tokenizer.ggml.add_space_prefix = false after the special
                                       * vocabulary, whatever the tokenizer says (Gemma2Model.set_vocab) */
    bool embd_scale;                  /* the token embedding is multiplied by sqrt(n_embd) */
    bool logit_softcap;               /* attention scores and output logits soft-capped (cap·tanh(x/cap));
                                       * the caps from the GGUF keys, llama.cpp's defaults 50 and 30 */
    bool query_prescale;              /* queries multiplied by 1/sqrt(head_dim) after the rotary, the scores
                                       * then not scaled; llama.cpp's 46-layer Gemma 2 (27B) uses
                                       * 1/sqrt(n_embd/n_head) instead (query_pre_attn_scalar must agree) */
    uint32_t query_scale_width_layers;/* the layer count of the model llama.cpp scales by 1/sqrt(n_embd/n_head)
                                       * instead of 1/sqrt(head_dim) (its 27B: Gemma 2 46, Gemma 3 62), or 0 */
    /* Gemma 3's blocks */
    uint32_t swa_period;              /* llama.cpp's sliding-window pattern when the file has a window: layer il
                                       * is local when il % swa_period < swa_period - 1 (Gemma 3: 6), or 0 */
    bool swa_rope_base;               /* local layers rotate with <arch>.rope.freq_base_swa (llama.cpp's default
                                       * 10000) and no rope scaling; without attention.sliding_window no layer
                                       * is local (Gemma 3) */
} nm_arch;

/* The converter's TextModel base: its config keys and GGUF keys (arch/textmodel.c). */
extern const nm_arch_hf_key nm_textmodel_hf_keys[];
extern const nm_arch_gguf_key nm_textmodel_gguf_keys[];

extern const nm_arch nm_arch_llama;
extern const nm_arch nm_arch_gptneox;
extern const nm_arch nm_arch_gpt2;
extern const nm_arch nm_arch_qwen3;
extern const nm_arch nm_arch_mixtral;
extern const nm_arch nm_arch_qwen3moe;
extern const nm_arch nm_arch_phi3;
extern const nm_arch nm_arch_gemma2;
extern const nm_arch nm_arch_qwen2;
extern const nm_arch nm_arch_gemma3;

/* The family of a config.json "architectures" entry, or NULL. */
const nm_arch *nm_arch_by_hf_class(const char *hf_class);
/* The family of a GGUF general.architecture value (not NUL-terminated: len bytes), or NULL. */
const nm_arch *nm_arch_by_name(const char *name, size_t len);
/* The same for a file that has (experts) or lacks <arch>.expert_count: Mixtral's files say "llama". */
const nm_arch *nm_arch_by_name_experts(const char *name, size_t len, bool experts);
/* "LlamaForCausalLM, MistralForCausalLM, GPTNeoXForCausalLM" into buf. */
void nm_arch_list_hf(char *buf, size_t size);
/* "llama, gptneox" into buf. */
void nm_arch_list_names(char *buf, size_t size);
/* One line naming the family's blocks: "LayerNorm, fused QKV with bias, NeoX rotary, GELU FFN,
 * parallel residual" (nomoat-inspect's summary). */
void nm_arch_describe(const nm_arch *a, char *buf, size_t size);
/* The description's entry for a role, or NULL when the family has no such tensor. */
const nm_arch_tensor *nm_arch_tensor_of(const nm_arch *a, nm_role r);

#endif
