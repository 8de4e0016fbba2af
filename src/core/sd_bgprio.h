/* sd_bgprio.h: background priority for threads that must not compete with the data path.
 *
 * Uploads, imports, statistics and cleanups run beside the ingestion loop and the slice
 * writers; on a busy core or disk they should take only what the data path leaves. A thread
 * that calls sd_bgprio_enter runs from then on with
 *   - CPU: SCHED_BATCH (its wake-ups never preempt a running thread) at nice
 *     SD_BGPRIO_NICE (about a tenth of a nice-0 thread's share when the core is contended;
 *     all of an idle core);
 *   - I/O: best effort at the lowest level, 7 (schedulers with levels, BFQ, serve it after
 *     the others'; not the idle class: a data-path sync can wait on metadata or journal
 *     writes a background thread submitted, and an idle-class request waits for every other
 *     request first, so the data path would wait for its own queue to drain).
 * Both apply to the calling thread only, and are inherited by threads it creates afterwards:
 * call it only in threads that start no data-path thread. Lowering needs no privilege. */
#ifndef SD_BGPRIO_H
#define SD_BGPRIO_H

/* The niceness of background threads (weight 110 against 1024 at nice 0). */
#define SD_BGPRIO_NICE 10

/* Lowers the calling thread to background priority (above). Returns 0, or the -errno of the
 * first step that failed (the thread keeps the steps applied before it; the caller may go on
 * at its old priority: nothing depends on it but latency). Any thread; idempotent. */
int sd_bgprio_enter(void);

/* 1 if thread tid (a Linux thread id; 0 = the caller) runs at background priority (both the
 * CPU and the I/O part), 0 if not, -errno if it cannot be read. For tests and diagnostics. */
int sd_bgprio_is_background(int tid);

#endif
