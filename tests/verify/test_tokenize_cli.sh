#!/bin/sh
# The nomoat-verify binary's tokenize command: help, stdin, SentencePiece's ids for the bundled
# Llama 2 slice, and exit status 2 with one message line for bad input.
. tests/lib.sh
VERIFY="$BIN/nomoat-verify"
TOK="$DATA/tokenizer"
[ -x "$VERIFY" ] || { skip "nomoat-verify is not built"; finish; }

check "tokenize --help" sh -c "'$VERIFY' tokenize --help | grep -q 'usage: nomoat-verify tokenize'"
"$VERIFY" tokenize --tokenizer "$TOK/llama2-tokenizer.model" -f - --ids-bin "$SCRATCH/ids.bin" <"$TOK/wikitext2-slice-llama2.txt"
check "text from stdin: ids identical to SentencePiece's" cmp "$SCRATCH/ids.bin" "$TOK/wikitext2-slice-llama2.ids"
out=$("$VERIFY" tokenize --tokenizer "$TOK/llama2-tokenizer.model" --text "Hello world" --lines | tr '\n' ' ')
check "--lines: one id per line" test "$out" = "1 15043 3186 "
out=$("$VERIFY" tokenize --tokenizer "$TOK/llama2-tokenizer.model" --text "Hello world" -t 1 --no-bos)
check "--no-bos -t 1" test "$out" = "15043 3186"

check_status "no vocabulary: exit 2" 2 "$VERIFY" tokenize --text x
check_status "missing text file: exit 2" 2 "$VERIFY" tokenize --tokenizer "$TOK/llama2-tokenizer.model" -f "$SCRATCH/none.txt"
check_status "tokenizer.model given as MODEL.gguf: exit 2" 2 "$VERIFY" tokenize "$TOK/llama2-tokenizer.model" --text x
head -c 1000 "$TOK/llama2-tokenizer.model" >"$SCRATCH/cut.model"
"$VERIFY" tokenize --tokenizer "$SCRATCH/cut.model" --text x 2>"$SCRATCH/err.txt"
rc=$?
check "truncated tokenizer.model: exit 2 and one message line" test "$rc" -eq 2 -a "$(wc -l <"$SCRATCH/err.txt")" -eq 1
sed 's/^/    | /' "$SCRATCH/err.txt"
check_status "bad thread count: exit 2" 2 "$VERIFY" tokenize --tokenizer "$TOK/llama2-tokenizer.model" --text x -t zero
finish
