"""Cluster mode II under faults (issue 13 acceptance): one etcd member, an api node, a
coordinator, two source-only nodes (http-source) and two writer nodes (storage-writer and
storage-reader, each with the node protocol on its own port), S3 staging and PostgreSQL tables.
Clients post to both source nodes for 90 s while writer-1 is killed (-9) at 10 s and restarted on
its data dir and port at 20 s, source-2 is killed (-9) for good at 40 s (its clients then post to
source-1, as a load balancer would send them), and writer-2 is stopped (SIGTERM) at 60 s and
restarted at 70 s. Then every acknowledged record is in PostgreSQL exactly once; a live source
node's clients saw errors only for requests in flight at the writer kill (started at most 2 s
after it) and none at all around the graceful stop; source-1 acknowledged records in every phase."""
import json
import time

from backends import etcd, pg, s3  # noqa: F401 (fixtures)
from conftest import TIMEOUT_MULT, drain, free_port
from helpers import PATH_COLUMNS, Loader
from test_cluster import node, routed_sinks

WRITER_ROLES = ["storage-writer", "storage-reader"]
SOURCE_ROLES = ["http-source"]
CLIENTS = 4  # per source node
KILL_WINDOW_S = 2.0  # a failed request started this long after the writer kill was in flight
SCHEMA, TABLE = "in.c-remote", "table"
# the schedule: seconds after the load started
W1_KILL, W1_RESTART, S2_KILL, W2_STOP, W2_RESTART, END = 10, 20, 40, 60, 70, 90
PHASES = [("warm-up", 0), ("writer-1 killed", W1_KILL), ("writer-1 back", W1_RESTART),
          ("source-2 killed", S2_KILL), ("writer-2 stopped", W2_STOP),
          ("writer-2 back", W2_RESTART)]


def writer(streamd_factory, etcd, pg, s3, node_id):
    """A writer node; node() gives it hostname=127.0.0.1, the address its sources dial."""
    listen = "storage.level.local.writer.network.listen=127.0.0.1:%d" % free_port()
    return node(streamd_factory, etcd, pg, s3, node_id, WRITER_ROLES, ["--set", listen])


def phase_of(t, t0):
    return [name for name, start in PHASES if t - t0 >= start][-1] if t >= t0 else PHASES[0][0]


def failures_per_phase(failures, t0):
    counts = {name: 0 for name, _ in PHASES}
    for start, _, _ in failures:
        counts[phase_of(start, t0)] += 1
    return counts


def failure_times(failures, t0):
    """{"<start second, 0.1 s steps>:<status or none>": count}: when the failures came."""
    counts = {}
    for start, _, status in failures:
        key = "%.1f:%s" % (start - t0, status or "none")
        counts[key] = counts.get(key, 0) + 1
    return counts


def around(failure, kill_at):
    """Whether a failed request counts as one in flight at a kill: it ended after the kill and
    started at most KILL_WINDOW_S after it (the time a source node may take to notice)."""
    start, end, _ = failure
    return end >= kill_at and start <= kill_at + KILL_WINDOW_S


