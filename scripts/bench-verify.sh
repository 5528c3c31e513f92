#!/bin/sh
# nomoat-verify benchmark and full-file compatibility check.
#   1. tokens/s on the synthetic TinyLlama-1.1B-shaped model, wikitext-2 test text, -c 512,
#      2 chunks, 2 threads, side by side with llama.cpp's llama-perplexity run in the same script
#      with the same flags, the two tools alternating (BENCH_REPS rounds, best of each; with more
#      than one round also each round's own ratio, their mean and range, since on a shared machine
#      the speed of both drifts by tens of percent from one minute to the next), and whether the
#      final perplexities print the same digits. Two comparisons:
#        avx2    nomoat-verify with NOMOAT_NO_AVX512=1 against $LLAMA_PERPLEXITY_AVX2, a
#                llama.cpp built for AVX2 only (-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON
#                -DGGML_F16C=ON), so the AVX2 figure can be taken on any x86-64 machine;
#        native  nomoat-verify as it is against $LLAMA_PERPLEXITY (default: llama-perplexity on
#                PATH), a llama.cpp built for this machine. (Where the CPU reports AMX but its
#                tile instructions fault, as on some virtual machines, -DGGML_NATIVE=ON builds
#                ggml's AMX kernels and llama-perplexity dies of SIGILL on quantized types: build
#                with -DGGML_NATIVE=OFF, the AVX2 flags above, -DGGML_AVX512=ON and its
#                _VBMI/_VNNI/_BF16 options, AMX off. A run that gives no perplexity is reported
#                with the last line of its log.)
#      Without the binaries the table says that no side-by-side figure was taken. llama's tokens/s
#      is tokens per pass / its "seconds per pass"; nomoat's is its own tokens_per_s (both time the
#      evaluation only). The load average is printed with the table: on a shared machine only the
#      ratio of interleaved runs means anything.
#      BENCH_TYPES (default "f16 q4_k_m q4_0"; f32 f16 bf16 or any llama-quantize type in lower
#      case, e.g. q8_0 q4_0 q4_k_m q5_k_m q6_k q3_k_m q2_k iq4_xs iq3_s iq2_xxs iq1_m tq2_0; the
#      i-quants are made with an importance matrix from the fixture's training text),
#      BENCH_ISA (default "avx2 native"), BENCH_REPS (default 1). Then the machine's AVX2 FMA rate
#      (scripts/fma-peak.c, best of three runs) and the float types' ceiling it sets: tokens/s no
#      float evaluation in this summation order can pass.
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
status=0

# tiny_model TYPE: the synthetic model in that type, made once (F16 converted from the HF folder,
# F32/BF16 converted too, the quantized types by nomoat-quantize from F16)
tiny_model() {
    hf="$WORK/tinyllama-hf"; f16="$WORK/tinyllama-f16.gguf"; out="$WORK/tinyllama-$1.gguf"
    # the same BF16 folder bench-convert.sh and bench-merge.sh make
    [ -f "$hf/model-00002-of-00002.safetensors" ] || /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$hf" --dtype bf16 --shards 2 --force >/dev/null
    [ -f "$f16" ] || "$BIN/nomoat-convert" -q --no-fsync --outtype f16 -o "$f16" "$hf"
    if [ ! -f "$out" ]; then
        case $1 in
            f32|bf16) "$BIN/nomoat-convert" -q --no-fsync --outtype "$1" -o "$out" "$hf" ;;
            iq*|q2_k_s)
                # the i-quants are published with an importance matrix (several need one): one
                # made by nomoat-verify imatrix over 4 contexts of the training text
                im="$WORK/tinyllama-imatrix.gguf"
                [ -f "$im" ] || "$V" imatrix "$f16" -f "$FIX/text/wikillama-train.txt" -c 512 --chunks 4 -q -o "$im" || return 1
                "$BIN/nomoat-quantize" -q --no-fsync --imatrix "$im" "$f16" "$out" "$(echo "$1" | tr a-z A-Z)" ;;
            *) "$BIN/nomoat-quantize" -q --no-fsync "$f16" "$out" "$(echo "$1" | tr a-z A-Z)" ;;
        esac
    fi
    echo "$out"
}

