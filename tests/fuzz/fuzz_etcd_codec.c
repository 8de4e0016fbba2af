/* fuzz_etcd_codec.c: fuzz target for the etcd backend's answer parsers
 * (plugins/state_etcd/etcd_codec.c): whatever an etcd endpoint (or something posing as one)
 * sends must never crash, leak or yield a key outside the namespace.
 *
 * Input: the first byte picks the parser, the rest is the answer: even = one line of a watch
 * stream (etcd_parse_watch_msg), odd = a unary answer (header revision, range, error). Checks
 * (abort on violation): every parsed key is non-empty and NUL-free, every value is
 * NUL-terminated at value_len, watch events are in revision order with positive revisions, and
 * a DELETE event carries no value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/sd_error.h"
#include "state_etcd/etcd_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_etcd_codec: check failed: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_kv(const struct sd_kv *kv, int is_delete)
{
    CHECK(kv->key != NULL && kv->key[0] != '\0');
    if (is_delete) {
        CHECK(kv->value == NULL && kv->value_len == 0);
    } else {
        CHECK(kv->value != NULL && kv->value[kv->value_len] == '\0');
    }
}

static void fuzz_watch(const char *p, size_t len)
{
    struct etcd_watch_msg m;

    if (etcd_parse_watch_msg(p, len, "ns/", &m) == 0) {
        for (size_t i = 0; i < m.n; i++) {
            check_kv(&m.kvs[i], m.types[i] == SD_WATCH_DELETE);
            CHECK(m.kvs[i].mod_rev > 0);
            CHECK(i == 0 || m.kvs[i].mod_rev >= m.kvs[i - 1].mod_rev);
        }
    }
    etcd_watch_msg_free(&m);
}

static void fuzz_unary(const char *p, size_t len)
{
    json_t *j = json_loadb(p, len, 0, NULL);
    struct sd_kvs kvs;
    const char *msg;
    int64_t rev;
    int code;

    if (etcd_header_rev(j, &rev) == 0) {
        CHECK(rev >= 0);
    }
    if (etcd_parse_range(j, "ns/", rev, &kvs) == 0) {
        for (size_t i = 0; i < kvs.n; i++) {
            check_kv(&kvs.items[i], 0);
        }
    }
    sd_kvs_free(&kvs);
    if (etcd_parse_error(j, &code, &msg)) {
        CHECK(msg != NULL);
        (void)etcd_error_rc(code, msg);
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (data[0] % 2 == 0) {
        fuzz_watch((const char *)data + 1, size - 1);
    } else {
        fuzz_unary((const char *)data + 1, size - 1);
    }
    return 0;
}
