/* test_staging_s3.c: the staging contract suite against the "s3" backend, talking to s3rver
 * through tests/unit/s3_sigv4_proxy.py, which checks every request's SigV4 signature with
 * botocore and refuses a wrong one; plus the backend's own tests: every request kind is signed
 * right, a wrong secret is a clear error, an aborted multipart upload, addressing styles (also
 * virtual-host requests end to end), option checks, opening from config without leaking the
 * secret, a store that is down.
 *
 * DESIGN: main starts s3rver (tests/.node, installed by scripts/install-deps.sh test) and the
 * proxy, each on a kernel-chosen port read from its first line of output, and stops both by PID
 * at the end. A server that cannot start fails the run; nothing is skipped. Each contract test
 * gets its own key prefix in one bucket, so stores start empty. */
#include "staging_contract.h"

#include "config/sd_config.h"
#include "core/sd_buf.h"
#include "staging_s3/staging_s3.h"
#include "test_tmpdir.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#define S3T_BUCKET "streamd-test"
#define S3T_KEY "S3RVER"
#define S3T_SECRET "streamd-test-secret"
#define S3T_REGION "us-east-1"

static pid_t s3t_s3rver_pid = -1;
static pid_t s3t_proxy_pid = -1;
static char s3t_endpoint[64];
static int s3t_proxy_port;
static char s3t_log[600];
static char s3t_dir[512];
static unsigned s3t_prefix_n;

/* Starts argv with env NODE_OPTIONS set and its stdout on a pipe; returns the port from the
 * first output line holding marker followed by the number ("...:<port>" or "PORT <port>"), or
 * -1 after 20 s. */
static int s3t_spawn(char *const argv[], const char *marker, pid_t *pid)
{
    int fds[2];
    char line[512];
    size_t len = 0;

    if (pipe(fds) != 0) {
        return -1;
    }
    *pid = fork();
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        ssize_t r;
        char *m;

        if (*pid < 0 || poll(&p, 1, 20000) <= 0 || len + 1 >= sizeof(line)) {
            break;
        }
        r = read(fds[0], line + len, sizeof(line) - 1 - len);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
        line[len] = '\0';
        m = strstr(line, marker);
        if (m != NULL && strchr(m, '\n') != NULL) {
            /* keep the pipe open: a server writing to a closed pipe would die */
            return atoi(m + strlen(marker));
        }
    }
    close(fds[0]);
    return -1;
}

static void s3t_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

/* Starts s3rver and the signature-checking proxy in front of it. Returns 0 or -1. */
static int s3t_start_servers(void)
{
    char data[600], port[16];
    int s3rver_port, proxy_port;

    sd_test_mkdtemp(s3t_dir, sizeof(s3t_dir), "sd-s3");
    snprintf(data, sizeof(data), "%s/s3rver", s3t_dir);
    snprintf(s3t_log, sizeof(s3t_log), "%s/proxy.log", s3t_dir);
    if (sd_mkdir_p(data, 0755) != 0) {
        return -1;
    }
    {
        char *argv[] = {SD_SOURCE_DIR "/tests/.node/node_modules/.bin/s3rver", "-d", data, "-a",
                        "127.0.0.1", "-p", "0", "--configure-bucket", S3T_BUCKET,
                        /* <bucket>.s3.localhost is the bucket's virtual host */
                        "--service-endpoint", "localhost", NULL};

        s3rver_port = s3t_spawn(argv, "listening on 127.0.0.1:", &s3t_s3rver_pid);
    }
    if (s3rver_port <= 0) {
        fprintf(stderr,
                "test_staging_s3: s3rver did not start (run scripts/install-deps.sh test)\n");
        return -1;
    }
    snprintf(port, sizeof(port), "%d", s3rver_port);
    {
        char *argv[] = {"/usr/bin/python3",
                        SD_SOURCE_DIR "/tests/unit/s3_sigv4_proxy.py",
                        port,
                        S3T_KEY,
                        S3T_SECRET,
                        S3T_REGION,
                        s3t_log,
                        NULL};

        proxy_port = s3t_spawn(argv, "PORT ", &s3t_proxy_pid);
    }
    if (proxy_port <= 0) {
        fprintf(stderr, "test_staging_s3: the SigV4 proxy did not start (python3-botocore?)\n");
        return -1;
    }
    snprintf(s3t_endpoint, sizeof(s3t_endpoint), "http://127.0.0.1:%d", proxy_port);
    s3t_proxy_port = proxy_port;
    return 0;
}

