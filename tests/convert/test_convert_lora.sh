#!/bin/sh
# nomoat-convert on PEFT LoRA adapters: byte-identical to llama.cpp's convert_lora_to_gguf.py
# (the fixture adapter at f32/f16/q8_0 with an HF or GGUF base; a BF16 .bin rsLoRA adapter and an
# embedding/LM-head adapter with rank/alpha patterns against llama.cpp's output for their
# equivalents, tests/data/lora/README.md), and every refusal as one message with no output.
. tests/lib.sh
CONVERT="$BIN/nomoat-convert"
PY=/usr/bin/python3
L="$DATA/lora"
HF="$DATA/wikillama-bf16"   # same configuration as the fixture's hf/ (BF16 weights, unused here)

same() { # NAME A B: byte-identical files
    if cmp -s "$2" "$3"; then pass "$1"; else fail "$1" "$2 and $3 differ"; fi
}

# ---- byte identity with llama.cpp's converter ----
if need_fixtures "convert_lora_to_gguf.py references"; then
    REF="$FIXTURES/reference/lora"
    for t in f32 f16 q8_0; do
        "$CONVERT" "$FIXTURES/lora/wikillama-license" --base "$FIXTURES/wikillama/hf" --outtype $t -q -o "$SCRATCH/a-$t.gguf"
        same "fixture adapter --outtype $t: convert_lora_to_gguf.py's bytes" "$SCRATCH/a-$t.gguf" "$REF/wikillama-license-lora-$t.gguf"
    done
    "$CONVERT" "$FIXTURES/lora/wikillama-license" --base "$FIXTURES/reference/wikillama-f16.gguf" -q -o "$SCRATCH/g.gguf"
    same "base given as a GGUF: the same bytes (default --outtype f32, as llama.cpp's)" "$SCRATCH/g.gguf" "$REF/wikillama-license-lora-f32.gguf"
fi
for a in r16-rslora-bin r4-embed-head; do
    "$CONVERT" "$L/$a" --base "$HF" --outtype f16 -q -o "$SCRATCH/$a.gguf"
    same "$a: llama.cpp's bytes for the equivalent adapter" "$SCRATCH/$a.gguf" "$L/llamacpp/$a-f16.gguf"
done
"$CONVERT" "$L/r16-rslora-bin" --base "$HF" --outtype f16 -o "$SCRATCH/rs.gguf" --force 2>"$SCRATCH/err" >/dev/null
check "rsLoRA: the alpha it writes is explained" grep -q 'lora_alpha \* sqrt(r) = 32' "$SCRATCH/err"
"$CONVERT" "$L/r4-embed-head" --base "$HF" --dry-run >"$SCRATCH/plan"
check "dry run: embedding lora_a transposed" grep -q 'token_embd.weight.lora_a.*{4, 4096}.*transposed' "$SCRATCH/plan"
check "dry run: down_proj's alpha_pattern folded into lora_b" grep -q 'blk.0.ffn_down.weight.lora_b.*scaling folded in' "$SCRATCH/plan"
check "dry run: lm_head's rank from rank_pattern" grep -q 'output.weight.lora_a .*{256, 8}' "$SCRATCH/plan"
check "dry run writes nothing" sh -c "! ls '$L/r4-embed-head' | grep -q gguf"
cp -r "$L/wikillama-license" "$SCRATCH/my-adapter"
"$CONVERT" "$SCRATCH/my-adapter" --base "$HF" -q
check "default output name as llama.cpp's (<Name>-<TYPE>-LoRA.gguf in the adapter folder)" test -f "$SCRATCH/my-adapter/My-Adapter-F32-LoRA.gguf"
"$CONVERT" "$SCRATCH/my-adapter" --base "$HF" --json -o "$SCRATCH/j.gguf" >"$SCRATCH/json"
check "--json summary" grep -q '"modules":28,"rank":8' "$SCRATCH/json"

