/* etcd_codec.h: the JSON and base64 codec of etcd's v3 JSON gateway (etcd 3.4): request
 * fields built with the namespace prefix, responses parsed with the namespace stripped.
 *
 * The gateway's traps (CAVEATS.md): keys and values are padded base64, int64 fields are JSON
 * strings, zero/false/empty fields are omitted, errors are {"error","message","code"}. Every
 * parser here takes untrusted input: it never crashes and returns -EPROTO for a response that
 * does not have the expected shape (tests/fuzz/fuzz_etcd_codec.c). */
#ifndef ETCD_CODEC_H
#define ETCD_CODEC_H

#include "state/sd_state.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Sets obj[field] to the base64 of ns followed by len bytes at p. Returns 0 or -ENOMEM. */
int etcd_set_b64(json_t *obj, const char *field, const char *ns, const void *p, size_t len);

/* Sets obj["key"] and obj["range_end"] to select every key starting with ns + prefix. */
int etcd_set_prefix(json_t *obj, const char *ns, const char *prefix);

/* Sets obj[field] to n as a decimal string (the gateway's int64). */
int etcd_set_int(json_t *obj, const char *field, int64_t n);

/* Reads the int64 obj[field] (a decimal string or a JSON integer; absent = 0). obj may be
 * NULL. Returns 0 or -EPROTO. */
int etcd_get_int(const json_t *obj, const char *field, int64_t *out);

/* Reads resp["header"]["revision"] into *rev. Returns 0 or -EPROTO. */
int etcd_header_rev(const json_t *resp, int64_t *rev);

/* Parses one mvccpb.KeyValue whose key must start with ns (stripped). *out is owned. */
int etcd_parse_kv(const json_t *j, const char *ns, struct sd_kv *out);

/* Parses a RangeResponse into *out (owned, also on error: free it) with out->rev = rev.
 * Returns 0 or -EPROTO. */
int etcd_parse_range(const json_t *resp, const char *ns, int64_t rev, struct sd_kvs *out);

/* If resp is an error document ({"error"|"message", "code"}), sets *code (the gRPC code) and
 * *msg (borrowed from resp, "" if none) and returns 1; else 0. */
int etcd_parse_error(const json_t *resp, int *code, const char **msg);

/* Maps a gRPC error (code, message) of etcd to a project code (see state_etcd.h). */
int etcd_error_rc(int code, const char *msg);

/* One message of a watch stream. */
struct etcd_watch_msg {
    int created;         /* the watch was created */
    int canceled;        /* etcd ended the watch */
    int64_t compact_rev; /* with canceled: the start revision was compacted */
    int64_t rev;         /* header revision (progress) */
    int err_code;        /* gRPC code of a stream error ({"error":{...}}), or 16 for a watch
                          * canceled for its token; else 0 */
    int is_error;        /* 1 for a stream error */
    size_t n;            /* events, in stream order */
    struct sd_kv *kvs;
    enum sd_watch_event_type *types;
};

/* Parses one line of a watch stream ({"result":{...}} or {"error":{...}}). *m is owned (also
 * on error): free with etcd_watch_msg_free. Returns 0 or -EPROTO. */
int etcd_parse_watch_msg(const char *p, size_t len, const char *ns, struct etcd_watch_msg *m);

void etcd_watch_msg_free(struct etcd_watch_msg *m);

#endif
