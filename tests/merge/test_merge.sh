#!/bin/sh
# nomoat-merge: llama-export-lora's bytes (the fixture merges, the 0.5-scale checksum, a rank-4
# embedding/LM-head adapter and two stacked adapters, tests/data/lora/README.md); stacking equals
# merging one after another; one-pass quantized output equals merging to F32 then quantizing;
# HF-folder bases and PEFT-folder adapters; delta weights; every refusal one message, no output.
. tests/lib.sh
MERGE="$BIN/nomoat-merge"
PY=/usr/bin/python3
L="$DATA/lora"
HF="$DATA/wikillama-bf16"

same() { if cmp -s "$2" "$3"; then pass "$1"; else fail "$1" "$2 and $3 differ"; fi; }
sha_is() { # NAME FILE SHA256
    got=$(sha256sum "$2" | cut -d' ' -f1)
    if [ "$got" = "$3" ]; then pass "$1"; else fail "$1" "sha256 $got, expected $3"; fi
}
leftovers() { ls -A "$SCRATCH" | grep -c '^\.nomoat-merge\.' ; }

# ---- without the fixtures: HF folder base and PEFT folders (converted by nomoat-convert) ----
"$BIN/nomoat-convert" "$HF" --outtype f32 -q -o "$SCRATCH/base.gguf"
"$BIN/nomoat-convert" "$L/wikillama-license" --base "$HF" -q -o "$SCRATCH/license.gguf"
"$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" -q -o "$SCRATCH/m-gguf.gguf"
"$MERGE" "$HF" --lora "$L/wikillama-license" -q -o "$SCRATCH/m-folders.gguf"
same "HF-folder base and PEFT-folder adapter: the bytes of converting first" "$SCRATCH/m-folders.gguf" "$SCRATCH/m-gguf.gguf"
check "the conversions' scratch folder is gone" test "$(leftovers)" -eq 0
"$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --lora "$L/r16-rslora-bin:0.5" -q -o "$SCRATCH/stack.gguf"
"$BIN/nomoat-convert" "$L/r16-rslora-bin" --base "$HF" -q -o "$SCRATCH/r16.gguf"
"$MERGE" "$SCRATCH/m-gguf.gguf" --lora "$SCRATCH/r16.gguf:0.5" -q -o "$SCRATCH/seq.gguf"
same "two adapters stacked (1.0, 0.5) = merging them one after the other" "$SCRATCH/stack.gguf" "$SCRATCH/seq.gguf"
for t in Q4_K_M Q8_0 F16; do
    "$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --outtype $t -q -o "$SCRATCH/one-$t.gguf"
    "$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --outtype F32 -q -o "$SCRATCH/f32-$t.gguf"
    "$BIN/nomoat-quantize" -q "$SCRATCH/f32-$t.gguf" "$SCRATCH/two-$t.gguf" $t
    same "--outtype $t in one pass = merge to F32, then nomoat-quantize $t" "$SCRATCH/one-$t.gguf" "$SCRATCH/two-$t.gguf"
    rm -f "$SCRATCH/f32-$t.gguf"
done
NOMOAT_NO_SIMD=1 "$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --lora "$SCRATCH/r16.gguf:0.5" -q -o "$SCRATCH/stack-scalar.gguf"
same "scalar and SIMD merge kernels give the same bytes" "$SCRATCH/stack-scalar.gguf" "$SCRATCH/stack.gguf"
"$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --dry-run -o "$SCRATCH/never.gguf" >"$SCRATCH/plan"
check "--dry-run lists merged tensors with rank and scale" grep -q 'blk.0.attn_q.weight .*r8 x 2' "$SCRATCH/plan"
check "--dry-run writes nothing" test ! -e "$SCRATCH/never.gguf"
"$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --json --force -o "$SCRATCH/m-gguf.gguf" >"$SCRATCH/json"
check "--json summary" grep -q '"merged_tensors":28' "$SCRATCH/json"

# ---- delta weights: target = base + delta ----
$PY tests/merge/gguf_tool.py sub "$SCRATCH/m-gguf.gguf" "$SCRATCH/base.gguf" "$SCRATCH/delta.gguf"
"$MERGE" "$SCRATCH/base.gguf" --delta "$SCRATCH/delta.gguf" --outtype F32 -q -o "$SCRATCH/target.gguf"
"$BIN/nomoat-quantize" -q "$SCRATCH/m-gguf.gguf" "$SCRATCH/target-ref.gguf" F32
check "delta: base + (target - base) gives the target back (max difference 1 ulp)" $PY - "$SCRATCH/target.gguf" "$SCRATCH/target-ref.gguf" <<'PY'
import array, sys
sys.path.insert(0, "tests/merge")
import gguf_tool
_, a = gguf_tool.load(sys.argv[1]); _, b = gguf_tool.load(sys.argv[2])
bm = {x["name"]: x for x in b}
worst = 0
for x in a:
    u, v = gguf_tool.floats(x), gguf_tool.floats(bm[x["name"]])
    for p, q in zip(u, v):
        if p != q:
            worst = max(worst, abs(p - q) / max(abs(q), 1e-30))
