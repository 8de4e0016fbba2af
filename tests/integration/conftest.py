"""pytest harness: starts the real streamd binary on port 0 with a temp data dir, waits for its
ready file, and offers small HTTP helpers (stdlib only). Every configuration-API answer a test
receives through api_call is validated against streamd's own OpenAPI document. Teardown sends
SIGTERM, asserts exit 0, and fails the test if stderr shows sanitizer reports."""
import http.client
import json
import os
import signal
import subprocess
import time
import urllib.parse

import pytest

from openapi_check import check, template_matches

BIN = os.environ.get("STREAMD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "streamd")
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "UndefinedBehaviorSanitizer")
TIMEOUT_MULT = float(os.environ.get("SD_TEST_TIMEOUT_MULTIPLIER", "3" if os.environ.get("STREAMD_SANITIZED") else "1"))


def http_request(url, method="GET", body=None, headers=None, timeout=30):
    """One HTTP/1.1 request on a fresh connection. Returns (status, headers dict, body bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path + ("?" + u.query if u.query else "")
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    result = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    conn.close()
    return result


class Streamd:
    """A running streamd process and helpers to talk to it."""

    def __init__(self, data_dir, env=None, args=None, token=ADMIN_TOKEN, preexec_fn=None):
        self.data_dir = data_dir
        self.preexec_fn = preexec_fn  # runs in the child before exec (e.g. resource limits)
        self.token = token
        self.extra_env = env or {}
        self.args = args or []
        self.proc = None
        self.api = self.source = self.metrics = None
        self.openapi = None
        self.stderr_path = os.path.join(data_dir, "..", os.path.basename(data_dir) + ".stderr")

    def start(self, timeout=20):
        ready = self.data_dir + ".ready"
        if os.path.exists(ready):
            os.unlink(ready)
        env = dict(os.environ)
        env.update({"STREAM_ADMIN_TOKEN": self.token} if self.token else {})
        env.update(self.extra_env)
        if not self.token:
            env.pop("STREAM_ADMIN_TOKEN", None)
        cmd = [BIN, "--data-dir", self.data_dir, "--ready-file", ready,
               "--set", "api.listen=127.0.0.1:0", "--set", "source.http.listen=127.0.0.1:0",
               "--set", "metrics.listen=127.0.0.1:0",
               # Each open slice would preallocate 100 MB: a test run starts hundreds of
               # servers, so tests keep the disk free (the writer handles both cases).
               "--set", "storage.level.local.writer.allocation.enabled=false"] + self.args
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.stderr, stderr=self.stderr,
                                     preexec_fn=self.preexec_fn)
        deadline = time.time() + timeout * TIMEOUT_MULT
        while time.time() < deadline:
            if os.path.exists(ready):
                with open(ready) as f:
                    urls = json.load(f)
                self.api, self.source, self.metrics = urls.get("api"), urls.get("source"), urls.get("metrics")
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("streamd exited with %s: %s" % (self.proc.returncode, self.read_stderr()))
            time.sleep(0.02)
        raise RuntimeError("streamd not ready: " + self.read_stderr())

    def read_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=30):
        """SIGTERM; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * TIMEOUT_MULT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("streamd did not exit after SIGTERM")
        self.stderr.close()
        return rc

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.stderr.close()

    def restart(self):
        assert self.stop() == 0
        return self.start()

    def check_sanitizers(self):
        text = self.read_stderr()
        for mark in SANITIZER_MARKS:
            assert mark not in text, "sanitizer report in stderr:\n" + text[-4000:]

    # --- HTTP helpers ---
    def request(self, method, url, body=None, headers=None, timeout=30):
        return http_request(url, method, body, headers, timeout)

    def api_call(self, method, path, body=None, token=None, headers=None):
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["X-StorageApi-Token"] = tok
        status, _, data = http_request(self.api + path, method, body, h)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            return status, data.decode(errors="replace")
        self.check_against_openapi(method, path, status, parsed)
        return status, parsed

    def check_against_openapi(self, method, path, status, body):
        """Asserts an API answer is what streamd's OpenAPI document promises."""
        route = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if not route.startswith("/v1/") or route.startswith("/v1/documentation"):
            return
        if self.openapi is None:
            st, _, data = http_request(self.api + "/v1/documentation/openapi3.json")
            assert st == 200, "the OpenAPI document is not served"
            self.openapi = json.loads(data)
        for template, item in self.openapi["paths"].items():
            if method.lower() in item and template_matches(template, route):
                check(self.openapi, method.lower(), template, status, body)
                return

    def wait_task(self, task, timeout=60):
        deadline = time.time() + timeout * TIMEOUT_MULT
        while True:
            path = urllib.parse.urlsplit(task["url"]).path
            status, body = self.api_call("GET", path)
            assert status == 200, (status, body)
            if body["status"] != "processing":
                return body
            assert time.time() < deadline, "task still processing: %r" % body
            time.sleep(0.02)

    def create_source(self, source_id="s1", name=None):
        status, task = self.api_call("POST", "/v1/branches/default/sources",
                                     {"sourceId": source_id, "name": name or source_id, "type": "http"})
        assert status == 202, (status, task)
        done = self.wait_task(task)
        assert done["status"] == "success", done
        status, src = self.api_call("GET", "/v1/branches/default/sources/" + source_id)
        assert status == 200, (status, src)
        return src

    def create_sink(self, source_id, sink_id, columns, table_id="in.c-bucket.table"):
        body = {"sinkId": sink_id, "name": sink_id, "type": "table",
                "table": {"type": "keboola", "tableId": table_id, "mapping": {"columns": columns}}}
        status, task = self.api_call("POST", "/v1/branches/default/sources/%s/sinks" % source_id, body)
        assert status == 202, (status, task)
        done = self.wait_task(task)
        assert done["status"] == "success", done
        return done


