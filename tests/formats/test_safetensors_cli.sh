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


# --values decodes every scalar dtype: anchor values from the format definitions
# (E4M3FN max 448 and subnormal 2^-9, E5M2 max 57344, E8M0 2^(b-127), F4 E2M1 ±6, ints at their limits)
$PY - "$SCRATCH/dtypes.safetensors" <<'PYEOF'
import json, struct, sys
cases = [  # name, dtype, raw bytes, expected values
    ("e4m3", "F8_E4M3", bytes([0x7E, 0x08, 0x01, 0x38, 0xB8, 0x00]), [448, 2**-6, 2**-9, 1, -1, 0]),
    ("e5m2", "F8_E5M2", bytes([0x7B, 0x3C, 0xBC, 0x01, 0x7C]), [57344, 1, -1, 2**-16, "inf"]),
    ("e8m0", "F8_E8M0", bytes([0x7F, 0x80, 0x00, 0xFF]), [1, 2, 2**-127, "nan"]),
    ("f4", "F4", bytes([0x21, 0xF7]), [0.5, 1, 6, -6]),
    ("i8", "I8", bytes([0x80, 0x7F]), [-128, 127]),
    ("u16", "U16", struct.pack("<2H", 65535, 1), [65535, 1]),
    ("i32", "I32", struct.pack("<2i", -2**31, 7), [-2**31, 7]),
    ("i64", "I64", struct.pack("<q", -1), [-1]),
    ("u64", "U64", struct.pack("<Q", 2**53), [2**53]),
    ("f64", "F64", struct.pack("<2d", 0.1, -2.5), [0.1, -2.5]),
    ("f16", "F16", struct.pack("<3H", 0x7BFF, 0x0001, 0xC000), [65504, 2**-24, -2]),
    ("bf16", "BF16", struct.pack("<2H", 0x3F80, 0xC2F7), [1, -123.5]),
    ("bool", "BOOL", bytes([1, 0]), [1, 0]),
]
hdr, data = {}, b""
for name, dt, raw, want in cases:
    n = len(want)
    hdr[name] = {"dtype": dt, "shape": [n], "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
h = json.dumps(hdr).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
json.dump({c[0]: c[3] for c in cases}, open(sys.argv[1] + ".want", "w"))
PYEOF
dtfile="$SCRATCH/dtypes.safetensors"
for name in $($PY -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))))" "$dtfile.want"); do
    "$INSPECT" --json --tensor "$name" --values 10 "$dtfile" >"$SCRATCH/dt.json" 2>&1
    check "--values of $name" $PY -c "
import json, sys
got = json.load(open(sys.argv[1]))['tensors'][0]['values']
want = json.load(open(sys.argv[2]))[sys.argv[3]]
assert got == want, (got, want)" "$SCRATCH/dt.json" "$dtfile.want" "$name"
done

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
