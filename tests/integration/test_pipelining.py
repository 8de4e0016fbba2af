"""HTTP/1.1 pipelining on the data endpoint: requests sent back to back on one connection, while
the ones before them wait for their sync (the loop keeps reading the connection meanwhile), are
answered in order, and each lands with its own body, also when a template worker maps it."""
import json
import socket
import time

from conftest import TIMEOUT_MULT
from helpers import FAST, table_rows

# More than a template worker's share of the loop's budget: such records map on the workers.
SLOW = "std.foldl(function(a, b) a + b, std.range(1, 150000), 0)"


def pipelined(url, bodies):
    """Sends one POST per body on one connection in a single write; returns the statuses."""
    host_port, path = url.split("//", 1)[1].split("/", 1)
    host, port = host_port.split(":")
    burst = b"".join(
        b"POST /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), host_port.encode(), len(b), b)
        for b in bodies)
    statuses, buf = [], b""
    with socket.create_connection((host, int(port)), timeout=30 * TIMEOUT_MULT) as sock:
        sock.sendall(burst)
        while len(statuses) < len(bodies):
            chunk = sock.recv(65536)
            assert chunk, "closed after %d answers" % len(statuses)
            buf += chunk
            while b"\r\n\r\n" in buf:
                head, rest = buf.split(b"\r\n\r\n", 1)
                length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")][0])
                if len(rest) < length:
                    break
                statuses.append(int(head.split(b" ")[1]))
                buf = rest[length:]
    return statuses


def wait_table(s, table, n):
    deadline = time.time() + 60 * TIMEOUT_MULT
    while len(table_rows(s.data_dir, table)) < n:
        assert time.time() < deadline, "rows never arrived"
        time.sleep(0.2)
    time.sleep(1)  # nothing more arrives
    return table_rows(s.data_dir, table)


def test_pipelined_records_land_with_their_own_bodies(streamd_factory):
    s = streamd_factory(args=FAST)
    url = s.create_source("s1")["http"]["url"]
    s.create_sink("s1", "k1", [{"type": "path", "name": "id", "path": "id"},
                               {"type": "body", "name": "body"}], table_id="in.c-bucket.piped")
    # 150 records of 2 KiB (300 KiB in one write: more than the loop reads ahead while busy)
    bodies = [json.dumps({"id": n, "pad": chr(97 + n % 26) * 2000}).encode() for n in range(150)]
    assert pipelined(url, bodies) == [200] * len(bodies)
    rows = wait_table(s, "in.c-bucket.piped", len(bodies))
    assert sorted(rows, key=lambda r: int(r[0])) == [(str(n), b.decode()) for n, b in enumerate(bodies)]


def test_pipelined_records_mapped_on_the_workers_keep_their_bodies(streamd_factory):
    s = streamd_factory(args=FAST)
    url = s.create_source("s1")["http"]["url"]
    s.create_sink("s1", "k1", [
        {"type": "body", "name": "body"},
        {"type": "template", "name": "t", "rawString": True,
         "template": {"language": "jsonnet", "content": SLOW}}], table_id="in.c-bucket.pipedtpl")
    # 96 KiB bodies: more than the loop reads ahead, so the socket's input grows (and may move)
    # while the workers map the records from their requests' memory
    bodies = [json.dumps({"id": n, "pad": chr(97 + n) * 96000}).encode() for n in range(6)]
    assert pipelined(url, bodies) == [200] * len(bodies)
    rows = wait_table(s, "in.c-bucket.pipedtpl", len(bodies))
    assert sorted(r[0] for r in rows) == sorted(b.decode() for b in bodies)
    assert {r[1] for r in rows} == {"11250075000"}
