# Fault injection: every write, pwrite, pwritev, fsync, rename, link, linkat, open, mmap (file), malloc,
# calloc and realloc call a tool makes on a small job is made to fail in turn (up to
# FAULT_MAX_PER_FUNC evenly spread calls per function). Each run must either succeed with the
# same output as the fault-free run (the failure was tolerated, e.g. one thread fewer) or fail
# with exit 1, one "nomoat-TOOL: ..." line, no output file, no temporary left behind and the
# input unchanged. Under SAN=1 the ASan runtime is preloaded first (leaks on error paths then
# fail the run) and allocation faults are left to the plain build.
. "$NOMOAT_ROOT/tests/lib.sh"
MAX=${FAULT_MAX_PER_FUNC:-40}
if [ "$SAN" = 1 ]; then
    asan=$(${CC:-gcc} -print-file-name=libasan.so)
    PRELOAD="$asan $BIN/libfault-nomalloc.so"
    FUNCS="write pwrite pwritev fsync rename link linkat open mmap"
else
    PRELOAD="$BIN/libfault.so"
    FUNCS="write pwrite pwritev fsync rename link linkat open mmap malloc calloc realloc"
fi
[ -f "$BIN/libfault.so" ] || { skip "fault injection (shim not built)"; finish; }

# scenario NAME OUTPUT INPUT COMMAND...: the command must create OUTPUT from INPUT
scenario() {
    name=$1; out=$2; input=$3; shift 3
    outdir=$(dirname "$out")
    rm -rf "$outdir"; mkdir -p "$outdir"
    report="$SCRATCH/report"; rm -f "$report"
    if ! NOMOAT_FAULT_REPORT="$report" LD_PRELOAD="$PRELOAD" "$@" >/dev/null 2>"$SCRATCH/err"; then
        fail "$name: fault-free run" "$(cat "$SCRATCH/err")"; return
    fi
    cp "$out" "$SCRATCH/expected"
    input_sum=$(cat "$input" | cksum)
    runs=0; bad=0
    for func in $FUNCS; do
        count=$(awk -v f="$func" '$1 == f { print $2 }' "$report")
        [ -n "$count" ] && [ "$count" -gt 0 ] || continue
        step=$(( (count + MAX - 1) / MAX ))
        k=1
        while [ "$k" -le "$count" ]; do
            rm -rf "$outdir"; mkdir -p "$outdir"
            NOMOAT_FAULT="$func:$k" LD_PRELOAD="$PRELOAD" "$@" >/dev/null 2>"$SCRATCH/err"; rc=$?
            runs=$((runs + 1))
            why=""
            if [ "$rc" -eq 0 ]; then
                cmp -s "$out" "$SCRATCH/expected" || why="succeeded with different output"
            else
                [ "$rc" -eq 1 ] || why="exit $rc"
                [ -e "$out" ] && why="$why; output left behind"
                [ -n "$(ls -A "$outdir")" ] && why="$why; leftovers: $(ls -A "$outdir" | tr '\n' ' ')"
                [ "$(wc -l <"$SCRATCH/err")" -ge 1 ] && grep -q '^nomoat-[a-z]*: ' "$SCRATCH/err" || why="$why; no clear message"
            fi
            [ "$(cat "$input" | cksum)" = "$input_sum" ] || why="$why; input changed"
            if [ -n "$why" ]; then
                bad=$((bad + 1))
                [ "$bad" -le 5 ] && echo "    $name with $func:$k failing -> $why: $(head -c 300 "$SCRATCH/err")"
            fi
            k=$((k + step))
        done
    done
    if [ "$bad" -eq 0 ]; then pass "$name: $runs injected faults handled"; else fail "$name: $bad of $runs injected faults mishandled"; fi
}

qv="$DATA/quant-vectors/input-f32.gguf"
if [ -f "$qv" ]; then
    scenario "pack" "$SCRATCH/o/out.nmz" "$qv" "$BIN/nomoat-pack" -q "$qv" -o "$SCRATCH/o/out.nmz"
    "$BIN/nomoat-pack" -q --no-fsync -f "$qv" -o "$SCRATCH/in.nmz"
    scenario "unpack" "$SCRATCH/o/out.gguf" "$SCRATCH/in.nmz" "$BIN/nomoat-pack" -q -d "$SCRATCH/in.nmz" -o "$SCRATCH/o/out.gguf"
    if [ -x "$BIN/nomoat-quantize" ]; then
        scenario "quantize Q4_K" "$SCRATCH/o/out.gguf" "$qv" "$BIN/nomoat-quantize" -q --pure "$qv" "$SCRATCH/o/out.gguf" Q4_K_S 2
    fi
else
    skip "fault injection on pack/quantize ($qv missing)"
fi
if [ -x "$BIN/nomoat-convert" ] && [ -d "$DATA/wikillama-bf16" ]; then
    scenario "convert" "$SCRATCH/o/out.gguf" "$DATA/wikillama-bf16/model-00001-of-00002.safetensors" \
        "$BIN/nomoat-convert" -q "$DATA/wikillama-bf16" -o "$SCRATCH/o/out.gguf"
else
    skip "fault injection on convert (nomoat-convert or tests/data/wikillama-bf16 missing)"
fi
if [ -x "$BIN/nomoat-merge" ] && [ -d "$DATA/wikillama-bf16" ]; then
    /usr/bin/python3 tests/verify/make_tiny_llama.py "$DATA/wikillama-bf16/tokenizer.model" "$SCRATCH/tiny" 4096
    "$BIN/nomoat-convert" -q --no-fsync --outtype f16 "$SCRATCH/tiny" -o "$SCRATCH/tiny.gguf"
    /usr/bin/python3 tests/merge/gguf_tool.py lora "$SCRATCH/tiny.gguf" "$SCRATCH/tiny-lora.gguf" 4
    scenario "merge" "$SCRATCH/o/out.gguf" "$SCRATCH/tiny.gguf" \
        "$BIN/nomoat-merge" -q "$SCRATCH/tiny.gguf" --lora "$SCRATCH/tiny-lora.gguf:0.5" --outtype Q8_0 -o "$SCRATCH/o/out.gguf"
else
    skip "fault injection on merge (nomoat-merge or tests/data/wikillama-bf16 missing)"
fi
finish
