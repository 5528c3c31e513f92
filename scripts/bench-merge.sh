#!/bin/sh
# nomoat-merge benchmark: a TinyLlama-1.1B-shaped F16 GGUF (22 layers, 2048 dim, 5632 FFN, 32/4
# heads, 32000 vocab; made once from scripts/make-synthetic-llama.py's BF16 folder and cached in
# build/bench/) plus a rank-16 adapter on all seven projections (scripts/make-synthetic-lora.py,
# converted once with nomoat-convert), merged to F16 (llama-export-lora's output, byte for byte),
# next to, in the same run:
#   cp              a plain copy of the base GGUF (the I/O floor: the same bytes in and out)
#   export-lora     llama.cpp's llama-export-lora with all cores (its AVX2 build)
#   ours-6          nomoat-merge on a 6-layer variant of the same model: peak memory should not
#                   follow the model size
# Outputs unflushed (no fsync) for all, input warm in the page cache; ROUNDS rounds (default 3)
# interleaved, best wall time of each with that run's CPU time and peak memory (peak RSS from GNU
# time; for ours also the peak anonymous memory it samples itself, mapped input pages excluded),
# and the median wall time. Target (issue #15): ours within the plain copy's wall time (ratio near
# 1), peak memory the same for 22 and 6 layers. The load average is printed before and after: on a
# shared machine wall times follow the share of the CPU we get (CPU seconds are steadier then).
#   usage: scripts/bench-merge.sh [ROUNDS]    (LLAMA_EXPORT_LORA=path overrides llama-export-lora's)
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
B="$ROOT/$BUILD"
WORK=${BENCH_DIR:-$B/bench}
ROUNDS=${1:-3}
EXPORT=${LLAMA_EXPORT_LORA:-/work/ref/llamacpp/build-avx2/bin/llama-export-lora}
mkdir -p "$WORK"
[ -x "$B/nomoat-merge" ] || make -C "$ROOT" -s
prepare() { # LAYERS SUFFIX
    hf="$WORK/tinyllama-hf$2"; base="$WORK/tinyllama$2-f16.gguf"; lora="$WORK/tinyllama$2-lora-r16"
    if [ ! -f "$hf/config.json" ]; then
        echo "generating $hf (once) ..."
        /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$hf" --dtype bf16 --shards 2 --layers "$1" --force
    fi
    [ -f "$base" ] || "$B/nomoat-convert" -q --outtype f16 "$hf" -o "$base"
    if [ ! -f "$lora.gguf" ]; then
        /usr/bin/python3 "$ROOT/scripts/make-synthetic-lora.py" "$lora" --rank 16 --layers "$1"
        "$B/nomoat-convert" -q "$lora" --base "$hf" -o "$lora.gguf"
    fi
}
prepare 22 ""
prepare 6 "-6l"
BASE="$WORK/tinyllama-f16.gguf"; LORA="$WORK/tinyllama-lora-r16.gguf"
OUT="$WORK/merge-out"; rm -rf "$OUT"; mkdir -p "$OUT"
BYTES=$(wc -c <"$BASE")
cat "$BASE" "$LORA" >/dev/null

run() { # NAME CMD...: "name wall user sys maxrss_kb peak_anon_mb" into $WORK/.runs (GNU time; our
         # peak anonymous memory from nomoat-merge's own --json, sampled in the process)
    _n=$1; shift
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/.time" "$@" >"$WORK/.stdout" 2>"$WORK/.stderr" || {
        echo "$_n failed:"; tail -5 "$WORK/.stderr"; exit 1; }
    anon=$(sed -n 's/.*"peak_anon_bytes":\([0-9]*\).*/\1/p' "$WORK/.stdout")
    echo "$_n $(cat "$WORK/.time") $(awk -v a="${anon:-0}" 'BEGIN { printf "%.0f", a / 1e6 }')" >>"$WORK/.runs"
}
: >"$WORK/.runs"
have_export=0; [ -x "$EXPORT" ] && have_export=1
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
    run ours "$B/nomoat-merge" "$BASE" --lora "$LORA" -o "$OUT/ours.gguf" --no-fsync --force --json
    run cp cp "$BASE" "$OUT/copy.gguf"
    rm -f "$OUT/copy.gguf"
    if [ $have_export = 1 ]; then
        run export-lora "$EXPORT" -m "$BASE" --lora "$LORA" -o "$OUT/theirs.gguf" -t "$(nproc)"
        if [ "$r" = 1 ]; then
            if cmp -s "$OUT/ours.gguf" "$OUT/theirs.gguf"; then same="identical"; else same="DIFFERENT"; fi
        fi
        rm -f "$OUT/theirs.gguf"
    fi
    run ours-6 "$B/nomoat-merge" "$WORK/tinyllama-6l-f16.gguf" --lora "$WORK/tinyllama-6l-lora-r16.gguf" -o "$OUT/six.gguf" --no-fsync --force --json
    rm -f "$OUT/ours.gguf" "$OUT/six.gguf"
done


load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "TinyLlama-shaped F16 + rank-16 adapter (7 projections x 22 layers) -> F16, $(awk -v b="$BYTES" 'BEGIN{printf "%.2f", b/1e9}') GB, $ROUNDS rounds, $(nproc) cores"
echo "load average before: $load_before, after: $load_after"
printf '%-12s %8s %8s %7s %8s %10s %12s\n' run "wall s" "median s" "GB/s" "CPU s" "peak RSS" "peak anon"
best() { awk -v n="$1" '$1 == n { if (!seen || $2 < w) { w = $2; c = $3 + $4; m = $5; a = $6; seen = 1 } } END { print w, c, m, a }' "$WORK/.runs"; }
median() { awk -v n="$1" '$1 == n { print $2 }' "$WORK/.runs" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for n in ours cp export-lora ours-6; do
    grep -q "^$n " "$WORK/.runs" || continue
    set -- $(best "$n")
    med=$(median "$n")
    case $n in ours*) anon="$4 MB" ;; *) anon="-" ;; esac
    printf '%-12s %8.2f %8.2f %7.2f %8.2f %7.0f MB %12s\n' "$n" "$1" "$med" "$(awk -v b="$BYTES" -v w="$1" 'BEGIN { printf "%.2f", b / w / 1e9 }')" "$2" "$(awk -v k="$3" 'BEGIN { print k / 1024 }')" "$anon"
    eval "w_$(echo "$n" | tr - _)=$1 m_$(echo "$n" | tr - _)=$med"
done
echo
echo "merge to F16 / plain copy (the I/O floor): $(awk -v a="$w_ours" -v b="$w_cp" 'BEGIN { printf "%.2f", a / b }') best wall, $(awk -v a="$m_ours" -v b="$m_cp" 'BEGIN { printf "%.2f", a / b }') median wall"
if [ $have_export = 1 ]; then
    echo "merge to F16 / llama-export-lora: $(awk -v a="$w_ours" -v b="$w_export_lora" 'BEGIN { printf "%.2f", a / b }') best wall (outputs $same)"
else
    echo "llama-export-lora: no binary at $EXPORT (set LLAMA_EXPORT_LORA)"
fi
echo "peak RSS, 22 layers vs 6 layers: $(best ours | awk '{ printf "%.0f", $3 / 1024 }') MB vs $(best ours-6 | awk '{ printf "%.0f", $3 / 1024 }') MB; peak anonymous memory: $(best ours | cut -d' ' -f4) MB vs $(best ours-6 | cut -d' ' -f4) MB"
