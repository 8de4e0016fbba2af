"""Versions, rollback, the test endpoint and the aggregation endpoint end to end (reference
§2.3-§2.5, §3): version lists with paging, version details with their hash, rollbacks of sources
and sinks as new versions (a sink rollback rotates its file and restores its mapping), the dry
run of a request through every sink's mapping, and the UI's aggregation of sources, sinks and
statistics. Talks to the real binary over HTTP (stdlib only)."""
import datetime
import json
import re
import time

from helpers import FAST, assert_error, table_rows
from conftest import TIMEOUT_MULT

SOURCES = "/v1/branches/default/sources"
TABLE = "in.c-bucket.table"
J = {"Content-Type": "application/json"}
UPLOAD_COUNT = "storage.level.staging.upload.trigger.count"
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
ALL_COLUMNS = [
    {"type": "uuid", "name": "id"},
    {"type": "datetime", "name": "at"},
    {"type": "ip", "name": "ip"},
    {"type": "body", "name": "body"},
    {"type": "headers", "name": "headers"},
    {"type": "path", "name": "user", "path": "user.name", "rawString": True},
    {"type": "path", "name": "tags", "path": "tags"},
    {"type": "path", "name": "opt", "path": "missing", "defaultValue": "none", "rawString": True},
]




def run_task(s, method, path, body=None, want="success"):
    status, task = s.api_call(method, path, body)
    assert status == 202, (status, task)
    done = s.wait_task(task)
    assert done["status"] == want, done
    return task, done


def patch_settings(s, path, settings, description=None):
    body = {"settings": settings}
    if description is not None:
        body["changeDescription"] = description
    return run_task(s, "PATCH", path + "/settings", body)


def versions(s, path, query=""):
    status, body = s.api_call("GET", path + "/versions" + query)
    assert status == 200, (status, body)
    assert set(body) == {"page", "versions"}, body
    for v in body["versions"]:
        assert set(v) == {"number", "hash", "description", "at", "by"}, v
        assert re.fullmatch(r"[0-9a-f]{16}", v["hash"]), v
        assert re.fullmatch(ISO_MS, v["at"]), v
        assert v["by"]["type"] in ("user", "system"), v
    return body


def wait_for(what, predicate, timeout=30):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while True:
        value = what()
        if predicate(value):
            return value
        assert time.time() < deadline, "condition not reached: %r" % (value,)
        time.sleep(0.1)


def utc_now_iso():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def sink_files(s, source, sink):
    status, body = s.api_call("GET", "%s/%s/sinks/%s/statistics/files" % (SOURCES, source, sink))
    assert status == 200, (status, body)
    return body["files"]


def no_secret_member(obj):
    if isinstance(obj, dict):
        return "secret" not in obj and all(no_secret_member(v) for v in obj.values())
    if isinstance(obj, list):
        return all(no_secret_member(v) for v in obj)
    return True


# ---- versions ----

