"""The cost of a sink (issue 9, item 8): idle sinks use no thread and no disk reservation of
their own, and a small sink's next slice reserves a share of its last slice, not the static
100 MB (storage.level.local.writer.allocation.*)."""
import os
import re
import time

from conftest import TIMEOUT_MULT
from helpers import PATH_COLUMNS

SOURCES = 2
SINKS_PER_SOURCE = 100  # the reference's limit of sinks per source
SINKS = SOURCES * SINKS_PER_SOURCE
STATIC = 8 << 20  # smaller than the default 100MB to keep the shared test disk free
J = {"Content-Type": "application/json"}


def threads(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))


def reserved_bytes(data_dir):
    """Disk blocks held by slice files, preallocated space beyond their end included (files
    and directories removed after their upload meanwhile are skipped)."""
    total = 0
    for root, _, names in os.walk(os.path.join(data_dir, "volumes")):
        for name in names:
            if "slice-" in name:
                try:
                    total += os.stat(os.path.join(root, name)).st_blocks * 512
                except FileNotFoundError:
                    pass
    return total


def wait_rotations(s, count, timeout=90):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while True:
        rotated = set(re.findall(r"sink (\S+) rotated to slice", s.read_stderr()))
        if len(rotated) >= count:
            return
        assert time.time() < deadline, "only %d of %d sinks rotated" % (len(rotated), count)
        time.sleep(0.2)


def test_idle_sinks_cost_no_thread_and_little_disk(streamd_factory):
    s = streamd_factory(args=[
        "--set", "storage.level.local.writer.allocation.enabled=true",
        "--set", "storage.level.local.writer.allocation.static=%d" % STATIC,
        "--set", "storage.level.staging.upload.minInterval=1s",
        "--set", "storage.level.staging.upload.trigger.count=1",
        "--set", "storage.level.staging.operator.sliceRotationCheckInterval=100ms"])
    pid = s.proc.pid
    baseline = threads(pid)
    urls = []
    for i in range(SOURCES):
        urls.append(s.create_source("src%d" % i)["http"]["url"])
        for k in range(SINKS_PER_SOURCE):
            s.create_sink("src%d" % i, "k%d" % k, PATH_COLUMNS)

    # Idle: neither a thread nor a reservation per sink.
    idle_threads = threads(pid)
    assert idle_threads < 64, "%d threads for %d idle sinks (%d before)" % (
        idle_threads, SINKS, baseline)
    assert reserved_bytes(s.data_dir) < SINKS * STATIC // 100

    # One tiny record per sink (a source fans out to its sinks), then every sink rotates.
    for url in urls:
        assert s.request("POST", url, '{"id": "a", "text": "first"}', J)[0] == 200
    wait_rotations(s, SINKS)
    # The next slices get one record each: they reserve 110 % of the tiny last slice.
    for url in urls:
        assert s.request("POST", url, '{"id": "b", "text": "second"}', J)[0] == 200
    reserved = reserved_bytes(s.data_dir)
    assert reserved < SINKS * STATIC // 100, "%d bytes reserved by %d small sinks" % (
        reserved, SINKS)
    assert threads(pid) < 64
