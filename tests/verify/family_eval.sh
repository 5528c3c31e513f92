# Sourced by the model-family evaluation tests (after tests/lib.sh and node_setup of node-llama-cpp):
#   eval_family PERPLEXITY.txt PROMPT
# evaluates $SCRATCH/{f16,q8_0,q4_k_m,q4_0}.gguf three ways against llama.cpp, with $V = nomoat-verify
# and $TEXT the held-out text:
#   - perplexity (-c 256, 4 chunks): llama-perplexity's printed running values digit for digit
#     (PERPLEXITY.txt: lines "TYPE [1]... [4]...", made once with llama.cpp's AVX2 build);
#   - node-llama-cpp (llama.cpp itself, its AVX2 CPU build) after PROMPT: the same top-10 tokens
#     with probabilities within 1e-3 of nomoat-verify logits;
#   - per-position log-probabilities over the first 256 tokens of the text, evaluated in batches of
#     32 on both sides (node-llama-cpp's slices; llama.cpp's arithmetic depends on the batch size and
#     nomoat-verify -b 32 reproduces it). node-llama-cpp normalises its probabilities with a float sum
#     over the tokens it returns (its AddonContext.cpp), which moves every log-probability of a
#     position by the same amount; llama-perplexity, like nomoat-verify, normalises in double over
#     the whole vocabulary. So the 1e-4 check is on what that sum cancels out of,
#     log p(next) - log p(most probable) per position (node_logprobs.mjs says which tokens it asks for).
#   family_files FOLDER   converts the Hugging Face FOLDER to $SCRATCH/f16.gguf and quantizes its F32
#                         conversion to $SCRATCH/{q8_0,q4_k_m,q4_0}.gguf; non-zero on failure
#   eval_family_san PERPLEXITY.txt   under AddressSanitizer only the F16 file's first chunk
family_files() {
    "$BIN/nomoat-convert" -q "$1" --outtype f16 -o "$SCRATCH/f16.gguf" &&
    "$BIN/nomoat-convert" -q "$1" --outtype f32 -o "$SCRATCH/f32.gguf" || return 1
    for t in q8_0 q4_k_m q4_0; do
        "$BIN/nomoat-quantize" -q "$SCRATCH/f32.gguf" "$SCRATCH/$t.gguf" $t 2 || return 1
    done
    rm -f "$SCRATCH/f32.gguf"
}

eval_family_san() {
    want=$(sed -n 's/^f16 \(\[1\][0-9.]*\).*/\1/p' "$1")
    got=$("$V" perplexity "$SCRATCH/f16.gguf" -f "$TEXT" -c 256 --chunks 1 -t 2 2>&1 | grep -o '\[[0-9]*\][0-9.]*' | tr -d '\n')
    check "perplexity f16, first chunk: llama-perplexity's value ($want)" test "$got" = "$want"
    skip "the other types and node-llama-cpp (slow under AddressSanitizer)"
}

eval_family() {
    for t in f16 q8_0 q4_k_m q4_0; do
        want=$(sed -n "s/^$t //p" "$1")
        got=$("$V" perplexity "$SCRATCH/$t.gguf" -f "$TEXT" -c 256 --chunks 4 -t 2 2>&1 | grep -o '\[[0-9]*\][0-9.]*' | tr '\n' ' ')
        check "perplexity $t: llama-perplexity's running values digit for digit ($want)" test "$got" = "$want "
    done

    node_llamacpp_avx2 || { skip "node-llama-cpp comparisons (no AVX2 build of its CPU backend here)"; return 0; }
    for t in f16 q8_0 q4_k_m q4_0; do
        "$V" logits "$SCRATCH/$t.gguf" --prompt "$2" --top 10 --json -t 2 >"$SCRATCH/top-$t.json"
        "$V" logits "$SCRATCH/$t.gguf" -f "$TEXT" --max-tokens 256 -b 32 --logprobs --top 1 --json -t 2 >"$SCRATCH/lp-$t.json"
    done
    # node-llama-cpp on two files at a time, one thread each (llama.cpp's CPU results do not depend
    # on the thread count: each output row is one thread's; what takes the time is the map of the
    # vocabulary it builds per position, 12 s per file for 151,936 tokens, single-threaded)
    NODE_LLAMA_THREADS=1 node_lane f16 q4_k_m &
    NODE_LLAMA_THREADS=1 node_lane q8_0 q4_0
    wait
    for t in f16 q8_0 q4_k_m q4_0; do
        if [ "$(cat "$SCRATCH/node-top-$t.rc")" = 0 ]; then
            check "$t: top-10 next tokens and probabilities match node-llama-cpp within 1e-3" /usr/bin/python3 - "$SCRATCH/top-$t.json" "$SCRATCH/node-top-$t.json" <<'PY'
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
            fail "node-llama-cpp evaluates $t" "$(tail -3 "$SCRATCH/node-top-$t.err")"
        fi
        if [ "$(cat "$SCRATCH/node-lp-$t.rc")" = 0 ]; then
            check "$t: 255 per-position log-probabilities (relative to the most probable token) match node-llama-cpp within 1e-4" /usr/bin/python3 - "$SCRATCH/lp-$t.json" "$SCRATCH/node-lp-$t.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1])); theirs = json.load(open(sys.argv[2]))
assert len(ours["gaps"]) == 255 and len(theirs["gaps"]) == 255, (len(ours["gaps"]), len(theirs["gaps"]))
gap = max(abs(a - b) for a, b in zip(ours["gaps"], theirs["gaps"]))
print(f"relative log-probabilities: largest difference {gap:.3g} (node-llama-cpp returned the whole vocabulary "
      f"after {theirs['whole']} positions, its 2048 most probable tokens after the others); mean log p {sum(ours['logprobs']) / 255:.4f}")
assert gap <= 1e-4
PY
            sed 's/^/    /' "$SCRATCH/.out"
        else
            fail "node-llama-cpp evaluates $t position by position" "$(tail -3 "$SCRATCH/node-lp-$t.err")"
        fi
    done
}

# node-llama-cpp's side of eval_family for the given types, one after the other: the top-10 after
# the prompt and the per-position log-probabilities of the tokens nomoat-verify read
# ($SCRATCH/{top,lp}-TYPE.json); outputs in $SCRATCH/node-{top,lp}-TYPE.{json,err,rc}
node_lane() {
    for t in "$@"; do
        ids=$(/usr/bin/python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['tokens'])))" "$SCRATCH/top-$t.json")
        timeout 600 node "$ROOT/tests/verify/node_top.mjs" "$SCRATCH/$t.gguf" 10 "$ids" >"$SCRATCH/node-top-$t.json" 2>"$SCRATCH/node-top-$t.err"
        echo $? >"$SCRATCH/node-top-$t.rc"
        ids=$(/usr/bin/python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['tokens'][:256])))" "$SCRATCH/lp-$t.json")
        timeout 900 node "$ROOT/tests/verify/node_logprobs.mjs" "$SCRATCH/$t.gguf" "$ids" >"$SCRATCH/node-lp-$t.json" 2>"$SCRATCH/node-lp-$t.err"
        echo $? >"$SCRATCH/node-lp-$t.rc"
    done
}
