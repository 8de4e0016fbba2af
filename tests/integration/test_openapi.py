"""The OpenAPI document streamd serves: its forms parse and agree, every route served is
documented and every documented route is served, the HTML page covers every path, and real
responses validate against the document's schemas (stdlib only; PyYAML is used when present)."""
import json
import os
import re


from conftest import ADMIN_TOKEN, http_request
from openapi_check import check, resolve, template_matches, validate

DOCS = "/v1/documentation"
METHODS = ("get", "put", "post", "patch", "delete")
SOURCES = "/v1/branches/default/sources"
COLUMNS = [{"type": "body", "name": "body"}, {"type": "datetime", "name": "at"}]

# Dummy values for path parameters; none of them exists, so every call is harmless.
DUMMY = {
    "branchId": "default",
    "sourceId": "dummy-source",
    "sinkId": "dummy-sink",
    "versionNumber": "1",
    "taskId": "api.create.source/1/dummy-source/2026-01-01T00:00:00.000Z_abcde",
}

# Documented routes another change is still adding to the router. Such a route may answer
# endpointNotFound/methodNotAllowed until it lands; any route the server does serve is checked
# strictly. Remove entries once the route is in main.
IN_PROGRESS = set()

# Paths that look like routes but are none: each must answer 404 endpointNotFound.
UNDOCUMENTED = [
    "/v1/nope", "/v2", "/v1/", "/v1/branches", "/v1/branches/default", "/v1/branches/default/sinks",
    "/v1/branches/default/aggregation", "/v1/branches/default/aggregation/sinks",
    "/v1/branches/default/sources/s1/statistics",
    "/v1/branches/default/sources/s1/statistics/total",
    "/v1/branches/default/sources/s1/sinks/k1/statistics",
    "/v1/branches/default/sources/s1/sinks/k1/statistics/nope",
    "/v1/branches/default/sources/s1/sinks/k1/nope",
    "/v1/branches/default/sources/s1/nope",
    "/v1/branches/default/sources/s1/versions/1/nope",
    "/v1/branches/default/sources/s1/sinks/k1/sinks",
    "/v1/tasks", "/v1/tasks/", "/health-check/x", "/nope",
    "/v1/documentation/nope", "/v1/documentation/openapi3.yml", "/v1/documentation/swagger.json",
    "/v1/documentation/openapi3.json/x", "/v1/documentation//",
]


# ---- helpers ----

def get_doc(streamd, name):
    status, headers, data = http_request(streamd.api + DOCS + "/" + name)
    assert status == 200, (name, status, data[:200])
    return headers, data


def openapi3(streamd):
    headers, data = get_doc(streamd, "openapi3.json")
    assert headers["content-type"].startswith("application/json")
    return json.loads(data)


def operations(doc):
    """(method, template) of every documented operation."""
    return [(m, path) for path, item in doc["paths"].items() for m in METHODS if m in item]


def concrete(template):
    return re.sub(r"\{(\w+)\}", lambda m: DUMMY[m.group(1)], template)


def is_documented(doc, method, path):
    return any(method in item and template_matches(t, path) for t, item in doc["paths"].items())


def call(streamd, method, path, body=None, token=ADMIN_TOKEN):
    headers = {"X-StorageApi-Token": token} if token else {}
    status, hdrs, data = http_request(streamd.api + path, method.upper(), body, headers)
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data
    return status, hdrs, parsed


def is_route_miss(status, body):
    return (status == 404 and isinstance(body, dict) and body.get("error") ==
            "stream.api.endpointNotFound") or status == 405


def iter_refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from iter_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from iter_refs(v)


# ---- the documents ----

def test_forms_parse_and_agree(streamd):
    doc = openapi3(streamd)
    assert doc["openapi"].startswith("3.0")
    assert doc["components"]["securitySchemes"]["storage-api-token"] == {
        "type": "apiKey", "in": "header", "name": "X-StorageApi-Token",
        "description": doc["components"]["securitySchemes"]["storage-api-token"]["description"]}
    for ref in iter_refs(doc):
        resolve(doc, {"$ref": ref})
    for name in ("Source", "Sink", "Task", "SettingsResult", "Level", "Levels",
                 "SinkStatisticsTotalResult", "SinkStatisticsFilesResult", "GenericError",
                 "PaginatedResponse", "SourcesList", "SinksList", "Version", "TestResult",
                 "AggregatedSourcesResult"):
        assert name in doc["components"]["schemas"], name
    ids = [item[m]["operationId"] for item in doc["paths"].values() for m in METHODS if m in item]
    assert len(ids) == len(set(ids))

    headers, yaml_text = get_doc(streamd, "openapi3.yaml")
    assert headers["content-type"].startswith("application/yaml")
    text = yaml_text.decode()
    repo_copy = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi3.yaml")
    with open(repo_copy, "rb") as f:
        assert f.read() == yaml_text, "the binary embeds a stale docs/openapi3.yaml: rebuild"
    assert re.search(r"^openapi: 3\.0", text, re.M)
    for path in doc["paths"]:
        assert re.search(r"^  %s:$" % re.escape(path), text, re.M), path

    headers, data = get_doc(streamd, "openapi.json")
    v2 = json.loads(data)
    assert v2["swagger"] == "2.0"
    assert set(v2["paths"]) == set(doc["paths"])
    assert set(v2["definitions"]) == set(doc["components"]["schemas"])
    assert "#/components/" not in data.decode()
    for ref in iter_refs(v2):
        resolve(v2, {"$ref": ref})
    assert v2["securityDefinitions"]["storage-api-token"]["name"] == "X-StorageApi-Token"
    for path, item in v2["paths"].items():
        for m in METHODS:
            if m in item:
                for p in item[m].get("parameters", []):
                    assert "schema" not in p or p.get("in") == "body" or "$ref" in p, (path, p)
    headers, yaml2 = get_doc(streamd, "openapi.yaml")
    assert headers["content-type"].startswith("application/yaml")
    assert yaml2.decode().startswith('swagger: "2.0"')

    try:
        import yaml
    except ImportError:
        return
    assert yaml.safe_load(text) == doc
    assert yaml.safe_load(yaml2) == v2


