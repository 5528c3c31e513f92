#!/bin/sh
# nomoat-verify imatrix against llama-imatrix (reference/wikillama-imatrix.gguf: wikillama-f32 on
# text/wikillama-train.txt, -c 256 --chunks 100): same layout, values within 1e-3 relative; the
# file is accepted by nomoat-quantize --imatrix; the streamed pass (--streamed) writes the same bytes;
# --process-output adds output.weight as llama-imatrix --process-output does.
. tests/lib.sh
V="$BIN/nomoat-verify"
REF="$FIXTURES/reference"
check_status "imatrix without -o exits 2" 2 "$V" imatrix "$DATA/gguf/vectors-f32.gguf" -f /dev/null
if [ "$SAN" = 1 ]; then
    # SAN=1: a short run for memory errors; the 100-chunk comparison needs the optimized build
    if need_fixtures "imatrix"; then
        check "imatrix runs under SAN" "$V" imatrix "$REF/wikillama-f32.gguf" -f "$FIXTURES/text/wikillama-train.txt" -c 256 --chunks 2 -q -o "$SCRATCH/im.gguf"
        skip "imatrix comparison with llama-imatrix (SAN build)"
    fi
elif need_fixtures "imatrix against llama-imatrix"; then
    VA=$(cd "$(dirname "$V")" && pwd)/nomoat-verify
    (cd "$FIXTURES" && "$VA" imatrix reference/wikillama-f32.gguf -f text/wikillama-train.txt -c 256 --chunks 100 -t 2 -q -o "$SCRATCH/im.gguf")
    check "imatrix writes a file" test -s "$SCRATCH/im.gguf"
    check "imatrix within 1e-3 of llama-imatrix" /usr/bin/python3 tests/verify/imatrix_compare.py "$SCRATCH/im.gguf" "$REF/wikillama-imatrix.gguf" 1e-3
    # the streamed pass (one layer over every chunk, then the next: nomoat-quantize --calibration's)
    (cd "$FIXTURES" && "$VA" imatrix reference/wikillama-f32.gguf -f text/wikillama-train.txt -c 256 --chunks 100 -t 2 -q --streamed -o "$SCRATCH/im-streamed.gguf")
    check "imatrix --streamed: the same file, byte for byte" cmp "$SCRATCH/im.gguf" "$SCRATCH/im-streamed.gguf"
    # --process-output: output.weight's inputs too, against llama-imatrix --process-output
    # (tests/data/imatrix/README.md), in both passes
    DA=$(cd "$DATA" && pwd)
    (cd "$FIXTURES" && "$VA" imatrix reference/wikillama-f32.gguf -f text/wikillama-train.txt -c 256 --chunks 100 -t 2 -q --process-output -o "$SCRATCH/im-out.gguf")
    check "imatrix --process-output within 1e-3 of llama-imatrix --process-output" /usr/bin/python3 tests/verify/imatrix_compare.py "$SCRATCH/im-out.gguf" "$DA/imatrix/wikillama-imatrix-output.gguf" 1e-3
    (cd "$FIXTURES" && "$VA" imatrix reference/wikillama-f32.gguf -f text/wikillama-train.txt -c 256 --chunks 100 -t 2 -q --process-output --streamed -o "$SCRATCH/im-out-streamed.gguf")
    check "imatrix --process-output --streamed: the same file, byte for byte" cmp "$SCRATCH/im-out.gguf" "$SCRATCH/im-out-streamed.gguf"
    "$V" imatrix "$REF/wikillama-f32.gguf" -f "$FIXTURES/text/wikillama-train.txt" --streamed --lora "$REF/wikillama-f32.gguf" -o "$SCRATCH/y.gguf" 2>"$SCRATCH/streamed.err"
    check "imatrix --streamed with --lora refused in one line" grep -q "drop --lora or --streamed" "$SCRATCH/streamed.err"
    if [ -x "$BIN/nomoat-quantize" ]; then
        check "nomoat-quantize --imatrix accepts it" "$BIN/nomoat-quantize" --imatrix "$SCRATCH/im.gguf" "$REF/wikillama-f32.gguf" "$SCRATCH/q4km.gguf" Q4_K_M
        "$V" perplexity "$SCRATCH/q4km.gguf" -f "$FIXTURES/text/wikillama-heldout.txt" -c 256 --chunks 20 -t 2 -q --json "$SCRATCH/p.json"
        got=$(sed -n 's/.*"ppl":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$SCRATCH/p.json")
        want=$(awk '$1 == "20" && NF > 10 { print $2; exit }' "$REF/perplexity-q4_k_m-imatrix.log")
        check "Q4_K_M with our imatrix scores like llama.cpp's (within 1%): $got vs $want" awk -v a="$got" -v b="$want" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(d <= 0.01) }'
    fi
    head -c 600 "$FIXTURES/text/wikillama-train.txt" >"$SCRATCH/short.txt"
    check_status "imatrix: text shorter than two contexts exits 2" 2 "$V" imatrix "$REF/wikillama-f32.gguf" -f "$SCRATCH/short.txt" -c 256 -o "$SCRATCH/x.gguf"
    check "imatrix: no output left after an error" test ! -e "$SCRATCH/x.gguf"
fi
finish