def test_source_versions_list_detail_and_paging(streamd):
    src = streamd.create_source("s1")
    path = SOURCES + "/s1"
    patch_settings(streamd, path, [{"key": UPLOAD_COUNT, "value": 10}], "Smaller uploads.")
    patch_settings(streamd, path, [{"key": UPLOAD_COUNT, "value": 20}])

    body = versions(streamd, path)
    got = [(v["number"], v["description"]) for v in body["versions"]]
    assert got == [(1, "New source."), (2, "Smaller uploads."), (3, "Updated settings.")]
    assert body["page"] == {"limit": 100, "totalCount": 3, "afterId": "",
                            "lastId": body["page"]["lastId"]}
    assert int(body["page"]["lastId"]) == 3
    assert body["versions"][0]["hash"] == src["version"]["hash"]
    assert len({v["hash"] for v in body["versions"]}) == 3
    status, current = streamd.api_call("GET", path)
    assert current["version"] == body["versions"][2]

    # paging by afterId/limit
    first = versions(streamd, path, "?limit=2")
    assert [v["number"] for v in first["versions"]] == [1, 2]
    assert first["page"]["limit"] == 2 and first["page"]["totalCount"] == 3
    rest = versions(streamd, path, "?limit=2&afterId=" + first["page"]["lastId"])
    assert [v["number"] for v in rest["versions"]] == [3]
    assert rest["page"]["afterId"] == first["page"]["lastId"]
    assert [v["number"] for v in versions(streamd, path, "?afterId=1")["versions"]] == [2, 3]
    assert versions(streamd, path, "?afterId=3")["versions"] == []
    status, err = streamd.api_call("GET", path + "/versions?limit=0")
    assert_error(status, err, 400, "stream.api.invalidRange")
    status, err = streamd.api_call("GET", path + "/versions?afterId=abc")
    assert_error(status, err, 400, "stream.api.badRequest")

    # detail
    status, v2 = streamd.api_call("GET", path + "/versions/2")
    assert status == 200, v2
    assert v2 == body["versions"][1]
    status, err = streamd.api_call("GET", path + "/versions/99")
    assert_error(status, err, 404, "stream.api.sourceVersionNotFound", '"s1/0000000099" not found in the branch.')
    for bad in ("abc", "1x"):
        status, err = streamd.api_call("GET", path + "/versions/" + bad)
        assert_error(status, err, 400, "stream.api.invalidFieldType",
                     'Invalid value "%s" for "versionNumber", must be a integer; versionNumber must '
                     'be greater or equal than 1 but got value 0.' % bad)
    for low in ("0", "-1"):
        status, err = streamd.api_call("GET", path + "/versions/" + low)
        assert_error(status, err, 400, "stream.api.invalidRange", "got value %s." % low)
    status, err = streamd.api_call("GET", SOURCES + "/nope/versions")
    assert_error(status, err, 404, "stream.api.sourceNotFound")
    status, err = streamd.api_call("GET", SOURCES + "/nope/versions/1")
    assert_error(status, err, 404, "stream.api.sourceNotFound")
    status, err = streamd.api_call("POST", path + "/versions")
    assert_error(status, err, 405, "stream.api.methodNotAllowed")
    status, err = streamd.api_call("GET", path + "/versions/1/rollback")
    assert_error(status, err, 405, "stream.api.methodNotAllowed", "PUT")

    # versions survive a restart
    streamd.restart()
    assert versions(streamd, path) == body


def test_source_rollback(streamd):
    src = streamd.create_source("s1")
    path = SOURCES + "/s1"
    patch_settings(streamd, path, [{"key": UPLOAD_COUNT, "value": 10}])
    task, done = run_task(streamd, "PUT", path + "/versions/1/rollback")
    assert task["type"] == "api.rollback.sourceVersion"
    assert re.fullmatch(r"api\.rollback\.sourceVersion/1/s1/" + ISO_MS + "_[a-z0-9]{5}",
                        task["taskId"]), task
    assert done["result"] == "Source version was rolled back successfully."
    assert done["outputs"]["sourceId"] == "s1" and done["outputs"]["url"].endswith("/v1/branches/1/sources/s1")

    status, now = streamd.api_call("GET", path)
    assert status == 200
    assert now["version"]["number"] == 3
    assert now["version"]["description"] == "Rollback to version \"1\"."
    # same content as version 1: same hash; the secret and created stay
    assert now["version"]["hash"] == src["version"]["hash"]
    assert now["http"]["url"] == src["http"]["url"] and now["created"] == src["created"]
    status, settings = streamd.api_call("GET", path + "/settings")
    item = [i for i in settings["settings"] if i["key"] == UPLOAD_COUNT][0]
    assert item["overwritten"] is False and item["value"] == 10000, item
    nums = [(v["number"], v["description"]) for v in versions(streamd, path)["versions"]]
    assert nums == [(1, "New source."), (2, "Updated settings."), (3, "Rollback to version \"1\".")]

    # rolling back to the rollback's own predecessor works the same way
    run_task(streamd, "PUT", path + "/versions/2/rollback")
    status, now = streamd.api_call("GET", path)
    assert now["version"]["number"] == 4
    assert now["version"]["hash"] == versions(streamd, path)["versions"][1]["hash"]

    # a rollback keeps the lifecycle state: a disabled source stays disabled
    run_task(streamd, "PUT", path + "/disable")
    run_task(streamd, "PUT", path + "/versions/1/rollback")
    status, now = streamd.api_call("GET", path)
    assert "disabled" in now and now["version"]["description"] == "Rollback to version \"1\".", now
    run_task(streamd, "PUT", path + "/enable")

    status, err = streamd.api_call("PUT", path + "/versions/9/rollback")
    assert_error(status, err, 404, "stream.api.sourceVersionNotFound",
                 'Source version "s1/0000000009" not found in the branch.')
    status, err = streamd.api_call("PUT", SOURCES + "/nope/versions/1/rollback")
    assert_error(status, err, 404, "stream.api.sourceNotFound")
    # the ingestion URL still works with the kept secret
    status, _, data = streamd.request("POST", src["http"]["url"], '{"a":1}', J)
    assert status == 200, data


