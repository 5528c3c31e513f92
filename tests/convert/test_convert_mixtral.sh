#!/bin/sh
# Mixtral end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/mixtral/README.md says how each reference was made): the trained Mixtral-shaped model
# (GQA 8/2 with q/k rows permuted back for Llama's rotary, untied output, the real Llama 2
# SentencePiece vocabulary, and per layer a router and 8 SwiGLU experts of width 128, each a
# separate w1/w2/w3 tensor in the BF16 checkpoint) converts to convert_hf_to_gguf.py's bytes at
# F32, F16, BF16 and Q8_0 (the experts stacked into 3-D ffn_{gate,down,up}_exps tensors where the
# layer's last expert tensor stands, the router kept F32, general.size_label "8x..."), and
# nomoat-quantize gives llama-quantize's bytes and per-tensor types for Q8_0, Q4_0, Q4_K_M, Q5_K_M
# and Q6_K (its 8-expert rules: attn_v and attn_k in Q8_0, attn_output in Q5_K for Q4_K_M; the
# width-128 ffn_down_exps rows falling back from K-quants).
. tests/lib.sh

. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
M="$SCRATCH/mixtral-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" \
    family_folder "$M" mixtral "$DATA/tokenizer/llama2-tokenizer.model"
convert_family mixtral-tiny "$DATA/mixtral" Mixtral

# --- refusals: one message, no output ------------------------------------------------------
mkdir -p "$SCRATCH/noexpert" && cp "$M/config.json" "$M/tokenizer.model" "$M/tokenizer_config.json" "$SCRATCH/noexpert/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/noexpert/model.safetensors" \
    model.layers.1.block_sparse_moe.experts.5.w2.weight
refuse "a missing expert" noexpert \
    "tensor model.layers.1.block_sparse_moe.experts.5.w2.weight is missing (num_local_experts = 8 experts per layer)"
variant fewer "c['num_local_experts'] = 7"
refuse "fewer experts in the configuration than in the checkpoint" fewer \
    "tensor model.layers.0.block_sparse_moe.experts.7.w1.weight: expert 7 is beyond the 7 experts in the configuration (num_local_experts)"
variant more "c['num_local_experts'] = 9"
refuse "more experts in the configuration than the router scores" more \
    "tensor model.layers.0.block_sparse_moe.gate.weight has shape [8, 256] but the configuration implies [9, 256]"
variant used "c['num_experts_per_tok'] = 9"
refuse "more experts per token than experts" used "9 experts per token (num_experts_per_tok) but only 8 experts"
variant nocount "del c['num_local_experts']"
refuse "no expert count" nocount "missing \"num_local_experts\""
finish
