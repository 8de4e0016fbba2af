/* test_taskpool.c: the shared pool of serial tasks: no lost schedule, never two runs of one
 * task at once, tasks in parallel up to the pool size, detach while running or queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/sd_error.h"
#include "core/sd_taskpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTASKS 64
#define NPRODUCERS 4
#define ROUNDS 2000

/* A task that records how often it ran, whether it ever overlapped itself, and the request
 * counter it saw last (a schedule after a request must lead to a run that sees it). */
struct counted {
    struct sd_task task;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;
    int overlap;
    uint64_t requested;
    uint64_t seen;
    uint64_t runs;
    int block; /* run waits while set */
};

static void counted_run(void *arg)
{
    struct counted *c = arg;

    pthread_mutex_lock(&c->mu);
    if (c->running) {
        c->overlap = 1;
    }
    c->running = 1;
    c->runs++;
    pthread_cond_broadcast(&c->cv);
    while (c->block) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    c->seen = c->requested;
    pthread_mutex_unlock(&c->mu);
    usleep(10); /* widen the window for a second schedule during the run */
    pthread_mutex_lock(&c->mu);
    c->running = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void counted_init(struct counted *c, struct sd_taskpool *p)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    sd_task_init(&c->task, p, counted_run, c);
}

static void counted_fini(struct counted *c)
{
    sd_task_detach(&c->task);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static void counted_request(struct counted *c)
{
    pthread_mutex_lock(&c->mu);
    c->requested++;
    pthread_mutex_unlock(&c->mu);
    sd_task_schedule(&c->task);
}

/* Waits until c has seen its last request (5 s at most); returns 1 if it did. */
static int counted_wait_seen(struct counted *c)
{
    struct timespec ts;
    int ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&c->mu);
    while (c->seen != c->requested || c->running) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0) {
            break;
        }
    }
    ok = c->seen == c->requested && !c->running;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static void test_create_invalid(void **state)
{
    struct sd_taskpool *p = (struct sd_taskpool *)1;

    (void)state;
    assert_int_equal(sd_taskpool_create(0, &p), SD_EINVAL);
    assert_null(p);
    sd_taskpool_destroy(NULL);
}

struct producer {
    struct counted *tasks;
    unsigned seed;
};

static void *producer_main(void *arg)
{
    struct producer *pr = arg;

    for (int i = 0; i < ROUNDS; i++) {
        counted_request(&pr->tasks[rand_r(&pr->seed) % NTASKS]);
    }
    return NULL;
}

/* Many producers schedule many tasks on few threads: every request is seen by a later run
 * and no task ever runs twice at once. */
static void test_no_lost_schedule(void **state)
{
    struct sd_taskpool *p = NULL;
    struct counted *tasks = calloc(NTASKS, sizeof(*tasks));
    struct producer prs[NPRODUCERS];
    pthread_t tids[NPRODUCERS];
    uint64_t runs = 0;

    (void)state;
    assert_int_equal(sd_taskpool_create(3, &p), 0);
    for (int i = 0; i < NTASKS; i++) {
        counted_init(&tasks[i], p);
    }
    for (int i = 0; i < NPRODUCERS; i++) {
        prs[i].tasks = tasks;
        prs[i].seed = (unsigned)i + 1;
        pthread_create(&tids[i], NULL, producer_main, &prs[i]);
    }
    for (int i = 0; i < NPRODUCERS; i++) {
        pthread_join(tids[i], NULL);
    }
    for (int i = 0; i < NTASKS; i++) {
        assert_true(counted_wait_seen(&tasks[i]));
        assert_int_equal(tasks[i].overlap, 0);
        runs += tasks[i].runs;
    }
    /* Schedules of a queued task coalesce. */
    assert_true(runs <= (uint64_t)NPRODUCERS * ROUNDS);
    for (int i = 0; i < NTASKS; i++) {
        counted_fini(&tasks[i]);
    }
    sd_taskpool_destroy(p);
    free(tasks);
}

/* Waits until c runs (5 s at most); returns 1 if it does. */
static int counted_wait_running(struct counted *c)
{
    struct timespec ts;
    int ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&c->mu);
    while (!c->running) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0) {
            break;
        }
    }
    ok = c->running;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static void counted_unblock(struct counted *c)
{
    pthread_mutex_lock(&c->mu);
    c->block = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Tasks that block (a slow fdatasync) hold one thread each: the others still run, up to the
 * pool size. */
static void test_parallel_up_to_pool_size(void **state)
{
    struct sd_taskpool *p = NULL;
    struct counted c[4];

    (void)state;
    assert_int_equal(sd_taskpool_create(4, &p), 0);
    for (int i = 0; i < 4; i++) {
        counted_init(&c[i], p);
        c[i].block = 1;
        counted_request(&c[i]);
    }
    for (int i = 0; i < 4; i++) {
        assert_true(counted_wait_running(&c[i])); /* all four at once */
    }
    for (int i = 0; i < 4; i++) {
        counted_unblock(&c[i]);
        assert_true(counted_wait_seen(&c[i]));
        counted_fini(&c[i]);
    }
    sd_taskpool_destroy(p);
}

struct detacher {
    struct counted *c;
    int done;
};

static void *detacher_main(void *arg)
{
    struct detacher *d = arg;

    sd_task_detach(&d->c->task);
    __atomic_store_n(&d->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Detach waits for a running callback; a queued task detached never runs. */
static void test_detach_running_and_queued(void **state)
{
    struct sd_taskpool *p = NULL;
    struct counted a;
    struct counted b;
    struct detacher d;
    pthread_t tid;

    (void)state;
    assert_int_equal(sd_taskpool_create(1, &p), 0);
    counted_init(&a, p);
    counted_init(&b, p);
    a.block = 1;
    counted_request(&a);
    assert_true(counted_wait_running(&a));
    counted_request(&a); /* rerun requested while running */
    counted_request(&b); /* queued behind a: the only thread is busy */
    sd_task_detach(&b.task);
    d.c = &a;
    d.done = 0;
    pthread_create(&tid, NULL, detacher_main, &d);
    usleep(50 * 1000);
    assert_int_equal(__atomic_load_n(&d.done, __ATOMIC_SEQ_CST), 0);
    counted_unblock(&a);
    pthread_join(tid, NULL);
    assert_int_equal(a.running, 0);
    assert_int_equal(a.overlap, 0);
    usleep(20 * 1000);
    assert_int_equal(b.runs, 0);
    counted_fini(&a);
    counted_fini(&b); /* detaching twice is a no-op */
    sd_taskpool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_invalid),
        cmocka_unit_test(test_no_lost_schedule),
        cmocka_unit_test(test_parallel_up_to_pool_size),
        cmocka_unit_test(test_detach_running_and_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
