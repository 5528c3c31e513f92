/* Mixtral (MixtralForCausalLM): Llama's attention (RMSNorm, GQA, rotary on adjacent pairs after
 * the q/k rows are permuted back, sequential residual) with the FFN replaced by a mixture of
 * experts: a router (block_sparse_moe.gate, one row of scores per expert, kept F32 by the
 * converter) and num_local_experts SwiGLU experts (w1 gate, w3 up, w2 down), of which each token
 * uses num_experts_per_tok. llama.cpp's converter (LlamaModel.modify_tensors) buffers a layer's
 * 3 × n_expert expert tensors and, when the last of them arrives, writes them stacked as three
 * 3-D tensors in the order w1, w2, w3: ffn_gate_exps and ffn_up_exps of shape
 * [n_embd, n_ff, n_expert] and ffn_down_exps of [n_ff, n_embd, n_expert] (ggml order). The GGUF
 * architecture is "llama", with <arch>.expert_count and expert_used_count (TextModel's keys). */
#include "arch/arch.h"

static const char *const classes[] = {"MixtralForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT, "lm_head", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q, "self_attn.q_proj", NULL, NM_XF_ROTARY_Q, NM_BIAS_NONE},
    {NM_ROLE_ATTN_K, "self_attn.k_proj", NULL, NM_XF_ROTARY_K, NM_BIAS_NONE},
    {NM_ROLE_ATTN_V, "self_attn.v_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_NORM, "post_attention_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE_INP, "block_sparse_moe.gate", NULL, NM_XF_NONE, NM_BIAS_NONE},
    /* the converter's order: w1, w2, w3 */
    {NM_ROLE_FFN_GATE_EXPS, "block_sparse_moe.experts.*.w1", NULL, NM_XF_STACK_EXPERTS, NM_BIAS_NONE},
    {NM_ROLE_FFN_DOWN_EXPS, "block_sparse_moe.experts.*.w2", NULL, NM_XF_STACK_EXPERTS, NM_BIAS_NONE},
    {NM_ROLE_FFN_UP_EXPS, "block_sparse_moe.experts.*.w3", NULL, NM_XF_STACK_EXPERTS, NM_BIAS_NONE},
};

static const nm_arch_hf_key hf_keys_more[] = {
    {NM_HP_EXPERTS, "num_local_experts", true},
    {NM_HP_EXPERTS_USED, "num_experts_per_tok", true},
    {0, NULL, false},
};

/* LlamaModel.set_gguf_parameters, as for Llama (expert_count and expert_used_count are among
 * TextModel's keys) */
static const nm_arch_gguf_key gguf_keys_more[] = {
    {NM_HP_VOCAB, "vocab_size", NM_KEY_U32, false},
    {NM_HP_ROT, "rope.dimension_count", NM_KEY_U32, false},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_mixtral = {
    .name = "llama",
    .hf_classes = classes,
    .hf_layer_prefix = "model.layers.",
    .hf_ignored = ignored,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = nm_textmodel_hf_keys,
    .hf_keys_more = hf_keys_more,
    .gguf_keys = nm_textmodel_gguf_keys,
    .gguf_keys_more = gguf_keys_more,
    .norm = NM_NORM_RMS,
    .rope = NM_ROPE_NORMAL,
    .ffn = NM_FFN_SWIGLU,
    .residual = NM_RESIDUAL_SEQUENTIAL,
    .tie_by_absence = true,
    .hf_rope_scaling = true,
    .hf_rope_llama3 = true,
    .vocab_add_space_prefix = true,
    .experts = true,
};
