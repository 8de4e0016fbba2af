"""Lifecycle of sources and sinks through the configuration API (reference §2.3-§2.5): update
(PATCH), disable/enable with the cascade to sinks, soft-deleted lists and undelete, the cascade
(hard) delete that also drops the sinks' tables, and rotate-secret. Checks the data endpoint's
answers after each change. Talks to the real binary over HTTP (stdlib only)."""
import json
import os
import sqlite3
import subprocess
import time

from helpers import FAST, assert_error, table_rows
from conftest import BIN, TIMEOUT_MULT

SOURCES = "/v1/branches/default/sources"
COLUMNS = [{"type": "uuid", "name": "id"}, {"type": "body", "name": "body"}]
J = {"Content-Type": "application/json"}




def run_task(s, method, path, body=None, want="success"):
    status, task = s.api_call(method, path, body)
    assert status == 202, (status, task)
    done = s.wait_task(task)
    assert done["status"] == want, done
    return done


def get(s, path):
    status, body = s.api_call("GET", path)
    assert status == 200, (status, body)
    return body


def post_record(s, url, record, verbose=False):
    status, _, data = s.request("POST", url + ("?verbose=true" if verbose else ""),
                                json.dumps(record), J)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode()


def rebase(s, url):
    """The data endpoint URL on the current port (a restart listens on a new one)."""
    return s.source + "/stream/" + url.split("/stream/", 1)[1]


def tables_db(s):
    return os.path.join(s.data_dir, "tables", "project-1.sqlite")


def table_names(s):
    if not os.path.exists(tables_db(s)):
        return set()
    db = sqlite3.connect(tables_db(s), timeout=10)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()




def wait_for(predicate, what, timeout=60):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


# ---- update ----

def test_update_source(streamd):
    s = streamd
    s.create_source("s1")
    done = run_task(s, "PATCH", SOURCES + "/s1",
                    {"name": "Renamed", "description": "New text.", "changeDescription": "Renamed."})
    assert done["type"] == "api.update.source"
    assert done["taskId"].startswith("api.update.source/1/s1/")
    assert done["result"] == "Source has been updated successfully."
    assert done["outputs"]["sourceId"] == "s1" and done["outputs"]["url"].endswith("/v1/branches/1/sources/s1")
    src = get(s, SOURCES + "/s1")
    assert src["name"] == "Renamed" and src["description"] == "New text."
    assert src["version"]["number"] == 2 and src["version"]["description"] == "Renamed."
    assert len(src["version"]["hash"]) == 16
    hash2 = src["version"]["hash"]
    # without changeDescription the version says "Updated."; the id never changes
    run_task(s, "PATCH", SOURCES + "/s1", {"description": "", "type": "http", "sourceId": "x"})
    src = get(s, SOURCES + "/s1")
    assert src["sourceId"] == "s1" and src["description"] == ""
    assert src["version"]["number"] == 3 and src["version"]["description"] == "Updated."
    assert src["version"]["hash"] != hash2
    # the secret is unchanged: the data endpoint still answers
    assert post_record(s, src["http"]["url"], {"a": 1})[0] == 200


def test_update_source_validation(streamd):
    s = streamd
    s.create_source("s1")
    status, body = s.api_call("PATCH", SOURCES + "/s1", {"name": "x" * 41})
    assert_error(status, body, 400, "stream.api.invalidLength", "body.name", "40")
    status, body = s.api_call("PATCH", SOURCES + "/s1", {"name": ""})
    assert_error(status, body, 400, "stream.api.invalidLength", "body.name")
    status, body = s.api_call("PATCH", SOURCES + "/s1", {"description": "d" * 4097})
    assert_error(status, body, 400, "stream.api.invalidLength", "body.description", "4096")
    status, body = s.api_call("PATCH", SOURCES + "/s1", {"type": "ftp"})
    assert_error(status, body, 400, "stream.api.invalidEnumValue", "body.type")
    status, body = s.api_call("PATCH", SOURCES + "/s1", {"name": 5})
    assert_error(status, body, 400, "stream.api.badRequest", "body.name")
    status, body = s.api_call("PATCH", SOURCES + "/nope", {"name": "x"})
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("PATCH", "/v1/branches/2/sources/s1", {"name": "x"})
    assert_error(status, body, 404, "stream.api.branchNotFound", '"2"')
    # 40 characters and 4096 of description are fine
    run_task(s, "PATCH", SOURCES + "/s1", {"name": "n" * 40, "description": "d" * 4096})
    assert get(s, SOURCES + "/s1")["name"] == "n" * 40


