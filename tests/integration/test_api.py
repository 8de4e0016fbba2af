"""Configuration API end to end (reference §2.3-§2.5): auth with local tokens, sources and table
sinks (create/get/list/delete), async tasks, validation errors, limits, restarts and the
generated admin token. Talks to the real binary over HTTP (stdlib only)."""
import json
import os
import re
import stat
import threading
import urllib.parse

import pytest

from helpers import assert_error

SOURCES = "/v1/branches/default/sources"
COLUMNS = [{"type": "uuid", "name": "id"}, {"type": "body", "name": "body"}]


def sink_body(sink_id="k1", columns=None, table_id="in.c-bucket.table", **extra):
    body = {"sinkId": sink_id, "name": sink_id, "type": "table",
            "table": {"type": "keboola", "tableId": table_id,
                      "mapping": {"columns": columns if columns is not None else COLUMNS}}}
    body.update(extra)
    return body




def run_task(s, method, path, body=None):
    status, task = s.api_call(method, path, body)
    assert status == 202, (status, task)
    return s.wait_task(task)


def no_secret_member(obj):
    """True if no object below obj has a "secret" member (the API shows http.url only)."""
    if isinstance(obj, dict):
        return "secret" not in obj and all(no_secret_member(v) for v in obj.values())
    if isinstance(obj, list):
        return all(no_secret_member(v) for v in obj)
    return True


# ---- unauthenticated endpoints, routing, CORS ----

def test_root_v1_and_health(streamd):
    for path in ("/", "/v1"):  # the reference answers the index on both
        status, body = streamd.api_call("GET", path, token="")
        assert status == 200
        assert body == {"api": "stream", "documentation": streamd.api + "/v1/documentation"}
    status, headers, data = streamd.request("GET", streamd.api + "/health-check")
    assert (status, data) == (200, b"OK\n")
    assert headers["content-type"].startswith("text/plain")


def test_unknown_route_wrong_method_and_cors(streamd):
    status, body = streamd.api_call("GET", "/v1/nope")
    assert_error(status, body, 404, "stream.api.endpointNotFound")
    assert body["message"] == 'No endpoint found for path "/v1/nope".'
    # a known route of a missing source answers the entity's 404, not the route's
    status, body = streamd.api_call("GET", SOURCES + "/s1/settings")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = streamd.api_call("PUT", SOURCES)
    assert_error(status, body, 405, "stream.api.methodNotAllowed")
    status, body = streamd.api_call("POST", "/v1/tasks/x/y")
    assert_error(status, body, 405, "stream.api.methodNotAllowed")
    status, headers, data = streamd.request("OPTIONS", streamd.api + SOURCES + "/s1")
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"
    for m in ("GET", "POST", "PATCH", "DELETE", "PUT"):
        assert m in headers["access-control-allow-methods"]
    for h in ("Content-Type", "X-StorageApi-Token", "X-KBC-ProjectId"):
        assert h in headers["access-control-allow-headers"]
    # every routed path answers the preflight, as the reference's; an unknown path does not
    for path in ("/", "/health-check", "/v1/tasks/a/b"):
        status, headers, _ = streamd.request("OPTIONS", streamd.api + path)
        assert status == 200 and headers["access-control-allow-origin"] == "*", path
    status, _, data = streamd.request("OPTIONS", streamd.api + "/v1/nope")
    assert status == 404 and json.loads(data)["error"] == "stream.api.endpointNotFound"
    # a simple request from a browser is answered with the origin header
    status, headers, _ = streamd.request("GET", streamd.api + "/health-check",
                                         headers={"Origin": "https://ui.example"})
    assert status == 200 and headers["access-control-allow-origin"] == "*"


# ---- auth ----

