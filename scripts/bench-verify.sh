#!/bin/sh
# nomoat-verify benchmark and full-file compatibility check.
#   1. tokens/s with 2 threads on the synthetic TinyLlama-1.1B-shaped model (F16 and Q4_0),
#      -c 512, 2 chunks, next to llama-perplexity's 162 (F16) and 147 (Q4_0) tokens/s; peak
#      anonymous memory (MB).
#   2. tokenizer MB/s (scripts/bench-tokenizer.sh when present, else nomoat-verify tokenize).
#   3. the whole text/wikillama-heldout.txt, -c 256, default mode, every reference type:
#      perplexity within 3e-4 relative of reference/perplexity.json, and KLD against F32's saved
#      logits (kld_mean >= 1e-3: within 10% relative; below: within 2e-5 absolute).
#      The ten lattice i-quant mixes of reference/lowbit follow (IQ_TYPES="iq2_m iq1_s" picks some).
#   usage: scripts/bench-verify.sh [--no-tiny] [--no-full]
# Exit status 1 when a compatibility check of part 3 fails.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
BIN="$ROOT/$BUILD"
V="$BIN/nomoat-verify"
FIX=${NOMOAT_FIXTURES:-$ROOT/../shared/fixtures}
WORK=${BENCH_DIR:-$ROOT/$BUILD/bench}
mkdir -p "$WORK"
[ -x "$V" ] || make -C "$ROOT" -s
tiny=1; full=1
for a in "$@"; do case $a in --no-tiny) tiny=0 ;; --no-full) full=0 ;; esac; done
json_num() { sed -n "s/.*\"$2\":[[:space:]]*\([-0-9.eE+]*\).*/\1/p" "$1" | head -1; }
peak() { sh "$ROOT/scripts/peak-anon.sh" "$@" 2>&1 >/dev/null | sed -n 's/^peak-anon-mb //p' | tail -1; }
status=0

if [ $tiny = 1 ]; then
    echo "== 1. TinyLlama-shaped synthetic model, -c 512, 2 chunks, 2 threads"
    hf="$WORK/tinyllama-hf"
    f16="$WORK/tinyllama-f16.gguf"; q40="$WORK/tinyllama-q4_0.gguf"
    [ -d "$hf" ] || /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$hf" --dtype f16 --shards 2 >/dev/null
    [ -f "$f16" ] || "$BIN/nomoat-convert" -q --no-fsync --outtype f16 -o "$f16" "$hf"
    [ -f "$q40" ] || "$BIN/nomoat-quantize" -q "$f16" "$q40" Q4_0
    text="$FIX/text/wikitext2-test.txt"
    # tokens/s is wall-clock; "cpu tok/s" = tokens per (CPU seconds / 2), what the run would reach
    # with both cores to itself (the two differ on a loaded machine)
    printf '%-8s %10s %10s %12s %8s %8s %10s\n' type tokens/s "cpu tok/s" llama.cpp ratio peakMB ppl
    for t in f16 q4_0; do
        case $t in f16) ref=162 ;; q4_0) ref=147 ;; esac
        mb=$(/usr/bin/time -f '%U %S' -o "$WORK/tiny-$t.time" sh "$ROOT/scripts/peak-anon.sh" "$V" perplexity "$WORK/tinyllama-$t.gguf" -f "$text" -c 512 --chunks 2 -t 2 -q --json "$WORK/tiny-$t.json" 2>&1 >/dev/null | sed -n 's/^peak-anon-mb //p' | tail -1)
        tps=$(json_num "$WORK/tiny-$t.json" tokens_per_s)
        ntok=$(json_num "$WORK/tiny-$t.json" n_tokens)
        ctps=$(awk -v n="$ntok" '{ c = $1 + $2; printf "%.1f", (c > 0 ? n / (c / 2) : 0) }' "$WORK/tiny-$t.time")
        printf '%-8s %10.1f %10s %12s %8.3f %8s %10.2f\n' "$t" "$tps" "$ctps" "$ref" "$(awk -v a="$tps" -v b="$ref" 'BEGIN { print a / b }')" "$mb" "$(json_num "$WORK/tiny-$t.json" ppl)"
    done
    echo "(synthetic random weights: the perplexity is meaningless, only the speed counts; load: $(cut -d' ' -f1-3 /proc/loadavg))"

    echo "== 2. tokenizer speed"
    if [ -x "$ROOT/scripts/bench-tokenizer.sh" ] || [ -f "$ROOT/scripts/bench-tokenizer.sh" ]; then
        sh "$ROOT/scripts/bench-tokenizer.sh"
    else
        for i in 1 2 3; do cat "$FIX/text/wikitext2-test.txt"; done >"$WORK/tok.txt"
        bytes=$(stat -c %s "$WORK/tok.txt")
        t0=$(date +%s.%N)
        "$V" tokenize --tokenizer "$FIX/tokenizer/llama2-tokenizer.model" -f "$WORK/tok.txt" --count >/dev/null
        t1=$(date +%s.%N)
        awk -v b="$bytes" -v a="$t0" -v c="$t1" 'BEGIN { printf "tokenize (Llama 2 vocabulary, %.1f MB): %.1f MB/s\n", b / 1e6, b / 1e6 / (c - a) }'
    fi
