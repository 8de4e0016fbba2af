/* sd_tasks.h: asynchronous API tasks (reference §2.4): a queue, one worker thread, task records
 * in the state store, per-object locks and periodic cleanup.
 *
 * A task record lives at "task/<projectId>/<taskId>" and is the API's Task JSON:
 * {taskId, type, url, status, isFinished, createdAt, finishedAt?, duration?, result?, error?,
 * outputs?}. taskId = "<type>/<objectKey>/<createdAt>_<5 random [a-z0-9]>", url =
 * "<api_public_url>/v1/tasks/<taskId>".
 *
 * Threads: submit/get may be called from any thread (the API loop); task functions run on the
 * worker thread, one at a time, in submission order. A record found "processing" at start-up
 * (the process died mid-task) is finished as error "interrupted"; so are the tasks still queued
 * when sd_tasks_destroy runs. */
#ifndef SD_TASKS_H
#define SD_TASKS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

struct sd_state;
struct sd_tasks;

/* What a task function reports. result: a static success sentence; outputs: optional object
 * (ownership passes to the framework); error: the message when the function fails. */
struct sd_task_outcome {
    const char *result;
    json_t *outputs;
    struct sd_buf error;
};

/* Runs on the worker thread. Returns 0 on success (set out->result), nonzero on failure (write
 * out->error). */
typedef int (*sd_task_fn)(void *arg, struct sd_task_outcome *out);
/* Frees the argument of a task (worker thread or the submitting thread on failure). */
typedef void (*sd_task_free_fn)(void *arg);

/* A creation counted against a limit (sources per branch, sinks per source). At most max keys
 * may exist directly under prefix, counting both the keys committed in the state store and those
 * reserved by queued or running tasks; a key in both counts once. The reservation of key is
 * taken at submit and released when the task ends, after its commit (or its failure). */
struct sd_task_quota {
    const char *prefix; /* state-store prefix of the counted entities, e.g. a branch's sources */
    const char *key;    /* the key the task may create, under prefix */
    size_t max;
    const char *what; /* for the caller's limit message, e.g. "sources per branch" */
};

/* A name that tasks must agree on while they run, e.g. the table a sink writes to: key is the
 * name as the backend compares it (a table id folded to lower case), value what the task makes
 * of it (the exact id and the columns). At submit, under the mutex that covers the claims and
 * their release, check runs with held = the value another queued or running task claims for
 * key when it differs from value (else NULL); it also reads what such tasks change (the table),
 * so the two form one view. When check returns 0 the claim is taken until the task ends;
 * otherwise submit fails with check's code, and check has said why in *why. */
struct sd_task_claim {
    const char *key;
    const char *value;
    int (*check)(void *arg, const char *held);
    void *arg;
    struct sd_buf *why;
};

struct sd_task_spec {
    int64_t project_id;
    const char *type;       /* e.g. "api.create.source" */
    const char *object_key; /* object key without the project: "<branchId>/<sourceId>[/<sinkId>]" */
    const char *lock_key;   /* held from submit until the task ends; NULL = none */
    sd_task_fn fn;
    void *arg;
    sd_task_free_fn free_arg;          /* may be NULL */
    const struct sd_task_quota *quota; /* NULL = the task creates nothing counted */
    const struct sd_task_claim *claim; /* NULL = none */
};

/* Opens the framework on st (borrowed; must outlive it): finishes interrupted records, then
 * starts the worker. cleanup_interval_ms <= 0 disables cleanup. api_public_url is copied.
 * Returns 0 with *out owned (free with sd_tasks_destroy), or an error. */
int sd_tasks_create(struct sd_state *st, const char *api_public_url, int64_t cleanup_interval_ms,
                    struct sd_tasks **out);

/* Lets the running task finish, finishes the queued ones as "interrupted", joins the worker and
 * frees t. NULL is fine. */
void sd_tasks_destroy(struct sd_tasks *t);

/* Creates a task: takes spec->lock_key, reserves spec->quota's key, takes spec->claim, stores
 * the "processing" record and queues the task. The quota is checked and reserved under one
 * mutex, so parallel submits never admit more than quota->max; claims likewise. Returns 0 with
 * *task (new reference) the record to answer with; SD_ECONFLICT when lock_key is held by
 * another task; SD_ELIMIT when the quota is full; the claim's check code; SD_ECLOSED when
 * shutting down; or a state-store error. spec->arg is consumed in every case (freed with
 * free_arg when the task is not queued). */
int sd_tasks_submit(struct sd_tasks *t, const struct sd_task_spec *spec, json_t **task);

/* Reads the record of task_id in project_id. Returns 0 with *out (new reference), SD_ENOTFOUND,
 * or a state-store error. */
int sd_tasks_get(struct sd_tasks *t, int64_t project_id, const char *task_id, json_t **out);

/* 1 while lock_key is held by a queued or running task. */
int sd_tasks_is_locked(struct sd_tasks *t, const char *lock_key);

/* Deletes finished records: success older than 1 h, others older than 48 h (by finishedAt, or
 * createdAt when unfinished), as of now_ms. Normally run by the worker every cleanup interval.
 * *deleted (may be NULL) gets the count. Returns 0 or a state-store error. */
int sd_tasks_cleanup(struct sd_tasks *t, int64_t now_ms, int64_t *deleted);

#endif