assert worst <= 2 ** -23, worst
PY
$PY tests/merge/gguf_tool.py sub "$SCRATCH/m-gguf.gguf" "$SCRATCH/base.gguf" "$SCRATCH/delta-grown.gguf" --grow-vocab 4
"$MERGE" "$SCRATCH/base.gguf" --delta "$SCRATCH/delta-grown.gguf" -q -o "$SCRATCH/grown.gguf"
check "delta with 4 added tokens: embedding has 4100 rows" sh -c "'$BIN/nomoat-inspect' '$SCRATCH/grown.gguf' | grep -q 'token_embd.weight *F32 *\[256, 4100\]'"
check "added token rows are the delta's" sh -c "$PY tests/merge/gguf_tool.py row '$SCRATCH/grown.gguf' output.weight 4099 3 | grep -qx '0.25 0.25 0.25'"
"$MERGE" "$HF" --delta "$HF" --outtype F32 -q -o "$SCRATCH/double.gguf"
a=$($PY tests/merge/gguf_tool.py row "$SCRATCH/base.gguf" blk.0.ffn_up.weight 3 4)
b=$($PY tests/merge/gguf_tool.py row "$SCRATCH/double.gguf" blk.0.ffn_up.weight 3 4)
check "delta given as an HF folder (base + itself = twice the base)" $PY -c "
a = [float(x) for x in '$a'.split()]; b = [float(x) for x in '$b'.split()]
assert a and all(2 * x == y for x, y in zip(a, b)), (a, b)"

# ---- against llama-export-lora (fixtures) ----
if need_fixtures "llama-export-lora references"; then
    R="$FIXTURES/reference"
    "$MERGE" "$R/wikillama-f32.gguf" --lora "$R/lora/wikillama-license-lora-f32.gguf" -q -o "$SCRATCH/x32.gguf"
    same "F32 base + F32 adapter: llama-export-lora's bytes" "$SCRATCH/x32.gguf" "$R/lora/wikillama-license-merged-f32.gguf"
    "$MERGE" "$R/wikillama-f16.gguf" --lora "$R/lora/wikillama-license-lora-f16.gguf" -q -o "$SCRATCH/x16.gguf"
    same "F16 base + F16 adapter: llama-export-lora's bytes" "$SCRATCH/x16.gguf" "$R/lora/wikillama-license-merged-f16.gguf"
    "$MERGE" "$R/wikillama-f32.gguf" --lora "$R/lora/wikillama-license-lora-f32.gguf:0.5" -q -o "$SCRATCH/x05.gguf"
    sha_is "scale 0.5: llama-export-lora's checksum" "$SCRATCH/x05.gguf" 91505c211c780efe4a2746c9e68cb679642006fe92b505895bce48d403bcbf2a
    "$MERGE" "$R/wikillama-f32.gguf" --lora "$L/llamacpp/r4-embed-head-f16.gguf" -q -o "$SCRATCH/x4.gguf"
    sha_is "rank 4 with embedding and LM head (ggml_vec_dot order): llama-export-lora's checksum" "$SCRATCH/x4.gguf" e1c949997bc80938e010ec087da3e90504608a5b01f289ac2d7b10d5a68e0a3b
    "$MERGE" "$R/wikillama-f16.gguf" --lora "$L/llamacpp/r4-embed-head-f16.gguf" -q -o "$SCRATCH/x4h.gguf"
    sha_is "the same into the F16 base" "$SCRATCH/x4h.gguf" e0deeec21d7de47b4c622bbfb01a2db2ffc9877bf3e7db8bd80dc1f09141624d
    "$MERGE" "$R/wikillama-f32.gguf" --lora "$R/lora/wikillama-license-lora-f32.gguf" --lora "$L/llamacpp/r16-rslora-bin-f16.gguf:0.5" -q -o "$SCRATCH/xs.gguf"
    sha_is "two adapters (1.0 and 0.5): llama-export-lora's checksum" "$SCRATCH/xs.gguf" 2de31f392fa3ad55414b527bb3807797ad2157f23d608b8612c7b8a9202aacdb
    "$MERGE" "$R/wikillama-f32.gguf" --lora "$R/lora/wikillama-license-lora-q8_0.gguf" --outtype Q4_K_M --imatrix "$R/wikillama-imatrix.gguf" -q -o "$SCRATCH/qi1.gguf"
    "$MERGE" "$R/wikillama-f32.gguf" --lora "$R/lora/wikillama-license-lora-q8_0.gguf" --outtype F32 -q -o "$SCRATCH/qi-f32.gguf"
    "$BIN/nomoat-quantize" -q --imatrix "$R/wikillama-imatrix.gguf" "$SCRATCH/qi-f32.gguf" "$SCRATCH/qi2.gguf" Q4_K_M
    same "Q8_0 adapter (llama-export-lora refuses these) to Q4_K_M with an imatrix, one pass = two passes" "$SCRATCH/qi1.gguf" "$SCRATCH/qi2.gguf"
