/* The CPU's SIMD features, detected once (the one once-initialised global table): every kernel
 * with AVX2, AVX-512 or NEON siblings asks here which one to run. */
#ifndef NOMOAT_CPU_H
#define NOMOAT_CPU_H

#include <stdbool.h>

typedef struct nm_cpu_features {
    bool avx2, fma, f16c, avx512f, neon;
    /* the AVX-512 subsets the dot kernels need (dot_avx512.c): byte/word ops, 128/256-bit
     * encodings, dword/qword extras and VNNI's vpdpbusd */
    bool avx512bw, avx512vl, avx512dq, avx512vnni;
    /* an AMD core: a scheduling hint, never a change of results (the AVX2 F16 tile widens halves
     * in its loop there, see dot_avx2.c) */
    bool amd;
    /* the L2 cache per core in KiB (0: not reported), the same kind of hint (dot_avx2.c's F32 tile) */
    unsigned l2_kib;
} nm_cpu_features;
const nm_cpu_features *nm_cpu(void);
/* NOMOAT_NO_SIMD=1 in the environment forces the scalar paths (tests and benchmarks);
 * NOMOAT_NO_AVX512=1 hides AVX-512 only (the AVX2 paths then serve). */

#endif
