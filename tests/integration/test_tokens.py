"""Local API tokens end to end: `streamd token create|list|revoke` (run on a stopped data dir;
test_tokens_live.py runs them against a running server),
then the API with those tokens: master vs non-master (401 masterTokenRequired), admin vs
read-only (403 on writes), one project per token (another project's objects answer 404, BOLA),
revocation, and tokens never printed by `token list` nor written to the server log."""
import json
import os
import re
import subprocess
import time
import urllib.parse

from conftest import ADMIN_TOKEN, BIN, TIMEOUT_MULT
from helpers import assert_error

SOURCES = "/v1/branches/default/sources"
COLUMNS = [{"type": "uuid", "name": "id"}, {"type": "body", "name": "body"}]


def run_cli(*args, env=None):
    e = dict(os.environ)
    e.pop("STREAM_ADMIN_TOKEN", None)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=e, timeout=60)


def create_token(data_dir, project, *flags):
    r = run_cli("token", "create", "--data-dir", data_dir, "--project", str(project), *flags)
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert re.fullmatch(r"[0-9a-zA-Z]{48}", fields["token"]), r.stdout
    assert re.fullmatch(r"[1-9][0-9]*", fields["id"]), r.stdout
    assert fields["project"] == str(project)
    return fields["token"], fields["id"]




def run_task(s, token, method, path, body=None):
    status, task = s.api_call(method, path, body, token=token)
    assert status == 202, (status, task)
    deadline = time.time() + 20 * TIMEOUT_MULT
    while True:
        status, done = s.api_call("GET", urllib.parse.urlsplit(task["url"]).path, token=token)
        assert status == 200, (status, done)
        if done["status"] != "processing":
            assert done["status"] == "success", done
            return task, done
        assert time.time() < deadline, done
        time.sleep(0.02)


def create_source(s, token, source_id):
    return run_task(s, token, "POST", SOURCES,
                    {"sourceId": source_id, "name": source_id, "type": "http"})


def source_ids(s, token):
    status, body = s.api_call("GET", SOURCES, token=token)
    assert status == 200, (status, body)
    return sorted(src["sourceId"] for src in body["sources"])


