#!/bin/sh
# formats benchmark: GB/s of the f32<->f16 and f32<->bf16 row conversions (one thread, scalar
# reference vs SIMD; NOMOAT_NO_SIMD=1 shown forcing the scalar path), and of reading every
# tensor of a safetensors model and a GGUF through mmap, next to `cat FILE >/dev/null` of the
# same files in the same run (warm page cache for both: the files are read once first; caches
# are not dropped because the machine is shared). Peak RSS per step.
#   usage: scripts/bench-formats.sh [SAFETENSORS_FILE_OR_FOLDER [GGUF]]
# Default model: a TinyLlama-1.1B-shaped BF16 folder (2.2 GB) made by make-synthetic-llama.py
# in $BUILD/bench/tinyllama-hf (shared with bench-pack.sh), and its GGUF when bench-pack made one.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
WORK=${BENCH_DIR:-$ROOT/$BUILD/bench}
FIX=${NOMOAT_FIXTURES:-$ROOT/../shared/fixtures}
mkdir -p "$WORK"
make -C "$ROOT" -s BUILD="$BUILD" >/dev/null
BENCH="$WORK/bench_formats"
CC=${CC:-gcc}
# shellcheck disable=SC2046
$CC -O2 -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -ffp-contract=off -pthread -I"$ROOT" \
    $(pkg-config --cflags libcjson) "$ROOT/tests/bench/bench_formats.c" "$ROOT/$BUILD/libnomoat.a" \
    $(pkg-config --libs libzstd libcjson libxxhash) -lm -o "$BENCH"

ST=${1:-}
GG=${2:-}
if [ -z "$ST" ]; then
    ST="$WORK/tinyllama-hf"
    [ -d "$ST" ] || /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$ST" --dtype bf16 --shards 2
fi
if [ -z "$GG" ]; then
    GG="$WORK/tinyllama-bf16.gguf"
    [ -f "$GG" ] || GG="$FIX/reference/wikillama-f32.gguf"
fi

peak() { # runs a command, prints its output, then its peak RSS (GNU time) when available
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%M' -o "$WORK/.rss" "$@"
        awk '{ printf "  (peak RSS by /usr/bin/time: %.0f MB)\n", $1 / 1024 }' "$WORK/.rss"
    else
        "$@"
    fi
}
now() { date +%s.%N; }
cat_rate() { # bytes of FILES, seconds of `cat FILES >/dev/null` (second run: warm)
    bytes=$(cat "$@" | wc -c)
    cat "$@" >/dev/null
    t0=$(now); cat "$@" >/dev/null; t1=$(now)
    awk -v b="$bytes" -v a="$t0" -v c="$t1" 'BEGIN { printf "%-28s %8.2f GB/s %8.3f s %14.0f bytes\n", "cat FILE >/dev/null", b / (c - a) / 1e9, c - a, b }'
}

echo "== conversions: one thread, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
peak "$BENCH" conv 64
echo "== the same with NOMOAT_NO_SIMD=1 (dispatched rows must fall back to scalar)"
NOMOAT_NO_SIMD=1 "$BENCH" conv 64 | grep -E 'dispatched|^#'

files_of_st() { # the .safetensors files behind a file or folder
    if [ -d "$1" ]; then ls "$1"/*.safetensors; else echo "$1"; fi
}
echo "== safetensors: $ST"
# shellcheck disable=SC2046
cat_rate $(files_of_st "$ST")
peak "$BENCH" st "$ST"
if [ -f "$GG" ]; then
    echo "== gguf: $GG"
    cat_rate "$GG"
    peak "$BENCH" gguf "$GG"
else
    echo "== gguf: $GG missing (run scripts/bench-pack.sh to make the TinyLlama GGUF)"
fi
