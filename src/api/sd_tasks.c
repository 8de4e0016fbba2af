/* sd_tasks.c: asynchronous API tasks: queue, worker thread, records, locks and cleanup.
 *
 * DESIGN: one worker thread runs the tasks one at a time in submission order, so tasks never
 * race each other inside this process; state-store transactions guard against everything else.
 * The mutex protects only the queue, the lock set and the stop flag; it is never held while a
 * task runs or while the state store is called. A job owns its record and its argument; submit
 * hands both to the worker (the caller gets a copy of the record). The record is written
 * "processing" before the job is queued and written again, finished, right after the job's
 * lock is released, so a client that sees the task finished can act on the object at once. A
 * process that dies mid-task leaves a "processing" record; the next start finishes it as
 * interrupted.
 *
 * Quotas: a creating task holds a slot (its prefix and key) from submit until it ends. A
 * second mutex, quota_mu, covers the count at submit (a state-store range of the prefix plus
 * the slots of that prefix not yet committed) and the release of a slot, which happens only
 * after the task's commit or failure. So every counted entity is seen either committed or
 * reserved, never neither, and parallel creations cannot pass the limit and fail later.
 * Claims (a name and what the task makes of it) live in the same list under the same mutex
 * and are released at the same point, for the same reason. */
#include "api/sd_tasks.h"
#include "core/sd_alloc.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_metrics_reg.h"
#include "core/sd_time.h"
#include "defs/sd_defs.h"
#include "state/sd_state.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SD_TASKS_SUCCESS_TTL_MS (3600LL * 1000)
#define SD_TASKS_OTHER_TTL_MS (48LL * 3600 * 1000)
#define SD_TASKS_STORE_RETRY_MS 1000
#define SD_TASKS_INTERRUPTED "Task was interrupted: the service stopped before the task finished."

/* A reserved creation, the key a queued or running task may create under prefix, or (prefix
 * NULL) a claim of key with value. */
struct sd_task_slot {
    struct sd_task_slot *next;
    char *prefix;
    char *key;
    char *value;
};

struct sd_task_job {
    struct sd_task_job *next;
    char *key;                  /* state key of the record */
    json_t *record;             /* owned */
    char *lock_key;             /* owned; NULL = none */
    struct sd_task_slot *slot;  /* in the quota list while reserved; NULL = none */
    struct sd_task_slot *claim; /* likewise */
    int64_t created_ms;
    sd_task_fn fn;
    void *arg;
    sd_task_free_fn free_arg;
};

struct sd_tasks {
    struct sd_state *st;
    char *api_url;
    int64_t cleanup_interval_ms;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct sd_task_job *head, *tail; /* queue, guarded by mu */
    char **locks;                    /* held lock keys, guarded by mu */
    size_t nlocks, cap_locks;
    int is_stopping; /* guarded by mu */
    pthread_mutex_t quota_mu;
    struct sd_task_slot *slots; /* reserved creations, guarded by quota_mu */
    int is_started;
    pthread_t thread;
};

