/* Phi-3 (Phi3ForCausalLM: Phi-3-mini, -medium and their 128k long-context variants): Llama's blocks
 * (RMSNorm, SwiGLU, sequential residual, GQA allowed) with two fused projections kept fused as
 * llama.cpp's converter writes them: self_attn.qkv_proj becomes attn_qkv with its rows as they are,
 * all query rows, then all key rows, then all value rows (no per-head interleaving, no rotary
 * permutation: the rotary is NeoX-style on unpermuted rows), and mlp.gate_up_proj becomes ffn_up
 * with 2 × intermediate_size rows, the gate's first (SwiGLU runs on its two halves: silu(first) ×
 * second). The graph multiplies Q by 1/sqrt(head_dim) after the rotary and leaves the scores
 * unscaled. The converter class (Phi3MiniModel) writes its own keys, not TextModel's; it requires
 * num_key_value_heads, rope_theta and original_max_position_embeddings, and writes sliding_window
 * (0 when null), which llama.cpp reads and then ignores for this architecture (Phi SWA disabled).
 * The long-context variants' rope_scaling {type: longrope (or su), long_factor, short_factor} adds
 * rope_factors_long/short.weight and rope.scaling.attn_factor (convert/longrope.c). Its vocabulary
 * is SentencePiece (tokenizer.model, Llama 2's for Phi-3-mini) with the added tokens applied by
 * Phi3MiniModel.set_vocab's own rules. */
#include "arch/arch.h"

static const char *const classes[] = {"Phi3ForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT, "lm_head", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_QKV, "self_attn.qkv_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_NORM, "post_attention_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_UP, "mlp.gate_up_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_DOWN, "mlp.down_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
};

static const nm_arch_hf_key hf_keys[] = {
    {NM_HP_EMBD, "hidden_size", true},           {NM_HP_LAYERS, "num_hidden_layers", true},
    {NM_HP_HEADS, "num_attention_heads", true},  {NM_HP_HEADS_KV, "num_key_value_heads", true},
    {NM_HP_FF, "intermediate_size", true},       {NM_HP_VOCAB, "vocab_size", true},
    {NM_HP_CTX, "max_position_embeddings", true}, {NM_HP_ORIG_CTX, "original_max_position_embeddings", true},
    {NM_HP_ROPE_THETA, "rope_theta", true},      {NM_HP_RMS_EPS, "rms_norm_eps", true},
    {NM_HP_ROTARY_PCT, "partial_rotary_factor", false},
    {NM_HP_SLIDING_WINDOW, "sliding_window", false},
    {0, NULL, false},
};

/* Phi3MiniModel.set_gguf_parameters (rope.scaling.attn_factor, when rope_scaling is given, comes
 * first of all: the converter adds it while preparing the tensors) */
static const nm_arch_gguf_key gguf_keys[] = {
    {NM_HP_CTX, "context_length", NM_KEY_U32, false},
    {NM_HP_ORIG_CTX, "rope.scaling.original_context_length", NM_KEY_U32, false},
    {NM_HP_EMBD, "embedding_length", NM_KEY_U32, false},
    {NM_HP_FF, "feed_forward_length", NM_KEY_U32, false},
    {NM_HP_LAYERS, "block_count", NM_KEY_U32, false},
    {NM_HP_HEADS, "attention.head_count", NM_KEY_U32, false},
    {NM_HP_HEADS_KV, "attention.head_count_kv", NM_KEY_U32, false},
    {NM_HP_RMS_EPS, "attention.layer_norm_rms_epsilon", NM_KEY_F32, false},
    {NM_HP_ROT, "rope.dimension_count", NM_KEY_U32, false},
    {NM_HP_ROPE_THETA, "rope.freq_base", NM_KEY_F32, false},
    {NM_HP_FILE_TYPE, "general.file_type", NM_KEY_U32, false},
    {NM_HP_SLIDING_WINDOW, "attention.sliding_window", NM_KEY_U32, false},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_phi3 = {
    .name = "phi3",
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
    .hf_rope_scaling = false,
    .vocab_add_space_prefix = false,
    .ffn_up_gated = true,
    .q_scaled_first = true,
    .hf_longrope = true,
    .vocab_added_special_only = true,
};
