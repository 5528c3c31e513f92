/* Gemma 2 (Gemma2ForCausalLM): RMSNorm before and after both the attention and the FFN (four
 * norms per layer: input_layernorm → attn_norm, post_attention_layernorm → post_attention_norm,
 * pre_feedforward_layernorm → ffn_norm, post_feedforward_layernorm → post_ffw_norm), every norm
 * weight stored as w - 1 (the converter adds 1: NM_XF_PLUS_ONE), the token embedding scaled by
 * sqrt(n_embd), GQA with an explicit head_dim, NeoX rotary on unpermuted q/k rows, queries scaled
 * by 1/sqrt(head_dim) before attention (llama.cpp ignores query_pre_attn_scalar except through its
 * 27B rule: the config loader refuses a value llama.cpp would not use), attention scores and
 * output logits soft-capped (cap·tanh(x/cap)), GELU-gated FFN (tanh approximation), output
 * always tied to the embedding (the converter drops an lm_head.weight). Every other layer
 * attends within a sliding window; nomoat-verify refuses contexts longer than the window, where
 * that would matter. Gemma2Model.set_gguf_parameters writes its own keys (not TextModel's): no
 * rope.freq_base, so rope_theta must be llama.cpp's default 10000 (checked on conversion). */
#include "arch/arch.h"

static const char *const classes[] = {"Gemma2ForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", "lm_head.weight", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q, "self_attn.q_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_K, "self_attn.k_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_V, "self_attn.v_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_POST_NORM, "post_attention_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_NORM, "pre_feedforward_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE, "mlp.gate_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_UP, "mlp.up_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_DOWN, "mlp.down_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_POST_NORM, "post_feedforward_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
};

static const nm_arch_hf_key hf_keys[] = {
    {NM_HP_EMBD, "hidden_size", true},            {NM_HP_LAYERS, "num_hidden_layers", true},
    {NM_HP_HEADS, "num_attention_heads", true},   {NM_HP_FF, "intermediate_size", true},
    {NM_HP_VOCAB, "vocab_size", true},            {NM_HP_HEADS_KV, "num_key_value_heads", false},
    {NM_HP_HEAD_DIM, "head_dim", true},           {NM_HP_CTX, "max_position_embeddings", true},
    {NM_HP_ROPE_THETA, "rope_theta", false},      {NM_HP_RMS_EPS, "rms_norm_eps", true},
    {NM_HP_ATTN_SOFTCAP, "attn_logit_softcapping", true},
    {NM_HP_FINAL_SOFTCAP, "final_logit_softcapping", true},
    {NM_HP_SLIDING_WINDOW, "sliding_window", true},
    {NM_HP_QUERY_SCALAR, "query_pre_attn_scalar", true},
    {0, NULL, false},
};

/* Gemma2Model.set_gguf_parameters, in its order */
static const nm_arch_gguf_key gguf_keys[] = {
    {NM_HP_CTX, "context_length", NM_KEY_U32, false},
    {NM_HP_EMBD, "embedding_length", NM_KEY_U32, false},
    {NM_HP_LAYERS, "block_count", NM_KEY_U32, false},
    {NM_HP_FF, "feed_forward_length", NM_KEY_U32, false},
    {NM_HP_HEADS, "attention.head_count", NM_KEY_U32, false},
    {NM_HP_HEADS_KV, "attention.head_count_kv", NM_KEY_U32, false},
    {NM_HP_RMS_EPS, "attention.layer_norm_rms_epsilon", NM_KEY_F32, false},
    {NM_HP_HEAD_DIM, "attention.key_length", NM_KEY_U32, false},
    {NM_HP_HEAD_DIM, "attention.value_length", NM_KEY_U32, false},
    {NM_HP_FILE_TYPE, "general.file_type", NM_KEY_U32, false},
    {NM_HP_ATTN_SOFTCAP, "attn_logit_softcapping", NM_KEY_F32, false},
    {NM_HP_FINAL_SOFTCAP, "final_logit_softcapping", NM_KEY_F32, false},
    {NM_HP_SLIDING_WINDOW, "attention.sliding_window", NM_KEY_U32, false},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_gemma2 = {
    .name = "gemma2",
    .hf_classes = classes,
    .hf_layer_prefix = "model.layers.",
    .hf_ignored = ignored,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = hf_keys,
    .gguf_keys = gguf_keys,
    .norm = NM_NORM_RMS,
    .rope = NM_ROPE_NEOX,
    .ffn = NM_FFN_GEGLU,
    .residual = NM_RESIDUAL_SEQUENTIAL,
    .tie_by_absence = true,
    .tied_by_default = true,
    .hf_rope_scaling = false,
    .vocab_add_space_prefix = false,
    .vocab_no_space_prefix = true,
    .embd_scale = true,
    .logit_softcap = true,
    .query_prescale = true,
    .query_scale_width_layers = 46,
};
