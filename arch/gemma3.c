/* Gemma 3, text only (Gemma3ForCausalLM, such as gemma-3-1b): Gemma 2's blocks (four RMSNorms
 * per layer, every norm weight stored as w - 1, the embedding scaled by sqrt(n_embd), GQA with an
 * explicit head_dim, NeoX rotary on unpermuted q/k rows, queries scaled by 1/sqrt(head_dim) before
 * attention, GELU-gated FFN) plus an RMSNorm over each query and key head before the rotary
 * (q_norm, k_norm: stored as w - 1 too, the converter adds 1 to every *norm.weight), and without
 * Gemma 2's soft caps (attn_logit_softcapping must be null; final_logit_softcapping is written
 * when set). Five of every six layers attend within a sliding window and rotate with their own
 * base (rope_local_base_freq → rope.freq_base_swa, no scaling); every sixth is global and uses
 * rope_theta (→ rope.freq_base) with the config's linear rope_scaling, if any. llama.cpp fixes
 * the pattern at 6 (the converter writes no pattern key), so a config whose sliding_window_pattern
 * or layer_types says otherwise is refused; pattern 1 (no sliding layer) writes no window.
 * Gemma3Model.set_gguf_parameters calls TextModel's first, then rewrites some of its keys in
 * place (gguf-py keeps a key's first position) and appends its own: the table below is that
 * order. llama.cpp ignores query_pre_attn_scalar except through its 27B rule (62 layers); the
 * config loader refuses a value llama.cpp would not use. lm_head.weight, when a checkpoint has
 * one, becomes output.weight (Gemma3Model does not drop it). */
#include "arch/arch.h"

static const char *const classes[] = {"Gemma3ForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", ".rotary_emb_local.inv_freq", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT, "lm_head", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q, "self_attn.q_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_K, "self_attn.k_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_V, "self_attn.v_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q_NORM, "self_attn.q_norm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_K_NORM, "self_attn.k_norm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_POST_NORM, "post_attention_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_NORM, "pre_feedforward_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE, "mlp.gate_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_UP, "mlp.up_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_DOWN, "mlp.down_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_POST_NORM, "post_feedforward_layernorm", NULL, NM_XF_PLUS_ONE, NM_BIAS_NONE},
};

/* Gemma3Model writes defaults for some keys a config lacks, at another place in the order:
 * those keys are required here instead. */
static const nm_arch_hf_key hf_keys[] = {
    {NM_HP_EMBD, "hidden_size", true},            {NM_HP_LAYERS, "num_hidden_layers", true},
    {NM_HP_HEADS, "num_attention_heads", true},   {NM_HP_FF, "intermediate_size", true},
    {NM_HP_VOCAB, "vocab_size", true},            {NM_HP_HEADS_KV, "num_key_value_heads", true},
    {NM_HP_HEAD_DIM, "head_dim", true},           {NM_HP_CTX, "max_position_embeddings", true},
    {NM_HP_ROPE_THETA, "rope_theta", true},       {NM_HP_ROPE_THETA_SWA, "rope_local_base_freq", false},
    {NM_HP_RMS_EPS, "rms_norm_eps", true},
    {NM_HP_ATTN_SOFTCAP, "attn_logit_softcapping", false}, /* refused unless null */
    {NM_HP_FINAL_SOFTCAP, "final_logit_softcapping", false},
    {NM_HP_SLIDING_WINDOW, "sliding_window", true},
    {NM_HP_SWA_PATTERN, "sliding_window_pattern", false},
    {NM_HP_QUERY_SCALAR, "query_pre_attn_scalar", true},
    {0, NULL, false},
};

/* TextModel.set_gguf_parameters' order, with Gemma3Model's keys after it */
static const nm_arch_gguf_key gguf_keys[] = {
    {NM_HP_LAYERS, "block_count", NM_KEY_U32, false},
    {NM_HP_CTX, "context_length", NM_KEY_U32, false},
    {NM_HP_EMBD, "embedding_length", NM_KEY_U32, false},
    {NM_HP_FF, "feed_forward_length", NM_KEY_U32, false},
    {NM_HP_HEADS, "attention.head_count", NM_KEY_U32, false},
    {NM_HP_HEADS_KV, "attention.head_count_kv", NM_KEY_U32, false},
    {NM_HP_ROPE_SCALING, "rope.scaling", NM_KEY_F32, true},
    {NM_HP_ROPE_THETA, "rope.freq_base", NM_KEY_F32, false},
    {NM_HP_ROPE_THETA_SWA, "rope.freq_base_swa", NM_KEY_F32, true},
    {NM_HP_RMS_EPS, "attention.layer_norm_rms_epsilon", NM_KEY_F32, false},
    {NM_HP_HEAD_DIM, "attention.key_length", NM_KEY_U32, false},
    {NM_HP_HEAD_DIM, "attention.value_length", NM_KEY_U32, false},
    {NM_HP_FILE_TYPE, "general.file_type", NM_KEY_U32, false},
    {NM_HP_FINAL_SOFTCAP, "final_logit_softcapping", NM_KEY_F32, true}, /* when set and not 0 */
    {NM_HP_SLIDING_WINDOW, "attention.sliding_window", NM_KEY_U32, true}, /* unless the pattern is 1 */
    {0, NULL, 0, false},
};

const nm_arch nm_arch_gemma3 = {
    .name = "gemma3",
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
    .hf_rope_scaling = true, /* linear only: llama3's factors are not written for this class */
    .vocab_add_space_prefix = false,
    .vocab_no_space_prefix = true,
    .embd_scale = true,
    .logit_softcap = false,
    .query_prescale = true,
    .query_scale_width_layers = 62,
    .swa_period = 6,
    .swa_rope_base = true,
};
