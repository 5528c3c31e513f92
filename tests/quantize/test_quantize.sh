#!/bin/sh
# nomoat-quantize end to end: byte identity with llama-quantize's files (quant-vectors in
# tests/data; the wikillama mixes and the imatrix run from ../shared/fixtures), refusals with
# clear messages and no output, atomic output under SIGINT, the dry-run plan.
. tests/lib.sh
Q="$(cd "$BIN" && pwd)/nomoat-quantize"
PY=/usr/bin/python3
U=tests/quantize/gguf_util.py
S="$SCRATCH"

# expect_fail NAME PATTERN OUTFILE COMMAND...: exit 1, stderr matches PATTERN, OUTFILE absent
expect_fail() {
    _n=$1; _pat=$2; _out=$3; shift 3
    "$@" >"$S/.stdout" 2>"$S/.stderr"; _rc=$?
    if [ "$_rc" -ne 1 ]; then fail "$_n" "exit $_rc, expected 1"; sed 's/^/    | /' "$S/.stderr"; return; fi
    if ! grep -Eq -- "$_pat" "$S/.stderr"; then fail "$_n" "stderr lacks /$_pat/"; sed 's/^/    | /' "$S/.stderr"; return; fi
    if [ "$(wc -l <"$S/.stderr")" -ne 1 ]; then fail "$_n" "more than one error line"; sed 's/^/    | /' "$S/.stderr"; return; fi
    if [ -n "$_out" ] && [ -e "$_out" ]; then fail "$_n" "$_out was left behind"; rm -f "$_out"; return; fi
    pass "$_n"
}
# same_file NAME A B: byte-identical; on failure show which tensors differ
same_file() {
    if cmp "$2" "$3" >"$S/.cmp" 2>&1; then pass "$1"; return; fi
    fail "$1"; sed 's/^/    | /' "$S/.cmp"
    $PY $U tensors-equal "$2" "$3" 2>&1 | sed 's/^/    | /' | tail -20
}
# no stray temporaries next to outputs
check_clean() {
    if ls -A "$1" | grep -q 'nomoat-tmp'; then fail "$2" "temporary left in $1"; else pass "$2"; fi
}

# ---- (a) quant-vectors (tests/data): --pure to each type, whole file identical ----
V="$DATA/quant-vectors"
for t in Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K_S Q5_K_S Q6_K; do
    check "quant-vectors --pure $t runs" "$Q" -q --no-fsync --pure "$V/input-f32.gguf" "$S/v-$t.gguf" $t 1
    same_file "quant-vectors --pure $t: whole file byte-identical (tensor data too)" "$S/v-$t.gguf" "$V/$t.gguf"
done
# the low-bit types, without and (from tests/data, as llama-quantize recorded the path) with the
# synthetic importance matrix
for t in Q2_K Q3_K IQ4_NL IQ4_XS TQ1_0 TQ2_0; do
    check "quant-vectors --pure $t runs" "$Q" -q --no-fsync --pure "$V/input-f32.gguf" "$S/v-$t.gguf" $t 1
    same_file "quant-vectors --pure $t: whole file byte-identical (tensor data too)" "$S/v-$t.gguf" "$V/$t.gguf"
done
for t in Q2_K Q3_K IQ4_NL IQ4_XS; do
    check "quant-vectors --pure --imatrix $t runs" sh -c \
        "cd '$DATA' && '$Q' -q --no-fsync --pure --imatrix quant-vectors/imatrix-vectors.gguf quant-vectors/input-f32.gguf '$S/vi-$t.gguf' $t 1"
    same_file "quant-vectors --pure --imatrix $t: whole file byte-identical" "$S/vi-$t.gguf" "$V/$t-imatrix.gguf"
done
# the lattice i-quants (llama-quantize's IQ2_S file type holds IQ2_XS tensors)
check "quant-vectors --pure IQ3_S runs" "$Q" -q --no-fsync --pure "$V/input-f32.gguf" "$S/v-IQ3_S.gguf" IQ3_S 1
same_file "quant-vectors --pure IQ3_S: whole file byte-identical" "$S/v-IQ3_S.gguf" "$V/IQ3_S.gguf"
for t in IQ3_XXS IQ3_S IQ2_XXS IQ2_XS IQ2_S IQ1_S IQ1_M; do
    check "quant-vectors --pure --imatrix $t runs" sh -c \
        "cd '$DATA' && '$Q' -q --no-fsync --pure --imatrix quant-vectors/imatrix-vectors.gguf quant-vectors/input-f32.gguf '$S/vi-$t.gguf' $t 1"
    same_file "quant-vectors --pure --imatrix $t: whole file byte-identical" "$S/vi-$t.gguf" "$V/$t-imatrix.gguf"