# ---- nomoat-inspect summarises adapters ----
"$BIN/nomoat-inspect" "$SCRATCH/r4-embed-head.gguf" >"$SCRATCH/insp"
check "inspect: GGUF adapter summary (alpha, pairs)" grep -q '^adapter: LoRA for llama, alpha 8, 10 pairs' "$SCRATCH/insp"
check "inspect: targets and ranks" grep -q 'targets: 10 matrices: output token_embd ffn_down ffn_up (layers 0-3); ranks 4 to 8' "$SCRATCH/insp"
"$BIN/nomoat-inspect" --json "$SCRATCH/r4-embed-head.gguf" >"$SCRATCH/insp.json"
check "inspect --json: adapter object with per-pair rank and scale" $PY -c "
import json, sys; a = json.load(open('$SCRATCH/insp.json'))['adapter']
p = {x['target']: x for x in a['pairs']}
assert a['alpha'] == 8 and a['rank_min'] == 4 and a['rank_max'] == 8
assert p['output.weight']['rank'] == 8 and p['output.weight']['scale'] == 1 and p['blk.0.ffn_up.weight']['scale'] == 2"
"$BIN/nomoat-inspect" "$L/r16-rslora-bin" >"$SCRATCH/insp2"
check "inspect: PEFT folder summary (rsLoRA, .bin weights listed)" sh -c "grep -q 'r 16, lora_alpha 8, rsLoRA' '$SCRATCH/insp2' && grep -q 'torch checkpoint' '$SCRATCH/insp2'"

# ---- refusals: exit 1, one line naming the problem, no output ----
refuse() { # NAME NEEDLE DIR [ARGS...]
    _name=$1; _needle=$2; _dir=$3; shift 3
    rm -f "$SCRATCH/out.gguf"
    "$CONVERT" "$_dir" "$@" -o "$SCRATCH/out.gguf" >"$SCRATCH/.stdout" 2>"$SCRATCH/.stderr"; _rc=$?
    _lines=$(wc -l <"$SCRATCH/.stderr")
    if [ "$_rc" -ne 1 ]; then fail "$_name" "exit $_rc, expected 1"; sed 's/^/    | /' "$SCRATCH/.stderr"; return; fi
    if [ "$_lines" -ne 1 ]; then fail "$_name" "$_lines error lines"; sed 's/^/    | /' "$SCRATCH/.stderr"; return; fi
    if ! grep -q -- "$_needle" "$SCRATCH/.stderr"; then fail "$_name" "message lacks '$_needle': $(cat "$SCRATCH/.stderr")"; return; fi
    if [ -e "$SCRATCH/out.gguf" ]; then fail "$_name" "output written"; return; fi
    pass "$_name"
    echo "    $(cat "$SCRATCH/.stderr")"
}
edit() { _n=$1; shift; $PY tests/convert/peft_edit.py "$L/wikillama-license" "$SCRATCH/$_n" "$@"; }
M=base_model.model.model.layers.1.self_attn.k_proj
refuse "adapter without --base" "name its base model with --base" "$L/wikillama-license"
refuse "--base on a model folder" "has no adapter_config.json" "$HF" --base "$HF"
edit dora --config use_dora=true;                         refuse "DoRA refused by name" "DoRA" "$SCRATCH/dora" --base "$HF"
edit ia3 --config 'peft_type="IA3"';                      refuse "another PEFT method" "peft_type is 'IA3'" "$SCRATCH/ia3" --base "$HF"
edit mts --config 'modules_to_save=["lm_head"]';          refuse "modules_to_save" "modules_to_save" "$SCRATCH/mts" --base "$HF"
edit bias --config 'bias="all"';                          refuse "trained biases" "bias is 'all'" "$SCRATCH/bias" --base "$HF"
edit fifo --config fan_in_fan_out=true;                   refuse "Conv1D (fan_in_fan_out)" "fan_in_fan_out" "$SCRATCH/fifo" --base "$HF"
edit alora --config 'invocation_string="<x>"';            refuse "activated LoRA" "activated LoRA" "$SCRATCH/alora" --base "$HF"
edit r0 --config r=0;                                     refuse "r = 0 in the config" '"r" is 0' "$SCRATCH/r0" --base "$HF"
edit noalpha --config lora_alpha=null;                    refuse "missing lora_alpha" "lora_alpha" "$SCRATCH/noalpha" --base "$HF"
edit regex --config 'rank_pattern={"^model.*q_proj$": 4}'; refuse "regular-expression rank_pattern" "regular expression" "$SCRATCH/regex" --base "$HF"
edit badr --config r=4;                                   refuse "ranks not what the config says" "rank 8 but adapter_config.json says r = 4" "$SCRATCH/badr" --base "$HF"
edit zero --zero-rank model.layers.1.self_attn.k_proj;    refuse "a rank-0 module" "rank 0" "$SCRATCH/zero" --base "$HF"
edit miss --drop $M.lora_B.weight;                        refuse "a missing lora_B" "no lora_B" "$SCRATCH/miss" --base "$HF"
edit nan --nan $M.lora_A.weight;                          refuse "NaN weights" "NaN at row 0, column 0" "$SCRATCH/nan" --base "$HF"
edit mag --add $M.lora_magnitude_vector F32 128;          refuse "DoRA magnitude vector in the weights" "DoRA" "$SCRATCH/mag" --base "$HF"
edit emb --add base_model.model.model.embed_tokens.weight F32 4096,256
refuse "full embedding weight (added tokens)" "full embedding" "$SCRATCH/emb" --base "$HF"
edit odd --add base_model.model.model.layers.0.foo.weight F32 2,2; refuse "unknown weight" "not a lora_A or lora_B" "$SCRATCH/odd" --base "$HF"
edit shape --scale-shape $M.lora_B.weight 256,8;          refuse "other shapes than the base (adapter for another model)" "another model" "$SCRATCH/shape" --base "$HF"
edit layer --add base_model.model.model.layers.9.mlp.up_proj.lora_A.weight F32 8,256 \
     --add base_model.model.model.layers.9.mlp.up_proj.lora_B.weight F32 768,8