def test_sink_versions_and_rollback_restore_mapping(streamd):
    src = streamd.create_source("s1")
    sinks = SOURCES + "/s1/sinks"
    streamd.create_sink("s1", "k1", [{"type": "body", "name": "raw"}], table_id=TABLE)
    # a sink created again after a delete continues the version numbering
    run_task(streamd, "DELETE", sinks + "/k1")
    streamd.create_sink("s1", "k1", [{"type": "path", "name": "id", "path": "id",
                                      "rawString": True}], table_id="in.c-bucket.second")
    body = versions(streamd, sinks + "/k1")
    assert [(v["number"], v["description"]) for v in body["versions"]] == \
        [(1, "New sink."), (2, "New sink.")]
    status, v1 = streamd.api_call("GET", sinks + "/k1/versions/1")
    assert status == 200 and v1 == body["versions"][0]
    before = utc_now_iso()

    task, done = run_task(streamd, "PUT", sinks + "/k1/versions/1/rollback")
    assert task["type"] == "api.rollback.sinkVersion"
    assert task["taskId"].startswith("api.rollback.sinkVersion/1/s1/k1/"), task
    assert done["result"] == "Sink version was rolled back successfully."
    assert done["outputs"]["sinkId"] == "k1"
    status, sink = streamd.api_call("GET", sinks + "/k1")
    assert sink["version"]["number"] == 3
    assert sink["version"]["description"] == "Rollback to version \"1\"."
    assert sink["version"]["hash"] == v1["hash"]
    assert sink["table"]["tableId"] == TABLE
    assert sink["table"]["mapping"]["columns"] == [{"type": "body", "name": "raw"}]
    # the rollback rotated the file, and the restored mapping is the one in use
    writing = [f for f in sink_files(streamd, "s1", "k1") if f["state"] == "writing"]
    assert len(writing) == 1 and writing[0]["openedAt"] >= before, writing
    status, result = streamd.api_call("POST", SOURCES + "/s1/test", '{"id":"x1"}', headers=J)
    assert status == 200, result
    assert result["tables"][0]["rows"][0]["columns"] == [{"name": "raw", "value": '{"id":"x1"}'}]
    status, _, data = streamd.request("POST", src["http"]["url"], '{"id":"x2"}', J)
    assert status == 200, data

    status, err = streamd.api_call("PUT", sinks + "/k1/versions/7/rollback")
    assert_error(status, err, 404, "stream.api.sinkVersionNotFound",
                 'Sink version "k1/0000000007" not found in the source.')
    status, err = streamd.api_call("GET", sinks + "/nope/versions")
    assert_error(status, err, 404, "stream.api.sinkNotFound")
    status, err = streamd.api_call("GET", SOURCES + "/nope/sinks/k1/versions/1")
    assert_error(status, err, 404, "stream.api.sourceNotFound")




