"""streamd as a cluster on etcd, every role in its own process, as a user runs it: one api node,
one coordinator node and two data nodes (http-source, storage-writer, storage-reader) sharing
nothing but etcd, S3 staging (s3rver behind the signature-checking proxy) and PostgreSQL tables.
Definitions made on the api node reach both data nodes without a restart; records posted to
both data nodes are imported by the coordinator, every acknowledged record exactly once, in files
that span both data nodes (a slice on each)."""
import json
import os
import time

from conftest import TIMEOUT_MULT
from backends import etcd, pg, psql_rows, s3, s3_args  # noqa: F401 (fixtures)
from helpers import PATH_COLUMNS, Loader, assert_loaded_once
from test_backends_combined import wait_psql

DATA_ROLES = ["http-source", "storage-writer", "storage-reader"]


def node(streamd_factory, etcd, pg, s3, node_id, roles, extra=(), env=None):
    args = s3_args(s3.endpoint) + [
        "--set", "etcd.endpoint=" + etcd.url, "--set", "nodeID=" + node_id,
        "--set", "hostname=127.0.0.1",
        "--set", "tables.backend=postgres", "--set", "tables.postgres.url=" + pg["url"]]
    return streamd_factory(args=args + list(extra) + roles, env=env)


def routed_sinks(url):
    """The sinks a data node wrote one probe record to (?verbose=true), or None if not routed."""
    from conftest import http_request
    status, _, body = http_request(url + "?verbose=true", "POST",
                                   json.dumps({"id": "probe", "text": "p"}),
                                   {"Content-Type": "application/json"})
    if status != 200:
        return None
    return sorted(k["sinkId"] for src in json.loads(body)["sources"] for k in src["sinks"])


def test_cluster_of_separate_roles_imports_every_record_once(streamd_factory, etcd, pg, s3):
    d1 = node(streamd_factory, etcd, pg, s3, "data-1", DATA_ROLES)
    d2 = node(streamd_factory, etcd, pg, s3, "data-2", DATA_ROLES)
    node(streamd_factory, etcd, pg, s3, "coordinator-1", ["storage-coordinator"])
    api = node(streamd_factory, etcd, pg, s3, "api-1", ["api"],
               ["--set", "source.http.publicUrl=" + d1.source])
    src = api.create_source("s1")
    api.create_sink("s1", "k1", PATH_COLUMNS, table_id="in.c-cluster.table")
    url1 = src["http"]["url"]
    assert url1.startswith(d1.source)
    url2 = d2.source + url1[len(d1.source):]
    # both data nodes route the new sink without a restart
    for url in (url1, url2):
        deadline = time.time() + 10 * TIMEOUT_MULT
        while routed_sinks(url) != ["k1"]:
            assert time.time() < deadline, "a data node never routed the sink"
            time.sleep(0.05)
    loads = [Loader(url1, clients=4, prefix="a").start(), Loader(url2, clients=4, prefix="b").start()]
    time.sleep(3)
    # a sink created while records flow reaches both data nodes within a second
    api.create_sink("s1", "k2", PATH_COLUMNS, table_id="in.c-cluster.late")
    created = time.time()
    for url in (url1, url2):
        while routed_sinks(url) != ["k1", "k2"]:
            assert time.time() - created < 1.0 * TIMEOUT_MULT, "the new sink took over 1 s"
            time.sleep(0.01)
    time.sleep(2)
    for load in loads:
        load.finish()
    acked = loads[0].acked | loads[1].acked
    sent = loads[0].sent | loads[1].sent
    assert {i[0] for i in acked} == {"a", "b"}, "one data node acknowledged nothing"
    query = 'SELECT * FROM "in.c-cluster"."table" WHERE "id" <> \'probe\''
    wait_psql(pg, query, lambda r: acked <= {row[1] for row in r}, timeout=90)
    time.sleep(2)  # anything imported twice would show now
    assert_loaded_once(psql_rows(pg, query), acked, sent)
    # the late sink got the records acknowledged after it was routed, each once
    late_query = 'SELECT * FROM "in.c-cluster"."late" WHERE "id" <> \'probe\''
    late = [r[1] for r in wait_psql(pg, late_query, lambda r: len(r) > 0)]
    assert len(late) == len(set(late)) and set(late) <= acked
    # one file per sink spans both data nodes: an imported file of k1 has a slice of each
    node_of = {v["volumeId"]: v["nodeId"] for v in etcd.range("storage/volume/writer/").values()}
    files = {}
    for key, sl in etcd.range("storage/slice/all/").items():
        if "/s1/k1/" in key and sl["state"] == "imported":
            files.setdefault(sl["fileOpenedAt"], set()).add(node_of.get(sl["volumeId"]))
    assert any(nodes == {"data-1", "data-2"} for nodes in files.values()), files


def test_data_node_keeps_acknowledging_while_etcd_is_down(streamd_factory, etcd, pg, s3):
    outage = float(os.environ.get("SD_ETCD_OUTAGE_SECONDS", "5"))
    d1 = node(streamd_factory, etcd, pg, s3, "data-1", DATA_ROLES)
    node(streamd_factory, etcd, pg, s3, "coordinator-1", ["storage-coordinator"])
    api = node(streamd_factory, etcd, pg, s3, "api-1", ["api"],
               ["--set", "source.http.publicUrl=" + d1.source])
    src = api.create_source("s1")
    api.create_sink("s1", "k1", PATH_COLUMNS, table_id="in.c-cluster.outage")
    url = src["http"]["url"]
    deadline = time.time() + 10 * TIMEOUT_MULT
    while routed_sinks(url) != ["k1"]:
        assert time.time() < deadline, "the data node never routed the sink"
        time.sleep(0.05)
    load = Loader(url, clients=4, prefix="o").start()
    time.sleep(2)
    etcd.halt()
    try:
        before = sum(load.statuses.values())
        time.sleep(outage)
        during = dict(load.statuses)
        # a load balancer keeps sending to it: etcd is not part of a data node's readiness
        health = d1.request("GET", d1.source + "/health-check")
    finally:
        etcd.resume()
    time.sleep(2)
    load.finish()
    # the data path never waits for etcd: every record of the outage was acknowledged
    assert set(during) == {200} and sum(during.values()) > before, during
    assert "etcd at %s answers again" % etcd.url in d1.read_stderr()  # it did see the outage
    assert health[0] == 200, health
    query = 'SELECT * FROM "in.c-cluster"."outage" WHERE "id" <> \'probe\''
    wait_psql(pg, query, lambda r: load.acked <= {row[1] for row in r}, timeout=90)
    time.sleep(2)
    assert_loaded_once(psql_rows(pg, query), load.acked, load.sent)
