"""Hostile clients and tenants (RELIABILITY.md §4 (j)), at the acceptance scale of issue 9:
10,000 idle connections against RLIMIT_NOFILE 1024, a template that builds a huge manifest,
four clients hammering limit-hitting templates, and 1,000 idle sinks on one server. Each test
records its figures in results/<test>.json and asserts the pass bars."""
import os
import resource
import shutil
import socket
import statistics
import threading
import time
import urllib.parse

import pytest

from conftest import http_request

PATH_COLUMNS = [{"type": "path", "name": "id", "path": "id", "rawString": True},
                {"type": "body", "name": "body"}]
NESTED_MANIFEST = "std.manifestJson(std.foldl(function(acc, i) [acc], std.range(1, 20000), []))"
# Stays within every limit, but near them: ~10 ms of one core per column.
HEAVY = "std.length(std.join(',', [std.toString(i) for i in std.range(1, 100000)]))"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def template_columns(content, n=1):
    return [{"type": "path", "name": "id", "path": "id", "rawString": True}] + [
        {"type": "template", "name": "t%d" % i,
         "template": {"language": "jsonnet", "content": content}} for i in range(n)]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid, key):
    """A numeric field of /proc/PID/status (VmHWM and VmRSS in KiB, Threads)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def source_url(sd, source_id):
    status, src = sd.api_call("GET", "/v1/branches/default/sources/" + source_id)
    assert status == 200, (status, src)
    return src["http"]["url"]


def post_record(url, rid, timeout=30):
    t0 = time.monotonic()
    status, _, body = http_request(url, "POST", {"id": rid}, timeout=timeout)
    return status, time.monotonic() - t0, body


class Canary:
    """One client posting valid records to url one after another; keeps every latency."""

    def __init__(self, url):
        self.url, self.latencies, self.statuses = url, [], {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        n = 0
        while not self.stop.is_set():
            status, elapsed, _ = post_record(self.url, "canary-%d" % n)
            n += 1
            self.latencies.append(elapsed)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            time.sleep(0.005)

    def start(self):
        self.thread.start()
        return self

    def finish(self):
        self.stop.set()
        self.thread.join(60)
        lat = sorted(self.latencies)
        return {"requests": len(lat), "statuses": self.statuses,
                "median_ms": round(statistics.median(lat) * 1000, 2),
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
                "max_ms": round(lat[-1] * 1000, 2)}


def test_descriptor_exhaustion_leaves_every_port_working(streamd_factory, figures):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 10_500:
        pytest.skip("the test client needs 10,500 descriptors (hard limit %d)" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sd = streamd_factory(
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    sd.create_source("canary")
    sd.create_sink("canary", "k", PATH_COLUMNS, table_id="in.c-b.canary")
    url = source_url(sd, "canary")
    u = urllib.parse.urlsplit(sd.source)
    idle, refused = [], 0
    try:
        for _ in range(10_000):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect_ex((u.hostname, u.port))
                idle.append(s)
            except OSError:
                refused += 1
                s.close()
        time.sleep(1)
        for s in idle:
            try:
                s.send(b"POST /x HTTP/1.1\r\n")
            except OSError:
                pass
        cpu0, t0 = cpu_seconds(sd.proc.pid), time.monotonic()
        api_latencies = []
        for _ in range(5):
            a0 = time.monotonic()
            status, _, _ = http_request(sd.api + "/v1/branches/default/sources", "GET",
                                        headers={"X-StorageApi-Token": sd.token}, timeout=10)
            api_latencies.append(time.monotonic() - a0)
            assert status == 200
            m0 = time.monotonic()
            status, _, _ = http_request(sd.metrics + "/metrics", timeout=10)
            api_latencies.append(time.monotonic() - m0)
            assert status == 200
            time.sleep(1)
        core_share = (cpu_seconds(sd.proc.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        for s in idle:
            s.close()
    time.sleep(1)
    status, elapsed, body = post_record(url, "after-flood", timeout=10)
    figures.update({"idle_connections": len(idle), "connect_errors": refused,
                    "server_core_share": round(core_share, 3),
                    "api_max_s": round(max(api_latencies), 3),
                    "data_status_1s_after": status, "data_latency_s": round(elapsed, 3),
                    "threads": proc_status(sd.proc.pid, "Threads")})
    assert core_share < 0.20, figures
    assert max(api_latencies) < 2.0, figures
    assert status == 200, (status, body)


def test_nested_manifest_template_is_bounded(streamd_factory, figures):
    sd = streamd_factory()
    sd.create_source("evil")
    sd.create_sink("evil", "t", template_columns(NESTED_MANIFEST), table_id="in.c-b.evil")
    sd.create_source("canary")
    sd.create_sink("canary", "k", PATH_COLUMNS, table_id="in.c-b.canary")
    evil, canary = source_url(sd, "evil"), Canary(source_url(sd, "canary")).start()
    time.sleep(1)
    results = []
    for n in range(5):
        results.append(post_record(evil + "?verbose=true", "evil-%d" % n))
    time.sleep(1)
    c = canary.finish()
    hwm_mib = proc_status(sd.proc.pid, "VmHWM") / 1024
    figures.update({"evil_statuses": [r[0] for r in results],
                    "evil_max_s": round(max(r[1] for r in results), 3),
                    "peak_rss_mib": round(hwm_mib, 1), "canary": c})
    assert all(400 <= r[0] < 600 for r in results), results
    assert max(r[1] for r in results) < 2.0, figures
    assert hwm_mib < 256, figures
    assert c["p99_ms"] < 200 and set(c["statuses"]) == {200}, figures


def test_template_flood_leaves_other_sources_fast(streamd_factory, figures):
    sd = streamd_factory()
    sd.create_source("evil")
    sd.create_sink("evil", "t", template_columns(HEAVY, 8), table_id="in.c-b.evil")
    sd.create_source("canary")
    sd.create_sink("canary", "k", PATH_COLUMNS, table_id="in.c-b.canary")
    evil = source_url(sd, "evil")
    baseline = Canary(source_url(sd, "canary")).start()
    time.sleep(3)
    base = baseline.finish()
    stop, evil_done, evil_times = threading.Event(), [], []

    def flood(n):
        while not stop.is_set():
            status, elapsed, _ = post_record(evil, "evil-%d" % n)
            evil_done.append(status)
            evil_times.append(elapsed)

    threads = [threading.Thread(target=flood, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    canary = Canary(source_url(sd, "canary")).start()
    time.sleep(10)
    c = canary.finish()
    stop.set()
    for t in threads:
        t.join(60)
    figures.update({"baseline": base, "under_flood": c, "evil_requests": len(evil_done),
                    "evil_statuses": sorted(set(evil_done)),
                    "evil_median_ms": round(statistics.median(evil_times) * 1000, 1)})
    assert figures["evil_median_ms"] >= 68, "the flood is lighter than the attack: %r" % figures
    assert c["median_ms"] < 20 and set(c["statuses"]) == {200}, figures


def test_idle_sinks_cost_little(streamd_factory, figures):
    sd = streamd_factory(args=["--set", "storage.level.local.writer.allocation.enabled=true"])
    t0 = time.monotonic()
    for s in range(10):
        sd.create_source("src%d" % s)
        tasks = []
        for k in range(100):
            body = {"sinkId": "k%d" % k, "name": "k%d" % k, "type": "table",
                    "table": {"type": "keboola", "tableId": "in.c-b.idle",
                              "mapping": {"columns": PATH_COLUMNS}}}
            status, task = sd.api_call("POST", "/v1/branches/default/sources/src%d/sinks" % s, body)
            assert status == 202, (status, task)
            tasks.append(task)
        for task in tasks:
            assert sd.wait_task(task, timeout=300)["status"] == "success"
    created_s = time.monotonic() - t0
    time.sleep(2)
    reserved = 0
    for root, _, files in os.walk(os.path.join(sd.data_dir, "volumes")):
        for name in files:
            reserved += os.stat(os.path.join(root, name)).st_blocks * 512
    threads = proc_status(sd.proc.pid, "Threads")
    figures.update({"sinks": 1000, "threads": threads, "reserved_mib": round(reserved / 2**20, 1),
                    "rss_mib": round(proc_status(sd.proc.pid, "VmRSS") / 1024, 1),
                    "fds": len(os.listdir("/proc/%d/fd" % sd.proc.pid)),
                    "create_s": round(created_s, 1)})
    # Reservations of a failing run can be tens of GB: give the disk back at once.
    assert sd.stop() == 0
    shutil.rmtree(sd.data_dir)
    assert threads < 64, figures
    assert reserved < 2**30, figures
