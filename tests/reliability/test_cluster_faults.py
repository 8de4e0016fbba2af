"""A cluster under faults (issue 12 acceptance): three etcd members, one api node, two
coordinators and two data nodes with S3 staging and PostgreSQL tables, under load on both data
nodes for two minutes while data node 1 is killed (-9) and restarted on its data dir, coordinator
1 is killed for good, the etcd leader is killed and restarted, and all of etcd is down for 30 s.
Then every acknowledged record is in PostgreSQL exactly once, the data nodes answered 200
throughout the etcd outage, and the etcd history shows no file or slice put in a state twice."""
import base64
import http.client
import json
import time
import urllib.parse

from backends import Etcd, pg, s3  # noqa: F401 (fixtures)
from conftest import drain, free_port
from helpers import PATH_COLUMNS, Loader
from test_cluster import DATA_ROLES, node, routed_sinks

OUTAGE_S = 30
NAMESPACE = "stream/"


def b64(text):
    return base64.b64encode(text.encode()).decode()


def etcd_post(url, path, body, timeout=10):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def history(url, prefix):
    """Every change under the namespaced prefix from revision 1 to now, in order, as (key,
    value) with value None for a delete, through a watch of the JSON gateway."""
    key = NAMESPACE + prefix
    end = key[:-1] + chr(ord(key[-1]) + 1)
    conn, resp = etcd_post(url, "/v3/kv/range", {"key": b64(key), "range_end": b64(end),
                                                 "count_only": True})
    now = int(json.loads(resp.read())["header"]["revision"])
    conn.close()
    conn, resp = etcd_post(url, "/v3/watch", {"create_request": {
        "key": b64(key), "range_end": b64(end), "start_revision": "1", "progress_notify": True}})
    changes, seen = [], 0
    try:
        while seen < now:
            line = resp.readline()
            assert line, "the watch of %s ended at revision %d of %d" % (prefix, seen, now)
            msg = json.loads(line)
            assert "error" not in msg, msg
            result = msg["result"]
            assert not result.get("compact_revision"), "history compacted: %r" % result
            for ev in result.get("events", []):
                kv = ev["kv"]
                value = (None if ev.get("type") == "DELETE"
                         else json.loads(base64.b64decode(kv["value"])))
                changes.append((base64.b64decode(kv["key"]).decode(), value))
                seen = max(seen, int(kv["mod_revision"]))
            if not result.get("events") and not result.get("created"):
                seen = max(seen, int(result["header"]["revision"]))  # a progress notification
    finally:
        conn.close()
    return changes


def states_entered_twice(changes):
    """(key, state, the puts) of each entity put in one state more than once. A put enters the
    state when the entity did not exist, had another state, or had another <state>At stamp (a
    transition applied again re-stamps it); other puts in the same state (a failed attempt
    recorded, retry fields) update the entity without a transition."""
    last, entered, puts = {}, {}, {}
    for key, value in changes:
        prev = last.pop(key, None)
        if value is None:
            continue
        last[key] = value
        state = value.get("state", "")
        puts.setdefault((key, state), []).append(value)
        stamp = state + "At"
        if prev is None or prev.get("state", "") != state or prev.get(stamp) != value.get(stamp):
            entered[(key, state)] = entered.get((key, state), 0) + 1
    return sorted((k, s, puts[(k, s)]) for (k, s), n in entered.items() if n > 1)


def imports_of(coordinator):
    """How many files the coordinator imported so far (its log lines)."""
    return coordinator.read_stderr().count(" imported into ")


def snapshot(loads):
    with loads[0].lock, loads[1].lock:
        return [(dict(l.statuses), l.errors, len(l.acked)) for l in loads]


def test_cluster_survives_node_coordinator_and_etcd_faults(streamd_factory, pg, s3, figures):
    etcd = Etcd(3)
    try:
        run(streamd_factory, etcd, pg, s3, figures)
    finally:
        etcd.close()


