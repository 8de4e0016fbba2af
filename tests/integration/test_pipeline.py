"""From records to table rows: rotation, upload to staging, exactly-once import into SQLite,
with kill -9, a staging outage and a full disk (RELIABILITY.md (a), (b), (c))."""
import ctypes
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import time

import pytest

from conftest import TIMEOUT_MULT
from helpers import (FAST, PATH_COLUMNS, Loader, assert_error, assert_loaded_once, kill_under_load,
                     table_rows)

TABLE = "in.c-bucket.table"
J = {"Content-Type": "application/json"}
# Small triggers and short intervals: every record is in the table within seconds.




def wait_rows(data_dir, predicate, timeout=60):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while True:
        rows = table_rows(data_dir, TABLE)
        if predicate(rows):
            return rows
        assert time.time() < deadline, "table never reached the expected rows (%d now)" % len(rows)
        time.sleep(0.2)


def make_pipeline(s):
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id=TABLE)
    return src["http"]["url"]


def test_thousand_hostile_records_become_rows(streamd_factory):
    # As a user would: service-level minimum intervals lowered through the environment,
    # per-sink triggers set small through the settings API.
    s = streamd_factory(env={"STREAM_STORAGE_LEVEL_STAGING_UPLOAD_MIN_INTERVAL": "1s",
                             "STREAM_STORAGE_LEVEL_TARGET_IMPORT_MIN_INTERVAL": "1s"})
    url = make_pipeline(s)
    status, task = s.api_call("PATCH", "/v1/branches/default/sources/s1/sinks/k1/settings", {
        "settings": [{"key": "storage.level.staging.upload.trigger.count", "value": 100},
                     {"key": "storage.level.target.import.trigger.count", "value": 300}]})
    assert status == 202, task
    assert s.wait_task(task)["status"] == "success"
    rnd = random.Random(11)
    expected = []
    for i in range(1000):
        text = "".join(rnd.choice(['a,b', '"q"', "\n", "\r\n", "ěš日🚀", "=1", "", "\\"])
                       for _ in range(rnd.randint(0, 8)))
        body = json.dumps({"id": "id-%d" % i, "text": text}, ensure_ascii=(i % 3 == 0))
        assert s.request("POST", url, body, J)[0] == 200
        expected.append((body, "id-%d" % i, text))
    # The last file reaches no count trigger: it is imported by the 1-minute interval trigger.
    rows = wait_rows(s.data_dir, lambda r: len(r) >= 1000, timeout=120)
    time.sleep(1)
    rows = table_rows(s.data_dir, TABLE)
    assert len(rows) == 1000
    assert sorted(rows, key=lambda r: int(r[1][3:])) == expected
    # The user's table has the mapping's columns only; the ledger is in its own table.
    db = sqlite3.connect(os.path.join(s.data_dir, "tables", "project-1.sqlite"))
    cols = [r[1] for r in db.execute('PRAGMA table_info("%s")' % TABLE)]
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    db.close()
    assert cols == ["body", "id", "text"]
    assert all(t == TABLE or t.startswith("_streamd_") for t in tables), tables
    # Local slice files and staged objects of imported data are gone.
    time.sleep(1.5)
    staged = [f for _, _, fs in os.walk(os.path.join(s.data_dir, "staging")) for f in fs]
    assert staged == [], staged


PK_COLUMNS = [
    {"type": "path", "name": "key", "path": "key", "rawString": True, "primaryKey": True},
    {"type": "path", "name": "value", "path": "value", "rawString": True},
]


