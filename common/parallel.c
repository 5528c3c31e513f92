#include "common/parallel.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/cli.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SPIN_PAUSE() _mm_pause()
#else
#define SPIN_PAUSE() ((void)0)
#endif

/* A thread that waits (a worker for the next run, the caller for the workers) first spins for up
 * to SPIN_S seconds, when the pool has no more threads than the machine has cores, and only then
 * sleeps on the condition variable: the evaluator hands the pool hundreds of runs per forward
 * pass, and a wake-up through the kernel (on a virtual machine, of a halted vCPU) costs more than
 * many of them take. generation, shutting_down and workers_busy are written under the lock,
 * atomically, so that the spinning threads may read them without it (wait_over). */
static const double SPIN_S = 200e-6;

struct nm_pool {
    int n_threads;
    bool spin;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
    unsigned long generation; /* bumped for each nm_pool_run */
    bool shutting_down;
    nm_task_fn fn;
    void *ctx;
    size_t n_tasks;
    size_t next_task;  /* atomic */
    int workers_busy;  /* guarded by lock */
};

typedef struct worker_arg {
    nm_pool *pool;
    int index;
} worker_arg;

int nm_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void drain(nm_pool *pool, int thread) {
    for (;;) {
        size_t task = __atomic_fetch_add(&pool->next_task, 1, __ATOMIC_RELAXED);
        if (task >= pool->n_tasks)
            break;
        pool->fn(pool->ctx, task, thread);
    }
}

/* Whether what a waiter waits for has come: for the caller, every worker done with the run; for
 * a worker, a run after generation `seen`, or the shutdown. */
static bool wait_over(const nm_pool *pool, bool caller, unsigned long seen) {
    if (caller) return __atomic_load_n(&pool->workers_busy, __ATOMIC_ACQUIRE) == 0;
    return __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) != seen ||
           __atomic_load_n(&pool->shutting_down, __ATOMIC_ACQUIRE);
}

/* Spin, for at most SPIN_S, until wait_over. */
static void spin(const nm_pool *pool, bool caller, unsigned long seen) {
    const double t0 = nm_now();
    for (unsigned i = 1; !wait_over(pool, caller, seen); i++) {
        SPIN_PAUSE();
        if (i % 256 == 0 && nm_now() - t0 > SPIN_S) return;
    }
}

static void *worker_main(void *p) {
    worker_arg *arg = p;
    nm_pool *pool = arg->pool;
    int index = arg->index;
    free(arg);
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        if (pool->spin && !wait_over(pool, false, seen)) {
            pthread_mutex_unlock(&pool->lock);
            spin(pool, false, seen);
            pthread_mutex_lock(&pool->lock);
        }
        while (!wait_over(pool, false, seen))
            pthread_cond_wait(&pool->work_ready, &pool->lock);
        if (pool->shutting_down)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        drain(pool, index);
        pthread_mutex_lock(&pool->lock);
        if (__atomic_sub_fetch(&pool->workers_busy, 1, __ATOMIC_RELEASE) == 0)
            pthread_cond_signal(&pool->work_done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

nm_pool *nm_pool_create(int n_threads) {
    if (n_threads <= 0)
        n_threads = nm_cpu_count();
    nm_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n_threads = n_threads;
    pool->spin = n_threads <= nm_cpu_count();
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_cond_init(&pool->work_done, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (arg) {
            arg->pool = pool;
            arg->index = i;
        }
        if (!arg || pthread_create(&pool->threads[i], NULL, worker_main, arg) != 0) {
            free(arg);
            pool->n_threads = i; /* run with the threads we got */
            break;
        }
    }
    return pool;
}

int nm_pool_threads(const nm_pool *pool) {
    return pool->n_threads;
}

void nm_pool_run(nm_pool *pool, size_t n_tasks, nm_task_fn fn, void *ctx) {
    if (n_tasks == 0)
        return;
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    __atomic_store_n(&pool->next_task, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->workers_busy, pool->n_threads - 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool->generation, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    drain(pool, 0);
    if (pool->spin) spin(pool, true, 0);
    pthread_mutex_lock(&pool->lock);
    while (!wait_over(pool, true, 0))
        pthread_cond_wait(&pool->work_done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

void nm_pool_destroy(nm_pool *pool) {
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    __atomic_store_n(&pool->shutting_down, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->work_done);
    free(pool->threads);
    free(pool);
}