static int sd__lock_index(struct sd_tasks *t, const char *lock_key)
{
    for (size_t i = 0; i < t->nlocks; i++) {
        if (strcmp(t->locks[i], lock_key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Removes lock_key from the set (caller holds mu). */
static void sd__unlock_key(struct sd_tasks *t, const char *lock_key)
{
    int i = sd__lock_index(t, lock_key);

    if (i >= 0) {
        free(t->locks[i]);
        t->locks[i] = t->locks[--t->nlocks];
    }
}

/* 1 if kvs (sorted by key) holds key. */
static int sd__kvs_has(const struct sd_kvs *kvs, const char *key)
{
    size_t lo = 0, hi = kvs->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(kvs->items[mid].key, key);
        if (c == 0) {
            return 1;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return 0;
}

/* Counts the entities of q->prefix, committed or reserved, as if q->key were added; reserves
 * q->key into *out when that stays within q->max. Returns 0, SD_ELIMIT or a state-store error. */
static int sd__reserve(struct sd_tasks *t, const struct sd_task_quota *q, struct sd_task_slot **out)
{
    struct sd_task_slot *s;
    struct sd_kvs kvs;
    size_t used;
    int has_key;
    int rc;

    *out = NULL;
    memset(&kvs, 0, sizeof(kvs));
    pthread_mutex_lock(&t->quota_mu);
    rc = sd_state_range(t->st, q->prefix, 0, &kvs);
    if (rc != 0) {
        goto out;
    }
    used = kvs.n;
    has_key = sd__kvs_has(&kvs, q->key);
    for (s = t->slots; s != NULL; s = s->next) {
        if (s->prefix == NULL || strcmp(s->prefix, q->prefix) != 0 || sd__kvs_has(&kvs, s->key)) {
            continue;
        }
        used++;
        has_key = has_key || strcmp(s->key, q->key) == 0;
    }
    if (used + (has_key ? 0 : 1) > q->max) {
        rc = SD_ELIMIT;
        goto out;
    }
    s = sd_xcalloc(1, sizeof(*s));
    s->prefix = sd_xstrdup(q->prefix);
    s->key = sd_xstrdup(q->key);
    s->next = t->slots;
    t->slots = s;
    *out = s;

out:
    pthread_mutex_unlock(&t->quota_mu);
    sd_kvs_free(&kvs);
    return rc;
}

/* Runs c->check with the differing value another task claims for c->key, if any; takes the
 * claim into *out when it passes. Returns 0 or check's code. */
static int sd__claim(struct sd_tasks *t, const struct sd_task_claim *c, struct sd_task_slot **out)
{
    struct sd_task_slot *s;
    const char *held = NULL;
    int rc;

    *out = NULL;
    pthread_mutex_lock(&t->quota_mu);
    for (s = t->slots; s != NULL && held == NULL; s = s->next) {
        if (s->prefix == NULL && strcmp(s->key, c->key) == 0 && strcmp(s->value, c->value) != 0) {
            held = s->value;
        }
    }
    rc = c->check(c->arg, held);
    if (rc == 0) {
        s = sd_xcalloc(1, sizeof(*s));
        s->key = sd_xstrdup(c->key);
        s->value = sd_xstrdup(c->value);
        s->next = t->slots;
        t->slots = s;
        *out = s;
    }
    pthread_mutex_unlock(&t->quota_mu);
    return rc;
}

/* Releases a slot taken by sd__reserve or sd__claim (NULL is fine). */
static void sd__release(struct sd_tasks *t, struct sd_task_slot *slot)
{
    struct sd_task_slot **p;

    if (slot == NULL) {
        return;
    }
    pthread_mutex_lock(&t->quota_mu);
    for (p = &t->slots; *p != NULL; p = &(*p)->next) {
        if (*p == slot) {
            *p = slot->next;
            break;
        }
    }
    pthread_mutex_unlock(&t->quota_mu);
    free(slot->prefix);
    free(slot->key);
    free(slot->value);
    free(slot);
}

static void sd__job_free(struct sd_task_job *job)
{
    if (job == NULL) {
        return;
    }
    if (job->free_arg != NULL) {
        job->free_arg(job->arg);
    }
    free(job->key);
    free(job->lock_key);
    json_decref(job->record);
    free(job);
}

static int sd__put_record(struct sd_state *st, const char *key, const json_t *record)
{
    char *text = json_dumps(record, JSON_COMPACT);
    int rc;

    if (text == NULL) {
        return -ENOMEM;
    }
    rc = sd_state_put(st, key, text, strlen(text), 0, NULL);
    free(text);
    return rc;
}

/* Marks record finished at now_ms: status, isFinished, finishedAt, duration, result or error,
 * outputs (consumed; may be NULL). */
static void sd__finish(json_t *record, int64_t created_ms, int64_t now_ms, int ok,
                       const char *result, const char *error, json_t *outputs)
{
    char at[SD_TIME_ISO_LEN + 1];

    sd_time_format_iso(now_ms, at);
    json_object_set_new(record, "status", json_string(ok ? "success" : "error"));
    json_object_set_new(record, "isFinished", json_true());
    json_object_set_new(record, "finishedAt", json_string(at));
    json_object_set_new(record, "duration",
                        json_integer(now_ms > created_ms ? now_ms - created_ms : 0));
    if (ok) {
        json_object_set_new(record, "result", json_string(result ? result : ""));
    } else {
        json_object_set_new(record, "error", json_string(error ? error : "unknown error"));
    }
    if (outputs != NULL) {
        json_object_set_new(record, "outputs", outputs);
    }
}

/* Milliseconds of an ISO member of record, or fallback when missing or malformed. */
static int64_t sd__time_member(const json_t *record, const char *name, int64_t fallback)
{
    const char *s = json_string_value(json_object_get(record, name));
    int64_t ms;

    if (s == NULL || sd_time_parse_iso(s, &ms) != 0) {
        return fallback;
    }
    return ms;
}

/* Waits wait_ms unless the tasks stop; returns 1 when not stopping. */
static int sd__wait_unless_stopping(struct sd_tasks *t, int64_t wait_ms)
{
    int go_on;

    pthread_mutex_lock(&t->mu);
    if (!t->is_stopping) {
        sd_cond_wait_ms(&t->cond, &t->mu, wait_ms);
    }
    go_on = !t->is_stopping;
    pthread_mutex_unlock(&t->mu);
    return go_on;
}

static void sd__run_job(struct sd_tasks *t, struct sd_task_job *job)
{
    struct sd_task_outcome out;
    int rc;

    memset(&out, 0, sizeof(out));
    sd_buf_init(&out.error);
    sd_mreg_task_started(json_string_value(json_object_get(job->record, "type")));
    rc = job->fn(job->arg, &out);
    sd_mreg_task_finished(json_string_value(json_object_get(job->record, "type")), rc == 0,
                          (double)(sd_now_ms() - job->created_ms));
    sd__finish(job->record, job->created_ms, sd_now_ms(), rc == 0, out.result,
               sd_buf_cstr(&out.error), out.outputs);
    if (rc != 0) {
        sd_log_warn("tasks", "task %s failed: %s",
                    json_string_value(json_object_get(job->record, "taskId")),
                    sd_buf_cstr(&out.error));
    }
    /* Release the slot and unlock first: a client that sees the finished record may at once
     * start the next task on the same object or take the freed slot. Only this worker runs
     * tasks, so nothing can overtake this one. */
    sd__release(t, job->slot);
    sd__release(t, job->claim);
    job->slot = job->claim = NULL;
    if (job->lock_key != NULL) {
        pthread_mutex_lock(&t->mu);
        sd__unlock_key(t, job->lock_key);
        pthread_mutex_unlock(&t->mu);
    }
    rc = sd__put_record(t->st, job->key, job->record);
    while (rc == SD_EUNHEALTHY && sd__wait_unless_stopping(t, SD_TASKS_STORE_RETRY_MS)) {
        rc = sd__put_record(t->st, job->key, job->record); /* the store recovers by itself */
    }
    if (rc != 0) {
        sd_log_error("tasks", "cannot store the result of task %s: %s",
                     json_string_value(json_object_get(job->record, "taskId")), sd_strerror(rc));
    }
    sd_buf_fini(&out.error);
    sd__job_free(job);
}

static void *sd__worker_main(void *arg)
{
    struct sd_tasks *t = arg;
    int64_t next_cleanup = sd_mono_ms() + t->cleanup_interval_ms;

    pthread_mutex_lock(&t->mu);
    while (!t->is_stopping) {
        struct sd_task_job *job = t->head;
        if (job != NULL) {
            t->head = job->next;
            if (t->head == NULL) {
                t->tail = NULL;
            }
            pthread_mutex_unlock(&t->mu);
            sd__run_job(t, job);
            pthread_mutex_lock(&t->mu);
            continue;
        }
        if (t->cleanup_interval_ms <= 0) {
            pthread_cond_wait(&t->cond, &t->mu);
            continue;
        }
        if (sd_mono_ms() >= next_cleanup) {
            int64_t deleted = 0;
            int rc;
            pthread_mutex_unlock(&t->mu);
            rc = sd_tasks_cleanup(t, sd_now_ms(), &deleted);
            if (rc != 0) {
                sd_log_warn("tasks", "task cleanup failed: %s", sd_strerror(rc));
            } else if (deleted > 0) {
                sd_log_info("tasks", "task cleanup deleted %" PRId64 " old tasks", deleted);
            }
            next_cleanup = sd_mono_ms() + t->cleanup_interval_ms;
            pthread_mutex_lock(&t->mu);
            continue;
        }
        (void)sd_cond_wait_until_ms(&t->cond, &t->mu, next_cleanup);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Finishes every "processing" record left by a previous run as interrupted. */
static int sd__finish_interrupted(struct sd_tasks *t)
{
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(t->st, "task/", 0, &kvs);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < kvs.n && rc == 0; i++) {
        json_t *rec = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *status = json_string_value(json_object_get(rec, "status"));
        if (status != NULL && strcmp(status, "processing") == 0) {
            int64_t now = sd_now_ms();
            sd__finish(rec, sd__time_member(rec, "createdAt", now), now, 0, NULL,
                       SD_TASKS_INTERRUPTED, NULL);
            rc = sd__put_record(t->st, kvs.items[i].key, rec);
            sd_log_warn("tasks", "task %s was interrupted by a restart",
                        json_string_value(json_object_get(rec, "taskId")));
        }
        json_decref(rec);
    }
    sd_kvs_free(&kvs);
    return rc;
}

int sd_tasks_create(struct sd_state *st, const char *api_public_url, int64_t cleanup_interval_ms,
                    struct sd_tasks **out)
{
    struct sd_tasks *t = sd_xcalloc(1, sizeof(*t));
    int rc;

    *out = NULL;
    t->st = st;
    t->api_url = sd_xstrdup(api_public_url ? api_public_url : "");
    t->cleanup_interval_ms = cleanup_interval_ms;
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->quota_mu, NULL);
    sd_cond_init_monotonic(&t->cond);
    rc = sd__finish_interrupted(t);
    if (rc != 0) {
        goto fail;
    }
    rc = -pthread_create(&t->thread, NULL, sd__worker_main, t);
    if (rc != 0) {
        goto fail;
    }
    t->is_started = 1;
    *out = t;
    return 0;

fail:
    sd_tasks_destroy(t);
    return rc;
}

void sd_tasks_destroy(struct sd_tasks *t)
{
    struct sd_task_job *job;

    if (t == NULL) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->is_stopping = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    if (t->is_started) {
        pthread_join(t->thread, NULL);
    }
    while ((job = t->head) != NULL) {
        int64_t now = sd_now_ms();
        t->head = job->next;
        sd__finish(job->record, job->created_ms, now, 0, NULL, SD_TASKS_INTERRUPTED, NULL);
        if (sd__put_record(t->st, job->key, job->record) != 0) {
            sd_log_warn("tasks", "cannot store an interrupted task");
        }
        sd__release(t, job->slot);
        sd__release(t, job->claim);
        sd__job_free(job);
    }
    for (size_t i = 0; i < t->nlocks; i++) {
        free(t->locks[i]);
    }
    free(t->locks);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->quota_mu);
    free(t->api_url);
    free(t);
}

int sd_tasks_submit(struct sd_tasks *t, const struct sd_task_spec *spec, json_t **task)
{
    struct sd_task_slot *slot = NULL, *claim = NULL;
    struct sd_task_job *job;
    char at[SD_TIME_ISO_LEN + 1];
    char suffix[6];
    char *task_id, *url;
    int is_locked = 0;
    int rc;

    *task = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->is_stopping) {
        rc = SD_ECLOSED;
    } else if (spec->lock_key != NULL && sd__lock_index(t, spec->lock_key) >= 0) {
        rc = SD_ECONFLICT;
    } else {
        rc = 0;
        if (spec->lock_key != NULL) {
            if (t->nlocks == t->cap_locks) {
                t->cap_locks = t->cap_locks ? 2 * t->cap_locks : 16;
                t->locks = sd_xrealloc(t->locks, t->cap_locks * sizeof(*t->locks));
            }
            t->locks[t->nlocks++] = sd_xstrdup(spec->lock_key);
            is_locked = 1;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (rc == 0 && spec->quota != NULL) {
        rc = sd__reserve(t, spec->quota, &slot);
    }
    if (rc == 0 && spec->claim != NULL) {
        rc = sd__claim(t, spec->claim, &claim);
    }
    if (rc != 0) {
        sd__release(t, slot);
        if (is_locked) {
            pthread_mutex_lock(&t->mu);
            sd__unlock_key(t, spec->lock_key);
            pthread_mutex_unlock(&t->mu);
        }
        if (spec->free_arg != NULL) {
            spec->free_arg(spec->arg);
        }
        return rc;
    }

    job = sd_xcalloc(1, sizeof(*job));
    job->slot = slot;
    job->claim = claim;
    job->created_ms = sd_now_ms();
    job->fn = spec->fn;
    job->arg = spec->arg;
    job->free_arg = spec->free_arg;
    job->lock_key = spec->lock_key ? sd_xstrdup(spec->lock_key) : NULL;
    sd_time_format_iso(job->created_ms, at);
    sd_defs_random_chars(suffix, 5, "abcdefghijklmnopqrstuvwxyz0123456789");
    task_id = sd_xasprintf("%s/%s/%s_%s", spec->type, spec->object_key, at, suffix);
    url = sd_xasprintf("%s/v1/tasks/%s", t->api_url, task_id);
    job->key = sd_xasprintf("task/%" PRId64 "/%s", spec->project_id, task_id);
    job->record = json_object();
    json_object_set_new(job->record, "taskId", json_string(task_id));
    json_object_set_new(job->record, "type", json_string(spec->type));
    json_object_set_new(job->record, "url", json_string(url));
    json_object_set_new(job->record, "status", json_string("processing"));
    json_object_set_new(job->record, "isFinished", json_false());
    json_object_set_new(job->record, "createdAt", json_string(at));
    free(task_id);
    free(url);

    rc = sd__put_record(t->st, job->key, job->record);
    if (rc != 0) {
        sd__release(t, job->slot);
        sd__release(t, job->claim);
        pthread_mutex_lock(&t->mu);
        if (job->lock_key != NULL) {
            sd__unlock_key(t, job->lock_key);
        }
        pthread_mutex_unlock(&t->mu);
        sd__job_free(job);
        return rc;
    }
    *task = json_deep_copy(job->record);
    pthread_mutex_lock(&t->mu);
    if (t->tail != NULL) {
        t->tail->next = job;
    } else {
        t->head = job;
    }
    t->tail = job;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

int sd_tasks_get(struct sd_tasks *t, int64_t project_id, const char *task_id, json_t **out)
{
    char *key = sd_xasprintf("task/%" PRId64 "/%s", project_id, task_id);
    struct sd_kv kv;
    int rc;

    *out = NULL;
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(t->st, key, &kv);
    free(key);
    if (rc != 0) {
        return rc;
    }
    *out = json_loadb(kv.value, kv.value_len, 0, NULL);
    sd_kv_free(&kv);
    return *out != NULL ? 0 : SD_ECORRUPT;
}

int sd_tasks_is_locked(struct sd_tasks *t, const char *lock_key)
{
    int held;

    pthread_mutex_lock(&t->mu);
    held = sd__lock_index(t, lock_key) >= 0;
    pthread_mutex_unlock(&t->mu);
    return held;
}

int sd_tasks_cleanup(struct sd_tasks *t, int64_t now_ms, int64_t *deleted)
{
    struct sd_kvs kvs;
    int64_t n = 0;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(t->st, "task/", 0, &kvs);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < kvs.n && rc == 0; i++) {
        json_t *rec = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *status = json_string_value(json_object_get(rec, "status"));
        int is_success = status != NULL && strcmp(status, "success") == 0;
        int is_processing = status != NULL && strcmp(status, "processing") == 0;
        int64_t at = sd__time_member(rec, is_processing ? "createdAt" : "finishedAt", now_ms);
        int64_t ttl = is_success ? SD_TASKS_SUCCESS_TTL_MS : SD_TASKS_OTHER_TTL_MS;

        if (rec == NULL || now_ms - at > ttl) {
            int64_t count = 0;
            rc = sd_state_del(t->st, kvs.items[i].key, 0, &count, NULL);
            n += count;
        }
        json_decref(rec);
    }
    sd_kvs_free(&kvs);
    if (deleted != NULL) {
        *deleted = n;
    }
    return rc;
}