def test_primary_key_keeps_the_last_value_per_key(streamd_factory):
    # Small triggers: the 1,000 records land in many files and slices, imported one by one.
    s = streamd_factory(args=FAST)
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PK_COLUMNS, table_id=TABLE)
    url = src["http"]["url"]
    for i in range(1000):  # sequential, so "last" is defined
        body = json.dumps({"key": "k-%d" % (i % 100), "value": "v-%d" % i})
        assert s.request("POST", url, body, J)[0] == 200
    expected = sorted(("k-%d" % k, "v-%d" % (900 + k)) for k in range(100))
    rows = wait_rows(s.data_dir, lambda r: sorted(r) == expected, timeout=120)
    assert len(rows) == 100
    db = sqlite3.connect(os.path.join(s.data_dir, "tables", "project-1.sqlite"))
    pk = [r[1] for r in db.execute('PRAGMA table_info("%s")' % TABLE) if r[5] > 0]
    ledger_rows = db.execute('SELECT sum("rows") FROM "_streamd_import_ledger"').fetchone()[0]
    db.close()
    assert pk == ["key"]
    assert ledger_rows == 1000  # every record imported exactly once, upserted by its key
    # A sink whose key differs from the existing table's is refused with the reason.
    other = [dict(c, primaryKey=(c["name"] == "value")) for c in PK_COLUMNS]
    body = {"sinkId": "k2", "name": "k2", "type": "table",
            "table": {"type": "keboola", "tableId": TABLE, "mapping": {"columns": other}}}
    status, resp = s.api_call("POST", "/v1/branches/default/sources/s1/sinks", body)
    assert_error(status, resp, 400, "stream.api.badRequest", "Invalid body.table: table ",
                 '"key" PRIMARY KEY', '"value" PRIMARY KEY')


def test_a_later_file_waits_for_the_earlier_files_import(streamd_factory):
    # With a primary key the later file's row must win, so a sink's files import oldest first:
    # while the first file's import fails, the second is not even tried.
    s = streamd_factory(args=FAST)
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PK_COLUMNS, table_id=TABLE)
    url = src["http"]["url"]
    db_path = os.path.join(s.data_dir, "tables", "project-1.sqlite")
    db = sqlite3.connect(db_path, timeout=10)
    db.execute('DROP TABLE "%s"' % TABLE)
    db.execute('CREATE TABLE "%s" ("x" TEXT)' % TABLE)  # imports fail until it is dropped
    db.commit()
    db.close()
    files_path = "/v1/branches/default/sources/s1/sinks/k1/statistics/files"

    def files():
        status, body = s.api_call("GET", files_path)
        assert status == 200, body
        return sorted(body["files"], key=lambda f: f["openedAt"])

    def wait_files(predicate):
        deadline = time.time() + 60 * TIMEOUT_MULT
        while not predicate(files()):
            assert time.time() < deadline, files()
            time.sleep(0.2)

    assert s.request("POST", url, json.dumps({"key": "k", "value": "first"}), J)[0] == 200
    wait_files(lambda f: len(f) >= 1 and f[0].get("retryAttempt", 0) >= 1)
    assert s.request("POST", url, json.dumps({"key": "k", "value": "second"}), J)[0] == 200
    wait_files(lambda f: len(f) == 3 and f[1]["state"] == "importing")
    first_attempts = files()[0]["retryAttempt"]
    wait_files(lambda f: f[0]["retryAttempt"] >= first_attempts + 2)  # retried meanwhile
    later = files()[1]
    assert later["state"] == "importing" and "retryReason" not in later, later
    db = sqlite3.connect(db_path, timeout=10)
    db.execute('DROP TABLE "%s"' % TABLE)
    db.commit()
    db.close()
    assert wait_rows(s.data_dir, lambda r: r == [("k", "second")]) == [("k", "second")]


def test_table_without_the_key_holds_imports_until_the_key_is_added(streamd_factory):
    # A table created before primaryKey was honoured has the columns but no key: its imports
    # fail with both definitions in the files endpoint, and the README's fix lets them through.
    s = streamd_factory(args=FAST)
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PK_COLUMNS, table_id=TABLE)
    db_path = os.path.join(s.data_dir, "tables", "project-1.sqlite")
    db = sqlite3.connect(db_path, timeout=10)
    db.execute('DROP TABLE "%s"' % TABLE)
    db.execute('CREATE TABLE "%s" ("key" TEXT, "value" TEXT)' % TABLE)
    db.execute('INSERT INTO "%s" VALUES (\'k\', \'old\')' % TABLE)
    db.commit()
    db.close()
    record = json.dumps({"key": "k", "value": "new"})
    assert s.request("POST", src["http"]["url"], record, J)[0] == 200
    path = "/v1/branches/default/sources/s1/sinks/k1/statistics/files?failedFiles=true"
    deadline = time.time() + 60 * TIMEOUT_MULT
    while True:
        failed = s.api_call("GET", path)[1]["files"]
        if failed:
            break
        assert time.time() < deadline, "the import did not fail"
        time.sleep(0.2)
    reason = failed[0]["retryReason"]
    assert 'exists with columns ("key", "value"), expected ("key" PRIMARY KEY, "value")' in reason
    db = sqlite3.connect(db_path, timeout=10)
    db.executescript('ALTER TABLE "{0}" RENAME TO "old"; '
                     'CREATE TABLE "{0}" ("key" TEXT, "value" TEXT, PRIMARY KEY ("key")); '
                     'INSERT INTO "{0}" SELECT * FROM "old"; DROP TABLE "old";'.format(TABLE))
    db.close()
    assert wait_rows(s.data_dir, lambda r: r == [("k", "new")]) == [("k", "new")]