done
for t in IQ3_XXS IQ2_XXS IQ2_XS IQ2_S IQ1_S IQ1_M; do
    expect_fail "--pure $t without an importance matrix" "$t needs an importance matrix" "$S/x.gguf" \
        "$Q" -q --pure "$V/input-f32.gguf" "$S/x.gguf" $t
done
# multi-threaded run gives the same bytes
check "quant-vectors Q4_K_S with 2 threads" "$Q" -q --no-fsync --pure "$V/input-f32.gguf" "$S/v2.gguf" Q4_K_S 2
check "quant-vectors Q4_K_S 2 threads identical" cmp "$S/v2.gguf" "$V/Q4_K_S.gguf"
# Q4_K_M --pure is Q4_K everywhere, like Q4_K_S --pure, but a different general.file_type
check "--pure Q4_K_M" "$Q" -q --no-fsync --pure "$V/input-f32.gguf" "$S/v-m.gguf" Q4_K_M
check "--pure Q4_K_M tensors equal Q4_K_S --pure" $PY $U tensors-equal "$S/v-m.gguf" "$V/Q4_K_S.gguf"
check "--pure Q4_K_M file_type 15" sh -c "[ \"\$($PY $U kv '$S/v-m.gguf' general.file_type)\" = 15 ]"

# ---- F16 / BF16 inputs convert exactly like F32 ----
for d in f32 f16 bf16; do
    $PY $U model "$S/m-$d.gguf" $d || fail "make $d model"
    check "small $d model to Q4_K_M" "$Q" -q --no-fsync "$S/m-$d.gguf" "$S/o-$d.gguf" Q4_K_M
done
check "F16 input gives the same tensors as F32" $PY $U tensors-equal "$S/o-f32.gguf" "$S/o-f16.gguf"
check "BF16 input gives the same tensors as F32" $PY $U tensors-equal "$S/o-f32.gguf" "$S/o-bf16.gguf"
check "small model to Q8_0 with --output-tensor-type/--token-embedding-type" \
    "$Q" -q --no-fsync --output-tensor-type q8_0 --token-embedding-type F16 "$S/m-f16.gguf" "$S/o-ovr.gguf" Q4_K_S
$PY $U types "$S/o-ovr.gguf" >"$S/types" 2>&1
check "overrides applied (output Q8_0, token_embd F16, attn_v Q5_K, norms F32)" sh -c \
    "grep -qx 'output.weight 8' '$S/types' && grep -qx 'token_embd.weight 1' '$S/types' &&
     grep -qx 'blk.0.attn_v.weight 13' '$S/types' && grep -qx 'blk.0.attn_norm.weight 0' '$S/types'"
check "--leave-output-tensor" "$Q" -q --no-fsync --leave-output-tensor "$S/m-f16.gguf" "$S/o-leave.gguf" Q5_K_M
check "output.weight kept F16" sh -c "$PY $U types '$S/o-leave.gguf' | grep -qx 'output.weight 1'"
check "F16 target" "$Q" -q --no-fsync "$S/m-f32.gguf" "$S/o-to16.gguf" F16
check "F16 -> F16 copies" "$Q" -q --no-fsync "$S/m-f16.gguf" "$S/o-16to16.gguf" F16
check "COPY" "$Q" -q --no-fsync "$S/m-f16.gguf" "$S/o-copy.gguf" COPY
check "COPY: tensors unchanged (sorted), general.file_type kept (1)" sh -c \
    "$PY $U tensors-equal '$S/o-copy.gguf' '$S/o-16to16.gguf' && [ \"\$($PY $U kv '$S/o-copy.gguf' general.file_type)\" = 1 ]"
check "F32 -> F16 tensors equal the F16 model's" $PY $U tensors-equal "$S/o-to16.gguf" "$S/o-16to16.gguf"

