"""streamd with both external backends at once, as a user who outgrew one machine runs it:
tables in PostgreSQL and staged slices in S3 (s3rver behind the signature-checking proxy).
CSV-hostile records arrive byte-exact, a primary-key sink keeps the last value per key; kill -9
under load, a 30 s PostgreSQL outage and a 30 s s3rver outage lose and double nothing, and the
retries of an outage back off where a user looks: the sink's statistics/files endpoint."""
import json
import os
import random
import subprocess
import threading
import time

from conftest import TIMEOUT_MULT
from backends import CLUSTER, pg, psql_rows, s3, s3_args  # noqa: F401 (pg and s3 are fixtures)
from helpers import PATH_COLUMNS, Loader, assert_loaded_once, kill_under_load

J = {"Content-Type": "application/json"}
PK_COLUMNS = [
    {"type": "path", "name": "key", "path": "key", "rawString": True, "primaryKey": True},
    {"type": "path", "name": "value", "path": "value", "rawString": True},
]


def wait_psql(pg, query, done, timeout=120):
    """The rows of query once done(rows) holds (the table may not exist yet)."""
    deadline = time.time() + timeout * TIMEOUT_MULT
    while True:
        try:
            rows = psql_rows(pg, query)
        except subprocess.CalledProcessError:  # the table is created by the first import
            rows = []
        if done(rows):
            return rows
        assert time.time() < deadline, "PostgreSQL has %d rows of %s" % (len(rows), query)
        time.sleep(0.5)


def test_postgres_tables_and_s3_staging_together(streamd_factory, pg, s3):
    s = streamd_factory(args=s3_args(s3.endpoint) + [
        "--set", "tables.backend=postgres", "--set", "tables.postgres.url=" + pg["url"]])
    src = s.create_source("s1")
    s.create_sink("s1", "hostile", PATH_COLUMNS, table_id="in.c-both.hostile")
    s.create_sink("s1", "keyed", PK_COLUMNS, table_id="in.c-both.keyed")
    url = src["http"]["url"]
    rnd = random.Random(7)
    expected = []
    for i in range(1000):  # sequential, so the last value of each key is defined
        text = "".join(rnd.choice(['a,b', '"q"', "\n", "\r\n", "ěš日🚀", "", "\\", "\\."])
                       for _ in range(rnd.randint(0, 8)))
        if i == 700:
            text = "y" * 65536
        body = json.dumps({"id": "id-%d" % i, "text": text, "key": "k-%d" % (i % 100),
                           "value": "v-%d" % i}, ensure_ascii=(i % 2 == 0))
        assert s.request("POST", url, body, J)[0] == 200
        expected.append((body, "id-%d" % i, text))
    rows = wait_psql(pg, 'SELECT * FROM "in.c-both"."hostile"', lambda r: len(r) >= 1000)
    assert sorted(rows, key=lambda r: int(r[1][3:])) == expected
    want = sorted(("k-%d" % k, "v-%d" % (900 + k)) for k in range(100))
    keyed = wait_psql(pg, 'SELECT * FROM "in.c-both"."keyed"', lambda r: sorted(r) == want)
    assert len(keyed) == 100
    # every record was imported exactly once into each table (the ledger counts upserted rows)
    time.sleep(1)
    assert psql_rows(pg, 'SELECT sum("rows") FROM "_streamd"."import_ledger"') == [("2000",)]
    # every request streamd sent to S3 carried a signature botocore accepts
    with open(s3.log) as f:
        kinds = [line.split()[:2] for line in f]
    for kind in ("put", "get", "delete"):
        assert [kind, "ok"] in kinds, kinds
    assert not [k for k in kinds if k[1] != "ok"], kinds


def both_backends(streamd_factory, pg, s3, table):
    """streamd on both backends with one path-column sink into "in.c-both".table, and its
    source URL."""
    s = streamd_factory(args=s3_args(s3.endpoint) + [
        "--set", "tables.backend=postgres", "--set", "tables.postgres.url=" + pg["url"]])
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id="in.c-both." + table)
    return s, src["http"]["url"]


def assert_acked_once(pg, table, acked, sent):
    """Every acknowledged record is in the table exactly once, byte-exact, and nothing else."""
    assert acked
    query = 'SELECT * FROM "in.c-both"."%s"' % table
    wait_psql(pg, query, lambda r: acked <= {row[1] for row in r}, timeout=90)
    time.sleep(2)  # anything imported twice would show now
    assert_loaded_once(psql_rows(pg, query), acked, sent)


def test_kill9_repeatedly_every_acked_record_imported_exactly_once(streamd_factory, pg, s3):
    s, url = both_backends(streamd_factory, pg, s3, "killed")
    acked, sent = kill_under_load(s, url)
    assert_acked_once(pg, "killed", acked, sent)


class FailedFilesWatch:
    """Polls the sink's statistics/files?failedFiles=true while an outage lasts and keeps what a
    user sees there: the highest retryAttempt per file with its retryReason and retryAfter."""

    def __init__(self, s):
        self.s, self.seen = s, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        path = "/v1/branches/default/sources/s1/sinks/k1/statistics/files?failedFiles=true"
        while not self.stop.wait(0.3):
            status, body = self.s.api_call("GET", path)
            assert status == 200, body
            for f in body["files"]:
                old = self.seen.get(f["openedAt"])
                if old is None or f["retryAttempt"] > old["retryAttempt"]:
                    self.seen[f["openedAt"]] = f

    def finish(self):
        self.stop.set()
        self.thread.join(10)
        return list(self.seen.values())


def outage_under_load(streamd_factory, pg, s3, table, stop, resume, reason):
    """Load, then the outage stop()..resume() for SD_OUTAGE_SECONDS (30 s): ingestion answers
    200 throughout, the failed files show reason and back off, and afterwards every acknowledged
    record is imported exactly once."""
    outage = float(os.environ.get("SD_OUTAGE_SECONDS", "30"))
    s, url = both_backends(streamd_factory, pg, s3, table)
    load = Loader(url, clients=4, prefix="o").start()
    time.sleep(2)
    stop()
    watch = FailedFilesWatch(s)
    try:
        time.sleep(outage)
        during = dict(load.statuses)
    finally:
        resume()
    failed = watch.finish()
    time.sleep(1)
    load.finish()
    assert set(during) == {200}, during
    assert failed, "the outage failed no file"
    for f in failed:
        assert reason in f["retryReason"], f
        assert f["retryAfter"] > f["openedAt"], f
    # with the test's backoff (100 ms doubling to 2 s) a 30 s outage allows about 20 attempts;
    # without backoff the 500 ms operator checks would make 60
    most = max(f["retryAttempt"] for f in failed)
    assert 2 <= most <= outage / 2 + 6, failed
    assert_acked_once(pg, table, load.acked, load.sent)


def test_postgres_outage_under_load_loses_and_doubles_nothing(streamd_factory, pg, s3):
    outage_under_load(streamd_factory, pg, s3, "pg_outage",
                      lambda: subprocess.run([CLUSTER, "halt", pg["dir"]], check=True),
                      lambda: subprocess.run([CLUSTER, "resume", pg["dir"]], check=True),
                      "connecting to PostgreSQL")


def test_s3_outage_under_load_loses_and_doubles_nothing(streamd_factory, pg, s3):
    outage_under_load(streamd_factory, pg, s3, "s3_outage", s3.stop_server,
                      lambda: s3.start_server(s3.port), "upload to staging failed")
