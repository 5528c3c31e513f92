#!/bin/sh
# nomoat-verify --lora (adapters applied at run time) against llama.cpp: llama-perplexity's --lora
# figures (reference/lora/lora.json and its logs: F32/F16/Q8_0 adapters, scale 1 and 0.5, merged
# files) on every running value; a rank-4 embedding/LM-head adapter and two stacked adapters
# (tests/data/lora/llamacpp/*.txt); node-llama-cpp's top-10 probabilities with the adapter (its
# createContext lora option), merged, and stacked; how much the adapter lowers perplexity on its
# own text; gate, logits and imatrix with --lora; refusals.
. tests/lib.sh
. tests/node-env.sh
V="$BIN/nomoat-verify"
L="$DATA/lora"
PY=/usr/bin/python3

# running values "[1]x,[2]y,..." a run printed, one per line
values() { grep -o '\[[0-9]*\][0-9.]*' "$1"; }
same_values() { # NAME OURS_OUTPUT REFERENCE_LOG
    values "$2" >"$SCRATCH/v-ours"; values "$3" >"$SCRATCH/v-ref"
    n=$(wc -l <"$SCRATCH/v-ref")
    if [ "$n" -gt 0 ] && cmp -s "$SCRATCH/v-ours" "$SCRATCH/v-ref" && grep -q "$(grep -o 'Final estimate.*' "$3")" "$2"; then
        pass "$1: all $n running values and the final line as llama-perplexity printed them"
    else
        fail "$1" "$(diff "$SCRATCH/v-ours" "$SCRATCH/v-ref" | head -4 | tr '\n' ' ')"
    fi
}
ppl() { "$V" perplexity "$@" -c 256 -t 2 2>/dev/null; }
json_num() { sed -n "s/.*\"$2\":[[:space:]]*\([-0-9.eE+]*\).*/\1/p" "$1" | head -1; }

if ! need_fixtures "llama-perplexity --lora figures"; then finish; fi
R="$FIXTURES/reference"
RL="$R/lora"
LIC="$FIXTURES/text/license-heldout.txt"
BASE="$R/wikillama-f32.gguf"

if [ "$SAN" = 1 ]; then
    # AddressSanitizer: the same paths on a few chunks, no digits
    "$V" perplexity "$BASE" -f "$LIC" -c 256 --chunks 2 -t 2 -q --lora "$RL/wikillama-license-lora-q8_0.gguf" \
        --lora "$L/llamacpp/r4-embed-head-f16.gguf:0.5" --json "$SCRATCH/s.json"
    check "two adapters (Q8_0, F16 rank 4 with embedding) run under SAN" test -s "$SCRATCH/s.json"
    "$V" logits "$BASE" --prompt "Licensed under the" --lora "$L/llamacpp/r16-rslora-bin-f16.gguf" >"$SCRATCH/l.txt"
    check "logits --lora runs under SAN" grep -q '^   1 ' "$SCRATCH/l.txt"
    skip "llama-perplexity digit comparisons (SAN build)"
    finish
fi