# ---- dry run and JSON ----
"$Q" --dry-run "$S/m-f16.gguf" "$S/dry.gguf" Q4_K_M >"$S/plan" 2>&1
check "--dry-run writes nothing" sh -c "[ ! -e '$S/dry.gguf' ]"
check "--dry-run lists types and totals" sh -c "grep -q 'blk.1.ffn_down.weight .*F16 *-> Q6_K' '$S/plan' && grep -q '^total: 21 tensors, 16 converted' '$S/plan'"
"$Q" --dry-run --json "$S/m-f16.gguf" "$S/dry.gguf" Q4_K_M >"$S/plan.json" 2>&1
check "--dry-run --json is a plan" $PY -c "
import json,sys; p=json.load(open('$S/plan.json'))
t={x['name']:x for x in p['tensors']}
assert p['file_type']==15 and len(p['tensors'])==21
assert t['output.weight']['type_out']=='Q6_K' and t['blk.0.attn_norm.weight']['converted'] is False
assert sum(x['bytes_out'] for x in p['tensors'])==p['bytes_out']"
"$Q" -q --no-fsync --json "$S/m-f16.gguf" "$S/j.gguf" Q8_0 >"$S/sum.json" 2>&1
check "--json summary matches the file written" $PY -c "
import json,os; p=json.load(open('$S/sum.json'))
assert p['type']=='Q8_0' and p['seconds']>=0 and p['bytes_out']<=os.path.getsize('$S/j.gguf')"

# ---- refusals: one clear line, exit 1, nothing written ----
for k in nan inf huge; do $PY $U bad "$S/bad-$k.gguf" $k; done
expect_fail "NaN named with tensor and row (Q8_0)" "blk.0.attn_q.weight, row 5: .*NaN" "$S/x.gguf" "$Q" "$S/bad-nan.gguf" "$S/x.gguf" Q8_0
expect_fail "NaN named with tensor and row (Q4_K_M)" "blk.0.attn_q.weight, row 5: .*NaN" "$S/x.gguf" "$Q" "$S/bad-nan.gguf" "$S/x.gguf" Q4_K_M
expect_fail "Inf named with tensor and row" "blk.0.attn_q.weight, row 5: .*Inf" "$S/x.gguf" "$Q" "$S/bad-inf.gguf" "$S/x.gguf" Q5_1
expect_fail "f16 scale overflow (Q4_0)" "blk.0.attn_q.weight, row 5: .*(overflow|too large)" "$S/x.gguf" "$Q" "$S/bad-huge.gguf" "$S/x.gguf" Q4_0
expect_fail "f16 scale overflow (Q6_K)" "blk.0.attn_q.weight, row 5: .*(overflow|too large)" "$S/x.gguf" "$Q" "$S/bad-huge.gguf" "$S/x.gguf" Q6_K
expect_fail "value too large for F16" "blk.0.attn_q.weight, row 5: " "$S/x.gguf" "$Q" "$S/bad-huge.gguf" "$S/x.gguf" F16
check_clean "$S" "no temporaries after refusals"

check "make a Q8_0 file" "$Q" -q --no-fsync "$S/m-f32.gguf" "$S/q8.gguf" Q8_0
expect_fail "requantizing refused without --allow-requantize" "already quantized.*--allow-requantize" "$S/rq.gguf" "$Q" "$S/q8.gguf" "$S/rq.gguf" Q4_0
check "requantizing with --allow-requantize" "$Q" -q --no-fsync --allow-requantize "$S/q8.gguf" "$S/rq.gguf" Q4_0
check "Q8_0 -> Q8_0 copies the tensors unchanged" "$Q" -q --no-fsync "$S/q8.gguf" "$S/q8b.gguf" Q8_0
check "Q8_0 -> Q8_0 tensors identical" $PY $U tensors-equal "$S/q8.gguf" "$S/q8b.gguf"

echo "precious" >"$S/exists.gguf"
expect_fail "existing output refused without --force" "exists.*--force" "" "$Q" "$S/m-f32.gguf" "$S/exists.gguf" Q8_0
check "existing output untouched" sh -c "[ \"\$(cat '$S/exists.gguf')\" = precious ]"
check "--force replaces it" "$Q" -q --no-fsync --force "$S/m-f32.gguf" "$S/exists.gguf" Q8_0
check "replaced by the quantized model" cmp "$S/exists.gguf" "$S/q8.gguf"

