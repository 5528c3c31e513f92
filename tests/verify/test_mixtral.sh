#!/bin/sh
# Mixtral end to end, evaluation: the trained Mixtral-shaped model of tests/data/mixtral (GQA 8/2,
# Llama's rotary, untied output, the Llama 2 vocabulary with BOS, and per layer a softmax router
# over 8 SwiGLU experts of which each token uses the top 2, their weights renormalised), converted
# by nomoat-convert to F16 and quantized to Q8_0, Q4_K_M and Q4_0 (the same bytes as llama.cpp's
# tools: tests/convert/test_convert_mixtral.sh), evaluated against llama.cpp
# (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10 and
# per-position log-probabilities).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder "$SCRATCH/mixtral-tiny" mixtral "$DATA/tokenizer/llama2-tokenizer.model" &&
    family_files "$SCRATCH/mixtral-tiny" || { fail "convert and quantize the model"; finish; }
check "nomoat-inspect names the family's blocks" sh -c \
    "'$BIN/nomoat-inspect' '$SCRATCH/f16.gguf' | grep -q 'model: llama (.*mixture of experts (softmax router, top-k), each SwiGLU FFN'"
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/mixtral/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "Mixtral evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/mixtral/perplexity.txt" "The history of the city"
finish