def test_documentation_needs_no_token_and_page_lists_every_path(streamd):
    doc = openapi3(streamd)
    for path in (DOCS, DOCS + "/"):
        status, headers, data = http_request(streamd.api + path)
        assert status == 200, (path, status)
        assert headers["content-type"].startswith("text/html")
        html = data.decode()
        assert "<script" not in html and 'src="http' not in html
        for p in doc["paths"]:
            assert "<code>%s</code>" % p in html, p
        for name in doc["components"]["schemas"]:
            assert 'id="schema-%s"' % name in html, name


# ---- routes ----

def test_every_documented_route_is_served(streamd):
    doc = openapi3(streamd)
    missing = []
    for method, template in operations(doc):
        path = concrete(template)
        body = {} if method in ("post", "patch") else None
        status, _, resp = call(streamd, method, path, body)
        if is_route_miss(status, resp):
            if (method, template) not in IN_PROGRESS:
                missing.append("%s %s -> %d %r" % (method.upper(), template, status, resp))
            continue
        assert status < 500, (method, template, status, resp)
        if isinstance(resp, dict) and "statusCode" in resp:
            check(doc, method, template, status, resp)
    assert not missing, "documented but not served:\n" + "\n".join(missing)


def test_every_served_route_is_documented(streamd):
    doc = openapi3(streamd)
    templates = set(t for _, t in operations(doc))
    for template in sorted(templates):
        path = concrete(template)
        for method in METHODS:
            if is_documented(doc, method, path):
                continue
            body = {} if method in ("post", "patch", "put") else None
            status, _, resp = call(streamd, method, path, body)
            assert is_route_miss(status, resp), \
                "served but not documented: %s %s -> %d %r" % (method.upper(), path, status, resp)
    for path in UNDOCUMENTED:
        for method in ("get", "post"):
            status, _, resp = call(streamd, method, path, {} if method == "post" else None)
            assert status == 404 and resp["error"] == "stream.api.endpointNotFound", \
                (method, path, status, resp)
            assert not validate(doc, {"$ref": "#/components/schemas/GenericError"}, resp)


# ---- responses against the schemas ----

