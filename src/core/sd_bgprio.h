/* sd_bgprio.h: background priority for threads that must not compete with the data path.
 *
 * Uploads, imports, statistics and cleanups run beside the ingestion loop and the slice
 * writers; on a busy core or disk they should take only what the data path leaves. A thread
 * that calls sd_bgprio_enter runs from then on with
 *   - CPU: SCHED_IDLE: it runs when no normal thread of the core wants to, and a waking
 *     data-path thread preempts it at once. (SCHED_BATCH at nice 10 was not enough: the
 *     scheduler let a running upload finish its slice, up to 5 ms, while the event loop waited
 *     with answers; the p99 with imports every second was 2.5 times that without.) On a node
 *     whose every core is kept busy by ingestion, uploads and imports wait for a quieter moment;
 *     the records wait durably on the local disk meanwhile;
 *   - I/O: best effort at the lowest level, 7 (schedulers with levels, BFQ, serve it after
 *     the others'; not the idle class: a data-path sync can wait on metadata or journal
 *     writes a background thread submitted, and an idle-class request waits for every other
 *     request first, so the data path would wait for its own queue to drain).
 * Both apply to the calling thread only, and are inherited by threads it creates afterwards:
 * call it only in threads that start no data-path thread. Lowering needs no privilege. */
#ifndef SD_BGPRIO_H
#define SD_BGPRIO_H

/* Lowers the calling thread to background priority (above). Returns 0, or the -errno of the
 * first step that failed (the thread keeps the steps applied before it; the caller may go on
 * at its old priority: nothing depends on it but latency). Any thread; idempotent. */
int sd_bgprio_enter(void);

/* The first step of a background thread: names the calling thread (at most 15 characters, as
 * ps and perf show it) and lowers it with sd_bgprio_enter, best effort (a thread left at its old
 * priority costs only the data path's latency). */
void sd_bgprio_thread_start(const char *name);

/* 1 if thread tid (a Linux thread id; 0 = the caller) runs at background priority (both the
 * CPU and the I/O part), 0 if not, -errno if it cannot be read. For tests and diagnostics. */
int sd_bgprio_is_background(int tid);

#endif
