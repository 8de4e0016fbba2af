"""A body over the limit on the data and the API port: the reference's JSON 413
(stream.in.bodyTooLarge / stream.api.bodyTooLarge), and the client always gets to read it. The
server answers as soon as it knows the body is too large, while the body is still arriving; it
then lingers (reads and discards for a bounded time) before closing, so the unread rest of the
body does not make the kernel reset the connection under the client's feet."""
import json
import os
import socket
import time

import pytest

from conftest import TIMEOUT_MULT
from test_hardening_http import port_of

BODY = 2 * 1024 * 1024  # twice the default limits (source.http.maxRequestBodySize, the API's)
ROUNDS = 50


def read_response(sock):
    """Reads one final response (after any 100 Continue) and then the server's close. Returns
    (status, headers, body). Any reset or short read raises."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            assert data, "connection closed before a response head: %r" % buf[:200]
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        if status != 100:
            break
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(buf) < length:
        data = sock.recv(65536)
        assert data, "connection closed after %d of %d body bytes" % (len(buf), length)
        buf += data
    body, rest = buf[:length], buf[length:]
    assert rest == b"", rest[:100]
    assert sock.recv(65536) == b"", "the connection stays open after a 413"
    return status, headers, body


def post_oversized(url, path, chunked, expect):
    """One POST of a 2 MB body, sent whole as most clients do (also with Expect: 100-continue,
    like a client whose wait for 100 Continue ran out) before the response is read."""
    sock = socket.create_connection(("127.0.0.1", port_of(url)), timeout=20 * TIMEOUT_MULT)
    try:
        head = "POST %s HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n" % path
        if expect:
            head += "Expect: 100-continue\r\n"
        if chunked:
            head += "Transfer-Encoding: chunked\r\n\r\n"
            chunk = b"x" * 65536
            body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (BODY // len(chunk)) + b"0\r\n\r\n"
        else:
            head += "Content-Length: %d\r\n\r\n" % BODY
            body = b"x" * BODY
        sock.sendall(head.encode() + body)
        return read_response(sock)
    finally:
        sock.close()


def expected(prefix, limit):
    return {"statusCode": 413, "error": prefix + ".bodyTooLarge",
            "message": 'Request body size is over the maximum "%s".' % limit}


@pytest.mark.parametrize("port", ["source", "api"])
def test_oversized_bodies_always_read_a_json_413(streamd, port):
    url = getattr(streamd, port)
    path = "/stream/1/s1/" + "x" * 48 if port == "source" else "/v1/branches/default/sources"
    want = expected("stream.in" if port == "source" else "stream.api", "1MB")
    for chunked in (False, True):
        for expect in (False, True):
            for i in range(ROUNDS):
                status, headers, body = post_oversized(url, path, chunked, expect)
                where = (port, "chunked" if chunked else "content-length", expect, i)
                assert status == 413, where
                assert headers["content-type"] == "application/json", where
                assert headers["connection"] == "close", where
                assert json.loads(body) == want, (where, body)
                if port == "source":
                    assert headers["server"] == "Keboola/Stream/HTTPSource", where
    # The server is still well: a request within the limit goes through.
    status, _, _ = streamd.request("GET", streamd.source + "/health-check")
    assert status == 200


def test_waiting_for_100_continue_gets_the_413_at_once(streamd_factory):
    s = streamd_factory(args=["--set", "source.http.maxRequestBodySize=1536KB"])
    sock = socket.create_connection(("127.0.0.1", port_of(s.source)), timeout=10 * TIMEOUT_MULT)
    try:
        sock.sendall(("POST /stream/1/s1/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                      "Content-Length: %d\r\n\r\n" % BODY).encode())
        status, _, body = read_response(sock)  # never sends the body
    finally:
        sock.close()
    assert status == 413
    assert json.loads(body) == expected("stream.in", "1536KB")


def test_broken_chunked_body_is_a_json_400(streamd):
    sock = socket.create_connection(("127.0.0.1", port_of(streamd.source)),
                                    timeout=10 * TIMEOUT_MULT)
    try:
        sock.sendall(b"POST /stream/1/s1/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\nzz\r\nabc\r\n0\r\n\r\n")
        status, headers, body = read_response(sock)
    finally:
        sock.close()
    assert status == 400
    assert headers["server"] == "Keboola/Stream/HTTPSource"
    assert json.loads(body) == {"statusCode": 400, "error": "stream.in.badRequest",
                                "message": "Request body framing is invalid: broken "
                                           "chunked-encoding."}


def open_sockets(pid):
    fd_dir = "/proc/%d/fd" % pid
    count = 0
    for name in os.listdir(fd_dir):
        try:
            count += os.readlink(os.path.join(fd_dir, name)).startswith("socket:")
        except OSError:
            pass
    return count


def test_lingering_is_bounded_when_the_client_stays(streamd):
    """A client that reads the 413 and then keeps its connection open, sending nothing, does
    not hold the server's socket beyond the lingering bounds (2 s without input)."""
    before = open_sockets(streamd.proc.pid)
    sock = socket.create_connection(("127.0.0.1", port_of(streamd.source)),
                                    timeout=10 * TIMEOUT_MULT)
    try:
        sock.sendall(("POST /stream/1/s1/x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                      % BODY).encode() + b"x" * 65536)
        status, _, _ = read_response(sock)  # the answer, then the server's FIN
        assert status == 413
        assert open_sockets(streamd.proc.pid) == before + 1  # lingering, reading on
        deadline = time.time() + 6 * TIMEOUT_MULT
        while open_sockets(streamd.proc.pid) > before:
            assert time.time() < deadline, "the lingering connection was never closed"
            time.sleep(0.1)
    finally:
        sock.close()