# ---- llama-perplexity's figures (lora.json cases), runtime and merged ----
for c in "f32:1 lora-f32" "f16:1 lora-f16" "q8_0:1 lora-q8_0" "f32:0.5 lora-s0.5"; do
    set -- $c
    t=${1%%:*}; s=${1#*:}
    ppl "$BASE" -f "$LIC" --lora "$RL/wikillama-license-lora-$t.gguf:$s" >"$SCRATCH/o-$2"
    same_values "--lora $t adapter, scale $s" "$SCRATCH/o-$2" "$RL/perplexity-$2-license.log"
done
"$BIN/nomoat-merge" "$BASE" --lora "$RL/wikillama-license-lora-f32.gguf:0.5" -q -o "$SCRATCH/merged-s0.5.gguf"
ppl "$SCRATCH/merged-s0.5.gguf" -f "$LIC" >"$SCRATCH/o-ms"
same_values "nomoat-merge's scale-0.5 file" "$SCRATCH/o-ms" "$RL/perplexity-merged-s0.5-f32-license.log"
ppl "$RL/wikillama-license-merged-f16.gguf" -f "$LIC" >"$SCRATCH/o-m16"
same_values "the merged F16 file" "$SCRATCH/o-m16" "$RL/perplexity-merged-f16-license.log"
ppl "$BASE" -f "$LIC" --lora "$L/llamacpp/r4-embed-head-f16.gguf" >"$SCRATCH/o-r4"
same_values "rank-4 F16 adapter on the embedding, LM head and FFN" "$SCRATCH/o-r4" "$L/llamacpp/perplexity-r4-embed-head-f16.txt"
ppl "$BASE" -f "$LIC" --lora "$RL/wikillama-license-lora-f32.gguf" --lora "$L/llamacpp/r16-rslora-bin-f16.gguf:0.5" >"$SCRATCH/o-st"
same_values "two adapters stacked (1.0 and 0.5)" "$SCRATCH/o-st" "$L/llamacpp/perplexity-stack.txt"

# ---- the adapter does what it was trained for ----
final() { sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$1"; }
ppl "$BASE" -f "$LIC" -q --json "$SCRATCH/base.json" >/dev/null
ppl "$BASE" -f "$FIXTURES/text/wikillama-heldout.txt" --chunks 20 -q --json "$SCRATCH/wb.json" >/dev/null
ppl "$BASE" -f "$FIXTURES/text/wikillama-heldout.txt" --chunks 20 -q --json "$SCRATCH/wl.json" --lora "$RL/wikillama-license-lora-f32.gguf" >/dev/null
b=$(json_num "$SCRATCH/base.json" ppl); a=$(final "$SCRATCH/o-lora-f32")
check "the adapter lowers perplexity on license text more than 30-fold ($b -> $a)" awk -v b="$b" -v a="$a" 'BEGIN { exit !(a * 30 < b) }'
b=$(json_num "$SCRATCH/wb.json" ppl); a=$(json_num "$SCRATCH/wl.json" ppl)
check "and raises it on wikitext by 20-60% ($b -> $a)" awk -v b="$b" -v a="$a" 'BEGIN { r = a / b; exit !(r > 1.2 && r < 1.6) }'

# ---- gate, logits, imatrix ----
"$V" gate --base "$BASE" --lora "$RL/wikillama-license-lora-f16.gguf" -f "$LIC" -c 256 --chunks 8 -t 2 --max-ppl-ratio 0.1 --json "$SCRATCH/gate.json" >"$SCRATCH/gate.txt"
check "gate --lora without --model gates the adapter against its base (ratio < 0.1: pass)" grep -q '"pass":[[:space:]]*true' "$SCRATCH/gate.json"
check "gate names the adapter" grep -q 'wikillama-license-lora-f16.gguf' "$SCRATCH/gate.txt"
check_status "gate --lora fails a limit the adapter exceeds (ratio <= 0.005)" 1 "$V" gate --base "$BASE" --lora "$RL/wikillama-license-lora-f16.gguf" -f "$LIC" -c 256 --chunks 8 -t 2 --max-ppl-ratio 0.005
"$V" imatrix "$BASE" -f "$LIC" -c 256 --chunks 3 -t 2 -q -o "$SCRATCH/im.gguf" --lora "$RL/wikillama-license-lora-f32.gguf"
check "imatrix --lora collects the adapters' inputs too, as llama-imatrix" sh -c "'$BIN/nomoat-inspect' '$SCRATCH/im.gguf' | grep -q 'blk.3.ffn_down.weight.lora_b.in_sum2 *F32 *\[8\]'"
check "  ... and nomoat-quantize accepts that imatrix" "$BIN/nomoat-quantize" -q --imatrix "$SCRATCH/im.gguf" "$BASE" "$SCRATCH/q.gguf" Q4_K_M

if [ -n "$NOMOAT_SKIP_NODE" ]; then
    skip "node-llama-cpp comparisons (NOMOAT_SKIP_NODE)"
elif node_setup node-llama-cpp@3.21.1 && node_llamacpp_avx2; then
    # top-10 probabilities: ours with --lora, node-llama-cpp with the adapter, and the merged file
    close10() { $PY - "$1" "$2" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); a = a["top"] if isinstance(a, dict) else a
b = json.load(open(sys.argv[2])); b = b["top"] if isinstance(b, dict) else b
assert len(a) == 10 and len(b) == 10
for x, y in zip(a, b):
    assert abs(x["p"] - y["p"]) < 1e-3 and (x["id"] == y["id"] or abs(x["p"] - y["p"]) < 1e-4), (x, y)
PY
    }
    P="Permission is hereby granted, free of charge, to any person"
    "$V" logits "$BASE" --prompt "$P" --top 10 --json -t 2 --lora "$RL/wikillama-license-lora-f16.gguf" >"$SCRATCH/ours.json"
    ids=$($PY -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['tokens'])))" "$SCRATCH/ours.json")
    if timeout 300 node tests/verify/node_top.mjs "$BASE" 10 "$ids" "$RL/wikillama-license-lora-f16.gguf" >"$SCRATCH/node.json" 2>"$SCRATCH/node.err"; then
        check "logits --lora: top-10 within 1e-3 of node-llama-cpp with the adapter" close10 "$SCRATCH/ours.json" "$SCRATCH/node.json"
        "$V" logits "$RL/wikillama-license-merged-f16.gguf" --prompt "$P" --top 10 --json -t 2 >"$SCRATCH/merged.json"
        check "the merged file alone: within 1e-3 of node-llama-cpp with the adapter" close10 "$SCRATCH/merged.json" "$SCRATCH/node.json"
        "$BIN/nomoat-convert" "$L/r16-rslora-bin" --base "$BASE" -q -o "$SCRATCH/r16.gguf"
        "$V" logits "$BASE" --prompt "$P" --top 10 --json -t 2 --lora "$RL/wikillama-license-lora-f32.gguf" --lora "$SCRATCH/r16.gguf:0.5" >"$SCRATCH/ours2.json"
        timeout 300 node tests/verify/node_top.mjs "$BASE" 10 "$ids" "$RL/wikillama-license-lora-f32.gguf" "$SCRATCH/r16.gguf:0.5" >"$SCRATCH/node2.json" 2>"$SCRATCH/node.err"
        check "two adapters (1.0, 0.5): within 1e-3 of node-llama-cpp with both" close10 "$SCRATCH/ours2.json" "$SCRATCH/node2.json"
        "$BIN/nomoat-merge" "$BASE" --lora "$RL/wikillama-license-lora-f32.gguf" --lora "$SCRATCH/r16.gguf:0.5" -q -o "$SCRATCH/m2.gguf"
        "$V" logits "$SCRATCH/m2.gguf" --prompt "$P" --top 10 --json -t 2 >"$SCRATCH/m2.json"
        check "  ... and so is the file nomoat-merge made of them" close10 "$SCRATCH/m2.json" "$SCRATCH/node2.json"
    else
        fail "node-llama-cpp runs with an adapter" "$(tail -3 "$SCRATCH/node.err")"
    fi
