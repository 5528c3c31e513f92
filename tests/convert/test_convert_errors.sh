#!/bin/sh
# nomoat-convert refusals: each bad input gives exit 1, exactly one error line naming the
# problem, no output file, and leaves the inputs byte-for-byte unchanged (checksums).
. tests/lib.sh
CONVERT="$BIN/nomoat-convert"
MODEL="$DATA/wikillama-bf16"
PY=/usr/bin/python3

sums() { [ -d "$1" ] || return 0; (cd "$1" && find . -type f | LC_ALL=C sort | xargs sha256sum); }
before=$(sums "$MODEL")

# fresh copy of the bundled model under $SCRATCH/NAME
copy() { rm -rf "$SCRATCH/$1"; mkdir -p "$SCRATCH/$1"; cp "$MODEL"/* "$SCRATCH/$1/"; }

# refuse NAME DIR NEEDLE [ARGS...]: exit 1, one stderr line containing NEEDLE, no new file
# anywhere in DIR or $SCRATCH/out, input files unchanged
refuse() {
    _name=$1; _dir=$2; _needle=$3; shift 3
    mkdir -p "$SCRATCH/out"; rm -f "$SCRATCH/out/x.gguf"
    _pre=$(sums "$_dir"); _preout=$(ls -A "$SCRATCH/out")
    "$CONVERT" "$_dir" "$@" >"$SCRATCH/.stdout" 2>"$SCRATCH/.stderr"; _rc=$?
    _lines=$(wc -l <"$SCRATCH/.stderr")
    if [ "$_rc" -ne 1 ]; then fail "$_name" "exit $_rc, expected 1"; sed 's/^/    | /' "$SCRATCH/.stderr"; return; fi
    if [ "$_lines" -ne 1 ]; then fail "$_name" "$_lines error lines, expected 1"; sed 's/^/    | /' "$SCRATCH/.stderr"; return; fi
    if ! grep -q -- "$_needle" "$SCRATCH/.stderr"; then fail "$_name" "message lacks '$_needle': $(cat "$SCRATCH/.stderr")"; return; fi
    if [ "$(sums "$_dir")" != "$_pre" ]; then fail "$_name" "model folder changed"; return; fi
    if [ "$(ls -A "$SCRATCH/out")" != "$_preout" ]; then fail "$_name" "output left behind"; return; fi
    pass "$_name"
    echo "    $(cat "$SCRATCH/.stderr")"
}

# ---- configuration ----
copy noconfig; rm "$SCRATCH/noconfig/config.json"
refuse "missing config.json" "$SCRATCH/noconfig" "config.json" -o "$SCRATCH/out/x.gguf"

copy corrupt; head -c 100 "$MODEL/config.json" >"$SCRATCH/corrupt/config.json"
refuse "truncated config.json" "$SCRATCH/corrupt" "invalid JSON" -o "$SCRATCH/out/x.gguf"

# rope_scaling: an unsupported kind is named with the supported ones; llama3's smoothing band must
# not be empty (the converter would divide by zero)
rope_cfg() { # DIR JSON-OF-rope_scaling
    $PY - "$MODEL/config.json" "$1/config.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["rope_scaling"] = json.loads(sys.argv[3]); json.dump(c, open(sys.argv[2], "w"))
PY
}
copy yarn; rope_cfg "$SCRATCH/yarn" '{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}'
refuse "rope_scaling yarn refused, supported kinds listed" "$SCRATCH/yarn" '"yarn" is not supported (supported: linear, llama3)' -o "$SCRATCH/out/x.gguf"
copy l3band; rope_cfg "$SCRATCH/l3band" '{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0}'
refuse "llama3 rope_scaling with an empty smoothing band" "$SCRATCH/l3band" "high_freq_factor (4) > low_freq_factor (4)" -o "$SCRATCH/out/x.gguf"
copy l3neg; rope_cfg "$SCRATCH/l3neg" '{"rope_type": "llama3", "factor": -8.0}'
refuse "llama3 rope_scaling with a negative factor" "$SCRATCH/l3neg" '"factor" must be a positive number' -o "$SCRATCH/out/x.gguf"

if need_fixtures "Meta layout with use_scaled_rope"; then
    rm -rf "$SCRATCH/meta31"; mkdir -p "$SCRATCH/meta31"; cp "$FIXTURES/wikillama/meta/"* "$SCRATCH/meta31/"
    $PY - "$SCRATCH/meta31/params.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["use_scaled_rope"] = True; json.dump(p, open(sys.argv[1], "w"))
PY
    refuse "Meta's Llama 3.1+ layout (use_scaled_rope) refused, HF release suggested" "$SCRATCH/meta31" "use_scaled_rope.*Hugging Face release" -o "$SCRATCH/out/x.gguf"
fi

copy gpt2; sed 's/LlamaForCausalLM/BloomForCausalLM/' "$MODEL/config.json" >"$SCRATCH/gpt2/config.json"
refuse "unsupported architecture named, supported ones listed" "$SCRATCH/gpt2" "BloomForCausalLM.*LlamaForCausalLM.*GPTNeoXForCausalLM.*GPT2LMHeadModel" -o "$SCRATCH/out/x.gguf"

copy bpe; rm "$SCRATCH/bpe/tokenizer.model"; echo '{"model": {"type": "BPE"}}' >"$SCRATCH/bpe/tokenizer.json"
refuse "tokenizer.json-only (BPE) refused" "$SCRATCH/bpe" "tokenizer.json" -o "$SCRATCH/out/x.gguf"

copy notok; rm "$SCRATCH/notok/tokenizer.model"
refuse "no tokenizer" "$SCRATCH/notok" "tokenizer.model" -o "$SCRATCH/out/x.gguf"

# ---- tensors vs configuration ----
copy layers; sed 's/"num_hidden_layers": 4/"num_hidden_layers": 5/' "$MODEL/config.json" >"$SCRATCH/layers/config.json"
refuse "missing tensor" "$SCRATCH/layers" "model.layers.4.*missing" -o "$SCRATCH/out/x.gguf"

copy shape; sed 's/"intermediate_size": 768/"intermediate_size": 769/' "$MODEL/config.json" >"$SCRATCH/shape/config.json"
refuse "wrong shape for the config" "$SCRATCH/shape" "has shape \[256, 768\] but the configuration implies \[256, 769\]" -o "$SCRATCH/out/x.gguf"

copy heads; sed 's/"num_key_value_heads": 4/"num_key_value_heads": 3/' "$MODEL/config.json" >"$SCRATCH/heads/config.json"
refuse "inconsistent head counts" "$SCRATCH/heads" "num_key_value_heads = 3" -o "$SCRATCH/out/x.gguf"

copy untied; rm "$SCRATCH/untied/model.safetensors.index.json"; rm "$SCRATCH/untied"/model-0000*.safetensors
refuse "no weights" "$SCRATCH/untied" "no weights found" -o "$SCRATCH/out/x.gguf"

copy trunc; head -c 3000000 "$MODEL/model-00002-of-00002.safetensors" >"$SCRATCH/trunc/model-00002-of-00002.safetensors"
refuse "truncated weights shard" "$SCRATCH/trunc" "model-00002-of-00002.safetensors" -o "$SCRATCH/out/x.gguf"

# Edits inside a safetensors shard (same sizes, header re-padded): a dtype that cannot be
# converted, and a NaN in a weight.
if [ -x "$PY" ]; then
    edit_shard() { # FILE TENSOR MODE(dtype|nan)
        "$PY" - "$@" <<'EOF'
import json, struct, sys
path, name, mode = sys.argv[1:4]
b = bytearray(open(path, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
if mode == 'dtype':
    h[name]['dtype'] = 'I16'
    text = json.dumps(h, separators=(',', ':')).encode()
    assert len(text) <= n
    b[8:8 + n] = text + b' ' * (n - len(text))
else:
    off = 8 + n + h[name]['data_offsets'][0] + 2 * 1000
    b[off:off + 2] = b'\xc0\x7f'  # BF16 quiet NaN at element 1000
open(path, 'wb').write(b)
EOF
    }
    copy dtype; edit_shard "$SCRATCH/dtype/model-00001-of-00002.safetensors" model.layers.0.mlp.up_proj.weight dtype
    refuse "dtype not convertible" "$SCRATCH/dtype" "model.layers.0.mlp.up_proj.weight has dtype I16" -o "$SCRATCH/out/x.gguf"
    copy nan; edit_shard "$SCRATCH/nan/model-00001-of-00002.safetensors" model.layers.1.self_attn.v_proj.weight nan
    refuse "NaN in a tensor" "$SCRATCH/nan" "model.layers.1.self_attn.v_proj.weight: NaN at element 1000" -o "$SCRATCH/out/x.gguf"
    # BF16 -> F16 takes another path (one pass that converts and looks for NaN together)
    refuse "NaN in a tensor, --outtype f16" "$SCRATCH/nan" "model.layers.1.self_attn.v_proj.weight: NaN at element 1000" \
        --outtype f16 -o "$SCRATCH/out/x.gguf"
else
    skip "dtype and NaN cases (no /usr/bin/python3 to edit a shard)"
fi

# ---- command line ----
refuse "unknown --outtype" "$MODEL" "q4_0" --outtype q4_0 -o "$SCRATCH/out/x.gguf"
refuse "bad --context-length" "$MODEL" "context-length" --context-length 0 -o "$SCRATCH/out/x.gguf"
refuse "model path is a file" "$MODEL/config.json" "not a folder" -o "$SCRATCH/out/x.gguf"
refuse "model folder missing" "$SCRATCH/nonexistent" "nonexistent" -o "$SCRATCH/out/x.gguf"

# ---- output side ----
echo "precious" >"$SCRATCH/out/exists.gguf"
refuse "existing output needs --force" "$MODEL" "already exists" -o "$SCRATCH/out/exists.gguf"
check "existing output untouched" grep -qx precious "$SCRATCH/out/exists.gguf"

refuse "output folder missing" "$MODEL" "nosuchdir" -o "$SCRATCH/nosuchdir/x.gguf"

# interrupted run (SIGINT after 5 of 39 tensors): killed by the signal, nothing left
mkdir -p "$SCRATCH/int"
NOMOAT_CONVERT_TEST_SIGNAL=5 "$CONVERT" -q "$MODEL" -o "$SCRATCH/int/x.gguf" >/dev/null 2>&1; rc=$?
if [ "$rc" -eq 130 ] && [ -z "$(ls -A "$SCRATCH/int")" ]; then pass "interrupted run leaves nothing (status 130)"
else fail "interrupted run leaves nothing" "exit $rc, left: $(ls -A "$SCRATCH/int")"; fi

# disk full and read-only model folder need a private mount namespace (root)
if unshare -m true 2>/dev/null; then
    mkdir -p "$SCRATCH/full"
    unshare -m sh -c "mount -t tmpfs -o size=3m none '$SCRATCH/full' && \
        '$CONVERT' -q '$MODEL' -o '$SCRATCH/full/x.gguf' 2>'$SCRATCH/full.err'; echo \$? >'$SCRATCH/full.rc'; \
        ls -A '$SCRATCH/full' >'$SCRATCH/full.ls'"
    if [ "$(cat "$SCRATCH/full.rc")" = 1 ] && [ ! -s "$SCRATCH/full.ls" ] && [ "$(wc -l <"$SCRATCH/full.err")" -eq 1 ] &&
        grep -qi "space\|full" "$SCRATCH/full.err"; then
        pass "disk full: one message, nothing left"; echo "    $(cat "$SCRATCH/full.err")"
    else
        fail "disk full" "rc $(cat "$SCRATCH/full.rc"), left '$(cat "$SCRATCH/full.ls")', $(cat "$SCRATCH/full.err")"
    fi
    copy ro
    unshare -m sh -c "mount --bind '$SCRATCH/ro' '$SCRATCH/ro' && mount -o remount,bind,ro '$SCRATCH/ro' && \
        '$CONVERT' -q '$SCRATCH/ro' 2>'$SCRATCH/ro.err'; echo \$? >'$SCRATCH/ro.rc'"
    if [ "$(cat "$SCRATCH/ro.rc")" = 1 ] && grep -q -- "-o" "$SCRATCH/ro.err" && [ "$(wc -l <"$SCRATCH/ro.err")" -eq 1 ]; then
        pass "read-only model folder: error suggests -o"; echo "    $(cat "$SCRATCH/ro.err")"
    else
        fail "read-only model folder" "rc $(cat "$SCRATCH/ro.rc"): $(cat "$SCRATCH/ro.err")"
    fi
else
    skip "disk-full and read-only-folder cases (no private mount namespace: not root?)"
fi

if [ "$(sums "$MODEL")" = "$before" ]; then pass "bundled model unchanged by all of the above"; else fail "bundled model changed"; fi
finish
