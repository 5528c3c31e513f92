#!/bin/sh
# Architecture variants on tiny random checkpoints (made by tests/convert/tiny_llama.py, checked
# by an independent numpy oracle, tests/convert/check_tiny.py): MHA and GQA, tied and untied
# embeddings, LlamaForCausalLM and MistralForCausalLM, F32 and F16 sources.
. tests/lib.sh
CONVERT="$BIN/nomoat-convert"
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
    skip "layout variants (needs /usr/bin/python3 with numpy)"; finish
fi
variant() { # NAME ARGS...
    _n=$1; shift
    "$PY" "$ROOT/tests/convert/tiny_llama.py" "$SCRATCH/$_n" "$DATA/wikillama-bf16/tokenizer.model" "$@"
    if "$CONVERT" -q "$SCRATCH/$_n" -o "$SCRATCH/$_n.gguf" >"$SCRATCH/.out" 2>&1 &&
        "$PY" "$ROOT/tests/convert/check_tiny.py" "$SCRATCH/$_n" "$SCRATCH/$_n.gguf" >>"$SCRATCH/.out" 2>&1; then
        pass "$_n"
    else
        fail "$_n"; sed 's/^/    | /' "$SCRATCH/.out"
    fi
}
variant "MHA, tied embeddings, MistralForCausalLM, F32" --mha --tied --arch MistralForCausalLM
variant "GQA (4 heads, 2 KV heads), untied, LlamaForCausalLM, F16" --dtype F16
variant "MHA, untied, F16" --mha --dtype F16
variant "GQA, tied, F32" --tied
# the oracle itself must notice a wrong permutation: convert a GQA model, then claim it was MHA
"$PY" "$ROOT/tests/convert/tiny_llama.py" "$SCRATCH/neg" "$DATA/wikillama-bf16/tokenizer.model"
"$CONVERT" -q "$SCRATCH/neg" -o "$SCRATCH/neg.gguf"
sed 's/"num_key_value_heads": 2, //; s/, "num_key_value_heads": 2//' "$SCRATCH/neg/config.json" >"$SCRATCH/neg/c" && mv "$SCRATCH/neg/c" "$SCRATCH/neg/config.json"
if "$PY" "$ROOT/tests/convert/check_tiny.py" "$SCRATCH/neg" "$SCRATCH/neg.gguf" >/dev/null 2>&1; then
    fail "oracle rejects a file checked against the wrong head layout"
else
    pass "oracle rejects a file checked against the wrong head layout"
fi
finish
