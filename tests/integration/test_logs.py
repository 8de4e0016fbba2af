"""The service log as the reference's: JSON lines on stdout with level, message, component and
the entity's context attributes; debugLog switches debug lines on; a failing sink's log line
is rate-limited; start-up errors stay on stderr."""
import json
import os
import signal
import subprocess
import time

from conftest import ADMIN_TOKEN, BIN, TIMEOUT_MULT
from helpers import FAST, PATH_COLUMNS


def log_lines(text):
    """The JSON log lines of text (other lines are ignored)."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_log_stream_is_json_on_stdout(tmp_path):
    data, ready = str(tmp_path / "data"), str(tmp_path / "ready")
    out, err = open(tmp_path / "out", "wb"), open(tmp_path / "err", "wb")
    env = dict(os.environ, STREAM_ADMIN_TOKEN=ADMIN_TOKEN)
    proc = subprocess.Popen([BIN, "--data-dir", data, "--ready-file", ready,
                             "--set", "api.listen=127.0.0.1:0",
                             "--set", "source.http.listen=127.0.0.1:0",
                             "--set", "metrics.listen=127.0.0.1:0",
                             "--set", "nodeID=node-a"], env=env, stdout=out, stderr=err)
    deadline = time.time() + 20 * TIMEOUT_MULT
    while not os.path.exists(ready) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30 * TIMEOUT_MULT) == 0
    out.close()
    err.close()
    lines = log_lines((tmp_path / "out").read_text())
    assert any("ready: api" in l["message"] for l in lines), lines
    for line in lines:
        assert line["level"] in ("info", "warn", "error"), line  # no debug without debugLog
        assert line["component"] and line["message"] and line["time"]
        assert line["nodeId"] == "node-a"
    assert log_lines((tmp_path / "err").read_text()) == []


def test_start_up_errors_stay_on_stderr(tmp_path):
    r = subprocess.run([BIN, "--data-dir", str(tmp_path), "--set", "debugLog=maybe"],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"debugLog" in r.stderr and r.stdout == b""


def test_debug_log_and_entity_attributes(streamd_factory):
    s = streamd_factory(args=FAST + ["--set", "debugLog=true"])
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS)
    assert s.request("POST", src["http"]["url"], json.dumps({"id": "a"}),
                     {"Content-Type": "application/json"})[0] == 200
    deadline = time.time() + 30
    while time.time() < deadline:
        lines = log_lines(s.read_stderr())
        imported = [l for l in lines if l["component"] == "operator" and
                    l["message"].startswith("file ") and " imported into " in l["message"]]
        if imported:
            break
        time.sleep(0.2)
    assert imported, lines
    line = imported[0]
    assert (line["project.id"], line["branch.id"], line["source.id"], line["sink.id"]) == \
        ("1", "1", "s1", "k1")
    assert line["file.id"].endswith("Z") and "volume.id" not in line
    uploaded = [l for l in lines if " uploaded (" in l["message"]]
    assert uploaded and uploaded[0]["volume.id"] and uploaded[0]["slice.id"].endswith("Z")
    debug = [l for l in lines if l["level"] == "debug"]
    assert any(l["message"] == "slice uploading -> uploaded" for l in debug), debug
    assert any(l["message"].startswith("importing file ") for l in debug), debug


def test_failing_sink_log_is_rate_limited(streamd):
    src = streamd.create_source("s1")
    streamd.create_sink("s1", "k1", [{"type": "path", "name": "id", "path": "id"}])
    for _ in range(50):
        status, _, _ = streamd.request("POST", src["http"]["url"], "{}",
                                       {"Content-Type": "application/json"})
        assert status == 500  # a mapping error is a sink failure (stream.in.genericError)
    lines = [l for l in log_lines(streamd.read_stderr())
             if l["message"].startswith("source record processing failed: 1/1 sinks failed. "
                                        "Failed sinks: sink k1: ")]
    assert 1 <= len(lines) <= 5, lines  # 50 failures within a few seconds
    assert lines[0]["level"] == "error" and lines[0]["component"] == "sink.router"
    assert lines[0]["source.id"] == "s1" and "sink.id" not in lines[0]
