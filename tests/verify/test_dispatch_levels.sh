#!/bin/sh
# The types whose float order is fixed (F32, F16, BF16, Q4_0: kernels/dot.c) give the same
# logits, bit for bit, whichever kernels run: AVX-512, AVX2 (NOMOAT_NO_AVX512=1) or scalar
# (NOMOAT_NO_SIMD=1). Q4_0 uses a pure-Q4_0 quantization of the F16 reference (the reference Q4_0
# file's output.weight is Q6_K, whose scalar reference sums in another order). Q8_0, Q4_K_M,
# Q5_K_M, Q6_K and the low-bit types follow llama.cpp's AVX2 order at both SIMD levels, so AVX-512
# and AVX2 give the same logits (the scalar reference differs from both for the K-quants).
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
    # the low-bit mixes (llama.cpp's files in lowbit/) and the ternary types (quantized here)
    # cover every low-bit tensor type
    for t in tq1_0 tq2_0; do
        "$BIN/nomoat-quantize" -q --no-fsync "$REF/wikillama-f32.gguf" "$SCRATCH/wikillama-$t.gguf" $t 2 ||
            fail "$t quantization for the test"
    done
    for t in q8_0 q4_k_m q5_k_m q6_k lowbit/q2_k lowbit/q3_k_m lowbit/iq4_nl lowbit/iq4_xs lowbit/iq3_xxs-imatrix \
             lowbit/iq3_m-imatrix lowbit/iq2_xxs-imatrix lowbit/iq2_xs-imatrix lowbit/iq2_m-imatrix \
             lowbit/iq1_s-imatrix lowbit/iq1_m-imatrix tq1_0 tq2_0; do
        case $t in
            tq*) m="$SCRATCH/wikillama-$t.gguf" ;;
            lowbit/*) t=${t#lowbit/}; m="$REF/lowbit/wikillama-$t.gguf" ;;
            *) m="$REF/wikillama-$t.gguf" ;;
        esac
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
