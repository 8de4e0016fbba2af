"""The state store on a full disk (issue 9, RELIABILITY.md (j)): writes fail with a clear 5xx
while reads keep answering, /health-check turns 503, and once space is back everything works
again without a restart and nothing acknowledged is lost. The state directory lives on a small
tmpfs, which fails writes with ENOSPC like a full disk."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import TIMEOUT_MULT
from helpers import FAST, PATH_COLUMNS, table_rows

TABLE = "in.c-bucket.table"
J = {"Content-Type": "application/json"}


def fill(path):
    """Writes path until the filesystem is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def wait_for(what, predicate, timeout):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.1)


def health(s):
    return [s.request("GET", base + "/health-check")[0] for base in (s.source, s.metrics)]


def test_state_store_on_full_disk_recovers_without_restart(streamd_factory, tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "statefs"
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode(errors="replace"))
    try:
        s = streamd_factory(args=FAST + ["--set", "state.embedded.path=%s/state" % mnt])
        src = s.create_source("s1")
        s.create_sink("s1", "k1", PATH_COLUMNS, table_id=TABLE)
        url = src["http"]["url"]
        acked = set()
        for i in range(5):
            assert s.request("POST", url, json.dumps({"id": "before-%d" % i}), J)[0] == 200
            acked.add("before-%d" % i)
        assert health(s) == [200, 200]

        fill(str(mnt / "filler"))
        # The log's last page may still take a few small records: write until one fails.
        for i in range(200):
            status, body = s.api_call("POST", "/v1/branches/default/sources/s1/rotate-secret")
            if status != 200:
                break
        assert status == 503, (status, body)
        assert body["error"] == "stream.api.stateStoreUnavailable", body
        # Reads keep working and see nothing of the failed write.
        status, body = s.api_call("GET", "/v1/branches/default/sources")
        assert status == 200, (status, body)
        assert [x["sourceId"] for x in body["sources"]] == ["s1"]
        status, body = s.api_call("GET", "/v1/branches/default/sources/s1")
        assert status == 200, (status, body)
        url = body["http"]["url"]
        # Not ready, but alive; the reason is in the body.
        wait_for("health-check never turned 503", lambda: health(s) == [503, 503], 5)
        status, _, text = s.request("GET", s.metrics + "/health-check")
        assert b"state: cannot write" in text and b"No space left" in text, text
        assert s.request("GET", s.source + "/livez")[0] == 200
        assert s.request("GET", s.metrics + "/livez")[0] == 200
        # Records land in slice files (not on this disk): still acknowledged.
        for i in range(5):
            status, _, _ = s.request("POST", url, json.dumps({"id": "during-%d" % i}), J)
            assert status == 200
            acked.add("during-%d" % i)
        time.sleep(2)  # rotation, upload and import attempts meet the full disk

        os.unlink(str(mnt / "filler"))
        wait_for("health-check never returned to 200", lambda: health(s) == [200, 200], 5)
        s.create_source("s2")
        for i in range(5):
            assert s.request("POST", url, json.dumps({"id": "after-%d" % i}), J)[0] == 200
            acked.add("after-%d" % i)
        wait_for("acknowledged records missing from the table",
                 lambda: acked <= {row[1] for row in table_rows(s.data_dir, TABLE)}, 60)
        ids = [row[1] for row in table_rows(s.data_dir, TABLE)]
        assert len(ids) == len(set(ids)), "duplicated rows"
        log = s.read_stderr()
        assert log.count("refusing writes until it can be written again") == 1, log[-4000:]
        assert s.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
