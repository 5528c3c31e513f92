#!/bin/sh
# nomoat-inspect on safetensors: every hostile st-* file (ours and the fixtures') is refused with
# exit 1 and exactly one stderr line; on wikillama/hf and hf-bf16-sharded the --json table
# (names, dtypes, shapes, bytes, offsets) equals an independent parse of the headers by Python,
# every --hash equals `xxhsum -H3` of the tensor's byte range, and --values equals numpy's reading.
. "$(dirname "$0")/../lib.sh"
INSPECT="$BIN/nomoat-inspect"
PY=/usr/bin/python3

if [ ! -x "$INSPECT" ]; then
    skip "nomoat-inspect not built (inspect/main.c missing)"
    finish
fi

refused() { # FILE: exit 1, one line on stderr prefixed with the tool name, nothing on stdout
    "$INSPECT" "$1" >"$SCRATCH/out" 2>"$SCRATCH/err"; rc=$?
    [ "$rc" -eq 1 ] || { echo "exit $rc"; return 1; }
    [ "$(wc -l <"$SCRATCH/err")" -eq 1 ] || { cat "$SCRATCH/err"; return 1; }
    grep -q '^nomoat-inspect: ' "$SCRATCH/err" || { cat "$SCRATCH/err"; return 1; }
    [ ! -s "$SCRATCH/out" ] || { echo "output on stdout"; return 1; }
}
n=0
for f in "$DATA"/hostile/st-*.safetensors; do
    check "refused $(basename "$f")" refused "$f"; n=$((n + 1))
done
[ "$n" -ge 40 ] && pass "at least 40 crafted hostile files" || fail "only $n crafted hostile files"

if need_fixtures "fixture safetensors"; then
    for f in "$FIXTURES"/hostile/st-*; do
        check "refused fixture $(basename "$f")" refused "$f"
    done
    ORACLE="$SCRATCH/oracle.py"
    cat >"$ORACLE" <<'PYEOF'
import json, os, struct, subprocess, sys, shutil
import numpy as np
folder, inspect_json = sys.argv[1], sys.argv[2]
got = json.load(open(inspect_json))
idx = os.path.join(folder, "model.safetensors.index.json")
files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
want = {}
for fn in files:
    path = os.path.join(folder, fn)
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        want[name] = dict(type=e["dtype"], shape=e["shape"], bytes=end - b, offset=8 + n + b, path=path)
tensors = {t["name"]: t for t in got["tensors"]}
assert got["format"] == "safetensors", got["format"]
assert set(tensors) == set(want), set(tensors) ^ set(want)
assert got["tensor_count"] == len(want)
have_xxhsum = shutil.which("xxhsum") is not None
hashed = 0
for name, w in want.items():
    t = tensors[name]
    for k in ("type", "shape", "bytes", "offset"):
        assert t[k] == w[k], (name, k, t[k], w[k])
    if have_xxhsum:
        with open(w["path"], "rb") as f:
            f.seek(w["offset"])
            data = f.read(w["bytes"])
        out = subprocess.run(["xxhsum", "-H3", "-"], input=data, capture_output=True, check=True).stdout.decode()
        assert out.split("=")[-1].strip() == t["xxh3"], (name, out, t["xxh3"])
        hashed += 1
print(f"{len(want)} tensors match; {hashed} hashes match xxhsum" if have_xxhsum else "NOXXHSUM")
PYEOF
    VALUES="$SCRATCH/values.py"
    cat >"$VALUES" <<'PYEOF'
import json, struct, sys
import numpy as np
path, name, count, inspect_json = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    e = json.loads(f.read(n))[name]
    f.seek(8 + n + e["data_offsets"][0])
    raw = f.read(e["data_offsets"][1] - e["data_offsets"][0])
if e["dtype"] == "F32":
    v = np.frombuffer(raw, "<f4")
else:  # BF16: the top half of an f32
    v = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
got = json.load(open(inspect_json))["tensors"][0]["values"]
assert len(got) == min(count, len(v)), len(got)
# cJSON prints doubles with 15-17 digits (its round-trip test has a tolerance): compare as float32
assert np.array_equal(np.array(got, dtype=np.float32), v[:count]), (v[:count], got)
print("values match")
PYEOF
    for layout in hf hf-bf16-sharded; do
        dir="$FIXTURES/wikillama/$layout"
        [ -d "$dir" ] || { skip "$dir missing"; continue; }
        check "$layout: inspect --json --hash" sh -c "'$INSPECT' --json --hash '$dir' > '$SCRATCH/$layout.json'"
        if $PY "$ORACLE" "$dir" "$SCRATCH/$layout.json" >"$SCRATCH/oracle.out" 2>&1; then
            if grep -q NOXXHSUM "$SCRATCH/oracle.out"; then
                pass "$layout: table matches Python's parse"; skip "$layout: hashes (xxhsum not installed)"
            else
                pass "$layout: $(cat "$SCRATCH/oracle.out")"
            fi
        else
            fail "$layout: inspect --json differs from Python's parse"; tail -5 "$SCRATCH/oracle.out"
        fi
        check "$layout: text table lists 39 tensors" sh -c "'$INSPECT' '$dir' | grep -c 'model\\.\\|lm_head' | grep -qx 39"
    done
    for spec in "hf/model.safetensors model.layers.1.mlp.up_proj.weight" \
                "hf-bf16-sharded/model-00001-of-00002.safetensors lm_head.weight"; do
        set -- $spec
        f="$FIXTURES/wikillama/$1"
        "$INSPECT" --json --tensor "$2" --values 100 "$f" >"$SCRATCH/v.json" 2>"$SCRATCH/v.err"
        check "$1 $2: --values 100 equal numpy's" $PY "$VALUES" "$f" "$2" 100 "$SCRATCH/v.json"
    done
    check_status "unknown --tensor refused" 1 "$INSPECT" --tensor no.such.tensor "$FIXTURES/wikillama/hf"
fi
finish
