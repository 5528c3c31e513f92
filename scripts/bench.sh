#!/bin/sh
# Runs every tool's benchmark and prints one table of their key results. Full outputs are kept
# in $BUILD/bench/logs/<name>.log. Benchmarks need the synthetic TinyLlama-shaped model (made on
# first use, ~2.2 GB per variant under $BUILD/bench) and ../shared/fixtures for the reference
# comparisons; run them on an otherwise idle machine, since they report wall-clock speed.
#   usage: scripts/bench.sh [NAME...]     (default: formats torch quants quantize convert pack verify)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
export BUILD
LOGS="$ROOT/$BUILD/bench/logs"
mkdir -p "$LOGS"
make -C "$ROOT" -s all >/dev/null || exit 1
names=${*:-formats torch quants quantize convert pack verify}

# Lines of each benchmark's output that carry its results (the rest is progress and notes).
key_lines() {
    case $1 in
    formats) grep -E 'GB/s' ;;
    torch) grep -E 'GB/s|%' ;;
    quants) grep -E '^ *(Q[0-9]|F16|BF16)' ;;
    quantize) grep -E '^(Q[0-9]|type )' ;;
    convert) grep -E 'flushed wall|CPU time|peak anonymous|^(ours|cp)' ;;
    pack) grep -E '^(file |[^ ]+\.gguf )|targets' ;;
    verify) grep -E '^(type |F16 |Q4_0 |q|f|bf)|tokenize|within tolerance|FAILED' ;;
    *) cat ;;
    esac
}

status=0
for name in $names; do
    script="$ROOT/scripts/bench-$name.sh"
    [ -f "$script" ] || { echo "no benchmark scripts/bench-$name.sh" >&2; status=1; continue; }
    echo "running bench-$name ..." >&2
    t0=$(date +%s)
    sh "$script" >"$LOGS/$name.log" 2>&1 || status=1
    echo "$(( $(date +%s) - t0 ))" >"$LOGS/$name.seconds"
done

printf '%-10s | %s\n' benchmark "results (full output: $BUILD/bench/logs/NAME.log)"
printf '%-10s-+-%s\n' ---------- ------------------------------------------------------------------------
for name in $names; do
    [ -f "$LOGS/$name.log" ] || continue
    key_lines "$name" <"$LOGS/$name.log" | sed "s/^/$(printf '%-10s | ' "$name")/"
    printf '%-10s | (%s s)\n' "$name" "$(cat "$LOGS/$name.seconds" 2>/dev/null)"
done
exit $status