def test_existing_table_with_other_columns_or_case_refuses_the_sink(streamd_factory):
    # refused at request time: the sink's task would fail on the table
    s = streamd_factory(args=FAST)
    s.create_source("s1")
    os.makedirs(os.path.join(s.data_dir, "tables"), exist_ok=True)
    db = sqlite3.connect(os.path.join(s.data_dir, "tables", "project-1.sqlite"))
    db.execute('CREATE TABLE "in.c-b.other" ("x" TEXT, "y" TEXT)')
    db.commit()
    db.close()
    for table_id, needles in (("in.c-b.other", ('"x"', '"body"')),
                              ("in.c-b.OTHER", ('"in.c-b.OTHER" clashes', '"in.c-b.other"'))):
        body = {"sinkId": "k2", "name": "k2", "type": "table",
                "table": {"type": "keboola", "tableId": table_id,
                          "mapping": {"columns": PATH_COLUMNS}}}
        status, resp = s.api_call("POST", "/v1/branches/default/sources/s1/sinks", body)
        assert_error(status, resp, 400, "stream.api.badRequest", "Invalid body.table: table ",
                     *needles)
        assert s.api_call("GET", "/v1/branches/default/sources/s1/sinks/k2")[0] == 404


def drain(s, acked):
    return wait_rows(s.data_dir, lambda r: acked <= {row[1] for row in r}, timeout=90)


def test_kill9_repeatedly_every_acked_record_in_table_exactly_once(streamd_factory):
    s = streamd_factory(args=FAST)
    acked, sent = kill_under_load(s, make_pipeline(s))
    drain(s, acked)
    time.sleep(2)
    assert_loaded_once(table_rows(s.data_dir, TABLE), acked, sent)


