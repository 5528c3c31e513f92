#!/bin/sh
# How much closer to the unquantized model `nomoat-quantize --optimize` gets, in the same types
# and file sizes: KL divergence against the F32 model's logits on the fixture model's held-out
# text (`nomoat-verify perplexity --kld`, -c 256), per file type, for
#   llama-q    llama-quantize's file (../shared/fixtures/reference/wikillama-<type>.gguf; = our default)
#   opt        nomoat-quantize --optimize (no importance data)
#   opt+rand   nomoat-quantize --optimize --calibration-random (no text either: the calibration
#              pass on 100 contexts of random tokens; its ratio is against llama-q, as opt's)
#   llama-q+im llama-quantize --imatrix reference/wikillama-imatrix.gguf (llama-imatrix on the
#              training text): the reference file where the fixtures have one, else
#              $LLAMA_QUANTIZE if built, else nomoat-quantize --imatrix (byte-identical to it)
#   opt+cal    nomoat-quantize --optimize --calibration text/wikillama-train.txt (the training
#              text, never the held-out one; 100 contexts of 256, as the reference imatrix)
# with the ratios against the goals (opt <= 0.9 x llama-q, opt+cal <= 0.8 x llama-q+im) and the
# wall time of each --optimize run (THREADS threads). Then (SPLIT=0: not) the KLD of llama-q+im and
# opt+cal dequantized to F32 (`nomoat-quantize --allow-requantize FILE OUT F32`): the weights'
# share alone, without the activations' quantization that the quantized files' products take.
# Then the cost on a TinyLlama-shaped model (random weights, F16, 1.1 G weights; the file
# bench-quantize.sh uses, $BENCH_DIR/tinyllama-f16.gguf, made here when missing): wall and CPU
# seconds and peak RSS of `nomoat-quantize --optimize` for each of COST_TYPES against the
# 10-minute limit (THREADS threads), beside the default quantization's time; then the same for
# --optimize --calibration on CAL_CHUNKS contexts of the training text. The header says which
# of nomoat's kernels ran: the machine's best; NOMOAT_NO_AVX512=1 measures the AVX2 ones on an
# AVX-512 machine.
#
#   sh scripts/bench-optimize.sh [TYPES...]   (default: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q3_K_M Q4_K_M Q5_K_M Q6_K IQ4_XS)
#   THREADS=2 BUILD=build CHUNKS=0 (all held-out contexts) LLAMA_QUANTIZE=path
#   COST_TYPES="Q4_0 Q4_K_M" (empty: no cost section)  COST_ONLY=1 (only it)  BENCH_DIR=$BUILD/bench
#   COST_CAL_TYPES="Q4_K_M" (empty: none)  CAL_CHUNKS=4: the cost of --optimize --calibration there
#   SPLIT=1 (0: no table of the weights' share)
set -e
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
CHUNKS=${CHUNKS:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
FX=${NOMOAT_FIXTURES:-$ROOT/../shared/fixtures}
LLAMA_QUANTIZE=${LLAMA_QUANTIZE:-/work/ref/llamacpp/build-avx2/bin/llama-quantize}
Q="$ROOT/$BUILD/nomoat-quantize"
V="$ROOT/$BUILD/nomoat-verify"
[ -x "$Q" ] && [ -x "$V" ] || make -s BUILD="$BUILD" >/dev/null
TYPES=${*:-Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q3_K_M Q4_K_M Q5_K_M Q6_K IQ4_XS}
F32="$FX/reference/wikillama-f32.gguf"
HELD="$FX/text/wikillama-heldout.txt"
TRAIN="$FX/text/wikillama-train.txt"
IMATRIX="$FX/reference/wikillama-imatrix.gguf"
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-optimize.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM

if [ -z "$COST_ONLY" ]; then
chunks_arg=""
[ "$CHUNKS" -gt 0 ] && chunks_arg="--chunks $CHUNKS"
# shellcheck disable=SC2086
"$V" perplexity "$F32" -f "$HELD" -c 256 -t "$THREADS" -q $chunks_arg --save-logits "$W/f32" >/dev/null
kld() {
    # shellcheck disable=SC2086
    "$V" perplexity "$1" -f "$HELD" -c 256 -t "$THREADS" -q $chunks_arg --kld "$W/f32" --json "$W/k.json" >/dev/null
    sed -n 's/^[[:space:]]*"kld_mean":[[:space:]]*\([0-9.eE+-]*\),*$/\1/p' "$W/k.json"
}
now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

printf '%-7s %10s %10s %6s %10s %6s   %10s %10s %6s   %7s %7s %7s  %s\n' type llama-q opt ratio opt+rand ratio \
    llama-q+im opt+cal ratio "opt s" "rand s" "cal s" "llama-q+im from"
for T in $TYPES; do
    t=$(echo "$T" | tr 'A-Z' 'a-z')
    ref="$FX/reference/wikillama-$t.gguf"
    [ -f "$ref" ] || ref="$FX/reference/lowbit/wikillama-$t.gguf"
    if [ -f "$FX/reference/wikillama-$t-imatrix.gguf" ]; then
        im="$FX/reference/wikillama-$t-imatrix.gguf"; im_from="fixture"
    elif [ -f "$FX/reference/lowbit/wikillama-$t-imatrix.gguf" ]; then
        im="$FX/reference/lowbit/wikillama-$t-imatrix.gguf"; im_from="fixture"
    elif [ -x "$LLAMA_QUANTIZE" ]; then
        im="$W/im-$t.gguf"; im_from="llama-quantize"
        "$LLAMA_QUANTIZE" --imatrix "$IMATRIX" "$F32" "$im" "$T" "$THREADS" >"$W/lq.log" 2>&1
    else
        im="$W/im-$t.gguf"; im_from="nomoat-quantize --imatrix"
        "$Q" -q --no-fsync --imatrix "$IMATRIX" "$F32" "$im" "$T" "$THREADS"
    fi
    s0=$(now)
    "$Q" -q --no-fsync --optimize "$F32" "$W/opt-$t.gguf" "$T" "$THREADS"
    s1=$(now)
    "$Q" -q --no-fsync --optimize --calibration "$TRAIN" "$F32" "$W/cal-$t.gguf" "$T" "$THREADS"
    s2=$(now)
    "$Q" -q --no-fsync --optimize --calibration-random "$F32" "$W/rand-$t.gguf" "$T" "$THREADS"
    s3=$(now)
    k_ref=$(kld "$ref"); k_opt=$(kld "$W/opt-$t.gguf"); k_im=$(kld "$im"); k_cal=$(kld "$W/cal-$t.gguf")
    k_rand=$(kld "$W/rand-$t.gguf")
    printf '%-7s %10.6f %10.6f %6s %10.6f %6s   %10.6f %10.6f %6s   %7.1f %7.1f %7.1f  %s\n' "$T" "$k_ref" "$k_opt" \
        "$(ratio "$k_opt" "$k_ref")" "$k_rand" "$(ratio "$k_rand" "$k_ref")" "$k_im" "$k_cal" "$(ratio "$k_cal" "$k_im")" \
        "$(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')" "$(awk -v a="$s2" -v b="$s3" 'BEGIN { print b - a }')" \
        "$(awk -v a="$s1" -v b="$s2" 'BEGIN { print b - a }')" "$im_from"
    if [ "${SPLIT:-1}" != 0 ]; then # the weights' share: the same two files dequantized to F32
        "$Q" -q --no-fsync --force --allow-requantize "$im" "$W/imw-$t.gguf" F32 "$THREADS"
        "$Q" -q --no-fsync --force --allow-requantize "$W/cal-$t.gguf" "$W/calw-$t.gguf" F32 "$THREADS"
        k_imw=$(kld "$W/imw-$t.gguf"); k_calw=$(kld "$W/calw-$t.gguf")
        printf '%-7s %10.6f %10.6f %6s   %10.6f %10.6f %6s   %10.6f\n' "$T" "$k_im" "$k_cal" "$(ratio "$k_cal" "$k_im")" \
            "$k_imw" "$k_calw" "$(ratio "$k_calw" "$k_imw")" "$(awk -v a="$k_im" -v b="$k_imw" 'BEGIN { printf "%.6f", a - b }')" \
            >>"$W/split"
    fi
    rm -f "$W"/*-"$t".gguf
done
echo "goals: opt ratio <= 0.9 (KLD of --optimize / llama-quantize), opt+cal ratio <= 0.8 (/ llama-quantize --imatrix);"
echo "opt+rand: --optimize with no data at all (random tokens), against the same 0.9"
if [ -s "$W/split" ]; then
    echo
    echo "where the calibrated KLD comes from: each file as it is (its matrix products take quantized"
    echo "activations: Q8_0, Q8_1 or Q8_K blocks, as ggml pairs them with the weight type) and the same file"
    echo "dequantized to F32 (weights only: F32 products); their difference is the activations' share"
    printf '%-7s %10s %10s %6s   %10s %10s %6s   %10s\n' type llama-q+im opt+cal ratio "llama-q+im" "opt+cal" ratio \
        "acts share"
    printf '%-7s %10s %10s %6s   %10s %10s %6s   %10s\n' "" "" "" "" "weights" "weights" "" "(llama)"
    cat "$W/split"
fi
fi

[ -n "${COST_TYPES-Q4_0 Q4_K_M}" ] || [ -n "${COST_CAL_TYPES-Q4_K_M}" ] || exit 0
DIR=${BENCH_DIR:-$ROOT/$BUILD/bench}
TL="$DIR/tinyllama-f16.gguf"
mkdir -p "$DIR"
if [ ! -s "$TL" ]; then
    echo "generating $TL (TinyLlama-1.1B shapes, F16, random) ..."
    /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$W/tinyllama-hf" --dtype f16 --force >/dev/null
    [ -x "$ROOT/$BUILD/nomoat-convert" ] || make -s BUILD="$BUILD" >/dev/null
    "$ROOT/$BUILD/nomoat-convert" -q --outtype f16 "$W/tinyllama-hf" -o "$TL"
    rm -rf "$W/tinyllama-hf"
fi
echo
# which of nomoat's kernels the cost runs use: the searches' levels ask for the flags below
# (qo_levels_avx2 and qo_levels_avx512 in quantize/optimize_levels_avx*.c), after the
# variables common/cpu.c reads
set_on() { [ -n "$1" ] && [ "$1" != 0 ]; }
has_flags() { for f in "$@"; do grep -qw "$f" /proc/cpuinfo 2>/dev/null || return 1; done; }
if set_on "${NOMOAT_NO_SIMD-}"; then isa="portable kernels (NOMOAT_NO_SIMD)"
elif ! has_flags avx2 fma; then isa="portable kernels"
elif set_on "${NOMOAT_NO_AVX512-}" || ! has_flags avx512f avx512bw avx512vl avx512dq avx512_vnni; then isa="AVX2 kernels"
else isa="AVX-512 kernels (NOMOAT_NO_AVX512=1: the AVX2 ones)"; fi
echo "cost on $(basename "$TL") ($THREADS threads, $isa; limit 600 s wall):"
[ -z "${COST_TYPES-Q4_0 Q4_K_M}" ] ||
    printf '%-7s %12s %10s %10s %10s %12s\n' type "default s" "opt wall s" "opt CPU s" "peak RSS" "within 600 s"
for T in ${COST_TYPES-Q4_0 Q4_K_M}; do
    /usr/bin/time -f "%e %U %S %M" -o "$W/t-default" "$Q" -q --no-fsync "$TL" "$W/cost.gguf" "$T" "$THREADS"
    rm -f "$W/cost.gguf"
    /usr/bin/time -f "%e %U %S %M" -o "$W/t-opt" "$Q" -q --no-fsync --optimize "$TL" "$W/cost.gguf" "$T" "$THREADS"
    rm -f "$W/cost.gguf"
    read -r dw _ _ _ <"$W/t-default"
    read -r ow ou os orss <"$W/t-opt"
    awk -v t="$T" -v dw="$dw" -v ow="$ow" -v ou="$ou" -v os="$os" -v rss="$orss" 'BEGIN {
        printf "%-7s %12.1f %10.1f %10.1f %7.0f MB %12s\n", t, dw, ow, ou + os, rss / 1024, ow <= 600 ? "yes" : "NO" }'
done
# --calibration on the same model: the streamed pass (one layer at a time over CAL_CHUNKS contexts
# of 512 tokens of the training text), the second moments, their factors and the error feedback
CAL_CHUNKS=${CAL_CHUNKS:-4}
[ -n "${COST_CAL_TYPES-Q4_K_M}" ] || exit 0
echo
echo "cost of --optimize --calibration ($CAL_CHUNKS contexts of 512 tokens; $THREADS threads, $isa):"
printf '%-7s %10s %10s %10s %12s\n' type "wall s" "CPU s" "peak RSS" "within 600 s"
for T in ${COST_CAL_TYPES-Q4_K_M}; do
    /usr/bin/time -f "%e %U %S %M" -o "$W/t-cal" "$Q" -q --no-fsync --optimize --calibration "$TRAIN" \
        --calibration-chunks "$CAL_CHUNKS" "$TL" "$W/cost.gguf" "$T" "$THREADS"
    rm -f "$W/cost.gguf"
    read -r cw cu cs crss <"$W/t-cal"
    awk -v t="$T" -v w="$cw" -v u="$cu" -v s="$cs" -v rss="$crss" 'BEGIN {
        printf "%-7s %10.1f %10.1f %7.0f MB %12s\n", t, w, u + s, rss / 1024, w <= 600 ? "yes" : "NO" }'
done
