"""streamd with tables.backend=postgres: records become rows in a throwaway PostgreSQL 15
cluster (tests/pg/pg_cluster.sh, stopped by PID), byte-exact, read back with psql; the URL's
password never shows in `config dump` or the log; kill -9 of streamd and a server outage
under load lose and double nothing."""
import json
import os
import random
import re
import subprocess
import time

from conftest import BIN, TIMEOUT_MULT
from backends import CLUSTER, pg, psql_rows  # noqa: F401 (pg is a fixture)
from helpers import FAST, PATH_COLUMNS, Loader

TABLE = "in.c-bucket.table"
J = {"Content-Type": "application/json"}


def test_thousand_hostile_records_become_postgres_rows(streamd_factory, pg):
    s = streamd_factory(args=["--set", "tables.backend=postgres",
                              "--set", "tables.postgres.url=" + pg["url"]],
                        env={"STREAM_STORAGE_LEVEL_STAGING_UPLOAD_MIN_INTERVAL": "1s",
                             "STREAM_STORAGE_LEVEL_TARGET_IMPORT_MIN_INTERVAL": "1s"})
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id=TABLE)
    url = src["http"]["url"]
    status, task = s.api_call("PATCH", "/v1/branches/default/sources/s1/sinks/k1/settings", {
        "settings": [{"key": "storage.level.staging.upload.trigger.count", "value": 100},
                     {"key": "storage.level.target.import.trigger.count", "value": 300}]})
    assert status == 202, task
    assert s.wait_task(task)["status"] == "success"
    rnd = random.Random(11)
    expected = []
    for i in range(1000):
        text = "".join(rnd.choice(['a,b', '"q"', "\n", "\r\n", "ěš日🚀", "=1", "", "\\", "\\."])
                       for _ in range(rnd.randint(0, 8)))
        if i == 500:
            text = "x" * 65536
        body = json.dumps({"id": "id-%d" % i, "text": text}, ensure_ascii=(i % 3 == 0))
        assert s.request("POST", url, body, J)[0] == 200
        expected.append((body, "id-%d" % i, text))
    query = 'SELECT * FROM "in.c-bucket"."table"'
    deadline = time.time() + 120 * TIMEOUT_MULT
    while True:
        try:
            rows = psql_rows(pg, query)
        except subprocess.CalledProcessError:
            rows = []  # the table does not exist yet
        if len(rows) >= 1000:
            break
        assert time.time() < deadline, "only %d rows in PostgreSQL" % len(rows)
        time.sleep(0.5)
    time.sleep(1)
    rows = psql_rows(pg, query)
    assert len(rows) == 1000
    assert sorted(rows, key=lambda r: int(r[1][3:])) == expected
    # empty values are '' and never NULL
    assert psql_rows(pg, 'SELECT count(*) FROM "in.c-bucket"."table" WHERE "text" IS NULL') == [
        ("0",)]
    # the ledger is in its own schema, one row per imported slice
    ledger = psql_rows(pg, 'SELECT sum("rows") FROM "_streamd"."import_ledger"')
    assert ledger == [("1000",)]
    # the password is neither dumped nor logged
    dump = subprocess.run([BIN, "config", "dump", "--set", "tables.postgres.url=" + pg["url"]],
                          capture_output=True, text=True)
    assert "s3cr3t-pw" not in dump.stdout + dump.stderr
    assert "tables.postgres.url" in dump.stdout
    assert "s3cr3t-pw" not in s.read_stderr()


def test_postgres_outage_under_load_loses_and_doubles_nothing(streamd_factory, pg):
    outage = float(os.environ.get("SD_PG_OUTAGE_SECONDS", "30"))
    table = "in.c-outage.table"
    s = streamd_factory(args=FAST + ["--set", "tables.backend=postgres",
                                     "--set", "tables.postgres.url=" + pg["url"]])
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id=table)
    load = Loader(src["http"]["url"], clients=4, prefix="pg").start()
    time.sleep(2)
    subprocess.run([CLUSTER, "halt", pg["dir"]], check=True)
    try:
        time.sleep(outage)
        during = dict(load.statuses)
    finally:
        subprocess.run([CLUSTER, "resume", pg["dir"]], check=True)
    time.sleep(1)
    load.finish()
    assert set(during) == {200}, during
    query = 'SELECT "id" FROM "in.c-outage"."table"'
    wait_ids(pg, query, load.acked)
    time.sleep(2)
    ids = [r[0] for r in psql_rows(pg, query)]
    assert len(ids) == len(set(ids)), "doubled rows"
    assert load.acked <= set(ids)
    # the imports failed during the outage, with the reason, and were retried with backoff
    attempts = {}
    for m in re.finditer(r'file (\S+) failed \(attempt (\d+)[^)]*\): connecting to PostgreSQL',
                         s.read_stderr()):
        attempts[m.group(1)] = max(attempts.get(m.group(1), 0), int(m.group(2)))
    assert attempts, "the outage caused no failed import"
    assert max(attempts.values()) <= outage / 2 + 6, attempts


def wait_ids(pg, query, acked):
    """The ids of the table once every acknowledged id is in it."""
    deadline = time.time() + 90 * TIMEOUT_MULT
    while True:
        try:
            ids = [r[0] for r in psql_rows(pg, query)]
        except subprocess.CalledProcessError:
            ids = []  # the table does not exist yet
        if acked <= set(ids):
            return ids
        assert time.time() < deadline, "%d acknowledged records missing" % len(acked - set(ids))
        time.sleep(0.5)


def test_kill9_repeatedly_every_acked_record_in_postgres_exactly_once(streamd_factory, pg):
    table = "in.c-kill.table"
    s = streamd_factory(args=FAST + ["--set", "tables.backend=postgres",
                                     "--set", "tables.postgres.url=" + pg["url"]])
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id=table)
    acked, sent = set(), set()
    kills = 0
    while kills < 3 or len(acked) < 5000:
        load = Loader(src["http"]["url"], clients=16, prefix="k%d" % kills).start()
        time.sleep(random.uniform(1.5, 3.0))
        s.kill()
        kills += 1
        load.finish()
        acked |= load.acked
        sent |= load.sent
        s.start()
        assert kills < 12, "too slow to acknowledge 5000 records"
    wait_ids(pg, 'SELECT "id" FROM "in.c-kill"."table"', acked)
    time.sleep(2)
    rows = psql_rows(pg, 'SELECT * FROM "in.c-kill"."table"')
    ids = [r[1] for r in rows]
    assert acked <= set(ids), "lost %d" % len(acked - set(ids))
    assert set(ids) <= sent, "phantom rows"
    assert len(ids) == len(set(ids)), "duplicates: %d" % (len(ids) - len(set(ids)))
    for body, rid, text in rows:
        assert json.loads(body) == {"id": rid, "text": "x,\"y\"\n" + rid}
        assert text == "x,\"y\"\n" + rid
