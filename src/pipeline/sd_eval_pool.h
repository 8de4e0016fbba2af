/* sd_eval_pool.h: the template evaluation pool: a few worker threads that run the jobs which
 * evaluate templates (mapping a record whose sinks have template columns, the API's test
 * endpoint), so an evaluation that runs to its limits never blocks an event loop.
 *
 * A job is a function and its argument, queued in a bounded FIFO; the submitter learns at once
 * when the queue is full (it answers 503 instead of waiting). A job runs on a worker thread with
 * that thread's template VM, whose evaluations together get SD_TEMPLATE_MAX_JOB_MS, and reports
 * back by posting to its loop (sd_http_loop_post). Workers
 * run at a lower scheduling priority than the loops, so a flood of slow templates leaves the
 * CPU to the loops first. Every queued job runs exactly once: normally, or with is_cancelled set
 * when the pool stops first (the job must then answer without evaluating). */
#ifndef SD_EVAL_POOL_H
#define SD_EVAL_POOL_H

#include <stddef.h>

struct sd_eval_pool;

/* Runs on a worker thread. is_cancelled: the pool is stopping; skip the work and just report. */
typedef void (*sd_eval_job_fn)(void *arg, int is_cancelled);

/* Starts nthreads workers (0 = one per online core, at most 8) with room for max_queued waiting
 * jobs. Returns 0 or -errno. */
int sd_eval_pool_create(unsigned nthreads, size_t max_queued, struct sd_eval_pool **out);
/* From any thread: queues fn(arg). Returns 0; SD_ELIMIT when the queue is full or SD_ECLOSED
 * when the pool is stopping (fn is then never called). */
int sd_eval_pool_submit(struct sd_eval_pool *pool, sd_eval_job_fn fn, void *arg);
/* Stops the pool: later submits fail, jobs still queued run cancelled, running ones finish; then
 * joins the workers. The pool stays valid (borrowers see sd_eval_pool_is_open() turn 0) until
 * sd_eval_pool_destroy. Call before the loops the jobs post to stop. NULL is fine. */
void sd_eval_pool_close(struct sd_eval_pool *pool);
/* 1 while the pool takes jobs; 0 for NULL or after sd_eval_pool_close (callers then evaluate
 * inline). Any thread. */
int sd_eval_pool_is_open(const struct sd_eval_pool *pool);
/* Closes the pool if still open, then frees it (NULL is fine). */
void sd_eval_pool_destroy(struct sd_eval_pool *pool);

#endif