fi

# ---- refusals: exit 1, one line, no output, no scratch folder ----
refuse() { # NAME NEEDLE ARGS...
    _name=$1; _needle=$2; shift 2
    rm -f "$SCRATCH/out.gguf"
    "$MERGE" "$@" -o "$SCRATCH/out.gguf" >"$SCRATCH/.stdout" 2>"$SCRATCH/.stderr"; _rc=$?
    _lines=$(grep -c . "$SCRATCH/.stderr")
    if [ "$_rc" -ne 1 ]; then fail "$_name" "exit $_rc, expected 1"; sed 's/^/    | /' "$SCRATCH/.stderr"; return; fi
    if ! grep -q -- "$_needle" "$SCRATCH/.stderr"; then fail "$_name" "message lacks '$_needle': $(cat "$SCRATCH/.stderr")"; return; fi
    if [ "$_lines" -gt "${LINES_OK:-1}" ]; then fail "$_name" "$_lines error lines"; sed 's/^/    | /' "$SCRATCH/.stderr"; return; fi
    if [ -e "$SCRATCH/out.gguf" ] || [ "$(leftovers)" -ne 0 ]; then fail "$_name" "output or scratch left"; return; fi
    pass "$_name"
    echo "    $(tail -1 "$SCRATCH/.stderr")"
}
T="tests/merge/gguf_tool.py"
$PY $T kv "$SCRATCH/license.gguf" "$SCRATCH/gpt2.gguf" general.architecture=gpt2
refuse "adapter for another architecture" "for architecture 'gpt2', the base model's is 'llama'" "$SCRATCH/base.gguf" --lora "$SCRATCH/gpt2.gguf"
$PY tests/verify/make_tiny_llama.py "$HF/tokenizer.model" "$SCRATCH/tiny" 4096
"$BIN/nomoat-convert" "$SCRATCH/tiny" -q --outtype f32 -o "$SCRATCH/tiny.gguf"
refuse "adapter for other shapes than the base" "another model" "$SCRATCH/tiny.gguf" --lora "$SCRATCH/license.gguf"
$PY $T drop "$SCRATCH/license.gguf" "$SCRATCH/nob.gguf" blk.2.attn_v.weight.lora_b
refuse "a missing lora_b" "blk.2.attn_v.weight.lora_b is missing" "$SCRATCH/base.gguf" --lora "$SCRATCH/nob.gguf"
$PY $T nan "$SCRATCH/license.gguf" "$SCRATCH/nan.gguf" blk.1.ffn_up.weight.lora_a
refuse "NaN in an adapter" "blk.1.ffn_up.weight.lora_a: NaN" "$SCRATCH/base.gguf" --lora "$SCRATCH/nan.gguf"
$PY tests/convert/peft_edit.py "$L/wikillama-license" "$SCRATCH/zero" --zero-rank model.layers.1.self_attn.k_proj
LINES_OK=2 refuse "a rank-0 PEFT adapter (converter's message, then merge's)" "nomoat-convert failed" "$SCRATCH/base.gguf" --lora "$SCRATCH/zero"
check "  ... the converter named the problem" grep -q "rank 0" "$SCRATCH/.stderr"
refuse "an adapter given as the base" "the first argument is the base model" "$SCRATCH/license.gguf" --lora "$SCRATCH/license.gguf"
refuse "a model given as an adapter" "not a LoRA adapter" "$SCRATCH/base.gguf" --lora "$SCRATCH/base.gguf"
refuse "delta for another model" "another model" "$SCRATCH/base.gguf" --delta "$SCRATCH/tiny.gguf"
refuse "--lora with --delta" "cannot be combined" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --delta "$SCRATCH/delta.gguf"
refuse "nothing to merge" "nothing to merge" "$SCRATCH/base.gguf"
refuse "unknown --outtype" "unknown --outtype" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" --outtype Q9_X
refuse "bad scale is read as part of the file name" "No such file" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf:abc"
: >"$SCRATCH/exists.gguf"
"$MERGE" "$SCRATCH/base.gguf" --lora "$SCRATCH/license.gguf" -o "$SCRATCH/exists.gguf" 2>"$SCRATCH/err"
check "an existing output is kept without --force" sh -c "[ ! -s '$SCRATCH/exists.gguf' ] && grep -q 'pass --force' '$SCRATCH/err'"
finish