def test_update_sink(streamd):
    s = streamd
    s.create_source("s1")
    s.create_sink("s1", "k1", COLUMNS)
    done = run_task(s, "PATCH", SOURCES + "/s1/sinks/k1",
                    {"name": "Sink One", "changeDescription": "Better name."})
    assert done["type"] == "api.update.sink"
    assert done["taskId"].startswith("api.update.sink/1/s1/k1/")
    assert done["result"] == "Sink has been updated successfully."
    assert done["outputs"]["sinkId"] == "k1"
    sink = get(s, SOURCES + "/s1/sinks/k1")
    assert sink["name"] == "Sink One" and sink["version"]["number"] == 2
    assert sink["version"]["description"] == "Better name."
    assert sink["table"]["mapping"]["columns"] == COLUMNS
    assert "disabled" not in sink

    for body, name, needle in [
        ({"name": "x" * 41}, "stream.api.invalidLength", "body.name"),
        ({"description": "d" * 4097}, "stream.api.invalidLength", "body.description"),
        ({"type": "file"}, "stream.api.invalidEnumValue", "body.type"),
        ({"table": {"tableId": "bad"}}, "stream.api.badRequest", "body.table.tableId"),
        ({"table": {"type": "s3"}}, "stream.api.invalidEnumValue", "body.table.type"),
        ({"table": {"mapping": {"columns": []}}}, "stream.api.invalidLength", "columns"),
        ({"table": {"mapping": {"columns": [{"type": "nope", "name": "a"}]}}},
         "stream.api.badRequest", "columns"),
        ({"allowedSignals": ["sounds"]}, "stream.api.invalidEnumValue", "allowedSignals"),
    ]:
        status, err = s.api_call("PATCH", SOURCES + "/s1/sinks/k1", body)
        assert_error(status, err, 400, name, needle)
    status, err = s.api_call("PATCH", SOURCES + "/s1/sinks/nope", {"name": "x"})
    assert_error(status, err, 404, "stream.api.sinkNotFound")
    status, err = s.api_call("PATCH", SOURCES + "/nope/sinks/k1", {"name": "x"})
    assert_error(status, err, 404, "stream.api.sourceNotFound")
    assert get(s, SOURCES + "/s1/sinks/k1")["version"]["number"] == 2


def test_update_sink_mapping_takes_effect_in_a_new_file(streamd_factory):
    s = streamd_factory(args=FAST)
    src = s.create_source("s1")
    s.create_sink("s1", "k1", [{"type": "path", "name": "id", "path": "id", "rawString": True}],
                  table_id="in.c-b.old")
    url = src["http"]["url"]
    for i in range(5):
        assert post_record(s, url, {"id": "old-%d" % i})[0] == 200
    new_columns = [{"type": "path", "name": "id", "path": "id", "rawString": True},
                   {"type": "path", "name": "n", "path": "n", "defaultValue": "none"}]
    run_task(s, "PATCH", SOURCES + "/s1/sinks/k1",
             {"table": {"type": "keboola", "tableId": "in.c-b.new",
                        "mapping": {"columns": new_columns}}})
    sink = get(s, SOURCES + "/s1/sinks/k1")
    assert sink["table"]["tableId"] == "in.c-b.new"
    assert sink["table"]["mapping"]["columns"] == new_columns
    assert "disabled" not in sink
    for i in range(5):
        assert post_record(s, url, {"id": "new-%d" % i, "n": i})[0] == 200
    old = wait_for(lambda: len(table_rows(s.data_dir, "in.c-b.old")) >= 5 and table_rows(s.data_dir, "in.c-b.old"),
                   "old rows")
    assert sorted(r[0] for r in old) == ["old-%d" % i for i in range(5)]
    new = wait_for(lambda: len(table_rows(s.data_dir, "in.c-b.new")) >= 5 and table_rows(s.data_dir, "in.c-b.new"),
                   "new rows")
    assert sorted(new) == [("new-%d" % i, str(i)) for i in range(5)]


