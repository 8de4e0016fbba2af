"""Template (Jsonnet) columns end to end: values in the SQLite table for JSON and form bodies,
rawString, the record functions, runtime errors that fail only their sink, syntax errors at
save time, the test endpoint, and the `streamd template eval` / `streamd jsonnet` commands."""
import json
import re
import subprocess
import time

from conftest import BIN, TIMEOUT_MULT
from helpers import FAST, table_rows

SOURCES = "/v1/branches/default/sources"
TABLE = "in.c-bucket.tpl"
OTHER = "in.c-bucket.paths"
J = {"Content-Type": "application/json"}
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def tpl(name, content, raw=None):
    col = {"type": "template", "name": name, "template": {"language": "jsonnet", "content": content}}
    if raw is not None:
        col["rawString"] = raw
    return col


COLUMNS = [
    tpl("ag", "Body('a') + \":\" + Body('c.f.g')"),
    tpl("ag_raw", "Body('a') + \":\" + Body('c.f.g')", True),
    tpl("ag_quoted", "Body('c.f.g')", False),
    tpl("obj", "{a: Body('a'), g: Body('c.f.g'), h: Header('x-custom', 'none'), ip: Ip(),"
               " n: std.length(Body('list', []))}"),
    tpl("now", "Now()", True),
    tpl("day", "Now('%Y-%m-%d')", True),
    tpl("hstr", "HeaderStr()", True),
    tpl("bstr", "BodyStr()", True),
    tpl("dflt", "Body('missing.key', 'dflt')", True),
]




def wait_rows(data_dir, table, n, timeout=60):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while True:
        rows = table_rows(data_dir, table)
        if len(rows) >= n:
            return rows
        assert time.time() < deadline, "table %s has %d rows, want %d" % (table, len(rows), n)
        time.sleep(0.2)


