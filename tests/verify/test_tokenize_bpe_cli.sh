#!/bin/sh
# Bad tokenizer.json files through the tools: one clear line, exit status 1/2, no output file;
# an unknown pre-tokenizer regex is quoted in the message, and --pre NAME overrides it.
. tests/lib.sh
VERIFY="$BIN/nomoat-verify"
CONVERT="$BIN/nomoat-convert"
SEED="$ROOT/tests/fuzz/seeds/bpe_json/llama3-strings.json"
[ -x "$VERIFY" ] && [ -x "$CONVERT" ] || { skip "nomoat-verify or nomoat-convert is not built"; finish; }
[ -x /usr/bin/python3 ] || { skip "needs /usr/bin/python3"; finish; }

# variant NAME PYTHON: a folder $SCRATCH/NAME (tiny weights) whose tokenizer.json is the seed file
# changed by the Python statements (j is the parsed file; raw=bytes replaces the output)
variant() {
    mkdir -p "$SCRATCH/src-$1"
    /usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); raw = None
exec(sys.argv[3])
open(sys.argv[2], "wb").write(raw if raw is not None else json.dumps(j).encode())' "$SEED" "$SCRATCH/src-$1/tokenizer.json" "$2"
    /usr/bin/python3 "$ROOT/tests/verify/make_tiny_bpe.py" "$SCRATCH/src-$1" "$SCRATCH/$1" 16 12 12
}
# refused NAME WANT [CONVERT_WANT]: convert and tokenize both refuse with one line containing WANT
# (convert: CONVERT_WANT when given), no output
refused() {
    cwant=${3:-$2}
    out="$SCRATCH/$1.gguf"
    "$CONVERT" -q --no-fsync "$SCRATCH/$1" -o "$out" >"$SCRATCH/c.out" 2>"$SCRATCH/c.err"; crc=$?
    "$VERIFY" tokenize --tokenizer "$SCRATCH/$1/tokenizer.json" --text "ab 12" >"$SCRATCH/v.out" 2>"$SCRATCH/v.err"; vrc=$?
    if [ $crc -eq 1 ] && [ ! -e "$out" ] && [ "$(wc -l <"$SCRATCH/c.err")" -eq 1 ] && grep -qF -- "$cwant" "$SCRATCH/c.err" &&
        [ $vrc -eq 2 ] && [ ! -s "$SCRATCH/v.out" ] && [ "$(wc -l <"$SCRATCH/v.err")" -eq 1 ] && grep -qF -- "$2" "$SCRATCH/v.err"; then
        pass "$1: refused in one line ($2), no output"
    else
        fail "$1: refused in one line ($2), no output" "convert $crc: $(cat "$SCRATCH/c.err") | tokenize $vrc: $(cat "$SCRATCH/v.err")"
    fi
}

variant good 'pass'
check "a good tokenizer.json converts" "$CONVERT" -q --no-fsync "$SCRATCH/good" -o "$SCRATCH/good.gguf"
got=$("$VERIFY" tokenize "$SCRATCH/good.gguf" --text "ab 12 <x>a" --no-bos)
want=$("$VERIFY" tokenize --tokenizer "$SCRATCH/good/tokenizer.json" --text "ab 12 <x>a" --no-bos)
# llama-bpe: "ab" " " "12" " " then the user-defined <x>, then "a"
if [ "$got" = "3 2 7 2 13 0" ] && [ "$got" = "$want" ]; then pass "tiny vocabulary: ab 12 <x>a -> $got (GGUF and tokenizer.json)"
else fail "tiny vocabulary: ab 12 <x>a -> 3 2 7 2 13 0" "GGUF [$got], tokenizer.json [$want]"; fi
# the evaluator tokenizes prompts of BPE models with the same tokenizer (BOS first: the
# post-processor adds <|begin|>, id 12)
got=$("$VERIFY" logits "$SCRATCH/good.gguf" --prompt "ab 12 <x>a" --json 2>"$SCRATCH/l.err" |
    /usr/bin/python3 -c 'import json, sys; print(" ".join(map(str, json.load(sys.stdin)["tokens"])))' 2>>"$SCRATCH/l.err")
if [ "$got" = "12 3 2 7 2 13 0" ]; then pass "nomoat-verify logits on a BPE model: prompt tokens $got"
else fail "nomoat-verify logits on a BPE model: prompt tokens 12 3 2 7 2 13 0" "got [$got] $(cat "$SCRATCH/l.err")"; fi

variant unknown_regex 'j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}+|\\p{Zs}"'
refused unknown_regex 'pre-tokenizer regex "\p{L}+|\p{Zs}" is not one nomoat knows (give --pre NAME'
check "--pre gpt-2 overrides an unknown regex (convert)" "$CONVERT" -q --no-fsync --pre gpt-2 "$SCRATCH/unknown_regex" -o "$SCRATCH/pre.gguf"
check "the file records tokenizer.ggml.pre gpt-2" sh -c "'$BIN/nomoat-inspect' '$SCRATCH/pre.gguf' | grep -q 'tokenizer.ggml.pre .*\"gpt-2\"'"
check "--pre gpt-2 overrides an unknown regex (tokenize)" "$VERIFY" tokenize --tokenizer "$SCRATCH/unknown_regex/tokenizer.json" --pre gpt-2 --text "ab"
check_status "--pre with an unknown name is refused" 1 "$CONVERT" -q --pre nonesuch "$SCRATCH/good" -o "$SCRATCH/x.gguf"

variant truncated 'raw = open(sys.argv[1], "rb").read()[:300]'
refused truncated "tokenizer.json is truncated" "tokenizer.json: invalid JSON near byte" # convert reads it first as JSON
variant unknown_merge 'j["model"]["merges"].append("a zz")'
refused unknown_merge 'model.merges[5] names "zz", which is not in model.vocab'
variant bad_result 'j["model"]["merges"].append("b a")'
refused bad_result 'model.merges[5] makes "ba", which is not in model.vocab'
variant huge_id 'j["model"]["vocab"]["q"] = 2**31'
refused huge_id "is too large: the vocabulary would exceed"
variant wordpiece 'j["model"]["type"] = "WordPiece"'
refused wordpiece "model type 'WordPiece' is not supported (only BPE)"
variant dup 'raw = json.dumps(j).replace("\"b\": 1,", "\"b\": 1, \"b\": 16,").encode()'
refused dup 'token "b" appears twice'
variant bad_utf8 'raw = json.dumps(j).replace("\"b\": 1,", "\"b" + chr(255) + "\": 1,").encode("latin-1")'
refused bad_utf8 "the token text is not valid UTF-8"
finish