@pytest.mark.parametrize("path", [SOURCES, SOURCES + "/s1", SOURCES + "/s1/sinks", "/v1/tasks/a/b"])
def test_auth_errors(streamd, path):
    status, body = streamd.api_call("GET", path, token="")
    assert_error(status, body, 400, "stream.api.missingField", "X-StorageApi-Token")
    status, body = streamd.api_call("GET", path, token="wrong-token-0123456789")
    assert_error(status, body, 401, "stream.api.unauthorized")
    status, body = streamd.api_call("POST", SOURCES, {"name": "x", "type": "http"}, token="wrong")
    assert_error(status, body, 401, "stream.api.unauthorized")


def test_token_never_logged(streamd):
    streamd.create_source("s1")
    streamd.api_call("GET", SOURCES, token="wrong-token-that-must-not-be-logged")
    assert streamd.stop() == 0
    text = streamd.read_stderr()
    assert streamd.token not in text
    assert "wrong-token-that-must-not-be-logged" not in text


@pytest.mark.parametrize("branch,status,name,message", [
    ("5", 404, "branchNotFound", 'Branch "5" not found in the project.'),
    ("0", 404, "branchNotFound", 'Branch "0" not found in the project.'),
    ("main", 400, "badRequest", 'Invalid branch: expected "default" or <int>, given "main".'),
    ("default2", 400, "badRequest", 'Invalid branch: expected "default" or <int>, given "default2".'),
])
def test_unknown_branch(streamd, branch, status, name, message):
    """The reference's texts: an integer is a branch the project does not have (streamd's
    projects have their default branch only), anything else is not a branch id."""
    got, body = streamd.api_call("GET", "/v1/branches/%s/sources" % branch)
    assert_error(got, body, status, "stream.api." + name)
    assert body["message"] == message
    got, body = streamd.api_call("POST", "/v1/branches/%s/sources" % branch,
                                 {"name": "x", "type": "http"})
    assert_error(got, body, status, "stream.api." + name)


# ---- sources ----

