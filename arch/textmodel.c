/* llama.cpp's converter base class for text models (TextModel): the config.json keys most
 * Hugging Face decoder models share and the GGUF keys its set_gguf_parameters writes, in its order.
 * Families whose converter class keeps the base behaviour (Llama, Qwen3) point at these tables and
 * add their own keys after them (nm_arch.gguf_keys_more). */
#include "arch/arch.h"

const nm_arch_hf_key nm_textmodel_hf_keys[] = {
    {NM_HP_EMBD, "hidden_size", true},           {NM_HP_LAYERS, "num_hidden_layers", true},
    {NM_HP_HEADS, "num_attention_heads", true},  {NM_HP_FF, "intermediate_size", true},
    {NM_HP_VOCAB, "vocab_size", true},           {NM_HP_HEADS_KV, "num_key_value_heads", false},
    {NM_HP_HEAD_DIM, "head_dim", false},         {NM_HP_CTX, "max_position_embeddings", false},
    {NM_HP_ROPE_THETA, "rope_theta", false},     {NM_HP_RMS_EPS, "rms_norm_eps", true},
    {0, NULL, false},
};

const nm_arch_gguf_key nm_textmodel_gguf_keys[] = {
    {NM_HP_LAYERS, "block_count", NM_KEY_U32, false},
    {NM_HP_CTX, "context_length", NM_KEY_U32, true},
    {NM_HP_EMBD, "embedding_length", NM_KEY_U32, false},
    {NM_HP_FF, "feed_forward_length", NM_KEY_U32, false},
    {NM_HP_HEADS, "attention.head_count", NM_KEY_U32, false},
    {NM_HP_HEADS_KV, "attention.head_count_kv", NM_KEY_U32, true},
    {NM_HP_ROPE_SCALING, "rope.scaling", NM_KEY_U32, true}, /* a group: write_hparam */
    {NM_HP_ROPE_THETA, "rope.freq_base", NM_KEY_F32, true},
    {NM_HP_RMS_EPS, "attention.layer_norm_rms_epsilon", NM_KEY_F32, false},
    {NM_HP_EXPERTS, "expert_count", NM_KEY_U32, true},         /* mixtures of experts only */
    {NM_HP_EXPERTS_USED, "expert_used_count", NM_KEY_U32, true},
    {NM_HP_HEAD_DIM, "attention.key_length", NM_KEY_U32, true},
    {NM_HP_HEAD_DIM, "attention.value_length", NM_KEY_U32, true},
    {NM_HP_FILE_TYPE, "general.file_type", NM_KEY_U32, false},
    {0, NULL, 0, false},
};