def test_source_and_writer_nodes_survive_kills_and_a_graceful_stop(streamd_factory, etcd, pg, s3,
                                                                   figures):
    writers = [writer(streamd_factory, etcd, pg, s3, "writer-%d" % n) for n in (1, 2)]
    sources = [node(streamd_factory, etcd, pg, s3, "source-%d" % n, SOURCE_ROLES) for n in (1, 2)]
    node(streamd_factory, etcd, pg, s3, "coordinator-1", ["storage-coordinator"])
    api = node(streamd_factory, etcd, pg, s3, "api-1", ["api"],
               ["--set", "source.http.publicUrl=" + sources[0].source])
    src = api.create_source("s1")
    api.create_sink("s1", "k1", PATH_COLUMNS, table_id=SCHEMA + "." + TABLE)
    url1 = src["http"]["url"]
    url2 = sources[1].source + url1[len(sources[0].source):]
    for url in (url1, url2):
        deadline = time.time() + 30 * TIMEOUT_MULT
        while routed_sinks(url) != ["k1"]:
            assert time.time() < deadline, "a source node never wrote to the sink: " + url
            time.sleep(0.1)
    loads = {"a": Loader(url1, clients=CLIENTS, prefix="a").start(),
             "b": Loader(url2, clients=CLIENTS, prefix="b").start()}
    t0 = time.time()
    events, acked_at = [], []

    def at(second, what):
        time.sleep(max(0.0, t0 + second - time.time()))
        now = time.time()
        events.append((round(now - t0, 1), what))
        acked_at.append(sum(len(l.acked) for k, l in loads.items() if k != "b"))
        return now

    w1_kill = at(W1_KILL, "kill -9 writer-1")
    writers[0].kill()
    at(W1_RESTART, "restart writer-1")
    writers[0].start()
    s2_kill = at(S2_KILL, "kill -9 source-2; its clients move to source-1")
    sources[1].kill()
    loads["b"].finish()
    loads["c"] = Loader(url1, clients=CLIENTS, prefix="c").start()
    at(W2_STOP, "SIGTERM writer-2")
    stopping = time.time()
    w2_rc = writers[1].stop()
    events.append((round(time.time() - t0, 1), "writer-2 exited with %s" % w2_rc))
    w2_stop_s = time.time() - stopping
    at(W2_RESTART, "restart writer-2")
    writers[1].start()
    at(END, "stop the load")
    for load in loads.values():
        load.finish()

    acked = set().union(*(l.acked for l in loads.values()))
    sent = set().union(*(l.sent for l in loads.values()))
    ids, drain_s = drain(pg, SCHEMA, TABLE, acked, timeout=180)
    # source-1's clients (a, and c after the move) may fail only in flight at the writer kill;
    # source-2's the same until its own kill, after which every request of theirs fails
    unexpected = {k: [f for f in l.failures if not around(f, w1_kill)
                      and not (k == "b" and f[1] >= s2_kill)] for k, l in loads.items()}
    node_of = {v["volumeId"]: v["nodeId"] for v in etcd.range("storage/volume/writer/").values()}
    slices_by_writer, files = {}, {}
    for sl in etcd.range("storage/slice/all/").values():
        writer_id = node_of.get(sl.get("volumeId"), "?")
        slices_by_writer[writer_id] = slices_by_writer.get(writer_id, 0) + 1
        files.setdefault(sl.get("fileOpenedAt"), set()).add(writer_id)
    acked_per_phase = dict(zip([name for name, _ in PHASES],
                               [b - a for a, b in zip([0] + acked_at, acked_at)]))
    figures.update({
        "acked": len(acked), "sent": len(sent), "rows": len(ids),
        "lost": len(acked - set(ids)), "duplicates": len(ids) - len(set(ids)),
        "phantoms": len(set(ids) - sent), "lost_sample": sorted(acked - set(ids))[:5],
        "acked_by_clients": {k: len(l.acked) for k, l in loads.items()},
        "errors_per_phase": {k: failures_per_phase(l.failures, t0) for k, l in loads.items()},
        "errors_in_flight_at_writer_kill": {  # started before it, answered after it
            k: sum(1 for s, e, _ in l.failures if s < w1_kill <= e) for k, l in loads.items()},
        "errors_around_writer_kill": {
            k: sum(1 for f in l.failures if around(f, w1_kill)) for k, l in loads.items()},
        "unexpected_errors": {k: len(v) for k, v in unexpected.items()},
        "unexpected_error_times": {k: failure_times(v, t0) for k, v in unexpected.items()},
        "source1_acked_per_phase": acked_per_phase,
        "writer2_graceful_stop_s": round(w2_stop_s, 1), "writer2_exit_code": w2_rc,
        "drain_s": round(drain_s, 1), "files": len(files),
        "files_spanning_both_writers": sum(1 for n in files.values()
                                           if {"writer-1", "writer-2"} <= n),
        "slices_by_writer": slices_by_writer, "events": events,
        "load_start_utc": time.strftime("%H:%M:%S", time.gmtime(t0)) + ".%03d" % (t0 % 1 * 1000),
        "statuses": {k: l.statuses for k, l in loads.items()}})
    assert {i[0] for i in acked} == {"a", "b", "c"}, "some clients got no record acknowledged"
    assert w2_rc == 0, "writer-2 exited with %s after SIGTERM" % w2_rc
    assert figures["lost"] == 0, figures
    assert figures["duplicates"] == 0, figures
    assert figures["phantoms"] == 0, figures
    # this includes 0 errors of source-1's clients around the graceful stop of writer-2
    assert not any(unexpected.values()), json.dumps(figures["unexpected_error_times"])
    assert all(n > 0 for n in acked_per_phase.values()), acked_per_phase  # failover, no stall
    assert figures["files_spanning_both_writers"] > 0, figures  # slices over both writers


def test_failures_are_counted_by_phase_and_matched_to_the_kill():
    t0 = 1000.0
    kill = t0 + W1_KILL
    failures = [(kill - 0.5, kill + 0.1, None), (kill + 1.9, kill + 1.95, 503),
                (kill + 2.5, kill + 2.6, 503), (kill - 3.0, kill - 2.9, 503)]
    assert [around(f, kill) for f in failures] == [True, True, False, False]
    assert failures_per_phase(failures, t0) == {
        "warm-up": 2, "writer-1 killed": 2, "writer-1 back": 0, "source-2 killed": 0,
        "writer-2 stopped": 0, "writer-2 back": 0}
    assert failure_times(failures[:2], t0) == {"9.5:none": 1, "11.9:503": 1}