class SyncHold:
    """Holds a process's fdatasync/fsync calls on demand: pass env() to the process (e.g.
    streamd_factory(env=...)); between engage() and release() each sync call waits (the
    LD_PRELOAD shim libsd_sync_hold.so built next to streamd) and is listed by held()."""

    def __init__(self, directory, name="sync"):
        self.hold_file = os.path.join(str(directory), name + ".hold")
        self.count_file = os.path.join(str(directory), name + ".held")

    def env(self):
        lib = os.path.join(os.path.dirname(os.path.abspath(BIN)), "libsd_sync_hold.so")
        assert os.path.exists(lib), "the sync-hold shim is not built: " + lib
        preload = " ".join(p for p in (os.environ.get("LD_PRELOAD"), lib) if p)
        # an ASan binary insists on its runtime coming first; the shim only wraps two calls
        asan = ":".join(p for p in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if p)
        return {"LD_PRELOAD": preload, "ASAN_OPTIONS": asan,
                "SD_SYNC_HOLD_FILE": self.hold_file, "SD_SYNC_HOLD_COUNT_FILE": self.count_file}

    def engage(self):
        open(self.hold_file, "w").close()

    def release(self):
        if os.path.exists(self.hold_file):
            os.unlink(self.hold_file)

    def held(self):
        """One "<function> <path>" line per sync call held so far."""
        try:
            with open(self.count_file) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


@pytest.fixture
def streamd_factory(tmp_path):
    """Creates streamd instances (each with its own data dir unless given); stops them all."""
    started = []

    def make(env=None, args=None, token=ADMIN_TOKEN, data_dir=None, start=True, preexec_fn=None):
        d = data_dir or str(tmp_path / ("data%d" % len(started)))
        os.makedirs(d, exist_ok=True)
        s = Streamd(d, env=env, args=args, token=token, preexec_fn=preexec_fn)
        started.append(s)
        return s.start() if start else s

    yield make
    for s in started:
        if s.proc is not None and s.proc.poll() is None:
            rc = s.stop()
            assert rc == 0, "streamd exit code %s\n%s" % (rc, s.read_stderr()[-4000:])
        s.check_sanitizers()


@pytest.fixture
def streamd(streamd_factory):
    return streamd_factory()
