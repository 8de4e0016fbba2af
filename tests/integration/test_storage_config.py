"""Storage keys that change what the storage writer and operator do: the disk cleanup of
orphaned slice directories (storage.diskCleanup.*), volume assignment by preferred types
(storage.level.local.volume.assignment.*) and the metadata cleanup of archived and expired
active files (storage.metadataCleanup.*, run under libfaketime to age the files)."""
import glob
import os
import re
import sqlite3
import time

import pytest

from conftest import TIMEOUT_MULT
from helpers import FAST, PATH_COLUMNS
from test_settings_stats import (IMPORT_COUNT, STATS_ARGS, TABLE, UPLOAD_COUNT, get_files,
                                 get_total, level_count, make_pipeline, patch_settings,
                                 post_records, wait_for)

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
ORPHAN = os.path.join("1", "2", "src", "snk", "2024-01-01T10-00-00-000Z",
                      "2024-01-01T10-00-01-000Z")


def make_orphan(volume):
    d = os.path.join(volume, ORPHAN)
    os.makedirs(d)
    with open(os.path.join(d, "slice-x.csv.gz"), "wb") as f:
        f.write(b"left by a crash")
    return d


def wait_until(predicate, timeout=20):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while not predicate():
        assert time.time() < deadline, "condition not reached"
        time.sleep(0.1)


def test_disk_cleanup_removes_orphaned_slice_dirs(streamd_factory):
    s = streamd_factory(start=False, args=STATS_ARGS)
    volume = os.path.join(s.data_dir, "volumes", "default", "1")
    orphan = make_orphan(volume)
    s.start()
    # the first pass runs at start; empty parents go too, the volume's own files stay
    wait_until(lambda: not os.path.exists(orphan))
    assert not os.path.exists(os.path.join(volume, "1"))
    assert os.path.exists(os.path.join(volume, "volume-id"))
    # a slice being written is named by its entity and kept
    url = make_pipeline(s)
    post_records(s, url, ["a"], threads=1)
    live = [d for d in glob.glob(os.path.join(volume, "*", "*", "*", "*", "*", "*"))]
    assert len(live) == 1, live
    orphan = make_orphan(volume)
    s.restart()
    wait_until(lambda: not os.path.exists(orphan))
    assert os.path.isdir(live[0])
    assert "disk cleanup removed 1 directories" in s.read_stderr()


def test_disk_cleanup_disabled_keeps_dirs(streamd_factory):
    s = streamd_factory(start=False, args=["--set", "storage.diskCleanup.enabled=false"])
    orphan = make_orphan(os.path.join(s.data_dir, "volumes", "default", "1"))
    s.start()
    wait_until(lambda: "local storage disk cleanup is disabled" in s.read_stderr())
    time.sleep(0.5)
    assert os.path.isdir(orphan)


def test_volume_assignment_prefers_types(streamd_factory):
    # five volumes, two of the preferred type: a file's slices take turns on the two
    s = streamd_factory(start=False, args=FAST + [
        "--set", "storage.level.local.volume.assignment.count=2",
        "--set", "storage.level.local.volume.assignment.preferredTypes=hdd,nvme",
        "--set", "storage.level.target.import.trigger.count=100000"])
    for name in ("ssd/1", "ssd/2", "ssd/3", "hdd/1", "hdd/2"):
        os.makedirs(os.path.join(s.data_dir, "volumes", name))
    s.start()
    types = {}
    for path in glob.glob(os.path.join(s.data_dir, "volumes", "*", "*", "volume-id")):
        with open(path) as f:
            types[f.read().strip()] = path.split(os.sep)[-3]
    assert sorted(types.values()) == ["hdd", "hdd", "ssd", "ssd", "ssd"]
    url = make_pipeline(s)
    deadline = time.time() + 30 * TIMEOUT_MULT
    used = []
    while len(used) < 6:
        assert time.time() < deadline, used
        post_records(s, url, ["r%d" % len(used)], threads=1)
        time.sleep(0.3)
        keys = re.findall(r"(?:writes|rotated to) slice (\S+)", s.read_stderr())
        used = [k.split("/")[5] for k in keys]
    assert {types[v] for v in used} == {"hdd"}, used
    assert len(set(used)) == 2, used  # both assigned volumes, in turns
    assert all(a != b for a, b in zip(used[1:], used[2:])), used


@pytest.mark.skipif(bool(os.environ.get("STREAMD_SANITIZED")),
                    reason="libfaketime and the sanitizer runtime both wrap the clock calls")
def test_metadata_cleanup_deletes_archived_and_expired_active_files(streamd_factory):
    assert os.path.exists(FAKETIME_LIB), "faketime missing: run scripts/install-deps.sh test"
    s = streamd_factory(args=STATS_ARGS + [
        "--set", "storage.retry.maxInterval=500ms",
        "--set", "storage.level.staging.operator.sliceUploadCheckInterval=500ms",
        "--set", "storage.level.target.operator.fileImportCheckInterval=500ms",
        "--set", "storage.metadataCleanup.archivedFileRetentionPerSink=0"])
    url = make_pipeline(s)
    patch_settings(s, [{"key": UPLOAD_COUNT, "value": 1}, {"key": IMPORT_COUNT, "value": 3}],
                   sink="k1")
    post_records(s, url, ["a0", "a1", "a2"], threads=3)
    wait_for(lambda: get_total(s), lambda b: level_count(b, "target") == 3)
    # a second sink, disabled: with two imported files, it is left alone once it has been
    # disabled longer than both expirations (the reference's rule)
    s.create_sink("s1", "k2", PATH_COLUMNS, table_id="in.c-bucket.other")
    patch_settings(s, [{"key": UPLOAD_COUNT, "value": 1}], sink="k2")
    status, task = s.api_call("PUT", "/v1/branches/default/sources/s1/sinks/k2/disable")
    assert status == 202 and s.wait_task(task)["status"] == "success", task
    wait_for(lambda: get_files(s, sink="k2"), lambda f: [g["state"] for g in f] == ["imported"] * 2)
    # the table changes under the sink: the next file stays "importing"
    db = sqlite3.connect(os.path.join(s.data_dir, "tables", "project-1.sqlite"), timeout=10)
    db.execute('DROP TABLE "%s"' % TABLE)
    db.execute('CREATE TABLE "%s" ("x" TEXT)' % TABLE)
    db.commit()
    db.close()
    post_records(s, url, ["b0", "b1", "b2"], threads=3)
    wait_for(lambda: get_files(s, failed="true"), lambda f: len(f) == 1)
    states = sorted(f["state"] for f in get_files(s))
    # (the settings change rotated an empty first file, imported too)
    assert states[-2:] == ["importing", "writing"] and set(states[:-2]) == {"imported"}, states
    staged = lambda: [f for _, _, fs in os.walk(os.path.join(s.data_dir, "staging")) for f in fs]
    assert staged() != []
    # eight days later: the imported files are past archivedFileExpiration beyond the
    # retention (0); the failing file, and the writing one (its sink cannot be activated on the
    # changed table), past activeFileExpiration (168h)
    assert s.stop() == 0
    s.extra_env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "+192h"}
    s.start()
    wait_for(lambda: get_files(s), lambda f: f == [])
    assert staged() == []  # the expired file's staged objects are gone with it
    # the deleted imported files' records stay in the sink's totals
    assert level_count(get_total(s), "target") == 3
    assert len(get_files(s, sink="k2")) == 2
    log = s.read_stderr()
    assert "cleanup deleted %d files, retained 2 files, 0 errors" % len(states) in log, log[-3000:]
    assert "timeout" not in log
