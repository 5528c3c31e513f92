#!/bin/sh
# Phi-3 end to end, evaluation: the trained Phi-3-mini-shaped model of tests/data/phi3 (fused
# attn_qkv split [Q | K | V] with GQA 8/2, NeoX rotary on the whole 32-wide head, Q scaled by
# 1/sqrt(32) before unscaled attention scores, SwiGLU on the two halves of the fused ffn_up, untied
# output, Llama 2's SentencePiece vocabulary without BOS), converted by nomoat-convert to F16 and
# quantized to Q8_0, Q4_K_M and Q4_0 (the same bytes as llama.cpp's tools:
# tests/convert/test_convert_phi3.sh), evaluated against llama.cpp (tests/verify/family_eval.sh:
# llama-perplexity's digits, node-llama-cpp's top-10 and per-position log-probabilities). The
# long-context variant's F16 file (longrope) gives llama-perplexity's digits with a 256-token
# context (its short factors: the original context is 256) and a 512-token one (the long factors).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"
P="$DATA/phi3"

need_fixtures "Phi-3 evaluation (Llama 2's tokenizer.model)" || finish
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder_spm "$SCRATCH/phi3-tiny" phi3 "$FIXTURES/tokenizer/llama2-tokenizer.model" &&
    family_files "$SCRATCH/phi3-tiny" || { fail "convert and quantize the model"; finish; }
if [ "$SAN" = 1 ]; then
    eval_family_san "$P/perplexity.txt"
    finish
fi

mkdir -p "$SCRATCH/phi3-tiny-128k"
for f in "$SCRATCH/phi3-tiny"/*; do [ "${f##*/}" = config.json ] || ln -s "$f" "$SCRATCH/phi3-tiny-128k/"; done
cp "$P/config-128k.json" "$SCRATCH/phi3-tiny-128k/config.json"
"$BIN/nomoat-convert" -q "$SCRATCH/phi3-tiny-128k" --outtype f16 -o "$SCRATCH/128k.gguf"
for c in 256 512; do
    want=$(sed -n "s/^128k-c$c //p" "$P/perplexity.txt")
    got=$("$V" perplexity "$SCRATCH/128k.gguf" -f "$TEXT" -c $c --chunks 4 -t 2 2>&1 | grep -o '\[[0-9]*\][0-9.]*' | tr '\n' ' ')
    check "longrope f16, context $c: llama-perplexity's running values digit for digit ($want)" test "$got" = "$want "
done
rm -f "$SCRATCH/128k.gguf"

if ! node_setup node-llama-cpp@3.21.1; then
    skip "Phi-3 evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$P/perplexity.txt" "The history of the city"
finish