def test_update_sink_to_a_table_with_other_columns_is_refused(streamd):
    s = streamd
    src = s.create_source("s1")
    s.create_sink("s1", "k1", COLUMNS, table_id="in.c-b.t1")
    s.create_sink("s1", "k2", [{"type": "body", "name": "only"}], table_id="in.c-b.t2")
    status, body = s.api_call("PATCH", SOURCES + "/s1/sinks/k1", {"table": {"tableId": "in.c-b.t2"}})
    assert_error(status, body, 400, "stream.api.badRequest",
                 'Invalid body.table: table "in.c-b.t2" exists with columns ("only")')
    sink = get(s, SOURCES + "/s1/sinks/k1")
    assert sink["table"]["tableId"] == "in.c-b.t1" and sink["version"]["number"] == 1
    assert "disabled" not in sink
    status, body = post_record(s, src["http"]["url"], {"a": 1}, verbose=True)
    assert status == 200 and [k["sinkId"] for k in body["sources"][0]["sinks"]] == ["k1", "k2"]


# ---- disable / enable ----

def test_enable_or_undelete_of_a_sink_whose_table_changed_is_refused(streamd):
    # the table was made again with other columns while the sink was inactive: refused at
    # request time, as the task would fail to open the table
    s = streamd
    s.create_source("s1")
    s.create_sink("s1", "k1", [{"type": "body", "name": "raw"}], table_id="in.c-b.t1")
    s.create_sink("s1", "k2", [{"type": "body", "name": "raw"}], table_id="in.c-b.t2")
    run_task(s, "PUT", SOURCES + "/s1/sinks/k1/disable")
    run_task(s, "DELETE", SOURCES + "/s1/sinks/k2")
    db = sqlite3.connect(tables_db(s), timeout=10)
    for table in ("in.c-b.t1", "in.c-b.t2"):
        db.execute('DROP TABLE "%s"' % table)
        db.execute('CREATE TABLE "%s" ("x" TEXT)' % table)
    db.commit()
    db.close()
    for action, sink in (("enable", "k1"), ("undelete", "k2")):
        status, body = s.api_call("PUT", SOURCES + "/s1/sinks/%s/%s" % (sink, action))
        assert_error(status, body, 400, "stream.api.badRequest")
        assert body["message"] == ('Invalid table: table "in.c-b.t%s" exists with columns ("x"), '
                                   'expected ("raw").' % sink[1]), body
    assert "disabled" in get(s, SOURCES + "/s1/sinks/k1")
    assert s.api_call("GET", SOURCES + "/s1/sinks/k2")[0] == 404