refuse "a layer the base does not have" "beyond the base model's 4 layers" "$SCRATCH/layer" --base "$HF"
edit int --scale-shape $M.lora_A.weight 8,256 && $PY - "$SCRATCH/int/adapter_model.safetensors" <<'PY'
import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = b.find(b'"dtype":"F32","shape":[8,256]'); b[i + 9:i + 12] = b"I32"; open(p, "wb").write(b)
PY
refuse "integer weights" "dtype I32" "$SCRATCH/int" --base "$HF"
mkdir -p "$SCRATCH/gpt2base" && sed 's/LlamaForCausalLM/BloomForCausalLM/' "$HF/config.json" >"$SCRATCH/gpt2base/config.json"
refuse "a base of another architecture" "BloomForCausalLM" "$L/wikillama-license" --base "$SCRATCH/gpt2base"
mkdir -p "$SCRATCH/widebase" && sed 's/"hidden_size": 256/"hidden_size": 512/' "$HF/config.json" >"$SCRATCH/widebase/config.json"
refuse "a base of other shapes" "another model" "$L/wikillama-license" --base "$SCRATCH/widebase"
if need_fixtures "a GGUF base of another architecture"; then
    $PY tests/verify/gguf_edit.py "$FIXTURES/reference/wikillama-f16.gguf" "$SCRATCH/gpt2.gguf" --set-string general.architecture=gpt2
    refuse "a GGUF base of another architecture" "architecture is 'gpt2'" "$L/wikillama-license" --base "$SCRATCH/gpt2.gguf"
    refuse "an adapter given as --base" "itself an adapter" "$L/wikillama-license" --base "$FIXTURES/reference/lora/wikillama-license-lora-f16.gguf"
fi
finish
