/* Qwen3 (Qwen3ForCausalLM, dense): Llama's blocks (RMSNorm, GQA, SwiGLU, sequential residual)
 * plus an RMSNorm over each query and key head before the rotary step, which is NeoX-style
 * (split halves) on the whole head: the checkpoint's q/k rows are used as they are, with no
 * permutation. head_dim is explicit (heads × head_dim need not be the width). The converter
 * (Qwen2Model → TextModel) writes the base keys only: no vocab_size or rope.dimension_count.
 * rope_scaling (YaRN for long contexts) is refused for now. */
#include "arch/arch.h"

static const char *const classes[] = {"Qwen3ForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", NULL};

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

static const nm_arch_hf_key hf_keys[] = {
    {NM_HP_EMBD, "hidden_size", true},           {NM_HP_LAYERS, "num_hidden_layers", true},
    {NM_HP_HEADS, "num_attention_heads", true},  {NM_HP_FF, "intermediate_size", true},
    {NM_HP_VOCAB, "vocab_size", true},           {NM_HP_HEADS_KV, "num_key_value_heads", false},
    {NM_HP_HEAD_DIM, "head_dim", false},         {NM_HP_CTX, "max_position_embeddings", false},
    {NM_HP_ROPE_THETA, "rope_theta", false},     {NM_HP_RMS_EPS, "rms_norm_eps", true},
    {0, NULL, false},
};

/* TextModel.set_gguf_parameters */
static const nm_arch_gguf_key gguf_keys[] = {
    {NM_HP_LAYERS, "block_count", NM_KEY_U32, false},
    {NM_HP_CTX, "context_length", NM_KEY_U32, true},
    {NM_HP_EMBD, "embedding_length", NM_KEY_U32, false},
    {NM_HP_FF, "feed_forward_length", NM_KEY_U32, false},
    {NM_HP_HEADS, "attention.head_count", NM_KEY_U32, false},
    {NM_HP_HEADS_KV, "attention.head_count_kv", NM_KEY_U32, true},
    {NM_HP_ROPE_THETA, "rope.freq_base", NM_KEY_F32, true},
    {NM_HP_RMS_EPS, "attention.layer_norm_rms_epsilon", NM_KEY_F32, false},
    {NM_HP_HEAD_DIM, "attention.key_length", NM_KEY_U32, true},
    {NM_HP_HEAD_DIM, "attention.value_length", NM_KEY_U32, true},
    {NM_HP_FILE_TYPE, "general.file_type", NM_KEY_U32, false},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_qwen3 = {
    .name = "qwen3",
    .hf_classes = classes,
    .hf_layer_prefix = "model.layers.",
    .hf_ignored = ignored,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = hf_keys,
    .gguf_keys = gguf_keys,
    .norm = NM_NORM_RMS,
    .rope = NM_ROPE_NEOX,
    .ffn = NM_FFN_SWIGLU,
    .residual = NM_RESIDUAL_SEQUENTIAL,
    .tie_by_absence = true,
    .tied_by_default = false,
    .ff_per_embd = 0,
    .hf_rope_scaling = false,
    .vocab_add_space_prefix = false,
};
