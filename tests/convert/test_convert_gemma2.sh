#!/bin/sh
# Gemma 2 end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/gemma2/README.md says how each reference was made): the trained Gemma-2-shaped model
# (GQA 4/2, explicit head_dim 128 with 4 × 128 ≠ the 256 width, four RMSNorms per layer whose
# weights are stored as w - 1 and get 1 added on conversion, soft-capping and sliding-window keys,
# tied embeddings, BF16 checkpoint, the real Llama 2 SentencePiece vocabulary in a Gemma folder)
# converts to convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize gives
# llama-quantize's bytes and per-tensor types for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K.
. tests/lib.sh
need_fixtures || finish
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
M="$SCRATCH/gemma2-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder_spm "$M" gemma2
convert_family gemma2-tiny "$DATA/gemma2" Gemma2

# --- refusals: one message, no output ------------------------------------------------------
variant() { # as family_convert.sh's, for a folder with tokenizer.model
    rm -rf "$SCRATCH/$1" && mkdir "$SCRATCH/$1" &&
    ln -s "$M/model.safetensors" "$M/tokenizer.model" "$M/tokenizer_config.json" "$SCRATCH/$1/" &&
    /usr/bin/python3 -c "
import json, sys
c = json.load(open(sys.argv[1])); $2
json.dump(c, open(sys.argv[2], 'w'))" "$M/config.json" "$SCRATCH/$1/config.json"
}
variant kv "c['num_key_value_heads'] = 4"
refuse "a KV head count contradicting k_proj" kv "tensor model.layers.0.self_attn.k_proj.weight has shape [256, 256] but the configuration implies [512, 256]"
variant theta "c['rope_theta'] = 500000.0"
refuse "a rope_theta llama.cpp would not use (the converter does not write it)" theta "rope_theta = 500000 is not supported for Gemma2ForCausalLM"
variant qscale "c['query_pre_attn_scalar'] = 144"
refuse "a query scale llama.cpp would not use" qscale "query_pre_attn_scalar = 144 is not supported for Gemma2ForCausalLM with 2 layers"
variant nocap "del c['final_logit_softcapping']"
refuse "no final_logit_softcapping" nocap "missing \"final_logit_softcapping\""
mkdir -p "$SCRATCH/nopost" && cp "$M/config.json" "$M/tokenizer.model" "$M/tokenizer_config.json" "$SCRATCH/nopost/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/nopost/model.safetensors" \
    model.layers.1.post_feedforward_layernorm.weight
refuse "a missing post-FFN norm" nopost "tensor model.layers.1.post_feedforward_layernorm.weight is missing"
"$BIN/nomoat-convert" -q "$M" --outtype f16 -o "$SCRATCH/m.gguf" >/dev/null 2>&1
check "nomoat-inspect names the family and its blocks" sh -c "'$BIN/nomoat-inspect' '$SCRATCH/m.gguf' | grep -q 'norm weights stored as w - 1'"
finish
