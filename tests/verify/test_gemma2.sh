#!/bin/sh
# Gemma 2 end to end, evaluation: the trained Gemma-2-shaped model of tests/data/gemma2 (embedding
# × sqrt(256), RMSNorm before and after attention and FFN, NeoX rotary on the whole 128-wide head,
# queries scaled before attention, attention scores and output logits soft-capped, GELU-gated
# FFN, GQA 4/2, tied output, Llama 2's SentencePiece vocabulary with BOS), converted by
# nomoat-convert to F16 and quantized to Q8_0, Q4_K_M and Q4_0 (the same bytes as llama.cpp's
# tools: tests/convert/test_convert_gemma2.sh), evaluated against llama.cpp
# (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10 and
# per-position log-probabilities). Layer 0 attends within a sliding window of 512 positions:
# every context here is 256, inside it, where llama.cpp's sliding-window mask changes nothing;
# nomoat-verify refuses a longer context (checked below).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

need_fixtures || finish
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder_spm "$SCRATCH/gemma2-tiny" gemma2 && family_files "$SCRATCH/gemma2-tiny" || { fail "convert and quantize the model"; finish; }
"$V" perplexity "$SCRATCH/q4_0.gguf" -f "$TEXT" -c 768 --chunks 1 -t 2 >"$SCRATCH/swa.txt" 2>&1
check "a context beyond the sliding window is refused" test $? -ne 0
check "the refusal names the window" grep -q "sliding window of 512 positions" "$SCRATCH/swa.txt"
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/gemma2/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "Gemma 2 evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/gemma2/perplexity.txt" "The history of the city"
finish
