/* A small persistent thread pool: run `fn` over task indices [0, n_tasks) on all threads,
 * the caller's thread included. Tasks are handed out by an atomic counter. */
#ifndef NOMOAT_PARALLEL_H
#define NOMOAT_PARALLEL_H

#include <stddef.h>

typedef struct nm_pool nm_pool;

/* fn(ctx, task, thread) with thread in [0, n_threads): per-thread scratch can be indexed by it. */
typedef void (*nm_task_fn)(void *ctx, size_t task, int thread);

/* n_threads <= 0 means all online cores. Returns NULL only when out of memory. */
nm_pool *nm_pool_create(int n_threads);
int nm_pool_threads(const nm_pool *pool);
/* Runs every task and returns when all have finished. Not reentrant. */
void nm_pool_run(nm_pool *pool, size_t n_tasks, nm_task_fn fn, void *ctx);
void nm_pool_destroy(nm_pool *pool);

/* Number of online cores (>= 1). */
int nm_cpu_count(void);

#endif