def test_sink_rollback_of_the_table_takes_effect_in_a_new_file(streamd_factory):
    s = streamd_factory(args=FAST)
    src = s.create_source("s1")
    path = SOURCES + "/s1/sinks/k1"
    old_columns = [{"type": "path", "name": "id", "path": "id", "rawString": True}]
    s.create_sink("s1", "k1", old_columns, table_id="in.c-b.old")
    new_columns = old_columns + [{"type": "path", "name": "n", "path": "n",
                                  "defaultValue": "none"}]
    run_task(s, "PATCH", path, {"changeDescription": "New table.",
                                "table": {"type": "keboola", "tableId": "in.c-b.new",
                                          "mapping": {"columns": new_columns}}})
    url = src["http"]["url"]
    for i in range(3):
        status, _, data = s.request("POST", url, json.dumps({"id": "new-%d" % i, "n": i}), J)
        assert status == 200, data
    task, done = run_task(s, "PUT", path + "/versions/1/rollback")
    status, sink = s.api_call("GET", path)
    assert sink["table"]["tableId"] == "in.c-b.old" and "disabled" not in sink, sink
    assert sink["table"]["mapping"]["columns"] == old_columns
    assert [(v["number"], v["description"]) for v in versions(s, path)["versions"]] == \
        [(1, "New sink."), (2, "New table."), (3, "Rollback to version \"1\".")]
    for i in range(3):
        status, _, data = s.request("POST", url, json.dumps({"id": "old-%d" % i, "n": i}), J)
        assert status == 200, data
    wait_for(lambda: len(table_rows(s.data_dir, "in.c-b.new")) + len(table_rows(s.data_dir, "in.c-b.old")),
             lambda n: n >= 6)
    assert sorted(table_rows(s.data_dir, "in.c-b.new")) == [("new-%d" % i, str(i)) for i in range(3)]
    assert sorted(table_rows(s.data_dir, "in.c-b.old")) == [("old-%d" % i,) for i in range(3)]


def test_sink_rollback_to_a_table_with_other_columns_is_refused(streamd):
    s = streamd
    src = s.create_source("s1")
    path = SOURCES + "/s1/sinks/k1"
    s.create_sink("s1", "k1", [{"type": "body", "name": "raw"}], table_id="in.c-b.t1")
    run_task(s, "PATCH", path, {"table": {"type": "keboola", "tableId": "in.c-b.t2",
                                          "mapping": {"columns": [{"type": "uuid",
                                                                   "name": "id"}]}}})
    # table t1 is dropped (cascade delete of another source using it) and created again with
    # other columns, so version 1 of k1 can no longer be written
    s.create_source("s2")
    s.create_sink("s2", "x", [{"type": "body", "name": "raw"}], table_id="in.c-b.t1")
    run_task(s, "DELETE", SOURCES + "/s2?cascade=true")
    s.create_source("s3")
    s.create_sink("s3", "y", [{"type": "ip", "name": "ip"}], table_id="in.c-b.t1")
    status, before = s.api_call("GET", path)

    # refused at request time, as the rollback task would fail on the table
    status, body = s.api_call("PUT", path + "/versions/1/rollback")
    assert_error(status, body, 400, "stream.api.badRequest",
                 'Invalid version 1 table: table "in.c-b.t1" exists with columns ("ip"), '
                 'expected ("raw").')
    status, after = s.api_call("GET", path)
    assert after == before
    assert [v["number"] for v in versions(s, path)["versions"]] == [1, 2]
    status, _, data = s.request("POST", src["http"]["url"], '{"a":1}', J)
    assert status == 200, data
    # the sink still maps with version 2
    status, result = s.api_call("POST", SOURCES + "/s1/test", "{}", headers=J)
    assert [c["name"] for c in result["tables"][0]["rows"][0]["columns"]] == ["id"]


# ---- test endpoint ----