def test_disable_enable_source_cascades_to_sinks(streamd):
    s = streamd
    src = s.create_source("s1")
    url = src["http"]["url"]
    s.create_sink("s1", "k1", COLUMNS)
    s.create_sink("s1", "k2", COLUMNS)
    done = run_task(s, "PUT", SOURCES + "/s1/sinks/k2/disable")
    assert done["type"] == "api.disable.sink"
    assert done["result"] == "Sink has been disabled successfully."

    done = run_task(s, "PUT", SOURCES + "/s1/disable")
    assert done["type"] == "api.disable.source"
    assert done["taskId"].startswith("api.disable.source/1/s1/")
    assert done["result"] == "Source has been disabled successfully."
    src = get(s, SOURCES + "/s1")
    assert set(src["disabled"]) >= {"at", "by", "reason"}
    assert src["disabled"]["reason"] == "API"
    assert src["disabled"]["by"]["type"] == "user"
    assert src["version"]["description"] == "Disabled."
    k1 = get(s, SOURCES + "/s1/sinks/k1")
    assert k1["disabled"]["reason"] == "Auto-disabled with the parent source."
    k2 = get(s, SOURCES + "/s1/sinks/k2")
    assert k2["disabled"]["reason"] != "Auto-disabled with the parent source."
    status, body = post_record(s, url, {"a": 1})
    assert status == 404 and body["error"] == "stream.in.disabledSource", body

    done = run_task(s, "PUT", SOURCES + "/s1/enable")
    assert done["type"] == "api.enable.source"
    assert done["result"] == "Source has been enabled successfully."
    src = get(s, SOURCES + "/s1")
    assert "disabled" not in src and src["version"]["description"] == "Enabled."
    assert "disabled" not in get(s, SOURCES + "/s1/sinks/k1")
    assert "disabled" in get(s, SOURCES + "/s1/sinks/k2")  # disabled by the user: stays
    status, body = post_record(s, url, {"a": 1}, verbose=True)
    assert status == 200 and [k["sinkId"] for k in body["sources"][0]["sinks"]] == ["k1"], body

    done = run_task(s, "PUT", SOURCES + "/s1/sinks/k2/enable")
    assert done["type"] == "api.enable.sink"
    assert done["result"] == "Sink has been enabled successfully."
    status, body = post_record(s, url, {"a": 1}, verbose=True)
    assert status == 200 and [k["sinkId"] for k in body["sources"][0]["sinks"]] == ["k1", "k2"]


def test_disabled_sink_is_skipped_and_state_survives_restart(streamd):
    s = streamd
    src = s.create_source("s1")
    url = src["http"]["url"]
    s.create_sink("s1", "k1", COLUMNS)
    run_task(s, "PUT", SOURCES + "/s1/sinks/k1/disable")
    status, body = post_record(s, url, {"a": 1}, verbose=True)
    assert status == 200 and body["sources"][0]["sinks"] == [], body
    run_task(s, "PUT", SOURCES + "/s1/disable")
    s.restart()
    url = rebase(s, url)
    status, body = post_record(s, url, {"a": 1})
    assert status == 404 and body["error"] == "stream.in.disabledSource", body
    assert get(s, SOURCES + "/s1/sinks/k1")["disabled"]["reason"] != \
        "Auto-disabled with the parent source."
    run_task(s, "PUT", SOURCES + "/s1/enable")
    status, body = post_record(s, url, {"a": 1}, verbose=True)
    assert status == 200 and body["sources"][0]["sinks"] == [], body


def test_switch_errors(streamd):
    s = streamd
    s.create_source("s1")
    for path in ("/nope/disable", "/nope/enable", "/nope/sinks/k1/disable"):
        status, body = s.api_call("PUT", SOURCES + path)
        assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("PUT", SOURCES + "/nope/undelete")
    assert_error(status, body, 404, "stream.api.deletedSourceNotFound")
    assert body["message"] == 'Deleted source "nope" not found in the branch.'
    status, body = s.api_call("PUT", SOURCES + "/s1/sinks/k1/enable")
    assert_error(status, body, 404, "stream.api.sinkNotFound")
    status, body = s.api_call("GET", SOURCES + "/s1/disable")
    assert_error(status, body, 405, "stream.api.methodNotAllowed")
    status, body = s.api_call("POST", SOURCES + "/s1/enable")
    assert_error(status, body, 405, "stream.api.methodNotAllowed")
    status, body = s.api_call("PUT", SOURCES + "/s1/sleep")
    assert_error(status, body, 404, "stream.api.endpointNotFound")


# ---- soft delete, deleted lists, undelete ----

