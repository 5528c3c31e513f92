/* Llama (LlamaForCausalLM, MistralForCausalLM; Meta's consolidated.*.pth layout too): RMSNorm,
 * separate Q/K/V with rotary on adjacent pairs (Hugging Face's rotate-half rows are permuted
 * back, FORMATS.md §6.3), SwiGLU FFN, sequential residual. Llama's rope_scaling sections (linear,
 * llama3) are read by nomoat-convert's config loader. */
#include "arch/arch.h"

static const char *const classes[] = {"LlamaForCausalLM", "MistralForCausalLM", "LLaMAForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", "rope.freqs", ".attention.masked_bias", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", "tok_embeddings", NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", "norm", NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT, "lm_head", "output", NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", "attention_norm", NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q, "self_attn.q_proj", "attention.wq", NM_XF_ROTARY_Q, NM_BIAS_OPTIONAL},
    {NM_ROLE_ATTN_K, "self_attn.k_proj", "attention.wk", NM_XF_ROTARY_K, NM_BIAS_OPTIONAL},
    {NM_ROLE_ATTN_V, "self_attn.v_proj", "attention.wv", NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", "attention.wo", NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_FFN_NORM, "post_attention_layernorm", "ffn_norm", NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE, "mlp.gate_proj", "feed_forward.w1", NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_FFN_UP, "mlp.up_proj", "feed_forward.w3", NM_XF_NONE, NM_BIAS_OPTIONAL},
    {NM_ROLE_FFN_DOWN, "mlp.down_proj", "feed_forward.w2", NM_XF_NONE, NM_BIAS_OPTIONAL},
};

/* LlamaModel.set_gguf_parameters: TextModel's keys, then these; rope.scaling.* follow when configured */
static const nm_arch_gguf_key gguf_keys_more[] = {
    {NM_HP_VOCAB, "vocab_size", NM_KEY_U32, false},
    {NM_HP_ROT, "rope.dimension_count", NM_KEY_U32, false},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_llama = {
    .name = "llama",
    .hf_classes = classes,
    .hf_layer_prefix = "model.layers.",
    .meta_layer_prefix = "layers.",
    .hf_ignored = ignored,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = nm_textmodel_hf_keys,
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
};
