"""streamd with tables.backend=postgres: records become rows in a throwaway PostgreSQL 15
cluster (tests/pg/pg_cluster.sh, stopped by PID), byte-exact, read back with psql; the URL's
password never shows in `config dump` or the log. Kill -9 and outages run with both external
backends at once in test_backends_combined.py."""
import json
import random
import subprocess
import time

from conftest import BIN, TIMEOUT_MULT
from backends import pg, psql_rows  # noqa: F401 (pg is a fixture)
from helpers import PATH_COLUMNS

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
