/* test_bgprio.c: unit tests of core/sd_bgprio: a thread that enters background priority runs
 * SCHED_IDLE at the lowest best-effort I/O level, as the kernel reports
 * it for that thread id; the other threads keep their priority; entering twice is fine; a
 * background thread's start names the thread and lowers it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/sd_bgprio.h"

struct probe {
    int tid;
    int rc_enter;
    int rc_again;
    int is_bg_after;
    int policy_field; /* field 41 of /proc/self/task/<tid>/stat, read in the thread */
};

/* The scheduling policy the kernel shows for a thread in /proc (field 41 of its stat, what ps
 * reads), or -1. */
static int stat_policy(int tid)
{
    char path[64], buf[1024];
    FILE *f;
    char *p;
    int policy = -1;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL) {
        /* after ") " come fields 3 (state) to 52: skip 3..40 */
        char *save = NULL;
        char *tok = strtok_r(p + 2, " ", &save);
        for (int field = 3; tok != NULL && field < 41; field++) {
            tok = strtok_r(NULL, " ", &save);
        }
        if (tok != NULL) {
            policy = atoi(tok);
        }
    }
    fclose(f);
    return policy;
}

static void *bg_main(void *arg)
{
    struct probe *pr = arg;

    pr->tid = (int)syscall(SYS_gettid);
    pr->rc_enter = sd_bgprio_enter();
    pr->rc_again = sd_bgprio_enter();
    pr->is_bg_after = sd_bgprio_is_background(0);
    pr->policy_field = stat_policy(pr->tid);
    return NULL;
}

static void test_thread_enters_background(void **state)
{
    struct probe pr = {0};
    pthread_t t;
    int me = (int)syscall(SYS_gettid);

    (void)state;
    assert_int_equal(sd_bgprio_is_background(0), 0);
    assert_int_equal(pthread_create(&t, NULL, bg_main, &pr), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(pr.rc_enter, 0);
    assert_int_equal(pr.rc_again, 0);
    assert_int_equal(pr.is_bg_after, 1);
    assert_int_equal(pr.policy_field, SCHED_IDLE);
    /* the caller's thread is untouched */
    assert_int_equal(sd_bgprio_is_background(0), 0);
    assert_int_equal(sd_bgprio_is_background(me), 0);
    assert_int_equal(stat_policy(me), SCHED_OTHER);
}

/* A thread created by a background thread inherits its priority (why the header says to call
 * it only in threads that start no data-path thread). */
static void *child_main(void *arg)
{
    *(int *)arg = sd_bgprio_is_background(0);
    return NULL;
}

static void *parent_main(void *arg)
{
    pthread_t t;

    if (sd_bgprio_enter() != 0 || pthread_create(&t, NULL, child_main, arg) != 0) {
        return NULL;
    }
    pthread_join(t, NULL);
    return NULL;
}

static void test_children_inherit(void **state)
{
    int child_bg = -1;
    pthread_t t;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, parent_main, &child_bg), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(child_bg, 1);
}

/* sd_bgprio_thread_start names the thread and lowers it. */
struct started {
    char name[16];
    int is_bg;
};

static void *started_main(void *arg)
{
    struct started *st = arg;

    sd_bgprio_thread_start("sd-test-bg");
    if (pthread_getname_np(pthread_self(), st->name, sizeof(st->name)) != 0) {
        st->name[0] = '\0';
    }
    st->is_bg = sd_bgprio_is_background(0);
    return NULL;
}

static void test_thread_start_names_and_lowers(void **state)
{
    struct started st = {.is_bg = -1};
    pthread_t t;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, started_main, &st), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_string_equal(st.name, "sd-test-bg");
    assert_int_equal(st.is_bg, 1);
}

static void test_unknown_thread_is_an_error(void **state)
{
    (void)state;
    assert_true(sd_bgprio_is_background(0x3fffffff) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_enters_background),
        cmocka_unit_test(test_children_inherit),
        cmocka_unit_test(test_thread_start_names_and_lowers),
        cmocka_unit_test(test_unknown_thread_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
