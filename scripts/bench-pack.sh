#!/bin/sh
# nomoat-pack benchmark: ratio and MB/s of pack and unpack (1 thread and all threads,
# --no-fsync, warm cache) for the reference GGUFs and a TinyLlama-shaped BF16 GGUF, next to
# plain `zstd -3` of the same file in the same run. "anon" is the peak anonymous memory (MB) of
# packing with all threads (scripts/peak-anon.sh).
#   usage: scripts/bench-pack.sh [FILE...]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
PACK="$ROOT/$BUILD/nomoat-pack"
FIX=${NOMOAT_FIXTURES:-$ROOT/../shared/fixtures}
WORK=${BENCH_DIR:-$ROOT/$BUILD/bench}
mkdir -p "$WORK"
[ -x "$PACK" ] || make -C "$ROOT" -s
THREADS=$(nproc)

files="$*"
if [ -z "$files" ]; then
    for t in bf16 f16 f32 q8_0 q4_k_m; do files="$files $FIX/reference/wikillama-$t.gguf"; done
    tiny="$WORK/tinyllama-bf16.gguf"
    if [ ! -f "$tiny" ] && [ -x "$ROOT/$BUILD/nomoat-convert" ] && [ -f "$ROOT/scripts/make-synthetic-llama.py" ]; then
        [ -d "$WORK/tinyllama-hf" ] || /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$WORK/tinyllama-hf" --dtype bf16 --shards 2 >/dev/null
        "$ROOT/$BUILD/nomoat-convert" -q --no-fsync --outtype bf16 "$WORK/tinyllama-hf" -o "$tiny" || true
    fi
    [ -f "$tiny" ] && files="$files $tiny" || echo "(TinyLlama-shaped BF16 GGUF unavailable: needs nomoat-convert and scripts/make-synthetic-llama.py)"
fi

now() { date +%s.%N; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%7.0f", (s > 0 ? b / s / 1e6 : 0) }'; }
peak() { # peak anonymous memory in MB (mapped file pages not counted)
    sh "$ROOT/scripts/peak-anon.sh" "$@" 2>&1 >/dev/null | sed -n 's/^peak-anon-mb //p' | tail -1
}

printf '%-26s %8s | %7s %7s | %7s %7s %7s %7s %6s | %7s %7s %7s\n' file MB ratio "x zstd" "pk1 MB/s" "pkN" "up1" "upN" "anon" "zstd" "z1 MB/s" "zdec"
for f in $files; do
    [ -f "$f" ] || { echo "missing $f"; continue; }
    cat "$f" >/dev/null
    size=$(stat -L -c %s "$f")
    out="$WORK/bench.nmz"
    # Outputs are removed before each timed run: replacing an existing multi-GB file makes the
    # kernel free its page cache inside the timed process (seconds of system time on a VM).
    rm -f "$out"; t0=$(now); "$PACK" -q --no-fsync -T1 "$f" -o "$out"; t1=$(now)
    rm -f "$out"; rss=$(peak "$PACK" -q --no-fsync -T"$THREADS" "$f" -o "$out")
    rm -f "$out"; t2=$(now); "$PACK" -q --no-fsync -T"$THREADS" "$f" -o "$out"; t3=$(now)
    packed=$(stat -c %s "$out")
    rm -f "$WORK/bench.out"; t4=$(now); "$PACK" -q --no-fsync -T1 -d "$out" -o "$WORK/bench.out"; t5=$(now)
    rm -f "$WORK/bench.out"; t6=$(now); "$PACK" -q --no-fsync -T"$THREADS" -d "$out" -o "$WORK/bench.out"; t7=$(now)
    cmp -s "$f" "$WORK/bench.out" || echo "ROUND TRIP MISMATCH for $f"
    rm -f "$WORK/bench.zst"; z0=$(now); zstd -q -3 <"$f" >"$WORK/bench.zst"; z1=$(now)  # stdin: zstd skips symlinks
    zsize=$(stat -c %s "$WORK/bench.zst")
    rm -f "$WORK/bench.zout"; z2=$(now); zstd -q -d "$WORK/bench.zst" -o "$WORK/bench.zout"; z3=$(now)
    printf '%-26s %8.1f | %7.3f %7.3f | %s %s %s %s %6s | %7.3f %s %s\n' "$(basename "$f")" \
        "$(awk -v s="$size" 'BEGIN{print s/1e6}')" \
        "$(awk -v a="$size" -v b="$packed" 'BEGIN{print a/b}')" \
        "$(awk -v a="$zsize" -v b="$packed" 'BEGIN{print a/b}')" \
        "$(rate "$size" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")" \
        "$(rate "$size" "$(awk -v a="$t2" -v b="$t3" 'BEGIN{print b-a}')")" \
        "$(rate "$size" "$(awk -v a="$t4" -v b="$t5" 'BEGIN{print b-a}')")" \
        "$(rate "$size" "$(awk -v a="$t6" -v b="$t7" 'BEGIN{print b-a}')")" "$rss" \
        "$(awk -v a="$size" -v b="$zsize" 'BEGIN{print a/b}')" \
        "$(rate "$size" "$(awk -v a="$z0" -v b="$z1" 'BEGIN{print b-a}')")" \
        "$(rate "$size" "$(awk -v a="$z2" -v b="$z3" 'BEGIN{print b-a}')")"
    rm -f "$out" "$WORK/bench.out" "$WORK/bench.zst" "$WORK/bench.zout"
done
echo "targets (wikillama-bf16, default level): ratio >= 1.43 and >= 1.11x zstd -3; unpack >= 1000 MB/s with 2 threads; pack >= 300 MB/s per thread"
