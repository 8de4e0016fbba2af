/* test_jsonnet.c: unit tests of the Jsonnet engine through its public API (jsonnet/sd_jsonnet.h):
 * compile errors with line:column, static errors (unknown variables and std functions), runtime
 * errors and their position, every limit (call depth, C stack, steps, memory, output) turning a
 * hostile program into an error instead of a crash or a hang, VM reuse without arena growth, host
 * functions, and the three output forms. The language itself is covered by the differential test
 * (tests/integration/test_jsonnet_diff.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "jsonnet/sd_jn_value.h"
#include "jsonnet/sd_jsonnet.h"

/* Compiles src; returns the rc and leaves the message (or "") in err. */
static int compile(const char *src, struct sd_jn_program **prog, struct sd_buf *err)
{
    int rc;

    sd_buf_reset(err);
    *prog = NULL;
    rc = sd_jn_compile(src, strlen(src), "test", NULL, 0, prog, err);
    if (rc == 0) {
        assert_non_null(*prog);
    } else {
        assert_null(*prog);
        assert_true(err->len > 0);
    }
    return rc;
}

/* Compiles src (which must compile) and evaluates it once on vm (or a fresh default VM). Returns
 * the rc of sd_jn_eval; out holds the value, err the message. */
static int eval_on(struct sd_jn_vm *vm, const char *src, enum sd_jn_output form, struct sd_buf *out,
                   struct sd_buf *err)
{
    struct sd_jn_program *prog;
    struct sd_jn_vm *own = NULL;
    int rc;

    rc = compile(src, &prog, err);
    if (rc != 0) {
        fail_msg("compile failed: %s", sd_buf_cstr(err));
    }
    if (vm == NULL) {
        own = sd_jn_vm_new(NULL);
        assert_non_null(own);
        vm = own;
    }
    sd_buf_reset(out);
    sd_buf_reset(err);
    rc = sd_jn_eval(prog, vm, NULL, form, out, err);
    if (rc != 0) {
        assert_int_equal(rc, SD_EINVAL);
        assert_int_equal(out->len, 0);
        assert_true(err->len > 0);
    }
    sd_jn_vm_free(own);
    sd_jn_program_free(prog);
    return rc;
}

/* Evaluates src with a VM of the given limits. */
static int eval_limited(const struct sd_jn_limits *lim, const char *src, struct sd_buf *out,
                        struct sd_buf *err)
{
    struct sd_jn_vm *vm = sd_jn_vm_new(lim);
    int rc;

    assert_non_null(vm);
    rc = eval_on(vm, src, SD_JN_OUT_COMPACT, out, err);
    sd_jn_vm_free(vm);
    return rc;
}

static void check_value(const char *src, enum sd_jn_output form, const char *expected)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;

    if (eval_on(NULL, src, form, &out, &err) != 0) {
        fail_msg("%s: %s", src, sd_buf_cstr(&err));
    }
    assert_string_equal(sd_buf_cstr(&out), expected);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

/* Asserts src fails to compile with a message starting with "<line>:<col>:". */
static void expect_compile_error(const char *src, const char *prefix, const char *needle)
{
    struct sd_jn_program *prog;
    struct sd_buf err = SD_BUF_INIT;

    assert_int_equal(compile(src, &prog, &err), SD_EPARSE);
    if (strncmp(sd_buf_cstr(&err), prefix, strlen(prefix)) != 0) {
        fail_msg("%s: message %s does not start with %s", src, sd_buf_cstr(&err), prefix);
    }
    if (needle != NULL && strstr(sd_buf_cstr(&err), needle) == NULL) {
        fail_msg("%s: message %s does not mention %s", src, sd_buf_cstr(&err), needle);
    }
    sd_buf_fini(&err);
}

