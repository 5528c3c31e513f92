#!/bin/sh
# Real llama.cpp (node-llama-cpp 3.21.1, from npm) loads our converted files and predicts the
# same next tokens, with the same top-10 probabilities (within 1e-3), as for llama.cpp's own
# converted reference file: our metadata is accepted, not just our tensors.
# The BF16 layouts (bundled model, meta) store the norms at bf16 precision while llama.cpp's
# BF16 reference keeps them F32 (it was converted from the F32 folder), so against that file
# only the top-10 ranking and a 5e-3 tolerance apply; against each other they agree to 1e-6.
. tests/lib.sh
. tests/node-env.sh
CONVERT="$BIN/nomoat-convert"
PROMPT="The history of the city"

need_fixtures "node-llama-cpp comparison against the reference GGUFs" || finish
if ! node_setup node-llama-cpp@3.21.1; then skip "node-llama-cpp comparison (npm absent or install failed)"; finish; fi
REF="$FIXTURES/reference"

probe() { node "$ROOT/tests/convert/llama_probe.mjs" "$1" "$PROMPT" 2>"$SCRATCH/probe.err" | tail -1; }
same() { # NAME OURS.json REF.json [TOLERANCE]
    if TOL=${4:-1e-3} node -e '
        const tol = Number(process.env.TOL);
        const [a, b] = process.argv.slice(1).map(f => JSON.parse(require("fs").readFileSync(f, "utf8")));
        if (JSON.stringify(a.tokens) !== JSON.stringify(b.tokens)) throw new Error("prompt tokens differ");
        a.top.forEach(([t, p], i) => {
            const [tr, pr] = b.top[i];
            if (t !== tr || Math.abs(p - pr) > tol) throw new Error(`rank ${i}: token ${t} p=${p} vs ${tr} p=${pr}`);
        });
        console.log(`    top-1 token ${a.top[0][0]} p=${a.top[0][1].toFixed(4)} (ref ${b.top[0][1].toFixed(4)})`);' "$2" "$3" >"$SCRATCH/cmp.out" 2>&1
    then pass "$1"; cat "$SCRATCH/cmp.out"; else fail "$1" "$(tail -3 "$SCRATCH/cmp.out")"; fi
}

probe "$REF/wikillama-bf16.gguf" >"$SCRATCH/ref-bf16.json"
probe "$REF/wikillama-f16.gguf" >"$SCRATCH/ref-f16.json"
if [ ! -s "$SCRATCH/ref-bf16.json" ]; then fail "node-llama-cpp loads the reference" "$(tail -3 "$SCRATCH/probe.err")"; finish; fi

"$CONVERT" -q "$FIXTURES/wikillama/hf" --outtype f16 -o "$SCRATCH/f16.gguf"
probe "$SCRATCH/f16.gguf" >"$SCRATCH/f16.json"
same "hf -> F16: same next-token probabilities as llama.cpp's F16 file" "$SCRATCH/f16.json" "$SCRATCH/ref-f16.json"

"$CONVERT" -q "$FIXTURES/wikillama/hf" --outtype q8_0 -o "$SCRATCH/q8.gguf"
probe "$SCRATCH/q8.gguf" >"$SCRATCH/q8.json"
probe "$REF/wikillama-convert-q8_0.gguf" >"$SCRATCH/ref-q8.json"
same "hf -> Q8_0: same as llama.cpp's converter's Q8_0 file" "$SCRATCH/q8.json" "$SCRATCH/ref-q8.json"

"$CONVERT" -q "$FIXTURES/wikillama/hf-pt-legacy" -o "$SCRATCH/legacy.gguf"
probe "$SCRATCH/legacy.gguf" >"$SCRATCH/legacy.json"
same "legacy pytorch_model.bin (F16) -> GGUF: same as llama.cpp's F16 file" "$SCRATCH/legacy.json" "$SCRATCH/ref-f16.json"

"$CONVERT" -q "$DATA/wikillama-bf16" -o "$SCRATCH/bundled.gguf"
probe "$SCRATCH/bundled.gguf" >"$SCRATCH/bundled.json"
same "bundled BF16 safetensors -> GGUF: same top-10 as llama.cpp's BF16 file (bf16 norms: 5e-3)" "$SCRATCH/bundled.json" "$SCRATCH/ref-bf16.json" 5e-3

"$CONVERT" -q "$FIXTURES/wikillama/meta" -o "$SCRATCH/meta.gguf"
probe "$SCRATCH/meta.gguf" >"$SCRATCH/meta.json"
same "Meta consolidated.NN.pth -> GGUF: same as the bundled BF16 safetensors (1e-6)" "$SCRATCH/meta.json" "$SCRATCH/bundled.json" 1e-6
finish
