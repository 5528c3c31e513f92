# Sourced by the model-family conversion tests (after tests/lib.sh):
#   convert_family FOLDER-NAME DATA-DIR LABEL
# converts $SCRATCH/FOLDER-NAME (run from $SCRATCH: the converter derives general.name from the
# folder's name) to F32, F16, BF16 and Q8_0 and quantizes the F32 file to Q8_0, Q4_0, Q4_K_M,
# Q5_K_M and Q6_K, checking each against the SHA-256 in DATA-DIR/reference.sha256 (llama.cpp's
# convert_hf_to_gguf.py and llama-quantize) and each quantization's per-tensor types against
# DATA-DIR/quant-types.txt (so a wrong choice is named, not just a differing hash).
#   variant NAME 'PYTHON'   a copy of the folder $M in $SCRATCH/NAME with its config.json edited by
#                           PYTHON (on the dict c); the weights and tokenizer files (every other
#                           file of $M) are links
#   refuse DESCRIPTION NAME MESSAGE-PART   nomoat-convert refuses $SCRATCH/NAME with a message
#                           holding MESSAGE-PART and writes nothing
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
ref_sha() { sed -n "s/^\([0-9a-f]*\)  $1\$/\1/p" "$2"; }
types_of() { # MIX FILE: "MIX name type" per tensor, as quant-types.txt spells them
    "$BIN/nomoat-inspect" --json "$2" | /usr/bin/python3 -c "
import json, sys
for t in json.load(sys.stdin)['tensors']: print(sys.argv[1], t['name'], t['type'].lower().replace('_k', '_K'))" "$1"
}
convert_family() {
    for t in f32 f16 bf16 q8_0; do
        (cd "$SCRATCH" && "$BIN/nomoat-convert" -q "$1" --outtype $t -o "convert-$t.gguf")
        check "$3 -> $t: same bytes as convert_hf_to_gguf.py" \
            test "$(sha_of "$SCRATCH/convert-$t.gguf")" = "$(ref_sha "convert-$t" "$2/reference.sha256")"
    done
    for t in Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K; do
        "$BIN/nomoat-quantize" -q "$SCRATCH/convert-f32.gguf" "$SCRATCH/$t.gguf" $t 2 >"$SCRATCH/q.log" 2>&1
        types_of $t "$SCRATCH/$t.gguf" >"$SCRATCH/types.txt"
        grep "^$t " "$2/quant-types.txt" >"$SCRATCH/want.txt"
        check "$3 -> $t: llama-quantize's type for each of its tensors" \
            diff "$SCRATCH/want.txt" "$SCRATCH/types.txt"
        check "$3 -> $t: same bytes as llama-quantize" \
            test "$(sha_of "$SCRATCH/$t.gguf")" = "$(ref_sha "quantize-$t" "$2/reference.sha256")"
    done
    rm -f "$SCRATCH"/*.gguf
}
variant() { # NAME PYTHON-EDIT-OF-config.json: a copy of the folder with its config edited
    rm -rf "$SCRATCH/$1" && mkdir "$SCRATCH/$1" &&
    for f in "$M"/*; do [ "${f##*/}" = config.json ] || ln -s "$f" "$SCRATCH/$1/" || return 1; done &&
    /usr/bin/python3 -c "
import json, sys
c = json.load(open(sys.argv[1])); $2
json.dump(c, open(sys.argv[2], 'w'))" "$M/config.json" "$SCRATCH/$1/config.json"
}
refuse() { # DESCRIPTION FOLDER EXPECTED-MESSAGE-PART
    "$BIN/nomoat-convert" -q "$SCRATCH/$2" -o "$SCRATCH/out.gguf" >"$SCRATCH/err.txt" 2>&1
    rc=$?
    check "$1: refused with a message" test $rc -ne 0
    check "$1: the message says: $3" grep -qF "$3" "$SCRATCH/err.txt"
    check "$1: no output" test ! -e "$SCRATCH/out.gguf"
}