def test_responses_match_schemas(streamd):
    doc = openapi3(streamd)
    src_t = "/v1/branches/{branchId}/sources/{sourceId}"
    sink_t = src_t + "/sinks/{sinkId}"

    status, _, body = call(streamd, "get", "/v1", token="")
    check(doc, "get", "/v1", status, body)

    new_source = {"sourceId": "s1", "name": "S1", "type": "http"}
    status, _, task = call(streamd, "post", SOURCES, new_source)
    check(doc, "post", "/v1/branches/{branchId}/sources", status, task)
    done = streamd.wait_task(task)
    check(doc, "get", "/v1/tasks/{taskId}", 200, done)
    status, _, body = call(streamd, "post", SOURCES, new_source)
    assert status == 409
    check(doc, "post", "/v1/branches/{branchId}/sources", status, body)

    status, _, src = call(streamd, "get", SOURCES + "/s1")
    check(doc, "get", src_t, status, src)
    status, _, body = call(streamd, "get", SOURCES)
    check(doc, "get", "/v1/branches/{branchId}/sources", status, body)
    status, _, body = call(streamd, "get", SOURCES + "/nope")
    assert status == 404
    check(doc, "get", src_t, status, body)
    status, _, body = call(streamd, "get", SOURCES, token="")
    assert status == 400
    check(doc, "get", "/v1/branches/{branchId}/sources", status, body)
    status, _, body = call(streamd, "get", SOURCES, token="not-a-token-0123456789")
    assert status == 401
    check(doc, "get", "/v1/branches/{branchId}/sources", status, body)

    sink = {"sinkId": "k1", "name": "K1", "type": "table",
            "table": {"type": "keboola", "tableId": "in.c-b.t", "mapping": {"columns": COLUMNS}}}
    status, _, task = call(streamd, "post", SOURCES + "/s1/sinks", sink)
    check(doc, "post", src_t + "/sinks", status, task)
    check(doc, "get", "/v1/tasks/{taskId}", 200, streamd.wait_task(task))
    status, _, body = call(streamd, "get", SOURCES + "/s1/sinks")
    check(doc, "get", src_t + "/sinks", status, body)
    status, _, body = call(streamd, "get", SOURCES + "/s1/sinks/k1")
    check(doc, "get", sink_t, status, body)

    status, _, _ = http_request(src["http"]["url"], "POST", {"a": 1})
    assert status in (200, 202)
    for tail in ("/settings", "/sinks/k1/settings", "/sinks/k1/statistics/total",
                 "/sinks/k1/statistics/files"):
        path = SOURCES + "/s1" + tail
        template = src_t + tail.replace("/k1", "/{sinkId}")
        status, _, body = call(streamd, "get", path)
        assert status == 200, (path, status, body)
        check(doc, "get", template, status, body)
    status, _, body = call(streamd, "patch", SOURCES + "/s1/settings",
                           {"settings": [{"key": "storage.level.local.encoding.compression.type",
                                          "value": "none"}]})
    assert status == 403
    check(doc, "patch", src_t + "/settings", status, body)
    status, _, body = call(streamd, "delete", SOURCES + "/s1/statistics/clear")
    check(doc, "delete", src_t + "/statistics/clear", status, body)
    status, _, body = call(streamd, "delete", SOURCES + "/s1/sinks/k1/statistics/clear")
    check(doc, "delete", sink_t + "/statistics/clear", status, body)

    status, _, body = call(streamd, "get", SOURCES + "/deleted")
    check(doc, "get", "/v1/branches/{branchId}/sources/deleted", status, body)
    status, _, body = call(streamd, "get", SOURCES + "/s1/sinks/deleted")
    check(doc, "get", src_t + "/sinks/deleted", status, body)
    status, _, body = call(streamd, "post", SOURCES + "/s1/rotate-secret")
    assert status == 200, body
    check(doc, "post", src_t + "/rotate-secret", status, body)
    status, _, task = call(streamd, "patch", SOURCES + "/s1", {"name": "S1 renamed"})
    check(doc, "patch", src_t, status, task)
    done = streamd.wait_task(task)
    assert done["status"] == "success", done
    check(doc, "get", "/v1/tasks/{taskId}", 200, done)
    status, _, task = call(streamd, "put", SOURCES + "/s1/sinks/k1/disable")
    check(doc, "put", sink_t + "/disable", status, task)
    check(doc, "get", "/v1/tasks/{taskId}", 200, streamd.wait_task(task))
    status, _, body = call(streamd, "get", SOURCES + "/s1/sinks/k1")
    assert "disabled" in body, body
    check(doc, "get", sink_t, status, body)
    status, _, task = call(streamd, "put", SOURCES + "/s1/sinks/k1/enable")
    check(doc, "put", sink_t + "/enable", status, task)
    check(doc, "get", "/v1/tasks/{taskId}", 200, streamd.wait_task(task))

    for method, path, template, body, expected in (
            ("get", SOURCES + "/s1/versions", src_t + "/versions", None, 200),
            ("get", SOURCES + "/s1/versions/2", src_t + "/versions/{versionNumber}", None, 200),
            ("get", SOURCES + "/s1/versions/99", src_t + "/versions/{versionNumber}", None, 404),
            ("get", SOURCES + "/s1/sinks/k1/versions", sink_t + "/versions", None, 200),
            ("get", SOURCES + "/s1/sinks/k1/versions/1", sink_t + "/versions/{versionNumber}", None,
             200),
            ("get", "/v1/branches/default/aggregation/sources",
             "/v1/branches/{branchId}/aggregation/sources", None, 200),
            ("post", SOURCES + "/s1/test", src_t + "/test", {"a": 1}, 200)):
        status, _, resp = call(streamd, method, path, body)
        assert status == expected, (method, path, status, resp)
        check(doc, method, template, status, resp)
        if template.endswith("/test"):
            assert resp["tables"] and resp["tables"][0]["rows"], resp
    status, _, task = call(streamd, "put", SOURCES + "/s1/versions/1/rollback")
    check(doc, "put", src_t + "/versions/{versionNumber}/rollback", status, task)
    check(doc, "get", "/v1/tasks/{taskId}", 200, streamd.wait_task(task))

    status, _, task = call(streamd, "delete", SOURCES + "/s1/sinks/k1")
    check(doc, "delete", sink_t, status, task)
    check(doc, "get", "/v1/tasks/{taskId}", 200, streamd.wait_task(task))
    status, _, body = call(streamd, "get", SOURCES + "/s1/sinks/deleted")
    assert [k["sinkId"] for k in body["sinks"]] == ["k1"], body
    check(doc, "get", src_t + "/sinks/deleted", status, body)
    status, _, body = call(streamd, "get", "/v1/tasks/nope/nope")
    assert status == 404
    check(doc, "get", "/v1/tasks/{taskId}", status, body)
