#!/bin/sh
# nomoat-quantize --optimize on the fixture model: the files have the default mix's tensor types,
# shapes, offsets and size; every quantized tensor's error is no larger than in llama-quantize's
# file (and some are smaller); they are the same bytes with and without SIMD; --calibration
# runs the evaluator's pass itself (on random tokens with --calibration-random, the same file
# every run); the files load in
# llama.cpp (node-llama-cpp) with top-10 probabilities within 1e-3 of nomoat-verify logits;
# wrong combinations are refused in one line with no output.
. tests/lib.sh
Q="$(cd "$BIN" && pwd)/nomoat-quantize"
V="$(cd "$BIN" && pwd)/nomoat-verify"
CMP="${NOMOAT_BUILD:-$ROOT/build}/tests/quantize/test_optimize"
S="$SCRATCH"

expect_fail() {
    _n=$1; _pat=$2; _out=$3; shift 3
    "$@" >"$S/.stdout" 2>"$S/.stderr"; _rc=$?
    if [ "$_rc" -ne 1 ]; then fail "$_n" "exit $_rc, expected 1"; sed 's/^/    | /' "$S/.stderr"; return; fi
    if ! grep -Eq -- "$_pat" "$S/.stderr"; then fail "$_n" "stderr lacks /$_pat/"; sed 's/^/    | /' "$S/.stderr"; return; fi
    if [ "$(wc -l <"$S/.stderr")" -ne 1 ]; then fail "$_n" "more than one error line"; sed 's/^/    | /' "$S/.stderr"; return; fi
    if [ -e "$_out" ]; then fail "$_n" "$_out was left behind"; return; fi
    pass "$_n"
}

need_fixtures "quantize --optimize on wikillama" || finish
R="$FIXTURES/reference"
TRAIN="$FIXTURES/text/wikillama-train.txt"

expect_fail "--calibration without --optimize refused" "belongs to --optimize" "$S/x.gguf" \
    "$Q" --calibration "$TRAIN" "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_0
expect_fail "--calibration with --imatrix refused" "pass one" "$S/x.gguf" \
    "$Q" --optimize --calibration "$TRAIN" --imatrix "$R/wikillama-imatrix.gguf" "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_0
expect_fail "missing calibration text refused" "calibration on $S/none.txt" "$S/x.gguf" \
    "$Q" -q --optimize --calibration "$S/none.txt" "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_0
expect_fail "--calibration with --calibration-random refused" "pass one" "$S/x.gguf" \
    "$Q" --optimize --calibration "$TRAIN" --calibration-random "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_0
expect_fail "--calibration-random without --optimize refused" "belongs to --optimize" "$S/x.gguf" \
    "$Q" --calibration-random "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_0
expect_fail "--calibration-random with --imatrix refused" "pass one" "$S/x.gguf" \
    "$Q" --optimize --calibration-random --imatrix "$R/wikillama-imatrix.gguf" "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_0
expect_fail "bad --calibration-chunks refused" "calibration-chunks" "$S/x.gguf" \
    "$Q" --optimize --calibration "$TRAIN" --calibration-chunks x "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_0

for t in Q4_0 Q4_K_M Q3_K_M IQ4_XS; do
    lt=$(echo $t | tr 'A-Z' 'a-z')
    ref="$R/wikillama-$lt.gguf"
    [ -f "$ref" ] || ref="$R/lowbit/wikillama-$lt.gguf"
    check "--optimize $t runs" "$Q" -q --no-fsync --optimize "$R/wikillama-f32.gguf" "$S/opt-$lt.gguf" $t 2
    # llama-quantize's file is the default; each tensor's error must not grow
    check "--optimize $t: same types, shapes, offsets and size as llama-quantize's; no tensor's error larger" \
        "$CMP" compare "$R/wikillama-f32.gguf" "$ref" "$S/opt-$lt.gguf"
done
check "second moments from the weights (quantize/dataless.c) equal plain loops' on the fixture" \
    "$CMP" moments "$R/wikillama-f32.gguf"
