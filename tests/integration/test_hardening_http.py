"""Connections and HTTP framing under a hostile client: ambiguous framing (RFC 9112) answers 400
and closes on every listener, a smuggled request is never executed, maxConnections holds, slow
heads and idle keep-alive connections are closed, and a flood of idle connections beyond the
descriptor limit neither spins the server nor takes the API, metrics or data port down; an
accept() without descriptors backs off, and SIGTERM closes idle connections at once."""
import json
import os
import resource
import socket
import time
import urllib.parse

from conftest import TIMEOUT_MULT, http_request
from helpers import PATH_COLUMNS, all_rows

BAD_HEADS = {
    "cl_and_te": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two_cl_differing": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                        b"Content-Length: 3\r\n\r\nabc",
    "two_cl_same": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    "no_host": b"GET /health-check HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET /health-check HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "folded_line": b"GET /health-check HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "bare_lf": b"GET /health-check HTTP/1.1\nHost: a\n\n",
}


def port_of(url):
    return urllib.parse.urlsplit(url).port


def connect(url):
    return socket.create_connection(("127.0.0.1", port_of(url)), timeout=10 * TIMEOUT_MULT)


def read_until_close(sock, limit_s=10):
    """Everything the server sends until it closes; raises socket.timeout if it does not."""
    sock.settimeout(limit_s * TIMEOUT_MULT)
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def setup_pipeline(s, source_id="s1"):
    src = s.create_source(source_id)
    s.create_sink(source_id, "k1", PATH_COLUMNS)
    return src["http"]["url"]


def test_ambiguous_framing_is_refused_and_closed_on_every_listener(streamd):
    for url, error in ((streamd.source, "stream.in.badRequest"),
                       (streamd.api, "stream.api.badRequest"),
                       (streamd.metrics, "stream.metrics.badRequest")):
        for case, head in BAD_HEADS.items():
            with connect(url) as s:
                # a valid request pipelined after the bad one must not be answered
                s.sendall(head + b"GET /health-check HTTP/1.1\r\nHost: a\r\n\r\n")
                data = read_until_close(s)
            status_line, _, rest = data.partition(b"\r\n")
            assert status_line == b"HTTP/1.1 400 Bad Request", (url, case, data)
            assert b"HTTP/1.1 200" not in data, (url, case, data)
            body = json.loads(rest.partition(b"\r\n\r\n")[2])
            assert body["statusCode"] == 400 and body["error"] == error, (url, case, body)
    # well-framed requests still pass
    with connect(streamd.source) as s:
        s.sendall(b"GET /health-check HTTP/1.0\r\n\r\n")
        assert read_until_close(s).startswith(b"HTTP/1.1 200 OK")


def test_smuggled_request_is_never_executed(streamd):
    url = setup_pipeline(streamd)
    path = urllib.parse.urlsplit(url).path
    record = b'{"id":"smuggled"}'
    smuggled = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(record) + record)
    for outer in (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                  b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"):
        with connect(streamd.source) as s:
            s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: a\r\n"
                      b"Content-Type: application/json\r\n" + outer + b"\r\n0\r\n\r\n" + smuggled)
            data = read_until_close(s)
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert b"HTTP/1.1 200" not in data, data
    status, _, body = http_request(url, "POST", '{"id":"legit"}', {"Content-Type": "application/json"})
    assert (status, body) == (200, b"OK")
    assert streamd.stop() == 0
    ids = [row[1] for row in all_rows(streamd.data_dir)]
    assert ids == ["legit"], ids


