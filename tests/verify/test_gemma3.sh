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
# llama.cpp's gemma3 reads a sliding_window_pattern key when a file has one; nomoat-verify runs the
# pattern of 6 its converter implies and refuses another rather than evaluate other layers as local
/usr/bin/python3 "$ROOT/tests/verify/gguf_edit.py" "$SCRATCH/q4_0.gguf" "$SCRATCH/pattern4.gguf" \
    --set-u32 gemma3.attention.sliding_window_pattern=4
"$V" perplexity "$SCRATCH/pattern4.gguf" -f "$TEXT" -c 256 --chunks 1 -t 2 >"$SCRATCH/pattern.txt" 2>&1
check "a sliding_window_pattern other than 6 is refused (exit 2, an error)" test $? -eq 2
check "the refusal names the key and the pattern run" \
    grep -q "gemma3.attention.sliding_window_pattern = 4 is not supported (nomoat-verify runs gemma3's pattern of 6)" "$SCRATCH/pattern.txt"
/usr/bin/python3 "$ROOT/tests/verify/gguf_edit.py" "$SCRATCH/q4_0.gguf" "$SCRATCH/pattern6.gguf" \
    --set-u32 gemma3.attention.sliding_window_pattern=6
first_chunk() { "$V" perplexity "$1" -f "$TEXT" -c 256 --chunks 1 -t 2 2>&1 | grep -o '\[1\][0-9.]*'; }
want=$(first_chunk "$SCRATCH/q4_0.gguf")
check "a sliding_window_pattern of 6 is read and gives the file's own perplexity ($want)" \
    test "$(first_chunk "$SCRATCH/pattern6.gguf")" = "$want"
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
