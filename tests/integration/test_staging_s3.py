"""streamd with staging.backend=s3: records reach the table through s3rver, every request
signed right (checked by tests/unit/s3_sigv4_proxy.py with botocore), and a wrong secret key is
a clear retry reason, never a leaked credential (an s3rver outage is in
test_backends_combined.py). s3rver comes from scripts/install-deps.sh test
(tests/.node); a server that cannot start fails the test."""
import time

from conftest import TIMEOUT_MULT
from backends import BUCKET, s3, s3_args  # noqa: F401 (s3 is a fixture)
from helpers import PATH_COLUMNS, Loader, table_rows

TABLE = "in.c-bucket.table"


def log_kinds(log):
    with open(log) as f:
        return [line.split()[:2] for line in f]


def make_pipeline(s):
    src = s.create_source("s1")
    s.create_sink("s1", "k1", PATH_COLUMNS, table_id=TABLE)
    return src["http"]["url"]


def assert_imported_once(s, acked):
    """Waits until every acknowledged id is in the table, and checks none is there twice."""
    assert acked
    deadline = time.time() + 90 * TIMEOUT_MULT
    while True:
        ids = [r[1] for r in table_rows(s.data_dir, TABLE)]
        if acked <= set(ids):
            break
        assert time.time() < deadline, "not every acknowledged record was imported"
        time.sleep(0.3)
    assert len(ids) == len(set(ids))


def test_records_reach_the_table_through_s3(streamd_factory, s3):
    endpoint, log = s3.endpoint, s3.log
    s = streamd_factory(args=s3_args(endpoint))
    url = make_pipeline(s)
    load = Loader(url, clients=4, prefix="s").start()
    time.sleep(3)
    load.finish()
    assert_imported_once(s, load.acked)
    # staged objects were put, read by the import and deleted after it, all signed right
    deadline = time.time() + 20 * TIMEOUT_MULT
    while ["delete", "ok"] not in log_kinds(log):
        assert time.time() < deadline, "no staged object was deleted"
        time.sleep(0.3)
    kinds = log_kinds(log)
    for kind in ("put", "get", "delete"):
        assert [kind, "ok"] in kinds, kinds
    assert not [k for k in kinds if k[1] != "ok"], kinds
    assert "opened s3 staging storage at s3://%s/staged at %s" % (BUCKET, endpoint) in \
        s.read_stderr()


def test_wrong_secret_is_a_clear_retry_reason(streamd_factory, s3):
    endpoint, log = s3.endpoint, s3.log
    s = streamd_factory(args=s3_args(endpoint, secret="a-wrong-secret-456"))
    url = make_pipeline(s)
    assert s.request("POST", url, '{"id": "w1"}', {"Content-Type": "application/json"})[0] == 200
    deadline = time.time() + 30 * TIMEOUT_MULT
    while "upload to staging failed: Key was rejected by service" not in s.read_stderr():
        assert time.time() < deadline, s.read_stderr()[-3000:]
        time.sleep(0.3)
    assert ["put", "rejected"] in log_kinds(log)
    assert "a-wrong-secret-456" not in s.read_stderr()
    assert table_rows(s.data_dir, TABLE) == []
