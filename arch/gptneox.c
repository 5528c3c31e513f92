/* GPT-NeoX (GPTNeoXForCausalLM: Pythia, Dolly v2, OpenAssistant's SFT-Pythia): LayerNorm with
 * bias, one fused QKV projection stored head by head (reordered to [Q | K | V] as llama.cpp's
 * converter does), rotary on the first rotary_pct of each head in NeoX's split-halves style,
 * a GELU FFN, every projection with a bias, and by default the parallel residual
 * x + attn(ln1(x)) + ffn(ln2(x)). The converter writes no rope.freq_base: llama.cpp runs these
 * models with its default base 10000 (Pythia's rotary_emb_base). */
#include "arch/arch.h"

static const char *const classes[] = {"GPTNeoXForCausalLM", NULL};

static const char *const ignored[] = {".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "gpt_neox.embed_in", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "gpt_neox.final_layer_norm", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_OUTPUT, "embed_out", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "input_layernorm", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_ATTN_QKV, "attention.query_key_value", NULL, NM_XF_QKV_HEADS, NM_BIAS_REQUIRED},
    {NM_ROLE_ATTN_OUT, "attention.dense", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_FFN_NORM, "post_attention_layernorm", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_FFN_UP, "mlp.dense_h_to_4h", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_FFN_DOWN, "mlp.dense_4h_to_h", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
};

static const nm_arch_hf_key hf_keys[] = {
    {NM_HP_EMBD, "hidden_size", true},          {NM_HP_LAYERS, "num_hidden_layers", true},
    {NM_HP_HEADS, "num_attention_heads", true}, {NM_HP_FF, "intermediate_size", true},
    {NM_HP_VOCAB, "vocab_size", true},          {NM_HP_CTX, "max_position_embeddings", true},
    {NM_HP_ROTARY_PCT, "rotary_pct", true},     {NM_HP_NORM_EPS, "layer_norm_eps", true},
    {NM_HP_PARALLEL_RESIDUAL, "use_parallel_residual", false},
    {NM_HP_ROPE_THETA, "rotary_emb_base", false},
    {0, NULL, false},
};

/* GPTNeoXModel.set_gguf_parameters (which writes no general.file_type: it does not call the
 * base class's) */
static const nm_arch_gguf_key gguf_keys[] = {
    {NM_HP_CTX, "context_length", NM_KEY_U32, false},
    {NM_HP_EMBD, "embedding_length", NM_KEY_U32, false},
    {NM_HP_LAYERS, "block_count", NM_KEY_U32, false},
    {NM_HP_FF, "feed_forward_length", NM_KEY_U32, false},
    {NM_HP_ROT, "rope.dimension_count", NM_KEY_U32, false},
    {NM_HP_HEADS, "attention.head_count", NM_KEY_U32, false},
    {NM_HP_PARALLEL_RESIDUAL, "use_parallel_residual", NM_KEY_BOOL, false},
    {NM_HP_NORM_EPS, "attention.layer_norm_epsilon", NM_KEY_F32, false},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_gptneox = {
    .name = "gptneox",
    .hf_classes = classes,
    .hf_layer_prefix = "gpt_neox.layers.",
    .meta_layer_prefix = NULL,
    .hf_ignored = ignored,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = hf_keys,
    .gguf_keys = gguf_keys,
    .norm = NM_NORM_LAYER,
    .rope = NM_ROPE_NEOX,
    .ffn = NM_FFN_GELU,
    .residual = NM_RESIDUAL_PARALLEL,
    .tie_by_absence = false,
    .hf_rope_scaling = false,
    .vocab_add_space_prefix = false,
};
