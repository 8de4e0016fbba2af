"""streamd with ingestion nodes that have no disks (issue 13): etcd, an api node, a coordinator,
two http-source-only nodes and two writer nodes (storage-writer + storage-reader) that the source
nodes write to over the source -> writer protocol (docs/PROTOCOL.md). Records posted to both
source nodes land exactly once in PostgreSQL; the source nodes write no slice files; each source
node writes its own file in the slice directories of the writer nodes."""
import json
import os
import socket
import struct
import time

from conftest import TIMEOUT_MULT, SyncHold, http_request
from backends import etcd, pg, psql_rows, s3  # noqa: F401 (fixtures)
from helpers import PATH_COLUMNS, Loader, assert_loaded_once
from test_backends_combined import wait_psql
from test_cluster import node, routed_sinks
from test_sync_hold import post_in_thread, wait_slice_sync_held

WRITER_ROLES = ["storage-writer", "storage-reader"]


def slice_files(root):
    """The names of the slice files (hidden while written) under root."""
    return [n for _, _, names in os.walk(root) for n in names if "slice-" in n]


def writer(streamd_factory, etcd, pg, s3, node_id, extra=(), env=None):
    return node(streamd_factory, etcd, pg, s3, node_id, WRITER_ROLES,
                ["--set", "storage.level.local.writer.network.listen=127.0.0.1:0"] + list(extra),
                env=env)


def cluster(streamd_factory, etcd, pg, s3, table, writer_env=None):
    """Two writers, a coordinator, two source-only nodes, an api node, a source and a sink;
    returns (writers, sources, the two source nodes' URLs of the source)."""
    writers = [writer(streamd_factory, etcd, pg, s3, "writer-%d" % i, env=writer_env)
               for i in (1, 2)]
    node(streamd_factory, etcd, pg, s3, "coordinator-1", ["storage-coordinator"])
    sources = [node(streamd_factory, etcd, pg, s3, "source-%d" % i, ["http-source"])
               for i in (1, 2)]
    api = node(streamd_factory, etcd, pg, s3, "api-1", ["api"],
               ["--set", "source.http.publicUrl=" + sources[0].source])
    src = api.create_source("s1")
    api.create_sink("s1", "k1", PATH_COLUMNS, table_id=table)
    url1 = src["http"]["url"]
    urls = [url1, sources[1].source + url1[len(sources[0].source):]]
    for url in urls:
        deadline = time.time() + 10 * TIMEOUT_MULT
        while routed_sinks(url) != ["k1"]:
            assert time.time() < deadline, "a source node never routed the sink"
            time.sleep(0.05)
    return writers, sources, urls


def test_source_nodes_write_through_writer_nodes_exactly_once(streamd_factory, etcd, pg, s3):
    writers, sources, urls = cluster(streamd_factory, etcd, pg, s3, "in.c-remote.table")
    # the writers announce where source nodes reach them
    addresses = {v["nodeId"]: v.get("nodeAddress")
                 for v in etcd.range("storage/volume/writer/").values()}
    assert set(addresses) == {"writer-1", "writer-2"}, addresses
    assert all(a and a.startswith("127.0.0.1:") and not a.endswith(":0")
               for a in addresses.values()), addresses
    loads = [Loader(urls[0], clients=4, prefix="a").start(),
             Loader(urls[1], clients=4, prefix="b").start()]
    time.sleep(2)
    # while they write: each source node has its own file in the slice dirs of both writers,
    # and no slice file of its own
    for w in writers:
        names = {n.lstrip(".") for n in slice_files(w.data_dir)}
        assert {"slice-source-1.csv.gz", "slice-source-2.csv.gz"} <= names, names
    for s in sources:
        assert slice_files(s.data_dir) == []
    time.sleep(2)
    for load in loads:
        load.finish()
    acked = loads[0].acked | loads[1].acked
    sent = loads[0].sent | loads[1].sent
    assert {i[0] for i in acked} == {"a", "b"}, "a source node acknowledged nothing"
    assert all(set(load.statuses) == {200} for load in loads), [l.statuses for l in loads]
    query = 'SELECT * FROM "in.c-remote"."table" WHERE "id" <> \'probe\''
    wait_psql(pg, query, lambda r: acked <= {row[1] for row in r}, timeout=90)
    time.sleep(2)  # anything imported twice would show now
    assert_loaded_once(psql_rows(pg, query), acked, sent)


def frame(ftype, payload=b"", file=0, flags=0):
    return struct.pack("<IBBHI", len(payload), ftype, flags, 0, file) + payload


def read_frames(sock, timeout=2):
    """Every frame the peer sends until it closes the connection or timeout passes:
    [(type, file, payload)], and whether it closed."""
    deadline = time.time() + timeout
    data, closed = b"", False
    try:
        while time.time() < deadline:
            sock.settimeout(max(0.01, deadline - time.time()))
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    frames = []
    while len(data) >= 12:
        length, ftype, _, _, file = struct.unpack("<IBBHI", data[:12])
        frames.append((ftype, file, data[12:12 + length]))
        data = data[12 + length:]
    return frames, closed