def test_tokens_projects_roles_and_revocation(streamd_factory):
    s = streamd_factory(start=False)
    d = s.data_dir
    p2_admin, p2_admin_id = create_token(d, 2, "--admin", "--description", "project 2 admin")
    p1_reader, p1_reader_id = create_token(d, 1, "--description", "read only")
    p1_plain, _ = create_token(d, 1, "--admin", "--no-master", "--description", "not master")
    p2_gone, p2_gone_id = create_token(d, 2, "--admin")
    p2_later, p2_later_id = create_token(d, 2, "--admin", "--master")
    all_tokens = [ADMIN_TOKEN, p2_admin, p1_reader, p1_plain, p2_gone, p2_later]

    r = run_cli("token", "revoke", "--data-dir", d, p2_gone_id)
    assert r.returncode == 0, r.stderr
    assert p2_gone_id in r.stdout
    r = run_cli("token", "revoke", "--data-dir", d, p2_gone_id)
    assert r.returncode == 1 and "no token with id" in r.stderr

    # list: every record, never a token (the text and the JSON form)
    r = run_cli("token", "list", "--data-dir", d)
    assert r.returncode == 0, r.stderr
    for tok in all_tokens:
        assert tok not in r.stdout and tok not in r.stderr
    assert p2_admin_id in r.stdout and p1_reader_id in r.stdout and p2_gone_id not in r.stdout
    assert "project 2 admin" in r.stdout and "read only" in r.stdout
    r = run_cli("token", "list", "--data-dir", d, "--project", "2", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)["tokens"]
    assert sorted(t["id"] for t in listed) == sorted([p2_admin_id, p2_later_id])
    for t in listed:
        assert set(t) == {"id", "projectId", "isAdmin", "isMaster", "description", "created"}
        assert t["projectId"] == 2 and t["isAdmin"] and t["isMaster"]
    for tok in all_tokens:
        assert tok not in r.stdout

    s.start()

    # BOLA: each project is its own namespace
    task2, _ = create_source(s, p2_admin, "only-two")
    create_source(s, ADMIN_TOKEN, "only-one")
    create_source(s, ADMIN_TOKEN, "shared")
    create_source(s, p2_admin, "shared")
    assert source_ids(s, ADMIN_TOKEN) == ["only-one", "shared"]
    assert source_ids(s, p2_admin) == ["only-two", "shared"]
    status, body = s.api_call("GET", SOURCES + "/only-two", token=ADMIN_TOKEN)
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("GET", SOURCES + "/only-one", token=p2_admin)
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("GET", SOURCES + "/only-one/sinks", token=p2_admin)
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("GET", SOURCES + "/only-one/settings", token=p2_admin)
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("DELETE", SOURCES + "/only-one", token=p2_admin)
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("POST", SOURCES + "/only-one/sinks", token=p2_admin, body={
        "sinkId": "k1", "name": "k1", "type": "table",
        "table": {"type": "keboola", "tableId": "in.c-b.t", "mapping": {"columns": COLUMNS}}})
    assert_error(status, body, 404, "stream.api.sourceNotFound")
    status, body = s.api_call("GET", urllib.parse.urlsplit(task2["url"]).path, token=ADMIN_TOKEN)
    assert_error(status, body, 404, "stream.api.taskNotFound")
    # the same id in two projects: separate objects; deleting one leaves the other
    status, one = s.api_call("GET", SOURCES + "/shared", token=ADMIN_TOKEN)
    assert status == 200 and one["projectId"] == 1, one
    status, two = s.api_call("GET", SOURCES + "/shared", token=p2_admin)
    assert status == 200 and two["projectId"] == 2, two
    assert one["http"]["url"] != two["http"]["url"]
    run_task(s, p2_admin, "DELETE", SOURCES + "/shared")
    assert source_ids(s, p2_admin) == ["only-two"]
    assert source_ids(s, ADMIN_TOKEN) == ["only-one", "shared"]
    # the data endpoint takes no token: the URL's project and secret select the source
    status, _, data = s.request("POST", two["http"]["url"], body=b'{"a":1}',
                                headers={"Content-Type": "application/json"})
    assert status == 404, (status, data)  # deleted in project 2
    status, _, data = s.request("POST", one["http"]["url"], body=b'{"a":1}',
                                headers={"Content-Type": "application/json"})
    assert status != 404, (status, data)

    # a read-only master token reads, but every write is 403
    assert source_ids(s, p1_reader) == ["only-one", "shared"]
    status, body = s.api_call("GET", SOURCES + "/only-one", token=p1_reader)
    assert status == 200, body
    status, body = s.api_call("GET", SOURCES + "/only-one/settings", token=p1_reader)
    assert status == 200, body
    msg = "Only admin token can do write operations on streams."
    status, body = s.api_call("POST", SOURCES, {"sourceId": "x", "name": "x", "type": "http"},
                              token=p1_reader)
    assert_error(status, body, 403, "stream.api.forbidden", msg)
    status, body = s.api_call("DELETE", SOURCES + "/only-one", token=p1_reader)
    assert_error(status, body, 403, "stream.api.forbidden", msg)
    status, body = s.api_call("PATCH", SOURCES + "/only-one/settings",
                              {"settings": [{"key": "storage.level.local.encoding.compression.type",
                                             "value": "none"}]}, token=p1_reader)
    assert_error(status, body, 403, "stream.api.forbidden", msg)
    status, body = s.api_call("DELETE", SOURCES + "/only-one/statistics/clear", token=p1_reader)
    assert_error(status, body, 403, "stream.api.forbidden", msg)
    assert source_ids(s, ADMIN_TOKEN) == ["only-one", "shared"]

    # reads that use other methods are open to it: the dry run; version rollback is a write
    status, body = s.api_call("POST", SOURCES + "/only-one/test", {"a": 1}, token=p1_reader)
    assert status == 200 and body["sourceId"] == "only-one", body
    status, body = s.api_call("GET", SOURCES + "/only-one/versions", token=p1_reader)
    assert status == 200 and body["versions"][0]["number"] == 1, body
    status, body = s.api_call("PUT", SOURCES + "/only-one/versions/1/rollback", token=p1_reader)
    assert_error(status, body, 403, "stream.api.forbidden", msg)
    # versions, the dry run and the aggregation are per project too
    for method, path in (("GET", "/only-one/versions"), ("GET", "/only-one/versions/1"),
                         ("POST", "/only-one/test"), ("PUT", "/only-one/versions/1/rollback")):
        status, body = s.api_call(method, SOURCES + path, {"a": 1} if method != "GET" else None,
                                  token=p2_admin)
        assert_error(status, body, 404, "stream.api.sourceNotFound")
    for token, want in ((p1_reader, ["only-one", "shared"]), (p2_admin, ["only-two"])):
        status, body = s.api_call("GET", "/v1/branches/default/aggregation/sources", token=token)
        assert status == 200, body
        assert sorted(src["sourceId"] for src in body["sources"]) == want

    # a non-master token is refused for reads and writes
    for method, body in (("GET", None), ("POST", {"sourceId": "y", "name": "y", "type": "http"})):
        status, resp = s.api_call(method, SOURCES, body, token=p1_plain)
        assert_error(status, resp, 401, "stream.api.masterTokenRequired", "master token")

    # a revoked token is unknown
    status, body = s.api_call("GET", SOURCES, token=p2_gone)
    assert_error(status, body, 401, "stream.api.unauthorized")

    # revoking a token that was in use: rejected after the restart
    assert source_ids(s, p2_later) == ["only-two"]
    assert s.stop() == 0
    r = run_cli("token", "revoke", "--data-dir", d, p2_later_id)
    assert r.returncode == 0, r.stderr
    s.start()
    status, body = s.api_call("GET", SOURCES, token=p2_later)
    assert_error(status, body, 401, "stream.api.unauthorized")
    assert source_ids(s, p2_admin) == ["only-two"]  # state and other tokens survive

    log = s.read_stderr()
    for tok in all_tokens:
        assert tok not in log


