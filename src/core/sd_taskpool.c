/* sd_taskpool.c: a fixed pool of threads serving serial tasks from one FIFO ready queue.
 *
 * DESIGN. One mutex guards the queue and every bound task's state. A task is IDLE, QUEUED
 * (in the queue), RUNNING (a thread runs its callback) or RERUN (running, and scheduled again
 * meanwhile). A thread pops the head, marks it RUNNING and calls the callback with no lock
 * held; afterwards a RERUN task goes back to the tail (fairness: a busy task cannot starve
 * the others) and a RUNNING one becomes IDLE. Because a task is either in the queue or held
 * by one thread, its callback never runs twice at once. Detach waits on `idle_cv` (broadcast
 * after every run) until the task is not running, then unlinks it; the pool never touches a task
 * after that, so its owner may free it. Threads sleep on `work_cv` only while the queue is empty.
 */
#include "core/sd_taskpool.h"
#include "core/sd_error.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

enum { SD__TASK_IDLE, SD__TASK_QUEUED, SD__TASK_RUNNING, SD__TASK_RERUN };

struct sd_taskpool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t idle_cv;
    struct sd_task *head;
    struct sd_task *tail;
    int stop;
    int nthreads;
    pthread_t *threads;
};

/* Queues t (under mu). The caller wakes a thread after unlocking mu: a woken thread that
 * preempted the caller would only block on mu again. */
static void sd__push(struct sd_taskpool *p, struct sd_task *t)
{
    t->next = NULL;
    if (p->tail != NULL) {
        p->tail->next = t;
    } else {
        p->head = t;
    }
    p->tail = t;
    t->state = SD__TASK_QUEUED;
}

static void *sd__taskpool_main(void *arg)
{
    struct sd_taskpool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct sd_task *t;
        while (p->head == NULL && !p->stop) {
            pthread_cond_wait(&p->work_cv, &p->mu);
        }
        if (p->head == NULL) {
            break;
        }
        t = p->head;
        p->head = t->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        t->state = SD__TASK_RUNNING;
        pthread_mutex_unlock(&p->mu);
        t->fn(t->arg);
        pthread_mutex_lock(&p->mu);
        if (t->state == SD__TASK_RERUN) {
            /* no wake: this thread takes the head next, and every task ahead had its own */
            sd__push(p, t);
        } else {
            t->state = SD__TASK_IDLE;
        }
        pthread_cond_broadcast(&p->idle_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void sd_taskpool_destroy(struct sd_taskpool *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    pthread_cond_destroy(&p->idle_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int sd_taskpool_create(int nthreads, struct sd_taskpool **out)
{
    struct sd_taskpool *p;
    int rc = 0;

    *out = NULL;
    if (nthreads < 1) {
        return SD_EINVAL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->idle_cv, NULL);
    p->threads = calloc((size_t)nthreads, sizeof(*p->threads));
    if (p->threads == NULL) {
        sd_taskpool_destroy(p);
        return -ENOMEM;
    }
    while (p->nthreads < nthreads) {
        rc = -pthread_create(&p->threads[p->nthreads], NULL, sd__taskpool_main, p);
        if (rc != 0) {
            sd_taskpool_destroy(p);
            return rc;
        }
        p->nthreads++;
    }
    *out = p;
    return 0;
}

void sd_task_init(struct sd_task *t, struct sd_taskpool *p, sd_task_fn fn, void *arg)
{
    t->pool = p;
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    t->state = SD__TASK_IDLE;
}

void sd_task_schedule(struct sd_task *t)
{
    struct sd_taskpool *p = t->pool;
    int wake = 0;

    pthread_mutex_lock(&p->mu);
    if (t->state == SD__TASK_IDLE) {
        sd__push(p, t);
        wake = 1;
    } else if (t->state == SD__TASK_RUNNING) {
        t->state = SD__TASK_RERUN;
    }
    pthread_mutex_unlock(&p->mu);
    if (wake) {
        pthread_cond_signal(&p->work_cv);
    }
}

void sd_task_detach(struct sd_task *t)
{
    struct sd_taskpool *p = t->pool;

    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    while (t->state == SD__TASK_RUNNING || t->state == SD__TASK_RERUN) {
        pthread_cond_wait(&p->idle_cv, &p->mu);
    }
    if (t->state == SD__TASK_QUEUED) {
        struct sd_task **pp = &p->head;
        struct sd_task *prev = NULL;
        while (*pp != t) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = t->next;
        if (p->tail == t) {
            p->tail = prev;
        }
    }
    t->state = SD__TASK_IDLE;
    t->pool = NULL;
    pthread_mutex_unlock(&p->mu);
}
