"""Sync and compression modes, request timeout, and the command line (config errors, dump)."""
import json
import os
import socket
import subprocess
import time
import urllib.parse

from conftest import BIN
from helpers import PATH_COLUMNS, all_rows, slice_files

J = {"Content-Type": "application/json"}


def pipeline(s):
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS)
    return src["http"]["url"]


def test_wait_false_answers_202_and_keeps_the_record(streamd_factory):
    s = streamd_factory(args=["--set", "storage.level.local.encoding.sync.wait=false"])
    url = pipeline(s)
    status, _, data = s.request("POST", url, '{"id":"w1"}', J)
    assert (status, data) == (202, b"OK")
    status, _, data = s.request("POST", url + "?verbose=true", '{"id":"w2"}', J)
    assert status == 202 and json.loads(data)["sources"][0]["sinks"][0]["message"] == "accepted"
    assert s.stop() == 0
    assert [r[1] for r in all_rows(s.data_dir)] == ["w1", "w2"]


def test_cache_mode_and_plain_csv(streamd_factory):
    s = streamd_factory(args=["--set", "storage.level.local.encoding.sync.mode=cache",
                              "--set", "storage.level.local.encoding.compression.type=none"])
    url = pipeline(s)
    assert s.request("POST", url, '{"id":"c1","text":"a\\nb"}', J)[0] == 200
    assert s.stop() == 0
    files = slice_files(s.data_dir)
    assert [os.path.basename(f) for f in files] == ["slice-standalone.csv"]
    assert open(files[0], "rb").read() == b'"{""id"":""c1"",""text"":""a\\nb""}","c1","a\nb"\n'


def test_zlib_standard_level_9(streamd_factory):
    s = streamd_factory(args=["--set", "storage.level.local.encoding.compression.gzip.implementation=standard",
                              "--set", "storage.level.local.encoding.compression.gzip.level=9"])
    url = pipeline(s)
    for i in range(50):
        assert s.request("POST", url, json.dumps({"id": "z%d" % i}), J)[0] == 200
    assert s.stop() == 0
    assert [r[1] for r in all_rows(s.data_dir)] == ["z%d" % i for i in range(50)]


def test_slow_request_is_closed_after_request_timeout(streamd_factory):
    s = streamd_factory(args=["--set", "source.http.requestTimeout=1s"])
    u = urllib.parse.urlsplit(s.source)
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    sock.sendall(b"POST /stream/1/s1/x HTTP/1.1\r\nHost: a\r\n")  # never finishes the head
    t0 = time.time()
    data = sock.recv(1024)
    elapsed = time.time() - t0
    sock.close()
    assert data == b"" or not data.startswith(b"HTTP/1.1 2"), data
    assert elapsed < 5, elapsed
    assert s.request("GET", s.source + "/health-check")[0] == 200


def run_cli(*args, env=None):
    e = dict(os.environ)
    e.pop("STREAM_ADMIN_TOKEN", None)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=e, timeout=30)


def test_config_errors_name_key_value_and_bounds(tmp_path):
    r = run_cli("--data-dir", str(tmp_path), "--set", "source.http.maxRequestBodySize=5MB")
    assert r.returncode != 0
    assert "source.http.maxRequestBodySize" in r.stderr and "5MB" in r.stderr and "4MB" in r.stderr
    r = run_cli("--data-dir", str(tmp_path), "--set", "source.http.listn=1")
    assert r.returncode != 0 and "source.http.listen" in r.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("storage:\n  level:\n    staging:\n      upload:\n        minInterval: 0s\n")
    r = run_cli("--config", str(cfg), "--data-dir", str(tmp_path))
    assert r.returncode != 0 and "storage.level.staging.upload.minInterval" in r.stderr
    r = run_cli("--bogus")
    assert r.returncode == 2 and "--bogus" in r.stderr
    r = run_cli("--help")
    assert r.returncode == 0 and "usage: streamd" in r.stdout


def test_config_dump_layers_and_redaction(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"source": {"http": {"requestTimeout": "20s", "readBufferSize": "32KB"}}}))
    r = run_cli("config", "dump", "--config", str(cfg), "--data-dir", str(tmp_path / "d"),
                "--set", "source.http.readBufferSize=64KB",
                env={"STREAM_SOURCE_HTTP_REQUEST_TIMEOUT": "25s",
                     "STREAM_ADMIN_TOKEN": "super-secret-token-123456"})
    assert r.returncode == 0, r.stderr
    lines = dict(l.split(": ", 1) for l in r.stdout.splitlines() if ": " in l)
    assert lines["source.http.requestTimeout"] == "25s"    # env over file
    assert lines["source.http.readBufferSize"] == "64KB"   # --set over file
    assert lines["storage.volumesPath"].endswith("/d/volumes")
    assert "super-secret-token-123456" not in r.stdout
    assert lines["auth.adminToken"].strip('"') == "***"