def test_create_get_source(streamd):
    status, task = streamd.api_call("POST", SOURCES, {"sourceId": "my-src", "name": "My Source",
                                                      "type": "http", "description": "d"})
    assert status == 202, task
    assert task["type"] == "api.create.source"
    assert task["status"] == "processing" and task["isFinished"] is False
    assert re.fullmatch(r"api\.create\.source/1/my-src/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z_[a-z0-9]{5}",
                        task["taskId"]), task
    assert task["url"] == streamd.api + "/v1/tasks/" + task["taskId"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", task["createdAt"])
    done = streamd.wait_task(task)
    assert done["status"] == "success" and done["isFinished"] is True, done
    assert done["result"] == "Source has been created successfully."
    assert isinstance(done["duration"], int) and "finishedAt" in done
    assert done["outputs"] == {"url": streamd.api + "/v1/branches/1/sources/my-src",
                               "projectId": 1, "branchId": 1, "sourceId": "my-src"}

    for branch in ("default", "1"):
        status, src = streamd.api_call("GET", "/v1/branches/%s/sources/my-src" % branch)
        assert status == 200, src
        assert src["projectId"] == 1 and src["branchId"] == 1
        assert (src["sourceId"], src["type"], src["name"], src["description"]) == \
            ("my-src", "http", "My Source", "d")
        prefix = streamd.source + "/stream/1/my-src/"
        assert src["http"]["url"].startswith(prefix)
        assert re.fullmatch(r"[0-9a-zA-Z]{48}", src["http"]["url"][len(prefix):])
        assert no_secret_member(src)
        v = src["version"]
        assert v["number"] == 1 and re.fullmatch(r"[0-9a-f]{16}", v["hash"])
        assert v["description"] == "New source."
        assert v["by"]["type"] == "user" and v["by"]["tokenId"]
        assert src["created"]["by"] == v["by"] and src["created"]["at"] == v["at"]
        assert "deleted" not in src and "disabled" not in src

    # the ingestion URL works
    status, _, data = streamd.request("POST", src["http"]["url"], {"a": 1})
    assert (status, data) == (200, b"OK")


def test_source_id_from_name(streamd):
    done = run_task(streamd, "POST", SOURCES, {"name": "Ünïcode CamelCase Name", "type": "http"})
    assert done["status"] == "success", done
    assert done["outputs"]["sourceId"] == "unicode-camel-case-name"
    status, src = streamd.api_call("GET", SOURCES + "/unicode-camel-case-name")
    assert status == 200 and src["name"] == "Ünïcode CamelCase Name"


def test_get_missing_source(streamd):
    status, body = streamd.api_call("GET", SOURCES + "/nope")
    assert_error(status, body, 404, "stream.api.sourceNotFound", "nope")
    status, body = streamd.api_call("DELETE", SOURCES + "/nope")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = streamd.api_call("GET", SOURCES + "/" + "a" * 49)
    assert_error(status, body, 400, "stream.api.invalidLength", "sourceId")


def test_list_sources_pagination(streamd):
    ids = ["s%d" % i for i in range(5)]
    for i in ids:
        streamd.create_source(i)
    status, body = streamd.api_call("GET", SOURCES)
    assert status == 200
    assert body["projectId"] == 1 and body["branchId"] == 1
    assert body["page"] == {"limit": 100, "totalCount": 5, "afterId": "", "lastId": "s4"}
    assert [s["sourceId"] for s in body["sources"]] == ids
    assert all(no_secret_member(s) and s["http"]["url"] for s in body["sources"])

    seen, after = [], ""
    while True:
        status, body = streamd.api_call("GET", SOURCES + "?limit=2&afterId=" + after)
        assert status == 200, body
        assert body["page"]["limit"] == 2 and body["page"]["totalCount"] == 5
        assert body["page"]["afterId"] == after
        got = [s["sourceId"] for s in body["sources"]]
        if not got:
            assert body["page"]["lastId"] == ""
            break
        assert body["page"]["lastId"] == got[-1]
        seen += got
        after = got[-1]
    assert seen == ids

    # the reference's (Goa's) texts: a type error carries the range error of the value 0
    for bad, name, message in (
            ("0", "invalidRange", "Limit must be greater or equal than 1 but got value 0."),
            ("101", "invalidRange", "Limit must be lesser or equal than 100 but got value 101."),
            ("-1", "invalidRange", "Limit must be greater or equal than 1 but got value -1."),
            ("abc", "invalidFieldType", 'Invalid value "abc" for "limit", must be a integer; '
                                        "limit must be greater or equal than 1 but got value 0."),
            ("1.5", "invalidFieldType", 'Invalid value "1.5" for "limit", must be a integer; '
                                        "limit must be greater or equal than 1 but got value 0.")):
        status, body = streamd.api_call("GET", SOURCES + "?limit=" + bad)
        assert_error(status, body, 400, "stream.api." + name)
        assert body["message"] == message, bad


def test_duplicate_source(streamd):
    streamd.create_source("dup")
    status, body = streamd.api_call("POST", SOURCES, {"sourceId": "dup", "name": "x", "type": "http"})
    assert_error(status, body, 409, "stream.api.sourceAlreadyExists")
    # the same id reached through normalization
    status, body = streamd.api_call("POST", SOURCES, {"sourceId": "DUP", "name": "x", "type": "http"})
    assert_error(status, body, 409, "stream.api.sourceAlreadyExists")


def test_parallel_creates_one_winner(streamd):
    results = []
    lock = threading.Lock()

    def create():
        r = streamd.api_call("POST", SOURCES, {"sourceId": "race", "name": "race", "type": "http"})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    successes = 0
    for status, body in results:
        if status == 202:
            done = streamd.wait_task(body)
            if done["status"] == "success":
                successes += 1
            else:
                assert "already exists" in done["error"], done
        else:
            assert_error(status, body, 409, "stream.api.sourceAlreadyExists")
    assert successes == 1, results
    status, body = streamd.api_call("GET", SOURCES)
    assert [s["sourceId"] for s in body["sources"]] == ["race"]


@pytest.mark.parametrize("body,name,needle", [
    ({"type": "http"}, "stream.api.missingField", "name"),
    ({"name": "x"}, "stream.api.missingField", "type"),
    ({"name": "", "type": "http"}, "stream.api.invalidLength", "body.name"),
    ({"name": "n" * 41, "type": "http"}, "stream.api.invalidLength", "body.name"),
    ({"name": "x", "type": "http", "description": "d" * 4097}, "stream.api.invalidLength",
     "body.description"),
    ({"name": "x", "type": "http", "sourceId": "i" * 49}, "stream.api.invalidLength",
     "body.sourceId"),
    ({"name": "x", "type": "ftp"}, "stream.api.invalidEnumValue", "body.type"),
    ({"name": "x", "type": "otlp"}, "stream.api.badRequest", "otlp"),
    ({"name": 12, "type": "http"}, "stream.api.badRequest", "body.name"),
    ({"name": "---", "type": "http"}, "stream.api.badRequest", "sourceId"),
    ([1, 2], "stream.api.badRequest", "object"),
])
def test_invalid_source_bodies(streamd, body, name, needle):
    status, resp = streamd.api_call("POST", SOURCES, body)
    assert_error(status, resp, 400, name, needle)


def test_invalid_json_and_empty_body(streamd):
    for raw in (b"{", b"", b"null", b"{\"name\":\"a\",\"name\":\"b\",\"type\":\"http\"}"):
        status, headers, data = streamd.request(
            "POST", streamd.api + SOURCES, raw,
            {"X-StorageApi-Token": streamd.token, "Content-Type": "application/json"})
        body = json.loads(data)
        assert_error(status, body, 400, "stream.api.badRequest")
    status, body = streamd.api_call("GET", SOURCES)
    assert body["sources"] == []


def test_source_limit(streamd):
    tasks = []
    for i in range(100):
        status, task = streamd.api_call("POST", SOURCES, {"sourceId": "s%03d" % i, "name": "n",
                                                          "type": "http"})
        assert status == 202, (i, task)
        tasks.append(task)
    for task in tasks:
        assert streamd.wait_task(task)["status"] == "success"
    status, body = streamd.api_call("POST", SOURCES, {"sourceId": "one-more", "name": "n",
                                                      "type": "http"})
    assert_error(status, body, 422, "stream.api.resourceLimitReached", "100")
    status, body = streamd.api_call("GET", SOURCES + "?limit=100")
    assert body["page"]["totalCount"] == 100 and len(body["sources"]) == 100


def burst(streamd, path, bodies):
    """POSTs every body to path at once from its own thread. Returns the (status, body) list."""
    results = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def post(i):
        start.wait()
        results[i] = streamd.api_call("POST", path, bodies[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def assert_exact_limit(streamd, results, allowed, message):
    """Exactly allowed creations were accepted and each task succeeded; the rest got 422."""
    accepted = [body for status, body in results if status == 202]
    refused = [(status, body) for status, body in results if status != 202]
    assert len(accepted) == allowed, (len(accepted), refused[:3])
    for status, body in refused:
        assert_error(status, body, 422, "stream.api.resourceLimitReached", message)
    for task in accepted:
        done = streamd.wait_task(task)
        assert done["status"] == "success", done


def test_source_limit_burst(streamd):
    # creations still queued count against the limit: no task is accepted and then fails for it
    streamd.create_source("first")
    results = burst(streamd, SOURCES, [{"sourceId": "b%03d" % i, "name": "n", "type": "http"}
                                       for i in range(150)])
    assert_exact_limit(streamd, results, 99, "Maximum number of sources per branch is 100.")
    status, body = streamd.api_call("GET", SOURCES + "?limit=100")
    assert body["page"]["totalCount"] == 100
    # a deleted source frees its slot, a refused one took none
    run_task(streamd, "DELETE", SOURCES + "/first")
    results = burst(streamd, SOURCES, [{"sourceId": "c%d" % i, "name": "n", "type": "http"}
                                       for i in range(5)])
    assert_exact_limit(streamd, results, 1, "Maximum number of sources per branch is 100.")
    # undelete makes a source active again, so it needs a free slot too
    status, body = streamd.api_call("PUT", SOURCES + "/first/undelete")
    assert_error(status, body, 422, "stream.api.resourceLimitReached",
                 "Maximum number of sources per branch is 100.")


def test_sink_limit_burst(streamd):
    streamd.create_source("src")
    streamd.create_sink("src", "first", COLUMNS)
    results = burst(streamd, SOURCES + "/src/sinks",
                    [sink_body("k%03d" % i, table_id="in.c-b.t%d" % i) for i in range(130)])
    assert_exact_limit(streamd, results, 99, "Maximum number of sinks per source is 100.")
    status, body = streamd.api_call("GET", SOURCES + "/src/sinks?limit=100")
    assert body["page"]["totalCount"] == 100
    run_task(streamd, "DELETE", SOURCES + "/src/sinks/first")
    status, body = streamd.api_call("PUT", SOURCES + "/src/sinks/first/undelete")
    assert status == 202, body
    assert streamd.wait_task(body)["status"] == "success"
    status, body = streamd.api_call("POST", SOURCES + "/src/sinks", sink_body("more"))
    assert_error(status, body, 422, "stream.api.resourceLimitReached",
                 "Maximum number of sinks per source is 100.")


def test_parallel_sinks_on_one_new_table_agree_or_are_refused(streamd):
    # the table does not exist yet; sinks set up in parallel that would make it differently
    # (other columns, or the id spelled in another case): exactly one is accepted, the others
    # get 400 at once instead of a task that fails on the table
    streamd.create_source("src")
    bodies = []
    for i in range(16):
        table = "in.c-b." + "".join(ch.upper() if (i // 2) >> n & 1 else ch
                                    for n, ch in enumerate("shared"))
        bodies.append(sink_body("k%d" % i, named_columns("c%d" % (i % 2)), table_id=table))
    # queued work first, so that the burst's tasks wait and none has made the table yet
    busy = [streamd.api_call("POST", SOURCES, {"sourceId": "busy%d" % i, "name": "n",
                                               "type": "http"})[1] for i in range(80)]
    results = burst(streamd, SOURCES + "/src/sinks", bodies)
    accepted = [body for status, body in results if status == 202]
    assert len(accepted) == 1, results
    for status, body in results:
        if status != 202:
            assert_error(status, body, 400, "stream.api.badRequest", "Invalid body.table: ")
            assert ("a task still running sets table" in body["message"]
                    or "exists with columns" in body["message"]
                    or "clashes with existing table" in body["message"]), body
    assert streamd.wait_task(accepted[0])["status"] == "success"
    assert all(streamd.wait_task(task)["status"] == "success" for task in busy)


def test_delete_source_and_recreate(streamd):
    src = streamd.create_source("gone")
    streamd.create_sink("gone", "k1", COLUMNS)
    old_url = src["http"]["url"]
    status, task = streamd.api_call("DELETE", SOURCES + "/gone")
    assert status == 202 and task["type"] == "api.delete.source", task
    assert task["taskId"].startswith("api.delete.source/1/gone/")
    done = streamd.wait_task(task)
    assert done["status"] == "success", done
    assert done["result"] == "Source has been deleted successfully."
    assert done["outputs"] == {"url": streamd.api + "/v1/branches/1/sources/gone",
                               "projectId": 1, "branchId": 1, "sourceId": "gone"}
    status, body = streamd.api_call("GET", SOURCES + "/gone")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = streamd.api_call("GET", SOURCES + "/gone/sinks/k1")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = streamd.api_call("GET", SOURCES)
    assert body["sources"] == [] and body["page"]["totalCount"] == 0
    # the data endpoint no longer accepts the old URL
    status, _, _ = streamd.request("POST", old_url, {"a": 1})
    assert status == 404
    # the id can be created again: new secret, version numbering continues
    src2 = streamd.create_source("gone")
    assert src2["http"]["url"] != old_url
    assert src2["version"]["number"] == 2
    status, body = streamd.api_call("GET", SOURCES + "/gone/sinks")
    assert status == 200 and body["sinks"] == []


# ---- sinks ----

def test_sink_lifecycle(streamd):
    streamd.create_source("src")
    path = SOURCES + "/src/sinks"
    cols = [{"type": "uuid", "name": "id"},
            {"type": "path", "name": "x", "path": "a.b", "rawString": True, "defaultValue": "-"}]
    status, task = streamd.api_call("POST", path, sink_body("k1", cols, description="first"))
    assert status == 202 and task["type"] == "api.create.sink", task
    assert task["taskId"].startswith("api.create.sink/1/src/k1/")
    done = streamd.wait_task(task)
    assert done["status"] == "success", done
    assert done["result"] == "Sink has been created successfully."
    assert done["outputs"] == {"url": streamd.api + "/v1/branches/1/sources/src/sinks/k1",
                               "projectId": 1, "branchId": 1, "sourceId": "src", "sinkId": "k1"}

    status, sink = streamd.api_call("GET", path + "/k1")
    assert status == 200, sink
    assert (sink["projectId"], sink["branchId"], sink["sourceId"], sink["sinkId"]) == (1, 1, "src", "k1")
    assert (sink["type"], sink["name"], sink["description"]) == ("table", "k1", "first")
    assert sink["table"] == {"type": "keboola", "tableId": "in.c-bucket.table",
                             "mapping": {"columns": cols}}
    assert sink["version"]["number"] == 1 and sink["version"]["description"] == "New sink."
    assert re.fullmatch(r"[0-9a-f]{16}", sink["version"]["hash"])
    assert "created" in sink

    # a second sink, id from the name
    done = run_task(streamd, "POST", path, {"name": "Second Sink", "type": "table",
                                            "table": {"type": "keboola", "tableId": "out.c-b.t2",
                                                      "mapping": {"columns": COLUMNS}}})
    assert done["status"] == "success" and done["outputs"]["sinkId"] == "second-sink", done

    status, body = streamd.api_call("GET", path)
    assert status == 200
    assert (body["projectId"], body["branchId"], body["sourceId"]) == (1, 1, "src")
    assert [k["sinkId"] for k in body["sinks"]] == ["k1", "second-sink"]
    assert body["page"] == {"limit": 100, "totalCount": 2, "afterId": "", "lastId": "second-sink"}
    status, body = streamd.api_call("GET", path + "?afterId=k1&limit=1")
    assert [k["sinkId"] for k in body["sinks"]] == ["second-sink"]

    status, body = streamd.api_call("POST", path, sink_body("k1"))
    assert_error(status, body, 409, "stream.api.sinkAlreadyExists")

    # records reach the sink
    status, src = streamd.api_call("GET", SOURCES + "/src")
    status, _, data = streamd.request("POST", src["http"]["url"], {"a": {"b": "v"}},
                                      {"Content-Type": "application/json"})
    assert (status, data) == (200, b"OK")

    status, task = streamd.api_call("DELETE", path + "/k1")
    assert status == 202 and task["type"] == "api.delete.sink"
    done = streamd.wait_task(task)
    assert done["status"] == "success" and done["result"] == "Sink has been deleted successfully."
    status, body = streamd.api_call("GET", path + "/k1")
    assert_error(status, body, 404, "stream.api.sinkNotFound", "k1")
    status, body = streamd.api_call("DELETE", path + "/k1")
    assert_error(status, body, 404, "stream.api.sinkNotFound")
    status, body = streamd.api_call("GET", path)
    assert [k["sinkId"] for k in body["sinks"]] == ["second-sink"]


def test_sink_under_missing_source(streamd):
    path = SOURCES + "/nope/sinks"
    status, body = streamd.api_call("POST", path, sink_body())
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = streamd.api_call("GET", path)
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = streamd.api_call("GET", path + "/k1")
    assert_error(status, body, 404, "stream.api.sourceNotFound")


@pytest.mark.parametrize("body,name,needle", [
    (sink_body(columns=[{"type": "template", "name": "t",
                         "template": {"language": "jsonnet", "content": "body.a"}}]),
     "stream.api.badRequest", "template"),
    (sink_body(columns=[]), "stream.api.invalidLength", "columns"),
    (sink_body(columns=[{"type": "uuid", "name": "c%d" % i} for i in range(101)]),
     "stream.api.invalidLength", "columns"),
    (sink_body(columns=[{"type": "nope", "name": "x"}]), "stream.api.badRequest", "columns"),
    (sink_body(columns=[{"type": "path", "name": "x"}]), "stream.api.badRequest", "path"),
    (sink_body(columns=[{"type": "uuid"}]), "stream.api.missingField", "name"),
    (sink_body(table_id="bucket.table"), "stream.api.badRequest", "tableId"),
    (sink_body(table_id="sys.c-b.t"), "stream.api.badRequest", "tableId"),
    (sink_body(table_id="in.c-b.t x"), "stream.api.badRequest", "tableId"),
    (dict(sink_body(), type="file"), "stream.api.invalidEnumValue", "body.type"),
    (dict(sink_body(), table={"type": "s3", "tableId": "in.c-b.t",
                              "mapping": {"columns": COLUMNS}}),
     "stream.api.invalidEnumValue", "body.table.type"),
    ({"name": "x", "type": "table"}, "stream.api.missingField", "table"),
    (dict(sink_body(), name="n" * 41), "stream.api.invalidLength", "body.name"),
    (dict(sink_body(), sinkId="-"), "stream.api.badRequest", "sinkId"),
])
def test_invalid_sink_bodies(streamd, body, name, needle):
    streamd.create_source("src")
    status, resp = streamd.api_call("POST", SOURCES + "/src/sinks", body)
    assert_error(status, resp, 400, name, needle)
    status, resp = streamd.api_call("GET", SOURCES + "/src/sinks")
    assert resp["sinks"] == []


NAME_PATTERN = '"^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$"'


def named_columns(*names):
    return [{"type": "uuid", "name": "id"}] + [{"type": "body", "name": n} for n in names]


@pytest.mark.parametrize("names,name,message", [
    (["x" * 65], "stream.api.invalidLength",
     "Length of body.table.mapping.columns[1].name must be lesser or equal than 64 but got value "
     "\"%s\" (len=65)" % ("x" * 65)),
    (["x" * 5000], "stream.api.invalidLength",
     "Length of body.table.mapping.columns[1].name must be lesser or equal than 64 but got value "
     "\"%s\" (len=5000)" % ("x" * 5000)),
    (["a\x01b"], "stream.api.invalidPattern",
     "body.table.mapping.columns[1].name must match the regexp %s but got value \"a\\x01b\""
     % NAME_PATTERN),
    (["ok", "line\nbreak"], "stream.api.invalidPattern",
     "body.table.mapping.columns[2].name must match the regexp %s but got value "
     "\"line\\nbreak\"" % NAME_PATTERN),
    (["a b"], "stream.api.invalidPattern",
     "body.table.mapping.columns[1].name must match the regexp %s but got value \"a b\""
     % NAME_PATTERN),
    (["_streamd"], "stream.api.invalidPattern",
     "body.table.mapping.columns[1].name must match the regexp %s but got value \"_streamd\""
     % NAME_PATTERN),
    (["\u00e9t\u00e9"], "stream.api.invalidPattern",
     "body.table.mapping.columns[1].name must match the regexp %s but got value "
     "\"\u00e9t\u00e9\"" % NAME_PATTERN),
    (["c", "C"], "stream.api.badRequest",
     "Invalid body.table.mapping.columns: \"columns[2].name\" \"C\" duplicates the name \"c\" "
     "of columns[1] (column names ignore case)"),
    (["ID"], "stream.api.badRequest",
     "Invalid body.table.mapping.columns: \"columns[1].name\" \"ID\" duplicates the name \"id\" "
     "of columns[0] (column names ignore case)"),
])
def test_invalid_column_names(streamd, names, name, message):
    # refused at request time: a name never reaches the table and fails the task there
    streamd.create_source("src")
    status, resp = streamd.api_call("POST", SOURCES + "/src/sinks",
                                    sink_body(columns=named_columns(*names)))
    assert_error(status, resp, 400, name)
    assert resp["message"] == message, resp
    streamd.create_sink("src", "k1", COLUMNS)
    status, resp = streamd.api_call("PATCH", SOURCES + "/src/sinks/k1",
                                    {"table": {"mapping": {"columns": named_columns(*names)}}})
    assert_error(status, resp, 400, name)
    assert resp["message"] == message, resp
    status, resp = streamd.api_call("GET", SOURCES + "/src/sinks")
    assert [k["sinkId"] for k in resp["sinks"]] == ["k1"]


def test_longest_column_names_work(streamd):
    # 64 characters of every allowed kind make a working table
    names = ["A" * 63 + "z", "a-b_c-9", "9" * 64]
    src = streamd.create_source("src")
    streamd.create_sink("src", "k1", named_columns(*names))
    status, _, data = streamd.request("POST", src["http"]["url"], {"a": 1})
    assert (status, data) == (200, b"OK")


# ---- tasks ----

def test_task_not_found(streamd):
    status, body = streamd.api_call("GET", "/v1/tasks/api.create.source/1/x/2020-01-01T00:00:00.000Z_abcde")
    assert_error(status, body, 404, "stream.api.taskNotFound")
    status, body = streamd.api_call("GET", "/v1/tasks/nope")
    assert_error(status, body, 404, "stream.api.taskNotFound")


def test_task_url_percent_encoded(streamd):
    status, task = streamd.api_call("POST", SOURCES, {"sourceId": "enc", "name": "x", "type": "http"})
    assert status == 202
    path = "/v1/tasks/" + urllib.parse.quote(task["taskId"], safe="")
    streamd.wait_task(task)
    status, body = streamd.api_call("GET", path)
    assert status == 200 and body["taskId"] == task["taskId"], body


# ---- persistence and the admin token ----

def test_state_survives_restart(streamd):
    src = streamd.create_source("keep")
    streamd.create_sink("keep", "k1", COLUMNS)
    status, task = streamd.api_call("DELETE", SOURCES + "/keep/sinks/k1")
    done = streamd.wait_task(task)
    streamd.create_sink("keep", "k2", COLUMNS)
    streamd.restart()
    status, src2 = streamd.api_call("GET", SOURCES + "/keep")
    assert status == 200
    assert src2["http"]["url"].split("/stream/")[1] == src["http"]["url"].split("/stream/")[1]
    status, body = streamd.api_call("GET", SOURCES + "/keep/sinks")
    assert [k["sinkId"] for k in body["sinks"]] == ["k2"]
    status, again = streamd.api_call("GET", "/v1/tasks/" + done["taskId"])
    assert status == 200 and again["status"] == "success", again
    status, _, data = streamd.request("POST", src2["http"]["url"], {"a": 1})
    assert (status, data) == (200, b"OK")


def test_generated_admin_token(streamd_factory):
    s = streamd_factory(token=None)
    path = os.path.join(s.data_dir, "admin-token")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    with open(path) as f:
        text = f.read()
    assert text.endswith("\n")
    token = text[:-1]
    assert len(token) >= 32 and re.fullmatch(r"[0-9a-zA-Z]+", token)
    s.token = token
    s.create_source("s1")
    status, body = s.api_call("GET", SOURCES, token="not-" + token)
    assert_error(status, body, 401, "stream.api.unauthorized")
    assert token not in s.read_stderr()
    # valid across restarts, not regenerated
    s.restart()
    with open(path) as f:
        assert f.read() == text
    status, body = s.api_call("GET", SOURCES)
    assert status == 200 and [x["sourceId"] for x in body["sources"]] == ["s1"]