static struct sd_staging_s3_opts s3t_opts(const char *prefix)
{
    struct sd_staging_s3_opts o = {
        .endpoint = s3t_endpoint,
        .region = S3T_REGION,
        .bucket = S3T_BUCKET,
        .prefix = prefix,
        .access_key_id = S3T_KEY,
        .secret_access_key = S3T_SECRET,
        .force_path_style = 1,
        .request_timeout_ms = 10000,
        .multipart_threshold = 5 * STC_MIB,
        .part_size = 5 * STC_MIB,
    };
    return o;
}

/* Wraps an opened context as a store. */
static int s3t_open_opts(const struct sd_staging_s3_opts *o, struct sd_staging **out)
{
    void *ctx;
    int rc = sd_staging_s3_open_opts(o, &ctx);

    *out = NULL;
    if (rc == 0) {
        *out = malloc(sizeof(**out));
        assert_non_null(*out);
        (*out)->ops = &sd_staging_s3_ops;
        (*out)->ctx = ctx;
    }
    return rc;
}

static int s3t_open_fresh(const struct stc_backend *be, const char *scratch,
                          struct sd_staging **out)
{
    char prefix[64];
    struct sd_staging_s3_opts o;

    (void)be;
    (void)scratch;
    snprintf(prefix, sizeof(prefix), "run-%d/c%u", (int)getpid(), ++s3t_prefix_n);
    o = s3t_opts(prefix);
    return s3t_open_opts(&o, out);
}

static const struct stc_backend s3 = {"s3", s3t_open_fresh, NULL};

/* Counts lines of the proxy log that start with text. */
static int s3t_log_count(const char *text)
{
    FILE *f = fopen(s3t_log, "r");
    char line[512];
    int n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        n += strncmp(line, text, strlen(text)) == 0;
    }
    fclose(f);
    return n;
}

/* Writes data to <s3t_dir>/<name> and returns the owned path. */
static char *s3t_file(const char *name, const char *data)
{
    char *path = malloc(700);
    FILE *f;

    assert_non_null(path);
    snprintf(path, 700, "%s/%s", s3t_dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, strlen(data), f), strlen(data));
    assert_int_equal(fclose(f), 0);
    return path;
}

/* ---- the backend's own tests ------------------------------------------------------------ */

/* A multipart upload whose input cannot be read fails with the read error, aborts the upload
 * and stores nothing. */
static void test_multipart_abort(void **state)
{
    struct sd_staging_s3_opts o = s3t_opts("abort");
    struct sd_staging *st;
    char *path = s3t_file("abort-in", "some data");
    const char *paths[2] = {path, s3t_dir}; /* a directory: opens, but cannot be read */
    uint64_t size = 0;

    (void)state;
    o.multipart_threshold = 0;
    assert_int_equal(s3t_open_opts(&o, &st), 0);
    assert_int_equal(sd_staging_put_files(st, "k", paths, 2, &size), -EISDIR);
    assert_int_equal(sd_staging_head(st, "k", &size), SD_ENOTFOUND);
    assert_true(s3t_log_count("abort-multipart ok") >= 1);
    sd_staging_close(st);
    free(path);
}

/* Every request kind the backend sends passed the independent signature check, none failed
 * it (runs after the contract suite and the abort test, which send all of them). */
static void test_every_kind_signed(void **state)
{
    static const char *const kinds[] = {"put ok",
                                        "get ok",
                                        "head ok",
                                        "delete ok",
                                        "list ok",
                                        "create-multipart ok",
                                        "upload-part ok",
                                        "complete-multipart ok",
                                        "abort-multipart ok"};

    (void)state;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (s3t_log_count(kinds[i]) == 0) {
            fail_msg("no accepted request of kind \"%s\"", kinds[i]);
        }
    }
    assert_int_equal(s3t_log_count("put rejected"), 0);
    assert_int_equal(s3t_log_count("get rejected"), 0);
    assert_int_equal(s3t_log_count("list rejected"), 0);
    assert_int_equal(s3t_log_count("upload-part rejected"), 0);
    assert_int_equal(s3t_log_count("complete-multipart rejected"), 0);
}

/* A wrong secret key is refused by the signature check: every call fails with
 * -EKEYREJECTED, whose text is clear and carries no credential. */
