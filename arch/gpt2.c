/* GPT-2 (GPT2LMHeadModel: GPT-2, Cerebras-GPT): learned absolute position embeddings added to the
 * token embedding, LayerNorm with bias, one fused QKV projection ([Q | K | V] columns), GELU FFN,
 * every projection with a bias, sequential residual, output tied to the token embedding. Its
 * projections are Conv1D layers stored [in, out], transposed on the way in. The names appear with
 * or without transformers' "transformer." prefix (openai-community/gpt2 has none). The converter
 * writes feed_forward_length as 4 × n_embd whatever n_inner says. */
#include "arch/arch.h"

static const char *const classes[] = {"GPT2LMHeadModel", NULL};

/* the causal-mask buffers old checkpoints carry */
static const char *const ignored[] = {".attn.bias", ".attn.masked_bias", NULL};

static const nm_arch_tensor tensors[] = {
    {NM_ROLE_TOKEN_EMBD, "wte", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_POS_EMBD, "wpe", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_OUTPUT_NORM, "ln_f", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_OUTPUT, "lm_head", NULL, NM_XF_NONE, NM_BIAS_NONE},
    {NM_ROLE_ATTN_NORM, "ln_1", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_ATTN_QKV, "attn.c_attn", NULL, NM_XF_TRANSPOSE, NM_BIAS_REQUIRED},
    {NM_ROLE_ATTN_OUT, "attn.c_proj", NULL, NM_XF_TRANSPOSE, NM_BIAS_REQUIRED},
    {NM_ROLE_FFN_NORM, "ln_2", NULL, NM_XF_NONE, NM_BIAS_REQUIRED},
    {NM_ROLE_FFN_UP, "mlp.c_fc", NULL, NM_XF_TRANSPOSE, NM_BIAS_REQUIRED},
    {NM_ROLE_FFN_DOWN, "mlp.c_proj", NULL, NM_XF_TRANSPOSE, NM_BIAS_REQUIRED},
};

static const nm_arch_hf_key hf_keys[] = {
    {NM_HP_EMBD, "n_embd", true},   {NM_HP_LAYERS, "n_layer", true},
    {NM_HP_HEADS, "n_head", true},  {NM_HP_VOCAB, "vocab_size", true},
    {NM_HP_CTX, "n_ctx", true},     {NM_HP_NORM_EPS, "layer_norm_epsilon", true},
    {NM_HP_FF, "n_inner", false},
    {0, NULL, false},
};

/* GPT2Model.set_gguf_parameters */
static const nm_arch_gguf_key gguf_keys[] = {
    {NM_HP_LAYERS, "block_count", NM_KEY_U32, false},
    {NM_HP_CTX, "context_length", NM_KEY_U32, false},
    {NM_HP_EMBD, "embedding_length", NM_KEY_U32, false},
    {NM_HP_FF, "feed_forward_length", NM_KEY_U32, false},
    {NM_HP_HEADS, "attention.head_count", NM_KEY_U32, false},
    {NM_HP_NORM_EPS, "attention.layer_norm_epsilon", NM_KEY_F32, false},
    {NM_HP_FILE_TYPE, "general.file_type", NM_KEY_U32, false},
    {0, NULL, 0, false},
};

const nm_arch nm_arch_gpt2 = {
    .name = "gpt2",
    .hf_classes = classes,
    .hf_layer_prefix = "h.",
    .hf_optional_prefix = "transformer.",
    .meta_layer_prefix = NULL,
    .hf_ignored = ignored,
    .tensors = tensors,
    .n_tensors = sizeof tensors / sizeof tensors[0],
    .hf_keys = hf_keys,
    .gguf_keys = gguf_keys,
    .norm = NM_NORM_LAYER,
    .rope = NM_ROPE_NONE,
    .ffn = NM_FFN_GELU,
    .residual = NM_RESIDUAL_SEQUENTIAL,
    .tie_by_absence = true,
    .tied_by_default = true,
    .ff_per_embd = 4,
    .hf_rope_scaling = false,
    .vocab_add_space_prefix = false,
};
