"""streamd with ingestion nodes that have no disks (issue 13): etcd, an api node, a coordinator,
two http-source-only nodes and two writer nodes (storage-writer + storage-reader) that the source
nodes write to over the source -> writer protocol (docs/PROTOCOL.md). Records posted to both
source nodes land exactly once in PostgreSQL; the source nodes write no slice files; each source
node writes its own file in the slice directories of the writer nodes."""
import os
import time

from conftest import TIMEOUT_MULT
from backends import etcd, pg, psql_rows, s3  # noqa: F401 (fixtures)
from helpers import PATH_COLUMNS, Loader, assert_loaded_once
from test_backends_combined import wait_psql
from test_cluster import node, routed_sinks

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