def test_source_test_endpoint(streamd):
    streamd.create_source("s1")
    status, result = streamd.api_call("POST", SOURCES + "/s1/test", '{"a":1}', headers=J)
    assert status == 200, result
    assert result == {"projectId": 1, "branchId": 1, "sourceId": "s1", "tables": []}

    streamd.create_sink("s1", "k2", ALL_COLUMNS, table_id="in.c-bucket.second")
    streamd.create_sink("s1", "k1", [{"type": "body", "name": "raw"}], table_id=TABLE)
    payload = '{"user":{"name":"Ann \\"A\\""},"tags":["x","y"]}'
    headers = dict(J, **{"X-Custom": "v1"})
    status, result = streamd.api_call("POST", SOURCES + "/s1/test", payload, headers=headers)
    assert status == 200, result
    assert [t["sinkId"] for t in result["tables"]] == ["k1", "k2"]
    assert [t["tableId"] for t in result["tables"]] == [TABLE, "in.c-bucket.second"]
    assert result["tables"][0]["rows"] == [{"columns": [{"name": "raw", "value": payload}]}]
    rows = result["tables"][1]["rows"]
    assert len(rows) == 1
    cols = rows[0]["columns"]
    assert [c["name"] for c in cols] == [c["name"] for c in ALL_COLUMNS]
    values = {c["name"]: c["value"] for c in cols}
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        values["id"]), values
    assert re.fullmatch(ISO_MS, values["at"]), values
    assert values["ip"] == "127.0.0.1"
    assert values["body"] == payload
    hdrs = json.loads(values["headers"])
    assert hdrs["X-Custom"] == "v1" and hdrs["Content-Type"] == "application/json", hdrs
    # as the reference's API server: Content-Length, but no Host
    assert hdrs["Content-Length"] == str(len(payload)) and "Host" not in hdrs, hdrs
    # the API token never reaches a rendered value
    assert not any(k.lower() == "x-storageapi-token" for k in hdrs), hdrs
    assert streamd.token not in json.dumps(result)
    assert values["user"] == 'Ann "A"'
    assert values["tags"] == '["x","y"]'
    assert values["opt"] == "none"

    # client IP: X-Real-IP, then the first X-Forwarded-For entry, then the peer
    def ip_of(extra):
        status, res = streamd.api_call("POST", SOURCES + "/s1/test", payload,
                                       headers=dict(J, **extra))
        assert status == 200, res
        return {c["name"]: c["value"] for c in res["tables"][1]["rows"][0]["columns"]}["ip"]

    assert ip_of({"X-Real-IP": "10.1.2.3", "X-Forwarded-For": "10.9.9.9"}) == "10.1.2.3"
    assert ip_of({"X-Forwarded-For": "10.9.9.9, 10.0.0.1"}) == "10.9.9.9"
    assert ip_of({"X-Forwarded-For": "2001:db8::1"}) == "2001:db8::1"
    assert ip_of({"X-Real-IP": "not-an-ip"}) == "127.0.0.1"

    # a mapping error is 422 naming the column
    status, err = streamd.api_call("POST", SOURCES + "/s1/test", '{"tags":[]}', headers=J)
    assert_error(status, err, 422, "stream.api.unprocessableContent")
    assert err["message"] == 'Invalid value for column "user": path "user.name" not found in the body.'
    status, err = streamd.api_call("POST", SOURCES + "/s1/test", "a=1",
                                   headers={"Content-Type": "text/plain"})
    assert_error(status, err, 422, "stream.api.unprocessableContent", '"user"')
    # a form body is mapped like JSON
    status, res = streamd.api_call("POST", SOURCES + "/s1/test", "user%5Bname%5D=Bob&tags=1",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, res

    # nothing was stored: the sinks' statistics are still empty
    for sink in ("k1", "k2"):
        status, total = streamd.api_call("GET", SOURCES + "/s1/sinks/%s/statistics/total" % sink)
        assert total["total"]["recordsCount"] == 0, total

    # a disabled sink is left out
    run_task(streamd, "PUT", SOURCES + "/s1/sinks/k2/disable")
    status, res = streamd.api_call("POST", SOURCES + "/s1/test", "{}", headers=J)
    assert status == 200 and [t["sinkId"] for t in res["tables"]] == ["k1"], res
    run_task(streamd, "PUT", SOURCES + "/s1/sinks/k2/enable")
    status, res = streamd.api_call("POST", SOURCES + "/s1/test", payload, headers=J)
    assert status == 200 and [t["sinkId"] for t in res["tables"]] == ["k1", "k2"], res

    status, err = streamd.api_call("POST", SOURCES + "/nope/test", "{}", headers=J)
    assert_error(status, err, 404, "stream.api.sourceNotFound")
    status, err = streamd.api_call("POST", SOURCES + "/s1/test?signal=bogus", "{}", headers=J)
    assert_error(status, err, 400, "stream.api.invalidEnumValue")
    status, err = streamd.api_call("GET", SOURCES + "/s1/test")
    assert_error(status, err, 405, "stream.api.methodNotAllowed")


# ---- aggregation ----

def test_aggregation_sources(streamd):
    s1 = streamd.create_source("s1")
    streamd.create_source("s2")
    streamd.create_sink("s1", "k1", [{"type": "body", "name": "raw"}], table_id=TABLE)
    streamd.create_sink("s1", "k2", [{"type": "body", "name": "raw"}],
                        table_id="in.c-bucket.other")
    for i in range(3):
        status, _, data = streamd.request("POST", s1["http"]["url"], '{"i":%d}' % i, J)
        assert status == 200, data

    def aggregation(query=""):
        status, body = streamd.api_call("GET", "/v1/branches/default/aggregation/sources" + query)
        assert status == 200, (status, body)
        assert set(body) == {"projectId", "branchId", "page", "sources"}, body
        return body

    def k1_total(body):
        return body["sources"][0]["sinks"][0]["statistics"]["total"]["recordsCount"]

    body = wait_for(aggregation, lambda b: k1_total(b) == 3)
    assert body["projectId"] == 1 and body["branchId"] == 1
    assert body["page"] == {"limit": 100, "totalCount": 2, "afterId": "", "lastId": "s2"}
    assert [s["sourceId"] for s in body["sources"]] == ["s1", "s2"]
    first = body["sources"][0]
    assert first["http"]["url"] == s1["http"]["url"]
    assert no_secret_member(body)
    assert body["sources"][1]["sinks"] == []
    assert [k["sinkId"] for k in first["sinks"]] == ["k1", "k2"]
    for sink in first["sinks"]:
        status, plain = streamd.api_call("GET", SOURCES + "/s1/sinks/" + sink["sinkId"])
        stats = sink.pop("statistics")
        assert sink == plain
        assert set(stats) == {"total", "levels", "files"}, stats
        assert len(stats["files"]) == 1 and stats["files"][0]["state"] == "writing", stats
        assert set(stats["files"][0]["statistics"]) == {"total", "levels"}
    status, total = streamd.api_call("GET", SOURCES + "/s1/sinks/k1/statistics/total")
    assert total["total"]["recordsCount"] == 3

    page = aggregation("?limit=1")
    assert [s["sourceId"] for s in page["sources"]] == ["s1"]
    assert page["page"]["lastId"] == "s1" and page["page"]["totalCount"] == 2
    page = aggregation("?limit=1&afterId=s1")
    assert [s["sourceId"] for s in page["sources"]] == ["s2"]
    status, err = streamd.api_call("GET", "/v1/branches/default/aggregation/sources?limit=101")
    assert_error(status, err, 400, "stream.api.invalidRange")
    status, err = streamd.api_call("GET", "/v1/branches/7/aggregation/sources")
    assert_error(status, err, 404, "stream.api.branchNotFound")
    status, err = streamd.api_call("POST", "/v1/branches/default/aggregation/sources", {})
    assert_error(status, err, 405, "stream.api.methodNotAllowed")