def run(streamd_factory, etcd, pg, s3, figures):
    port1 = free_port()
    d1 = node(streamd_factory, etcd, pg, s3, "data-1", DATA_ROLES,
              ["--set", "source.http.listen=127.0.0.1:%d" % port1])
    d2 = node(streamd_factory, etcd, pg, s3, "data-2", DATA_ROLES)
    coordinators = [node(streamd_factory, etcd, pg, s3, "coordinator-%d" % n,
                         ["storage-coordinator"]) for n in (1, 2)]
    api = node(streamd_factory, etcd, pg, s3, "api-1", ["api"],
               ["--set", "source.http.publicUrl=" + d1.source])
    src = api.create_source("s1")
    api.create_sink("s1", "k1", PATH_COLUMNS, table_id="in.c-faults.table")
    url1 = src["http"]["url"]
    url2 = d2.source + url1[len(d1.source):]
    for url in (url1, url2):
        deadline = time.time() + 10
        while routed_sinks(url) != ["k1"]:
            assert time.time() < deadline, "a data node never routed the sink"
            time.sleep(0.05)
    loads = [Loader(url1, clients=4, prefix="a").start(),
             Loader(url2, clients=4, prefix="b").start()]
    t0 = time.time()
    events = []

    def at(second, what):
        time.sleep(max(0.0, t0 + second - time.time()))
        events.append((round(time.time() - t0, 1), what))

    at(10, "kill -9 data-1")
    with loads[0].lock:
        acked_before_kill = set(loads[0].acked)
    d1.kill()
    at(20, "restart data-1")
    d1.start()
    # the coordinator that imports the sink's files dies; the other one must take the sink over
    at(30, "kill -9 the coordinator importing the sink")
    imports = [imports_of(c) for c in coordinators]
    owner = 0 if imports[0] >= imports[1] else 1
    coordinators[owner].kill()
    events.append((round(time.time() - t0, 1), "killed coordinator-%d (%d imports done)"
                   % (owner + 1, imports[owner])))
    survivor = coordinators[1 - owner]
    survivor_imports = imports_of(survivor)
    at(45, "kill -9 etcd leader")
    member = etcd.kill_leader()
    at(52, "restart etcd " + member)
    etcd.restart(member)
    at(65, "halt every etcd member")
    etcd.halt()
    before = snapshot(loads)
    time.sleep(OUTAGE_S)
    during = snapshot(loads)
    etcd.resume()
    events.append((round(time.time() - t0, 1), "resume every etcd member"))
    at(125, "stop the load")
    for load in loads:
        load.finish()
    outage = [{"statuses": {s: n - b[0].get(s, 0) for s, n in d[0].items() if n - b[0].get(s, 0)},
               "errors": d[1] - b[1], "acked": d[2] - b[2]} for b, d in zip(before, during)]
    acked = loads[0].acked | loads[1].acked
    sent = loads[0].sent | loads[1].sent
    ids, drain_s = drain(pg, "in.c-faults", "table", acked)
    node_of = {v["volumeId"]: v["nodeId"] for v in etcd.range("storage/volume/writer/").values()}
    spans = {}
    for sl in etcd.range("storage/slice/all/").values():
        spans.setdefault(sl["fileOpenedAt"], set()).add(node_of.get(sl["volumeId"]))
    changes = (history(etcd.url.split(",")[0], "storage/file/all/") +
               history(etcd.url.split(",")[0], "storage/slice/all/"))
    twice = states_entered_twice(changes)
    figures.update({
        "acked": len(acked), "sent": len(sent), "rows": len(ids),
        "lost": len(acked - set(ids)), "duplicates": len(ids) - len(set(ids)),
        "phantoms": len(set(ids) - sent),
        "lost_acked_by_data1_before_kill": len(acked_before_kill - set(ids)),
        "lost_by_data_node": {p: sum(1 for i in acked - set(ids) if i[0] == p) for p in "ab"},
        "lost_sample": sorted(acked - set(ids))[:5],
        "kills": {"data_node": 1, "coordinator": 1, "etcd_leader": 1}, "events": events,
        "outage_s": OUTAGE_S, "outage_answers": outage, "drain_s": round(drain_s, 1),
        "entity_puts": len(changes), "states_entered_twice": len(twice),
        "files": len(spans), "files_spanning_both_data_nodes":
            sum(1 for n in spans.values() if {"data-1", "data-2"} <= n),
        "entered_twice": [[k[len(NAMESPACE):], st, len(p)] for k, st, p in twice],
        "survivor_imports_after_kill": imports_of(survivor) - survivor_imports,
        "statuses": [l.statuses for l in loads]})
    assert {i[0] for i in acked} == {"a", "b"}, "a data node acknowledged nothing"
    for o in outage:  # the data path never waited for etcd
        assert set(o["statuses"]) == {200} and o["acked"] > 0 and o["errors"] == 0, outage
    assert figures["survivor_imports_after_kill"] > 0, "no coordinator took the sink over"
    assert acked_before_kill <= set(ids), "records acknowledged by data-1 before its kill lost"
    assert figures["lost"] == 0, figures
    assert figures["duplicates"] == 0, figures
    assert figures["phantoms"] == 0, figures
    assert not twice, json.dumps(twice[:5], indent=1)
    assert figures["files_spanning_both_data_nodes"] > 0, figures  # one file, a slice per node


def test_states_entered_twice_finds_a_transition_applied_again():
    f, s = "stream/storage/file/all/f", "stream/storage/slice/all/s"
    ok = [(f, {"state": "writing"}), (f, {"state": "writing", "retryAttempt": 1}),
          (f, {"state": "closing", "closingAt": "t1"}),
          (f, {"state": "closing", "closingAt": "t1", "retryAttempt": 1}),
          (s, {"state": "writing"}), (s, None)]
    assert states_entered_twice(ok) == []
    again = ok + [(f, {"state": "closing", "closingAt": "t2"})]
    assert [(k, st) for k, st, _ in states_entered_twice(again)] == [(f, "closing")]
    recreated = ok + [(s, {"state": "writing"})]
    assert [(k, st) for k, st, _ in states_entered_twice(recreated)] == [(s, "writing")]
