/* sd_bgprio.c: lowers a thread's CPU and I/O priority (sd_bgprio.h).
 *
 * DESIGN: Linux keeps the scheduling policy and the I/O priority per thread, so each call
 * addresses the caller's thread id: sched_setattr(SCHED_IDLE) for the CPU part and the
 * ioprio_set system call (no glibc wrapper) for the I/O part; sd_bgprio_thread_start also names
 * the thread (pthread_setname_np). No state, no locks; failures are returned, never logged. */
#include "core/sd_bgprio.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* linux/ioprio.h */
#define SD__IOPRIO_CLASS_SHIFT 13
#define SD__IOPRIO_CLASS_BE 2
#define SD__IOPRIO_BE_LOWEST 7
#define SD__IOPRIO_WHO_PROCESS 1

/* linux/sched/types.h (glibc < 2.41 has no struct sched_attr) */
struct sd__sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

int sd_bgprio_enter(void)
{
    struct sd__sched_attr a;
    pid_t tid = (pid_t)syscall(SYS_gettid);

    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.sched_policy = SCHED_IDLE;
    if (syscall(SYS_sched_setattr, tid, &a, 0) != 0) {
        return -errno;
    }
    if (syscall(SYS_ioprio_set, SD__IOPRIO_WHO_PROCESS, tid,
                (SD__IOPRIO_CLASS_BE << SD__IOPRIO_CLASS_SHIFT) | SD__IOPRIO_BE_LOWEST) != 0) {
        return -errno;
    }
    return 0;
}

void sd_bgprio_thread_start(const char *name)
{
    pthread_setname_np(pthread_self(), name);
    (void)sd_bgprio_enter();
}

int sd_bgprio_is_background(int tid)
{
    struct sd__sched_attr a;
    long io;

    memset(&a, 0, sizeof(a));
    if (syscall(SYS_sched_getattr, (pid_t)tid, &a, sizeof(a), 0) != 0) {
        return -errno;
    }
    io = syscall(SYS_ioprio_get, SD__IOPRIO_WHO_PROCESS, (pid_t)tid);
    if (io < 0) {
        return -errno;
    }
    return a.sched_policy == SCHED_IDLE &&
           io == ((SD__IOPRIO_CLASS_BE << SD__IOPRIO_CLASS_SHIFT) | SD__IOPRIO_BE_LOWEST);
}