def exchange(a, b):
    """Swaps the names a and b in one step (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), a)


# The staging dir is swapped for a symlink to a file and back without a moment in which the name
# is free: a retried upload creates the staging dirs, and could take a free name first.
def break_staging(data_dir):
    staging = os.path.join(data_dir, "staging")
    with open(staging + ".broken", "w") as f:
        f.write("not a directory\n")
    os.symlink("staging.broken", staging + ".new")
    exchange(staging, staging + ".new")
    os.rename(staging + ".new", staging + ".off")


def repair_staging(data_dir):
    staging = os.path.join(data_dir, "staging")
    os.symlink("staging.off", staging + ".new")
    os.rename(staging + ".new", staging)


def test_staging_outage_keeps_ingesting_and_catches_up(streamd_factory):
    outage = float(os.environ.get("SD_STAGING_OUTAGE_SECONDS", "30"))
    s = streamd_factory(args=FAST)
    url = make_pipeline(s)
    load = Loader(url, clients=4, prefix="o").start()
    time.sleep(1)
    break_staging(s.data_dir)
    time.sleep(outage)
    during = dict(load.statuses)
    repair_staging(s.data_dir)
    time.sleep(1)
    load.finish()
    assert set(during) == {200}, during
    drain(s, load.acked)
    time.sleep(2)
    ids = [r[1] for r in table_rows(s.data_dir, TABLE)]
    assert load.acked <= set(ids)
    assert len(ids) == len(set(ids))
    # Retries backed off: no slice was tried more often than the backoff allows.
    attempts = {}
    for m in re.finditer(r'slice (\S+) failed \(attempt (\d+)', s.read_stderr()):
        attempts[m.group(1)] = max(attempts.get(m.group(1), 0), int(m.group(2)))
    assert attempts, "the outage caused no failed upload"
    assert max(attempts.values()) <= outage / 2 + 6, attempts


def can_mount():
    return os.geteuid() == 0 and shutil.which("mkfs.ext4") and shutil.which("mount")


def test_disk_full_refuses_with_507_then_recovers(streamd_factory, tmp_path):
    if not can_mount():
        pytest.skip("disk-full test needs root and mkfs.ext4 (loop mount)")
    image = tmp_path / "vol.img"
    mnt = tmp_path / "vols" / "default" / "1"
    os.makedirs(mnt)
    subprocess.run(["truncate", "-s", "12M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    r = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot loop-mount here: " + r.stderr.decode(errors="replace"))
    try:
        s = streamd_factory(args=FAST + ["--set", "storage.volumesPath=" + str(tmp_path / "vols")])
        url = make_pipeline(s)
        break_staging(s.data_dir)  # nothing drains: the volume fills up
        import base64
        acked, codes = set(), {}
        deadline = time.time() + 120 * TIMEOUT_MULT
        i = 0
        while time.time() < deadline:
            rid = "d-%d" % i
            i += 1
            pad = base64.b64encode(os.urandom(15000)).decode()  # barely compressible
            status, headers, _ = s.request("POST", url, json.dumps({"id": rid, "text": pad}), J)
            codes[status] = codes.get(status, 0) + 1
            if status == 200:
                acked.add(rid)
            elif status in (503, 507):
                assert headers.get("retry-after"), headers
                if codes.get(507, 0) + codes.get(503, 0) >= 20:
                    break
            else:
                pytest.fail("unexpected status %d while the disk fills" % status)
        assert codes.get(507, 0) + codes.get(503, 0) >= 20, codes
        repair_staging(s.data_dir)  # uploads resume and free the volume
        t0 = time.time()
        while True:
            status, _, _ = s.request("POST", url, json.dumps({"id": "after-%d" % i, "text": "x"}), J)
            if status == 200:
                acked.add("after-%d" % i)
                break
            i += 1
            assert time.time() - t0 < 30 * TIMEOUT_MULT, "no 200 after space was freed"
            time.sleep(0.2)
        drain(s, acked)
        assert s.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_deleted_sink_still_imports_acknowledged_records(streamd_factory):
    # Triggers high enough that nothing rotates before the delete.
    args = [a.replace("trigger.count=1", "trigger.count=100000") for a in FAST]
    s = streamd_factory(args=args)
    url = make_pipeline(s)
    for i in range(50):
        assert s.request("POST", url, json.dumps({"id": "del-%d" % i}), J)[0] == 200
    status, task = s.api_call("DELETE", "/v1/branches/default/sources/s1/sinks/k1")
    assert status == 202 and s.wait_task(task)["status"] == "success"
    rows = wait_rows(s.data_dir, lambda r: len(r) >= 50)
    assert sorted(r[1] for r in rows) == sorted("del-%d" % i for i in range(50))
    # The source has no sink now: records are accepted and stored nowhere, as the reference does.
    status, _, data = s.request("POST", url + "?verbose=true", '{"id":"x"}', J)
    assert status == 200 and json.loads(data)["message"] == "No enabled sink found."


def test_cascade_delete_drops_data_not_yet_imported(streamd_factory):
    args = [a.replace("trigger.count=1", "trigger.count=100000") for a in FAST]
    s = streamd_factory(args=args)
    url = make_pipeline(s)
    for i in range(20):
        assert s.request("POST", url, json.dumps({"id": "c-%d" % i}), J)[0] == 200
    status, task = s.api_call("DELETE", "/v1/branches/default/sources/s1?cascade=true")
    assert status == 202 and s.wait_task(task)["status"] == "success"
    db_path = os.path.join(s.data_dir, "tables", "project-1.sqlite")
    deadline = time.time() + 10 * TIMEOUT_MULT
    while time.time() < deadline:  # the operator drops the closed file instead of importing it
        if "dropped" in s.read_stderr():
            break
        time.sleep(0.2)
    assert "of a deleted sink dropped" in s.read_stderr()
    db = sqlite3.connect(db_path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    db.close()
    assert TABLE not in tables, tables
    staged = [f for _, _, fs in os.walk(os.path.join(s.data_dir, "staging")) for f in fs]
    assert staged == [], staged
