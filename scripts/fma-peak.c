/* The machine's AVX2 FMA rate, for scripts/bench-verify.sh: T threads (default 2), each running
 * 12 independent 8-lane FMA chains (more than the pipes' latency x throughput, so the FMA units,
 * not the chains, limit), 4 billion FMAs in all (about a second; 200 million, 0.03 s, had a 2-core
 * EPYC report half its rate). Prints G multiply-adds per second over all threads (lanes
 * counted): the ceiling of any float matrix product computed with AVX2 FMAs here.
 *   cc -O2 -mavx2 -mfma -pthread -o fma-peak scripts/fma-peak.c && ./fma-peak 2 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static const long ITERS = 4000000000L / 12;
static void *run(void *out) {
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3),
           a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7),
           a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    for (long i = 0; i < ITERS; i++) {
        a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c); a2 = _mm256_fmadd_ps(a2, b, c);
        a3 = _mm256_fmadd_ps(a3, b, c); a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c);
        a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c); a8 = _mm256_fmadd_ps(a8, b, c);
        a9 = _mm256_fmadd_ps(a9, b, c); a10 = _mm256_fmadd_ps(a10, b, c); a11 = _mm256_fmadd_ps(a11, b, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    *(float *)out = _mm256_cvtss_f32(s);
    return NULL;
}
int main(int argc, char **argv) {
    int t = argc > 1 ? atoi(argv[1]) : 2;
    pthread_t th[64];
    float sink[64];
    if (t < 1 || t > 64) return 2;
    double t0 = now();
    for (int i = 0; i < t; i++) pthread_create(&th[i], NULL, run, &sink[i]);
    for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
    double s = now() - t0;
    printf("%.1f\n", (double)t * ITERS * 12 * 8 / s / 1e9);
    return sink[0] == 12345.0f;
}
