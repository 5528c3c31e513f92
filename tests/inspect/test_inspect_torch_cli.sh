#!/bin/sh
# nomoat-inspect on PyTorch checkpoints: every hostile pickle-/tensor-/storage-/zip-/legacy- file
# (the fixtures' and tests/data/torch/hostile's, including ones added later) exits 1 with one
# "nomoat-inspect: FILE: reason" line and nothing on stdout, under a 64 MiB data-segment limit
# (prlimit --data), and no /tmp/nomoat-pwned-* file appears; the wikillama torch layouts and the
# tests/data/torch variants list with --hash equal to XXH3-64 of the bytes torch loaded.
. "$(dirname "$0")/../lib.sh"
INSPECT="$BIN/nomoat-inspect"
PY=/usr/bin/python3

if [ ! -x "$INSPECT" ]; then
    skip "nomoat-inspect not built (inspect/main.c missing)"
    finish
fi
if "$INSPECT" "$DATA/torch/views/model.pt" 2>&1 | grep -q "cannot be listed by this build"; then
    skip "this nomoat-inspect does not call inspect_torch yet"
    finish
fi

pwned_before=$(ls /tmp/nomoat-pwned-* 2>/dev/null | wc -l)
# ASan reserves terabytes of shadow memory, so the data-segment cap only applies to normal builds
LIMIT="prlimit --data=67108864"
[ "${SAN:-0}" = 1 ] && LIMIT=""
refused() { # FILE
    $LIMIT "$INSPECT" "$1" >"$SCRATCH/out" 2>"$SCRATCH/err"; rc=$?
    [ "$rc" -eq 1 ] || { echo "exit $rc"; cat "$SCRATCH/err"; return 1; }
    [ "$(wc -l <"$SCRATCH/err")" -eq 1 ] || { cat "$SCRATCH/err"; return 1; }
    grep -q "^nomoat-inspect: .*: ." "$SCRATCH/err" || { cat "$SCRATCH/err"; return 1; }
    ! grep -q "out of memory" "$SCRATCH/err" || { cat "$SCRATCH/err"; return 1; }
    [ ! -s "$SCRATCH/out" ] || { echo "output on stdout"; return 1; }
}
n=0
dirs="$DATA/torch/hostile"
[ -d "$FIXTURES/hostile" ] && dirs="$dirs $FIXTURES/hostile"
for d in $dirs; do
    for f in "$d"/pickle-* "$d"/tensor-* "$d"/storage-* "$d"/zip-* "$d"/legacy-*; do
        [ -e "$f" ] || continue
        check "refused $(basename "$d")/$(basename "$f")" refused "$f"; n=$((n + 1))
    done
done
[ "$n" -ge 40 ] && pass "$n hostile torch files refused" || fail "only $n hostile torch files"
pwned_after=$(ls /tmp/nomoat-pwned-* 2>/dev/null | wc -l)
[ "$pwned_after" -eq "$pwned_before" ] && pass "no /tmp/nomoat-pwned-* appeared" || fail "a /tmp/nomoat-pwned-* file appeared"

# --hash of every variant equals XXH3-64 of what torch loaded (expected.bin slices)
hashes_match() { # VARIANT
    dir="$DATA/torch/$1"
    ckpt=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['path'])" "$dir/expected.json")
    key=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('state_key',''))" "$dir/expected.json")
    if [ -n "$key" ]; then
        "$INSPECT" --json --hash --state-key "$key" "$dir/$ckpt" >"$SCRATCH/got.json" || return 1
    else
        "$INSPECT" --json --hash "$dir/$ckpt" >"$SCRATCH/got.json" || return 1
    fi
    "$PY" - "$dir" "$SCRATCH/got.json" <<'PYEOF'
import json, subprocess, sys
d, got = sys.argv[1], json.load(open(sys.argv[2]))
want = json.load(open(d + "/expected.json"))["tensors"]
blob = open(d + "/expected.bin", "rb").read()
assert [t["name"] for t in got["tensors"]] == [w["name"] for w in want]
for g, w in zip(got["tensors"], want):
    assert g["type"] == w["dtype"] and g["shape"] == w["shape"] and g["bytes"] == w["bytes"], (g, w)
    assert g["contiguous"] == w["contiguous"], (g["name"], g["contiguous"])
    part = blob[w["offset"]:w["offset"] + w["bytes"]]
    h = subprocess.run(["xxhsum", "-H3", "-"], input=part, capture_output=True).stdout.split()[-1].decode()
    assert h.endswith(g["xxh3"]), (g["name"], h, g["xxh3"])
PYEOF
}
if command -v xxhsum >/dev/null 2>&1; then
    for v in proto4 views legacy zip64 bigendian nested-key sharded meta; do
        check "--hash of $v equals xxhsum of torch's values" hashes_match "$v"
    done
else
    skip "xxhsum not installed"
fi
if need_fixtures "wikillama torch layouts"; then
    for d in hf-pt hf-pt-legacy meta; do
        check "lists wikillama/$d" "$INSPECT" --hash "$FIXTURES/wikillama/$d"
    done
fi
finish
