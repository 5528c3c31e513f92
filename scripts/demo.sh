#!/bin/sh
# make demo: the bundled model (tests/data/wikillama-bf16, a 5.2M-parameter Llama trained on
# wikitext-2, BF16 safetensors in two shards) through the nomoat tools, ending with a table.
#
# Structure, so later steps slot in: each step is a function; a step that produces a model
# file calls `record TYPE FILE SECONDS [PPL] [KLD]`, and `results` prints every recorded row
# (type, size, bits/weight, perplexity, KLD, time) at the end. Steps run in the order listed
# in STEPS; a step whose tool is not built is skipped with a note.
set -e
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN="$ROOT/$BUILD"
MODEL="$ROOT/tests/data/wikillama-bf16"
OUT="$ROOT/$BUILD/demo"
mkdir -p "$OUT"
ROWS="$OUT/results.tsv"
: >"$ROWS"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# record TYPE FILE SECONDS [PPL] [KLD]
record() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:--}" "${5:--}" >>"$ROWS"
}

# Parameters of a GGUF (sum of tensor elements), from nomoat-convert's own count for the model.
PARAMS=$("$BIN/nomoat-convert" --dry-run --json "$MODEL" | sed -n 's/.*"parameters": \([0-9]*\).*/\1/p')

step_convert() {
    echo "== convert: $MODEL -> GGUF (BF16 kept, and F16, Q8_0)"
    for t in auto f16 q8_0; do
        case $t in auto) label=BF16 ;; *) label=$(echo "$t" | tr a-z A-Z) ;; esac
        f="$OUT/wikillama-$(echo "$label" | tr A-Z a-z).gguf"
        t0=$(now)
        "$BIN/nomoat-convert" -q --force --outtype "$t" -o "$f" "$MODEL"
        t1=$(now)
        record "$label" "$f" "$(elapsed "$t0" "$t1")"
    done
    "$BIN/nomoat-convert" --dry-run -o "$OUT/wikillama-bf16.gguf" "$MODEL" | sed -n '1,2p;$p'
}

step_quantize() {
    [ -x "$BIN/nomoat-quantize" ] || { echo "== quantize: skipped (nomoat-quantize not built)"; return 0; }
    echo "== quantize: the F16 GGUF -> Q8_0, Q4_K_M, Q3_K_M and IQ4_XS (llama-quantize's mixes)"
    for t in Q8_0 Q4_K_M Q3_K_M IQ4_XS; do
        f="$OUT/wikillama-f16-$(echo "$t" | tr A-Z a-z).gguf"
        t0=$(now)
        "$BIN/nomoat-quantize" -q --force "$OUT/wikillama-f16.gguf" "$f" "$t"
        t1=$(now)
        record "$t" "$f" "$(elapsed "$t0" "$t1")"
    done
}

step_verify() {
    [ -x "$BIN/nomoat-verify" ] || { echo "== verify: skipped (nomoat-verify not built)"; return 0; }
    text="$ROOT/tests/data/tokenizer/heldout-slice-wikillama.txt"
    echo "== verify: perplexity and KL divergence against an F32 conversion (-c 128, ${text#"$ROOT"/})"
    base="$OUT/wikillama-f32.gguf"
    t0=$(now)
    "$BIN/nomoat-convert" -q --force --outtype f32 -o "$base" "$MODEL"
    t1=$(now)
    "$BIN/nomoat-verify" perplexity "$base" -f "$text" -c 128 -q --save-logits "$OUT/f32.logits" --json "$OUT/f32.json"
    ppl=$(sed -n 's/.*"ppl":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$OUT/f32.json")
    tmp="$ROWS.verify"
    printf '%s\t%s\t%s\t%.4f\t%s\n' F32 "$base" "$(elapsed "$t0" "$t1")" "$ppl" 0 >"$tmp"
    while IFS="$(printf '\t')" read -r type file secs p k; do
        j="$OUT/verify-$(basename "$file" .gguf).json"
        "$BIN/nomoat-verify" perplexity "$file" -f "$text" -q --kld "$OUT/f32.logits" --json "$j"
        p=$(sed -n 's/.*"ppl":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$j")
        k=$(sed -n 's/.*"kld_mean":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$j")
        printf '%s\t%s\t%s\t%.4f\t%.6f\n' "$type" "$file" "$secs" "$p" "$k" >>"$tmp"
    done <"$ROWS"
    mv "$tmp" "$ROWS"
    echo "   gate (CI check): Q8_0 against F32, --max-ppl-ratio 1.01 --max-kld 0.01"
    q8=$(awk -F '\t' '$1 == "Q8_0" { print $2; exit }' "$ROWS")
    if [ -n "$q8" ]; then
        "$BIN/nomoat-verify" gate --base "$base" --model "$q8" -f "$text" -c 128 --max-ppl-ratio 1.01 --max-kld 0.01 | tail -1
    fi
}

step_lora() {
    [ -x "$BIN/nomoat-merge" ] || { echo "== lora: skipped (nomoat-merge not built)"; return 0; }
    lora="$ROOT/tests/data/lora/wikillama-license"
    text="$ROOT/tests/data/lora/license-heldout.txt"
    base="$OUT/wikillama-f16.gguf"
    echo "== lora: ${lora#"$ROOT"/} (PEFT, r 8, trained on license texts) -> GGUF adapter, applied at run time and merged"
    "$BIN/nomoat-convert" -q --force "$lora" --base "$MODEL" -o "$OUT/license-lora.gguf"
    t0=$(now)
    "$BIN/nomoat-merge" -q --force "$base" --lora "$OUT/license-lora.gguf" -o "$OUT/wikillama-f16-license.gguf"
    t1=$(now)
    record F16+LoRA "$OUT/wikillama-f16-license.gguf" "$(elapsed "$t0" "$t1")"
    for run in "base:$base:" "runtime --lora:$base:$OUT/license-lora.gguf" "merged:$OUT/wikillama-f16-license.gguf:"; do
        name=${run%%:*}; rest=${run#*:}; model=${rest%%:*}; adapter=${rest#*:}
        "$BIN/nomoat-verify" perplexity "$model" -f "$text" -c 128 --chunks 20 -q ${adapter:+--lora "$adapter"} --json "$OUT/lora.json"
        printf '   license-text perplexity, %-15s %10.4f\n' "$name:" "$(sed -n 's/.*"ppl":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$OUT/lora.json")"
    done
}

STEPS="step_convert step_quantize step_lora step_verify"

results() {
    echo
    printf '%-8s %12s %10s %12s %10s %8s  %s\n' type size bits/weight perplexity 'KLD vs F32' time file
    while IFS="$(printf '\t')" read -r type file secs ppl kld; do
        size=$(stat -c %s "$file")
        bpw=$(awk -v s="$size" -v p="$PARAMS" 'BEGIN { printf "%.2f", p ? s * 8 / p : 0 }')
        printf '%-8s %12s %10s %12s %10s %7ss  %s\n' "$type" "$size" "$bpw" "$ppl" "$kld" "$secs" "${file#"$ROOT"/}"
    done <"$ROWS"
}

for s in $STEPS; do $s; done
results
