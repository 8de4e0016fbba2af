/* sd_parallel.h: runs fn over items 0..n-1 on up to `concurrency` threads (the caller's thread
 * included) and returns when all are done: the reference's errgroup with a limit, for the
 * cleanups' "how many in parallel" settings. */
#ifndef SD_PARALLEL_H
#define SD_PARALLEL_H

#include <stddef.h>

/* Work on item i; runs on any of the threads, items in increasing order of start. */
typedef void (*sd_parallel_fn)(size_t i, void *arg);

/* Calls fn(i, arg) once for every i < n, on at most concurrency threads (capped at
 * SD_PARALLEL_MAX_THREADS; fewer when threads cannot be started, down to the caller's alone).
 * fn synchronizes its own shared state. */
void sd_parallel_for(size_t n, int concurrency, sd_parallel_fn fn, void *arg);

#define SD_PARALLEL_MAX_THREADS 64

#endif
