#!/bin/sh
# The types whose float order is fixed (F32, F16, BF16, Q4_0: kernels/dot.c) give the same
# logits, bit for bit, whichever kernels run: AVX-512, AVX2 (NOMOAT_NO_AVX512=1) or scalar
# (NOMOAT_NO_SIMD=1). Q4_0 uses a pure-Q4_0 quantization of the F16 reference (the reference Q4_0
# file's output.weight is Q6_K, whose scalar reference sums in another order). Q8_0, Q4_K_M,
# Q5_K_M and Q6_K follow llama.cpp's AVX2 order at both SIMD levels, so AVX-512 and AVX2 give the same logits
# (the scalar reference differs from both).
. tests/lib.sh
V="$BIN/nomoat-verify"
TEXT="$FIXTURES/text/wikillama-heldout.txt"
REF="$FIXTURES/reference"
CHUNKS=3
[ "$SAN" = 1 ] && CHUNKS=1

# logits MODEL OUT [ENV=1]: saves the logits of CHUNKS chunks (same threads, so same file bytes)
logits() {
    env ${3:-NOMOAT_LEVEL=default} "$V" perplexity "$1" -f "$TEXT" -c 128 --chunks $CHUNKS -t 2 -q --save-logits "$2"
}

if need_fixtures "logits across dispatch levels"; then
    "$BIN/nomoat-quantize" -q --pure "$REF/wikillama-f16.gguf" "$SCRATCH/q4_0-pure.gguf" Q4_0 >/dev/null 2>&1 ||
        fail "pure Q4_0 quantization for the test"
    for m in "$REF/wikillama-f32.gguf" "$REF/wikillama-f16.gguf" "$REF/wikillama-bf16.gguf" "$SCRATCH/q4_0-pure.gguf"; do
        t=$(basename "$m" .gguf)
        logits "$m" "$SCRATCH/$t.default" || fail "$t: default run"
        for level in NOMOAT_NO_AVX512=1 NOMOAT_NO_SIMD=1; do
            logits "$m" "$SCRATCH/$t.$level" "$level" || fail "$t: $level run"
            if cmp -s "$SCRATCH/$t.default" "$SCRATCH/$t.$level"; then
                pass "$t: logits with $level identical to the default run"
            else
                fail "$t: logits with $level differ from the default run"
            fi
        done
    done
    for t in q8_0 q4_k_m q5_k_m q6_k; do
        m="$REF/wikillama-$t.gguf"
        logits "$m" "$SCRATCH/$t.default" || fail "$t: default run"
        logits "$m" "$SCRATCH/$t.avx2" NOMOAT_NO_AVX512=1 || fail "$t: NOMOAT_NO_AVX512=1 run"
        if cmp -s "$SCRATCH/$t.default" "$SCRATCH/$t.avx2"; then
            pass "$t: logits with NOMOAT_NO_AVX512=1 identical to the default run"
        else
            fail "$t: logits with NOMOAT_NO_AVX512=1 differ from the default run"
        fi
    done
fi
finish
