#!/bin/sh
# nomoat-verify tokenize against real llama.cpp (node-llama-cpp 3.21.1 from npm, vocab only):
# the wikillama GGUF on its whole held-out text and on awkward strings, and the real Llama 2
# vocabulary (converted by nomoat-convert around tiny zero weights) on the whole wikitext-2
# test file, where both must also equal SentencePiece's own ids.
. tests/lib.sh
. tests/node-env.sh
VERIFY="$BIN/nomoat-verify"
HERE="$ROOT/tests/verify"

[ -x "$VERIFY" ] || { skip "nomoat-verify is not built"; finish; }
need_fixtures "llama.cpp tokenizer comparison" || finish
if ! node_setup node-llama-cpp@3.21.1; then skip "llama.cpp tokenizer comparison (npm absent or install failed)"; finish; fi

# 1. wikillama's GGUF vocabulary on the held-out text (double spaces, which SentencePiece's
#    normaliser would collapse but llama.cpp keeps)
GGUF="$FIXTURES/reference/wikillama-f32.gguf"
HELD="$FIXTURES/text/wikillama-heldout.txt"
node "$HERE/tokenize_llamacpp.mjs" "$GGUF" --file "$HELD" "$SCRATCH/llama-held.bin" 2>"$SCRATCH/node.err"
"$VERIFY" tokenize "$GGUF" -f "$HELD" --no-bos --ids-bin "$SCRATCH/ours-held.bin"
if [ -s "$SCRATCH/llama-held.bin" ] && cmp -s "$SCRATCH/llama-held.bin" "$SCRATCH/ours-held.bin"; then
    pass "wikillama GGUF, whole held-out text: $(($(stat -c %s "$SCRATCH/ours-held.bin") / 4)) ids identical to llama.cpp's"
else
    fail "wikillama GGUF, whole held-out text: ids identical to llama.cpp's" "$(tail -3 "$SCRATCH/node.err")"
fi

# 2. awkward strings, one by one
cat >"$SCRATCH/strings.json" <<'JSON'
["", " ", "  ", "a", " a", "a ", "  leading and trailing  ", "hello world", "tab\there", "new\nline\n\n",
 "<s> and </s> and <unk> as text", "unicode: wörld, 東京, ✓, 🙂🙃", "▁literal▁marks▁", "@-@ 1 @,@ 000 @.@ 5",
 "mixed  \n  whitespace \t\n", "ääääääääääääääää", "x y z x y z x y z", "\u0001\u0002 ctrl"]
JSON
node "$HERE/tokenize_llamacpp.mjs" "$GGUF" --json "$SCRATCH/strings.json" >"$SCRATCH/llama-strings.json" 2>"$SCRATCH/node.err"
# one file per string and per expected id list, written by a single node run
n=$(node -e '
    const fs = require("fs"), dir = process.argv[1];
    const strings = JSON.parse(fs.readFileSync(dir + "/strings.json", "utf8"));
    const ids = JSON.parse(fs.readFileSync(dir + "/llama-strings.json", "utf8"));
    strings.forEach((s, i) => { fs.writeFileSync(`${dir}/s${i}.txt`, s); fs.writeFileSync(`${dir}/w${i}.txt`, ids[i].join(" ")); });
    console.log(strings.length);' "$SCRATCH" 2>>"$SCRATCH/node.err")
n=${n:-0}
bad=0
i=0
while [ "$i" -lt "$n" ]; do
    got=$("$VERIFY" tokenize "$GGUF" -f "$SCRATCH/s$i.txt" --no-bos)
    want=$(cat "$SCRATCH/w$i.txt")
    if [ "$got" != "$want" ]; then
        bad=$((bad + 1))
        echo "    string $i ($(head -c 40 "$SCRATCH/s$i.txt")): ours [$got], llama.cpp [$want]"
    fi
    i=$((i + 1))
done
if [ "$n" -gt 0 ] && [ -s "$SCRATCH/llama-strings.json" ] && [ "$bad" -eq 0 ]; then
    pass "wikillama GGUF: $n awkward strings tokenized as llama.cpp does"
else
    fail "wikillama GGUF: awkward strings tokenized as llama.cpp does ($bad of $n differ)" "$(tail -3 "$SCRATCH/node.err")"
fi

# 3. the real Llama 2 vocabulary on the whole wikitext-2 test file
TEXT="$FIXTURES/text/wikitext2-test.txt"
IDS="$FIXTURES/tokenizer/llama2-wikitext2-test.ids"
if [ -x /usr/bin/python3 ] && [ -x "$BIN/nomoat-convert" ]; then
    /usr/bin/python3 "$HERE/make_tiny_llama.py" "$DATA/tokenizer/llama2-tokenizer.model" "$SCRATCH/l2" 32000
    "$BIN/nomoat-convert" -q --no-fsync "$SCRATCH/l2" -o "$SCRATCH/l2.gguf"
    node "$HERE/tokenize_llamacpp.mjs" "$SCRATCH/l2.gguf" --file "$TEXT" "$SCRATCH/llama-wt.bin" 2>"$SCRATCH/node.err"
    "$VERIFY" tokenize "$SCRATCH/l2.gguf" -f "$TEXT" --no-bos --ids-bin "$SCRATCH/ours-wt.bin"
    if [ -s "$SCRATCH/llama-wt.bin" ] && cmp -s "$SCRATCH/llama-wt.bin" "$SCRATCH/ours-wt.bin"; then
        pass "Llama 2 GGUF, whole wikitext-2 test file: $(($(stat -c %s "$SCRATCH/ours-wt.bin") / 4)) ids identical to llama.cpp's"
    else
        fail "Llama 2 GGUF, whole wikitext-2 test file: ids identical to llama.cpp's" "$(tail -3 "$SCRATCH/node.err")"
    fi
    # SentencePiece's ids = BOS + the same
    tail -c +5 "$IDS" >"$SCRATCH/sp-wt.bin"
    check "Llama 2 GGUF, whole wikitext-2 test file: identical to SentencePiece's ids" cmp "$SCRATCH/sp-wt.bin" "$SCRATCH/ours-wt.bin"
else
    skip "Llama 2 GGUF comparison (needs /usr/bin/python3 and nomoat-convert)"
fi
finish