def test_deleted_lists_and_undelete(streamd):
    s = streamd
    src = s.create_source("s1")
    s.create_sink("s1", "k1", COLUMNS)
    s.create_sink("s1", "k2", COLUMNS)
    run_task(s, "DELETE", SOURCES + "/s1/sinks/k2")
    deleted = get(s, SOURCES + "/s1/sinks/deleted")
    assert deleted["sourceId"] == "s1" and [k["sinkId"] for k in deleted["sinks"]] == ["k2"]
    assert "deleted" in deleted["sinks"][0] and deleted["page"]["totalCount"] == 1
    run_task(s, "DELETE", SOURCES + "/s1")
    assert get(s, SOURCES)["sources"] == []
    deleted = get(s, SOURCES + "/deleted")
    assert deleted["projectId"] == 1 and deleted["branchId"] == 1
    assert [x["sourceId"] for x in deleted["sources"]] == ["s1"]
    assert set(deleted["sources"][0]["deleted"]) == {"at", "by"}
    assert "secret" not in deleted["sources"][0]["http"]
    status, body = s.api_call("GET", SOURCES + "/s1/sinks/deleted")
    assert_error(status, body, 404, "stream.api.sourceNotFound")

    done = run_task(s, "PUT", SOURCES + "/s1/undelete")
    assert done["type"] == "api.undelete.source"
    assert done["result"] == "Source has been undeleted successfully."
    restored = get(s, SOURCES + "/s1")
    assert "deleted" not in restored and restored["http"]["url"] == src["http"]["url"]
    assert restored["version"]["description"] == 'Undeleted to version "1".'
    assert restored["version"]["number"] == 2
    assert get(s, SOURCES + "/deleted")["sources"] == []
    # the sink deleted with the source is back, the one deleted before is not
    assert [k["sinkId"] for k in get(s, SOURCES + "/s1/sinks")["sinks"]] == ["k1"]
    assert [k["sinkId"] for k in get(s, SOURCES + "/s1/sinks/deleted")["sinks"]] == ["k2"]
    status, body = post_record(s, src["http"]["url"], {"a": 1}, verbose=True)
    assert status == 200 and [k["sinkId"] for k in body["sources"][0]["sinks"]] == ["k1"]

    done = run_task(s, "PUT", SOURCES + "/s1/sinks/k2/undelete")
    assert done["type"] == "api.undelete.sink"
    assert done["result"] == "Sink has been undeleted successfully."
    assert [k["sinkId"] for k in get(s, SOURCES + "/s1/sinks")["sinks"]] == ["k1", "k2"]
    assert get(s, SOURCES + "/s1/sinks/deleted")["sinks"] == []

    # nothing to undelete
    status, body = s.api_call("PUT", SOURCES + "/s1/undelete")
    assert_error(status, body, 404, "stream.api.deletedSourceNotFound")
    status, body = s.api_call("PUT", SOURCES + "/s1/sinks/k1/undelete")
    assert_error(status, body, 404, "stream.api.deletedSinkNotFound")
    assert body["message"] == 'Deleted sink "k1" not found in the source.'


def test_deleted_list_pagination_and_reserved_id(streamd):
    s = streamd
    for sid in ("a1", "a2", "a3"):
        s.create_source(sid)
        run_task(s, "DELETE", SOURCES + "/" + sid)
    page = get(s, SOURCES + "/deleted?limit=2")
    assert [x["sourceId"] for x in page["sources"]] == ["a1", "a2"]
    assert page["page"]["lastId"] == "a2" and page["page"]["limit"] == 2
    page = get(s, SOURCES + "/deleted?limit=2&afterId=a2")
    assert [x["sourceId"] for x in page["sources"]] == ["a3"]
    status, body = s.api_call("GET", SOURCES + "/deleted?limit=101")
    assert_error(status, body, 400, "stream.api.invalidRange")
    # "deleted" is the list's name: no source or sink can take it as its id
    status, body = s.api_call("POST", SOURCES, {"sourceId": "deleted", "name": "x", "type": "http"})
    assert_error(status, body, 400, "stream.api.badRequest", "deleted")
    status, body = s.api_call("POST", SOURCES, {"name": "Deleted", "type": "http"})
    assert_error(status, body, 400, "stream.api.badRequest", "deleted")