expect_fail "unknown type" "unknown type 'Q9_9'" "$S/x.gguf" "$Q" "$S/m-f32.gguf" "$S/x.gguf" Q9_9
expect_fail "bad thread count" "THREADS" "$S/x.gguf" "$Q" "$S/m-f32.gguf" "$S/x.gguf" Q8_0 two
expect_fail "bad --output-tensor-type" "output-tensor-type" "$S/x.gguf" "$Q" --output-tensor-type Q9 "$S/m-f32.gguf" "$S/x.gguf" Q8_0
expect_fail "missing input" "nope.gguf" "$S/x.gguf" "$Q" "$S/nope.gguf" "$S/x.gguf" Q8_0
expect_fail "not a GGUF input" "plan" "$S/x.gguf" "$Q" "$S/plan" "$S/x.gguf" Q8_0
expect_fail "a model as --imatrix" "m-f32.gguf: (not an importance matrix|no importance-matrix entries)" "$S/x.gguf" "$Q" --imatrix "$S/m-f32.gguf" "$S/m-f32.gguf" "$S/x.gguf" Q4_K_M
mkdir -p "$S/im"
$PY $U imatrix-hostile "$S/m-f32.gguf" "$S/im"
check "imatrix with zero counts (weights 1.0) accepted" "$Q" -q --no-fsync --imatrix "$S/im/good-zero-counts.gguf" "$S/m-f32.gguf" "$S/im-ok.gguf" Q4_K_M
check "imatrix KVs written" sh -c "[ \"\$($PY $U kv '$S/im-ok.gguf' quantize.imatrix.dataset)\" = x.txt ] && [ \"\$($PY $U kv '$S/im-ok.gguf' quantize.imatrix.entries_count)\" = 16 ]"
for f in "$S"/im/bad-*; do
    b=$(basename "$f")
    expect_fail "hostile imatrix $b refused" "$b" "$S/x.gguf" "$Q" --imatrix "$f" "$S/m-f32.gguf" "$S/x.gguf" Q4_K_M