def test_template_columns_land_in_the_table(streamd_factory):
    s = streamd_factory(args=FAST)
    url = s.create_source("s1")["http"]["url"]
    s.create_sink("s1", "k1", COLUMNS, table_id=TABLE)
    # The stored definition round-trips the template and rawString.
    status, sink = s.api_call("GET", SOURCES + "/s1/sinks/k1")
    assert status == 200, sink
    assert sink["table"]["mapping"]["columns"] == COLUMNS

    body = '{"a": 1, "c": {"d": "e", "f": {"g": "x\\"y"}}, "list": [1, 2, 3]}'
    status, _, data = s.request("POST", url + "?verbose=true", body,
                                dict(J, **{"X-Custom": "v1"}))
    assert status == 200, data
    form = "a=5&c%5Bf%5D%5Bg%5D=w%C3%B6rld&list%5B%5D=1"
    status, _, data = s.request("POST", url, form,
                                {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, data

    rows = wait_rows(s.data_dir, TABLE, 2)
    assert len(rows) == 2
    names = [c["name"] for c in COLUMNS]
    first, second = (dict(zip(names, r)) for r in rows)

    assert first["ag"] == '"1:x\\"y"'
    assert first["ag_raw"] == '1:x"y'
    assert first["ag_quoted"] == '"x\\"y"'
    assert json.loads(first["obj"]) == {"a": 1, "g": 'x"y', "h": "v1", "ip": "127.0.0.1", "n": 3}
    assert first["obj"] == '{"a":1,"g":"x\\"y","h":"v1","ip":"127.0.0.1","n":3}'
    assert re.fullmatch(ISO_MS, first["now"]), first
    assert first["day"] == first["now"][:10]
    assert "Content-Type: application/json\n" in first["hstr"]
    assert "X-Custom: v1\n" in first["hstr"]
    lines = first["hstr"].splitlines(keepends=True)
    assert lines == sorted(lines) and all(line.endswith("\n") for line in lines)
    assert first["bstr"] == body
    assert first["dflt"] == "dflt"

    # A form body: values are strings.
    assert second["ag"] == '"5:w\u00f6rld"'
    assert second["ag_raw"] == "5:w\u00f6rld"
    assert json.loads(second["obj"]) == {"a": "5", "g": "w\u00f6rld", "h": "none",
                                         "ip": "127.0.0.1", "n": 1}
    assert second["bstr"] == form


def test_runtime_error_fails_only_that_sink(streamd_factory):
    s = streamd_factory(args=FAST)
    url = s.create_source("s1")["http"]["url"]
    s.create_sink("s1", "k1", [{"type": "body", "name": "b"}, tpl("t", "Body('x.y')", True)],
                  table_id=TABLE)
    s.create_sink("s1", "k2", [{"type": "path", "name": "a", "path": "a"}], table_id=OTHER)

    status, _, data = s.request("POST", url + "?verbose=true", '{"a": 7}', J)
    assert status == 500, data
    doc = json.loads(data)
    assert doc["error"] == "stream.in.writeFailed" and doc["message"] == "Written to 1/2 sinks."
    sinks = {x["sinkId"]: x for x in doc["sources"][0]["sinks"]}
    assert sinks["k1"]["statusCode"] == 500
    assert sinks["k1"]["error"] == "stream.in.genericError"
    assert sinks["k1"]["message"] == 'column "t": path "x.y" not found in the body'
    assert sinks["k2"] == {"sinkId": "k2", "statusCode": 200, "message": "processed"}

    # The other sink got the record; the failing one did not.
    assert wait_rows(s.data_dir, OTHER, 1) == [("7",)]
    # A record with the path succeeds for both.
    status, _, data = s.request("POST", url, '{"a": 8, "x": {"y": "ok"}}', J)
    assert status == 200, data
    assert wait_rows(s.data_dir, TABLE, 1) == [('{"a": 8, "x": {"y": "ok"}}', "ok")]

    # Body() on a body that is neither JSON nor form: 415 as path columns, for both sinks.
    status, _, data = s.request("POST", url + "?verbose=true", "a", {"Content-Type": "text/plain"})
    assert status == 415, data
    sinks = {x["sinkId"]: x for x in json.loads(data)["sources"][0]["sinks"]}
    assert sinks["k1"]["error"] == "stream.in.unsupportedMediaType", sinks
    assert sinks["k1"]["message"] == sinks["k2"]["message"], sinks
    # Invalid JSON: 400.
    status, _, data = s.request("POST", url + "?verbose=true", '{"a":', J)
    assert status == 400, data
    # Runaway recursion and errors are errors, and the server stays up.
    s.create_sink("s1", "k3", [tpl("t", "local f(x) = x + f(x + 1); {r: f(1)}")],
                  table_id="in.c-bucket.deep")
    status, _, data = s.request("POST", url + "?verbose=true", '{"a": 1, "x": {"y": 1}}', J)
    assert status == 500, data
    sinks = {x["sinkId"]: x for x in json.loads(data)["sources"][0]["sinks"]}
    assert sinks["k3"]["statusCode"] == 500 and sinks["k3"]["message"].startswith('column "t": ')
    assert sinks["k1"]["statusCode"] == 200 and sinks["k2"]["statusCode"] == 200
    assert s.request("GET", s.source + "/health-check")[0] == 200


def test_invalid_templates_are_refused_when_saved(streamd):
    streamd.create_source("s1")
    cases = [
        (tpl("t", "{\n  a: Body('a'\n}"), 'Column "t" template is invalid: '),
        (tpl("t", "Foo()"), 'Column "t" template is invalid: 1:1-4 Unknown variable: Foo.'),
        (tpl("t", "std.noSuchFunction(1)"), 'Column "t" template is invalid: 1:'),
        (tpl("t", "x" * 4097), '"columns[1].template.content" must be at most 4096 characters'),
        (tpl("t", ""), '"columns[1].template.content" is required'),
        ({"type": "template", "name": "t", "template": {"language": "go", "content": "1"}},
         '"columns[1].template.language" must be one of jsonnet'),
        ({"type": "template", "name": "t"}, '"columns[1].template" is required'),
    ]
    for col, needle in cases:
        body = {"sinkId": "k1", "name": "k1", "type": "table",
                "table": {"type": "keboola", "tableId": TABLE,
                          "mapping": {"columns": [{"type": "ip", "name": "ip"}, col]}}}
        status, err = streamd.api_call("POST", SOURCES + "/s1/sinks", body)
        assert status == 400, (col, status, err)
        assert err["error"] == "stream.api.badRequest", err
        assert needle in err["message"], (needle, err["message"])
    # The syntax error keeps the line:column of the content.
    body["table"]["mapping"]["columns"] = [{"type": "ip", "name": "ip"},
                                           tpl("t", "{\n  a: Body('a'\n}")]
    status, err = streamd.api_call("POST", SOURCES + "/s1/sinks", body)
    assert re.fullmatch(r'Column "t" template is invalid: \d+:\d+ [A-Z].*\.', err["message"]), err
    # An update is checked the same way.
    streamd.create_sink("s1", "k1", [tpl("t", "Ip()")], table_id=TABLE)
    status, err = streamd.api_call("PATCH", SOURCES + "/s1/sinks/k1",
                                   {"table": {"mapping": {"columns": [tpl("t", "Ip(")]}}})
    assert status == 400 and err["message"].startswith('Column "t" template is invalid: 1:'), err


def test_test_endpoint_renders_templates(streamd):
    streamd.create_source("s1")
    streamd.create_sink("s1", "k1", [tpl("ag", "Body('a') + ':' + Body('c.f.g')"),
                                     tpl("raw", "Body('c.f.g')", True),
                                     tpl("obj", "{h: Header('X-Custom'), ip: Ip()}")],
                        table_id=TABLE)
    status, res = streamd.api_call("POST", SOURCES + "/s1/test",
                                   '{"a": 2, "c": {"f": {"g": "z"}}}',
                                   headers=dict(J, **{"X-Custom": "q"}))
    assert status == 200, res
    values = {c["name"]: c["value"] for c in res["tables"][0]["rows"][0]["columns"]}
    assert values == {"ag": '"2:z"', "raw": "z", "obj": '{"h":"q","ip":"127.0.0.1"}'}
    status, err = streamd.api_call("POST", SOURCES + "/s1/test", '{"a": 2}', headers=J)
    assert status == 422, err
    assert err["error"] == "stream.api.unprocessableContent", err
    assert 'Invalid value for column "ag"' in err["message"], err
    assert 'path "c.f.g" not found in the body' in err["message"], err
    assert err["message"].count('"ag"') == 1, err  # the column is named once


def run_cli(args, stdin=None):
    r = subprocess.run([BIN] + args, input=stdin, capture_output=True, timeout=30 * TIMEOUT_MULT)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_template_eval_cli(tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"a": 1, "c": {"f": {"g": "x"}}}')
    t = tmp_path / "t.jsonnet"
    t.write_text("Body('a') + \":\" + Body('c.f.g')")
    assert run_cli(["template", "eval", "--body", str(body), str(t)]) == (0, '"1:x"\n', "")
    assert run_cli(["template", "eval", "--body", str(body), "--raw-string", str(t)]) == \
        (0, "1:x\n", "")
    obj = tmp_path / "obj.jsonnet"
    obj.write_text("{ip: Ip(), h: Header('x-a'), all: Header(), s: HeaderStr(), b: BodyStr(),"
                   " now: Now('%Y') != ''}")
    rc, out, err = run_cli(["template", "eval", "--body", str(body), "--ip", "192.0.2.1",
                            "--header", "X-A: 1", "--header", "x-b:  two ", str(obj)])
    assert rc == 0, err
    assert json.loads(out) == {"ip": "192.0.2.1", "h": "1", "b": body.read_text(), "now": True,
                               "all": {"X-A": "1", "X-B": "two", "Content-Type": "application/json"},
                               "s": "Content-Type: application/json\nX-A: 1\nX-B: two\n"}
    assert out.startswith('{"all":{') and out.endswith("}\n"), out
    # A form body, by header or by option, and the template from stdin.
    form = tmp_path / "form"
    form.write_text("a=1&c[f][g]=y")
    assert run_cli(["template", "eval", "--body", str(form), "--content-type",
                    "application/x-www-form-urlencoded", "-"], stdin=t.read_bytes()) == \
        (0, '"1:y"\n', "")
    assert run_cli(["template", "eval", "--body", str(form), "--header",
                    "Content-Type: application/x-www-form-urlencoded", str(t)])[1] == '"1:y"\n'
    # Errors: runtime with the position, static with line:column, body type, usage.
    missing = tmp_path / "missing.jsonnet"
    missing.write_text("{\n  a: Body('nope'),\n}")
    rc, out, err = run_cli(["template", "eval", "--body", str(body), str(missing)])
    assert rc == 1 and out == ""
    assert err.startswith('streamd: RUNTIME ERROR: path "nope" not found in the body\n\t'), err
    assert re.search(r"missing\.jsonnet:\d+:\d+", err), err
    bad = tmp_path / "bad.jsonnet"
    bad.write_text("Body('a'")
    rc, out, err = run_cli(["template", "eval", "--body", str(body), str(bad)])
    assert rc == 1 and re.match(r"streamd: STATIC ERROR: .*bad\.jsonnet:1:\d+: ", err), err
    rc, out, err = run_cli(["template", "eval", "--body", str(body), "--content-type",
                            "text/plain", str(t)])
    assert rc == 1 and "unsupported content type" in err, err
    assert run_cli(["template", "eval", "--body", str(body)])[0] == 2
    assert run_cli(["template", "eval", "--bogus", str(t)])[0] == 2
    assert run_cli(["template", "frob"])[0] == 2
    assert run_cli(["template", "eval", "--body", str(tmp_path / "none"), str(t)])[0] == 2


def test_jsonnet_cli(tmp_path):
    prog = tmp_path / "p.jsonnet"
    prog.write_text("local x = {a: [1, 0.1], b: {}}; x + {c: 'd', e: []}")
    rc, out, err = run_cli(["jsonnet", str(prog)])
    assert (rc, err) == (0, "")
    assert out == ('{\n   "a": [\n      1,\n      0.1\n   ],\n   "b": { },\n   "c": "d",\n'
                   '   "e": [ ]\n}\n')
    assert run_cli(["jsonnet", "-"], stdin=b"1 + 1") == (0, "2\n", "")
    rc, out, err = run_cli(["jsonnet", "-"], stdin=b"\n  error 'boom'")
    assert rc == 1 and out == ""
    assert err.startswith("streamd: RUNTIME ERROR: boom\n\t<stdin>:2:"), err
    rc, out, err = run_cli(["jsonnet", "-"], stdin=b"{a: }")
    assert rc == 1 and err.startswith("streamd: STATIC ERROR: <stdin>:1:"), err
    # Record functions are template-only.
    assert run_cli(["jsonnet", "-"], stdin=b"Ip()")[0] == 1
    assert run_cli(["jsonnet"])[0] == 2
    assert run_cli(["jsonnet", str(tmp_path / "none")])[0] == 2