fi

if [ $full = 1 ]; then
    echo "== 3. whole wikillama-heldout.txt, -c 256, against llama-perplexity (perplexity.json)"
    REF="$FIX/reference"
    TEXT="$FIX/text/wikillama-heldout.txt"
    "$V" perplexity "$REF/wikillama-f32.gguf" -f "$TEXT" -c 256 -t 2 -q --save-logits "$WORK/f32.logits" --json "$WORK/full-f32.json" || status=1
    printf '%-16s %12s %12s %9s %4s | %10s %10s %4s | %8s\n' type ppl llama.cpp rel ok kld llama.cpp ok tokens/s
    for t in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k_s q4_k_m q4_k_m-imatrix q5_k_s q5_k_m q6_k; do
        want=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['ppl'])" "$REF/perplexity.json" "$t")
        if [ $t = f32 ]; then
            j="$WORK/full-f32.json"; kld=-; wk=-; kok=-
        else
            j="$WORK/full-$t.json"
            "$V" perplexity "$REF/wikillama-$t.gguf" -f "$TEXT" -t 2 -q --kld "$WORK/f32.logits" --json "$j" || status=1
            kld=$(json_num "$j" kld_mean)
            wk=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['kld_mean'])" "$REF/perplexity.json" "$t")
            kok=$(awk -v a="$kld" -v b="$wk" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b >= 1e-3) print (d <= 0.1 * b) ? "ok" : "NO"; else print (d <= 2e-5) ? "ok" : "NO" }')
        fi
        got=$(json_num "$j" ppl)
        rel=$(awk -v a="$got" -v b="$want" 'BEGIN { printf "%.2e", (a - b) / b }')
        ok=$(awk -v r="$rel" 'BEGIN { if (r < 0) r = -r; print (r <= 3e-4) ? "ok" : "NO" }')
        [ "$ok" = ok ] || status=1
        [ "$kok" = NO ] && status=1
        printf '%-16s %12.6f %12s %9s %4s | %10s %10s %4s | %8.0f\n' "$t" "$got" "$want" "$rel" "$ok" "$kld" "$wk" "$kok" "$(json_num "$j" tokens_per_s)"
    done
    # the lattice i-quant mixes (reference/lowbit, made with the wikillama imatrix; figures in
    # lowbit/perplexity.json, KLD against the same F32 logits)
    for t in ${IQ_TYPES:-iq3_xxs iq3_xs iq3_s iq3_m iq2_xxs iq2_xs iq2_s iq2_m iq1_s iq1_m}; do
        t="$t-imatrix"
        j="$WORK/full-$t.json"
        "$V" perplexity "$REF/lowbit/wikillama-$t.gguf" -f "$TEXT" -t 2 -q --kld "$WORK/f32.logits" --json "$j" || status=1
        want=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['ppl'])" "$REF/lowbit/perplexity.json" "$t")
        wk=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['kld_mean'])" "$REF/lowbit/perplexity.json" "$t")
        kld=$(json_num "$j" kld_mean)
        kok=$(awk -v a="$kld" -v b="$wk" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b >= 1e-3) print (d <= 0.1 * b) ? "ok" : "NO"; else print (d <= 2e-5) ? "ok" : "NO" }')
        got=$(json_num "$j" ppl)
        rel=$(awk -v a="$got" -v b="$want" 'BEGIN { printf "%.2e", (a - b) / b }')
        ok=$(awk -v r="$rel" 'BEGIN { if (r < 0) r = -r; print (r <= 3e-4) ? "ok" : "NO" }')
        [ "$ok" = ok ] || status=1
        [ "$kok" = NO ] && status=1
        printf '%-16s %12.6f %12s %9s %4s | %10s %10s %4s | %8.0f\n' "$t" "$got" "$want" "$rel" "$ok" "$kld" "$wk" "$kok" "$(json_num "$j" tokens_per_s)"
    done
    [ $status = 0 ] && echo "all within tolerance" || echo "SOME CHECKS FAILED"
fi
exit $status
