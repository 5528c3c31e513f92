#!/bin/sh
# nomoat-inspect on GGUF: --json agrees with @huggingface/gguf (an independent JavaScript reader)
# on every metadata key, type and value and every tensor name, type, shape and offset, for every
# .gguf in ../shared/fixtures/reference/ (incl. quant-vectors/) and tests/data; --hash equals
# `xxhsum -H3` of the tensor's byte range; --values equals an independent Python/numpy decoding
# (F32, F16, BF16 and Q8_0); split models list as one; usage errors and bad names fail cleanly.
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/node-env.sh"
INSPECT="$BIN/nomoat-inspect"
PY=/usr/bin/python3
G="$DATA/gguf"

# --- agreement with @huggingface/gguf ---
files="$G/vectors-f32.gguf $G/vectors-q8_0.gguf $G/vectors-q4_k_s.gguf $ROOT/tests/fuzz/seeds/gguf/all-types.gguf $ROOT/tests/fuzz/seeds/gguf/v2.gguf $ROOT/tests/fuzz/seeds/gguf/align64.gguf"
if need_fixtures "reference GGUF files"; then
    files="$files $(ls "$FIXTURES"/reference/*.gguf "$FIXTURES"/reference/quant-vectors/*.gguf)"
fi
if node_setup @huggingface/gguf@0.4.6; then
    node "$ROOT/tests/inspect/compare-hf-gguf.mjs" "$INSPECT" $files >"$SCRATCH/hf.log" 2>&1
    rc=$?
    cat "$SCRATCH/hf.log"
    n=$(grep -c '^ok ' "$SCRATCH/hf.log")
    [ "$rc" -eq 0 ] && pass "--json equals @huggingface/gguf 0.4.6 on $n files" || fail "--json differs from @huggingface/gguf"
    [ -d "$FIXTURES" ] && { [ "$n" -ge 31 ] && pass "all reference files compared" || fail "only $n files compared"; }
else
    skip "@huggingface/gguf comparison (node/npm unavailable)"
fi

# --- hashes and values against independent readings of the bytes ---
ORACLE="$SCRATCH/oracle.py"
cat >"$ORACLE" <<'PYEOF'
import json, subprocess, sys
import numpy as np
path, tensor, inspect = sys.argv[1], sys.argv[2], sys.argv[3]
info = json.loads(subprocess.run([inspect, "--json", "--hash", "--tensor", tensor, "--values", "300", path],
                                 check=True, capture_output=True).stdout)
t = info["tensors"][0]
raw = open(path, "rb").read()[t["offset"]:t["offset"] + t["bytes"]]
assert len(raw) == t["bytes"]
# hash: xxhsum -H3 of the same bytes
h = subprocess.run(["xxhsum", "-H3", "-"], input=raw, check=True, capture_output=True).stdout.split()[-1].decode()
h = h.split("_")[-1]
assert h == t["xxh3"], (h, t["xxh3"])
if t["type"] == "F32":
    want = np.frombuffer(raw, "<f4")
elif t["type"] == "F16":
    want = np.frombuffer(raw, "<f2").astype(np.float32)
elif t["type"] == "BF16":
    want = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
elif t["type"] == "Q8_0":
    blocks = np.frombuffer(raw, np.dtype([("d", "<f2"), ("q", "i1", 32)]))
    want = (blocks["d"].astype(np.float32)[:, None] * blocks["q"].astype(np.float32)).reshape(-1)
else:
    raise SystemExit("no oracle for " + t["type"])
n = min(300, len(want))
got = np.array(t["values"], dtype=np.float32)
assert len(got) == n, (len(got), n)
assert np.array_equal(got, want[:n]), (got[:8], want[:8])
print("ok", path, tensor, t["type"], n, "values", h)
PYEOF
oracle() { $PY "$ORACLE" "$1" "$2" "$INSPECT"; }
check "values and hash: F32" oracle "$G/vectors-f32.gguf" vec.heavy_tailed.weight
check "values and hash: Q8_0" oracle "$G/vectors-q8_0.gguf" vec.outliers.weight
if need_fixtures "F16/BF16 value checks"; then
    check "values and hash: F16" oracle "$FIXTURES/reference/wikillama-f16.gguf" blk.0.attn_q.weight
    check "values and hash: BF16" oracle "$FIXTURES/reference/wikillama-bf16.gguf" token_embd.weight
    check "values and hash: F32 norm" oracle "$FIXTURES/reference/wikillama-f16.gguf" blk.1.ffn_norm.weight
