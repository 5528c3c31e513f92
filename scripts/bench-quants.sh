#!/bin/sh
# Single-thread kernel throughput of the block quantizers and dequantizers, scalar reference
# versus the SIMD path chosen at run time (AVX2 here, NEON on arm64), in GB/s of f32 values
# (4 bytes per value, so the numbers compare across types), on normally distributed data.
#
#   scripts/bench-quants.sh [MB] [TYPE...]   e.g.  scripts/bench-quants.sh 64 Q4_0 Q4_K Q4_K+imatrix
#   scripts/bench-quants.sh --full          also runs the SIMD-vs-reference identity check on
#                                           10^6 super-blocks per K-quant path (a few minutes)
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
FULL=0
if [ "$1" = "--full" ]; then FULL=1; shift; fi
make -s BUILD="$BUILD" "$BUILD/libnomoat.a" >/dev/null
${CC:-gcc} -O2 -std=c11 -D_GNU_SOURCE -ffp-contract=off -I. -o "$BUILD/bench-quants" scripts/bench-quants.c \
    "$BUILD/libnomoat.a" -lm -pthread
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
MB=${1:-64}
[ $# -gt 0 ] && shift
if [ $# -eq 0 ]; then
    set -- Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K Q4_K+imatrix Q5_K+imatrix Q6_K+imatrix Q8_K F16 BF16
fi
"$BUILD/bench-quants" "$MB" "$@"
echo "# NOMOAT_NO_SIMD=1 (dispatch forced scalar) for Q4_0 and Q4_K, as a cross-check of the ref column:"
NOMOAT_NO_SIMD=1 "$BUILD/bench-quants" "$MB" Q4_0 Q4_K | sed -n '2,3p'
if [ "$FULL" = 1 ]; then
    make -s BUILD="$BUILD" "$BUILD/tests/formats/test_quants_simd" >/dev/null
    echo "# identity check on 10^6 blocks / super-blocks per type and path:"
    /usr/bin/time -f "# %e s wall, %M KB peak" env NOMOAT_QUANT_BLOCKS=1000000 "$BUILD/tests/formats/test_quants_simd"
fi