done
for f in "$ROOT"/tests/fuzz/regress/imatrix/*; do  # fuzzer findings, replayed
    [ -f "$f" ] || continue
    expect_fail "fuzz regression $(basename "$f") refused in one line" "importance|imatrix|entry|$(basename "$f")" "$S/x.gguf" \
        "$Q" --imatrix "$f" "$S/m-f32.gguf" "$S/x.gguf" Q4_K_M
done
# 3-D expert tensors: expert e is quantized with imatrix slice e, like a 2-D tensor of its own
mkdir -p "$S/exp"
$PY $U experts "$S/exp"
for t in Q4_K_S Q4_0 Q6_K; do
    check "experts $t with imatrix" sh -c "'$Q' -q --no-fsync --pure --imatrix '$S/exp/experts-imatrix.gguf' '$S/exp/experts.gguf' '$S/exp/a-$t.gguf' $t &&
        '$Q' -q --no-fsync --pure --imatrix '$S/exp/split-imatrix.gguf' '$S/exp/split.gguf' '$S/exp/b-$t.gguf' $t"
    check "experts $t: each expert uses its own imatrix slice" $PY $U concat-equal "$S/exp/a-$t.gguf" "$S/exp/b-$t.gguf"
done
check "experts without imatrix differ from with (the slices matter)" sh -c \
    "'$Q' -q --no-fsync --pure '$S/exp/experts.gguf' '$S/exp/c.gguf' Q4_K_S && ! $PY $U concat-equal '$S/exp/c.gguf' '$S/exp/b-Q4_K_S.gguf' >/dev/null"
head -c 100 "$S/m-f32.gguf" >"$S/trunc.gguf"
expect_fail "truncated input" "trunc.gguf" "$S/x.gguf" "$Q" "$S/trunc.gguf" "$S/x.gguf" Q8_0
check_status "--help exits 0" 0 "$Q" --help
check_status "no arguments is a usage error" 1 "$Q"

# ---- split input (read as one model), progress bar only on a TTY ----
if [ -x "$BIN/nomoat-convert" ] && [ -d "$DATA/wikillama-bf16" ]; then
    mkdir -p "$S/split"
    "$BIN/nomoat-convert" -q --no-fsync --outtype f16 --split-max-size 4M -o "$S/split/m.gguf" "$DATA/wikillama-bf16" &&
        "$BIN/nomoat-convert" -q --no-fsync --outtype f16 -o "$S/split/whole.gguf" "$DATA/wikillama-bf16" ||
        fail "convert the bundled model (split and whole)"
    check "split F16 input to Q4_K_M" "$Q" -q --no-fsync "$S/split/m-00001-of-00004.gguf" "$S/split/a.gguf" Q4_K_M
    check "unsplit F16 input to Q4_K_M" "$Q" -q --no-fsync "$S/split/whole.gguf" "$S/split/b.gguf" Q4_K_M
    same_file "split input gives the same file as the unsplit one (split.* keys dropped)" "$S/split/a.gguf" "$S/split/b.gguf"
else
    skip "split input (nomoat-convert or tests/data/wikillama-bf16 missing)"
fi
if command -v script >/dev/null 2>&1; then
    script -qec "'$Q' --no-fsync '$V/input-f32.gguf' '$S/tty.gguf' Q8_0 1" /dev/null >"$S/tty.txt" 2>&1
    check "progress bar on a TTY" grep -q 'quantizing .*12/12' "$S/tty.txt"
    "$Q" --no-fsync "$V/input-f32.gguf" "$S/notty.gguf" Q8_0 1 >"$S/notty.txt" 2>&1
    check "no progress bar without a TTY, one summary line" sh -c "! grep -q 'quantizing' '$S/notty.txt' && [ \$(wc -l <'$S/notty.txt') -eq 1 ]"
fi

# ---- SIGINT mid-run leaves nothing ----
mkdir -p "$S/int"
$PY $U big "$S/big.gguf" 128
"$Q" -q --no-fsync "$S/big.gguf" "$S/int/out.gguf" Q6_K 1 &
pid=$!
# interrupt once a few MB of output were written (mid-run, whatever the machine's speed)
i=0
while [ $i -lt 3000 ] && kill -0 $pid 2>/dev/null; do
    w=$(awk '/^wchar:/{print $2}' /proc/$pid/io 2>/dev/null || echo 0)
    [ "${w:-0}" -ge 4000000 ] && break
    sleep 0.01; i=$((i + 1))
done
kill -INT $pid 2>/dev/null
wait $pid; rc=$?
if [ "$rc" -eq 130 ]; then pass "SIGINT mid-write ends the run with status 130"; else fail "SIGINT mid-write ends the run with status 130" "exit $rc (finished before the signal?)"; fi
check "SIGINT leaves no output" sh -c "[ ! -e '$S/int/out.gguf' ]"
check_clean "$S/int" "SIGINT leaves no temporary"

# ---- (b) the wikillama mixes against llama-quantize's files (../shared/fixtures) ----
if need_fixtures "wikillama reference mixes"; then
    R="$FIXTURES/reference"
    for t in Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K; do
        lt=$(echo $t | tr 'A-Z' 'a-z')
        check "wikillama $t runs" "$Q" -q --no-fsync --no-fsync "$R/wikillama-f32.gguf" "$S/w-$lt.gguf" $t 2
        same_file "wikillama $t: whole file byte-identical (per-tensor types and data too)" "$S/w-$lt.gguf" "$R/wikillama-$lt.gguf"
    done
    L="$R/lowbit"
    for t in Q2_K Q3_K_S Q3_K_M Q3_K_L IQ4_NL IQ4_XS; do
        lt=$(echo $t | tr 'A-Z' 'a-z')
        check "wikillama $t runs" "$Q" -q --no-fsync "$R/wikillama-f32.gguf" "$S/w-$lt.gguf" $t 2
        same_file "wikillama $t: whole file byte-identical" "$S/w-$lt.gguf" "$L/wikillama-$lt.gguf"
    done
    for t in Q2_K_S Q3_K_M IQ4_XS; do
        lt=$(echo $t | tr 'A-Z' 'a-z')
        check "wikillama $t --imatrix runs" sh -c \
            "cd '$FIXTURES' && '$Q' -q --no-fsync --imatrix reference/wikillama-imatrix.gguf reference/wikillama-f32.gguf '$S/wi-$lt.gguf' $t 2"
        same_file "wikillama $t --imatrix: whole file byte-identical" "$S/wi-$lt.gguf" "$L/wikillama-$lt-imatrix.gguf"
    done
    # ternary mixes: llama-quantize's files kept as SHA-256 (tests/data/lowbit/README.md)
    for t in TQ1_0:fda37759276c81c94789465c3dedb53bd5bf252ffc0553d88c35cb8c6e68523c \
             TQ2_0:1055ab571c9547c76b72ba037b0facf50f8850917af0606ea805421bc5876b3b; do
        ty=${t%%:*}; want=${t#*:}; lt=$(echo $ty | tr 'A-Z' 'a-z')
        check "wikillama $ty runs" "$Q" -q --no-fsync "$R/wikillama-f32.gguf" "$S/w-$lt.gguf" $ty 2
        check "wikillama $ty: llama-quantize's file (sha256)" sh -c "sha256sum '$S/w-$lt.gguf' | grep -q '^$want '"
    done
    # the i-quant mixes (with llama-quantize's per-tensor rules and the K-quant/IQ4 types inside)
    for t in IQ3_XXS IQ3_XS IQ3_S IQ3_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ1_S IQ1_M; do
        lt=$(echo $t | tr 'A-Z' 'a-z')
        check "wikillama $t --imatrix runs" sh -c \
            "cd '$FIXTURES' && '$Q' -q --no-fsync --imatrix reference/wikillama-imatrix.gguf reference/wikillama-f32.gguf '$S/wi-$lt.gguf' $t 2"
        same_file "wikillama $t --imatrix: whole file byte-identical" "$S/wi-$lt.gguf" "$L/wikillama-$lt-imatrix.gguf"
    done
    expect_fail "IQ2_M without an importance matrix" "IQ2_M needs an importance matrix .* for tensor blk.0.attn_k.weight \(IQ2_S\)" \
        "$S/x.gguf" "$Q" "$R/wikillama-f32.gguf" "$S/x.gguf" IQ2_M
    expect_fail "IQ3_XS without an importance matrix" "IQ3_XS needs an importance matrix .* \(IQ3_XXS\)" \
        "$S/x.gguf" "$Q" "$R/wikillama-f32.gguf" "$S/x.gguf" IQ3_XS
    expect_fail "Q2_K_S without an importance matrix" "Q2_K_S needs an importance matrix" "$S/x.gguf" \
        "$Q" "$R/wikillama-f32.gguf" "$S/x.gguf" Q2_K_S
    # llama-quantize stored the imatrix path as given, relative to ../shared/fixtures
    check "wikillama Q4_K_M --imatrix runs" sh -c \
        "cd '$FIXTURES' && '$Q' -q --no-fsync --no-fsync --imatrix reference/wikillama-imatrix.gguf reference/wikillama-f32.gguf '$S/w-imat.gguf' Q4_K_M"
    same_file "wikillama Q4_K_M --imatrix: whole file byte-identical" "$S/w-imat.gguf" "$R/wikillama-q4_k_m-imatrix.gguf"
    $PY $U dat-from-gguf "$R/wikillama-imatrix.gguf" "$S/imatrix.dat"
    check "legacy .dat imatrix runs" "$Q" -q --no-fsync --imatrix "$S/imatrix.dat" "$R/wikillama-f32.gguf" "$S/w-dat.gguf" Q4_K_M
    check "legacy .dat imatrix gives the same tensors" $PY $U tensors-equal "$S/w-dat.gguf" "$R/wikillama-q4_k_m-imatrix.gguf"
    check "the imatrix changes the result" sh -c "! $PY $U tensors-equal '$S/w-dat.gguf' '$R/wikillama-q4_k_m.gguf' >/dev/null"
    $PY $U imatrix-bad "$R/wikillama-imatrix.gguf" "$S/imatrix-bad.gguf"
    expect_fail "imatrix of the wrong size" "entry blk.0.attn_k.weight has 224 values" "$S/x.gguf" \
        "$Q" --imatrix "$S/imatrix-bad.gguf" "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_K_M
    check "Q4_0 with imatrix: ffn_down of the first n/8 layers only (none of 4) stays Q4_0" sh -c \
        "'$Q' -q --no-fsync --imatrix '$R/wikillama-imatrix.gguf' '$R/wikillama-f32.gguf' '$S/w-q40i.gguf' Q4_0 && $PY $U types '$S/w-q40i.gguf' | grep -qx 'blk.0.ffn_down.weight 2'"
    expect_fail "a reference model as --imatrix" "wikillama-f32.gguf: not an importance matrix" "$S/x.gguf" \
        "$Q" --imatrix "$R/wikillama-f32.gguf" "$R/wikillama-f32.gguf" "$S/x.gguf" Q4_K_M
    check "requantize refused on a reference Q4_K_M" sh -c "! '$Q' -q --no-fsync '$R/wikillama-q4_k_m.gguf' '$S/rq2.gguf' Q4_0 2>/dev/null && [ ! -e '$S/rq2.gguf' ]"
fi
finish