else
    skip "logits --lora vs node-llama-cpp (node/npm, node-llama-cpp@3.21.1 or its AVX2 build unavailable)"
fi

# ---- refusals (exit 2, one line) ----
refuse() { # NAME NEEDLE ARGS...
    _name=$1; _needle=$2; shift 2
    "$V" "$@" >"$SCRATCH/.out" 2>"$SCRATCH/.err"; _rc=$?
    if [ "$_rc" -eq 2 ] && [ "$(grep -c . "$SCRATCH/.err")" -eq 1 ] && grep -q -- "$_needle" "$SCRATCH/.err"; then
        pass "$_name"; echo "    $(cat "$SCRATCH/.err")"
    else
        fail "$_name" "exit $_rc: $(cat "$SCRATCH/.err")"
    fi
}
$PY tests/merge/gguf_tool.py kv "$RL/wikillama-license-lora-f16.gguf" "$SCRATCH/gpt2.gguf" general.architecture=gpt2
refuse "an adapter for another architecture" "architecture 'gpt2'" perplexity "$BASE" -f "$LIC" --lora "$SCRATCH/gpt2.gguf"
$PY tests/verify/make_tiny_llama.py "$DATA/wikillama-bf16/tokenizer.model" "$SCRATCH/tiny" 4096
"$BIN/nomoat-convert" "$SCRATCH/tiny" -q --outtype f32 -o "$SCRATCH/tiny.gguf"
refuse "an adapter for other shapes" "another model" logits "$SCRATCH/tiny.gguf" --prompt "x" --lora "$RL/wikillama-license-lora-f16.gguf"
$PY tests/merge/gguf_tool.py drop "$RL/wikillama-license-lora-f16.gguf" "$SCRATCH/miss.gguf" blk.0.attn_q.weight.lora_a
refuse "a missing lora_a" "lora_a is missing" perplexity "$BASE" -f "$LIC" --lora "$SCRATCH/miss.gguf"
$PY tests/merge/gguf_tool.py nan "$RL/wikillama-license-lora-f16.gguf" "$SCRATCH/nan.gguf" blk.3.attn_v.weight.lora_b
refuse "NaN in an adapter" "NaN at row 0" imatrix "$BASE" -f "$LIC" -o "$SCRATCH/x.gguf" --lora "$SCRATCH/nan.gguf"
check "  ... and no imatrix written" test ! -e "$SCRATCH/x.gguf"
refuse "a PEFT folder (convert it first)" "convert a PEFT adapter first" perplexity "$BASE" -f "$LIC" --lora "$L/wikillama-license"
refuse "a model given as adapter" "not a LoRA adapter" logits "$BASE" --prompt x --lora "$BASE"
finish