def test_max_connections_holds_and_resumes(streamd_factory):
    s = streamd_factory(args=["--set", "source.http.maxConnections=100",
                              "--set", "source.http.readHeaderTimeout=1m"])
    idle = [connect(s.source) for _ in range(130)]  # 100 accepted, 30 in the backlog
    probe = connect(s.source)
    probe.sendall(b"GET /health-check HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    probe.settimeout(1.5)
    try:
        early = probe.recv(100)
    except socket.timeout:
        early = None
    assert early is None, "served although 100 connections were open: %r" % early
    # the API is not affected by a full data port
    assert http_request(s.api + "/health-check", timeout=10 * TIMEOUT_MULT)[0] == 200
    for sock in idle[:60]:
        sock.close()
    assert read_until_close(probe).startswith(b"HTTP/1.1 200 OK")
    probe.close()
    for sock in idle[60:]:
        sock.close()


def test_slow_head_and_idle_keepalive_are_closed(streamd_factory):
    s = streamd_factory(args=["--set", "source.http.readHeaderTimeout=1s",
                              "--set", "source.http.idleTimeout=1s"])
    # slowloris: an incomplete head, then nothing
    with connect(s.source) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\n")
        assert read_until_close(sock) == b""
    # a connection that never sends a byte
    with connect(s.source) as sock:
        assert read_until_close(sock) == b""
    # keep-alive: one request, then idle
    with connect(s.source) as sock:
        sock.sendall(b"GET /health-check HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_until_close(sock).startswith(b"HTTP/1.1 200 OK")
    # a complete head whose body comes after the header timeout is still served: the body is
    # bounded by source.http.requestTimeout, not by the header timeout
    with connect(s.source) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        time.sleep(2)
        sock.sendall(b"{}")
        assert read_until_close(sock).startswith(b"HTTP/1.1 404 ")


def test_slow_body_is_closed_after_request_timeout(streamd_factory):
    # h2o's own timer now only backs up the sweep: the sweep must bound the body as well
    s = streamd_factory(args=["--set", "source.http.requestTimeout=2s",
                              "--set", "source.http.idleTimeout=1m"])
    with connect(s.source) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n{")
        data = read_until_close(sock)
    assert not data.startswith(b"HTTP/1.1 2"), data


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def flood(url, count, head=b"POST /x HTTP/1.1\r\n"):
    """Opens count non-blocking connections that send an incomplete head (those still connecting
    because the backlog is full send nothing)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port_of(url)))
        socks.append(sock)
    for sock in socks:
        try:
            sock.send(head)
        except OSError:
            pass
    return socks


def core_share(pid, seconds=2):
    """The share of one core the process used over the next seconds."""
    before, t0 = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.time() - t0)


def ingest_eventually(url, record):
    deadline = time.time() + 20 * TIMEOUT_MULT
    while True:
        try:
            status, _, body = http_request(url, "POST", record, {"Content-Type": "application/json"},
                                           timeout=5)
        except OSError as e:
            status, body = None, repr(e)
        if status == 200 or time.time() > deadline:
            return status, body
        time.sleep(0.2)


def raise_own_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    return soft, hard, want


def nofile_limit(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def test_descriptor_exhaustion_keeps_every_port_up(streamd_factory):
    nofile = 1024
    soft, hard, have = raise_own_nofile(3 * nofile + 1024)
    s = streamd_factory(preexec_fn=nofile_limit(nofile),
                        args=["--set", "source.http.readHeaderTimeout=1m"])
    url = setup_pipeline(s)
    idle = []
    try:
        idle = flood(s.source, min(3 * nofile, have - 256))
        time.sleep(1)
        for probe in (s.api + "/health-check", s.metrics + "/metrics"):
            started = time.time()
            assert http_request(probe, timeout=10 * TIMEOUT_MULT)[0] == 200
            assert time.time() - started < 2 * TIMEOUT_MULT, probe
        used = core_share(s.proc.pid)
        assert used < 0.25, "server uses %.0f%% of a core with idle connections" % (used * 100)
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert ingest_eventually(url, '{"id":"after"}') == (200, b"OK")
    assert "Too many open files" not in s.read_stderr()


def test_accept_backs_off_when_descriptors_run_out(streamd_factory):
    # a limit just above what an idle server holds: the data cap cannot keep accept() from
    # failing with EMFILE, which must pause accepting instead of spinning
    probe = streamd_factory()
    setup_pipeline(probe)
    base = len(os.listdir("/proc/%d/fd" % probe.proc.pid))
    assert probe.stop() == 0
    s = streamd_factory(preexec_fn=nofile_limit(base + 16),
                        args=["--set", "source.http.readHeaderTimeout=1m"])
    url = setup_pipeline(s)
    idle = flood(s.source, 300)
    try:
        time.sleep(1)
        used = core_share(s.proc.pid)
        assert used < 0.25, "server uses %.0f%% of a core while accept fails" % (used * 100)
    finally:
        for sock in idle:
            sock.close()
    assert "pausing accepts" in s.read_stderr()
    assert ingest_eventually(url, '{"id":"after"}') == (200, b"OK")


def test_sigterm_closes_idle_connections_at_once(streamd_factory):
    s = streamd_factory()
    kept = []
    for base in (s.source, s.api, s.metrics):
        sock = connect(base)
        sock.sendall(b"GET /health-check HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 OK")
        kept.append(sock)
    kept.append(connect(s.source))  # never sends a byte
    started = time.time()
    assert s.stop() == 0
    # the drain would otherwise wait for source.http.requestTimeout (30 s)
    assert time.time() - started < 15, time.time() - started
    for sock in kept:
        sock.close()