/* True when msg starts with "<digits>:<digits>:". */
static int has_position(const char *msg)
{
    const char *p = msg;

    if (!isdigit((unsigned char)*p)) {
        return 0;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    if (*p++ != ':' || !isdigit((unsigned char)*p)) {
        return 0;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    return *p == ':';
}

static void test_compile_ok(void **state)
{
    struct sd_jn_program *prog;
    struct sd_buf err = SD_BUF_INIT;

    (void)state;
    assert_int_equal(compile("local x = 1; { a: x, b: [x + 1, 'two'] }", &prog, &err), 0);
    sd_jn_program_free(prog);
    sd_jn_program_free(NULL);
    sd_buf_fini(&err);
}

static void test_syntax_error_position(void **state)
{
    (void)state;
    expect_compile_error("local x = ;", "1:11:", NULL);
    expect_compile_error("local a = 1;\nlocal b = a +;\nb", "2:14:", NULL);
    expect_compile_error("[1, 2", "1:6:", NULL);
    expect_compile_error("{ a: 1,\n  b: }", "2:6:", NULL);
    expect_compile_error("\n\n   )", "3:4:", NULL);
    expect_compile_error("", "1:1:", NULL);
}

static void test_static_errors(void **state)
{
    struct sd_jn_program *prog;
    struct sd_buf err = SD_BUF_INIT;

    (void)state;
    expect_compile_error("local a = 1;\n  a + bogus", "2:7:", "bogus");
    expect_compile_error("std.nosuch(1)", "1:", "nosuch");
    expect_compile_error("{ a: 1, a: 2 }", "1:", "a");
    expect_compile_error("function(x, x) x", "1:", "x");
    expect_compile_error("self.a", "1:1:", NULL);
    expect_compile_error("super.a", "1:1:", NULL);
    expect_compile_error("$", "1:1:", NULL);
    expect_compile_error("Body('a')", "1:1:", "Body");
    /* Every compile error message carries a position. */
    {
        static const char *const bad[] = {"local",
                                          "1 +",
                                          "{",
                                          "[1,,2]",
                                          "a b",
                                          "if 1",
                                          "@'x",
                                          "|||\nno indent\n|||",
                                          "local f(a = ) = 1; f",
                                          "{ [1]: }",
                                          "1 ++",
                                          "x.",
                                          "'\\q'"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            assert_int_equal(compile(bad[i], &prog, &err), SD_EPARSE);
            if (!has_position(sd_buf_cstr(&err))) {
                fail_msg("%s: message without a position: %s", bad[i], sd_buf_cstr(&err));
            }
        }
    }
    sd_buf_fini(&err);
}

static void test_runtime_error(void **state)
{
    struct sd_jn_program *prog;
    struct sd_jn_vm *vm = sd_jn_vm_new(NULL);
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    unsigned line = 99, col = 99;
    const char *src = "local x = 1;\nlocal y = x + 1;\n  error 'boom ' + y";

    (void)state;
    assert_int_equal(compile(src, &prog, &err), 0);
    sd_buf_append_str(&out, "keep");
    assert_int_equal(sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_string_equal(sd_buf_cstr(&out), "keep"); /* restored */
    assert_non_null(strstr(sd_buf_cstr(&err), "boom 2"));
    sd_jn_vm_error_pos(vm, &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 3);
    sd_jn_program_free(prog);

    /* A missing field names the field; the position is the access. */
    assert_int_equal(compile("local o = { a: 1 };\n[\n  o.b]", &prog, &err), 0);
    sd_buf_reset(&err);
    assert_int_equal(sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_non_null(strstr(sd_buf_cstr(&err), "b"));
    sd_jn_vm_error_pos(vm, &line, &col);
    assert_int_equal(line, 3);
    assert_true(col == 3 || col == 4); /* the index expression or its '.' */
    sd_jn_program_free(prog);

    /* A type error, a failed assert, a function as the result. */
    assert_int_equal(eval_on(vm, "1 + true", SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_int_equal(eval_on(vm, "assert 1 == 2 : 'nope'; 1", SD_JN_OUT_COMPACT, &out, &err),
                     SD_EINVAL);
    assert_non_null(strstr(sd_buf_cstr(&err), "nope"));
    assert_int_equal(eval_on(vm, "function(x) x", SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_int_equal(
        eval_on(vm, "{ a: 1, assert self.a > 1 : 'small' }", SD_JN_OUT_COMPACT, &out, &err),
        SD_EINVAL);
    assert_non_null(strstr(sd_buf_cstr(&err), "small"));

    /* The VM is usable after errors. */
    assert_int_equal(eval_on(vm, "[1, 'a']", SD_JN_OUT_COMPACT, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "[1,\"a\"]");
    sd_jn_vm_free(vm);
    sd_jn_vm_free(NULL);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

/* The non-tail recursion f(n) = 1 + f(n - 1). */
static void rec_src(char *src, size_t size, int n)
{
    snprintf(src, size, "local f(n) = if n == 0 then 0 else 1 + f(n - 1); f(%d)", n);
}

static void test_deep_recursion(void **state)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_limits tiny = {0};
    char src[128];

    (void)state;
    rec_src(src, sizeof(src), 100000);
    assert_int_equal(eval_on(NULL, src, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    rec_src(src, sizeof(src), 200);
    assert_int_equal(eval_on(NULL, src, SD_JN_OUT_COMPACT, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "200");

    /* Tiny limits: a shallow recursion passes, a deeper one is an error. */
    tiny.max_calls = 20;
    tiny.max_stack = 64 * 1024;
    rec_src(src, sizeof(src), 5);
    assert_int_equal(eval_limited(&tiny, src, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "5");
    rec_src(src, sizeof(src), 100);
    assert_int_equal(eval_limited(&tiny, src, &out, &err), SD_EINVAL);
    rec_src(src, sizeof(src), 100000);
    assert_int_equal(eval_limited(&tiny, src, &out, &err), SD_EINVAL);

    /* Only the C stack limit is small: the evaluator stops before overflowing it. */
    memset(&tiny, 0, sizeof(tiny));
    tiny.max_calls = 1000000;
    tiny.max_stack = 32 * 1024;
    rec_src(src, sizeof(src), 100000);
    assert_int_equal(eval_limited(&tiny, src, &out, &err), SD_EINVAL);

    /* Mutual recursion through objects and through thunks. */
    assert_int_equal(
        eval_on(NULL, "local o = { a: self.b, b: self.a }; o.a", SD_JN_OUT_COMPACT, &out, &err),
        SD_EINVAL);
    assert_int_equal(eval_on(NULL, "local x = x + 1; x", SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_int_equal(eval_on(NULL,
                             "local nest(n) = if n == 0 then {} else { a: nest(n - 1) }; "
                             "nest(100000)",
                             SD_JN_OUT_COMPACT, &out, &err),
                     SD_EINVAL);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

/* Builds open^n + core + close^n. */
static void nested(struct sd_buf *b, const char *open, const char *core, const char *close, int n)
{
    sd_buf_reset(b);
    for (int i = 0; i < n; i++) {
        sd_buf_append_str(b, open);
    }
    sd_buf_append_str(b, core);
    for (int i = 0; i < n; i++) {
        sd_buf_append_str(b, close);
    }
}

/* A deeply nested program is an error (at compile or evaluation time), never a crash; when value
 * is given, evaluating to exactly that value is accepted too. */
static void expect_deep(const char *src, const char *value)
{
    struct sd_jn_program *prog;
    struct sd_jn_vm *vm;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    int rc = sd_jn_compile(src, strlen(src), "deep", NULL, 0, &prog, &err);

    if (rc == SD_EPARSE) {
        assert_true(has_position(sd_buf_cstr(&err)));
    } else {
        assert_int_equal(rc, 0);
        vm = sd_jn_vm_new(NULL);
        rc = sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err);
        if (value != NULL && rc == 0) {
            assert_string_equal(sd_buf_cstr(&out), value);
        } else {
            assert_int_equal(rc, SD_EINVAL);
        }
        sd_jn_vm_free(vm);
        sd_jn_program_free(prog);
    }
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

static void test_deep_input(void **state)
{
    struct sd_buf src = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_program *prog;
    struct sd_jn_vm *vm;
    int rc;

    (void)state;
    nested(&src, "[", "1", "]", 100000);
    expect_deep(sd_buf_cstr(&src), NULL);
    nested(&src, "{a:", "1", "}", 100000);
    expect_deep(sd_buf_cstr(&src), NULL);
    nested(&src, "(", "1", ")", 100000);
    expect_deep(sd_buf_cstr(&src), "1");
    nested(&src, "local a = ", "1", "; a", 100000);
    expect_deep(sd_buf_cstr(&src), "1");
    nested(&src, "- ", "1", "", 100001);
    expect_deep(sd_buf_cstr(&src), "-1");
    nested(&src, "if true then ", "1", " else 0", 100000);
    expect_deep(sd_buf_cstr(&src), "1");
    nested(&src, "f(", "1", ")", 100000);
    {
        struct sd_buf call = SD_BUF_INIT;
        sd_buf_printf(&call, "local f(x) = x; %s", sd_buf_cstr(&src));
        expect_deep(sd_buf_cstr(&call), "1");
        sd_buf_fini(&call);
    }
    nested(&src, "[", "", "", 100000); /* unterminated too */
    assert_int_equal(compile(sd_buf_cstr(&src), &prog, &err), SD_EPARSE);

    /* A long flat chain parses without recursion; evaluating it is a value or an error. */
    nested(&src, "1 + ", "1", "", 100000);
    rc = sd_jn_compile(src.data, src.len, "chain", NULL, 0, &prog, &err);
    if (rc == 0) {
        vm = sd_jn_vm_new(NULL);
        rc = sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err);
        assert_true(rc == SD_EINVAL || (rc == 0 && strcmp(sd_buf_cstr(&out), "100001") == 0));
        sd_jn_vm_free(vm);
        sd_jn_program_free(prog);
    } else {
        assert_int_equal(rc, SD_EPARSE);
    }

    /* Moderate nesting works. */
    nested(&src, "[", "1", "]", 100);
    assert_int_equal(eval_on(NULL, sd_buf_cstr(&src), SD_JN_OUT_COMPACT, &out, &err), 0);
    assert_int_equal(out.len, 201);
    sd_buf_fini(&src);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

static void test_step_limit(void **state)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_limits lim = {0};

    (void)state;
    lim.max_steps = 100000;
    assert_int_equal(eval_limited(&lim, "local f(n) = f(n + 1) tailstrict; f(0)", &out, &err),
                     SD_EINVAL);
    assert_int_equal(eval_limited(&lim,
                                  "local f(n) = if n > 0 then f(n - 1) tailstrict else n; f(1e12)",
                                  &out, &err),
                     SD_EINVAL);
    /* Natives count their steps too. */
    assert_int_equal(
        eval_limited(&lim, "std.foldl(function(a, b) a + b, std.range(1, 1e7), 0)", &out, &err),
        SD_EINVAL);
    assert_int_equal(eval_limited(&lim, "std.length(std.sort(std.range(1, 1e7)))", &out, &err),
                     SD_EINVAL);
    assert_int_equal(eval_limited(&lim, "[x for x in std.range(1, 1e7)]", &out, &err), SD_EINVAL);
    /* The duplicate-name scan of an object comprehension counts too (quadratic in its fields):
     * the same names and values fit in the limit as an array. */
    assert_int_equal(
        eval_limited(&lim, "std.length([['f%d' % i, i] for i in std.range(1, 3000)])", &out, &err),
        0);
    assert_int_equal(
        eval_limited(&lim, "std.length({['f%d' % i]: i for i in std.range(1, 3000)})", &out, &err),
        SD_EINVAL);
    /* Below the limit the same programs work. */
    assert_int_equal(
        eval_limited(&lim, "std.foldl(function(a, b) a + b, std.range(1, 100), 0)", &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "5050");
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

#if defined(__SANITIZE_ADDRESS__)
#define SD_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SD_TEST_ASAN 1
#endif
#endif

/* Evaluates src with lim in a child process whose address space is capped (1 GiB beyond what it
 * has), so an engine that allocates past its memory limit fails the test instead of exhausting
 * the machine. Returns the child's verdict: 0 the evaluation failed with the memory-limit error,
 * 1 it succeeded, 2 any other rc, 3 no VM, 4 another error; 128 + signal when it died (an abort
 * on out-of-memory). */
static int eval_capped(const struct sd_jn_limits *lim, const char *src)
{
    pid_t pid;
    int status = 0;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sd_jn_program *prog = NULL;
        struct sd_jn_vm *vm;
        struct sd_buf out = SD_BUF_INIT;
        struct sd_buf err = SD_BUF_INIT;
        int rc;
#ifndef SD_TEST_ASAN /* ASan reserves terabytes of shadow; its allocator caps allocations */
        struct rlimit rl;
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;

        if (f != NULL) {
            if (fscanf(f, "%lu", &pages) != 1) {
                pages = 0;
            }
            fclose(f);
        }
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * 4096u + (1ul << 30);
        setrlimit(RLIMIT_AS, &rl);
#endif
        alarm(60);
        if (sd_jn_compile(src, strlen(src), "capped", NULL, 0, &prog, &err) != 0) {
            _exit(2);
        }
        vm = sd_jn_vm_new(lim);
        if (vm == NULL) {
            _exit(3);
        }
        rc = sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err);
        if (rc == SD_EINVAL && strstr(sd_buf_cstr(&err), "memory limit") == NULL) {
            _exit(4); /* failed, but not for its memory */
        }
        _exit(rc == SD_EINVAL ? 0 : rc == 0 ? 1 : 2);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_memory_limit(void **state)
{
    static const char *const hostile[] = {
        /* each needs hundreds of MiB or more; the limit is 16 MiB */
        "std.length([x for x in std.range(1, 2e7)])",
        "std.length(std.range(1, 1e9))",
        "local d(s, n) = if n == 0 then s else d(s + s, n - 1) tailstrict; std.length(d('x', 40))",
        "std.length(std.makeArray(2e7, function(i) i))",
        "std.length(std.join(',', std.map(std.toString, std.range(1, 1e7))))",
        "std.length('%100000000d' % 1)", /* a format width is memory too */
        "std.length(std.repeat('abc', 1e8))",
        /* Strings natives build outside the arena count as they grow: a manifest whose
         * indentation grows quadratically (1.5 GB for 20,000 levels) stops at the limit, in a
         * fraction of a second, instead of failing after building it all. */
        "local nest(n) = std.foldl(function(acc, i) [acc], std.range(1, n), []);"
        "std.length(std.manifestJson(nest(20000)))",
        "local nest(n) = std.foldl(function(acc, i) {a: acc}, std.range(1, n), {});"
        "std.length(std.manifestJsonEx(nest(20000), '        '))",
        "local nest(n) = if n == 0 then [] else [nest(n - 1)];"
        "std.md5(std.manifestJsonEx(nest(400), std.repeat(' ', 1000)))",
        "std.length(std.join(std.repeat('x', 1e5), std.makeArray(1000, function(i) '')))",
    };
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_limits lim = {0};
    int failed = 0;

    (void)state;
    lim.max_memory = 16u << 20;
    lim.max_steps = UINT64_MAX / 2;
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        int64_t start = sd_mono_ms();
        int verdict = eval_capped(&lim, hostile[i]);
        int64_t ms = sd_mono_ms() - start;
        if (verdict != 0 || ms > 10000) {
            print_error("memory limit not enforced (verdict %d, %lld ms): %s\n", verdict,
                        (long long)ms, hostile[i]);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
    assert_int_equal(eval_limited(&lim, "std.length(std.range(1, 1000))", &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "1000");
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

/* The wall-clock limit ends an evaluation that stays within its steps and memory. */
static void test_time_limit(void **state)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_limits lim = {0};
    int64_t start;

    (void)state;
    lim.max_steps = UINT64_MAX / 2;
    lim.max_time_ms = 100;
    start = sd_mono_ms();
    assert_int_equal(eval_limited(&lim, "local f(n) = f(n + 1) tailstrict; f(0)", &out, &err),
                     SD_EINVAL);
    assert_true(sd_mono_ms() - start < 2000);
    assert_non_null(strstr(sd_buf_cstr(&err), "evaluation time limit exceeded"));
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

/* A step budget caps several evaluations together, says when it (not max_steps) ended one, and
 * lifts with SD_JN_NO_STEP_BUDGET. */
static void test_step_budget(void **state)
{
    struct sd_jn_program *cheap, *loop;
    struct sd_jn_vm *vm;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_limits lim = {0};
    int n = 0;

    (void)state;
    lim.max_steps = 100000;
    vm = sd_jn_vm_new(&lim);
    assert_int_equal(compile("1 + 2", &cheap, &err), 0);
    assert_int_equal(
        compile("local f(n, a) = if n == 0 then a else f(n - 1, a + 1) tailstrict; f(1000, 0)",
                &loop, &err),
        0);
    /* Cheap evaluations share the budget until it runs out. */
    sd_jn_vm_set_step_budget(vm, 50);
    while (sd_jn_eval(cheap, vm, NULL, SD_JN_OUT_COMPACT, &out, &err) == 0) {
        assert_false(sd_jn_vm_budget_exhausted(vm));
        n++;
        assert_true(n < 50);
    }
    assert_true(n >= 2);
    assert_true(sd_jn_vm_budget_exhausted(vm));
    assert_non_null(strstr(sd_buf_cstr(&err), "step budget"));
    /* A longer evaluation fails on the budget, and passes once it is lifted. */
    sd_jn_vm_set_step_budget(vm, 1000);
    assert_int_equal(sd_jn_eval(loop, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_true(sd_jn_vm_budget_exhausted(vm));
    sd_jn_vm_set_step_budget(vm, SD_JN_NO_STEP_BUDGET);
    sd_buf_reset(&out);
    assert_int_equal(sd_jn_eval(loop, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "1000");
    assert_false(sd_jn_vm_budget_exhausted(vm));
    /* A budget above max_steps leaves the step limit in charge. */
    sd_jn_vm_set_step_budget(vm, 10 * lim.max_steps);
    sd_jn_program_free(loop);
    assert_int_equal(compile("local f(n) = f(n + 1) tailstrict; f(0)", &loop, &err), 0);
    sd_buf_reset(&err);
    assert_int_equal(sd_jn_eval(loop, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_false(sd_jn_vm_budget_exhausted(vm));
    assert_non_null(strstr(sd_buf_cstr(&err), "step limit"));
    sd_jn_program_free(cheap);
    sd_jn_program_free(loop);
    sd_jn_vm_free(vm);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

static void test_output_limit(void **state)
{
    struct sd_jn_program *prog;
    struct sd_jn_vm *vm;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_limits lim = {0};

    (void)state;
    lim.max_output = 1000;
    vm = sd_jn_vm_new(&lim);
    assert_int_equal(compile("std.range(1, 100000)", &prog, &err), 0);
    sd_buf_append_str(&out, "prefix");
    assert_int_equal(sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), SD_ELIMIT);
    assert_string_equal(sd_buf_cstr(&out), "prefix");
    assert_int_equal(sd_jn_eval(prog, vm, NULL, SD_JN_OUT_PRETTY, &out, &err), SD_ELIMIT);
    assert_int_equal(out.len, 6);
    sd_jn_program_free(prog);
    /* A long string result, in every form. */
    assert_int_equal(compile("std.join('', std.makeArray(2000, function(i) 'x'))", &prog, &err), 0);
    assert_int_equal(sd_jn_eval(prog, vm, NULL, SD_JN_OUT_RAW, &out, &err), SD_ELIMIT);
    assert_int_equal(out.len, 6);
    sd_jn_program_free(prog);
    /* Small outputs pass. */
    assert_int_equal(eval_on(vm, "std.range(1, 10)", SD_JN_OUT_COMPACT, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "[1,2,3,4,5,6,7,8,9,10]");
    sd_jn_vm_free(vm);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

/* A VM reused for many evaluations resets its arena: 1000 evaluations of a program that needs a
 * few hundred KiB fit in a VM whose memory limit is a few MiB. */
static void test_vm_reuse(void **state)
{
    struct sd_jn_program *prog;
    struct sd_jn_vm *vm;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_limits lim = {0};
    const char *src = "local a = [{ i: i, s: 'item-' + i } for i in std.range(1, 2000)];"
                      " std.length(std.join(',', [x.s for x in a]))";

    (void)state;
    /* One evaluation needs more than 100 KiB: 1000 of them would need 100 MiB without reset. */
    lim.max_memory = 100u << 10;
    vm = sd_jn_vm_new(&lim);
    assert_int_equal(eval_on(vm, src, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    sd_jn_vm_free(vm);
    lim.max_memory = 8u << 20;
    vm = sd_jn_vm_new(&lim);
    assert_non_null(vm);
    assert_int_equal(compile(src, &prog, &err), 0);
    for (int i = 0; i < 1000; i++) {
        sd_buf_reset(&out);
        if (sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err) != 0) {
            fail_msg("evaluation %d: %s", i, sd_buf_cstr(&err));
        }
        assert_string_equal(sd_buf_cstr(&out), "18892");
        if (i % 100 == 7) { /* errors in between do not leak either */
            struct sd_jn_program *bad;
            assert_int_equal(compile("[error 'x' for i in std.range(1, 100)]", &bad, &err), 0);
            assert_int_equal(sd_jn_eval(bad, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
            sd_jn_program_free(bad);
        }
    }
    sd_jn_program_free(prog);
    sd_jn_vm_free(vm);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

static void test_output_forms(void **state)
{
    const char *obj = "{ b: { c: [] }, a: [1, 2.5, 'x'], d: {}, h:: 0, e: null }";

    (void)state;
    check_value(obj, SD_JN_OUT_PRETTY,
                "{\n   \"a\": [\n      1,\n      2.5,\n      \"x\"\n   ],\n   \"b\": {\n"
                "      \"c\": [ ]\n   },\n   \"d\": { },\n   \"e\": null\n}\n");
    check_value(obj, SD_JN_OUT_COMPACT,
                "{\"a\":[1,2.5,\"x\"],\"b\":{\"c\":[]},\"d\":{},\"e\":null}");
    check_value(obj, SD_JN_OUT_RAW, "{\"a\":[1,2.5,\"x\"],\"b\":{\"c\":[]},\"d\":{},\"e\":null}");
    check_value("'a\"b\\n\u00e9'", SD_JN_OUT_PRETTY, "\"a\\\"b\\n\u00e9\"\n");
    check_value("'a\"b\\n\u00e9'", SD_JN_OUT_COMPACT, "\"a\\\"b\\n\u00e9\"");
    check_value("'a\"b\\n\u00e9'", SD_JN_OUT_RAW, "a\"b\n\u00e9");
    check_value("42", SD_JN_OUT_RAW, "42");
    check_value("[]", SD_JN_OUT_PRETTY, "[ ]\n");
    check_value("{}", SD_JN_OUT_COMPACT, "{}");
    check_value("true", SD_JN_OUT_PRETTY, "true\n");
    /* Numbers as go-jsonnet writes them. */
    check_value("[0.1, 1e-7, 1e20, 0.1 + 0.2, 1 / 3, -0.5, 123456789012]", SD_JN_OUT_COMPACT,
                "[0.1,1e-07,100000000000000000000,0.30000000000000004,0.3333333333333333,-0.5,"
                "123456789012]");
    check_value("std.toString(0.1) + '|' + 0.25 + '|' + [0.1]", SD_JN_OUT_RAW, "0.1|0.25|[0.1]");
    check_value("'\\u0001\\u007f'", SD_JN_OUT_COMPACT, "\"\\u0001\\u007f\"");
}

/* A host function: returns the number the host pointer points to plus its argument. */
static int host_add(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    const double *base = sd_jn_host(vm);

    if (args[0].type == SD_JN_ABSENT) {
        *out = sd_jn_number(*base);
        return 0;
    }
    if (args[0].type != SD_JN_NUMBER) {
        return sd_jn_throw(vm, "HostAdd: expected a number, got %s", sd_jn_type_name(args[0].type));
    }
    *out = sd_jn_number(*base + args[0].u.n);
    return 0;
}

static void test_host_functions(void **state)
{
    static const struct sd_jn_native globals[] = {
        {"HostAdd", host_add, 1, 0, {"n"}},
    };
    struct sd_jn_program *prog;
    struct sd_jn_vm *vm = sd_jn_vm_new(NULL);
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    double base = 40;
    const char *src = "[HostAdd(), HostAdd(2), HostAdd(n=0.5)]";

    (void)state;
    assert_int_equal(sd_jn_compile(src, strlen(src), "t", globals, 1, &prog, &err), 0);
    assert_int_equal(sd_jn_eval(prog, vm, &base, SD_JN_OUT_COMPACT, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "[40,42,40.5]");
    base = 1;
    sd_buf_reset(&out);
    assert_int_equal(sd_jn_eval(prog, vm, &base, SD_JN_OUT_COMPACT, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out), "[1,3,1.5]");
    sd_jn_program_free(prog);

    src = "HostAdd('x')";
    assert_int_equal(sd_jn_compile(src, strlen(src), "t", globals, 1, &prog, &err), 0);
    assert_int_equal(sd_jn_eval(prog, vm, &base, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_non_null(strstr(sd_buf_cstr(&err), "HostAdd: expected a number, got string"));
    sd_jn_program_free(prog);

    src = "HostAdd(1, 2)";
    assert_int_equal(sd_jn_compile(src, strlen(src), "t", globals, 1, &prog, &err) == 0
                         ? sd_jn_eval(prog, vm, &base, SD_JN_OUT_COMPACT, &out, &err)
                         : SD_EINVAL,
                     SD_EINVAL);
    sd_jn_program_free(prog);
    prog = NULL;

    /* Without the table the name is unknown. */
    sd_buf_reset(&err);
    src = "HostAdd(1)";
    assert_int_equal(sd_jn_compile(src, strlen(src), "t", NULL, 0, &prog, &err), SD_EPARSE);
    assert_non_null(strstr(sd_buf_cstr(&err), "HostAdd"));
    sd_jn_vm_free(vm);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_ok),     cmocka_unit_test(test_syntax_error_position),
        cmocka_unit_test(test_static_errors),  cmocka_unit_test(test_runtime_error),
        cmocka_unit_test(test_deep_recursion), cmocka_unit_test(test_deep_input),
        cmocka_unit_test(test_step_limit),     cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_time_limit),     cmocka_unit_test(test_step_budget),
        cmocka_unit_test(test_output_limit),   cmocka_unit_test(test_vm_reuse),
        cmocka_unit_test(test_output_forms),   cmocka_unit_test(test_host_functions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