# plain --optimize's files are the same on every machine (token_embd's and layer 0's error feedback included):
# the AVX2 path, and (outside the sanitizer build, where it is slow) the portable code
check "--optimize Q4_0 without AVX-512: the same file" sh -c "NOMOAT_NO_AVX512=1 '$Q' -q --no-fsync --optimize \
    '$R/wikillama-f32.gguf' '$S/opt-avx2-q4_0.gguf' Q4_0 2 && cmp '$S/opt-q4_0.gguf' '$S/opt-avx2-q4_0.gguf'"
if [ "$SAN" = 1 ]; then
    skip "--optimize Q4_0 with the portable code: the same file (SAN build)"
else
    check "--optimize Q4_0 with the portable code: the same file" sh -c "NOMOAT_NO_SIMD=1 '$Q' -q --no-fsync --optimize \
        '$R/wikillama-f32.gguf' '$S/opt-portable-q4_0.gguf' Q4_0 2 && cmp '$S/opt-q4_0.gguf' '$S/opt-portable-q4_0.gguf'"
fi
check "--optimize --calibration Q4_0 runs (4 contexts of the training text)" \
    "$Q" -q --no-fsync --optimize --calibration "$TRAIN" --calibration-chunks 4 "$R/wikillama-f32.gguf" "$S/cal-q4_0.gguf" Q4_0 2
check "--optimize --calibration Q4_0: same types, shapes, offsets and size as llama-quantize's" \
    "$CMP" layout "$R/wikillama-q4_0.gguf" "$S/cal-q4_0.gguf"
check "--optimize --calibration Q4_0: the file differs from plain --optimize" sh -c "! cmp -s '$S/opt-q4_0.gguf' '$S/cal-q4_0.gguf'"
# random tokens instead of a text: seeded, so the same file twice
for k in 1 2; do
    check "--optimize --calibration-random Q4_K_M runs ($k)" \
        "$Q" -q --no-fsync --optimize --calibration-random --calibration-chunks 4 "$R/wikillama-f32.gguf" "$S/rand$k-q4_k_m.gguf" Q4_K_M 2
done
check "--optimize --calibration-random: the same file on every run" cmp "$S/rand1-q4_k_m.gguf" "$S/rand2-q4_k_m.gguf"
check "--optimize --calibration-random Q4_K_M: same types, shapes, offsets and size as llama-quantize's" \
    "$CMP" layout "$R/wikillama-q4_k_m.gguf" "$S/rand1-q4_k_m.gguf"
check "--optimize --calibration-random: the file differs from plain --optimize" sh -c "! cmp -s '$S/opt-q4_k_m.gguf' '$S/rand1-q4_k_m.gguf'"

# llama.cpp loads them as any file of these types: next-token top-10 as nomoat-verify computes it
. tests/node-env.sh
if [ "$SAN" = 1 ]; then
    skip "optimized files in node-llama-cpp (SAN build)"
elif node_setup node-llama-cpp@3.21.1 && node_llamacpp_avx2; then
    for f in opt-q4_k_m opt-iq4_xs cal-q4_0 rand1-q4_k_m; do
        "$V" logits "$S/$f.gguf" --prompt "The history of the city" --top 10 --json -t 2 >"$S/ours.json"
        ids=$(/usr/bin/python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['tokens'])))" "$S/ours.json")
        if timeout 300 node tests/verify/node_top.mjs "$S/$f.gguf" 10 "$ids" >"$S/node.json" 2>"$S/node.err"; then
            check "$f loads in node-llama-cpp; top-10 ids and probabilities match nomoat-verify within 1e-3" /usr/bin/python3 - "$S/ours.json" "$S/node.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["top"]; theirs = json.load(open(sys.argv[2]))
assert len(ours) == 10 and len(theirs) == 10
for a, b in zip(ours, theirs):
    assert a["id"] == b["id"] or abs(a["p"] - b["p"]) < 1e-3, (a, b)
    assert abs(a["p"] - b["p"]) < 1e-3, (a, b)
PY
        else
            fail "$f loads in node-llama-cpp" "$(tail -3 "$S/node.err")"
        fi
    done
else
    skip "optimized files in node-llama-cpp (node/npm, node-llama-cpp@3.21.1 or its AVX2 build unavailable)"
fi
finish