def test_token_cli_usage_errors(tmp_path):
    d = str(tmp_path / "d")
    cases = [
        ("token",),
        ("token", "frobnicate"),
        ("token", "create"),
        ("token", "create", "--project"),
        ("token", "create", "--project", "0"),
        ("token", "create", "--project", "two"),
        ("token", "create", "--project", "2", "--bogus"),
        ("token", "create", "--project", "2", "--master", "--no-master"),
        ("token", "create", "--project", "2", "--description", "x" * 200),
        ("token", "create", "--project", "2", "extra"),
        ("token", "list", "--admin"),
        ("token", "list", "--project", "-1"),
        ("token", "revoke"),
        ("token", "revoke", "abc"),
        ("token", "revoke", "1", "2"),
    ]
    for args in cases:
        r = run_cli(*args, "--data-dir", d)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.startswith("streamd token"), (args, r.stderr)
        assert r.stdout == "", (args, r.stdout)
    # a bad config is a usage error too, named as the server names it
    r = run_cli("token", "list", "--data-dir", d, "--set", "no.such.key=1")
    assert r.returncode == 2 and "no.such.key" in r.stderr
    # help: exit 0, on stdout; options may come before the subcommand
    r = run_cli("token", "--help")
    assert r.returncode == 0 and "streamd token create" in r.stdout
    r = run_cli("--help")
    assert r.returncode == 0 and "streamd token" in r.stdout
    r = run_cli("token", "list", "--data-dir", d)  # no data dir yet: a mistyped --data-dir?
    assert r.returncode == 1 and "no state store" in r.stderr, r.stderr
    assert not os.path.exists(d)
    r = run_cli("token", "revoke", "--data-dir", d, "123")
    assert r.returncode == 1 and "no state store" in r.stderr, r.stderr
    create_token(d, 5, "--description", "five")
    r = run_cli("--data-dir", d, "token", "list")
    assert r.returncode == 0 and r.stdout.startswith("ID"), r.stderr
    r = run_cli("token", "list", "--data-dir=" + d, "--project=4")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stdout
    r = run_cli("token", "list", "--data-dir=" + d, "--project=5")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2 and "five" in r.stdout, r.stdout
    assert not os.path.exists(os.path.join(d, "admin-token"))  # commands never start a server
    # the data dir may come from --config (and STREAM_* / --set) as for the server
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"dataDir": d}))
    r = run_cli("token", "list", "--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    assert [t["description"] for t in json.loads(r.stdout)["tokens"]] == ["five"]
    r = run_cli("token", "list", "--set", "dataDir=" + d, "--json")
    assert r.returncode == 0 and "five" in r.stdout, r.stderr