fi

# Dequantized Q4_K values stay close to the F32 originals they were made from.
close() {
    "$INSPECT" --json --tensor vec.normal.weight --values 4096 "$G/vectors-f32.gguf" >"$SCRATCH/a.json" &&
    "$INSPECT" --json --tensor vec.normal.weight --values 4096 "$G/vectors-q4_k_s.gguf" >"$SCRATCH/b.json" &&
    $PY -c '
import json, sys, numpy as np
a = np.array(json.load(open(sys.argv[1]))["tensors"][0]["values"])
b = np.array(json.load(open(sys.argv[2]))["tensors"][0]["values"])
assert len(a) == len(b) == 4096
rms = np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(a ** 2))
print("relative rms error", rms)
assert 0 < rms < 0.15' "$SCRATCH/a.json" "$SCRATCH/b.json"
}
check "Q4_K values dequantize close to the F32 source" close

# --- text listing ---
"$INSPECT" "$G/vectors-q8_0.gguf" >"$SCRATCH/text" 2>&1
check "text: header line" grep -q 'GGUF v3, .*10 metadata entries, 12 tensors' "$SCRATCH/text"
check "text: metadata with type" grep -Eq '^  general.architecture +STRING +"llama"$' "$SCRATCH/text"
check "text: tensor row" grep -Eq '^vec.normal.weight +Q8_0 +\[256, 64\] +17408 +15296$' "$SCRATCH/text"
"$INSPECT" "$ROOT/tests/fuzz/seeds/gguf/all-types.gguf" >"$SCRATCH/types" 2>&1
check "text: arrays shown with their length" grep -Eq '^  strs +STRING\[3\] +\["a", "", "bc"\]$' "$SCRATCH/types"
check "text: 64-bit integers exact" grep -Eq '^  u64 +UINT64 +1099511627776$' "$SCRATCH/types"

# --- split model: listed as one ---
"$INSPECT" --json "$G/split-00001-of-00002.gguf" >"$SCRATCH/split.json" 2>&1
check "split: three tensors from two shards" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert [t["name"] for t in j["tensors"]] == ["a", "b", "q"], j["tensors"]
assert [t["shard"] for t in j["tensors"]] == [0, 0, 1]
assert len(j["files"]) == 2 and j["metadata"]["split.count"] == 2' "$SCRATCH/split.json"
check_status "split: a later shard alone is refused" 1 "$INSPECT" "$G/split-00002-of-00002.gguf"

# --- several files, errors, usage ---
"$INSPECT" --json "$G/vectors-f32.gguf" "$DATA/hostile/gguf-magic.gguf" "$G/vectors-q8_0.gguf" >"$SCRATCH/many.json" 2>"$SCRATCH/many.err"
rc=$?
[ "$rc" -eq 1 ] && pass "several files: exit 1 when one fails" || fail "several files: exit $rc"
check "several files: the others still listed as a JSON array" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert [x["format"] for x in j] == ["gguf", "gguf"]' "$SCRATCH/many.json"
check "several files: one error line" test "$(wc -l <"$SCRATCH/many.err")" -eq 1
check_status "--help" 0 "$INSPECT" --help
check_status "no file: usage error" 2 "$INSPECT"
check_status "--values without --tensor" 2 "$INSPECT" --values 3 "$G/vectors-f32.gguf"
check_status "--values not a number" 2 "$INSPECT" --tensor x --values 3x "$G/vectors-f32.gguf"
check_status "unknown tensor" 1 "$INSPECT" --tensor no.such.tensor "$G/vectors-f32.gguf"
check_status "missing file" 1 "$INSPECT" "$SCRATCH/does-not-exist.gguf"
finish
