#include "common/cpu.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static nm_cpu_features cpu_features;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_detect(void) {
    const char *no_simd = getenv("NOMOAT_NO_SIMD");
    if (no_simd && *no_simd && strcmp(no_simd, "0") != 0)
        return;
#if defined(__x86_64__)
    __builtin_cpu_init();
    cpu_features.avx2 = __builtin_cpu_supports("avx2");
    cpu_features.fma = __builtin_cpu_supports("fma");
    cpu_features.amd = __builtin_cpu_is("amd");
    const char *no_avx512 = getenv("NOMOAT_NO_AVX512");
    if (!(no_avx512 && *no_avx512 && strcmp(no_avx512, "0") != 0)) {
        cpu_features.avx512f = __builtin_cpu_supports("avx512f");
        cpu_features.avx512bw = __builtin_cpu_supports("avx512bw");
        cpu_features.avx512vl = __builtin_cpu_supports("avx512vl");
        cpu_features.avx512dq = __builtin_cpu_supports("avx512dq");
        cpu_features.avx512vnni = __builtin_cpu_supports("avx512vnni");
    }
    {
        unsigned int a, b, c, d;
        if (__get_cpuid(1, &a, &b, &c, &d)) cpu_features.f16c = (c >> 29) & 1;
        /* extended leaf 0x80000006, ECX bits 31-16: the L2 size in KiB (AMD and Intel alike);
         * __get_cpuid checks that the CPU has the leaf */
        if (__get_cpuid(0x80000006u, &a, &b, &c, &d)) cpu_features.l2_kib = c >> 16;
    }
#elif defined(__aarch64__)
    cpu_features.neon = true;
#endif
}

const nm_cpu_features *nm_cpu(void) {
    pthread_once(&cpu_once, cpu_detect);
    return &cpu_features;
}
