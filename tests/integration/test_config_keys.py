"""Configuration keys that do what they say: the data endpoint's shutdown drain bound and send
buffer, the start-up warnings and errors for marked keys, their marks in `config dump`, and
docs/CONFIG.md regenerated from the option table."""
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse

from conftest import BIN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args, env=None):
    e = dict(os.environ)
    e.pop("STREAM_ADMIN_TOKEN", None)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=e, timeout=30)


def half_sent_request(s):
    """A connection whose request body never completes: in flight until a timeout."""
    u = urllib.parse.urlsplit(s.source)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    sock.sendall(b"POST /stream/1/s1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{\"id\"")
    time.sleep(0.3)
    return sock


def test_shutdown_timeout_bounds_the_drain(streamd_factory):
    s = streamd_factory(args=["--set", "source.http.requestTimeout=1m",
                              "--set", "source.http.shutdownTimeout=1s"])
    sock = half_sent_request(s)
    t0 = time.time()
    assert s.stop() == 0
    elapsed = time.time() - t0
    sock.close()
    # without the bound the drain would wait for the request timeout (1 minute)
    assert 0.9 <= elapsed < 15, elapsed


def test_shutdown_waits_for_requests_in_flight(streamd_factory):
    s = streamd_factory(args=["--set", "source.http.shutdownTimeout=30s"])
    sock = half_sent_request(s)
    s.proc.send_signal(15)
    time.sleep(1.0)
    assert s.proc.poll() is None  # still draining: the request is in flight
    sock.sendall(b":1}" + b" " * 94)  # completes the body: answered, then the process exits
    data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 "), data
    sock.close()
    assert s.proc.wait(30) == 0
    s.stderr.close()


def server_send_buffer(s):
    u = urllib.parse.urlsplit(s.source)
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    try:
        # an answer means the server has accepted the connection and set its options (before,
        # ss may show the socket still in the accept queue, with the kernel's buffer)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        deadline = time.time() + 5
        while time.time() < deadline:
            out = subprocess.run(["ss", "-tmnH", "state", "established",
                                  "( sport = :%d )" % u.port],
                                 capture_output=True, text=True, check=True).stdout
            m = re.search(r"\btb(\d+)", out)
            if m:
                return int(m.group(1))
            time.sleep(0.05)
        raise AssertionError("no server socket in ss output")
    finally:
        sock.close()


def test_write_buffer_size_sets_the_send_buffer(streamd_factory):
    # Linux doubles SO_SNDBUF for its bookkeeping
    s = streamd_factory(args=["--set", "source.http.writeBufferSize=64KB"])
    assert server_send_buffer(s) == 2 * 64 * 1024
    t = streamd_factory(args=["--set", "source.http.writeBufferSize=8KB"])
    assert server_send_buffer(t) == 2 * 8 * 1024


def test_marked_keys_warn_at_start(streamd_factory):
    s = streamd_factory(env={"STREAM_WATCH_TELEMETRY_INTERVAL": "1m",
                             "STREAM_DATADOG_ENABLED": "false",
                             "STREAM_STORAGE_API_HOST": "connection.keboola.com"})
    text = s.read_stderr()
    assert re.search(r'"watchTelemetryInterval\\" is set but has no effect in standalone '
                     r'streamd \(cluster\)', text), text
    assert '"datadog.enabled\\" is set but has no effect in streamd (not applicable)' in text
    assert '"storageApiHost\\" is set' in text
    assert "api.task.ttlSeconds" not in text  # at its default: nothing to say


def test_rejected_keys_stop_the_start(tmp_path):
    r = run_cli("--data-dir", str(tmp_path), "--set", "encryption.provider=aws")
    assert r.returncode == 2
    assert 'invalid value "aws" for "encryption.provider": cloud KMS' in r.stderr
    r = run_cli("--data-dir", str(tmp_path),
                env={"STREAM_ENCRYPTION_AZURE_KEY_VAULT_URL": "https://v.vault.azure.net"})
    assert r.returncode == 2
    assert 'config key "encryption.azure.keyVaultUrl" is not supported by streamd' in r.stderr


def test_config_dump_shows_marks(tmp_path):
    r = run_cli("config", "dump", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "watchTelemetryInterval: 5m  # cluster\n" in r.stdout
    assert 'etcd.endpoint: ""\n' in r.stdout
    assert "pprof.enabled: false  # not applicable\n" in r.stdout
    assert 'encryption.gcp.kmsKeyId: ""  # rejected\n' in r.stdout
    assert "source.http.shutdownTimeout: 30s\n" in r.stdout
    r = run_cli("config", "dump", "--json", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    dump = json.loads(r.stdout)
    assert dump["$marks"]["distribution.grantTimeout"] == "cluster"
    assert dump["$marks"]["storage.jobCleanup.enable"] == "not applicable"
    assert dump["$marks"]["encryption.aws.region"] == "rejected"
    assert "source.http.writeBufferSize" not in dump["$marks"]
    # the JSON dump loads back as a config file
    f = tmp_path / "dump.json"
    f.write_text(r.stdout.replace('"***"', '""'))
    r = run_cli("config", "dump", "--config", str(f))
    assert r.returncode == 0, r.stderr


def test_config_md_is_generated_from_the_option_table():
    r = run_cli("config", "docs")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(ROOT, "docs", "CONFIG.md")) as f:
        checked_in = f.read()
    assert r.stdout == checked_in, "docs/CONFIG.md is stale: run `build/streamd config docs > docs/CONFIG.md`"
    keys = re.findall(r"^\| `([^`]+)` \|", r.stdout, re.M)
    dump = json.loads(run_cli("config", "dump", "--json").stdout)
    assert keys == [k for k in dump if k != "$marks"]