def hello(node_id=b"intruder", vmin=1, vmax=1):
    return frame(1, struct.pack("<HHH", vmin, vmax, len(node_id)) + node_id)


def error_code(payload):
    return struct.unpack("<i", payload[:4])[0]


def test_writer_refuses_hostile_frames_and_keeps_serving(streamd_factory, etcd, pg, s3):
    """The attacks on a writer's port: bytes that are not frames, a frame announcing 2 GiB,
    frames before the handshake, an unknown version, OPEN of paths and of another writer's slice,
    appends to files never opened. Each gets ERROR and, where the connection cannot go on, its
    close; the writer keeps acknowledging through the source nodes meanwhile."""
    writers, sources, urls = cluster(streamd_factory, etcd, pg, s3, "in.c-remote.hostile")
    vols = etcd.range("storage/volume/writer/").values()
    address = {v["nodeId"]: v["nodeAddress"] for v in vols}
    volume_of = {v["nodeId"]: v["volumeId"] for v in vols}
    host, port = address["writer-1"].rsplit(":", 1)
    load = Loader(urls[0], clients=2, prefix="h").start()

    def attack(data):
        s = socket.create_connection((host, int(port)))
        s.sendall(data)
        try:
            return read_frames(s)
        finally:
            s.close()

    # not frames: an HTTP request (its first bytes decode as an absurd length)
    frames, closed = attack(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert closed
    # a header announcing 2 GiB: refused from the header alone
    frames, closed = attack(struct.pack("<IBBHI", 2**31, 5, 0, 0, 1))
    assert closed
    # an APPEND before the handshake
    frames, closed = attack(frame(5, struct.pack("<QI", 1, 1) + b"a\n", file=1, flags=1))
    assert closed and frames and frames[0][0] == 13 and error_code(frames[0][2]) == -1, frames
    # no common version
    frames, closed = attack(hello(vmin=2, vmax=3))
    assert closed and [(f[0], error_code(f[2])) for f in frames] == [(13, -4)], frames
    # after a handshake: OPEN of a path, of the other writer's slice, APPEND to an unknown file
    other = [k.split("storage/slice/level/local/", 1)[1]
             for k, sl in etcd.range("storage/slice/level/local/").items()
             if sl["volumeId"] == volume_of["writer-2"] and sl["state"] == "writing"]
    assert other, "no writing slice on writer-2"
    opens = b"".join(frame(3, struct.pack("<H", len(k)) + k + b"{}", file=i + 1)
                     for i, k in enumerate([b"../../../../etc/passwd", other[0].encode()]))
    frames, closed = attack(hello() + opens + frame(5, struct.pack("<QI", 1, 1) + b"a\n", file=9,
                                                    flags=1))
    assert not closed, ("a refused OPEN or an unknown file must not end the connection", frames)
    assert frames[0][0] == 2, frames  # WELCOME
    errors = {(f[1], error_code(f[2])) for f in frames[1:] if f[0] == 13}
    assert errors == {(1, -3), (2, -3), (9, -2)}, frames
    # a record whose CSV row is larger than 1 MiB (quotes double in CSV) goes through whole
    # (a row is at most 1.5 MiB, source.http's mapping limit: 250k quotes make 1.25 MB)
    big = json.dumps({"id": "big", "text": '"' * 250000})
    status, _, body = http_request(urls[0], "POST", big, {"Content-Type": "application/json"})
    assert status == 200, (status, body[:600])
    # the writer went on serving the source nodes throughout
    time.sleep(1)
    load.finish()
    assert set(load.statuses) == {200} and load.acked, load.statuses
    assert writers[0].proc.poll() is None
    assert "intruder" not in "".join(os.listdir(os.path.join(writers[0].data_dir)))


def test_source_answers_only_after_the_writer_sync(streamd_factory, etcd, pg, s3, tmp_path):
    """Both writers hold their fdatasync (LD_PRELOAD shim): a record posted to a source-only node
    is not answered while its writer's sync is held, and is answered 200 once it is done."""
    hold = SyncHold(tmp_path)
    writers, sources, urls = cluster(streamd_factory, etcd, pg, s3, "in.c-remote.held",
                                     writer_env=hold.env())
    hold.engage()
    try:
        t, result = post_in_thread(urls[1], "held-1")
        held = wait_slice_sync_held(hold)
        assert any("slice-source-2" in line for line in held), held  # the writer's sync of it
        t.join(1.0)  # a second with the writer's sync held: no answer may come
        assert not result, "answered while the writer's sync was held: %r" % result
    finally:
        hold.release()
    t.join(5 * TIMEOUT_MULT)
    assert "answer" in result, "no answer within 5 s of the sync: %r" % result
    assert result["answer"][0] == 200, result
