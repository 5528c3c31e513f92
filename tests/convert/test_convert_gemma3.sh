#!/bin/sh
# Gemma 3 (text) end to end, conversion and quantization, byte for byte against llama.cpp's own
# tools (tests/data/gemma3/README.md says how each reference was made): the trained
# Gemma-3-shaped model (6 layers, five local and one global as llama.cpp's pattern of 6 makes
# them, GQA 4/1 with an explicit head_dim, per-head Q/K norms, every norm weight stored as w - 1
# and given 1 on conversion, rope.freq_base and rope.freq_base_swa, no soft caps, tied
# embeddings, BF16 checkpoint, the real Llama 2 SentencePiece vocabulary in a Gemma folder)
# converts to convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize gives
# llama-quantize's bytes and per-tensor types for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K. Two config
# variants convert to the reference converter's bytes too: linear rope_scaling with a final soft
# cap (keys inside TextModel's order, and appended), and sliding_window_pattern 1 (no window key).
. tests/lib.sh
need_fixtures || finish
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
M="$SCRATCH/gemma3-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder_spm "$M" gemma3
convert_family gemma3-tiny "$DATA/gemma3" Gemma3

# --- variants the reference converter writes differently ---------------------------------
variant linear "c['rope_scaling'] = {'factor': 8.0, 'rope_type': 'linear'}; c['final_logit_softcapping'] = 30.0"
variant noswa "c['sliding_window_pattern'] = 1"
for v in linear noswa; do
    (cd "$SCRATCH" && "$BIN/nomoat-convert" -q $v --outtype f16 -o "convert-f16-$v.gguf")
    check "variant $v -> f16: same bytes as convert_hf_to_gguf.py" \
        test "$(sha_of "$SCRATCH/convert-f16-$v.gguf")" = "$(ref_sha "convert-f16-$v" "$DATA/gemma3/reference.sha256")"
done
rm -f "$SCRATCH"/*.gguf

# --- refusals: one message, no output ------------------------------------------------------
variant kv "c['num_key_value_heads'] = 2"
refuse "a KV head count contradicting k_proj" kv "tensor model.layers.0.self_attn.k_proj.weight has shape [64, 256] but the configuration implies [128, 256]"
variant qscale "c['query_pre_attn_scalar'] = 144"
refuse "a query scale llama.cpp would not use" qscale "query_pre_attn_scalar = 144 is not supported for Gemma3ForCausalLM with 6 layers"
variant cap "c['attn_logit_softcapping'] = 50.0"
refuse "an attention soft cap (llama.cpp's gemma3 has none)" cap "attn_logit_softcapping = 50 is not supported for Gemma3ForCausalLM"
variant pattern "c['sliding_window_pattern'] = 4"
refuse "a sliding-window pattern other than llama.cpp's 6" pattern "sliding_window_pattern = 4 is not supported for Gemma3ForCausalLM"
variant types "c['layer_types'] = ['sliding_attention'] * 5 + ['full_attention']; c['layer_types'][0] = 'full_attention'"
refuse "layer_types other than llama.cpp's layout" types "layer_types[0] is \"full_attention\" but llama.cpp's gemma3 makes layer 0 sliding_attention"
variant llama3 "c['rope_scaling'] = {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192}"
refuse "llama3 rope scaling (the converter drops it for this class)" llama3 "rope_scaling type \"llama3\" is not supported for Gemma3ForCausalLM"
variant yarn "c['rope_scaling'] = {'rope_type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 8192}"
refuse "yarn rope scaling" yarn "rope_scaling type \"yarn\" is not supported (supported: linear)"
variant perkind "c['rope_parameters'] = {'full_attention': {'rope_type': 'default', 'rope_theta': 1000000.0}, 'sliding_attention': {'rope_type': 'default', 'rope_theta': 10000.0}}"
refuse "rope parameters per attention kind" perkind "rope parameters given per attention kind"
variant notheta "del c['rope_theta']"
refuse "no rope_theta (the converter would write its default elsewhere in the order)" notheta "missing \"rope_theta\""
mkdir -p "$SCRATCH/noqn" && cp "$M/config.json" "$M/tokenizer.model" "$M/tokenizer_config.json" "$SCRATCH/noqn/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/noqn/model.safetensors" \
    model.layers.5.self_attn.q_norm.weight
refuse "a missing per-head query norm" noqn "tensor model.layers.5.self_attn.q_norm.weight is missing"
"$BIN/nomoat-convert" -q "$M" --outtype f16 -o "$SCRATCH/m.gguf" >/dev/null 2>&1
check "nomoat-inspect names the family and its blocks" sh -c "'$BIN/nomoat-inspect' '$SCRATCH/m.gguf' | grep -q 'model: gemma3 (.*per-head Q/K RMSNorm.*norm weights stored as w - 1'"
finish
