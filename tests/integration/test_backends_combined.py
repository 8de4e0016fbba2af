"""streamd with both external backends at once, as a user who outgrew one machine runs it:
tables in PostgreSQL and staged slices in S3 (s3rver behind the signature-checking proxy).
CSV-hostile records arrive byte-exact, and a primary-key sink keeps the last value per key."""
import json
import random
import subprocess
import time

from conftest import TIMEOUT_MULT
from backends import pg, psql_rows, s3, s3_args  # noqa: F401 (pg and s3 are fixtures)
from helpers import PATH_COLUMNS

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