if [ $tiny = 1 ]; then
    echo "== 1. TinyLlama-shaped synthetic model, wikitext-2, -c 512 --chunks 2 -t 2, next to llama-perplexity"
    text="$FIX/text/wikitext2-test.txt"
    CTX=512; CHUNKS=2; THREADS=2
    TYPES=${BENCH_TYPES:-f16 q4_k_m q4_0}
    REPS=${BENCH_REPS:-1}
    native_bin=${LLAMA_PERPLEXITY:-$(command -v llama-perplexity 2>/dev/null)}
    avx2_bin=${LLAMA_PERPLEXITY_AVX2:-}
    # llama-perplexity evaluates min(chunks, n_batch / n_ctx) chunks per pass (n_batch 2048)
    per_pass=$(awk -v c=$CTX -v k=$CHUNKS 'BEGIN { s = int(2048 / c); if (s < 1) s = 1; if (k < s) s = k; print c * s }')
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    printf '%-6s %-7s %12s %12s %7s %10s  %s\n' isa type "llama tok/s" "nomoat tok/s" ratio "same PPL" "PPL (nomoat / llama)"
    for isa in ${BENCH_ISA:-avx2 native}; do
        case $isa in
            avx2) lbin=$avx2_bin; nenv="NOMOAT_NO_AVX512=1" ;;
            *) lbin=$native_bin; nenv= ;;
        esac
        [ -n "$lbin" ] && [ ! -x "$lbin" ] && { echo "($lbin is not executable: no side-by-side figure for $isa)"; lbin=; }
        for t in $TYPES; do
            m=$(tiny_model "$t") || { echo "$t: could not make the model"; status=1; continue; }
            best_l=0; best_n=0; lppl=-; nppl=-; ratios=
            r=0
            while [ $r -lt "$REPS" ]; do
                r=$((r + 1)); l_tps=0
                if [ -n "$lbin" ]; then
                    "$lbin" -m "$m" -f "$text" -c $CTX --chunks $CHUNKS -t $THREADS >"$WORK/llama-$isa-$t.log" 2>&1
                    s=$(sed -n 's/.*perplexity: \([0-9.]*\) seconds per pass.*/\1/p' "$WORK/llama-$isa-$t.log" | head -1)
                    lppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$WORK/llama-$isa-$t.log" | tail -1)
                    l_tps=$(awk -v t="$per_pass" -v s="${s:-0}" 'BEGIN { print (s > 0) ? t / s : 0 }')
                    best_l=$(awk -v b="$best_l" -v v="$l_tps" 'BEGIN { print (v > b) ? v : b }')
                fi
                env $nenv "$V" perplexity "$m" -f "$text" -c $CTX --chunks $CHUNKS -t $THREADS -q --json "$WORK/tiny-$isa-$t.json" >/dev/null 2>&1
                tps=$(json_num "$WORK/tiny-$isa-$t.json" tokens_per_s)
                nppl=$(awk -v p="$(json_num "$WORK/tiny-$isa-$t.json" ppl)" 'BEGIN { printf "%.4f", p }')
                best_n=$(awk -v b="$best_n" -v v="${tps:-0}" 'BEGIN { print (v > b) ? v : b }')
                # a round where either gave no figure has no ratio
                r_one=$(awk -v a="${tps:-0}" -v b="$l_tps" 'BEGIN { if (a > 0 && b > 0) print a / b }')
                [ -n "$r_one" ] && ratios="$ratios $r_one"
            done
            if [ -n "$lbin" ] && [ -n "$lppl" ]; then
                same=no; [ "$nppl" = "$lppl" ] && same=yes
                printf '%-6s %-7s %12.1f %12.1f %6.2fx %10s  %s / %s\n' "$isa" "$t" "$best_l" "$best_n" \
                    "$(awk -v a="$best_n" -v b="$best_l" 'BEGIN { print (b > 0) ? a / b : 0 }')" "$same" "$nppl" "$lppl"
                [ "$REPS" -gt 1 ] && echo "$ratios" | awk 'NF > 0 { m = 0; lo = 1e9; hi = 0; for (i = 1; i <= NF; i++) { m += $i; if ($i < lo) lo = $i; if ($i > hi) hi = $i }
                    printf "       each round'"'"'s own ratio (nomoat / llama, the same round): mean %.2fx, %.2f-%.2fx over %d rounds\n", m / NF, lo, hi, NF }'
            else
                printf '%-6s %-7s %12s %12.1f %7s %10s  %s\n' "$isa" "$t" - "$best_n" - - "$nppl"
                # given but no result: say why instead of a bare dash
                [ -n "$lbin" ] && echo "       ($lbin gave no perplexity for $t: \"$(grep -v '^[[:space:]]*$' "$WORK/llama-$isa-$t.log" | tail -1)\", see $WORK/llama-$isa-$t.log)"
            fi
        done
        [ -z "$lbin" ] && echo "($isa: no llama-perplexity given (LLAMA_PERPLEXITY_AVX2 for avx2, LLAMA_PERPLEXITY or PATH for native): no side-by-side figure was taken)"
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) (synthetic random weights: the perplexity is meaningless, only speed and sameness count)"
    # the float types' ceiling: every multiply-add of F32/F16/BF16 weights is an 8-lane float FMA
    # in both tools (the same summation order forbids anything else); TinyLlama's shapes do
    # 968,884,224 in the layers' matrices per token, 32,768,000 in the output head (32000 x 2048
    # for the scored half of each context only: both tools skip the rest, as llama-perplexity
    # asks) and 32 heads x 64 x 2 x (mean 256.5 keys) x 22 layers = 23,113,728 in the attention
    # at -c 512
    case " ${BENCH_ISA:-avx2 native} " in *" avx2 "*) ceiling=1 ;; *) ceiling=0 ;; esac
    if [ $ceiling = 1 ] && [ "$(uname -m)" = x86_64 ] && ${CC:-cc} -O2 -mavx2 -mfma -pthread -o "$WORK/fma-peak" "$ROOT/scripts/fma-peak.c" 2>/dev/null; then
        # the best of three runs: on a shared host one run can read a third below the others
        g=$(for i in 1 2 3; do "$WORK/fma-peak" $THREADS; done | sort -g | tail -1)
        awk -v g="$g" -v t=$THREADS 'BEGIN { per = 968884224 + 32768000 + 23113728
            printf "AVX2 FMA rate, %d threads (best of 3): %.1f G multiply-adds/s; at that rate a -c 512 pass does at most %.1f tok/s in F32/F16/BF16 on the avx2 rows\n", t, g, g * 1e9 / per }'
    fi

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
    # the low-bit mixes live in reference/lowbit (their own perplexity.json)
    for t in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k_s q4_k_m q4_k_m-imatrix q5_k_s q5_k_m q6_k \
             lowbit/q2_k lowbit/q2_k_s-imatrix lowbit/q3_k_s lowbit/q3_k_m lowbit/q3_k_m-imatrix lowbit/q3_k_l \
             lowbit/iq4_nl lowbit/iq4_xs lowbit/iq4_xs-imatrix; do
        R="$REF"
        case $t in lowbit/*) R="$REF/lowbit"; t=${t#lowbit/} ;; esac
        want=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['ppl'])" "$R/perplexity.json" "$t")
        if [ $t = f32 ]; then
            j="$WORK/full-f32.json"; kld=-; wk=-; kok=-
        else
            j="$WORK/full-$t.json"
            "$V" perplexity "$R/wikillama-$t.gguf" -f "$TEXT" -t 2 -q --kld "$WORK/f32.logits" --json "$j" || status=1
            kld=$(json_num "$j" kld_mean)
            wk=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['kld_mean'])" "$R/perplexity.json" "$t")
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
