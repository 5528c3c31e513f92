#!/bin/sh
# nomoat-inspect on hostile input: every crafted tests/data/hostile/gguf-* file (one per rule of
# FORMATS.md §1.6, see MANIFEST-gguf.txt) and every file in ../shared/fixtures/hostile/ is refused
# with exit status 1, nothing on stdout and exactly one line on stderr,
# "nomoat-inspect: FILE: what is wrong (where)"; crafted files for the reason they were made for.
. "$(dirname "$0")/../lib.sh"
INSPECT="$BIN/nomoat-inspect"

refused() { # FILE [PHRASE]
    "$INSPECT" "$1" >"$SCRATCH/out" 2>"$SCRATCH/err"; rc=$?
    [ "$rc" -eq 1 ] || { echo "exit $rc"; cat "$SCRATCH/err"; return 1; }
    [ "$(wc -l <"$SCRATCH/err")" -eq 1 ] || { echo "not one line:"; cat "$SCRATCH/err"; return 1; }
    head -c "$(( ${#1} + 18 ))" "$SCRATCH/err" | grep -qF "nomoat-inspect: $1: " || { cat "$SCRATCH/err"; return 1; }
    [ ! -s "$SCRATCH/out" ] || { echo "output on stdout"; return 1; }
    [ -z "$2" ] || grep -qF -- "$2" "$SCRATCH/err" || { echo "wanted \"$2\":"; cat "$SCRATCH/err"; return 1; }
}

n=0
tab=$(printf '\t')
while IFS="$tab" read -r name phrase why; do
    check "refused $name ($why)" refused "$DATA/hostile/$name" "$phrase"
    n=$((n + 1))
done <"$DATA/hostile/MANIFEST-gguf.txt"
[ "$n" -ge 40 ] && pass "$n crafted GGUF files" || fail "only $n crafted GGUF files"

if need_fixtures "fixtures' hostile files"; then
    for f in "$FIXTURES"/hostile/*; do
        [ "$(basename "$f")" = MANIFEST.json ] && continue
        check "refused fixture $(basename "$f")" refused "$f"
    done
    [ ! -e /tmp/nomoat-pwned-inspect ] && pass "no pickle code ran" || fail "a pickle ran code"
fi
finish