def test_undelete_over_an_active_source_conflicts(streamd):
    s = streamd
    s.create_source("s1")
    run_task(s, "DELETE", SOURCES + "/s1")
    # the deleted copy stays listed until a create takes its id over
    assert [x["sourceId"] for x in get(s, SOURCES + "/deleted")["sources"]] == ["s1"]
    s.create_source("s1")
    assert get(s, SOURCES + "/deleted")["sources"] == []
    status, body = s.api_call("PUT", SOURCES + "/s1/undelete")
    assert_error(status, body, 404, "stream.api.deletedSourceNotFound")


# ---- cascade delete ----

def test_cascade_delete_drops_tables_and_frees_the_id(streamd):
    s = streamd
    s.create_source("s1")
    s.create_sink("s1", "k1", COLUMNS, table_id="in.c-b.t1")
    s.create_sink("s1", "k2", COLUMNS, table_id="in.c-b.t2")
    s.create_source("other")
    s.create_sink("other", "k9", COLUMNS, table_id="in.c-b.t2")  # shared table stays
    run_task(s, "PATCH", SOURCES + "/s1", {"name": "v2"})
    run_task(s, "DELETE", SOURCES + "/s1/sinks/k2")
    assert {"in.c-b.t1", "in.c-b.t2"} <= table_names(s)

    status, body = s.api_call("DELETE", SOURCES + "/s1?cascade=maybe")
    assert_error(status, body, 400, "stream.api.invalidFieldType",
                 'Invalid value "maybe" for "cascade", must be a boolean.')
    done = run_task(s, "DELETE", SOURCES + "/s1?cascade=true")
    assert done["type"] == "api.delete.source"
    assert done["result"] == "Source and its destination tables and bucket have been deleted."
    assert done["outputs"]["url"].endswith("/v1/branches/1/sources/s1")
    status, body = s.api_call("GET", SOURCES + "/s1")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    assert get(s, SOURCES + "/deleted")["sources"] == []
    names = table_names(s)
    assert "in.c-b.t1" not in names and "in.c-b.t2" in names
    assert [k["sinkId"] for k in get(s, SOURCES + "/other/sinks")["sinks"]] == ["k9"]

    # the id is free again and starts over at version 1, without the old sinks
    src = s.create_source("s1")
    assert src["version"]["number"] == 1
    assert get(s, SOURCES + "/s1/sinks")["sinks"] == []
    assert get(s, SOURCES + "/s1/sinks/deleted")["sinks"] == []
    status, body = s.api_call("DELETE", SOURCES + "/nope?cascade=true")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    # cascade=false stays a soft delete
    run_task(s, "DELETE", SOURCES + "/s1?cascade=false")
    assert [x["sourceId"] for x in get(s, SOURCES + "/deleted")["sources"]] == ["s1"]


# ---- rotate-secret ----

def test_rotate_secret(streamd):
    s = streamd
    src = s.create_source("s1")
    s.create_sink("s1", "k1", COLUMNS)
    old_url = src["http"]["url"]
    assert post_record(s, old_url, {"a": 1})[0] == 200
    status, rotated = s.api_call("POST", SOURCES + "/s1/rotate-secret")
    assert status == 200, (status, rotated)
    assert rotated["sourceId"] == "s1" and "secret" not in rotated["http"]
    new_url = rotated["http"]["url"]
    old_secret, new_secret = old_url.rsplit("/", 1)[1], new_url.rsplit("/", 1)[1]
    assert new_secret != old_secret and len(new_secret) == 48 and new_secret.isalnum()
    assert new_url.rsplit("/", 1)[0] == old_url.rsplit("/", 1)[0]
    assert get(s, SOURCES + "/s1")["http"]["url"] == new_url
    # a new version, as the reference's
    assert rotated["version"]["number"] == src["version"]["number"] + 1
    assert rotated["version"]["description"] == "Rotated secret."
    versions = get(s, SOURCES + "/s1/versions")["versions"]
    assert [v["description"] for v in versions] == ["New source.", "Rotated secret."]
    status, body = post_record(s, old_url, {"a": 1})
    assert status == 404 and body["error"] == "stream.in.noSourceFound", body
    assert post_record(s, new_url, {"a": 1})[0] == 200
    status, body = s.api_call("POST", SOURCES + "/nope/rotate-secret")
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("GET", SOURCES + "/s1/rotate-secret")
    assert_error(status, body, 405, "stream.api.methodNotAllowed")
    s.restart()
    assert post_record(s, rebase(s, new_url), {"a": 1})[0] == 200
    assert post_record(s, rebase(s, old_url), {"a": 1})[0] == 404


