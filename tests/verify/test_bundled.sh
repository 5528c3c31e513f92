#!/bin/sh
# nomoat-verify on the bundled model only (tests/data, no ../shared needed): convert the BF16
# wikillama checkpoint, then perplexity, --exact, KLD, gate, imatrix, diff and checksums on it.
. tests/lib.sh
V="$BIN/nomoat-verify"
TEXT="$DATA/tokenizer/heldout-slice-wikillama.txt"
C=30; [ "$SAN" = 1 ] && C=3
json_num() { sed -n "s/.*\"$2\":[[:space:]]*\([-0-9.eE+]*\).*/\1/p" "$1" | head -1; }
if [ ! -x "$BIN/nomoat-convert" ] || [ ! -x "$BIN/nomoat-quantize" ]; then
    skip "bundled-model tests need nomoat-convert and nomoat-quantize"
    finish
fi
"$BIN/nomoat-convert" -q --outtype f32 -o "$SCRATCH/w.gguf" "$DATA/wikillama-bf16"
"$BIN/nomoat-quantize" "$SCRATCH/w.gguf" "$SCRATCH/q8.gguf" Q8_0 >/dev/null 2>&1
"$BIN/nomoat-quantize" "$SCRATCH/w.gguf" "$SCRATCH/q4.gguf" Q4_0 >/dev/null 2>&1
check "converted and quantized the bundled model" test -s "$SCRATCH/q4.gguf"
check "perplexity on the bundled model" "$V" perplexity "$SCRATCH/w.gguf" -f "$TEXT" -c 64 --chunks $C -q --json "$SCRATCH/p.json"
p=$(json_num "$SCRATCH/p.json" ppl)
check "perplexity is plausible for the trained model ($p)" awk -v p="$p" 'BEGIN { exit !(p > 5 && p < 2000) }'
"$V" perplexity "$SCRATCH/w.gguf" -f "$TEXT" -c 64 --chunks $C -q --exact --json "$SCRATCH/e.json"
check "--exact within 1e-3" awk -v a="$(json_num "$SCRATCH/e.json" ppl)" -v b="$p" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(d <= 1e-3) }'
check "1 and 2 threads give the same result" sh -c "'$V' perplexity '$SCRATCH/w.gguf' -f '$TEXT' -c 64 --chunks $C -t 1 -q --json '$SCRATCH/t1.json' && [ \"\$(grep '\"ppl\"' '$SCRATCH/t1.json')\" = \"\$(grep '\"ppl\"' '$SCRATCH/p.json')\" ]"
"$V" perplexity "$SCRATCH/w.gguf" -f "$TEXT" -c 64 --chunks $C -q --save-logits "$SCRATCH/base.logits"
"$V" perplexity "$SCRATCH/w.gguf" -f "$TEXT" -q --kld "$SCRATCH/base.logits" --json "$SCRATCH/self.json"
check "KLD of a model against itself is ~0" awk -v k="$(json_num "$SCRATCH/self.json" kld_mean)" 'BEGIN { if (k < 0) k = -k; exit !(k < 1e-6) }'
"$V" perplexity "$SCRATCH/q4.gguf" -f "$TEXT" -q --kld "$SCRATCH/base.logits" --json "$SCRATCH/q4.json"
"$V" perplexity "$SCRATCH/q8.gguf" -f "$TEXT" -q --kld "$SCRATCH/base.logits" --json "$SCRATCH/q8.json"
check "KLD: Q4_0 > Q8_0 > 0" awk -v a="$(json_num "$SCRATCH/q4.json" kld_mean)" -v b="$(json_num "$SCRATCH/q8.json" kld_mean)" 'BEGIN { exit !(a > b && b > 0) }'
check_status "gate passes Q8_0" 0 "$V" gate --base "$SCRATCH/w.gguf" --model "$SCRATCH/q8.gguf" -f "$TEXT" -c 64 --chunks $C --max-ppl-ratio 1.02 --max-kld 0.01
check_status "gate fails Q4_0 against a tight KLD limit" 1 "$V" gate --base "$SCRATCH/w.gguf" --model "$SCRATCH/q4.gguf" -f "$TEXT" -c 64 --chunks $C --max-kld 0.001
check "imatrix on the bundled model" "$V" imatrix "$SCRATCH/w.gguf" -f "$TEXT" -c 64 --chunks $C -q -o "$SCRATCH/im.gguf"
check "nomoat-quantize accepts the imatrix" "$BIN/nomoat-quantize" --imatrix "$SCRATCH/im.gguf" "$SCRATCH/w.gguf" "$SCRATCH/q4km.gguf" Q4_K_M
check_status "diff: F32 vs Q8_0 exits 1" 1 "$V" diff "$SCRATCH/w.gguf" "$SCRATCH/q8.gguf"
"$V" checksums "$SCRATCH/q8.gguf" >"$SCRATCH/sums"
check "checksums --check" "$V" checksums "$SCRATCH/q8.gguf" --check "$SCRATCH/sums"
check_status "checksums --check against another file exits 1" 1 "$V" checksums "$SCRATCH/q4.gguf" --check "$SCRATCH/sums"
finish
