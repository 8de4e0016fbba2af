"""Helpers shared by the integration tests: slice files on disk, CSV decoding, load clients,
kill -9 under load and the exactly-once check of its records."""
import csv
import glob
import gzip
import io
import json
import os
import random
import sqlite3
import subprocess
import threading
import time

# Operator intervals and triggers short enough for a test to see slices uploaded and imported
# within seconds, and quick retries.
FAST = ["--set", "storage.level.staging.upload.minInterval=1s",
        "--set", "storage.level.staging.upload.trigger.count=1",
        "--set", "storage.level.target.import.minInterval=1s",
        "--set", "storage.level.target.import.trigger.count=1",
        "--set", "storage.level.staging.operator.sliceRotationCheckInterval=100ms",
        "--set", "storage.level.staging.operator.sliceUploadCheckInterval=500ms",
        "--set", "storage.level.target.operator.fileRotationCheckInterval=100ms",
        "--set", "storage.level.target.operator.fileImportCheckInterval=500ms",
        "--set", "storage.retry.initialInterval=100ms",
        "--set", "storage.retry.multiplier=2",
        "--set", "storage.retry.maxInterval=2s"]

PATH_COLUMNS = [
    {"type": "body", "name": "body"},
    {"type": "path", "name": "id", "path": "id", "rawString": True},
    {"type": "path", "name": "text", "path": "text", "rawString": True, "defaultValue": ""},
]


def slice_files(data_dir):
    """Every slice file (hidden while written, or visible), sorted."""
    pattern = os.path.join(data_dir, "volumes", "*", "*", "*", "*", "*", "*", "*", "*")
    out = []
    for d in sorted(glob.glob(pattern)):
        for name in sorted(os.listdir(d)):
            if "slice-" in name:
                out.append(os.path.join(d, name))
    return out


def read_slice_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        return gzip.decompress(data) if data else b""
    return data


def gzip_test(path):
    """`gzip -t` on the file; returns (ok, stderr)."""
    r = subprocess.run(["gzip", "-t", path], capture_output=True)
    return r.returncode == 0, r.stderr.decode(errors="replace")


def all_rows(data_dir):
    """All CSV rows of every slice file, parsed; asserts every gzip file passes gzip -t."""
    rows = []
    for path in slice_files(data_dir):
        if path.endswith(".gz"):
            ok, err = gzip_test(path)
            assert ok, "gzip -t failed for %s: %s" % (path, err)
        text = read_slice_bytes(path).decode("utf-8")
        rows.extend(csv.reader(io.StringIO(text, newline=""), strict=True))
    return rows


def csv_row(values):
    """The CSV encoding streamd must produce: every field quoted, quotes doubled, '\\n' end."""
    return ",".join('"' + v.replace('"', '""') + '"' for v in values) + "\n"


class Loader:
    """Concurrent clients posting JSON records with ids; records which were acknowledged (200),
    and the times of every request that got no 200 (start, end, its status or None)."""

    def __init__(self, url, clients=8, prefix="r"):
        self.url, self.clients, self.prefix = url, clients, prefix
        self.acked, self.sent, self.statuses = set(), set(), {}
        self.errors = 0  # requests without an answer (refused, reset, timed out)
        self.failures = []  # (start, end, status or None) of every request without a 200
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = []

    def _run(self, n):
        import http.client
        import json
        import urllib.parse
        u = urllib.parse.urlsplit(self.url)
        seq = 0
        conn = None
        while not self.stop.is_set():
            rid = "%s-%d-%d" % (self.prefix, n, seq)
            seq += 1
            body = json.dumps({"id": rid, "text": "x,\"y\"\n" + rid}).encode()
            with self.lock:
                self.sent.add(rid)
            start = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                conn.request("POST", u.path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                with self.lock:
                    self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                    if resp.status == 200:
                        self.acked.add(rid)
                    else:
                        self.failures.append((start, time.time(), resp.status))
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                    self.failures.append((start, time.time(), None))
                conn = None
                if self.stop.wait(0.05):
                    break

    def start(self):
        for n in range(self.clients):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def kill_under_load(s, url):
    """kill -9 of s every 1.5-3 s under 16 Loader clients, restarting it, until at least 3
    kills and 5,000 acknowledged records; returns the acknowledged and the sent ids."""
    acked, sent = set(), set()
    kills = 0
    while kills < 3 or len(acked) < 5000:
        load = Loader(url, clients=16, prefix="k%d" % kills).start()
        time.sleep(random.uniform(1.5, 3.0))
        s.kill()
        kills += 1
        load.finish()
        acked |= load.acked
        sent |= load.sent
        s.start()
        assert kills < 12, "too slow to acknowledge 5000 records"
    return acked, sent


def assert_loaded_once(rows, acked, sent):
    """rows (body, id, text) of Loader records hold every acknowledged record exactly once,
    byte-exact, and nothing that was never sent."""
    ids = [r[1] for r in rows]
    assert acked <= set(ids), "lost %d" % len(acked - set(ids))
    assert set(ids) <= sent, "phantom rows"
    assert len(ids) == len(set(ids)), "duplicates: %d" % (len(ids) - len(set(ids)))
    for body, rid, text in rows:
        assert json.loads(body) == {"id": rid, "text": "x,\"y\"\n" + rid}
        assert text == "x,\"y\"\n" + rid


def table_rows(data_dir, table):
    """The rows of table in the standalone SQLite table storage (project 1), in insertion order;
    [] while the database or the table does not exist yet."""
    path = os.path.join(data_dir, "tables", "project-1.sqlite")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute('SELECT * FROM "%s" ORDER BY rowid' % table).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def assert_error(status, body, want_status, want_name, *needles):
    """An API error answer: the status, the error name and every needle in the message."""
    assert status == want_status, (status, body)
    assert isinstance(body, dict), body
    assert body["statusCode"] == want_status, body
    assert body["error"] == want_name, body
    for needle in needles:
        assert needle in body["message"], body
