/* Qwen2 (Qwen2ForCausalLM: Qwen2, Qwen2.5 and their coder/math models, dense): Llama's blocks
 * (RMSNorm, GQA, SwiGLU, sequential residual) with a bias on each of q_proj, k_proj and v_proj
 * (none on o_proj), NeoX-style rotary (split halves) on the whole head, so the checkpoint's q/k
 * rows are used as they are, with no permutation. head_dim is hidden_size / num_attention_heads
 * (llama.cpp's qwen2 loader expects q and the attention output to be hidden_size wide). The
 * converter (Qwen2Model → TextModel) writes the base keys only: no vocab_size, no
 * rope.dimension_count, and nothing of use_sliding_window / sliding_window / max_window_layers
 * (llama.cpp's qwen2 has no sliding-window attention; nomoat-convert refuses a config whose
 * layers would slide). rope_scaling {type: yarn} (Qwen2.5's long-context setting) is written as
 * TextModel writes it (rope.scaling.type, factor, original_context_length) and evaluated as
 * llama.cpp's rope_yarn does; other rope_scaling kinds are refused. */
#include "arch/arch.h"

static const char *const classes[] = {"Qwen2ForCausalLM", NULL};

static const char *const ignored[] = {".rotary_emb.inv_freq", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "model.embed_tokens", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "model.norm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT, "lm_head", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_Q, "self_attn.q_proj", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_ATTN_K, "self_attn.k_proj", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_ATTN_V, "self_attn.v_proj", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_ATTN_OUT, "self_attn.o_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_NORM, "post_attention_layernorm", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_GATE, "mlp.gate_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_UP, "mlp.up_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_FFN_DOWN, "mlp.down_proj", NULL, NM_XF_NONE, NM_BIAS_NONE},
};

const nm_arch nm_arch_qwen2 = {
    .name = "qwen2",
    .hf_classes = classes,
    .hf_layer_prefix = "model.layers.",
    .hf_ignored = ignored,
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
