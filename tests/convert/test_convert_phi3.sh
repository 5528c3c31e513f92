#!/bin/sh
# Phi-3 end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/phi3/README.md says how each reference was made): the trained Phi-3-mini-shaped
# model (fused qkv_proj kept fused as attn_qkv with GQA 8/2, fused gate_up_proj kept as a
# 2 × n_ff-row ffn_up, untied lm_head, Llama 2's SentencePiece tokenizer.model with Phi-3's added
# tokens up to 32,064, sliding_window and original_max_position_embeddings keys, BF16 checkpoint)
# converts to convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize gives
# llama-quantize's bytes and per-tensor types for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K. The
# long-context variant (rope_scaling longrope: rope_factors_long/short.weight and
# rope.scaling.attn_factor) and a folder whose added tokens follow Phi-3's own vocabulary rules
# (a non-special <|...|> token, tokenizer.json's added_tokens) convert to the converter's bytes too.
. tests/lib.sh

need_fixtures "Phi-3 conversion (Llama 2's tokenizer.model)" || finish
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
P="$DATA/phi3"
M="$SCRATCH/phi3-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" \
    family_folder_spm "$M" phi3 "$FIXTURES/tokenizer/llama2-tokenizer.model"
convert_family phi3-tiny "$P" Phi-3

"$BIN/nomoat-convert" -q "$M" --outtype f16 -o "$SCRATCH/f16.gguf"
"$BIN/nomoat-inspect" "$SCRATCH/f16.gguf" >"$SCRATCH/inspect.txt" 2>&1
check "nomoat-inspect names the family and its fused blocks" \
    grep -qF 'model: phi3 (RMSNorm, fused QKV, NeoX rotary (split halves), SwiGLU (gate and up fused) FFN, sequential' "$SCRATCH/inspect.txt"
rm -f "$SCRATCH/f16.gguf"

# --- the long-context variant: the same weights with Phi-3-mini-128k's kind of rope_scaling -------
mkdir -p "$SCRATCH/phi3-tiny-128k"
for f in "$M"/*; do [ "${f##*/}" = config.json ] || ln -s "$f" "$SCRATCH/phi3-tiny-128k/"; done
cp "$P/config-128k.json" "$SCRATCH/phi3-tiny-128k/config.json"
for t in f32 f16; do
    (cd "$SCRATCH" && "$BIN/nomoat-convert" -q phi3-tiny-128k --outtype $t -o "convert-128k-$t.gguf")
    check "longrope variant -> $t: same bytes as convert_hf_to_gguf.py (rope_factors_long/short, attn_factor)" \
        test "$(sha_of "$SCRATCH/convert-128k-$t.gguf")" = "$(ref_sha "convert-128k-$t" "$P/reference.sha256")"
done
"$BIN/nomoat-quantize" -q "$SCRATCH/convert-128k-f32.gguf" "$SCRATCH/128k-Q4_K_M.gguf" Q4_K_M 2 >"$SCRATCH/q.log" 2>&1
check "longrope variant -> Q4_K_M: same bytes as llama-quantize (the factors stay F32)" \
    test "$(sha_of "$SCRATCH/128k-Q4_K_M.gguf")" = "$(ref_sha "quantize-128k-Q4_K_M" "$P/reference.sha256")"
rm -f "$SCRATCH"/*.gguf

# --- Phi3MiniModel's own added-token rules: CONTROL only when marked special, tokenizer.json's ----
# added_tokens applied too (the Llama rules would make <|placeholder1|> CONTROL, and skip them)
variant phi3-tiny-added "pass"
rm "$SCRATCH/phi3-tiny-added/tokenizer_config.json"
/usr/bin/python3 - "$P/tokenizer_config.json" "$SCRATCH/phi3-tiny-added" <<'PY'
import json, sys
tc = json.load(open(sys.argv[1]))
tc["added_tokens_decoder"]["32002"]["special"] = False
json.dump(tc, open(sys.argv[2] + "/tokenizer_config.json", "w"), indent=2)
added = [{"id": 32011, "content": "<|tool|>", "special": False}, {"id": 32012, "content": "\u2581x\u2581", "special": True}]
json.dump({"version": "1.0", "added_tokens": added}, open(sys.argv[2] + "/tokenizer.json", "w"), indent=2)
PY
(cd "$SCRATCH" && "$BIN/nomoat-convert" -q phi3-tiny-added --outtype f16 -o added-f16.gguf)
check "Phi-3's added-token rules: same bytes as convert_hf_to_gguf.py" \
    test "$(sha_of "$SCRATCH/added-f16.gguf")" = "$(ref_sha "convert-added-f16" "$P/reference.sha256")"
rm -f "$SCRATCH"/*.gguf

# --- refusals: one message, no output ------------------------------------------------------
variant kv "c['num_key_value_heads'] = 4"
refuse "a KV head count contradicting the fused qkv_proj" kv \
    "tensor model.layers.0.self_attn.qkv_proj.weight has shape [384, 256] but the configuration implies [512, 256]"
mkdir -p "$SCRATCH/halfup" && cp "$M/config.json" "$M/tokenizer.model" "$M/tokenizer_config.json" "$SCRATCH/halfup/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/halfup/model.safetensors" \
    model.layers.1.mlp.gate_up_proj.weight=512
refuse "a gate_up_proj of intermediate_size rows, not 2 × (the gate's half alone)" halfup \
    "tensor model.layers.1.mlp.gate_up_proj.weight has shape [512, 256] but the configuration implies [1024, 256]"
variant noorig "del c['original_max_position_embeddings']"
refuse "no original_max_position_embeddings (the converter requires it)" noorig \
    "missing \"original_max_position_embeddings\""
variant yarn "c['rope_scaling'] = {'type': 'yarn', 'long_factor': [1.0] * 16, 'short_factor': [1.0] * 16}"
refuse "a yarn rope_scaling, not supported" yarn "rope_scaling type \"yarn\" is not supported for Phi3ForCausalLM"
variant short "c['rope_scaling'] = {'type': 'longrope', 'long_factor': [1.0] * 15, 'short_factor': [1.0] * 16}"
refuse "a long_factor list of the wrong length" short \
    "rope_scaling \"long_factor\" has 15 numbers; 16 (the rotary dimensions / 2) are needed"
finish
