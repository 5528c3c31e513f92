/* Qwen3 (Qwen3ForCausalLM, dense): Llama's blocks (RMSNorm, GQA, SwiGLU, sequential residual)
 * plus an RMSNorm over each query and key head before the rotary step, which is NeoX-style
 * (split halves) on the whole head: the checkpoint's q/k rows are used as they are, with no
 * permutation. head_dim is explicit (heads × head_dim need not be the width). The converter
 * (Qwen2Model → TextModel) writes the base keys only: no vocab_size or rope.dimension_count.
 * rope_scaling {rope_type: yarn} (long contexts) is written as TextModel writes it and evaluated as
 * llama.cpp's rope_yarn does; other rope_scaling kinds are refused. */
#include "arch/arch.h"

static const char *const classes[] = {"Qwen3ForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", NULL};

/* Qwen3Model._is_qwen3_reranker: such a folder becomes a ranking model (pooling type rank, a
 * cls_out tensor of lm_head's "yes" and "no" rows, a rerank chat template), not yet supported */
static const char *const rerankers[] = {"qwen3-reranker", "qwen3-vl-reranker", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT, "lm_head", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q, "self_attn.q_proj", NULL, NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_ATTN_K, "self_attn.k_proj", NULL, NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_ATTN_V, "self_attn.v_proj", NULL, NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", NULL, NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_ATTN_Q_NORM, "self_attn.q_norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_K_NORM, "self_attn.k_norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_NORM, "post_attention_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE, "mlp.gate_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_UP, "mlp.up_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_DOWN, "mlp.down_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
};


const nm_arch nm_arch_qwen3 = {
    .name = "qwen3",
    .hf_classes = classes,
    .hf_layer_prefix = "model.layers.",
    .hf_ignored = ignored,
    .hf_refused_variants = rerankers,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = nm_textmodel_hf_keys,
    .gguf_keys = nm_textmodel_gguf_keys, /* Qwen2Model adds none for a causal LM */
    .norm = NM_NORM_RMS,
    .rope = NM_ROPE_NEOX,
    .ffn = NM_FFN_SWIGLU,
    .residual = NM_RESIDUAL_SEQUENTIAL,
    .tie_by_absence = true,
    .tied_by_default = false,
    .ff_per_embd = 0,
    .hf_rope_scaling = false,
    .hf_rope_yarn = true,
    .vocab_add_space_prefix = false,
};
