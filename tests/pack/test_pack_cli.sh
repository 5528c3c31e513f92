# nomoat-pack end to end: round trips on every reference GGUF, the BF16 ratio target, damage
# and truncation refused with nothing left behind, overwrite protection, plain files.
. "$NOMOAT_ROOT/tests/lib.sh"
PACK="$BIN/nomoat-pack"

check "help" "$PACK" --help
check_status "no arguments is a usage error" 2 "$PACK"

# A plain (non-GGUF) file: the test suite's own script.
cp "$ROOT/tests/pack/test_pack_cli.sh" "$SCRATCH/plain.txt"
check "pack a plain file" "$PACK" -q --no-fsync "$SCRATCH/plain.txt"
check "unpack a plain file" "$PACK" -q --no-fsync -d "$SCRATCH/plain.txt.nmz" -o "$SCRATCH/plain.out"
check "plain file round trip is byte-identical" cmp "$SCRATCH/plain.txt" "$SCRATCH/plain.out"
check_status "existing output is not overwritten" 1 "$PACK" -q "$SCRATCH/plain.txt"
check "--force replaces it" "$PACK" -q -f --no-fsync "$SCRATCH/plain.txt"
check_status "unpacking a file that is not a pack" 1 "$PACK" -d "$SCRATCH/plain.txt" -o "$SCRATCH/x"

if need_fixtures "pack round trips on reference GGUFs"; then
    for f in "$FIXTURES"/reference/*.gguf "$FIXTURES"/reference/quant-vectors/*.gguf; do
        name=$(basename "$f")
        if "$PACK" -q --no-fsync "$f" -o "$SCRATCH/p.nmz" -f && "$PACK" -q --test "$SCRATCH/p.nmz" &&
            "$PACK" -q --no-fsync -d "$SCRATCH/p.nmz" -o "$SCRATCH/p.gguf" -f && cmp -s "$f" "$SCRATCH/p.gguf"; then
            pass "round trip $name"
        else
            fail "round trip $name"
        fi
    done

    bf16="$FIXTURES/reference/wikillama-bf16.gguf"
    "$PACK" -q --no-fsync -f "$bf16" -o "$SCRATCH/bf16.nmz"
    orig=$(stat -c %s "$bf16"); packed=$(stat -c %s "$SCRATCH/bf16.nmz")
    plain=$(zstd -q -3 -c "$bf16" | wc -c)
    if awk -v o="$orig" -v p="$packed" -v z="$plain" 'BEGIN { r = o / p; exit !(r >= 1.43 && r >= 1.11 * o / z) }'; then
        pass "wikillama-bf16 ratio $(awk -v o="$orig" -v p="$packed" 'BEGIN{printf "%.3f", o/p}') >= 1.43 and >= 1.11x zstd -3"
    else
        fail "wikillama-bf16 ratio" "original $orig packed $packed zstd-3 $plain"
    fi

    # a flipped byte in the middle of the payload is found and named; nothing is left behind
    cp "$SCRATCH/bf16.nmz" "$SCRATCH/flip.nmz"
    pos=$((packed / 2))
    byte=$(od -An -tu1 -j "$pos" -N1 "$SCRATCH/flip.nmz" | tr -d ' ')
    printf "$(printf '\\%03o' $(( (byte + 1) % 256 )))" | dd of="$SCRATCH/flip.nmz" bs=1 seek="$pos" conv=notrunc 2>/dev/null
    "$PACK" -q -d "$SCRATCH/flip.nmz" -o "$SCRATCH/flip.gguf" 2>"$SCRATCH/flip.err"; rc=$?
    if [ "$rc" -eq 1 ] && grep -q "chunk [0-9]* (tensor" "$SCRATCH/flip.err" && [ ! -e "$SCRATCH/flip.gguf" ] &&
        [ "$(wc -l <"$SCRATCH/flip.err")" -eq 1 ]; then
        pass "flipped byte detected and named: $(cat "$SCRATCH/flip.err")"
    else
        fail "flipped byte" "rc=$rc $(cat "$SCRATCH/flip.err")"
    fi
    check_status "--test also finds it" 1 "$PACK" -q --test "$SCRATCH/flip.nmz"

    head -c $((packed - 100)) "$SCRATCH/bf16.nmz" >"$SCRATCH/trunc.nmz"
    check_status "truncated pack refused" 1 "$PACK" -q -d "$SCRATCH/trunc.nmz" -o "$SCRATCH/trunc.gguf"
    check "no output left after failure" test ! -e "$SCRATCH/trunc.gguf"

    check "--list" "$PACK" --list "$SCRATCH/bf16.nmz"
    check "--list --json is JSON" sh -c "'$PACK' --list --json '$SCRATCH/bf16.nmz' | /usr/bin/python3 -m json.tool"
    "$PACK" --extract token_embd.weight "$SCRATCH/bf16.nmz" -o "$SCRATCH/emb.bin"
    emb_size=$((4096 * 256 * 2))
    check "--extract gives the tensor's bytes" test "$(stat -c %s "$SCRATCH/emb.bin")" -eq "$emb_size"
fi
finish