# ---- tokens: read-only tokens cannot change, other projects cannot see ----

def create_token(data_dir, project, *flags):
    env = dict(os.environ)
    env.pop("STREAM_ADMIN_TOKEN", None)
    r = subprocess.run([BIN, "token", "create", "--data-dir", data_dir, "--project", str(project)]
                       + list(flags), capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    return fields["token"]


def test_lifecycle_needs_an_admin_token_of_the_project(streamd_factory):
    s = streamd_factory(start=False)
    reader = create_token(s.data_dir, 1, "--description", "read only")
    other = create_token(s.data_dir, 2, "--admin")
    s.start()
    s.create_source("s1")
    s.create_sink("s1", "k1", COLUMNS)
    writes = [("PATCH", "/s1", {"name": "x"}), ("PUT", "/s1/disable", None),
              ("PUT", "/s1/enable", None), ("PUT", "/s1/undelete", None),
              ("POST", "/s1/rotate-secret", None), ("DELETE", "/s1?cascade=true", None),
              ("PATCH", "/s1/sinks/k1", {"name": "x"}), ("PUT", "/s1/sinks/k1/disable", None)]
    for method, path, body in writes:
        status, err = s.api_call(method, SOURCES + path, body, token=reader)
        assert_error(status, err, 403, "stream.api.forbidden")
    for method, path, body in writes:
        if path.endswith("/undelete"):
            continue
        status, err = s.api_call(method, SOURCES + path, body, token=other)
        assert_error(status, err, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("GET", SOURCES + "/deleted", token=reader)
    assert status == 200 and body["sources"] == []
    status, body = s.api_call("GET", SOURCES + "/deleted", token=other)
    assert status == 200 and body["projectId"] == 2 and body["sources"] == []
    src = get(s, SOURCES + "/s1")
    assert src["version"]["number"] == 1 and "disabled" not in src


def test_disabled_sink_still_imports_acknowledged_records(streamd_factory):
    # Triggers high enough that nothing rotates before the disable.
    args = [a.replace("trigger.count=1", "trigger.count=100000") for a in FAST]
    s = streamd_factory(args=args)
    src = s.create_source("s1")
    s.create_sink("s1", "k1", [{"type": "path", "name": "id", "path": "id", "rawString": True}],
                  table_id="in.c-b.t1")
    for i in range(20):
        assert post_record(s, src["http"]["url"], {"id": "r-%d" % i})[0] == 200
    run_task(s, "PUT", SOURCES + "/s1/sinks/k1/disable")
    rows = wait_for(lambda: len(table_rows(s.data_dir, "in.c-b.t1")) >= 20 and table_rows(s.data_dir, "in.c-b.t1"),
                    "rows of the disabled sink")
    assert sorted(r[0] for r in rows) == sorted("r-%d" % i for i in range(20))
    status, body = post_record(s, src["http"]["url"], {"id": "late"}, verbose=True)
    assert status == 200 and body["sources"][0]["sinks"] == [], body
    # enabled again: a new file takes the records
    run_task(s, "PUT", SOURCES + "/s1/sinks/k1/enable")
    status, body = post_record(s, src["http"]["url"], {"id": "again"}, verbose=True)
    assert status == 200 and [k["sinkId"] for k in body["sources"][0]["sinks"]] == ["k1"], body