static void test_wrong_secret(void **state)
{
    struct sd_staging_s3_opts o = s3t_opts("wrong");
    struct sd_staging *st;
    struct sd_staging_reader *r = NULL;
    char *path = s3t_file("wrong-in", "data");
    const char *paths[1] = {path};
    char **keys = NULL;
    size_t n = 0;
    uint64_t size = 0;
    int before = s3t_log_count("put rejected signature mismatch");

    (void)state;
    o.secret_access_key = "not-the-secret-k3y";
    assert_int_equal(s3t_open_opts(&o, &st), 0);
    assert_int_equal(sd_staging_put_files(st, "k", paths, 1, &size), -EKEYREJECTED);
    assert_int_equal(s3t_log_count("put rejected signature mismatch"), before + 1);
    /* a refused HEAD has no body to say why */
    assert_int_equal(sd_staging_head(st, "k", &size), -EACCES);
    assert_int_equal(sd_staging_open_read(st, "k", &r), -EKEYREJECTED);
    assert_null(r);
    assert_int_equal(sd_staging_list(st, "", &keys, &n), -EKEYREJECTED);
    assert_int_equal(sd_staging_del(st, "k"), -EKEYREJECTED);
    assert_string_equal(sd_strerror(-EKEYREJECTED), "Key was rejected by service");
    sd_staging_close(st);
    /* a multipart upload with the wrong secret fails at its first request */
    o.multipart_threshold = 0;
    assert_int_equal(s3t_open_opts(&o, &st), 0);
    assert_int_equal(sd_staging_put_files(st, "k", paths, 1, &size), -EKEYREJECTED);
    sd_staging_close(st);
    free(path);
}

/* Path-style and virtual-host URLs, with the prefix and keys encoded once. */
static void test_addressing(void **state)
{
    struct sd_staging_s3_opts o = s3t_opts("pre/fix");
    struct sd_buf url = SD_BUF_INIT;
    void *ctx;

    (void)state;
    o.endpoint = "https://s3.example.com:9000/";
    assert_int_equal(sd_staging_s3_open_opts(&o, &ctx), 0);
    sd_staging_s3_url(ctx, &url, "sp ace/\xc5\xbe~k+=.gz", NULL);
    assert_string_equal(
        url.data, "https://s3.example.com:9000/streamd-test/pre/fix/sp%20ace/%C5%BE~k%2B%3D.gz");
    sd_staging_s3_url(ctx, &url, "", "list-type=2&prefix=a");
    assert_string_equal(url.data, "https://s3.example.com:9000/streamd-test?list-type=2&prefix=a");
    sd_staging_s3_ops.close(ctx);
    o.force_path_style = 0;
    assert_int_equal(sd_staging_s3_open_opts(&o, &ctx), 0);
    sd_staging_s3_url(ctx, &url, "a/b", "uploads=");
    assert_string_equal(url.data, "https://streamd-test.s3.example.com:9000/pre/fix/a/b?uploads=");
    sd_staging_s3_url(ctx, &url, "", NULL);
    assert_string_equal(url.data, "https://streamd-test.s3.example.com:9000/");
    sd_staging_s3_ops.close(ctx);
    sd_buf_fini(&url);
}

/* Virtual-host addressing end to end: requests go to <bucket>.s3.localhost (curl resolves
 * every *.localhost name to the loopback), signed for that host. */
static void test_virtual_host(void **state)
{
    static const char *const one[] = {"v/k"};
    struct sd_staging_s3_opts o = s3t_opts("vhost");
    struct sd_staging *st;
    char endpoint[64];
    char *path = s3t_file("vhost-in", "virtual");
    const char *paths[1] = {path};
    int before = s3t_log_count("put ok");

    (void)state;
    snprintf(endpoint, sizeof(endpoint), "http://s3.localhost:%d", s3t_proxy_port);
    o.endpoint = endpoint;
    o.force_path_style = 0;
    assert_int_equal(s3t_open_opts(&o, &st), 0);
    assert_int_equal(sd_staging_put_files(st, "v/k", paths, 1, NULL), 0);
    assert_int_equal(s3t_log_count("put ok"), before + 1);
    stc_expect_str(st, "v/k", "virtual");
    stc_expect_list(st, "", one, 1);
    assert_int_equal(sd_staging_del_prefix(st, ""), 0);
    stc_expect_list(st, "", NULL, 0);
    sd_staging_close(st);
    free(path);
}

