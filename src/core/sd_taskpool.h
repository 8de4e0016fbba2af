/* sd_taskpool.h: a fixed pool of threads serving many serial tasks (one slice writer each).
 *
 * A task is a callback bound to an object that is served by at most one pool thread at a time.
 * Scheduling a task queues it once (FIFO); scheduling it while its callback runs makes it run
 * once more afterwards, so no request is lost and the callback never runs concurrently with
 * itself. An idle task costs no thread: the pool's threads are shared by every task. */
#ifndef SD_TASKPOOL_H
#define SD_TASKPOOL_H

/* The work of a task; runs on a pool thread without any pool lock held. */
typedef void (*sd_task_fn)(void *arg);

struct sd_taskpool;

/* A task, embedded in its owner's object. Fields are private to sd_taskpool.c. */
struct sd_task {
    struct sd_taskpool *pool;
    sd_task_fn fn;
    void *arg;
    struct sd_task *next;
    int state;
};

/* Starts nthreads (>= 1) threads. Returns 0 with *out owned by the caller
 * (sd_taskpool_destroy), SD_EINVAL or -errno (pthread_create, -ENOMEM). */
int sd_taskpool_create(int nthreads, struct sd_taskpool **out);

/* Stops and joins the threads and frees p (NULL is fine). Every task must be detached. */
void sd_taskpool_destroy(struct sd_taskpool *p);

/* Binds t to p; t runs fn(arg) when scheduled. t must stay valid until sd_task_detach. */
void sd_task_init(struct sd_task *t, struct sd_taskpool *p, sd_task_fn fn, void *arg);

/* Queues t unless it is queued already; if its callback is running, it runs again after it
 * returns. Any thread, also the callback itself. Never blocks on the callback. It wakes a pool
 * thread after releasing the pool's lock, so it must return before t's detach begins (the
 * caller orders the two). */
void sd_task_schedule(struct sd_task *t);

/* Waits until t's callback is not running, takes t out of the queue and unbinds it: it never
 * runs again and must not be scheduled again; detaching it again is a no-op. Must not be
 * called from t's own callback. */
void sd_task_detach(struct sd_task *t);

#endif
