#!/bin/sh
# Reading every tensor of a PyTorch zip checkpoint (torch_open + in-place pointers, gathered
# reads for views) against reading the same tensors from a safetensors file (st_open), on the
# same machine in the same run. Both files are made by /usr/bin/python3 + torch: the checkpoint
# by torch.save, the safetensors file written by hand (u64 header length + JSON + data) from the
# same tensors. Each reader touches every byte (a 64-bit sum) and is run REPS times alternately
# from a warm page cache; the best time of each is reported with GB/s and peak memory.
#   scripts/bench-torch.sh [SIZE_MB] [REPS]     (defaults 512 and 5)
# Goal: torch >= 90% of safetensors throughput.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
SIZE_MB=${1:-512}
REPS=${2:-5}
PY=/usr/bin/python3
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/nomoat-bench-torch.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
make -s BUILD="$BUILD" "$BUILD/libnomoat.a" >/dev/null

echo "making a ${SIZE_MB} MB F16 checkpoint (torch.save) and the same tensors as safetensors..."
"$PY" - "$WORK" "$SIZE_MB" <<'PYEOF'
import json, os, struct, sys
import torch
out, size_mb = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
rows, cols = 4096, 1024                       # 8 MiB per F16 matrix
n = max(1, size_mb * 2**20 // (rows * cols * 2))
sd = {}
for i in range(n):
    sd["layers.%d.weight" % i] = torch.randn(rows, cols).half()
    sd["layers.%d.norm" % i] = torch.randn(cols).half()
torch.save(sd, os.path.join(out, "model.pt"))
header, offset = {}, 0
for k, v in sd.items():
    b = v.numel() * 2
    header[k] = {"dtype": "F16", "shape": list(v.shape), "data_offsets": [offset, offset + b]}
    offset += b
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for v in sd.values():
        f.write(v.numpy().tobytes())
PYEOF

cat >"$WORK/bench.c" <<'CEOF'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include "formats/safetensors.h"
#include "formats/torch.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static uint64_t sum_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t s = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        s += w;
    }
    for (; i < n; i++)
        s += b[i];
    return s;
}
static long status_kb(const char *field) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = atol(line + n + 1);
    if (fp)
        fclose(fp);
    return v;
}
int main(int argc, char **argv) {
    const char *kind = argv[1], *path = argv[2];
    nm_error err;
    double t0 = now();
    uint64_t sum = 0, bytes = 0;
    if (!strcmp(kind, "torch")) {
        torch_model *m = torch_open(path, NULL, &err);
        if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
        void *buf = NULL;
        size_t cap = 0;
        for (size_t i = 0; i < torch_tensor_count(m); i++) {
            const torch_tensor *t = torch_tensor_at(m, i);
            const void *p = t->data;
            if (!p) {
                if (cap < t->size) { buf = realloc(buf, t->size); cap = t->size; }
                if (torch_tensor_read(m, t, buf, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
                p = buf;
            }
            sum += sum_bytes(p, t->size);
            bytes += t->size;
        }
        free(buf);
        torch_close(m);
    } else {
        st_model *m = st_open(path, &err);
        if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (size_t i = 0; i < st_tensor_count(m); i++) {
            const st_tensor *t = st_tensor_at(m, i);
            sum += sum_bytes(t->data, t->size);
            bytes += t->size;
        }
        st_close(m);
    }
    double dt = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s %.6f %llu %llu %ld %ld\n", kind, dt, (unsigned long long)bytes, (unsigned long long)sum,
           ru.ru_maxrss, status_kb("RssAnon"));
    return 0;
}
CEOF
cc -O2 -std=c11 -D_GNU_SOURCE -I. -o "$WORK/bench" "$WORK/bench.c" "$BUILD/libnomoat.a" \
   $(pkg-config --libs libzstd libcjson libxxhash) -lm -pthread

cat "$WORK/model.pt" "$WORK/model.safetensors" >/dev/null   # warm the page cache for both
best_t=""; best_s=""
for r in $(seq "$REPS"); do
    set -- $("$WORK/bench" torch "$WORK/model.pt"); t_time=$2; t_bytes=$3; t_sum=$4; t_rss=$5; t_anon=$6
    set -- $("$WORK/bench" st "$WORK/model.safetensors"); s_time=$2; s_bytes=$3; s_sum=$4; s_rss=$5; s_anon=$6
    [ "$t_sum" = "$s_sum" ] && [ "$t_bytes" = "$s_bytes" ] || { echo "torch and safetensors read different bytes" >&2; exit 1; }
    best_t=$(echo "$t_time ${best_t:-$t_time}" | awk '{print ($1 < $2) ? $1 : $2}')
    best_s=$(echo "$s_time ${best_s:-$s_time}" | awk '{print ($1 < $2) ? $1 : $2}')
done
awk -v b="$t_bytes" -v tt="$best_t" -v ts="$best_s" -v tr="$t_rss" -v sr="$s_rss" -v ta="$t_anon" -v sa="$s_anon" -v reps="$REPS" 'BEGIN {
    gt = b / tt / 1e9; gs = b / ts / 1e9;
    printf "bytes per read:      %.1f MB (%d reps, best time)\n", b / 1e6, reps;
    printf "torch (zip, mmap):   %.3f s  %.2f GB/s  peak RSS %.0f MB (file pages included), RssAnon %.1f MB\n", tt, gt, tr / 1024, ta / 1024;
    printf "safetensors (mmap):  %.3f s  %.2f GB/s  peak RSS %.0f MB (file pages included), RssAnon %.1f MB\n", ts, gs, sr / 1024, sa / 1024;
    printf "torch / safetensors: %.1f%% of the throughput (goal >= 90%%)\n", 100 * gt / gs;
}'
