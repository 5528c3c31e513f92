#!/bin/sh
# Gemma 3 (text) end to end, evaluation: the trained Gemma-3-shaped model of tests/data/gemma3
# (embedding × sqrt(256), RMSNorm before and after attention and FFN, an RMSNorm over each query
# and key head before the NeoX rotary, queries scaled before attention, no soft caps, GELU-gated
# FFN, GQA 4/1, tied output, Llama 2's SentencePiece vocabulary with BOS; layers 0-4 local with
# rope.freq_base_swa 10000, layer 5 global with rope.freq_base 1e6), converted by nomoat-convert
# to F16 and quantized to Q8_0, Q4_K_M and Q4_0 (the same bytes as llama.cpp's tools:
# tests/convert/test_convert_gemma3.sh), evaluated against llama.cpp
# (tests/verify/family_eval.sh: llama-perplexity's digits, node-llama-cpp's top-10 and
# per-position log-probabilities). Two config variants check the per-layer rotary against
# llama-perplexity: linear rope_scaling (factor 8, the global layer only) with a final soft cap of
# 30, and sliding_window_pattern 1 (no window: every layer global, base 1e6). The local layers
# attend within a sliding window of 512 positions: every context here is 256, inside it, where
# llama.cpp's sliding-window mask changes nothing; nomoat-verify refuses a longer context
# (checked below).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

need_fixtures || finish
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
. "$ROOT/tests/verify/family_eval.sh"
M="$SCRATCH/gemma3-tiny"
family_folder_spm "$M" gemma3 && family_files "$M" || { fail "convert and quantize the model"; finish; }
"$V" perplexity "$SCRATCH/q4_0.gguf" -f "$TEXT" -c 768 --chunks 1 -t 2 >"$SCRATCH/swa.txt" 2>&1
check "a context beyond the sliding window is refused" test $? -ne 0
check "the refusal names the window" grep -q "sliding window of 512 positions" "$SCRATCH/swa.txt"
variant linear "c['rope_scaling'] = {'factor': 8.0, 'rope_type': 'linear'}; c['final_logit_softcapping'] = 30.0"
variant noswa "c['sliding_window_pattern'] = 1"
for v in linear noswa; do
    "$BIN/nomoat-convert" -q "$SCRATCH/$v" --outtype f16 -o "$SCRATCH/f16-$v.gguf" || fail "convert variant $v"
    want=$(sed -n "s/^f16-$v //p" "$DATA/gemma3/perplexity.txt")
    chunks=4; [ "$SAN" = 1 ] && chunks=1 && want=${want%% *}
    got=$("$V" perplexity "$SCRATCH/f16-$v.gguf" -f "$TEXT" -c 256 --chunks $chunks -t 2 2>&1 | grep -o '\[[0-9]*\][0-9.]*' | tr '\n' ' ')
    check "perplexity of variant $v (f16): llama-perplexity's running values digit for digit ($want)" test "$got" = "$want "
done
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/gemma3/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "Gemma 3 evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/gemma3/perplexity.txt" "The history of the city"
finish
