/* test_bgprio.c: unit tests of core/sd_bgprio: a thread that enters background priority runs
 * SCHED_BATCH at nice SD_BGPRIO_NICE at the lowest best-effort I/O level, as the kernel reports
 * it for that thread id; the other threads keep their priority; entering twice is fine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/sd_bgprio.h"

struct probe {
    int tid;
    int rc_enter;
    int rc_again;
    int is_bg_after;
    int nice_field; /* field 19 of /proc/self/task/<tid>/stat, read in the thread */
};

/* The nice value the kernel shows for a thread in /proc (what ps and top read). */
static int stat_nice(int tid)
{
    char path[64], buf[1024];
    FILE *f;
    char *p;
    int nice = -100;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -100;
    }
    if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL) {
        /* after ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
         * cmajflt utime stime cutime cstime priority nice(19) */
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %d", &nice);
    }
    fclose(f);
    return nice;
}

static void *bg_main(void *arg)
{
    struct probe *pr = arg;

    pr->tid = (int)syscall(SYS_gettid);
    pr->rc_enter = sd_bgprio_enter();
    pr->rc_again = sd_bgprio_enter();
    pr->is_bg_after = sd_bgprio_is_background(0);
    pr->nice_field = stat_nice(pr->tid);
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
    assert_int_equal(pr.nice_field, SD_BGPRIO_NICE);
    /* the caller's thread is untouched */
    assert_int_equal(sd_bgprio_is_background(0), 0);
    assert_int_equal(sd_bgprio_is_background(me), 0);
    assert_int_equal(stat_nice(me), 0);
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
        cmocka_unit_test(test_unknown_thread_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