/* Missing or malformed options are SD_EINVAL at open. */
static void test_bad_options(void **state)
{
    struct sd_staging_s3_opts o;
    void *ctx = (void *)1;

    (void)state;
#define S3T_BAD(field, value)                                                                      \
    o = s3t_opts("");                                                                              \
    o.field = value;                                                                               \
    assert_int_equal(sd_staging_s3_open_opts(&o, &ctx), SD_EINVAL);                                \
    assert_null(ctx)
    S3T_BAD(endpoint, "");
    S3T_BAD(endpoint, "ftp://host");
    S3T_BAD(endpoint, "http://");
    S3T_BAD(endpoint, "http://host/path");
    S3T_BAD(bucket, "");
    S3T_BAD(bucket, "Upper");
    S3T_BAD(bucket, "a/b");
    S3T_BAD(region, "");
    S3T_BAD(access_key_id, "");
    S3T_BAD(secret_access_key, NULL);
    S3T_BAD(prefix, "../x");
    S3T_BAD(prefix, "/abs");
    S3T_BAD(part_size, 0);
    S3T_BAD(request_timeout_ms, 0);
#undef S3T_BAD
}

/* staging.backend=s3 opens from config; neither the config dump nor the location in messages
 * shows the secret. */
static void test_open_from_config(void **state)
{
    char dir[512], ep[128];
    const char *sets[] = {"staging.backend=s3",
                          ep,
                          "staging.s3.bucket=" S3T_BUCKET,
                          "staging.s3.prefix=cfg",
                          "staging.s3.accessKeyId=" S3T_KEY,
                          "staging.s3.secretAccessKey=" S3T_SECRET,
                          "staging.s3.forcePathStyle=true"};
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;
    struct sd_staging *st = NULL;
    struct sd_buf out = SD_BUF_INIT;
    char *path = s3t_file("cfg-in", "from config");
    const char *paths[1] = {path};

    (void)state;
    sd_test_mkdtemp(dir, sizeof(dir), "sd-s3-cfg");
    snprintf(ep, sizeof(ep), "staging.s3.endpoint=%s", s3t_endpoint);
    args.data_dir = dir;
    args.sets = sets;
    args.nsets = sizeof(sets) / sizeof(sets[0]);
    assert_int_equal(sd_config_load(&args, &cfg, &out), 0);
    assert_int_equal(sd_staging_open(cfg, &st), 0);
    assert_string_equal(st->ops->name, "s3");
    assert_int_equal(sd_staging_put_files(st, "x/y", paths, 1, NULL), 0);
    stc_expect_str(st, "x/y", "from config");
    assert_int_equal(sd_staging_del_prefix(st, ""), 0);
    sd_staging_close(st);
    sd_staging_s3_location(cfg, &out);
    snprintf(ep, sizeof(ep), "s3://" S3T_BUCKET "/cfg at %s", s3t_endpoint);
    assert_string_equal(out.data, ep);
    sd_config_dump(cfg, 0, &out);
    assert_non_null(strstr(out.data, "staging.s3.secretAccessKey"));
    assert_null(strstr(out.data, S3T_SECRET));
    sd_buf_fini(&out);
    sd_config_destroy(cfg);
    assert_int_equal(sd_rm_rf(dir), 0);
    free(path);
}

/* A store that does not answer is a connection error, not a hang or a crash. */
static void test_store_down(void **state)
{
    struct sd_staging_s3_opts o = s3t_opts("");
    struct sd_staging *st;
    char *path = s3t_file("down-in", "data");
    const char *paths[1] = {path};
    uint64_t size = 0;

    (void)state;
    o.endpoint = "http://127.0.0.1:1";
    assert_int_equal(s3t_open_opts(&o, &st), 0);
    assert_int_equal(sd_staging_put_files(st, "k", paths, 1, &size), -ECONNREFUSED);
    assert_int_equal(sd_staging_head(st, "k", &size), -ECONNREFUSED);
    sd_staging_close(st);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STC_CONTRACT_TESTS((void *)&s3),          cmocka_unit_test(test_multipart_abort),
        cmocka_unit_test(test_every_kind_signed), cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_addressing),        cmocka_unit_test(test_virtual_host),
        cmocka_unit_test(test_bad_options),       cmocka_unit_test(test_open_from_config),
        cmocka_unit_test(test_store_down),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    if (s3t_start_servers() != 0) {
        s3t_stop(s3t_proxy_pid);
        s3t_stop(s3t_s3rver_pid);
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    s3t_stop(s3t_proxy_pid);
    s3t_stop(s3t_s3rver_pid);
    sd_rm_rf(s3t_dir);
    return rc;
}
