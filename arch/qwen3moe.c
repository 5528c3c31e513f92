/* Qwen3-MoE (Qwen3MoeForCausalLM): Qwen3's attention (per-head Q/K RMSNorm, NeoX rotary on the
 * whole head, explicit head_dim) with every layer's FFN a mixture of experts: a router (mlp.gate,
 * kept F32 by the converter) over num_experts SwiGLU experts of width moe_intermediate_size, each
 * token using num_experts_per_tok of them. The converter (Qwen2MoeModel) buffers a layer's
 * 3 × n_expert mlp.experts.N.{gate,up,down}_proj tensors and writes them stacked, in the order
 * down, gate, up, when the last of them arrives; it writes TextModel's keys (expert_count and
 * expert_used_count among them) and then expert_feed_forward_length. llama.cpp always renormalises
 * the chosen experts' weights, which is norm_topk_prob = true (Qwen3-30B-A3B's setting): a config
 * that says false is refused, as are dense layers (mlp_only_layers, decoder_sparse_step), which
 * llama.cpp's qwen3moe does not have. */
#include "arch/arch.h"

static const char *const classes[] = {"Qwen3MoeForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT, "lm_head", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q, "self_attn.q_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_K, "self_attn.k_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_V, "self_attn.v_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q_NORM, "self_attn.q_norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_K_NORM, "self_attn.k_norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_NORM, "post_attention_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE_INP, "mlp.gate", NULL, NM_XF_NONE, NM_BIAS_NONE},
    /* the converter's order: down, gate, up */
    {NM_ROLE_FFN_DOWN_EXPS, "mlp.experts.*.down_proj", NULL, NM_XF_STACK_EXPERTS, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE_EXPS, "mlp.experts.*.gate_proj", NULL, NM_XF_STACK_EXPERTS, NM_BIAS_NONE},
    {NM_ROLE_FFN_UP_EXPS, "mlp.experts.*.up_proj", NULL, NM_XF_STACK_EXPERTS, NM_BIAS_NONE},
};

static const nm_arch_hf_key hf_keys_more[] = {
    {NM_HP_EXPERTS, "num_experts", true},
    {NM_HP_EXPERTS_USED, "num_experts_per_tok", true},
    {NM_HP_EXPERT_FF, "moe_intermediate_size", true},
    {NM_HP_NORM_TOPK, "norm_topk_prob", true}, /* absent means false to Hugging Face */
    {0, NULL, false},
};

/* Qwen2MoeModel.set_gguf_parameters: TextModel's keys, then this one */
static const nm_arch_gguf_key gguf_keys_more[] = {
    {NM_HP_EXPERT_FF, "expert_feed_forward_length", NM_KEY_U32, true},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_qwen3moe = {
    .name = "qwen3moe",
    .hf_classes = classes,
    .hf_layer_prefix = "model.layers.",
    .hf_ignored = ignored,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = nm_textmodel_hf_keys,
    .hf_keys_more = hf_keys_more,
    .gguf_keys = nm_textmodel_gguf_keys,
    .gguf_keys_more = gguf_keys_more,
    .hf_rope_yarn = true,
    .norm = NM_NORM_RMS,
    .rope = NM_ROPE_NEOX,
    .ffn = NM_FFN_SWIGLU,
    .residual = NM_RESIDUAL_SEQUENTIAL,
    .tie_by_absence = true,
    .tied_by_default = false,
    .experts = true,
};
